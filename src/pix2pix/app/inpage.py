"""``serve``'s in-browser switch: what a page needs to translate in the browser instead of on the server. Each
checkpoint model's web graph (fp32, :mod:`pix2pix.inference.web`) is built on the first request for it and
kept; onnxruntime-web's files are served from the runtime folder (``--runtime``, else ``$PIX2PIX_HOME/web``).
A model whose weights are small enough to download runs in the browser by default, larger ones on the server."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from urllib.parse import quote

from fastapi import HTTPException

from ..checkpoints import load_checkpoint
from ..errors import Pix2PixError
from ..networks import build_generator, count_params
from .models import ServedModel
from .runtime import npm_pack_command

BROWSER_DEFAULT_MAX_BYTES = 50 * 2**20  # the 2017 app's author: "50MB was around the maximum size" to ship
RUNTIME_TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm"}
ISOLATION = [(b"cross-origin-opener-policy", b"same-origin"), (b"cross-origin-embedder-policy", b"require-corp")]


class InPage:
    def __init__(self, runtime: Path | None):
        self.runtime = runtime
        self.graphs: dict[str, tuple[bytes, dict]] = {}
        self.entries: dict[int, dict] = {}  # by id(): the served models live as long as the app
        self.lock = threading.Lock()  # one build at a time; a second request for the same model waits for it

    def entry(self, m: ServedModel) -> dict:
        """What ``/api/models`` says of ``m``'s in-browser engine: ``web`` (None where there is none) and why not;
        worked out once a model."""
        if id(m) not in self.entries:
            self.entries[id(m)] = self._entry(m)
        return self.entries[id(m)]

    def _entry(self, m: ServedModel) -> dict:
        why = self._unavailable(m)
        if why:
            return {"web": None, "web_unavailable": why}
        import torch

        with torch.device("meta"):
            size = 4 * count_params(build_generator(m.config))
        base = f"/api/models/{quote(m.name, safe='')}"
        return {"web": {"url": f"{base}/web.onnx", "meta": f"{base}/web", "ort": "/ort/", "weights": "fp32",
                        "bytes": size, "default": size <= BROWSER_DEFAULT_MAX_BYTES}}

    def _unavailable(self, m: ServedModel) -> str | None:
        if self.runtime is None:
            return f"no onnxruntime-web here: serve --runtime PATH (from '{npm_pack_command()}')"
        if not m.images or m.config.label_nc:
            return "the page does not draw this model's inputs"
        if m.backend is None or m.backend.name == "onnx" or Path(m.source).suffix == ".onnx":
            return "an .onnx file is served: export --format web from its checkpoint"
        return None

    def graph(self, m: ServedModel) -> tuple[bytes, dict]:
        """The model's web graph and its ``web`` metadata, built once (seconds for a large model) from its
        checkpoint's fp32 weights (the server's own copy may be bf16), as the file is now."""
        from ..inference.web import web_graph_bytes

        with self.lock:
            if m.name not in self.graphs:
                import onnx

                try:
                    ckpt = load_checkpoint(Path(m.source))
                    data = web_graph_bytes(ckpt.build_generator().float().eval(), ckpt.generator, ckpt.meta)
                except (Pix2PixError, OSError) as e:  # the file went away or changed since the start
                    raise HTTPException(503, f"model {m.name!r} cannot be built for the browser: {e}") from None
                props = {p.key: p.value for p in onnx.load_from_string(data).metadata_props}
                self.graphs[m.name] = data, json.loads(props["web"])
            return self.graphs[m.name]


class CrossOriginIsolated:
    """COOP/COEP on every response: the page may then run onnxruntime-web's wasm with threads (everything it
    loads is this server's own)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message):
            if message["type"] == "http.response.start":
                message = message | {"headers": list(message.get("headers", [])) + ISOLATION}
            await send(message)

        return await self.app(scope, receive, with_headers)
