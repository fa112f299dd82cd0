"""Tiled translation of images of any size: ``pix2pix translate --tile N [--overlap P]``.

The input is read by window (an ``.npy`` or uncompressed TIFF, a band of rows at a time through a memory map of
that band; an image file is decoded once), translated tile by tile, and the tiles are blended where they overlap
with a window that trusts each tile away from its own edges (:func:`ramp`). Only one strip of tiles is held in
memory: rows that no later tile touches are encoded and written out (into the ``.npy`` or TIFF band by band, or
into the output image) as soon as the strip moves on, so memory grows with the image's width, not its area
(except for an output image file, which is held whole until it is written).

MONAI's ``sliding_window_inference`` does this blending too, but it takes the whole input as one tensor and
keeps a whole-image output and weight map, so the memory it needs grows with the area: what it is for, 3-D
medical volumes that fit, is not a scene of 12,000 pixels a side. The blend here is the same idea in strips.

In eval mode the result is seamless. In the paper's test mode each tile is normalised by its own statistics
(and draws its own dropout noise), which can show as seams; ``translate`` says so when it tiles in that mode,
and for an instance-norm generator (pix2pixHD's), which normalises each tile by its own statistics in both.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..data.rasters import (ARRAY_EXTS, MAX_IMAGE_PIXELS, MODES, SUFFIX, TIFF_EXTS, as_array, checked_array, encode,
                            fit_channels, pil_raster, read_raster, to_tensor, write_raster)
from ..errors import Pix2PixError
from ..files import atomic_write

log = logging.getLogger(__name__)

MAX_TILED_PIXELS = 10**10  # 100,000 pixels a side: what a memory-mapped input may hold
AUTO_TILE_PIXELS = 4096 * 4096  # translate tiles a larger file by itself, in tiles of AUTO_TILE
AUTO_TILE = 512


def pixels_of(path: Path) -> int | None:
    """A file's width x height from its header (nothing decoded), or None where that is not known cheaply."""
    path = Path(path)
    try:
        mapped = _mapped(path)
        if mapped is not None:
            return mapped[2][0] * mapped[2][1]
        if path.suffix.lower() in TIFF_EXTS:  # compressed, or in pieces: its size from the series
            import tifffile

            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                return series.shape[series.axes.index("Y")] * series.shape[series.axes.index("X")]
        if path.suffix.lower() not in ARRAY_EXTS:
            from PIL import Image

            limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # only the header is read
            try:
                with Image.open(path) as im:
                    return im.size[0] * im.size[1]
            finally:
                Image.MAX_IMAGE_PIXELS = limit
    except Exception:  # an unreadable file: said where it is read
        return None
    return None


