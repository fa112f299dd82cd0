"""The pages and figures the project writes: static HTML pages of image rows (input | output | target) with
an introduction, and figures drawn with matplotlib (Agg, no display) into PNG files that the pages and Markdown
reports embed, so they are viewable offline.

* :func:`write_page`: rows of images under headings;
* :func:`line_plot`, :func:`line_panels`: named (x, y) series in one frame or several side by side (a run's
  loss and validation curves);
* :func:`image_grid`: rows of images under one column of labels (the ablation's samples);
* :func:`score_bars`: grouped bars with a dashed reference line per group (the ablation's FCN-scores).
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from .files import atomic_write

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


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path, dpi: int = 100) -> Path:
    plt = _pyplot()
    fig.tight_layout()
    atomic_write(Path(path), lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"))
    plt.close(fig)
    return Path(path)


def line_plot(path: Path, series: dict[str, list[tuple[float, float]]], title: str, xlabel: str = "step",
              size: tuple[float, float] = (4.6, 2.8)) -> Path | None:
    """Named (x, y) series as lines in one frame; nothing (None) when no series has a point."""
    return line_panels(path, [(title, series)], xlabel, size)


def line_panels(path: Path, panels: list[tuple[str, dict[str, list[tuple[float, float]]]]], xlabel: str = "step",
                size: tuple[float, float] = (4.6, 2.8)) -> Path | None:
    """Side by side, one frame per (title, named (x, y) series) with a point; nothing (None) when none has one."""
    panels = [(title, series) for title, series in panels if any(series.values())]
    if not panels:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(size[0] * len(panels), size[1]), squeeze=False)
    for ax, (title, series) in zip(axes[0], panels):
        for name, points in series.items():
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, label=name, linewidth=1.2, marker="." if len(xs) < 20 else None)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(xlabel, fontsize=9)
        ax.tick_params(labelsize=8)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    return _save(fig, path)


def image_grid(path: Path, rows: list[tuple[str, list[np.ndarray]]], cell: float = 1.6) -> Path:
    """``rows``: (label, images of one row); every row has as many images (H, W[, C] uint8)."""
    plt = _pyplot()
    columns = max(len(images) for _, images in rows)
    fig, axes = plt.subplots(len(rows), columns, figsize=(cell * columns, cell * len(rows)), squeeze=False)
    for r, (label, images) in enumerate(rows):
        for c, image in enumerate(images):
            ax = axes[r][c]
            ax.imshow(image, cmap="gray" if image.ndim == 2 else None)
            ax.set_xticks([]), ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
    return _save(fig, path)


def score_bars(path: Path, labels: list[str], groups: dict[str, list[float]], references: dict[str, float],
               title: str, xlabel: str) -> Path:
    """One cluster of bars per label, one bar per group (e.g. per-pixel accuracy), and a dashed line at each
    group's reference value (e.g. the real photos' score) in the group's colour."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(labels)), 3.5))
    x, width = np.arange(len(labels)), 0.8 / max(1, len(groups))
    for j, (name, values) in enumerate(groups.items()):
        bars = ax.bar(x + (j - (len(groups) - 1) / 2) * width, values, width, label=name)
        if name in references:
            ax.axhline(references[name], color=bars.patches[0].get_facecolor(), linestyle="--", linewidth=1)
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.legend(fontsize=8)
    return _save(fig, path)
