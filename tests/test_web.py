"""The app without a server: the web graph (both test modes, the page's noise as inputs), its fp16/int8 weights,
onnxruntime-web obtained and checked, ``export --format web``, serve's in-browser switch, and the exported site
in a real browser with the network blocked (drawing, eval mode, one thread and two, the webcam)."""

from __future__ import annotations

import functools
import http.server
import io
import json
import os
import shutil
import subprocess
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import chromium, draw, free_port, label_image, new_output, one_line_error, only_local
from pix2pix.app import runtime as ort_web
from pix2pix.cli import main
from pix2pix.config import GeneratorConfig
from pix2pix.inference.onnx_graph import onnx_session
from pix2pix.inference.translate import exportable
from pix2pix.inference.web import (WebGenerator, _mulberry32, build_weights, default_weights, graph_feeds,
                                   page_noise, psnr_8bit, WebWeights)
from pix2pix.networks import build_generator

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(__file__).parent / "artifacts"
TARBALL = ROOT / ".cache" / f"onnxruntime-web-{ort_web.VERSION}.tgz"


def real_runtime() -> Path:
    """The tarball `make runtime` fetched with npm pack (required in CI, else the test is skipped)."""
    if not TARBALL.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"no {TARBALL.name}: `make test` fetches it with `make runtime` ({ort_web.npm_pack_command()})")
        pytest.skip(f"no {TARBALL}: run `make runtime`")
    return TARBALL


def trained_unet(arch: str = "unet_128", ngf: int = 8) -> tuple[torch.nn.Module, GeneratorConfig]:
    """A generator with running statistics that are not the identity (so eval and the paper's mode differ)."""
    torch.manual_seed(0)
    cfg = GeneratorConfig(arch=arch, ngf=ngf)
    G = build_generator(cfg).train()
    with torch.no_grad():
        for _ in range(3):
            G(torch.rand(2, 3, 64, 64) * 2 - 1)
    return G.eval(), cfg


# ------------------------------------------------------------------------------------------- the graph


def test_the_web_graph_runs_both_test_modes_and_the_pages_noise(tmp_path):
    """One graph: eval = 1 is eval mode, eval = 0 with no noise the paper's mode (per-image statistics), and with
    the page's noise the same masks as PyTorch given them; at a size that is not a multiple of the padding."""
    G, cfg = trained_unet()
    built = build_weights(G, cfg, [], tmp_path, which=("fp32",))
    session = onnx_session(built["fp32"].path)
    web = WebGenerator(G, cfg.in_channels)
    x = np.random.default_rng(1).uniform(-1, 1, (1, 3, 70, 45)).astype(np.float32)
    eval_feeds = web.feeds(x, eval=True)
    with torch.no_grad():
        want_eval = exportable(G, eval=True, dropout=False)(torch.from_numpy(x)).numpy()
    assert np.abs(session.run(None, eval_feeds)[0] - want_eval).max() < 1e-4
    paper = web.feeds(x, eval=False, seed=5)
    assert [k for k in paper] == ["x", "eval", "dropout0", "dropout1", "dropout2"]
    got = session.run(None, paper)[0]
    with torch.no_grad():
        want = web(*(torch.from_numpy(v) for v in paper.values())).numpy()
    assert np.abs(got - want).max() < 1e-4
    assert np.abs(got - want_eval).mean() > 0.01  # the modes differ (noise, statistics)
    other = session.run(None, web.feeds(x, eval=False, seed=6))[0]
    assert np.abs(other - got).mean() > 0.001  # another seed, other noise
    assert np.array_equal(session.run(None, paper)[0], got)  # the same seed, the same output


