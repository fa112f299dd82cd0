"""Networks by name: a small literal table from architecture names to constructors, plus weight init.

Generators: ``unet_N`` (N = 2**depth, e.g. unet_256, unet_128), ``encoder_decoder_N`` (the U-Net without
skips, for the paper's ablation), ``resnet_Kblocks``, and pix2pixHD's ``global`` and ``local``.
Discriminators are named by receptive field: ``pixel``, ``patch16``, ``patch34``, ``patch70`` (default),
``patch142``, ``patch286``; the reference's names ``basic`` and ``n_layers_K`` are aliases; pix2pixHD's
``multiscale`` is ``num_d`` 70x70 PatchGANs at halving resolutions.

Each family has its own defaults where the configuration leaves a field unset (:data:`FAMILY_DEFAULTS`): the
paper's batch norm and dropout for the U-Nets and ResNets, pix2pixHD's instance norm without dropout for its
generators, which train against the multi-scale D.
"""

from __future__ import annotations

import re

from torch import nn

from ..errors import Pix2PixError
from .discriminators import PATCH_LAYERS, PatchDiscriminator, PixelDiscriminator, receptive_field
from .generators import ResnetGenerator, UNetGenerator
from .hd import GlobalGenerator, LocalEnhancer, MultiscaleDiscriminator

__all__ = [
    "GENERATORS", "DISCRIMINATORS", "build_generator", "build_discriminator", "init_weights",
    "count_params", "check_size", "receptive_field", "canonical_discriminator", "UNetGenerator", "ResnetGenerator",
    "PatchDiscriminator", "PixelDiscriminator", "GlobalGenerator", "LocalEnhancer", "MultiscaleDiscriminator",
    "HD_GENERATORS", "family_default", "family_settings",
]

# The architectures `pix2pix models` lists; any unet_N / encoder_decoder_N / resnet_Kblocks also builds.
HD_GENERATORS = ("global", "local")
GENERATORS = ("unet_256", "unet_128", "encoder_decoder_256", "encoder_decoder_128", "resnet_9blocks",
              "resnet_6blocks", *HD_GENERATORS)
DISCRIMINATORS = {"pixel": ()} | {
    f"patch{rf}": (("basic",) if rf == 70 else ()) + (f"n_layers_{n}",) for rf, n in PATCH_LAYERS.items()
} | {"multiscale": ()}

# What an unset field becomes, by the generator's family: (the paper's, pix2pixHD's).
FAMILY_DEFAULTS = {
    "norm": ("batch", "instance"),
    "dropout": (0.5, 0.0),  # pix2pixHD has no noise input
    "discriminator": ("patch70", "multiscale"),  # which brings pix2pixHD's losses (config.resolve)
}


def family_default(field: str, generator: str):
    """The default of ``field`` (a key of :data:`FAMILY_DEFAULTS`) for a run with generator ``generator``."""
    return FAMILY_DEFAULTS[field][generator in HD_GENERATORS]


def family_settings(cfg) -> tuple[str, float]:
    """A generator configuration's (norm, dropout), its family's where unset."""
    return (family_default("norm", cfg.arch) if cfg.norm is None else cfg.norm,
            family_default("dropout", cfg.arch) if cfg.dropout is None else cfg.dropout)


MAX_UNET = 2**14  # unet_16384: 14 levels; beyond, a name alone would build more than any machine holds
MAX_BLOCKS = 256  # resnet_Kblocks
MAX_PARAMS = 2**30  # about 1.07 G parameters, 4.3 GB of fp32 weights: a network larger than this is refused


def _unet_depth(size: int, name: str) -> int:
    depth = size.bit_length() - 1
    if size < 4 or 2 ** depth != size or size > MAX_UNET:
        raise Pix2PixError(f"generator '{name}': the size must be a power of two from 4 to {MAX_UNET} (e.g. "
                           "unet_256, unet_128)")
    return depth


def check_size(net: nn.Module, what: str) -> None:
    """One line for a network (built on the meta device: nothing allocated) over :data:`MAX_PARAMS`."""
    n = count_params(net)
    if n > MAX_PARAMS:
        raise Pix2PixError(f"{what} has {n / 1e9:.1f} G parameters ({4 * n / 2**30:.0f} GiB of fp32 weights), over "
                           f"the {MAX_PARAMS / 1e9:.2f} G that pix2pix builds; use a smaller width or depth")


