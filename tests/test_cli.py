"""The command line end to end on tiny generated data, and the one-line errors a user can cause."""

from __future__ import annotations

import argparse

import pytest
import json
import subprocess
import sys

from PIL import Image

from conftest import one_line_error as _one_line_error
from conftest import train_tiny as _train
from pix2pix.checkpoints import load_checkpoint
from pix2pix.cli import main
from pix2pix.training.runs import read_log


def test_train_writes_a_complete_run(tmp_path, blocks, tiny, capsys):
    run = _train(tmp_path, blocks, tiny, "--max-steps", "6", "--epochs", "1", "--epochs-decay", "1",
                 "--snapshot-every", "1", "--val-every", "4")
    out = capsys.readouterr().out
    assert "checkpoint:" in out and "samples:" in out
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["generator"]["arch"] == "unet_32" and cfg["train"]["lambda_l1"] == 100.0
    assert cfg["data"]["root"] == str(blocks)
    ckpt = run / "checkpoints"
    assert {p.name for p in ckpt.iterdir()} == {"latest.safetensors", "state_00000006.pt", "epoch_001.safetensors",
                                                "best.safetensors"}  # validated at step 4
    assert [r["step"] for r in read_log(run / "val.csv")] == [4, 6]  # step 4, and the final state
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    page = (run / "web" / "index.html").read_text()
    assert "step 6" in page and "step 3" in page
    assert (run / "web" / "images" / "step00000006_output.png").exists()
    rows = read_log(run / "losses.csv")
    assert [r["step"] for r in rows] == [2, 4, 6]  # --log-every 2
    assert {"lr", "images_per_s", "D", "G", "G_gan", "G_l1"} <= set(rows[0])


def test_max_minutes_stops_and_saves(tmp_path, blocks, tiny, capsys):
    run = _train(tmp_path, blocks, tiny, "--minutes", "0.0001")
    assert "stopped at --minutes" in capsys.readouterr().out
    step = load_checkpoint(run).meta["step"]
    assert 1 <= step < 800  # far from the 200 epochs x 4 steps of the full schedule


def test_models_json_lists_every_network(capsys):
    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["unet_256"] == {"name": "unet_256", "role": "generator", "params": 54_413_955,
                                "receptive_field": None, "aliases": [],
                                "settings": {"ngf": 64, "in_channels": 3, "out_channels": 3}}
    assert rows["patch70"]["params"] == 2_768_705 and rows["patch70"]["receptive_field"] == 70
    assert "basic" in rows["patch70"]["aliases"]
    assert rows["pixel"]["receptive_field"] == 1 and rows["resnet_9blocks"]["params"] == 11_383_427


@pytest.mark.slow
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
    code = main(["train", "--data", str(blocks), "--runs", str(tmp_path / "runs"), "--max-steps", "8", *tiny])
    err = _one_line_error(capsys, code, "2.png")
    assert "--skip-bad-images" in err
    code = main(["train", "--data", str(blocks), "--runs", str(tmp_path / "runs"), "--max-steps", "8",
                 "--skip-bad-images", *tiny])
    out = capsys.readouterr().out
    assert code == 0 and "skipped 1 bad image(s)" in out and "2.png" in out


