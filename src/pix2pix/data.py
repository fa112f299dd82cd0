"""Paired image data: the paper's aligned A|B layout, the two-folder layout, and single images.

Layouts under a dataset root ``DATA``:

* aligned (the paper's datasets): ``DATA/{train,val,test}/*.jpg``, each image A on the left, B on the right;
* two folders: ``DATA/A/{split}/x.png`` and ``DATA/B/{split}/x.png``, paired by file name.

Random crop and flip are drawn once per example and applied to A and B alike. The draw depends only on
(seed, epoch, example index), so it is the same whatever the number of loader workers and after a resume.
Unreadable images travel through the loader as error records and are raised (or skipped, with
``--skip-bad-images``) in the main process, so the user sees one clear line instead of a worker traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset, Sampler

from .config import DataConfig
from .errors import Pix2PixError
from .speed import device_free_bytes

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
IGNORED = {"Thumbs.db", "desktop.ini"}
SPLITS = ("train", "val", "test")
MODES = {1: "L", 3: "RGB", 4: "RGBA"}  # channels -> Pillow mode


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


# ------------------------------------------------------------------------------- dataset, loader


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


def collate(items: list[dict]) -> dict:
    """Stack good examples; carry the bad ones' messages along as ``errors``."""
    good = [it for it in items if "error" not in it]
    batch: dict = {"errors": [it["error"] for it in items if "error" in it], "paths": [it["path"] for it in good]}
    if good:
        shapes = {tuple(it["A"].shape) for it in good} | {tuple(it["B"].shape) for it in good}
        if len({s[1:] for s in shapes}) > 1:
            batch["errors"].append(f"{good[0]['path']}: images in one batch differ in size; use --batch-size 1 "
                                   "or a --preprocess that crops to --crop-size")
            return batch | {"paths": []}
        batch["A"] = torch.stack([it["A"] for it in good])
        batch["B"] = torch.stack([it["B"] for it in good])
    return batch


class EpochSampler(Sampler):
    """Yields (epoch, index) for one epoch: a permutation drawn from (seed, epoch), from position ``start``.

    ``share`` picks this process's part of an epoch's order: under torchrun each process takes its share of
    every global batch (``distributed.rank_share``), so N processes at batch B see, step by step, the examples
    one process at batch N * B sees. Without it, a process takes the whole order."""

    def __init__(self, n: int, seed: int, shuffle: bool = True, share=None):
        self.n, self.seed, self.shuffle, self._share = n, seed, shuffle, share
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.n)
        return np.random.default_rng([self.seed, epoch, 1]).permutation(self.n)

    def share(self, epoch: int) -> np.ndarray:
        """This process's examples of ``epoch``, in order."""
        order = self.order(epoch)
        return order if self._share is None else self._share(order)

    def __iter__(self):
        for i in self.share(self.epoch)[self.start:]:
            yield self.epoch, int(i)

    def __len__(self) -> int:
        return len(self.share(self.epoch)) - self.start


class PreloadedPairs:
    """The training split decoded and resized once and held as uint8 on the training device (``--preload``);
    each batch is cropped and flipped there with the draws :class:`PairDataset` makes, from (seed, epoch,
    index), so the batches are bit-identical to the loader's, without decoding or worker processes."""

    def __init__(self, pairs: list[Pair], cfg: DataConfig, in_channels: int, out_channels: int, seed: int,
                 device: torch.device, threads: int = 4):
        from concurrent.futures import ThreadPoolExecutor  # Pillow releases the GIL while decoding

        self.pairs, self.cfg, self.seed, self.device = pairs, cfg, seed, device

        def decode(pair: Pair) -> tuple[np.ndarray, np.ndarray]:
            a, b = resize_pair(*load_pair(pair, cfg.direction, in_channels, out_channels), cfg, train=True)
            return _chw(a), _chw(b)

        with ThreadPoolExecutor(max(1, threads)) as pool:
            arrays = list(pool.map(decode, pairs))
        sizes = {(a.shape[1:], b.shape[1:]) for a, b in arrays}
        if len(sizes) > 1:
            raise Pix2PixError("--preload needs every training pair at one size after --preprocess "
                               f"{cfg.preprocess}; these differ ({len(sizes)} sizes): use --preload no")
        self.A = torch.from_numpy(np.stack([a for a, _ in arrays])).to(device)
        self.B = torch.from_numpy(np.stack([b for _, b in arrays])).to(device)

    @staticmethod
    def estimate_bytes(pair: Pair, n: int, cfg: DataConfig, in_channels: int, out_channels: int) -> int:
        """Memory for ``n`` pairs like ``pair`` after the resize."""
        a, b = resize_pair(*load_pair(pair, cfg.direction, in_channels, out_channels), cfg, train=True)
        return n * (_chw(a).nbytes + _chw(b).nbytes)

    def batches(self, sampler: EpochSampler, batch_size: int):
        """Like iterating a loader over ``sampler``: dicts with A and B (B, C, crop, crop) in [-1, 1]."""
        indices = [i for _, i in sampler]
        c, (h, w) = self.cfg.crop_size, self.A.shape[2:]
        for k in range(0, len(indices), batch_size):
            chosen = indices[k:k + batch_size]
            a_list, b_list = [], []
            for i in chosen:
                x, y, flip = draw_jitter(self.cfg, w, h, jitter_rng(self.seed, sampler.epoch, i), self.pairs[i].a)
                a, b = self.A[i], self.B[i]
                if crops(self.cfg):
                    a, b = a[:, y:y + c, x:x + c], b[:, y:y + c, x:x + c]
                if flip:
                    a, b = a.flip(-1), b.flip(-1)
                a_list.append(a)
                b_list.append(b)
            yield {"A": to_unit(torch.stack(a_list)), "B": to_unit(torch.stack(b_list)), "errors": [],
                   "paths": [str(self.pairs[i].a) for i in chosen]}