def build_generator(cfg) -> nn.Module:
    """Build the generator a :class:`pix2pix.config.GeneratorConfig` describes (weights not yet initialised:
    see :func:`init_weights`). The networks do not import the configuration: it builds on them (it checks
    names by building them), so ``cfg`` is taken by its fields."""
    norm, dropout = family_settings(cfg)
    if cfg.arch in HD_GENERATORS:
        hd = GlobalGenerator if cfg.arch == "global" else LocalEnhancer
        return hd(cfg.in_channels, cfg.out_channels, cfg.ngf, norm, dropout, label_nc=cfg.label_nc,
                  instance=cfg.instance)
    if cfg.label_nc:
        raise Pix2PixError(f"--label-nc: class-map input is built for the generators {', '.join(HD_GENERATORS)}, "
                           f"not {cfg.arch}")
    common = dict(in_channels=cfg.in_channels, out_channels=cfg.out_channels, ngf=cfg.ngf, norm=norm,
                  dropout=dropout)
    if m := re.fullmatch(r"unet_(\d+)", cfg.arch):
        return UNetGenerator(depth=_unet_depth(int(m[1]), cfg.arch), dropout_placement=cfg.dropout_placement,
                             **common)
    if m := re.fullmatch(r"encoder_decoder_(\d+)", cfg.arch):
        return UNetGenerator(depth=_unet_depth(int(m[1]), cfg.arch), dropout_placement=cfg.dropout_placement,
                             skip=False, **common)
    if m := re.fullmatch(r"resnet_(\d+)blocks", cfg.arch):
        if not 1 <= int(m[1]) <= MAX_BLOCKS:
            raise Pix2PixError(f"generator '{cfg.arch}': from 1 to {MAX_BLOCKS} blocks (e.g. resnet_9blocks)")
        return ResnetGenerator(blocks=int(m[1]), **common)
    raise Pix2PixError(f"unknown generator '{cfg.arch}'; choose from {', '.join(GENERATORS)} "
                       "(or unet_N, encoder_decoder_N, resnet_Kblocks)")


def canonical_discriminator(name: str, n_layers: int | None = None) -> str:
    """Map a discriminator name or reference alias (``basic``, ``n_layers`` + depth) to ours."""
    if name == "n_layers":
        name = f"n_layers_{3 if n_layers is None else n_layers}"
    for canonical, aliases in DISCRIMINATORS.items():
        if name == canonical or name in aliases:
            return canonical
    choices = ", ".join(DISCRIMINATORS) + " (aliases: basic, n_layers_K)"
    raise Pix2PixError(f"unknown discriminator '{name}'; choose from {choices}")


def build_discriminator(cfg) -> nn.Module:
    """Build the discriminator a :class:`pix2pix.config.DiscriminatorConfig` describes."""
    arch = canonical_discriminator("patch70" if cfg.arch is None else cfg.arch)
    norm = cfg.norm or ("instance" if arch == "multiscale" else "batch")  # unset until the configuration resolves it
    if arch == "multiscale":
        return MultiscaleDiscriminator(cfg.in_channels, cfg.ndf, cfg.num_d, norm, label_nc=cfg.label_nc,
                                       instance=cfg.instance)
    if cfg.label_nc:
        raise Pix2PixError("--label-nc: a conditional D on class maps is the multiscale one (--discriminator "
                           "multiscale)")
    if arch == "pixel":
        return PixelDiscriminator(cfg.in_channels, cfg.ndf, norm)
    return PatchDiscriminator(cfg.in_channels, cfg.ndf, PATCH_LAYERS[int(arch[len("patch"):])], norm)


def init_weights(net: nn.Module, kind: str = "normal", gain: float = 0.02) -> nn.Module:
    """The paper's init: conv weights N(0, gain), biases 0, batch-norm scale N(1, gain) and shift 0."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            if kind == "normal":
                nn.init.normal_(m.weight, 0.0, gain)
            elif kind == "xavier":
                nn.init.xavier_normal_(m.weight, gain=gain)
            elif kind == "kaiming":
                nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
            elif kind == "orthogonal":
                nn.init.orthogonal_(m.weight, gain=gain)
            else:
                raise Pix2PixError(f"unknown --init '{kind}'; choose from normal, xavier, kaiming, orthogonal")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)
    return net


def count_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
