"""`pix2pix ablate` end to end on tiny data: every row trained with the same budget, the report files, and
one-line errors for a bad budget or data."""

from __future__ import annotations

import csv

import pytest
from PIL import Image

from conftest import make_aligned_dataset, one_line_error
from pix2pix.ablation import TABLES, row_config, slug
from pix2pix.checkpoints import load_checkpoint
from pix2pix.cli import main
from pix2pix.config import cpu_recipe
from pix2pix.data.labels import FACADES


@pytest.fixture
def facades_like(tmp_path):
    return make_aligned_dataset(tmp_path / "fl", {"train": 3, "val": 2}, size=64, colours=FACADES.palette[:4])


def test_rows_change_only_what_they_name(tmp_path, facades_like):
    base = cpu_recipe(facades_like, tmp_path / "abl", 64)
    for table, (_, rows) in TABLES.items():
        for row in rows:
            cfg = row_config(base, row, tmp_path / "abl", steps=10)
            assert cfg.train.objective == row.objective and cfg.discriminator.arch == row.discriminator
            want = row.generator if row.generator == "global" else f"{row.generator}_64"
            assert cfg.generator.arch == want and cfg.train.max_steps == 10
            assert cfg.train.seed == base.train.seed and cfg.data == base.data and cfg.name == slug(row.label)
    assert [r.label for r in TABLES["losses"][1]] == ["L1", "GAN", "cGAN", "L1+GAN", "L1+cGAN"]


def test_hd_table_compares_the_networks_and_each_loss_term(tmp_path, facades_like):
    from pix2pix.config import resolve

    base = cpu_recipe(facades_like, tmp_path / "abl", 64)
    got = []
    for row in TABLES["hd"][1]:
        cfg = resolve(row_config(base, row, tmp_path / "abl", steps=10))
        got.append((cfg.generator.arch, cfg.generator.norm, cfg.discriminator.arch, cfg.train.objective,
                    cfg.train.gan_loss, cfg.train.lambda_feat if cfg.discriminator.arch == "multiscale" else None))
    assert got == [("unet_64", "batch", "patch70", "l1+cgan", "vanilla", None),
                   ("global", "instance", "patch70", "l1+cgan", "vanilla", None),
                   ("global", "instance", "multiscale", "cgan", "lsgan", 10.0),
                   ("global", "instance", "multiscale", "cgan", "lsgan", 0.0),
                   ("global", "instance", "multiscale", "l1+cgan", "lsgan", 10.0)]


@pytest.mark.slow
def test_losses_table_end_to_end(tmp_path, facades_like, capsys):
    out = tmp_path / "abl"
    assert main(["ablate", "--data", str(facades_like), "--table", "losses", "--steps", "2", "--size", "64",
                 "--out", str(out), "--segmenter-minutes", "0.01"]) == 0
    printed = capsys.readouterr().out
    assert "ground truth row" in printed and "report:" in printed
    md = (out / "ablation.md").read_text()
    for label in ("| L1 |", "| GAN |", "| cGAN |", "| L1+GAN |", "| L1+cGAN |", "| Ground truth |"):
        assert label in md
    assert "0.66/0.23/0.17" in md and "2 steps of batch 1" in md  # the paper's L1+cGAN row, the budget
    with open(out / "ablation.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["config"] for r in rows] == ["L1", "GAN", "cGAN", "L1+GAN", "L1+cGAN", "ground truth"]
    assert all(0 <= float(r["per_pixel_acc"]) <= 1 for r in rows)
    for name in ("samples.png", "scores.png"):
        with Image.open(out / name) as im:
            assert im.width > 300 and im.height > 200
    for row in TABLES["losses"][1]:  # every row trained exactly the budget and was scored
        assert load_checkpoint(out / "runs" / slug(row.label)).meta["step"] == 2
        assert (out / "runs" / slug(row.label) / "results" / "val" / "metrics.json").exists()


def test_bad_budget_and_data(tmp_path, facades_like, capsys):
    code = main(["ablate", "--data", str(facades_like), "--table", "losses", "--out", str(tmp_path / "a")])
    one_line_error(capsys, code, "--steps N or as --minutes M")
    code = main(["ablate", "--data", str(facades_like), "--table", "losses", "--steps", "1", "--minutes", "1",
                 "--out", str(tmp_path / "a")])
    one_line_error(capsys, code, "--steps N or as --minutes M")
    code = main(["ablate", "--data", str(tmp_path / "nope"), "--table", "losses", "--steps", "1"])
    one_line_error(capsys, code, "no train split")
    with pytest.raises(SystemExit) as exit_:
        main(["ablate", "--data", str(facades_like), "--table", "colours", "--steps", "1"])
    one_line_error(capsys, exit_.value.code, "invalid choice: 'colours'")
