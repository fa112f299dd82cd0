"""Planning a run to a budget: timing the training step on this machine, how many steps fit some minutes,
and the one epoch planner that turns a number of steps into the paper's schedule shape (half the epochs at a
constant lr, half decaying). The demo plans to its minutes, the ablations to a step budget, ``pix2pix bench``
times the step with :func:`measure_step_seconds`.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from ..config import RunConfig, resolve
from ..data.pairs import scan_split
from ..errors import Pix2PixError
from ..speed import PLAIN, Precision, Speed, compiled, configure, fast_path, resolve_device, synchronize, to_device
from .setup import build_networks
from .step import Networks, train_step


def measure_step_seconds(cfg: RunConfig, steps: int = 5, warmup: int = 2, speed: Speed | None = None) -> float:
    """Seconds per training step of ``cfg``'s networks, loss and batch size on random data (no data loading),
    after ``warmup`` steps, on the fast path ``cfg.train.fast`` selects (or ``speed``). For planning a run that
    has to fit a time budget, and for ``pix2pix bench``."""
    cfg = resolve(cfg.copy())
    device = resolve_device(cfg.train.device)
    speed = fast_path(device, cfg.train.fast) if speed is None else speed
    configure(device, speed)
    bare = build_networks(cfg, device, speed)
    nets = Networks(bare.G, bare.D, bare.opt_G, bare.opt_D, G_step=compiled(bare.G, speed),
                    D_step=compiled(bare.D, speed) if bare.D else None, vgg=bare.vgg)
    g, n, size = cfg.generator, cfg.data.batch_size, cfg.data.crop_size
    A = to_device(torch.rand(n, g.in_channels, size, size) * 2 - 1, device, speed)
    B = to_device(torch.rand(n, g.out_channels, size, size) * 2 - 1, device, speed)
    amp = Precision(device, speed)
    for i in range(warmup + steps):
        if i == warmup:
            synchronize(device)  # the warm-up's queued work is not this timer's
            start = time.perf_counter()
        losses, _ = train_step(A, B, nets, cfg.train.loss, amp=amp)
        if speed == PLAIN:
            float(losses["G"])  # a host sync: the reference reads its losses every step, the fast path not
    synchronize(device)
    return (time.perf_counter() - start) / steps


# A planned step costs more than the bare step that measure_step_seconds times: logging, samples, and (without
# the fast path's preloaded data) loading on the same two cores. On the 2-core development machine a demo
# step took 75 to 80 ms against 65 to 67 ms bare in fp32; on the fast path, 6,400 planned steps took 473 s
# of the 480 (74 ms each). A plan can overrun by a few percent; a time limit then ends the run early.
OVERHEAD = 1.15


def steps_in_minutes(cfg: RunConfig, minutes: float, timings: int = 3) -> int:
    """How many steps of ``cfg`` fit ``minutes`` on this machine, from the fastest of a few timings (a busy
    moment elsewhere on the machine only slows one of them)."""
    seconds = min(measure_step_seconds(cfg, steps=5, warmup=3) for _ in range(timings))
    return max(1, int(minutes * 60 / (seconds * OVERHEAD)))


LONG_PLAN_HOURS = 3.0  # a plan longer than this on a CPU is warned of, naming the CPU recipe


def planned_step_seconds(cfg: RunConfig, speed: Speed) -> float:
    """About how long a step of ``cfg`` takes in a run on this machine, from a short timing (on networks of its
    own, with the random number generators left as they were: the run's draws are unchanged)."""
    with torch.random.fork_rng(devices=[]):  # the first steps pay one-time costs (kernels, allocations)
        return measure_step_seconds(cfg, steps=3, warmup=2, speed=speed) * OVERHEAD


def size_to_minutes(cfg: RunConfig, minutes: float) -> RunConfig:
    """``cfg`` with the paper's schedule shape sized to fit ``minutes`` on this machine (from a timing of its
    step here), and ``minutes`` as the session's time limit too: the demo's and ``--preset cpu``'s schedule."""
    if not scan_split(Path(cfg.data.root), "train")[0]:  # said before the timing, not after it
        raise Pix2PixError(f"--data {cfg.data.root}: no usable images in the 'train' split")
    cfg.train.max_minutes = minutes
    cfg.train.epochs = cfg.train.epochs_decay = plan_epochs(cfg, steps_in_minutes(cfg, minutes))
    return cfg


def plan_epochs(cfg: RunConfig, steps: float, nearest: bool = False) -> int:
    """The paper's schedule shape for a budget of ``steps``: the number of epochs at a constant lr (and as
    many decaying) whose total comes nearest to ``steps`` without exceeding it (a time budget: the demo), or
    with ``nearest`` on either side (a step budget that --max-steps caps: the ablations); at least one."""
    pairs, _ = scan_split(Path(cfg.data.root), "train")
    half = steps / math.ceil(len(pairs) / cfg.data.batch_size) / 2
    return max(1, round(half) if nearest else int(half))
