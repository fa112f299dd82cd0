"""The configuration: one resolve step that checks every field and derives the dependent ones, flags
generated from the fields, presets, and what config.json records."""

from __future__ import annotations

import dataclasses
import json

import pytest

from conftest import one_line_error as _one_line_error
from conftest import train_tiny as _train
from pix2pix.checkpoints import load_checkpoint
from pix2pix.cli import build_parser, main
from pix2pix.config import SECTIONS, RunConfig, TrainConfig, cpu_recipe, flag_of, resolve
from pix2pix.errors import Pix2PixError


def test_preset_sets_paper_settings_and_flags_override_it(tmp_path, blocks, tiny):
    run = _train(tmp_path, blocks, tiny, "--preset", "edges2shoes", "--batch-size", "2", "--max-steps", "1")
    cfg = RunConfig.load(run / "config.json")
    assert (cfg.data.direction, cfg.train.epochs, cfg.data.flip) == ("AtoB", 15, False)
    assert cfg.data.batch_size == 2  # explicit flag beats the preset's 4
    run = _train(tmp_path, blocks, tiny, "--preset", "facades", "--max-steps", "1", name="f")
    cfg = RunConfig.load(run / "config.json")
    assert (cfg.data.direction, cfg.train.epochs, cfg.train.epochs_decay) == ("BtoA", 100, 100)


# The paper's appendix 6.2 (../shared/REFERENCE.md): the direction of the paper's experiment (and of the
# published model), total epochs, batch, and whether the images are jittered and mirrored.
PAPER = {
    "facades": ("BtoA", 200, 1, True),         # labels -> photo
    "cityscapes": ("BtoA", 200, 1, True),      # labels -> photo
    "maps": ("AtoB", 200, 1, True),            # aerial -> map (sat2map)
    "edges2shoes": ("AtoB", 15, 4, False),     # edges -> shoe
    "edges2handbags": ("AtoB", 15, 4, False),  # edges -> handbag
    "night2day": ("BtoA", 17, 4, True),        # day -> night (day2night)
}


@pytest.mark.parametrize("name", list(PAPER))
def test_every_preset_is_the_papers_experiment(name):
    from pix2pix.config import PRESETS, apply_preset

    assert set(PRESETS) == set(PAPER) | {"cpu", "cityscapes-hd-512", "cityscapes-hd-1024"}  # pix2pixHD's: test_hd
    cfg = resolve(apply_preset(RunConfig(), name))
    direction, epochs, batch, jitter = PAPER[name]
    assert cfg.data.direction == direction
    assert cfg.train.epochs + cfg.train.epochs_decay == epochs and cfg.data.batch_size == batch
    assert (cfg.data.load_size > cfg.data.crop_size) == jitter and cfg.data.flip == jitter


@pytest.mark.parametrize("flags, needle", [
    (["--norm", "group"], "--norm: invalid choice"),
    (["--generator", "unet_100"], "unet_100"),
    (["--generator", "vgg"], "unknown generator 'vgg'"),
    (["--discriminator", "patch99"], "unknown discriminator 'patch99'"),
    (["--batch-size", "0"], "--batch-size: must be in 1..65536"),
    (["--objective", "l2"], "--objective: invalid choice"),
    (["--crop-size", "300", "--load-size", "286"], "larger than --load-size"),
    # Sizes below what the networks take, channels no image file has (each once a traceback).
    (["--crop-size", "7"], "--crop-size 7: training images of 7x7 are too small"),
    (["--crop-size", "1"], "the smallest that works is"),
    (["--preprocess", "scale_width", "--load-size", "13"], "--load-size 13: training images of 13x13"),
    (["--in-channels", "2000"], "--in-channels: must be in 1..1024, not 2000"),
    (["--dropout", "2"], "--dropout: must be in [0, 1)"),
    (["--beta1", "1.5"], "--beta1: must be in [0, 1)"),
    (["--lr", "nan"], "--lr: must be a finite number"),
    (["--lr", "inf"], "--lr: must be a finite number"),
    (["--seed", "-1"], "--seed: must be an integer in [0, 9223372036854775807]"),
    (["--seed", "1e23"], "--seed"),
])
def test_unknown_option_values(tmp_path, blocks, flags, needle, capsys):
    with pytest.raises(SystemExit) as exit_:
        code = main(["train", "--data", str(blocks), "--runs", str(tmp_path), *flags])
        raise SystemExit(code)
    _one_line_error(capsys, exit_.value.code, needle)


