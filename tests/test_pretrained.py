"""The published models: listed, downloaded from a server the test starts on 127.0.0.1 (serving
reference-layout .pth files the test makes), converted to self-describing .safetensors, and used by name."""

from __future__ import annotations

import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import one_line_error
from test_reference_compat import RefUnetGenerator, randomize, reference_pixels
from pix2pix.checkpoints import load_checkpoint
from pix2pix.cli import main


class _Files(BaseHTTPRequestHandler):
    def do_GET(self):
        body = self.server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    srv.files = {}
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv, f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("PIX2PIX_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _pth(ref) -> bytes:
    buf = io.BytesIO()
    torch.save(ref.state_dict(), buf)
    return buf.getvalue()


def test_list_download_and_use_by_name(server, home, tmp_path, capsys):
    srv, base = server
    ref = randomize(RefUnetGenerator(3, 3, num_downs=6, ngf=8), seed=5)  # small; the layout is unet_256's
    srv.files["/facades_label2photo.pth"] = _pth(ref)
    assert main(["pretrained", "list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"facades_label2photo", "sat2map", "map2sat", "edges2shoes", "day2night"}
    assert rows["day2night"]["direction"] == "BtoA" and rows["facades_label2photo"]["kind"] == "labels"
    assert rows["facades_label2photo"]["downloaded"] is None
    assert rows["sat2map"]["url"] == "http://efrosgans.eecs.berkeley.edu/pix2pix/models-pytorch/sat2map.pth"

    assert main(["pretrained", "download", "facades_label2photo", "--url", base + "/facades_label2photo.pth"]) == 0
    path = home / "models" / "facades_label2photo.safetensors"
    ckpt = load_checkpoint(path)  # self-describing: rebuilds itself
    assert ckpt.meta["published"]["direction"] == "BtoA" and ckpt.generator.arch == "unet_64"
    assert list((home / "models").iterdir()) == [path]  # the .pth is not kept
    capsys.readouterr()
    assert main(["pretrained", "list"]) == 0
    assert str(path) in capsys.readouterr().out

    # By name, wherever a checkpoint is accepted.
    arr = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "in.png")
    assert main(["translate", "--checkpoint", "facades_label2photo", "--input", str(tmp_path / "in.png"),
                 "--output", str(tmp_path / "out"), "--eval", "--no-fast"]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "in.png")), reference_pixels(ref, arr))
    from pix2pix.app.models import load_served

    served = load_served("facades_label2photo", backend="torch", device="cpu")
    assert served.direction == "BtoA" and served.kind == "labels"


def _error_after_progress(capsys, code: int, needle: str) -> None:
    """exit 2 and, after the progress bar, one error line holding ``needle``."""
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and last.startswith("pix2pix: error:") and needle in last, last


def test_bad_names_and_downloads_are_one_line_and_leave_no_file(server, home, tmp_path, capsys):
    srv, base = server
    Image.new("RGB", (8, 8)).save(tmp_path / "in.png")
    one_line_error(capsys, main(["translate", "--checkpoint", "sat2map", "--input", str(tmp_path / "in.png"),
                                 "--output", str(tmp_path / "o")]), "pix2pix pretrained download sat2map")
    one_line_error(capsys, main(["pretrained", "download", "cats2dogs"]), "unknown published model 'cats2dogs'")
    one_line_error(capsys, main(["pretrained", "download", "sat2map", "--url", base + "/missing.pth"]), "404")
    buf = io.BytesIO()
    torch.save({"weight": torch.zeros(3)}, buf)
    srv.files["/odd.pth"] = buf.getvalue()
    _error_after_progress(capsys, main(["pretrained", "download", "map2sat", "--url", base + "/odd.pth"]),
                          "not a pix2pix generator state dict")
    srv.files["/edges2shoes.pth"] = _pth(RefUnetGenerator(3, 3, num_downs=6, ngf=8))
    _error_after_progress(capsys, main(["pretrained", "download", "edges2shoes", "--url",
                                        base + "/edges2shoes.pth", "--sha256", "0" * 64]), "SHA-256")
    assert not (home / "models").exists() or list((home / "models").iterdir()) == []
