"""Generators: the U-Net of the paper (and its encoder-decoder ablation) and the ResNet of Johnson et al.

Module layouts mirror the reference PyTorch code so that its ``latest_net_G.pth`` files load with
``load_state_dict`` as they are (keys such as ``model.model.1.model.2.running_mean``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def norm_layer(norm: str, channels: int) -> nn.Module:
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "instance":
        # The reference's instance norm: no affine parameters, no running statistics.
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if norm == "layer":
        # Layer norm over (C, H, W) with a per-channel scale and shift: Gulrajani et al.'s WGAN-GP critic.
        return nn.GroupNorm(1, channels)
    return nn.Identity()


def conv_bias(norm: str) -> bool:
    # As in the reference: a conv followed by batch norm needs no bias; with instance norm it keeps one.
    # (The reference's "none" also drops the bias; we follow it so its checkpoints load.)
    return norm == "instance"


def pad_to_multiple(x: torch.Tensor, multiple: int, minimum: int = 1) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad (B, C, H, W) on the bottom and right up to a multiple of ``multiple`` (and at least ``minimum``);
    return the original size.

    Reflection keeps the padded border statistically like the image (batch norm uses batch statistics at
    test time); a side that needs more padding than reflection gives (its length - 1) is replicated beyond.
    Written so that it traces: in an exported graph the sizes are values of the graph (Shape), the padding
    Pad ops and the crop back a Slice, so the file takes any size in any ONNX runtime.
    """
    h, w = x.shape[-2], x.shape[-1]
    (rh, eh), (rw, ew) = _pads(h, multiple, minimum), _pads(w, multiple, minimum)
    tracing = isinstance(h, torch.Tensor)
    if tracing or rh or rw:
        x = F.pad(x, (0, rw, 0, rh), mode="reflect")
    if tracing or eh or ew:
        x = F.pad(x, (0, ew, 0, eh), mode="replicate")
    return x, (h, w)


def padded_size(h: int, w: int, multiple: int, minimum: int = 1) -> tuple[int, int]:
    """The (height, width) :func:`pad_to_multiple` makes of an h x w image."""
    return h + sum(_pads(h, multiple, minimum)), w + sum(_pads(w, multiple, minimum))


def _pads(n, multiple: int, minimum: int):
    """(reflected, replicated) padding of a side of length ``n``: in all the fewest pixels that reach
    ``minimum`` and a multiple of ``multiple``. ``n`` is an int, or a tensor while tracing for export."""
    if isinstance(n, torch.Tensor):
        total = torch.clamp(minimum - n, min=0)
        total = total + (-(n + total)) % multiple
        reflected = torch.minimum(total, n - 1)
    else:
        total = max(minimum - n, 0)
        total += (-(n + total)) % multiple
        reflected = min(total, n - 1)
    return reflected, total - reflected


class UNetBlock(nn.Module):
    """One level of the U-Net: down conv -> inner levels -> up conv, with the input concatenated (skip).

    ``kind`` is "outermost", "middle" or "innermost". ``skip=False`` gives the encoder-decoder ablation.
    """

    def __init__(self, outer: int, inner: int, submodule: nn.Module | None, kind: str, *, in_channels: int,
                 out_channels: int, norm: str, dropout: float, skip: bool = True):
        super().__init__()
        self.skip = skip
        bias = conv_bias(norm)
        up_in = inner * 2 if (skip and kind != "innermost") else inner
        down = nn.Conv2d(in_channels if kind == "outermost" else outer, inner, 4, 2, 1, bias=bias)
        if kind == "outermost":
            # (B, in, H, W) -> ... -> (B, out, H, W)
            layers = [down, submodule, nn.ReLU(True), nn.ConvTranspose2d(up_in, out_channels, 4, 2, 1), nn.Tanh()]
        elif kind == "innermost":
            layers = [nn.LeakyReLU(0.2, True), down,
                      nn.ReLU(True), nn.ConvTranspose2d(inner, outer, 4, 2, 1, bias=bias), norm_layer(norm, outer)]
        else:
            layers = [nn.LeakyReLU(0.2, True), down, norm_layer(norm, inner), submodule,
                      nn.ReLU(True), nn.ConvTranspose2d(up_in, outer, 4, 2, 1, bias=bias), norm_layer(norm, outer)]
        if dropout > 0 and kind != "outermost":
            layers.append(nn.Dropout(dropout))
        self.kind = kind
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.model(x)
        if self.kind == "outermost" or not self.skip:
            return y
        return torch.cat([x, y], 1)  # skip connection: encoder features first, as in the reference


