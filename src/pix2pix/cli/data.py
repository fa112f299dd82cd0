"""``pix2pix datasets ...`` and ``pix2pix demo``."""

from __future__ import annotations

import argparse
from pathlib import Path

from .args import image_side, non_negative, positive, print_rows, renamed


def add_commands(sub) -> None:
    p = sub.add_parser("pretrained", help="the reference's published pix2pix models: list and download them")
    psub = p.add_subparsers(dest="pretrained_command", required=True, metavar="ACTION")
    q = psub.add_parser("list", help="the published models, their task, direction and input, and which are here")
    q.add_argument("--json", action="store_true", help="print a JSON list")
    q.set_defaults(func=cmd_pretrained_list)
    q = psub.add_parser("download", help="download one into the cache (then use its NAME as a checkpoint)")
    q.add_argument("name", help="facades_label2photo, sat2map, map2sat, edges2shoes or day2night")
    q.add_argument("--into", metavar="DIR", help="the folder to keep it in: DIR/NAME.safetensors (default "
                   "$PIX2PIX_HOME/models, else ~/.cache/pix2pix/models, where a NAME is looked up)")
    q.add_argument("--out", dest="into", action=renamed("--into"), help=argparse.SUPPRESS)
    q.add_argument("--url", help="download from here instead of the reference's server (a mirror)")
    q.add_argument("--sha256", help="expected SHA-256 of the .pth")
    q.set_defaults(func=cmd_pretrained_download)

    p = sub.add_parser("datasets", help="make, download, combine, split and check datasets")
    dsub = p.add_subparsers(dest="datasets_command", required=True, metavar="ACTION")
    q = dsub.add_parser("check", help="read every file of a dataset: a summary of what it holds, then its problems "
                        "grouped by kind (exit 1 if any)")
    q.add_argument("dir", help="the dataset folder (DATA/SPLIT/*.jpg, or DATA/A/SPLIT + DATA/B/SPLIT)")
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
    q.add_argument("--into", metavar="DIR", default="datasets",
                   help="the folder that holds datasets: this one lands in DIR/NAME (default datasets)")
    q.add_argument("--out", dest="into", action=renamed("--into"), help=argparse.SUPPRESS)
    q.add_argument("--url", help="download from here instead of the authors' server")
    q.add_argument("--sha256", help="expected SHA-256 of the archive")
    q.add_argument("--max-bytes", type=positive(int), default=16 * 2**30,
                   help="most bytes to take from a server that does not state the file's size (default 16 GiB)")
    q.add_argument("--max-expansion", type=positive(float), default=50,
                   help="most extracted bytes per archive byte (default 50; the paper's archives expand about 1x)")
    q.add_argument("--max-members", type=positive(int), default=1_000_000,
                   help="most files and folders in the archive (default 1,000,000)")
    q.set_defaults(func=cmd_datasets_download)

    q = dsub.add_parser("combine", help="pair A and B folders by file name into a new dataset of aligned A|B images")
    q.add_argument("--a", required=True, help="the folder of A images (flat, or with train/val/test subfolders)")
    q.add_argument("--b", required=True, help="the folder of B images, named like the A images")
    q.add_argument("--out", required=True, help="the new dataset folder")
    q.add_argument("--val", type=float, default=0.0,
                   help="fraction of the pairs for val, when --a and --b are flat (default 0: all in train)")
    q.add_argument("--test", type=float, default=0.0,
                   help="fraction of the pairs for test, when --a and --b are flat (default 0)")
    q.add_argument("--seed", type=int, default=0,
                   help="the same seed gives the same split, the same as `datasets split` gives (default 0)")
    q.set_defaults(func=cmd_datasets_combine)

    q = dsub.add_parser("hd", help="pix2pixHD's layout (train_label, train_inst, train_img) as a dataset for "
                        "--label-nc (class maps, with instance ids when given)")
    q.add_argument("--from", dest="src", required=True, help="the pix2pixHD dataset folder (e.g. datasets/cityscapes)")
    q.add_argument("--out", required=True, help="the new dataset folder")
    q.set_defaults(func=cmd_datasets_hd)

    q = dsub.add_parser("split", help="split a dataset without val or test into train/val/test (a flat folder of "
                        "aligned images, or combine's output, all in DIR/train)")
    q.add_argument("dir", help="the dataset folder: aligned A|B images directly in it, or all in DIR/train")
    q.add_argument("--val", type=float, default=0.1, help="fraction of the images for val (default 0.1)")
    q.add_argument("--test", type=float, default=0.1, help="fraction of the images for test (default 0.1)")
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

    report = check_dataset(Path(args.dir), args.in_channels, args.out_channels)
    splits = ", ".join(f"{split} {n}" for split, n in report.splits.items())
    where = f" in {' and '.join(sorted(report.layouts))}: {splits}" if splits else ""
    print(f"{args.dir}: {report.pairs} pair(s){where}")
    if report.pairs:
        for side in "AB":
            print(f"{side}: {report.side(side)}")
    kinds = _print_problems(report.problems)
    print(f"{args.dir}: {report.pairs} pair(s) checked, {len(report.problems)} problem(s)"
          + (f" of {kinds} kind(s)" if kinds else ""))
    return 1 if report.problems else 0


def _print_problems(problems: list[str], prefix: str = "", shown: int = 3) -> int:
    """The first ``shown`` problems of each kind, and how many more of it there are; returns the number of kinds."""
    from ..data.pairs import group_problems

    groups = group_problems(problems)
    for group in groups:
        for line in group[:shown]:
            print(prefix + line)
        if len(group) > shown:
            print(f"  ... and {len(group) - shown} more like this")
    return len(groups)


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

    path = download_published(args.name, Path(args.into) if args.into else None, url=args.url, sha256=args.sha256)
    print(f"{args.name}: {path} (use it as --checkpoint {args.name})")
    return 0


def cmd_datasets_download(args: argparse.Namespace) -> int:
    from ..datasets.download import cityscapes_instructions, download_dataset

    if args.name == "cityscapes" and not args.url:
        print(cityscapes_instructions())
        return 0
    folder = download_dataset(args.name, Path(args.into), url=args.url, sha256=args.sha256, max_bytes=args.max_bytes,
                              max_expansion=args.max_expansion, max_members=args.max_members)
    print(f"{args.name}: {folder}")
    return 0


def cmd_datasets_combine(args: argparse.Namespace) -> int:
    from ..datasets.layout import combine

    report = combine(Path(args.a), Path(args.b), Path(args.out), val=args.val, test=args.test, seed=args.seed)
    _print_problems(report.problems, prefix="skipped: ")
    counts = ", ".join(f"{split} {n}" for split, n in report.splits.items())
    print(f"wrote {report.pairs} aligned pair(s) to {args.out} ({counts}); {len(report.problems)} problem(s)")
    if list(report.splits) == ["train"]:
        print(f"next: pix2pix datasets split {args.out} --val 0.1 --test 0.1  (gives val and test their share)")
    return 0


def cmd_datasets_hd(args: argparse.Namespace) -> int:
    from ..datasets.layout import from_pix2pixhd

    counts, instances = from_pix2pixhd(Path(args.src), Path(args.out))
    flags = "--instance --in-channels 2" if instances else "--in-channels 1"
    print(f"wrote {sum(counts.values())} pair(s) to {args.out} ({', '.join(f'{k} {v}' for k, v in counts.items())}); "
          f"train with --label-nc N (35 for Cityscapes) {flags}")
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
