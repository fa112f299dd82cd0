"""The procedural facades: files laid out like the paper's facades, exact labels, determinism, variety, and a
palette that reads the real CMP label maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pix2pix.datasets import facades_synth
from pix2pix.datasets.facades_synth import (CLASSES, PALETTE, make_facades_synth, make_layout,
                                            render_pair, render_photo)
from pix2pix.errors import Pix2PixError

REAL = Path("/work/shared/data/facades/train")


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_facades_synth(tmp_path_factory.mktemp("synth") / "facades-synth", train=3, val=2, test=1, size=64,
                              seed=0, progress=False)


def test_layout_and_file_names(dataset: Path):
    assert dataset.name == "facades-synth"
    assert sorted(p.name for p in dataset.iterdir()) == ["test", "train", "val"]
    for split, n in (("train", 3), ("val", 2), ("test", 1)):
        names = [f"{i}.png" for i in range(1, n + 1)]
        assert sorted(p.name for p in (dataset / split).iterdir()) == sorted(names + ["labels"])
        assert sorted(p.name for p in (dataset / split / "labels").iterdir()) == sorted(names)
        for name in names:
            with Image.open(dataset / split / name) as im:
                assert (im.mode, im.size) == ("RGB", (128, 64))  # A (photo) | B (labels), each 64 x 64
            with Image.open(dataset / split / "labels" / name) as im:
                assert (im.mode, im.size) == ("L", (64, 64))
    assert not list(dataset.parent.glob(".*partial"))


def test_label_file_matches_the_colour_half_exactly(dataset: Path):
    for path in dataset.glob("*/*.png"):
        ab = np.asarray(Image.open(path))
        labels = np.asarray(Image.open(path.parent / "labels" / path.name))
        assert labels.max() < len(CLASSES)
        np.testing.assert_array_equal(ab[:, 64:], PALETTE[labels])
        assert not np.array_equal(ab[:, :64], ab[:, 64:])  # the photo is not the label map


def test_same_seed_same_bytes_other_seed_other_images(dataset: Path, tmp_path: Path):
    again = make_facades_synth(tmp_path / "again", train=3, val=2, test=1, size=64, seed=0, progress=False)
    assert _files(again) == _files(dataset)
    # Each pair depends on (seed, split, index) only, not on how many pairs are made.
    fewer = make_facades_synth(tmp_path / "fewer", train=1, val=0, test=0, size=64, seed=0, progress=False)
    assert (fewer / "train" / "1.png").read_bytes() == (dataset / "train" / "1.png").read_bytes()
    assert sorted(p.name for p in fewer.iterdir()) == ["train"]  # no empty val or test folders
    other = make_facades_synth(tmp_path / "other", train=3, val=2, test=1, size=64, seed=1, progress=False)
    assert all(other_bytes != _files(dataset)[name] for name, other_bytes in _files(other).items())


@pytest.fixture(scope="module")
def pairs() -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    return [render_pair(np.random.default_rng([0, 0, i]), 128) for i in range(20)]


def test_render_pair_shapes_and_colours(pairs):
    for photo, colours, classes in pairs:
        assert photo.shape == colours.shape == (128, 128, 3) and classes.shape == (128, 128)
        assert photo.dtype == colours.dtype == classes.dtype == np.uint8
        np.testing.assert_array_equal(colours, PALETTE[classes])


def test_the_classes_of_real_facades_appear(pairs):
    present = [set(np.unique(classes).tolist()) for _, _, classes in pairs]
    index = {name: i for i, name in enumerate(CLASSES)}
    assert all({index["facade"], index["window"]} <= s for s in present)
    assert sum(bool({index["door"], index["shop"]} & s) for s in present) >= 15  # a ground floor, mostly
    seen = set().union(*present)
    assert {index[c] for c in ("background", "cornice", "sill", "balcony", "molding", "deco")} <= seen
    assert len(seen) >= 11, f"only {sorted(CLASSES[i] for i in seen)} in 20 pairs"


def test_photo_follows_the_labels(pairs):
    # Glass is darker than the wall around it, on average over buildings of every material.
    gap = []
    for photo, _, classes in pairs:
        grey = photo.astype(np.float64).mean(2)
        gap.append(grey[classes == CLASSES.index("facade")].mean() - grey[classes == CLASSES.index("window")].mean())
    assert np.mean(gap) > 20 and np.mean(np.array(gap) > 0) >= 0.75


def test_one_layout_many_photos():
    layout = make_layout(np.random.default_rng(1), 64)
    a = render_photo(layout, np.random.default_rng(2))
    b = render_photo(layout, np.random.default_rng(3))
    assert np.abs(a.astype(np.int16) - b).mean() > 10  # other materials, light and camera
    np.testing.assert_array_equal(a, render_photo(layout, np.random.default_rng(2)))


@pytest.mark.parametrize("kwargs", [dict(size=28), dict(size=66), dict(size=64.0), dict(train=0), dict(val=-1),
                                    dict(test=-2), dict(seed=-1), dict(train=True)])
def test_bad_arguments(tmp_path: Path, kwargs):
    with pytest.raises(Pix2PixError) as e:
        make_facades_synth(tmp_path / "ds", **{"size": 32, "train": 1, "val": 0, "test": 0, **kwargs})
    assert "\n" not in str(e.value)
    assert not (tmp_path / "ds").exists()


def test_refuses_an_existing_folder(dataset: Path, tmp_path: Path):
    before = _files(dataset)
    with pytest.raises(Pix2PixError, match="already exists"):
        make_facades_synth(dataset, train=1, val=0, test=0, size=32, progress=False)
    assert _files(dataset) == before
    (tmp_path / "empty").mkdir()  # an empty folder is fine to fill
    make_facades_synth(tmp_path / "empty", train=1, val=0, test=0, size=32, progress=False)
    assert (tmp_path / "empty" / "train" / "1.png").is_file()


def test_an_interrupted_run_leaves_no_dataset(tmp_path: Path, monkeypatch):
    calls = []

    def failing(rng, size):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return render_pair(rng, size)

    monkeypatch.setattr(facades_synth, "render_pair", failing)
    with pytest.raises(KeyboardInterrupt):
        make_facades_synth(tmp_path / "ds", train=2, val=2, test=0, size=32, progress=False)
    assert [p.name for p in tmp_path.iterdir()] == [".ds.lock"]  # neither ds nor the partial folder: the lock


def test_cli_make_writes_a_trainable_dataset(tmp_path, capsys):
    from pix2pix.cli import main

    out = tmp_path / "fs"
    assert main(["datasets", "make", "facades-synth", "--out", str(out), "--train", "3", "--val", "1",
                 "--test", "1", "--size", "64"]) == 0
    assert "BtoA" in capsys.readouterr().out
    assert main(["datasets", "check", str(out)]) == 0
    assert main(["datasets", "make", "facades-synth", "--out", str(out), "--size", "64"]) == 2
    assert "\n" not in capsys.readouterr().err.strip()


def test_a_full_disk_while_writing_a_dataset_is_one_line(tmp_path, capsys, monkeypatch):
    import errno

    from PIL import Image

    from pix2pix.cli import main

    def full(self, fp, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(fp))

    monkeypatch.setattr(Image.Image, "save", full)
    code = main(["datasets", "make", "facades-synth", "--out", str(tmp_path / "d"), "--train", "2", "--val", "0",
                 "--test", "0", "--size", "64"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("pix2pix:")]
    assert code == 2 and len(err) == 1 and "no space left on the device" in err[0] and str(tmp_path) in err[0]


def test_a_second_maker_of_one_folder_is_one_line_and_leaves_the_first_alone(tmp_path):
    """Reported: a second `datasets make` into one --out deleted the first's partial folder, and the first died
    with a traceback. The maker holds a lock beside the folder, as a run's writer holds its run's."""
    from pix2pix.errors import Pix2PixError
    from pix2pix.files import Lock

    out = tmp_path / "facades"
    first = Lock(tmp_path / ".facades.lock", "is making this dataset")
    first.acquire()  # a first maker at work, its partial folder half written
    (tmp_path / ".facades.partial").mkdir()
    (tmp_path / ".facades.partial" / "1.png").write_bytes(b"half")
    try:
        with pytest.raises(Pix2PixError, match="another pix2pix process .* is making this dataset"):
            make_facades_synth(out, train=2, val=0, test=0, size=64, progress=False)
        assert (tmp_path / ".facades.partial" / "1.png").exists()
    finally:
        first.release()
    make_facades_synth(out, train=2, val=0, test=0, size=64, progress=False)
    assert len(list((out / "train").glob("*.png"))) == 2
