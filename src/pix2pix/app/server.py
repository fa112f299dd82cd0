"""``pix2pix serve``: one page to draw and translate, and an HTTP API, with FastAPI.

Requests are translated in small dynamic batches on the device (:class:`Batcher`): jobs for the same model,
size and mode that arrive within ``max_wait_ms`` of each other share one forward pass, which runs in a worker
thread, off the event loop. What a request can make the server do is bounded: upload bytes (over the limit: 413
after draining a bounded amount, so that every client reads it), pixels and the padded size the U-Net
computes (checked from the image header, before decoding), the time to send headers and body
(:class:`TimedH11Protocol`), and the ``Host`` it answers to (a DNS-rebinding page cannot read it). Every error,
FastAPI's own included, is ``{"error": ...}`` JSON.
"""

from __future__ import annotations

import asyncio
import io
import ipaddress
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from PIL import Image, UnidentifiedImageError

from ..data.rasters import MODES, as_array, checked_array, encode, pil_raster, to_tensor
from ..errors import Pix2PixError
from ..networks.generators import padded_size
from .docs import add_docs
from .inpage import RUNTIME_TYPES, CrossOriginIsolated, InPage
from .runtime import FILES as RUNTIME_FILES
from .models import ServedModel

MAX_UPLOAD_BYTES = 10 * 2**20
MAX_PIXELS = 4096 * 4096
PADDED_FACTOR = 2  # the padded image may hold at most this many times --max-pixels
DRAIN_BYTES = 16 * 2**20  # read (and drop) up to this much of an over-limit upload before its 413
HEADER_TIMEOUT_S, BODY_TIMEOUT_S = 10.0, 60.0
MAX_CONNECTIONS = 64
BODIES_BYTES = 64 * 2**20  # what the request bodies being received may hold together (at least 4 uploads' worth)
MAX_SEED = 2**63 - 1
IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/bmp", "application/octet-stream")
NPY = "application/x-npy"  # an array body: what numpy.save writes


@dataclass
class _Job:
    model: ServedModel
    x: np.ndarray  # (C, H, W) float32 in [-1, 1]
    eval: bool
    seed: int | None
    future: asyncio.Future
    key: tuple = field(init=False)

    def __post_init__(self):
        # Jobs batch together when one forward pass serves them all; a seeded job runs alone, so its
        # dropout noise is its own and repeatable.
        self.key = (self.model.name, self.x.shape, self.eval, id(self) if self.seed is not None else None)


class Batcher:
    """Collects translation jobs into batches of at most ``max_batch``, waiting at most ``max_wait_ms`` for
    company, and runs each batch in a single worker thread (one device, one forward pass at a time)."""

    def __init__(self, max_batch: int = 8, max_wait_ms: float = 10.0):
        self.max_batch, self.max_wait = max_batch, max_wait_ms / 1000
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="pix2pix-infer")
        self.queue: asyncio.Queue[_Job] | None = None
        self.task: asyncio.Task | None = None
        self.batches = self.jobs = 0

    async def start(self) -> None:
        self.queue = asyncio.Queue()
        self.task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def submit(self, model: ServedModel, x: np.ndarray, eval: bool, seed: int | None) -> tuple[np.ndarray, str]:
        """The translation of ``x`` and the engine that ran it."""
        job = _Job(model, x, eval, seed, asyncio.get_running_loop().create_future())
        await self.queue.put(job)
        return await job.future

    async def _run(self) -> None:
        loop, waiting = asyncio.get_running_loop(), deque()
        while True:
            first = waiting.popleft() if waiting else await self.queue.get()
            batch, later = [first], deque()
            for job in waiting:  # jobs that came earlier for another key keep their turn
                (batch if job.key == first.key and len(batch) < self.max_batch else later).append(job)
            waiting = later
            deadline = loop.time() + self.max_wait
            while len(batch) < self.max_batch and (left := deadline - loop.time()) > 0:
                try:
                    job = await asyncio.wait_for(self.queue.get(), left)
                except asyncio.TimeoutError:
                    break
                (batch if job.key == first.key else waiting).append(job)
            batch = [j for j in batch if not j.future.done()]  # a client that left needs no answer
            if not batch:
                continue
            x = np.stack([j.x for j in batch])
            try:
                y, engine = await loop.run_in_executor(self.executor, _translate, first.model.backend, x, first.eval,
                                                       first.seed)
            except Exception as e:  # noqa: BLE001 - every waiting request gets the error, the server goes on
                for j in batch:
                    if not j.future.done():
                        j.future.set_exception(e)
                continue
            self.batches, self.jobs = self.batches + 1, self.jobs + len(batch)
            for j, out in zip(batch, y):
                if not j.future.done():
                    j.future.set_result((out, engine))


