"""The run folder survives what users and machines do to it: a second writer, a half-written losses.csv,
a full disk, the debris of a crash, SIGTERM, and training that diverges."""

from __future__ import annotations

import collections
import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import one_line_error, train_tiny
from pix2pix.cli import main
from pix2pix.errors import Pix2PixError
from pix2pix.training.runs import RunFolder, RunLock, read_log


def test_a_second_writer_of_a_run_is_one_line_naming_the_pid(tmp_path, blocks, tiny, capsys):
    run = train_tiny(tmp_path, blocks, tiny, "--max-steps", "2")
    holder = RunLock(run)
    holder.acquire()
    try:
        msg = one_line_error(capsys, main(["train", "--resume", str(run), "--max-steps", "3", "--no-progress"]),
                             f"PID {os.getpid()}")
        assert "is writing this run" in msg
        one_line_error(capsys, main(["train", "--data", str(blocks), "--runs", str(tmp_path / "runs"), "--name", "run",
                                     *tiny]), f"PID {os.getpid()}")
    finally:
        holder.release()
    assert main(["train", "--resume", str(run), "--max-steps", "3", "--no-progress"]) == 0  # free again


def test_the_lock_dies_with_its_process(tmp_path):
    """An OS lock: a killed holder leaves no stale lock behind."""
    code = (f"import time; from pix2pix.training.runs import RunLock; lock = RunLock({str(tmp_path)!r}); lock.acquire(); "
            "print('locked', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(Pix2PixError, match=f"PID {holder.pid}"):
            RunLock(tmp_path).acquire()
    finally:
        holder.kill()
        holder.wait()
    lock = RunLock(tmp_path)
    lock.acquire()
    lock.release()


def test_a_half_written_losses_row_is_dropped_on_resume_and_said(tmp_path, blocks, tiny, capsys):
    run = train_tiny(tmp_path, blocks, tiny, "--max-steps", "2", "--log-every", "1")
    with (run / "losses.csv").open("a") as f:
        f.write("3,1,0.0002,4.5,0.69")  # a row cut short by a crash or a full disk
    with (run / "losses.csv").open("a") as f:
        f.write("\nstep,epoch\n")  # and a second header, as two writers once left
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--max-steps", "4", "--no-progress"]) == 0
    assert "dropped 2 unreadable rows" in capsys.readouterr().err
    assert [r["step"] for r in read_log(run / "losses.csv")] == [1, 2, 3, 4]


def test_temporary_files_of_a_crash_are_removed_at_start(tmp_path, blocks, tiny):
    run = train_tiny(tmp_path, blocks, tiny, "--max-steps", "1")
    debris = [run / "checkpoints" / ".latest.safetensors.abc123.tmp", run / "checkpoints" / ".state_00000001.pt.x.tmp"]
    for d in debris:
        d.write_bytes(b"\0" * 1000)
    assert main(["train", "--resume", str(run), "--max-steps", "2", "--no-progress"]) == 0
    assert not any(d.exists() for d in debris)


@pytest.mark.parametrize("failure", ["oserror", "torch-save"])
def test_a_full_disk_is_one_line_and_the_previous_checkpoint_is_untouched(tmp_path, blocks, tiny, capsys, monkeypatch,
                                                                          failure):
    import pix2pix.checkpoints as checkpoints

    run = train_tiny(tmp_path, blocks, tiny, "--max-steps", "2")
    before = load_file(str(run / "checkpoints" / "latest.safetensors"))

    def full(obj, path, *args, **kwargs):
        Path(path).write_bytes(b"\0" * 100)
        if failure == "oserror":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 3254784 vs 3254672")

    monkeypatch.setattr(checkpoints.torch, "save", full)
    usage = collections.namedtuple("usage", "total used free")
    import pix2pix.files as files

    monkeypatch.setattr(files.shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 4096, 4096))
    msg = one_line_error(capsys, main(["train", "--resume", str(run), "--max-steps", "4", "--no-progress"]),
                         "no space left")
    assert "4.0 KB free" in msg and "nothing written before is touched" in msg
    after = load_file(str(run / "checkpoints" / "latest.safetensors"))
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not list((run / "checkpoints").glob(".*.tmp"))


