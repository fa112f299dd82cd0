"""Generators and discriminators: sizes, receptive fields, shapes, dropout placement, init, names, layout.

Parameter counts and the state-dict layout are the reference PyTorch code's (see REFERENCE.md); they are
checked on the meta device so the full-size nets cost nothing to build.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pix2pix.config import DiscriminatorConfig, GeneratorConfig
from pix2pix.errors import Pix2PixError
from pix2pix.networks import (build_discriminator, build_generator, canonical_discriminator, count_params,
                              init_weights, receptive_field)


def meta_generator(**kw) -> nn.Module:
    with torch.device("meta"):
        return build_generator(GeneratorConfig(**kw))


def meta_discriminator(**kw) -> nn.Module:
    with torch.device("meta"):
        return build_discriminator(DiscriminatorConfig(**kw))


# ------------------------------------------------------------------------------------ parameter counts


@pytest.mark.parametrize("kw, expected", [
    (dict(arch="unet_256"), 54_413_955),
    (dict(arch="unet_128"), 41_828_995),
    (dict(arch="unet_256", norm="instance"), 54_409_603),
    (dict(arch="resnet_9blocks"), 11_383_427),
], ids=["unet_256", "unet_128", "unet_256-instance", "resnet_9blocks"])
def test_generator_parameter_counts_match_reference(kw, expected):
    assert count_params(meta_generator(**kw)) == expected


@pytest.mark.parametrize("kw, expected", [
    (dict(arch="patch70"), 2_768_705),
    (dict(arch="patch70", norm="instance"), 2_767_809),
    (dict(arch="pixel"), 9_024),
    (dict(arch="patch16"), 139_585),
    (dict(arch="patch34"), 666_433),
    (dict(arch="patch142"), 6_964_033),
    (dict(arch="patch286"), 11_159_361),
], ids=["patch70", "patch70-instance", "pixel", "patch16", "patch34", "patch142", "patch286"])
def test_discriminator_parameter_counts_match_reference(kw, expected):
    assert count_params(meta_discriminator(in_channels=6, **kw)) == expected


# ------------------------------------------------------------------------------------ receptive fields

RF = {"pixel": 1, "patch16": 16, "patch34": 34, "patch70": 70, "patch142": 142, "patch286": 286}


@pytest.mark.parametrize("arch, rf", RF.items())
def test_receptive_field_formula(arch, rf):
    assert receptive_field(meta_discriminator(arch=arch, ndf=4)) == rf


@pytest.mark.parametrize("arch, rf", RF.items())
def test_receptive_field_measured_by_gradient(arch, rf):
    """The input pixels one central output logit depends on span exactly rf x rf."""
    torch.manual_seed(0)
    D = init_weights(build_discriminator(DiscriminatorConfig(arch=arch, ndf=4, in_channels=2))).eval()
    size = 384 if rf > 100 else 160
    x = torch.randn(1, 2, size, size, requires_grad=True)
    out = D(x)
    i, j = out.shape[-2] // 2, out.shape[-1] // 2
    out[0, 0, i, j].backward()
    touched = x.grad.abs().sum((0, 1)) > 0
    rows = touched.any(1).nonzero().flatten()
    cols = touched.any(0).nonzero().flatten()
    assert 0 < rows.min() and rows.max() < size - 1, "the receptive field must lie inside the image"
    assert rows.max() - rows.min() + 1 == rf
    assert cols.max() - cols.min() + 1 == rf


@pytest.mark.parametrize("size, out", [(256, 30), (512, 62)])
def test_patch70_output_size(size, out):
    D = build_discriminator(DiscriminatorConfig(arch="patch70", ndf=4, in_channels=6)).eval()
    with torch.no_grad():
        y = D(torch.randn(1, 6, size, size))
    assert y.shape == (1, 1, out, out)


def test_pixel_discriminator_keeps_resolution():
    D = build_discriminator(DiscriminatorConfig(arch="pixel", ndf=4, in_channels=6)).eval()
    with torch.no_grad():
        assert D(torch.randn(2, 6, 17, 23)).shape == (2, 1, 17, 23)


# ------------------------------------------------------------------------------------ generator shapes

SIZES = [(32, 32), (300, 200), (256, 384), (37, 53), (17, 23), (1, 9), (5, 1), (33, 64)]
def _shape_cases():
    for arch in ["unet_32", "encoder_decoder_32", "resnet_2blocks"]:
        for h, w in SIZES:
            yield pytest.param(arch, h, w, id=f"{arch}-{h}x{w}")


def _check_output(G: nn.Module, c_in: int, c_out: int, h: int, w: int, batch: int = 1) -> None:
    x = torch.rand(batch, c_in, h, w) * 2 - 1
    with torch.no_grad():
        y = G(x)
    assert y.shape == (batch, c_out, h, w)
    assert torch.isfinite(y).all()
    assert y.min() >= -1 and y.max() <= 1


@pytest.mark.parametrize("arch, h, w", list(_shape_cases()))
def test_generator_output_matches_input_size_eval(arch, h, w):
    torch.manual_seed(0)
    G = init_weights(build_generator(GeneratorConfig(arch=arch, ngf=4))).eval()
    _check_output(G, 3, 3, h, w)


@pytest.mark.parametrize("h, w", [(32, 32), (37, 53), (17, 23), (300, 200)])
@pytest.mark.parametrize("arch", ["unet_32", "encoder_decoder_32", "resnet_2blocks"])
def test_generator_output_matches_input_size_paper_mode(arch, h, w):
    """Train mode (dropout on, batch statistics) as the paper uses at test time, batch 1 and batch 2."""
    torch.manual_seed(0)
    G = init_weights(build_generator(GeneratorConfig(arch=arch, ngf=4))).train()
    _check_output(G, 3, 3, h, w, batch=1)
    _check_output(G, 3, 3, h, w, batch=2)


def test_unet_256_on_a_non_power_of_two_image():
    torch.manual_seed(0)
    G = init_weights(build_generator(GeneratorConfig(arch="unet_256", ngf=2))).eval()
    _check_output(G, 3, 3, 300, 200)


@pytest.mark.parametrize("c_in, c_out", [(1, 1), (1, 3), (3, 1), (3, 4), (4, 4), (4, 3)])
@pytest.mark.parametrize("arch", ["unet_32", "encoder_decoder_32", "resnet_2blocks"])
def test_generator_channels(arch, c_in, c_out):
    torch.manual_seed(0)
    G = init_weights(build_generator(GeneratorConfig(arch=arch, ngf=4, in_channels=c_in,
                                                     out_channels=c_out))).eval()
    _check_output(G, c_in, c_out, 37, 53, batch=2)


def test_generator_is_translation_equivariant_away_from_padding():
    """Padding to a multiple of 2**depth and cropping must not shift the image: a crop of the input whose
    size is already a multiple gives the same output as the matching crop of a larger, unpadded output."""
    torch.manual_seed(0)
    G = init_weights(build_generator(GeneratorConfig(arch="resnet_2blocks", ngf=4, norm="none"))).eval()
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        full = G(x)
        part = G(x[..., :61, :62])  # padded to 64x64 with reflection at bottom/right, then cropped
    # Far from the padded border the outputs agree (the receptive field of the border stays inside).
    torch.testing.assert_close(part[..., :40, :40], full[..., :40, :40], atol=1e-5, rtol=0)


# ------------------------------------------------------------------------------------ dropout placement


def _dropout_output_sizes(cfg: GeneratorConfig, size: int) -> list[int]:
    G = build_generator(cfg).eval()
    sizes: list[int] = []
    hooks = [m.register_forward_hook(lambda m, i, o: sizes.append(o.shape[-1]))
             for m in G.modules() if isinstance(m, nn.Dropout)]
    with torch.no_grad():
        G(torch.zeros(1, cfg.in_channels, size, size))
    for h in hooks:
        h.remove()
    return sorted(sizes)


@pytest.mark.parametrize("arch, placement, size, expected", [
    ("unet_256", "paper", 256, [2, 4, 8]),
    ("unet_256", "reference", 256, [4, 8, 16]),
    ("unet_128", "paper", 128, [2, 4, 8]),
    ("unet_128", "reference", 128, [4, 8]),  # the reference: num_downs - 5 = 2 dropout levels
])
def test_unet_dropout_placement(arch, placement, size, expected):
    cfg = GeneratorConfig(arch=arch, ngf=2, dropout_placement=placement)
    G = build_generator(cfg)
    dropouts = [m for m in G.modules() if isinstance(m, nn.Dropout)]
    assert len(dropouts) == len(expected)
    assert all(m.p == 0.5 for m in dropouts)
    assert _dropout_output_sizes(cfg, size) == expected


@pytest.mark.parametrize("arch", ["unet_256", "encoder_decoder_256", "resnet_9blocks"])
@pytest.mark.parametrize("placement", ["paper", "reference"])
def test_no_dropout_modules_when_dropout_is_zero(arch, placement):
    G = meta_generator(arch=arch, dropout=0.0, dropout_placement=placement)
    assert not any(isinstance(m, nn.Dropout) for m in G.modules())


def test_resnet_dropout_one_per_block_with_the_configured_rate():
    G = meta_generator(arch="resnet_9blocks", dropout=0.3)
    dropouts = [m for m in G.modules() if isinstance(m, nn.Dropout)]
    assert len(dropouts) == 9 and all(m.p == 0.3 for m in dropouts)


def test_dropout_is_active_in_train_mode_and_off_in_eval():
    torch.manual_seed(0)
    G = init_weights(build_generator(GeneratorConfig(arch="unet_32", ngf=4)))
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        G.train()
        a, b = G(x), G(x)
        G.eval()
        c, d = G(x), G(x)
    assert not torch.equal(a, b)
    assert torch.equal(c, d)


# ------------------------------------------------------------------------------------ init


def test_init_weights_normal_statistics():
    torch.manual_seed(0)
    G = build_generator(GeneratorConfig(arch="unet_64", ngf=32))
    for m in G.modules():  # make sure init really overwrites: poison every parameter first
        for p in m.parameters(recurse=False):
            nn.init.constant_(p, 3.0)
    init_weights(G)
    convs = [m for m in G.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    bns = [m for m in G.modules() if isinstance(m, nn.BatchNorm2d)]
    w = torch.cat([m.weight.detach().flatten() for m in convs])
    assert w.numel() > 100_000
    assert abs(w.mean().item()) < 1e-3
    assert abs(w.std().item() - 0.02) < 1e-3
    biases = [m.bias for m in convs if m.bias is not None]
    assert biases and all(torch.count_nonzero(b) == 0 for b in biases)
    g = torch.cat([m.weight.detach() for m in bns])
    assert g.numel() > 1000
    assert abs(g.mean().item() - 1.0) < 2e-3
    assert abs(g.std().item() - 0.02) < 3e-3
    assert all(torch.count_nonzero(m.bias) == 0 for m in bns)


def test_init_weights_gain_and_discriminator():
    torch.manual_seed(0)
    D = init_weights(build_discriminator(DiscriminatorConfig(arch="patch70", ndf=16)), gain=0.05)
    w = torch.cat([m.weight.detach().flatten() for m in D.modules() if isinstance(m, nn.Conv2d)])
    assert abs(w.std().item() - 0.05) < 2.5e-3
    biases = [m.bias for m in D.modules() if isinstance(m, nn.Conv2d) and m.bias is not None]
    assert biases and all(torch.count_nonzero(b) == 0 for b in biases)


@pytest.mark.parametrize("kind", ["xavier", "kaiming", "orthogonal"])
def test_other_init_kinds_run_and_change_weights(kind):
    torch.manual_seed(0)
    G = build_generator(GeneratorConfig(arch="unet_32", ngf=4))
    before = [p.detach().clone() for p in G.parameters()]
    init_weights(G, kind)
    assert any(not torch.equal(a, b) for a, b in zip(before, G.parameters()))
    assert all(torch.isfinite(p).all() for p in G.parameters())


def test_unknown_init_raises():
    G = build_generator(GeneratorConfig(arch="unet_32", ngf=4))
    with pytest.raises(Pix2PixError, match="bogus"):
        init_weights(G, "bogus")


# ------------------------------------------------------------------------------------ names


@pytest.mark.parametrize("arch", ["unet_100", "foo", "unet_", "resnet_blocks", "encoder_decoder_3", "unet_2"])
def test_unknown_generator_raises(arch):
    with pytest.raises(Pix2PixError):
        meta_generator(arch=arch)


@pytest.mark.parametrize("arch", ["foo", "patch71", "n_layers_9", "", "PATCH70"])
def test_unknown_discriminator_raises(arch):
    with pytest.raises(Pix2PixError):
        meta_discriminator(arch=arch)


@pytest.mark.parametrize("name, n_layers, expected", [
    ("basic", None, "patch70"),
    ("n_layers_3", None, "patch70"),
    ("n_layers", None, "patch70"),
    ("n_layers", 4, "patch142"),
    ("n_layers", 1, "patch16"),
    ("n_layers_5", None, "patch286"),
    ("patch34", None, "patch34"),
    ("pixel", None, "pixel"),
])
def test_discriminator_aliases(name, n_layers, expected):
    assert canonical_discriminator(name, n_layers) == expected


def test_aliases_build_the_same_network():
    assert count_params(meta_discriminator(arch="basic")) == count_params(meta_discriminator(arch="patch70"))
    assert count_params(meta_discriminator(arch="n_layers_4")) == 6_964_033


# ------------------------------------------------------------------------------------ state-dict layout


def test_unet_256_state_dict_layout_matches_reference():
    G = meta_generator(arch="unet_256")
    sd = G.state_dict()
    assert len(sd) == 82
    assert len(list(G.parameters())) == 43
    assert sum(k.endswith("num_batches_tracked") for k in sd) == 13
    assert sd["model.model.0.weight"].shape == (64, 3, 4, 4)
    assert "model.model.0.bias" not in sd  # batch norm: no bias on the first conv
    assert "model.model.1.model.1.weight" in sd
    assert "model.model.1.model.2.running_mean" in sd
    assert "model.model.1.model.3.model.1.weight" in sd  # the next level down
    assert sd["model.model.1.model.5.weight"].shape == (256, 64, 4, 4)  # up conv: 2*128 -> 64
    assert "model.model.1.model.6.running_var" in sd
    assert sd["model.model.3.weight"].shape == (128, 3, 4, 4)
    assert sd["model.model.3.bias"].shape == (3,)
    assert list(sd)[-2:] == ["model.model.3.weight", "model.model.3.bias"]
    # The innermost level: down conv at 1, up conv at 3, its batch norm at 4.
    inner = "model.model.1.model." + "3.model." * 6  # level 7 of 0..7
    assert sd[inner + "1.weight"].shape == (512, 512, 4, 4)
    assert sd[inner + "3.weight"].shape == (512, 512, 4, 4)
    assert inner + "4.running_mean" in sd


def test_unet_256_instance_norm_has_biases_and_no_buffers():
    sd = meta_generator(arch="unet_256", norm="instance").state_dict()
    assert "model.model.0.bias" in sd and "model.model.1.model.1.bias" in sd
    assert not any("running" in k or "num_batches" in k for k in sd)
