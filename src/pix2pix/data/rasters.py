"""Data files: images, 16-bit images, TIFF bands and NumPy arrays, read as a side of a pair or an input, and
outputs written back in the data's own kind.

:func:`read_raster` gives one of two things:

* a Pillow image for an 8-bit image file (PNG, JPEG, BMP, WebP; an 8-bit grayscale, RGB(A) or palette TIFF),
  converted to the model's 1, 3 or 4 channels as the reference converts (L, RGB, RGBA), so that 8-bit data
  keeps the reference's arithmetic bit for bit;
* an (H, W, C) NumPy array in its own dtype for everything else: a 16-bit grayscale PNG (uint16), any other
  TIFF (read with tifffile: bands interleaved or planar, any real dtype), a ``.npy`` file (H x W or H x W x C,
  channel last, loaded without pickles). Its channel count must be the model's.

The transforms of :mod:`pix2pix.data.pairs` take either (:func:`size_of`, :func:`resize`, :func:`crop`,
:func:`flip`): an array is resized channel by channel in float (8-bit arrays in 8 bits, as images are), so
nothing is quantised on the way. Outputs (:func:`encode`, :func:`write_raster`) are ``png`` (8-bit),
``png16`` (16-bit grayscale), ``tiff`` (the target's units, any channels) or ``npy`` (float32 units).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Union

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import Pix2PixError
from .units import Scale, from_unit

PIL_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
TIFF_EXTS = {".tif", ".tiff"}
ARRAY_EXTS = {".npy"}
DATA_EXTS = PIL_EXTS | TIFF_EXTS | ARRAY_EXTS
MODES = {1: "L", 3: "RGB", 4: "RGBA"}  # channels -> Pillow mode
# The largest image decoded: Pillow's decompression-bomb threshold, where it only warns, made an error here.
MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485
OUTPUT_FORMATS = ("png", "png16", "tiff", "npy")
SUFFIX = {"png": ".png", "png16": ".png", "tiff": ".tif", "npy": ".npy"}

Raster = Union[Image.Image, np.ndarray]  # a side: an 8-bit Pillow image, or an (H, W, C) array


# ---------------------------------------------------------------------------------------------- reading


def read_raster(path: Path, channels: int | None, flag: str = "--in-channels", eight_bit: bool = False,
                label_nc: int = 0) -> Raster:
    """The file at ``path`` as the model's ``channels`` (None: as stored). ``flag`` names the option a wrong
    channel count is fixed with. ``eight_bit``: for a side under the 8-bit scaling, a 16-bit or float grayscale
    image comes to 8 bits as before (:func:`to_8bit`). ``label_nc``: a class map (:func:`class_map`). Every problem
    is one line naming the file."""
    return fit_channels(_read(Path(path)), channels, path, flag, eight_bit, label_nc)


def fit_channels(x: Raster, channels: int | None, path, flag: str = "--in-channels", eight_bit: bool = False,
                 label_nc: int = 0) -> Raster:
    """A side read from ``path`` with the model's ``channels``: an 8-bit image converted (L, RGB, RGBA), an
    array checked to have them; with ``label_nc``, a class map (:func:`class_map`)."""
    if channels is None:
        return x
    if label_nc:
        return class_map(x, channels, path, label_nc)
    if eight_bit and isinstance(x, np.ndarray) and x.shape[2] == 1 and x.dtype != np.uint8 and channels in MODES:
        return to_8bit(x, channels, path)
    if isinstance(x, Image.Image):
        if channels not in MODES:
            raise Pix2PixError(f"{path}: an 8-bit image holds 1, 3 or 4 channels, and {flag} is {channels}; give "
                               "data of more bands as .npy or TIFF")
        return x.convert(MODES[channels])
    if x.shape[2] != channels:
        raise Pix2PixError(f"{path}: {x.shape[2]} channel(s), and {flag} is {channels}")
    return x


def class_map(x: Raster, channels: int, path, label_nc: int) -> np.ndarray:
    """A class-index map (``--label-nc``) as an (H, W, channels) integer array: an 8-bit grayscale or palette image's
    values are its indices (a palette image's are not its colours' brightness); an array's first channel holds
    them (a second: instance ids). An index outside 0..label_nc-1, or a colour image, is one line."""
    if isinstance(x, Image.Image):
        if x.mode not in ("L", "P"):
            raise Pix2PixError(f"{path}: a {x.mode} image, and --label-nc reads one class index a pixel (a grayscale "
                               "or palette image of indices, as Cityscapes' labelIds)")
        x = np.asarray(x)[:, :, None]
    if x.shape[2] != channels:
        raise Pix2PixError(f"{path}: {x.shape[2]} channel(s), and a class map with{'' if channels == 2 else 'out'} "
                           f"instance ids has {channels}")
    if x.dtype.kind not in "iu":
        raise Pix2PixError(f"{path}: --label-nc reads class indices from integer data, and this holds {x.dtype}")
    top, low = int(x[..., 0].max()), int(x[..., 0].min())
    if top >= label_nc or low < 0:
        raise Pix2PixError(f"{path}: class index {top if top >= label_nc else low} in a map of --label-nc "
                           f"{label_nc} classes (0..{label_nc - 1})")
    return x


def _read(path: Path) -> Raster:
    """An image as it is, or a checked (H, W, C) array."""
    suffix = path.suffix.lower()
    try:
        if suffix in ARRAY_EXTS:
            arr = _read_npy(path)
        elif suffix in TIFF_EXTS:
            arr = _read_tiff(path)
        else:
            arr = _read_pil(path)
    except FileNotFoundError:
        raise Pix2PixError(f"{path}: no such file") from None
    except EOFError:  # an empty or cut .npy (numpy), or a cut image
        raise Pix2PixError(f"{path}: the file ends before its data (empty, or cut short)") from None
    except OSError as e:  # a link loop, a file this user may not read, an I/O error
        raise Pix2PixError(f"{path}: cannot be read ({e.strerror or e})") from None
    return arr if isinstance(arr, Image.Image) else checked_array(arr, path)


def checked_array(arr: np.ndarray, path) -> np.ndarray:
    """(H, W, C) of a real dtype, no empty side, all values finite (``path`` names it in the message)."""
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise Pix2PixError(f"{path}: an array of shape {arr.shape}; expected H x W or H x W x C (channel last)")
    if 0 in arr.shape:
        raise Pix2PixError(f"{path}: an array of shape {arr.shape} has an empty side")
    if arr.dtype.kind not in "uif":
        raise Pix2PixError(f"{path}: values of type {arr.dtype}, not real numbers (integers or floats)")
    _fits_limit(arr.shape[1], arr.shape[0], path)
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr)
        if bad.any():
            y, x, c = np.argwhere(bad)[0]
            raise Pix2PixError(f"{path}: {int(bad.sum())} value(s) are NaN or infinite (the first at row {y}, "
                               f"column {x}, channel {c}); fill or mask them before training")
    return arr


def _read_npy(path: Path) -> np.ndarray:
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)  # the header first: a shape before any data
    except ValueError as e:  # pickled objects, a bad header
        raise Pix2PixError(f"{path}: not a numeric .npy array ({str(e).splitlines()[0]})") from None
    except OSError as e:
        raise Pix2PixError(f"{path}: not a readable .npy file ({e})") from None
    if not isinstance(arr, np.ndarray):
        raise Pix2PixError(f"{path}: holds no single array (an .npz archive?); save one array with numpy.save")
    if arr.ndim in (2, 3):
        _fits_limit(arr.shape[1], arr.shape[0], path)  # from the header, before the data is read
    return np.array(arr)


def _fits_limit(w: int, h: int, path) -> None:
    if w * h > MAX_IMAGE_PIXELS:
        raise Pix2PixError(f"{path}: {w}x{h} is over the {MAX_IMAGE_PIXELS / 1e6:.1f}-megapixel limit for one "
                           "example here (tile it first)")


def _read_tiff(path: Path) -> Raster:
    """8-bit and bilevel TIFFs of one page that Pillow reads as an image (grayscale or with alpha, RGB(A),
    palette, CMYK, YCbCr) are images, as before; any other TIFF (16-bit, float, bands, pages of bands) is an
    array (tifffile)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            page = tif.pages[0]
            photometric = getattr(page.photometric, "name", str(page.photometric))
            samples = series.shape[-1] if series.axes.endswith("S") else 1
            one_page = series.axes in ("YX", "YXS")
            if one_page and series.dtype in (np.uint8, np.bool_) and (
                    photometric in ("RGB", "PALETTE", "SEPARATED", "YCBCR") or
                    (photometric in ("MINISBLACK", "MINISWHITE") and samples == 1) or
                    (photometric == "MINISBLACK" and _alpha(page, samples))):
                return _read_pil(path)
            if "Y" in series.axes and "X" in series.axes:  # from the header, before decoding
                _fits_limit(series.shape[series.axes.index("X")], series.shape[series.axes.index("Y")], path)
            arr, axes = series.asarray(), series.axes
    except Pix2PixError:
        raise
    except FileNotFoundError:
        raise
    except Exception as e:  # tifffile raises many kinds of errors on a bad file
        raise Pix2PixError(f"{path}: not a readable TIFF ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") \
            from None
    if arr.ndim == 3 and not axes.endswith("S"):
        arr = arr.transpose(1, 2, 0)  # bands first (planar, or one page per band) -> channel last
    return arr


