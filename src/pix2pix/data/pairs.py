"""Paired data: the paper's aligned A|B layout, the two-folder layout, and single files.

Layouts under a dataset root ``DATA``:

* aligned (the paper's datasets): ``DATA/{train,val,test}/*.jpg``, each image A on the left, B on the right
  (arrays too: ``H x 2W x C``);
* two folders: ``DATA/A/{split}/x.png`` and ``DATA/B/{split}/x.png`` (or ``.npy``, ``.tif``), paired by name.

A side is an 8-bit Pillow image or an (H, W, C) array (:mod:`pix2pix.data.rasters`); each side maps to [-1, 1] by
its scaling (:mod:`pix2pix.data.units`), fitted to the training split by :func:`fit_scales`. Random crop and flip
are drawn once per example and applied to A and B alike. The draw depends only on (seed, epoch, example
index), so it is the same whatever the number of loader workers and after a resume. Unreadable files become
error records (they travel through the loader, see :mod:`pix2pix.data.batches`), so the user sees one clear line
instead of a worker traceback."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..config import DataConfig
from ..errors import Pix2PixError
from .rasters import (DATA_EXTS, MODES, Raster, as_array, crop, fit_channels, flip, read_raster, resize, size_of,
                      split_ab, to_8bit, to_tensor)
from .units import EIGHT_BIT, Scale, Scales, Statistics, dtype_class, from_unit, kind_for, needs_statistics

IGNORED = {"Thumbs.db", "desktop.ini"}
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Pair:
    a: Path  # the aligned A|B image, or the A image of a two-folder pair
    b: Path | None = None  # the B image of a two-folder pair


def pairs_shape(pairs: list[Pair]) -> dict | None:
    """``{"layout": "aligned", "width": W, "height": H}`` when the first pair is an aligned A|B file (the
    size of such files: a file of that size given to translate is one of them), else None."""
    from .rasters import read_raster, size_of

    if not pairs or pairs[0].b is not None:
        return None
    try:
        w, h = size_of(read_raster(pairs[0].a, None))
    except Pix2PixError:  # a bad first image: said where training reads it
        return None
    return {"layout": "aligned", "width": w, "height": h}


# ----------------------------------------------------------------------------------------- images


def open_image(path: Path, channels: int) -> Image.Image:
    """An image file as an 8-bit Pillow image of 1 (L), 3 (RGB) or 4 (RGBA) channels, for what takes only
    images (the app's samples, ``datasets combine``): a 16-bit grayscale image is scaled to 8 bits (0..65535
    onto 0..255) and a float one taken as 0..1."""
    if channels not in MODES:
        raise Pix2PixError(f"image files hold 1, 3 or 4 channels, not {channels}; set --in-channels/--out-channels")
    return to_8bit(read_raster(path, None), channels, path)


def to_image(t: torch.Tensor) -> Image.Image:
    """(C, H, W) in [-1, 1] -> 8-bit PIL image (:func:`pix2pix.data.units.from_unit`)."""
    arr = from_unit(t.cpu()).permute(1, 2, 0).numpy()
    channels = arr.shape[2]
    if channels not in (1, 3, 4):
        raise Pix2PixError(f"an image file holds 1, 3 or 4 channels; this output has {channels}")
    return Image.fromarray(arr[:, :, 0] if channels == 1 else arr, MODES[channels])


# ------------------------------------------------------------------------------------ discovery


def is_data_file(path: Path) -> bool:
    """An image, TIFF or .npy file (:mod:`pix2pix.data.rasters`)."""
    return path.suffix.lower() in DATA_EXTS


def list_images(folder: Path, unique_stems: bool = False) -> tuple[list[Path], list[str]]:
    """The data files (images, TIFFs, arrays) directly in ``folder`` (sorted) and one problem line per stray
    file, or per file whose name without extension repeats another's when ``unique_stems`` (pairing by name
    needs that)."""
    images, problems, stems = [], [], {}
    try:
        entries = sorted(folder.iterdir())
    except OSError as e:  # a folder this user may not list, an I/O error
        raise Pix2PixError(f"{folder}: cannot be listed ({e.strerror or e})") from None
    for p in entries:
        if p.is_dir() or p.name.startswith(".") or p.name in IGNORED:
            continue
        if not is_data_file(p):
            problems.append(f"{p}: not an image or array file (expected {', '.join(sorted(DATA_EXTS))})")
        elif unique_stems and p.stem in stems:
            problems.append(f"{p}: another image has the same name ({stems[p.stem].name}), so pairing by name "
                            "is ambiguous; rename or remove one")
        else:
            images.append(p)
            stems[p.stem] = p
    return images, problems


def available_splits(root: Path) -> list[str]:
    root = Path(root)
    return [s for s in SPLITS if (root / s).is_dir() or ((root / "A" / s).is_dir() and (root / "B" / s).is_dir())]


def scan_split(root: Path, split: str) -> tuple[list[Pair], list[str]]:
    """The pairs of one split and the problems seen without decoding (stray files, unpaired names)."""
    root = Path(root)
    if not root.is_dir():
        raise Pix2PixError(f"--data {root}: no such folder")
    if (root / split).is_dir():
        images, problems = list_images(root / split)
        pairs = [Pair(p) for p in images]
    elif (root / "A" / split).is_dir() and (root / "B" / split).is_dir():
        a_imgs, problems = list_images(root / "A" / split, unique_stems=True)
        b_imgs, b_problems = list_images(root / "B" / split, unique_stems=True)
        problems += b_problems
        b_by_stem = {p.stem: p for p in b_imgs}
        pairs = []
        for a in a_imgs:
            if a.stem in b_by_stem:
                pairs.append(Pair(a, b_by_stem.pop(a.stem)))
            else:
                problems.append(f"{a}: no B image named {a.stem}.* in {root / 'B' / split}")
        problems += [f"{b}: no A image named {b.stem}.* in {root / 'A' / split}" for b in b_by_stem.values()]
    else:
        found = available_splits(root)
        hint = f"it has {', '.join(found)}" if found else "expected DATA/SPLIT/*.jpg (A|B side by side) or DATA/A/SPLIT + DATA/B/SPLIT"
        raise Pix2PixError(f"--data {root}: no '{split}' split ({hint})")
    if not pairs and not problems:
        raise Pix2PixError(f"--data {root}: the '{split}' split holds no images")
    return pairs, problems


@dataclass
class DatasetCheck:
    """What :func:`check_dataset` found: the pairs of each split, what each side's files hold, and the problems."""
    root: Path
    splits: dict[str, int] = field(default_factory=dict)  # pairs found per split
    layouts: set[str] = field(default_factory=set)  # "aligned A|B files", "A/ and B/ folders"
    # side ("A", "B") -> {what its files hold (describe()): how many}, and {(width, height): how many}
    holds: dict[str, Counter] = field(default_factory=lambda: {"A": Counter(), "B": Counter()})
    sizes: dict[str, Counter] = field(default_factory=lambda: {"A": Counter(), "B": Counter()})
    problems: list[str] = field(default_factory=list)  # one line each, naming its file

    @property
    def pairs(self) -> int:
        return sum(self.splits.values())

    def side(self, side: str) -> str:
        """One line on a side: what its files hold and their size, e.g. '4-channel float32 .npy arrays, 256x256'."""
        holds, sizes = self.holds[side], self.sizes[side]
        if not holds:
            return "no file could be read"
        what = ", ".join(h if len(holds) == 1 else f"{h} ({n})" for h, n in holds.most_common())
        if len(sizes) == 1:
            (w, h), = sizes
            return f"{what}, {w}x{h}"
        (w0, h0), *_, (w1, h1) = sorted(sizes, key=lambda s: (s[0] * s[1], s))
        return f"{what}, {len(sizes)} sizes from {w0}x{h0} to {w1}x{h1}"


