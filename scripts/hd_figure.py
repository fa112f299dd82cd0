"""The README's high-resolution figure: pix2pixHD's two stages at CPU scale on an aligned labels|photo dataset, and a
grid of held-out label maps through each stage.

    python scripts/hd_figure.py --data ../shared/data/facades --minutes 8 --local-minutes 10 --runs /tmp/hd --out docs/hd.jpg

Stage 1 trains ``global`` (ngf 16) at half size (128 px wide, scale_width) for --minutes; stage 2 ``local``
(ngf 8) at full size (256 px) from stage 1, its global part fixed for the first epoch, for --local-minutes.
The last --val images of train/ are held out (a dataset without val/), in a folder of links next to the runs.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from pix2pix.checkpoints import load_checkpoint
from pix2pix.cli import main as pix2pix
from pix2pix.inference.translate import Translator
from pix2pix.pages import image_grid


def held_out(data: Path, into: Path, val: int) -> Path:
    files = sorted((data / "train").glob("*.*"), key=lambda f: f.name)
    for split, chosen in (("train", files[:-val]), ("val", files[-val:])):
        (into / split).mkdir(parents=True, exist_ok=True)
        for f in chosen:
            link = into / split / f.name
            if not link.exists():
                link.symlink_to(f.resolve())
    return into


def translate(run: Path, label: np.ndarray, size: int) -> np.ndarray:
    small = Image.fromarray(label).resize((size, size), Image.BICUBIC)
    out = Translator.load(run, eval=True, engine="torch")(small)
    return np.asarray(out.resize((256, 256), Image.NEAREST))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--runs", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--minutes", type=float, default=8.0, help="for the global stage")
    p.add_argument("--local-minutes", type=float, default=10.0, help="for the local stage")
    p.add_argument("--val", type=int, default=20)
    p.add_argument("--rows", type=int, default=4)
    args = p.parse_args()
    runs = Path(args.runs)
    data = held_out(Path(args.data), runs / "data", args.val)
    common = ["train", "--data", str(data), "--runs", str(runs), "--direction", "BtoA", "--ndf", "32",
              "--preprocess", "scale_width", "--workers", "1", "--epochs", "1000", "--epochs-decay", "0",
              "--val-every", "0", "--log-every", "50", "--sample-every", "10000", "--no-progress"]
    if not (runs / "global" / "checkpoints" / "latest.safetensors").exists():
        assert pix2pix(common + ["--name", "global", "--generator", "global", "--ngf", "16", "--load-size", "128",
                                 "--crop-size", "128", "--minutes", str(args.minutes)]) == 0
    if not (runs / "local" / "checkpoints" / "latest.safetensors").exists():
        assert pix2pix(common + ["--name", "local", "--generator", "local", "--init-from", str(runs / "global"),
                                 "--load-size", "256", "--crop-size", "256", "--fix-global-epochs", "1",
                                 "--minutes", str(args.local_minutes)]) == 0
    rows = []
    for f in sorted((data / "val").glob("*.*"), key=lambda f: f.name)[:args.rows]:
        ab = np.asarray(Image.open(f).convert("RGB"))
        photo, label = ab[:, :256], ab[:, 256:]
        rows.append((f.stem, [label, translate(runs / "global", label, 128), translate(runs / "local", label, 256),
                              photo]))
    out = Path(args.out)
    if out.suffix.lower() in (".jpg", ".jpeg"):  # a photo grid: a JPEG is a fifth of the PNG
        with tempfile.TemporaryDirectory() as tmp:
            Image.open(image_grid(Path(tmp) / "grid.png", rows, cell=2.0)).convert("RGB").save(out, quality=88)
    else:
        image_grid(out, rows, cell=2.0)
    steps = {name: load_checkpoint(runs / name).meta["step"] for name in ("global", "local")}
    print(f"wrote {args.out}: columns labels | global (128 px, shown at 256) | local (256 px) | photo; "
          f"{args.minutes:g} + {args.local_minutes:g} minutes; steps: {steps}")


if __name__ == "__main__":
    main()