def _alpha(page, samples: int) -> bool:
    """Whether a 2-sample grayscale page is gray and (unassociated) alpha, which Pillow reads as LA; two bands of
    data (no such mark), or premultiplied alpha (Pillow's "La", which it cannot convert), are read as an array,
    or Pillow would drop the second band."""
    extra = tuple(getattr(page, "extrasamples", ()) or ())
    return samples == 2 and len(extra) == 1 and int(extra[0]) == 2


def _read_pil(path: Path) -> Raster:
    _no_16_bit_colour_png(path)
    try:
        with Image.open(path) as im:
            if im.size[0] * im.size[1] > MAX_IMAGE_PIXELS:  # from the header, before decoding
                w, h = im.size
                raise Pix2PixError(f"{path}: {w}x{h} is {w * h / 1e6:.0f} megapixels, over the "
                                   f"{MAX_IMAGE_PIXELS / 1e6:.1f}-megapixel limit for an image here (a "
                                   "decompression bomb, or a scan to tile first?)")
            im.load()
            img = im.copy()
    except FileNotFoundError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError, SyntaxError) as e:
        raise Pix2PixError(f"{path}: not a readable image ({_reason(e)})") from None
    return pil_raster(img)


def pil_raster(img: Image.Image) -> Raster:
    """A decoded Pillow image as a side: an 8-bit image as it is; a 16-bit one as a uint16 (H, W) array (in
    native byte order), 32-bit integers as uint16 where they fit, float as float32."""
    if img.mode.startswith("I;16"):
        return np.asarray(img).astype(np.uint16)  # I;16B is big-endian: native order here
    if img.mode == "I":  # 32-bit integers; what some Pillow versions make of a 16-bit PNG
        arr = np.asarray(img)
        return arr.astype(np.uint16) if arr.size and arr.min() >= 0 and arr.max() <= 65535 else arr
    if img.mode == "F":
        return np.asarray(img, dtype=np.float32)
    return img


