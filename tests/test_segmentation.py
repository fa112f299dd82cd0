"""The segmenter: class maps from labels/ or colours, FCN-scores against hand-computed values, training that
learns, a save/load round trip, and clear errors for the wrong classes or the wrong file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import make_aligned_dataset
from pix2pix.errors import Pix2PixError
from pix2pix.data.labels import FACADES, IGNORE
from pix2pix.evaluation.segmentation import (Segmenter, SegmenterConfig, build_segmenter, confusion, evaluate_segmenter,
                                  fcn_scores, split_examples, train_segmenter)

CMP4 = FACADES.palette[[0, 1, 2, 3]]  # background, facade, window, door


@pytest.fixture
def facades_like(tmp_path: Path) -> Path:
    """Photo | CMP-coloured labels, 8 train and 3 val pairs of 32x32."""
    return make_aligned_dataset(tmp_path / "fl", {"train": 8, "val": 3}, colours=CMP4)


def test_confusion_and_scores_by_hand():
    truth = np.array([[0, 0, 1, 1], [2, 2, 2, IGNORE]])
    pred = np.array([[0, 1, 1, 1], [2, 0, 0, 1]])
    conf = confusion(pred, truth, 3)
    np.testing.assert_array_equal(conf, [[1, 1, 0], [0, 2, 0], [2, 0, 1]])  # the IGNORE pixel is left out
    s = fcn_scores(conf)
    assert s["per_pixel_acc"] == pytest.approx(4 / 7)
    assert s["per_class_acc"] == pytest.approx((1 / 2 + 2 / 2 + 1 / 3) / 3)
    # IoU: class 0: 1 / (2 + 3 - 1), class 1: 2 / (2 + 3 - 2), class 2: 1 / (3 + 1 - 1)
    assert s["class_iou"] == pytest.approx((1 / 4 + 2 / 3 + 1 / 3) / 3)


def test_classes_absent_from_the_truth_count_only_in_iou_when_predicted():
    conf = confusion(np.array([0, 0, 2]), np.array([0, 0, 0]), 3)
    s = fcn_scores(conf)
    assert s["per_class_acc"] == pytest.approx(2 / 3)  # only class 0 is in the truth
    assert s["class_iou"] == pytest.approx((2 / 3 + 0) / 2)  # class 2 was predicted: IoU 0; class 1 not at all


def test_segmenter_outputs_logits_per_class():
    net = build_segmenter(SegmenterConfig(arch="unet_32", ngf=4, size=32))
    y = net(torch.randn(2, 3, 32, 32) * 3)
    assert y.shape == (2, 12, 32, 32)
    with pytest.raises(Pix2PixError, match="use a U-Net"):
        build_segmenter(SegmenterConfig(arch="resnet_9blocks"))


def test_class_maps_come_from_colours_or_from_labels_folder(facades_like):
    (stem, photo, classes), *_ = split_examples(facades_like, "train", "BtoA", FACADES)
    label_half = np.asarray(Image.open(facades_like / "train" / f"{stem}.png").convert("RGB"))[:, 32:]
    np.testing.assert_array_equal(classes, FACADES.class_map(label_half))
    assert photo.size == (32, 32) and set(np.unique(classes)) <= {0, 1, 2, 3}
    (facades_like / "train" / "labels").mkdir()
    Image.fromarray(np.full((32, 32), 7, np.uint8), "L").save(facades_like / "train" / "labels" / f"{stem}.png")
    (_, _, classes), *_ = split_examples(facades_like, "train", "BtoA", FACADES)
    assert (classes == 7).all()


def test_labels_of_other_classes_are_refused(tmp_path, facades_like):
    from pix2pix.data.labels import CITYSCAPES
    other = make_aligned_dataset(tmp_path / "other", {"train": 2}, colours=CITYSCAPES.palette[[2, 8, 10, 13]])
    with pytest.raises(Pix2PixError, match="not the 'facades' label colours"):
        split_examples(other, "train", "BtoA", FACADES)
    (facades_like / "val" / "labels").mkdir()
    Image.fromarray(np.full((32, 32), 40, np.uint8), "L").save(facades_like / "val" / "labels" / "1.png")
    with pytest.raises(Pix2PixError, match="holds class 40.*12 classes"):
        split_examples(facades_like, "val", "BtoA", FACADES)


@pytest.mark.slow
def test_training_learns_and_round_trips(tmp_path, facades_like):
    cfg = SegmenterConfig(arch="unet_32", ngf=8, size=32)
    seg = train_segmenter(facades_like, tmp_path / "seg.safetensors", cfg, steps=150, batch_size=4, progress=False)
    scores = evaluate_segmenter(seg, facades_like, "val", progress=False)
    # Each class has its own tint in these photos: a trained segmenter reads most pixels right; chance is ~0.3.
    assert scores["per_pixel_acc"] > 0.8
    again = Segmenter.load(tmp_path / "seg.safetensors")
    assert again.config == cfg and again.meta["steps"] == 150
    photo = Image.open(facades_like / "val" / "1.png").crop((0, 0, 32, 32))
    np.testing.assert_array_equal(again.predict(photo), seg.predict(photo))


def test_loading_something_else_is_a_clear_error(tmp_path):
    from pix2pix.checkpoints import save_weights
    from pix2pix.config import GeneratorConfig
    from pix2pix.networks import build_generator

    g_cfg = GeneratorConfig(arch="unet_32", ngf=4)
    save_weights(tmp_path / "g.safetensors", build_generator(g_cfg), g_cfg)
    with pytest.raises(Pix2PixError, match="not a segmenter \\(a pix2pix generator checkpoint\\)"):
        Segmenter.load(tmp_path / "g.safetensors")
    with pytest.raises(Pix2PixError, match="no such segmenter"):
        Segmenter.load(tmp_path / "none.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(Pix2PixError, match="not a readable"):
        Segmenter.load(tmp_path / "junk.safetensors")


def test_an_empty_split_is_a_clear_error(facades_like):
    (facades_like / "test").mkdir()
    with pytest.raises(Pix2PixError, match="split holds no images"):
        split_examples(facades_like, "test", "BtoA", FACADES)


def test_cli_trains_and_evaluates_a_segmenter(tmp_path, facades_like, capsys):
    from pix2pix.cli import main

    seg = tmp_path / "seg.safetensors"
    assert main(["segmenter", "train", "--data", str(facades_like), "--out", str(seg), "--size", "64",
                 "--ngf", "4", "--steps", "3"]) == 0
    assert "on the real val photos: per_pixel_acc" in capsys.readouterr().out
    assert main(["segmenter", "eval", "--segmenter", str(seg), "--data", str(facades_like), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert set(scores) == {"per_pixel_acc", "per_class_acc", "class_iou"}
    assert all(0 <= v <= 1 for v in scores.values())
