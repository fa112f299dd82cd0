"""Tiled translation (pix2pix.inference.tiling): where tiles go, how they blend, and translate --tile end to end
against the whole-image translation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import make_pair, one_line_error
from conftest import train_tiny as _train
from pix2pix.cli import main
from pix2pix.inference.tiling import blend_tiles, origins, ramp


@pytest.mark.parametrize("length, tile, overlap", [(100, 32, 8), (64, 32, 0), (33, 32, 16), (20, 32, 8)])
def test_tiles_cover_every_pixel_and_end_flush(length, tile, overlap):
    starts = origins(length, min(tile, length), overlap)
    covered = np.zeros(length, bool)
    for s in starts:
        covered[s:s + min(tile, length)] = True
    assert covered.all() and starts[0] == 0 and starts[-1] + min(tile, length) == length
    assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))


def test_the_window_is_smooth_and_never_zero():
    w = ramp(128, 32)
    assert w.min() > 0 and w[32:96].min() == 1 and np.allclose(w, w[::-1])
    assert np.abs(np.diff(w)).max() < 0.11  # no step anywhere
    assert w[:8].max() < 0.01  # a tile's own edge counts for next to nothing where another tile covers it


def test_where_two_tiles_overlap_their_weights_hand_over_and_add_up_to_one():
    """The tile on the left weighs nearly nothing on the right end of the overlap (its own edge), the right one
    nearly nothing on the left end; in between they hand over smoothly, over half the overlap."""
    tile, overlap = 128, 32
    left, right = ramp(tile, overlap)[tile - overlap:], ramp(tile, overlap)[:overlap]
    assert np.allclose(left + right, 1, atol=2e-3)
    share = left / (left + right)
    assert share[0] > 0.99 and share[-1] < 0.01
    assert ((share > 0.1) & (share < 0.9)).sum() >= overlap // 3  # a handover, not a cut


def _blend(image: np.ndarray, translate, tile=32, overlap=8, channels=None, batch=1) -> np.ndarray:
    out = np.zeros(image.shape[:2] + ((channels or image.shape[2]),), np.float32)
    blend_tiles(translate, image, out, tile, overlap, lambda u: u.permute(1, 2, 0).numpy(), progress=False,
                batch=batch)
    return out


@pytest.mark.parametrize("batch", [1, 3])
def test_a_constant_model_gives_a_constant_image_and_an_identity_gives_the_input_back(batch):
    """Whether tiles go one at a time or several of a row together."""
    image = np.random.default_rng(0).uniform(-1, 1, (75, 130, 3)).astype(np.float32)
    sizes = []

    def constant(windows):
        sizes.append(len(windows))
        return torch.full((len(windows), 2, *windows[0].shape[:2]), 0.25)

    assert np.allclose(_blend(image, constant, channels=2, batch=batch), 0.25, atol=1e-6)
    assert max(sizes) == batch and sum(sizes) == len(origins(75, 32, 8)) * len(origins(130, 32, 8))
    identity = _blend(image, lambda ws: torch.stack([torch.from_numpy(np.array(w)).permute(2, 0, 1) for w in ws]),
                      batch=batch)
    assert np.allclose(identity, image, atol=1e-5)


def test_translate_tile_matches_the_whole_image_in_eval_mode(tmp_path, blocks, tiny, capsys):
    """Eval mode: the tiles' blend is the whole image's translation up to the tiles' missing context (35 dB or
    more on a mosaic of label maps); an .npy is translated by window into an .npy of the same size."""
    run = _train(tmp_path, blocks, tiny, "--max-steps", "4")
    rng = np.random.default_rng(1)
    mosaic = np.concatenate([np.concatenate([make_pair(rng, 32)[0] for _ in range(6)], 1) for _ in range(4)], 0)
    Image.fromarray(mosaic).save(tmp_path / "mosaic.png")

    def out(dest, *flags):
        assert main(["translate", "--checkpoint", str(run), "--input", str(tmp_path / "mosaic.png"), "--output",
                     str(tmp_path / dest), "--eval", *flags]) == 0
        return np.asarray(Image.open(tmp_path / dest / "mosaic.png"), np.float64)

    whole, tiled = out("whole"), out("tiled", "--tile", "64", "--overlap", "16")
    assert tiled.shape == whole.shape == (128, 192, 3)
    assert 10 * np.log10(255 ** 2 / max(((tiled - whole) ** 2).mean(), 1e-12)) >= 35
    assert "seams" not in capsys.readouterr().out  # eval mode: nothing to warn of
    np.save(tmp_path / "mosaic.npy", mosaic)
    for ext, read in (("npy", np.load), ("tif", lambda p: __import__("tifffile").imread(p))):  # by window
        data = tmp_path / f"mosaic.{ext}"
        np.save(data, mosaic) if ext == "npy" else __import__("tifffile").imwrite(data, mosaic, photometric="rgb")
        assert main(["translate", "--checkpoint", str(run), "--input", str(data), "--output",
                     str(tmp_path / ext), "--eval", "--tile", "64", "--overlap", "16"]) == 0
        units = read(tmp_path / ext / f"mosaic.{'npy' if ext == 'npy' else 'tif'}")
        assert np.abs(units.astype(np.float64) - tiled).max() <= 1  # the same translation as the PNG's


def test_tiling_in_the_papers_mode_says_what_it_gives_and_bad_tiles_are_one_line(tmp_path, blocks, tiny, capsys):
    run = _train(tmp_path, blocks, tiny, "--max-steps", "1")
    image = blocks / "val" / "1.png"
    assert main(["translate", "--checkpoint", str(run), "--input", str(image), "--output", str(tmp_path / "o"),
                 "--tile", "32", "--whole"]) == 0
    assert "can show as seams; --eval is seamless" in capsys.readouterr().out
    common = ["translate", "--checkpoint", str(run), "--input", str(image), "--output", str(tmp_path / "p")]
    one_line_error(capsys, main([*common, "--tile", "8"]), "at least 16 pixels")
    one_line_error(capsys, main([*common, "--tile", "32", "--overlap", "20"]), "up to half the tile")
    one_line_error(capsys, main([*common, "--overlap", "4"]), "--overlap goes with --tile")


# Run from a small process of its own: a child's peak memory counts its parent's memory at the fork, and pytest's
# is large. It prints the peak resident memory of `pix2pix ARGS...` in bytes.
PEAK = """
import os, subprocess, sys
proc = subprocess.Popen([sys.executable, "-m", "pix2pix", *sys.argv[1:]], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
print(usage.ru_maxrss * 1024 if status == 0 else -1)
"""


@pytest.mark.slow
def test_tiled_memory_does_not_grow_with_the_image(tmp_path, blocks, tiny):
    """A 4000 x 4000 .npy takes the memory of a 500 x 4000 one (a whole-image pass would take eight times
    more, and its float32 output alone is 183 MiB): the input and the output are read and written a band of
    rows at a time, so memory grows with the width only."""
    import subprocess
    import sys

    run = _train(tmp_path, blocks, tiny, "--max-steps", "1")
    peaks = {}
    for rows in (500, 4000):
        src = tmp_path / f"in{rows}.npy"
        np.save(src, np.random.default_rng(0).integers(0, 255, (rows, 4000, 3)).astype(np.uint8))
        done = subprocess.run([sys.executable, "-c", PEAK, "translate", "--checkpoint", str(run), "--input",
                               str(src), "--output", str(tmp_path / "out"), "--eval", "--tile", "512",
                               "--engine", "torch"],  # the image's memory, not the compiler's
                              capture_output=True, text=True, timeout=600)
        peaks[rows] = int(done.stdout.strip().splitlines()[-1])
        assert peaks[rows] > 0, done.stderr
        assert np.load(tmp_path / "out" / f"in{rows}.npy", mmap_mode="r").shape == (rows, 4000, 3)
    # Measured 14 to 60 MiB apart (allocator noise); holding the output alone would add 160 MiB.
    assert peaks[4000] - peaks[500] < 100 * 2**20, {k: v / 2**20 for k, v in peaks.items()}


def test_a_file_over_the_pixel_budget_is_tiled_without_being_asked(tmp_path, blocks, tiny, capsys, monkeypatch):
    import pix2pix.inference.tiling as tiling

    run = _train(tmp_path, blocks, tiny, "--max-steps", "1")
    Image.fromarray(np.zeros((80, 90, 3), np.uint8)).save(tmp_path / "big.png")
    monkeypatch.setattr(tiling, "AUTO_TILE_PIXELS", 70 * 70)
    monkeypatch.setattr(tiling, "AUTO_TILE", 32)
    assert main(["translate", "--checkpoint", str(run), "--input", str(tmp_path / "big.png"), "--output",
                 str(tmp_path / "o"), "--eval"]) == 0
    assert "big.png: over 0.0 megapixels, translated in tiles of 32" in capsys.readouterr().out
    assert Image.open(tmp_path / "o" / "big.png").size == (90, 80)