def to_8bit(x: Raster, channels: int, where) -> Image.Image:
    """A side as an 8-bit image of ``channels`` (1, 3 or 4), as this project read any image before it kept their
    bits: a 16-bit grayscale one scaled 0..65535 onto 0..255 and a float one taken as 0..1. What an 8-bit
    model (one trained before scalings were stored, or the reference's) makes of such an input."""
    if isinstance(x, np.ndarray):
        if x.shape[2] != 1 or x.dtype.kind not in "uif":
            raise Pix2PixError(f"{where}: {x.shape[2]} channels of {x.dtype}, not an image of 1, 3 or 4 8-bit "
                               "channels")
        scale = 255.0 if x.dtype.kind == "f" else 255.0 / 65535.0
        x = Image.fromarray(np.clip(x[:, :, 0].astype(np.float64) * scale + 0.5, 0, 255).astype(np.uint8), "L")
    return x.convert(MODES[channels])


def _no_16_bit_colour_png(path: Path) -> None:
    """Pillow reads a 16-bit colour PNG as 8 bits without a word; say so instead."""
    if path.suffix.lower() != ".png":
        return
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) == 26 and head[12:16] == b"IHDR":
        depth, colour = struct.unpack(">BB", head[24:26])
        if depth == 16 and colour in (2, 4, 6):
            raise Pix2PixError(f"{path}: a 16-bit colour PNG, which Pillow can only read as 8 bits; save it as a "
                               "16-bit TIFF or .npy to keep its depth")


