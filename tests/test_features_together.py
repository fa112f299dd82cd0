"""Features used together, as a user combines them: several processes with validation, a signal or a kill with an
exact resume, validation cut to fewer images with a resume, a resume under a file-size limit, fine-tuning with the
source's record, a resume with nothing left to do, and the files a crash can leave at the edges of a run.

Each test drives the command line (or ``train`` in-process where a signal must land at a random moment) on a tiny
configuration, and compares what a user would compare: the final weights, the files, the one line said."""

from __future__ import annotations

import csv
import os
import random
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from conftest import make_aligned_dataset, one_line_error
from pix2pix.cli import main

# A tiny run: 4 pairs at batch 1 are 4 steps an epoch; validation on (the conftest's TINY turns it off).
TINY = ["--generator", "unet_32", "--ngf", "4", "--ndf", "4", "--load-size", "36", "--crop-size", "32",
        "--workers", "0", "--no-progress", "--log-every", "2", "--sample-every", "3"]


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoints" / "latest.safetensors"))


def _same(a: dict, b: dict) -> list[str]:
    """The tensors that differ (bit for bit)."""
    assert a.keys() == b.keys()
    return [k for k in a if not torch.equal(a[k], b[k])]


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _meta(path: Path) -> dict:
    import json

    with safe_open(str(path), framework="pt") as f:
        return {k: json.loads(v) for k, v in (f.metadata() or {}).items() if k != "format"}


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return make_aligned_dataset(tmp_path / "data", {"train": 4, "val": 2})


def _train(tmp_path: Path, data: Path, name: str, *extra: str) -> Path:
    assert main(["train", "--data", str(data), "--runs", str(tmp_path / "runs"), "--name", name, *TINY, *extra]) == 0
    return tmp_path / "runs" / name


# ------------------------------------------------------------------------------- processes x validation


def _torchrun(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PIX2PIX_DIST_TIMEOUT="40")
    return subprocess.run([sys.executable, "-m", "pix2pix", "train", "--nproc", "2", *args], capture_output=True,
                          text=True, env=env, timeout=timeout)


@pytest.mark.slow
def test_two_processes_validate_each_epoch_finish_and_resume_bit_for_bit(tmp_path, data):
    """The reported hang: with a val split (validation on by default) two processes finished epoch 1 only to
    time out. Now they validate, write val.csv and best, and a resume ends where an unbroken run ends."""
    common = ["--data", str(data), "--runs", str(tmp_path / "runs"), *TINY, "--device", "cpu", "--epochs", "1",
              "--epochs-decay", "2"]  # 2 steps an epoch over 2 processes: 6 steps
    done = _torchrun(*common, "--name", "straight")
    assert done.returncode == 0, done.stderr[-3000:]
    straight = tmp_path / "runs" / "straight"
    assert [r["step"] for r in _rows(straight / "val.csv")] == ["2", "4", "6"]
    assert (straight / "checkpoints" / "best.safetensors").exists()
    done = _torchrun(*common, "--name", "split", "--max-steps", "3")
    assert done.returncode == 0, done.stderr[-3000:]
    done = _torchrun("--resume", str(tmp_path / "runs" / "split"), "--no-progress")
    assert done.returncode == 0, done.stderr[-3000:]
    assert _same(_weights(straight), _weights(tmp_path / "runs" / "split")) == []


