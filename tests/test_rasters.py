"""Data beyond 8-bit RGB: .npy arrays, TIFF bands and 16-bit images read, checked, transformed in float and
written back in their own kind; and the two reported defects, a .npy dataset refused and a 16-bit dataset
translated to 8 bits, end to end."""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from conftest import make_16bit_dataset, make_array_dataset, one_line_error, train_tiny
from pix2pix.checkpoints import load_checkpoint
from pix2pix.cli import main
from pix2pix.data.pairs import Pair, PairDataset, fit_scales, load_pair, scan_split
from pix2pix.errors import Pix2PixError
from pix2pix.inference.translate import Translator
from pix2pix.data.rasters import encode, read_raster, resize, write_raster
from pix2pix.data.units import Scale

ARRAYS = ["--in-channels", "5", "--out-channels", "2"]


# ------------------------------------------------------------------------------------------ reading


def test_npy_arrays_of_either_rank_and_tiffs_of_either_layout_read_channel_last(tmp_path):
    a = np.random.default_rng(0).normal(size=(6, 8, 5)).astype(np.float32)
    np.save(tmp_path / "hwc.npy", a)
    np.save(tmp_path / "hw.npy", a[:, :, 0].astype(np.float64))
    tifffile.imwrite(tmp_path / "planar.tif", a.transpose(2, 0, 1), photometric="minisblack", planarconfig="separate")
    tifffile.imwrite(tmp_path / "contig.tif", a, photometric="minisblack", planarconfig="contig")
    assert np.array_equal(read_raster(tmp_path / "hwc.npy", 5), a)
    assert read_raster(tmp_path / "hw.npy", 1).shape == (6, 8, 1)
    assert np.array_equal(read_raster(tmp_path / "planar.tif", 5), a)
    assert np.array_equal(read_raster(tmp_path / "contig.tif", 5), a)
    sixteen = (np.arange(48).reshape(6, 8) * 1000).astype(np.uint16)
    Image.fromarray(sixteen).save(tmp_path / "g16.png")
    got = read_raster(tmp_path / "g16.png", 1)
    assert got.dtype == np.uint16 and np.array_equal(got[:, :, 0], sixteen)
    # 8-bit images stay Pillow images, converted as the reference converts
    Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(tmp_path / "rgb.png")
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((6, 8, 3), np.uint8), photometric="rgb")
    assert read_raster(tmp_path / "rgb.png", 1).mode == "L" and read_raster(tmp_path / "rgb.tif", 3).mode == "RGB"


def _png16_rgb(path, h=4, w=4):
    """A 16-bit RGB PNG, written by hand (Pillow cannot write one)."""
    raw = b"".join(b"\0" + np.full((w, 3), 40000, ">u2").tobytes() for _ in range(h))
    chunk = lambda kind, data: (struct.pack(">I", len(data)) + kind + data +  # noqa: E731
                                struct.pack(">I", zlib.crc32(kind + data)))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)) +
                     chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("make, channels, needle", [
    (lambda p: np.save(p, np.zeros((4, 4, 3, 2), np.float32)), 3, "shape (4, 4, 3, 2); expected H x W or H x W x C"),
    (lambda p: np.save(p, np.zeros((0, 4), np.float32)), 1, "has an empty side"),
    (lambda p: np.save(p, np.zeros((4, 4), bool)), 1, "values of type bool, not real numbers"),
    (lambda p: np.save(p, np.zeros((4, 4), complex)), 1, "values of type complex128, not real numbers"),
    (lambda p: np.save(p, np.array([[{"a": 1}]], dtype=object), allow_pickle=True), 1, "not a numeric .npy array"),
    (lambda p: np.save(p, np.where(np.eye(4) > 0, np.nan, 1.0)), 1, "4 value(s) are NaN or infinite (the first at row 0"),
    (lambda p: np.save(p, np.full((4, 4, 2), np.inf, np.float32)), 2, "NaN or infinite"),
    (lambda p: np.save(p, np.zeros((4, 4, 4), np.float32)), 5, "4 channel(s), and --in-channels is 5"),
    (lambda p: p.write_bytes(b"not numpy"), 1, "not a numeric .npy array"),
])
def test_each_bad_array_is_one_line_naming_the_file(tmp_path, make, channels, needle):
    path = tmp_path / "x.npy"
    make(path)
    with pytest.raises(Pix2PixError, match="x.npy: ") as e:
        read_raster(path, channels)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_a_16_bit_colour_png_and_an_8_bit_image_for_five_bands_are_one_line_each(tmp_path):
    _png16_rgb(tmp_path / "c16.png")
    with pytest.raises(Pix2PixError, match="c16.png: a 16-bit colour PNG, which Pillow can only read as 8 bits"):
        read_raster(tmp_path / "c16.png", 3)
    Image.new("RGB", (4, 4)).save(tmp_path / "rgb.png")
    with pytest.raises(Pix2PixError, match="rgb.png: an 8-bit image holds 1, 3 or 4 channels, and --out-channels is 5"):
        read_raster(tmp_path / "rgb.png", 5, "--out-channels")


