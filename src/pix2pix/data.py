"""Paired image data: the paper's aligned A|B layout, the two-folder layout, and single images.

Layouts under a dataset root ``DATA``:

* aligned (the paper's datasets): ``DATA/{train,val,test}/*.jpg``, each image A on the left, B on the right;
* two folders: ``DATA/A/{split}/x.png`` and ``DATA/B/{split}/x.png``, paired by file name.

Random crop and flip are drawn once per example and applied to A and B alike. The draw depends only on
(seed, epoch, example index), so it is the same whatever the number of loader workers and after a resume.
Unreadable images become error records (they travel through the loader, see :mod:`pix2pix.batches`), so the
user sees one clear line instead of a worker traceback. Pixels map to [-1, 1] and back with one pair of
functions, :func:`to_unit` and :func:`from_unit`, the reference's arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from .config import DataConfig
from .errors import Pix2PixError

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
IGNORED = {"Thumbs.db", "desktop.ini"}
SPLITS = ("train", "val", "test")
MODES = {1: "L", 3: "RGB", 4: "RGBA"}  # channels -> Pillow mode
# The largest image decoded: Pillow's decompression-bomb threshold, where it only warns, made an error here.
MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485


@dataclass(frozen=True)
class Pair:
    a: Path  # the aligned A|B image, or the A image of a two-folder pair
    b: Path | None = None  # the B image of a two-folder pair


# ----------------------------------------------------------------------------------------- images


def open_image(path: Path, channels: int) -> Image.Image:
    """Decode ``path`` fully and convert it to 1 (L), 3 (RGB) or 4 (RGBA) channels; 16-bit is scaled to 8."""
    if channels not in (1, 3, 4):
        raise Pix2PixError(f"image files hold 1, 3 or 4 channels, not {channels}; set --in-channels/--out-channels")
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
        raise Pix2PixError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError, SyntaxError) as e:
        raise Pix2PixError(f"{path}: not a readable image ({_reason(e)})") from None
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        # 16-bit integer images (Pillow's I;16 and I modes) map 0..65535 onto 0..255 whatever their content;
        # float images are taken as 0..1.
        arr = np.asarray(img, dtype=np.float64)
        scale = 255.0 if img.mode == "F" else 255.0 / 65535.0
        img = Image.fromarray(np.clip(arr * scale + 0.5, 0, 255).astype(np.uint8), "L")
    return img.convert(MODES[channels])


def _reason(e: Exception) -> str:
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    return text.replace(" (probably truncated)", "")


# The one pixel mapping pair, with the reference's arithmetic (its checkpoints give its outputs bit for bit).


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> float32 in [-1, 1]: (x / 255 - 0.5) / 0.5."""
    return (x.float().div(255) - 0.5) / 0.5


def from_unit(y: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> uint8 pixels: (y + 1) / 2 * 255, clamped and truncated."""
    return ((y.detach().float().clamp(-1, 1) + 1) / 2 * 255).to(torch.uint8)


def to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL image -> (C, H, W) float in [-1, 1] (:func:`to_unit`)."""
    t = to_unit(torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()))
    return t.unsqueeze(0) if t.ndim == 2 else t.permute(2, 0, 1)


def to_image(t: torch.Tensor) -> Image.Image:
    """(C, H, W) in [-1, 1] -> PIL image (:func:`from_unit`)."""
    arr = from_unit(t.cpu()).permute(1, 2, 0).numpy()
    channels = arr.shape[2]
    if channels not in (1, 3, 4):
        raise Pix2PixError(f"an image file holds 1, 3 or 4 channels; this output has {channels}")
    return Image.fromarray(arr[:, :, 0] if channels == 1 else arr, MODES[channels])