def test_sigterm_saves_like_ctrl_c_and_exits_143(tmp_path, blocks, tiny):
    """What schedulers, docker stop and pre-emption send: the run saves where it is."""
    cmd = [sys.executable, "-m", "pix2pix", "train", "--data", str(blocks), "--runs", str(tmp_path / "runs"),
           "--name", "r", *tiny, "--max-steps", "100000", "--save-every", "100000", "--log-every", "1",
           "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    losses = tmp_path / "runs" / "r" / "losses.csv"
    deadline = time.monotonic() + 120
    while len(read_log(losses)) < 3 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "terminated (SIGTERM); saved step" in out
    from pix2pix.checkpoints import load_checkpoint

    assert load_checkpoint(tmp_path / "runs" / "r").meta["step"] >= 3


def test_diverged_training_stops_with_one_line_and_writes_no_broken_checkpoint(tmp_path, blocks, tiny, capsys):
    args = ["train", "--data", str(blocks), "--runs", str(tmp_path / "runs"), "--name", "d", *tiny, "--lr", "1e30",
            "--max-steps", "8", "--log-every", "1", "--no-progress"]
    msg = one_line_error(capsys, main(args), "training diverged at step")
    assert " loss is " in msg or "a weight is not finite" in msg
    latest = tmp_path / "runs" / "d" / "checkpoints" / "latest.safetensors"
    if latest.exists():  # saved before the divergence: finite
        assert all(torch.isfinite(t).all() for t in load_file(str(latest)).values() if t.is_floating_point())


def test_run_folder_knows_its_lock_file(tmp_path):
    assert RunFolder(tmp_path).lock.path == tmp_path / ".lock"


def test_a_signal_in_the_middle_of_a_save_does_not_cut_it(tmp_path, blocks, monkeypatch):
    """SIGTERM is a flag read between steps: one that lands while latest is being written lets that save finish,
    and the run stops at the next step boundary with the step it saved."""
    import os

    import pix2pix.training.loop as loop
    from pix2pix.checkpoints import load_checkpoint
    from pix2pix.config import RunConfig, resolve
    from pix2pix.training import train

    real, calls = loop.save_run, []

    def signalled(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGTERM)  # handled by now: the save goes on
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "save_run", signalled)
    cfg = RunConfig()
    cfg.data.root, cfg.out, cfg.name = str(blocks), str(tmp_path / "runs"), "r"
    cfg.generator.arch, cfg.generator.ngf, cfg.discriminator.ndf = "unet_32", 4, 4
    cfg.data.crop_size, cfg.data.load_size, cfg.train.max_steps, cfg.train.val_every = 32, 32, 6, 0
    result = train(resolve(cfg), progress=False)  # an epoch is 4 steps: its save is the one signalled
    assert result.terminated and len(calls) == 1
    assert load_checkpoint(tmp_path / "runs" / "r").meta["step"] == result.step == 4


def test_a_forked_child_does_not_keep_the_lock(tmp_path):
    """Data-loader workers are forked while the lock is held; they must not hold it past its release."""
    lock = RunLock(tmp_path)
    lock.acquire()
    ready, told = os.pipe()
    child = os.fork()
    if child == 0:  # the child (its fork hooks have run): outlive the parent's release, then leave
        os.write(told, b"x")
        time.sleep(3)
        os._exit(0)
    try:
        os.read(ready, 1)
        lock.release()
        again = RunLock(tmp_path)
        again.acquire()  # the child still runs
        again.release()
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)


def test_a_file_system_without_locks_warns_and_goes_on(tmp_path, monkeypatch, capsys):
    import pix2pix.files as files

    def no_locks(f):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(files, "_lock", no_locks)
    lock = RunLock(tmp_path)
    lock.acquire()
    lock.release()
    assert "cannot lock (No locks available)" in capsys.readouterr().err


def test_val_csv_keeps_blank_scores_blank_and_takes_an_older_files_rows(tmp_path):
    """A val.csv written before the FCN/FID columns gets them (its rows kept); a score that was not computed
    is a blank cell that readers leave out, and a resume's cut keeps the columns."""
    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    run.val.write_text("step,epoch,l1,psnr,ssim,images,seconds\r\n4,1,0.2,14.0,0.3,2,0.5\r\n")
    scalars = []
    run.writer = type("Writer", (), {"add_scalar": lambda self, *a: scalars.append(a[:2])})()
    run.log_val(8, 2, {"l1": 0.1, "psnr": 15.0, "ssim": 0.4, "fid": 30.0, "count": 2, "seconds": 0.6})
    rows = read_log(run.val)
    assert [r["step"] for r in rows] == [4, 8] and "fid" not in rows[0] and rows[1]["fid"] == 30.0
    assert ("val/fid", 30.0) in scalars and not any(tag == "val/class_iou" for tag, _ in scalars)
    run.log_val(12, 3, {"l1": 0.1, "psnr": 15.0, "ssim": 0.4, "count": 2, "seconds": 0.6})
    run.truncate_log(8)
    assert run.val.read_text().splitlines()[0].split(",")[5:10] == ["per_pixel_acc", "per_class_acc", "class_iou",
                                                                   "fid", "kid"]
    assert [r["step"] for r in read_log(run.val)] == [4, 8] and read_log(run.val)[1]["fid"] == 30.0


def test_a_full_disk_under_tensorboard_is_one_line_without_its_threads_traceback(tmp_path, blocks, tiny):
    """TensorBoard writes in a thread of its own: a full disk there printed that thread's traceback. In a process
    of its own, since pytest turns thread exceptions into warnings instead of printing them."""
    code = ("import errno, sys\n"
            "from tensorboard.summary.writer import record_writer\n"
            "def full(self, data):\n"
            "    raise OSError(errno.ENOSPC, 'No space left on device')\n"
            "record_writer.RecordWriter.write = full\n"
            "from pix2pix.cli import main\n"
            "sys.exit(main(sys.argv[1:]))\n")
    done = subprocess.run([sys.executable, "-c", code, "train", "--data", str(blocks), "--runs", str(tmp_path / "runs"),
                           *tiny, "--max-steps", "2"], capture_output=True, text=True, timeout=120)
    err = done.stderr.strip()
    assert done.returncode == 2 and "\n" not in err and "Traceback" not in err, err
    assert "cannot write TensorBoard's log" in err and "No space left" in err