def _translate(backend, x: np.ndarray, eval: bool, seed: int | None) -> tuple[np.ndarray, str]:
    """A batch through a backend, and the engine that ran it (the compiled engine's PyTorch while it compiles,
    PyTorch for a seed's exact noise): read in the same worker thread, before the next batch runs."""
    y = backend(x, eval, seed)
    return y, backend.ran(eval)


class MemoryBudget:
    """The memory the server's work may take at once: a request holds its estimated cost
    (:meth:`ServedModel.cost_bytes`) from before its image is decoded until its answer is encoded, and waits
    while what others hold leaves too little. However many requests come at once, and however they batch, what
    they hold together stays under ``total`` (one larger than the whole is refused before it waits)."""

    def __init__(self, total: int):
        self.total, self.held, self.peak = total, 0, 0
        self.changed: asyncio.Condition | None = None

    @asynccontextmanager
    async def hold(self, n: int):
        if self.changed is None:
            self.changed = asyncio.Condition()
        async with self.changed:
            await self.changed.wait_for(lambda: self.held + n <= self.total)
            self.held += n
            self.peak = max(self.peak, self.held)
        try:
            yield
        finally:
            async with self.changed:
                self.held -= n
                self.changed.notify_all()


def default_memory_budget() -> int:
    """A quarter of this machine's memory (``MemTotal``), or 2 GiB where it cannot be read."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024 // 4
    except OSError:
        pass
    return 2 * 2**30


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets 413 before it is read whole. The server first
    reads and drops up to ``DRAIN_BYTES`` more of it, so that a client which sends its whole body before it
    reads (Python's urllib, requests) gets the 413 and not a connection reset; the connection then closes.
    And the bodies being received hold at most ``total`` bytes together: past it a request gets 503 (many slow
    uploads at once cannot hold the memory the translations need)."""

    def __init__(self, app, limit: int, total: int | None = None):
        self.app, self.limit = app, limit
        self.total, self.held = total or max(BODIES_BYTES, 4 * limit), 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            if headers.get(b"expect", b"").lower() != b"100-continue":  # such a client waits: answer at once
                await _drain(receive, min(int(length), self.limit + DRAIN_BYTES))
            return await _too_large(self.limit, send)
        seen, started = 0, False

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                n = len(message.get("body", b""))
                seen, self.held = seen + n, self.held + n
                if seen > self.limit:
                    raise _TooLarge()
                if self.held > self.total:
                    raise _Busy()
            return message

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await _drain(receive, DRAIN_BYTES)
                await _too_large(self.limit, send)
        except _Busy:
            if not started:
                await _refuse(send, 503, "the server is receiving too many uploads at once; try again shortly")
        finally:
            self.held -= seen


class _TooLarge(Exception):
    pass


class _Busy(Exception):
    pass


async def _drain(receive, most: int) -> None:
    seen = 0
    while seen < most:
        message = await receive()
        if message["type"] != "http.request":
            return
        seen += len(message.get("body", b""))
        if not message.get("more_body"):
            return


