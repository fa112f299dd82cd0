"""The training split as batches: the epoch order (and each process's share of it under torchrun), the
loader that decodes in worker processes, and the split held decoded on the device (``--preload``).

Unreadable images travel through the loader as error records and are raised (or skipped, with
``--skip-bad-images``) in the main process. Both sources give the same batches bit for bit: crop and flip
are drawn from (seed, epoch, index) either way.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from ..config import DataConfig
from .pairs import Pair, PairDataset, crops, draw_jitter, jitter_rng, load_pair, load_scaled_pair, resize_pair
from .rasters import Raster, as_array
from .units import EIGHT_BIT, Scales
from ..errors import Pix2PixError
from ..speed import device_free_bytes


def collate(items: list[dict]) -> dict:
    """Stack good examples; carry the bad ones' messages along as ``errors``."""
    good = [it for it in items if "error" not in it]
    batch: dict = {"errors": [it["error"] for it in items if "error" in it], "paths": [it["path"] for it in good]}
    if good:
        shapes = {tuple(it["A"].shape) for it in good} | {tuple(it["B"].shape) for it in good}
        if len({s[1:] for s in shapes}) > 1:
            batch["errors"].append(f"{good[0]['path']}: images in one batch differ in size; use --batch-size 1 "
                                   "or a --preprocess that crops to --crop-size")
            return batch | {"paths": []}
        batch["A"] = torch.stack([it["A"] for it in good])
        batch["B"] = torch.stack([it["B"] for it in good])
    return batch


class EpochSampler(Sampler):
    """Yields (epoch, index) for one epoch: a permutation drawn from (seed, epoch), from position ``start``.

    ``share`` picks this process's part of an epoch's order: under torchrun each process takes its share of
    every global batch (``distributed.rank_share``), so N processes at batch B see, step by step, the examples
    one process at batch N * B sees. Without it, a process takes the whole order."""

    def __init__(self, n: int, seed: int, shuffle: bool = True, share=None):
        self.n, self.seed, self.shuffle, self._share = n, seed, shuffle, share
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.n)
        return np.random.default_rng([self.seed, epoch, 1]).permutation(self.n)

    def share(self, epoch: int) -> np.ndarray:
        """This process's examples of ``epoch``, in order."""
        order = self.order(epoch)
        return order if self._share is None else self._share(order)

    def __iter__(self):
        for i in self.share(self.epoch)[self.start:]:
            yield self.epoch, int(i)

    def __len__(self) -> int:
        return len(self.share(self.epoch)) - self.start


class PreloadedPairs:
    """The training split decoded and resized once and held on the training device (``--preload``: 8-bit data
    as uint8, other data as float32 in its units), scaled to [-1, 1] batch by batch;
    each batch is cropped and flipped there with the draws :class:`PairDataset` makes, from (seed, epoch,
    index), so the batches are bit-identical to the loader's, without decoding or worker processes."""

    def __init__(self, pairs: list[Pair], cfg: DataConfig, in_channels: int, out_channels: int, seed: int,
                 device: torch.device, threads: int = 4, scales: Scales = EIGHT_BIT):
        from concurrent.futures import ThreadPoolExecutor  # Pillow releases the GIL while decoding

        self.pairs, self.cfg, self.seed, self.device, self.scales = pairs, cfg, seed, device, scales

        def decode(pair: Pair) -> tuple[np.ndarray, np.ndarray]:
            sides = load_scaled_pair(pair, cfg.direction, in_channels, out_channels, scales, cfg.label_nc)
            a, b = resize_pair(*sides, cfg, train=True)
            return _chw(a), _chw(b)

        with ThreadPoolExecutor(max(1, threads)) as pool:
            arrays = list(pool.map(decode, pairs))
        sizes = {(a.shape[1:], b.shape[1:]) for a, b in arrays}
        if len(sizes) > 1:
            raise Pix2PixError("--preload needs every training pair at one size after --preprocess "
                               f"{cfg.preprocess}; these differ ({len(sizes)} sizes): use --preload no")
        self.A = torch.from_numpy(np.stack([a for a, _ in arrays])).to(device)
        self.B = torch.from_numpy(np.stack([b for _, b in arrays])).to(device)

    @staticmethod
    def estimate_bytes(pair: Pair, n: int, cfg: DataConfig, in_channels: int, out_channels: int) -> int:
        """Memory for ``n`` pairs like ``pair`` after the resize."""
        a, b = resize_pair(*load_pair(pair, cfg.direction, in_channels, out_channels, label_nc=cfg.label_nc), cfg,
                           train=True)
        return n * (_chw(a).nbytes + _chw(b).nbytes)

    def batches(self, sampler: EpochSampler, batch_size: int):
        """Like iterating a loader over ``sampler``: dicts with A and B (B, C, crop, crop) in [-1, 1]."""
        indices = [i for _, i in sampler]
        c, (h, w) = self.cfg.crop_size, self.A.shape[2:]
        for k in range(0, len(indices), batch_size):
            chosen = indices[k:k + batch_size]
            a_list, b_list = [], []
            for i in chosen:
                x, y, flip = draw_jitter(self.cfg, w, h, jitter_rng(self.seed, sampler.epoch, i), self.pairs[i].a)
                a, b = self.A[i], self.B[i]
                if crops(self.cfg):
                    a, b = a[:, y:y + c, x:x + c], b[:, y:y + c, x:x + c]
                if flip:
                    a, b = a.flip(-1), b.flip(-1)
                a_list.append(a)
                b_list.append(b)
            yield {"A": self.scales.input.to_unit(torch.stack(a_list)),
                   "B": self.scales.output.to_unit(torch.stack(b_list)), "errors": [],
                   "paths": [str(self.pairs[i].a) for i in chosen]}


