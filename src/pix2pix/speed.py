"""Devices and the fast path: where and how the step runs, never what it computes.

The networks, losses, optimiser and schedule are the paper's either way. The fast path changes the memory
layout (channels_last), the arithmetic (bf16 autocast: matmuls and convolutions in bf16, batch norm and the
losses in fp32), the optimiser's kernels (fused or multi-tensor Adam, the same update), and compiles the
networks with ``torch.compile`` where that pays. ``--no-fast`` (``TrainConfig.fast = False``) is the plain fp32
eager step, the one ``pix2pix bench`` times as its baseline.

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
    bf16: bool = False
    fused_adam: bool = False  # one fused kernel (CUDA, CPU) instead of a loop over parameters
    compile: bool = False
    compile_mode: str | None = None  # torch.compile's mode: "reduce-overhead" captures CUDA graphs

    @property
    def name(self) -> str:
        parts = [n for n, on in (("channels_last", self.channels_last), ("bf16", self.bf16),
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


def fast_path(device: torch.device, enabled: bool = True) -> Speed:
    """The training fast path for ``device``, or :data:`PLAIN` when disabled."""
    if not enabled:
        return PLAIN
    if device.type == "cuda":
        # Not yet measured on a GPU (none was lent to this project's sessions so far), so only what every
        # recent CUDA build does well is on by default. torch.compile is opt-in until scripts/gpu_check.sh has
        # timed it: PIX2PIX_COMPILE_MODE=default compiles G and D, =reduce-overhead adds CUDA graphs (for the
        # launch-bound small batches); a graph that cannot compile runs eagerly, with a warning.
        mode = os.environ.get("PIX2PIX_COMPILE_MODE")
        return Speed(channels_last=True, bf16=torch.cuda.is_bf16_supported(), fused_adam=True,
                     compile=mode is not None, compile_mode=None if mode in (None, "", "default") else mode)
    if device.type == "cpu":
        # Measured on a 2-core AVX512-BF16 machine, unet_256 + patch70 at batch 1 (README): bf16 autocast and
        # fused Adam together take the step from 0.86-0.96 s to 0.44-0.48 s (Adam's per-parameter loop over
        # 57 M parameters alone costs about 0.15 s); channels_last made training slower (0.52-0.54 s) and
        # torch.compile no faster (0.54 s, after a 55 s compile).
        return Speed(bf16=cpu_has_bf16(), fused_adam=True)
    return PLAIN


def inference_path(device: torch.device, enabled: bool = True) -> Speed:
    """The inference fast path: the generator's weights in bf16 (where the device computes bf16 in hardware)
    and channels_last. Outputs differ from fp32 by at most about 2/255 per pixel; ``enabled=False`` gives the
    fp32 outputs bit for bit (the reference's)."""
    if not enabled:
        return PLAIN
    if device.type == "cuda":
        return Speed(channels_last=True, bf16=torch.cuda.is_bf16_supported())
    if device.type == "cpu" and cpu_has_bf16():
        # Measured as above, one 256x256 image: 58 ms against 121-145 ms in fp32 (bf16 alone: 79-83 ms).
        return Speed(channels_last=True, bf16=True)
    return PLAIN


def configure(device: torch.device, speed: Speed) -> None:
    """Process-wide switches that only change speed: on for the fast path, torch's defaults for the plain one
    (so that a baseline timed after the fast path in one process does not inherit them)."""
    if device.type == "cuda":
        fast = speed != PLAIN
        torch.backends.cudnn.benchmark = fast
        torch.backends.cuda.matmul.allow_tf32 = fast


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
    """The paper's Adam; the fast path only picks the kernel (fused), the plain path the per-parameter loop."""
    kernel = dict(fused=True) if speed.fused_adam else dict(foreach=False)
    return torch.optim.Adam(params, lr=t.lr, betas=(t.beta1, t.beta2), **kernel)


def autocast(device: torch.device, speed: Speed):
    if speed.bf16 and device.type in ("cuda", "cpu"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


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