async def _too_large(limit: int, send) -> None:
    body = JSONResponse({"error": f"the upload is larger than {limit / 2**20:g} MB"}, 413).body
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class HostCheck:
    """ASGI middleware: answer only requests whose ``Host`` is an IP address, ``localhost``, or one of
    ``allowed``. A page on another site that rebinds its own name to this address sends its own name as the
    Host, and gets 400: it cannot read the models or the samples through a visitor's browser.

    And no other site's page may make this server work: a browser marks a request a page sends elsewhere with
    ``Sec-Fetch-Site`` (anything but ``same-origin`` or ``none``) and ``Origin``; such a request for anything but
    reading (POST, ...) gets 403 unless its origin is one of ``origins`` (``--allow-origin``). Clients that are not
    browsers (curl, scripts) send neither, and are answered as before."""

    def __init__(self, app, allowed: set[str], origins: set[str] = frozenset()):
        self.app, self.allowed = app, {h.lower() for h in allowed} | {"localhost"}
        self.origins = {o.lower().rstrip("/") for o in origins}

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            headers = dict(scope.get("headers") or [])
            raw_host = headers.get(b"host", b"").decode("latin-1")
            host = _host_name(raw_host)
            if not (host in self.allowed or _is_ip(host)):
                return await _refuse(send, 400, f"this server does not answer for host {host!r}; start it with "
                                                f"--allow-host {host or 'NAME'} to allow it")
            if scope.get("method", "GET") not in ("GET", "HEAD", "OPTIONS") and self._cross_site(headers, raw_host):
                origin = headers.get(b"origin", b"").decode("latin-1") or "another site"
                return await _refuse(send, 403, f"requests from {origin} are refused: another site's page cannot "
                                                "make this server work (start it with --allow-origin ORIGIN to "
                                                "allow one)")
        return await self.app(scope, receive, send)

    def _cross_site(self, headers: dict, host: str) -> bool:
        origin = headers.get(b"origin", b"").decode("latin-1").lower().rstrip("/")
        if origin and origin in self.origins:
            return False
        site = headers.get(b"sec-fetch-site", b"").decode("latin-1").lower()
        if site and site not in ("same-origin", "none"):
            return True
        return bool(origin) and origin.split("://", 1)[-1] != host.lower()


