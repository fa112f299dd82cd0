"""Typed configuration: every default is the paper's (or the reference's where the paper is silent).

This module owns the configuration. Each field is declared once, with its default, its command-line flag,
its help text and its valid values (the field's ``metadata``): the CLI builds its flags from these
declarations, and :func:`resolve` checks every field against them, derives the values that depend on others
(D's input channels, the jitter size), and returns exactly what is written to ``config.json`` and into every
checkpoint. Each component receives only its own slice: networks get :class:`GeneratorConfig` /
:class:`DiscriminatorConfig`, data loading :class:`DataConfig`, the training step :class:`LossConfig`, the
loop :class:`TrainConfig`. Recipes (the paper's per-dataset presets, the CPU recipe of the demo and the
ablations) sit at the end.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .errors import Pix2PixError
from .files import write_text
from .networks import (build_discriminator, build_generator, canonical_discriminator, check_size, family_default,
                       family_settings)

OBJECTIVES = ("l1", "gan", "cgan", "l1+gan", "l1+cgan")
GAN_LOSSES = ("vanilla", "lsgan", "hinge", "wgangp")
NORMS = ("batch", "instance", "none")
D_NORMS = ("batch", "instance", "layer", "none")
DIRECTIONS = ("AtoB", "BtoA")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRELOAD = ("auto", "yes", "no")
PREPROCESS = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")
INITS = ("normal", "xavier", "kaiming", "orthogonal")
DROPOUT_PLACEMENTS = ("paper", "reference")
NORMALIZE = ("auto", "minmax", "meanstd", "none")  # --normalize (pix2pix.data.units); auto: by bit depth, else minmax
MAX_SEED = 2**63 - 1
MAX_CHANNELS = 1024  # bands of an array; an image file holds 1, 3 or 4 (pix2pix.data.rasters)
MAX_WIDTH = 4096  # ngf / ndf: the paper's is 64; a network is also bounded by its parameter count (networks)
MAX_SIDE = 65536  # a crop or load size in pixels
MAX_BATCH = 65536
MAX_WORKERS = 256
MAX_SCALES = 5  # --num-d: each scale halves the input


def option(default: Any, help: str, *, flag: str | None = "", choices: tuple | None = None,
           check: str | None = None, switches: tuple = (), resumable: bool = False, session: bool = False,
           aliases: tuple = ()):
    """A configuration field and everything the CLI and :func:`resolve` need to know about it.

    ``flag``: the command-line flag ("" derives ``--field-name``; None: no flag of its own). ``aliases``: its
    old spellings, still accepted with a warning that names the new one. ``choices``: the
    valid values. ``check``: a range, one of ``CHECKS``. ``switches``: extra flags that store a constant,
    ``(flag, value, help)``, e.g. ``--no-flip``.
    ``resumable``: the flag may change when a run is resumed (how long and where it runs, not what it is).
    ``session``: a limit of one session (``--max-steps``, ``--minutes``), not of the run: it is not recorded
    in config.json or checkpoints, so a later resume runs to the schedule's end unless it is given again.
    """
    meta = dict(help=help, flag=flag, choices=choices, check=check, switches=switches, resumable=resumable or session,
                session=session, aliases=aliases)
    return field(default=default, metadata=meta)


# Range checks by name: (test, how the message says it).
CHECKS = {
    "positive": (lambda v: v > 0, "> 0"),
    # Bounds on what a user can type that the machine would otherwise try to allocate before any check.
    "channels": (lambda v: 0 < v <= MAX_CHANNELS, f"in 1..{MAX_CHANNELS}"),
    "width": (lambda v: 0 < v <= MAX_WIDTH, f"in 1..{MAX_WIDTH}"),
    "side": (lambda v: 0 < v <= MAX_SIDE, f"in 1..{MAX_SIDE}"),
    "batch": (lambda v: 0 < v <= MAX_BATCH, f"in 1..{MAX_BATCH}"),
    "workers": (lambda v: 0 <= v <= MAX_WORKERS, f"in 0..{MAX_WORKERS}"),
    "non_negative": (lambda v: v >= 0, ">= 0"),
    "rate": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "seed": (lambda v: 0 <= v <= MAX_SEED, f"an integer in [0, {MAX_SEED}]"),
    "scales": (lambda v: 0 < v <= MAX_SCALES, f"in 1..{MAX_SCALES}"),
    "classes": (lambda v: 0 <= v <= MAX_CHANNELS, f"in 0..{MAX_CHANNELS}"),
}


@dataclass
class GeneratorConfig:
    arch: str = option("unet_256", "unet_256, unet_128, unet_N, encoder_decoder_N, resnet_9blocks, resnet_Kblocks; "
                       "pix2pixHD's global and local", flag="--generator")
    in_channels: int = option(3, "input image channels", check="channels")
    out_channels: int = option(3, "output image channels", check="channels")
    ngf: int = option(64, "generator width", check="width")
    # None: the generator family's (networks.FAMILY_DEFAULTS), filled in by resolve().
    norm: str | None = option(None, "normalisation of G (and of D, unless --norm-d) (default: batch; instance for "
                              "global/local)", choices=NORMS)
    dropout: float | None = option(None, "dropout rate in G (default: 0.5; 0 for global/local)", check="rate",
                                   switches=(("--no-dropout", 0.0, "no dropout in G"),))
    dropout_placement: str = option("paper", "paper: decoder at 2x2/4x4/8x8; reference: 4x4/8x8/16x16",
                                    choices=DROPOUT_PLACEMENTS)
    label_nc: int = option(0, "the input is a map of class indices 0..N-1, fed as N one-hot channels (pix2pixHD's "
                           "--label_nc; 35 for Cityscapes' labelIds); 0: an image", check="classes")
    instance: bool = option(False, "", flag=None, switches=(
        ("--instance", True, "with --label-nc: the input's second channel is an instance-id map, fed as its "
                             "boundaries"),))


@dataclass
class DiscriminatorConfig:
    # None: the generator family's (patch70; multiscale for global/local), filled in by resolve().
    arch: str | None = option(None, "patch70, pixel, patch16, patch34, patch142, patch286, multiscale; or the "
                              "reference's basic / n_layers (default: patch70; multiscale for global/local)",
                              flag="--discriminator")
    # Derived by resolve(): A and B concatenated for a conditional D, B alone for an unconditional one.
    in_channels: int = option(6, "", flag=None, check="positive")
    ndf: int = option(64, "discriminator width", check="width")
    # None: --norm's, except for a WGAN-GP critic, which gets layer norm (filled in by resolve()).
    norm: str | None = option(None, "normalisation of D (default: --norm's; layer for --gan-loss wgangp)",
                              flag="--norm-d", choices=D_NORMS)
    num_d: int = option(2, "scales of --discriminator multiscale (pix2pixHD's --num_D)", check="scales")
    # Derived by resolve(): a conditional D on class maps reads the generator's input as the generator does.
    label_nc: int = option(0, "", flag=None, check="classes")
    instance: bool = option(False, "", flag=None)


@dataclass
class DataConfig:
    root: str = option("", "", flag=None)
    direction: str = option("AtoB", "AtoB or BtoA", choices=DIRECTIONS)
    # None: the paper's 286/256 of --crop-size (286 for 256), filled in by resolve().
    load_size: int | None = option(None, "resize to this before cropping (default: 286/256 of --crop-size); "
                                   "with --preprocess scale_width, the width (the height keeps the aspect)",
                                   check="side")
    crop_size: int = option(256, "random crop size", check="side")
    preprocess: str = option("resize_and_crop", "resize_and_crop is the paper's jitter", choices=PREPROCESS)
    flip: bool = option(True, "", flag=None, switches=(("--no-flip", False, "no random horizontal flip"),))
    batch_size: int = option(1, "images per step (per process under torchrun)", check="batch")
    workers: int = option(2, "data loader processes", check="workers", resumable=True)
    skip_bad_images: bool = option(False, "", flag=None, switches=(
        ("--skip-bad-images", True, "skip unreadable images (and report them) instead of stopping"),))
    # Hold the training split, decoded and resized, on the training device: "auto" on the fast path when it
    # fits (a quarter of free GPU memory, an eighth of RAM), "yes", or "no" (loader processes).
    preload: str = option("auto", "hold the decoded training split on the device: auto (fast path, when it "
                          "fits), yes, no", choices=PRELOAD, resumable=True)
    # How each side's values map to [-1, 1] (pix2pix.data.units): the statistics are computed over the training
    # split when a run starts and stored in every checkpoint.
    normalize: str = option("auto", "how values map to [-1, 1]: auto (8- and 16-bit images: their full range; "
                            "other data: minmax), minmax, meanstd (per channel, over the training split), none",
                            choices=NORMALIZE)
    # Derived by resolve() from --label-nc: the input side is a class map (resized nearest, read as it is).
    label_nc: int = option(0, "", flag=None, check="classes")


@dataclass(frozen=True)
class LossConfig:
    """What the training step needs from the configuration: the objective's terms and weights."""

    objective: str
    gan_loss: str
    lambda_l1: float
    lambda_gp: float
    lambda_feat: float = 0.0  # feature matching, where D gives its features (multiscale)
    lambda_vgg: float = 0.0  # the VGG19 perceptual loss, where --vgg gives its weights

    @property
    def conditional(self) -> bool:
        """A conditional D sees (x, y); an unconditional one y alone."""
        return self.objective.endswith("cgan")

    @property
    def uses_gan(self) -> bool:
        return self.objective != "l1"

    @property
    def uses_l1(self) -> bool:
        return self.objective.startswith("l1")


