"""The main job (`pix2pix demo`): make a small paired dataset, train on it briefly, translate its val split.

Until the procedural facades dataset lands, the data is a toy "blocks" task: a label map of coloured
rectangles (A) and a rendered "photo" of it (B) in which each class has its own shaded, noisy texture.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

# Class colours of the toy label maps (background, wall, window, door) and the base colour of each class
# in the rendered photo.
LABEL_COLOURS = np.array([[0, 0, 170], [0, 85, 255], [0, 170, 255], [255, 85, 0]], np.uint8)
PHOTO_COLOURS = np.array([[150, 190, 230], [185, 150, 120], [40, 55, 70], [110, 70, 40]], np.float64)


def make_blocks_pair(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One (label map, photo) pair as (size, size, 3) uint8 arrays."""
    labels = np.zeros((size, size), np.int64)
    x0, x1 = sorted(rng.integers(size // 8, size - size // 8, 2))
    labels[rng.integers(size // 8, size // 3):, x0:max(x1, x0 + size // 4)] = 1  # a building
    for _ in range(rng.integers(2, 7)):  # windows and a door on it
        w, h = rng.integers(size // 16, size // 6, 2)
        x, y = rng.integers(0, size - w), rng.integers(0, size - h)
        region = labels[y:y + h, x:x + w]
        region[region == 1] = 3 if rng.random() < 0.2 else 2
    yy, xx = np.mgrid[0:size, 0:size] / size
    light = rng.uniform(0.75, 1.15) + rng.uniform(-0.25, 0.25) * (xx - 0.5) + rng.uniform(-0.2, 0.2) * (yy - 0.5)
    tint = rng.uniform(0.8, 1.2, 3)
    photo = PHOTO_COLOURS[labels] * tint * light[..., None]
    photo += rng.normal(0, 6, photo.shape) + 10 * np.sin(yy * rng.uniform(20, 60))[..., None] * (labels == 1)[..., None]
    return LABEL_COLOURS[labels], np.clip(photo, 0, 255).astype(np.uint8)


def make_blocks_dataset(out: Path, train: int = 64, val: int = 8, size: int = 64, seed: int = 0) -> Path:
    """Write an aligned dataset (A = photo | B = label map, like facades) to ``out/{train,val}``."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", train), ("val", val)):
        (out / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            label, photo = make_blocks_pair(rng, size)
            Image.fromarray(np.concatenate([photo, label], 1)).save(out / split / f"{i + 1}.png")
    return out


def run_demo(out: Path, steps: int = 600, progress: bool = True) -> Iterator[str]:
    """Make the data, train labels -> photo (BtoA) for ``steps`` steps, test on val. Yields report lines."""
    from .config import RunConfig
    from .inference import test_split
    from .training import train

    for own in (out / "data", out / "run"):  # the demo starts afresh in its own folders
        shutil.rmtree(own, ignore_errors=True)
    data = make_blocks_dataset(out / "data")
    yield f"dataset: {data} (64 train / 8 val pairs, 64x64, labels -> photo)"
    cfg = RunConfig(name="run", out=str(out))
    cfg.data.root, cfg.data.direction = str(data), "BtoA"
    cfg.data.load_size, cfg.data.crop_size, cfg.data.workers = 72, 64, 0
    cfg.generator.arch, cfg.generator.ngf, cfg.discriminator.ndf = "unet_64", 32, 32
    cfg.train.max_steps, cfg.train.sample_every, cfg.train.log_every = steps, max(steps // 6, 1), 50
    result = train(cfg, progress=progress)
    yield f"trained {result.step} steps in {result.seconds:.0f} s; checkpoint {result.checkpoint}"
    yield f"training samples: {result.page}"
    page = test_split(result.run_dir, "val", eval=False, progress=False)
    yield f"val results (input | output | target): {page}"