async def _refuse(send, status: int, message: str) -> None:
    body = JSONResponse({"error": message}, status).body
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _host_name(host: str) -> str:
    """'Example.org:7860' -> 'example.org'; '[::1]:7860' -> '::1'."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


UPLOAD_FORMATS = ("PNG", "JPEG", "WEBP", "BMP")  # what the 415 promises, and all Pillow may try


def decode_upload(data: bytes, max_pixels: int, pad: tuple[int, int] = (1, 1),
                  max_padded: int | None = None) -> Image.Image:
    """Bytes -> a fully decoded PIL image; not an image is 415, too many pixels (or, padded to the generator's
    ``pad`` rule, more than ``max_padded``: a 1 x 262,144 image pads to 256 x 262,144) or a broken file 400.
    The sizes are read from the header, before anything is decoded."""
    if not data:
        raise HTTPException(400, "the request holds no image")
    try:
        im = Image.open(io.BytesIO(data), formats=UPLOAD_FORMATS)  # no other decoder is reached
    except (UnidentifiedImageError, Image.DecompressionBombError) as e:
        if isinstance(e, Image.DecompressionBombError):
            raise HTTPException(400, f"the image has too many pixels (at most {max_pixels:,})") from None
        raise HTTPException(415, "not an image this server reads (PNG, JPEG, WebP or BMP)") from None
    except (ValueError, OSError, SyntaxError, EOFError) as e:  # a header Pillow refuses: text or ICC chunk bombs
        raise HTTPException(400, f"the image's header could not be read ({str(e).splitlines()[0] if str(e) else type(e).__name__})") \
            from None
    w, h = im.size
    if w * h > max_pixels:
        raise HTTPException(400, f"the image is {w}x{h}: at most {max_pixels:,} pixels") from None
    ph, pw = padded_size(h, w, *pad)
    limit = PADDED_FACTOR * max_pixels if max_padded is None else max_padded
    if ph * pw > limit:
        raise HTTPException(400, f"the image is {w}x{h}, which the generator pads to {pw}x{ph}: at most "
                                 f"{limit:,} pixels padded (a very thin image pads to a very large one)") from None
    try:
        im.load()
    except (OSError, ValueError, SyntaxError) as e:
        raise HTTPException(400, f"the image could not be decoded ({str(e).splitlines()[0] or type(e).__name__})") from None
    return im


def create_app(models: list[ServedModel], max_upload_bytes: int = MAX_UPLOAD_BYTES, max_pixels: int = MAX_PIXELS,
               max_batch: int = 8, max_wait_ms: float = 10.0, allow_hosts: tuple[str, ...] = (),
               allow_origins: tuple[str, ...] = (), max_memory_bytes: int | None = None,
               max_bodies_bytes: int | None = None, runtime: Path | None = None) -> FastAPI:
    """The app. ``allow_hosts``: host names it answers for besides localhost and IP addresses; ``allow_origins``:
    other sites whose pages may send it work (``https://example.org``); ``max_memory_bytes``: the memory its
    translations may take at once (:class:`MemoryBudget`; default a quarter of the machine's); ``runtime``:
    onnxruntime-web's folder, which lets the page translate in the browser (:mod:`pix2pix.app.inpage`)."""
    budget = MemoryBudget(max_memory_bytes or default_memory_budget())
    in_page = InPage(runtime)
    by_name = {m.name: m for m in models}
    batcher = Batcher(max_batch, max_wait_ms)
    static = resources.files("pix2pix.app") / "static"

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="pix2pix", description="Image-to-image translation (Isola et al., CVPR 2017): draw or "
                  "upload an input, get the model's output.", lifespan=lifespan,
                  docs_url=None, redoc_url=None)  # FastAPI's pages load their scripts from a CDN: add_docs
    app.state.batcher, app.state.budget = batcher, budget

    @app.exception_handler(StarletteHTTPException)  # ours, and FastAPI's own 404 and 405
    async def json_error(request: Request, exc: StarletteHTTPException):
        return JSONResponse({"error": exc.detail}, exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):
        where = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in exc.errors())
        return JSONResponse({"error": f"invalid request ({where})"}, 422)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception):  # a bug: still JSON, and the server goes on
        return JSONResponse({"error": f"internal error ({type(exc).__name__}); the server goes on"}, 500)

    def model_named(name: str | None) -> ServedModel:
        if name is None or name == "":
            return models[0]
        if name not in by_name:
            raise HTTPException(404, f"no model named {name!r}; GET /api/models lists them")
        return by_name[name]

    @app.get("/", include_in_schema=False)
    async def page():
        if not any(m.images for m in models):
            raise HTTPException(404, "this server holds array models only, so it has no page: POST .npy bodies "
                                     "(application/x-npy) to /api/translate")
        return FileResponse(str(static / "index.html"))

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok", "models": len(models), "batches": batcher.batches, "requests": batcher.jobs}

    @app.get("/api/models")
    async def list_models():
        """The loaded models: direction, input kind (labels, sketch, photo), classes and palette."""
        return [m.describe() | in_page.entry(m) for m in models]

    def in_page_model(name: str) -> ServedModel:
        m = model_named(name)
        why = in_page.entry(m).get("web_unavailable")
        if why:
            raise HTTPException(404, f"model {name!r} cannot run in the browser: {why}")
        return m

    @app.get("/api/models/{name}/web")
    async def web_metadata(name: str):
        """The inputs of the model's web graph (its noise layers, padding), for a page that runs it."""
        return (await run_in_threadpool(in_page.graph, in_page_model(name)))[1]

    @app.get("/api/models/{name}/web.onnx", responses={200: {"content": {"application/octet-stream": {}}}})
    async def web_graph(name: str):
        """The model's web graph (fp32), for onnxruntime-web in the page."""
        data, _ = await run_in_threadpool(in_page.graph, in_page_model(name))
        return Response(data, media_type="application/octet-stream")

    @app.get("/api/models/{name}/samples/{index}", responses={200: {"content": {"image/png": {}}}})
    async def sample(name: str, index: int):
        """Input ``index`` of the model's val split, as a PNG."""
        m = model_named(name)
        if not 0 <= index < len(m.samples):
            raise HTTPException(404, f"model {name!r} has {len(m.samples)} samples")
        buf = io.BytesIO()
        try:
            image = await run_in_threadpool(m.sample_input, index)
        except (OSError, Pix2PixError) as e:  # the file went away, or broke, after the server started
            raise HTTPException(404, f"sample {index} of model {name!r} cannot be read ({e})") from None
        image.save(buf, "PNG")
        return Response(buf.getvalue(), media_type="image/png")

    @app.post("/api/translate", responses={200: {"content": {"image/png": {}, NPY: {}}}})
    async def translate(request: Request):
        """Translate one image: a multipart upload (field ``image``) or a raw PNG/JPEG body; or one array: an
        ``application/x-npy`` body (H x W x C in the data's units, as ``numpy.save`` writes it). Optional
        fields (form fields or query parameters): ``model`` (default the first), ``seed`` (PyTorch's dropout
        noise of that seed), ``eval`` (true: no dropout, running statistics). Returns a PNG of the input's size
        (16-bit for 16-bit models), or for an array a float32 .npy in the target's units, with the engine that
        ran it in ``X-Engine``."""
        start = time.perf_counter()
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        fields = dict(request.query_params)
        if ctype == "multipart/form-data":
            form = await request.form()
            upload = form.get("image")
            if upload is None or isinstance(upload, str):
                raise HTTPException(400, "the multipart request has no file field 'image'")
            data = await upload.read()
            fields |= {k: v for k, v in form.items() if isinstance(v, str)}
        elif ctype in IMAGE_TYPES or ctype == "" or ctype == NPY:
            data = await request.body()
        else:
            raise HTTPException(415, f"send an image (multipart field 'image', or a PNG/JPEG body) or an array "
                                     f"({NPY}), not {ctype}")
        model = model_named(fields.get("model"))
        array = ctype == NPY
        if not array and not model.png:
            raise HTTPException(415, f"model {model.name!r} takes {model.config.in_channels}-channel arrays of "
                                     f"{model.scales.input.data} data: send a .npy body as {NPY}")
        seed = _int_field(fields.get("seed"), "seed")
        if seed is not None and not 0 <= seed <= MAX_SEED:
            raise HTTPException(400, f"seed must be in [0, {MAX_SEED}], not {seed}")
        eval_mode = str(fields.get("eval", "false")).lower() in ("1", "true", "yes", "on")
        h, w = await run_in_threadpool(_probe_size, data, array)  # from the header: nothing decoded yet
        cost = model.cost_bytes(h, w)
        if cost > budget.total:
            raise HTTPException(400, f"the {'array' if array else 'image'} is {w}x{h}: translating it would take "
                                     f"about {cost / 2**30:.1f} GiB, over this server's memory budget of "
                                     f"{budget.total / 2**30:.1f} GiB (--max-memory)")
        async with budget.hold(cost):
            # Decoding and encoding run in worker threads too: a large upload does not hold up other requests.
            x = await run_in_threadpool(_array_input if array else _to_input, data, max_pixels, model)
            y, engine = await batcher.submit(model, x, eval_mode, seed)
            # X-Engine says what ran: a seed in the paper's mode asks for PyTorch's exact noise, and the compiled
            # engine answers through PyTorch while it compiles in the background.
            body, media = await run_in_threadpool(_array_output if array else _to_png, y, model)
        return Response(body, media_type=media,
                        headers={"X-Model": model.name, "X-Engine": engine,
                                 "X-Seconds": f"{time.perf_counter() - start:.4f}"})

    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    if runtime is not None:
        @app.get("/ort/{name}", include_in_schema=False)
        async def runtime_file(name: str):  # onnxruntime-web's files, and nothing else of that folder
            if name not in RUNTIME_FILES:
                raise HTTPException(404, f"no {name} in onnxruntime-web's files")
            return FileResponse(str(runtime / name), media_type=RUNTIME_TYPES[Path(name).suffix])
    add_docs(app)
    app.add_middleware(BodyLimit, limit=max_upload_bytes, total=max_bodies_bytes)
    app.add_middleware(HostCheck, allowed=set(allow_hosts), origins=set(allow_origins))
    if runtime is not None:
        app.add_middleware(CrossOriginIsolated)
    return app


