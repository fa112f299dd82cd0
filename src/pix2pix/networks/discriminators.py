"""PatchGAN discriminators: a fully convolutional net whose every output judges one N x N input patch."""

from __future__ import annotations

import torch
from torch import nn

from .generators import conv_bias, norm_layer

# Receptive field -> number of stride-2 layers (the reference's n_layers). 70x70 is the paper's default.
PATCH_LAYERS = {16: 1, 34: 2, 70: 3, 142: 4, 286: 5}


class PatchDiscriminator(nn.Module):
    """C64 (no norm) - C128 - C256 - C512 (stride 1) - conv to 1 channel, 4x4 kernels, LeakyReLU 0.2.

    With ``n_layers=3`` (70x70 patches) a 256x256 input gives a 30x30 map of logits.
    """

    def __init__(self, in_channels: int = 6, ndf: int = 64, n_layers: int = 3, norm: str = "batch"):
        super().__init__()
        bias = conv_bias(norm)
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2 ** n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride, 1, bias=bias), norm_layer(norm, ndf * mult),
                       nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PixelDiscriminator(nn.Module):
    """1x1 PatchGAN ("PixelGAN"): judges each pixel's colour on its own."""

    def __init__(self, in_channels: int = 6, ndf: int = 64, norm: str = "batch"):
        super().__init__()
        bias = conv_bias(norm)
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, ndf, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, 1, bias=bias), norm_layer(norm, ndf * 2), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, 1, 1, bias=bias),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def receptive_field(net: nn.Module) -> int:
    """Input pixels seen by one output pixel, from the conv layers' kernels and strides (a multi-scale D: of each
    scale, at that scale's resolution)."""
    if hasattr(net, "num_d"):
        net = nn.ModuleList(getattr(net, f"scale0_layer{j}") for j in range(net.n_layers + 2))
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    rf = 1
    for conv in reversed(convs):
        rf = (rf - 1) * conv.stride[0] + conv.kernel_size[0]
    return rf
