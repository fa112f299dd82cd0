"""``pix2pix test``, ``translate``, ``export``, ``serve`` and ``models``: using a trained generator."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import config as C
from ..errors import Pix2PixError
from ..data.rasters import OUTPUT_FORMATS
from .args import (add_config_flags, add_device, add_engine, add_run_checkpoint, add_seed, checked_engine, given,
                   non_negative, port, positive, print_metrics, print_rows)

# What `translate` may state about a checkpoint, in train's own flags.
TRANSLATE_FLAGS = {("data", "direction"), ("generator", "arch"), ("generator", "ngf"), ("generator", "norm"),
                   ("generator", "dropout"), ("generator", "dropout_placement")}


def add_commands(sub) -> None:
    p = sub.add_parser("test", help="translate a split of a run's dataset, score it, write a results page",
                       description="Translate a split of the run's dataset with one of its checkpoints, score it "
                                   "against the targets (L1, PSNR, SSIM, sharpness), print the scores and write "
                                   "RUN/results/SPLIT/index.html.")
    p.add_argument("--run", required=True, help="a run folder (runs/NAME)")
    p.add_argument("--split", default="test", help="split to translate (default test)")
    add_run_checkpoint(p)
    p.add_argument("--eval", action="store_true", help="no dropout, running statistics (deterministic)")
    add_seed(p)
    add_device(p)
    add_engine(p)
    p.set_defaults(func=cmd_test)

    p = sub.add_parser("translate", help="translate image or array files of any size with a checkpoint",
                       description="Translate image or array files (or folders of them) of any size with a run "
                                   "folder, a checkpoint file or a published model's name, into OUTPUT/STEM.EXT.")
    p.add_argument("--checkpoint", required=True, help="run folder, .safetensors checkpoint, or reference .pth")
    p.add_argument("--input", required=True, nargs="+", action="extend",
                   help="image or array files, or folders; or video files (.mp4, .mov, .mkv, .webm, .avi)")
    p.add_argument("--output", required=True, help="folder for DIR/<input stem>.EXT (a video: DIR/<input name>, or "
                                                    "the video file to write, e.g. out.mp4)")
    p.add_argument("--output-format", choices=OUTPUT_FORMATS,
                   help="png (8-bit), png16 (16-bit grayscale), tiff or npy (the target's units); default: the "
                        "data's kind (.npy for .npy inputs, TIFF for TIFF, else PNG of the target's bit depth)")
    p.add_argument("--whole", action="store_true",
                   help="translate each file whole, even one of the size of the aligned A|B files the model was "
                        "trained on (by default such a file's source half is taken, as in training)")
    p.add_argument("--tile", type=positive(int), metavar="N",
                   help="translate N x N tiles and blend them (for images larger than memory; an .npy or "
                        "uncompressed TIFF is read and written by window)")
    p.add_argument("--overlap", type=non_negative(int), metavar="P",
                   help="pixels by which neighbouring tiles overlap and are blended (default: a quarter of --tile)")
    p.add_argument("--eval", action="store_true", help="no dropout, running statistics (deterministic)")
    add_seed(p, "; image i uses seed + i")
    add_device(p)
    add_engine(p)
    stated = "state it instead of reading it off the checkpoint"
    add_config_flags(p, only=TRANSLATE_FLAGS, helps={
        ("data", "direction"): "inputs are aligned A|B images: translate the A half (AtoB) or the B half (BtoA)",
        ("generator", "arch"): f"the architecture: {stated}", ("generator", "ngf"): f"the generator width: {stated}",
        ("generator", "norm"): f"the normalisation: {stated}", ("generator", "dropout"): f"the dropout rate: {stated}",
        ("generator", "dropout_placement"): "where dropout sits (reference .pth files load as 'reference')"})
    p.set_defaults(func=cmd_translate)

    p = sub.add_parser("models", help="list generators and discriminators with parameter counts")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("serve", help="the app: a page to draw and translate, and an HTTP API",
                       description="The app: a page to draw a label map (or a sketch) and watch it become a photo, "
                                   "and an HTTP API (its docs at /docs, which need no network), on this machine "
                                   "only unless --host says otherwise.")
    p.add_argument("--checkpoint", required=True, action="append",
                   help="a run folder, .safetensors, reference .pth (or .onnx with --backend onnx); repeat for more")
    p.add_argument("--name", action="append", help="the name of each --checkpoint (default: its run's name)")
    p.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (this machine only)")
    p.add_argument("--port", type=port, default=7860, help="default 7860")
    p.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                   help="another site whose pages may send this server work (e.g. https://example.org); by "
                        "default a page on another site gets 403")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="a host name the server answers for besides localhost and IP addresses (repeat for more); "
                        "others get 400, so that a DNS-rebinding page cannot read it")
    p.add_argument("--backend", choices=("auto", "torch", "onnx"), default="auto",
                   help="auto (default): the faster engine for this device (on a CPU with bf16 the compiled "
                        "engine, each new size compiled in the background while PyTorch answers; ONNX Runtime on "
                        "a CPU without bf16; PyTorch on a GPU); torch; onnx: an exported .onnx file")
    add_device(p)
    add_input_kind(p)
    p.add_argument("--max-upload-mb", type=positive(float), default=10.0, help="larger uploads get 413 (default 10)")
    p.add_argument("--max-pixels", type=positive(int), default=4096 * 4096, help="larger images get 400")
    p.add_argument("--max-batch", type=positive(int), default=8, help="requests batched together (default 8)")
    p.add_argument("--max-memory", type=positive(float), metavar="GIB",
                   help="memory the translations may take at once, in GiB (default: a quarter of this machine's); "
                        "a request that alone would take more gets 400, the others wait their turn")
    p.add_argument("--max-wait-ms", type=non_negative(float), default=10.0,
                   help="how long a request waits for company (default 10)")
    p.add_argument("--runtime", metavar="PATH",
                   help="onnxruntime-web (a tarball from 'npm pack onnxruntime-web@VERSION', or a folder), which lets "
                        "the page translate in the browser (default: the copy 'export --format web' keeps in "
                        "$PIX2PIX_HOME/web, if any)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("export", help="export a generator (ONNX, dynamic size; or a static web app), checked",
                       description="Write the generator as one ONNX file (any batch, height and width; the padding "
                                   "and the test mode inside it), checked against PyTorch. Its input 'x' and output "
                                   "'y' are NCHW float32: an image model's in [-1, 1] (pixel / 127.5 - 1), other "
                                   "data's in the data's own units. --format web writes a folder that is the whole "
                                   "drawing app, the model running in the page (onnxruntime-web): serve it from any "
                                   "static host.")
    p.add_argument("--checkpoint", required=True, help="run folder, .safetensors or reference .pth")
    p.add_argument("--format", choices=("onnx", "web"), default="onnx",
                   help="onnx (default: any batch, height and width, padding inside the graph); web: a folder that "
                        "is the whole app, the model running in the page (onnxruntime-web), for any static host")
    p.add_argument("--out", required=True, help="the .onnx file to write (--format web: the site's folder)")
    p.add_argument("--eval", action="store_true", help="deterministic: no dropout, running statistics (--format "
                                                       "onnx; a web page has both modes)")
    web = p.add_argument_group("--format web")
    web.add_argument("--weights", choices=("fp32", "fp16", "int8"),
                     help="the weights' precision (default: the smallest whose PSNR against fp32 on the val inputs is "
                          "above 35 dB)")
    web.add_argument("--runtime", metavar="PATH",
                     help="onnxruntime-web as a tarball ('npm pack onnxruntime-web@VERSION') or a folder (default: "
                          "the copy in $PIX2PIX_HOME/web, else downloaded from the npm registry and checked)")
    web.add_argument("--val", metavar="DIR", help="aligned pairs to calibrate and measure the weights on (default: "
                                                  "the model's own val split)")
    add_input_kind(web)
    p.set_defaults(func=cmd_export)


def add_input_kind(p) -> None:
    """What a page draws for a model: serve's and export --format web's."""
    p.add_argument("--input-kind", choices=("labels", "sketch", "photo"),
                   help="what the model takes (default: guessed from its dataset)")
    p.add_argument("--label-set", choices=("facades", "cityscapes"), help="classes and colours of label inputs")


def cmd_test(args: argparse.Namespace) -> int:
    from ..evaluation.metrics import evaluate_run

    print_metrics(evaluate_run(Path(args.run), args.split, seed=args.seed, device=args.device, fast=args.fast,
                               eval=args.eval, checkpoint=args.checkpoint, engine=checked_engine(args)))
    return 0


def cmd_translate(args: argparse.Namespace) -> int:
    from ..inference.tiling import pixels_of
    from ..inference.translate import Translator, input_files, translate_files
    from ..inference.video import is_video, translate_video, video_pixels

    files = input_files(args.input)
    values = given(args)
    if args.whole and ("data", "direction") in values:
        raise Pix2PixError("--whole translates files whole and --direction takes one half of each: give one")
    if args.overlap is not None and not args.tile:
        raise Pix2PixError("--overlap goes with --tile N")
    if args.tile and ("data", "direction") in values:
        raise Pix2PixError("--tile translates whole files; --direction takes one half of aligned pairs: give one")
    overrides = {name: v for (section, name), v in values.items() if section == "generator"}
    direction = values.get(("data", "direction"))
    videos = [f for f in files if is_video(f)]
    if videos:
        _check_video_args(args, files, videos, direction)
    # the work, which decides whether an engine's set-up pays
    pixels = sum(pixels_of(f) or 0 for f in files) + sum(video_pixels(f) for f in videos)
    translator = Translator.load(args.checkpoint, eval=args.eval, device=args.device, fast=args.fast,
                                 engine=checked_engine(args), work=pixels, run_seed=args.seed, **overrides)
    out = Path(args.output)
    if videos and is_video(out):  # --output clip.mp4: the one input's translation
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.resolve() == files[0].resolve():
            raise Pix2PixError(f"--output {out}: it is the input; choose another file")
        translate_video(translator, files[0], out, args.seed)
        print(f"translated {files[0]} into {out}")
        return 0
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise Pix2PixError(f"--output {out}: cannot create it ({e.strerror})") from None
    if any(f.parent.resolve() == out.resolve() for f in files):
        raise Pix2PixError(f"--output {out}: it holds inputs, and translate writes DIR/<input stem>.EXT, which could "
                           "overwrite them; choose another --output")
    stems = [f.stem for f in files]
    if len(set(stems)) != len(stems):
        dup = next(s for s in stems if stems.count(s) > 1)
        raise Pix2PixError(f"two inputs share the name '{dup}', so their outputs would collide in {out}")
    try:
        if videos:
            for f in files:
                translate_video(translator, f, out / f.name, args.seed)
        else:
            translate_files(translator, files, out, direction, args.seed, args.output_format, whole=args.whole,
                            tile=args.tile, overlap=args.overlap)
    except OSError as e:
        raise Pix2PixError(f"--output {out}: cannot write there ({e.strerror})") from None
    print(f"translated {len(files)} file(s) into {out}")
    return 0


def _check_video_args(args: argparse.Namespace, files: list[Path], videos: list[Path], direction) -> None:
    """Videos are translated whole, frame by frame, into videos: the options of image files are one line."""
    from ..inference.video import is_video

    if len(videos) != len(files):
        raise Pix2PixError("--input: videos and image files go through translate in separate commands")
    for flag, given_ in (("--tile", args.tile), ("--whole", args.whole), ("--direction", direction),
                         ("--output-format", args.output_format)):
        if given_:
            raise Pix2PixError(f"{flag} is for image files; a video is translated frame by frame, whole, into a video")
    if is_video(Path(args.output)) and len(files) != 1:
        raise Pix2PixError(f"--output {args.output}: one video file takes one input; name a folder for {len(files)}")


def cmd_models(args: argparse.Namespace) -> int:
    def line(r: dict) -> str:
        rf = f"{r['receptive_field']}x{r['receptive_field']}" if r["receptive_field"] else ""
        return f"{r['name']:<22}{r['role']:<15}{r['params']:>12,}  {rf:<16}{', '.join(r['aliases'])}"

    return print_rows(describe_models(), args.json,
                      f"{'name':<22}{'role':<15}{'params':>12}  {'receptive field':<16}aliases", line)


def cmd_serve(args: argparse.Namespace) -> int:
    from ..app.models import load_served

    names = args.name or []
    models = [load_served(Path(c), names[i] if i < len(names) else None, backend=args.backend, device=args.device,
                          kind=args.input_kind, labels=args.label_set)
              for i, c in enumerate(args.checkpoint)]
    if len({m.name for m in models}) != len(models):
        raise Pix2PixError("two checkpoints would be served under one name; give each a --name")
    import socket

    import uvicorn

    from ..app.server import create_app, server_config

    try:  # a port that is taken is one line, before any model is announced
        with socket.create_server((args.host, args.port)):
            pass
    except OSError as e:
        raise Pix2PixError(f"cannot listen on {args.host}:{args.port} ({e.strerror}); choose another --port") from None

    from ..app import runtime as ort_web

    runtime = ort_web.runtime_folder(Path(args.runtime)) if args.runtime else ort_web.cached()
    hosts = (*args.allow_host, args.host)  # the bound name is allowed too (an IP address always is)
    app = create_app(models, max_upload_bytes=int(args.max_upload_mb * 2**20), max_pixels=args.max_pixels,
                     max_batch=args.max_batch, max_wait_ms=args.max_wait_ms, allow_hosts=hosts,
                     allow_origins=tuple(args.allow_origin),
                     max_memory_bytes=int(args.max_memory * 2**30) if args.max_memory else None, runtime=runtime)
    for m in models:
        if m.images:
            print(f"model {m.name}: {m.kind} -> photo, {m.config.arch}, {m.backend.name}, {len(m.samples)} samples")
        else:
            bodies = "16-bit PNG or application/x-npy bodies" if m.png else "application/x-npy bodies"
            print(f"model {m.name}: API only (no page): {m.config.in_channels}-channel {m.scales.input.data} data "
                  f"in, {m.config.out_channels}-channel out, as {bodies} of POST /api/translate; "
                  f"{m.config.arch}, {m.backend.name}")
    if any(m.images for m in models):
        state = f"on (onnxruntime-web {ort_web.VERSION})" if runtime else \
            f"off (pass --runtime a tarball from '{ort_web.npm_pack_command()}', or run 'pix2pix export " \
            f"--format web' once, which keeps a copy in $PIX2PIX_HOME/web)"
        print(f"in-browser translation: {state}")
        print(f"open http://{args.host}:{args.port}/  (API docs: /docs)", flush=True)
    else:
        print(f"API at http://{args.host}:{args.port}/api/translate  (docs: /docs)", flush=True)
    uvicorn.Server(server_config(app, args.host, args.port)).run()
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from ..inference.export import EXPORTERS

    web_only = [flag for flag, value in (("--weights", args.weights), ("--runtime", args.runtime), ("--val", args.val),
                                         ("--input-kind", args.input_kind), ("--label-set", args.label_set)) if value]
    if args.format == "web":
        if args.eval:
            raise Pix2PixError("--eval: a web page has both modes (its 'deterministic' switch); leave it out")
        return export_web(args)
    if web_only:
        raise Pix2PixError(f"{web_only[0]} goes with --format web")
    report = EXPORTERS[args.format](Path(args.checkpoint), Path(args.out), eval=args.eval)
    print(f"wrote {args.out} ({report['mode']} mode{', dropout noise from ONNX Runtime' if report['dropout'] else ''}); "
          f"matches PyTorch within {report['max_abs_diff']:.1e} on {', '.join(report['sizes'])}")
    return 0


def export_web(args: argparse.Namespace) -> int:
    from ..app.site import export_site

    replacing = Path(args.out).is_dir() and any(Path(args.out).iterdir())
    entry = export_site(Path(args.checkpoint), Path(args.out), weights=args.weights,
                        runtime=Path(args.runtime) if args.runtime else None, val=Path(args.val) if args.val else None,
                        kind=args.input_kind, labels=args.label_set)
    web = entry["web"]
    for w in web["choices"]:
        psnr = "reference" if w["psnr_db"] is None else f"{w['psnr_db']:.1f} dB PSNR against fp32"
        print(f"  {w['weights']}: {w['bytes'] / 2**20:.1f} MiB, {psnr}, {w['ms_per_image']:.0f} ms an image "
              f"(ONNX Runtime here)" + ("  <- chosen" if w["weights"] == web["chosen"] else ""))
    where = "on the val inputs" if web["on_val"] else "on random inputs (no val split found)"
    print(f"wrote {args.out}/ ({web['chosen']} weights, measured {where})" +
          (", replacing the site that was there (files of yours beside it kept)" if replacing else ""))
    print(f"serve it from any static host, or here: python -m http.server --bind 127.0.0.1 --directory {args.out} "
          f"8000 (one thread there; a host that reads its _headers file gives it threads)")
    return 0


def describe_models() -> list[dict]:
    """Every listed architecture with its parameter count at the default settings (built on the meta
    device, so nothing is allocated): G 3->3 with ngf 64 (pix2pixHD's local: 32), D on 6 channels with ndf 64,
    each in its family's norm; ``settings`` says which."""
    import torch

    from ..networks import DISCRIMINATORS, GENERATORS, build_discriminator, build_generator, count_params, \
        receptive_field

    rows = []
    with torch.device("meta"):
        for name in GENERATORS:
            cfg = C.GeneratorConfig(arch=name, ngf=32 if name == "local" else 64)  # pix2pixHD's local is ngf 32
            rows.append(dict(name=name, role="generator", params=count_params(build_generator(cfg)),
                             receptive_field=None, aliases=[], settings=dict(ngf=cfg.ngf, in_channels=3,
                                                                             out_channels=3)))
        for name, aliases in DISCRIMINATORS.items():
            cfg = C.DiscriminatorConfig(arch=name)
            net = build_discriminator(cfg)
            settings = dict(ndf=cfg.ndf, in_channels=cfg.in_channels) | ({"num_d": cfg.num_d} if name == "multiscale"
                                                                          else {})
            rows.append(dict(name=name, role="discriminator", params=count_params(net),
                             receptive_field=receptive_field(net), aliases=list(aliases), settings=settings))
    return rows
