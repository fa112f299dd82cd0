"""Validation during training: val.csv, the best checkpoint by a stated metric, an exact resume that stays
exact, its bad inputs, and the warnings of a collapsed D or a G whose output stopped varying."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from conftest import CMP4, make_aligned_dataset, one_line_error, train_tiny
from pix2pix.checkpoints import load_checkpoint
from pix2pix.cli import main
from pix2pix.training.runs import read_log
from pix2pix.config import BETTER
from pix2pix.training.validation import Validator


def test_each_epoch_end_is_scored_and_the_best_is_kept(tmp_path, blocks, tiny, capsys):
    assert tiny[-2:] == ["--val-every", "0"]
    run = train_tiny(tmp_path, blocks, tiny[:-2] + ["--best-metric", "psnr", "--val-images", "2"],
                     "--epochs", "1", "--epochs-decay", "1")
    rows = read_log(run / "val.csv")
    assert [r["step"] for r in rows] == [4, 8] and all(r["images"] == 2 for r in rows)
    best = load_checkpoint(run / "checkpoints" / "best.safetensors")
    assert best.meta["val"]["metric"] == "psnr" and best.meta["val"]["better"] == "higher"
    assert best.meta["val"]["value"] == pytest.approx(max(r["psnr"] for r in rows), abs=1e-5)
    assert best.meta["step"] == max(rows, key=lambda r: r["psnr"])["step"]
    out = capsys.readouterr().out
    assert "validation: 2 run(s) on 2 val images" in out and "best psnr" in out
    assert "<th>val L1</th>" in (run / "web" / "index.html").read_text()  # on the run's page too


def test_validation_leaves_an_exact_resume_exact(tmp_path, blocks, tiny):
    common = ["train", "--data", str(blocks), "--runs", str(tmp_path / "runs"), *tiny, "--val-every", "2", "--seed", "1"]
    assert main(common + ["--name", "straight", "--max-steps", "7"]) == 0
    assert main(common + ["--name", "split", "--max-steps", "3"]) == 0
    assert main(["train", "--resume", str(tmp_path / "runs" / "split"), "--max-steps", "7", "--no-progress"]) == 0
    a = load_file(str(tmp_path / "runs" / "straight" / "checkpoints" / "latest.safetensors"))
    b = load_file(str(tmp_path / "runs" / "split" / "checkpoints" / "latest.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    # Every 2 steps, and the final state of each session (the --max-steps stop at 3, the end at 7).
    assert [r["step"] for r in read_log(tmp_path / "runs" / "split" / "val.csv")] == [2, 3, 4, 6, 7]


def test_val_every_without_a_val_split_is_one_line(tmp_path, tiny, capsys):
    from conftest import make_aligned_dataset

    data = make_aligned_dataset(tmp_path / "data", {"train": 4})
    one_line_error(capsys, main(["train", "--data", str(data), "--runs", str(tmp_path / "runs"), *tiny,
                                 "--val-every", "2"]), "has no val split")


@pytest.mark.parametrize("metric, values, best", [("l1", [0.3, 0.2, 0.25], 0.2), ("psnr", [20, 23, 22], 23),
                                                  ("ssim", [0.5, 0.4, 0.6], 0.6), ("class_iou", [0.2, 0.4, 0.3], 0.4),
                                                  ("fid", [90.0, 70.0, 80.0], 70.0)])
def test_which_way_each_metric_is_better(metric, values, best):
    v = Validator([], None, 3, 3, None, metric)
    for x in values:
        if v.better(x):
            v.best = x
    assert v.best == best and BETTER[metric] in ("lower", "higher")


def test_a_collapsed_d_or_a_flat_g_is_one_warning_each():
    from pix2pix.training.guards import CollapseWatch

    watch = CollapseWatch()
    said = [line for _ in range(7) for line in watch.see(100, {"D": 1e-5, "G": 3.0}, torch.zeros(1, 3, 8, 8))]
    assert len(said) == 2 and "discriminator has won" in said[0] and "stopped varying" in said[1]
    healthy = CollapseWatch()
    assert [line for _ in range(7) for line in healthy.see(5, {"D": 0.6, "G": 30.0}, torch.rand(1, 3, 8, 8))] == []
    # Four logs in a row are not five: a watch that recovers says nothing.
    flaky = CollapseWatch()
    for i in range(12):
        assert flaky.see(i, {"D": 1e-5 if i % 5 else 0.5, "G": 3.0}, torch.rand(1, 3, 8, 8)) == []


def test_validation_does_not_change_what_training_draws(tmp_path, blocks, tiny):
    """Its noise is drawn from a forked RNG: a run with validation ends with the weights of one without."""
    common = ["train", "--data", str(blocks), "--runs", str(tmp_path / "runs"), *tiny, "--max-steps", "5"]
    assert main(common + ["--name", "with", "--val-every", "1"]) == 0
    assert main(common + ["--name", "without"]) == 0
    a = load_file(str(tmp_path / "runs" / "with" / "checkpoints" / "latest.safetensors"))
    b = load_file(str(tmp_path / "runs" / "without" / "checkpoints" / "latest.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_when_validation_costs_too_much_it_scores_fewer_images_and_compares_like_with_like(capsys, monkeypatch):
    """The first validation finds it costs over a tenth of training: the next ones take fewer images, and it is
    recorded on those images too (L1 on other images does not compare)."""
    import pix2pix.training.validation as validation

    v = Validator(list(range(40)), None, 3, 3, None, "l1")
    clock = iter([0.0, 5.0])  # the validation takes 5 s
    monkeypatch.setattr(validation.time, "perf_counter", lambda: next(clock))
    monkeypatch.setattr(validation, "PairDataset", lambda pairs, *a, **k: [])
    scored = []
    monkeypatch.setattr(validation, "image_metrics",
                        lambda pairs: scored.append(len(pairs)) or {"l1": 0.1, "psnr": 20.0, "ssim": 0.5,
                                                                     "count": len(pairs)})
    metrics = v.score(torch.nn.Identity(), torch.device("cpu"), train_seconds=10.0)
    # 40 images at 5 s against 10 s of training would be 8 for a tenth; a cut never goes under 10.
    assert v.images == 10 and metrics["count"] == scored[-1]  # recorded on the images the next ones score
    assert "score the first 10 of 40 val images" in capsys.readouterr().err
    clock = iter([0.0, 50.0])  # a later validation, however costly, keeps the run's set: rows stay comparable
    v.score(torch.nn.Identity(), torch.device("cpu"), train_seconds=1.0)
    assert v.images == 10


def test_the_fcn_score_and_fid_are_validated_and_the_best_is_kept_by_one(tmp_path, tiny, stand_in, capsys):
    """With --segmenter and --inception each validation also scores the FCN-score and FID/KID, as
    'pix2pix eval' scores the same checkpoint's val translations; --best-metric class_iou keeps the best by it."""
    from pix2pix.evaluation.segmentation import SegmenterConfig, train_segmenter

    data = make_aligned_dataset(tmp_path / "facadeish", {"train": 4, "val": 3}, colours=CMP4)
    seg = tmp_path / "seg.safetensors"
    train_segmenter(data, seg, SegmenterConfig(arch="unet_32", ngf=4, size=32), steps=2, progress=False)
    run = train_tiny(tmp_path, data, tiny[:-2] + ["--direction", "BtoA", "--segmenter", str(seg), "--inception",
                                                   str(stand_in), "--best-metric", "class_iou", "--val-images", "3"],
                     "--epochs", "1", "--epochs-decay", "1")
    rows = read_log(run / "val.csv")
    assert [r["step"] for r in rows] == [4, 8]
    assert all({"per_pixel_acc", "per_class_acc", "class_iou", "fid", "kid"} <= set(r) for r in rows)
    best = load_checkpoint(run / "checkpoints" / "best.safetensors")
    assert best.meta["val"]["metric"] == "class_iou" and best.meta["val"]["better"] == "higher"
    assert best.meta["val"]["value"] == pytest.approx(max(r["class_iou"] for r in rows), abs=1e-5)
    assert "best class_iou" in capsys.readouterr().out
    # The last validation scored the final weights: 'pix2pix eval' of the run, same seed, finds the same figures
    # (up to its outputs being written as 8-bit PNGs first).
    assert main(["eval", "--run", str(run), "--split", "val", "--seed", "0", "--segmenter", str(seg),
                 "--inception", str(stand_in), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert rows[-1]["l1"] == pytest.approx(got["l1"], abs=2e-3)
    assert rows[-1]["class_iou"] == pytest.approx(got["fcn"]["class_iou"], abs=0.02)
    assert rows[-1]["fid"] == pytest.approx(got["fid"], rel=0.05, abs=1e-4)
    assert "val/class_iou" in _tensorboard_tags(run)


def _tensorboard_tags(run) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    return set(acc.Tags()["scalars"])


def test_a_best_metric_without_what_it_needs_is_one_line(tmp_path, blocks, tiny, capsys):
    common = ["train", "--data", str(blocks), "--runs", str(tmp_path / "runs"), *tiny[:-2]]
    one_line_error(capsys, main(common + ["--best-metric", "class_iou"]),
                   "--best-metric class_iou needs --segmenter")
    one_line_error(capsys, main(common + ["--best-metric", "fid"]), "--best-metric fid needs --inception")
    one_line_error(capsys, main(common + ["--segmenter", str(tmp_path / "nope.safetensors")]), "no such segmenter")
    one_line_error(capsys, main(common + ["--inception", str(tmp_path / "nope.pt")]), "nope.pt is not a file")
    assert not (tmp_path / "runs" / "blocks" / "config.json").exists()
