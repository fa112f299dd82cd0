"""``pix2pix datasets ...`` and ``pix2pix demo``."""

from __future__ import annotations

import argparse
from pathlib import Path

from .args import image_side, non_negative, positive, print_rows


def add_commands(sub) -> None:
    p = sub.add_parser("pretrained", help="the reference's published pix2pix models: list and download them")
    psub = p.add_subparsers(dest="pretrained_command", required=True, metavar="ACTION")
    q = psub.add_parser("list", help="the published models, their task, direction and input, and which are here")
    q.add_argument("--json", action="store_true", help="print a JSON list")
    q.set_defaults(func=cmd_pretrained_list)
    q = psub.add_parser("download", help="download one into the cache (then use its NAME as a checkpoint)")
    q.add_argument("name", help="facades_label2photo, sat2map, map2sat, edges2shoes or day2night")
    q.add_argument("--out", help="folder to keep it in (default $PIX2PIX_HOME/models, else ~/.cache/pix2pix/models)")
    q.add_argument("--url", help="download from here instead of the reference's server (a mirror)")
    q.add_argument("--sha256", help="expected SHA-256 of the .pth")
    q.set_defaults(func=cmd_pretrained_download)

    p = sub.add_parser("datasets", help="dataset tools")
    dsub = p.add_subparsers(dest="datasets_command", required=True, metavar="ACTION")
    q = dsub.add_parser("check", help="list every problem in a dataset folder (exit 1 if any)")
    q.add_argument("dir", help="dataset root")
    q.add_argument("--in-channels", type=positive(int), default=3, help="channels of the A side (default 3)")
    q.add_argument("--out-channels", type=positive(int), default=3, help="channels of the B side (default 3)")
    q.set_defaults(func=cmd_datasets_check)

    q = dsub.add_parser("make", help="write the built-in procedural dataset")
    q.add_argument("name", choices=("facades-synth",), help="facades-synth: procedural CMP-style facades")
    q.add_argument("--out", required=True, help="dataset folder to create")
    q.add_argument("--train", type=positive(int), default=400, help="train pairs (default 400)")
    q.add_argument("--val", type=non_negative(int), default=100, help="val pairs (default 100)")
    q.add_argument("--test", type=non_negative(int), default=100, help="test pairs (default 100)")
    q.add_argument("--size", type=image_side, default=256, help="side of each half in pixels, 32 to 4096 (default 256)")
    q.add_argument("--seed", type=int, default=0, help="the same seed gives identical files (default 0)")
    q.set_defaults(func=cmd_datasets_make)

    q = dsub.add_parser("download", help="download and unpack one of the paper's datasets")
    q.add_argument("name", help="facades, maps, edges2shoes, edges2handbags, night2day, or cityscapes (instructions)")
    q.add_argument("--out", default="datasets", help="parent folder (default datasets): the data lands in OUT/NAME")
    q.add_argument("--url", help="download from here instead of the authors' server")
    q.add_argument("--sha256", help="expected SHA-256 of the archive")
    q.add_argument("--max-bytes", type=positive(int), default=16 * 2**30,
                   help="most bytes to take from a server that does not state the file's size (default 16 GiB)")
    q.add_argument("--max-expansion", type=positive(float), default=50,
                   help="most extracted bytes per archive byte (default 50; the paper's archives expand about 1x)")
    q.add_argument("--max-members", type=positive(int), default=1_000_000,
                   help="most files and folders in the archive (default 1,000,000)")
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

    p = sub.add_parser("demo", help="the main job: procedural facades, a CPU-sized model, a results page")
    p.add_argument("--out", default="runs/demo", help="the demo's run folder (default runs/demo; replaced each time)")
    p.add_argument("--data", default="datasets/facades-synth",
                   help="the procedural facades (made there if absent; default datasets/facades-synth)")
    p.add_argument("--minutes", type=positive(float), default=8.0, help="training time (default 8)")
    p.add_argument("--size", type=int, choices=(64, 128, 256), default=128, help="training resolution (default 128)")
    p.set_defaults(func=cmd_demo)


def cmd_datasets_check(args: argparse.Namespace) -> int:
    from ..data.pairs import check_dataset

    kinds: dict[str, str] = {}
    count, problems = check_dataset(Path(args.dir), args.in_channels, args.out_channels, kinds)
    for line in problems:
        print(line)
    for side, kind in kinds.items():
        print(f"{side}: {kind}")
    print(f"{args.dir}: {count} pair(s) checked, {len(problems)} problem(s)")
    return 1 if problems else 0


def cmd_datasets_make(args: argparse.Namespace) -> int:
    from ..datasets.facades_synth import make_facades_synth

    out = make_facades_synth(Path(args.out), train=args.train, val=args.val, test=args.test, size=args.size,
                             seed=args.seed)
    print(f"wrote {args.train + args.val + args.test} pairs to {out} (A = photo | B = labels; labels -> photo "
          "is --direction BtoA)")
    return 0


def cmd_pretrained_list(args: argparse.Namespace) -> int:
    from ..inference.pretrained import list_published

    return print_rows(list_published(), args.json,
                      f"{'name':<22}{'task':<32}{'dataset, direction':<24}{'input':<8}downloaded",
                      lambda r: f"{r['name']:<22}{r['task']:<32}{r['dataset'] + ', ' + r['direction']:<24}"
                                f"{r['kind']:<8}{r['downloaded'] or 'no'}")


def cmd_pretrained_download(args: argparse.Namespace) -> int:
    from ..inference.pretrained import download_published

    path = download_published(args.name, Path(args.out) if args.out else None, url=args.url, sha256=args.sha256)
    print(f"{args.name}: {path} (use it as --checkpoint {args.name})")
    return 0


def cmd_datasets_download(args: argparse.Namespace) -> int:
    from ..datasets.download import cityscapes_instructions, download_dataset

    if args.name == "cityscapes" and not args.url:
        print(cityscapes_instructions())
        return 0
    folder = download_dataset(args.name, Path(args.out), url=args.url, sha256=args.sha256, max_bytes=args.max_bytes,
                              max_expansion=args.max_expansion, max_members=args.max_members)
    print(f"{args.name}: {folder}")
    return 0


def cmd_datasets_combine(args: argparse.Namespace) -> int:
    from ..datasets.layout import combine

    report = combine(Path(args.a), Path(args.b), Path(args.out))
    for line in report.problems:
        print(f"skipped: {line}")
    counts = ", ".join(f"{split} {n}" for split, n in report.splits.items())
    print(f"wrote {report.pairs} aligned pair(s) to {args.out} ({counts}); {len(report.problems)} problem(s)")
    return 0


def cmd_datasets_split(args: argparse.Namespace) -> int:
    from ..datasets.layout import split_folder

    counts = split_folder(Path(args.dir), val=args.val, test=args.test, seed=args.seed)
    print(f"{args.dir}: " + ", ".join(f"{split} {n}" for split, n in counts.items()))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    for line in run_demo(Path(args.out), Path(args.data), minutes=args.minutes, size=args.size):
        print(line, flush=True)
    return 0