def _chw(img: Image.Image) -> np.ndarray:
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def make_loader(dataset: PairDataset, batch_size: int, workers: int, sampler: Sampler | None = None,
                pin_memory: bool = False) -> DataLoader:
    return DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, shuffle=False, num_workers=workers,
        collate_fn=collate, pin_memory=pin_memory, persistent_workers=workers > 0,
        # A private generator: creating an iterator must not consume the global RNG that drives dropout.
        generator=torch.Generator().manual_seed(0),
    )


class TrainingBatches:
    """The training split as batches, epoch after epoch, from wherever it is cheapest: held on the device
    (``--preload``) or decoded by loader processes. :meth:`stream` yields the batches that hold images, each
    with its place in its epoch, so that the loop can count steps and mark epoch ends without knowing which."""

    def __init__(self, pairs: list[Pair], cfg: DataConfig, in_channels: int, out_channels: int, seed: int,
                 device: torch.device, fast: bool, share=None, bad_images: bool = False):
        self.cfg = cfg
        self.sampler = EpochSampler(len(pairs), seed, share=share)
        self.preloaded = None if bad_images else _preload(pairs, cfg, in_channels, out_channels, seed, device, fast)
        if self.preloaded is None:
            dataset = PairDataset(pairs, cfg, in_channels, out_channels, train=True, seed=seed)
            self.loader = make_loader(dataset, cfg.batch_size, cfg.workers, self.sampler,
                                      pin_memory=device.type == "cuda")

    def epoch(self, epoch: int, start_batch: int = 0):
        """The batches of ``epoch`` from batch ``start_batch`` on (a resume starts mid-epoch)."""
        self.sampler.set_epoch(epoch, start_batch * self.cfg.batch_size)
        return self.preloaded.batches(self.sampler, self.cfg.batch_size) if self.preloaded else iter(self.loader)

    def stream(self, epoch: int, start_batch: int, epochs: int, on_errors):
        """Yield ``(batch, epoch, batches done in it, ends the epoch)`` for every batch that holds images, up to
        the end of epoch ``epochs - 1``. ``on_errors(messages)`` sees each batch's unreadable images (it raises,
        or records them for --skip-bad-images); a batch of nothing but those is passed over."""
        for e in range(epoch, epochs):
            held, done = None, start_batch if e == epoch else 0
            for batch in self.epoch(e, done):
                done += 1
                if batch["errors"]:
                    on_errors(batch["errors"])
                if "A" not in batch:
                    continue
                if held is not None:  # one batch of look-ahead: only the last one ends the epoch
                    yield held + (False,)
                held = (batch, e, done)
            if held is not None:
                batch, e_, _ = held
                yield batch, e_, done, True


def _preload(pairs: list[Pair], cfg: DataConfig, in_channels: int, out_channels: int, seed: int,
             device: torch.device, fast: bool) -> PreloadedPairs | None:
    """The training split held on the device when --preload says so, or (auto) on the fast path when it
    takes at most a quarter of the device's free memory (an eighth of RAM on the CPU)."""
    if cfg.preload == "no" or (cfg.preload == "auto" and not fast):
        return None
    try:
        need = PreloadedPairs.estimate_bytes(pairs[0], len(pairs), cfg, in_channels, out_channels)
    except Pix2PixError:
        if cfg.preload == "yes":
            raise
        return None  # the loader reports the bad image (or skips it) as usual
    if need > device_free_bytes(device) // (4 if device.type == "cuda" else 8):
        if cfg.preload == "yes":
            raise Pix2PixError(f"--preload yes: the training split needs {need / 2**30:.1f} GiB on "
                               f"{device.type}, more than it can spare; use --preload auto or no")
        return None
    try:
        return PreloadedPairs(pairs, cfg, in_channels, out_channels, seed, device, threads=max(1, cfg.workers))
    except Pix2PixError:
        if cfg.preload == "yes":
            raise
        return None
