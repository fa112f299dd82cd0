"""The procedural "facades-synth" dataset: random building facades and their CMP-style label maps.

``make_facades_synth(Path("datasets/facades-synth"))`` writes ``{train,val,test}/N.png`` laid out like the
paper's ``facades`` (the photo A on the left, the colour label map B on the right, so labels -> photo is
``--direction BtoA``) and ``{split}/labels/N.png``, the class index (0..11) of every pixel of the B half.

A pair is made in two steps. :func:`make_layout` draws the geometry: a facade of floors and window columns,
a ground floor of shops or doors, cornices, sills and mouldings as horizontal bands, balconies, blinds,
pillars and decorations, and sky, roofs, neighbouring walls, a street or the black wedges of a rectified
photo around it, all as a stack of axis-aligned rectangles like the CMP annotations. :func:`render_photo`
then draws the materials: plaster, brick or stone with random colours and texture phase, glass with
reflections, frames and muntins, shutters, railings, light direction and cast shadows, dirt, blur and sensor
noise. The same label map therefore comes out as many different photos, which is what makes the dataset
tell an L1-only model (blurry) from an L1+cGAN one.

Pair ``{split}/N.png`` is drawn from ``np.random.default_rng([seed, split_id, N])`` (split_id 0, 1, 2 for
train, val, test): pairs are independent of each other and of how many are made, and the same seed gives
byte-identical files.

This file is longer than the others because the renderer is one concept: the layout and the materials are
drawn together (a window's frame, glass and shutters follow from one rectangle), and splitting them would
pass a dozen parameters between files for no reader's gain.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..errors import Pix2PixError
from ..files import Lock
from ..data.labels import FACADES

CLASSES, PALETTE = FACADES.classes, FACADES.palette

SPLIT_IDS = {"train": 0, "val": 1, "test": 2}


# ------------------------------------------------------------------------------------------ layout

# Parts: what a rectangle is, finer than the classes (the renderer draws a sky and a neighbour differently,
# though both are "background"). PART_CLASS maps each part to its class index.
(SKY, NEIGHBOUR, NEIGHBOUR_WINDOW, ROOF, GROUND, WEDGE, WALL, WINDOW, DOOR, CORNICE, SILL, BALCONY, SHUTTER,
 ROLLER, DECO, MOLDING, PILLAR, SHOP) = range(18)
PART_CLASS = np.array([0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 7, 8, 9, 10, 11], np.uint8)
PROTRUDING = np.zeros(len(PART_CLASS), bool)  # parts that cast a shadow on the wall below them
PROTRUDING[[CORNICE, SILL, BALCONY, DECO, MOLDING, PILLAR]] = True
PART_CLASS.setflags(write=False)
PROTRUDING.setflags(write=False)


@dataclass(frozen=True)
class Layout:
    """The geometry of one facade: each pixel shows one of a stack of rectangles, as CMP annotations do."""

    rid: np.ndarray    # (H, W) int32: the index of the rectangle each pixel shows (later ones cover earlier)
    rects: np.ndarray  # (N, 5) int32: x0, y0, x1, y1 (exclusive), part
    wall: tuple[int, int, int, int]  # the facade's box x0, y0, x1, y1
    ground: int        # y of the top of the ground floor

    @property
    def classes(self) -> np.ndarray:
        """(H, W) uint8 class indices."""
        return PART_CLASS[self.rects[:, 4]][self.rid]


class _Canvas:
    """Paints rectangles of parts, later over earlier, and keeps the list of them."""

    def __init__(self, size: int):
        self.size = size
        self.rid = np.zeros((size, size), np.int32)
        self.rects = [(0, 0, size, size, SKY)]

    def rect(self, x0: float, y0: float, x1: float, y1: float, part: int) -> None:
        s = self.size
        x0, y0 = max(int(round(x0)), 0), max(int(round(y0)), 0)
        x1, y1 = min(int(round(x1)), s), min(int(round(y1)), s)
        if x1 > x0 and y1 > y0:
            self.rid[y0:y1, x0:x1] = len(self.rects)
            self.rects.append((x0, y0, x1, y1, part))

    def mask(self, mask: np.ndarray, part: int) -> None:
        if mask.any():
            self.rid[mask] = len(self.rects)
            self.rects.append((0, 0, self.size, self.size, part))


def make_layout(rng: np.random.Generator, size: int = 256) -> Layout:
    """Draw the geometry of a random facade at ``size`` x ``size`` pixels."""
    S, u, p = float(size), rng.uniform, rng.random
    cv = _Canvas(size)

    # Framing: the facade may run off any side or leave sky, neighbours or a street around it.
    top = 0.0 if p() < 0.3 else u(0.1, 1) ** 1.5 * 0.25 * S
    left = 0.0 if p() < 0.4 else u(0.02, 0.22) * S
    right = 0.0 if p() < 0.4 else u(0.02, 0.22) * S
    bottom = 0.0 if p() < 0.75 else u(0.02, 0.08) * S
    fx0, fy0, fx1, fy1 = left, top, S - right, S - bottom
    W, H = fx1 - fx0, fy1 - fy0

    # Window columns, at a pitch tied loosely to the floor pitch.
    pitch = u(0.1, 0.2) * S
    colpitch = float(np.clip(pitch * u(0.55, 1.2), 0.07 * S, 0.3 * S))
    margin = colpitch * u(0.15, 0.7)
    ncol = max(1, int(round((W - 2 * margin) / colpitch)))
    colpitch = (W - 2 * margin) / ncol
    cx = fx0 + margin + (np.arange(ncol) + 0.5) * colpitch
    ww = colpitch * u(0.35, 0.65)
    twin = ww > 0.05 * S and p() < 0.12

    _surroundings(cv, rng, (fx0, fy0, fx1, fy1), cx, ww)
    cv.rect(fx0, fy0, fx1, fy1, WALL)

    # Floors: a top band, the ground floor, and floors between them at a varying pitch.
    tb = u(0.025, 0.07) * S if p() < 0.85 else 0.0
    gh = max(H * u(0.14, 0.26), 0.06 * S)
    ground = fy1 - gh
    gband = u(0.012, 0.035) * S if p() < 0.7 else 0.0
    z0, z1 = fy0 + tb, ground - gband
    nf = max(1, int(round((z1 - z0) / pitch)))
    heights = 1 + 0.05 * rng.standard_normal(nf)
    if nf >= 3 and p() < 0.3:
        heights[0] *= u(0.6, 0.85)  # an attic
    if nf >= 2 and p() < 0.3:
        heights[-1] *= u(1.1, 1.3)  # a taller first floor (piano nobile)
    bounds = z0 + np.concatenate([[0], np.cumsum(heights)]) / heights.sum() * (z1 - z0)  # top to bottom

    # The building's style; floors and windows vary around it below.
    wfrac = u(0.45, 0.72)  # window height / floor height
    hood_p = rng.choice([0.0, 0.5, 1.0], p=[0.45, 0.15, 0.4])
    hood_deco, apron = p() < 0.25, p() < 0.15
    sill_p = 0.0 if p() < 0.35 else u(0.7, 1.0)
    sill_band = p() < 0.06
    balcony = rng.choice(["none", "window", "band"], p=[0.4, 0.4, 0.2])
    balcony_floor_p = u(0.3, 1.0)
    balcony_cols = rng.choice(["all", "middle", "random"], p=[0.5, 0.3, 0.2])
    blinds = rng.choice(["none", "shutter", "roller"], p=[0.65, 0.2, 0.15])
    band_p = rng.choice([0.0, 0.5, 1.0], p=[0.4, 0.2, 0.4])
    between_deco = p() < 0.15

    def window(x0: float, y0: float, x1: float, y1: float, has_balcony: bool) -> None:
        w, h = x1 - x0, y1 - y0
        cv.rect(x0, y0, x1, y1, WINDOW)
        if blinds == "shutter":
            if p() < 0.05:
                cv.rect(x0, y0, x1, y1, SHUTTER)  # closed
            else:
                sw = w * u(0.2, 0.4)
                cv.rect(x0 - sw, y0, x0, y1, SHUTTER)
                cv.rect(x1, y0, x1 + sw, y1, SHUTTER)
        elif blinds == "roller" and p() < 0.5:
            cv.rect(x0, y0, x1, y0 + h * u(0.1, 0.6) ** 1.5, ROLLER)
        if p() < hood_p:
            hh, ext, gap = u(0.012, 0.035) * S, w * u(0.03, 0.2), u(0, 0.008) * S
            cv.rect(x0 - ext, y0 - gap - hh, x1 + ext, y0 - gap, CORNICE)
            if hood_deco:
                dw, dh = w * u(0.3, 0.9), u(0.01, 0.03) * S
                cv.rect((x0 + x1 - dw) / 2, y0 - gap - hh - dh, (x0 + x1 + dw) / 2, y0 - gap - hh, DECO)
        if has_balcony:
            bh, ext = h * u(0.25, 0.45), w * u(0.1, 0.45)
            cv.rect(x0 - ext, y1 - bh, x1 + ext, y1 + u(0, 0.012) * S, BALCONY)
        elif p() < sill_p and not sill_band:
            sh, ext = u(0.008, 0.02) * S, w * u(0.03, 0.18)
            cv.rect(x0 - ext, y1, x1 + ext, y1 + sh, SILL)
            if apron:
                cv.rect(x0, y1 + sh, x1, y1 + sh + u(0.015, 0.04) * S, DECO)

    for f in range(nf):  # upper floors, top to bottom
        fy, fh = bounds[f], bounds[f + 1] - bounds[f]
        wh = fh * wfrac * (u(0.7, 0.9) if f == 0 and heights[0] < 0.9 else 1.0)
        wy1 = bounds[f + 1] - (fh - wh) * u(0.25, 0.45)
        wy0 = wy1 - wh
        floor_balcony = balcony != "none" and f > 0 and p() < balcony_floor_p
        cols = np.zeros(ncol, bool)
        if floor_balcony and balcony == "window":
            cols[:] = {"all": True, "middle": np.abs(np.arange(ncol) - (ncol - 1) / 2) < 0.6,
                       "random": rng.random(ncol) < 0.5}[balcony_cols]
        for j, c in enumerate(cx):
            if p() < 0.03:
                continue  # a blind wall where a window would be
            if twin:
                tw = ww * 0.42
                window(c - ww / 2, wy0, c - ww / 2 + tw, wy1, cols[j])
                window(c + ww / 2 - tw, wy0, c + ww / 2, wy1, cols[j])
            else:
                window(c - ww / 2, wy0, c + ww / 2, wy1, cols[j])
        if floor_balcony and balcony == "band":
            cv.rect(fx0 + margin * u(0, 0.8), wy1 - wh * u(0.25, 0.4), fx1 - margin * u(0, 0.8), wy1 + 0.01 * S,
                    BALCONY)
        if sill_band and not floor_balcony:
            cv.rect(fx0, wy1, fx1, wy1 + u(0.008, 0.02) * S, SILL)
        if between_deco and ncol > 1:
            ds = min(colpitch - ww, wh) * u(0.3, 0.6)
            for c in (cx[:-1] + cx[1:]) / 2:
                cv.rect(c - ds / 2, (wy0 + wy1 - ds) / 2, c + ds / 2, (wy0 + wy1 + ds) / 2, DECO)
        if f > 0 and p() < band_p:
            bt = u(0.006, 0.02) * S
            cv.rect(fx0, fy - bt / 2, fx1, fy + bt / 2, MOLDING)

    if ncol > 1 and p() < 0.27:  # pillars or pilasters over a floor or two, or between the shop fronts
        pw = min(u(0.012, 0.035) * S, (colpitch - ww) * 0.6)
        f0 = int(rng.integers(0, nf))
        py0, py1 = bounds[f0], bounds[min(nf, f0 + int(rng.integers(1, 3)))]
        if p() < 0.25:
            py0, py1 = ground, fy1
        xs = list((cx[:-1] + cx[1:]) / 2)[::1 if p() < 0.6 else 2]
        if p() < 0.5:
            xs += [fx0 + pw / 2 + 0.005 * S, fx1 - pw / 2 - 0.005 * S]  # at the corners
        for x in xs:
            cv.rect(x - pw / 2, py0, x + pw / 2, py1, PILLAR)

    # The ground floor: shop fronts, or a door among windows.
    gy1 = fy1 - u(0, 0.03) * S  # above a plinth
    if p() < 0.55:
        sh = gh * u(0.55, 0.85)
        j = 0
        while j < ncol:
            run = 1 if p() < 0.7 else 2
            x0 = cx[j] - min(colpitch * 0.45, ww * u(0.6, 0.9))
            x1 = cx[min(j + run, ncol) - 1] + min(colpitch * 0.45, ww * u(0.6, 0.9))
            part = DOOR if p() < 0.1 else SHOP
            cv.rect(x0, gy1 - sh, x1, gy1, part)
            if part == SHOP and p() < 0.15:  # a door inside the shop front
                dw = min(ww * u(0.6, 1.0), (x1 - x0) * 0.5)
                dx = u(x0, x1 - dw)
                cv.rect(dx, gy1 - sh * u(0.85, 1.0), dx + dw, gy1, DOOR)
            j += run
    else:
        door_col = ncol // 2 if p() < 0.6 else int(rng.integers(0, ncol))
        gwh = gh * u(0.35, 0.55)
        for j, c in enumerate(cx):
            if j == door_col and p() < 0.8:
                dw, dh = colpitch * u(0.4, 0.7), gh * u(0.6, 0.88)
                cv.rect(c - dw / 2, gy1 - dh, c + dw / 2, gy1, DOOR)
                if p() < 0.4:
                    cv.rect(c - dw * 0.65, gy1 - dh - u(0.012, 0.03) * S, c + dw * 0.65, gy1 - dh,
                            CORNICE if p() < 0.6 else DECO)
            elif p() < 0.9:
                wy1 = gy1 - (gh - gwh) * u(0.3, 0.5)
                window(c - ww / 2, wy1 - gwh, c + ww / 2, wy1, False)

    # The main bands last: they run across everything, as in the real annotations.
    if tb > 0:
        oh = u(0, 0.015) * S
        cv.rect(fx0 - oh, fy0, fx1 + oh, fy0 + tb, MOLDING)
        if p() < 0.35:  # brackets or ornaments along it
            n = int(rng.integers(3, 12))
            dw, dh = W / n * u(0.15, 0.5), tb * u(0.6, 1.6)
            for x in np.linspace(fx0 + dw, fx1 - dw, n):
                cv.rect(x - dw / 2, fy0 + tb * u(0.3, 0.5), x + dw / 2, fy0 + tb * 0.4 + dh, DECO)
    if gband > 0:
        cv.rect(fx0, ground - gband, fx1, ground, MOLDING)

    # The black wedges a rectified photo has at its edges, and the neighbours below, are background to the
    # labels like the sky is: a model cannot tell which of them a background pixel shows, and a model that
    # guesses wrong pays the full difference (black against sky). So they are kept rare: 0.2% and 2% of the
    # pixels (5% and 6% in an earlier version, whose trained models did no better than the mean photo on
    # background pixels), against 17% of sky.
    if p() < 0.05:  # the black (or grey, or white) wedges
        Y, X = _grid(size)
        wedge = np.zeros((size, size), bool)
        for side in range(4):  # left, right, top, bottom
            if p() < 0.5:
                a, b = u(0, 0.18, 2) * S * (rng.random(2) < 0.75)
                along, across = (Y, X) if side < 2 else (X, Y)
                line = a + (b - a) * along / S
                wedge |= across < line if side % 2 == 0 else across > S - 1 - line
        cv.mask(wedge, WEDGE)

    return Layout(cv.rid, np.array(cv.rects, np.int32), (int(fx0), int(fy0), int(fx1), int(fy1)), int(ground))


def _surroundings(cv: _Canvas, rng: np.random.Generator, box: tuple[float, float, float, float],
                  cx: np.ndarray, ww: float) -> None:
    """Neighbouring walls with their windows, a street, a roof with dormers: all background."""
    S, u, p = float(cv.size), rng.uniform, rng.random
    fx0, fy0, fx1, fy1 = box
    for x0, x1 in ((0.0, fx0), (fx1, S)):
        if x1 - x0 >= 1 and p() < 0.15:
            ny0 = max(0.0, fy0 + u(-0.25, 0.3) * S)
            cv.rect(x0, ny0, x1, S, NEIGHBOUR)
            npitch = u(0.06, 0.15) * S
            for y in np.arange(ny0 + npitch * u(0.3, 0.8), fy1 - npitch * 0.5, npitch):
                for x in np.arange(x0 + npitch * u(0.1, 0.5), x1, npitch * u(0.8, 1.3)):
                    cv.rect(x, y, x + npitch * 0.45, y + npitch * 0.6, NEIGHBOUR_WINDOW)
    if fy1 < S:
        cv.rect(0, fy1, S, S, GROUND)
    rh = min(fy0 * 0.9, u(0.05, 0.15) * S)
    if fy0 > 0.08 * S and int(fy0 - rh) < int(fy0) and p() < 0.35:  # a pitched roof: a trapezoid
        ys = np.arange(int(fy0 - rh), int(fy0))[:, None]
        xs = np.arange(cv.size)
        inset = (fy0 - ys) * u(0.5, 2.0)
        roof = np.zeros((cv.size, cv.size), bool)
        roof[ys[:, 0]] = (xs >= fx0 + inset) & (xs < fx1 - inset)
        cv.mask(roof, ROOF)
        if p() < 0.5:
            for c in cx[rng.random(len(cx)) < 0.5]:  # dormers
                cv.rect(c - ww * 0.3, fy0 - rh * 0.75, c + ww * 0.3, fy0 - rh * 0.2, WINDOW)


@lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """(Y, X) pixel coordinates as read-only float32 arrays."""
    Y, X = np.indices((size, size), np.float32)
    Y.setflags(write=False)
    X.setflags(write=False)
    return Y, X


# ------------------------------------------------------------------------------------------- photo

# Base colours (RGB in 0..1).
PLASTER = np.array([[0.87, 0.80, 0.62], [0.85, 0.68, 0.42], [0.86, 0.66, 0.60], [0.72, 0.78, 0.62],
                    [0.70, 0.70, 0.68], [0.91, 0.89, 0.85], [0.74, 0.46, 0.34], [0.66, 0.74, 0.80],
                    [0.80, 0.71, 0.58], [0.88, 0.76, 0.70], [0.62, 0.58, 0.52]], np.float32)
BRICK = np.array([[0.56, 0.26, 0.19], [0.47, 0.29, 0.21], [0.78, 0.66, 0.46], [0.42, 0.18, 0.15],
                  [0.62, 0.38, 0.28]], np.float32)
STONE = np.array([[0.62, 0.61, 0.58], [0.74, 0.67, 0.55], [0.48, 0.46, 0.42], [0.80, 0.77, 0.70]], np.float32)
FRAMES = np.array([[0.92, 0.92, 0.9], [0.35, 0.22, 0.13], [0.15, 0.25, 0.17], [0.5, 0.5, 0.5],
                   [0.08, 0.08, 0.08], [0.75, 0.7, 0.6]], np.float32)
SHUTTERS = np.array([[0.2, 0.35, 0.22], [0.4, 0.26, 0.15], [0.55, 0.55, 0.52], [0.85, 0.84, 0.8],
                     [0.3, 0.4, 0.5], [0.55, 0.2, 0.15]], np.float32)
DOORS = np.array([[0.33, 0.2, 0.11], [0.15, 0.22, 0.15], [0.12, 0.12, 0.13], [0.45, 0.3, 0.16],
                  [0.25, 0.12, 0.1]], np.float32)
TYPICAL_WALL, WALL_SPREAD = np.array([0.57, 0.50, 0.43], np.float32), 0.3
# Sub-materials: colours that replace a rectangle's own inside it (mortar, frames, ...); rows after the rects'.
MORTAR, FRAME, CURTAIN, RAIL, SIGN, LAMP, TREE = range(7)


def _pick(rng: np.random.Generator, table: np.ndarray, jitter: float = 0.04) -> np.ndarray:
    c = table[rng.integers(len(table))] + rng.normal(0, jitter, 3)
    return np.clip(c, 0.02, 1.0).astype(np.float32)


def _noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Smooth value noise in about 0..1 with ``cells`` features across, (size, size) float32."""
    grid = rng.random((cells + 1, cells + 1), dtype=np.float32)
    return np.asarray(Image.fromarray(grid, "F").resize((size, size), Image.BICUBIC))