def _reason(e: Exception) -> str:
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    return text.replace(" (probably truncated)", "")


# ------------------------------------------------------------------------------ the two kinds, alike


def image_side(scale: Scale, channels: int) -> bool:
    """Whether a side under ``scale`` with ``channels`` is an 8-bit image file's (what the reference handles)."""
    return scale.kind == "uint8" and channels in MODES


def size_of(x: Raster) -> tuple[int, int]:
    """(width, height)."""
    return x.size if isinstance(x, Image.Image) else (x.shape[1], x.shape[0])


def as_array(x: Raster) -> np.ndarray:
    """(H, W, C) in the data's dtype."""
    if isinstance(x, Image.Image):
        arr = np.asarray(x, dtype=np.uint8)
        return arr[:, :, None] if arr.ndim == 2 else arr
    return x


def resize(x: Raster, size: tuple[int, int], nearest: bool = False) -> Raster:
    """Bicubic to (width, height): an image as Pillow resizes it; an array channel by channel, 8-bit arrays
    in 8 bits and any other in float32 (Pillow's F mode), so nothing is quantised. ``nearest``: each pixel takes
    its nearest source pixel's value (class and instance maps: no new values between regions)."""
    how = Image.NEAREST if nearest else Image.BICUBIC
    if isinstance(x, Image.Image):
        return x.resize(size, how)
    if size_of(x) == tuple(size):
        return x
    if nearest:  # any dtype: pick rows and columns as Pillow's nearest does (source = floor((i + 0.5) * n / m))
        (w, h), (tw, th) = size_of(x), size
        rows = np.minimum(((np.arange(th) + 0.5) * h / th).astype(np.int64), h - 1)
        cols = np.minimum(((np.arange(tw) + 0.5) * w / tw).astype(np.int64), w - 1)
        return np.ascontiguousarray(x[rows][:, cols])
    if x.dtype == np.uint8:
        planes = [np.asarray(Image.fromarray(np.ascontiguousarray(x[:, :, c])).resize(size, how))
                  for c in range(x.shape[2])]
    else:
        planes = [np.asarray(Image.fromarray(np.ascontiguousarray(x[:, :, c], dtype=np.float32), "F")
                             .resize(size, how)) for c in range(x.shape[2])]
    return np.stack(planes, axis=2)


def crop(x: Raster, box: tuple[int, int, int, int]) -> Raster:
    """(left, top, right, bottom)."""
    if isinstance(x, Image.Image):
        return x.crop(box)
    left, top, right, bottom = box
    return x[top:bottom, left:right]


def flip(x: Raster) -> Raster:
    """Left to right."""
    return x.transpose(Image.FLIP_LEFT_RIGHT) if isinstance(x, Image.Image) else x[:, ::-1]


