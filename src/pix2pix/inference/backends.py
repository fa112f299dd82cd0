"""Serving backends: a generator ready to translate batches, in PyTorch or in ONNX Runtime. Each is a callable
``(x, eval, seed) -> y`` on (B, C, H, W) float32 arrays in [-1, 1], of any H and W, that the server batches
requests into (the server scales the data's units to and from [-1, 1] by the model's ``scales``). Both take
test mode from :mod:`pix2pix.inference.translate`.
"""

from __future__ import annotations

import copy
import json
import threading
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..config import GeneratorConfig, section_from_dict
from ..errors import Pix2PixError
from .engines import LONG_LIVED
from .translate import Translator
from ..networks.generators import pad_to_multiple
from .onnx_graph import onnx_session
from .web import WEB_FORMAT
from ..data.units import EIGHT_BIT, Scales

ONNX_FORMAT = "pix2pix-onnx/1"  # the metadata tag of a file written by ``pix2pix export``


class CheckpointBackend:
    """A checkpoint's generator through :class:`Translator`, on the faster engine for the device over a
    server's long life (the compiled engine on a CPU with bf16, which compiles each new input size in the
    background while PyTorch's fast path answers; ONNX Runtime on a CPU without bf16; PyTorch's fast path on
    a GPU: ``name`` says which): the paper's test mode, with each image normalised by its own statistics, and
    eval mode. A seeded request in the paper's mode runs PyTorch, which draws that seed's exact noise."""

    def __init__(self, G: nn.Module, cfg: GeneratorConfig, device: str = "auto", engine: str = "auto"):
        kw = dict(device=device, engine=engine, work=LONG_LIVED, background=True)
        self.modes = {True: Translator(copy.deepcopy(G), cfg, eval=True, **kw),
                      False: Translator(G, cfg, eval=False, **kw).normalise_per_image()}
        G = self.modes[True].G
        self.pad_rule = (G.pad_multiple, G.pad_minimum)  # what the generator pads an image to
        if self.name == "onnxruntime":  # export both graphs now, not during a user's first request
            for translator in self.modes.values():
                translator.session()
        self.lock = threading.Lock()  # the global RNG seeds PyTorch's dropout: one batch at a time

    def __call__(self, x: np.ndarray, eval: bool, seed: int | None) -> np.ndarray:
        with self.lock:
            return self.modes[eval].translate_tensor(torch.from_numpy(x), seed).cpu().numpy()

    @property
    def name(self) -> str:
        """The engine assigned (PyTorch after the compiled engine could not compile)."""
        return self.modes[True].engine

    def ran(self, eval: bool) -> str:
        """The engine that ran the last translation in this mode."""
        return self.modes[eval].ran


class OnnxBackend:
    """An exported generator in ONNX Runtime on the CPU (the padding and crop are in its graph; files exported
    before they were are padded and cropped here, by the rule the file states). Its mode (paper or eval) is fixed at export; the dropout noise of the paper's mode
    is ONNX Runtime's own, so a request's ``seed`` cannot choose it."""

    name = "onnx"

    def __init__(self, path: Path, multiple: int, minimum: int, mode: str, padded_inside: bool = True,
                 scales: Scales | None = None):
        self.session, self.multiple, self.minimum, self.mode = onnx_session(path), multiple, minimum, mode
        self.padded_inside = padded_inside  # files exported before the padding moved into the graph: False
        self.pad_rule = (multiple, minimum)
        self.in_units = scales  # a graph in the data's units (io "data"): its scalings, else None

    def ran(self, eval: bool) -> str:
        return "onnxruntime"

    def __call__(self, x: np.ndarray, eval: bool, seed: int | None) -> np.ndarray:
        if self.in_units is not None:  # the graph takes units and gives units
            units = self.in_units.input.from_unit(torch.from_numpy(x)).numpy()
            y = self.session.run(None, {"x": units})[0]
            return self.in_units.output.to_unit(torch.from_numpy(y)).numpy()
        if self.padded_inside:
            return self.session.run(None, {"x": x})[0]
        t, (h, w) = pad_to_multiple(torch.from_numpy(x), self.multiple, self.minimum)
        return self.session.run(None, {"x": t.numpy()})[0][..., :h, :w]


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
    if props.get("format") == WEB_FORMAT:
        raise Pix2PixError(f"{path}: a web graph ('export --format web'), which a page runs; serve the checkpoint, "
                           "or 'export --format onnx' for --backend onnx")
    if props.get("format") != ONNX_FORMAT:
        raise Pix2PixError(f"{path}: not exported by 'pix2pix export' (no {ONNX_FORMAT} metadata)")
    try:
        cfg = section_from_dict(GeneratorConfig, json.loads(props.get("generator", "null")), str(path), "generator")
    except ValueError as e:
        raise Pix2PixError(f"{path}: its generator metadata is not valid JSON ({e})") from None
    scales = Scales.from_dict(json.loads(props["scales"]), str(path)) if props.get("scales") else EIGHT_BIT
    backend = OnnxBackend(path, int(props["pad_multiple"]), int(props["pad_minimum"]), props["mode"],
                          padded_inside=props.get("padding") == "graph",
                          scales=scales if props.get("io") == "data" else None)
    meta = {"step": int(props["step"]) if props.get("step") else None,
            "config": {"data": json.loads(props.get("data") or "{}")}, "scales": scales.to_dict()}
    return backend, cfg, meta