# The validation scores --best-metric may keep the best checkpoint by: which way each is better, and the option
# that the ones beyond L1, PSNR and SSIM need.
BETTER = {"l1": "lower", "psnr": "higher", "ssim": "higher", "per_pixel_acc": "higher", "per_class_acc": "higher",
          "class_iou": "higher", "fid": "lower", "kid": "lower"}
NEEDS = {"per_pixel_acc": "segmenter", "per_class_acc": "segmenter", "class_iou": "segmenter", "fid": "inception",
         "kid": "inception"}
NEEDS_HOW = {"segmenter": "a segmenter file: make one with 'pix2pix segmenter train'",
             "inception": "inception-2015-12-05.pt, StyleGAN2-ADA's metrics file"}


@dataclass
class TrainConfig:
    # None: the paper's l1+cgan; with a multiscale D pix2pixHD's cgan (and feature matching), filled in by resolve().
    objective: str | None = option(None, "loss terms (the rows of the paper's Table 1) (default: l1+cgan; cgan with "
                                   "--discriminator multiscale, whose feature matching stands in for L1)",
                                   choices=OBJECTIVES)
    gan_loss: str | None = option(None, "adversarial loss (default: vanilla; lsgan with --discriminator "
                                  "multiscale)", choices=GAN_LOSSES)
    lambda_l1: float = option(100.0, "weight of the L1 term", check="non_negative")
    lambda_gp: float = option(10.0, "gradient-penalty weight for --gan-loss wgangp", check="non_negative")
    lambda_feat: float = option(10.0, "weight of feature matching on a multiscale D's features (pix2pixHD's)",
                                check="non_negative")
    vgg: str | None = option(None, "add pix2pixHD's VGG19 perceptual loss, with this file of VGG19 weights "
                             "(torchvision's vgg19 layout: .pth or .safetensors)")
    lambda_vgg: float = option(10.0, "weight of the VGG19 loss (pix2pixHD's lambda_feat)", check="non_negative")
    fix_global_epochs: int = option(0, "a local generator from --init-from trains only its enhancer for this many "
                                    "epochs, then all of G (pix2pixHD's --niter_fix_global)", check="non_negative")
    lr: float = option(2e-4, "Adam learning rate", check="positive")
    beta1: float = option(0.5, "Adam beta1", check="rate")
    beta2: float = option(0.999, "Adam beta2", check="rate")
    epochs: int = option(100, "epochs at constant lr (a resume may lengthen the schedule)", check="non_negative",
                         resumable=True)
    epochs_decay: int = option(100, "then epochs of linear decay to 0", check="non_negative", resumable=True)
    max_steps: int | None = option(None, "stop this session at this optimizer step (not recorded: a resume "
                                   "goes on to the schedule's end)", check="positive", session=True)
    max_minutes: float | None = option(None, "stop this session (and save) after this much training time (not "
                                       "recorded); with --preset cpu it also sizes the schedule",
                                       flag="--minutes", aliases=("--max-minutes",), check="positive", session=True)
    seed: int = option(0, "seed for init, data order, jitter and dropout", check="seed")
    device: str = option("auto", "where to train", choices=DEVICES, resumable=True)
    init: str = option("normal", "weight init (normal: N(0, --init-gain))", choices=INITS)
    # A new run (step 0, fresh optimizers and schedule) whose G, and D where the file has a matching one, start
    # from a checkpoint's weights: fine-tuning. Recorded as the file that was read.
    init_from: str | None = option(None, "start G (and D) from this checkpoint's weights: a run folder, "
                                   ".safetensors, reference .pth or a published model's name")
    init_gain: float = option(0.02, "init scale", check="positive")
    log_every: int = option(100, "steps between loss logs (each is a host sync)", check="positive", resumable=True)
    sample_every: int = option(400, "steps between sample images", check="positive", resumable=True)
    snapshot_every: int = option(5, "epochs between kept snapshots (0: only latest)", check="non_negative",
                                 resumable=True)
    save_every: int = option(5000, "steps between saves of latest (also saved at each epoch's end)",
                             check="positive", resumable=True)
    val_every: int | None = option(None, "steps between validations (default: each epoch's end when the data has "
                                   "a val split; 0: none)", check="non_negative", resumable=True)
    val_images: int | None = option(None, "validate on the first K val images (default: all, fewer when that "
                                    "would cost over a tenth of the training time)", check="positive", resumable=True)
    best_metric: str = option("l1", "keep checkpoints/best.safetensors by this val score (l1, fid, kid: lower is "
                              "better; psnr, ssim and the FCN-scores per_pixel_acc, per_class_acc, class_iou: "
                              "higher)", choices=tuple(BETTER))
    segmenter: str | None = option(None, "a segmenter file ('pix2pix segmenter train'): validation adds the "
                                   "FCN-score", resumable=True)
    inception: str | None = option(None, "a TorchScript Inception file (inception-2015-12-05.pt): validation adds "
                                   "FID and KID", resumable=True)
    fast: bool = option(True, "", flag=None, resumable=True, switches=(
        ("--no-fast", False, "the plain fp32 eager step instead of the fast path (bf16 autocast, fused Adam, ...)"),))

    @property
    def loss(self) -> LossConfig:
        """The step's terms. Unset ``objective`` and ``gan_loss`` (before :func:`resolve` gives them the family's) are
        the paper's."""
        return LossConfig(self.objective or "l1+cgan", self.gan_loss or "vanilla", self.lambda_l1, self.lambda_gp,
                          self.lambda_feat, self.lambda_vgg if self.vgg else 0.0)


