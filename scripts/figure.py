"""Compose README figures from results folders: one row per image, one column per (folder, kind, caption).

    python scripts/figure.py --out docs/demo.png --stems 1 2 3 4 \
        --column "runs/demo/results/val/images:input:labels (input)" \
        --column "runs/demo/results/val/images:output:L1+cGAN (output)" \
        --column "runs/demo/results/val/images:target:photo (target)"
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw

TILE, PAD, HEADER = 128, 6, 16


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--stems", nargs="+", required=True, help="image names: FOLDER/STEM_KIND.png")
    p.add_argument("--column", action="append", required=True, help="FOLDER:KIND:CAPTION")
    args = p.parse_args()
    columns = [c.split(":", 2) for c in args.column]
    fig = Image.new("RGB", (len(columns) * (TILE + PAD) - PAD, HEADER + len(args.stems) * (TILE + PAD) - PAD), "white")
    draw = ImageDraw.Draw(fig)
    for c, (folder, kind, caption) in enumerate(columns):
        draw.text((c * (TILE + PAD) + 2, 2), caption, fill="black")
        for r, stem in enumerate(args.stems):
            tile = Image.open(Path(folder) / f"{stem}_{kind}.png").convert("RGB").resize((TILE, TILE))
            fig.paste(tile, (c * (TILE + PAD), HEADER + r * (TILE + PAD)))
    fig.save(args.out)


if __name__ == "__main__":
    main()
