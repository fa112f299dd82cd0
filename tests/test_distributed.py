"""Multi-process training on this CPU machine: gloo, two processes, against one process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from pix2pix.checkpoints import load_checkpoint
from pix2pix.training.distributed import SyncBatchNorm2d, World, rank_share, sync_batch_norm, world_from_env

from conftest import free_port, make_aligned_dataset, make_pair, train_tiny
from pix2pix.cli import main


def test_each_global_batch_is_split_across_processes_and_the_tail_wraps_around():
    order = np.arange(10)[::-1].copy()
    shares = [rank_share(order, 2, World(r, r, 2)) for r in range(2)]
    assert [len(s) for s in shares] == [6, 6]  # 10 examples, global batch 4: 3 steps, padded to 12
    steps = [np.concatenate([s[k * 2:(k + 1) * 2] for s in shares]) for k in range(3)]
    assert np.array_equal(np.concatenate(steps), np.resize(order, 12))
    assert np.array_equal(rank_share(order, 2, World()), order)  # one process: the order as it is


def test_world_comes_from_torchruns_environment(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert world_from_env() == World(3, 1, 4)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(Exception, match="RANK 4 does not fit WORLD_SIZE 4"):
        world_from_env()


def _sync_bn_worker(rank: int, port: int, x: torch.Tensor, out: dict) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    torch.manual_seed(0)
    net = sync_batch_norm(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)), torch.device("cpu"))
    assert isinstance(net[1], SyncBatchNorm2d)
    part = x[rank * 2:(rank + 1) * 2].clone().requires_grad_(True)
    y = net(part)
    (y * torch.arange(y.numel()).view_as(y)).sum().backward()
    torch.save({"y": y.detach(), "dx": part.grad, "dw": net[1].weight.grad, "rm": net[1].running_mean,
                "rv": net[1].running_var}, out[rank])
    dist.destroy_process_group()


@pytest.mark.slow
def test_sync_batch_norm_computes_the_global_batch_forward_and_backward(tmp_path):
    x = torch.randn(4, 3, 6, 6, generator=torch.Generator().manual_seed(0))
    files = {r: tmp_path / f"{r}.pt" for r in range(2)}
    mp.spawn(_sync_bn_worker, args=(free_port(), x, files), nprocs=2)
    got = [torch.load(files[r]) for r in range(2)]

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    whole = x.clone().requires_grad_(True)
    y = net(whole)
    # The same per-element weights as the two halves used (each process numbered its own half from 0).
    half = y.numel() // 2
    (y * torch.cat([torch.arange(half), torch.arange(half)]).view_as(y)).sum().backward()
    torch.testing.assert_close(torch.cat([g["y"] for g in got]), y.detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.cat([g["dx"] for g in got]), whole.grad, atol=1e-4, rtol=1e-4)
    # Each process holds its half's share of dL/dweight; DDP sums (averages) them.
    torch.testing.assert_close(got[0]["dw"] + got[1]["dw"], net[1].weight.grad, atol=1e-4, rtol=1e-5)
    for g in got:
        torch.testing.assert_close(g["rm"], net[1].running_mean, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(g["rv"], net[1].running_var, atol=1e-6, rtol=1e-5)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    ckpt = load_checkpoint(run / "checkpoints" / "latest.safetensors")
    return {**{f"G.{k}": v for k, v in ckpt.generator_state.items()},
            **{f"D.{k}": v for k, v in ckpt.discriminator_state.items()}}


def _torchrun_train(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pix2pix", "train", "--nproc", "2", *args]
    env = dict(os.environ, OMP_NUM_THREADS="1", PIX2PIX_DIST_TIMEOUT="60")
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.slow
def test_two_processes_end_where_one_process_with_the_same_global_batch_ends(tmp_path, tiny):
    """torchrun (through --nproc) with gloo: 2 processes at batch 1 take the steps 1 process takes at batch 2.
    Dropout is off (each process draws its own noise) and the plain fp32 step is used, so the only
    differences are the order of floating-point sums."""
    data = make_aligned_dataset(tmp_path / "data", {"train": 6})
    same = ["--no-dropout", "--no-fast", "--epochs", "2", "--epochs-decay", "1"]
    one = train_tiny(tmp_path, data, tiny, *same, "--batch-size", "2", name="one")
    done = _torchrun_train("--data", str(data), "--runs", str(tmp_path / "runs"), "--name", "two", *tiny, *same,
                           "--batch-size", "1", "--max-steps", "5")
    assert done.returncode == 0, done.stderr[-3000:]
    two = tmp_path / "runs" / "two"
    # Resume the two-process run to the end of its schedule: 3 epochs of 3 steps, as the single run.
    done = _torchrun_train("--resume", str(two), "--no-progress", "--max-steps", "9")
    assert done.returncode == 0, done.stderr[-3000:]
    assert load_checkpoint(two / "checkpoints" / "latest.safetensors").meta["step"] == 9
    a, b = _weights(one), _weights(two)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=2e-4, rtol=1e-3, msg=k)
    # The main process alone writes the log: one header, one row per log interval.
    rows = (two / "losses.csv").read_text().splitlines()
    assert rows[0].startswith("step,") and sum(r.startswith("step,") for r in rows) == 1


def test_a_bad_flag_with_nproc_is_one_line_before_any_process_starts(tmp_path, tiny, capsys):
    from pix2pix.cli import main

    code = main(["train", "--nproc", "2", "--data", str(tmp_path / "missing"), *tiny])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "no such folder" in err, err


@pytest.mark.slow
def test_an_unreachable_master_is_one_line_and_exit_2(tmp_path, tiny):
    data = make_aligned_dataset(tmp_path / "data", {"train": 2})
    env = dict(os.environ, WORLD_SIZE="2", RANK="1", LOCAL_RANK="1", MASTER_ADDR="127.0.0.1",
               MASTER_PORT=str(free_port()), PIX2PIX_DIST_TIMEOUT="3")
    done = subprocess.run([sys.executable, "-m", "pix2pix", "train", "--data", str(data), "--runs",
                           str(tmp_path / "runs"), *tiny], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2, done.stderr
    err = done.stderr.strip()
    assert "\n" not in err and "could not join the group at 127.0.0.1" in err, err


def test_cpu_sync_batch_norm_accumulates_in_fp32_under_autocast(monkeypatch):
    """Under bf16 autocast the sums and the count (961 here, which bf16 rounds to 960) stay fp32: the
    statistics equal fp32 batch norm's on the same input."""
    import pix2pix.training.distributed as D

    monkeypatch.setattr(D.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(D.dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(D, "all_reduce", lambda t: t)  # one process's share is the whole batch
    x = (torch.randn(1, 3, 31, 31, generator=torch.Generator().manual_seed(0)) * 3 + 5).bfloat16()
    sync, plain = SyncBatchNorm2d(3), nn.BatchNorm2d(3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = sync(x)
    plain(x.float())
    torch.testing.assert_close(sync.running_mean, plain.running_mean, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(sync.running_var, plain.running_var, atol=1e-5, rtol=1e-5)
    assert y.dtype == x.dtype


def test_rng_state_is_this_process_own_gpus(monkeypatch):
    """Saved and restored for the process's own device only: get_rng_state_all() would hold every visible GPU's
    and raise IndexError on a machine with fewer."""
    import pix2pix.training.distributed as D

    calls = []
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: pytest.fail("every GPU's state"))
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device: calls.append(("get", device)) or torch.ones(3))
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device: calls.append(("set", device)))
    cpu_state = torch.get_rng_state()
    state = D.own_rng_state(torch.device("cuda", 1))
    D.set_rng_state(state, torch.device("cuda", 0))
    assert calls == [("get", torch.device("cuda", 1)), ("set", torch.device("cuda", 0))]
    assert torch.equal(state["cpu"], cpu_state)


def _on_main_worker(rank: int, port: int, out: dict) -> None:
    from pix2pix.errors import Pix2PixError
    from pix2pix.training.distributed import on_main, waiting_room

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    room = waiting_room()
    said = ""
    try:
        on_main(room, World(rank, rank, 2), lambda: 1 / 0)  # the main process's alone work fails
    except ZeroDivisionError:
        said = "the error itself"
    except Pix2PixError as e:
        said = str(e)
    Path(out[rank]).write_text(said)
    dist.destroy_process_group()


def test_an_error_in_the_main_process_alone_reaches_the_others_as_one_line(tmp_path):
    """Validation and checkpoint writes run on rank 0 while the others wait; a failure there must not leave them
    waiting (on a group whose timeout is a day)."""
    files = {r: str(tmp_path / f"{r}.txt") for r in range(2)}
    mp.spawn(_on_main_worker, args=(free_port(), files), nprocs=2)
    assert Path(files[0]).read_text() == "the error itself"
    assert "the main process (rank 0) stopped with an error" in Path(files[1]).read_text()


@pytest.mark.slow
def test_two_processes_train_pix2pixhds_second_stage_as_one_does(tmp_path):
    """The local generator from a global one, its global part fixed for the first epoch, the multi-scale D's
    nested outputs and feature matching, under torchrun: as one process at the same global batch (instance norm
    and the losses' means are per image, so only the order of sums differs)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    data = tmp_path / "wide"
    (data / "train").mkdir(parents=True)
    for i in range(4):
        label, photo = make_pair(rng, 256)
        Image.fromarray(np.concatenate([label[:128], photo[:128]], 1)).save(data / "train" / f"{i}.png")
    common = ["--data", str(data), "--runs", str(tmp_path / "runs"), "--ndf", "4", "--preprocess", "scale_width",
              "--workers", "0", "--no-progress", "--val-every", "0", "--no-fast", "--log-every", "1"]
    assert main(["train", *common, "--name", "global", "--generator", "global", "--ngf", "4", "--load-size", "128",
                 "--crop-size", "128", "--epochs", "1", "--epochs-decay", "0"]) == 0
    local = [*common, "--generator", "local", "--init-from", str(tmp_path / "runs" / "global"), "--load-size", "256",
             "--crop-size", "256", "--fix-global-epochs", "1", "--epochs", "2", "--epochs-decay", "0",
             "--snapshot-every", "1"]
    assert main(["train", *local, "--name", "one", "--batch-size", "2"]) == 0
    done = _torchrun_train(*local, "--name", "two", "--batch-size", "1")
    assert done.returncode == 0, done.stderr[-3000:]
    runs = tmp_path / "runs"
    fixed = load_file(str(runs / "two" / "checkpoints" / "epoch_001.safetensors"))
    start = {k: v for k, v in _weights(runs / "global").items()  # the global part, as the local one holds it
             if k.startswith("G.model.") and "generator." + k[2:] in fixed}
    assert all(torch.equal(fixed["generator." + k[2:]], v) for k, v in start.items())  # held for the first epoch
    a, b = _weights(runs / "one"), _weights(runs / "two")
    assert a.keys() == b.keys()
    # The enhancer's epoch, under torchrun as in one process (measured: 1.5e-5 apart in what G makes of an input).
    x = torch.rand(2, 3, 128, 256) * 2 - 1
    with torch.no_grad():
        after = [load_checkpoint(runs / r / "checkpoints" / "epoch_001.safetensors").build_generator().eval()(x)
                 for r in ("one", "two")]
    torch.testing.assert_close(after[1], after[0], atol=1e-3, rtol=0)
    # Then all of G, alike. The first steps of a fresh Adam move every weight by about the lr whatever its gradient,
    # so weights whose gradient is next to zero (most are biases that instance norm takes out again) follow the
    # rounding of the two sums (their gradients agree to 5e-6 of the norm): the runs' moves agree in direction.
    weights = [k for k in start if k.endswith("weight")]
    move = {r: torch.cat([(w[k] - start[k]).flatten() for k in weights]) for r, w in (("one", a), ("two", b))}
    assert move["one"].abs().max() > 1e-4  # it moved
    assert F.cosine_similarity(move["one"], move["two"], dim=0) > 0.8  # measured: 0.97