@pytest.mark.parametrize("objective, d_in", [("l1+cgan", 6), ("cgan", 6), ("gan", 3), ("l1+gan", 3)])
def test_config_json_records_the_discriminator_that_was_built(tmp_path, blocks, tiny, objective, d_in):
    run = _train(tmp_path, blocks, tiny, "--objective", objective, "--max-steps", "1", name=objective)
    recorded = json.loads((run / "config.json").read_text())["discriminator"]
    built = load_checkpoint(run).discriminator
    assert recorded["in_channels"] == built.in_channels == d_in
    assert RunConfig.from_dict(load_checkpoint(run).meta["config"]).discriminator.in_channels == d_in


def test_critic_normalisation_for_wgangp():
    """--norm-d: D's own norm, by default --norm's, but layer norm (Gulrajani et al.) for a WGAN-GP critic;
    an explicit batch-norm critic is one line (a per-sample gradient penalty is ill-defined under it)."""
    def d_norm(**train):
        cfg = RunConfig()
        for k, v in train.pop("disc", {}).items():
            setattr(cfg.discriminator, k, v)
        cfg.generator.norm = train.pop("norm", "batch")
        for k, v in train.items():
            setattr(cfg.train, k, v)
        return resolve(cfg).discriminator.norm

    assert d_norm() == "batch" and d_norm(norm="instance") == "instance"
    assert d_norm(gan_loss="wgangp") == "layer" and d_norm(gan_loss="wgangp", norm="instance") == "layer"
    assert d_norm(gan_loss="wgangp", disc=dict(norm="instance")) == "instance"
    with pytest.raises(Pix2PixError, match="--norm-d batch"):
        d_norm(gan_loss="wgangp", disc=dict(norm="batch"))


def test_norm_d_flag(tmp_path, blocks, tiny, capsys):
    run = _train(tmp_path, blocks, tiny, "--gan-loss", "wgangp", "--max-steps", "1")
    assert load_checkpoint(run).discriminator.norm == "layer"
    assert RunConfig.load(run / "config.json").generator.norm == "batch"
    with pytest.raises(SystemExit) as exit_:
        raise SystemExit(main(["train", "--data", str(blocks), "--runs", str(tmp_path), "--gan-loss", "wgangp",
                               "--norm-d", "batch"]))
    _one_line_error(capsys, exit_.value.code, "--norm-d batch")


def test_resolve_derives_the_jitter_size_and_the_reference_names():
    cfg = RunConfig()
    cfg.data.crop_size, cfg.discriminator.arch = 128, "basic"
    resolve(cfg)
    assert cfg.data.load_size == 143 and cfg.discriminator.arch == "patch70"
    assert resolve(RunConfig()).data.load_size == 286  # the paper's 286/256
    explicit = RunConfig()
    explicit.data.load_size = 256
    assert resolve(explicit).data.load_size == 256  # given, kept (edges2shoes: no jitter)
    again = resolve(RunConfig.from_dict(cfg.to_dict()))
    assert again == cfg  # a resolved configuration resolves to itself


