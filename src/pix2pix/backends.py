"""Serving backends: a generator ready to translate batches, in PyTorch or in ONNX Runtime. Each is a callable
``(x, eval, seed) -> y`` on (B, C, H, W) float32 arrays in [-1, 1], of any H and W, that the server batches
requests into. Both take test mode from :mod:`pix2pix.inference`.
"""

from __future__ import annotations

import copy
import json
import threading
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .config import GeneratorConfig
from .errors import Pix2PixError
from .inference import Translator, per_image
from .networks.generators import pad_to_multiple

ONNX_FORMAT = "pix2pix-onnx/1"  # the metadata tag of a file written by ``pix2pix export``


class TorchBackend:
    """The generator in PyTorch, through :class:`Translator` (its inference fast path included): the paper's
    test mode, with each image normalised by its own statistics, and eval mode."""

    name = "torch"

    def __init__(self, G: nn.Module, cfg: GeneratorConfig, device: str = "auto"):
        self.modes = {True: Translator(copy.deepcopy(G), cfg, eval=True, device=device),
                      False: Translator(G, cfg, eval=False, device=device)}
        per_image(self.modes[False].G)
        self.lock = threading.Lock()  # the global RNG seeds dropout: one batch at a time

    def __call__(self, x: np.ndarray, eval: bool, seed: int | None) -> np.ndarray:
        with self.lock:
            return self.modes[eval].translate_tensor(torch.from_numpy(x), seed).cpu().numpy()


def onnx_session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


class OnnxBackend:
    """An exported generator in ONNX Runtime on the CPU: pads and crops by the rule the file states, as the
    PyTorch generator does. Its mode (paper or eval) is fixed at export; the dropout noise of the paper's mode
    is ONNX Runtime's own, so a request's ``seed`` cannot choose it."""

    name = "onnx"

    def __init__(self, path: Path, multiple: int, minimum: int, mode: str):
        self.session, self.multiple, self.minimum, self.mode = onnx_session(path), multiple, minimum, mode
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
    if props.get("format") != ONNX_FORMAT:
        raise Pix2PixError(f"{path}: not exported by 'pix2pix export' (no {ONNX_FORMAT} metadata)")
    cfg = GeneratorConfig(**json.loads(props["generator"]))
    backend = OnnxBackend(path, int(props["pad_multiple"]), int(props["pad_minimum"]), props["mode"])
    meta = {"step": int(props["step"]) if props.get("step") else None,
            "config": {"data": json.loads(props.get("data") or "{}")}}
    return backend, cfg, meta
