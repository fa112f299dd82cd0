"""The app: the HTTP API in-process, ONNX export and its backend, a real browser on the page, and a load test."""

from __future__ import annotations

import asyncio
import io
import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from conftest import CMP4, chromium, draw, free_port, label_image, new_output, only_local, png
from pix2pix.app.models import load_served
from pix2pix.app.server import create_app, server_config
from pix2pix.inference.translate import Translator
from pix2pix.data.labels import FACADES

ARTIFACTS = Path(__file__).parent / "artifacts"


@pytest.fixture(scope="module")
def run(labels_run) -> Path:
    return labels_run


@pytest.fixture(scope="module")
def client(run):
    models = [load_served(run), load_served(run, name="second")]
    with TestClient(create_app(models, max_upload_bytes=200_000, max_pixels=300 * 300),
                    base_url="http://localhost") as c:
        yield c


def test_models_describe_kind_classes_and_palette(client):
    models = client.get("/api/models").json()
    assert [m["name"] for m in models] == ["facadeish", "second"]
    m = models[0]
    assert m["kind"] == "labels" and m["direction"] == "BtoA" and m["samples"] == 3
    assert m["classes"][:3] == ["background", "facade", "window"] and m["palette"][0] == "#0000de"
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.get("/docs").status_code == 200 and "/api/translate" in client.get("/openapi.json").text


def test_translate_returns_a_png_of_the_inputs_size_as_the_translator_does(client, run):
    body = png(label_image(48, 40))
    r = client.post("/api/translate", files={"image": ("x.png", body, "image/png")}, data={"eval": "true"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    out = np.asarray(Image.open(io.BytesIO(r.content)))
    assert out.shape == (40, 48, 3)
    expected = np.asarray(Translator.load(run, eval=True, device="cpu")(Image.open(io.BytesIO(body))))
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1  # the same model, the same arithmetic
    # A raw body works too, and a seed makes the paper's (noisy) mode repeatable.
    raw = lambda seed: client.post("/api/translate?seed=%d" % seed, content=body,  # noqa: E731
                                   headers={"content-type": "image/png"}).content
    assert raw(3) == raw(3)
    assert client.post("/api/translate", content=body, headers={"content-type": "image/png"},
                       params={"model": "second"}).headers["x-model"] == "second"


def test_samples_come_from_the_val_split(client):
    r = client.get("/api/models/facadeish/samples/0")
    assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).size == (32, 32)
    assert client.get("/api/models/facadeish/samples/3").status_code == 404


def test_bad_input_is_a_json_error_and_the_server_goes_on(client):
    def post(**kw):
        r = client.post("/api/translate", **kw)
        return r.status_code, r.json().get("error", "")

    code, err = post(files={"image": ("big.png", b"\0" * 300_000, "image/png")})
    assert code == 413 and "larger than" in err
    code, err = post(files={"image": ("x.txt", b"hello, not an image", "text/plain")})
    assert code == 415
    code, err = post(content=b"%PDF-1.4", headers={"content-type": "application/pdf"})
    assert code == 415
    # A decompression bomb: a small file that claims 4000 x 4000 pixels.
    bomb = io.BytesIO()
    Image.new("L", (4000, 4000)).save(bomb, "PNG", optimize=True)
    assert len(bomb.getvalue()) < 200_000
    code, err = post(content=bomb.getvalue(), headers={"content-type": "image/png"})
    assert code == 400 and "pixels" in err
    truncated = png(label_image())[:120]
    assert post(content=truncated, headers={"content-type": "image/png"})[0] == 400
    assert post(files={"image": ("x.png", png(label_image()), "image/png")}, data={"model": "nope"})[0] == 404
    assert post(files={"image": ("x.png", png(label_image()), "image/png")}, data={"seed": "abc"})[0] == 400
    assert post(data={"model": "facadeish"})[0] in (400, 415)
    ok = client.post("/api/translate", files={"image": ("x.png", png(label_image()), "image/png")})
    assert ok.status_code == 200


def test_a_stream_of_bad_uploads_neither_crashes_the_server_nor_grows_it(client):
    def rss() -> int:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    bomb = io.BytesIO()
    Image.new("L", (4000, 4000)).save(bomb, "PNG", optimize=True)
    noise = np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8)
    bad = [dict(content=bomb.getvalue()), dict(content=png(noise)[:20_000]),  # a truncated PNG
           dict(content=b"GIF89a" + b"\0" * 5000), dict(content=b"\x89PNG" + b"\xff" * 150_000)]
    for warmup in range(2):
        client.post("/api/translate", headers={"content-type": "image/png"}, **bad[warmup])
    before = rss()
    for i in range(80):
        r = client.post("/api/translate", headers={"content-type": "image/png"}, **bad[i % len(bad)])
        assert r.status_code in (400, 415), r.text
    assert rss() - before < 64 * 2**20
    assert client.get("/healthz").json()["status"] == "ok"


