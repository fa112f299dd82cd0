"""Static HTML pages: image triplets (input | output | target) and simple SVG line plots."""

from __future__ import annotations

import html
from pathlib import Path

from .checkpoints import atomic_write

_STYLE = ("body{font-family:system-ui,sans-serif;margin:1.5em;background:#fafafa;color:#222}"
          "table{border-collapse:collapse}td{padding:4px;text-align:center;vertical-align:top}"
          "img{width:256px;image-rendering:pixelated;border:1px solid #ccc}h2{font-size:1em;margin:1em 0 .3em}"
          "table.kv td{text-align:left;padding:2px 12px 2px 0}svg{background:#fff;border:1px solid #ccc;margin:4px}")
_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd")


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


def svg_plot(series: dict[str, list[tuple[float, float]]], title: str, xlabel: str = "step",
             width: int = 420, height: int = 240) -> str:
    """A line plot of named (x, y) series as an inline SVG element."""
    points = [p for s in series.values() for p in s]
    if not points:
        return ""
    left, right, top, bottom = 48, 10, 22, 30
    x0, x1 = min(p[0] for p in points), max(p[0] for p in points)
    y0, y1 = min(0.0, min(p[1] for p in points)), max(p[1] for p in points)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)
    sx = lambda x: left + (x - x0) / (x1 - x0) * (width - left - right)  # noqa: E731
    sy = lambda y: height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom)  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-size="11">',
           f'<text x="{left}" y="14" font-weight="bold">{html.escape(title)}</text>',
           f'<line x1="{left}" y1="{sy(y0)}" x2="{width - right}" y2="{sy(y0)}" stroke="#888"/>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="#888"/>',
           f'<text x="{left - 4}" y="{sy(y1) + 4}" text-anchor="end">{y1:.3g}</text>',
           f'<text x="{left - 4}" y="{sy(y0) + 4}" text-anchor="end">{y0:.3g}</text>',
           f'<text x="{left}" y="{height - 12}">{x0:.0f}</text>',
           f'<text x="{width - right}" y="{height - 12}" text-anchor="end">{x1:.0f} {html.escape(xlabel)}</text>']
    for i, (name, pts) in enumerate(series.items()):
        colour = _COLOURS[i % len(_COLOURS)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{path}"/>')
        out.append(f'<text x="{width - right - 4}" y="{top + 12 * (i + 1)}" text-anchor="end" fill="{colour}">'
                   f"{html.escape(name)}</text>")
    out.append("</svg>")
    return "".join(out)