def test_page_noise_is_the_pages_generator():
    """mulberry32 computed here matches engine.js run by Node (the page's own code), as does the padding."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("no Node.js here")
    engine = (ROOT / "src/pix2pix/app/static/engine.js").read_text()
    script = ("globalThis.location = {search: '', href: 'http://127.0.0.1/'}; globalThis.self = {};\n" + engine +
              "\nconst next = InPage.mulberry32(1234); const u = []; for (let i = 0; i < 1000; i++) u.push(next());"
              "\nconsole.log(JSON.stringify({u, pads: [[1,256,1],[37,32,1],[5,4,8],[300,128,1]].map("
              "([n, m, k]) => InPage.padded(n, m, k))}));")
    out = json.loads(subprocess.run([node, "-e", script], capture_output=True, text=True, check=True).stdout)
    assert np.array_equal(np.array(out["u"]), _mulberry32(1234, 1000))
    assert out["pads"] == [256, 64, 8, 384]
    masks = page_noise(1234, [(1, 2, 4, 4), (1, 3, 2, 2)], [0.5, 0.25])
    u = _mulberry32(1234, 44)
    assert np.array_equal(masks[0].ravel(), np.where(u[:32] >= 0.5, 2.0, 0.0))
    assert np.allclose(masks[1].ravel(), np.where(u[32:] >= 0.25, 4 / 3, 0.0))


def test_weights_shrink_and_are_measured_against_fp32(tmp_path):
    G, cfg = trained_unet()
    rng = np.random.default_rng(0)
    inputs = [rng.uniform(-1, 1, (1, 3, 64, 64)).astype(np.float32) for _ in range(3)]
    built = build_weights(G, cfg, inputs, tmp_path)
    fp32, fp16, int8 = built["fp32"], built["fp16"], built["int8"]
    assert fp32.psnr_db == float("inf") and fp32.describe()["psnr_db"] is None
    assert 0.45 < fp16.bytes / fp32.bytes < 0.55 and fp16.psnr_db > 50
    assert int8.bytes / fp32.bytes < 0.35 and 20 < int8.psnr_db < fp16.psnr_db
    assert all(w.ms_per_image > 0 for w in built.values())
    assert default_weights(built) == ("int8" if int8.psnr_db > 35 else "fp16")
    low = {k: WebWeights(k, v.path, v.bytes, 30.0 if k == "int8" else v.psnr_db, 1) for k, v in built.items()}
    assert default_weights(low) == "fp16"  # int8 under 35 dB is not the default


def test_psnr_of_8_bit_outputs_pools_the_images():
    a = np.zeros((1, 3, 4, 4), np.float32)
    assert psnr_8bit([a], [a]) == float("inf")
    b = a.copy()
    b[..., 0, 0] = 2 / 255  # one level in 3 of 48 values
    assert psnr_8bit([a], [b]) == pytest.approx(10 * np.log10(255 ** 2 / (3 / 48)), abs=0.01)
    assert psnr_8bit([a, a], [a, b]) == pytest.approx(10 * np.log10(255 ** 2 / (3 / 96)), abs=0.01)


# ------------------------------------------------------------------------------------------ the runtime


def fake_package(path: Path, version: str = ort_web.VERSION, skip: str | None = None) -> Path:
    """A tarball laid out as onnxruntime-web's, with small stand-in files."""
    with tarfile.open(path, "w:gz") as tar:
        for name in ("package/package.json",) + tuple(f"package/dist/{f}" for f in ort_web.FILES):
            if skip and name.endswith(skip):
                continue
            data = json.dumps({"version": version}).encode() if name.endswith(".json") else name.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


class Registry(http.server.BaseHTTPRequestHandler):
    """A stand-in npm registry on 127.0.0.1: the version's manifest and its tarball."""
    files: dict = {}
    requests: list = []

    def do_GET(self):
        self.requests.append(self.path)
        body = self.files.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args):
        pass


@pytest.fixture
def registry(tmp_path, monkeypatch):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("npm_config_registry", url)
    monkeypatch.setenv("PIX2PIX_HOME", str(tmp_path / "home"))
    Registry.files, Registry.requests = {}, []
    yield url
    server.shutdown()


