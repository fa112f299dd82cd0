"""Evaluation: how close translations are to their targets.

For now the per-pixel L1 error (mean absolute error in [0, 1] pixel units) of a results folder, and the
same error for the trivial baseline that always predicts the mean training target.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image

from .errors import Pix2PixError


def read01(path: Path) -> np.ndarray:
    """An image file as (H, W, C) float64 in [0, 1]."""
    arr = np.asarray(Image.open(path), dtype=np.float64) / 255.0
    return arr[..., None] if arr.ndim == 2 else arr


def results_l1(results_dir: Path) -> float:
    """Mean |output - target| over every ``images/STEM_output.png`` of a ``pix2pix test`` results folder."""
    outputs = sorted((Path(results_dir) / "images").glob("*_output.png"))
    if not outputs:
        raise Pix2PixError(f"{results_dir}: no *_output.png images to evaluate")
    errors = [np.abs(read01(p) - read01(p.with_name(p.name.replace("_output", "_target")))).mean() for p in outputs]
    return float(np.mean(errors))


def mean_image_l1(train_targets: Iterable[np.ndarray], eval_targets: Iterable[np.ndarray]) -> float:
    """L1 error of always predicting the per-pixel mean of the training targets (all of one size)."""
    total, count = None, 0
    for t in train_targets:
        total = t.astype(np.float64) if total is None else total + t
        count += 1
    if not count:
        raise Pix2PixError("no training targets to average for the mean-image baseline")
    mean = total / count
    return float(np.mean([np.abs(mean - t).mean() for t in eval_targets]))
