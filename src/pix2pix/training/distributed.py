"""Multi-process training with torchrun: joining the process group, batch norm over the global batch, and
each process's share of an epoch.

``torchrun --nproc_per_node N -m pix2pix train ...`` (or ``pix2pix train --nproc N``) starts N copies of the
training command with RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT set; a command started
without them is a single process and nothing here applies. ``--batch-size`` is per process, so the global
batch is ``batch_size * N``, and N processes at batch B take the same steps as one process at batch N * B:
the same examples per step, batch-norm statistics over all of them (SyncBatchNorm), gradients averaged.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Callable, TypeVar
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.nn.functional import all_reduce as _all_reduce

from ..errors import Pix2PixError

T = TypeVar("T")
DEFAULT_TIMEOUT_S = 180.0  # joining the group, and any collective; PIX2PIX_DIST_TIMEOUT overrides it


@dataclass(frozen=True)
class World:
    rank: int = 0
    local_rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        """The process that writes checkpoints, logs and pages."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def all_reduce(t: torch.Tensor) -> torch.Tensor:
    """A sum over processes that autograd differentiates (its backward is the same sum of the gradients). torch
    marks this function deprecated in favour of a private module whose autograd support is not documented, so
    it is kept, without the warning it would print at every batch norm of every step."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*all_reduce is deprecated", category=FutureWarning)
        return _all_reduce(t)


def world_from_env() -> World:
    try:
        size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise Pix2PixError("WORLD_SIZE, RANK and LOCAL_RANK must be integers (torchrun sets them)") from None
    if size < 1 or not 0 <= rank < size:
        raise Pix2PixError(f"RANK {rank} does not fit WORLD_SIZE {size}")
    return World(rank, local, size)


def join(world: World, device: torch.device) -> torch.device:
    """Join the torchrun group (NCCL on CUDA, gloo otherwise) and return this process's device. A master
    that cannot be reached, or processes that never arrive, end in one error after the timeout."""
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    if dist.is_initialized():
        return device
    timeout = float(os.environ.get("PIX2PIX_DIST_TIMEOUT", DEFAULT_TIMEOUT_S))
    host, port = os.environ.get("MASTER_ADDR", "?"), os.environ.get("MASTER_PORT", "?")
    where = f"{host}:{port}"
    if world.rank != 0 or os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
        # This process connects to a store someone else serves: try it here first, so an unreachable master
        # is one line after the timeout rather than pages of c10d connection logs.
        _wait_for(host, port, timeout, where, world)
    try:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timedelta(seconds=timeout),
                                rank=world.rank, world_size=world.size)
    except (RuntimeError, ValueError, OSError) as e:  # DistStoreError and DistNetworkError are RuntimeErrors
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise Pix2PixError(f"rank {world.rank} of {world.size} could not join the group at {where} within "
                           f"{timeout:g} s ({reason}); is the master address right and reachable?") from None
    return device


def _wait_for(host: str, port: str, timeout: float, where: str, world: World) -> None:
    import socket
    import time

    deadline, reason = time.monotonic() + timeout, "no MASTER_ADDR/MASTER_PORT"
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=min(5.0, max(0.1, timeout))):
                return
        except (OSError, ValueError) as e:
            reason = e.strerror or str(e) or type(e).__name__
        if time.monotonic() >= deadline:
            raise Pix2PixError(f"rank {world.rank} of {world.size} could not join the group at {where} within "
                               f"{timeout:g} s ({reason}); is the master address right and reachable?")
        time.sleep(0.5)


def leave(wait: bool = True) -> None:
    """Leave the group: after a barrier when ``wait`` (a clean end: no process tears down while another still
    talks to it); after an error at once, so that torchrun ends the others rather than a collective's timeout."""
    if not dist.is_initialized():
        return
    import gc

    gc.collect()  # DDP's reducers and gloo's work objects, before their group goes
    if wait:
        dist.barrier()
    dist.destroy_process_group()


class SyncBatchNorm2d(nn.BatchNorm2d):
    """Batch norm with the statistics of the global batch, for devices torch's ``nn.SyncBatchNorm`` does not
    cover (it is CUDA-only; this one serves CPU processes under gloo). Each process's sums are all-reduced
    with a differentiable all-reduce, so the backward pass also sees the whole batch. Same parameters and
    buffers as ``nn.BatchNorm2d``, so checkpoints do not change."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        # Sums and the count in fp32 whatever autocast gives (bf16 would round a count of 961 to 960).
        dtype, x = x.dtype, x.float()
        c = x.shape[1]
        count = x.new_full((1,), x.numel() // c)
        total = all_reduce(torch.cat([x.sum((0, 2, 3)), count]))
        n = total[c]
        mean = total[:c] / n
        centred = x - mean.view(1, c, 1, 1)
        var = all_reduce((centred * centred).sum((0, 2, 3))) / n  # two passes: as stable as the local one
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * n / (n - 1).clamp(min=1), alpha=m)
        y = centred * torch.rsqrt(var + self.eps).view(1, c, 1, 1)
        if self.affine:
            y = y * self.weight.view(1, c, 1, 1) + self.bias.view(1, c, 1, 1)
        return y.to(dtype)


def sync_batch_norm(module: nn.Module, device: torch.device) -> nn.Module:
    """Every BatchNorm2d in ``module`` turned into one over the global batch: torch's on CUDA, ours elsewhere."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            sync = SyncBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine,
                                   child.track_running_stats)
            sync.load_state_dict(child.state_dict())
            setattr(module, name, sync)
        else:
            sync_batch_norm(child, device)
    return module


