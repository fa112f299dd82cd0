"""Typed configuration. Every default is the paper's (or the reference's where the paper is silent).

Each component receives only its own slice: networks get :class:`GeneratorConfig` /
:class:`DiscriminatorConfig`, data loading gets :class:`DataConfig`, the training loop gets
:class:`TrainConfig`. :class:`RunConfig` bundles them and is written to ``runs/NAME/config.json``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import Pix2PixError

OBJECTIVES = ("l1", "gan", "cgan", "l1+gan", "l1+cgan")
GAN_LOSSES = ("vanilla", "lsgan", "hinge", "wgangp")
NORMS = ("batch", "instance", "none")
DIRECTIONS = ("AtoB", "BtoA")
def jittered_load_size(crop_size: int) -> int:
    """The paper's resize before the random crop, scaled to ``crop_size``: 286 for 256, 143 for 128."""
    return round(crop_size * 286 / 256)


PRELOAD = ("auto", "yes", "no")
PREPROCESS = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")
INITS = ("normal", "xavier", "kaiming", "orthogonal")
DROPOUT_PLACEMENTS = ("paper", "reference")


@dataclass
class GeneratorConfig:
    arch: str = "unet_256"
    in_channels: int = 3
    out_channels: int = 3
    ngf: int = 64
    norm: str = "batch"
    dropout: float = 0.5  # 0 turns dropout off (--no-dropout)
    # "paper": decoder layers at 2x2, 4x4, 8x8 (paper, Lua); "reference": 4x4, 8x8, 16x16 (junyanz PyTorch).
    dropout_placement: str = "paper"


@dataclass
class DiscriminatorConfig:
    arch: str = "patch70"
    in_channels: int = 6  # A and B concatenated for a conditional D; B alone for an unconditional one
    ndf: int = 64
    norm: str = "batch"


@dataclass
class DataConfig:
    root: str = ""
    direction: str = "AtoB"
    load_size: int = 286
    crop_size: int = 256
    preprocess: str = "resize_and_crop"
    flip: bool = True
    batch_size: int = 1
    workers: int = 2
    skip_bad_images: bool = False
    # Hold the training split, decoded and resized, on the training device: "auto" on the fast path when it
    # fits (a quarter of free GPU memory, an eighth of RAM), "yes", or "no" (loader processes).
    preload: str = "auto"


@dataclass
class TrainConfig:
    objective: str = "l1+cgan"
    gan_loss: str = "vanilla"
    lambda_l1: float = 100.0
    lambda_gp: float = 10.0  # only for --gan-loss wgangp
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    epochs: int = 100  # at constant lr
    epochs_decay: int = 100  # then linear decay to zero
    max_steps: int | None = None
    max_minutes: float | None = None  # stop (and save) once training has run this long
    seed: int = 0
    device: str = "auto"
    init: str = "normal"
    init_gain: float = 0.02
    log_every: int = 100  # steps between loss reads (each read is a host sync)
    sample_every: int = 400  # steps between sample images on the web page and in TensorBoard
    snapshot_every: int = 5  # epochs between kept snapshots (0: only latest)
    save_every: int = 5000  # steps between saves of latest (it is also saved at each epoch's end)
    fast: bool = True  # the fast path (speed.py); False: the plain fp32 eager step (--no-fast)


@dataclass
class RunConfig:
    name: str = "pix2pix"
    out: str = "runs"
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @property
    def run_dir(self) -> Path:
        return Path(self.out) / self.name

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        return cls(
            name=d["name"],
            out=d["out"],
            generator=_build(GeneratorConfig, d["generator"]),
            discriminator=_build(DiscriminatorConfig, d["discriminator"]),
            data=_build(DataConfig, d["data"]),
            train=_build(TrainConfig, d["train"]),
        )

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> RunConfig:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except FileNotFoundError:
            raise Pix2PixError(f"{path}: no such file; is this a run folder made by 'pix2pix train'?") from None
        except (ValueError, KeyError, TypeError) as e:
            raise Pix2PixError(f"{path}: not a valid pix2pix run configuration ({e})") from None


def _build(cls, d: dict[str, Any]):
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in names})


# The paper's per-dataset settings (appendix 6.2). 200 epochs are split 100 constant + 100 decaying as in
# the reference PyTorch scripts; the short large-dataset schedules keep the Lua code's constant lr.
PRESETS: dict[str, dict[str, Any]] = {
    "facades": dict(direction="BtoA", epochs=100, epochs_decay=100, batch_size=1),
    "cityscapes": dict(direction="BtoA", epochs=100, epochs_decay=100, batch_size=1),
    "maps": dict(direction="AtoB", epochs=100, epochs_decay=100, batch_size=1),
    "edges2shoes": dict(direction="AtoB", epochs=15, epochs_decay=0, batch_size=4, load_size=256, flip=False),
    "edges2handbags": dict(direction="AtoB", epochs=15, epochs_decay=0, batch_size=4, load_size=256, flip=False),
    "night2day": dict(direction="AtoB", epochs=17, epochs_decay=0, batch_size=4),
}