def _probe_size(data: bytes, array: bool) -> tuple[int, int]:
    """(height, width) of an upload from its header alone; what cannot be read is left to the full decoding,
    which says why (as 0 x 0, it costs nothing meanwhile)."""
    try:
        if array:
            shape = _npy_header(data)[0]
            return (int(shape[0]), int(shape[1])) if len(shape) >= 2 else (0, 0)
        with Image.open(io.BytesIO(data), formats=UPLOAD_FORMATS) as im:
            return im.size[1], im.size[0]
    except Exception:  # noqa: BLE001 - the decoder proper answers with the right status and words
        return 0, 0


def _to_input(data: bytes, max_pixels: int, model: ServedModel) -> np.ndarray:
    """An uploaded image as the model's (C, H, W) input in [-1, 1] (a 16-bit one for a 16-bit model)."""
    im = decode_upload(data, max_pixels, model.backend.pad_rule)
    sixteen = im.mode.startswith("I;16") and model.scales.input.kind == "uint16"
    side = checked_array(pil_raster(im), "the image") if sixteen else im.convert(MODES[model.config.in_channels])
    return _scaled(side, model)


def _array_input(data: bytes, max_pixels: int, model: ServedModel) -> np.ndarray:
    """A .npy body (H x W or H x W x C, the data's units) as the model's (C, H, W) input in [-1, 1]."""
    try:
        _check_npy_header(data, max_pixels)
        arr = np.load(io.BytesIO(data), allow_pickle=False)
        arr = checked_array(np.asarray(arr), "the array")
    except Pix2PixError as e:
        raise HTTPException(400, str(e)) from None
    except (ValueError, OSError, EOFError) as e:
        raise HTTPException(400, f"not a .npy array ({str(e).splitlines()[0] if str(e) else type(e).__name__})") \
            from None
    h, w, c = arr.shape
    if w * h > max_pixels:
        raise HTTPException(400, f"the array is {w}x{h}: at most {max_pixels:,} pixels")
    ph, pw = padded_size(h, w, *model.backend.pad_rule)
    if ph * pw > PADDED_FACTOR * max_pixels:
        raise HTTPException(400, f"the array is {w}x{h}, which the generator pads to {pw}x{ph}: at most "
                                 f"{PADDED_FACTOR * max_pixels:,} pixels padded")
    if c != model.config.in_channels:
        raise HTTPException(400, f"the array has {c} channel(s); model {model.name!r} takes "
                                 f"{model.config.in_channels}")
    return _scaled(arr, model)