SECTIONS = {"generator": GeneratorConfig, "discriminator": DiscriminatorConfig, "data": DataConfig,
            "train": TrainConfig}


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

    def record(self) -> dict[str, Any]:
        """What config.json and checkpoints hold: :meth:`to_dict` without one session's limits."""
        d = self.to_dict()
        for section, name in session_fields():
            d[section][name] = None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "run configuration") -> RunConfig:
        """From ``to_dict``'s form (config.json, a checkpoint's metadata). Missing fields take their defaults
        (files written before a field existed); an unknown key is one line naming it and ``where``."""
        _no_unknown_keys(d, {"name", "out", *SECTIONS}, where, "")
        return cls(name=d.get("name", "pix2pix"), out=d.get("out", "runs"),
                   **{s: section_from_dict(c, d.get(s, {}), where, s) for s, c in SECTIONS.items()})

    def copy(self) -> RunConfig:
        return RunConfig.from_dict(self.to_dict())

    def save(self, path: Path) -> None:
        """Write :meth:`record` as JSON, atomically (a full disk or a kill leaves the previous file)."""
        write_text(path, json.dumps(self.record(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> RunConfig:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()), str(path))
        except FileNotFoundError:
            raise Pix2PixError(f"{path}: no such file; is this a run folder made by 'pix2pix train'?") from None
        except (ValueError, KeyError, TypeError) as e:
            raise Pix2PixError(f"{path}: not a valid pix2pix run configuration ({e})") from None


def section_from_dict(cls, d: Any, where: str, section: str):
    """A configuration section (``GeneratorConfig``, ...) from a JSON object read from ``where``."""
    _no_unknown_keys(d, {f.name for f in dataclasses.fields(cls)}, where, section + ".")
    return cls(**d)


def _no_unknown_keys(d: Any, known: set[str], where: str, prefix: str) -> None:
    if not isinstance(d, dict):
        raise Pix2PixError(f"{where}: '{prefix.rstrip('.') or 'the configuration'}' is not a JSON object")
    unknown = sorted(set(d) - known)
    if unknown:
        raise Pix2PixError(f"{where}: unknown key '{prefix}{unknown[0]}' (written by another version of pix2pix, "
                           "or edited by hand?)")


def session_fields() -> list[tuple[str, str]]:
    """(section, field) of each limit that belongs to one session (``option(session=True)``)."""
    return [(s, f.name) for s, cls in SECTIONS.items() for f in dataclasses.fields(cls) if f.metadata.get("session")]


def flag_of(section: str, name: str) -> str:
    """The command-line flag of a field, for messages (``--crop-size``)."""
    return _flag(section, next(f for f in dataclasses.fields(SECTIONS[section]) if f.name == name))


def field_kind(f: dataclasses.Field) -> str:
    """``int``, ``float``, ``str`` or ``bool``: a field's type without its ``| None``."""
    return str(f.type).replace(" | None", "")


def _flag(section: str, f: dataclasses.Field) -> str:
    name, flag = f.name, f.metadata.get("flag", "")
    if flag is None:
        switches = f.metadata.get("switches") or ()
        return switches[0][0] if switches else f"{section}.{name}"
    return flag or "--" + name.replace("_", "-")


# ------------------------------------------------------------------------------------------ resolve


def settled(g: GeneratorConfig) -> GeneratorConfig:
    """``g`` with its unset norm and dropout given its family's defaults (what :func:`resolve` does to them), for a
    generator configuration met on its own: a checkpoint's, or one a caller built without a run."""
    norm, dropout = family_settings(g)
    return dataclasses.replace(g, norm=norm, dropout=dropout)


def jittered_load_size(crop_size: int) -> int:
    """The paper's resize before the random crop, scaled to ``crop_size``: 286 for 256, 143 for 128."""
    return round(crop_size * 286 / 256)


def resolve(cfg: RunConfig) -> RunConfig:
    """Check every field and derive the dependent ones, in place; returns ``cfg``. Idempotent: a resolved
    configuration (what config.json and checkpoints hold) resolves to itself. Every problem is one line."""
    for section in SECTIONS:
        check_section(section, getattr(cfg, section))
    if not cfg.name or cfg.name in (".", "..") or "/" in cfg.name or "\\" in cfg.name:
        raise Pix2PixError(f"--name {cfg.name!r}: a run's name is one folder name inside --runs (no '/', '..')")
    g, d, data, t = cfg.generator, cfg.discriminator, cfg.data, cfg.train
    # The family's defaults (networks.FAMILY_DEFAULTS) where a field is unset.
    g.norm, g.dropout = family_settings(g)
    if d.arch is None:
        d.arch = family_default("discriminator", g.arch)
    d.arch = canonical_discriminator(d.arch)
    hd = d.arch == "multiscale"  # pix2pixHD's losses come with its D: LSGAN, feature matching instead of L1
    if t.objective is None:
        t.objective = "cgan" if hd else "l1+cgan"
    if t.gan_loss is None:
        t.gan_loss = "lsgan" if hd else "vanilla"
    loss = t.loss
    # Derived values: what D sees and the size the jitter resizes to.
    d.in_channels = g.in_channels + g.out_channels if loss.conditional else g.out_channels
    d.label_nc, d.instance = (g.label_nc, g.instance) if loss.conditional else (0, False)
    data.label_nc = g.label_nc
    _check_classes(cfg)
    if data.load_size is None:
        data.load_size = jittered_load_size(data.crop_size)
    wgangp = loss.uses_gan and loss.gan_loss == "wgangp"
    if d.norm is None:
        d.norm = "layer" if wgangp else g.norm  # Gulrajani et al.: "layer normalization as a drop-in replacement"
    elif wgangp and d.norm == "batch":
        raise Pix2PixError("--norm-d batch: a WGAN-GP critic cannot use batch norm (its per-sample gradient "
                           "penalty is ill-defined when each output depends on the whole batch); use --norm-d "
                           "layer (the default for wgangp), instance or none (a wgangp run saved before --norm-d "
                           "existed has a batch-norm critic: start it again)")
    if wgangp and d.arch == "multiscale":
        raise Pix2PixError("--gan-loss wgangp: its gradient penalty is built for one PatchGAN, not --discriminator "
                           "multiscale; use lsgan (pix2pixHD's), vanilla or hinge")
    if t.fix_global_epochs and g.arch != "local":
        raise Pix2PixError(f"--fix-global-epochs {t.fix_global_epochs}: only a --generator local has a global part "
                           f"to hold fixed, not {g.arch}")
    if t.fix_global_epochs and not t.init_from:
        raise Pix2PixError(f"--fix-global-epochs {t.fix_global_epochs}: the global part held fixed is a trained one; "
                           "give --init-from a global run (pix2pixHD's first stage)")
    if t.vgg and g.out_channels != 3:
        raise Pix2PixError(f"--vgg: the VGG19 loss compares RGB images, and this generator writes {g.out_channels} "
                           "channel(s)")
    _check_architectures(cfg)
    if data.preprocess == "resize_and_crop" and data.crop_size > data.load_size:
        raise Pix2PixError(f"--crop-size {data.crop_size} is larger than --load-size {data.load_size}")
    need = NEEDS.get(cfg.train.best_metric)
    if need and getattr(cfg.train, need) is None:
        raise Pix2PixError(f"--best-metric {cfg.train.best_metric} needs {flag_of('train', need)} FILE "
                           f"({NEEDS_HOW[need]})")
    if cfg.train.epochs + cfg.train.epochs_decay == 0:
        raise Pix2PixError("--epochs and --epochs-decay are both 0: nothing to train")
    return cfg


def _check_classes(cfg: RunConfig) -> None:
    """--label-nc and --instance against the input channels and the data's scaling."""
    g = cfg.generator
    if g.instance and not g.label_nc:
        raise Pix2PixError("--instance: the instance map comes with a class map; give --label-nc N too")
    if g.label_nc and g.in_channels != 1 + g.instance:
        raise Pix2PixError(f"--label-nc {g.label_nc}: the input is {1 + g.instance} channel(s) (class index"
                           f"{', instance id' if g.instance else ''}), so --in-channels {1 + g.instance}, "
                           f"not {g.in_channels}")
    if g.label_nc and cfg.data.normalize not in ("auto", "none"):
        raise Pix2PixError(f"--normalize {cfg.data.normalize}: a class map's indices are read as they are "
                           "(--label-nc); leave --normalize out")


# Options that do nothing under some objectives: (when, fields, why). `pix2pix train` warns of each one given.
NO_EFFECT = (
    (lambda loss: not loss.uses_l1, (("train", "lambda_l1"),), "objective", "it has no L1 term"),
    (lambda loss: loss.uses_gan and loss.gan_loss != "wgangp", (("train", "lambda_gp"),), "gan_loss",
     "only wgangp has a gradient penalty"),
    (lambda loss: not loss.uses_gan, (("train", "gan_loss"), ("train", "lambda_gp"), ("discriminator", "arch"),
                                      ("discriminator", "ndf"), ("discriminator", "norm"), ("train", "lambda_feat")),
     "objective", "it trains no D"),
)


def without_effect(cfg: RunConfig, given: set[tuple[str, str]]) -> list[str]:
    """One warning line for each ``given`` (section, field) that the chosen objective or networks ignore."""
    loss, lines = cfg.train.loss, []
    for when, fields, cause, why in NO_EFFECT:
        if when(loss):
            lines += [f"warning: {flag_of(*f)} has no effect with {flag_of('train', cause)} {getattr(cfg.train, cause)} "
                      f"({why})" for f in fields if f in given]
    d = cfg.discriminator.arch
    for f, used in ((("discriminator", "num_d"), d == "multiscale"),
                    (("train", "lambda_feat"), d == "multiscale" or not loss.uses_gan),
                    (("train", "lambda_vgg"), cfg.train.vgg)):
        if f in given and not used:
            lines.append(f"warning: {flag_of(*f)} has no effect with --discriminator {d}" if f[1] != "lambda_vgg"
                         else f"warning: {flag_of(*f)} has no effect without --vgg FILE")
    return lines


def check_section(section: str, values) -> None:
    """Every field of one section against its declaration (type, choices, range): one line naming the flag."""
    for f in dataclasses.fields(values):
        value, meta = getattr(values, f.name), f.metadata
        if value is None and "None" in str(f.type):
            continue
        flag, kind = _flag(section, f), field_kind(f)
        if kind == "bool" and not isinstance(value, bool):
            raise Pix2PixError(f"{flag}: expected true or false, not {value!r}")
        if kind in ("int", "float"):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind == "int" and value != int(value)):
                raise Pix2PixError(f"{flag}: expected {'an integer' if kind == 'int' else 'a number'}, not {value!r}")
            if not math.isfinite(value):
                raise Pix2PixError(f"{flag}: must be a finite number, not {value}")
        if kind == "str" and not isinstance(value, str):
            raise Pix2PixError(f"{flag}: expected a name, not {value!r}")
        if meta.get("choices") and value not in meta["choices"]:
            raise Pix2PixError(f"{flag}: invalid choice {value!r} (choose from {', '.join(meta['choices'])})")
        if meta.get("check"):
            test, says = CHECKS[meta["check"]]
            if not test(value):
                raise Pix2PixError(f"{flag}: must be {says}, not {value}")


