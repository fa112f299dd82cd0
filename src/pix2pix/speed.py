"""Devices and the fast path: where and how the step runs, never what it computes.

The networks, losses, optimiser and schedule are the paper's either way. The fast path changes the memory
layout (channels_last), the arithmetic (autocast, bf16 or fp16 by :func:`cuda_amp`'s policy: matmuls and
convolutions in low precision, batch norm and the losses in fp32), the optimiser's kernel (fused Adam, the
same update), and compiles the networks with ``torch.compile`` where that pays. ``--no-fast``
(``TrainConfig.fast = False``) is the plain fp32 eager step exactly as the reference runs it (torch's default
Adam and settings), the one ``pix2pix bench`` times as its baseline.

Which parts are on for a device was decided by measurement (``pix2pix bench``; figures in the README).
"""

from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .config import TrainConfig
from .errors import Pix2PixError


@dataclass(frozen=True)
class Speed:
    channels_last: bool = False
    amp: str | None = None  # autocast's dtype: "bf16", or "fp16" (with a gradient scaler when training)
    fused_adam: bool = False  # one fused kernel (CUDA, CPU) instead of torch's default Adam kernel
    compile: bool = False
    compile_mode: str | None = None  # torch.compile's mode: "reduce-overhead" captures CUDA graphs

    @property
    def dtype(self) -> torch.dtype:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.amp, torch.float32)

    @property
    def name(self) -> str:
        parts = [n for n, on in (("channels_last", self.channels_last), (self.amp, self.amp),
                                 ("fused adam", self.fused_adam), ("compile", self.compile)) if on]
        return " + ".join(parts) if parts else "fp32 eager"


PLAIN = Speed()


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA, else Apple MPS, else the CPU) or the device named, if this machine has it."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise Pix2PixError("--device cuda: no CUDA device is available here; use --device auto or cpu")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise Pix2PixError("--device mps: no Apple MPS device is available here; use --device auto or cpu")
    if name not in ("cpu", "cuda", "mps"):
        raise Pix2PixError(f"unknown --device '{name}'; choose from auto, cpu, cuda, mps")
    return torch.device(name)


@functools.cache
def cpu_has_bf16() -> bool:
    """AVX512-BF16 or AMX: bf16 matmuls and convolutions in hardware (oneDNN uses them)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


@functools.cache
def cpu_name() -> str:
    """This CPU's model name, as lscpu shows it, with its bf16 hardware if any (for figures measured here)."""
    import platform

    name = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    name = name or platform.processor() or platform.machine() or "an unnamed CPU"
    return f"{name} ({os.cpu_count()} cores{', bf16' if cpu_has_bf16() else ''})"


def cuda_amp(device: torch.device) -> str | None:
    """The autocast dtype for a CUDA device, by compute capability (the AMP policy):

    * 8.0 and up (A100, RTX 30xx/40xx, L4, H100): bf16, which these GPUs compute natively; it has fp32's range,
      so training needs no gradient scaler.
    * 7.x (V100, T4 (Colab's default GPU), RTX 20xx): fp16 on their fp16 tensor cores, with a gradient
      scaler for G and for D (an fp16 gradient underflows without one). Not bf16: torch.cuda.is_bf16_supported()
      is true on these GPUs too, but there bf16 is emulated, slower than fp32.
    * below 7.0 (P100, GTX 10xx): fp32; no tensor cores, and fp16 runs at 1/64 rate on consumer Pascal.
    """
    major, minor = torch.cuda.get_device_capability(device)
    if (major, minor) >= (8, 0):
        return "bf16"
    return "fp16" if major >= 7 else None


def fast_path(device: torch.device, enabled: bool = True) -> Speed:
    """The training fast path for ``device``, or :data:`PLAIN` when disabled."""
    if not enabled:
        return PLAIN
    if device.type == "cuda":
        # Not yet measured on a GPU (none was lent to this project's sessions so far), so only what every
        # recent CUDA build does well is on by default. torch.compile is opt-in until scripts/gpu_check.sh has
        # timed it: PIX2PIX_COMPILE_MODE=default compiles G and D, =reduce-overhead adds CUDA graphs (for the
        # launch-bound small batches); a graph that cannot compile runs eagerly, with a warning. The gradient
        # penalty of --gan-loss wgangp always runs through the eager D (no compiled graph has a double backward).
        mode = os.environ.get("PIX2PIX_COMPILE_MODE")
        return Speed(channels_last=True, amp=cuda_amp(device), fused_adam=True,
                     compile=mode is not None, compile_mode=None if mode in (None, "", "default") else mode)
    if device.type == "cpu":
        # Measured on a 2-core AVX512-BF16 machine, unet_256 + patch70 at batch 1 (README): bf16 autocast and
        # fused Adam together take the step from 0.86-0.96 s to 0.44-0.48 s (Adam's per-parameter loop over
        # 57 M parameters alone costs about 0.15 s); channels_last made training slower (0.52-0.54 s) and
        # torch.compile no faster (0.54 s, after a 55 s compile). Without bf16 hardware (2-core AVX2 AMD EPYC),
        # fused Adam alone: unet_256 1.32 s against 1.62 s a step; unet_128 (ngf 32) 153 against 173 ms, where
        # channels_last took 186 ms and torch.compile 198 ms (after an 81 s compile).
        return Speed(amp="bf16" if cpu_has_bf16() else None, fused_adam=True)
    return PLAIN


