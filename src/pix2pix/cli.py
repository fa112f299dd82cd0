"""The ``pix2pix`` command: a thin layer that parses flags into configs and calls the library.

Errors a user can cause arrive as :class:`Pix2PixError`; they are printed as one line and exit with 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import config as C
from .errors import Pix2PixError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not usage + error
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _number(kind, allow_zero: bool = False):
    """An argparse type: a number of ``kind`` that is > 0 (or >= 0 with ``allow_zero``)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
        if value < 0 or (value == 0 and not allow_zero):
            raise argparse.ArgumentTypeError(f"must be {'>=' if allow_zero else '>'} 0, not {text}")
        return value
    return parse


def _positive(kind):
    return _number(kind)


def _non_negative(kind):
    return _number(kind, allow_zero=True)


# Flags of `train` that map onto config fields: flag dest -> (config section, field). Defaults live in the
# dataclasses (and presets), so every flag defaults to None here: None means "not given".
TRAIN_FIELDS = {
    "direction": ("data", "direction"), "load_size": ("data", "load_size"), "crop_size": ("data", "crop_size"),
    "preprocess": ("data", "preprocess"), "batch_size": ("data", "batch_size"), "workers": ("data", "workers"),
    "flip": ("data", "flip"), "skip_bad_images": ("data", "skip_bad_images"), "preload": ("data", "preload"),
    "generator": ("generator", "arch"), "in_channels": ("generator", "in_channels"),
    "out_channels": ("generator", "out_channels"), "ngf": ("generator", "ngf"),
    "dropout": ("generator", "dropout"), "dropout_placement": ("generator", "dropout_placement"),
    "ndf": ("discriminator", "ndf"),
    "objective": ("train", "objective"), "gan_loss": ("train", "gan_loss"), "lambda_l1": ("train", "lambda_l1"),
    "lambda_gp": ("train", "lambda_gp"), "lr": ("train", "lr"), "beta1": ("train", "beta1"),
    "beta2": ("train", "beta2"), "epochs": ("train", "epochs"), "epochs_decay": ("train", "epochs_decay"),
    "max_steps": ("train", "max_steps"), "max_minutes": ("train", "max_minutes"), "seed": ("train", "seed"),
    "device": ("train", "device"),
    "init": ("train", "init"), "init_gain": ("train", "init_gain"), "log_every": ("train", "log_every"),
    "sample_every": ("train", "sample_every"), "snapshot_every": ("train", "snapshot_every"),
    "save_every": ("train", "save_every"), "fast": ("train", "fast"),
}
# What may change when a run is resumed: how long it runs and where, not what it is.
RESUMABLE = {"max_steps", "max_minutes", "device", "workers", "log_every", "sample_every", "snapshot_every", "save_every",
             "progress", "fast", "preload"}


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a model on an aligned dataset (or resume a run)",
                       description="Train pix2pix. Defaults are the paper's; --preset applies a dataset's settings "
                                   "and explicit flags override it.")
    g = p.add_argument_group("run")
    g.add_argument("--data", help="dataset root: DATA/train/*.jpg (A|B side by side) or DATA/A/train + DATA/B/train")
    g.add_argument("--name", help="run name (default: the dataset folder's name)")
    g.add_argument("--out", help="folder that holds runs (default: runs)")
    g.add_argument("--resume", metavar="RUN_DIR", help="continue runs/NAME exactly where it stopped")
    g.add_argument("--preset", choices=sorted(C.PRESETS), help="the paper's settings for a dataset")
    g.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), help="default: auto")
    g.add_argument("--seed", type=int, help="seed for init, data order, jitter and dropout (default 0)")
    g.add_argument("--max-steps", type=_positive(int), help="stop after this many optimizer steps")
    g.add_argument("--max-minutes", type=_positive(float), help="stop after this much training time")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    g.add_argument("--no-fast", dest="fast", action="store_const", const=False,
                   help="the plain fp32 eager step instead of the fast path (bf16 autocast, fused Adam, ...)")
    g.add_argument("--nproc", type=_positive(int),
                   help="train on N processes (GPUs) of this machine through torchrun; --batch-size is per process")
    g = p.add_argument_group("model")
    g.add_argument("--generator", help="unet_256 (default), unet_128, unet_N, encoder_decoder_N, resnet_9blocks, ...")
    g.add_argument("--discriminator", help="patch70 (default), pixel, patch16, patch34, patch142, patch286; "
                                           "or the reference's basic / n_layers")
    g.add_argument("--n-layers-d", type=_positive(int), help="depth for --discriminator n_layers (reference name)")
    g.add_argument("--ngf", type=_positive(int), help="generator width (default 64)")
    g.add_argument("--ndf", type=_positive(int), help="discriminator width (default 64)")
    g.add_argument("--norm", choices=C.NORMS, help="normalisation for G and D (default batch)")
    g.add_argument("--no-dropout", dest="dropout", action="store_const", const=0.0, help="no dropout in G")
    g.add_argument("--dropout", type=_non_negative(float), help="dropout rate in G (default 0.5)")
    g.add_argument("--dropout-placement", choices=C.DROPOUT_PLACEMENTS,
                   help="paper: decoder at 2x2/4x4/8x8 (default); reference: 4x4/8x8/16x16")
    g.add_argument("--in-channels", type=_positive(int), help="input image channels (default 3)")
    g.add_argument("--out-channels", type=_positive(int), help="output image channels (default 3)")
    g.add_argument("--init", choices=C.INITS, help="weight init (default normal: N(0, 0.02))")
    g.add_argument("--init-gain", type=_positive(float), help="init scale (default 0.02)")
    g = p.add_argument_group("objective and optimisation")
    g.add_argument("--objective", choices=C.OBJECTIVES, help="loss terms (default l1+cgan)")
    g.add_argument("--gan-loss", choices=C.GAN_LOSSES, help="adversarial loss (default vanilla)")
    g.add_argument("--lambda-l1", type=_non_negative(float), help="weight of the L1 term (default 100)")
    g.add_argument("--lambda-gp", type=_non_negative(float), help="gradient-penalty weight for wgangp (default 10)")
    g.add_argument("--lr", type=_positive(float), help="Adam learning rate (default 2e-4)")
    g.add_argument("--beta1", type=_non_negative(float), help="Adam beta1 (default 0.5)")
    g.add_argument("--beta2", type=_non_negative(float), help="Adam beta2 (default 0.999)")
    g.add_argument("--epochs", type=_non_negative(int), help="epochs at constant lr (default 100)")
    g.add_argument("--epochs-decay", type=_non_negative(int), help="then epochs of linear decay to 0 (default 100)")
    g = p.add_argument_group("data")
    g.add_argument("--direction", choices=C.DIRECTIONS, help="AtoB (default) or BtoA")
    g.add_argument("--batch-size", type=_positive(int), help="default 1")
    g.add_argument("--load-size", type=_positive(int), help="resize to this before cropping (default 286)")
    g.add_argument("--crop-size", type=_positive(int), help="random crop size (default 256)")
    g.add_argument("--preprocess", choices=C.PREPROCESS, help="default resize_and_crop (the paper's jitter)")
    g.add_argument("--no-flip", dest="flip", action="store_const", const=False, help="no random horizontal flip")
    g.add_argument("--workers", type=_non_negative(int), help="data loader processes (default 2)")
    g.add_argument("--preload", choices=C.PRELOAD,
                   help="hold the decoded training split on the device: auto (fast path, when it fits), yes, no")
    g.add_argument("--skip-bad-images", action="store_const", const=True,
                   help="skip unreadable images (and report them) instead of stopping")
    g = p.add_argument_group("logging")
    g.add_argument("--log-every", type=_positive(int), help="steps between loss logs (default 100)")
    g.add_argument("--sample-every", type=_positive(int), help="steps between sample images (default 400)")
    g.add_argument("--snapshot-every", type=_non_negative(int), help="epochs between kept snapshots (default 5)")
    g.add_argument("--save-every", type=_positive(int), help="steps between saves of latest (default 5000)")
    p.set_defaults(func=cmd_train)