def publish(url: str, tarball: Path, integrity: str) -> None:
    tgz = f"/{ort_web.PACKAGE}/-/{ort_web.PACKAGE}-{ort_web.VERSION}.tgz"
    Registry.files = {f"/{ort_web.PACKAGE}/{ort_web.VERSION}": json.dumps(
        {"name": ort_web.PACKAGE, "version": ort_web.VERSION,
         "dist": {"tarball": url + tgz, "integrity": integrity}}).encode(), tgz: tarball.read_bytes()}


def test_the_runtime_is_downloaded_checked_and_kept(registry, tmp_path, monkeypatch):
    tarball = fake_package(tmp_path / "ort.tgz")
    monkeypatch.setattr(ort_web, "INTEGRITY", ort_web.integrity(tarball))  # the stand-in's hash is the pinned one
    publish(registry, tarball, ort_web.INTEGRITY)
    folder = ort_web.runtime_folder(progress=False)
    assert folder == ort_web.cache_folder() and sorted(p.name for p in folder.iterdir()) == sorted(
        ort_web.FILES + ("NOTICE",))
    assert (folder / "ort.wasm.min.js").read_text() == "package/dist/ort.wasm.min.js"
    assert len(Registry.requests) == 2
    assert ort_web.runtime_folder(progress=False) == folder and len(Registry.requests) == 2  # kept: not fetched
    assert [p.name for p in folder.parent.iterdir() if p.name.startswith(".") and p.is_dir()] == []


def test_a_runtime_that_is_not_the_pinned_one_is_refused(registry, tmp_path, monkeypatch, capsys):
    tarball = fake_package(tmp_path / "ort.tgz")
    publish(registry, tarball, "sha512-somethingelse")  # the registry says another hash than the pinned one
    with pytest.raises(Exception, match="not the sha512-.* pinned here"):
        ort_web.runtime_folder(progress=False)
    monkeypatch.setattr(ort_web, "INTEGRITY", "sha512-somethingelse")
    publish(registry, tarball, ort_web.INTEGRITY)  # the registry agrees, but the bytes are not that package
    with pytest.raises(Exception, match="not onnxruntime-web 1.31.1's npm tarball"):
        ort_web.runtime_folder(progress=False)
    assert not ort_web.cache_folder().exists()
    Registry.files = {}
    with pytest.raises(Exception, match="HTTP 404.*--runtime a tarball from 'npm pack onnxruntime-web@"):
        ort_web.runtime_folder(progress=False)
    monkeypatch.setattr(ort_web, "INTEGRITY", ort_web.integrity(fake_package(tmp_path / "b.tgz", skip=".wasm")))
    with pytest.raises(Exception, match="has no package/dist/ort-wasm-simd-threaded"):
        ort_web.runtime_folder(tmp_path / "b.tgz", progress=False)
    with pytest.raises(Exception, match="not an onnxruntime-web folder"):
        ort_web.runtime_folder(tmp_path, progress=False)
    with tarfile.open(fake_package(tmp_path / "c.tgz", version="1.20.0")) as tar:
        tar.extractall(tmp_path / "node_modules", filter="data")
    with pytest.raises(Exception, match="onnxruntime-web 1.20.0, not the"):
        ort_web.runtime_folder(tmp_path / "node_modules" / "package", progress=False)


def test_the_pinned_integrity_is_npms_for_the_real_tarball(tmp_path, monkeypatch):
    """The tarball npm pack fetched (make runtime) passes the pinned hash and unpacks the page's files."""
    monkeypatch.setenv("PIX2PIX_HOME", str(tmp_path))
    folder = ort_web.runtime_folder(real_runtime(), progress=False)
    assert (folder / "ort-wasm-simd-threaded.wasm").read_bytes()[:4] == b"\0asm"
    assert "ort-wasm-simd-threaded.mjs" in (folder / "ort.wasm.min.js").read_text()


# ----------------------------------------------------------------------------------- export --format web


