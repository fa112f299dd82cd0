"""Each side's scaling to [-1, 1]: the formulas the module states, their inverses, the 8-bit one bit for bit,
and statistics over a training split."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pix2pix.errors import Pix2PixError
from pix2pix.data.units import EIGHT_BIT, Scale, Scales, Statistics, from_unit, kind_for, to_unit


def test_the_8_bit_scaling_is_the_references_arithmetic_bit_for_bit():
    x = torch.arange(256, dtype=torch.uint8).reshape(1, 16, 16)
    reference = (x.float() / 255 - 0.5) / 0.5  # ToTensor, then Normalize((0.5,), (0.5,))
    assert torch.equal(Scale().to_unit(x), reference) and torch.equal(to_unit(x), reference)
    # back as the reference's tensor2im writes images: float32 (u + 1) / 2 * 255, truncated
    written = torch.from_numpy(((reference.numpy() + 1) / 2.0 * 255.0).astype(np.uint8))
    assert torch.equal(Scale().to_data(reference), written) and torch.equal(from_unit(reference), written)


@pytest.mark.parametrize("scale, x", [
    (Scale("uint16", data="uint16"), torch.tensor([0.0, 1.0, 32768.0, 65535.0])),
    (Scale("minmax", (-40.0, 2.0), (60.0, 2.0), "float"), torch.tensor([[-40.0, 10.0], [2.0, 2.0]])),
    (Scale("meanstd", (100.0,), (5.0,), "float"), torch.tensor([85.0, 100.0, 115.0])),
    (Scale("none", data="float"), torch.tensor([-0.3, 0.9])),
])
def test_each_scaling_is_its_formula_and_inverts(scale, x):
    x = x.reshape(scale.channels or 1, 1, -1)
    u = scale.to_unit(x)
    expected = {"uint16": lambda: (x / 65535 - 0.5) / 0.5,
                "minmax": lambda: torch.stack([((x[0] + 40) / 100 - 0.5) / 0.5, ((x[1] - 2) / 1 - 0.5) / 0.5]),  # constant
                "meanstd": lambda: (x - 100) / 15,
                "none": lambda: x}[scale.kind]()
    assert torch.allclose(u, expected, atol=1e-6)
    assert torch.allclose(scale.from_unit(u), x, rtol=1e-6, atol=1e-4)


def test_the_training_range_spans_minus_one_to_one_under_minmax():
    rng = np.random.default_rng(0)
    files = [rng.normal(500, 80, (8, 8, 3)).astype(np.float32) for _ in range(5)]
    stats = Statistics()
    for f in files:
        stats.add(f, "f")
    scale = stats.scale("minmax")
    every = np.stack(files)
    assert scale.a == pytest.approx(tuple(every.min((0, 1, 2)))) and scale.b == pytest.approx(tuple(every.max((0, 1, 2))))
    u = torch.cat([scale.to_unit(torch.from_numpy(f).permute(2, 0, 1)) for f in files], 1)
    assert u.amin((1, 2)).tolist() == pytest.approx([-1] * 3, abs=1e-6)
    assert u.amax((1, 2)).tolist() == pytest.approx([1] * 3, abs=1e-6)
    meanstd = stats.scale("meanstd")
    assert meanstd.a == pytest.approx(tuple(every.mean((0, 1, 2))), rel=1e-6)
    assert meanstd.b == pytest.approx(tuple(every.std((0, 1, 2))), rel=1e-5)


def test_files_of_another_kind_or_channel_count_are_one_line():
    stats = Statistics()
    stats.add(np.zeros((4, 4, 2), np.float32), "a.npy")
    with pytest.raises(Pix2PixError, match="b.npy: its values are uint16 \\(uint16\\), and the files before it are float"):
        stats.add(np.zeros((4, 4, 2), np.uint16), "b.npy")
    with pytest.raises(Pix2PixError, match="c.npy: 3 channels, and the files before it have 2"):
        stats.add(np.zeros((4, 4, 3), np.float64), "c.npy")
    scale = Scale("minmax", (0.0, 0.0), (1.0, 1.0), "float")
    with pytest.raises(Pix2PixError, match="d.png: its values are uint8 \\(uint8\\), and this side of the model takes float"):
        scale.check(np.zeros((4, 4, 2), np.uint8), "d.png")
    with pytest.raises(Pix2PixError, match="e.npy: 3 channels, and the model's stored scaling is for 2"):
        scale.check(np.zeros((4, 4, 3), np.float32), "e.npy")


def test_auto_takes_an_images_bit_depth_and_minmax_for_other_data():
    assert [kind_for("auto", c) for c in ("uint8", "uint16", "int", "float")] == ["uint8", "uint16", "minmax", "minmax"]
    assert kind_for("meanstd", "uint8") == "meanstd"


def test_a_scaling_record_round_trips_and_a_bad_one_is_one_line():
    scales = Scales(Scale("minmax", (1.0, 2.0), (3.0, 4.0), "float"), Scale("uint16", data="uint16"))
    assert Scales.from_dict(scales.to_dict(), "x") == scales and Scales.from_dict(EIGHT_BIT.to_dict(), "x").eight_bit
    with pytest.raises(Pix2PixError, match="ckpt: not a valid scaling record"):
        Scales.from_dict({"input": {"kind": "uint8", "colour": 1}, "output": {}}, "ckpt")
    with pytest.raises(Pix2PixError, match="unknown scaling 'log'"):
        Scales.from_dict({"input": {"kind": "log"}, "output": {}}, "ckpt")