@pytest.mark.parametrize("section, name, value, needle", [
    ("generator", "dropout", 2.0, "--dropout: must be in [0, 1)"),
    ("train", "beta1", 1.5, "--beta1: must be in [0, 1)"),
    ("train", "lr", float("nan"), "--lr: must be a finite number"),
    ("train", "lr", float("inf"), "--lr: must be a finite number"),
    ("train", "seed", -1, "--seed: must be an integer in [0,"),
    ("train", "lambda_l1", float("nan"), "--lambda-l1: must be a finite number"),
    ("data", "crop_size", 0, "--crop-size: must be in 1..65536"),
    ("data", "preprocess", "squash", "--preprocess: invalid choice 'squash'"),
    ("data", "flip", "yes", "--no-flip: expected true or false"),
    ("generator", "ngf", 4.5, "--ngf: expected an integer"),
    ("train", "epochs", 0, "--epochs and --epochs-decay are both 0"),
])
def test_every_field_is_checked_in_one_line(section, name, value, needle):
    cfg = RunConfig()
    setattr(getattr(cfg, section), name, value)
    if name == "epochs":
        cfg.train.epochs_decay = 0
    with pytest.raises(Pix2PixError) as e:
        resolve(cfg)
    assert needle in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("flags, needle", [
    (["--dropout", "2"], "--dropout: must be in [0, 1)"),
    (["--beta1", "1.5"], "--beta1: must be in [0, 1)"),
    (["--lr", "nan"], "--lr: must be a finite number"),
    (["--seed", "-1"], "--seed: must be an integer"),
    (["--seed", "1e23"], "--seed: invalid int value"),
])
def test_bad_values_on_the_command_line_are_one_line(tmp_path, blocks, flags, needle, capsys):
    with pytest.raises(SystemExit) as exit_:
        raise SystemExit(main(["train", "--data", str(blocks), "--runs", str(tmp_path), *flags]))
    _one_line_error(capsys, exit_.value.code, needle)


def test_every_field_with_a_flag_is_on_the_command_line_with_its_default():
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    by_flag = {flag: action for action in train._actions for flag in action.option_strings}
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            if f.metadata.get("flag") is None and not f.metadata.get("switches"):
                continue  # derived (D's input channels, the dataset root) or set by another flag (--norm)
            flag = flag_of(section, f.name)
            assert flag in by_flag, flag
            assert by_flag[flag].dest == f"{section}.{f.name}"
            if f.metadata.get("flag") is not None and f.default is not None:
                assert f"default {f.default}" in by_flag[flag].help, flag


def test_norm_sets_both_networks_and_the_cpu_recipe_resolves(tmp_path, blocks, tiny):
    run = _train(tmp_path, blocks, tiny, "--norm", "instance", "--max-steps", "1")
    cfg = RunConfig.load(run / "config.json")
    assert cfg.generator.norm == cfg.discriminator.norm == "instance"
    recipe = resolve(cpu_recipe(blocks, tmp_path / "demo", size=64))
    assert (recipe.generator.arch, recipe.data.load_size, recipe.generator.ngf) == ("unet_64", 72, 32)


def test_the_step_gets_the_objective_slice():
    loss = TrainConfig(objective="gan", lambda_l1=5.0).loss
    assert (loss.objective, loss.lambda_l1, loss.conditional, loss.uses_gan, loss.uses_l1) == \
        ("gan", 5.0, False, True, False)


def test_n_layers_d_goes_with_the_n_layers_discriminator(tmp_path, blocks, tiny, capsys):
    run = _train(tmp_path, blocks, tiny, "--n-layers-d", "2", "--max-steps", "1")
    assert RunConfig.load(run / "config.json").discriminator.arch == "patch34"
    code = main(["train", "--data", str(blocks), "--runs", str(tmp_path), "--discriminator", "pixel",
                 "--n-layers-d", "4", *tiny])
    _one_line_error(capsys, code, "--n-layers-d goes with --discriminator n_layers")