@pytest.mark.slow
def test_two_processes_stopped_by_sigterm_resume_bit_for_bit(tmp_path):
    """A scheduler's SIGTERM to `pix2pix train --nproc 2` reaches both processes (validating each epoch): they stop
    at the same step, save it, and the resume ends where an unbroken two-process run ends."""
    data = make_aligned_dataset(tmp_path / "data", {"train": 24, "val": 2})  # 12 steps an epoch over 2 processes
    common = ["--data", str(data), "--runs", str(tmp_path / "runs"), *TINY, "--device", "cpu", "--epochs", "1",
              "--epochs-decay", "1", "--log-every", "1", "--sample-every", "1000", "--seed", "4"]  # 24 steps
    done = _torchrun(*common, "--name", "straight")
    assert done.returncode == 0, done.stderr[-3000:]
    env = dict(os.environ, OMP_NUM_THREADS="1", PIX2PIX_DIST_TIMEOUT="40")
    proc = subprocess.Popen([sys.executable, "-m", "pix2pix", "train", "--nproc", "2", *common, "--name", "sig"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    losses, deadline = tmp_path / "runs" / "sig" / "losses.csv", time.monotonic() + 120
    while not losses.exists() or len(_rows(losses)) < 3:
        assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()[-3000:]
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "Traceback" not in err, err[-3000:]  # as one process: 128 + SIGTERM
    run = tmp_path / "runs" / "sig"
    assert 3 <= _meta(run / "checkpoints" / "latest.safetensors")["step"] < 24  # saved where it stopped
    done = _torchrun("--resume", str(run), "--no-progress")
    assert done.returncode == 0, done.stderr[-3000:]
    assert _same(_weights(tmp_path / "runs" / "straight"), _weights(run)) == []


def _kill_all(*markers: str) -> int:
    """SIGKILL every process whose command line holds every one of ``markers`` (torchrun starts its workers in
    sessions of their own, so a node's failure is stood in for by killing each); returns how many."""
    killed = 0
    for proc in Path("/proc").iterdir():
        try:
            line = (proc / "cmdline").read_bytes().decode(errors="replace") if proc.name.isdigit() else ""
            if line and all(m in line for m in markers):
                os.kill(int(proc.name), signal.SIGKILL)
                killed += 1
        except (OSError, ProcessLookupError):
            pass
    return killed


@pytest.mark.slow
def test_two_processes_killed_9_resume_bit_for_bit(tmp_path):
    """Every process of a two-process run killed at once (a node lost): the resume starts from the last save and
    ends where an unbroken two-process run ends."""
    data = make_aligned_dataset(tmp_path / "data", {"train": 24, "val": 2})
    common = ["--data", str(data), "--runs", str(tmp_path / "runs"), *TINY, "--device", "cpu", "--epochs", "1",
              "--epochs-decay", "1", "--log-every", "1", "--sample-every", "1000", "--seed", "8", "--save-every", "5"]
    done = _torchrun(*common, "--name", "straight")
    assert done.returncode == 0, done.stderr[-3000:]
    env = dict(os.environ, OMP_NUM_THREADS="1", PIX2PIX_DIST_TIMEOUT="40")
    proc = subprocess.Popen([sys.executable, "-m", "pix2pix", "train", "--nproc", "2", *common, "--name", "killed"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    run, deadline = tmp_path / "runs" / "killed", time.monotonic() + 120
    while not (run / "losses.csv").exists() or len(_rows(run / "losses.csv")) < 8:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.01)
    assert _kill_all(str(tmp_path / "runs"), "--name\0killed") >= 3  # the launcher, torchrun, its two processes
    proc.wait()
    assert 5 <= _meta(run / "checkpoints" / "latest.safetensors")["step"] < 24
    done = _torchrun("--resume", str(run), "--no-progress")
    assert done.returncode == 0, done.stderr[-3000:]
    assert _same(_weights(tmp_path / "runs" / "straight"), _weights(run)) == []


@pytest.mark.slow
def test_two_processes_skip_a_bad_image_in_step(tmp_path):
    """--skip-bad-images at batch 1: the process whose share holds the unreadable image has nothing to train on
    at that position, so neither process steps there (they used to fall out of step and wait on each other),
    and the run records the skip whichever process met it."""
    data = make_aligned_dataset(tmp_path / "data", {"train": 6, "val": 2})
    (data / "train" / "4.png").write_bytes(b"not a png")
    done = _torchrun("--data", str(data), "--runs", str(tmp_path / "runs"), "--name", "r", *TINY, "--device", "cpu",
                     "--skip-bad-images", "--epochs", "2", "--epochs-decay", "1", "--preload", "no")
    assert done.returncode == 0, done.stderr[-3000:]
    from pix2pix.checkpoints import load_latest

    _, state = load_latest(tmp_path / "runs" / "r" / "checkpoints")
    assert state.epoch == 3 and any("4.png" in line for line in state.bad_images)
    assert state.step == 3 * 3 - 3  # 3 positions an epoch, and the bad one's passed over in each


@pytest.mark.slow
def test_two_processes_train_and_validate_arrays(tmp_path):
    from conftest import make_array_dataset

    data = make_array_dataset(tmp_path / "bands", {"train": 4, "val": 2})
    done = _torchrun("--data", str(data), "--runs", str(tmp_path / "runs"), "--name", "bands", *TINY, "--device",
                     "cpu", "--in-channels", "5", "--out-channels", "2", "--epochs", "1", "--epochs-decay", "1")
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "runs" / "bands"
    assert [r["step"] for r in _rows(run / "val.csv")] == ["2", "4"]
    assert _meta(run / "checkpoints" / "latest.safetensors")["scales"]["input"]["kind"] == "minmax"


# ------------------------------------------------------------------------------- signals x exact resume


class _Ignored:
    """SIGTERM caught by the test itself while no run has its handler in place (a signal that lands before the
    run starts, or after it ends, must not end the test process)."""

    def __enter__(self):
        self.previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)

    def __exit__(self, *exc):
        signal.signal(signal.SIGTERM, self.previous)


def test_a_sigterm_at_any_moment_then_resume_gives_the_uninterrupted_weights(tmp_path, data):
    """10 SIGTERMs at random moments of a run (setup, steps, saves, validations, the final save): each run,
    resumed, ends with exactly the weights of a run that was never stopped."""
    flags = ["--epochs", "3", "--epochs-decay", "3", "--save-every", "3", "--seed", "5"]  # 24 steps
    straight = _weights(_train(tmp_path, data, "straight", *flags))
    start = time.perf_counter()  # a second run, timed without the first one's imports: as long as a trial
    assert _same(straight, _weights(_train(tmp_path, data, "again", *flags))) == []
    seconds = time.perf_counter() - start
    rng = random.Random(0)
    stopped_early = trial = 0
    # 10 trials, and more (up to 20) until 5 signals have landed while a run was going: on a machine whose load
    # changes, a run may end before its signal comes, and each time that happens the window is narrowed.
    while trial < 10 or (stopped_early < 5 and trial < 20):
        name = f"t{trial}"
        timer = threading.Timer(rng.uniform(0, seconds), os.kill, (os.getpid(), signal.SIGTERM))
        with _Ignored():
            timer.start()
            code = main(["train", "--data", str(data), "--runs", str(tmp_path / "runs"), "--name", name, *TINY,
                         *flags])
            timer.join()
        assert code in (0, 143)
        stopped_early += code == 143
        run = tmp_path / "runs" / name
        if code == 143:
            assert main(["train", "--resume", str(run), "--no-progress"]) == 0
        assert _same(straight, _weights(run)) == [], f"trial {trial}"
        if code == 0:
            seconds *= 0.7
        trial += 1
    assert stopped_early >= 5  # signals landed while the runs were going


@pytest.mark.slow
def test_a_kill_9_then_resume_gives_the_uninterrupted_weights(tmp_path, data):
    """kill -9 (nothing is saved at the kill): the resume starts from the last save and ends where an unbroken
    run ends; whatever the kill left half-written is gone."""
    flags = ["--epochs", "3", "--epochs-decay", "3", "--save-every", "2", "--seed", "2"]
    straight = _weights(_train(tmp_path, data, "straight", *flags))
    run = tmp_path / "runs" / "killed"
    cmd = [sys.executable, "-m", "pix2pix", "train", "--data", str(data), "--runs", str(tmp_path / "runs"), "--name",
           "killed", *TINY, *flags, "--log-every", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (run / "losses.csv").exists() or len(_rows(run / "losses.csv")) < 5:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    (run / "checkpoints" / ".tmpAb12Cd").write_bytes(b"\0" * 1000)  # safetensors' own temporary file, once
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    assert _same(straight, _weights(run)) == []
    assert not [p.name for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]


# ------------------------------------------------------------------------------- validation cut x resume


def test_after_a_cut_and_a_resume_best_is_the_best_of_scores_on_the_same_images(tmp_path, monkeypatch):
    """Validation costs too much (forced), so the first one cuts to fewer images; later ones, and the ones after
    a resume, are scored on that set, and best.safetensors holds the best of them."""
    import pix2pix.training.validation as validation

    monkeypatch.setattr(validation, "BUDGET", 1e-9)  # every validation costs more than a tenth of training
    monkeypatch.setattr(validation, "FEWEST", 3)
    data = make_aligned_dataset(tmp_path / "data", {"train": 4, "val": 8})
    flags = ["--epochs", "2", "--epochs-decay", "2", "--val-every", "2", "--best-metric", "psnr"]
    run = _train(tmp_path, data, "r", *flags, "--max-steps", "7")
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    rows = _rows(run / "val.csv")
    assert {r["images"] for r in rows} == {"3"} and len(rows) == 9  # 2, 4, 6, 7 (the stop); 8, 10, ..., 16
    best = _meta(run / "checkpoints" / "best.safetensors")
    top = max(rows, key=lambda r: float(r["psnr"]))
    assert best["val"]["images"] == 3 and best["step"] == int(top["step"])
    assert best["val"]["value"] == pytest.approx(float(top["psnr"]), abs=1e-6)


def test_a_changed_val_images_on_resume_scores_the_best_again_on_the_new_set(tmp_path, data, capsys):
    run = _train(tmp_path, data, "r", "--epochs", "2", "--epochs-decay", "1", "--val-images", "2",
                 "--max-steps", "8")
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--val-images", "1", "--no-progress"]) == 0
    said = next(line for line in capsys.readouterr().out.splitlines() if "scored again" in line)
    assert "on the 1 val images" in said
    rescored = float(said.rsplit(" ", 1)[1])  # the old best's L1 on the new set
    rows = [r for r in _rows(run / "val.csv") if r["images"] == "1"]
    best = _meta(run / "checkpoints" / "best.safetensors")
    better = [r for r in rows if float(r["l1"]) < round(rescored, 4) - 1e-4]
    if better:  # a new one beat the old best on the new set: it is the best now, recorded on that set
        assert best["val"]["images"] == 1
        assert best["val"]["value"] == pytest.approx(min(float(r["l1"]) for r in rows), abs=1e-6)
    else:  # none did: the old best stays
        assert best["val"]["images"] == 2 and best["step"] <= 8


# ------------------------------------------------------------------------------- resume x files


def _limited(limit: int):
    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_a_resume_under_a_file_size_limit_is_one_line_and_the_run_resumes_afterwards(tmp_path, data):
    flags = ["--epochs", "1", "--epochs-decay", "1", "--val-every", "0"]
    straight = _weights(_train(tmp_path, data, "straight", *flags))
    run = _train(tmp_path, data, "r", *flags, "--max-steps", "3")
    config = (run / "config.json").read_bytes()
    done = subprocess.run([sys.executable, "-m", "pix2pix", "train", "--resume", str(run), "--no-progress"],
                          capture_output=True, text=True, preexec_fn=_limited(1024), timeout=120)
    err = done.stderr.strip()
    assert done.returncode == 2 and "\n" not in err and "Traceback" not in err, err
    assert "ulimit -f" in err and "nothing written before is touched" in err
    assert (run / "config.json").read_bytes() == config  # the run is as it was
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    assert _same(straight, _weights(run)) == []


def test_a_kill_while_losses_csv_is_repaired_keeps_its_rows(tmp_path, data, monkeypatch):
    """A row cut short by a crash is dropped on resume by rewriting the file; a kill during that rewrite must
    leave the rows that were there."""
    run = _train(tmp_path, data, "r", "--max-steps", "6", "--log-every", "1", "--val-every", "0")
    with open(run / "losses.csv", "a") as f:
        f.write("7,1,0.0002,3")  # a row cut short
    before = (run / "losses.csv").read_text()

    def killed(self, rows):
        raise KeyboardInterrupt  # the process dies while the rewrite is written

    monkeypatch.setattr(csv.DictWriter, "writerows", killed)
    try:
        main(["train", "--resume", str(run), "--max-steps", "7", "--no-progress"])
    except KeyboardInterrupt:
        pass
    assert (run / "losses.csv").read_text() == before


def test_files_are_written_with_the_permissions_the_umask_gives(tmp_path, data):
    old = os.umask(0o022)
    try:
        run = _train(tmp_path, data, "r", "--max-steps", "3")
    finally:
        os.umask(old)
    for path in (run / "config.json", run / "checkpoints" / "latest.safetensors", run / "web" / "index.html",
                 run / "checkpoints" / "best.safetensors", run / "val.csv"):
        assert path.stat().st_mode & 0o777 == 0o644, path


def test_a_diverged_run_keeps_a_latest_whose_every_tensor_is_finite(tmp_path, data, capsys):
    code = main(["train", "--data", str(data), "--runs", str(tmp_path / "runs"), "--name", "d", *TINY, "--lr", "1e12",
                 "--save-every", "1", "--log-every", "1", "--max-steps", "40", "--val-every", "0"])
    one_line_error(capsys, code, "training diverged at step")
    latest = tmp_path / "runs" / "d" / "checkpoints" / "latest.safetensors"
    if latest.exists():
        bad = [k for k, t in load_file(str(latest)).items() if t.is_floating_point() and not t.isfinite().all()]
        assert bad == []


# ------------------------------------------------------------------------------- fine-tuning x the source


def test_init_from_a_btoa_source_trains_btoa_at_its_size_and_says_so(tmp_path, data, capsys):
    source = _train(tmp_path, data, "source", "--direction", "BtoA", "--max-steps", "2")
    capsys.readouterr()
    assert main(["train", "--data", str(data), "--runs", str(tmp_path / "runs"), "--name", "tuned", "--init-from",
                 str(source), "--max-steps", "1", "--no-progress", "--workers", "0", "--val-every", "0"]) == 0
    out = capsys.readouterr().out
    said = [line for line in out.splitlines() if "--init-from" in line]
    assert len(said) == 1 and "--direction BtoA" in said[0] and "--crop-size 32" in said[0], out
    cfg = _meta(tmp_path / "runs" / "tuned" / "checkpoints" / "latest.safetensors")["config"]
    assert cfg["data"]["direction"] == "BtoA" and cfg["data"]["crop_size"] == 32 and cfg["data"]["load_size"] == 36
    # A stated --direction wins (a dataset whose sides are the other way round), and a Python caller meets the
    # same rules: the library fills what the source was trained for.
    from pix2pix.config import RunConfig
    from pix2pix.training import train

    cfg = RunConfig(name="py", out=str(tmp_path / "runs"))
    cfg.data.root, cfg.train.init_from, cfg.train.max_steps, cfg.train.val_every = str(data), str(source), 1, 0
    cfg.data.workers = 0
    train(cfg, progress=False)
    cfg = _meta(tmp_path / "runs" / "py" / "checkpoints" / "latest.safetensors")["config"]
    assert cfg["data"]["direction"] == "BtoA" and cfg["generator"]["ngf"] == 4


def test_a_fine_tuning_run_resumes_bit_for_bit(tmp_path, data):
    source = _train(tmp_path, data, "source", "--direction", "BtoA", "--max-steps", "2")
    common = ["--init-from", str(source), "--epochs", "1", "--epochs-decay", "1", "--seed", "9"]
    straight = _weights(_train(tmp_path, data, "straight", *common))
    run = _train(tmp_path, data, "split", *common, "--max-steps", "3")
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    assert _same(straight, _weights(run)) == []
    assert _meta(run / "checkpoints" / "latest.safetensors")["config"]["data"]["direction"] == "BtoA"


# ------------------------------------------------------------------------------- resume of a finished run


def test_a_resume_with_nothing_to_do_says_so_changes_no_file_and_keeps_no_one_off_limit(tmp_path, data, capsys):
    run = _train(tmp_path, data, "r", "--epochs", "1", "--epochs-decay", "1", "--max-steps", "100")
    files = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"}
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--max-steps", "500", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "nothing to do" in out and "done" not in out
    assert {p: p.read_bytes() for p in files} == files
    assert _meta(run / "checkpoints" / "latest.safetensors")["config"]["train"]["max_steps"] is None
    assert main(["train", "--resume", str(run), "--epochs", "2", "--epochs-decay", "2", "--no-progress"]) == 0
    assert _meta(run / "checkpoints" / "latest.safetensors")["step"] == 16  # not stopped at a stored limit


# ------------------------------------------------------------------------------- the demo x a run


def test_the_demo_never_replaces_a_training_run(tmp_path, data, capsys):
    from pix2pix.demo import run_demo

    run = _train(tmp_path, data, "r", "--max-steps", "2")
    with pytest.raises(Exception) as e:
        list(run_demo(out=run, data=data, minutes=0.01, size=32, progress=False))
    assert "not a demo" in str(e.value) or "holds a training run" in str(e.value)
    assert (run / "checkpoints" / "latest.safetensors").exists()


def test_a_python_resume_meets_the_rules_too_and_an_old_stored_limit_is_not_the_schedule(tmp_path, data):
    import json

    from pix2pix.config import RunConfig
    from pix2pix.errors import Pix2PixError
    from pix2pix.training import train

    run = _train(tmp_path, data, "r", "--epochs", "1", "--epochs-decay", "1", "--max-steps", "3", "--val-every", "0")
    cfg = RunConfig.load(run / "config.json")
    cfg.train.lr = 1e-3  # what a run is cannot change on a resume, whoever asks
    with pytest.raises(Pix2PixError, match="--lr 0.001 cannot change when resuming"):
        train(cfg, resume=True, progress=False)
    stored = json.loads((run / "config.json").read_text())
    stored["train"]["max_steps"] = 3  # as versions before this one recorded a session's limit
    (run / "config.json").write_text(json.dumps(stored))
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    assert _meta(run / "checkpoints" / "latest.safetensors")["step"] == 8


def test_a_resume_that_scores_the_best_again_stays_bit_for_bit(tmp_path, data):
    """Scoring the best checkpoint again (another --val-images) builds a generator: its init must not draw from
    the training's restored random state."""
    flags = ["--epochs", "2", "--epochs-decay", "2", "--val-every", "2", "--seed", "6"]
    straight = _weights(_train(tmp_path, data, "straight", *flags, "--val-images", "2"))
    run = _train(tmp_path, data, "split", *flags, "--val-images", "2", "--max-steps", "8")
    assert main(["train", "--resume", str(run), "--val-images", "1", "--no-progress"]) == 0
    assert _same(straight, _weights(run)) == []


def test_an_unreadable_val_image_keeps_the_runs_image_set_across_resumes(tmp_path, capsys):
    """The set recorded is the first K of the split (an unreadable one among them is left out, said once), so it
    stays the same across resumes instead of shrinking by the unreadable ones."""
    data = make_aligned_dataset(tmp_path / "data", {"train": 4, "val": 3})
    (data / "val" / "1.png").write_bytes(b"not a png")
    run = _train(tmp_path, data, "r", "--epochs", "2", "--epochs-decay", "2", "--val-every", "2", "--max-steps", "4")
    for stop in ("8", "12"):
        assert main(["train", "--resume", str(run), "--max-steps", stop, "--no-progress"]) == 0
    assert {r["images"] for r in _rows(run / "val.csv")} == {"3"} and len(_rows(run / "val.csv")) == 6
    said = capsys.readouterr()
    assert "unreadable val image" in said.err and "scored again" not in said.out


def test_stated_flags_equal_to_the_defaults_win_over_the_source(tmp_path, data):
    source = _train(tmp_path, data, "source", "--direction", "BtoA", "--discriminator", "pixel", "--max-steps", "1")
    _train(tmp_path, data, "tuned", "--init-from", str(source), "--direction", "AtoB", "--discriminator", "patch16",
           "--max-steps", "1", "--val-every", "0")
    cfg = _meta(tmp_path / "runs" / "tuned" / "checkpoints" / "latest.safetensors")["config"]
    assert cfg["data"]["direction"] == "AtoB" and cfg["discriminator"]["arch"] == "patch16"


def test_the_best_of_a_lost_future_keeps_its_image_set(tmp_path):
    """No val.csv row survives (the best was written after the last save, then the run was killed): the run's set
    is the best's, so the first validation of the resumed run neither cuts it nor compares across sets."""
    from pix2pix.training.validation import Validator

    v = Validator(list(range(40)), None, 3, 3, None, "l1")
    assert v.take_up([], {"step": 9, "val": {"metric": "l1", "value": 0.2, "images": 12}}, stated=False)
    assert v.images == 12 and not v.may_cut and v.best == 0.2


def test_the_demo_refuses_a_folder_of_other_files_without_writing_into_it(tmp_path, data):
    from pix2pix.demo import run_demo

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    with pytest.raises(Exception, match="something other than a demo run"):
        list(run_demo(out=mine, data=data, minutes=0.01, size=32, progress=False))
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
