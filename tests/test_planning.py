"""Planning to a budget: timing the step, and the one epoch planner."""

from __future__ import annotations

from conftest import make_aligned_dataset
from pix2pix.config import RunConfig
from pix2pix.training.planning import measure_step_seconds, plan_epochs
from pix2pix.speed import PLAIN


def test_measure_step_seconds_runs_either_path():
    cfg = RunConfig()
    cfg.generator.arch, cfg.generator.ngf, cfg.discriminator.ndf = "unet_32", 4, 4
    cfg.data.crop_size, cfg.train.device = 32, "cpu"
    assert measure_step_seconds(cfg, steps=2, warmup=1, speed=PLAIN) > 0
    cfg.train.fast = True
    assert measure_step_seconds(cfg, steps=2, warmup=1) > 0


def test_measure_step_seconds_times_the_configured_step():
    from pix2pix.config import RunConfig
    cfg = RunConfig()
    cfg.generator.arch, cfg.generator.ngf, cfg.discriminator.ndf = "unet_32", 4, 4
    cfg.generator.out_channels, cfg.data.crop_size, cfg.train.device = 1, 32, "cpu"
    assert 0 < measure_step_seconds(cfg, steps=2, warmup=1) < 5


def test_plan_epochs_fits_a_time_budget_and_rounds_a_step_budget(tmp_path):
    cfg = RunConfig()
    cfg.data.root = str(make_aligned_dataset(tmp_path / "d", {"train": 10}))  # 10 steps an epoch at batch 1
    assert plan_epochs(cfg, 39) == 1 and plan_epochs(cfg, 39, nearest=True) == 2  # 20 or 40 steps
    assert plan_epochs(cfg, 40) == 2 and plan_epochs(cfg, 3) == plan_epochs(cfg, 3, nearest=True) == 1
