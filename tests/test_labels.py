"""Label sets: the measured CMP palette, nearest-colour reading robust to noise, void colours."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pix2pix.errors import Pix2PixError
from pix2pix.data.labels import CITYSCAPES, FACADES, IGNORE, label_set

REAL = Path("/work/shared/data/facades/train")
CLASSES, PALETTE, nearest_class = FACADES.classes, FACADES.palette, FACADES.class_map


def test_palette_and_nearest_class():
    assert len(CLASSES) == 12 and CLASSES[:3] == ("background", "facade", "window") and CLASSES[-1] == "shop"
    assert PALETTE.shape == (12, 3) and PALETTE.dtype == np.uint8
    assert len({tuple(c) for c in PALETTE.tolist()}) == 12
    np.testing.assert_array_equal(nearest_class(PALETTE), np.arange(12))
    rng = np.random.default_rng(0)
    classes = rng.integers(0, 12, (16, 16))
    noisy = np.clip(PALETTE[classes].astype(np.int16) + rng.integers(-12, 13, (16, 16, 3)), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(nearest_class(noisy), classes)
    with pytest.raises(Pix2PixError):
        nearest_class(np.zeros((4, 4)))


@pytest.mark.skipif(not REAL.is_dir(), reason="the real facades are not in /work/shared/data/facades")
def test_nearest_class_reads_real_label_maps():
    near = total = near_inside = total_inside = 0
    for i in range(1, 401, 10):
        b = np.asarray(Image.open(REAL / f"{i}.jpg").convert("RGB"))[:, 256:]
        c = nearest_class(b)
        close = np.sqrt(((b.astype(np.float64) - PALETTE[c]) ** 2).sum(-1)) <= 40
        near, total = near + close.sum(), total + close.size
        # Away from region edges (7x7 of one class), where JPEG has not blended two colours.
        inside = np.ones((250, 250), bool)
        for dy in range(7):
            for dx in range(7):
                inside &= c[dy:dy + 250, dx:dx + 250] == c[3:253, 3:253]
        near_inside, total_inside = near_inside + close[3:253, 3:253][inside].sum(), total_inside + inside.sum()
    # About 22% of the real pixels are blends of two colours at JPEG-blurred edges, so 90% of all pixels
    # within 40 does not hold for any palette; inside regions the palette is exact.
    assert near / total >= 0.72
    assert near_inside / total_inside >= 0.99

def test_void_colours_read_as_ignore_and_classes_as_themselves():
    np.testing.assert_array_equal(CITYSCAPES.class_map(CITYSCAPES.palette), np.arange(19))
    void = CITYSCAPES.class_map(np.array([[0, 0, 0], [81, 0, 81], [3, 2, 1]], np.uint8))
    np.testing.assert_array_equal(void, [IGNORE] * 3)
    np.testing.assert_array_equal(CITYSCAPES.colours(np.array([13, IGNORE])), [[0, 0, 142], [0, 0, 0]])
    assert label_set("facades") is FACADES
    with pytest.raises(Pix2PixError, match="unknown label set 'cats'"):
        label_set("cats")