def _check_architectures(cfg: RunConfig) -> None:
    """Build both networks on the meta device (nothing is allocated): an unknown or malformed name is one line;
    then run a training batch through them there, so that an image too small for them is one line too."""
    with torch.device("meta"):
        check_size(build_generator(cfg.generator), f"--generator {cfg.generator.arch} at --ngf {cfg.generator.ngf}")
        check_size(build_discriminator(cfg.discriminator), f"--discriminator {cfg.discriminator.arch} at --ndf "
                                                           f"{cfg.discriminator.ndf}")
    size = training_size(cfg.data)
    loss = cfg.train.loss
    nets = (dataclasses.astuple(cfg.generator), dataclasses.astuple(cfg.discriminator) if loss.uses_gan else None,
            cfg.data.batch_size, loss.conditional)
    if size is None or _fits(nets, size):
        return
    smallest = next((s for s in range(size + 1, 1025) if _fits(nets, s)), None)
    flag = "--load-size" if cfg.data.preprocess == "scale_width" else "--crop-size"
    hint = f"; the smallest that works is {smallest}" if smallest else ""
    raise Pix2PixError(f"{flag} {size}: training images of {size}x{size} are too small for --generator "
                       f"{cfg.generator.arch} and --discriminator {cfg.discriminator.arch} at --batch-size "
                       f"{cfg.data.batch_size}{hint}")