def check_dataset(root: Path, in_channels: int = 3, out_channels: int = 3) -> DatasetCheck:
    """Decode every file of every split once and report what the dataset holds and every problem. Each side is
    described as stored (even where training could not read it: B's channels are named when they are wrong),
    then checked as training reads it (:func:`fit_pair`: channels, rank, empty sides, dtype, NaN/inf), and each
    side's files for one kind of data (8-bit, 16-bit, integers, floats) with one channel count."""
    root = Path(root)
    if not root.is_dir():
        raise Pix2PixError(f"{root}: no such folder")
    report = DatasetCheck(root)
    splits = available_splits(root)
    if not splits:
        report.problems.append(f"{root}: no train, val or test split (expected DATA/SPLIT/*.jpg or DATA/A/SPLIT + "
                               "DATA/B/SPLIT)")
        return report
    kinds: dict[str, str] = {}  # side -> the kind of its first file, which the others must match
    for split in splits:
        try:
            pairs, split_problems = scan_split(root, split)
        except Pix2PixError as e:
            report.problems.append(str(e))
            continue
        report.splits[split] = len(pairs)
        report.layouts.add("aligned A|B files" if (root / split).is_dir() else "A/ and B/ folders")
        report.problems += split_problems
        for pair in pairs:
            files = [pair.a] if pair.b is None else [pair.a, pair.b]
            stored: list[Raster | None] = []
            for path in files:
                try:
                    stored.append(read_raster(path, None))
                except Pix2PixError as e:
                    report.problems.append(str(e))
                    stored.append(None)
            for side, x, path in zip("AB", stored * 2 if pair.b is None else stored, files * 2):
                if x is not None:
                    w, h = size_of(x)
                    report.holds[side][describe(x, path)] += 1
                    report.sizes[side][(w // 2, h) if pair.b is None else (w, h)] += 1
            if any(x is None for x in stored):
                continue
            try:
                sides = fit_pair(pair, stored[0], stored[-1] if pair.b else None, "AtoB", in_channels, out_channels)
            except Pix2PixError as e:
                report.problems.append(str(e))
                continue
            for side, x, where in zip("AB", sides, side_files(pair, "AtoB")):
                arr = as_array(x)
                kind = f"{dtype_class(arr.dtype)}, {arr.shape[2]} channel(s)"
                first = kinds.setdefault(side, kind)
                if kind != first:
                    report.problems.append(f"{where}: {kind}, and the {side} files before it are {first}; a side's "
                                           "files must be of one kind")
    return report


_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".webp": "WebP", ".tif": "TIFF",
            ".tiff": "TIFF", ".npy": ".npy"}
_MODE_NAMES = {"L": "grayscale", "LA": "grayscale+alpha", "P": "palette", "1": "bilevel"}  # else Pillow's (RGB, ...)


def describe(x: Raster, path: Path) -> str:
    """What a file holds as stored, as a person names it: '3-channel RGB JPEG images', '1-channel uint16 PNG
    images', '4-channel float32 .npy arrays' (plural: it names a side's files)."""
    fmt = _FORMATS.get(path.suffix.lower(), path.suffix)
    if isinstance(x, Image.Image):
        return f"{len(x.getbands())}-channel {_MODE_NAMES.get(x.mode, x.mode)} {fmt} images"
    return f"{x.shape[2]}-channel {x.dtype.name} {fmt} {'arrays' if fmt == '.npy' else 'images'}"


def group_problems(problems: list[str]) -> list[list[str]]:
    """Problem lines grouped by kind, in the order each kind first appears: two lines are of one kind when they
    read the same once paths (any word with a slash) and numbers are blanked out, e.g. every
    '<file>: 1 channel(s), and --out-channels is 4'. A file name with a space in it may make a kind of its own."""
    groups: dict[str, list[str]] = {}
    for line in problems:
        kind = re.sub(r"\d+", "#", re.sub(r"\S*[/\\]\S*", "<path>", line))
        groups.setdefault(kind, []).append(line)
    return list(groups.values())


def side_files(pair: Pair, direction: str) -> tuple[Path, Path]:
    """The files of a pair's (input, target), for messages: for an aligned pair, its one file twice."""
    a, b = pair.a, pair.b or pair.a
    return (a, b) if direction == "AtoB" else (b, a)


def load_pair(pair: Pair, direction: str, in_channels: int, out_channels: int,
              scales: Scales | None = None, label_nc: int = 0) -> tuple[Raster, Raster]:
    """(input, target) of a pair in the training direction, each an 8-bit image or an (H, W, C) array
    (:func:`pix2pix.data.rasters.read_raster`) with the model's channels. With ``scales``, a side under the 8-bit
    scaling takes a 16-bit or float grayscale image as 8 bits, as before scalings were stored. ``label_nc``: the
    input is a class map (:func:`pix2pix.data.rasters.class_map`), checked."""
    first = read_raster(pair.a, None)
    second = None if pair.b is None else read_raster(pair.b, None)
    return fit_pair(pair, first, second, direction, in_channels, out_channels, scales, label_nc)


def fit_pair(pair: Pair, first: Raster, second: Raster | None, direction: str, in_channels: int, out_channels: int,
             scales: Scales | None = None, label_nc: int = 0) -> tuple[Raster, Raster]:
    """:func:`load_pair` of a pair's files already read as stored (``read_raster(path, None)``): ``first`` is the
    aligned file or the A file, ``second`` the B file (None for an aligned pair)."""
    in_8 = scales is not None and scales.input.kind == "uint8"
    out_8 = scales is not None and scales.output.kind == "uint8"
    sides = ((in_channels, "--in-channels", in_8, label_nc), (out_channels, "--out-channels", out_8, 0))
    (a_ch, a_flag, a_8, a_nc), (b_ch, b_flag, b_8, b_nc) = sides if direction == "AtoB" else sides[::-1]
    if second is None and label_nc:  # a class map and its photo side by side: each half as its own file
        a, b = split_ab(first, pair.a)
        a, b = fit_channels(a, a_ch, pair.a, a_flag, a_8, a_nc), fit_channels(b, b_ch, pair.a, b_flag, b_8, b_nc)
    elif second is None:
        whole = first
        if a_8 and b_8 and a_ch in MODES and b_ch in MODES:
            whole = fit_channels(whole, max(a_ch, b_ch), pair.a, eight_bit=True)
        if isinstance(whole, Image.Image):
            # One decode serves both halves (in the richest mode either needs); each is then converted.
            for channels, flag in ((a_ch, a_flag), (b_ch, b_flag)):
                if channels not in MODES:
                    raise Pix2PixError(f"{pair.a}: an 8-bit image holds 1, 3 or 4 channels, and {flag} is "
                                       f"{channels}; give data of more bands as .npy or TIFF")
            a, b = split_ab(whole.convert(MODES[max(a_ch, b_ch)]), pair.a)
            a, b = a.convert(MODES[a_ch]), b.convert(MODES[b_ch])
        else:
            a, b = split_ab(whole, pair.a)
            for half, channels, flag in ((a, a_ch, a_flag), (b, b_ch, b_flag)):
                if half.shape[2] != channels:
                    raise Pix2PixError(f"{pair.a}: {half.shape[2]} channel(s) in each half, and {flag} is "
                                       f"{channels} (the halves of an aligned array share its channels: use "
                                       "the two-folder layout for sides of different channels)")
    else:
        a = fit_channels(first, a_ch, pair.a, a_flag, a_8, a_nc)
        b = fit_channels(second, b_ch, pair.b, b_flag, b_8, b_nc)
        if size_of(a) != size_of(b):
            (wa, ha), (wb, hb) = size_of(a), size_of(b)
            raise Pix2PixError(f"{pair.a}: size {wa}x{ha} differs from its B file {pair.b} ({wb}x{hb})")
    return (a, b) if direction == "AtoB" else (b, a)


def load_scaled_pair(pair: Pair, direction: str, in_channels: int, out_channels: int,
                     scales: Scales, label_nc: int = 0) -> tuple[Raster, Raster]:
    """:func:`load_pair`, each side checked to be of the kind its scaling was made for."""
    x, y = load_pair(pair, direction, in_channels, out_channels, scales, label_nc)
    where_x, where_y = side_files(pair, direction)
    scales.input.check(as_array(x), where_x)
    scales.output.check(as_array(y), where_y)
    return x, y


def fit_scales(pairs: list[Pair], cfg: DataConfig, in_channels: int, out_channels: int,
               progress: bool = False, skip_bad: bool = False) -> Scales:
    """Each side's scaling by ``--normalize`` (:func:`pix2pix.data.units.kind_for`), from the training pairs: the
    first readable pair says each side's kind (8-bit images get the reference's mapping without more reading);
    statistics read every pair once. Unreadable pairs are skipped with ``skip_bad``, else raised."""
    import itertools

    from tqdm import tqdm

    def sides(todo):
        for pair in todo:
            try:
                x, y = load_pair(pair, cfg.direction, in_channels, out_channels, label_nc=cfg.label_nc)
            except Pix2PixError:
                if skip_bad:
                    continue
                raise
            yield (as_array(x), as_array(y)), side_files(pair, cfg.direction)

    read = sides(pairs)
    first = next(read, None)
    if first is None:
        raise Pix2PixError(f"--data {cfg.root}: no readable pair in the training split")
    classes = [dtype_class(arr.dtype) for arr in first[0]]
    kinds = [kind_for(cfg.normalize, c) for c in classes]
    if cfg.label_nc:  # a class map: its indices are read as they are (the generator makes them one-hot)
        kinds[0] = "none"
    stats = [Statistics() if needs_statistics(k) else None for k in kinds]
    if any(stats):  # every pair once, the first one included
        every = tqdm(itertools.chain([first], read), total=len(pairs), disable=not progress,
                     desc="normalisation statistics", unit="pair")
        for arrays, files in every:
            for s, arr, where in zip(stats, arrays, files):
                if s is not None:
                    s.add(arr, where)
    return Scales(*(s.scale(k) if s is not None else Scale(k, data=c) for s, k, c in zip(stats, kinds, classes)))


# ----------------------------------------------------------------------------------- transforms


def _scale_width(x: Raster, width: int, min_height: int, nearest: bool = False) -> Raster:
    """pix2pixHD's scale_width: ``width`` wide, the height in the aspect (at least ``min_height``: a crop's)."""
    w, h = size_of(x)
    if w == width and h >= min_height:
        return x
    return resize(x, (width, int(max(width * h / w, min_height))), nearest)


def resize_pair(a: Raster, b: Raster, cfg: DataConfig, train: bool) -> tuple[Raster, Raster]:
    """The deterministic part of --preprocess: the resize (to --load-size when training, --crop-size when
    testing), the same for every epoch. A class-map input (--label-nc) is resized nearest."""
    p, load, crop_size, nearest = cfg.preprocess, cfg.load_size, cfg.crop_size, bool(cfg.label_nc)
    if p == "resize_and_crop":
        size = load if train else crop_size
        a, b = resize(a, (size, size), nearest), resize(b, (size, size))
    elif p in ("scale_width", "scale_width_and_crop"):
        width = load if train else crop_size
        least = crop_size if p == "scale_width_and_crop" else 1  # scale_width alone crops nothing
        a, b = _scale_width(a, width, least, nearest), _scale_width(b, width, least)
    return a, b


def draw_jitter(cfg: DataConfig, width: int, height: int, rng: np.random.Generator,
                path: Path) -> tuple[int, int, bool]:
    """The random part of --preprocess for one example: crop corner (x, y) and whether to flip."""
    size, x, y = cfg.crop_size, 0, 0
    if crops(cfg):
        if width < size or height < size:
            raise Pix2PixError(f"{path}: {width}x{height} is smaller than --crop-size {size} after "
                               f"--preprocess {cfg.preprocess}")
        x, y = int(rng.integers(0, width - size + 1)), int(rng.integers(0, height - size + 1))
    return x, y, bool(cfg.flip and rng.random() < 0.5)


def crops(cfg: DataConfig) -> bool:
    return cfg.preprocess in ("resize_and_crop", "crop", "scale_width_and_crop")


def transform_pair(a: Raster, b: Raster, cfg: DataConfig, rng: np.random.Generator | None,
                   path: Path) -> tuple[Raster, Raster]:
    """Apply --preprocess to both sides with the same parameters; ``rng=None`` is the deterministic
    test-time version (resize to --crop-size, no random crop, no flip)."""
    a, b = resize_pair(a, b, cfg, train=rng is not None)
    if rng is None:
        return a, b
    x, y, flipped = draw_jitter(cfg, *size_of(a), rng, path)
    if crops(cfg):
        c = cfg.crop_size
        a, b = crop(a, (x, y, x + c, y + c)), crop(b, (x, y, x + c, y + c))
    if flipped:
        a, b = flip(a), flip(b)
    return a, b


# ---------------------------------------------------------------------------------------- dataset


def jitter_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The random stream of one example's jitter in one epoch: the same whatever loads it, and after a resume."""
    return np.random.default_rng([seed, epoch, index])


class PairDataset(Dataset):
    """Indexed by (epoch, i) when training (so the jitter is a function of both), or by i for testing."""

    def __init__(self, pairs: list[Pair], cfg: DataConfig, in_channels: int, out_channels: int,
                 train: bool, seed: int = 0, scales: Scales = EIGHT_BIT):
        self.pairs, self.cfg, self.train, self.seed = pairs, cfg, train, seed
        self.in_channels, self.out_channels, self.scales = in_channels, out_channels, scales

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        epoch, i = key if isinstance(key, tuple) else (0, key)
        pair = self.pairs[i]
        try:
            a, b = load_scaled_pair(pair, self.cfg.direction, self.in_channels, self.out_channels, self.scales,
                                    self.cfg.label_nc)
            a, b = transform_pair(a, b, self.cfg, jitter_rng(self.seed, epoch, i) if self.train else None, pair.a)
        except Pix2PixError as e:
            return {"error": str(e), "path": str(pair.a)}
        return {"A": to_tensor(a, self.scales.input), "B": to_tensor(b, self.scales.output), "path": str(pair.a),
                "index": i}