@pytest.fixture(scope="module")
def site(labels_run, tmp_path_factory) -> Path:
    """The tiny labels run exported as a site, with the real runtime."""
    if not TARBALL.is_file():
        return None
    out = tmp_path_factory.mktemp("site") / "site"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PIX2PIX_HOME", str(out.parent / "home"))
        assert main(["export", "--format", "web", "--checkpoint", str(labels_run), "--out", str(out),
                     "--runtime", str(TARBALL)]) == 0
    return out


def need(site):
    real_runtime()
    return site


def test_export_web_writes_the_whole_app(site, capsys):
    site = need(site)
    files = {p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file()}
    assert {"index.html", "static/app.js", "static/engine.js", "static/style.css", "site.json", "_headers",
            "models/facadeish.onnx", "samples/facadeish/0.png", "ort/NOTICE"} <= files
    assert {f"ort/{f}" for f in ort_web.FILES} <= files
    assert not any(f.endswith(".py") for f in files)  # no server code
    info = json.loads((site / "site.json").read_text())
    model = info["models"][0]
    web = model["web"]
    assert model["kind"] == "labels" and model["samples"] == 3 and len(model["palette"]) == 12
    assert {c["weights"] for c in web["choices"]} == {"fp32", "fp16", "int8"} and web["on_val"]
    assert web["chosen"] == web["weights"] and web["bytes"] == (site / "models/facadeish.onnx").stat().st_size
    assert web["inputs"][:2] == ["x", "eval"] and len(web["dropout"]) == len(web["inputs"]) - 2
    assert "Cross-Origin-Embedder-Policy: require-corp" in (site / "_headers").read_text()
    assert '<body data-site="static">' in (site / "index.html").read_text()
    assert "http" not in (site / "index.html").read_text().replace("http-equiv", "")  # nothing from elsewhere


def test_export_web_again_keeps_what_else_the_site_holds(site, labels_run, tmp_path, capsys):
    """A second export into a site replaces the site's own files and keeps the user's (a CNAME, a .git); the
    web graph is no file for serve --backend onnx, and says so."""
    site = need(site)
    again = tmp_path / "again"
    shutil.copytree(site, again)
    (again / "CNAME").write_text("pix2pix.example.org\n")
    (again / ".git").mkdir()
    (again / "models" / "stale.onnx").write_text("old")
    assert main(["export", "--format", "web", "--checkpoint", str(labels_run), "--out", str(again), "--runtime",
                 str(TARBALL), "--weights", "fp16"]) == 0
    assert (again / "CNAME").read_text() == "pix2pix.example.org\n" and (again / ".git").is_dir()
    assert not (again / "models" / "stale.onnx").exists()
    assert json.loads((again / "site.json").read_text())["models"][0]["web"]["weights"] == "fp16"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".again")] == [".again.lock"]
    code = main(["serve", "--checkpoint", str(again / "models" / "facadeish.onnx"), "--backend", "onnx"])
    one_line_error(capsys, code, "a web graph")