def inference_path(device: torch.device, enabled: bool = True) -> Speed:
    """The inference fast path in PyTorch: the generator's weights in bf16 where the device computes bf16 in
    hardware (fp16 on CUDA 7.x, by :func:`cuda_amp`), and channels_last: on the facades model, 56.5 dB or more
    against fp32, at most 2 levels (of 255) apart (``scripts/engine_contract.py``); ``enabled=False`` gives the
    fp32 outputs bit for bit (the reference's). The other engines: :mod:`pix2pix.inference.engines`."""
    if not enabled:
        return PLAIN
    if device.type == "cuda":
        return Speed(channels_last=True, amp=cuda_amp(device))
    if device.type == "cpu" and cpu_has_bf16():
        # Measured as above, one 256x256 image: 58 ms against 121-145 ms in fp32 (bf16 alone: 79-83 ms).
        return Speed(channels_last=True, amp="bf16")
    return PLAIN


class Precision:
    """A training step's arithmetic: autocast for the forward passes (``with amp():``), and the backward pass
    and optimizer step of each network (``amp.backward(loss, "D")``, ``amp.step(opt, "D")``). With fp16 these
    go through a gradient scaler per network, which skips a step whose gradients overflowed; otherwise they
    are ``loss.backward()`` and ``opt.step()``. :data:`FP32` is the plain step's."""

    def __init__(self, device: torch.device, speed: Speed):
        self.device, self.speed = device, speed
        self.scalers = {net: torch.amp.GradScaler(device.type) for net in ("G", "D")} if speed.amp == "fp16" else {}

    def __call__(self):
        if self.speed.amp and self.device.type in ("cuda", "cpu"):
            return torch.autocast(self.device.type, dtype=self.speed.dtype)
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor, net: str) -> None:
        (self.scalers[net].scale(loss) if net in self.scalers else loss).backward()

    def step(self, opt: torch.optim.Optimizer, net: str) -> None:
        if net not in self.scalers:
            opt.step()
            return
        self.scalers[net].step(opt)
        self.scalers[net].update()

    def loss_scale(self, net: str) -> torch.Tensor | None:
        """The current scale of ``net``'s gradients as a tensor on the device (no host sync), or None."""
        if net not in self.scalers:
            return None
        return self.scalers[net].scale(torch.ones((), device=self.device))

    def state_dict(self) -> dict | None:
        return {net: s.state_dict() for net, s in self.scalers.items()} or None

    def load_state_dict(self, state: dict | None) -> None:
        for net, s in self.scalers.items():
            if state and net in state:
                s.load_state_dict(state[net])


FP32 = Precision(torch.device("cpu"), PLAIN)


# torch's own defaults, read before anything here changes them: the plain step runs with these.
_CUDA_DEFAULTS = (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32)


def configure(device: torch.device, speed: Speed) -> None:
    """Process-wide switches that only change speed: on for the fast path, torch's defaults for the plain one
    (so that a baseline timed after the fast path in one process does not inherit them)."""
    if device.type == "cuda":
        benchmark, tf32 = (True, True) if speed != PLAIN else _CUDA_DEFAULTS
        torch.backends.cudnn.benchmark = benchmark
        torch.backends.cuda.matmul.allow_tf32 = tf32


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously): every timer starts and stops after one."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def prepare(module: nn.Module, speed: Speed) -> nn.Module:
    """The module in the fast path's memory layout (its parameters stay fp32)."""
    return module.to(memory_format=torch.channels_last) if speed.channels_last else module


def compiled(module: nn.Module, speed: Speed) -> nn.Module:
    if not speed.compile:
        return module
    import torch._dynamo

    torch._dynamo.config.suppress_errors = True  # a graph that cannot compile runs eagerly, with a warning
    return torch.compile(module, mode=speed.compile_mode)


def adam(params, t: TrainConfig, speed: Speed) -> torch.optim.Adam:
    """The paper's Adam. The fast path picks the fused kernel; the plain path is torch's default Adam exactly as
    the reference builds it (no kernel argument: the multi-tensor kernel on CUDA, the per-parameter loop on
    the CPU)."""
    return torch.optim.Adam(params, lr=t.lr, betas=(t.beta1, t.beta2), **(dict(fused=True) if speed.fused_adam else {}))


def load_adam(opt: torch.optim.Optimizer, state: dict) -> None:
    """Load a saved Adam state, keeping this run's kernel: the saved groups carry the ``fused``/``foreach``
    flags of the run that saved them, which would otherwise bring the fused kernel back after --no-fast (or
    the default one after it)."""
    kernel = ("fused", "foreach", "capturable")
    groups = [dict(saved, **{k: now[k] for k in kernel if k in now})
              for saved, now in zip(state["param_groups"], opt.param_groups)]
    opt.load_state_dict(dict(state, param_groups=groups))


def to_device(x: torch.Tensor, device: torch.device, speed: Speed) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if speed.channels_last and x.ndim == 4 else x


def device_free_bytes(device: torch.device) -> int:
    """Memory free on ``device``: the GPU's free memory, or the machine's available RAM."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 * 2**30  # unknown: assume a small machine
