"""Label sets: the classes of a label-map dataset, their colours, and how a label image becomes the true map
of class indices (for the segmenter, the FCN-score, and the app's guess of what a model takes).

A colour is read as the class of the nearest palette colour, so JPEG noise and the blends a resize leaves
at region edges fall to one side or the other instead of becoming new classes. Colours a set marks as void
(``ignore``) read as :data:`IGNORE` and are left out of every score.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import Pix2PixError

IGNORE = 255  # class index of pixels that no score counts
# A label image is taken to be of a label set when at least MIN_MATCHING of its pixels lie within
# COLOUR_TOLERANCE (RGB distance) of the set's colours. On the 400 real CMP label maps (JPEG, with blended
# edges) that fraction is 0.45 at the least (median 0.77); on their photos it is 0.002 at the most.
COLOUR_TOLERANCE = 40
MIN_MATCHING = 0.25


@dataclass(frozen=True)
class LabelSet:
    name: str
    classes: tuple[str, ...]
    palette: np.ndarray  # (K, 3) uint8, row k = colour of class k
    ignore: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.uint8))  # void colours

    def class_map(self, rgb: np.ndarray) -> np.ndarray:
        """(..., 3) colours -> (...) uint8 class indices (IGNORE for void colours): the nearest colour."""
        rgb = np.asarray(rgb)
        if rgb.shape[-1:] != (3,):
            raise Pix2PixError(f"a colour label map has 3 channels in its last axis, not shape {rgb.shape}")
        pal = np.concatenate([self.palette, self.ignore]).astype(np.float32)
        flat = rgb.reshape(-1, 3).astype(np.float32)
        # |c - p|^2 = |c|^2 - 2 c.p + |p|^2; |c|^2 is the same for every p, so it is left out of the argmin.
        nearest = ((pal * pal).sum(1) - 2 * flat @ pal.T).argmin(1)  # (N,)
        out = np.where(nearest < len(self.palette), nearest, IGNORE).astype(np.uint8)
        return out.reshape(rgb.shape[:-1])

    def colours(self, classes: np.ndarray) -> np.ndarray:
        """(...) class indices -> (..., 3) uint8 colours; IGNORE shows black."""
        table = np.zeros((256, 3), np.uint8)
        table[:len(self.palette)] = self.palette
        return table[np.asarray(classes, np.uint8)]


def _frozen(rows: list[list[int]]) -> np.ndarray:
    a = np.array(rows, np.uint8).reshape(-1, 3)
    a.setflags(write=False)
    return a


# The label colours of the CMP facades as distributed with pix2pix, measured on the 400 real label maps of
# /work/shared/data/facades/train (the right halves): pixels whose 7x7 neighbourhood stays within 8 grey
# levels of them (flat region interiors, away from JPEG-blurred edges; 8.2 M pixels) were binned into 4-level
# RGB cubes, the most populated bins taken greedily at least 40 levels apart (exactly 12 such peaks exist),
# and each colour is the median of the interior pixels within 20 of its peak, with a 254 read as 255 and a 1
# as 0 (JPEG noise cannot overshoot a saturated channel, so there the median sits one level inside).
# They lie on MATLAB's jet, rgb = clip(1.5 - |4x - (3, 2, 1)|), at x = 0.0932 + 0.0783 k for k = 0..11
# (within 2 grey levels), so the position on the colour map gives the class index. The order checks out
# against the regions: 0 fills the top and sides (sky, neighbours, the black wedges of rectified photos),
# 1 is the large wall, 2 the most frequent remaining class in grids, 3 and 11 sit lowest (doors, shop
# fronts), 9 forms wide horizontal bands, 10 tall thin bars, 7 flanks windows (shutters).
FACADES = LabelSet(
    "facades",
    ("background", "facade", "window", "door", "cornice", "sill", "balcony", "blind", "deco", "molding",
     "pillar", "shop"),
    _frozen([
        [0, 0, 222],       # background
        [0, 48, 255],      # facade
        [0, 128, 255],     # window
        [0, 207, 255],     # door
        [32, 255, 224],    # cornice
        [112, 255, 142],   # sill
        [192, 255, 63],    # balcony
        [255, 240, 0],     # blind
        [255, 159, 0],     # deco
        [255, 80, 0],      # molding
        [253, 0, 0],       # pillar
        [174, 0, 0],       # shop
    ]),
)

# Cityscapes, as its own scripts (cityscapesScripts, labels.py) colour it and as pix2pix's cityscapes
# evaluation scores it: the 19 training classes; every other label's colour is void. Colours shared by a
# void label and a class (polegroup = pole, license plate = car) count as the class.
CITYSCAPES = LabelSet(
    "cityscapes",
    ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
     "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle"),
    _frozen([
        [128, 64, 128], [244, 35, 232], [70, 70, 70], [102, 102, 156], [190, 153, 153], [153, 153, 153],
        [250, 170, 30], [220, 220, 0], [107, 142, 35], [152, 251, 152], [70, 130, 180], [220, 20, 60],
        [255, 0, 0], [0, 0, 142], [0, 0, 70], [0, 60, 100], [0, 80, 100], [0, 0, 230], [119, 11, 32],
    ]),
    ignore=_frozen([
        [0, 0, 0], [111, 74, 0], [81, 0, 81], [250, 170, 160], [230, 150, 140], [180, 165, 180],
        [150, 100, 100], [150, 120, 90], [0, 0, 90], [0, 0, 110],
    ]),
)

LABEL_SETS = {s.name: s for s in (FACADES, CITYSCAPES)}


def label_set(name: str) -> LabelSet:
    if name not in LABEL_SETS:
        raise Pix2PixError(f"unknown label set {name!r}; known: {', '.join(LABEL_SETS)}")
    return LABEL_SETS[name]


# ------------------------------------------------------------------------------------ class maps


def colour_match(rgb: np.ndarray, labels: LabelSet) -> float:
    """Fraction of the pixels within COLOUR_TOLERANCE of a colour of ``labels`` (its void colours included)."""
    pal = np.concatenate([labels.palette, labels.ignore]).astype(np.float32)
    flat = np.asarray(rgb).reshape(-1, 3).astype(np.float32)
    d2 = ((flat[:, None, :] - pal[None]) ** 2).sum(-1).min(1)
    return float((d2 <= COLOUR_TOLERANCE ** 2).mean())


def colour_class_map(rgb: np.ndarray, labels: LabelSet, where: str | Path) -> np.ndarray:
    """Class indices of a colour label image; an image in other colours is an error, not a guess."""
    rgb = np.asarray(rgb)
    sample = rgb[::4, ::4]
    if colour_match(sample, labels) < MIN_MATCHING:
        raise Pix2PixError(f"{where}: its colours are not the '{labels.name}' label colours "
                           f"({colour_match(sample, labels):.0%} of pixels near one); "
                           "is the segmenter for other classes, or is this not a label map?")
    return labels.class_map(rgb)


def index_class_map(path: Path, labels: LabelSet) -> np.ndarray:
    """A ``labels/STEM.png`` image of class indices, checked against the label set."""
    try:
        with Image.open(path) as im:
            classes = np.asarray(im.convert("L") if im.mode not in ("L", "P") else im)
    except (OSError, ValueError) as e:
        raise Pix2PixError(f"{path}: not a readable class index image ({e})") from None
    bad = classes[(classes >= len(labels.classes)) & (classes != IGNORE)]
    if bad.size:
        raise Pix2PixError(f"{path}: holds class {int(bad.max())}, but the segmenter's '{labels.name}' label set "
                           f"has {len(labels.classes)} classes; is the segmenter for other classes?")
    return classes


def resize_classes(classes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a class map to (width, height)."""
    if classes.shape[::-1] == tuple(size):
        return classes
    return np.asarray(Image.fromarray(classes, "L").resize(size, Image.NEAREST))


def read_truth(labels: LabelSet, source: Path | Image.Image, where: str | Path | None = None,
               index: Path | None = None) -> np.ndarray:
    """The true class map of a label image (a file, or a PIL image read from ``where``), at its size: from the
    class index image ``index`` when that exists (resized, nearest), from ``source`` itself when it is a
    one-channel or palette file (an index image), else from its colours (nearest palette colour)."""
    if isinstance(source, Image.Image):
        image, where = source, where or "label image"
    else:
        with Image.open(source) as im:
            image, where = im.copy(), source
        if index is None and image.mode in ("L", "P"):
            index = Path(source)
    if index is not None and Path(index).exists():
        return resize_classes(index_class_map(Path(index), labels), image.size)
    return colour_class_map(np.asarray(image.convert("RGB")), labels, where)
