"""Data loading: layouts, --direction, shared jitter, tensor mapping, channel conversion, bad files,
the loader's error records, the epoch sampler, and `pix2pix datasets check`.

Every test makes its own tiny images in tmp_path (except the facades smoke test, skipped without the data).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pix2pix.cli import main
from conftest import BASE_SIZE, BLUE, GREEN, RED, as_uint8, cfg, noise, pixels, save, save_aligned, solid
from conftest import one_line_message as one_line_error
from pix2pix.data.pairs import Pair, PairDataset, check_dataset, load_pair, open_image, scan_split, to_image
from pix2pix.data.rasters import to_tensor
from pix2pix.errors import Pix2PixError

FACADES = Path("/work/shared/data/facades")


# ---------------------------------------------------------------------------------------- discovery


def test_scan_aligned_layout_lists_images_and_reports_stray_files(tmp_path):
    root = tmp_path / "DATA"
    p1 = save_aligned(root / "train" / "1.png", solid(8, 8, RED), solid(8, 8, BLUE))
    p2 = save_aligned(root / "train" / "2.JPG", solid(8, 8, RED), solid(8, 8, BLUE))  # case-insensitive ext
    (root / "train" / "notes.txt").write_text("not an image")
    save_aligned(root / "train" / ".hidden.png", solid(8, 8, RED), solid(8, 8, BLUE))
    (root / "train" / "._1.png").write_bytes(b"macOS resource fork")
    (root / "train" / ".DS_Store").write_bytes(b"\0\0")
    (root / "train" / "Thumbs.db").write_bytes(b"\0\0")
    (root / "train" / "subdir").mkdir()

    pairs, problems = scan_split(root, "train")

    assert pairs == [Pair(p1), Pair(p2)]
    assert all(p.b is None for p in pairs)
    assert len(problems) == 1
    assert str(root / "train" / "notes.txt") in problems[0]


def test_scan_two_folder_layout_pairs_by_stem_and_reports_unpaired(tmp_path):
    root = tmp_path / "DATA"
    ax = save(root / "A" / "train" / "x.png", solid(8, 8, RED))
    bx = save(root / "B" / "train" / "x.jpg", solid(8, 8, BLUE))  # same stem, other extension
    ay = save(root / "A" / "train" / "y.png", solid(8, 8, RED))
    by = save(root / "B" / "train" / "y.png", solid(8, 8, BLUE))
    a_only = save(root / "A" / "train" / "only_a.png", solid(8, 8, RED))
    b_only = save(root / "B" / "train" / "only_b.png", solid(8, 8, BLUE))
    save(root / "A" / "train" / ".hidden.png", solid(8, 8, RED))
    (root / "B" / "train" / "readme.txt").write_text("hello")

    pairs, problems = scan_split(root, "train")

    assert sorted(pairs, key=lambda p: p.a.name) == [Pair(ax, bx), Pair(ay, by)]
    assert len(problems) == 3, problems
    for path in (a_only, b_only, root / "B" / "train" / "readme.txt"):
        assert sum(str(path) in line for line in problems) == 1, (path, problems)
    assert not any(".hidden" in line for line in problems)


def test_two_folder_duplicate_b_stem_is_reported(tmp_path):
    root = tmp_path / "DATA"
    save(root / "A" / "train" / "x.png", solid(8, 8, RED))
    save(root / "B" / "train" / "x.png", solid(8, 8, BLUE))
    dup = save(root / "B" / "train" / "x.jpg", solid(8, 8, GREEN))
    pairs, problems = scan_split(root, "train")
    used = {p.b for p in pairs}
    assert dup in used or any(str(dup) in line for line in problems)


def test_missing_data_folder_is_a_one_line_error(tmp_path):
    root = tmp_path / "nowhere"
    with pytest.raises(Pix2PixError) as e:
        scan_split(root, "train")
    one_line_error(e, root)


def test_missing_split_names_the_split_and_what_exists(tmp_path):
    root = tmp_path / "DATA"
    save_aligned(root / "val" / "1.png", solid(8, 8, RED), solid(8, 8, BLUE))
    with pytest.raises(Pix2PixError) as e:
        scan_split(root, "train")
    msg = one_line_error(e, root)
    assert "'train'" in msg and "val" in msg


def test_empty_split_is_an_error(tmp_path):
    root = tmp_path / "DATA"
    (root / "train").mkdir(parents=True)
    (root / "train" / ".gitkeep").write_text("")
    with pytest.raises(Pix2PixError) as e:
        scan_split(root, "train")
    msg = one_line_error(e, root)
    assert "train" in msg and "no images" in msg


# ---------------------------------------------------------------------------------------- direction


def test_direction_aligned(tmp_path):
    p = save_aligned(tmp_path / "train" / "1.png", solid(6, 10, RED), solid(6, 10, BLUE))
    inp, tgt = load_pair(Pair(p), "AtoB", 3, 3)
    assert inp.size == tgt.size == (10, 6)
    assert (pixels(inp) == RED).all() and (pixels(tgt) == BLUE).all()
    inp, tgt = load_pair(Pair(p), "BtoA", 3, 3)
    assert (pixels(inp) == BLUE).all() and (pixels(tgt) == RED).all()


def test_direction_aligned_keeps_spatial_layout_of_each_half(tmp_path):
    # A horizontal gradient left, its mirror right: a half taken from the wrong place or flipped would show.
    ramp = np.tile(np.arange(0, 160, 10, dtype=np.uint8)[None, :, None], (4, 1, 3))
    p = save_aligned(tmp_path / "1.png", ramp, ramp[:, ::-1] + 50)
    inp, tgt = load_pair(Pair(p), "BtoA", 3, 3)
    np.testing.assert_array_equal(pixels(inp), ramp[:, ::-1] + 50)
    np.testing.assert_array_equal(pixels(tgt), ramp)


def test_direction_two_folders(tmp_path):
    a = save(tmp_path / "A" / "train" / "x.png", solid(8, 8, RED))
    b = save(tmp_path / "B" / "train" / "x.png", solid(8, 8, BLUE))
    inp, tgt = load_pair(Pair(a, b), "AtoB", 3, 3)
    assert (pixels(inp) == RED).all() and (pixels(tgt) == BLUE).all()
    inp, tgt = load_pair(Pair(a, b), "BtoA", 3, 3)
    assert (pixels(inp) == BLUE).all() and (pixels(tgt) == RED).all()


@pytest.mark.parametrize("two_folders", [False, True])
def test_direction_gives_input_the_input_channels(tmp_path, two_folders):
    # --in-channels 1 --out-channels 3 --direction BtoA: the input (the B image) is grey, the target RGB.
    if two_folders:
        pair = Pair(save(tmp_path / "A" / "x.png", solid(8, 8, RED)), save(tmp_path / "B" / "x.png", solid(8, 8, BLUE)))
    else:
        pair = Pair(save_aligned(tmp_path / "1.png", solid(8, 8, RED), solid(8, 8, BLUE)))
    inp, tgt = load_pair(pair, "BtoA", 1, 3)
    assert inp.mode == "L" and tgt.mode == "RGB"
    assert (pixels(tgt) == RED).all()
    assert (pixels(inp) == Image.new("RGB", (1, 1), BLUE).convert("L").getpixel((0, 0))).all()
    inp, tgt = load_pair(pair, "AtoB", 1, 3)
    assert inp.mode == "L" and tgt.mode == "RGB"
    assert (pixels(tgt) == BLUE).all()


# ------------------------------------------------------------------------------------------- jitter

def locate(out: np.ndarray, base: np.ndarray, crop: int) -> tuple[int, int, bool] | None:
    """(x, y, flipped) of the crop of ``base`` (possibly mirrored) equal to ``out``, or None."""
    h, w = base.shape[:2]
    for flipped in (False, True):
        for y in range(h - crop + 1):
            for x in range(w - crop + 1):
                c = base[y:y + crop, x:x + crop]
                if np.array_equal(out, c[:, ::-1] if flipped else c):
                    return x, y, flipped
    return None


@pytest.mark.parametrize("preprocess", ["resize_and_crop", "crop", "scale_width_and_crop"])
def test_train_jitter_is_the_same_on_a_and_b_and_actually_varies(twin, preprocess):
    path, half = twin
    base = pixels(Image.fromarray(half).resize(BASE_SIZE[preprocess], Image.BICUBIC))
    ds = PairDataset([Pair(path)], cfg(preprocess=preprocess), 3, 3, train=True, seed=0)
    found = []
    for epoch in range(40):
        item = ds[(epoch, 0)]
        assert "error" not in item, item
        assert item["A"].shape == item["B"].shape == (3, 32, 32)
        assert torch.equal(item["A"], item["B"]), f"A and B got different jitter at epoch {epoch}"
        where = locate(as_uint8(item["A"]), base, 32)
        assert where is not None, f"epoch {epoch}: output is not a 32x32 crop of the {BASE_SIZE[preprocess]} image"
        found.append(where)
    positions = {(x, y) for x, y, _ in found}
    flips = sum(f for _, _, f in found)
    assert len(positions) >= 10, f"crops barely move: {sorted(positions)}"
    assert 10 <= flips <= 30, f"{flips} flips in 40 draws"


def test_no_flip_never_mirrors(twin):
    path, half = twin
    base = pixels(Image.fromarray(half).resize((40, 40), Image.BICUBIC))
    ds = PairDataset([Pair(path)], cfg(flip=False), 3, 3, train=True, seed=0)
    for epoch in range(20):
        x, y, flipped = locate(as_uint8(ds[(epoch, 0)]["A"]), base, 32)
        assert not flipped


def test_jitter_depends_only_on_seed_epoch_and_index(twin):
    path, _ = twin
    pairs = [Pair(path), Pair(path)]  # the same image twice: only the index differs
    ds = PairDataset(pairs, cfg(), 3, 3, train=True, seed=0)
    keys = [(e, i) for e in range(6) for i in range(2)]
    first = {k: ds[k]["A"] for k in keys}
    # Reversed order, fresh dataset: the same key still gives the same tensor.
    again = PairDataset(pairs, cfg(), 3, 3, train=True, seed=0)
    for k in reversed(keys):
        assert torch.equal(again[k]["A"], first[k]), k
    # The index matters: pair 0 and pair 1 (same file) are not jittered alike in every epoch.
    assert not all(torch.equal(first[(e, 0)], first[(e, 1)]) for e in range(6))
    # The seed matters.
    other = PairDataset(pairs, cfg(), 3, 3, train=True, seed=1)
    assert not all(torch.equal(other[k]["A"], first[k]) for k in keys)


def test_test_time_transform_is_deterministic_and_resizes_to_crop_size(twin):
    path, half = twin
    ds = PairDataset([Pair(path)], cfg(), 3, 3, train=False, seed=0)
    first = ds[0]
    assert first["A"].shape == (3, 32, 32)
    expected = to_tensor(Image.fromarray(half).resize((32, 32), Image.BICUBIC))
    assert torch.equal(first["A"], expected)
    assert torch.equal(first["B"], expected)
    for key in (0, (5, 0), (17, 0)):
        assert torch.equal(ds[key]["A"], first["A"])
    assert torch.equal(PairDataset([Pair(path)], cfg(), 3, 3, train=False, seed=9)[0]["A"], first["A"])


def test_test_time_scale_width_keeps_aspect_ratio(tmp_path):
    tall = save_aligned(tmp_path / "tall.png", noise(48, 24, 5), noise(48, 24, 5))  # halves 24 wide, 48 high
    ds = PairDataset([Pair(tall)], cfg(preprocess="scale_width_and_crop"), 3, 3, train=False)
    item = ds[0]
    assert item["A"].shape == item["B"].shape == (3, 64, 32)  # scaled to --crop-size wide, aspect kept
    assert torch.equal(item["A"], to_tensor(Image.fromarray(noise(48, 24, 5)).resize((32, 64), Image.BICUBIC)))


# ------------------------------------------------------------------------------------------ tensors


def test_to_tensor_range_and_arithmetic():
    arr = np.array([[0, 128, 255]], np.uint8)
    t = to_tensor(Image.fromarray(arr))
    assert t.shape == (1, 1, 3) and t.dtype == torch.float32
    assert t[0, 0, 0].item() == -1.0 and t[0, 0, 2].item() == 1.0
    expected = (torch.tensor(128.0) / 255 - 0.5) / 0.5
    assert t[0, 0, 1].item() == expected.item()
    rgb = to_tensor(Image.fromarray(solid(2, 5, (255, 0, 128))))
    assert rgb.shape == (3, 2, 5)
    assert (rgb[0] == 1).all() and (rgb[1] == -1).all()


@pytest.mark.parametrize("channels", [1, 3])
def test_to_image_uses_the_reference_arithmetic(channels):
    """Outputs are saved as the reference saves them, (y + 1) / 2 * 255 in float32, truncated, so that a
    reference checkpoint gives byte-identical files; a round trip is therefore within one grey level."""
    ramp = np.arange(256, dtype=np.uint8).reshape(16, 16)
    arr = ramp if channels == 1 else np.stack([ramp, ramp.T, ramp[::-1]], axis=-1)
    t = to_tensor(Image.fromarray(arr))
    back = to_image(t)
    assert back.mode == ("L" if channels == 1 else "RGB")
    reference = ((t.numpy().transpose(1, 2, 0) + 1) / 2.0 * 255.0).astype(np.uint8)
    np.testing.assert_array_equal(pixels(back), reference.squeeze())
    assert np.abs(pixels(back).astype(int) - arr).max() <= 1


def test_to_image_maps_extremes_and_clamps():
    t = torch.tensor([[[-1.0, 1.0, -3.0, 3.0]]])
    assert pixels(to_image(t)).tolist() == [[0, 255, 0, 255]]
    with pytest.raises(Pix2PixError):
        to_image(torch.zeros(2, 4, 4))


# ----------------------------------------------------------------------------------------- channels


def test_grayscale_to_three_channels(tmp_path):
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    img = open_image(save(tmp_path / "g.png", grey), 3)
    assert img.mode == "RGB"
    out = pixels(img)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], grey)


def test_rgb_to_one_channel(tmp_path):
    img = open_image(save(tmp_path / "c.png", solid(4, 4, RED)), 1)
    assert img.mode == "L" and pixels(img).shape == (4, 4)
    assert (pixels(img) == 76).all()  # ITU-R 601 luma of pure red: 299/1000 * 255


def test_rgba_with_four_channels_keeps_alpha(tmp_path):
    arr = noise(4, 6, seed=2)
    alpha = np.arange(24, dtype=np.uint8).reshape(4, 6) * 10
    rgba = np.dstack([arr, alpha])
    img = open_image(save(tmp_path / "a.png", rgba, "RGBA"), 4)
    assert img.mode == "RGBA"
    np.testing.assert_array_equal(pixels(img), rgba)
    rgb = open_image(tmp_path / "a.png", 3)
    assert rgb.mode == "RGB" and pixels(rgb).shape == (4, 6, 3)


def test_sixteen_bit_grayscale_is_scaled_to_eight_bit(tmp_path):
    arr = np.array([[0, 65535], [32768, 257 * 100]], np.uint16)
    path = save(tmp_path / "d16.png", arr)
    assert Image.open(path).mode.startswith("I"), "the fixture must really be a 16-bit PNG"
    img = open_image(path, 1)
    assert img.mode == "L"
    assert pixels(img).tolist() == [[0, 255], [128, 100]]
    rgb = open_image(path, 3)
    assert pixels(rgb)[0, 1].tolist() == [255, 255, 255]


def test_sixteen_bit_scaling_is_the_same_for_dark_and_bright_images(tmp_path):
    dark = open_image(save(tmp_path / "dark.png", np.array([[200, 0]], np.uint16)), 1)
    bright = open_image(save(tmp_path / "bright.png", np.array([[200, 300]], np.uint16)), 1)
    assert pixels(dark)[0, 0] == pixels(bright)[0, 0]


def test_palette_image_converts(tmp_path):
    p = Image.new("P", (4, 2))
    p.putpalette([255, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 6))
    p.putdata([0, 1, 0, 1, 1, 0, 1, 0])
    path = tmp_path / "pal.png"
    p.save(path)
    img = open_image(path, 3)
    assert img.mode == "RGB"
    out = pixels(img)
    assert out[0, 0].tolist() == list(RED) and out[0, 1].tolist() == list(BLUE)
    assert open_image(path, 1).mode == "L"


def test_two_channels_is_refused(tmp_path):
    path = save(tmp_path / "c.png", solid(4, 4, RED))
    with pytest.raises(Pix2PixError) as e:
        open_image(path, 2)
    assert "\n" not in str(e.value) and "channels" in str(e.value)


# --------------------------------------------------------------------------------------- bad inputs


def test_corrupt_file_is_a_one_line_error_naming_it(tmp_path):
    path = tmp_path / "train" / "bad.jpg"
    path.parent.mkdir()
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8).tobytes())
    with pytest.raises(Pix2PixError) as e:
        open_image(path, 3)
    one_line_error(e, path)
    with pytest.raises(Pix2PixError) as e:
        load_pair(Pair(path), "AtoB", 3, 3)
    one_line_error(e, path)


def test_missing_file_is_a_one_line_error(tmp_path):
    path = tmp_path / "gone.png"
    with pytest.raises(Pix2PixError) as e:
        open_image(path, 3)
    one_line_error(e, path)


@pytest.mark.parametrize("ext", ["png", "jpg"])
def test_truncated_image_is_a_one_line_error(tmp_path, ext):
    path = save_aligned(tmp_path / f"cut.{ext}", noise(64, 64, 3), noise(64, 64, 4))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(Pix2PixError) as e:
        load_pair(Pair(path), "AtoB", 3, 3)
    one_line_error(e, path)


def test_odd_width_aligned_image(tmp_path):
    path = save(tmp_path / "odd.png", solid(8, 17, RED))
    with pytest.raises(Pix2PixError) as e:
        load_pair(Pair(path), "AtoB", 3, 3)
    msg = one_line_error(e, path)
    assert "17" in msg and "odd" in msg


def test_two_folder_size_mismatch(tmp_path):
    a = save(tmp_path / "A" / "train" / "x.png", solid(8, 8, RED))
    b = save(tmp_path / "B" / "train" / "x.png", solid(8, 10, BLUE))
    with pytest.raises(Pix2PixError) as e:
        load_pair(Pair(a, b), "AtoB", 3, 3)
    msg = one_line_error(e, a)
    assert str(b) in msg


# --------------------------------------------------------------------------------------- dataset


def test_dataset_reports_image_smaller_than_crop(tmp_path):
    small = save_aligned(tmp_path / "small.png", solid(20, 20, RED), solid(20, 20, BLUE))
    item = PairDataset([Pair(small)], cfg(preprocess="crop"), 3, 3, train=True)[(0, 0)]
    assert "error" in item and str(small) in item["error"] and "32" in item["error"]


# ------------------------------------------------------------------------------------ datasets check


def make_clean(root: Path) -> int:
    n = 0
    for split, count in (("train", 3), ("val", 2), ("test", 1)):
        for i in range(count):
            save_aligned(root / split / f"{i}.png", solid(8, 8, RED), solid(8, 8, BLUE))
            n += 1
    return n


def test_check_clean_dataset(tmp_path, capsys):
    root = tmp_path / "DATA"
    n = make_clean(root)
    report = check_dataset(root)
    assert report.pairs == n and report.problems == [] and report.splits == {"train": 3, "val": 2, "test": 1}
    assert report.side("A") == report.side("B") == "3-channel RGB PNG images, 8x8"  # each half of 16x8 files
    assert main(["datasets", "check", str(root)]) == 0
    out = capsys.readouterr().out
    assert f"{n} pair(s)" in out and "0 problem" in out


def test_check_reports_every_bad_file_once(tmp_path, capsys):
    root = tmp_path / "DATA"
    make_clean(root)
    corrupt = root / "train" / "corrupt.jpg"
    corrupt.write_bytes(b"garbage" * 20)
    odd = save(root / "val" / "odd.png", solid(8, 9, RED))
    txt = root / "test" / "notes.txt"
    txt.write_text("hi")

    assert main(["datasets", "check", str(root)]) == 1
    out = capsys.readouterr().out.splitlines()
    for path in (corrupt, odd, txt):
        assert sum(str(path) in line for line in out) == 1, (path, out)
    good = root / "train" / "0.png"
    assert not any(str(good) in line for line in out)
    assert "3 problem" in out[-1]


def test_check_two_folder_dataset(tmp_path, capsys):
    root = tmp_path / "DATA"
    save(root / "A" / "train" / "x.png", solid(8, 8, RED))
    save(root / "B" / "train" / "x.png", solid(8, 8, BLUE))
    a = save(root / "A" / "train" / "y.png", solid(8, 8, RED))
    save(root / "B" / "train" / "y.png", solid(9, 8, BLUE))
    lonely = save(root / "A" / "train" / "z.png", solid(8, 8, RED))
    report = check_dataset(root)
    problems = report.problems
    assert report.pairs == 2
    assert len(problems) == 2
    assert report.side("B") == "3-channel RGB PNG images, 2 sizes from 8x8 to 8x9"
    assert any(str(a) in p for p in problems) and any(str(lonely) in p for p in problems)
    assert main(["datasets", "check", str(root)]) == 1


def test_check_with_one_channel_input(tmp_path):
    root = tmp_path / "DATA"
    save_aligned(root / "train" / "1.png", solid(8, 8, RED), solid(8, 8, BLUE))
    assert main(["datasets", "check", str(root), "--in-channels", "1"]) == 0


def test_check_missing_folder_exits_2_with_one_line(tmp_path, capsys):
    root = tmp_path / "missing"
    assert main(["datasets", "check", str(root)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert "\n" not in err and str(root) in err and err.startswith("pix2pix: error:")
    assert captured.out == ""


def test_check_folder_without_splits_is_a_problem(tmp_path, capsys):
    root = tmp_path / "DATA"
    save_aligned(root / "1.png", solid(8, 8, RED), solid(8, 8, BLUE))  # images directly in the root
    assert main(["datasets", "check", str(root)]) == 1
    assert "train" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------ real data


@pytest.mark.skipif(not (FACADES / "train").is_dir(), reason="facades data not present")
def test_facades_btoa_input_is_the_label_map():
    pairs, problems = scan_split(FACADES, "train")
    assert len(pairs) == 400 and problems == []
    assert all(p.b is None for p in pairs)
    inp, tgt = load_pair(pairs[0], "BtoA", 3, 3)
    assert inp.size == tgt.size == (256, 256)

    # The label map is drawn in saturated colours of a jet-like colour map; the photo is mostly grey-ish
    # (across all 400 pairs: label halves have mean saturation >= 199/255, photos <= 120/255).
    def saturation(img: Image.Image) -> float:
        return float(pixels(img.convert("HSV"))[..., 1].mean())

    for pair in pairs[:5]:
        inp, tgt = load_pair(pair, "BtoA", 3, 3)
        assert saturation(inp) > 160 > saturation(tgt), (pair.a, saturation(inp), saturation(tgt))
    inp, tgt = load_pair(pairs[0], "BtoA", 3, 3)
    # The label map's right half really is B: AtoB gives the same two images the other way round.
    a, b = load_pair(pairs[0], "AtoB", 3, 3)
    assert np.array_equal(pixels(a), pixels(tgt)) and np.array_equal(pixels(b), pixels(inp))


def test_an_image_over_the_pixel_limit_is_one_line_before_it_is_decoded(tmp_path, monkeypatch):
    """Pillow only warns below twice its bomb threshold (a 144-megapixel image decodes): here it is an error,
    read from the header."""
    import pix2pix.data.pairs as data
    import pix2pix.data.rasters as rasters

    monkeypatch.setattr(rasters, "MAX_IMAGE_PIXELS", 1000)
    path = tmp_path / "big.png"
    Image.new("RGB", (40, 30)).save(path)
    decoded = []
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(1))
    with pytest.raises(Pix2PixError, match="40x30 is 0 megapixels, over the 0.0-megapixel limit"):
        data.open_image(path, 3)
    assert not decoded


def test_check_reads_arrays_as_training_does_and_finds_a_side_of_mixed_kinds(tmp_path, capsys):
    from conftest import make_array_dataset
    from pix2pix.cli import main

    root = make_array_dataset(tmp_path / "bands", {"train": 3, "val": 1})
    assert main(["datasets", "check", str(root), "--in-channels", "5", "--out-channels", "2"]) == 0
    out = capsys.readouterr().out
    assert "A: 5-channel float32 .npy arrays, 32x32" in out and "B: 2-channel float32 .npy arrays, 32x32" in out
    assert "4 pair(s) checked, 0 problem" in out
    np.save(root / "B" / "train" / "2.npy", np.zeros((32, 32, 2), np.uint16))
    bad = np.load(root / "A" / "train" / "3.npy")
    bad[0, 0, 0] = np.inf
    np.save(root / "A" / "train" / "3.npy", bad)
    assert main(["datasets", "check", str(root), "--in-channels", "5", "--out-channels", "2"]) == 1
    out = capsys.readouterr().out
    assert "B/train/2.npy: uint16, 2 channel(s), and the B files before it are float, 2 channel(s)" in out
    assert "B: 2-channel float32 .npy arrays (3), 2-channel uint16 .npy arrays (1)" in out  # the odd one out, named
    assert "A/train/3.npy: 1 value(s) are NaN or infinite" in out


def test_a_split_folder_that_cannot_be_listed_is_one_line(tmp_path, monkeypatch):
    """Issue 20: an unreadable split folder was a traceback (simulated: the tests run as root, whom permissions
    do not stop)."""
    import errno
    from pathlib import Path as P

    from conftest import make_aligned_dataset
    from pix2pix.data.pairs import scan_split
    from pix2pix.errors import Pix2PixError

    data = make_aligned_dataset(tmp_path / "d", {"train": 2})
    real = P.iterdir

    def denied(self):
        if self.name == "train":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(P, "iterdir", denied)
    with pytest.raises(Pix2PixError, match="train: cannot be listed \\(Permission denied\\)"):
        scan_split(data, "train")


def test_check_summarises_a_band_dataset_with_one_problem_in_every_file(tmp_path, capsys):
    """Issue: 56 identical lines, and B's channels never named. Now: counts, each side's kind, the first few
    problems of each kind with a count of the rest, and the totals."""
    from conftest import make_array_dataset

    root = make_array_dataset(tmp_path / "bands", {"train": 40, "val": 8, "test": 8}, size=8, in_bands=4, out_bands=1)
    (root / "A" / "train" / "notes.txt").write_text("not data")
    assert main(["datasets", "check", str(root), "--in-channels", "4", "--out-channels", "4"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) <= 12, lines
    text = "\n".join(lines)
    assert "train 40, val 8, test 8" in text
    assert "A: 4-channel float32 .npy arrays, 8x8" in text and "B: 1-channel float32 .npy arrays, 8x8" in text
    assert sum("1 channel(s), and --out-channels is 4" in line for line in lines) == 3
    assert "... and 53 more like this" in text
    assert sum("notes.txt: not an image or array file" in line for line in lines) == 1
    assert lines[-1].endswith("56 pair(s) checked, 57 problem(s) of 2 kind(s)")
    assert main(["datasets", "check", str(root), "--in-channels", "4", "--out-channels", "1"]) == 1
    assert capsys.readouterr().out.splitlines()[-1].endswith("56 pair(s) checked, 1 problem(s) of 1 kind(s)")
    (root / "A" / "train" / "notes.txt").unlink()
    assert main(["datasets", "check", str(root), "--in-channels", "4", "--out-channels", "1"]) == 0
    out = capsys.readouterr().out
    assert "problem" not in out.splitlines()[-2] and out.splitlines()[-1].endswith("0 problem(s)")
