"""`pix2pix ablate`: the paper's ablation tables, trained and scored here with one budget, one seed and one
segmenter for every configuration.

* ``losses`` (Table 1): L1, GAN, cGAN, L1+GAN, L1+cGAN with the U-Net and the 70x70 PatchGAN;
* ``generators`` (Figure 5's table): encoder-decoder and U-Net, each with L1 and with L1+cGAN;
* ``discriminators`` (Table 3): L1+cGAN with 1x1, 16x16, 70x70 and 286x286 discriminators;
* ``hd``: the U-Net with one PatchGAN against pix2pixHD's global generator with one PatchGAN and with the
  multi-scale D, then each of its loss terms taken away or added (feature matching, L1).

Each configuration starts from the same CPU-sized recipe as the demo (:func:`pix2pix.config.cpu_recipe`)
and differs only in what its row names. Output in ``OUT``: ``ablation.md`` (the paper's layout, its numbers
beside ours), ``ablation.csv``, ``samples.png`` (the same inputs in every row) and ``scores.png``.
"""

from __future__ import annotations

import csv
import io
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from .config import RunConfig
from .networks import HD_GENERATORS
from .errors import Pix2PixError
from .files import write_text
from .evaluation.metrics import evaluate_run
from .pages import image_grid, score_bars
from .evaluation.segmentation import Segmenter, SegmenterConfig, evaluate_segmenter, train_segmenter
from .training.planning import plan_epochs, steps_in_minutes
from .training import train

FCN_KEYS = ("per_pixel_acc", "per_class_acc", "class_iou")
SAMPLE_COLUMNS = 6


@dataclass(frozen=True)
class Row:
    label: str  # as the paper prints it
    objective: str = "l1+cgan"
    generator: str = "unet"  # unet, encoder_decoder (at the crop size), or pix2pixHD's global
    discriminator: str = "patch70"
    paper: tuple[float, float, float] | None = None  # the paper's FCN-scores on Cityscapes labels -> photo
    lambda_feat: float | None = None  # None: the configuration's (feature matching where D is multiscale)


TABLES: dict[str, tuple[str, list[Row]]] = {
    "losses": ("Loss", [
        Row("L1", "l1", paper=(0.42, 0.15, 0.11)),
        Row("GAN", "gan", paper=(0.22, 0.05, 0.01)),
        Row("cGAN", "cgan", paper=(0.57, 0.22, 0.16)),
        Row("L1+GAN", "l1+gan", paper=(0.64, 0.20, 0.15)),
        Row("L1+cGAN", "l1+cgan", paper=(0.66, 0.23, 0.17)),
    ]),
    "generators": ("Generator (loss)", [
        Row("Encoder-decoder (L1)", "l1", "encoder_decoder", paper=(0.35, 0.12, 0.08)),
        Row("Encoder-decoder (L1+cGAN)", "l1+cgan", "encoder_decoder", paper=(0.29, 0.09, 0.05)),
        Row("U-Net (L1)", "l1", paper=(0.48, 0.18, 0.13)),
        Row("U-Net (L1+cGAN)", "l1+cgan", paper=(0.55, 0.20, 0.14)),
    ]),
    "discriminators": ("Discriminator receptive field", [
        Row("1x1", discriminator="pixel", paper=(0.39, 0.15, 0.10)),
        Row("16x16", discriminator="patch16", paper=(0.65, 0.21, 0.17)),
        Row("70x70", discriminator="patch70", paper=(0.66, 0.23, 0.17)),
        Row("286x286", discriminator="patch286", paper=(0.42, 0.16, 0.11)),
    ]),
    "hd": ("Networks (loss)", [
        Row("U-Net + PatchGAN (L1+cGAN)", paper=(0.66, 0.23, 0.17)),
        Row("global + PatchGAN (L1+cGAN)", generator="global"),
        Row("global + multi-scale D (cGAN+FM)", "cgan", "global", "multiscale"),
        Row("global + multi-scale D (cGAN)", "cgan", "global", "multiscale", lambda_feat=0.0),
        Row("global + multi-scale D (L1+cGAN+FM)", "l1+cgan", "global", "multiscale"),
    ]),
}
PAPER_GROUND_TRUTH = (0.80, 0.26, 0.21)


def slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def row_config(base: RunConfig, row: Row, out: Path, steps: int) -> RunConfig:
    """``base`` changed only where ``row`` says, trained for ``steps`` with the paper's schedule shape (half at
    a constant lr, half decaying to zero)."""
    cfg = base.copy()
    cfg.name, cfg.out = slug(row.label), str(out / "runs")
    cfg.train.objective = row.objective
    if row.generator in HD_GENERATORS:  # pix2pixHD's recipe: its family's norm, no dropout, LSGAN
        cfg.generator.arch = row.generator
        cfg.generator.norm = cfg.generator.dropout = cfg.discriminator.norm = cfg.train.gan_loss = None
    else:
        cfg.generator.arch = f"{row.generator}_{cfg.data.crop_size}"
    cfg.discriminator.arch = row.discriminator
    if row.lambda_feat is not None:
        cfg.train.lambda_feat = row.lambda_feat
    cfg.train.epochs = cfg.train.epochs_decay = plan_epochs(cfg, steps, nearest=True)
    cfg.train.max_steps = steps
    cfg.train.max_minutes = None
    return cfg


def plan_steps(base: RunConfig, rows: list[Row], minutes: float) -> int:
    """Steps that fit ``minutes`` for the slowest row (the one with the largest discriminator)."""
    slowest = max(rows, key=lambda r: (r.objective != "l1", r.generator in HD_GENERATORS,
                                       r.discriminator in ("patch286", "multiscale"), r.discriminator))
    return steps_in_minutes(row_config(base, slowest, Path(base.out), steps=1), minutes, timings=2)


def run_ablation(base: RunConfig, table: str, out: Path, steps: int | None = None, minutes: float | None = None,
                 split: str | None = None, segmenter: Path | None = None, segmenter_minutes: float = 5.0,
                 progress: bool = True) -> Iterator[str]:
    """Train and score every row of ``table``; write the report files into ``out``. Yields report lines."""
    from tqdm import tqdm

    if table not in TABLES:
        raise Pix2PixError(f"unknown table {table!r}; choose one of {', '.join(TABLES)}")
    if (steps is None) == (minutes is None):
        raise Pix2PixError("give the budget per configuration as --steps N or as --minutes M (one of them)")
    heading, rows = TABLES[table]
    data = Path(base.data.root)
    split = split or ("test" if (data / "test").is_dir() else "val")
    out.mkdir(parents=True, exist_ok=True)

    if segmenter is None:
        seg_path = out / "segmenter.safetensors"
        if seg_path.exists():
            seg = Segmenter.load(seg_path)
            yield f"using the segmenter trained earlier in {seg_path}"
        else:
            yield f"training the segmenter on the real photos of {data} ({segmenter_minutes:g} min)..."
            seg_cfg = SegmenterConfig(arch=f"unet_{base.data.crop_size}", size=base.data.crop_size,
                                      direction=base.data.direction)
            seg = train_segmenter(data, seg_path, seg_cfg, minutes=segmenter_minutes, progress=progress)
    else:
        seg = Segmenter.load(segmenter)
    truth = evaluate_segmenter(seg, data, split, progress=False)
    yield "segmenter on the real photos (ground truth row): " + _fcn_text(truth)

    if steps is None:
        steps = plan_steps(base, rows, minutes)
        half = plan_epochs(base, steps, nearest=True)
        yield f"{steps} steps per configuration, rounded to {half} + {half} epochs (planned to fit {minutes:g} minutes each here)"
    results, trained_steps = [], set()
    start = time.perf_counter()
    for i, row in enumerate(rows):
        cfg = row_config(base, row, out, steps)
        left = "" if not i else f", about {(time.perf_counter() - start) / i * (len(rows) - i) / 60:.0f} min left"
        if progress:
            tqdm.write(f"[{i + 1}/{len(rows)}] {row.label}{left}")
        trained = train(cfg, progress=progress)
        trained_steps.add(trained.step)
        metrics = evaluate_run(trained.run_dir, split, segmenter=seg, progress=False)
        results.append((row, metrics, trained.run_dir / "results" / split / "images"))
        yield f"{row.label}: {_fcn_text(metrics['fcn'])}, L1 {metrics['l1']:.4f}, sharpness {metrics['sharpness']:.2f}"

    # The schedule is whole epochs, so a budget that is not is rounded to the nearest (and capped at ``steps``).
    budget = (f"{'/'.join(map(str, sorted(trained_steps)))} steps of batch {base.data.batch_size} per configuration, "
              f"seed {base.train.seed}")
    write_report(out, table, heading, results, truth, budget, data, split)
    yield f"report: {out / 'ablation.md'}"


