"""Static HTML pages: rows of images (input | output | target) with an optional introduction. Figures are
PNG files drawn by :mod:`pix2pix.plots` and embedded with ``<img>``."""

from __future__ import annotations

import html
from pathlib import Path

from .checkpoints import atomic_write

_STYLE = ("body{font-family:system-ui,sans-serif;margin:1.5em;background:#fafafa;color:#222}"
          "table{border-collapse:collapse}td{padding:4px;text-align:center;vertical-align:top}"
          "img{width:256px;image-rendering:pixelated;border:1px solid #ccc}h2{font-size:1em;margin:1em 0 .3em}"
          "table.kv td{text-align:left;padding:2px 12px 2px 0}img.plot{width:auto;border:0;margin:4px}")


def write_page(path: Path, title: str, rows: list[tuple[str, list[tuple[str, str]]]], intro: str = "") -> None:
    """``rows``: (heading, [(caption, image path relative to the page), ...]) in display order.
    ``intro``: HTML placed under the title (already escaped by the caller)."""
    parts = [f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title><style>{_STYLE}</style>",
             f"<h1>{html.escape(title)}</h1>", intro]
    for heading, images in rows:
        cells = "".join(f'<td><a href="{html.escape(src)}"><img src="{html.escape(src)}" loading=lazy></a>'
                        f"<br>{html.escape(caption)}</td>" for caption, src in images)
        parts.append(f"<h2>{html.escape(heading)}</h2><table><tr>{cells}</tr></table>")
    atomic_write(Path(path), lambda tmp: Path(tmp).write_text("\n".join(parts) + "\n"))
