"""Evaluation: how close translations are to their targets, how sharp, and how real (the FCN-score).

Over a split, each figure is the mean over images of the per-image figure, with images in [0, 1]:

* ``l1``, ``mse``: mean absolute and squared error per pixel and channel;
* ``psnr``: 10 log10(1 / mse) in dB, per image (an exact copy counts as 100 dB);
* ``ssim``: torchmetrics' SSIM (Gaussian window 11, sigma 1.5, data range 1);
* ``sharpness``: the outputs' mean gradient magnitude over the targets' (1 = as sharp as the real photos;
  L1-trained generators blur, so theirs is well under 1);
* ``fcn`` (with a segmenter): ``per_pixel_acc``, ``per_class_acc``, ``class_iou`` of the segmenter's labels
  of the outputs against the input labels (see :mod:`pix2pix.evaluation.segmentation`);
* ``fid``, ``kid``, ``kid_std`` (with an Inception feature extractor file, see :class:`InceptionFeatures`):
  torchmetrics' Fréchet and kernel Inception distances between outputs and targets.

Data that is not 8-bit images (arrays, 16-bit images: :func:`array_metrics`) is scored per channel: L1 and
MSE in the data's units and normalised (divided by the span of the target's scaling, so in [0, 1] like the
image figures), and PSNR with that span as the peak (the same in either unit). The FCN-score and FID/KID
score images only, and say so.
"""

from __future__ import annotations

import html
import json
import os
import warnings
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from PIL import Image
from torch import nn
from tqdm import tqdm

from ..data.pairs import list_images
from ..data.rasters import as_array, image_side, read_raster
from ..errors import Pix2PixError
from ..files import write_text
from ..data.labels import LabelSet, read_truth

PSNR_CAP = 100.0  # dB: the PSNR of an exact copy, which is otherwise infinite
INCEPTION_ENV = "PIX2PIX_INCEPTION"


def read01(path: Path) -> np.ndarray:
    """An image file as (H, W, C) float64 in [0, 1]."""
    arr = np.asarray(Image.open(path), dtype=np.float64) / 255.0
    return arr[..., None] if arr.ndim == 2 else arr


def results_l1(results_dir: Path) -> float:
    """Mean |output - target| over every ``images/STEM_output.png`` of a ``pix2pix test`` results folder."""
    outputs = sorted((Path(results_dir) / "images").glob("*_output.png"))
    if not outputs:
        raise Pix2PixError(f"{results_dir}: no *_output.png images to evaluate")
    errors = [np.abs(read01(p) - read01(p.with_name(p.name.replace("_output", "_target")))).mean() for p in outputs]
    return float(np.mean(errors))


def mean_image_l1(train_targets: Iterable[np.ndarray], eval_targets: Iterable[np.ndarray]) -> float:
    """L1 error of always predicting the per-pixel mean of the training targets (all of one size)."""
    total, count = None, 0
    for t in train_targets:
        total = t.astype(np.float64) if total is None else total + t
        count += 1
    if not count:
        raise Pix2PixError("no training targets to average for the mean-image baseline")
    mean = total / count
    return float(np.mean([np.abs(mean - t).mean() for t in eval_targets]))


# ------------------------------------------------------------------------------------ image metrics


def gradient_magnitude(img: np.ndarray) -> float:
    """Mean |grad| of an (H, W, C) image's channel mean, by forward differences over the interior."""
    g = np.asarray(img, np.float64).mean(-1)
    dx, dy = g[:-1, 1:] - g[:-1, :-1], g[1:, :-1] - g[:-1, :-1]
    return float(np.sqrt(dx * dx + dy * dy).mean())


