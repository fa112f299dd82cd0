"""The main job on a tiny version of the embedded dataset, and the pieces of its page."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

from pix2pix.cli import main
from pix2pix.datasets.facades_synth import make_facades_synth
from pix2pix.demo import run_demo
from pix2pix.pages import line_plot


@pytest.fixture
def synth(tmp_path):
    return make_facades_synth(tmp_path / "synth", train=6, val=3, test=0, size=64, seed=0, progress=False)


@pytest.mark.slow
def test_demo_writes_page_and_metrics(tmp_path, synth):
    out = tmp_path / "runs" / "demo"
    lines = list(run_demo(out, synth, minutes=0.03, size=64, progress=False))
    assert any("page:" in line for line in lines)
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 < metrics["val_l1"] < 1 and 0 < metrics["baseline_l1"] < 1 and metrics["steps"] >= 1
    page = (out / "index.html").read_text()
    curves = re.findall(r"<img class=plot src='([\w./]+\.png)'", page)
    assert curves == ["web/curves.png"] and (out / curves[0]).stat().st_size > 1000  # loss and val curves
    # The figures in words, rounded, with what the baseline is; no raw keys or 16-digit floats.
    assert "mean training photo: the baseline to beat" in page and "val_l1" not in page
    assert not re.search(r"\d\.\d{6,}", page)
    shown = set(re.findall(r'src="(results/val/images/\w+_output\.png)"', page))
    assert len(shown) == 3  # every val image (up to 12) as input | output | target
    assert (out / "results" / "val" / "images" / "1_output.png").exists()


@pytest.mark.slow
def test_demo_makes_the_dataset_when_absent_and_replaces_its_own_run(tmp_path):
    data, out = tmp_path / "d", tmp_path / "runs" / "demo"
    import pix2pix.datasets.facades_synth as fs

    real = fs.make_facades_synth
    small = lambda path, progress=True: real(path, train=4, val=2, test=0, size=64, progress=False)  # noqa: E731
    fs.make_facades_synth = small
    try:
        first = list(run_demo(out, data, minutes=0.01, size=64, progress=False))
        assert "made the procedural facades" in first[0] and (data / "train" / "1.png").exists()
        second = list(run_demo(out, data, minutes=0.01, size=64, progress=False))
        assert "using the procedural facades" in second[0]
    finally:
        fs.make_facades_synth = real


def test_demo_leaves_a_foreign_folder_alone(tmp_path, synth, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    code = main(["demo", "--out", str(out), "--data", str(synth), "--minutes", "0.01", "--size", "64"])
    assert code == 2 and "holds something other than a demo run" in capsys.readouterr().err
    assert (out / "thesis.tex").read_text() == "precious"


def test_line_plot_draws_each_series_into_a_png(tmp_path):
    path = line_plot(tmp_path / "curves.png", {"a": [(0, 0.0), (10, 2.0)], "b": [(0, 1.0), (10, 1.0)]}, "title")
    rgb = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3).astype(int)
    for colour in ((0x1F, 0x77, 0xB4), (0xFF, 0x7F, 0x0E)):  # matplotlib's first two line colours, one a series
        assert (np.abs(rgb - colour).sum(1) < 60).sum() > 200, colour  # a line, antialiased
    assert line_plot(tmp_path / "empty.png", {}, "empty") is None and not (tmp_path / "empty.png").exists()
