"""Training speed on arrays against images of the same size, side by side in one process (the README's figure).

    python scripts/arrays_speed.py [--steps 60] [--rounds 2]

Three two-folder datasets of 48 pairs at 128 x 128, trained with the demo's networks (unet_128, ngf/ndf 32,
the paper's jitter at 143 -> 128, batch 1) from loader processes (--preload no, --workers 2):
RGB PNG -> RGB PNG, 3-band float32 .npy -> 3-band .npy, and 5-band .npy -> 2-band .npy. It also times the data
path alone (one process decoding, resizing, cropping and scaling examples), to say whether loading could
keep up with the step.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from pix2pix.cli import main
from pix2pix.config import DataConfig
from pix2pix.data.pairs import PairDataset, fit_scales, scan_split

SIZE, PAIRS = 128, 48


def make(root: Path, kind: str) -> tuple[Path, int, int]:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    bands = {"png": (3, 3), "npy3": (3, 3), "npy5to2": (5, 2)}[kind]
    for side in "AB":
        (root / side / "train").mkdir(parents=True)
    for i in range(PAIRS):
        a = np.stack([np.sin(5 * xx + rng.uniform(0, 6)) * yy + rng.normal(0, 0.05, xx.shape)
                      for _ in range(bands[0])], 2)
        b = np.stack([a.mean(2) * (k + 1) for k in range(bands[1])], 2)
        if kind == "png":
            u8 = lambda x: np.clip((x + 1) * 120, 0, 255).astype(np.uint8)  # noqa: E731
            Image.fromarray(u8(a)).save(root / "A" / "train" / f"{i}.png")
            Image.fromarray(u8(b / 3)).save(root / "B" / "train" / f"{i}.png")
        else:
            np.save(root / "A" / "train" / f"{i}.npy", (a * 1000).astype(np.float32))
            np.save(root / "B" / "train" / f"{i}.npy", (b * 1000).astype(np.float32))
    return root, *bands


def train_rate(data: Path, channels: tuple[int, int], out: Path, steps: int) -> float:
    argv = ["train", "--data", str(data), "--runs", str(out), "--name", f"r{time.monotonic_ns()}",
            "--generator", "unet_128", "--ngf", "32", "--ndf", "32", "--crop-size", "128", "--load-size", "143",
            "--in-channels", str(channels[0]), "--out-channels", str(channels[1]), "--preload", "no",
            "--workers", "2", "--max-steps", str(steps), "--val-every", "0", "--log-every", "20",
            "--sample-every", "100000", "--no-progress"]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(argv) == 0
    return float(re.search(r"\(([\d.]+) images/s\)", buf.getvalue()).group(1))


def load_rate(data: Path, channels: tuple[int, int], items: int = 96) -> float:
    cfg = DataConfig(root=str(data), load_size=143, crop_size=128)
    pairs, _ = scan_split(data, "train")
    ds = PairDataset(pairs, cfg, *channels, train=True, scales=fit_scales(pairs, cfg, *channels))
    start = time.perf_counter()
    for i in range(items):
        ds[(i // len(pairs), i % len(pairs))]
    return items / (time.perf_counter() - start)


def run() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sets = {kind: make(Path(tmp) / kind, kind) for kind in ("png", "npy3", "npy5to2")}
        train = {k: [] for k in sets}
        for _ in range(args.rounds):  # interleaved, so that the machine's drift hits every kind alike
            for kind, (root, *ch) in sets.items():
                train[kind].append(train_rate(root, tuple(ch), Path(tmp) / "runs", args.steps))
        loads = {kind: load_rate(root, tuple(ch)) for kind, (root, *ch) in sets.items()}
    print(f"{'data':<10}{'train img/s':>12}{'one loader process, examples/s':>34}")
    for kind in sets:
        print(f"{kind:<10}{statistics.median(train[kind]):>12.2f}{loads[kind]:>34.1f}")


if __name__ == "__main__":
    sys.exit(run())