def training_size(data: DataConfig) -> int | None:
    """The side of a training image after preprocessing (scale_width: its width; none: unknown)."""
    return {"none": None, "scale_width": data.load_size}.get(data.preprocess, data.crop_size)


@functools.lru_cache(maxsize=256)
def _fits(nets: tuple, size: int) -> bool:
    """Whether a training batch of ``size`` x ``size`` images runs through G and D (on the meta device: shapes
    only, in about 60 ms for unet_256, so the answers are kept)."""
    g_fields, d_fields, batch, conditional = nets  # d_fields None: the objective trains no D
    g = GeneratorConfig(*g_fields)
    with torch.device("meta"):
        G = build_generator(g).train()
        D = build_discriminator(DiscriminatorConfig(*d_fields)).train() if d_fields else None
        x = torch.empty(batch, g.in_channels, size, size)
        try:
            y = G(x)
            if D is not None:
                D(torch.cat([x, y], 1) if conditional else y)
        except (RuntimeError, ValueError):
            return False
    return True


# ------------------------------------------------------------------------------------------- recipes

# The paper's per-dataset settings (appendix 6.2), each the paper's experiment on that dataset in the direction
# of its published model: labels -> photo for facades and cityscapes, aerial -> map for maps (BtoA for
# map -> aerial), edges -> photo, and day -> night for night2day (its B is the day image: the Lua README's
# "to train a day2night model, add which_direction=BtoA"). 200 epochs are split 100 constant + 100 decaying
# as in the reference PyTorch scripts; the short large-dataset schedules keep the Lua code's constant lr.
PRESETS: dict[str, dict[str, Any]] = {
    "facades": dict(direction="BtoA", epochs=100, epochs_decay=100, batch_size=1),
    "cityscapes": dict(direction="BtoA", epochs=100, epochs_decay=100, batch_size=1),
    "maps": dict(direction="AtoB", epochs=100, epochs_decay=100, batch_size=1),
    "edges2shoes": dict(direction="AtoB", epochs=15, epochs_decay=0, batch_size=4, load_size=256, flip=False),
    "edges2handbags": dict(direction="AtoB", epochs=15, epochs_decay=0, batch_size=4, load_size=256, flip=False),
    "night2day": dict(direction="BtoA", epochs=17, epochs_decay=0, batch_size=4),
}
# The paper's recipe at CPU scale (the demo's; chosen by measurement on a 2-core machine, README): 128x128 crops
# (resized to 286/256 of that first), unet_128 with half the paper's widths, batch 1, one loader process. Its
# schedule has the paper's shape and is sized to the time given (pix2pix.training.planning.size_to_minutes).
CPU_PRESET = "cpu"
PRESETS[CPU_PRESET] = {"crop_size": 128, "workers": 1, "batch_size": 1, "generator.arch": "unet_128", "ngf": 32,
                       "ndf": 32, "log_every": 50, "sample_every": 500, "snapshot_every": 0}