def _check_npy_header(data: bytes, max_pixels: int) -> None:
    """The header of a .npy body, before numpy allocates what it declares: a shape over the pixel limit, or one
    that needs more bytes than the body holds, is a 400 (not a MemoryError, a 500)."""
    shape, dtype, start = _npy_header(data)
    if len(shape) in (2, 3) and shape[0] * shape[1] > max_pixels:
        raise HTTPException(400, f"the array is {shape[1]}x{shape[0]}: at most {max_pixels:,} pixels")
    need = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    if need > len(data) - start:
        raise HTTPException(400, f"the .npy header declares {'x'.join(map(str, shape))} {dtype}, {need:,} bytes, "
                                 f"and the body holds {len(data) - start:,}")


def _npy_header(data: bytes) -> tuple[tuple, np.dtype, int]:
    """(shape, dtype, where the data starts) of a .npy body, from its header alone."""
    buf = io.BytesIO(data)
    version = np.lib.format.read_magic(buf)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _, dtype = read(buf)
    return shape, dtype, buf.tell()


def _scaled(side, model: ServedModel) -> np.ndarray:
    try:
        model.scales.input.check(as_array(side), "the input")
    except Pix2PixError as e:
        raise HTTPException(400, str(e)) from None
    return to_tensor(side, model.scales.input).numpy()