def _chw(x: Raster) -> np.ndarray:
    """(C, H, W): uint8 for 8-bit data, float32 units for any other."""
    arr = as_array(x)
    return np.ascontiguousarray(arr.transpose(2, 0, 1), dtype=np.uint8 if arr.dtype == np.uint8 else np.float32)


def make_loader(dataset: PairDataset, batch_size: int, workers: int, sampler: Sampler | None = None,
                pin_memory: bool = False) -> DataLoader:
    return DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, shuffle=False, num_workers=workers,
        collate_fn=collate, pin_memory=pin_memory, persistent_workers=workers > 0,
        # A private generator: creating an iterator must not consume the global RNG that drives dropout.
        generator=torch.Generator().manual_seed(0),
    )


class TrainingBatches:
    """The training split as batches, epoch after epoch, from wherever it is cheapest: held on the device
    (``--preload``) or decoded by loader processes. :meth:`stream` yields the batches that hold images, each
    with its place in its epoch, so that the loop can count steps and mark epoch ends without knowing which."""

    def __init__(self, pairs: list[Pair], cfg: DataConfig, in_channels: int, out_channels: int, seed: int,
                 device: torch.device, fast: bool, share=None, bad_images: bool = False,
                 scales: Scales = EIGHT_BIT):
        self.cfg = cfg
        self.sampler = EpochSampler(len(pairs), seed, share=share)
        self.preloaded = None if bad_images else _preload(pairs, cfg, in_channels, out_channels, seed, device, fast,
                                                          scales)
        if self.preloaded is None:
            dataset = PairDataset(pairs, cfg, in_channels, out_channels, train=True, seed=seed, scales=scales)
            self.loader = make_loader(dataset, cfg.batch_size, cfg.workers, self.sampler,
                                      pin_memory=device.type == "cuda")

    def epoch(self, epoch: int, start_batch: int = 0):
        """The batches of ``epoch`` from batch ``start_batch`` on (a resume starts mid-epoch)."""
        self.sampler.set_epoch(epoch, start_batch * self.cfg.batch_size)
        return self.preloaded.batches(self.sampler, self.cfg.batch_size) if self.preloaded else iter(self.loader)

    def stream(self, epoch: int, start_batch: int, epochs: int, on_errors):
        """Yield ``(batch, epoch, batches done in it, ends the epoch)`` for every batch of every epoch up to
        ``epochs - 1``: ``batch`` None for a batch of nothing but unreadable images (the loop takes no step for
        it, and under torchrun no process does, so that they stay in step), and ``(None, epoch, done, True)`` for
        an epoch that a resume starts at the end of. ``on_errors(messages)`` sees each batch's unreadable images
        as the batch comes (it raises, or records them for --skip-bad-images)."""
        for e in range(epoch, epochs):
            done = start_batch if e == epoch else 0
            batches = self.epoch(e, done)
            total = done + -(-len(self.sampler) // self.cfg.batch_size)  # the batches of this epoch, all told
            ended = False
            for batch in batches:
                done += 1
                if batch["errors"]:
                    on_errors(batch["errors"])
                ended = done == total
                yield (batch if "A" in batch else None), e, done, ended
            if not ended:
                yield None, e, done, True


def _preload(pairs: list[Pair], cfg: DataConfig, in_channels: int, out_channels: int, seed: int,
             device: torch.device, fast: bool, scales: Scales) -> PreloadedPairs | None:
    """The training split held on the device when --preload says so, or (auto) on the fast path when it
    takes at most a quarter of the device's free memory (an eighth of RAM on the CPU)."""
    if cfg.preload == "no" or (cfg.preload == "auto" and not fast):
        return None
    try:
        need = PreloadedPairs.estimate_bytes(pairs[0], len(pairs), cfg, in_channels, out_channels)
    except Pix2PixError:
        if cfg.preload == "yes":
            raise
        return None  # the loader reports the bad image (or skips it) as usual
    if need > device_free_bytes(device) // (4 if device.type == "cuda" else 8):
        if cfg.preload == "yes":
            raise Pix2PixError(f"--preload yes: the training split needs {need / 2**30:.1f} GiB on "
                               f"{device.type}, more than it can spare; use --preload auto or no")
        return None
    try:
        return PreloadedPairs(pairs, cfg, in_channels, out_channels, seed, device, threads=max(1, cfg.workers),
                              scales=scales)
    except Pix2PixError:
        if cfg.preload == "yes":
            raise
        return None