def test_export_web_misuse_is_one_line(labels_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PIX2PIX_HOME", str(tmp_path / "home"))
    taken = tmp_path / "mine"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    code = main(["export", "--format", "web", "--checkpoint", str(labels_run), "--out", str(taken),
                 "--runtime", str(tmp_path)])
    one_line_error(capsys, code, "exists and is not a site")
    assert (taken / "notes.txt").read_text() == "mine"
    code = main(["export", "--format", "web", "--checkpoint", str(labels_run), "--out", str(tmp_path / "s"),
                 "--runtime", str(tmp_path / "nothing.tgz")])
    one_line_error(capsys, code, "--runtime")
    code = main(["export", "--format", "web", "--checkpoint", str(labels_run), "--out", str(tmp_path / "s"), "--eval"])
    one_line_error(capsys, code, "both modes")
    code = main(["export", "--checkpoint", str(labels_run), "--out", str(tmp_path / "m.onnx"), "--weights", "int8"])
    one_line_error(capsys, code, "--weights goes with --format web")
    bad = fake_package(tmp_path / "other.tgz")
    code = main(["export", "--format", "web", "--checkpoint", str(labels_run), "--out", str(tmp_path / "s"),
                 "--runtime", str(bad)])
    one_line_error(capsys, code, "integrity")
    assert not (tmp_path / "s").exists()
    from pix2pix.app import site as site_module

    monkeypatch.setattr(site_module, "_val_inputs", lambda model, val: [])  # a checkpoint without its dataset
    code = main(["export", "--format", "web", "--checkpoint", str(labels_run), "--out", str(tmp_path / "s"),
                 "--runtime", str(real_runtime()), "--weights", "int8"])
    one_line_error(capsys, code, "no val split found to calibrate int8 weights on")


# ------------------------------------------------------------------------------------ serve's switch


def test_serve_offers_the_in_browser_engine_with_the_runtime(labels_run, tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    from pix2pix.app.models import load_served
    from pix2pix.app.server import create_app

    monkeypatch.setenv("PIX2PIX_HOME", str(tmp_path))
    fake = tmp_path / "ort"
    fake.mkdir()
    for f in ort_web.FILES:
        (fake / f).write_text(f)
    with TestClient(create_app([load_served(labels_run, backend="torch")]), base_url="http://localhost") as c:
        m = c.get("/api/models").json()[0]
        assert m["web"] is None and "--runtime" in m["web_unavailable"]
        assert c.get(f"/api/models/{m['name']}/web.onnx").status_code == 404
    with TestClient(create_app([load_served(labels_run, backend="torch")], runtime=fake),
                    base_url="http://localhost") as c:
        page = c.get("/")
        assert page.headers["cross-origin-embedder-policy"] == "require-corp"
        m = c.get("/api/models").json()[0]
        assert m["web"]["default"] and m["web"]["bytes"] < 2**20  # a small model runs in the browser by default
        assert c.get("/ort/ort.wasm.min.js").text == "ort.wasm.min.js"
        assert c.get("/ort/ort.wasm.min.js").headers["content-type"].startswith("text/javascript")
        (fake / "secret.txt").write_text("not the runtime's")
        assert c.get("/ort/secret.txt").status_code == 404
        meta = c.get(m["web"]["meta"]).json()
        graph = c.get(m["web"]["url"]).content
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 40, 24)).astype(np.float32)
    got = onnx_session(graph).run(None, graph_feeds(meta, x, eval=True))[0]
    from pix2pix.inference.translate import Translator

    want = Translator.load(labels_run, eval=True, device="cpu", fast=False).translate_tensor(torch.from_numpy(x))
    assert np.abs(got - want.numpy()).max() < 1e-4


# ------------------------------------------------------------------------------------ a real browser


def serve_folder(folder: Path, isolated: bool):
    """A static file server on 127.0.0.1 (as any static host), sending the site's _headers when ``isolated``."""

    class Handler(http.server.SimpleHTTPRequestHandler):
        def end_headers(self):
            if isolated:
                self.send_header("Cross-Origin-Opener-Policy", "same-origin")
                self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
            super().end_headers()

        def log_message(self, *args):
            pass

    Handler.extensions_map = {**Handler.extensions_map, ".mjs": "text/javascript", ".wasm": "application/wasm"}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def still_video(path: Path, w: int = 320, h: int = 240) -> Path:
    """A y4m clip of one still picture (Chromium's fake camera plays it in a loop): label-map colours."""
    rgb = np.asarray(Image.fromarray(label_image(32, 24)).resize((w, h), Image.NEAREST)).astype(np.float32)
    y = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    u = (rgb[..., 2] - y) * 0.564 + 128
    v = (rgb[..., 0] - y) * 0.713 + 128
    planes = [y, u[::2, ::2], v[::2, ::2]]
    frame = b"FRAME\n" + b"".join(np.clip(p, 0, 255).astype(np.uint8).tobytes() for p in planes)
    path.write_bytes(f"YUV4MPEG2 W{w} H{h} F10:1 Ip A1:1 C420jpeg\n".encode() + frame * 3)
    return path


