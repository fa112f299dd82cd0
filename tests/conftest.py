"""Shared fixtures: tiny generated datasets and the flags of a tiny training configuration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# A U-Net of depth 5 with 4 filters and a 4-filter PatchGAN on 32x32 crops: a CPU step takes milliseconds.
TINY = ["--generator", "unet_32", "--ngf", "4", "--ndf", "4", "--load-size", "36", "--crop-size", "32",
        "--workers", "0", "--no-progress", "--log-every", "2", "--sample-every", "3"]

COLOURS = np.array([[0, 0, 170], [0, 85, 255], [0, 170, 255], [255, 85, 0]], np.uint8)


def make_pair(rng: np.random.Generator, size: int, colours: np.ndarray = COLOURS) -> tuple[np.ndarray, np.ndarray]:
    """A (label map, photo) pair: rectangles of 4 classes in ``colours``, and a shaded rendering in which each
    class has a tint."""
    labels = np.zeros((size, size), np.int64)
    for cls in (1, 2, 3, 2):
        x, y = rng.integers(0, size * 3 // 4, 2)
        w, h = rng.integers(size // 8, size // 2, 2)
        labels[y:y + h, x:x + w] = cls
    shade = np.linspace(0.7, 1.1, size)[None, :, None]
    tint = np.array([[150, 190, 230], [185, 150, 120], [40, 55, 70], [110, 70, 40]], np.float64)
    photo = np.clip(tint[labels] * shade + rng.normal(0, 4, (size, size, 3)), 0, 255).astype(np.uint8)
    return colours[labels], photo


def make_aligned_dataset(root: Path, splits: dict[str, int], size: int = 32, seed: int = 0,
                         colours: np.ndarray = COLOURS) -> Path:
    """An aligned dataset like facades: ``root/SPLIT/N.png`` with the photo (A) left of the labels (B)."""
    rng = np.random.default_rng(seed)
    for split, n in splits.items():
        (root / split).mkdir(parents=True, exist_ok=True)
        for i in range(1, n + 1):
            label, photo = make_pair(rng, size, colours)
            Image.fromarray(np.concatenate([photo, label], 1)).save(root / split / f"{i}.png")
    return root


@pytest.fixture
def blocks(tmp_path: Path) -> Path:
    """An aligned dataset (A = photo | B = labels) with 4 train and 2 val pairs of 32x32."""
    return make_aligned_dataset(tmp_path / "blocks", {"train": 4, "val": 2})


@pytest.fixture
def tiny() -> list[str]:
    return list(TINY)


def train_tiny(tmp_path: Path, data: Path, tiny: list[str], *extra: str, name: str = "run") -> Path:
    """``pix2pix train`` a tiny run into ``tmp_path/runs/NAME``; returns the run folder."""
    from pix2pix.cli import main

    assert main(["train", "--data", str(data), "--out", str(tmp_path / "runs"), "--name", name, *tiny,
                 *extra]) == 0
    return tmp_path / "runs" / name


def one_line_error(capsys, code: int, needle: str) -> str:
    """Assert the CLI failed as a user error should: exit 2 and one line on stderr holding ``needle``."""
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "\n" not in err and "Traceback" not in err, err
    assert needle in err, err
    return err


def free_port() -> int:
    """A TCP port nobody listens on right now, on loopback."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
