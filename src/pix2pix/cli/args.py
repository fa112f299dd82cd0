"""Argument types and the flags several subcommands share."""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys

from .. import config as C
from ..config import DEVICES
from ..errors import Pix2PixError


def _number(kind, allow_zero: bool = False):
    """An argparse type: a number of ``kind`` that is > 0 (or >= 0 with ``allow_zero``)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, not {text}")
        if value < 0 or (value == 0 and not allow_zero):
            raise argparse.ArgumentTypeError(f"must be {'>=' if allow_zero else '>'} 0, not {text}")
        return value
    return parse


def port(text: str) -> int:
    value = _number(int)(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a port is 1 to 65535, not {text}")
    return value


def seed(text: str) -> int:
    value = _number(int, allow_zero=True)(text)
    if value > 2**63 - 1:
        raise argparse.ArgumentTypeError(f"a seed is 0 to {2**63 - 1}, not {text}")
    return value


def image_side(text: str) -> int:
    """A made image's side in pixels: 32 to 4096."""
    value = _number(int)(text)
    if not 32 <= value <= 4096:
        raise argparse.ArgumentTypeError(f"must be 32 to 4096 pixels, not {text}")
    return value


def positive(kind):
    return _number(kind)


def non_negative(kind):
    return _number(kind, allow_zero=True)


def add_device(p: argparse.ArgumentParser, default: str = "auto", choices=DEVICES) -> None:
    p.add_argument("--device", default=default, choices=choices, help=f"default {default}")


def add_engine(p: argparse.ArgumentParser) -> None:
    """``--engine`` and ``--no-fast`` (test, translate, eval)."""
    from ..inference.engines import ENGINES

    p.add_argument("--engine", choices=ENGINES, default="auto",
                   help="auto (default): the fastest engine for this device that repays its set-up on the work "
                        "at hand (on a CPU with bf16, the compiled engine from about a thousand unet_256 images' worth, else "
                        "PyTorch's bf16 fast path; on a CPU without bf16, ONNX Runtime fp32 from 32 images); "
                        "torch, compiled or onnxruntime to choose")
    p.add_argument("--no-fast", dest="fast", action="store_false",
                   help="PyTorch fp32 outputs bit for bit, as the reference computes them")


def checked_engine(args: argparse.Namespace) -> str:
    """``--engine``, refused in one line beside ``--no-fast`` unless it is PyTorch."""
    if not args.fast and args.engine not in ("auto", "torch"):
        raise Pix2PixError(f"--no-fast is PyTorch fp32 bit for bit: it goes with --engine torch, not {args.engine}")
    return args.engine


def add_seed(p: argparse.ArgumentParser, more: str = "") -> None:
    """``--seed`` of the paper's test-mode noise (test, translate, eval)."""
    p.add_argument("--seed", type=seed, help="PyTorch's dropout noise of this seed, in the paper's mode (default: "
                   "none: the engine's own noise, repeatable run after run)" + more)


def add_run_checkpoint(p: argparse.ArgumentParser) -> None:
    """``--checkpoint`` of a run (test, eval)."""
    p.add_argument("--checkpoint", default="latest", metavar="latest|best|NAME|FILE",
                   help="which of the run's checkpoints: latest (default), best (kept by validation), a snapshot "
                        "(epoch_005) or a checkpoint file")


def print_metrics(metrics: dict) -> None:
    """A scoring command's figures, one per line, named in words."""
    from ..evaluation.metrics import describe_metrics

    width = max(len(name) for name, _ in describe_metrics(metrics))
    for name, value in describe_metrics(metrics):
        print(f"{name + ':':<{width + 1}} {value}")


def print_rows(rows: list[dict], as_json: bool, header: str, line) -> int:
    """A listing command's output: the rows as a JSON list, or ``header`` and ``line(row)`` for each."""
    if as_json:
        import json

        print(json.dumps(rows, indent=2))
        return 0
    print(header)
    for r in rows:
        print(line(r))
    return 0


# ------------------------------------------------------------------------------- flags from config

SECTION_TITLES = {"generator": "model: generator", "discriminator": "model: discriminator", "data": "data",
                  "train": "objective, optimisation, schedule and logging"}
TYPES = {"int": int, "float": float, "str": str}  # by config.field_kind


def config_fields():
    """(section, field) of every configuration field, in declaration order."""
    for section, cls in C.SECTIONS.items():
        for f in dataclasses.fields(cls):
            yield section, f


def add_config_flags(p: argparse.ArgumentParser, only: set[tuple[str, str]] | None = None,
                     helps: dict[tuple[str, str], str] | None = None) -> None:
    """One flag per configuration field that has one (plus its switches, e.g. --no-flip), each defaulting to
    None ("not given"): defaults live in the dataclasses and presets, and the help says them. Every command
    that takes a configuration field (train, bench, translate) declares it here, from the field, so a flag has
    one name, type and set of choices everywhere; ``only`` picks the fields, ``helps`` says what a flag means
    to that command where that differs (no default is then shown: the command's own text says it)."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    for section, f in config_fields():
        if only is not None and (section, f.name) not in only:
            continue
        group = groups.get(section) or groups.setdefault(section, p.add_argument_group(SECTION_TITLES[section]))
        m, dest, own = f.metadata, f"{section}.{f.name}", (helps or {}).get((section, f.name))
        if m["flag"] is not None:
            flag = C.flag_of(section, f.name)
            default = "" if f.default is None or own else f" (default {f.default})"
            metavar = None if m["choices"] else flag[2:].upper().replace("-", "_")  # --ngf NGF, not the dest
            kind = _checked(TYPES[C.field_kind(f)], m["check"])
            group.add_argument(flag, dest=dest, choices=m["choices"], metavar=metavar, type=kind,
                               help=(own or m["help"]) + default)
            for old in m["aliases"]:  # an old spelling: still works, and says the new one
                group.add_argument(old, dest=dest, choices=m["choices"], type=kind, action=renamed(flag),
                                   help=argparse.SUPPRESS)
        for flag, value, help in m["switches"]:
            group.add_argument(flag, dest=dest, action="store_const", const=value, help=help)


def renamed(new: str) -> type[argparse.Action]:
    """The action of a flag's old spelling: store the value as the new flag would, and say the new name."""
    class Renamed(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):
            print(f"warning: {option_string} is now {new}; it still works", file=sys.stderr)
            setattr(namespace, self.dest, values)
    return Renamed


def _checked(kind, check: str | None):
    """An argparse type: ``kind``, within the field's declared range (config.CHECKS) where it has one."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {kind.__name__} value: '{text}'") from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, not {text}")
        if not C.CHECKS[check][0](value):
            raise argparse.ArgumentTypeError(f"must be {C.CHECKS[check][1]}, not {text}")
        return value
    return parse if check else kind


def given(args: argparse.Namespace) -> dict[tuple[str, str], object]:
    """The configuration fields the command line set: (section, field) -> value."""
    return {(s, f.name): getattr(args, f"{s}.{f.name}") for s, f in config_fields()
            if getattr(args, f"{s}.{f.name}", None) is not None}


def apply_flags(cfg: C.RunConfig, values: dict) -> None:
    for (section, name), value in values.items():
        setattr(getattr(cfg, section), name, value)
