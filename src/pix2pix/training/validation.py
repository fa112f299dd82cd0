"""Validation during training: the val split scored every so often, and the best checkpoint kept by it.

Each validation translates the val split (or its first ``--val-images``) with a copy of G in the paper's test
mode (dropout on, batch statistics, batch 1) under a fixed seed, inside a forked RNG, so that training draws
exactly what it would have without it (an exact resume stays exact). The copy's batch norms are plain ones, so
under torchrun the main process validates alone while the others wait (no collective is left hanging). It
scores L1, PSNR and SSIM as ``pix2pix eval`` does (:func:`pix2pix.evaluation.metrics.image_metrics`); with a
segmenter also the FCN-score of the outputs as 8-bit photos against the inputs' class maps, and with an
Inception file FID and KID between the 8-bit outputs and targets. Which way is better: :data:`BETTER`.

Its cost is part of the budget: when the run's first validation costs more than a tenth of the training time
before it, it and every later one score fewer images (said once, never under :data:`FEWEST`), and that set is
the run's from then on, kept across resumes (val.csv's ``images``). The validator owns the best: it compares
only scores of the same images, and takes up the best checkpoint's own record when a run is resumed.
"""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..checkpoints import read_metadata
from ..config import BETTER
from ..data.pairs import PairDataset, load_pair, side_files
from ..data.units import EIGHT_BIT, Scales, from_unit
from ..errors import Pix2PixError
from ..evaluation.metrics import fid_kid, image_metrics
from ..inference.translate import set_test_mode
from ..data.labels import read_truth

log = logging.getLogger(__name__)

SEED = 0
BUDGET = 0.1  # at most this share of the training time
FEWEST = 10  # a cut never scores fewer val images than this (or all of them, when there are fewer)
FCN = ("per_pixel_acc", "per_class_acc", "class_iou")


