"""``pix2pix export --format web --out SITE/``: the app as a folder of static files, the model running in the
page (onnxruntime-web), with no server code and nothing fetched from elsewhere:

    SITE/index.html, static/        the drawing page (the one ``serve`` shows), in its static mode
    SITE/site.json                  the model: its input kind, palette, weights, size, PSNR and time
    SITE/models/NAME.onnx           the web graph (:mod:`pix2pix.inference.web`) in the chosen weights
    SITE/samples/NAME/0.png ...     inputs from its val split
    SITE/ort/                       onnxruntime-web's wasm (and WebGPU) build, unchanged, with its NOTICE
    SITE/_headers                   COOP/COEP for hosts that read it (Netlify, Cloudflare Pages): threads

Any static host serves it (``python -m http.server`` too, with one thread, which the page says). The folder is
built beside SITE and renamed into place, so SITE is a whole site or the one that was there. A SITE that is not
a site this command wrote is never replaced; in one that is, what else its top level holds (a CNAME, .git, a
page of your own) is carried into the new site.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from importlib import resources
from pathlib import Path
from urllib.parse import quote

import numpy as np

from ..checkpoints import load_checkpoint
from ..errors import Pix2PixError
from ..files import Lock
from ..speed import cpu_name
from . import runtime as ort_web
from .models import described

FORMAT = "pix2pix-site/1"
SAMPLES = 8  # val inputs shipped with the site
CALIBRATION = 16  # val inputs the weights are calibrated and measured on
HEADERS = "/*\n  Cross-Origin-Opener-Policy: same-origin\n  Cross-Origin-Embedder-Policy: require-corp\n"
OWNED = ("index.html", "static", "site.json", "models", "samples", "ort", "_headers")  # what a re-export replaces


def export_site(checkpoint: Path, out: Path, weights: str | None = None, runtime: Path | None = None,
                val: Path | None = None, name: str | None = None, kind: str | None = None,
                labels: str | None = None, progress: bool = True) -> dict:
    """Write the site; returns site.json's model entry."""
    from ..inference.web import WEIGHTS, build_weights, default_weights

    out = Path(out).resolve()
    if weights is not None and weights not in WEIGHTS:
        raise Pix2PixError(f"unknown --weights '{weights}'; choose from {', '.join(WEIGHTS)}")
    if out.exists() and not (out.is_dir() and (not any(out.iterdir()) or _is_site(out))):
        raise Pix2PixError(f"--out {out}: exists and is not a site 'pix2pix export --format web' wrote; name a new "
                           "folder")
    ckpt = load_checkpoint(Path(checkpoint))
    cfg = ckpt.generator
    model = described(Path(checkpoint), cfg, ckpt.meta | {"scales": ckpt.scales.to_dict()}, None, name, kind, labels)
    if cfg.label_nc:
        raise Pix2PixError(f"{checkpoint}: takes class maps (--label-nc {cfg.label_nc}), which the page does not "
                           "draw; export --format onnx, or serve it")
    if not model.images:
        raise Pix2PixError(f"{checkpoint}: takes {cfg.in_channels}-channel {model.scales.input.data} data, which the "
                           "page does not draw; export --format onnx for ONNX Runtime")
    runtime_files = ort_web.runtime_folder(runtime, progress=progress)  # before the slow part: a missing one fails
    inputs = _val_inputs(model, val)
    if weights == "int8" and not inputs:
        raise Pix2PixError(f"{checkpoint}: no val split found to calibrate int8 weights on: pass --val DIR (aligned "
                           "pairs, as the dataset's val split), or --weights fp16")
    out.parent.mkdir(parents=True, exist_ok=True)
    lock = Lock(out.parent / f".{out.name}.lock", f"is writing the site {out.name}")
    lock.acquire()
    try:
        with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}-") as tmp:
            site, work = Path(tmp) / "site", Path(tmp) / "work"
            work.mkdir()
            which = (weights,) if weights else WEIGHTS
            if not inputs and weights is None:
                which = ("fp32", "fp16")  # int8 needs val inputs to calibrate on; fp16 is measured on noise
            G = ckpt.build_generator().float().eval()
            measured_on = inputs or [np.random.default_rng(0).uniform(-1, 1, (1, cfg.in_channels, 256, 256))
                                     .astype(np.float32)]
            built = build_weights(G, cfg, measured_on[:CALIBRATION], work, which=which, meta=ckpt.meta)
            chosen = weights or default_weights(built)
            entry = _write(site, model, built, chosen, runtime_files, bool(inputs))
            _replace(site, out)
    finally:
        lock.release()
    return entry