def test_concurrent_requests_are_batched_without_mixing_images(run):
    """Eight different images at once: fewer forward passes than requests, and each answer is what that
    image alone gives (each image is normalised by its own statistics)."""
    model = load_served(run)
    app = create_app([model], max_wait_ms=200)
    images = [label_image(32, 32) for _ in range(8)]
    for i, img in enumerate(images):
        img[i * 3:i * 3 + 4, :] = CMP4[3]

    async def go():
        import httpx

        transport = httpx.ASGITransport(app=app)
        async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport,
                                                                       base_url="http://127.0.0.1") as c:
            rs = await asyncio.gather(*[c.post("/api/translate", content=png(im), params={"eval": "true"},
                                                headers={"content-type": "image/png"}) for im in images])
            return [r.content for r in rs], app.state.batcher.batches

    outs, batches = asyncio.run(go())
    assert batches < len(images)
    alone = Translator.load(run, eval=True, device="cpu")
    for im, out in zip(images, outs):
        expected = np.asarray(alone(Image.fromarray(im))).astype(int)
        assert np.abs(np.asarray(Image.open(io.BytesIO(out))).astype(int) - expected).max() <= 1


# ---------------------------------------------------------------------------------- a running server


def _serving(run, header_timeout: float, body_timeout: float):
    import uvicorn

    port = free_port()
    app = create_app([load_served(run)], max_upload_bytes=2**20)
    srv = uvicorn.Server(server_config(app, "127.0.0.1", port, header_timeout, body_timeout))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(200):
        if srv.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def server(run):
    """A server whose deadlines no client of these tests comes near, however busy the machine (the client's
    loop shares this process, and a stall of a second between a response and the next request on a kept-alive
    connection is ordinary on a loaded 2-core machine)."""
    yield from _serving(run, header_timeout=30.0, body_timeout=30.0)


@pytest.fixture(scope="module")
def strict_server(run):
    """A server with short deadlines, for the tests of slow clients being cut off."""
    yield from _serving(run, header_timeout=1.0, body_timeout=2.0)


@pytest.mark.slow
def test_load_200_requests_at_concurrency_16_all_answered(server):
    from pix2pix.app.loadtest import run_load

    result = asyncio.run(run_load(server, png(label_image(64, 64)), n=200, concurrency=16,
                                  check=lambda r: Image.open(io.BytesIO(r.content)).size == (64, 64)))
    assert result.ok == 200, result.summary()
    print("\n" + result.summary())