def test_pairs_of_arrays_check_their_shapes_and_split_aligned_arrays_at_half_the_width(tmp_path):
    a = np.arange(4 * 8 * 2, dtype=np.float32).reshape(4, 8, 2)
    np.save(tmp_path / "ab.npy", a)
    x, y = load_pair(Pair(tmp_path / "ab.npy"), "AtoB", 2, 2)
    assert np.array_equal(x, a[:, :4]) and np.array_equal(y, a[:, 4:])
    with pytest.raises(Pix2PixError, match="2 channel\\(s\\) in each half, and --out-channels is 1"):
        load_pair(Pair(tmp_path / "ab.npy"), "AtoB", 2, 1)
    np.save(tmp_path / "b.npy", np.zeros((5, 4, 1), np.float32))
    with pytest.raises(Pix2PixError, match="size 8x4 differs from its B file"):
        load_pair(Pair(tmp_path / "ab.npy", tmp_path / "b.npy"), "AtoB", 2, 1)


# ----------------------------------------------------------------------------------- transforms


def test_arrays_are_resized_in_float_on_every_channel_and_8_bit_ones_in_8_bits():
    ramp = np.linspace(0, 1, 64 * 64 * 3, dtype=np.float32).reshape(64, 64, 3) * 1e-3  # far below one 8-bit step
    out = resize(ramp, (40, 24))
    assert out.shape == (24, 40, 3) and out.dtype == np.float32 and len(np.unique(out)) > 1000
    img = (np.random.default_rng(0).random((16, 16, 3)) * 255).astype(np.uint8)
    assert np.array_equal(resize(img, (10, 12)), np.asarray(Image.fromarray(img).resize((10, 12), Image.BICUBIC)))


def test_the_same_crop_and_flip_reach_both_sides_of_an_array_pair(tmp_path):
    from pix2pix.config import DataConfig

    root = make_array_dataset(tmp_path / "bands", {"train": 2}, size=40, in_bands=2, out_bands=2)
    # B is a per-pixel function of A, so a crop or flip that differed between them would break it
    pairs, _ = scan_split(root, "train")
    cfg = DataConfig(load_size=48, crop_size=32)
    scales = fit_scales(pairs, cfg, 2, 2)
    ds = PairDataset(pairs, cfg, 2, 2, train=True, scales=scales)
    for epoch in range(4):
        item = ds[(epoch, 0)]
        a = scales.input.from_unit(item["A"])
        b = scales.output.from_unit(item["B"])
        assert a.shape == (2, 32, 32) and b.shape == (2, 32, 32)
        assert torch.allclose(b[0], 1e-3 * a.mean(0) / 5000, rtol=2e-3, atol=2e-7)


# ----------------------------------------------------------------------------------------- writing


@pytest.mark.parametrize("fmt, scale, dtype", [("npy", Scale("minmax", (-5.0,), (7.0,), "float"), np.float32),
                                               ("tiff", Scale("minmax", (-5.0,), (7.0,), "float"), np.float32),
                                               ("png16", Scale("uint16", data="uint16"), np.uint16),
                                               ("png", Scale(), np.uint8)])
def test_outputs_are_written_in_their_kind_and_read_back_alike(tmp_path, fmt, scale, dtype):
    u = torch.linspace(-1, 1, 64 * 48).reshape(1, 48, 64)
    arr = encode(u, scale, fmt)
    path = tmp_path / f"out.{fmt}"
    write_raster(path, arr, fmt)
    back = read_raster(path, None)
    back = np.asarray(back)[:, :, None] if isinstance(back, Image.Image) else back
    assert back.dtype == dtype and back.shape == (48, 64, 1) and np.array_equal(back, arr.astype(dtype))
    if fmt in ("npy", "tiff"):
        assert back.min() == pytest.approx(-5.0) and back.max() == pytest.approx(7.0)
    if fmt == "png16":
        assert len(np.unique(back)) == 64 * 48  # every step kept


# ------------------------------------------------------------------------------------- end to end