class UNetGenerator(nn.Module):
    """U-Net with ``depth`` stride-2 downsamplings (8 for 256x256 images: ``unet_256``).

    Encoder C64-C128-C256-C512-C512-...; decoder mirrors it. Dropout sits on the first three decoder layers
    (``dropout_placement="paper"``: the 2x2, 4x4 and 8x8 maps at depth 8) or one level further out
    (``"reference"``: 4x4, 8x8, 16x16, as in the reference PyTorch code, which has depth-5 such levels).
    Inputs of any size are padded to a multiple of 2**depth and the output is cropped back.
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, depth: int = 8, ngf: int = 64,
                 norm: str = "batch", dropout: float = 0.5, dropout_placement: str = "paper", skip: bool = True):
        super().__init__()
        if depth < 2:
            raise ValueError("a U-Net needs at least 2 levels")
        self.depth = depth
        # The padding rule (any image size): sides are padded to a multiple of 2**depth, then cropped back.
        self.pad_multiple, self.pad_minimum = 2 ** depth, 1
        # Channels at each level (0 = outermost): ngf, 2ngf, 4ngf, then 8ngf all the way down.
        widths = [ngf * min(2 ** i, 8) for i in range(depth)]
        # Decoder levels with dropout, counted from the innermost (0) outwards.
        if dropout_placement == "paper":
            dropped = set(range(min(3, depth - 1)))
        else:
            dropped = set(range(1, 1 + max(depth - 5, 0)))
        common = dict(in_channels=in_channels, out_channels=out_channels, norm=norm, skip=skip)
        block = None
        for level in reversed(range(depth)):
            from_inner = depth - 1 - level
            kind = "outermost" if level == 0 else "innermost" if level == depth - 1 else "middle"
            outer = widths[level - 1] if level > 0 else ngf
            block = UNetBlock(outer, widths[level], block, kind,
                              dropout=dropout if from_inner in dropped else 0.0, **common)
        self.model = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, (h, w) = pad_to_multiple(x, self.pad_multiple, self.pad_minimum)
        return self.model(x)[..., :h, :w]


class ResnetBlock(nn.Module):
    def __init__(self, dim: int, norm: str, dropout: float, bias: bool | None = None):
        super().__init__()
        bias = conv_bias(norm) if bias is None else bias
        layers = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), norm_layer(norm, dim), nn.ReLU(True)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), norm_layer(norm, dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """Two stride-2 downsamplings, ``blocks`` residual blocks at 4*ngf channels, two upsamplings."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3, blocks: int = 9, ngf: int = 64,
                 norm: str = "batch", dropout: float = 0.5):
        super().__init__()
        bias = conv_bias(norm)
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7, bias=bias),
                                   norm_layer(norm, ngf), nn.ReLU(True)]
        for i in range(2):
            c = ngf * 2 ** i
            layers += [nn.Conv2d(c, c * 2, 3, 2, 1, bias=bias), norm_layer(norm, c * 2), nn.ReLU(True)]
        layers += [ResnetBlock(ngf * 4, norm, dropout) for _ in range(blocks)]
        for i in range(2):
            c = ngf * 2 ** (2 - i)
            layers += [nn.ConvTranspose2d(c, c // 2, 3, 2, 1, output_padding=1, bias=bias),
                       norm_layer(norm, c // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        # The padding rule: two stride-2 convs (a multiple of 4), then reflection pads of 1 in the residual
        # blocks (at least 8 pixels a side).
        self.pad_multiple, self.pad_minimum = 4, 8

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, (h, w) = pad_to_multiple(x, self.pad_multiple, self.pad_minimum)
        return self.model(x)[..., :h, :w]
