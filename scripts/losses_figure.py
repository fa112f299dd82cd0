"""The README's "Reading the losses" figures from a run folder: its losses over steps, and its val L1.

    python scripts/losses_figure.py runs/demo docs/losses.png docs/val.png
"""

from __future__ import annotations

import sys
from pathlib import Path

from pix2pix.pages import line_plot
from pix2pix.training.runs import read_log


def main() -> None:
    run, losses_png, val_png = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    rows = read_log(run / "losses.csv")
    series = {"D (halved BCE)": [(r["step"], r["D"]) for r in rows],
              "G_gan (BCE)": [(r["step"], r["G_gan"]) for r in rows],
              "G_l1 / 100 (mean |G(x) - y|)": [(r["step"], r["G_l1"] / 100) for r in rows]}
    line_plot(losses_png, series, f"{run.name}: training losses (mean of each log interval)")
    val = read_log(run / "val.csv")
    line_plot(val_png, {"val L1": [(r["step"], r["l1"]) for r in val]}, f"{run.name}: val L1 at each epoch's end")


if __name__ == "__main__":
    main()