CPU_MINUTES = 30.0  # what --preset cpu plans for without --minutes
# pix2pixHD's Cityscapes recipes (its scripts/train_512p.sh and train_1024p_24G.sh, with options/*.py's defaults):
# 35 label classes plus the instance boundary, read from a 2-channel input (labelIds, instanceIds: 'pix2pix
# datasets hd' makes it); 512p: global at 1024x512 (scale_width to 1024), 100 + 100 epochs; 1024p: local (ngf 32)
# at the data's 2048x1024, num_D 3, from the 512p run (--init-from) with the global part fixed for 10 epochs,
# 50 + 50 epochs, as the script says (options' 100 + 100 is overridden there).
HD_CLASSES = {"label_nc": 35, "instance": True, "in_channels": 2, "direction": "AtoB", "batch_size": 1}
PRESETS["cityscapes-hd-512"] = HD_CLASSES | {"generator.arch": "global", "ngf": 64, "preprocess": "scale_width",
                                             "load_size": 1024, "crop_size": 1024, "epochs": 100,
                                             "epochs_decay": 100}
PRESETS["cityscapes-hd-1024"] = HD_CLASSES | {"generator.arch": "local", "ngf": 32, "num_d": 3, "preprocess": "none",
                                              "fix_global_epochs": 10, "epochs": 50, "epochs_decay": 50}