def run_config_from_args(args: argparse.Namespace) -> C.RunConfig:
    """Paper defaults <- preset <- explicit flags."""
    if args.data is None:
        raise Pix2PixError("train: --data DIR is required (or --resume RUN_DIR)")
    cfg = C.RunConfig()
    preset = C.PRESETS.get(args.preset or "", {})
    sections = {"data": cfg.data, "generator": cfg.generator, "discriminator": cfg.discriminator, "train": cfg.train}
    for key, value in preset.items():
        for section in sections.values():
            if hasattr(section, key):
                setattr(section, key, value)
    for dest, (section, field) in TRAIN_FIELDS.items():
        if getattr(args, dest) is not None:
            setattr(sections[section], field, getattr(args, dest))
    if args.norm is not None:
        cfg.generator.norm = cfg.discriminator.norm = args.norm
    if args.discriminator is not None or args.n_layers_d is not None:
        from .networks import canonical_discriminator
        cfg.discriminator.arch = canonical_discriminator(args.discriminator or "n_layers", args.n_layers_d)
    if not Path(args.data).is_dir():
        raise Pix2PixError(f"--data {args.data}: no such folder")
    cfg.data.root = str(Path(args.data).resolve())  # absolute, so that --resume works from anywhere
    cfg.name = args.name or Path(args.data).resolve().name or "pix2pix"
    cfg.out = args.out or "runs"
    validate(cfg)
    return cfg