def pixels_of(page, expression: str) -> np.ndarray:
    """An image in the page (a canvas, or an <img>'s blob) as an RGB array."""
    url = page.evaluate(f"""async () => {{
        const el = {expression};
        if (el.tagName === "CANVAS") return el.toDataURL("image/png");
        const blob = await (await fetch(el.src)).blob();
        return await new Promise((done) => {{ const r = new FileReader(); r.onload = () => done(r.result);
                                               r.readAsDataURL(blob); }});
    }}""")
    import base64

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"))


def matches_python(page, site: Path, eval: bool) -> np.ndarray:
    """The page's output is within 2 levels of Python ONNX Runtime's on the page's input and noise."""
    canvas = pixels_of(page, "document.getElementById('input')")
    out = pixels_of(page, "document.getElementById('output')")
    diff = np.abs(out.astype(int) - expected_output(site, canvas, eval, page.evaluate("state.seed"))).max()
    assert diff <= 2, diff
    return out


def expected_output(site: Path, canvas: np.ndarray, eval: bool, seed: int) -> np.ndarray:
    """What Python ONNX Runtime makes of the page's input with the page's noise: the site's own graph."""
    web = json.loads((site / "site.json").read_text())["models"][0]["web"]
    x = (canvas.astype(np.float32) / 255 - 0.5) / 0.5
    y = onnx_session(site / web["url"]).run(None, graph_feeds(web, x.transpose(2, 0, 1)[None], eval, seed))[0]
    return np.floor((np.clip(y[0], -1, 1) + 1) / 2 * 255).transpose(1, 2, 0)


@pytest.mark.slow
def test_the_exported_site_translates_in_chromium_with_no_network(site, tmp_path):
    """Served statically with its headers (two threads) and with none (one thread, said), every request that is
    not to 127.0.0.1 refused: the first sample, a drawing, eval mode and the webcam's still scene, each output
    within 2 levels of Python ONNX Runtime on the page's own input and noise."""
    site = need(site)
    camera = still_video(tmp_path / "still.y4m")
    isolated, isolated_url = serve_folder(site, isolated=True)
    plain, plain_url = serve_folder(site, isolated=False)
    try:
        with chromium("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                      f"--use-file-for-fake-video-capture={camera}") as browser:
            context = browser.new_context(viewport={"width": 1000, "height": 760})
            context.grant_permissions(["camera"])
            page = context.new_page()
            elsewhere, errors = [], []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.route("**/*", only_local(elsewhere))
            page.goto(isolated_url + "?threads=2")
            first = new_output(page, "")
            assert "in this browser (wasm, 2 threads; the first run includes its set-up)" in page.inner_text("#status")

            def check(eval: bool):
                return matches_python(page, site, eval)

            check(False)
            page.locator("#palette .swatch", has_text="door").click()
            draw(page, 0.2, 0.2, 0.8, 0.7)
            drawn = new_output(page, first)
            assert "set-up" not in page.inner_text("#status")  # said of the first run only
            check(False)
            page.click("#eval")
            deterministic = new_output(page, drawn)
            check(True)
            page.click("#eval")
            new_output(page, deterministic)
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "site.png"))

            page.click("#webcam")  # the fake camera's still picture, frame after frame, with the same noise
            page.wait_for_function("state.frames >= 3", timeout=60_000)
            outputs = []
            for _ in range(2):
                frames = page.evaluate("state.frames")
                page.wait_for_function(f"state.frames > {frames}", timeout=60_000)
                outputs.append(pixels_of(page, "document.getElementById('output')"))
            assert np.array_equal(outputs[0], outputs[1])  # a still scene does not flicker
            assert "frames/s" in page.inner_text("#status")
            assert outputs[0].shape[:2] == (192, 256)  # the camera's 4:3 frame, 256 on its longer side
            page.click("#webcam")

            page.goto(plain_url)  # no COOP/COEP: one thread, and the page says why
            new_output(page, "")
            assert "(wasm, 1 thread;" in page.inner_text("#status")
            assert "not cross-origin isolated" in page.inner_text("#note")
            check(False)
        assert elsewhere == [] and errors == []
    finally:
        isolated.shutdown()
        plain.shutdown()


