"""``pix2pix export --format onnx``: the generator as one ONNX graph that takes any batch, height and width
in any ONNX runtime (:mod:`pix2pix.inference.onnx_graph`: the padding to the U-Net's multiple and the crop back are in
the graph), run here by :class:`pix2pix.inference.backends.OnnxBackend` (``pix2pix serve --backend onnx``).

Two modes, as at test time in PyTorch: the paper's (dropout on, each image normalised by its own statistics;
the default) or ``--eval`` (deterministic). Every export is checked against PyTorch with ONNX Runtime on
several sizes, none of them a multiple of the U-Net's, before it is kept.

What the graph takes: an 8-bit model's graph takes and gives [-1, 1] (``io`` metadata ``unit``), as before; any
other model's holds its stored scalings (:mod:`pix2pix.data.units`), so it takes float32 values in the data's
units and gives the target's (``io`` ``data``): a user of plain ONNX Runtime needs nothing but the file.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from .backends import ONNX_FORMAT
from ..checkpoints import load_checkpoint
from ..config import GeneratorConfig
from ..errors import Pix2PixError
from ..files import atomic_write
from .translate import exportable
from .onnx_graph import onnx_session, write_graph, write_metadata
from ..data.units import Scales


def export_onnx(checkpoint: Path, out: Path, eval: bool = False,
                check_sizes: tuple = ((1, 1.5, 1), (2, 1, 2.25), (1, 0.3, 0.7)), tolerance: float = 1e-4) -> dict:
    """Write ``out`` and check it; returns {"max_abs_diff": ..., "sizes": [...]}. ``check_sizes``: (batch,
    height, width), the sides in units of the pad multiple (plus a few pixels, so that none is a multiple)."""
    if Path(out).is_dir():
        raise Pix2PixError(f"--out {out}: a folder; name the .onnx file to write (e.g. {Path(out) / 'model.onnx'})")
    ckpt = load_checkpoint(Path(checkpoint))
    G = ckpt.build_generator().float().eval()
    cfg, scales = ckpt.generator, ckpt.scales
    wrap = (lambda net: net) if scales.eight_bit else (lambda net: InUnits(net, scales))  # noqa: E731
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
        torch_net = wrap(exportable(G, eval, dropout=False))
        write_graph(torch_net, check_path, cfg.in_channels, max(multiple, minimum), False)
        session, worst, sizes = onnx_session(check_path), 0.0, []
        gen = torch.Generator().manual_seed(0)
        for batch, h, w in check_sizes:
            size = (max(round(multiple * h) + 3, minimum), max(round(multiple * w) + 5, minimum))
            x = torch.rand(batch, cfg.in_channels, *size, generator=gen) * 2 - 1
            if not scales.eight_bit:
                x = scales.input.from_unit(x)  # the graph takes the data's units
            if cfg.label_nc:  # a class map: every class, and (a second channel) a few instance ids
                x = torch.randint(0, cfg.label_nc, x.shape, generator=gen).float()
                x[:, 1:] = torch.randint(0, 4, x[:, 1:].shape, generator=gen).float()
            with torch.no_grad():
                ref = torch_net(x)
            got = torch.from_numpy(session.run(None, {"x": x.numpy()})[0])
            if not scales.eight_bit:  # compared in [-1, 1], whatever the units
                ref, got = scales.output.to_unit(ref), scales.output.to_unit(got)
            worst = max(worst, float((got - ref).abs().max()))
            sizes.append(f"{x.shape[0]}x{size[0]}x{size[1]}")
        if worst > tolerance:
            raise Pix2PixError(f"the ONNX graph differs from PyTorch by {worst:.2e} (> {tolerance:g}); not written")
        tmp_out = Path(tmp) / "model.onnx"
        write_graph(wrap(exportable(G, eval)), tmp_out, cfg.in_channels, max(multiple, minimum), keep_dropout)
        _annotate(tmp_out, cfg, multiple, minimum, eval, ckpt.meta, scales)
        odd = (2, cfg.in_channels, multiple + 7, max(multiple // 2 + 3, minimum))
        got = onnx_session(tmp_out).run(None, {"x": np.zeros(odd, np.float32)})[0]
        if got.shape != (2, cfg.out_channels, *odd[2:]) or not np.isfinite(got).all():
            raise Pix2PixError("the exported graph does not run cleanly in ONNX Runtime; not written")
        # Copied to a temporary file beside --out, then renamed over it: the folder built here may be on another
        # file system, and a copy that fails (a full disk) must leave a file that was there as it was.
        atomic_write(Path(out), lambda dest: shutil.copyfile(tmp_out, dest))
    return {"max_abs_diff": worst, "sizes": sizes, "mode": "eval" if eval else "paper", "dropout": keep_dropout}


class InUnits(torch.nn.Module):
    """A generator between its two scalings: data units in, the target's units out (float32, not rounded)."""

    def __init__(self, G: torch.nn.Module, scales: Scales):
        super().__init__()
        self.G, self.scales = G, scales
        # Its own flag only, as G's (a recursive eval() would undo the paper's test mode): the exporter sets a
        # module in training mode to eval, and afterwards back to training, everything below it included.
        self.training = G.training

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scales.output.from_unit(self.G(self.scales.input.to_unit(x)))


def _annotate(path: Path, cfg: GeneratorConfig, multiple: int, minimum: int, eval: bool, meta: dict,
              scales: Scales) -> None:
    run = meta.get("config") or {}
    fields = {"format": ONNX_FORMAT, "generator": json.dumps(asdict(cfg)), "pad_multiple": str(multiple),
              "pad_minimum": str(minimum), "padding": "graph", "mode": "eval" if eval else "paper",
              "step": str(meta.get("step", "")), "data": json.dumps(run.get("data", {})),
              "scales": json.dumps(scales.to_dict()), "io": "unit" if scales.eight_bit else "data"}
    write_metadata(path, fields)


EXPORTERS = {"onnx": export_onnx}  # pix2pix export --format
