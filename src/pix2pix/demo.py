"""The main job (`pix2pix demo`): the procedural facades, a CPU-sized labels -> photo model trained for a
bounded time, its val translations, and a page with samples, loss curves and metrics.

The CPU configuration (chosen by measurement on a 2-core machine, see the README): 128x128 crops of the
256x256 dataset (resized to 143 and cropped, the paper's 286/256 jitter ratio), `unet_128` with ngf = ndf = 32,
batch 1, and as many epochs as fit the time budget. The paper's full recipe is
`pix2pix train --data DIR --preset facades` on a GPU.
"""

from __future__ import annotations

import html
import json
import shutil
import time
from pathlib import Path
from typing import Iterator

import numpy as np

from .config import RunConfig, cpu_recipe
from .data.pairs import PairDataset, scan_split
from .errors import Pix2PixError
from .files import write_text
from .evaluation.metrics import mean_image_l1, results_l1
from .inference.translate import natural_key, test_split
from .training.planning import size_to_minutes
from .training import train
from .training.runs import RunLock, read_log
from .pages import write_page

SAMPLES_ON_PAGE = 12


def demo_config(data: Path, out: Path, minutes: float, size: int = 128) -> RunConfig:
    """The demo's run: :func:`pix2pix.config.cpu_recipe` with the paper's schedule shape, half the epochs at a
    constant lr and half decaying to zero, sized so that it fits ``minutes`` on this machine (the time limit
    stays as a cap)."""
    return size_to_minutes(cpu_recipe(data, out, size), minutes)


DEMO_MARK = ".demo"  # written into a demo's run folder first: the folder a later demo may replace


def _clear_previous(out: Path) -> None:
    """The demo owns its run folder: a previous demo run there is replaced, under the run's lock (a demo never
    pulls a folder from under a process that is writing it); a training run, or anything else, is left alone."""
    _check_demo_folder(out)  # before anything is written into it
    out.mkdir(parents=True, exist_ok=True)
    lock = RunLock(out)
    lock.acquire()  # one line if another process holds it
    try:
        _check_demo_folder(out)  # again, now that nothing else can be writing it
        for p in [p for p in out.iterdir() if p.name != ".lock"]:
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
        (out / DEMO_MARK).write_text("a pix2pix demo run: 'pix2pix demo' replaces it\n")
    finally:
        lock.release()


def _check_demo_folder(out: Path) -> None:
    """One line unless ``out`` is absent, empty, or a demo's run folder."""
    if not out.exists():
        return
    entries = [p for p in out.iterdir() if p.name != ".lock"]
    demo = (out / DEMO_MARK).exists() or (out / "metrics.json").exists()
    if (out / "config.json").exists() and not demo:
        raise Pix2PixError(f"--out {out}: the folder holds a training run, not a demo; choose another --out")
    if entries and not demo:
        raise Pix2PixError(f"--out {out}: the folder holds something other than a demo run; choose another --out")


def run_demo(out: Path = Path("runs/demo"), data: Path = Path("datasets/facades-synth"), minutes: float = 8.0,
             size: int = 128, progress: bool = True) -> Iterator[str]:
    """Make the data if absent, train, translate the val split, write ``out/index.html`` and
    ``out/metrics.json``. Yields report lines as it goes."""
    from .datasets.facades_synth import make_facades_synth

    out, data = Path(out), Path(data)
    if not (data / "train").is_dir():
        t0 = time.perf_counter()
        make_facades_synth(data, progress=progress)
        yield f"made the procedural facades in {data} ({time.perf_counter() - t0:.0f} s)"
    else:
        yield f"using the procedural facades in {data}"
    _clear_previous(out)
    cfg = demo_config(data, out, minutes, size)
    t = cfg.train
    yield (f"training labels -> photo at {size}x{size} for {t.epochs} + {t.epochs_decay} epochs "
           f"(planned to fit {minutes:g} minutes here)...")
    result = train(cfg, progress=progress)
    yield f"trained {result.step} steps ({result.images / result.seconds:.1f} images/s) in {result.seconds:.0f} s"
    if result.validation:
        yield result.validation
    results_page = test_split(out, "val", progress=progress)
    metrics = {
        "val_l1": results_l1(out / "results" / "val"),
        "baseline_l1": _baseline_l1(cfg),
        "steps": result.step,
        "train_seconds": round(result.seconds, 1),
        "images_per_s": round(result.images / result.seconds, 2),
        "size": size,
        **_validation_figures(out),
        "generator": cfg.generator.arch, "ngf": cfg.generator.ngf, "ndf": cfg.discriminator.ndf,
    }
    write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    _write_demo_page(out, metrics, results_page)
    yield (f"val L1 {metrics['val_l1']:.4f} (always predicting the mean training photo: "
           f"{metrics['baseline_l1']:.4f})")
    yield f"page: {out / 'index.html'}"