def validate(cfg: C.RunConfig) -> None:
    from .networks import build_generator, canonical_discriminator
    import torch

    with torch.device("meta"):  # raises a one-line error for an unknown or malformed name
        build_generator(cfg.generator)
    canonical_discriminator(cfg.discriminator.arch)
    d = cfg.data
    if d.preprocess == "resize_and_crop" and d.crop_size > d.load_size:
        raise Pix2PixError(f"--crop-size {d.crop_size} is larger than --load-size {d.load_size}")
    if cfg.train.epochs + cfg.train.epochs_decay == 0:
        raise Pix2PixError("--epochs and --epochs-decay are both 0: nothing to train")


def cmd_train(args: argparse.Namespace) -> int:
    from .training import train

    if args.resume:
        run_dir = Path(args.resume)
        cfg = C.RunConfig.load(run_dir / "config.json")
        changed = [dest for dest in [*TRAIN_FIELDS, "data", "name", "out", "preset", "norm", "discriminator", "n_layers_d"]
                   if getattr(args, dest) is not None and dest not in RESUMABLE]
        if changed:
            flag = "--" + changed[0].replace("_", "-")
            raise Pix2PixError(f"{flag} cannot change when resuming {run_dir}; only --max-steps, --max-minutes, "
                               "--device, --workers, --no-fast, --preload and the logging flags can")
        for dest in RESUMABLE & set(TRAIN_FIELDS):
            if getattr(args, dest) is not None:
                section, field = TRAIN_FIELDS[dest]
                setattr(getattr(cfg, section), field, getattr(args, dest))
        cfg.out, cfg.name = str(run_dir.parent), run_dir.name
    else:
        cfg = run_config_from_args(args)
    if args.nproc:  # checked here first, so a user's mistake is one line and not N workers' reports
        return launch_torchrun(args.nproc, args.argv)
    result = train(cfg, resume=bool(args.resume), progress=args.progress)
    rate = result.images / max(result.seconds, 1e-9)
    print(("interrupted; saved" if result.interrupted else "stopped at --max-minutes;" if result.out_of_time else "done:") +
          f" step {result.step}, epoch {result.epoch}, {result.seconds:.1f} s ({rate:.1f} images/s)")
    if result.bad_images:
        print(f"skipped {len(result.bad_images)} bad image(s):")
        for line in result.bad_images:
            print(f"  {line}")
    print(f"checkpoint: {result.checkpoint}")
    print(f"samples:    {result.page}")
    print(f"tensorboard --logdir {result.run_dir / 'tensorboard'}")
    return 130 if result.interrupted else 0


def launch_torchrun(nproc: int, command: list[str]) -> int:
    """``pix2pix train --nproc N ...`` = ``torchrun --standalone --nproc_per_node N -m pix2pix train ...``."""
    import subprocess

    argv, skip = [], False
    for a in command:  # the same command line without --nproc
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            argv.append(a)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "pix2pix", *argv]
    return subprocess.call(cmd)


