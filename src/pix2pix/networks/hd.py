"""pix2pixHD's networks (Wang et al., CVPR 2018): the coarse-to-fine generator (``global``, and ``local``: one
enhancer around a ``global`` of twice its width) and the multi-scale discriminator, plus the class-map input
that pix2pixHD and SPADE feed label maps through.

Module layouts follow pix2pixHD's ``models/networks.py`` (``model``, ``model1_1``, ``model1_2``, ``downsample``;
``scale{i}_layer{j}``) so that a ``global`` run's weights sit at the same keys inside a ``local`` generator
(:func:`pix2pix.training.rules.fine_tune` maps one into the other by name), and the state-dict keys are the ones
pix2pixHD's ``latest_net_G.pth`` files hold (no published file was at hand to load here).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .generators import ResnetBlock, norm_layer, pad_to_multiple

GLOBAL_BLOCKS = 9  # pix2pixHD's n_blocks_global
LOCAL_BLOCKS = 3  # n_blocks_local
GLOBAL_DOWNSAMPLE = 4  # n_downsample_global
HD_LAYERS = 3  # n_layers_D: each scale is a 70x70 PatchGAN at its own resolution


class ClassInput(nn.Module):
    """A class-index map (and optionally an instance-id map) as the one-hot channels pix2pixHD feeds its networks.

    Input (B, 1 [+ 1], H, W) raw values (the run's input scaling is ``none``): channel 0 holds class indices in
    0..label_nc-1; with ``instance``, channel 1 holds instance ids, turned into pix2pixHD's boundary map (1 where
    a 4-neighbour has another id). Output (B, label_nc [+ 1], H, W). An index outside 0..label_nc-1 is no class
    (all zeros). Parameter-free, so it adds no checkpoint keys; with ``label_nc`` 0 it passes the input on.
    """

    def __init__(self, label_nc: int = 0, instance: bool = False):
        super().__init__()
        self.label_nc, self.instance = label_nc, instance
        # The dtype the network computes in (it follows .to(dtype)); not a checkpoint key. The ids are compared
        # in the input's own float32: bf16 or fp16 would merge neighbouring ids (26001 and 26002 in Cityscapes).
        self.register_buffer("like", torch.zeros(0), persistent=False)

    @property
    def channels(self) -> int | None:
        """Channels it gives the network (None: it passes the input on)."""
        return self.label_nc + self.instance if self.label_nc else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.label_nc:
            return x
        labels = x[:, :1].round()
        classes = torch.arange(self.label_nc, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
        out = (labels == classes).to(x.dtype)
        if self.instance:
            out = torch.cat([out, instance_edges(x[:, 1:2])], 1)
        return out.to(self.like.dtype)


def instance_edges(ids: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) instance ids -> 1.0 where a pixel's right, left, lower or upper neighbour has another id."""
    dx = (ids[..., :, 1:] != ids[..., :, :-1]).to(ids.dtype)
    dy = (ids[..., 1:, :] != ids[..., :-1, :]).to(ids.dtype)
    return torch.maximum(torch.maximum(F.pad(dx, (1, 0)), F.pad(dx, (0, 1))),
                         torch.maximum(F.pad(dy, (0, 0, 1, 0)), F.pad(dy, (0, 0, 0, 1))))