def preset_fields(name: str) -> dict[tuple[str, str], Any]:
    """A preset's settings as (section, field) -> value: a plain key names the one section that has the field,
    ``section.field`` one of several (``arch``)."""
    if name not in PRESETS:
        raise Pix2PixError(f"unknown --preset '{name}'; choose from {', '.join(PRESETS)}")
    fields = {}
    for key, value in PRESETS[name].items():
        section, _, field_name = key.rpartition(".")
        for s, cls in SECTIONS.items():
            if (section or s) == s and field_name in {f.name for f in dataclasses.fields(cls)}:
                fields[s, field_name] = value
    return fields


def apply_preset(cfg: RunConfig, name: str) -> RunConfig:
    """Set the fields a preset names; explicit flags are applied after."""
    for (section, field_name), value in preset_fields(name).items():
        setattr(getattr(cfg, section), field_name, value)
    return cfg


def cpu_recipe(data: Path, out: Path, size: int = 128, direction: str = "BtoA") -> RunConfig:
    """The ``cpu`` preset at ``size`` x ``size`` (``unet_SIZE``), labels (right half) -> photo, without a
    schedule (the demo and the ablations add theirs)."""
    cfg = apply_preset(RunConfig(name=out.name, out=str(out.parent)), CPU_PRESET)
    cfg.data.root, cfg.data.direction = str(Path(data).resolve()), direction
    cfg.data.crop_size, cfg.generator.arch = size, f"unet_{size}"  # --load-size: resolve() derives 286/256 of it
    return cfg
