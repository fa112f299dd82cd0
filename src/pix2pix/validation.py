"""Validation during training: the val split scored every so often, and the best checkpoint kept by it.

Each validation translates the val split (or its first ``--val-images``) with a copy of G in the paper's test
mode (dropout on, batch statistics, batch 1) under a fixed seed, inside a forked RNG, so that training draws
exactly what it would have without it (an exact resume stays exact). It scores L1, PSNR and SSIM as
``pix2pix eval`` does (:func:`pix2pix.evaluation.image_metrics`). Which way is better: lower L1, higher PSNR
and SSIM (:data:`BETTER`).

Its cost is part of the budget: each validation is timed, and when one costs more than a tenth of the training
time since the last, the next ones take fewer images (said once), and that one is recorded on those images
too, so that every score in ``val.csv`` and the best compare like with like.
"""

from __future__ import annotations

import copy
import csv
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .data import PairDataset
from .evaluation import image_metrics
from .inference import set_test_mode

BETTER = {"l1": "lower", "psnr": "higher", "ssim": "higher"}  # --best-metric choices, and which way is better
SEED = 0
BUDGET = 0.1  # at most this share of the training time


class Validator:
    def __init__(self, pairs, data_cfg, in_channels: int, out_channels: int, images: int | None, metric: str):
        self.pairs = pairs[:images] if images else list(pairs)
        self.data_cfg, self.channels, self.metric = data_cfg, (in_channels, out_channels), metric
        self.images = len(self.pairs)
        self.adaptive = images is None  # a stated --val-images is kept whatever it costs
        self.seconds = 0.0
        self.runs = 0
        self.best: float | None = None
        self.cut_said = False

    def better(self, value: float) -> bool:
        if self.best is None:
            return True
        return value < self.best if BETTER[self.metric] == "lower" else value > self.best

    @torch.no_grad()
    def score(self, G: nn.Module, device: torch.device, train_seconds: float) -> dict[str, float]:
        """The val metrics of ``G`` now; ``train_seconds``: training time since the last validation."""
        start = time.perf_counter()
        net = set_test_mode(copy.deepcopy(G).float(), eval=False)
        dataset = PairDataset(self.pairs[:self.images], self.data_cfg, *self.channels, train=False)
        pairs = []
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(SEED)
            for i in range(len(dataset)):
                item = dataset[i]
                if "error" in item:
                    continue
                y = net(item["A"][None].to(device, memory_format=torch.contiguous_format))[0].float().cpu()
                pairs.append((_hwc01(y), _hwc01(item["B"])))
        metrics = image_metrics(pairs)
        seconds = time.perf_counter() - start
        self.seconds, self.runs = self.seconds + seconds, self.runs + 1
        metrics["seconds"] = round(seconds, 3)
        if self.adaptive and train_seconds > 0 and seconds > BUDGET * train_seconds and self.images > 1:
            keep = max(1, int(self.images * BUDGET * train_seconds / seconds))
            if not self.cut_said:
                print(f"warning: validation took {seconds:.1f} s against {train_seconds:.1f} s of training; the "
                      f"next ones (and this one's record) score the first {keep} of {self.images} val images (set "
                      "--val-images or --val-every)", file=sys.stderr)
                self.cut_said = True
            self.images = keep
            # This one is reported on those images too, so that every score and the best compare like with like.
            metrics = image_metrics(pairs[:keep]) | {"seconds": metrics["seconds"]}
        return metrics


def _hwc01(t: torch.Tensor) -> np.ndarray:
    return ((t.clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy().astype(np.float64)


VAL_FIELDS = ("step", "epoch", "l1", "psnr", "ssim", "images", "seconds")


def append_val(path: Path, step: int, epoch: int, metrics: dict[str, float]) -> None:
    row = {"step": step, "epoch": epoch, **{k: round(float(metrics[k]), 6) for k in ("l1", "psnr", "ssim")},
           "images": int(metrics["count"]), "seconds": metrics["seconds"]}
    new = not path.exists() or path.stat().st_size == 0
    with path.open("a", newline="") as f:
        out = csv.DictWriter(f, fieldnames=list(VAL_FIELDS))
        if new:
            out.writeheader()
        out.writerow(row)