@pytest.mark.parametrize("flags, warned", [
    (["--objective", "gan", "--lambda-l1", "50"], "--lambda-l1 has no effect with --objective gan"),
    (["--objective", "cgan", "--lambda-l1", "50"], "--lambda-l1 has no effect with --objective cgan"),
    (["--lambda-gp", "5"], "--lambda-gp has no effect with --gan-loss vanilla"),
    (["--objective", "l1", "--ndf", "16"], "--ndf has no effect with --objective l1"),
])
def test_an_option_without_effect_is_one_warning_line(tmp_path, blocks, tiny, capsys, flags, warned):
    _train(tmp_path, blocks, tiny, *flags, "--max-steps", "1")
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and warned in warnings[0]


def test_options_that_take_effect_warn_nothing(tmp_path, blocks, tiny, capsys):
    _train(tmp_path, blocks, tiny, "--lambda-l1", "50", "--gan-loss", "wgangp", "--lambda-gp", "5", "--max-steps", "1")
    assert "warning:" not in capsys.readouterr().err


def test_an_unknown_key_in_config_json_is_one_line_naming_key_and_file(tmp_path, blocks, tiny, capsys):
    run = _train(tmp_path, blocks, tiny, "--max-steps", "1")
    d = json.loads((run / "config.json").read_text())
    d["train"]["lambda_l2"] = 3.0
    (run / "config.json").write_text(json.dumps(d))
    msg = _one_line_error(capsys, main(["train", "--resume", str(run), "--max-steps", "2", "--no-progress"]),
                          "lambda_l2")
    assert "train.lambda_l2" in msg and str(run / "config.json") in msg
    d["train"].pop("lambda_l2")
    d["colour"] = "red"
    (run / "config.json").write_text(json.dumps(d))
    assert "'colour'" in _one_line_error(capsys, main(["test", "--run", str(run)]), "config.json")


def test_an_unknown_key_in_a_checkpoints_metadata_is_one_line(tmp_path, blocks, tiny, capsys):
    from safetensors.torch import load_file, safe_open, save_file

    run = _train(tmp_path, blocks, tiny, "--max-steps", "1")
    path = run / "checkpoints" / "latest.safetensors"
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    for key, edit in (("generator", lambda g: dict(g, wings=2)), (None, None)):
        m = dict(meta)
        if key:
            m[key] = json.dumps(edit(json.loads(m[key])))
        else:
            m["colour"] = json.dumps("red")
        bad = tmp_path / f"bad_{key}.safetensors"
        save_file(load_file(str(path)), str(bad), metadata=m)
        with pytest.raises(Pix2PixError) as e:
            load_checkpoint(bad)
        assert str(bad) in str(e.value) and ("generator.wings" if key else "'colour'") in str(e.value)
        assert "\n" not in str(e.value)


def test_under_torchrun_only_rank_0_prints_the_summary(tmp_path, blocks, monkeypatch, capsys):
    import pix2pix.training as training

    result = training.TrainResult(tmp_path, tmp_path / "latest.safetensors", tmp_path / "index.html", 3, 1, 1.0, 3, [])
    monkeypatch.setattr(training, "train", lambda cfg, resume=False, progress=True, stated=None: result)
    argv = ["train", "--data", str(blocks), "--runs", str(tmp_path), "--no-progress"]
    for rank, prints in (("1", False), ("0", True)):
        monkeypatch.setenv("RANK", rank)
        monkeypatch.setenv("WORLD_SIZE", "2")
        assert main(argv) == 0
        assert ("done: step 3" in capsys.readouterr().out) == prints


def test_the_size_check_builds_only_the_networks_the_objective_trains():
    """patch70 needs 24 pixels here, but an L1-only run trains no D: its 16-pixel crops are fine."""
    def cfg(objective):
        c = RunConfig()
        c.generator.arch, c.generator.ngf, c.discriminator.ndf = "unet_32", 4, 4
        c.data.crop_size, c.data.load_size, c.train.objective = 16, 16, objective
        return c

    assert resolve(cfg("l1")).data.crop_size == 16
    with pytest.raises(Pix2PixError, match="too small"):
        resolve(cfg("l1+cgan"))