def test_a_two_folder_npy_dataset_trains_tests_and_translates_in_its_units(tmp_path, tiny, capsys):
    """Reported: a dataset of .npy arrays was refused ("not an image file")."""
    data = make_array_dataset(tmp_path / "bands", {"train": 4, "val": 2, "test": 2})
    run = train_tiny(tmp_path, data, tiny, *ARRAYS, "--preprocess", "none", "--max-steps", "4")
    assert "scaling: input minmax" in capsys.readouterr().out
    scales = load_checkpoint(run).scales
    train_b = np.stack([np.load(data / "B" / "train" / f"{i}.npy") for i in range(1, 5)])
    assert scales.output.kind == "minmax" and scales.output.a == pytest.approx(tuple(train_b.min((0, 1, 2))))
    assert scales.output.b == pytest.approx(tuple(train_b.max((0, 1, 2))))
    out = tmp_path / "out"
    assert main(["translate", "--checkpoint", str(run), "--input", str(data / "A" / "test"), "--output", str(out),
                 "--no-fast"]) == 0
    y = np.load(out / "1.npy")
    assert y.shape == (32, 32, 2) and y.dtype == np.float32
    lo, hi = train_b.min(), train_b.max()
    assert lo - 1e-6 <= y.min() and y.max() <= hi + 1e-6 and y.std() > 0  # in the target's units
    assert main(["test", "--run", str(run), "--split", "test", "--no-fast"]) == 0
    images = run / "results" / "test" / "images"
    assert np.load(images / "1_output.npy").shape == (32, 32, 2) and (images / "1_output.png").exists()
    translator = Translator.load(run, fast=False)
    got = translator(np.load(data / "A" / "test" / "1.npy"), seed=0)
    assert isinstance(got, np.ndarray) and got.shape == (32, 32, 2) and got.dtype == np.float32


def test_a_16_bit_png_dataset_translates_to_16_bit_pngs(tmp_path, tiny):
    """Reported: a 16-bit grayscale PNG dataset trained, but translate wrote an 8-bit PNG with 66 levels."""
    data = make_16bit_dataset(tmp_path / "scans", {"train": 4, "test": 1})
    run = train_tiny(tmp_path, data, tiny, "--in-channels", "1", "--out-channels", "1", "--max-steps", "4")
    assert load_checkpoint(run).scales.input.kind == "uint16"
    out = tmp_path / "out"
    assert main(["translate", "--checkpoint", str(run), "--input", str(data / "A" / "test"), "--output", str(out),
                 "--no-fast"]) == 0
    with Image.open(out / "1.png") as im:
        assert im.mode.startswith("I;16")
        levels = len(np.unique(np.asarray(im)))
    assert levels > 256


@pytest.mark.parametrize("normalize", ["minmax", "meanstd"])
def test_the_translator_gives_16_bit_data_back_in_16_bits_whatever_its_scaling(tmp_path, tiny, normalize):
    """Reported: with --normalize minmax or meanstd, Translator returned float32 for 16-bit data (the CLI wrote
    16-bit PNGs of the same model)."""
    data = make_16bit_dataset(tmp_path / "scans", {"train": 4, "test": 1})
    run = train_tiny(tmp_path, data, tiny, "--in-channels", "1", "--out-channels", "1", "--max-steps", "2",
                     "--normalize", normalize)
    translator = Translator.load(run, eval=True, device="cpu", fast=False)
    with Image.open(data / "A" / "test" / "1.png") as im:
        picture = translator(im)
        array = translator(np.asarray(im))
    assert picture.mode.startswith("I;16") and array.dtype == np.uint16
    assert np.array_equal(np.asarray(picture), array[:, :, 0])


def test_bad_array_data_is_one_line_and_skip_bad_images_skips_it(tmp_path, tiny, capsys):
    data = make_array_dataset(tmp_path / "bands", {"train": 4})
    bad = np.load(data / "A" / "train" / "2.npy")
    bad[3, 4, 1] = np.nan
    np.save(data / "A" / "train" / "2.npy", bad)
    common = ["train", "--data", str(data), "--runs", str(tmp_path / "runs"), *tiny, *ARRAYS, "--max-steps", "2"]
    one_line_error(capsys, main(common), "2.npy: 1 value(s) are NaN or infinite (the first at row 3, column 4")
    assert main(common + ["--skip-bad-images", "--name", "skipping"]) == 0
    assert "2.npy" in capsys.readouterr().out
    one_line_error(capsys, main(common[:-4] + ["--in-channels", "4", "--out-channels", "2", "--name", "four"]),
                   "1.npy: 5 channel(s), and --in-channels is 4")