def split_ab(img: Image.Image, path: Path) -> tuple[Image.Image, Image.Image]:
    w, h = img.size
    if w % 2:
        raise Pix2PixError(f"{path}: width {w} is odd, so it cannot be split into equal A|B halves; "
                           "an aligned image holds A on the left and B on the right")
    return img.crop((0, 0, w // 2, h)), img.crop((w // 2, 0, w, h))


# ------------------------------------------------------------------------------------ discovery


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTS


def list_images(folder: Path, unique_stems: bool = False) -> tuple[list[Path], list[str]]:
    """The image files directly in ``folder`` (sorted) and one problem line per stray file, or per image
    whose name without extension repeats another's when ``unique_stems`` (pairing by name needs that)."""
    images, problems, stems = [], [], {}
    for p in sorted(folder.iterdir()):
        if p.is_dir() or p.name.startswith(".") or p.name in IGNORED:
            continue
        if not is_image_file(p):
            problems.append(f"{p}: not an image file (expected {', '.join(sorted(IMAGE_EXTS))})")
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


def check_dataset(root: Path, in_channels: int = 3, out_channels: int = 3) -> tuple[int, list[str]]:
    """Decode every image of every split; return (number of pairs checked, problems found)."""
    root = Path(root)
    if not root.is_dir():
        raise Pix2PixError(f"{root}: no such folder")
    splits = available_splits(root)
    if not splits:
        return 0, [f"{root}: no train, val or test split (expected DATA/SPLIT/*.jpg or DATA/A/SPLIT + DATA/B/SPLIT)"]
    count, problems = 0, []
    for split in splits:
        try:
            pairs, split_problems = scan_split(root, split)
        except Pix2PixError as e:
            problems.append(str(e))
            continue
        problems += split_problems
        for pair in pairs:
            count += 1
            try:
                load_pair(pair, "AtoB", in_channels, out_channels)
            except Pix2PixError as e:
                problems.append(str(e))
    return count, problems


def load_pair(pair: Pair, direction: str, in_channels: int, out_channels: int) -> tuple[Image.Image, Image.Image]:
    """(input, target) images of a pair, in the training direction."""
    src_ch, dst_ch = (in_channels, out_channels) if direction == "AtoB" else (out_channels, in_channels)
    if pair.b is None:
        # One decode serves both halves (in the richest mode either needs); each is then converted.
        a, b = split_ab(open_image(pair.a, max(src_ch, dst_ch)), pair.a)
        a, b = a.convert(MODES[src_ch]), b.convert(MODES[dst_ch])
    else:
        a, b = open_image(pair.a, src_ch), open_image(pair.b, dst_ch)
        if a.size != b.size:
            raise Pix2PixError(f"{pair.a}: size {a.size[0]}x{a.size[1]} differs from its B image {pair.b} "
                               f"({b.size[0]}x{b.size[1]})")
    return (a, b) if direction == "AtoB" else (b, a)


# ----------------------------------------------------------------------------------- transforms


def _scale_width(img: Image.Image, width: int, min_height: int) -> Image.Image:
    w, h = img.size
    if w == width and h >= min_height:
        return img
    return img.resize((width, int(max(width * h / w, min_height))), Image.BICUBIC)


def resize_pair(a: Image.Image, b: Image.Image, cfg: DataConfig, train: bool) -> tuple[Image.Image, Image.Image]:
    """The deterministic part of --preprocess: the resize (to --load-size when training, --crop-size when
    testing), the same for every epoch."""
    p, load, crop = cfg.preprocess, cfg.load_size, cfg.crop_size
    if p == "resize_and_crop":
        size = load if train else crop
        a, b = a.resize((size, size), Image.BICUBIC), b.resize((size, size), Image.BICUBIC)
    elif p in ("scale_width", "scale_width_and_crop"):
        width = load if train else crop
        a, b = _scale_width(a, width, crop), _scale_width(b, width, crop)
    return a, b


def draw_jitter(cfg: DataConfig, width: int, height: int, rng: np.random.Generator,
                path: Path) -> tuple[int, int, bool]:
    """The random part of --preprocess for one example: crop corner (x, y) and whether to flip."""
    crop, x, y = cfg.crop_size, 0, 0
    if crops(cfg):
        if width < crop or height < crop:
            raise Pix2PixError(f"{path}: {width}x{height} is smaller than --crop-size {crop} after "
                               f"--preprocess {cfg.preprocess}")
        x, y = int(rng.integers(0, width - crop + 1)), int(rng.integers(0, height - crop + 1))
    return x, y, bool(cfg.flip and rng.random() < 0.5)


def crops(cfg: DataConfig) -> bool:
    return cfg.preprocess in ("resize_and_crop", "crop", "scale_width_and_crop")


def transform_pair(a: Image.Image, b: Image.Image, cfg: DataConfig, rng: np.random.Generator | None,
                   path: Path) -> tuple[Image.Image, Image.Image]:
    """Apply --preprocess to both images with the same parameters; ``rng=None`` is the deterministic
    test-time version (resize to --crop-size, no random crop, no flip)."""
    a, b = resize_pair(a, b, cfg, train=rng is not None)
    if rng is None:
        return a, b
    x, y, flip = draw_jitter(cfg, *a.size, rng, path)
    if crops(cfg):
        c = cfg.crop_size
        a, b = a.crop((x, y, x + c, y + c)), b.crop((x, y, x + c, y + c))
    if flip:
        a, b = a.transpose(Image.FLIP_LEFT_RIGHT), b.transpose(Image.FLIP_LEFT_RIGHT)
    return a, b


# ---------------------------------------------------------------------------------------- dataset


def jitter_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The random stream of one example's jitter in one epoch: the same whatever loads it, and after a resume."""
    return np.random.default_rng([seed, epoch, index])


class PairDataset(Dataset):
    """Indexed by (epoch, i) when training (so the jitter is a function of both), or by i for testing."""

    def __init__(self, pairs: list[Pair], cfg: DataConfig, in_channels: int, out_channels: int,
                 train: bool, seed: int = 0):
        self.pairs, self.cfg, self.train, self.seed = pairs, cfg, train, seed
        self.in_channels, self.out_channels = in_channels, out_channels

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        epoch, i = key if isinstance(key, tuple) else (0, key)
        pair = self.pairs[i]
        try:
            a, b = load_pair(pair, self.cfg.direction, self.in_channels, self.out_channels)
            a, b = transform_pair(a, b, self.cfg, jitter_rng(self.seed, epoch, i) if self.train else None, pair.a)
        except Pix2PixError as e:
            return {"error": str(e), "path": str(pair.a)}
        return {"A": to_tensor(a), "B": to_tensor(b), "path": str(pair.a), "index": i}