def _validation_figures(out: Path) -> dict:
    """What validation during training found and cost (from val.csv): the best val L1, at which step, the last
    one, and the seconds it took in all."""
    rows = read_log(out / "val.csv")
    if not rows:
        return {}
    best = min(rows, key=lambda r: r["l1"])
    return {"val_runs": len(rows), "val_seconds": round(sum(r["seconds"] for r in rows), 1),
            "best_val_l1_during_training": round(best["l1"], 4), "best_step": int(best["step"]),
            "last_val_l1_during_training": round(rows[-1]["l1"], 4)}


def _baseline_l1(cfg: RunConfig) -> float:
    """L1 of the mean training photo against the val photos, at the resolution the model sees."""
    def targets(split: str):
        pairs, _ = scan_split(Path(cfg.data.root), split)
        ds = PairDataset(pairs, cfg.data, cfg.generator.in_channels, cfg.generator.out_channels, train=False)
        for i in range(len(ds)):
            yield (ds[i]["B"].permute(1, 2, 0).numpy().astype(np.float64) + 1) / 2

    return mean_image_l1(targets("train"), targets("val"))


# metrics.json's keys as the page names them, and how it writes their values.
DEMO_FIGURES = {
    "val_l1": ("val L1 of the final model: mean absolute error per pixel, values 0 to 1 (lower is better)", ".4f"),
    "baseline_l1": ("the same for always answering the mean training photo: the baseline to beat", ".4f"),
    "best_val_l1_during_training": ("best val L1 during training", ".4f"),
    "best_step": ("... at step", ",d"), "last_val_l1_during_training": ("last val L1 during training", ".4f"),
    "steps": ("training steps", ",d"), "train_seconds": ("training time, s", ".0f"),
    "images_per_s": ("images per second", ".1f"), "size": ("image side, pixels", "d"),
    "val_runs": ("validations during training", "d"), "val_seconds": ("time they took, s", ".1f"),
    "generator": ("generator", "s"), "ngf": ("its width (ngf)", "d"), "ndf": ("the discriminator's (ndf)", "d"),
}


def _write_demo_page(out: Path, metrics: dict, results_page: Path) -> None:
    """The demo's page: what it is, its figures in words, the run's curves, and the first val samples."""
    table = "".join(f"<tr><td>{html.escape(DEMO_FIGURES[k][0])}</td><td>{format(v, DEMO_FIGURES[k][1])}</td></tr>"
                    for k, v in metrics.items() if k in DEMO_FIGURES)
    curves = "<img class=plot src='web/curves.png' alt='loss and validation curves'>" \
        if (out / "web" / "curves.png").exists() else ""
    intro = (f"<p>Labels → photo on the procedural facades, trained on this machine's CPU. "
             f"<a href='{results_page.relative_to(out)}'>All val results</a> · "
             f"<a href='web/index.html'>training samples</a> · <code>tensorboard --logdir {out / 'tensorboard'}</code>"
             f"</p><table class=kv>{table}</table><div>{curves}</div>")
    images = sorted((out / "results" / "val" / "images").glob("*_output.png"), key=lambda p: natural_key(p.name))
    samples = []
    for p in images[:SAMPLES_ON_PAGE]:
        stem = p.stem.rsplit("_", 1)[0]
        samples.append((f"val {stem}", [(k, f"results/val/images/{stem}_{k}.png") for k in ("input", "output", "target")]))
    write_page(out / "index.html", "pix2pix demo: labels → photo (input | output | target)", samples, intro)
