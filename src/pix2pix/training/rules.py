"""The rules of going on from earlier training, where every caller meets them (the CLI and Python alike):

* a resume (:func:`resumed_config`, :func:`check_resume`) may change how long and where a run goes on (the
  fields declared ``resumable``), never what it is;
* fine-tuning (``--init-from``, :func:`fine_tune`) inherits what the source's weights were trained for: the
  generator's architecture and channels (which must match; pix2pixHD's ``local`` generator may start from a
  ``global`` one of twice its width), the discriminator's where not stated, and the
  data's direction and sizes where not stated; the scalings come with the weights
  (:func:`pix2pix.checkpoints.checkpoint_scales`). What it took is said in one line; a conflict is one line.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..checkpoints import load_checkpoint
from ..config import SECTIONS, RunConfig, flag_of, resolve, session_fields
from ..errors import Pix2PixError

Key = tuple[str, str]  # (section, field)


def resumable(key: Key) -> bool:
    section, name = key
    return next(f for f in dataclasses.fields(SECTIONS[section]) if f.name == name).metadata["resumable"]


def resumed_config(run_dir: Path, changes: dict[Key, object]) -> RunConfig:
    """The run's own configuration (config.json) with ``changes``, which may touch only resumable fields."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        what = "a file" if run_dir.exists() else "no such folder"
        raise Pix2PixError(f"--resume {run_dir}: {what}; name a run folder (runs/NAME)")
    cfg = RunConfig.load(run_dir / "config.json")
    for section, name in session_fields():  # a limit an older version recorded was one session's, not the run's
        setattr(getattr(cfg, section), name, None)
    for key in changes:
        if not resumable(key):
            raise _not_resumable(flag_of(*key), run_dir)
    for (section, name), value in changes.items():
        setattr(getattr(cfg, section), name, value)
    absolute_files(cfg)
    cfg.out, cfg.name = str(run_dir.parent), run_dir.name
    return resolve(cfg)


def check_resume(cfg: RunConfig, stored: RunConfig, run_dir: Path) -> None:
    """A configuration handed to a resume must be the stored one but for resumable fields (one line if not)."""
    for section in SECTIONS:
        for f in dataclasses.fields(SECTIONS[section]):
            mine, theirs = getattr(getattr(cfg, section), f.name), getattr(getattr(stored, section), f.name)
            if not f.metadata["resumable"] and mine != theirs:
                raise _not_resumable(f"{flag_of(section, f.name)} {mine}", run_dir, f" (it was {theirs})")


def _not_resumable(what: str, run_dir: Path, was: str = "") -> Pix2PixError:
    allowed = ", ".join(sorted({flag_of(s, f.name) for s, cls in SECTIONS.items() for f in dataclasses.fields(cls)
                                if f.metadata["resumable"] and f.metadata["flag"] is not None}))
    return Pix2PixError(f"{what} cannot change when resuming {run_dir}{was}; only {allowed} can")


def absolute_files(cfg: RunConfig) -> None:
    """The data root, the validation's segmenter and Inception file and the VGG19 weights as absolute paths, so
    that --resume finds them from anywhere."""
    if cfg.data.root:
        cfg.data.root = str(Path(cfg.data.root).resolve())
    for name in ("segmenter", "inception", "vgg"):
        if getattr(cfg.train, name):
            setattr(cfg.train, name, str(Path(getattr(cfg.train, name)).resolve()))


# What fine-tuning takes from the source's record of its data, where not stated: (field, also needs unstated).
DATA_INHERITED = (("direction", ()), ("crop_size", ()), ("load_size", (("data", "crop_size"),)))


def fine_tune(cfg: RunConfig, stated: set[Key] | None = None) -> RunConfig:
    """Fill ``cfg`` (whose ``train.init_from`` names the source) with what the source was trained for; returns
    it. ``stated``: the fields the caller chose (the CLI's flags); None takes every field that still has its
    default as not chosen. A stated generator field that differs from the source's is one line; stated data
    fields win over the source's. :func:`source_said` says what the run then takes from the source."""
    ckpt = load_checkpoint(Path(cfg.train.init_from))
    cfg.train.init_from = str(ckpt.path.resolve())
    stated = _non_default(cfg) if stated is None else set(stated)
    # pix2pixHD's second stage: a local generator around the source's global one, of half its width.
    staged = cfg.generator.arch == "local" and ckpt.generator.arch == "global" and ("generator", "arch") in stated
    if staged and ckpt.generator.ngf % 2:
        raise Pix2PixError(f"--init-from {ckpt.path}: its global generator's --ngf {ckpt.generator.ngf} is odd; a "
                           "local generator holds a global one of twice its own width")
    for section, source in (("generator", ckpt.generator), ("discriminator", ckpt.discriminator)):
        for f in dataclasses.fields(source) if source is not None else ():
            if section == "discriminator" and f.name == "in_channels":
                continue  # derived from the objective
            theirs, mine = getattr(source, f.name), getattr(getattr(cfg, section), f.name)
            if staged and section == "generator" and f.name in ("arch", "ngf"):
                theirs = {"arch": "local", "ngf": ckpt.generator.ngf // 2}[f.name]
            if (section, f.name) in stated and mine != theirs and section == "generator":
                raise Pix2PixError(f"--init-from {ckpt.path}: its generator has {flag_of(section, f.name)} "
                                   f"{theirs}, not {mine}")
            if (section, f.name) not in stated:
                setattr(getattr(cfg, section), f.name, theirs)
    data = _source_data(ckpt.meta)
    for name, needs in DATA_INHERITED:
        if name in data and ("data", name) not in stated and not any(k in stated for k in needs):
            setattr(cfg.data, name, data[name])
    return cfg


def source_said(cfg: RunConfig) -> str | None:
    """One line: what a fine-tuning run trains with that is the source's and not the paper's default (the
    generator, the data's direction and sizes, ...), or None."""
    ckpt = load_checkpoint(Path(cfg.train.init_from))
    data = _source_data(ckpt.meta)
    default = RunConfig()
    default.generator.arch = cfg.generator.arch  # its family's defaults (pix2pixHD's instance norm, no dropout)
    default = resolve(default)
    default.generator.arch = RunConfig().generator.arch  # and the architecture against the paper's
    mine = [("generator", f.name, getattr(ckpt.generator, f.name)) for f in dataclasses.fields(ckpt.generator)]
    mine += [("data", name, data[name]) for name, _ in DATA_INHERITED if name in data]
    took = [f"{flag_of(s, n)} {v}" for s, n, v in mine
            if getattr(getattr(cfg, s), n) == v != getattr(getattr(default, s), n)]
    return f"--init-from {ckpt.path}: trains with its {', '.join(took)}" if took else None


def _source_data(meta: dict) -> dict:
    """The source's data settings: its run configuration's (ours), or a published model's direction."""
    if meta.get("config"):
        return dict(meta["config"].get("data") or {})
    if meta.get("published"):
        return {"direction": meta["published"]["direction"]}
    return {}


def _non_default(cfg: RunConfig) -> set[Key]:
    fresh = RunConfig()
    return {(s, f.name) for s in SECTIONS for f in dataclasses.fields(SECTIONS[s])
            if getattr(getattr(cfg, s), f.name) != getattr(getattr(fresh, s), f.name)}
