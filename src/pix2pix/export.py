"""``pix2pix export --format onnx``: the generator as an ONNX graph with dynamic batch, height and width (run
by :class:`pix2pix.backends.OnnxBackend`, ``pix2pix serve --backend onnx``).

The graph is the network between the padding and the crop that make any image size work: its height and
width must be multiples of the generator's ``pad_multiple`` (256 for unet_256), which the file's metadata
states with its ``pad_minimum``; the backend pads and crops as the PyTorch generator does. Two modes, as at test time in PyTorch: the
paper's (dropout on, each image normalised by its own statistics; the default) or ``--eval`` (deterministic).
The exporter is torch's TorchScript-based one: the torch.export-based one specialises the U-Net's input
size here. Every export is checked against PyTorch with ONNX Runtime on several sizes before it is kept.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .backends import ONNX_FORMAT, onnx_session
from .checkpoints import load_checkpoint
from .config import GeneratorConfig
from .errors import Pix2PixError
from .inference import exportable


def _export(core: nn.Module, path: Path, multiple: int, in_channels: int, keep_dropout: bool) -> None:
    import warnings

    x = torch.rand(1, in_channels, multiple, multiple) * 2 - 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and train-mode notes
        torch.onnx.export(core, (x,), str(path), dynamo=False, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch", 2: "height", 3: "width"},
                                        "y": {0: "batch", 2: "height", 3: "width"}},
                          opset_version=17, do_constant_folding=not keep_dropout)


def export_onnx(checkpoint: Path, out: Path, eval: bool = False, check_sizes: tuple = ((1, 1), (1, 2), (2, 1)),
                tolerance: float = 1e-4) -> dict:
    """Write ``out`` and check it; returns {"max_abs_diff": ..., "sizes": [...]}. ``check_sizes`` are in
    units of the pad multiple (height, width)."""
    ckpt = load_checkpoint(Path(checkpoint))
    G = ckpt.build_generator().float().eval()
    cfg = ckpt.generator
    multiple, minimum = G.pad_multiple, G.pad_minimum
    keep_dropout = not eval and cfg.dropout > 0
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise Pix2PixError(f"--out {out}: cannot create its folder ({e.strerror})") from None
    with tempfile.TemporaryDirectory() as tmp:
        # The parity check: the same graph without dropout noise (noise cannot be compared draw for draw).
        check_path = Path(tmp) / "check.onnx"
        torch_net = exportable(G, eval, dropout=False)
        _export(torch_net, check_path, multiple, cfg.in_channels, False)
        session, worst, sizes = onnx_session(check_path), 0.0, []
        gen = torch.Generator().manual_seed(0)
        for k, (h, w) in enumerate(check_sizes):
            size = (max(multiple * h, minimum), max(multiple * w, minimum))
            x = torch.rand(1 + k % 2, cfg.in_channels, *size, generator=gen) * 2 - 1
            with torch.no_grad():
                ref = torch_net(x).numpy()
            got = session.run(None, {"x": x.numpy()})[0]
            worst = max(worst, float(np.abs(got - ref).max()))
            sizes.append(f"{x.shape[0]}x{size[0]}x{size[1]}")
        if worst > tolerance:
            raise Pix2PixError(f"the ONNX graph differs from PyTorch by {worst:.2e} (> {tolerance:g}); not written")
        tmp_out = Path(tmp) / "model.onnx"
        _export(exportable(G, eval), tmp_out, multiple, cfg.in_channels, keep_dropout)
        _annotate(tmp_out, cfg, multiple, minimum, eval, ckpt.meta)
        got = onnx_session(tmp_out).run(None, {"x": np.zeros((1, cfg.in_channels, multiple, multiple), np.float32)})[0]
        if got.shape != (1, cfg.out_channels, multiple, multiple) or not np.isfinite(got).all():
            raise Pix2PixError("the exported graph does not run cleanly in ONNX Runtime; not written")
        try:
            os.replace(tmp_out, out)
        except OSError:
            import shutil

            shutil.copyfile(tmp_out, out)
    return {"max_abs_diff": worst, "sizes": sizes, "mode": "eval" if eval else "paper", "dropout": keep_dropout}


def _annotate(path: Path, cfg: GeneratorConfig, multiple: int, minimum: int, eval: bool, meta: dict) -> None:
    import onnx

    model = onnx.load(str(path))
    run = meta.get("config") or {}
    fields = {"format": ONNX_FORMAT, "generator": json.dumps(asdict(cfg)), "pad_multiple": str(multiple),
              "pad_minimum": str(minimum), "mode": "eval" if eval else "paper",
              "step": str(meta.get("step", "")), "data": json.dumps(run.get("data", {}))}
    for k, v in fields.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(model, str(path))