class _Pixels:
    """Some pixels (flat indices), the rectangle each shows and their coordinates inside it."""

    def __init__(self, idx: np.ndarray, rid: np.ndarray, rects: np.ndarray, X: np.ndarray, Y: np.ndarray):
        self.idx = idx
        self.r = rid[idx]
        box = rects[self.r]
        self.x, self.y = X[idx], Y[idx]
        self.lx, self.ly = self.x - box[:, 0], self.y - box[:, 1]
        self.w, self.h = box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]

    def __len__(self) -> int:
        return len(self.idx)


def render_photo(layout: Layout, rng: np.random.Generator) -> np.ndarray:
    """Draw a photo (H, W, 3) uint8 of ``layout``; materials, light and camera are drawn from ``rng``."""
    return _Painter(layout, rng).paint()


class _Painter:
    """One photo while it is drawn. Each (flattened) pixel has a ``key``, the row of a colour table that holds
    each rectangle's own colour and then the sub-materials; a ``shade``, a brightness factor; and ``add``, how
    much reflected sky it shows. The photo is ``table[key] * shade + add * sky``, then blurred and noised.
    Pixel sizes are written for 256 x 256 and scaled by ``k``."""

    def __init__(self, layout: Layout, rng: np.random.Generator):
        self.layout, self.rng = layout, rng
        self.size = size = layout.rid.shape[0]
        self.S, self.k = float(size), size / 256
        self.rid = layout.rid.reshape(-1)
        self.rects = layout.rects.astype(np.float32)
        self.part_r = layout.rects[:, 4]
        self.n = len(self.rects)
        self.part = self.part_r[self.rid]
        self.Yg, self.Xg = _grid(size)
        self.order = np.argsort(self.part, kind="stable")  # pixels grouped by part
        self.starts = np.searchsorted(self.part[self.order], np.arange(len(PART_CLASS) + 1))
        self.wall_key = int(np.argmax(self.part_r == WALL))
        self._materials()
        self.key = self.rid.copy()
        self.shade = np.ones(size * size, np.float32)
        self.add = np.zeros(size * size, np.float32)
        self.mid = _noise(rng, size, int(rng.integers(12, 24))).reshape(-1)  # stains, reliefs, lit displays
        self.fine = rng.random(size * size, dtype=np.float32) - 0.5  # grain
        self.sun = rng.uniform(-1, 1)  # light from the left (-) or the right (+)
        self.fr = max(1.0, rng.uniform(0.8, 2.2) * self.k)  # frame width

    def pixels(self, *parts: int) -> _Pixels:
        idx = np.concatenate([self.order[self.starts[q]:self.starts[q + 1]] for q in parts])
        return _Pixels(idx, self.rid, self.rects, self.Xg.reshape(-1), self.Yg.reshape(-1))

    def paint(self) -> np.ndarray:
        self._wall()
        self._windows()
        self._doors_and_shops()
        self._trim()
        self._balconies()
        self._surroundings()
        self._light()
        self._occluders()
        return self._camera()

    def _materials(self) -> None:
        rng, u, p = self.rng, self.rng.uniform, self.rng.random
        self.kind = rng.choice(["plaster", "brick", "stone"], p=[0.6, 0.2, 0.2])
        wall = _pick(rng, {"plaster": PLASTER, "brick": BRICK, "stone": STONE}[self.kind]) * u(0.8, 1.05)
        # Pull the wall colour towards the typical one: across the real CMP photos the wall's colour varies
        # with a standard deviation of about 0.12 per channel (0..1 units); here a little less (about 0.09),
        # so that what the labels determine outweighs the tint they cannot.
        wall = TYPICAL_WALL + WALL_SPREAD * (wall - TYPICAL_WALL)
        r = p()
        self.trim = trim = (wall + (1 - wall) * u(0.3, 0.8) if r < 0.55 else
                            _pick(rng, PLASTER[[0, 5, 8]]) if r < 0.85 else wall * u(0.7, 0.85))
        self.overcast = p() < 0.35  # diffuse light: no cast shadows; the sky is then grey
        grey = self.overcast or p() < 0.3
        # Sky and neighbours vary less than walls do: the label map calls them all background, and colour
        # the labels cannot tell would only be guessed (the point of the dataset is texture, not tint).
        self.sky_top = np.full(3, u(0.76, 0.9)) if grey else np.array([0.55, 0.68, 0.86]) * u(0.92, 1.05)
        self.sky_low = np.clip(self.sky_top + u(0.05, 0.15), 0, 1)
        self.reflected = np.clip(self.sky_top * u(0.6, 1.0), 0, 1).astype(np.float32)
        glass = np.array([0.1, 0.12, 0.15]) * u(0.5, 1.5)

        sub = np.zeros((7, 3), np.float32)
        sub[MORTAR] = np.clip(wall * u(0.6, 1.4) + u(-0.05, 0.15), 0, 1)
        sub[FRAME] = _pick(rng, FRAMES, 0.03)
        sub[CURTAIN] = _pick(rng, PLASTER[[0, 5, 9]], 0.05) * u(0.6, 0.95)
        sub[RAIL] = _pick(rng, FRAMES[[1, 2, 4]], 0.02) * 0.6
        sub[SIGN] = rng.random(3) * 0.8 + 0.1
        sub[LAMP] = [1.0, 0.9, 0.7]
        sub[TREE] = np.array([0.16, 0.24, 0.1]) * u(0.6, 1.3)
        base = np.zeros((len(PART_CLASS), 3), np.float32)
        base[SKY] = self.sky_top
        base[NEIGHBOUR] = TYPICAL_WALL + WALL_SPREAD * (_pick(rng, PLASTER) * u(0.7, 1.0) - TYPICAL_WALL)
        base[NEIGHBOUR_WINDOW], base[ROOF] = glass * 1.3, _pick(rng, STONE[[0, 2]]) * u(0.4, 0.8)
        base[GROUND] = u(0.3, 0.5)
        base[WALL], base[WINDOW], base[DOOR] = wall, glass, _pick(rng, DOORS, 0.03)
        base[[CORNICE, SILL, DECO, MOLDING]] = trim
        base[PILLAR] = trim if p() < 0.6 else wall * u(0.85, 1.1)
        self.stone_balconies = p() < 0.5
        base[BALCONY] = trim if self.stone_balconies else sub[RAIL]
        base[SHUTTER], base[ROLLER] = _pick(rng, SHUTTERS), _pick(rng, PLASTER[[0, 4, 5]]) * u(0.8, 1.0)
        base[SHOP] = glass * u(0.5, 1.2)
        own = base[self.part_r] * rng.uniform(0.9, 1.1, (self.n, 1)).astype(np.float32)  # rect to rect
        own[self.part_r == WALL] = wall  # one wall, however many rectangles show it
        levels = np.linspace(0, 1, 16)[:, None]  # the sky's gradient, top to bottom
        sky = np.clip(self.sky_top * (1 - levels) + self.sky_low * levels, 0, 1).astype(np.float32)
        self.sky_key = self.n + len(sub)
        self.table = np.concatenate([own, sub, sky])

    def _wall(self) -> None:
        """Plaster with stains, or brick or stone courses at a random phase."""
        q, u, k = self.pixels(WALL), self.rng.uniform, self.k
        fy0 = self.layout.wall[1]
        if self.kind == "stone" or (self.kind == "brick" and self.S >= 96):  # bricks need some pixels
            brick = self.kind == "brick"
            bh = u(2.6, 4.2) * k if brick else u(5, 11) * k
            bw = bh * (u(2.2, 3.2) if brick else u(1.5, 3.0))
            yy = q.y - fy0 + u(0, bh)
            row = np.floor(yy / bh)
            xx = q.x + u(0, bw) + (row % 2) * bw * (0.5 if brick else u(0.3, 0.7))
            col = np.floor(xx / bw)
            tone = 1 + self.rng.normal(0, u(0.04, 0.12) if brick else u(0.03, 0.08), (32, 32)).astype(np.float32)
            s = tone[row.astype(np.int64) % 32, col.astype(np.int64) % 32]
            jw = 1.0 if brick else max(k, 0.8)
            joint = (yy - row * bh < jw) | (xx - col * bw < jw)
            if brick:
                self.key[q.idx[joint]] = self.n + MORTAR
            else:
                s = np.where(joint, s * u(0.6, 0.85), s + self.fine[q.idx] * 0.08)
            self.shade[q.idx] = s
        else:
            self.shade[q.idx] = (1 + (self.mid[q.idx] - 0.5) * u(0.04, 0.15) + self.fine[q.idx] * u(0.03, 0.08))
            if self.rng.random() < 0.4:  # a rusticated ground floor
                g = q.y - self.layout.ground
                self.shade[q.idx[(g > 0) & (g % (u(4, 9) * k) < max(k, 0.8))]] *= 0.7

    def _windows(self) -> None:
        """Frames, muntins, glass with a gradient and reflections, curtains, a recess shadow."""
        q, u, fr = self.pixels(WINDOW, NEIGHBOUR_WINDOW), self.rng.uniform, self.fr
        if not len(q):
            return
        key, shade, add, i = self.key, self.shade, self.add, q.idx
        rnd = self.rng.random((self.n, 4), dtype=np.float32)[q.r]  # per window: phase, reflection, curtains
        npx, npy = self.rng.choice([(1, 1), (2, 1), (2, 2), (2, 3), (3, 3), (1, 2)])
        bar = (np.fmod(q.lx, q.w / npx) < fr * 0.7) | (np.fmod(q.ly, q.h / npy) < fr * 0.7)
        if self.rng.random() < 0.5:
            bar |= np.abs(q.ly - q.h * u(0.2, 0.4)) < fr * 0.5  # a transom
        t = q.ly / q.h
        streak = np.fmod(q.lx * u(0.5, 2) + q.ly + rnd[:, 0] * 97, u(6, 20) * self.k) < u(2, 6) * self.k
        add[i] = (rnd[:, 1] ** 0.7 * u(0.15, 0.8) * (1.2 - t) + streak * u(0.05, 0.3) * rnd[:, 2]) * (rnd[:, 3] > 0.1)
        shade[i] = 1 + self.fine[i] * 0.1
        curtain = (rnd[:, 3] < u(0, 0.5)) & ((np.abs(q.lx / q.w - 0.5) > u(0.15, 0.35)) | (t < u(0, 0.3)))
        key[i[curtain]] = self.n + CURTAIN
        add[i[curtain]] *= 0.3
        edge = np.minimum(np.minimum(q.lx, q.ly), np.minimum(q.w - 1 - q.lx, q.h - 1 - q.ly))
        frame = ((edge < fr) | bar) & (self.part_r[q.r] == WINDOW)
        key[i[frame]] = self.n + FRAME
        add[i[frame]] = 0
        depth = u(1, 5) * self.k
        shade[i] *= np.where(q.ly < depth * (1.5 - 0.5 * self.overcast), 0.55, 1.0)
        side = (q.lx < depth * max(self.sun, 0)) | (q.w - q.lx < depth * max(-self.sun, 0))
        shade[i] *= np.where(side, 0.7, 1.0)

    def _doors_and_shops(self) -> None:
        """Doors of panelled wood with a fanlight; shop fronts of dark glass, lit displays, mullions, signs."""
        u, p, k, fr = self.rng.uniform, self.rng.random, self.k, self.fr
        key, shade, add, fine = self.key, self.shade, self.add, self.fine
        q = self.pixels(DOOR)
        if len(q):
            nx, ny = q.lx / q.w, q.ly / q.h
            groove = (np.abs(np.fmod(nx * 2, 1) - 0.5) > 0.38) | (np.fmod(ny * u(2, 4), 1) < 0.08)
            shade[q.idx] = np.where(groove, 0.7, 1.0) * (1 + fine[q.idx] * 0.1) * np.where(q.ly < 2 * fr, 0.5, 1)
            if p() < 0.4:
                lite = ny < u(0.15, 0.3)
                key[q.idx[lite]] = self.n + FRAME
                add[q.idx[lite]] = 0.1
        q = self.pixels(SHOP)
        if len(q):
            cell = u(5, 14) * k
            lit = self.rng.random((self.n, 64), dtype=np.float32)
            cells = (np.floor(q.lx / cell) + 7 * np.floor(q.ly / (cell * u(0.6, 1.5)))).astype(np.int64) % 64
            lamp = lit[q.r, cells] > u(0.75, 0.97)
            key[q.idx[lamp]] = self.n + LAMP
            glow = u(0.2, 0.6) * (0.6 + 0.4 * lit[q.r, (cells + 1) % 64])
            shade[q.idx] = np.where(lamp, glow + fine[q.idx] * 0.2, 1.0 + fine[q.idx] * 0.2)
            add[q.idx] = u(0.05, 0.35) * (1 - q.ly / q.h) * ~lamp
            mp = u(0.08, 0.3) * self.S
            mull = (np.fmod(q.lx, mp) < fr * 1.5) | (q.lx > q.w - fr * 1.5) | (q.ly < fr * 1.5)
            key[q.idx[mull]] = self.n + FRAME
            add[q.idx[mull]] = 0
            if p() < 0.5:
                sign = q.ly < q.h * u(0.1, 0.25)
                key[q.idx[sign]] = self.n + SIGN
                add[q.idx[sign]] = 0
                shade[q.idx[sign & (fine[q.idx] > 0.2) & (np.fmod(q.lx, 5 * k) < 3 * k)]] = 0.3  # lettering

    def _trim(self) -> None:
        """Slatted shutters and roller blinds; profiled cornices and mouldings, sills, ornaments, pillars."""
        u, p, k, fr = self.rng.uniform, self.rng.random, self.k, self.fr
        key, shade, fine = self.key, self.shade, self.fine
        q = self.pixels(SHUTTER, ROLLER)
        if len(q):
            slat = max(2.0, u(1.5, 3) * k)
            shade[q.idx] = (np.where(np.fmod(q.ly, slat) < slat / 2, 0.8, 1.0)
                            * np.where(np.minimum(q.lx, q.w - 1 - q.lx) < fr, 0.7, 1.0))
            shade[q.idx[(self.part_r[q.r] == ROLLER) & (q.h - q.ly <= 2 * fr)]] = 0.5  # the bottom bar
        profile = (0.75 + 0.4 * self.rng.random(8)).astype(np.float32)  # steps of the moulding, top to bottom
        q = self.pixels(CORNICE, MOLDING)
        if len(q):
            t = q.ly / q.h
            s = profile[np.minimum((t * 8).astype(np.int64), 7)] * (1 - 0.35 * t ** 3)
            if p() < 0.5:
                dp = u(3, 7) * k
                s = np.where((t > 0.55) & (t < 0.8) & (np.fmod(q.lx, dp) < dp / 2), s * 0.7, s)  # dentils
            shade[q.idx] = s + fine[q.idx] * 0.05
            if p() < 0.3:  # triangular pediments over the windows: the wall shows outside the triangle
                ped = (self.part_r[q.r] == CORNICE) & (q.h - q.ly < np.abs(q.lx / q.w - 0.5) * 2 * q.h)
                key[q.idx[ped]] = self.wall_key
        q = self.pixels(SILL)
        if len(q):
            shade[q.idx] = np.where(q.ly < q.h * 0.4, 1.15, 0.9) + fine[q.idx] * 0.05
        q = self.pixels(DECO)
        if len(q):
            rr = (q.lx / q.w - 0.5) ** 2 + (q.ly / q.h - 0.5) ** 2
            shade[q.idx] = (0.85 + 0.2 * np.cos(rr * u(20, 60)) + (self.mid[q.idx] - 0.5) * 0.4
                            + fine[q.idx] * 0.25)
        q = self.pixels(PILLAR)
        if len(q):
            s = 0.7 + 0.4 * np.cos((q.lx / q.w - 0.5 + 0.25 * self.sun) * np.pi)  # round, lit from one side
            if p() < 0.5:
                s *= 0.9 + 0.1 * np.cos(q.lx * (2 * np.pi / max(3 * k, 2)))  # fluted
            shade[q.idx] = s * np.where(q.ly < 0.04 * q.h, 1.15, 1.0)

    def _balconies(self) -> None:
        """Stone balustrades, or iron railings in front of a shadowed recess."""
        q = self.pixels(BALCONY)
        if not len(q):
            return
        bp = self.rng.uniform(2.5, 6) * self.k
        top = q.ly < np.maximum(self.fr, q.h * 0.12)
        slab = q.ly > q.h * 0.85
        if self.stone_balconies:
            self.shade[q.idx] = np.where(top, 1.1, np.where(slab, 0.8, 0.6 + 0.45 * np.abs(np.cos(q.lx * np.pi / bp))))
        else:
            bars = (np.fmod(q.lx, bp) < max(1.0, bp * 0.3)) | top
            self.key[q.idx] = np.where(slab, q.r, np.where(bars, self.n + RAIL, self.wall_key))
            self.shade[q.idx] = np.where(slab, 0.8, np.where(bars, 1.0, 0.45))

    def _surroundings(self) -> None:
        """A sky with clouds, neighbouring walls, roof tiles, the street."""
        u, k, S, shade, fine = self.rng.uniform, self.k, self.S, self.shade, self.fine
        q = self.pixels(SKY)
        if len(q):
            level = q.y / S * 15 + (self.mid[q.idx] - 0.5) * 6
            self.key[q.idx] = self.sky_key + np.clip(level, 0, 15).astype(np.int64)
        q = self.pixels(NEIGHBOUR)
        if len(q):
            shade[q.idx] = 0.85 + (self.mid[q.idx] - 0.5) * 0.2 + fine[q.idx] * 0.05
        q = self.pixels(ROOF)
        if len(q):
            shade[q.idx] = np.where(np.fmod(q.y, u(2, 4) * k) < k, 0.7, 1.0) + fine[q.idx] * 0.1
        q = self.pixels(GROUND)
        if len(q):
            shade[q.idx] = 0.8 + fine[q.idx] * 0.3 + (q.y / S - 0.9)

    def _light(self) -> None:
        """Shadows cast down by protruding parts along the light, a building's shadow, light falloff, dirt."""
        u, p, size, S = self.rng.uniform, self.rng.random, self.size, self.S
        shade, Xg, Yg = self.shade.reshape(size, size), self.Xg, self.Yg
        if not self.overcast:
            prot = PROTRUDING[self.part_r][self.layout.rid]
            length = int(round(u(1, 7) * self.k))
            shadow = np.zeros((size, size), np.float32)
            for d in range(1, length + 1):
                dx = int(round(d * self.sun * 0.7))
                moved = np.zeros((size, size), bool)
                moved[d:, max(dx, 0):size - max(-dx, 0)] = prot[:size - d, max(-dx, 0):size - max(dx, 0)]
                np.maximum(shadow, moved * (1 - (d - 1) / (length + 1)), out=shadow)
            shadow[prot] = 0
            shade *= 1 - u(0.25, 0.55) * shadow
            if p() < 0.25:  # the shadow of a building across the street
                a = u(-1, 1)
                shade *= np.where(Yg + a * Xg > S * u(0.3, 1.2) + a * S * 0.5, u(0.5, 0.75), 1.0)
        light = 1 + u(-0.25, 0.25) * (Xg / S - 0.5) + u(-0.15, 0.2) * (Yg / S - 0.5)
        dirt = _noise(self.rng, size, int(self.rng.integers(3, 8)))
        streaks = np.convolve(self.rng.random(size, dtype=np.float32), np.ones(3, np.float32) / 3, "same")
        shade *= light * (1 - u(0, 0.2) * dirt - u(0, 0.15) * streaks[None, :] * (Yg / S))

    def _occluders(self) -> None:
        """What the labels do not show: a tree, cars in front of the ground floor."""
        u, p, size, S = self.rng.uniform, self.rng.random, self.size, self.S
        key, shade, add = (a.reshape(size, size) for a in (self.key, self.shade, self.add))
        if p() < 0.2:
            R = u(0.08, 0.2) * S
            tx, ty = u(0, S), S - R * u(0.8, 2.2)
            ys, xs = slice(max(int(ty - R * 1.3), 0), size), slice(max(int(tx - R * 1.3), 0), int(tx + R * 1.3) + 1)
            leaves = _noise(self.rng, size, int(self.rng.integers(24, 40)))[ys, xs]
            d = np.hypot(self.Xg[ys, xs] - tx, (self.Yg[ys, xs] - ty) * u(0.8, 1.2)) / R + (leaves - 0.5) * 0.9
            trunk = (np.abs(self.Xg[ys, xs] - tx) < R * 0.08) & (self.Yg[ys, xs] > ty) & (d >= 1)
            tree = (d < 1) | trunk
            key[ys, xs][tree] = self.n + TREE
            grain = self.fine.reshape(size, size)[ys, xs]
            shade[ys, xs][tree] = np.where(trunk, 0.5, 0.45 + 0.9 * leaves + grain * 0.6)[tree]
            add[ys, xs][tree] = 0
        if p() < 0.3:
            for _ in range(int(self.rng.integers(1, 4))):
                cw, ch = u(0.14, 0.22) * S, u(0.06, 0.09) * S
                x0, y0 = int(u(-0.1, 0.95) * S), int(S - ch - u(0, 0.02) * S)
                ys, xs = slice(y0, min(int(y0 + ch), size)), slice(max(x0, 0), max(int(x0 + cw), 0))
                lx, ly = (self.Xg[ys, xs] - x0) / cw, (self.Yg[ys, xs] - y0) / ch
                cabin = (ly < 0.45) & (np.abs(lx - 0.5) < 0.3 - 0.25 * (0.45 - ly))
                body = (ly >= 0.45) & (np.abs(lx - 0.5) < 0.5 - 0.1 * (ly - 0.45) ** 2)
                wheel = (ly > 0.75) & ((np.abs(lx - 0.22) < 0.08) | (np.abs(lx - 0.78) < 0.08))
                self.table = np.concatenate([self.table, (self.rng.random((1, 3)) * 0.8 + 0.05).astype(np.float32)])
                key[ys, xs][body] = len(self.table) - 1
                key[ys, xs][cabin | wheel] = self.n + RAIL
                shade[ys, xs][body | cabin] = (1.1 - 0.4 * ly + 0.3 * (np.abs(ly - 0.5) < 0.04))[body | cabin]
                add[ys, xs][body] = 0.05
                add[ys, xs][cabin] = u(0.1, 0.4)
                add[ys, xs][wheel] = 0

    def _camera(self) -> np.ndarray:
        """Colour balance and exposure, a little blur, sensor noise, a tone curve; the wedges stay flat."""
        u, size = self.rng.uniform, self.size
        table = self.table * (self.rng.uniform(0.95, 1.05, 3) * u(0.9, 1.1)).astype(np.float32)
        img = (table[self.key] * self.shade[:, None] + self.add[:, None] * self.reflected).reshape(size, size, 3)
        if self.rng.random() < 0.6:
            img[1:] = (img[1:] + img[:-1]) * 0.5
            img[:, 1:] = (img[:, 1:] + img[:, :-1]) * 0.5
        img += (self.rng.random((size, size, 1), dtype=np.float32) - 0.5) * u(0.02, 0.08)
        lut = np.clip(255 * (np.arange(256, dtype=np.float32) / 255) ** u(0.9, 1.1) + 0.5, 0, 255).astype(np.uint8)
        photo = lut[np.clip(img * 255, 0, 255).astype(np.uint8)]
        wedge = self.part.reshape(size, size) == WEDGE
        photo[wedge] = 0  # rectification leaves black corners, as in the CMP photos
        return photo


