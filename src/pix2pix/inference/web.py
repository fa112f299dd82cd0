"""The generator for a web page (``pix2pix export --format web``): one ONNX graph with both test modes, its
noise as inputs, and weights shrunk for the web, each size measured against fp32 on the model's own val inputs.

The graph's inputs (all float32):

- ``x``: (B, C, H, W) in [-1, 1], any height and width (the padding and the crop back are inside, as in
  :mod:`pix2pix.inference.export`'s graph);
- ``eval`` (only where the generator has batch norms): (1,), 0 for the paper's test mode (each image normalised
  by its own statistics), 1 for eval mode (the running statistics);
- ``dropout0``, ``dropout1``, ... (only where it has dropout): each dropout layer's multiplier, of that layer's
  shape, (B, channels, Hp / stride, Wp / stride) where Hp x Wp is the padded size (the ``web`` metadata lists
  channels, stride and p): 0 or 1 / (1 - p) in the paper's mode, all 1 in eval mode.

The noise is an input rather than a random op of the graph because a page must choose it: a webcam frame is
translated with the same noise as the one before (a still scene does not flicker), and "re-sample" draws new
noise. It also keeps the graph to operators every execution provider has (WebGPU has no random ones). The page
draws it with :func:`page_noise`'s generator, so a test can reproduce a page's output here.

Weights: ``fp32``; ``fp16`` (each weight stored in half precision and cast to fp32 when the session loads it:
half the download, fp32 arithmetic); ``int8`` (ONNX Runtime's static QDQ quantisation, per output channel,
calibrated on the val inputs: a quarter of the download; activations are quantised too, so the arithmetic
changes as well).
"""

from __future__ import annotations

import copy
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..config import GeneratorConfig
from ..errors import Pix2PixError
from .onnx_graph import OPSET, onnx_session, write_metadata
from .translate import exportable

WEIGHTS = ("fp32", "fp16", "int8")
WEB_FORMAT = "pix2pix-web/1"  # the metadata tag of a web graph (a page runs it; its inputs are not export's)
MIN_PSNR_DB = 35.0  # the default weights are the smallest that stay above this against fp32


# ------------------------------------------------------------------------------------------- the graph


class _Extra:
    """The extra inputs of one forward pass, read by the layers that need them."""

    def __init__(self):
        self.eval: torch.Tensor | None = None
        self.masks: tuple = ()