def _global_layers(in_channels: int, out_channels: int, ngf: int, n_downsample: int, blocks: int, norm: str,
                   dropout: float) -> list[nn.Module]:
    """pix2pixHD's GlobalGenerator as a list of layers (convs keep their biases whatever the norm)."""
    layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7), norm_layer(norm, ngf),
                               nn.ReLU(True)]
    for i in range(n_downsample):
        c = ngf * 2 ** i
        layers += [nn.Conv2d(c, c * 2, 3, 2, 1), norm_layer(norm, c * 2), nn.ReLU(True)]
    width = ngf * 2 ** n_downsample
    layers += [ResnetBlock(width, norm, dropout, bias=True) for _ in range(blocks)]
    for i in range(n_downsample):
        c = width // 2 ** i
        layers += [nn.ConvTranspose2d(c, c // 2, 3, 2, 1, output_padding=1), norm_layer(norm, c // 2), nn.ReLU(True)]
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh()]
    return layers


class GlobalGenerator(nn.Module):
    """``global``: conv 7x7, ``n_downsample`` stride-2 convs, 9 residual blocks, as many transposed convs, conv 7x7,
    tanh. Sides are padded to a multiple of 2**n_downsample (at least two pixels at the innermost blocks)."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 64, norm: str = "instance",
                 dropout: float = 0.0, n_downsample: int = GLOBAL_DOWNSAMPLE, blocks: int = GLOBAL_BLOCKS,
                 label_nc: int = 0, instance: bool = False):
        super().__init__()
        self.classes = ClassInput(label_nc, instance)
        channels = self.classes.channels or in_channels
        self.model = nn.Sequential(*_global_layers(channels, out_channels, ngf, n_downsample, blocks, norm, dropout))
        self.pad_multiple = 2 ** n_downsample
        self.pad_minimum = 2 * self.pad_multiple

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, (h, w) = pad_to_multiple(self.classes(x), self.pad_multiple, self.pad_minimum)
        return self.model(x)[..., :h, :w]


class LocalEnhancer(nn.Module):
    """``local``: a ``global`` of width 2*ngf (without its last three layers) on the input average-pooled to half
    size, whose features are added to the enhancer's (conv 7x7, a stride-2 conv), then 3 residual blocks, a
    transposed conv back to full size and conv 7x7, tanh."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 32, norm: str = "instance",
                 dropout: float = 0.0, n_downsample: int = GLOBAL_DOWNSAMPLE, blocks: int = GLOBAL_BLOCKS,
                 local_blocks: int = LOCAL_BLOCKS, label_nc: int = 0, instance: bool = False):
        super().__init__()
        self.classes = ClassInput(label_nc, instance)
        channels = self.classes.channels or in_channels
        inner = _global_layers(channels, out_channels, 2 * ngf, n_downsample, blocks, norm, dropout)
        self.model = nn.Sequential(*inner[:-3])  # the global network's features (2*ngf channels at half size)
        self.model1_1 = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(channels, ngf, 7), norm_layer(norm, ngf),
                                      nn.ReLU(True), nn.Conv2d(ngf, 2 * ngf, 3, 2, 1), norm_layer(norm, 2 * ngf),
                                      nn.ReLU(True))
        self.model1_2 = nn.Sequential(
            *[ResnetBlock(2 * ngf, norm, dropout, bias=True) for _ in range(local_blocks)],
            nn.ConvTranspose2d(2 * ngf, ngf, 3, 2, 1, output_padding=1), norm_layer(norm, ngf), nn.ReLU(True),
            nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh())
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
        self.pad_multiple = 2 ** (n_downsample + 1)
        self.pad_minimum = 2 * self.pad_multiple

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, (h, w) = pad_to_multiple(self.classes(x), self.pad_multiple, self.pad_minimum)
        coarse = self.model(self.downsample(x))
        return self.model1_2(self.model1_1(x) + coarse)[..., :h, :w]

    def global_part(self) -> list[nn.Parameter]:
        """The parameters of the inner global network (frozen for --fix-global-epochs)."""
        return list(self.model.parameters())


def global_into_local(state: dict[str, torch.Tensor], local: LocalEnhancer) -> dict[str, torch.Tensor]:
    """A ``global`` generator's weights as a ``local`` one's, pix2pixHD's way: the global's layers but its last three
    go to the same keys of the inner network; the enhancer keeps its own (initial) weights. A global of another
    width than 2 x the enhancer's is a mismatch that ``load_state_dict`` then names."""
    inner = {k: v for k, v in state.items() if k.startswith("model.") and int(k.split(".")[1]) < len(local.model)}
    return {**{k: v for k, v in local.state_dict().items() if not k.startswith("model.")}, **inner}


class MultiscaleDiscriminator(nn.Module):
    """``multiscale``: ``num_d`` PatchGANs, the first on the full-size input, each next one on the input
    average-pooled to half the size of the one before. Each: conv 4x4 (padding 2) with biases, instance norm,
    LeakyReLU 0.2; channels doubling to 512.

    Returns, for each scale from the full-size one down, the list of its layers' outputs: every one but the
    last is a feature that feature matching compares, the last is that scale's map of logits.
    """

    def __init__(self, in_channels: int = 6, ndf: int = 64, num_d: int = 2, norm: str = "instance",
                 n_layers: int = HD_LAYERS, label_nc: int = 0, instance: bool = False):
        super().__init__()
        # A conditional D on class maps (``label_nc``): its first channels are the generator's raw input, a class
        # index (and an instance id), which it reads as the generator does.
        self.classes = ClassInput(label_nc, instance)
        self.condition = 1 + instance if label_nc else 0
        channels = in_channels - self.condition + (self.classes.channels or 0)
        self.num_d, self.n_layers = num_d, n_layers
        for i in range(num_d):  # pix2pixHD's names: scale num_d-1 sees the full-size input
            for j, layer in enumerate(_patch_layers(channels, ndf, n_layers, norm)):
                setattr(self, f"scale{num_d - 1 - i}_layer{j}", layer)
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        if self.condition:
            x = torch.cat([self.classes(x[:, :self.condition]), x[:, self.condition:]], 1)
        outputs = []
        for i in range(self.num_d):
            features, h = [], x
            for j in range(self.n_layers + 2):
                h = getattr(self, f"scale{self.num_d - 1 - i}_layer{j}")(h)
                features.append(h)
            outputs.append(features)
            if i < self.num_d - 1:
                x = self.downsample(x)
        return outputs


def _patch_layers(in_channels: int, ndf: int, n_layers: int, norm: str) -> list[nn.Module]:
    """One scale of pix2pixHD's discriminator, as the groups whose outputs feature matching compares."""
    groups = [nn.Sequential(nn.Conv2d(in_channels, ndf, 4, 2, 2), nn.LeakyReLU(0.2, True))]
    nf = ndf
    for n in range(1, n_layers + 1):
        prev, nf = nf, min(nf * 2, 512)
        groups.append(nn.Sequential(nn.Conv2d(prev, nf, 4, 2 if n < n_layers else 1, 2), norm_layer(norm, nf),
                                    nn.LeakyReLU(0.2, True)))
    groups.append(nn.Sequential(nn.Conv2d(nf, 1, 4, 1, 2)))
    return groups
