"""Image metrics against hand-computed values, folder pairing, FID/KID with a stand-in feature extractor,
and the mean-image baseline."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY, make_aligned_dataset, one_line_error, train_tiny
from pix2pix.checkpoints import load_checkpoint
from pix2pix.cli import main
from pix2pix.errors import Pix2PixError
from pix2pix.evaluation.metrics import (PSNR_CAP, InceptionFeatures, evaluate_folders, fid_kid, gradient_magnitude,
                                image_metrics, mean_image_l1, results_l1)
from pix2pix.data.labels import CITYSCAPES, FACADES
from pix2pix.evaluation.segmentation import SegmenterConfig, train_segmenter


def test_results_l1_is_the_mean_absolute_error_in_unit_pixels(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (4, 4), (255, 255, 255)).save(images / "a_output.png")
    Image.new("RGB", (4, 4), (0, 0, 0)).save(images / "a_target.png")  # error 1
    Image.new("RGB", (4, 4), (51, 51, 51)).save(images / "b_output.png")
    Image.new("RGB", (4, 4), (51, 51, 51)).save(images / "b_target.png")  # error 0
    assert results_l1(tmp_path) == pytest.approx(0.5)


def test_results_l1_without_images_is_a_clear_error(tmp_path):
    with pytest.raises(Pix2PixError, match="no \\*_output.png"):
        results_l1(tmp_path)


def test_mean_image_baseline():
    train = [np.zeros((2, 2, 3)), np.ones((2, 2, 3))]  # mean 0.5 everywhere
    assert mean_image_l1(train, [np.ones((2, 2, 3)), np.full((2, 2, 3), 0.5)]) == pytest.approx(0.25)
    with pytest.raises(Pix2PixError):
        mean_image_l1([], [np.ones((1, 1, 1))])


# ------------------------------------------------------------------------------------------ metrics


def _save(path, arr01):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(np.rint(np.asarray(arr01) * 255), 0, 255).astype(np.uint8)).save(path)


def test_l1_mse_psnr_by_hand():
    tgt = np.full((8, 8, 3), 0.5)
    out = tgt + 0.1  # every pixel off by 0.1: L1 0.1, MSE 0.01, PSNR 20 dB
    m = image_metrics([(out, tgt), (tgt, tgt)])
    assert m["l1"] == pytest.approx(0.05)
    assert m["mse"] == pytest.approx(0.005)
    assert m["psnr"] == pytest.approx((20 + PSNR_CAP) / 2)  # an exact copy counts as PSNR_CAP dB
    assert m["count"] == 2


def test_ssim_is_one_for_a_copy_and_lower_for_noise():
    rng = np.random.default_rng(0)
    tgt = rng.random((32, 32, 3))
    assert image_metrics([(tgt, tgt)])["ssim"] == pytest.approx(1.0)
    noisy = np.clip(tgt + rng.normal(0, 0.2, tgt.shape), 0, 1)
    assert image_metrics([(noisy, tgt)])["ssim"] < 0.9


def test_gradient_magnitude_and_sharpness_by_hand():
    ramp = np.tile(np.arange(6, dtype=np.float64)[None, :, None] * 0.1, (6, 1, 3))  # +0.1 per column
    assert gradient_magnitude(ramp) == pytest.approx(0.1)
    diagonal = ramp + ramp.transpose(1, 0, 2)  # +0.1 along both axes: |grad| = 0.1 * sqrt(2)
    assert gradient_magnitude(diagonal) == pytest.approx(0.1 * np.sqrt(2))
    flat = np.full_like(ramp, 0.25)  # what an L1 blur tends towards
    assert image_metrics([(flat, ramp)])["sharpness"] == pytest.approx(0.0)
    assert image_metrics([(ramp * 2, ramp)])["sharpness"] == pytest.approx(2.0)


def test_folders_must_hold_the_same_names_and_sizes(tmp_path):
    for name in ("1", "2"):
        _save(tmp_path / "pred" / f"{name}.png", np.zeros((8, 8, 3)))
        _save(tmp_path / "target" / f"{name}.jpg", np.ones((8, 8, 3)))
    m = evaluate_folders(tmp_path / "pred", tmp_path / "target")
    assert m["l1"] == pytest.approx(1.0) and m["count"] == 2  # 1.png pairs with 1.jpg
    _save(tmp_path / "target" / "3.png", np.ones((8, 8, 3)))
    with pytest.raises(Pix2PixError, match="target has 1 image\\(s\\) the other folder lacks \\(first: 3\\)"):
        evaluate_folders(tmp_path / "pred", tmp_path / "target")
    _save(tmp_path / "pred" / "3.png", np.ones((9, 8, 3)))
    with pytest.raises(Pix2PixError, match="3.png: 8x9x3 differs from its target"):
        evaluate_folders(tmp_path / "pred", tmp_path / "target")
    (tmp_path / "empty").mkdir()
    with pytest.raises(Pix2PixError, match="no images to evaluate"):
        evaluate_folders(tmp_path / "empty", tmp_path / "target")


# ---------------------------------------------------------------------------------------- FID / KID


def test_fid_matches_the_frechet_distance_by_hand(stand_in):
    rng = np.random.default_rng(0)
    levels_out, levels_tgt = rng.integers(0, 256, 12), rng.integers(0, 256, 12)
    outs = [np.full((16, 16, 3), v, np.uint8) for v in levels_out]
    tgts = [np.full((16, 16, 3), v, np.uint8) for v in levels_tgt]
    got = fid_kid(outs, tgts, InceptionFeatures(stand_in))
    # One feature: (m1 - m2)^2 + s1^2 + s2^2 - 2 s1 s2, with sample (n - 1) variances.
    a, b = levels_out / 255, levels_tgt / 255
    m1, m2, s1, s2 = a.mean(), b.mean(), a.std(ddof=1), b.std(ddof=1)
    assert got["fid"] == pytest.approx((m1 - m2) ** 2 + (s1 - s2) ** 2, rel=1e-4)
    same = fid_kid(tgts, tgts, InceptionFeatures(stand_in))
    assert same["fid"] == pytest.approx(0.0, abs=1e-6)


def test_kid_tells_a_shifted_set_from_a_fresh_sample(stand_in):
    rng = np.random.default_rng(1)
    images = lambda lo, hi: [np.full((8, 8, 3), v, np.uint8) for v in rng.integers(lo, hi, 60)]  # noqa: E731
    torch.manual_seed(0)
    alike = fid_kid(images(0, 256), images(0, 256), InceptionFeatures(stand_in))
    shifted = fid_kid(images(0, 128), images(128, 256), InceptionFeatures(stand_in))
    assert shifted["kid"] > 10 * abs(alike["kid"]) and shifted["fid"] > 10 * alike["fid"]


def test_missing_or_wrong_inception_file_is_a_clear_error(tmp_path):
    with pytest.raises(Pix2PixError, match="need Inception weights.*cannot download"):
        InceptionFeatures(tmp_path / "inception-2015-12-05.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(Pix2PixError, match="not a TorchScript feature extractor"):
        InceptionFeatures(tmp_path / "junk.pt")


# ---------------------------------------------------------------------------------------- a whole run


CMP4 = FACADES.palette[:4]


@pytest.fixture(scope="module")
def scored_run(tmp_path_factory):
    """A tiny labels -> photo run on CMP-coloured data and a tiny segmenter for it."""
    tmp = tmp_path_factory.mktemp("scored")
    data = make_aligned_dataset(tmp / "data", {"train": 4, "val": 3}, colours=CMP4)
    run = train_tiny(tmp, data, list(TINY), "--direction", "BtoA", "--max-steps", "4")
    seg = tmp / "seg.safetensors"
    train_segmenter(data, seg, SegmenterConfig(arch="unet_32", ngf=4, size=32), steps=2, progress=False)
    return tmp, data, run, seg


def test_eval_run_prints_json_and_writes_metrics_and_page(scored_run, capsys):
    tmp, data, run, seg = scored_run
    assert main(["eval", "--run", str(run), "--split", "val", "--segmenter", str(seg), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert {"l1", "mse", "psnr", "ssim", "sharpness", "fcn", "count", "split"} <= set(got)
    assert set(got["fcn"]) == {"per_pixel_acc", "per_class_acc", "class_iou"} and got["count"] == 3
    saved = json.loads((run / "results" / "val" / "metrics.json").read_text())
    assert saved == {k: v for k, v in got.items() if k != "page"} and got["page"].endswith("val/index.html")
    assert got["checkpoint"].endswith("latest.safetensors") and got["step"] == 4  # what was scored
    # The figures agree with the images the run wrote.
    assert got["l1"] == pytest.approx(results_l1(run / "results" / "val"), abs=1e-9)
    page = (run / "results" / "val" / "index.html").read_text()
    assert "FCN-score, per-pixel accuracy" in page and "SSIM: structural similarity" in page
    assert page.count("_output.png") >= 3 and "latest checkpoint, step 4" in page


def test_eval_pred_target_folders_with_labels(scored_run, capsys):
    tmp, data, run, seg = scored_run
    images = run / "results" / "val" / "images"
    for kind in ("output", "target", "input"):
        (tmp / kind).mkdir(exist_ok=True)
        for p in images.glob(f"*_{kind}.png"):
            (tmp / kind / p.name.replace(f"_{kind}", "")).write_bytes(p.read_bytes())
    assert main(["eval", "--pred", str(tmp / "output"), "--target", str(tmp / "target"), "--labels",
                 str(tmp / "input"), "--segmenter", str(seg), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["count"] == 3 and 0 <= got["fcn"]["per_pixel_acc"] <= 1
    code = main(["eval", "--pred", str(tmp / "output"), "--target", str(tmp / "target"), "--segmenter", str(seg)])
    one_line_error(capsys, code, "needs the input labels: pass --labels DIR")


def test_eval_bad_input_is_one_line_each(scored_run, tmp_path, capsys):
    tmp, data, run, seg = scored_run
    code = main(["eval", "--run", str(run), "--split", "val", "--fid"])
    one_line_error(capsys, code, "--fid needs the Inception weights")
    code = main(["eval", "--run", str(run), "--inception", str(tmp_path / "nope.pt")])
    one_line_error(capsys, code, "nope.pt is not a file")
    (tmp_path / "untrained").mkdir()
    (tmp_path / "untrained" / "config.json").write_text((run / "config.json").read_text())
    code = main(["eval", "--run", str(tmp_path / "untrained")])
    one_line_error(capsys, code, "no checkpoints/latest.safetensors")
    (data / "test").mkdir(exist_ok=True)
    code = main(["eval", "--run", str(run), "--split", "test"])
    one_line_error(capsys, code, "split holds no images")
    other = make_aligned_dataset(tmp_path / "other", {"train": 2, "val": 2},
                                 colours=CITYSCAPES.palette[[2, 8, 10, 13]])  # street scenes, not facades
    other_run = train_tiny(tmp_path, other, list(TINY), "--direction", "BtoA", "--max-steps", "1")
    code = main(["eval", "--run", str(other_run), "--split", "val", "--segmenter", str(seg)])
    one_line_error(capsys, code, "not the 'facades' label colours")
    code = main(["eval", "--run", str(run), "--pred", str(tmp_path)])
    one_line_error(capsys, code, "either a run (--run DIR) or two folders")
    code = main(["eval", "--pred", str(tmp_path)])
    one_line_error(capsys, code, "--pred and --target go together")


def test_eval_of_an_array_run_scores_each_channel_in_normalised_and_data_units(bands_run, tmp_path, capsys):
    assert main(["eval", "--run", str(bands_run), "--split", "test", "--seed", "0", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["channels"] == 2 and got["count"] == 2 and len(got["per_channel"]) == 2
    images = bands_run / "results" / "test" / "images"
    outs = [np.load(images / f"{i}_output.npy") for i in (1, 2)]
    tgts = [np.load(images / f"{i}_target.npy") for i in (1, 2)]
    for c, p in enumerate(got["per_channel"]):  # by hand, in the data's units, then over the scaling's span
        l1 = np.mean([np.abs(o[..., c] - t[..., c]).mean() for o, t in zip(outs, tgts)])
        assert p["l1_units"] == pytest.approx(l1, rel=1e-5) and p["l1"] == pytest.approx(l1 / p["span_units"], rel=1e-5)
    scale = load_checkpoint(bands_run).scales.output
    assert got["per_channel"][1]["span_units"] == pytest.approx(scale.b[1] - scale.a[1], rel=1e-5)
    code = main(["eval", "--run", str(bands_run), "--split", "test", "--segmenter", str(tmp_path / "s.safetensors")])
    one_line_error(capsys, code, "no such segmenter")
    seg = tmp_path / "seg.safetensors"
    train_segmenter(make_aligned_dataset(tmp_path / "labels", {"train": 2}, colours=CMP4), seg,
                    SegmenterConfig(arch="unet_32", ngf=4, size=32), steps=1, progress=False)
    code = main(["eval", "--run", str(bands_run), "--split", "test", "--segmenter", str(seg)])
    one_line_error(capsys, code, "the FCN-score reads 8-bit label maps and photos")
    # Two folders of arrays: scored over the targets' own range
    for kind in ("output", "target"):
        (tmp_path / kind).mkdir()
        for i in (1, 2):
            (tmp_path / kind / f"{i}.npy").write_bytes((images / f"{i}_{kind}.npy").read_bytes())
    assert main(["eval", "--pred", str(tmp_path / "output"), "--target", str(tmp_path / "target"), "--json"]) == 0
    folders = json.loads(capsys.readouterr().out)
    assert folders["l1_units"] == pytest.approx(got["l1_units"], rel=1e-6) and folders["channels"] == 2