def test_a_checkpoint_whose_scaling_does_not_fit_its_generator_is_one_line(tmp_path, tiny):
    data = make_array_dataset(tmp_path / "bands", {"train": 2})
    run = train_tiny(tmp_path, data, tiny, *ARRAYS, "--max-steps", "1")
    path = run / "checkpoints" / "latest.safetensors"
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    scales = json.loads(meta["scales"])
    scales["input"]["a"] = scales["input"]["a"][:3]
    scales["input"]["b"] = scales["input"]["b"][:3]
    save_file(load_file(str(path)), str(tmp_path / "edited.safetensors"), metadata=meta | {"scales": json.dumps(scales)})
    with pytest.raises(Pix2PixError, match="its stored input scaling is for 3 channels, and the generator has 5"):
        load_checkpoint(tmp_path / "edited.safetensors")


def test_a_resumed_array_run_keeps_its_scalings(tmp_path, tiny, capsys):
    data = make_array_dataset(tmp_path / "bands", {"train": 4})
    run = train_tiny(tmp_path, data, tiny, *ARRAYS, "--max-steps", "2")
    assert "--preprocess none (or crop) keeps them as measured" in capsys.readouterr().out
    before = load_checkpoint(run).scales
    np.save(data / "B" / "train" / "1.npy", np.load(data / "B" / "train" / "1.npy") * 10)  # new data, same run
    assert main(["train", "--resume", str(run), "--max-steps", "4", "--no-progress"]) == 0
    assert load_checkpoint(run).meta["step"] == 4 and load_checkpoint(run).scales == before