def _fcn_text(fcn: dict) -> str:
    return "/".join(f"{fcn[k]:.2f}" for k in FCN_KEYS) + " (per-pixel/per-class acc., class IoU)"


# ------------------------------------------------------------------------------------------- report


def write_report(out: Path, table: str, heading: str, results: list[tuple[Row, dict, Path]], truth: dict, budget: str,
                 data: Path, split: str) -> None:
    def fmt(v):
        return f"{v:.2f}" if v is not None else "–"

    lines = [f"# Ablation: {table}", "",
             f"Data: `{data}` ({split} split). Budget: {budget}. One segmenter scores every row (FCN-score: "
             "per-pixel accuracy, per-class accuracy, class IoU of its labels of the outputs against the input "
             "labels). The paper's numbers are for Cityscapes labels → photo at 256x256 after 200 epochs; compare "
             "the order of the rows, not the values.", "",
             f"| {heading} | Per-pixel acc. | Per-class acc. | Class IOU | paper | L1 | SSIM | sharpness |",
             "|---|---|---|---|---|---|---|---|"]
    for row, m, _ in results:
        paper = "/".join(fmt(v) for v in row.paper) if row.paper else "–"
        lines.append(f"| {row.label} | " + " | ".join(fmt(m["fcn"][k]) for k in FCN_KEYS) +
                     f" | {paper} | {m['l1']:.3f} | {m['ssim']:.3f} | {m['sharpness']:.2f} |")
    lines.append("| Ground truth | " + " | ".join(fmt(truth[k]) for k in FCN_KEYS) +
                 f" | {'/'.join(fmt(v) for v in PAPER_GROUND_TRUTH)} | | | 1.00 |")
    lines += ["", "![samples](samples.png)", "", "![scores](scores.png)", ""]
    write_text(out / "ablation.md", "\n".join(lines))

    table = io.StringIO(newline="")
    w = csv.writer(table)
    w.writerow(["config", *FCN_KEYS, *(f"paper_{k}" for k in FCN_KEYS), "l1", "mse", "psnr", "ssim", "sharpness"])
    for row, m, _ in results:
        w.writerow([row.label, *(f"{m['fcn'][k]:.4f}" for k in FCN_KEYS), *(row.paper or ("",) * 3),
                    *(f"{m[k]:.4f}" for k in ("l1", "mse", "psnr", "ssim", "sharpness"))])
    w.writerow(["ground truth", *(f"{truth[k]:.4f}" for k in FCN_KEYS), *PAPER_GROUND_TRUTH, 0, 0, "", 1, 1])
    write_text(out / "ablation.csv", table.getvalue())
    _plots(out, heading, results, truth, split)


def _plots(out: Path, heading: str, results: list[tuple[Row, dict, Path]], truth: dict, split: str) -> None:
    # Sample grid: the first images of the split, the same ones in every row.
    first = results[0][2]
    stems = sorted((p.name[:-len("_input.png")] for p in first.glob("*_input.png")),
                   key=lambda s: (len(s), s))[:SAMPLE_COLUMNS]
    grid = [("input", first, "input")] + [(row.label, images, "output") for row, _, images in results]
    grid.append(("ground truth", first, "target"))
    image_grid(out / "samples.png", [(label, [np.asarray(Image.open(folder / f"{stem}_{kind}.png")) for stem in stems])
                                     for label, folder, kind in grid])
    names = dict(zip(FCN_KEYS, ("per-pixel acc.", "per-class acc.", "class IoU")))
    score_bars(out / "scores.png", [row.label for row, _, _ in results],
               {names[k]: [m["fcn"][k] for _, m, _ in results] for k in FCN_KEYS},
               {names[k]: truth[k] for k in FCN_KEYS},
               f"FCN-scores on the {split} split (dashed: the real photos)", heading)