def image_metrics(pairs: Iterable[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """L1, MSE, PSNR, SSIM and sharpness over (output, target) pairs of (H, W, C) arrays in [0, 1]."""
    from torchmetrics.functional.image import structural_similarity_index_measure as ssim

    l1, mse, psnr, ssims, g_out, g_tgt = [], [], [], [], [], []
    for out, tgt in pairs:
        d = out - tgt
        l1.append(np.abs(d).mean())
        mse.append((d * d).mean())
        psnr.append(min(PSNR_CAP, 10 * np.log10(1 / mse[-1])) if mse[-1] > 0 else PSNR_CAP)
        # fp32: 15x faster than fp64 on a CPU, within 3e-7 of it (measured on 128x128 images)
        t = [torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[None].float() for a in (out, tgt)]
        ssims.append(float(ssim(t[0], t[1], data_range=1.0)))
        g_out.append(gradient_magnitude(out))
        g_tgt.append(gradient_magnitude(tgt))
    if not l1:
        raise Pix2PixError("no images to evaluate")
    sharp = float(np.mean(g_out) / np.mean(g_tgt)) if np.mean(g_tgt) > 0 else float("nan")
    return {"l1": float(np.mean(l1)), "mse": float(np.mean(mse)), "psnr": float(np.mean(psnr)),
            "ssim": float(np.mean(ssims)), "sharpness": sharp, "count": len(l1)}


def array_metrics(pairs: Iterable[tuple[np.ndarray, np.ndarray]], spans: np.ndarray | None = None) -> dict:
    """Per channel and over channels, L1, MSE and PSNR of (output, target) (H, W, C) arrays in the data's units.
    ``spans``: per channel, the width of the target's scaling in units (:func:`scaling_spans`); None takes the
    targets' own range (max - min over every pair)."""
    pairs = [(np.asarray(o, np.float64), np.asarray(t, np.float64)) for o, t in pairs]
    if not pairs:
        raise Pix2PixError("no arrays to evaluate")
    channels = pairs[0][1].shape[2]
    if spans is None:
        lo = np.min([t.min((0, 1)) for _, t in pairs], 0)
        hi = np.max([t.max((0, 1)) for _, t in pairs], 0)
        spans = hi - lo
    spans = np.broadcast_to(np.asarray(spans, np.float64), (channels,))  # one span for every channel, or each its own
    spans = np.where(spans > 0, spans, 1.0)
    l1 = np.array([np.abs(o - t).mean((0, 1)) for o, t in pairs])  # (images, channels), in units
    mse = np.array([((o - t) ** 2).mean((0, 1)) for o, t in pairs])
    norm_mse = mse / spans ** 2
    psnr = np.where(norm_mse > 0, 10 * np.log10(1 / np.maximum(norm_mse, 1e-300)), PSNR_CAP).clip(max=PSNR_CAP)
    per_channel = [{"channel": c, "l1": float(l1[:, c].mean() / spans[c]), "mse": float(norm_mse[:, c].mean()),
                    "psnr": float(psnr[:, c].mean()), "l1_units": float(l1[:, c].mean()),
                    "mse_units": float(mse[:, c].mean()), "span_units": float(spans[c])} for c in range(channels)]
    return {"l1": float(np.mean([p["l1"] for p in per_channel])), "mse": float(norm_mse.mean()),
            "psnr": float(psnr.mean()), "l1_units": float(l1.mean()), "mse_units": float(mse.mean()),
            "count": len(pairs), "channels": channels, "per_channel": per_channel}


def image_only(scales, in_channels: int, out_channels: int, segmenter: bool, inception: bool) -> str | None:
    """Why the FCN-score (8-bit label maps in, 8-bit photos out) or FID/KID (8-bit photos out) cannot score
    a model of these scalings and channels, or None."""
    if segmenter and not (image_side(scales.input, in_channels) and image_side(scales.output, out_channels)):
        return "the FCN-score reads 8-bit label maps and photos"
    if inception and not image_side(scales.output, out_channels):
        return "FID/KID compare 8-bit photos"
    return None


def scaling_spans(scale) -> np.ndarray:
    """Per channel, the data-unit width of a :class:`pix2pix.data.units.Scale`'s [-1, 1]: what "normalised" divides by."""
    ends = scale.from_unit(torch.tensor([-1.0, 1.0]).reshape(1, 1, 2).expand(scale.channels or 1, 1, 2))
    return (ends[:, 0, 1] - ends[:, 0, 0]).double().numpy()


# --------------------------------------------------------------------------------------- FID / KID


class InceptionFeatures(nn.Module):
    """A TorchScript Inception feature extractor behind torchmetrics' FID/KID interface: uint8 (N, 3, H, W)
    in, (N, D) float features out. The file is the one StyleGAN2-ADA and clean-fid use,
    ``inception-2015-12-05.pt`` (TensorFlow's FID Inception as TorchScript: 299 x 299 inputs in 0..255,
    ``forward(x, return_features=True)`` gives the 2048 pool features); any TorchScript module with that
    call works."""

    def __init__(self, path: Path):
        super().__init__()
        path = Path(path)
        if not path.is_file():
            raise Pix2PixError(f"FID/KID need Inception weights, and {path} is not a file; this machine cannot "
                               "download them: copy inception-2015-12-05.pt (StyleGAN2-ADA's metrics file) there "
                               f"and pass --inception FILE or set {INCEPTION_ENV}")
        try:
            with warnings.catch_warnings():  # torch.jit.load is deprecated, but the Inception file is TorchScript
                warnings.simplefilter("ignore", DeprecationWarning)
                self.model = torch.jit.load(str(path), map_location="cpu").eval()
        except Exception as e:  # a wrong file raises many kinds of errors
            raise Pix2PixError(f"{path}: not a TorchScript feature extractor ({e.__class__.__name__})") from None
        with torch.no_grad():
            self.num_features = int(self(torch.zeros(1, 3, 299, 299, dtype=torch.uint8)).shape[-1])

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        if x.shape[-2:] != (299, 299):
            x = torch.nn.functional.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        return self.model(x, return_features=True).reshape(len(x), -1).double()


def inception_path(given: str | Path | None) -> Path | None:
    """The feature extractor file: ``given``, else $PIX2PIX_INCEPTION, else None (FID/KID not computed)."""
    given = given or os.environ.get(INCEPTION_ENV)
    return Path(given) if given else None


def fid_kid(outputs: Iterable[np.ndarray], targets: Iterable[np.ndarray], features: nn.Module,
            batch: int = 32) -> dict[str, float]:
    """torchmetrics' FID and KID between two sets of (H, W, 3) uint8 images."""
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    outputs, targets = list(outputs), list(targets)
    n = min(len(outputs), len(targets))
    if n < 2:
        raise Pix2PixError(f"FID/KID need at least 2 images on each side, not {n}")
    fid = FrechetInceptionDistance(feature=features, reset_real_features=True)
    with warnings.catch_warnings():  # that KID keeps every feature: a split's worth is small
        warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
        kid = KernelInceptionDistance(feature=features, subset_size=min(n, 100), subsets=50)
    for real, images in ((True, targets), (False, outputs)):
        for i in range(0, len(images), batch):
            x = torch.from_numpy(np.stack(images[i:i + batch])).permute(0, 3, 1, 2).contiguous()
            fid.update(x, real=real)
            kid.update(x, real=real)
    kid_mean, kid_std = kid.compute()
    return {"fid": float(fid.compute()), "kid": float(kid_mean), "kid_std": float(kid_std)}


# ------------------------------------------------------------------------------------------ folders


def _u8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)


def evaluate_images(pairs: list[tuple[str, Path, Path]], truths: dict[str, np.ndarray] | None = None,
                    segmenter=None, features: nn.Module | None = None, progress: bool = False) -> dict:
    """All metrics over (name, output file, target file) triples. ``truths`` (name -> class map) and a
    segmenter add the FCN-score; a feature extractor (:class:`InceptionFeatures`) adds FID and KID."""
    images = []
    for name, out_path, tgt_path in tqdm(pairs, disable=not progress, desc="read", unit="img"):
        out, tgt = read01(out_path), read01(tgt_path)
        if out.shape != tgt.shape:
            raise Pix2PixError(f"{out_path}: {out.shape[1]}x{out.shape[0]}x{out.shape[2]} differs from its target "
                               f"{tgt_path} ({tgt.shape[1]}x{tgt.shape[0]}x{tgt.shape[2]})")
        images.append((out, tgt))
    metrics: dict = image_metrics(images)
    if segmenter is not None and truths is not None:
        photos = ((Image.fromarray(_u8(out)), truths[name]) for (name, _, _), (out, _) in zip(pairs, images))
        metrics["fcn"] = segmenter.score(photos, progress, desc="FCN-score")
    if features is not None:
        metrics |= fid_kid((_u8(o) for o, _ in images), (_u8(t) for _, t in images), features)
    return metrics


def pair_folders(pred_dir: Path, target_dir: Path) -> list[tuple[str, Path, Path]]:
    """(name, prediction, target) matched by file name without extension; the two sets must be equal."""
    found = []
    for d in (Path(pred_dir), Path(target_dir)):
        if not d.is_dir():
            raise Pix2PixError(f"{d}: no such folder")
        files, problems = list_images(d, unique_stems=True)
        if problems:
            raise Pix2PixError(problems[0])
        found.append({p.stem: p for p in files})
    pred, target = found
    if not pred:
        raise Pix2PixError(f"{pred_dir}: no images to evaluate")
    only_pred, only_target = sorted(pred.keys() - target.keys()), sorted(target.keys() - pred.keys())
    if only_pred or only_target:
        side, names = (pred_dir, only_pred) if only_pred else (target_dir, only_target)
        raise Pix2PixError(f"{side} has {len(names)} image(s) the other folder lacks (first: {names[0]}); "
                           "predictions and targets must have the same file names")
    return [(stem, pred[stem], target[stem]) for stem in sorted(pred)]


def folder_truths(labels_dir: Path, names: list[str], labels: LabelSet) -> dict[str, np.ndarray]:
    """Class maps named like the images: index PNGs, or colour label images of ``labels``."""
    files, problems = list_images(Path(labels_dir), unique_stems=True)
    by_stem = {p.stem: p for p in files}
    missing = [n for n in names if n not in by_stem]
    if problems or missing:
        raise Pix2PixError(problems[0] if problems else f"{labels_dir}: no label image for {missing[0]}")
    return {n: read_truth(labels, by_stem[n]) for n in names}


def evaluate_folders(pred_dir: Path, target_dir: Path, labels_dir: Path | None = None, segmenter=None,
                     inception: Path | None = None, progress: bool = False) -> dict:
    """``pix2pix eval --pred DIR --target DIR``: predictions and targets matched by name."""
    features = InceptionFeatures(inception) if inception is not None else None  # a missing file fails first
    pairs = pair_folders(pred_dir, target_dir)
    if not isinstance(read_raster(pairs[0][2], None), Image.Image):  # arrays, or 16-bit images: in their units
        if segmenter is not None or features is not None:
            raise Pix2PixError(f"{pairs[0][2]}: the FCN-score and FID/KID score 8-bit images, not arrays; eval "
                               "scores arrays' L1, MSE and PSNR per channel without them")
        arrays = []
        for _, out_path, tgt_path in pairs:
            out, tgt = as_array(read_raster(out_path, None)), as_array(read_raster(tgt_path, None))
            if out.shape != tgt.shape:
                raise Pix2PixError(f"{out_path}: shape {out.shape} differs from its target {tgt_path} ({tgt.shape})")
            arrays.append((out, tgt))
        return array_metrics(arrays)
    truths = None
    if segmenter is not None:
        if labels_dir is None:
            raise Pix2PixError("the FCN-score needs the input labels: pass --labels DIR with --segmenter")
        truths = folder_truths(labels_dir, [n for n, _, _ in pairs], segmenter.labels)
    return evaluate_images(pairs, truths, segmenter, features, progress)


def evaluate_run(run_dir: Path, split: str = "test", segmenter=None, inception: Path | None = None,
                 seed: int | None = None, device: str = "auto", progress: bool = True, fast: bool = True,
                 eval: bool = False, checkpoint: str = "latest", engine: str = "auto") -> dict:
    """``pix2pix test`` and ``eval --run DIR``: translate the split with the run's ``checkpoint`` (latest, best, a
    snapshot or a file; in the paper's test mode unless ``eval``), score it, and write ``metrics.json`` and the
    results page with the figures on top into its results folder (``results/SPLIT`` for latest). Returns the
    metrics, which name the checkpoint and its step, and ``page``, the page's path."""
    from ..checkpoints import checkpoint_scales, run_checkpoint
    from ..config import RunConfig
    from ..data.pairs import load_pair, scan_split
    from ..inference.translate import run_config, translate_split
    from ..pages import write_page

    run_dir = Path(run_dir)
    # What can fail fails before the translation: a missing Inception file, labels of other classes.
    g = run_config(run_dir, split).generator
    scales = checkpoint_scales(run_checkpoint(run_dir, checkpoint))
    why = image_only(scales, g.in_channels, g.out_channels, segmenter is not None, inception is not None)
    if why:
        raise Pix2PixError(f"{run_dir}: {why}, and this run's data is {scales.output.data} with "
                           f"{g.out_channels} output channel(s); eval scores its L1, MSE and PSNR per channel "
                           "without them")
    features = InceptionFeatures(inception) if inception is not None else None
    if segmenter is not None and (run_dir / "config.json").exists():
        cfg = RunConfig.load(run_dir / "config.json")
        found, _ = scan_split(Path(cfg.data.root), split)
        if found and not (Path(cfg.data.root) / split / "labels").is_dir():
            first, _ = load_pair(found[0], cfg.data.direction, cfg.generator.in_channels, cfg.generator.out_channels,
                                 label_nc=cfg.data.label_nc)
            read_truth(segmenter.labels, first, where=found[0].a)
    out, title, rows, source = translate_split(run_dir, split, eval, seed, device, progress, fast, checkpoint, engine)
    stems = [stem for stem, _ in rows]
    if not image_side(scales.output, g.out_channels):  # scored on the .npy outputs, in the target's units
        arrays = [(np.load(out / "images" / f"{s}_output.npy"), np.load(out / "images" / f"{s}_target.npy"))
                  for s in stems]
        metrics = {"split": split, **source, **array_metrics(arrays, scaling_spans(scales.output))}
        write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
        write_page(out / "index.html", title, rows, intro=metrics_table(metrics))
        return metrics | {"page": str(out / "index.html")}
    pairs = [(s, out / "images" / f"{s}_output.png", out / "images" / f"{s}_target.png") for s in stems]
    truths = None
    if segmenter is not None:
        root = Path(RunConfig.load(run_dir / "config.json").data.root)
        truths = {s: read_truth(segmenter.labels, out / "images" / f"{s}_input.png",
                                index=root / split / "labels" / f"{s}.png") for s in stems}
    metrics = {"split": split, **source, **evaluate_images(pairs, truths, segmenter, features, progress)}
    write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    write_page(out / "index.html", title, rows, intro=metrics_table(metrics))
    return metrics | {"page": str(out / "index.html")}


# A score's name in words, and how it is written (a format spec).
METRIC_NAMES = {
    "split": ("split", "s"), "checkpoint": ("checkpoint", "s"), "step": ("its training step", ",d"),
    "page": ("results page", "s"),
    "count": ("images", "d"), "channels": ("channels", "d"),
    "l1": ("L1: mean absolute error per pixel, values 0 to 1 (lower is better)", ".4f"),
    "mse": ("MSE: mean squared error, values 0 to 1 (lower is better)", ".4g"),
    "psnr": ("PSNR, dB (higher is better)", ".2f"),
    "ssim": ("SSIM: structural similarity, 0 to 1 (higher is better)", ".3f"),
    "sharpness": ("sharpness: the output's mean gradient over the target's (1: as sharp)", ".2f"),
    "l1_units": ("L1 in the data's units", ".4g"), "mse_units": ("MSE in the data's units", ".4g"),
    "fid": ("FID: Fréchet Inception distance (lower is better)", ".2f"),
    "kid": ("KID: kernel Inception distance (lower is better)", ".4f"), "kid_std": ("... its spread", ".4f"),
    "per_pixel_acc": ("FCN-score, per-pixel accuracy (higher is better)", ".3f"),
    "per_class_acc": ("FCN-score, per-class accuracy", ".3f"), "class_iou": ("FCN-score, class IoU", ".3f"),
}


def describe_metrics(metrics: dict) -> list[tuple[str, str]]:
    """(name in words, value as written) of each score of ``metrics`` (from :func:`evaluate_run`, or
    ``evaluate_folders``), the FCN-scores and each channel's scores of array data included."""
    flat = {k: v for k, v in metrics.items() if k not in ("fcn", "per_channel")} | metrics.get("fcn", {})
    lines = [(METRIC_NAMES[k][0] if k in METRIC_NAMES else k,
              format(v, METRIC_NAMES[k][1]) if k in METRIC_NAMES and v is not None else str(v))
             for k, v in flat.items()]
    for p in metrics.get("per_channel", []):
        lines.append((f"channel {p['channel']}", f"L1 {p['l1']:.4f} normalised ({p['l1_units']:.4g} in the data's "
                      f"units), MSE {p['mse']:.4g} ({p['mse_units']:.4g}), PSNR {p['psnr']:.2f} dB (peak "
                      f"{p['span_units']:.4g})"))
    return lines


def metrics_table(metrics: dict) -> str:
    """An HTML table of a metrics dict, in words (:func:`describe_metrics`)."""
    cells = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>"
                    for k, v in describe_metrics(metrics))
    return f"<table class=kv>{cells}</table>"
