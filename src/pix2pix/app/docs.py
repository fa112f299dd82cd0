"""The API docs page, ``/docs`` (Swagger UI), served by the server alone.

FastAPI's own page loads Swagger UI's script and style from a CDN, so on a machine without a network it is blank.
Here the same files (Swagger UI 5, what FastAPI's page loads) come from the ``fastapi-offline`` package, mounted as
static files at ``/docs/assets``, by FastAPI's recipe for self-hosted docs assets
(https://fastapi.tiangolo.com/how-to/custom-docs-ui-assets/). ReDoc, FastAPI's second docs page, is not served.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.staticfiles import StaticFiles

DOCS = "/docs"
ASSETS = "/docs/assets"


def add_docs(app: FastAPI) -> None:
    """Serve ``/docs`` and its assets from ``app`` itself; ``app`` is made with ``docs_url=None, redoc_url=None``."""
    app.mount(ASSETS, StaticFiles(packages=[("fastapi_offline", "static")]), name="docs-assets")

    @app.get(DOCS, include_in_schema=False)
    async def docs(request: Request):
        root = request.scope.get("root_path", "")  # behind a proxy that serves the app under a prefix
        return get_swagger_ui_html(openapi_url=root + app.openapi_url, title=f"{app.title} - API docs",
                                   swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{root}{ASSETS}/favicon.png")
