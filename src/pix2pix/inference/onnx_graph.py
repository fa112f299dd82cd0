"""A generator as an ONNX graph, and ONNX Runtime sessions that run one.

The graph is the whole generator in a test mode (:func:`pix2pix.inference.translate.exportable`): the padding to its
multiple and the crop back are inside it (Shape, Pad in reflect mode, Slice), so the file takes any batch,
height and width in any ONNX runtime. The exporter is torch's TorchScript-based one: it records the sizes the
padding is computed from as graph values, where the torch.export-based one specialises the U-Net's input size.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import torch
from torch import nn

OPSET = 17


def write_graph(net: nn.Module, target: Path | io.BytesIO, in_channels: int, size: int, keep_dropout: bool) -> None:
    """Trace ``net`` on a (1, ``in_channels``, ``size``, ``size``) input into ``target`` (a path or a buffer),
    with dynamic batch, height and width. ``keep_dropout``: no constant folding, so the noise ops stay."""
    x = torch.rand(1, in_channels, size, size) * 2 - 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(net, (x,), target if isinstance(target, io.BytesIO) else str(target), dynamo=False,
                          input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch", 2: "height", 3: "width"},
                                        "y": {0: "batch", 2: "height", 3: "width"}},
                          opset_version=OPSET, do_constant_folding=not keep_dropout)


def graph_bytes(net: nn.Module, in_channels: int, size: int, keep_dropout: bool) -> bytes:
    buffer = io.BytesIO()
    write_graph(net, buffer, in_channels, size, keep_dropout)
    return buffer.getvalue()


NOISE_OPS = ("RandomUniformLike", "RandomUniform", "RandomNormalLike", "RandomNormal")


def seeded(graph: bytes, seed: int) -> bytes:
    """The graph with its noise ops seeded (``seed``, ``seed + 1``, ...): a fresh session then draws the same
    sequence of noise, run after run (ONNX Runtime's own noise, not PyTorch's)."""
    import onnx
    from onnx import helper

    model = onnx.load_from_string(graph)
    k = 0
    for node in model.graph.node:
        if node.op_type in NOISE_OPS:
            kept = [a for a in node.attribute if a.name != "seed"]
            del node.attribute[:]
            node.attribute.extend(kept + [helper.make_attribute("seed", float(seed + k))])
            k += 1
    return model.SerializeToString()


def write_metadata(path: Path, fields: dict[str, str]) -> None:
    """Set ``fields`` in an ONNX file's metadata (a key already there takes the new value)."""
    import onnx

    model = onnx.load(str(path))
    kept = [p for p in model.metadata_props if p.key not in fields]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for k, v in fields.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(model, str(path))


def onnx_session(model: Path | bytes):
    """An ONNX Runtime CPU session of a file or of a serialized graph."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])


def onnxruntime_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None