def render_pair(rng: np.random.Generator, size: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One random pair: (photo (H, W, 3) uint8, label colour map (H, W, 3) uint8, class indices (H, W) uint8)."""
    layout = make_layout(rng, size)
    photo = render_photo(layout, rng)
    classes = layout.classes
    return photo, PALETTE[classes], classes


# ------------------------------------------------------------------------------------------ on disk


def make_facades_synth(out: Path, train: int = 400, val: int = 100, test: int = 100, size: int = 256,
                       seed: int = 0, progress: bool = True) -> Path:
    """Write the dataset to ``out/{train,val,test}/N.png`` (photo | labels) and ``.../labels/N.png``.

    The files are written into a hidden sibling folder that is renamed to ``out`` only when complete, so a
    folder named ``out`` is always a whole dataset. An existing ``out`` (other than an empty folder) is an
    error: remove it first. A split of 0 pairs gets no folder.
    """
    out = Path(out)
    counts = {"train": train, "val": val, "test": test}
    for name, value in [*counts.items(), ("size", size), ("seed", seed)]:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise Pix2PixError(f"facades-synth: {name} must be a whole number, not {value!r}")
    if size < 32 or size % 4:
        raise Pix2PixError(f"facades-synth: size must be a multiple of 4 and at least 32, not {size}")
    if train < 1:
        raise Pix2PixError(f"facades-synth: train must be at least 1 pair, not {train}")
    if val < 0 or test < 0:
        raise Pix2PixError(f"facades-synth: val and test must be 0 or more pairs, not {val} and {test}")
    if seed < 0:
        raise Pix2PixError(f"facades-synth: seed must be 0 or more, not {seed}")
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        raise Pix2PixError(f"{out} already exists; remove it or choose another output folder")

    partial = out.parent / f".{out.name}.partial"
    out.parent.mkdir(parents=True, exist_ok=True)
    lock = Lock(out.parent / f".{out.name}.lock", "is making this dataset; wait for it to end, or choose another "
                "output folder")
    lock.acquire()  # two makers of one folder: the second is one line, and the first's files stay its own
    try:
        _make_into(out, partial, counts, seed, size, progress)
    finally:
        lock.release()  # the lock file stays: removing it would let a third maker lock a new one beside a second
    return out


def _make_into(out: Path, partial: Path, counts: dict, seed: int, size: int, progress: bool) -> None:
    shutil.rmtree(partial, ignore_errors=True)  # left by an interrupted run (no other maker holds the lock)
    try:
        with tqdm(total=sum(counts.values()), unit="pair", desc="facades-synth", disable=not progress) as bar:
            partial.mkdir(parents=True)
            for split, count in counts.items():
                if count:  # no empty split folders: a loader would take them for a broken split
                    (partial / split / "labels").mkdir(parents=True)
                for i in range(1, count + 1):
                    photo, colours, classes = render_pair(np.random.default_rng([seed, SPLIT_IDS[split], i]), size)
                    Image.fromarray(np.concatenate([photo, colours], 1)).save(
                        partial / split / f"{i}.png", compress_level=1)
                    Image.fromarray(classes, "L").save(partial / split / "labels" / f"{i}.png", compress_level=1)
                    bar.update()
        if out.is_dir():
            out.rmdir()  # empty, as checked above
        partial.rename(out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
