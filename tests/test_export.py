"""``pix2pix export``: an ONNX graph checked against PyTorch, and the ONNX Runtime backend that serves it."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from conftest import label_image, one_line_error, png
from pix2pix.app.models import load_served
from pix2pix.app.server import create_app
from pix2pix.cli import main
from pix2pix.inference import Translator


@pytest.fixture(scope="module")
def run(labels_run):
    return labels_run


@pytest.mark.parametrize("mode", ["eval", "paper"])
def test_onnx_export_matches_pytorch_on_several_sizes_and_serves(run, tmp_path, capsys, mode):
    out = tmp_path / "g.onnx"
    assert main(["export", "--checkpoint", str(run), "--format", "onnx", "--out", str(out)]
                + (["--eval"] if mode == "eval" else [])) == 0
    assert "matches PyTorch within" in capsys.readouterr().out
    model = load_served(out, backend="onnx")
    assert model.kind == "labels" and model.backend.name == "onnx" and len(model.samples) == 3
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 40, 72)).astype(np.float32)  # not a multiple of 32
    y = model.backend(x, eval=mode == "eval", seed=None)
    assert y.shape == (1, 3, 40, 72)
    if mode == "eval":  # deterministic: the same numbers as PyTorch at any size
        ref = Translator.load(run, eval=True, device="cpu", fast=False).translate_tensor(torch.from_numpy(x))
        assert np.abs(y - ref.numpy()).max() < 1e-4
    else:  # dropout noise: two calls differ
        assert np.abs(y - model.backend(x, eval=False, seed=None)).max() > 0
    with TestClient(create_app([model])) as c:
        r = c.post("/api/translate", content=png(label_image()), headers={"content-type": "image/png"})
        assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).size == (48, 40)


def test_export_and_serve_bad_input_is_one_line(run, tmp_path, capsys):
    one_line_error(capsys, main(["export", "--checkpoint", str(tmp_path / "nope"), "--out", str(tmp_path / "x.onnx")]),
                   "nope")
    (tmp_path / "fake.onnx").write_bytes(b"not onnx")
    one_line_error(capsys, main(["serve", "--checkpoint", str(tmp_path / "fake.onnx"), "--backend", "onnx"]),
                   "not an ONNX file")
    one_line_error(capsys, main(["serve", "--checkpoint", str(run), "--checkpoint", str(run)]), "--name")
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        one_line_error(capsys, main(["serve", "--checkpoint", str(run), "--port", str(port)]), "choose another --port")