def test_a_slow_client_does_not_hold_up_the_others(server):
    """A client that sends headers and half its body, then stalls, while another request comes and goes."""
    import socket

    import httpx

    host, port = server.removeprefix("http://").split(":")
    body = png(label_image(32, 32))
    with socket.create_connection((host, int(port))) as slow:
        slow.sendall(b"POST /api/translate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body) + body[:len(body) // 2])
        t = time.perf_counter()
        r = httpx.post(server + "/api/translate", content=body, headers={"content-type": "image/png"}, timeout=30)
        assert r.status_code == 200 and time.perf_counter() - t < 5
        slow.sendall(body[len(body) // 2:])  # and the slow one is answered once its body is complete
        assert slow.recv(64).startswith(b"HTTP/1.1 200")


@pytest.mark.slow
def test_the_page_in_a_real_browser(server, tmp_path):
    """Draw on the canvas, wait for the output, check it changed and has the input's size; switch tools,
    undo, upload a file; keep a screenshot in tests/artifacts/."""
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1000, "height": 700})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server)
        page.wait_for_function("document.getElementById('output').naturalWidth > 0")  # the first sample
        assert page.locator("#palette .swatch").count() == len(FACADES.classes)
        first = page.evaluate("document.getElementById('output').src")

        page.locator("#palette .swatch", has_text="door").click()
        page.fill("#size", "8")
        draw(page, 0.2, 0.2, 0.8, 0.8)
        second = new_output(page, first)
        size = page.evaluate("[document.getElementById('output').naturalWidth, "
                             "document.getElementById('output').naturalHeight, "
                             "document.getElementById('input').width, document.getElementById('input').height]")
        assert size[:2] == size[2:] == [32, 32]
        page.click("button[data-tool=rect]")
        draw(page, 0.1, 0.6, 0.5, 0.9)
        third = new_output(page, second)
        page.click("#undo")
        fourth = new_output(page, third)
        upload = tmp_path / "upload.png"
        Image.fromarray(label_image(48, 40)).save(upload)
        page.set_input_files("#upload", str(upload))
        new_output(page, fourth)
        assert page.evaluate("[document.getElementById('output').naturalWidth, "
                             "document.getElementById('output').naturalHeight]") == [48, 40]
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "app.png"))
        (tmp_path / "notes.png").write_text("not an image")  # said in the status line, nothing else changes
        page.set_input_files("#upload", str(tmp_path / "notes.png"))
        page.wait_for_function("document.getElementById('status').textContent.includes('is not an image')")
        assert page.evaluate("document.getElementById('input').width") == 48
    assert errors == []


@pytest.mark.slow
def test_the_api_docs_render_in_a_browser_without_a_network(server):
    """/docs is Swagger UI served by the server itself: with every request elsewhere refused, the page still
    shows the API's operations, and it asked no other host for anything."""
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1000, "height": 700})
        elsewhere, errors = [], []
        page.on("pageerror", lambda e: errors.append(str(e)))

        page.route("**/*", only_local(elsewhere))
        page.goto(server + "/docs")
        page.wait_for_selector(".swagger-ui .opblock-post", timeout=30_000)
        assert page.locator(".swagger-ui .opblock").count() >= 4  # /healthz, /api/models, samples, translate
        assert page.locator(".opblock-post .opblock-summary-path", has_text="/api/translate").is_visible()
        page.wait_for_load_state("networkidle")
    assert elsewhere == [] and errors == []


def test_the_api_docs_page_loads_only_the_servers_own_assets(client):
    """The /docs HTML names no other host, each asset it names answers with its type, and the security
    middleware guards the assets like every other route."""
    import re

    r = client.get("/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", r.text) + re.findall(r"url: '([^']+)'", r.text)
    assert len(urls) == 4 and all(u.startswith("/") and not u.startswith("//") for u in urls), urls
    assert "http://" not in r.text and "https://" not in r.text
    types = {".js": ("text/javascript", "application/javascript"), ".css": ("text/css",), ".png": ("image/png",),
             ".json": ("application/json",)}
    for url in urls:
        asset = client.get(url)
        assert asset.status_code == 200 and len(asset.content) > 1000, url
        assert asset.headers["content-type"].split(";")[0] in types[Path(url).suffix], (url, asset.headers)
    assert client.get("/redoc").status_code == 404  # not served: it would load its script from a CDN
    assert client.get("/docs/assets/nothing.js").status_code == 404
    assert TestClient(client.app, base_url="http://evil.example").get(urls[0]).status_code == 400


def test_each_answer_names_its_engine_and_a_seed_runs_pytorch(run, monkeypatch):
    """On a CPU without bf16 the served checkpoint runs ONNX Runtime; a seeded request in the paper's mode asks
    for PyTorch's exact noise, and X-Engine says which ran."""
    import pix2pix.inference.engines as engines

    monkeypatch.setattr(engines, "cpu_has_bf16", lambda: False)
    model = load_served(run, device="cpu")
    assert model.describe()["backend"] == "onnxruntime"
    body = png(label_image(48, 40))
    with TestClient(create_app([model]), base_url="http://localhost") as c:
        post = lambda **params: c.post("/api/translate", content=body, params=params,  # noqa: E731
                                       headers={"content-type": "image/png"})
        assert post().headers["x-engine"] == "onnxruntime"
        assert post(eval="true").headers["x-engine"] == "onnxruntime"
        seeded = post(seed=3)
        assert seeded.headers["x-engine"] == "torch" and seeded.content == post(seed=3).content