def rank_share(order: np.ndarray, batch_size: int, world: World) -> np.ndarray:
    """This process's examples of an epoch ``order``: global batch k is ``order[k*B*N : (k+1)*B*N]`` and
    rank r takes its r-th slice of B. The order is wrapped around to whole global batches, so every process
    takes the same number of steps (as torch's DistributedSampler pads)."""
    if not world.distributed:
        return order
    per_step = batch_size * world.size
    steps = -(-len(order) // per_step)
    return np.resize(order, steps * per_step).reshape(steps, world.size, batch_size)[:, world.rank].reshape(-1)


def mean_over_processes(values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Loss sums averaged over processes (one all-reduce; a no-op for a single process)."""
    if not (dist.is_initialized() and dist.get_world_size() > 1) or not values:
        return values
    keys = sorted(values)
    stacked = torch.stack([torch.as_tensor(values[k], dtype=torch.float32) for k in keys])
    dist.all_reduce(stacked)
    stacked /= dist.get_world_size()
    return dict(zip(keys, stacked))


def any_process(flags: list[bool], device: torch.device) -> list[bool]:
    """Each flag true on every process if it is true on any (one all-reduce; the flags themselves for a single
    process): a signal that reached one process, or the time cap of one, stops them all at the same step."""
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return list(flags)
    t = torch.tensor([float(f) for f in flags], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v) for v in t.tolist()]


def waiting_room(hours: float = 24.0):
    """A gloo group whose collectives wait ``hours``: the other processes wait in it while the main one alone
    does something long (validation), which the training group's timeout would otherwise cut (its watchdog
    ends the run). Every process must create it, at the same point; None for a single process."""
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return None
    return dist.new_group(backend="gloo", timeout=timedelta(hours=hours))


def on_main(group, world: World, work: Callable[[], T]) -> T | None:
    """Run ``work()`` on the main process alone while the others wait for it in ``group`` (the waiting room; None
    for a single process, where it simply runs). An error in it reaches the others too, as one line, instead of
    leaving them waiting on a process that has gone."""
    failed, result = 1.0, None
    try:
        if world.main:
            result = work()
        failed = 0.0
    finally:
        if group is not None:
            flag = torch.tensor([failed])
            dist.broadcast(flag, 0, group=group)
            if flag.item() and not world.main:
                raise Pix2PixError("the main process (rank 0) stopped with an error; its message says why")
    return result


def plain_batch_norm(module: nn.Module) -> nn.Module:
    """``module`` with every cross-process batch norm (ours or torch's SyncBatchNorm) turned back into a plain
    BatchNorm2d with its parameters and statistics: a copy one process can run alone, with no collective."""
    for name, child in module.named_children():
        if isinstance(child, (SyncBatchNorm2d, nn.SyncBatchNorm)):
            plain = nn.BatchNorm2d(child.num_features, child.eps, child.momentum, child.affine,
                                   child.track_running_stats)
            plain.load_state_dict(child.state_dict())
            setattr(module, name, plain.to(next(child.buffers(), torch.zeros(0)).device))
        else:
            plain_batch_norm(child)
    return module


def own_rng_state(device: torch.device) -> dict:
    """This process's random state: the CPU's and its own GPU's (never every visible GPU's: a resume on a
    machine with fewer GPUs could not restore those)."""
    return {"cpu": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}


def gather_rng_states(device: torch.device) -> list[dict]:
    """Every process's random state, gathered on every process: a checkpoint keeps them all so that a resumed
    run draws the same dropout noise in each process."""
    states: list = [None] * dist.get_world_size()
    dist.all_gather_object(states, own_rng_state(device))
    return states


def gather_bad_images(mine: list[str]) -> list[str]:
    """The images every process has skipped (--skip-bad-images), each once, in a stable order."""
    every: list = [None] * dist.get_world_size()
    dist.all_gather_object(every, list(mine))
    return sorted({line for lines in every for line in lines})


def set_rng_state(state: dict, device: torch.device) -> None:
    """Restore :func:`own_rng_state` in this process (the GPU's part onto its own device)."""
    torch.set_rng_state(state["cpu"])
    if isinstance(state.get("cuda"), torch.Tensor) and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)