def cmd_test(args: argparse.Namespace) -> int:
    from .inference import test_split

    page = test_split(Path(args.run), args.split, eval=args.eval, seed=args.seed, device=args.device, fast=args.fast)
    print(f"results: {page}")
    return 0


def cmd_translate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .inference import Translator, input_files

    files = input_files(args.input)
    given = {"arch": args.generator, "ngf": args.ngf, "norm": args.norm, "dropout": args.dropout,
             "dropout_placement": args.dropout_placement}
    overrides = {k: v for k, v in given.items() if v is not None}
    translator = Translator.load(args.checkpoint, eval=args.eval, device=args.device, fast=args.fast, **overrides)
    out = Path(args.output)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise Pix2PixError(f"--output {out}: cannot create it ({e.strerror})") from None
    stems = [f.stem for f in files]
    if len(set(stems)) != len(stems):
        dup = next(s for s in stems if stems.count(s) > 1)
        raise Pix2PixError(f"two inputs share the name '{dup}', so their outputs would collide in {out}")
    for i, f in enumerate(tqdm(files, unit="img", disable=len(files) < 2)):
        seed = None if args.seed is None else args.seed + i
        image = translator.translate_file(f, args.direction, seed)
        try:
            image.save(out / f"{f.stem}.png")
        except OSError as e:
            raise Pix2PixError(f"--output {out}: cannot write there ({e.strerror})") from None
    print(f"translated {len(files)} image(s) into {out}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from .networks import describe_models

    rows = describe_models()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'name':<22}{'role':<15}{'params':>12}  {'receptive field':<16}aliases")
    for r in rows:
        rf = f"{r['receptive_field']}x{r['receptive_field']}" if r["receptive_field"] else ""
        print(f"{r['name']:<22}{r['role']:<15}{r['params']:>12,}  {rf:<16}{', '.join(r['aliases'])}")
    return 0


def cmd_datasets_check(args: argparse.Namespace) -> int:
    from .data import check_dataset

    count, problems = check_dataset(Path(args.dir), args.in_channels, args.out_channels)
    for line in problems:
        print(line)
    print(f"{args.dir}: {count} pair(s) checked, {len(problems)} problem(s)")
    return 1 if problems else 0


def cmd_datasets_make(args: argparse.Namespace) -> int:
    from .datasets.facades_synth import make_facades_synth

    out = make_facades_synth(Path(args.out), train=args.train, val=args.val, test=args.test, size=args.size,
                             seed=args.seed)
    print(f"wrote {args.train + args.val + args.test} pairs to {out} (A = photo | B = labels; labels -> photo "
          "is --direction BtoA)")
    return 0


def cmd_datasets_download(args: argparse.Namespace) -> int:
    from .datasets.download import cityscapes_instructions, download_dataset

    if args.name == "cityscapes" and not args.url:
        print(cityscapes_instructions())
        return 0
    folder = download_dataset(args.name, Path(args.out), url=args.url, sha256=args.sha256)
    print(f"{args.name}: {folder}")
    return 0


def cmd_datasets_combine(args: argparse.Namespace) -> int:
    from .datasets.layout import combine

    report = combine(Path(args.a), Path(args.b), Path(args.out))
    for line in report.problems:
        print(f"skipped: {line}")
    counts = ", ".join(f"{split} {n}" for split, n in report.splits.items())
    print(f"wrote {report.pairs} aligned pair(s) to {args.out} ({counts}); {len(report.problems)} problem(s)")
    return 0


def cmd_datasets_split(args: argparse.Namespace) -> int:
    from .datasets.layout import split_folder

    counts = split_folder(Path(args.dir), val=args.val, test=args.test, seed=args.seed)
    print(f"{args.dir}: " + ", ".join(f"{split} {n}" for split, n in counts.items()))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    for line in run_demo(Path(args.out), Path(args.data), minutes=args.minutes, size=args.size):
        print(line, flush=True)
    return 0