def test_a_thin_image_is_refused_before_it_is_padded(client):
    """1 x 262,144 pixels passes --max-pixels but pads to 32 x 262,144 here (256 x 262,144 for unet_256):
    refused from the header, before decoding or padding."""
    thin = png(np.zeros((1, 50_000, 3), np.uint8))
    r = client.post("/api/translate", content=thin, headers={"content-type": "image/png"})
    assert r.status_code == 400 and "pads to" in r.json()["error"]


def test_every_error_is_json_with_its_status(client, run, tmp_path):
    assert client.get("/no/such/route").status_code == 404 and "error" in client.get("/no/such/route").json()
    r = client.get("/api/translate")  # a POST route
    assert r.status_code == 405 and "error" in r.json()
    r = client.get("/api/models/facadeish/samples/first")
    assert r.status_code == 422 and "index" in r.json()["error"]
    r = client.post("/api/translate", content=png(label_image()), params={"seed": str(2**64)},
                    headers={"content-type": "image/png"})
    assert r.status_code == 400 and "seed must be in" in r.json()["error"]


def test_a_sample_file_gone_since_the_start_is_a_json_404(run, tmp_path):
    model = load_served(run)
    model.samples = [tmp_path / "gone.png"]
    with TestClient(create_app([model]), base_url="http://localhost") as c:
        r = c.get(f"/api/models/{model.name}/samples/0")
    assert r.status_code == 404 and "cannot be read" in r.json()["error"]


def test_only_its_own_hosts_are_answered(run):
    """DNS rebinding: a page on evil.example that resolves its name to 127.0.0.1 sends Host: evil.example."""
    app = create_app([load_served(run)], allow_hosts=("pix2pix.lan",))
    for host, status in (("evil.example", 400), ("evil.example:7860", 400), ("localhost:7860", 200),
                         ("127.0.0.1:7860", 200), ("[::1]:7860", 200), ("pix2pix.lan", 200)):
        with TestClient(app, base_url=f"http://{host}") as c:
            r = c.get("/api/models")
        assert r.status_code == status, host
        if status == 400:
            assert "--allow-host" in r.json()["error"]


def test_urllib_reads_the_413_of_an_oversized_upload(server):
    import urllib.error
    import urllib.request

    request = urllib.request.Request(server + "/api/translate", data=b"\0" * (12 * 2**20),
                                     headers={"content-type": "image/png"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(request, timeout=30)
    assert e.value.code == 413 and "larger than" in json.loads(e.value.read())["error"]


@pytest.mark.parametrize("stall", ["headers", "body"])
def test_slow_headers_and_bodies_are_cut_off(strict_server, stall):
    import socket

    host, port = strict_server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=15) as slow:
        head = b"POST /api/translate HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        slow.sendall(head if stall == "headers" else head + b"Content-Length: 1000\r\n\r\n" + b"\0" * 10)
        t = time.perf_counter()
        assert slow.recv(64) == b""  # closed by the server
        assert time.perf_counter() - t < 14


def test_slow_headers_on_a_kept_alive_connection_are_cut_off_too(strict_server):
    """After one complete request, the next request's headers have the same deadline."""
    import socket

    host, port = strict_server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=15) as c:
        c.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert c.recv(4096).startswith(b"HTTP/1.1 200")
        t = time.perf_counter()
        closed = False
        for _ in range(12):  # a drip of header bytes, one every half second
            try:
                c.sendall(b"X")
            except OSError:
                closed = True
                break
            c.settimeout(0.5)
            try:
                if c.recv(64) == b"":
                    closed = True
                    break
            except socket.timeout:
                pass
        assert closed and time.perf_counter() - t < 5


