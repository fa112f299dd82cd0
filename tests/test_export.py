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
from pix2pix.inference.translate import Translator


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
    with TestClient(create_app([model]), base_url="http://localhost") as c:
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



@pytest.fixture(scope="module")
def unet256(tmp_path_factory):
    """A unet_256 (narrow, so that it exports in seconds) in a checkpoint of its own."""
    from pix2pix.checkpoints import save_weights
    from pix2pix.config import GeneratorConfig
    from pix2pix.networks import build_generator, init_weights

    torch.manual_seed(0)
    cfg = GeneratorConfig(arch="unet_256", ngf=4)
    path = tmp_path_factory.mktemp("unet256") / "g.safetensors"
    save_weights(path, init_weights(build_generator(cfg)), cfg)
    return path


@pytest.mark.parametrize("mode", ["eval", "paper"])
def test_the_exported_file_runs_any_size_in_plain_onnxruntime(unet256, tmp_path, mode):
    """No project code around the session: the padding to the U-Net's multiple of 256 and the crop back are
    inside the graph, so any ONNX runtime takes any batch, height and width."""
    import onnxruntime as ort

    out = tmp_path / "g.onnx"
    assert main(["export", "--checkpoint", str(unet256), "--out", str(out)] + (["--eval"] if mode == "eval" else [])) == 0
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    torch_net = Translator.load(unet256, eval=True, device="cpu", fast=False)
    rng = np.random.default_rng(0)
    for batch, h, w in ((1, 384, 256), (1, 517, 301), (3, 40, 72)):
        x = rng.uniform(-1, 1, (batch, 3, h, w)).astype(np.float32)
        (y,) = session.run(None, {"x": x})
        assert y.shape == (batch, 3, h, w) and np.isfinite(y).all()
        if mode == "eval":
            ref = torch_net.translate_tensor(torch.from_numpy(x)).numpy()
            assert np.abs(y - ref).max() < 1e-4


def test_an_array_models_export_takes_and_gives_the_datas_units_in_plain_onnxruntime(bands_run, tmp_path):
    import onnx
    import onnxruntime as ort

    assert main(["export", "--checkpoint", str(bands_run), "--out", str(tmp_path / "paper.onnx")]) == 0  # noise kept
    out = tmp_path / "bands.onnx"
    assert main(["export", "--checkpoint", str(bands_run), "--out", str(out), "--eval"]) == 0
    assert {p.key: p.value for p in onnx.load(str(out)).metadata_props}["io"] == "data"
    x = np.load(bands_run.parent.parent / "bands" / "A" / "test" / "1.npy")  # 5 bands in their units
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    y = session.run(None, {"x": x.transpose(2, 0, 1)[None]})[0][0].transpose(1, 2, 0)
    ref = Translator.load(bands_run, eval=True, device="cpu", fast=False)(x)
    scale = Translator.load(bands_run).scales.output
    width = np.array(scale.b) - np.array(scale.a)
    assert y.shape == (32, 32, 2) and np.all(np.abs(y - ref) <= 1e-4 * width)
    served = load_served(out, backend="onnx")  # the ONNX backend of a graph in units
    u = np.random.default_rng(0).uniform(-1, 1, (1, 5, 40, 24)).astype(np.float32)
    torch_u = Translator.load(bands_run, eval=True, device="cpu", fast=False).translate_tensor(torch.from_numpy(u))
    assert np.abs(served.backend(u, eval=True, seed=None) - torch_u.numpy()).max() < 1e-4


def test_an_export_that_cannot_be_written_leaves_the_file_that_was_there(run, tmp_path, capsys, monkeypatch):
    """The graph is built in a temporary folder (maybe on another file system) and copied beside --out before
    a rename: a copy cut short by a full disk is one line, and the previous export is untouched."""
    import errno

    import pix2pix.inference.export as export

    out = tmp_path / "g.onnx"
    out.write_bytes(b"a good export")

    def full(src, dst):
        with open(dst, "wb") as f:
            f.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr(export.shutil, "copyfile", full)
    one_line_error(capsys, main(["export", "--checkpoint", str(run), "--out", str(out)]), "no space left")
    assert out.read_bytes() == b"a good export"
    assert [p.name for p in tmp_path.iterdir()] == ["g.onnx"]
