"""Dataset layout tools: pair two folders into the paper's aligned A|B images, and split a dataset into
train/val/test. The two follow on: ``combine`` then ``split`` (or ``combine --val --test``) gives a split dataset.

``combine(A, B, OUT)`` matches files by name without extension (``A/x.jpg`` with ``B/x.png``) and writes
``OUT/{split}/x.png``: A on the left, B on the right, as RGB PNG (lossless; an alpha channel is dropped,
grayscale becomes RGB, and the loader converts back with ``--in-channels``/``--out-channels``). If A and B
have split folders (``train``, ``val``, ``test``) each split is paired on its own; flat folders make a
``train`` split, or, with ``val``/``test`` fractions, are split as :func:`split_folder` splits, so the result
is always a dataset that training accepts. Files without a partner, pairs of
different sizes and unreadable images are skipped and reported, never fixed: resizing a label map to match a
photo would silently change the labels. Arrays (``.npy``, TIFF bands, 16-bit images) are paired into one
array of their kind, A's columns then B's (``x.npy``; a one-channel 16-bit pair as a 16-bit PNG), when both
sides have one shape and type; any other pair of arrays is skipped and reported (the two-folder layout, which
training reads as it is, is the one for it). Everything is written into a hidden sibling folder renamed to
``OUT`` at the end, so a folder named ``OUT`` is always complete.

``split_folder(DIR)`` splits a dataset that has no val or test yet: a flat folder of aligned images moves into
``DIR/{train,val,test}``, and a dataset whose images are all in ``DIR/train`` (what ``combine`` makes of flat
folders) gives the chosen fractions of them to ``DIR/val`` and ``DIR/test``. Which image goes where is a
function of the sorted file names and the seed only, the same rule in both cases and in ``combine``.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..data.pairs import SPLITS, list_images
from ..data.rasters import as_array, read_raster
from ..errors import Pix2PixError


@dataclass
class CombineReport:
    pairs: int  # aligned images written, all splits together
    problems: list[str] = field(default_factory=list)  # one line per skipped file, pair or split
    splits: dict[str, int] = field(default_factory=dict)  # aligned images written per split


def combine(a_dir: Path, b_dir: Path, out: Path, val: float = 0.0, test: float = 0.0, seed: int = 0) -> CombineReport:
    """Pair ``a_dir`` and ``b_dir`` by file name into aligned A|B images under ``out`` (see the module doc);
    flat folders are split by the ``val`` and ``test`` fractions and ``seed`` as :func:`split_folder` splits."""
    a_dir, b_dir, out = Path(a_dir), Path(b_dir), Path(out)
    _check_fractions(val, test, seed)
    for flag, folder in (("--a", a_dir), ("--b", b_dir)):
        if not folder.is_dir():
            raise Pix2PixError(f"{flag} {folder}: no such folder")
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        raise Pix2PixError(f"--out {out} already exists; choose a new folder, or remove it to combine again")

    a_splits, b_splits = _split_folders(a_dir), _split_folders(b_dir)
    if bool(a_splits) != bool(b_splits):
        with_splits, without = (a_dir, b_dir) if a_splits else (b_dir, a_dir)
        raise Pix2PixError(f"{with_splits} has split folders ({', '.join(a_splits or b_splits)}) but {without} has "
                           "none; give both folders the same layout (flat, or train/val/test inside each)")
    if a_splits and (val or test):
        raise Pix2PixError(f"--a {a_dir} and --b {b_dir} are already split into train/val/test folders; --val and "
                           "--test split flat folders only (leave them out to keep the folders' split)")
    problems: list[str] = []
    if a_splits:
        jobs = [(s, a_dir / s, b_dir / s) for s in SPLITS if s in a_splits and s in b_splits]
        for s in SPLITS:
            if (s in a_splits) != (s in b_splits):
                have, lack = (a_dir, b_dir) if s in a_splits else (b_dir, a_dir)
                problems.append(f"{have / s}: {lack} has no '{s}' folder to pair it with; split skipped")
        for folder in (a_dir, b_dir):
            loose = _images_by_stem(folder, [])
            if loose:
                problems.append(f"{folder}: {len(loose)} image(s) beside the split folders were ignored")
    else:
        jobs = [("train", a_dir, b_dir)]  # flat folders: everything is training data

    plan: list[tuple[str, str, Path, Path]] = []  # (split, stem, A file, B file)
    for split, a_split, b_split in jobs:
        a_files, b_files = _images_by_stem(a_split, problems), _images_by_stem(b_split, problems)
        a_stems, b_stems = a_files.keys(), b_files.keys()
        problems += [f"{a_files[s]}: no B image named {s}.* in {b_split}" for s in sorted(a_stems - b_stems)]
        problems += [f"{b_files[s]}: no A image named {s}.* in {a_split}" for s in sorted(b_stems - a_stems)]
        plan += [(split, s, a_files[s], b_files[s]) for s in sorted(a_stems & b_stems)]
    if not plan:
        where = " in any split" if a_splits else ""
        raise Pix2PixError(f"--a {a_dir} and --b {b_dir} have no image names in common{where}; pairs are matched by "
                           "file name without extension (A/x.jpg with B/x.png)")
    where = f"--a {a_dir}, --b {b_dir}"
    _split_sizes(len(plan), val, test, where)  # before the work, when even every pair would be too few

    counts: dict[str, int] = {}
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.combine-", dir=out.parent))
    except OSError as e:
        raise Pix2PixError(f"--out {out}: cannot write there ({e.strerror})") from None
    try:
        for split, stem, a_path, b_path in plan:
            try:
                a, b = read_raster(a_path, None), read_raster(b_path, None)
                if isinstance(a, Image.Image) and isinstance(b, Image.Image):
                    a, b = a.convert("RGB"), b.convert("RGB")
                else:  # arrays (or 16-bit images): side by side in one array of their kind
                    _combine_arrays(as_array(a), as_array(b), a_path, b_path, tmp / split, stem)
                    counts[split] = counts.get(split, 0) + 1
                    continue
            except Pix2PixError as e:
                problems.append(f"{e}; pair skipped")
                continue
            if a.size != b.size:
                problems.append(f"{a_path}: A is {a.width}x{a.height} but its B image {b_path} is "
                                f"{b.width}x{b.height}; pair skipped (make them the same size)")
                continue
            aligned = Image.new("RGB", (a.width * 2, a.height))  # (W_A + W_B, H): A left, B right
            aligned.paste(a, (0, 0))
            aligned.paste(b, (a.width, 0))
            (tmp / split).mkdir(exist_ok=True)
            aligned.save(tmp / split / f"{stem}.png")
            counts[split] = counts.get(split, 0) + 1
        if not counts:
            raise Pix2PixError(f"--a {a_dir}, --b {b_dir}: no pair could be combined ({len(problems)} problem(s); "
                               f"the first: {problems[0]})")
        if val or test:
            counts = _move_into_splits(tmp, list_images(tmp / "train")[0], val, test, seed, where)
        if out.is_dir():
            out.rmdir()  # empty, as checked above
        os.rename(tmp, out)
    except OSError as e:
        raise Pix2PixError(f"--out {out}: cannot write there ({e.strerror or e})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return CombineReport(sum(counts.values()), problems, {s: counts[s] for s in SPLITS if counts.get(s)})


def _combine_arrays(a: np.ndarray, b: np.ndarray, a_path: Path, b_path: Path, folder: Path, stem: str) -> Path:
    """Write an aligned array pair: a 16-bit PNG for one-channel 16-bit data, else .npy (H x 2W x C)."""
    if a.shape != b.shape or a.dtype != b.dtype:
        raise Pix2PixError(f"{a_path}: A is {a.shape} {a.dtype} but its B file {b_path} is {b.shape} {b.dtype}; an "
                           "aligned array holds both sides in one array of one shape and type (keep the two-folder "
                           "layout DATA/A/SPLIT + DATA/B/SPLIT, which training reads as it is)")
    folder.mkdir(exist_ok=True)
    both = np.concatenate([a, b], axis=1)
    if both.dtype == np.uint16 and both.shape[2] == 1:
        path = folder / f"{stem}.png"
        Image.fromarray(both[:, :, 0]).save(path)
    else:
        path = folder / f"{stem}.npy"
        np.save(path, both)
    return path


def _split_folders(folder: Path) -> list[str]:
    return [s for s in SPLITS if (folder / s).is_dir()]


def _images_by_stem(folder: Path, problems: list[str]) -> dict[str, Path]:
    """The image files directly in ``folder`` by stem; stray and ambiguous files go to ``problems``."""
    images, found = list_images(folder, unique_stems=True)
    problems += found
    return {p.stem: p for p in images}


def split_folder(folder: Path, val: float = 0.1, test: float = 0.1, seed: int = 0) -> dict[str, int]:
    """Split ``folder`` into train/val/test (see the module doc); return the count of each split.

    ``val`` and ``test`` are fractions of the images (rounded to whole images). Non-image files stay where they
    are. A split that gets no image gets no folder, since an empty split is not a valid one. A split folder
    itself (``DIR/train``) and a dataset that already has val or test are refused, so nothing is ever nested
    (``train/train``) or split twice.
    """
    folder = Path(folder)
    _check_fractions(val, test, seed)
    if not folder.is_dir():
        raise Pix2PixError(f"{folder}: no such folder")
    siblings = [s for s in SPLITS if (folder.parent / s).is_dir()]
    if folder.name == "train" or (folder.name in SPLITS and len(siblings) > 1):  # a dataset's split, not a folder
        raise Pix2PixError(f"{folder} is the '{folder.name}' split of {folder.parent}; split {folder.parent} instead "
                           f"(splitting {folder} itself would nest {folder.name}/train)")
    done = [s for s in SPLITS if s != "train" and (folder / s).exists()]
    if done:
        raise Pix2PixError(f"{folder} already has {', '.join(done)}, so it is split already (to split it again, "
                           f"move their images back into {folder / 'train'} and remove those folders)")
    loose, _ = list_images(folder)  # other files stay where they are
    in_train = list_images(folder / "train")[0] if (folder / "train").is_dir() else []
    if in_train:  # what combine makes of flat folders: give val and test their share
        if loose:
            raise Pix2PixError(f"{folder} has images both directly in it and in {folder / 'train'}; move them into "
                               "one place to split them")
        source, images = folder / "train", in_train
    else:
        source, images = folder, loose
    if not images:
        raise Pix2PixError(f"{source}: no image files directly in it to split")
    return _move_into_splits(folder, images, val, test, seed, str(folder))


def _check_fractions(val: float, test: float, seed: int) -> None:
    for flag, value in (("--val", val), ("--test", test)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and 0 <= value < 1):
            raise Pix2PixError(f"{flag} {value}: expected a fraction of the images, from 0 up to (not including) 1")
    if val + test >= 1:
        raise Pix2PixError(f"--val {val} and --test {test} add up to {val + test:g}, which leaves nothing to train "
                           "on; their sum must be below 1")
    if not isinstance(seed, int) or seed < 0:
        raise Pix2PixError(f"--seed {seed}: expected a whole number >= 0")


def _split_sizes(n: int, val: float, test: float, where: str) -> dict[str, int]:
    """How many of ``n`` images each split gets: ``val`` and ``test`` rounded to whole images, the rest train."""
    n_val, n_test = math.floor(n * val + 0.5), math.floor(n * test + 0.5)
    if n - n_val - n_test < 1:
        raise Pix2PixError(f"{where}: {n} image(s) are too few for --val {val} and --test {test}: none would be left "
                           "to train on")
    return {"train": n - n_val - n_test, "val": n_val, "test": n_test}


def _move_into_splits(folder: Path, images: list[Path], val: float, test: float, seed: int,
                      where: str) -> dict[str, int]:
    """Move ``images`` (sorted by name) into ``folder/{train,val,test}``: the one rule of which goes where, a
    function of their order and ``seed`` only. An image already in its split stays; on an error every moved
    image goes back, since a half-split folder would mislead."""
    counts = _split_sizes(len(images), val, test, where)
    order = np.random.default_rng(seed).permutation(len(images))
    split_of = {int(i): "val" for i in order[:counts["val"]]}
    split_of |= {int(i): "test" for i in order[counts["val"]:counts["val"] + counts["test"]]}
    made: list[Path] = []
    moved: list[tuple[Path, Path]] = []
    try:
        for s in SPLITS:
            if counts[s] and not (folder / s).is_dir():
                (folder / s).mkdir()
                made.append(folder / s)
        for i, path in enumerate(images):
            dest = folder / split_of.get(i, "train") / path.name
            if dest != path:
                os.rename(path, dest)
                moved.append((dest, path))
    except OSError as e:
        for dest, path in reversed(moved):
            os.rename(dest, path)
        for d in made:
            d.rmdir()
        raise Pix2PixError(f"{where}: cannot move images into split folders ({e.strerror or e}); "
                           "nothing was moved") from None
    return counts


# -------------------------------------------------------------------------------- pix2pixHD's layout

HD_SIDES = ("label", "inst", "img")  # pix2pixHD's {split}_label, {split}_inst, {split}_img folders


def from_pix2pixhd(src: Path, out: Path) -> tuple[dict[str, int], bool]:
    """pix2pixHD's dataset layout (``SPLIT_label/``, optional ``SPLIT_inst/``, ``SPLIT_img/``, paired by sorted
    order as its loader pairs them) as ours in two folders: ``OUT/A/SPLIT/x.png`` the class-index map (or, with
    instance maps, ``x.npy``: uint16 (H, W, 2), class index then instance id, which ``--label-nc N --instance
    --in-channels 2`` reads) and ``OUT/B/SPLIT/x.png`` the photo. Written into a hidden sibling folder renamed to
    ``OUT`` at the end. Returns the pairs per split, and whether they hold instance maps."""
    src, out = Path(src), Path(out)
    if out.exists():
        raise Pix2PixError(f"--out {out}: already exists; name a new folder")
    splits = [s for s in SPLITS if (src / f"{s}_label").is_dir()]
    if not splits:
        raise Pix2PixError(f"--from {src}: no SPLIT_label folder (pix2pixHD's layout: train_label, train_inst, "
                           "train_img)")
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent if out.parent.exists() else None))
    counts, instances = {}, False
    try:
        for split in splits:
            files = {side: sorted(list_images(src / f"{split}_{side}")[0]) if (src / f"{split}_{side}").is_dir()
                     else [] for side in HD_SIDES}
            instances = instances or bool(files["inst"])
            if not files["img"]:
                raise Pix2PixError(f"--from {src}: {split}_label has no {split}_img beside it")
            for side in ("inst", "img"):
                if files[side] and len(files[side]) != len(files["label"]):
                    raise Pix2PixError(f"--from {src}: {len(files['label'])} label maps and {len(files[side])} files "
                                       f"in {split}_{side}; pix2pixHD pairs them in order, so they must be as many")
            for side in "AB":
                (tmp / side / split).mkdir(parents=True)
            for i, label_path in enumerate(files["label"]):
                stem = label_path.stem.removesuffix("_labelIds").removesuffix("_gtFine")
                labels = np.asarray(Image.open(label_path))
                if labels.ndim != 2:
                    raise Pix2PixError(f"{label_path}: a class-index map has one channel, not {labels.shape[2]}")
                if files["inst"]:
                    ids = np.asarray(Image.open(files["inst"][i]))
                    if ids.shape != labels.shape or ids.max() > 65535 or ids.min() < 0:
                        raise Pix2PixError(f"{files['inst'][i]}: not an instance map of {label_path}'s size with ids "
                                           "in 0..65535")
                    np.save(tmp / "A" / split / f"{stem}.npy", np.stack([labels, ids], 2).astype(np.uint16))
                else:
                    shutil.copyfile(label_path, tmp / "A" / split / f"{stem}{label_path.suffix}")
                photo = files["img"][i]
                shutil.copyfile(photo, tmp / "B" / split / f"{stem}{photo.suffix}")
            counts[split] = len(files["label"])
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return counts, instances
