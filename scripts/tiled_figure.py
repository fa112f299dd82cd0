"""The README's tiling figure: a mosaic of label maps translated whole and tile by tile (eval mode), and their
difference, with the PSNR between the two.

    python scripts/tiled_figure.py --checkpoint RUN --data DATASET --out docs/tiled.png [--tile 512 --overlap P]

The mosaic is 3 x 4 label maps (the right halves of the first aligned val images of DATASET, labels -> photo).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--tile", type=int, default=512)
    p.add_argument("--overlap", type=int, help="default: translate's")
    args = p.parse_args()
    files = sorted((Path(args.data) / "val").glob("*.*"), key=lambda f: f.name)[:12]
    halves = [np.asarray(Image.open(f).convert("RGB").resize((512, 256)))[:, 256:] for f in files]
    mosaic = np.concatenate([np.concatenate(halves[r * 4:(r + 1) * 4], 1) for r in range(3)], 0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        Image.fromarray(mosaic).save(tmp / "mosaic.png")
        outs = {}
        for name, flags in (("whole", []), ("tiled", ["--tile", str(args.tile)] + (["--overlap", str(args.overlap)] if args.overlap is not None else []))):
            subprocess.run([sys.executable, "-m", "pix2pix", "translate", "--checkpoint", args.checkpoint, "--input",
                            str(tmp / "mosaic.png"), "--output", str(tmp / name), "--eval", *flags], check=True,
                           stdout=subprocess.DEVNULL)
            outs[name] = np.asarray(Image.open(tmp / name / "mosaic.png"), np.float64)
    diff = np.abs(outs["tiled"] - outs["whole"])
    psnr = 10 * np.log10(255 ** 2 / max((diff ** 2).mean(), 1e-12))
    gap = np.full((mosaic.shape[0], 8, 3), 255, np.uint8)
    row = np.concatenate([mosaic, gap, outs["tiled"].astype(np.uint8), gap,
                          (255 - np.clip(diff * 8, 0, 255)).astype(np.uint8)], 1)
    Image.fromarray(row).resize((row.shape[1] // 2, row.shape[0] // 2), Image.LANCZOS).save(args.out, quality=88)
    print(f"{args.out}: tiled ({args.tile}, overlap {'default' if args.overlap is None else args.overlap}) against whole: PSNR {psnr:.1f} dB, "
          f"largest difference {diff.max():.0f} levels")


if __name__ == "__main__":
    main()