def test_truncated_odd_width_and_non_image_files(tmp_path, blocks, tiny, capsys):
    good = (blocks / "train" / "1.png").read_bytes()
    (blocks / "train" / "1.png").write_bytes(good[: len(good) // 2])
    code = main(["train", "--data", str(blocks), "--runs", str(tmp_path / "r"), "--max-steps", "8", *tiny])
    _one_line_error(capsys, code, "1.png: not a readable image")
    (blocks / "train" / "1.png").write_bytes(good)
    Image.new("RGB", (33, 16)).save(blocks / "train" / "odd.png")
    code = main(["train", "--data", str(blocks), "--runs", str(tmp_path / "r"), "--max-steps", "8", *tiny])
    _one_line_error(capsys, code, "odd.png: width 33 is odd")
    (blocks / "train" / "odd.png").unlink()
    (blocks / "train" / "notes.txt").write_text("hello")
    code = main(["train", "--data", str(blocks), "--runs", str(tmp_path / "r"), "--max-steps", "8", *tiny])
    _one_line_error(capsys, code, "notes.txt: not an image or array file")


def test_unwritable_output_folder(tmp_path, blocks, tiny, capsys):
    (tmp_path / "file").write_text("")
    code = main(["train", "--data", str(blocks), "--runs", str(tmp_path / "file" / "runs"), *tiny])
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
    _one_line_error(capsys, code, "no such folder; name a run folder")


def test_missing_split_for_test(tmp_path, blocks, tiny, capsys):
    run = _train(tmp_path, blocks, tiny, "--max-steps", "1")
    code = main(["test", "--run", str(run), "--split", "test"])
    _one_line_error(capsys, code, "no 'test' split (it has train, val)")


def test_a_new_run_never_overwrites_an_old_one(tmp_path, blocks, tiny, capsys):
    run = _train(tmp_path, blocks, tiny, "--max-steps", "1")
    before = (run / "checkpoints" / "latest.safetensors").read_bytes()
    code = main(["train", "--data", str(blocks), "--runs", str(tmp_path / "runs"), "--name", "run", *tiny])
    _one_line_error(capsys, code, "already holds a run; continue it with --resume")
    assert (run / "checkpoints" / "latest.safetensors").read_bytes() == before


def test_grayscale_input_to_colour_output(tmp_path, blocks, tiny):
    run = _train(tmp_path, blocks, tiny, "--max-steps", "2", "--in-channels", "1", "--direction", "BtoA")
    Image.new("L", (40, 30), 128).save(tmp_path / "grey.png")
    assert main(["translate", "--checkpoint", str(run), "--input", str(tmp_path / "grey.png"),
                 "--output", str(tmp_path / "o")]) == 0
    out = Image.open(tmp_path / "o" / "grey.png")
    assert out.mode == "RGB" and out.size == (40, 30)


def test_bench_and_translate_take_trains_own_flags():
    """One vocabulary: a flag that train, bench and translate share is declared once (from the configuration),
    with one name, one set of choices and one check, wherever it appears."""
    from pix2pix.cli import build_parser

    commands = build_parser()._subparsers._group_actions[0].choices

    def flags(name):
        return {s: a for a in commands[name]._actions for s in a.option_strings}

    train = flags("train")
    for name, expected in (("bench", {"--generator", "--ngf", "--ndf", "--discriminator", "--batch-size",
                                      "--workers", "--preload", "--device"}),
                           ("translate", {"--generator", "--ngf", "--norm", "--dropout", "--no-dropout",
                                          "--dropout-placement", "--direction"})):
        mine = flags(name)
        assert expected <= set(mine), (name, expected - set(mine))
        for flag in expected:
            assert mine[flag].dest == train[flag].dest and mine[flag].choices == train[flag].choices, (name, flag)
            for text in ("3", "0", "0.25", "-1", "nan"):  # the same value, or the same complaint
                assert _typed(mine[flag], text) == _typed(train[flag], text), (name, flag, text)


def _typed(action, text):
    import argparse

    if action.type is None:
        return text
    try:
        return action.type(text)
    except (argparse.ArgumentTypeError, ValueError) as e:
        return str(e)


@pytest.mark.parametrize("argv, needle", [
    (["train", "--data", "DATA", "--batch-size", "99999999999999999999999"], "--batch-size: must be in 1..65536"),
    (["train", "--data", "DATA", "--ngf", "4000"], "G parameters"),
    (["train", "--resume", "DATA/train/1.png"], "a file; name a run folder"),
    (["export", "--checkpoint", "RUN", "--out", "DATA"], "a folder; name the .onnx file"),
    (["datasets", "make", "facades-synth", "--out", "OUT", "--size", "100000000"], "must be 32 to 4096 pixels"),
    (["train", "--data", "DATA", "--name", "../../etc"], "one folder name inside --runs"),
    (["translate", "--checkpoint", "RUN", "--input", "DATA/val", "--output", "DATA/val"], "could overwrite them"),
])
def test_issue_20s_flag_probes_are_one_line(tmp_path, blocks, tiny, capsys, argv, needle):
    run = _train(tmp_path, blocks, tiny, "--max-steps", "1")
    argv = [a.replace("DATA", str(blocks)).replace("RUN", str(run)).replace("OUT", str(tmp_path / "o")) for a in argv]
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as e:  # a value argparse refuses
        code = e.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "Traceback" not in err, err
    assert needle in err, err


def test_train_says_what_it_trains_and_each_validation(tmp_path, blocks, tiny, capsys):
    """Issue 21 (a part): a start summary before the first step, and one line per validation with the best so
    far, on stdout (stderr keeps only what went wrong)."""
    _train(tmp_path, blocks, tiny[:-2], "--epochs", "1", "--epochs-decay", "1")
    said = capsys.readouterr()
    assert "G unet_32 ngf 4" in said.out and "8 steps from step 0 (4 an epoch, 1 + 1 epochs) on cpu" in said.out
    lines = [line for line in said.out.splitlines() if line.startswith("validation at step")]
    assert len(lines) == 2 and "l1 " in lines[0] and ("best so far" in lines[1] or "best l1" in lines[1])
    assert said.err == ""


def test_version(capsys):
    from pix2pix import __version__

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"pix2pix {__version__}"


def test_datasets_combine_split_and_check_follow_on(tmp_path, capsys):
    """Flat A and B folders -> `combine` -> `split` (or `combine --val --test`) -> a dataset `check` passes, in
    one summary."""
    import numpy as np

    rng = np.random.default_rng(0)
    for i in range(10):
        for side, mode in (("A", "RGB"), ("B", "L")):
            (tmp_path / side).mkdir(exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).convert(mode).save(
                tmp_path / side / f"{i}.{'jpg' if side == 'A' else 'png'}")
    sides = ["--a", str(tmp_path / "A"), "--b", str(tmp_path / "B")]

    assert main(["datasets", "combine", *sides, "--out", str(tmp_path / "two-steps")]) == 0
    assert main(["datasets", "split", str(tmp_path / "two-steps"), "--val", "0.2", "--test", "0.1", "--seed", "1"]) == 0
    assert main(["datasets", "combine", *sides, "--out", str(tmp_path / "one-step"), "--val", "0.2", "--test", "0.1",
                 "--seed", "1"]) == 0
    said = capsys.readouterr().out
    assert said.count("train 7, val 2, test 1") == 2, said
    for data in ("two-steps", "one-step"):
        assert main(["datasets", "check", str(tmp_path / data)]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) == 4, lines  # the splits, A, B, the totals
        assert "train 7, val 2, test 1" in lines[0]
        assert lines[1].startswith("A: 3-channel RGB PNG images, 16x16") and "B: 3-channel RGB PNG images" in lines[2]
        assert lines[3].endswith("10 pair(s) checked, 0 problem(s)")
    assert sorted(p.relative_to(tmp_path / "one-step").as_posix() for p in (tmp_path / "one-step").glob("*/*")) == \
        sorted(p.relative_to(tmp_path / "two-steps").as_posix() for p in (tmp_path / "two-steps").glob("*/*"))
    code = main(["datasets", "split", str(tmp_path / "one-step")])
    _one_line_error(capsys, code, "already has val, test")


def test_the_help_lists_every_command_in_a_group_with_examples(capsys):
    from pix2pix.cli import GROUPS, build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    listed = [name for names in GROUPS.values() for name in names]
    assert sorted(listed) == sorted(commands) and listed[0] == "demo"  # each once; the main job first
    assert all(p.description for p in commands.values())  # every command says what it does, and these more
    helps = {a.dest: a.help for a in parser._subparsers._group_actions[0]._choices_actions}
    assert all(len(commands[c].description) > len(helps[c]) + 20 for c in ("test", "translate", "serve", "export",
                                                                              "eval"))
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert out.index("train and use:") < out.index("data:") < out.index("evaluate:") < out.index("app:")
    assert "examples:" in out and "pix2pix train --data DATA --preset cpu --minutes 30" in out
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("pix2pix ")
    with pytest.raises(SystemExit):
        main(["datasets", "split", "--help"])
    assert capsys.readouterr().out.startswith("usage: pix2pix datasets split [-h]")  # the command's own usage
