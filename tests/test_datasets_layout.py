"""Layout tools: `combine` pairs two folders into aligned A|B images, `split_folder` splits a flat folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pix2pix.data.pairs import load_pair, scan_split
from pix2pix.datasets.layout import CombineReport, combine, split_folder
from pix2pix.errors import Pix2PixError


def save(path: Path, h: int = 8, w: int = 8, seed: int = 0, mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(arr).convert(mode).save(path)
    return path


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


# -------------------------------------------------------------------------------------------- combine


def test_combine_flat_folders_pairs_by_name_into_train(tmp_path):
    a, b = tmp_path / "A", tmp_path / "B"
    save(a / "x.jpg", seed=1), save(b / "x.png", seed=2)  # the extension may differ
    save(a / "y.png", seed=3), save(b / "y.png", seed=4)
    save(a / "only_a.png"), save(b / "only_b.png")
    save(a / "big.png", 8, 8), save(b / "big.png", 16, 8)
    (a / "notes.txt").write_text("not an image")

    report = combine(a, b, tmp_path / "out")
    assert isinstance(report, CombineReport)
    assert report.pairs == 2 and report.splits == {"train": 2}
    text = "\n".join(report.problems)
    assert "only_a.png: no B image" in text and "only_b.png: no A image" in text
    assert "big.png: A is 8x8 but its B image" in text and "is 8x16" in text
    assert "notes.txt: not an image or array file" in text
    assert len(report.problems) == 4

    pairs, problems = scan_split(tmp_path / "out", "train")
    assert sorted(p.a.name for p in pairs) == ["x.png", "y.png"] and not problems
    left, right = load_pair(pairs[0], "AtoB", 3, 3)
    assert np.array_equal(np.asarray(right), pixels(b / "x.png"))  # lossless: B exactly as it was
    assert np.asarray(left).shape == (8, 8, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["A", "B", "out"]  # no temporary folder left


def test_combine_pairs_each_split_and_reports_what_it_skips(tmp_path):
    a, b = tmp_path / "A", tmp_path / "B"
    for split, n in (("train", 3), ("val", 2)):
        for i in range(n):
            save(a / split / f"{i}.png", seed=i), save(b / split / f"{i}.png", seed=10 + i, mode="L")
    save(a / "test" / "0.png")  # a split only A has
    save(b / "val" / "9.png")  # a name only B has
    save(a / "loose.png")  # beside the split folders

    report = combine(a, b, tmp_path / "out")
    assert report.pairs == 5 and report.splits == {"train": 3, "val": 2}
    text = "\n".join(report.problems)
    assert "'test' folder" in text and "9.png: no A image" in text and "beside the split folders" in text
    for split, n in report.splits.items():
        pairs, problems = scan_split(tmp_path / "out", split)
        assert len(pairs) == n and not problems
    assert not (tmp_path / "out" / "test").exists()
    # A grayscale B half comes back as the same gray in each channel.
    img = pixels(tmp_path / "out" / "val" / "1.png")
    with Image.open(b / "val" / "1.png") as gray:
        assert np.array_equal(img[:, 8:, 0], np.asarray(gray))


def test_combine_without_common_names_is_an_error(tmp_path):
    save(tmp_path / "A" / "x.png"), save(tmp_path / "B" / "y.png")
    with pytest.raises(Pix2PixError, match="no image names in common") as e:
        combine(tmp_path / "A", tmp_path / "B", tmp_path / "out")
    assert "\n" not in str(e.value)
    assert not (tmp_path / "out").exists()


def test_combine_with_only_mismatched_pairs_writes_nothing(tmp_path):
    save(tmp_path / "A" / "x.png", 8, 8), save(tmp_path / "B" / "x.png", 8, 10)
    with pytest.raises(Pix2PixError, match="no pair could be combined.*is 10x8"):
        combine(tmp_path / "A", tmp_path / "B", tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["A", "B"]


def test_combine_refuses_mixed_layouts_missing_folders_and_an_existing_output(tmp_path):
    a, b = tmp_path / "A", tmp_path / "B"
    save(a / "train" / "x.png"), save(b / "x.png")
    with pytest.raises(Pix2PixError, match="same layout"):
        combine(a, b, tmp_path / "out")
    with pytest.raises(Pix2PixError, match="--b .*: no such folder"):
        combine(a, tmp_path / "missing", tmp_path / "out")
    save(b / "train" / "x.png")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(Pix2PixError, match="already exists"):
        combine(a, b, tmp_path / "out")
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


def test_combine_reports_unreadable_images(tmp_path):
    save(tmp_path / "A" / "x.png"), save(tmp_path / "B" / "x.png")
    save(tmp_path / "A" / "bad.png"), (tmp_path / "B" / "bad.png").write_bytes(b"not a png")
    report = combine(tmp_path / "A", tmp_path / "B", tmp_path / "out")
    assert report.pairs == 1
    assert len(report.problems) == 1 and "bad.png: not a readable image" in report.problems[0]


# ---------------------------------------------------------------------------------------------- split


def make_flat(folder: Path, n: int) -> Path:
    for i in range(n):
        save(folder / f"{i:03d}.png", 4, 8, seed=i)
    return folder


def assignment(folder: Path) -> dict[str, str]:
    return {p.name: p.parent.name for p in folder.glob("*/*.png")}


def test_split_counts_and_moves(tmp_path):
    folder = make_flat(tmp_path / "d", 20)
    (folder / "README.txt").write_text("stays")
    counts = split_folder(folder, val=0.2, test=0.1, seed=0)
    assert counts == {"train": 14, "val": 4, "test": 2}
    assert {s: len(list((folder / s).iterdir())) for s in counts} == counts
    assert sorted(p.name for p in folder.iterdir()) == ["README.txt", "test", "train", "val"]
    for split, n in counts.items():
        assert len(scan_split(folder, split)[0]) == n


def test_split_is_deterministic_for_a_seed(tmp_path):
    first = split_folder(make_flat(tmp_path / "a", 30), seed=7)
    second = split_folder(make_flat(tmp_path / "b", 30), seed=7)
    other = split_folder(make_flat(tmp_path / "c", 30), seed=8)
    assert first == second == other == {"train": 24, "val": 3, "test": 3}
    assert assignment(tmp_path / "a") == assignment(tmp_path / "b")
    assert assignment(tmp_path / "a") != assignment(tmp_path / "c")


def test_split_without_val_or_test_makes_only_train(tmp_path):
    folder = make_flat(tmp_path / "d", 5)
    assert split_folder(folder, val=0, test=0) == {"train": 5, "val": 0, "test": 0}
    assert sorted(p.name for p in folder.iterdir()) == ["train"]


@pytest.mark.parametrize("val,test,match", [(-0.1, 0.1, "--val"), (0.1, 1.0, "--test"), (0.5, 0.5, "add up to 1"),
                                            (float("nan"), 0.1, "--val"), (0.6, 0.3, "too few")])
def test_split_refuses_bad_fractions(tmp_path, val, test, match):
    folder = make_flat(tmp_path / "d", 3)
    with pytest.raises(Pix2PixError, match=match):
        split_folder(folder, val=val, test=test)
    assert len(list(folder.glob("*.png"))) == 3 and not list(folder.glob("*/"))


def test_split_refuses_existing_split_folders_and_empty_folders(tmp_path):
    folder = make_flat(tmp_path / "d", 3)
    (folder / "val").mkdir()
    with pytest.raises(Pix2PixError, match="already has val"):
        split_folder(folder)
    assert len(list(folder.glob("*.png"))) == 3
    (tmp_path / "empty").mkdir()
    with pytest.raises(Pix2PixError, match="no image files"):
        split_folder(tmp_path / "empty")
    with pytest.raises(Pix2PixError, match="no such folder"):
        split_folder(tmp_path / "missing")


def test_cli_combine_and_split(tmp_path, capsys):
    from PIL import Image

    from pix2pix.cli import main

    for side, colour in (("A", (255, 0, 0)), ("B", (0, 0, 255))):
        (tmp_path / side).mkdir()
        for i in range(10):
            Image.new("RGB", (8, 8), colour).save(tmp_path / side / f"{i}.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "A" / "lonely.png")
    assert main(["datasets", "combine", "--a", str(tmp_path / "A"), "--b", str(tmp_path / "B"),
                 "--out", str(tmp_path / "AB")]) == 0
    out = capsys.readouterr().out
    assert "wrote 10 aligned pair(s)" in out and "lonely" in out
    assert main(["datasets", "split", str(tmp_path / "AB"), "--val", "0.7", "--test", "0.5"]) == 2
    assert main(["datasets", "split", str(tmp_path / "AB"), "--val", "0.2", "--test", "0.1"]) == 0
    assert "train 7, val 2, test 1" in capsys.readouterr().out


def test_combine_pairs_arrays_into_aligned_arrays_of_their_kind_and_split_moves_them(tmp_path):
    from conftest import make_16bit_dataset, make_array_dataset

    bands = make_array_dataset(tmp_path / "bands", {"train": 3}, in_bands=2, out_bands=2)
    report = combine(bands / "A" / "train", bands / "B" / "train", tmp_path / "aligned")
    assert report.pairs == 3 and not report.problems
    pairs, _ = scan_split(tmp_path / "aligned", "train")
    a, b = load_pair(pairs[0], "AtoB", 2, 2)
    assert np.array_equal(a, np.load(bands / "A" / "train" / "1.npy"))
    assert np.array_equal(b, np.load(bands / "B" / "train" / "1.npy"))
    scans = make_16bit_dataset(tmp_path / "scans", {"train": 2})
    assert combine(scans / "A" / "train", scans / "B" / "train", tmp_path / "scans-aligned").pairs == 2
    with Image.open(tmp_path / "scans-aligned" / "train" / "1.png") as im:
        assert im.mode.startswith("I;16") and im.size == (64, 32)
    other = make_array_dataset(tmp_path / "uneven", {"train": 1}, in_bands=5, out_bands=2)
    with pytest.raises(Pix2PixError, match="no pair could be combined .*one shape and type"):
        combine(other / "A" / "train", other / "B" / "train", tmp_path / "nope")
    counts = split_folder(tmp_path / "aligned", val=0.34, test=0.0)
    assert (counts["train"], counts["val"]) == (2, 1) and len(list((tmp_path / "aligned" / "val").glob("*.npy"))) == 1


# ------------------------------------------------------------------------------- combine, then split


def make_flat_sides(root: Path, n: int) -> tuple[Path, Path]:
    """Flat A and B folders of ``n`` pairs named 00..n-1, as a newcomer has them."""
    for i in range(n):
        save(root / "A" / f"{i:02d}.jpg", seed=i), save(root / "B" / f"{i:02d}.png", seed=100 + i)
    return root / "A", root / "B"


def test_split_takes_combines_output_and_moves_a_fraction_of_train(tmp_path):
    a, b = make_flat_sides(tmp_path, 10)
    out = tmp_path / "D"
    assert combine(a, b, out).splits == {"train": 10}
    assert split_folder(out, val=0.2, test=0.1, seed=0) == {"train": 7, "val": 2, "test": 1}
    assert sorted(p.name for p in out.iterdir()) == ["test", "train", "val"]
    assert not (out / "train" / "train").exists()  # never nested
    names = set()
    for split, n in (("train", 7), ("val", 2), ("test", 1)):
        pairs, problems = scan_split(out, split)
        assert len(pairs) == n and not problems
        names |= {p.a.name for p in pairs}
    assert len(names) == 10  # every pair once


def test_combine_with_val_and_test_splits_as_split_does(tmp_path):
    a, b = make_flat_sides(tmp_path, 20)
    report = combine(a, b, tmp_path / "at-once", val=0.2, test=0.1, seed=3)
    assert report.pairs == 20 and report.splits == {"train": 14, "val": 4, "test": 2}
    combine(a, b, tmp_path / "in-two-steps")
    split_folder(tmp_path / "in-two-steps", val=0.2, test=0.1, seed=3)
    assert assignment(tmp_path / "at-once") == assignment(tmp_path / "in-two-steps")
    assert len(assignment(tmp_path / "at-once")) == 20
    combine(a, b, tmp_path / "other-seed", val=0.2, test=0.1, seed=4)
    assert assignment(tmp_path / "other-seed") != assignment(tmp_path / "at-once")


def test_combine_refuses_fractions_it_cannot_honour_and_writes_nothing(tmp_path):
    a, b = make_flat_sides(tmp_path / "flat", 3)
    with pytest.raises(Pix2PixError, match="too few"):
        combine(a, b, tmp_path / "out", val=0.5, test=0.4)
    with pytest.raises(Pix2PixError, match="--val"):
        combine(a, b, tmp_path / "out", val=-0.1)
    assert not (tmp_path / "out").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    save(tmp_path / "split" / "A" / "train" / "x.png"), save(tmp_path / "split" / "B" / "train" / "x.png")
    with pytest.raises(Pix2PixError, match="already split into train") as e:
        combine(tmp_path / "split" / "A", tmp_path / "split" / "B", tmp_path / "out", val=0.1)
    assert "\n" not in str(e.value)


def test_split_refuses_a_split_folder_itself_and_a_dataset_already_split(tmp_path):
    a, b = make_flat_sides(tmp_path, 5)
    out = tmp_path / "D"
    combine(a, b, out)
    with pytest.raises(Pix2PixError, match="is the 'train' split of .*; split .*D instead") as e:
        split_folder(out / "train")
    assert "\n" not in str(e.value) and not (out / "train" / "train").exists()
    split_folder(out, val=0.2, test=0)
    with pytest.raises(Pix2PixError, match="already has val") as e:
        split_folder(out, val=0.2, test=0)
    assert "\n" not in str(e.value)
    assert len(list((out / "train").iterdir())) == 4 and len(list((out / "val").iterdir())) == 1
    save(out / "loose.png")
    shutil.rmtree(out / "val")
    with pytest.raises(Pix2PixError, match="both directly in it and in"):
        split_folder(out)


def test_a_standalone_folder_named_like_a_split_is_split_and_an_empty_train_is_no_obstacle(tmp_path):
    mine = make_flat(tmp_path / "x" / "test", 10)  # the user's own folder, which happens to be called test
    assert split_folder(mine, val=0.2, test=0.2) == {"train": 6, "val": 2, "test": 2}
    other = make_flat(tmp_path / "y", 10)
    (other / "train").mkdir()  # empty: the images directly in the folder are what is split
    assert split_folder(other, val=0.2, test=0.2)["train"] == 6