class Validator:
    """``segmenter``: a :class:`pix2pix.evaluation.segmentation.Segmenter` (adds the FCN-score); ``features``: an
    :class:`pix2pix.evaluation.metrics.InceptionFeatures` (adds FID and KID)."""

    def __init__(self, pairs, data_cfg, in_channels: int, out_channels: int, images: int | None, metric: str,
                 segmenter=None, features: nn.Module | None = None, scales: Scales = EIGHT_BIT):
        self.pairs = list(pairs)
        self.data_cfg, self.channels, self.metric = data_cfg, (in_channels, out_channels), metric
        self.segmenter, self.features, self.scales = segmenter, features, scales
        self.images = min(images, len(self.pairs)) if images else len(self.pairs)
        # FID/KID compare two sets of at least two images; a cut keeps at least FEWEST.
        self.fewest = min(self.images, max(FEWEST, 2 if features is not None else 1))
        if features is not None and self.images < 2:
            raise Pix2PixError(f"--inception: FID/KID need at least 2 val images, and there is {self.images}")
        # The inputs' class maps, read once: what fails (labels of other colours) fails before training.
        self.truths = [self._truth(p) for p in self.pairs] if segmenter is not None else None
        self.may_cut = images is None  # a stated --val-images is kept whatever it costs; else the first may cut
        self.seconds = 0.0
        self.runs = 0
        self.best: float | None = None  # the best score on self.images images, and its step
        self.best_step: int | None = None
        self.unreadable: set[str] = set()

    def _truth(self, pair) -> np.ndarray:
        label_image, _ = load_pair(pair, self.data_cfg.direction, *self.channels, label_nc=self.data_cfg.label_nc)
        stem = Path(pair.a).stem
        return read_truth(self.segmenter.labels, label_image, where=side_files(pair, self.data_cfg.direction)[0],
                          index=Path(self.data_cfg.root) / "val" / "labels" / f"{stem}.png")

    def better(self, value: float) -> bool:
        if self.best is None:
            return True
        return value < self.best if BETTER[self.metric] == "lower" else value > self.best

    def improves(self, scores: dict[str, float], step: int) -> bool:
        """Whether ``scores`` (a validation on this validator's images) beats the best; if so it becomes it."""
        value = scores[self.metric]
        if not self.better(value):
            return False
        self.best, self.best_step = value, step
        return True

    def take_up(self, rows: list[dict], best_meta: dict | None, stated: bool) -> bool:
        """A resumed run's validations so far: its image set (the last row's, unless --val-images was
        ``stated``) and its best, from the best checkpoint's own record when that was scored on the same images
        (or from val.csv's row of its step). Returns False when the best checkpoint must be scored again on this
        set (:meth:`score` it, then :meth:`improves`), because no record of it on these images exists."""
        val, step = (best_meta or {}).get("val") or {}, (best_meta or {}).get("step")
        if rows or val:
            self.may_cut = False  # the run's first validation is behind it
            if not stated:  # the set of its rows, or of its best (rows after the saved step are gone)
                self.images = min(int(rows[-1]["images"] if rows else val.get("images", self.images)),
                                  len(self.pairs))
        if not best_meta:
            return True
        value = val.get("value") if val.get("metric") == self.metric else None
        images = val.get("images")
        if images is None:  # a best written before its images were recorded: its val.csv row says
            row = next((r for r in rows if r["step"] == step and self.metric in r), None)
            value, images = (row[self.metric], row["images"]) if row else (None, None)
        if value is None or int(images) != self.images:
            return False
        self.best, self.best_step = value, step
        return True

    @torch.no_grad()
    def score(self, G: nn.Module, device: torch.device, train_seconds: float | None = None,
              cancelled: Callable[[], bool] = lambda: False) -> dict[str, float] | None:
        """The val metrics of ``G`` now, on this validator's images (``images``; ``count``: those that could be
        read). ``train_seconds``: training time since the last validation (None: score without timing it
        against training, e.g. the best checkpoint scored again after a resume). None when ``cancelled()``
        turned true on the way (a signal: the run is stopping)."""
        start = time.perf_counter()
        outputs = self._translate(G, device, cancelled)
        if outputs is None:
            return None
        metrics = self._metrics(outputs)
        seconds = time.perf_counter() - start
        metrics["seconds"], metrics["images"] = round(seconds, 3), self.images
        if train_seconds is None:
            return metrics
        self.seconds, self.runs = self.seconds + seconds, self.runs + 1
        cut = self.may_cut and train_seconds > 0 and seconds > BUDGET * train_seconds and self.images > self.fewest
        self.may_cut = False
        if cut:
            keep = max(self.fewest, int(self.images * BUDGET * train_seconds / seconds))
            log.warning(f"validation took {seconds:.1f} s against {train_seconds:.1f} s of training; it and every "
                        f"later one score the first {keep} of {self.images} val images (set --val-images or "
                        "--val-every)")
            self.images = keep
            # This one is recorded on those images too, so that every score and the best compare like with like.
            metrics = self._metrics([o for o in outputs if o[2] < keep]) | {"seconds": metrics["seconds"],
                                                                             "images": keep}
        return metrics

    def _translate(self, G: nn.Module, device: torch.device, cancelled: Callable[[], bool]) -> list | None:
        """(output, target, index) of each val pair, as (C, H, W) in [-1, 1]: a copy of G with plain batch norms
        (no collective), in test mode, under the fixed seed in a forked RNG. An unreadable val image is left out
        (said once); None if ``cancelled()`` turns true."""
        from .distributed import plain_batch_norm

        net = set_test_mode(plain_batch_norm(copy.deepcopy(G)).float(), eval=False)
        dataset = PairDataset(self.pairs[:self.images], self.data_cfg, *self.channels, train=False,
                              scales=self.scales)
        outputs = []
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(SEED)
            for i in range(len(dataset)):
                if cancelled():
                    return None
                item = dataset[i]
                if "error" in item:
                    if item["error"] not in self.unreadable:
                        self.unreadable.add(item["error"])
                        log.warning(f"validation leaves out an unreadable val image: {item['error']}")
                    continue
                y = net(item["A"][None].to(device, memory_format=torch.contiguous_format))[0].float().cpu()
                outputs.append((y, item["B"], i))
        return outputs

    def _metrics(self, outputs: list) -> dict[str, float]:
        metrics = image_metrics([(_hwc01(y), _hwc01(b)) for y, b, _ in outputs])
        if self.segmenter is not None:
            photos = ((Image.fromarray(_u8(y)), self.truths[i]) for y, _, i in outputs)
            metrics |= self.segmenter.score(photos)
        if self.features is not None:
            metrics |= fid_kid([_u8(y) for y, _, _ in outputs], [_u8(b) for _, b, _ in outputs], self.features)
        return metrics


def best_record(path: Path) -> dict | None:
    """The metadata of a best checkpoint (its step and ``val`` record) without reading its weights."""
    if not path.exists():
        return None
    meta = read_metadata(path)
    return {k: meta[k] for k in ("step", "val") if k in meta}


def _u8(t: torch.Tensor) -> np.ndarray:
    """(H, W, C) uint8, as the images 'pix2pix test' writes."""
    arr = from_unit(t).permute(1, 2, 0).numpy()
    return arr[..., 0] if arr.shape[2] == 1 else arr


def _hwc01(t: torch.Tensor) -> np.ndarray:
    return ((t.clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy().astype(np.float64)
