"""Shared fixtures: tiny generated datasets and the flags of a tiny training configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from pix2pix.demo import make_blocks_dataset

# A U-Net of depth 5 with 4 filters and a 4-filter PatchGAN on 32x32 crops: a CPU step takes milliseconds.
TINY = ["--generator", "unet_32", "--ngf", "4", "--ndf", "4", "--load-size", "36", "--crop-size", "32",
        "--workers", "0", "--no-progress", "--log-every", "2", "--sample-every", "3"]


@pytest.fixture
def blocks(tmp_path: Path) -> Path:
    """An aligned dataset (A = photo | B = labels) with 4 train and 2 val pairs of 32x32."""
    return make_blocks_dataset(tmp_path / "blocks", train=4, val=2, size=32, seed=0)


@pytest.fixture
def tiny() -> list[str]:
    return list(TINY)