def origins(length: int, tile: int, overlap: int) -> list[int]:
    """Where the tiles of one axis start: every ``tile - overlap`` pixels, the last one flush with the end."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    return list(range(0, length - tile, stride)) + [length - tile]


EDGE = 1e-3  # the weight of a tile's own edge: above 0, so a pixel that one tile alone covers keeps its value


def ramp(n: int, overlap: int) -> np.ndarray:
    """One axis of the blending window: 1 inside; over the ``overlap`` pixels at each end, nearly 0 on the outer
    quarter (a tile's own edge, where it lacks the context the whole image has), a raised cosine over the middle
    half and 1 on the inner quarter, so where two tiles overlap their weights add up to 1: the neighbour is
    trusted where this tile is not, and the middle hands over smoothly."""
    w = np.ones(n, np.float32)
    k = min(overlap, n // 2)
    if k:
        q = k // 4  # the outer quarter: the tile's own edge, where it lacks context, weighs ~nothing
        rise = np.full(k, EDGE, np.float32)
        t = (np.arange(k - 2 * q) + 0.5) / (k - 2 * q)
        rise[q:k - q] = np.maximum(0.5 - 0.5 * np.cos(np.pi * t), EDGE)  # the middle half hands over
        rise[k - q:] = 1
        w[:k], w[n - k:] = rise, rise[::-1]
    return w


def check_tiling(tile: int, overlap: int) -> None:
    if tile < 16:
        raise Pix2PixError(f"--tile {tile}: a tile is at least 16 pixels a side")
    if overlap < 0 or overlap * 2 > tile:
        raise Pix2PixError(f"--overlap {overlap}: from 0 up to half the tile ({tile // 2})")


def blend_tiles(translate, source, out, tile: int, overlap: int, encode_rows, progress: bool = True,
                batch: int = 1) -> None:
    """Translate ``source`` ((H, W, C) indexable by window) tile by tile with ``translate`` (a list of equal
    (h, w, C) windows -> their (B, C_out, h, w) outputs in [-1, 1]; up to ``batch`` windows of one row of tiles
    at a time) and write the blend into ``out`` (H, W, C_out) by rows, each row strip through ``encode_rows``
    ((C_out, h, W) tensor -> what ``out`` holds)."""
    H, W = source.shape[:2]
    th, tw = min(tile, H), min(tile, W)
    ys, xs = origins(H, th, overlap), origins(W, tw, overlap)
    window = ramp(th, overlap)[:, None] * ramp(tw, overlap)[None, :]
    acc, wsum = None, np.zeros((th, W), np.float32)  # acc: (C_out, th, W) once the first tile says C_out
    base = 0

    def flush(stop: int) -> None:  # rows [base, stop) are final: no later tile reaches them
        rows = slice(0, stop - base)
        blended = acc[:, rows] / wsum[rows]
        out[base:stop] = encode_rows(torch.from_numpy(blended))

    with tqdm(total=len(ys) * len(xs), unit="tile", disable=not progress, desc="tiles") as bar:
        for y0 in ys:
            if y0 > base:
                flush(y0)
                shift = y0 - base  # the rows still open move up, in the same buffers: memory stays flat
                acc[:, :th - shift] = acc[:, shift:].copy()
                acc[:, th - shift:] = 0
                wsum[:th - shift] = wsum[shift:].copy()
                wsum[th - shift:] = 0
                base = y0
            for k in range(0, len(xs), batch):
                row = xs[k:k + batch]
                us = translate([np.asarray(source[y0:y0 + th, x0:x0 + tw]) for x0 in row]).float().cpu().numpy()
                if acc is None:
                    acc = np.zeros((us.shape[1], th, W), np.float32)
                for x0, u in zip(row, us):
                    acc[:, :, x0:x0 + tw] += u * window
                    wsum[:, x0:x0 + tw] += window
                bar.update(len(row))
        flush(H)


# ------------------------------------------------------------------------------------ sources and sinks


class Rows:
    """An (H, W, C) array stored row after row in a file from ``offset`` on (an ``.npy``'s data, an uncompressed
    TIFF's), read or written a band of rows at a time through a memory map of that band alone: what is mapped
    is unmapped when the next band is, so the process's memory holds one band, not the file."""

    def __init__(self, path: Path, offset: int, dtype, shape: tuple[int, int, int], mode: str = "r"):
        self.path, self.offset, self.dtype, self.shape, self.mode = path, offset, np.dtype(dtype), shape, mode
        self.band, self.rows = None, (0, 0)

    def _map(self, y0: int, y1: int) -> np.ndarray:
        if not (self.rows[0] <= y0 and y1 <= self.rows[1]):
            self.close()
            W, C = self.shape[1:]
            self.band = np.memmap(self.path, self.dtype, self.mode, self.offset + y0 * W * C * self.dtype.itemsize,
                                  (y1 - y0, W, C))
            self.rows = (y0, y1)
        return self.band[y0 - self.rows[0]:y1 - self.rows[0]]

    def __getitem__(self, key):
        rows, cols = key
        return np.array(self._map(rows.start, rows.stop)[:, cols])

    def __setitem__(self, rows: slice, value: np.ndarray) -> None:
        self._map(rows.start, rows.stop)[:] = value

    def close(self) -> None:
        if self.band is not None:
            if self.mode != "r":
                self.band.flush()
            self.band, self.rows = None, (0, 0)


def _mapped(path: Path):
    """(offset, dtype, (H, W, C)) of an ``.npy`` or a TIFF whose one image is stored uncompressed in one run of
    bytes, else None."""
    if path.suffix.lower() in ARRAY_EXTS:
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise Pix2PixError(f"{path}: not a readable .npy array ({str(e).splitlines()[0] or 'empty'})") from None
    elif path.suffix.lower() in TIFF_EXTS:
        import tifffile

        try:
            with tifffile.TiffFile(path) as tif:  # bands of one image, not planes, pages or a colour model
                page, axes = tif.pages[0], tif.series[0].axes
                plain = axes in ("YX", "YXS") and page.photometric in (tifffile.PHOTOMETRIC.MINISBLACK,
                                                                        tifffile.PHOTOMETRIC.RGB)
            arr = tifffile.memmap(path, mode="r") if plain else None
        except (ValueError, OSError, tifffile.TiffFileError):
            return None  # compressed, or in pieces: decoded once instead
    else:
        return None
    if not (isinstance(arr, np.memmap) and arr.ndim in (2, 3) and arr.dtype.kind in "uif" and
            arr.flags.c_contiguous and arr.dtype.byteorder != ">"):
        return None
    shape = arr.shape if arr.ndim == 3 else (*arr.shape, 1)
    return arr.offset, arr.dtype, shape


def open_source(path: Path, channels: int, eight_bit: bool, label_nc: int = 0):
    """The input as an (H, W, C) array read by window where the file allows (:class:`Rows`: an ``.npy``, an
    uncompressed TIFF), any other file decoded once (a class map's indices checked: ``label_nc``)."""
    path = Path(path)
    mapped = _mapped(path)
    if mapped is not None and eight_bit and mapped[1] != np.uint8:
        mapped = None  # 16-bit or float data to an 8-bit model: brought to 8 bits as a whole (read_raster)
    if mapped is not None:
        offset, dtype, shape = mapped
        if shape[0] * shape[1] > MAX_TILED_PIXELS:
            raise Pix2PixError(f"{path}: {shape[1]}x{shape[0]} is over {MAX_TILED_PIXELS:.0e} pixels")
        if shape[2] != channels:
            raise Pix2PixError(f"{path}: {shape[2]} channel(s), and the generator takes {channels}")
        return Rows(path, offset, dtype, shape)
    if path.suffix.lower() in ARRAY_EXTS | TIFF_EXTS or (pixels_of(path) or 0) <= MAX_IMAGE_PIXELS:
        return as_array(read_raster(path, channels, "the generator's input channels", eight_bit, label_nc))
    from PIL import Image, UnidentifiedImageError

    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # a large image is what tiling is for
    try:  # one decoded copy at a time: the image, then its array
        with Image.open(path) as im:
            im.load()
            side = pil_raster(im)
            side = checked_array(side, path) if isinstance(side, np.ndarray) else side  # 16-bit: (H, W, 1)
            if label_nc or not (isinstance(side, Image.Image) and side.mode == MODES.get(channels)):
                side = fit_channels(side, channels, path, "the generator's input channels", eight_bit, label_nc)
            return as_array(side)
    except FileNotFoundError:
        raise Pix2PixError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise Pix2PixError(f"{path}: not a readable image ({e})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def write_tiled(translator, path: Path, out_dir: Path, tile: int, overlap: int, seed: int | None,
                fmt: str, progress: bool = True) -> Path:
    """Translate the file ``path`` tile by tile into ``out_dir/STEM.EXT`` (see the module doc): an ``.npy`` or
    TIFF is written band by band into the file (:class:`Rows`), an image file whole at the end."""
    check_tiling(tile, overlap)
    if translator.config.norm == "instance" and not getattr(translator, "said_tiles", False):
        log.info("an instance-norm generator (pix2pixHD's) normalises each tile by its own statistics in either "
                 "mode, which can show as seams; larger tiles keep them fainter")
        translator.said_tiles = True
    if not translator.eval and not getattr(translator, "said_tiles", False):
        log.info("tiles in the paper's test mode are each normalised by their own statistics and draw their own "
                 "noise, which can show as seams; --eval is seamless")
        translator.said_tiles = True
    scale_in, scale_out = translator.scales.input, translator.scales.output
    source = open_source(path, translator.config.in_channels, scale_in.kind == "uint8", translator.config.label_nc)
    H, W = source.shape[:2]
    c_out = translator.config.out_channels
    target = Path(out_dir) / f"{Path(path).stem}{SUFFIX[fmt]}"
    count = iter(range(10**12))

    def translate(windows: list[np.ndarray]) -> torch.Tensor:  # with a seed, each tile its own: seed + its number
        x = torch.stack([to_tensor(checked(w), scale_in) for w in windows])
        return translator.translate_tensor(x, None if seed is None else seed + next(count))

    def checked(window: np.ndarray) -> np.ndarray:
        window = checked_array(window, path)
        scale_in.check(window, path)
        return window

    # A batch of tiles at a time, each normalised by its own statistics in the paper's mode; with a seed, one.
    batch = 1 if seed is not None and not translator.eval else translator.batch_for(min(tile, H), min(tile, W))
    if batch > 1 and not translator.eval:
        translator.normalise_per_image()

    encode_rows = lambda u: encode(u, scale_out, fmt)  # noqa: E731
    dtype = encode(torch.zeros(c_out, 1, 1), scale_out, fmt).dtype
    try:
        if fmt in ("npy", "tiff"):
            def write(tmp: str) -> None:
                if fmt == "npy":
                    made = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=(H, W, c_out))
                else:
                    import tifffile

                    photometric = "rgb" if c_out in (3, 4) and dtype in (np.uint8, np.uint16) else "minisblack"
                    contig = {} if c_out == 1 else {"planarconfig": "contig"}
                    made = tifffile.memmap(tmp, shape=(H, W) if c_out == 1 else (H, W, c_out), dtype=dtype,
                                           photometric=photometric, **contig)
                offset = made.offset  # the file exists at its full size; its rows are written band by band
                del made
                with open(tmp, "r+b") as f:  # its blocks taken now: a full disk is an error here, not a SIGBUS later
                    os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
                rows = Rows(Path(tmp), offset, dtype, (H, W, c_out), mode="r+")
                try:
                    blend_tiles(translate, source, rows, tile, overlap, encode_rows, progress, batch)
                finally:
                    rows.close()

            atomic_write(target, write)
        else:
            out = np.empty((H, W, c_out), dtype)
            blend_tiles(translate, source, out, tile, overlap, encode_rows, progress, batch)
            write_raster(target, out, fmt)
    finally:
        if isinstance(source, Rows):
            source.close()
    return target


def default_overlap(tile: int) -> int:
    """--overlap without a value: a quarter of the tile (measured: 512-pixel tiles of a unet_128 facades model
    overlapping by 64 matched the whole image at 31.8 dB, by 128 at 43.8 dB; README)."""
    return tile // 4