def split_ab(x: Raster, path: Path) -> tuple[Raster, Raster]:
    """An aligned pair's two halves: A on the left, B on the right."""
    w, h = size_of(x)
    if w % 2:
        raise Pix2PixError(f"{path}: width {w} is odd, so it cannot be split into equal A|B halves; "
                           "an aligned image holds A on the left and B on the right")
    return crop(x, (0, 0, w // 2, h)), crop(x, (w // 2, 0, w, h))


def to_tensor(x: Raster, scale: Scale = Scale()) -> torch.Tensor:
    """A side -> (C, H, W) float32 in [-1, 1] by ``scale`` (the 8-bit default: the reference's arithmetic)."""
    arr = as_array(x)
    arr = np.array(arr, dtype=np.uint8 if arr.dtype == np.uint8 else np.float32)  # a writable, contiguous copy
    return scale.to_unit(torch.from_numpy(arr).permute(2, 0, 1))


# -------------------------------------------------------------------------------------------- writing


def output_format(input_path: Path | None, scale: Scale, channels: int, requested: str | None = None) -> str:
    """The format an output is written in: ``requested``, else the data's kind: an .npy input gives .npy, a
    TIFF input TIFF, and an image input an 8-bit PNG, a 16-bit PNG (one channel) or a TIFF by the target
    data's type (whatever its scaling)."""
    fmt = requested or _natural_format(input_path, scale, channels)
    if fmt not in OUTPUT_FORMATS:
        raise Pix2PixError(f"--output-format {fmt}: choose from {', '.join(OUTPUT_FORMATS)}")
    if fmt == "png" and channels not in MODES:
        raise Pix2PixError(f"--output-format png: a PNG holds 1, 3 or 4 channels, and the outputs have {channels}; "
                           "use tiff or npy")
    if fmt == "png16" and channels != 1:
        raise Pix2PixError(f"--output-format png16: a 16-bit PNG here holds one channel (Pillow writes no 16-bit "
                           f"colour PNG), and the outputs have {channels}; use tiff or npy")
    return fmt


def _natural_format(input_path: Path | None, scale: Scale, channels: int) -> str:
    suffix = Path(input_path).suffix.lower() if input_path is not None else ""
    if suffix in ARRAY_EXTS:
        return "npy"
    if suffix in TIFF_EXTS:
        return "tiff"
    if scale.data == "uint8" and channels in MODES:
        return "png"
    if scale.data == "uint16" and channels == 1:
        return "png16"
    return "tiff"


TOPS = {"uint8": 255, "uint16": 65535}  # the integer types an output file keeps, and their largest value


def encode(u: torch.Tensor, scale: Scale, fmt: str) -> np.ndarray:
    """A (C, H, W) output in [-1, 1] as the (H, W, C) array a ``fmt`` file holds, in the target's units:
    ``npy`` float32; ``tiff`` in the data's type for 8- and 16-bit data, else float32; ``png``/``png16`` of
    data of their bit depth likewise (the 8-bit scaling truncates as the reference does, any other rounds and
    clips), and of any other data the [-1, 1] range spread over 0..255 / 0..65535."""
    u = u.detach().float().cpu()
    bits = {"png": "uint8", "png16": "uint16"}.get(fmt) or (scale.data if fmt == "tiff" and scale.data in TOPS
                                                            else None)
    if bits is None:  # npy, and TIFFs of other data: float32 units
        return scale.from_unit(u).permute(1, 2, 0).numpy().astype(np.float32)
    if scale.kind == "uint8" and bits == "uint8":
        data = scale.to_data(u)  # the reference's truncation
    elif scale.data == bits:
        data = scale.from_unit(u).round().clamp(0, TOPS[bits])
    else:  # data of another type in an image file: [-1, 1] over its full range
        data = from_unit(u) if bits == "uint8" else ((u.clamp(-1, 1) + 1) / 2 * TOPS[bits]).round()
    return data.permute(1, 2, 0).numpy().astype(bits)


def write_raster(path: Path, arr: np.ndarray, fmt: str) -> None:
    """Write an (H, W, C) array from :func:`encode` as ``fmt`` (atomically: a reader never sees half a file)."""
    from ..files import atomic_write

    def write(tmp: str) -> None:
        if fmt == "npy":
            with open(tmp, "wb") as f:
                np.save(f, np.ascontiguousarray(arr, dtype=np.float32))
        elif fmt == "tiff":
            import tifffile

            c = arr.shape[2]  # interleaved (H x W x C), as tifffile.imread gives it back
            if c == 1:
                tifffile.imwrite(tmp, arr[:, :, 0], photometric="minisblack")
            elif c in (3, 4) and arr.dtype in (np.uint8, np.uint16):
                tifffile.imwrite(tmp, arr, photometric="rgb", extrasamples=["unassalpha"] if c == 4 else None)
            else:
                tifffile.imwrite(tmp, arr, photometric="minisblack", planarconfig="contig")
        else:
            img = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)  # uint16 -> I;16, uint8 -> L/RGB/RGBA
            img.save(tmp, "PNG")

    atomic_write(Path(path), write)


def preview(u: torch.Tensor) -> Image.Image:
    """An 8-bit picture of a (C, H, W) side in [-1, 1] for pages and TensorBoard: 1, 3 or 4 channels as they
    are, otherwise the first channel (2) or the first three (5 and more)."""
    c = u.shape[0]
    if c not in MODES:
        u = u[:1] if c == 2 else u[:3]
    arr = from_unit(u.cpu()).permute(1, 2, 0).numpy()
    return Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr, MODES[arr.shape[2]])
