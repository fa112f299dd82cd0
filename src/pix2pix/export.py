"""``pix2pix export --format onnx``: the generator as an ONNX graph with dynamic batch, height and width, and
the ONNX Runtime backend ``pix2pix serve --backend onnx`` runs it with.

The graph is the network between the padding and the crop that make any image size work: its height and
width must be multiples of ``pad_multiple`` (256 for unet_256), which the file's metadata states; the
backend here pads and crops as the PyTorch generator does. Two modes, as at test time in PyTorch: the
paper's (dropout on, each image normalised by its own statistics; the default) or ``--eval`` (deterministic).
The exporter is torch's TorchScript-based one: the torch.export-based one specialises the U-Net's input
size here. Every export is checked against PyTorch with ONNX Runtime on several sizes before it is kept.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
import threading
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .checkpoints import load_checkpoint
from .config import GeneratorConfig
from .errors import Pix2PixError
from .inference import set_test_mode
from .networks import UNetGenerator
from .networks.generators import pad_to_multiple

FORMAT = "pix2pix-onnx/1"


def pad_rule(G: nn.Module) -> tuple[int, int]:
    """(multiple, minimum side) the generator pads its input to."""
    return (2 ** G.depth, 1) if isinstance(G, UNetGenerator) else (4, 8)


def _test_mode_net(G: nn.Module, eval: bool, dropout: bool = True) -> nn.Module:
    from .app.models import per_image

    net = set_test_mode(copy.deepcopy(G), eval)
    if not eval:
        net = per_image(net)
    _replace_dropout(net, keep=dropout and not eval)
    return net.model  # between the padding and the crop


class _NoiseDropout(nn.Module):
    """Dropout written with rand_like, so the graph holds a RandomUniformLike that ONNX Runtime draws anew
    on every run (its Dropout op, even in training mode, passed inputs through here)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (torch.rand_like(x) >= self.p).to(x.dtype) / (1 - self.p)


def _replace_dropout(module: nn.Module, keep: bool) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.Dropout):
            setattr(module, name, _NoiseDropout(child.p) if keep and child.p > 0 else nn.Identity())
        else:
            _replace_dropout(child, keep)


def _export(core: nn.Module, path: Path, multiple: int, in_channels: int, keep_dropout: bool) -> None:
    import warnings

    x = torch.rand(1, in_channels, multiple, multiple) * 2 - 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and train-mode notes
        torch.onnx.export(core, (x,), str(path), dynamo=False, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch", 2: "height", 3: "width"},
                                        "y": {0: "batch", 2: "height", 3: "width"}},
                          opset_version=17, do_constant_folding=not keep_dropout)


def _session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def export_onnx(checkpoint: Path, out: Path, eval: bool = False, check_sizes: tuple = ((1, 1), (1, 2), (2, 1)),
                tolerance: float = 1e-4) -> dict:
    """Write ``out`` and check it; returns {"max_abs_diff": ..., "sizes": [...]}. ``check_sizes`` are in
    units of the pad multiple (height, width)."""
    ckpt = load_checkpoint(Path(checkpoint))
    G = ckpt.build_generator().float().eval()
    cfg = ckpt.generator
    multiple, minimum = pad_rule(G)
    keep_dropout = not eval and cfg.dropout > 0
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise Pix2PixError(f"--out {out}: cannot create its folder ({e.strerror})") from None
    with tempfile.TemporaryDirectory() as tmp:
        # The parity check: the same graph without dropout noise (noise cannot be compared draw for draw).
        check_path = Path(tmp) / "check.onnx"
        torch_net = _test_mode_net(G, eval, dropout=False)
        _export(torch_net, check_path, multiple, cfg.in_channels, False)
        session, worst, sizes = _session(check_path), 0.0, []
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
        _export(_test_mode_net(G, eval), tmp_out, multiple, cfg.in_channels, keep_dropout)
        _annotate(tmp_out, cfg, multiple, minimum, eval, ckpt.meta)
        got = _session(tmp_out).run(None, {"x": np.zeros((1, cfg.in_channels, multiple, multiple), np.float32)})[0]
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
    fields = {"format": FORMAT, "generator": json.dumps(asdict(cfg)), "pad_multiple": str(multiple),
              "pad_minimum": str(minimum), "mode": "eval" if eval else "paper",
              "step": str(meta.get("step", "")), "data": json.dumps(run.get("data", {}))}
    for k, v in fields.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(model, str(path))


class OnnxBackend:
    """An exported generator in ONNX Runtime on the CPU: pads and crops as the PyTorch generator does. Its
    mode (paper or eval) is fixed at export; the dropout noise of the paper's mode is ONNX Runtime's own, so
    a request's ``seed`` cannot choose it."""

    name = "onnx"

    def __init__(self, path: Path, multiple: int, minimum: int, mode: str):
        self.session, self.multiple, self.minimum, self.mode = _session(path), multiple, minimum, mode
        self.lock = threading.Lock()

    def __call__(self, x: np.ndarray, eval: bool, seed: int | None) -> np.ndarray:
        t, (h, w) = pad_to_multiple(torch.from_numpy(x), self.multiple, self.minimum)
        with self.lock:
            y = self.session.run(None, {"x": t.numpy()})[0]
        return y[..., :h, :w]


def load_onnx(path: Path) -> tuple[OnnxBackend, GeneratorConfig, dict]:
    """An exported file -> (backend, generator config, meta like a checkpoint's)."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise Pix2PixError(f"{path}: no such file")
    try:
        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    except Exception as e:  # noqa: BLE001 - onnx raises several kinds for a file that is not ONNX
        raise Pix2PixError(f"{path}: not an ONNX file ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    if props.get("format") != FORMAT:
        raise Pix2PixError(f"{path}: not exported by 'pix2pix export' (no {FORMAT} metadata)")
    cfg = GeneratorConfig(**json.loads(props["generator"]))
    backend = OnnxBackend(path, int(props["pad_multiple"]), int(props["pad_minimum"]), props["mode"])
    meta = {"step": int(props["step"]) if props.get("step") else None,
            "config": {"data": json.loads(props.get("data") or "{}")}}
    return backend, cfg, meta