class ModeNorm(nn.Module):
    """A batch norm in either test mode, chosen by the ``eval`` input: e * running + (1 - e) * the image's own
    statistics, exactly one or the other for e = 0 or 1."""

    def __init__(self, bn: nn.modules.batchnorm._BatchNorm, extra: _Extra):
        super().__init__()
        self.weight, self.bias, self.eps, self.extra = bn.weight, bn.bias, bn.eps, extra
        self.register_buffer("running_mean", None if bn.running_mean is None else bn.running_mean.clone())
        self.register_buffer("running_var", None if bn.running_var is None else bn.running_var.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean((2, 3), keepdim=True)
        var = (x - mean).square().mean((2, 3), keepdim=True)
        if self.running_mean is not None:  # without running statistics eval mode uses the image's too
            e = self.extra.eval
            mean = e * self.running_mean.view(1, -1, 1, 1) + (1 - e) * mean
            var = e * self.running_var.view(1, -1, 1, 1) + (1 - e) * var
        y = (x - mean) * torch.rsqrt(var + self.eps)
        if self.weight is not None:
            y = y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return y


class MaskDropout(nn.Module):
    """Dropout by a multiplier given as an input (``dropout{index}``)."""

    def __init__(self, index: int, extra: _Extra):
        super().__init__()
        self.index, self.extra = index, extra

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.extra.masks[self.index]


@dataclass(frozen=True)
class DropoutLayer:
    channels: int
    stride: int  # the layer's map is the padded input's size divided by this
    p: float


class WebGenerator(nn.Module):
    """A generator with its test modes chosen by inputs: ``forward(x, [eval], *dropout masks)``."""

    def __init__(self, G: nn.Module, in_channels: int):
        super().__init__()
        net = exportable(G, eval=True, dropout=False)  # fp32 on the CPU, the padding inside; norms swapped below
        self.pad_rule = (net.pad_multiple, net.pad_minimum)
        self.dropout = _dropout_layers(G, in_channels, *self.pad_rule)
        self.extra = _Extra()
        self.has_eval = _swap(net, G, self.extra)
        self.net = net

    def input_names(self) -> list[str]:
        return ["x"] + (["eval"] if self.has_eval else []) + [f"dropout{k}" for k in range(len(self.dropout))]

    def forward(self, x: torch.Tensor, *extra: torch.Tensor) -> torch.Tensor:
        if self.has_eval:
            self.extra.eval, extra = extra[0], extra[1:]
        self.extra.masks = extra
        return self.net(x)

    def feeds(self, x: np.ndarray, eval: bool, seed: int = 0) -> dict[str, np.ndarray]:
        return graph_feeds(self.metadata(), x, eval, seed)

    def metadata(self) -> dict:
        return {"inputs": self.input_names(), "pad_multiple": self.pad_rule[0], "pad_minimum": self.pad_rule[1],
                "dropout": [{"name": f"dropout{k}", "channels": d.channels, "stride": d.stride, "p": d.p}
                            for k, d in enumerate(self.dropout)]}


def _dropout_layers(G: nn.Module, in_channels: int, multiple: int, minimum: int) -> list[DropoutLayer]:
    """Each dropout layer's channels and stride, in G's ``modules()`` order (the numbering of the graph's
    ``dropout`` inputs), from a pass at a padded size."""
    side = max(multiple, minimum) * 2
    found: dict[int, tuple] = {}
    modules = [m for m in G.modules() if isinstance(m, nn.Dropout) and m.p > 0]
    probe = copy.deepcopy(G).float().cpu().eval()

    def hook(k):
        def record(module, inputs, output) -> None:  # returns None: the output goes on unchanged
            found.setdefault(k, tuple(inputs[0].shape))
        return record

    hooks = [m.register_forward_hook(hook(k))
             for k, m in enumerate(m for m in probe.modules() if isinstance(m, nn.Dropout) and m.p > 0)]
    with torch.no_grad():
        probe(torch.zeros(1, in_channels, side, side))
    for h in hooks:
        h.remove()
    layers = []
    for k, m in enumerate(modules):
        _, c, h, w = found[k]
        if side % h or side % w or side // h != side // w:
            raise Pix2PixError(f"dropout layer {k} has a {h}x{w} map at {side}x{side}: not a whole stride")
        layers.append(DropoutLayer(c, side // h, float(m.p)))
    return layers


def _swap(net: nn.Module, G: nn.Module, extra: _Extra) -> bool:
    """Replace ``net``'s batch norms (``exportable``'s fp32 copies, with their running statistics) and its
    dropout layers (numbered in G's module order, as :func:`_dropout_layers` lists them); returns whether any
    batch norm was met."""
    originals = {name: m for name, m in G.named_modules()}
    order = [name for name, m in G.named_modules() if isinstance(m, nn.Dropout) and m.p > 0]
    met = False
    for name, child in list(net.named_modules()):
        for child_name, sub in list(child.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            source = originals.get(full)
            if isinstance(sub, nn.modules.batchnorm._BatchNorm):  # the fp32 copy, with its running statistics
                setattr(child, child_name, ModeNorm(sub, extra))
                met = True
            elif isinstance(source, nn.Dropout) and source.p > 0:
                setattr(child, child_name, MaskDropout(order.index(full), extra))
    return met


def graph_feeds(web: dict, x: np.ndarray, eval: bool, seed: int = 0) -> dict[str, np.ndarray]:
    """A web graph's inputs (``web``: its ``web`` metadata) for ``x`` ((B, C, H, W) in [-1, 1]) in one mode,
    with the page's noise of ``seed`` (:func:`page_noise`): what the page feeds it."""
    from ..networks.generators import padded_size

    feeds = {"x": x.astype(np.float32)}
    if "eval" in web["inputs"]:
        feeds["eval"] = np.array([1.0 if eval else 0.0], np.float32)
    ph, pw = padded_size(*x.shape[2:], web["pad_multiple"], web["pad_minimum"])
    shapes = [(x.shape[0], d["channels"], ph // d["stride"], pw // d["stride"]) for d in web["dropout"]]
    for d, mask in zip(web["dropout"], page_noise(seed, shapes, [d["p"] for d in web["dropout"]], eval)):
        feeds[d["name"]] = mask
    return feeds


def page_noise(seed: int, shapes: list[tuple], ps: list[float], eval: bool = False) -> list[np.ndarray]:
    """The dropout multipliers the page draws: one mulberry32 stream of ``seed``, its uniform numbers filling the
    layers in order, element by element; 1 / (1 - p) where u >= p, else 0 (all 1 in eval mode). The same
    generator is in ``static/engine.js``."""
    if eval:
        return [np.ones(s, np.float32) for s in shapes]
    total = sum(int(np.prod(s)) for s in shapes)
    u = _mulberry32(seed, total)
    out, at = [], 0
    for s, p in zip(shapes, ps):
        n = int(np.prod(s))
        out.append(np.where(u[at:at + n] >= p, np.float32(1 / (1 - p)), np.float32(0)).reshape(s)
                   .astype(np.float32))
        at += n
    return out


def _mulberry32(seed: int, n: int) -> np.ndarray:
    """``n`` numbers in [0, 1) of the mulberry32 generator (as JavaScript computes it, in uint32)."""
    m = 0xFFFFFFFF
    a = seed & m
    out = np.empty(n, np.float64)
    for i in range(n):
        a = (a + 0x6D2B79F5) & m
        t = ((a ^ (a >> 15)) * (1 | a)) & m
        t = ((t + (((t ^ (t >> 7)) * (61 | t)) & m)) & m) ^ t
        out[i] = ((t ^ (t >> 14)) & m) / 4294967296
    return out


def write_web_graph(web: WebGenerator, path: Path, in_channels: int) -> None:
    import warnings

    side = max(web.pad_rule) * 2
    x = torch.rand(1, in_channels, side, side) * 2 - 1
    args = tuple(torch.from_numpy(v) for v in web.feeds(x.numpy(), eval=False).values())
    names = web.input_names()
    axes = {"x": {0: "batch", 2: "height", 3: "width"}, "y": {0: "batch", 2: "height", 3: "width"}}
    axes |= {f"dropout{k}": {0: "batch", 2: f"h{k}", 3: f"w{k}"} for k in range(len(web.dropout))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(web, args, str(path), dynamo=False, input_names=names, output_names=["y"],
                          dynamic_axes=axes, opset_version=OPSET, do_constant_folding=True)


def check_web_graph(web: WebGenerator, G: nn.Module, path: Path, in_channels: int, tolerance: float = 1e-4) -> float:
    """The graph against PyTorch: in eval mode against eval mode, in the paper's mode without noise against the
    paper's mode (each image's statistics), and with the page's noise against the same module in PyTorch; at
    sizes that are not multiples of the padding. Returns the largest difference; raises past ``tolerance``."""
    session = onnx_session(path)
    references = {True: exportable(G, eval=True, dropout=False), False: exportable(G, eval=False, dropout=False)}
    multiple, minimum = web.pad_rule
    gen, worst = torch.Generator().manual_seed(0), 0.0
    for batch, h, w in ((1, multiple + 3, max(multiple // 2 + 5, minimum)), (2, max(minimum, 9), multiple * 2 + 1)):
        x = torch.rand(batch, in_channels, h, w, generator=gen) * 2 - 1
        for eval in (True, False):
            for seed in ((None, 3) if not eval else (None,)):
                feeds = web.feeds(x.numpy(), eval, seed or 0)
                if seed is None:  # no noise: compared with the established test modes
                    feeds |= {k: np.ones_like(v) for k, v in feeds.items() if k.startswith("dropout")}
                    with torch.no_grad():
                        ref = references[eval](x)
                else:
                    with torch.no_grad():
                        ref = web(*(torch.from_numpy(v) for v in feeds.values()))
                got = session.run(None, feeds)[0]
                worst = max(worst, float(np.abs(got - ref.numpy()).max()))
    if worst > tolerance:
        raise Pix2PixError(f"the web graph differs from PyTorch by {worst:.2e} (> {tolerance:g}); not written")
    return worst


# ------------------------------------------------------------------------------------------- the weights


def to_fp16(model):
    """Every float weight of more than one element stored as float16, with a Cast back to float32 (which ONNX
    Runtime folds when the session loads it)."""
    import onnx
    from onnx import helper, numpy_helper

    graph = model.graph
    kept, casts = [], []
    for init in graph.initializer:
        if init.data_type == onnx.TensorProto.FLOAT and int(np.prod(init.dims)) > 1:
            half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name + "_fp16")
            kept.append(half)
            casts.append(helper.make_node("Cast", [half.name], [init.name], to=onnx.TensorProto.FLOAT,
                                          name=init.name + "_to_fp32"))
        else:
            kept.append(init)
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def to_int8(fp32: Path, out: Path, calibration: list[dict]) -> None:
    """ONNX Runtime's static quantisation in QDQ form (Conv and ConvTranspose weights int8 per output channel,
    activations uint8), its ranges from ``calibration`` (feeds of the val inputs)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(calibration)

        def get_next(self):
            return next(self.it, None)

    import logging

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its advice to pre-process, logged on the root logger
    try:
        quantize_static(str(fp32), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        op_types_to_quantize=["Conv", "ConvTranspose"])
    finally:
        root.setLevel(level)


def psnr_8bit(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """PSNR in dB between two lists of outputs in [-1, 1] as the 8-bit images they are written as, from the
    mean squared error over all their pixels (one identical pair does not make it infinite)."""
    squared, count = 0.0, 0
    for x, y in zip(a, b):
        qx, qy = (np.floor((np.clip(v, -1, 1) + 1) / 2 * 255) for v in (x, y))
        squared, count = squared + float(np.sum((qx - qy) ** 2)), count + qx.size
    mse = squared / max(count, 1)
    return float("inf") if mse == 0 else float(10 * np.log10(255 ** 2 / mse))


@dataclass
class WebWeights:
    name: str
    path: Path
    bytes: int
    psnr_db: float  # over the val inputs against fp32 (inf for fp32 itself)
    ms_per_image: float  # ONNX Runtime on this machine, one val input at a time

    def describe(self) -> dict:
        return {"weights": self.name, "bytes": self.bytes,
                "psnr_db": None if np.isinf(self.psnr_db) else round(self.psnr_db, 2),
                "ms_per_image": round(self.ms_per_image, 1)}


def build_weights(G: nn.Module, cfg: GeneratorConfig, inputs: list[np.ndarray], folder: Path,
                  which: tuple[str, ...] = WEIGHTS, meta: dict | None = None) -> dict[str, WebWeights]:
    """The web graph of ``G`` in each of ``which`` weights under ``folder`` (``model-fp32.onnx``, ...), checked
    against PyTorch, each measured against fp32 on ``inputs`` ((1, C, H, W) arrays in [-1, 1]: the val inputs)
    in the paper's mode with the page's noise of seed 0, and timed."""
    import onnx

    web = WebGenerator(G, cfg.in_channels)
    fp32 = folder / "model-fp32.onnx"
    write_web_graph(web, fp32, cfg.in_channels)
    check_web_graph(web, G, fp32, cfg.in_channels)
    _annotate(fp32, web, cfg, "fp32", meta or {})
    feeds = [web.feeds(x, eval=False, seed=0) for x in inputs]
    paths = {"fp32": fp32}
    if "fp16" in which:
        paths["fp16"] = folder / "model-fp16.onnx"
        onnx.save(to_fp16(onnx.load(str(fp32))), str(paths["fp16"]))
        _annotate(paths["fp16"], web, cfg, "fp16", meta or {})
    if "int8" in which:
        if not inputs:
            raise Pix2PixError("int8 weights are calibrated on the model's val inputs, and none were found: pass "
                               "--val DIR (a folder of aligned pairs, as the dataset's val split)")
        paths["int8"] = folder / "model-int8.onnx"
        calibration = feeds + [web.feeds(x, eval=True) for x in inputs]
        to_int8(fp32, paths["int8"], calibration)
        _annotate(paths["int8"], web, cfg, "int8", meta or {})
    reference, out = None, {}
    for name in ("fp32", "fp16", "int8"):
        if name not in paths:
            continue
        session = onnx_session(paths[name])
        outputs, seconds = [], []
        for f in feeds:
            t = time.perf_counter()
            outputs.append(session.run(None, f)[0])
            seconds.append(time.perf_counter() - t)
        if reference is None:
            reference = outputs
        psnr = psnr_8bit(reference, outputs)
        ms = 1000 * float(np.median(seconds[1:] or seconds)) if seconds else float("nan")
        out[name] = WebWeights(name, paths[name], paths[name].stat().st_size, psnr, ms)
    return {k: v for k, v in out.items() if k in which}


def default_weights(built: dict[str, WebWeights]) -> str:
    """The smallest weights that stay above :data:`MIN_PSNR_DB` against fp32 (fp32 itself at worst)."""
    good = [w for w in built.values() if w.psnr_db > MIN_PSNR_DB]
    return min(good, key=lambda w: w.bytes).name


def _annotate(path: Path, web: WebGenerator, cfg: GeneratorConfig, weights: str, meta: dict) -> None:
    from dataclasses import asdict

    write_metadata(path, {"format": WEB_FORMAT, "generator": json.dumps(asdict(cfg)), "padding": "graph",
                          "pad_multiple": str(web.pad_rule[0]), "pad_minimum": str(web.pad_rule[1]),
                          "mode": "inputs", "step": str(meta.get("step", "")),
                          "web": json.dumps(web.metadata() | {"weights": weights})})


def web_graph_bytes(G: nn.Module, cfg: GeneratorConfig, meta: dict | None = None) -> bytes:
    """The fp32 web graph, checked, as bytes (what ``serve`` hands a page that translates in the browser)."""
    with tempfile.TemporaryDirectory() as tmp:
        built = build_weights(G, cfg, [], Path(tmp), which=("fp32",), meta=meta)
        return built["fp32"].path.read_bytes()
