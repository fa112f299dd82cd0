"""``pix2pix train`` and ``pix2pix bench``. The training flags are generated from the configuration's field
declarations (:func:`pix2pix.config.option`): a new option is one line in config.py."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from .. import config as C
from ..training.distributed import world_from_env
from ..errors import Pix2PixError
from ..training import rules
from .args import add_config_flags, apply_flags, given, positive, renamed

# Flags of `train` that are not configuration fields, and never change a resumed run.
RUN_FLAGS = ("data", "name", "runs", "preset", "n_layers_d")
# What `bench` times: the networks, the batch, the input path and the device, in train's own flags.
BENCH_FLAGS = {("generator", "arch"), ("generator", "ngf"), ("discriminator", "arch"), ("discriminator", "ndf"),
               ("data", "batch_size"), ("data", "workers"), ("data", "preload"), ("train", "device")}


def add_commands(sub) -> None:
    p = sub.add_parser("train", help="train a model on an aligned dataset (or resume a run)",
                       description="Train pix2pix. Defaults are the paper's; --preset applies a dataset's settings "
                                   "and explicit flags override it.")
    g = p.add_argument_group("run")
    g.add_argument("--data", help="dataset root: DATA/train/*.jpg (A|B side by side) or DATA/A/train + DATA/B/train")
    g.add_argument("--name", help="run name (default: the dataset folder's name)")
    g.add_argument("--runs", metavar="DIR", help="the folder that holds runs: this one is DIR/NAME (default runs)")
    g.add_argument("--out", dest="runs", action=renamed("--runs"), help=argparse.SUPPRESS)
    g.add_argument("--resume", metavar="RUN_DIR", help="continue runs/NAME exactly where it stopped")
    g.add_argument("--preset", choices=list(C.PRESETS),
                   help="the paper's settings for a dataset, or cpu: the demo's CPU recipe (unet_128 at 128x128, "
                        f"half widths) with a schedule sized to --minutes (default {C.CPU_MINUTES:g})")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    g.add_argument("--nproc", type=positive(int),
                   help="train on N processes (GPUs) of this machine through torchrun; --batch-size is per process")
    g.add_argument("--n-layers-d", type=positive(int), help="depth for --discriminator n_layers (reference name)")
    add_config_flags(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("bench", help="time the fast path against a plain fp32 eager baseline, side by side")
    p.add_argument("--infer-batch-size", type=positive(int), help="inference batch (default: --batch-size)")
    p.add_argument("--size", type=positive(int), default=256, help="image side (default 256)")
    p.add_argument("--steps", type=positive(int), default=10, help="timed steps of each (default 10)")
    p.add_argument("--data", help="time the input path on this dataset (default: a few procedural facades)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_config_flags(p, only=BENCH_FLAGS, helps={("generator", "arch"): "the generator (default unet_SIZE)",
                                                ("discriminator", "ndf"): "discriminator width (default: --ngf)"})
    p.set_defaults(func=cmd_bench)


def run_config_from_args(args: argparse.Namespace) -> C.RunConfig:
    """Paper defaults <- preset <- explicit flags (<- what an --init-from source was trained for), resolved."""
    if args.data is None:
        raise Pix2PixError("train: --data DIR is required (or --resume RUN_DIR)")
    cfg = C.RunConfig()
    if args.preset:
        C.apply_preset(cfg, args.preset)
    apply_flags(cfg, given(args))
    if args.n_layers_d is not None:
        if (getattr(args, "discriminator.arch") or "n_layers") != "n_layers":
            raise Pix2PixError(f"--n-layers-d goes with --discriminator n_layers, not with "
                               f"--discriminator {getattr(args, 'discriminator.arch')}")
        cfg.discriminator.arch = f"n_layers_{args.n_layers_d}"  # the reference's name; resolve makes it ours
    if not Path(args.data).is_dir():
        raise Pix2PixError(f"--data {args.data}: no such folder")
    cfg.data.root = args.data
    cfg.name = args.name or Path(args.data).resolve().name or "pix2pix"
    cfg.out = args.runs or "runs"
    if cfg.train.init_from:
        rules.fine_tune(cfg, stated_flags(args))  # before resolve(): the crop size may fit only the source's G
    rules.absolute_files(cfg)  # so that --resume works from anywhere
    cfg = C.resolve(cfg)
    schedule = {("train", "epochs"), ("train", "epochs_decay")} & set(given(args))
    if args.preset == C.CPU_PRESET and len(schedule) == 1:
        raise Pix2PixError("--preset cpu sizes --epochs and --epochs-decay to --minutes: give both, or neither")
    if args.preset == C.CPU_PRESET and not schedule:
        from ..training.planning import size_to_minutes

        if args.nproc or world_from_env().distributed:  # each process would time its own schedule
            raise Pix2PixError("--preset cpu sizes its schedule for one process; with several give --epochs and "
                               "--epochs-decay")
        minutes = cfg.train.max_minutes or C.CPU_MINUTES
        print(f"timing a step here to size the schedule to {minutes:g} minute{'' if minutes == 1 else 's'}...")
        cfg = size_to_minutes(cfg, minutes)
    return cfg


def stated_flags(args: argparse.Namespace) -> set[tuple[str, str]]:
    """The configuration fields the command line chose: its flags, and a preset's settings."""
    return set(given(args)) | set(C.preset_fields(args.preset) if args.preset else ())