@pytest.mark.slow
def test_serves_page_translates_in_the_browser_by_default_for_a_small_model(labels_run, tmp_path, monkeypatch):
    """serve --runtime: the page's switch starts at 'this browser' for the tiny model, translates there, and the
    server's engine is one click away."""
    import uvicorn

    from pix2pix.app.models import load_served
    from pix2pix.app.server import create_app, server_config

    real_runtime()
    monkeypatch.setenv("PIX2PIX_HOME", str(tmp_path))
    folder = ort_web.runtime_folder(TARBALL, progress=False)
    port = free_port()
    srv = uvicorn.Server(server_config(create_app([load_served(labels_run, backend="torch")], runtime=folder),
                                       "127.0.0.1", port, 30.0, 30.0))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    try:
        while not srv.started:
            thread.join(0.05)
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1000, "height": 700})
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"http://127.0.0.1:{port}/")
            first = new_output(page, "")
            assert page.eval_on_selector("#engine", "e => e.value") == "browser"
            assert "in this browser (wasm" in page.inner_text("#status")
            page.select_option("#engine", "server")
            new_output(page, first)
            assert "in this browser" not in page.inner_text("#status")
            assert errors == []
    finally:
        srv.should_exit = True
        thread.join(10)


def test_a_large_model_runs_on_the_server_by_default(tmp_path):
    """unet_256 (54.4 M parameters, 218 MB in fp32) is offered in the browser, but the switch starts at the
    server; a model served from an .onnx file is not offered, and says why."""
    from types import SimpleNamespace

    from pix2pix.app.inpage import InPage

    in_page = InPage(tmp_path)
    big = SimpleNamespace(name="big", images=True, config=GeneratorConfig(arch="unet_256"),
                          backend=SimpleNamespace(name="torch"), source=tmp_path / "latest.safetensors")
    web = in_page.entry(big)["web"]
    assert web["bytes"] == 4 * 54_413_955 and web["default"] is False
    onnx_file = SimpleNamespace(**(vars(big) | {"backend": SimpleNamespace(name="onnx"),
                                                "source": tmp_path / "m.onnx"}))
    assert "export --format web" in in_page.entry(onnx_file)["web_unavailable"]


@pytest.mark.slow
def test_an_fp32_site_matches_python_onnx_runtime_in_chromium(labels_run, tmp_path, monkeypatch):
    """--weights fp32: a drawing and a re-sample in the paper's mode, and eval mode, within 2 levels."""
    monkeypatch.setenv("PIX2PIX_HOME", str(tmp_path / "home"))
    site = tmp_path / "fp32"
    assert main(["export", "--format", "web", "--checkpoint", str(labels_run), "--out", str(site), "--runtime",
                 str(real_runtime()), "--weights", "fp32"]) == 0
    server, url = serve_folder(site, isolated=True)
    try:
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1000, "height": 760})
            elsewhere = []
            page.route("**/*", only_local(elsewhere))
            page.goto(url)
            previous = new_output(page, "")
            page.locator("#palette .swatch", has_text="window").click()
            draw(page, 0.1, 0.8, 0.9, 0.3)
            previous = new_output(page, previous)
            matches_python(page, site, eval=False)
            page.click("#resample")
            previous = new_output(page, previous)
            matches_python(page, site, eval=False)
            page.click("#eval")
            new_output(page, previous)
            matches_python(page, site, eval=True)
        assert elsewhere == []
    finally:
        server.shutdown()