def test_uint16_bands_in_tiff_train_translate_to_uint16_tiff_and_eval_per_channel(tmp_path, tiny, capsys):
    rng = np.random.default_rng(0)
    root = tmp_path / "tiffs"
    for side in "AB":
        for split in ("train", "test"):
            (root / side / split).mkdir(parents=True)
    for split, n in (("train", 3), ("test", 1)):
        for i in range(n):
            a = rng.integers(1000, 60000, (32, 32, 3)).astype(np.uint16)
            tifffile.imwrite(root / "A" / split / f"{i}.tif", a.transpose(2, 0, 1), photometric="minisblack",
                             planarconfig="separate")
            tifffile.imwrite(root / "B" / split / f"{i}.tif", 65535 - a, photometric="rgb")
    run = train_tiny(tmp_path, root, tiny, "--in-channels", "3", "--out-channels", "3", "--max-steps", "2")
    assert load_checkpoint(run).scales.output.kind == "uint16"
    assert main(["translate", "--checkpoint", str(run), "--input", str(root / "A" / "test"), "--output",
                 str(tmp_path / "out"), "--no-fast"]) == 0
    out = tifffile.imread(tmp_path / "out" / "0.tif")
    assert out.dtype == np.uint16 and out.shape == (32, 32, 3)
    capsys.readouterr()
    assert main(["eval", "--run", str(run), "--split", "test", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert [p["span_units"] for p in got["per_channel"]] == [65535.0] * 3


def test_a_btoa_array_run_scales_its_input_by_the_b_side(tmp_path, tiny):
    data = make_array_dataset(tmp_path / "bands", {"train": 3}, in_bands=5, out_bands=2)
    run = train_tiny(tmp_path, data, tiny, "--direction", "BtoA", "--in-channels", "2", "--out-channels", "5",
                     "--max-steps", "1")
    scales = load_checkpoint(run).scales
    b = np.stack([np.load(data / "B" / "train" / f"{i}.npy") for i in (1, 2, 3)])
    assert scales.input.channels == 2 and scales.input.a == pytest.approx(tuple(b.min((0, 1, 2))))


def test_preloaded_arrays_are_the_loaders_batches_bit_for_bit(tmp_path):
    from pix2pix.data.batches import EpochSampler, PreloadedPairs, make_loader
    from pix2pix.config import DataConfig

    data = make_array_dataset(tmp_path / "bands", {"train": 4}, size=40)
    pairs, _ = scan_split(data, "train")
    cfg = DataConfig(load_size=44, crop_size=32, workers=0)
    scales = fit_scales(pairs, cfg, 5, 2)
    sampler = EpochSampler(len(pairs), seed=3)
    preloaded = PreloadedPairs(pairs, cfg, 5, 2, seed=3, device=torch.device("cpu"), scales=scales)
    loader = make_loader(PairDataset(pairs, cfg, 5, 2, train=True, seed=3, scales=scales), 2, 0, sampler)
    for epoch in range(2):
        sampler.set_epoch(epoch)
        ours, theirs = list(preloaded.batches(sampler, 2)), list(loader)
        assert all(torch.equal(x["A"], y["A"]) and torch.equal(x["B"], y["B"]) for x, y in zip(ours, theirs))


def test_init_from_a_model_of_other_data_is_one_line(tmp_path, tiny, labels_run, capsys):
    data = make_array_dataset(tmp_path / "bands", {"train": 2}, in_bands=3, out_bands=3)
    code = main(["train", "--data", str(data), "--runs", str(tmp_path / "runs"), *tiny, "--init-from", str(labels_run),
                 "--max-steps", "1"])
    err = one_line_error(capsys, code, "--init-from")
    assert "its model takes input uint8 (0..255 -> [-1, 1])" in err and "this data does not fit" in err


def test_8_bit_tiffs_read_as_pillow_reads_them(tmp_path):
    gray = (np.arange(64).reshape(8, 8) * 3).astype(np.uint8)
    tifffile.imwrite(tmp_path / "white.tif", gray, photometric="miniswhite")
    tifffile.imwrite(tmp_path / "bilevel.tif", gray > 90, photometric="minisblack")
    for name in ("white.tif", "bilevel.tif"):
        with Image.open(tmp_path / name) as im:
            expected = np.asarray(im.convert("L"))
        assert np.array_equal(np.asarray(read_raster(tmp_path / name, 1)), expected)


def test_an_8_bit_model_takes_a_16_bit_image_as_8_bits_as_before(labels_run, tmp_path):
    sixteen = np.full((40, 48), 40000, np.uint16)
    Image.fromarray(sixteen).save(tmp_path / "g16.png")
    translator = Translator.load(labels_run, eval=True, device="cpu", fast=False)
    out = translator.translate_file(tmp_path / "g16.png")
    eight = Image.fromarray(np.full((40, 48), round(40000 * 255 / 65535), np.uint8)).convert("RGB")
    assert np.array_equal(np.asarray(out), np.asarray(translator(eight)))


def test_an_8_bit_two_band_tiff_keeps_both_bands_and_gray_with_alpha_stays_an_image(tmp_path):
    """Reported: an 8-bit 2-band TIFF (as the project writes for 2-channel 8-bit outputs) lost its second band
    through Pillow, so the project's own outputs could not be read back."""
    bands = np.stack([np.full((4, 5), 10, np.uint8), np.full((4, 5), 200, np.uint8)], 2)
    write_raster(tmp_path / "two.tif", bands, "tiff")
    back = read_raster(tmp_path / "two.tif", None)
    assert isinstance(back, np.ndarray) and back.shape == (4, 5, 2) and np.array_equal(back, bands)
    tifffile.imwrite(tmp_path / "la.tif", bands, photometric="minisblack", extrasamples=["unassalpha"])
    assert isinstance(read_raster(tmp_path / "la.tif", None), Image.Image)  # gray + alpha: an image, as before


@pytest.mark.parametrize("photometric, extra", [("minisblack", "assocalpha"), ("miniswhite", "unassalpha"),
                                               ("miniswhite", "assocalpha")])
def test_two_sample_tiffs_pillow_cannot_convert_are_read_as_bands(tmp_path, photometric, extra):
    bands = np.stack([np.full((4, 5), 10, np.uint8), np.full((4, 5), 200, np.uint8)], 2)
    tifffile.imwrite(tmp_path / "x.tif", bands, photometric=photometric, extrasamples=[extra])
    back = read_raster(tmp_path / "x.tif", 2)
    assert isinstance(back, np.ndarray) and back.shape == (4, 5, 2)


def test_a_link_loop_and_an_empty_npy_are_one_line_and_skippable(tmp_path, tiny, capsys):
    """Reported: tracebacks in train (with --skip-bad-images too) and in datasets check."""
    data = make_array_dataset(tmp_path / "bands", {"train": 3})
    (data / "A" / "train" / "1.npy").write_bytes(b"")
    with pytest.raises(Pix2PixError, match="the file ends before its data"):
        read_raster(data / "A" / "train" / "1.npy", None)
    loop = tmp_path / "loop.png"
    loop.symlink_to(tmp_path / "loop.png")
    with pytest.raises(Pix2PixError, match="cannot be read"):
        read_raster(loop, None)
    flags = [*tiny, "--in-channels", "5", "--out-channels", "2", "--max-steps", "1"]
    one_line_error(capsys, main(["train", "--data", str(data), "--runs", str(tmp_path / "runs"), *flags]),
                   "the file ends before its data")
    assert main(["train", "--data", str(data), "--runs", str(tmp_path / "runs"), "--name", "skip", *flags,
                 "--skip-bad-images"]) == 0
