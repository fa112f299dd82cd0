"""The VGG19 of pix2pixHD's perceptual loss, built here (no torchvision) in torchvision's ``vgg19`` layout so that
its weights file loads by key (``features.0.weight`` ...), and cut after relu5_1.

The weights cannot be fetched at run time: ``--vgg FILE`` names torchvision's ``vgg19-dcbbf8b2.pth`` (loaded
weights-only) or the same tensors as ``.safetensors``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import Pix2PixError

# VGG19's convolutions up to conv5_1 ("M": 2x2 max pool), as torchvision numbers its ``features``.
LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512)
# relu1_1, relu2_1, relu3_1, relu4_1, relu5_1: the index in ``features`` after which each is taken, and its weight.
TAPS = ((1, 1 / 32), (6, 1 / 16), (11, 1 / 8), (20, 1 / 4), (29, 1.0))
WHERE = ("torchvision's vgg19 weights (vgg19-dcbbf8b2.pth, from download.pytorch.org/models/), or the same "
         "tensors as .safetensors")


class VGG19Features(nn.Module):
    """``features`` of VGG19 to relu5_1; ``forward`` returns the five taps."""

    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for v in LAYOUT:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(channels, v, 3, padding=1), nn.ReLU(inplace=False)]
                channels = v
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps, last = [], 0
        for index, _ in TAPS:
            x = self.features[last:index + 1](x)
            taps.append(x)
            last = index + 1
        return taps


def load_vgg(path: Path) -> VGG19Features:
    """VGG19's features from ``path``, frozen, in eval mode; a missing or wrong file is one line."""
    path = Path(path)
    if not path.is_file():
        raise Pix2PixError(f"--vgg {path}: no such file; the VGG19 loss needs {WHERE}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is one line
        raise Pix2PixError(f"--vgg {path}: not a readable weights file ({type(e).__name__}); the VGG19 loss needs "
                           f"{WHERE}") from None
    net = VGG19Features()
    mine = net.state_dict()
    state = {k: v for k, v in state.items() if k in mine} if isinstance(state, dict) else {}
    wrong = [k for k in mine if k not in state or state[k].shape != mine[k].shape]
    if wrong:
        raise Pix2PixError(f"--vgg {path}: not VGG19 weights (no '{wrong[0]}' of shape {tuple(mine[wrong[0]].shape)}); "
                           f"the VGG19 loss needs {WHERE}")
    net.load_state_dict(state)
    return net.eval().requires_grad_(False)