def _write(site: Path, model, built: dict, chosen: str, runtime_files: Path, on_val: bool) -> dict:
    static = resources.files("pix2pix.app") / "static"
    (site / "static").mkdir(parents=True)
    for item in static.iterdir():
        if item.name != "index.html" and item.is_file():
            (site / "static" / item.name).write_bytes(item.read_bytes())
    page = (static / "index.html").read_text()
    (site / "index.html").write_text(page.replace('<body>', '<body data-site="static">', 1))
    (site / "models").mkdir()
    graph = site / "models" / f"{model.name}.onnx"  # named after its run: a folder name, so no "/" in it
    shutil.copyfile(built[chosen].path, graph)
    (site / "ort").mkdir()
    for f in ort_web.FILES:
        shutil.copyfile(runtime_files / f, site / "ort" / f)
    (site / "ort" / "NOTICE").write_text(ort_web.NOTICE)
    (site / "_headers").write_text(HEADERS)
    samples = site / "samples" / model.name
    samples.mkdir(parents=True)
    count = 0
    for i in range(min(SAMPLES, len(model.samples))):
        try:
            model.sample_input(i).save(samples / f"{i}.png")
            count += 1
        except (OSError, Pix2PixError):
            break
    web = _web_metadata(built[chosen].path)
    web |= {"url": f"models/{quote(model.name)}.onnx", "ort": "ort/", "chosen": chosen, "measured_on": cpu_name(),
            "on_val": on_val, "choices": [w.describe() for w in built.values()]} | built[chosen].describe()
    entry = model.describe() | {"samples": count, "sample_path": f"samples/{quote(model.name)}/", "web": web}
    (site / "site.json").write_text(json.dumps({"format": FORMAT, "runtime": {
        "package": ort_web.PACKAGE, "version": ort_web.VERSION, "path": "ort/"}, "models": [entry]}, indent=1))
    return entry


def _web_metadata(path: Path) -> dict:
    import onnx

    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    return json.loads(props["web"])


def _val_inputs(model, val: Path | None) -> list[np.ndarray]:
    """The val inputs as (1, C, H, W) arrays in [-1, 1]: ``val`` (aligned pairs), else the model's val split."""
    from ..data.pairs import list_images
    from ..data.rasters import to_tensor

    if val is not None:
        if not Path(val).is_dir():
            raise Pix2PixError(f"--val {val}: not a folder")
        model.samples = list_images(Path(val))[0]
        if not model.samples:
            raise Pix2PixError(f"--val {val}: holds no images")
    inputs = []
    for i in range(min(CALIBRATION, len(model.samples))):
        image = model.sample_input(i)
        inputs.append(to_tensor(image, model.scales.input).unsqueeze(0).numpy())
    return inputs


def _is_site(folder: Path) -> bool:
    try:
        return json.loads((folder / "site.json").read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def _replace(new: Path, out: Path) -> None:
    """``new`` renamed to ``out``; an old site there gives its files that are not the site's own (:data:`OWNED`)
    to the new one, is moved aside and removed after."""
    if not out.exists():
        os.replace(new, out)
        return
    old = out.parent / f".{out.name}-old-{os.getpid()}"
    os.replace(out, old)
    os.replace(new, out)
    for entry in old.iterdir():  # until this loop ends, the old site (and what it carries) is kept in full
        if entry.name not in OWNED:
            os.replace(entry, out / entry.name)
    shutil.rmtree(old, ignore_errors=True)
