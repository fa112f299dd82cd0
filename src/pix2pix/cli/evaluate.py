"""``pix2pix segmenter ...``, ``pix2pix eval`` and ``pix2pix ablate``: the paper's evaluation."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .. import config as C
from ..errors import Pix2PixError
from .args import add_device, add_engine, add_run_checkpoint, add_seed, checked_engine, positive, print_metrics


def add_commands(sub) -> None:
    p = sub.add_parser("segmenter", help="the segmentation network behind the FCN-score")
    ssub = p.add_subparsers(dest="segmenter_command", required=True, metavar="ACTION")
    q = ssub.add_parser("train", help="train it on a dataset's real photos -> class maps")
    q.add_argument("--data", required=True, help="dataset root (aligned labels|photo pairs; labels/ if present)")
    q.add_argument("--out", default="segmenter.safetensors", help="file to write (default segmenter.safetensors)")
    q.add_argument("--direction", choices=C.DIRECTIONS, default="BtoA",
                   help="the labels -> photo direction: the photo is its target side (default BtoA, as facades)")
    q.add_argument("--label-set", default="facades", choices=("facades", "cityscapes"),
                   help="classes and colours of the label maps (default facades: the CMP classes)")
    q.add_argument("--size", type=int, choices=(64, 128, 256, 512), default=256, help="resolution (default 256)")
    q.add_argument("--ngf", type=positive(int), default=32, help="U-Net width (default 32)")
    q.add_argument("--batch-size", type=positive(int), default=4, help="default 4")
    q.add_argument("--steps", type=positive(int), help="training steps (default: as many as fit --minutes)")
    q.add_argument("--minutes", type=positive(float), default=5.0, help="time budget without --steps (default 5)")
    q.add_argument("--seed", type=int, default=0)
    add_device(q, "cpu", ("cpu", "cuda", "mps"))
    q.set_defaults(func=cmd_segmenter_train)
    q = ssub.add_parser("eval", help="its FCN-score on a split's real photos (the paper's ground truth row)")
    q.add_argument("--segmenter", required=True, help="a file from 'pix2pix segmenter train'")
    q.add_argument("--data", required=True, help="dataset root")
    q.add_argument("--split", default="val", help="default val")
    q.add_argument("--json", action="store_true", help="print one JSON object")
    add_device(q, "cpu", ("cpu", "cuda", "mps"))
    q.set_defaults(func=cmd_segmenter_eval)

    p = sub.add_parser("eval", help="L1, MSE, PSNR, SSIM, sharpness, FCN-score, FID/KID of translations",
                       description="Score translations: a run's split, translated with one of its checkpoints, or "
                                   "two folders of predictions and targets named alike.")
    p.add_argument("--run", help="a run folder: translate its --split and score it")
    p.add_argument("--split", default="test", help="with --run (default test)")
    add_run_checkpoint(p)
    p.add_argument("--pred", help="a folder of predictions (instead of --run)")
    p.add_argument("--target", help="a folder of targets, named like the predictions")
    p.add_argument("--labels", help="with --pred and --segmenter: the input label maps, named like them")
    p.add_argument("--segmenter", help="a segmenter file: adds the FCN-score")
    p.add_argument("--fid", action="store_true", help="add FID and KID (needs --inception or $PIX2PIX_INCEPTION)")
    p.add_argument("--inception", help="TorchScript Inception file (inception-2015-12-05.pt); or $PIX2PIX_INCEPTION")
    p.add_argument("--json", action="store_true", help="print one JSON object (FCN keys under 'fcn')")
    add_seed(p)
    add_device(p)
    add_engine(p)
    p.set_defaults(func=cmd_eval, eval=False)

    p = sub.add_parser("ablate", help="train and score the paper's ablation tables with equal budgets")
    p.add_argument("--data", required=True, help="dataset root (labels -> photo)")
    p.add_argument("--table", required=True, choices=("losses", "generators", "discriminators", "hd"),
                   help="losses (Table 1), generators (encoder-decoder vs U-Net), discriminators (Table 3), hd "
                        "(U-Net vs pix2pixHD's global generator and multi-scale D, and its loss terms)")
    p.add_argument("--steps", type=positive(int), help="training steps per configuration")
    p.add_argument("--minutes", type=positive(float), help="or: minutes per configuration (sized by a timing)")
    p.add_argument("--out", default="runs/ablation", help="report folder (default runs/ablation)")
    p.add_argument("--split", help="split to score (default test, else val)")
    p.add_argument("--segmenter", help="a segmenter file (default: train one into OUT)")
    p.add_argument("--segmenter-minutes", type=positive(float), default=5.0,
                   help="budget of that segmenter (default 5)")
    p.add_argument("--size", type=int, choices=(64, 128, 256), default=128, help="resolution (default 128)")
    p.add_argument("--direction", choices=C.DIRECTIONS, default="BtoA", help="labels -> photo (default BtoA)")
    p.add_argument("--seed", type=int, default=0, help="one seed for every configuration (default 0)")
    p.set_defaults(func=cmd_ablate)


def cmd_segmenter_train(args: argparse.Namespace) -> int:
    from ..evaluation.segmentation import SegmenterConfig, evaluate_segmenter, train_segmenter

    cfg = SegmenterConfig(label_set=args.label_set, arch=f"unet_{args.size}", ngf=args.ngf, size=args.size,
                          direction=args.direction)
    seg = train_segmenter(Path(args.data), Path(args.out), cfg, steps=args.steps, minutes=args.minutes,
                          batch_size=args.batch_size, seed=args.seed, device=args.device)
    print(f"segmenter: {args.out} ({seg.meta['steps']} steps)")
    for split in ("val", "test"):
        if (Path(args.data) / split).is_dir():
            scores = evaluate_segmenter(seg, Path(args.data), split, progress=False)
            print(f"on the real {split} photos: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()))
            break
    return 0


def cmd_segmenter_eval(args: argparse.Namespace) -> int:
    from ..evaluation.segmentation import Segmenter, evaluate_segmenter

    seg = Segmenter.load(Path(args.segmenter), device=args.device)
    scores = evaluate_segmenter(seg, Path(args.data), args.split, progress=not args.json)
    if args.json:
        print(json.dumps(scores))
    else:
        print(f"{args.data} {args.split}, real photos: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from ..evaluation.metrics import evaluate_folders, evaluate_run, inception_path
    from ..evaluation.segmentation import Segmenter
    from ..speed import resolve_device

    if bool(args.run) == bool(args.pred or args.target):
        raise Pix2PixError("evaluate either a run (--run DIR) or two folders (--pred DIR --target DIR)")
    if not args.run and not (args.pred and args.target):
        raise Pix2PixError("--pred and --target go together")
    if not args.run and args.checkpoint != "latest":
        raise Pix2PixError("--checkpoint picks a run's checkpoint: it goes with --run")
    device = str(resolve_device(args.device))
    seg = Segmenter.load(Path(args.segmenter), device=device) if args.segmenter else None
    wants_fid = args.fid or args.inception is not None
    inception = inception_path(args.inception) if wants_fid else None
    if wants_fid and inception is None:
        raise Pix2PixError("--fid needs the Inception weights, which this machine cannot download: pass "
                           "--inception FILE (inception-2015-12-05.pt, StyleGAN2-ADA's metrics file) or set "
                           "PIX2PIX_INCEPTION")
    if args.run:
        metrics = evaluate_run(Path(args.run), args.split, seg, inception, seed=args.seed, device=args.device,
                               progress=not args.json, fast=args.fast, checkpoint=args.checkpoint,
                               engine=checked_engine(args))
    else:
        metrics = evaluate_folders(Path(args.pred), Path(args.target), Path(args.labels) if args.labels else None,
                                   seg, inception, progress=not args.json)
    if args.json:
        print(json.dumps(metrics))
    else:
        print_metrics(metrics)
    return 0


def cmd_ablate(args: argparse.Namespace) -> int:
    from ..ablation import run_ablation

    data, out = Path(args.data), Path(args.out)
    if not (data / "train").is_dir():
        raise Pix2PixError(f"--data {data}: no train split there")
    base = C.cpu_recipe(data, out, args.size, args.direction)
    base.train.seed = args.seed
    for line in run_ablation(base, args.table, out, steps=args.steps, minutes=args.minutes, split=args.split,
                             segmenter=Path(args.segmenter) if args.segmenter else None,
                             segmenter_minutes=args.segmenter_minutes):
        print(line, flush=True)
    return 0
