"""Peak memory of `pix2pix translate --tile` on a large input, against the input's own size.

    python scripts/tiled_memory.py [--side 12000] [--tile 512] [--kinds png npy tiff4] [--engine auto] [--ngf 8]

Makes a model (unet_256, ngf 8 unless --ngf says, a few steps on procedural facades), then for each kind of input of
SIDE x SIDE pixels (an RGB PNG mosaic of label maps, the same as an RGB uint8 .npy, a 4-band float32 TIFF),
runs `pix2pix translate --tile TILE --eval` in a child process and reports its peak resident memory
(the child's own rusage, from wait4) and time. Files go to a temporary folder that is removed at the end.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def mosaic(side: int, channels: int, dtype) -> np.ndarray:
    """A SIDE x SIDE image of random blocks (label-map-like: compresses well as PNG), built row by row."""
    rng = np.random.default_rng(0)
    out = np.empty((side, side, channels), dtype)
    for y in range(0, side, 64):
        colours = rng.integers(0, 255, (side // 64 + 1, channels))
        out[y:y + 64] = np.repeat(colours, 64, 0)[:side][None].astype(dtype)
    return out


def model(folder: Path, channels: int, ngf: int) -> Path:
    from pix2pix.cli import main
    from pix2pix.datasets.facades_synth import make_facades_synth

    if channels == 3:
        data = make_facades_synth(folder / "data", train=4, val=0, test=0, size=64, progress=False)
        flags = []
    else:
        data = folder / "bands"
        for side in ("A", "B"):
            (data / side / "train").mkdir(parents=True)
            for i in range(4):
                np.save(data / side / "train" / f"{i}.npy", np.random.default_rng(i).random((64, 64, channels if
                        side == "A" else 1)).astype(np.float32))
        flags = ["--in-channels", str(channels), "--out-channels", "1", "--preprocess", "none"]
    assert main(["train", "--data", str(data), "--runs", str(folder / "runs"), "--name", f"m{channels}",
                 "--generator", "unet_256", "--ngf", str(ngf), "--ndf", "8", "--crop-size", "64", "--load-size", "64",
                 "--max-steps", "2", "--no-progress", "--val-every", "0", *flags]) == 0
    return folder / "runs" / f"m{channels}"


def make_input(src: Path, kind: str, side: int) -> None:
    if kind == "png":
        from PIL import Image

        Image.fromarray(mosaic(side, 3, np.uint8)).save(src, compress_level=1)
    elif kind == "npy":
        np.save(src, mosaic(side, 3, np.uint8))
    else:
        import tifffile

        tifffile.imwrite(src, mosaic(side, 4, np.float32) / 255, photometric="minisblack", planarconfig="contig")


def child(*argv: str) -> None:
    """Work that would swell this process (a child inherits its parent's peak at fork, so the parent stays
    small: torch is never imported here)."""
    subprocess.run([sys.executable, __file__, *argv], check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--side", type=int, default=12000)
    p.add_argument("--tile", type=int, default=512)
    p.add_argument("--kinds", nargs="+", default=["png", "npy", "tiff4"])
    p.add_argument("--engine", default="auto", help="translate's --engine")
    p.add_argument("--ngf", type=int, default=8, help="the model's width")
    p.add_argument("--make", nargs=3, metavar=("WHAT", "PATH", "KIND"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.make:
        what, path, kind = args.make
        if what == "model":
            model(Path(path), 4 if kind == "tiff4" else 3, args.ngf)
        else:
            make_input(Path(path), kind, args.side)
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for kind in args.kinds:
            (tmp / kind).mkdir()
            child("--ngf", str(args.ngf), "--make", "model", str(tmp / kind), kind)
            run = tmp / kind / "runs" / f"m{4 if kind == 'tiff4' else 3}"
            src = tmp / kind / f"big.{'tif' if kind == 'tiff4' else kind}"
            child("--side", str(args.side), "--make", "input", str(src), kind)
            start = time.perf_counter()
            proc = subprocess.Popen([sys.executable, "-m", "pix2pix", "translate", "--checkpoint", str(run),
                                     "--input", str(src), "--output", str(tmp / kind / "out"), "--eval", "--tile",
                                     str(args.tile), "--engine", args.engine], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE)
            _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak, not the largest of all so far
            seconds = time.perf_counter() - start
            if status:
                raise SystemExit(proc.stderr.read().decode())
            said = [line for line in proc.stdout.read().decode().splitlines() if "compil" in line]
            print(f"{kind}: {args.side}x{args.side}, input file {src.stat().st_size / 2**30:.2f} GiB, tile "
                  f"{args.tile}, ngf {args.ngf}, engine {args.engine}: {seconds:.0f} s, peak RSS {usage.ru_maxrss / 2**20:.2f} GiB"
                  + (f" ({'; '.join(said)})" if said else ""), flush=True)

if __name__ == "__main__":
    main()
