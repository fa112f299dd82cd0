"""The command line end to end on tiny generated data, and the one-line errors a user can cause."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import one_line_error as _one_line_error
from conftest import train_tiny as _train
from pix2pix import Translator
from pix2pix.checkpoints import load_checkpoint
from pix2pix.cli import main
from pix2pix.config import RunConfig
from pix2pix.runs import read_log


def test_train_writes_a_complete_run(tmp_path, blocks, tiny, capsys):
    run = _train(tmp_path, blocks, tiny, "--max-steps", "6", "--epochs", "1", "--epochs-decay", "1",
                 "--snapshot-every", "1")
    out = capsys.readouterr().out
    assert "checkpoint:" in out and "samples:" in out
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["generator"]["arch"] == "unet_32" and cfg["train"]["lambda_l1"] == 100.0
    assert cfg["data"]["root"] == str(blocks)
    ckpt = run / "checkpoints"
    assert {p.name for p in ckpt.iterdir()} == {"latest.safetensors", "state_00000006.pt", "epoch_001.safetensors"}
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    page = (run / "web" / "index.html").read_text()
    assert "step 6" in page and "step 3" in page
    assert (run / "web" / "images" / "step00000006_output.png").exists()
    rows = read_log(run / "losses.csv")
    assert [r["step"] for r in rows] == [2, 4, 6]  # --log-every 2
    assert {"lr", "images_per_s", "D", "G", "G_gan", "G_l1"} <= set(rows[0])


def test_max_minutes_stops_and_saves(tmp_path, blocks, tiny, capsys):
    run = _train(tmp_path, blocks, tiny, "--max-minutes", "0.0001")
    assert "stopped at --max-minutes" in capsys.readouterr().out
    step = load_checkpoint(run).meta["step"]
    assert 1 <= step < 800  # far from the 200 epochs x 4 steps of the full schedule


def test_a_checkpoint_alone_rebuilds_the_model(tmp_path, blocks, tiny):
    run = _train(tmp_path, blocks, tiny, "--max-steps", "2", "--norm", "instance", "--ngf", "6")
    translator = Translator.load(run / "checkpoints" / "latest.safetensors", eval=True, device="cpu")
    assert translator.config.arch == "unet_32"
    assert translator.config.norm == "instance" and translator.config.ngf == 6
    D = load_checkpoint(run / "checkpoints" / "latest.safetensors").build_discriminator()
    assert D(torch.zeros(1, 6, 32, 32)).shape == (1, 1, 2, 2)  # the conditional 70x70 PatchGAN, ndf 4


def test_preset_sets_paper_settings_and_flags_override_it(tmp_path, blocks, tiny):
    run = _train(tmp_path, blocks, tiny, "--preset", "edges2shoes", "--batch-size", "2", "--max-steps", "1")
    cfg = RunConfig.load(run / "config.json")
    assert (cfg.data.direction, cfg.train.epochs, cfg.data.flip) == ("AtoB", 15, False)
    assert cfg.data.batch_size == 2  # explicit flag beats the preset's 4
    run = _train(tmp_path, blocks, tiny, "--preset", "facades", "--max-steps", "1", name="f")
    cfg = RunConfig.load(run / "config.json")
    assert (cfg.data.direction, cfg.train.epochs, cfg.train.epochs_decay) == ("BtoA", 100, 100)


def test_test_command_writes_results_page(tmp_path, blocks, tiny):
    run = _train(tmp_path, blocks, tiny, "--max-steps", "2")
    assert main(["test", "--run", str(run), "--split", "val", "--eval"]) == 0
    results = run / "results" / "val"
    assert sorted(p.name for p in (results / "images").iterdir()) == [
        f"{i}_{kind}.png" for i in (1, 2) for kind in ("input", "output", "target")]
    assert "1_output.png" in (results / "index.html").read_text()


@pytest.mark.parametrize("size", [(300, 200), (256, 384), (37, 53)])
def test_translate_any_size(tmp_path, blocks, tiny, size):
    run = _train(tmp_path, blocks, tiny, "--max-steps", "1")
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), np.uint8)).save(src / "x.jpg")
    assert main(["translate", "--checkpoint", str(run), "--input", str(src), "--output", str(tmp_path / "out")]) == 0
    assert Image.open(tmp_path / "out" / "x.png").size == size


def test_translate_modes_eval_is_deterministic_paper_mode_follows_the_seed(tmp_path, blocks, tiny):
    run = _train(tmp_path, blocks, tiny, "--max-steps", "3")
    img = blocks / "val" / "1.png"

    def out(*flags):
        dest = tmp_path / "o"
        assert main(["translate", "--checkpoint", str(run), "--input", str(img), "--output", str(dest),
                     "--direction", "BtoA", *flags]) == 0
        return np.asarray(Image.open(dest / "1.png"))

    assert out("--eval").shape == (32, 32, 3)  # the B half of a 64x32 A|B pair
    assert np.array_equal(out("--eval"), out("--eval"))
    assert np.array_equal(out("--seed", "1"), out("--seed", "1"))
    assert not np.array_equal(out("--seed", "1"), out("--seed", "2"))


def test_python_api_in_three_lines(tmp_path, blocks, tiny):
    run = _train(tmp_path, blocks, tiny, "--max-steps", "1")
    translator = Translator.load(run, eval=True)
    pil = translator(Image.open(blocks / "val" / "1.png").crop((32, 0, 64, 32)))
    assert isinstance(pil, Image.Image) and pil.size == (32, 32)
    arr = translator(np.zeros((40, 24, 3), np.uint8))
    assert isinstance(arr, np.ndarray) and arr.shape == (40, 24, 3)
    t = translator(torch.zeros(2, 3, 20, 30))
    assert t.shape == (2, 3, 20, 30) and float(t.abs().max()) <= 1


def test_models_json_lists_every_network(capsys):
    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["unet_256"] == {"name": "unet_256", "role": "generator", "params": 54_413_955,
                                "receptive_field": None, "aliases": []}
    assert rows["patch70"]["params"] == 2_768_705 and rows["patch70"]["receptive_field"] == 70
    assert "basic" in rows["patch70"]["aliases"]
    assert rows["pixel"]["receptive_field"] == 1 and rows["resnet_9blocks"]["params"] == 11_383_427


def test_console_script_runs():
    done = subprocess.run([sys.executable, "-m", "pix2pix", "models"], capture_output=True, text=True)
    assert done.returncode == 0 and "54,413,955" in done.stdout


# ------------------------------------------------------------------------------------ bad input


def test_missing_and_empty_data_folders(tmp_path, tiny, capsys):
    code = main(["train", "--data", str(tmp_path / "nope"), *tiny])
    _one_line_error(capsys, code, "nope: no such folder")
    (tmp_path / "empty").mkdir()
    code = main(["train", "--data", str(tmp_path / "empty"), *tiny])
    _one_line_error(capsys, code, "no 'train' split")
    (tmp_path / "empty" / "train").mkdir()
    code = main(["train", "--data", str(tmp_path / "empty"), *tiny])
    _one_line_error(capsys, code, "holds no images")


def test_corrupt_image_stops_training_with_its_name_unless_skipped(tmp_path, blocks, tiny, capsys):
    (blocks / "train" / "2.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really" * 20)
    code = main(["train", "--data", str(blocks), "--out", str(tmp_path / "runs"), "--max-steps", "8", *tiny])
    err = _one_line_error(capsys, code, "2.png")
    assert "--skip-bad-images" in err
    code = main(["train", "--data", str(blocks), "--out", str(tmp_path / "runs"), "--max-steps", "8",
                 "--skip-bad-images", *tiny])
    out = capsys.readouterr().out
    assert code == 0 and "skipped 1 bad image(s)" in out and "2.png" in out


def test_truncated_odd_width_and_non_image_files(tmp_path, blocks, tiny, capsys):
    good = (blocks / "train" / "1.png").read_bytes()
    (blocks / "train" / "1.png").write_bytes(good[: len(good) // 2])
    code = main(["train", "--data", str(blocks), "--out", str(tmp_path / "r"), "--max-steps", "8", *tiny])
    _one_line_error(capsys, code, "1.png: not a readable image")
    (blocks / "train" / "1.png").write_bytes(good)
    Image.new("RGB", (33, 16)).save(blocks / "train" / "odd.png")
    code = main(["train", "--data", str(blocks), "--out", str(tmp_path / "r"), "--max-steps", "8", *tiny])
    _one_line_error(capsys, code, "odd.png: width 33 is odd")
    (blocks / "train" / "odd.png").unlink()
    (blocks / "train" / "notes.txt").write_text("hello")
    code = main(["train", "--data", str(blocks), "--out", str(tmp_path / "r"), "--max-steps", "8", *tiny])
    _one_line_error(capsys, code, "notes.txt: not an image file")


@pytest.mark.parametrize("flags, needle", [
    (["--norm", "group"], "--norm: invalid choice"),
    (["--generator", "unet_100"], "unet_100"),
    (["--generator", "vgg"], "unknown generator 'vgg'"),
    (["--discriminator", "patch99"], "unknown discriminator 'patch99'"),
    (["--batch-size", "0"], "--batch-size: must be > 0"),
    (["--objective", "l2"], "--objective: invalid choice"),
    (["--crop-size", "300", "--load-size", "286"], "larger than --load-size"),
])
def test_unknown_option_values(tmp_path, blocks, flags, needle, capsys):
    with pytest.raises(SystemExit) as exit_:
        code = main(["train", "--data", str(blocks), "--out", str(tmp_path), *flags])
        raise SystemExit(code)
    _one_line_error(capsys, exit_.value.code, needle)


def test_unwritable_output_folder(tmp_path, blocks, tiny, capsys):
    (tmp_path / "file").write_text("")
    code = main(["train", "--data", str(blocks), "--out", str(tmp_path / "file" / "runs"), *tiny])
    _one_line_error(capsys, code, "cannot write there")
    run = _train(tmp_path, blocks, tiny, "--max-steps", "1")
    code = main(["translate", "--checkpoint", str(run), "--input", str(blocks / "val"),
                 "--output", str(tmp_path / "file" / "out")])
    _one_line_error(capsys, code, "cannot create it")


def test_checkpoint_that_does_not_match_the_requested_architecture(tmp_path, blocks, tiny, capsys):
    run = _train(tmp_path, blocks, tiny, "--max-steps", "1")
    code = main(["translate", "--checkpoint", str(run), "--input", str(blocks / "val"),
                 "--output", str(tmp_path / "o"), "--generator", "unet_64"])
    _one_line_error(capsys, code, "does not match generator unet_64")
    code = main(["translate", "--checkpoint", str(tmp_path / "missing.pth"), "--input", str(blocks / "val"),
                 "--output", str(tmp_path / "o")])
    _one_line_error(capsys, code, "no such checkpoint")


def test_resume_refuses_to_change_the_model(tmp_path, blocks, tiny, capsys):
    run = _train(tmp_path, blocks, tiny, "--max-steps", "1")
    code = main(["train", "--resume", str(run), "--ngf", "8"])
    _one_line_error(capsys, code, "--ngf cannot change when resuming")
    code = main(["train", "--resume", str(tmp_path / "runs" / "nothing")])
    _one_line_error(capsys, code, "config.json: no such file")


def test_missing_split_for_test(tmp_path, blocks, tiny, capsys):
    run = _train(tmp_path, blocks, tiny, "--max-steps", "1")
    code = main(["test", "--run", str(run), "--split", "test"])
    _one_line_error(capsys, code, "no 'test' split (it has train, val)")


def test_a_new_run_never_overwrites_an_old_one(tmp_path, blocks, tiny, capsys):
    run = _train(tmp_path, blocks, tiny, "--max-steps", "1")
    before = (run / "checkpoints" / "latest.safetensors").read_bytes()
    code = main(["train", "--data", str(blocks), "--out", str(tmp_path / "runs"), "--name", "run", *tiny])
    _one_line_error(capsys, code, "already holds a run; continue it with --resume")
    assert (run / "checkpoints" / "latest.safetensors").read_bytes() == before


def test_grayscale_input_to_colour_output(tmp_path, blocks, tiny):
    run = _train(tmp_path, blocks, tiny, "--max-steps", "2", "--in-channels", "1", "--direction", "BtoA")
    Image.new("L", (40, 30), 128).save(tmp_path / "grey.png")
    assert main(["translate", "--checkpoint", str(run), "--input", str(tmp_path / "grey.png"),
                 "--output", str(tmp_path / "o")]) == 0
    out = Image.open(tmp_path / "o" / "grey.png")
    assert out.mode == "RGB" and out.size == (40, 30)