def test_a_port_outside_1_to_65535_is_one_line(run, capsys):
    from pix2pix.cli import main

    with pytest.raises(SystemExit) as e:
        main(["serve", "--checkpoint", str(run), "--port", "70000"])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and "a port is 1 to 65535, not 70000" in err[0]


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def _npy_header(shape: tuple) -> bytes:
    """A .npy header that declares ``shape`` (float32), and 64 bytes of body."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return buf.getvalue() + b"\0" * 64


def test_an_array_model_is_served_by_the_api_alone_with_npy_bodies(bands_run):
    model = load_served(bands_run)
    assert not model.images and model.describe()["takes"] == ["application/x-npy"] and not model.describe()["page"]
    x = np.load(bands_run.parent.parent / "bands" / "A" / "test" / "1.npy")
    npy = {"content-type": "application/x-npy"}
    with TestClient(create_app([model]), base_url="http://localhost") as c:
        r = c.get("/")
        assert r.status_code == 404 and "array models only" in r.json()["error"]
        r = c.post("/api/translate?eval=true", content=_npy(x), headers=npy)
        assert r.status_code == 200 and r.headers["content-type"] == "application/x-npy"
        y = np.load(io.BytesIO(r.content))
        ref = Translator.load(bands_run, eval=True, device="cpu", fast=False)(x)
        scale = model.scales.output
        assert y.shape == (32, 32, 2) and y.dtype == np.float32
        assert np.all(np.abs(y - ref) <= 1e-4 * (np.array(scale.b) - np.array(scale.a)))
        bad = x.copy()
        bad[0, 0, 0] = np.nan
        for body, headers, status, needle in [
                (png(label_image()), {"content-type": "image/png"}, 415, "takes 5-channel arrays"),
                (_npy(x[:, :, :4]), npy, 400, "has 4 channel(s); model 'bands' takes 5"),
                (_npy(bad), npy, 400, "NaN or infinite"),
                (_npy(x.astype(np.uint8)), npy, 400, "its values are uint8 (uint8)"),
                (b"not an array", npy, 400, "not a .npy array"),
                (_npy_header((60000, 60000, 5)), npy, 400, "the array is 60000x60000"),  # never allocated
                (_npy_header((32, 32, 10**9)), npy, 400, "and the body holds 64")]:
            r = c.post("/api/translate", content=body, headers=headers)
            assert r.status_code == status and needle in r.json()["error"], r.json()


def test_a_16_bit_model_answers_16_bit_pngs_through_the_api(tmp_path):
    from conftest import TINY, make_16bit_dataset, train_tiny

    data = make_16bit_dataset(tmp_path / "scans", {"train": 3})
    run = train_tiny(tmp_path, data, TINY + ["--in-channels", "1", "--out-channels", "1", "--max-steps", "1"])
    model = load_served(run)
    assert not model.images and model.png and model.describe()["takes"] == ["image/png", "application/x-npy"]
    body = (data / "A" / "train" / "1.png").read_bytes()
    with TestClient(create_app([model]), base_url="http://localhost") as c:
        assert c.get("/").status_code == 404
        r = c.post("/api/translate?eval=true", content=body, headers={"content-type": "image/png"})
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        with Image.open(io.BytesIO(r.content)) as im:
            assert im.mode.startswith("I;16") and im.size == (32, 32)
            served = np.asarray(im)
        expected = Translator.load(run, eval=True, device="cpu", fast=False)(Image.open(io.BytesIO(body)))
        assert np.abs(served.astype(int) - np.asarray(expected).astype(int)).max() <= 2  # of 65535
        eight = png(np.zeros((32, 32), np.uint8))
        r = c.post("/api/translate", content=eight, headers={"content-type": "image/png"})
        assert r.status_code == 400 and "takes uint16 data" in r.json()["error"]


def _with_chunk(data: bytes, kind: bytes, body: bytes) -> bytes:
    """A PNG with one more chunk right after IHDR."""
    import struct
    import zlib

    chunk = struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    end_of_ihdr = 8 + 4 + 4 + 13 + 4
    return data[:end_of_ihdr] + chunk + data[end_of_ihdr:]


def test_issue_20s_request_probes(run):
    """A cross-site page's multipart POST is 403 (a listed --allow-origin, or the page's own origin, is not); a
    PNG whose ICC profile or text chunk inflates without bound is 400; formats the server does not promise are
    415, never decoded."""
    import zlib

    from PIL import Image as PILImage

    app = create_app([load_served(run)], allow_origins=("https://friend.example",))
    body = png(label_image())
    files = {"image": ("x.png", body, "image/png")}
    bomb = zlib.compress(b"\0" * 20_000_000, 9)
    gif = io.BytesIO()
    PILImage.new("P", (32, 32)).save(gif, "GIF")
    with TestClient(app, base_url="http://127.0.0.1:7860") as c:
        for headers, status in (({"origin": "https://evil.example", "sec-fetch-site": "cross-site"}, 403),
                                ({"sec-fetch-site": "same-site"}, 403), ({"origin": "null"}, 403),
                                ({"origin": "https://friend.example", "sec-fetch-site": "cross-site"}, 200),
                                ({"origin": "http://127.0.0.1:7860", "sec-fetch-site": "same-origin"}, 200), ({}, 200)):
            r = c.post("/api/translate", files=files, headers=headers)
            assert r.status_code == status, (headers, r.status_code, r.text[:200])
        assert "another site's page cannot make this server work" in c.post(
            "/api/translate", files=files, headers={"origin": "https://evil.example"}).json()["error"]
        for name, data, status in (("iCCP", _with_chunk(body, b"iCCP", b"icc\0\0" + bomb), 400),
                                   ("zTXt", _with_chunk(body, b"zTXt", b"note\0\0" + bomb), 400),
                                   ("GIF", gif.getvalue(), 415)):
            r = c.post("/api/translate", content=data, headers={"content-type": "image/png"})
            assert r.status_code == status, (name, r.status_code, r.text[:200])


def test_the_memory_budget_refuses_what_alone_exceeds_it_and_queues_the_rest(run):
    """Issue 20: a thin image padded to a huge one is refused before it is decoded, naming the budget; eight
    requests at once, each over a third of the budget, are all answered, never holding more than it together."""
    import concurrent.futures

    model = load_served(run)
    one = model.cost_bytes(64, 64)
    app = create_app([model], max_memory_bytes=int(2.5 * one))
    thin = png(np.zeros((1, 4000, 3), np.uint8))
    assert model.cost_bytes(1, 4000) > 2.5 * one
    with TestClient(app, base_url="http://127.0.0.1:7860") as c:
        r = c.post("/api/translate", content=thin, headers={"content-type": "image/png"})
        assert r.status_code == 400 and "over this server's memory budget" in r.json()["error"], r.text
        body = png(label_image(64, 64))
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda _: c.post("/api/translate", content=body,
                                                   headers={"content-type": "image/png"}).status_code, range(8)))
        assert codes == [200] * 8
        budget = app.state.budget
        assert budget.held == 0 and one <= budget.peak <= budget.total


def test_bodies_in_flight_are_bounded_together():
    """Issue 20: 60 connections each holding 9 MB of an unfinished body held 640 MB. The bodies being received
    (and the requests still holding them) share one bound; past it a request gets 503."""
    from pix2pix.app.server import BodyLimit

    release = asyncio.Event()

    async def app(scope, receive, send):
        while (await receive()).get("more_body"):
            pass
        await release.wait()  # a request still working with its body
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def request(limited, statuses):
        chunks = [{"type": "http.request", "body": b"\0" * 60, "more_body": True},
                  {"type": "http.request", "body": b"", "more_body": False}]

        async def receive():
            return chunks.pop(0) if chunks else {"type": "http.disconnect"}

        async def send(message):
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        await limited({"type": "http", "headers": []}, receive, send)

    async def main():
        limited, statuses = BodyLimit(app, limit=100, total=150), []
        first = [asyncio.create_task(request(limited, statuses)) for _ in range(2)]
        await asyncio.sleep(0.05)
        await request(limited, statuses)  # a third body would make 180 bytes held: 503 at once
        assert statuses == [503]
        release.set()
        await asyncio.gather(*first)
        assert sorted(statuses) == [200, 200, 503] and limited.held == 0

    asyncio.run(main())