def cmd_segmenter_train(args: argparse.Namespace) -> int:
    from .segmentation import SegmenterConfig, evaluate_segmenter, train_segmenter

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
    from .segmentation import Segmenter, evaluate_segmenter

    seg = Segmenter.load(Path(args.segmenter), device=args.device)
    scores = evaluate_segmenter(seg, Path(args.data), args.split, progress=not args.json)
    if args.json:
        print(json.dumps(scores))
    else:
        print(f"{args.data} {args.split}, real photos: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluation import evaluate_folders, evaluate_run, inception_path
    from .segmentation import Segmenter
    from .training import resolve_device

    if bool(args.run) == bool(args.pred or args.target):
        raise Pix2PixError("evaluate either a run (--run DIR) or two folders (--pred DIR --target DIR)")
    if not args.run and not (args.pred and args.target):
        raise Pix2PixError("--pred and --target go together")
    device = str(resolve_device(args.device))
    seg = Segmenter.load(Path(args.segmenter), device=device) if args.segmenter else None
    wants_fid = args.fid or args.inception is not None
    inception = inception_path(args.inception) if wants_fid else None
    if wants_fid and inception is None:
        raise Pix2PixError("--fid needs the Inception weights, which this machine cannot download: pass "
                           "--inception FILE (inception-2015-12-05.pt, StyleGAN2-ADA's metrics file) or set "
                           "PIX2PIX_INCEPTION")
    if args.run:
        metrics = evaluate_run(Path(args.run), args.split, seg, inception, device=args.device,
                               progress=not args.json, fast=args.fast)
    else:
        metrics = evaluate_folders(Path(args.pred), Path(args.target), Path(args.labels) if args.labels else None,
                                   seg, inception, progress=not args.json)
    if args.json:
        print(json.dumps(metrics))
        return 0
    for k, v in metrics.items():
        if k == "fcn":
            print("FCN-score: " + ", ".join(f"{name} {x:.4f}" for name, x in v.items()))
        else:
            print(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}")
    if args.run:
        print(f"results: {Path(args.run) / 'results' / args.split / 'index.html'}")
    return 0


def cmd_ablate(args: argparse.Namespace) -> int:
    from .ablation import run_ablation
    from .demo import base_config

    data, out = Path(args.data), Path(args.out)
    if not (data / "train").is_dir():
        raise Pix2PixError(f"--data {data}: no train split there")
    base = base_config(data, out, args.size, args.direction)
    base.train.seed = args.seed
    for line in run_ablation(base, args.table, out, steps=args.steps, minutes=args.minutes, split=args.split,
                             segmenter=Path(args.segmenter) if args.segmenter else None,
                             segmenter_minutes=args.segmenter_minutes):
        print(line, flush=True)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import format_result, run_bench
    from .networks import canonical_discriminator

    cfg = C.RunConfig()
    cfg.generator.arch = args.generator or f"unet_{args.size}"
    cfg.discriminator.arch = canonical_discriminator(args.discriminator)
    cfg.generator.ngf, cfg.discriminator.ndf = args.ngf, args.ndf or args.ngf
    cfg.data.batch_size, cfg.data.crop_size = args.batch_size, args.size
    cfg.data.load_size = C.jittered_load_size(args.size)
    cfg.data.workers, cfg.data.preload = args.workers, args.preload
    cfg.train.device = args.device
    validate(cfg)
    result = run_bench(cfg, steps=args.steps, infer_batch=args.infer_batch_size,
                       data=Path(args.data) if args.data else None)
    print(json.dumps(result.to_dict()) if args.json else format_result(result))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .app.models import load_served

    names = args.name or []
    models = [load_served(Path(c), names[i] if i < len(names) else None, backend=args.backend, device=args.device,
                          kind=args.input_kind, labels=args.label_set)
              for i, c in enumerate(args.checkpoint)]
    if len({m.name for m in models}) != len(models):
        raise Pix2PixError("two checkpoints would be served under one name; give each a --name")
    import socket

    import uvicorn

    from .app.server import create_app

    try:  # a port that is taken is one line, before any model is announced
        with socket.create_server((args.host, args.port)):
            pass
    except OSError as e:
        raise Pix2PixError(f"cannot listen on {args.host}:{args.port} ({e.strerror}); choose another --port") from None

    app = create_app(models, max_upload_bytes=int(args.max_upload_mb * 2**20), max_pixels=args.max_pixels,
                     max_batch=args.max_batch, max_wait_ms=args.max_wait_ms)
    for m in models:
        print(f"model {m.name}: {m.kind} -> photo, {m.config.arch}, {m.backend.name}, {len(m.samples)} samples")
    print(f"open http://{args.host}:{args.port}/  (API docs: /docs)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export_onnx

    report = export_onnx(Path(args.checkpoint), Path(args.out), eval=args.eval)
    print(f"wrote {args.out} ({report['mode']} mode{', dropout noise from ONNX Runtime' if report['dropout'] else ''}); "
          f"matches PyTorch within {report['max_abs_diff']:.1e} on {', '.join(report['sizes'])}")
    return 0


def _add_no_fast(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-fast", dest="fast", action="store_false",
                   help="fp32 outputs bit for bit (default: the fast path, bf16 where the device has it)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pix2pix", description="Image-to-image translation with conditional adversarial "
                                                 "networks (Isola et al., CVPR 2017).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_train(sub)

    p = sub.add_parser("test", help="translate a split of a run's dataset and write a results page")
    p.add_argument("--run", required=True, help="a run folder (runs/NAME)")
    p.add_argument("--split", default="test", help="split to translate (default test)")
    p.add_argument("--eval", action="store_true", help="no dropout, running statistics (deterministic)")
    p.add_argument("--seed", type=int, default=0, help="seed of the dropout noise (default 0)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    _add_no_fast(p)
    p.set_defaults(func=cmd_test)

    p = sub.add_parser("translate", help="translate image files of any size with a checkpoint")
    p.add_argument("--checkpoint", required=True, help="run folder, .safetensors checkpoint, or reference .pth")
    p.add_argument("--input", required=True, nargs="+", action="extend", help="image files or folders")
    p.add_argument("--output", required=True, help="folder for DIR/<input stem>.png")
    p.add_argument("--direction", choices=C.DIRECTIONS,
                   help="inputs are aligned A|B images: translate the A half (AtoB) or the B half (BtoA)")
    p.add_argument("--eval", action="store_true", help="no dropout, running statistics (deterministic)")
    p.add_argument("--seed", type=int, help="seed of the dropout noise (image i uses seed + i)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    p.add_argument("--dropout-placement", choices=C.DROPOUT_PLACEMENTS,
                   help="override where dropout sits (reference .pth files load as 'reference')")
    p.add_argument("--generator", help="state the architecture instead of reading it off the checkpoint")
    p.add_argument("--ngf", type=_positive(int), help="state the generator width")
    p.add_argument("--norm", choices=C.NORMS, help="state the normalisation")
    p.add_argument("--no-dropout", dest="dropout", action="store_const", const=0.0,
                   help="the model was trained without dropout (a reference .pth cannot tell)")
    _add_no_fast(p)
    p.set_defaults(func=cmd_translate)

    p = sub.add_parser("models", help="list generators and discriminators with parameter counts")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("datasets", help="dataset tools")
    dsub = p.add_subparsers(dest="datasets_command", required=True, metavar="ACTION")
    q = dsub.add_parser("check", help="list every problem in a dataset folder (exit 1 if any)")
    q.add_argument("dir", help="dataset root")
    q.add_argument("--in-channels", type=int, default=3, choices=(1, 3, 4))
    q.add_argument("--out-channels", type=int, default=3, choices=(1, 3, 4))
    q.set_defaults(func=cmd_datasets_check)

    q = dsub.add_parser("make", help="write the built-in procedural dataset")
    q.add_argument("name", choices=("facades-synth",), help="facades-synth: procedural CMP-style facades")
    q.add_argument("--out", required=True, help="dataset folder to create")
    q.add_argument("--train", type=_positive(int), default=400, help="train pairs (default 400)")
    q.add_argument("--val", type=_non_negative(int), default=100, help="val pairs (default 100)")
    q.add_argument("--test", type=_non_negative(int), default=100, help="test pairs (default 100)")
    q.add_argument("--size", type=_positive(int), default=256, help="side of each half in pixels (default 256)")
    q.add_argument("--seed", type=int, default=0, help="the same seed gives identical files (default 0)")
    q.set_defaults(func=cmd_datasets_make)

    q = dsub.add_parser("download", help="download and unpack one of the paper's datasets")
    q.add_argument("name", help="facades, maps, edges2shoes, edges2handbags, night2day, or cityscapes (instructions)")
    q.add_argument("--out", default="datasets", help="parent folder (default datasets): the data lands in OUT/NAME")
    q.add_argument("--url", help="download from here instead of the authors' server")
    q.add_argument("--sha256", help="expected SHA-256 of the archive")
    q.set_defaults(func=cmd_datasets_download)

    q = dsub.add_parser("combine", help="pair A and B folders by file name into aligned A|B images")
    q.add_argument("--a", required=True, help="folder of A images (with train/val/test subfolders, or flat)")
    q.add_argument("--b", required=True, help="folder of B images, named like the A images")
    q.add_argument("--out", required=True, help="new dataset folder")
    q.set_defaults(func=cmd_datasets_combine)

    q = dsub.add_parser("split", help="move a flat folder of images into train/val/test")
    q.add_argument("dir", help="a folder of images (aligned A|B)")
    q.add_argument("--val", type=float, default=0.1, help="fraction for val (default 0.1)")
    q.add_argument("--test", type=float, default=0.1, help="fraction for test (default 0.1)")
    q.add_argument("--seed", type=int, default=0, help="the same seed gives the same split (default 0)")
    q.set_defaults(func=cmd_datasets_split)

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
    q.add_argument("--ngf", type=_positive(int), default=32, help="U-Net width (default 32)")
    q.add_argument("--batch-size", type=_positive(int), default=4, help="default 4")
    q.add_argument("--steps", type=_positive(int), help="training steps (default: as many as fit --minutes)")
    q.add_argument("--minutes", type=_positive(float), default=5.0, help="time budget without --steps (default 5)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--device", default="cpu", choices=("cpu", "cuda", "mps"))
    q.set_defaults(func=cmd_segmenter_train)
    q = ssub.add_parser("eval", help="its FCN-score on a split's real photos (the paper's ground truth row)")
    q.add_argument("--segmenter", required=True, help="a file from 'pix2pix segmenter train'")
    q.add_argument("--data", required=True, help="dataset root")
    q.add_argument("--split", default="val", help="default val")
    q.add_argument("--json", action="store_true", help="print one JSON object")
    q.add_argument("--device", default="cpu", choices=("cpu", "cuda", "mps"))
    q.set_defaults(func=cmd_segmenter_eval)

    p = sub.add_parser("eval", help="L1, MSE, PSNR, SSIM, sharpness, FCN-score, FID/KID of translations")
    p.add_argument("--run", help="a run folder: translate its --split and score it")
    p.add_argument("--split", default="test", help="with --run (default test)")
    p.add_argument("--pred", help="a folder of predictions (instead of --run)")
    p.add_argument("--target", help="a folder of targets, named like the predictions")
    p.add_argument("--labels", help="with --pred and --segmenter: the input label maps, named like them")
    p.add_argument("--segmenter", help="a segmenter file: adds the FCN-score")
    p.add_argument("--fid", action="store_true", help="add FID and KID (needs --inception or $PIX2PIX_INCEPTION)")
    p.add_argument("--inception", help="TorchScript Inception file (inception-2015-12-05.pt); or $PIX2PIX_INCEPTION")
    p.add_argument("--json", action="store_true", help="print one JSON object (FCN keys under 'fcn')")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    _add_no_fast(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("ablate", help="train and score the paper's ablation tables with equal budgets")
    p.add_argument("--data", required=True, help="dataset root (labels -> photo)")
    p.add_argument("--table", required=True, choices=("losses", "generators", "discriminators"),
                   help="losses (Table 1), generators (encoder-decoder vs U-Net), discriminators (Table 3)")
    p.add_argument("--steps", type=_positive(int), help="training steps per configuration")
    p.add_argument("--minutes", type=_positive(float), help="or: minutes per configuration (sized by a timing)")
    p.add_argument("--out", default="runs/ablation", help="report folder (default runs/ablation)")
    p.add_argument("--split", help="split to score (default test, else val)")
    p.add_argument("--segmenter", help="a segmenter file (default: train one into OUT)")
    p.add_argument("--segmenter-minutes", type=_positive(float), default=5.0,
                   help="budget of that segmenter (default 5)")
    p.add_argument("--size", type=int, choices=(64, 128, 256), default=128, help="resolution (default 128)")
    p.add_argument("--direction", choices=C.DIRECTIONS, default="BtoA", help="labels -> photo (default BtoA)")
    p.add_argument("--seed", type=int, default=0, help="one seed for every configuration (default 0)")
    p.set_defaults(func=cmd_ablate)

    p = sub.add_parser("bench", help="time the fast path against a plain fp32 eager baseline, side by side")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    p.add_argument("--batch-size", type=_positive(int), default=1, help="training batch (default 1, the paper's)")
    p.add_argument("--infer-batch-size", type=_positive(int), help="inference batch (default: --batch-size)")
    p.add_argument("--size", type=_positive(int), default=256, help="image side (default 256)")
    p.add_argument("--generator", help="default unet_SIZE")
    p.add_argument("--discriminator", default="patch70", help="default patch70")
    p.add_argument("--ngf", type=_positive(int), default=64, help="generator width (default 64)")
    p.add_argument("--ndf", type=_positive(int), help="discriminator width (default: --ngf)")
    p.add_argument("--steps", type=_positive(int), default=10, help="timed steps of each (default 10)")
    p.add_argument("--data", help="time the input path on this dataset (default: a few procedural facades)")
    p.add_argument("--workers", type=_non_negative(int), default=2, help="loader processes with --preload no")
    p.add_argument("--preload", choices=C.PRELOAD, default="auto", help="the input path to time (default auto)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("serve", help="the app: a page to draw and translate, and an HTTP API")
    p.add_argument("--checkpoint", required=True, action="append",
                   help="a run folder, .safetensors, reference .pth (or .onnx with --backend onnx); repeat for more")
    p.add_argument("--name", action="append", help="the name of each --checkpoint (default: its run's name)")
    p.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (this machine only)")
    p.add_argument("--port", type=_positive(int), default=7860, help="default 7860")
    p.add_argument("--backend", choices=("torch", "onnx"), default="torch", help="default torch")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"), help="torch backend device")
    p.add_argument("--input-kind", choices=("labels", "sketch", "photo"),
                   help="what the models take (default: guessed from each one's dataset)")
    p.add_argument("--label-set", choices=("facades", "cityscapes"), help="classes and colours of label inputs")
    p.add_argument("--max-upload-mb", type=_positive(float), default=10.0, help="larger uploads get 413 (default 10)")
    p.add_argument("--max-pixels", type=_positive(int), default=4096 * 4096, help="larger images get 400")
    p.add_argument("--max-batch", type=_positive(int), default=8, help="requests batched together (default 8)")
    p.add_argument("--max-wait-ms", type=_non_negative(float), default=10.0,
                   help="how long a request waits for company (default 10)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("export", help="export a generator (ONNX, dynamic size), checked against PyTorch")
    p.add_argument("--checkpoint", required=True, help="run folder, .safetensors or reference .pth")
    p.add_argument("--format", choices=("onnx",), default="onnx")
    p.add_argument("--out", required=True, help="the .onnx file to write")
    p.add_argument("--eval", action="store_true", help="deterministic: no dropout, running statistics")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("demo", help="the main job: procedural facades, a CPU-sized model, a results page")
    p.add_argument("--out", default="runs/demo", help="the demo's run folder (default runs/demo; replaced each time)")
    p.add_argument("--data", default="datasets/facades-synth",
                   help="the procedural facades (made there if absent; default datasets/facades-synth)")
    p.add_argument("--minutes", type=_positive(float), default=8.0, help="training time (default 8)")
    p.add_argument("--size", type=int, choices=(64, 128, 256), default=128, help="training resolution (default 128)")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return args.func(args)
    except Pix2PixError as e:
        print(f"pix2pix: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pix2pix: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
