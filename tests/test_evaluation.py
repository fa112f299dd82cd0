"""Pixel L1 of a results folder and the mean-image baseline."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pix2pix.errors import Pix2PixError
from pix2pix.evaluation import mean_image_l1, results_l1


def test_results_l1_is_the_mean_absolute_error_in_unit_pixels(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (4, 4), (255, 255, 255)).save(images / "a_output.png")
    Image.new("RGB", (4, 4), (0, 0, 0)).save(images / "a_target.png")  # error 1
    Image.new("RGB", (4, 4), (51, 51, 51)).save(images / "b_output.png")
    Image.new("RGB", (4, 4), (51, 51, 51)).save(images / "b_target.png")  # error 0
    assert results_l1(tmp_path) == pytest.approx(0.5)


def test_results_l1_without_images_is_a_clear_error(tmp_path):
    with pytest.raises(Pix2PixError, match="no \\*_output.png"):
        results_l1(tmp_path)


def test_mean_image_baseline():
    train = [np.zeros((2, 2, 3)), np.ones((2, 2, 3))]  # mean 0.5 everywhere
    assert mean_image_l1(train, [np.ones((2, 2, 3)), np.full((2, 2, 3), 0.5)]) == pytest.approx(0.25)
    with pytest.raises(Pix2PixError):
        mean_image_l1([], [np.ones((1, 1, 1))])