def resumed_config(args: argparse.Namespace) -> C.RunConfig:
    """The run's own configuration, with only what may change on a resume (how long and where it runs)."""
    run_flags = ["--" + d.replace("_", "-") for d in RUN_FLAGS if getattr(args, d) is not None]
    if run_flags:
        cfg = C.RunConfig.load(Path(args.resume) / "config.json")  # a missing run is said first
        raise Pix2PixError(f"{run_flags[0]} cannot change when resuming {args.resume} (its {cfg.name} keeps its "
                           "own); leave it out")
    return rules.resumed_config(Path(args.resume), given(args))


def cmd_train(args: argparse.Namespace) -> int:
    from ..training import train

    cfg = resumed_config(args) if args.resume else run_config_from_args(args)
    main_process = world_from_env().main  # under torchrun only rank 0 speaks
    if main_process and not args.nproc:
        for line in C.without_effect(cfg, set(given(args))):
            print(line, file=sys.stderr)
    if args.nproc:  # checked here first, so a user's mistake is one line and not N workers' reports
        return launch_torchrun(args.nproc, args.argv)
    result = train(cfg, resume=bool(args.resume), progress=args.progress,
                   stated=None if args.resume else stated_flags(args))
    if not main_process:
        return exit_status(result)
    if result.stopped == "nothing":
        print(f"{result.run_dir}: already at step {result.step}, the end of its schedule; nothing to do (lengthen it "
              "with --epochs/--epochs-decay); no file was changed")
        return 0
    rate = result.images / max(result.seconds, 1e-9)
    how = {"SIGTERM": "terminated (SIGTERM); saved", "SIGINT": "interrupted; saved",
           "max_minutes": "stopped at --minutes;", "max_steps": "stopped at --max-steps;"}.get(result.stopped,
                                                                                                 "done:")
    print(f"{how} step {result.step}, epoch {result.epoch}, {result.seconds:.1f} s ({rate:.1f} images/s)")
    if result.bad_images:
        print(f"skipped {len(result.bad_images)} bad image(s):")
        for line in result.bad_images:
            print(f"  {line}")
    if result.validation:
        print(result.validation)
    print(f"checkpoint: {result.checkpoint}")
    print(f"samples:    {result.page}")
    print(f"tensorboard --logdir {result.run_dir / 'tensorboard'}")
    return exit_status(result)


def exit_status(result) -> int:
    """0 when the run ended as planned; 143 after SIGTERM and 130 after Ctrl-C (both saved), as shells count."""
    return 143 if result.terminated else 130 if result.interrupted else 0


def launch_torchrun(nproc: int, command: list[str]) -> int:
    """``pix2pix train --nproc N ...`` = ``torchrun --standalone --nproc_per_node N -m pix2pix train ...``."""
    argv, skip = [], False
    for a in command:  # the same command line without --nproc
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            argv.append(a)
    cmd = [sys.executable, "-m", "pix2pix.training.torchrun", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "pix2pix", *argv]
    # torchrun gives its processes this long to stop at a step boundary and save before it kills them (its own
    # default, 30 s, can cut a save of the paper's model on a slow disk short).
    env = dict(os.environ, TORCH_ELASTIC_SHUTDOWN_TIMEOUT=os.environ.get("TORCH_ELASTIC_SHUTDOWN_TIMEOUT", "120"))
    proc = subprocess.Popen(cmd, env=env)
    # A scheduler's SIGTERM comes to this process alone: pass it on to torchrun, which passes it to every training
    # process (each stops at the same step and saves). Ctrl-C in a terminal reaches torchrun by itself (it is in
    # this process's group), and it passes that on too.
    forwarded: list[int] = []

    def forward(signum, frame):
        forwarded.append(signum)
        proc.send_signal(signum)

    previous = {sig: signal.signal(sig, handler) for sig, handler in ((signal.SIGTERM, forward),
                                                                       (signal.SIGINT, signal.SIG_IGN))}
    try:
        code = proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 + forwarded[0] if forwarded and code != 0 else code


def cmd_bench(args: argparse.Namespace) -> int:
    from ..bench import format_result, run_bench

    cfg, values = C.RunConfig(), given(args)
    apply_flags(cfg, values)
    cfg.generator.arch = values.get(("generator", "arch"), f"unet_{args.size}")
    cfg.discriminator.ndf = values.get(("discriminator", "ndf"), cfg.generator.ngf)
    cfg.data.crop_size = args.size
    result = run_bench(C.resolve(cfg), steps=args.steps, infer_batch=args.infer_batch_size,
                       data=Path(args.data) if args.data else None)
    print(json.dumps(result.to_dict()) if args.json else format_result(result))
    return 0
