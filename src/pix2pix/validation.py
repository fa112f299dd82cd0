"""Validation during training: the val split scored every so often, and the best checkpoint kept by it.

Each validation translates the val split (or its first ``--val-images``) with a copy of G in the paper's test
mode (dropout on, batch statistics, batch 1) under a fixed seed, inside a forked RNG, so that training draws
exactly what it would have without it (an exact resume stays exact). It scores L1, PSNR and SSIM as
``pix2pix eval`` does (:func:`pix2pix.evaluation.image_metrics`); with a segmenter also the FCN-score of the
outputs as 8-bit photos against the inputs' class maps, and with an Inception file FID and KID between the
8-bit outputs and targets. Which way is better: :data:`pix2pix.config.BETTER`.

Its cost is part of the budget: each validation is timed, and when one costs more than a tenth of the training
time since the last, the next ones take fewer images (said once), and that one is recorded on those images
too, so that every score in ``val.csv`` and the best compare like with like.
"""

from __future__ import annotations

import copy
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from .config import BETTER
from .data import PairDataset, load_pair, side_files
from .units import EIGHT_BIT, Scales, from_unit
from .errors import Pix2PixError
from .evaluation import fid_kid, image_metrics
from .inference import set_test_mode
from .labels import read_truth

SEED = 0
BUDGET = 0.1  # at most this share of the training time
FCN = ("per_pixel_acc", "per_class_acc", "class_iou")


class Validator:
    """``segmenter``: a :class:`pix2pix.segmentation.Segmenter` (adds the FCN-score); ``features``: an
    :class:`pix2pix.evaluation.InceptionFeatures` (adds FID and KID)."""

    def __init__(self, pairs, data_cfg, in_channels: int, out_channels: int, images: int | None, metric: str,
                 segmenter=None, features: nn.Module | None = None, scales: Scales = EIGHT_BIT):
        self.pairs = pairs[:images] if images else list(pairs)
        self.data_cfg, self.channels, self.metric = data_cfg, (in_channels, out_channels), metric
        self.segmenter, self.features, self.scales = segmenter, features, scales
        self.images = len(self.pairs)
        self.fewest = 2 if features is not None else 1  # FID/KID compare two sets of at least two
        if features is not None and self.images < self.fewest:
            raise Pix2PixError(f"--inception: FID/KID need at least 2 val images, and there is {self.images}")
        # The inputs' class maps, read once: what fails (labels of other colours) fails before training.
        self.truths = [self._truth(p) for p in self.pairs] if segmenter is not None else None
        self.adaptive = images is None  # a stated --val-images is kept whatever it costs
        self.seconds = 0.0
        self.runs = 0
        self.best: float | None = None
        self.cut_said = False

    def _truth(self, pair) -> np.ndarray:
        label_image, _ = load_pair(pair, self.data_cfg.direction, *self.channels)
        stem = Path(pair.a).stem
        return read_truth(self.segmenter.labels, label_image, where=side_files(pair, self.data_cfg.direction)[0],
                          index=Path(self.data_cfg.root) / "val" / "labels" / f"{stem}.png")

    def better(self, value: float) -> bool:
        if self.best is None:
            return True
        return value < self.best if BETTER[self.metric] == "lower" else value > self.best

    @torch.no_grad()
    def score(self, G: nn.Module, device: torch.device, train_seconds: float) -> dict[str, float]:
        """The val metrics of ``G`` now; ``train_seconds``: training time since the last validation."""
        start = time.perf_counter()
        net = set_test_mode(copy.deepcopy(G).float(), eval=False)
        dataset = PairDataset(self.pairs[:self.images], self.data_cfg, *self.channels, train=False,
                              scales=self.scales)
        outputs = []  # (output, target, index) as (C, H, W) in [-1, 1]
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(SEED)
            for i in range(len(dataset)):
                item = dataset[i]
                if "error" in item:
                    continue
                y = net(item["A"][None].to(device, memory_format=torch.contiguous_format))[0].float().cpu()
                outputs.append((y, item["B"], i))
        metrics = self._metrics(outputs)
        seconds = time.perf_counter() - start
        self.seconds, self.runs = self.seconds + seconds, self.runs + 1
        metrics["seconds"] = round(seconds, 3)
        if self.adaptive and train_seconds > 0 and seconds > BUDGET * train_seconds and self.images > self.fewest:
            keep = max(self.fewest, int(self.images * BUDGET * train_seconds / seconds))
            if not self.cut_said:
                print(f"warning: validation took {seconds:.1f} s against {train_seconds:.1f} s of training; the "
                      f"next ones (and this one's record) score the first {keep} of {self.images} val images (set "
                      "--val-images or --val-every)", file=sys.stderr)
                self.cut_said = True
            self.images = keep
            # This one is reported on those images too, so that every score and the best compare like with like.
            metrics = self._metrics([o for o in outputs if o[2] < keep]) | {"seconds": metrics["seconds"]}
        return metrics

    def _metrics(self, outputs: list) -> dict[str, float]:
        metrics = image_metrics([(_hwc01(y), _hwc01(b)) for y, b, _ in outputs])
        if self.segmenter is not None:
            photos = ((Image.fromarray(_u8(y)), self.truths[i]) for y, _, i in outputs)
            metrics |= self.segmenter.score(photos)
        if self.features is not None:
            metrics |= fid_kid([_u8(y) for y, _, _ in outputs], [_u8(b) for _, b, _ in outputs], self.features)
        return metrics


def _u8(t: torch.Tensor) -> np.ndarray:
    """(H, W, C) uint8, as the images 'pix2pix test' writes."""
    arr = from_unit(t).permute(1, 2, 0).numpy()
    return arr[..., 0] if arr.shape[2] == 1 else arr


def _hwc01(t: torch.Tensor) -> np.ndarray:
    return ((t.clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy().astype(np.float64)
