"""The package's shape: imports run one way (no two modules import each other, directly or round a longer
loop), and the layers the README names hold: app -> export -> inference -> networks."""

from __future__ import annotations

import ast
from pathlib import Path

import pix2pix

ROOT = Path(pix2pix.__file__).parent


def _module_name(path: Path) -> str:
    parts = ("pix2pix",) + path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_imports(tree: ast.Module) -> list[ast.AST]:
    """Import statements that run: those under ``if TYPE_CHECKING:`` are for type checkers only."""
    found = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and getattr(child.test, "id", None) == "TYPE_CHECKING":
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.append(child)
            visit(child)

    visit(tree)
    return found


def import_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports (at module level or inside functions alike)."""
    paths = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in _runtime_imports(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names if a.name in paths}
                continue
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                targets.add(full if full in paths else base)
        graph[name] = {t for t in targets if t in paths and t != name}
    return graph


def reaches(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_no_import_cycles():
    graph = import_graph()
    assert len(graph) > 30 and "pix2pix.training" in graph["pix2pix.cli.train"]
    cycles = sorted(m for m in graph if m in reaches(graph, m) and m != "pix2pix")
    assert cycles == [], cycles


def test_layers_run_one_way():
    graph = import_graph()
    below = {m: reaches(graph, m) for m in graph}
    assert {"pix2pix.inference.translate", "pix2pix.inference.backends"} <= below["pix2pix.app.models"]
    assert "pix2pix.inference.translate" in below["pix2pix.inference.export"]
    assert "pix2pix.networks" in below["pix2pix.inference.translate"]
    for low, high in [("pix2pix.inference.translate", "pix2pix.training.loop"),
                      ("pix2pix.inference.translate", "pix2pix.training.distributed"),
                      ("pix2pix.inference.translate", "pix2pix.app.models"), ("pix2pix.inference.export", "pix2pix.app.models"),
                      ("pix2pix.networks", "pix2pix.config"), ("pix2pix.config", "pix2pix.training.loop"),
                      ("pix2pix.checkpoints", "pix2pix.training.loop"), ("pix2pix.data.pairs", "pix2pix.training.distributed")]:
        assert high not in below[low], f"{low} imports {high}"


def _home(module: str) -> str:
    """The home a module belongs to: its subpackage (pix2pix.training.loop -> training), else itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "pix2pix"


def test_the_homes_import_one_way():
    """The subpackages and top-level modules form layers: networks and config at the bottom, data, checkpoints,
    inference, evaluation, training, the jobs that train (demo, ablation, bench), app and cli at the top; no home
    imports one above it, directly or round a loop."""
    homes: dict[str, set[str]] = {}
    for module, targets in import_graph().items():
        homes.setdefault(_home(module), set()).update(_home(t) for t in targets if _home(t) != _home(module))
    below = {h: reaches(homes, h) for h in homes}
    cycles = sorted(h for h in homes if h in below[h] and h != "pix2pix")
    assert cycles == [], cycles
    order = ["errors", "files", "networks", "config", "data", "checkpoints", "inference", "evaluation", "training",
             "demo", "app", "cli"]
    for i, low in enumerate(order):
        assert not set(order[i + 1:]) & below[low], f"{low} imports {set(order[i + 1:]) & below[low]}"


def test_training_reads_in_screens():
    """Training is functions a reader takes in at once: none over 60 lines, and the loop itself on one screen."""
    import ast

    longest = {}
    for path in (ROOT / "training").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                longest[f"{path.stem}.{node.name}"] = node.end_lineno - node.lineno + 1
    assert longest["loop.steps"] <= 40, longest["loop.steps"]
    assert {k: v for k, v in longest.items() if v > 60} == {}