def _to_png(y: np.ndarray, model: ServedModel) -> tuple[bytes, str]:
    fmt = "png16" if model.scales.output.kind == "uint16" else "png"
    arr = encode(torch.from_numpy(y), model.scales.output, fmt)
    buf = io.BytesIO()
    Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr).save(buf, "PNG", compress_level=1)
    return buf.getvalue(), "image/png"


def _array_output(y: np.ndarray, model: ServedModel) -> tuple[bytes, str]:
    buf = io.BytesIO()
    np.save(buf, encode(torch.from_numpy(y), model.scales.output, "npy"))
    return buf.getvalue(), NPY


def _int_field(value, name: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise HTTPException(400, f"{name} must be an integer, not {value!r}") from None


# ------------------------------------------------------------------------------------------ slow clients


def timed_protocol(header_timeout: float = HEADER_TIMEOUT_S, body_timeout: float = BODY_TIMEOUT_S):
    """uvicorn's h11 protocol with two deadlines it lacks: a request's headers must arrive within
    ``header_timeout`` seconds of the connection (or of the previous response) and its body within
    ``body_timeout`` of the headers; a client that is slower is disconnected, so slow-header and slow-body
    connections cannot pile up."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class TimedH11Protocol(H11Protocol):
        def connection_made(self, transport):
            super().connection_made(transport)
            self._deadline = None
            self._arm(header_timeout)

        def _arm(self, seconds: float) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            self._deadline = self.loop.call_later(seconds, self._too_slow)

        def _too_slow(self) -> None:
            if self.conn.their_state in (h11.IDLE, h11.SEND_BODY) and not self.transport.is_closing():
                self.transport.close()

        def on_response_complete(self) -> None:
            super().on_response_complete()  # may move to the next request and handle it
            if self.conn.their_state == h11.IDLE and not self.transport.is_closing():
                self._arm(header_timeout)  # a kept-alive connection: the next headers have the same deadline

        def handle_events(self) -> None:
            before = self.conn.their_state
            super().handle_events()
            now = self.conn.their_state
            if now != before:
                if now == h11.SEND_BODY:
                    self._arm(body_timeout)
                elif now == h11.IDLE:  # the next request on this connection
                    self._arm(header_timeout)
                elif self._deadline is not None:
                    self._deadline.cancel()
                    self._deadline = None

        def connection_lost(self, exc):
            if self._deadline is not None:
                self._deadline.cancel()
            super().connection_lost(exc)

    return TimedH11Protocol


def server_config(app: FastAPI, host: str, port: int, header_timeout: float = HEADER_TIMEOUT_S,
                  body_timeout: float = BODY_TIMEOUT_S):
    """The uvicorn configuration ``pix2pix serve`` runs (and the tests start)."""
    import uvicorn

    # limit_concurrency: connections and requests at once, past which uvicorn answers 503 (each may hold an
    # unfinished body of up to --max-upload-mb).
    return uvicorn.Config(app, host=host, port=port, log_level="warning", limit_concurrency=MAX_CONNECTIONS,
                          http=timed_protocol(header_timeout, body_timeout))
