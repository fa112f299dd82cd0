"""``pix2pix export --format onnx``: the generator as one ONNX graph that takes any batch, height and width
in any ONNX runtime (:mod:`pix2pix.onnx_graph`: the padding to the U-Net's multiple and the crop back are in
the graph), run here by :class:`pix2pix.backends.OnnxBackend` (``pix2pix serve --backend onnx``).

Two modes, as at test time in PyTorch: the paper's (dropout on, each image normalised by its own statistics;
the default) or ``--eval`` (deterministic). Every export is checked against PyTorch with ONNX Runtime on
several sizes, none of them a multiple of the U-Net's, before it is kept.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from .backends import ONNX_FORMAT
from .checkpoints import load_checkpoint
from .config import GeneratorConfig
from .errors import Pix2PixError
from .inference import exportable
from .onnx_graph import onnx_session, write_graph


def export_onnx(checkpoint: Path, out: Path, eval: bool = False,
                check_sizes: tuple = ((1, 1.5, 1), (2, 1, 2.25), (1, 0.3, 0.7)), tolerance: float = 1e-4) -> dict:
    """Write ``out`` and check it; returns {"max_abs_diff": ..., "sizes": [...]}. ``check_sizes``: (batch,
    height, width), the sides in units of the pad multiple (plus a few pixels, so that none is a multiple)."""
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
        write_graph(torch_net, check_path, cfg.in_channels, max(multiple, minimum), False)
        session, worst, sizes = onnx_session(check_path), 0.0, []
        gen = torch.Generator().manual_seed(0)
        for batch, h, w in check_sizes:
            size = (max(round(multiple * h) + 3, minimum), max(round(multiple * w) + 5, minimum))
            x = torch.rand(batch, cfg.in_channels, *size, generator=gen) * 2 - 1
            with torch.no_grad():
                ref = torch_net(x).numpy()
            got = session.run(None, {"x": x.numpy()})[0]
            worst = max(worst, float(np.abs(got - ref).max()))
            sizes.append(f"{x.shape[0]}x{size[0]}x{size[1]}")
        if worst > tolerance:
            raise Pix2PixError(f"the ONNX graph differs from PyTorch by {worst:.2e} (> {tolerance:g}); not written")
        tmp_out = Path(tmp) / "model.onnx"
        write_graph(exportable(G, eval), tmp_out, cfg.in_channels, max(multiple, minimum), keep_dropout)
        _annotate(tmp_out, cfg, multiple, minimum, eval, ckpt.meta)
        odd = (2, cfg.in_channels, multiple + 7, max(multiple // 2 + 3, minimum))
        got = onnx_session(tmp_out).run(None, {"x": np.zeros(odd, np.float32)})[0]
        if got.shape != (2, cfg.out_channels, *odd[2:]) or not np.isfinite(got).all():
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
              "pad_minimum": str(minimum), "padding": "graph", "mode": "eval" if eval else "paper",
              "step": str(meta.get("step", "")), "data": json.dumps(run.get("data", {}))}
    for k, v in fields.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(model, str(path))


EXPORTERS = {"onnx": export_onnx}  # pix2pix export --format
