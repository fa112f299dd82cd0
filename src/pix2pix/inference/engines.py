"""Inference engines: the ways one generator can run, which one runs where, and the compiled one.

The engine changes how the arithmetic is done, never the model or its test mode:

* ``torch``: PyTorch eager. With the fast path (:func:`pix2pix.speed.inference_path`) bf16 weights and
  channels_last where the device computes bf16; ``fast=False`` (``--no-fast``): fp32, the reference's outputs
  bit for bit.
* ``compiled``: the generator through ``torch.compile`` (inductor) with its weights frozen into the graph and
  prepacked for oneDNN, in bf16 autocast (convolutions in bf16, normalisation in fp32), on a CPU with AVX512-BF16
  or AMX (compiled in fp32 it was no faster than ONNX Runtime fp32, 67 against 70 ms, and drifted from fp32
  eager by up to 5 levels on the facades model, so CPUs without bf16 do not get it). Compiling costs time once
  per model, test mode and input size (unet_256 at 256x256 on the 2-core AMX Xeon: 29 s the first time, 6 to
  7 s in a later process, which finds inductor's cache under ``$PIX2PIX_HOME/compiled``), so ``auto`` compiles
  only for work that repays it (:data:`COMPILE_PAYS_FROM`) and for a server, which compiles in the background
  while PyTorch answers.
* ``onnxruntime``: the exported fp32 graph in ONNX Runtime on the CPU.

Which is faster was measured per CPU kind (README, "Engines"): on the 2-core AMX Xeon, unet_256 at 256x256 in
the paper's mode, one image at a time, the compiled bf16 engine took 18 to 23 ms against 49 to 62 ms for
PyTorch's eager bf16 and 96 to 135 ms for the reference's fp32 eager (eight bench runs); on a 2-core AVX2 AMD
EPYC (no bf16), ONNX Runtime fp32 was the fastest measured, 1.9 times the reference's fp32.

The accuracy contract, tested on every engine present (``tests/test_engines.py``): an fp32 engine is within
1 level (of 255) of ``--no-fast``; a bf16 engine is at or above 40 dB PSNR against fp32 in eval mode.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import logging
import os
import shutil
import threading
import time
from contextlib import nullcontext

import torch
from torch import nn

from ..config import GeneratorConfig
from ..published import home
from ..speed import cpu_has_bf16, inference_path, prepare, to_device
from .onnx_graph import onnxruntime_available

log = logging.getLogger(__name__)

ENGINES = ("auto", "torch", "compiled", "onnxruntime")

# Work, in GFLOP of the generator's forward passes, from which an engine's set-up pays for itself (unet_256 at
# 256x256 takes 12.1 GFLOP an image; 2-core machines of the README). Compiling costs 5 to 8 s from inductor's
# cache whatever the model's width (29 s the first time for unet_256); the compiled engine then takes 16 ms a
# unet_256 image in batches of 4 against 31 ms for PyTorch's bf16 fast path in batches of 8 (63 ms one at a
# time): it pays from some 470 such images when cached, 1,900 the first time. A narrow model saves as much less
# as it computes less (at ngf 8, a 12,000 x 12,000 image in 512-pixel tiles took 29 s compiled against 22 s
# in PyTorch). ONNX Runtime's graph of unet_256 takes about 4.3 s to make and saves about 0.14 s an image against
# PyTorch fp32 on an AVX2 CPU: 32 images.
COMPILE_PAYS_FROM = 12_000.0  # GFLOP: some thousand unet_256 images
ONNX_PAYS_FROM = 380.0  # some 32
LONG_LIVED = None  # the work of a server: not known, and long
# Held by whoever seeds torch's global generator and draws from it, and by a background compile that draws.
GLOBAL_RNG = threading.Lock()
SMALL_WORK = 32 * 256 * 256  # pixels under which no engine's set-up pays for any generator here: not counted


def work_gflop(config: GeneratorConfig, pixels: int | None) -> float | None:
    """The generator's work on ``pixels`` of input in GFLOP (None: a long-lived server's)."""
    if pixels is None:
        return LONG_LIVED
    return 0.0 if pixels < SMALL_WORK else pixels * gflop_per_pixel(config)


@functools.lru_cache(maxsize=8)
def _gflop_per_pixel(config_json: str) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    from ..config import section_from_dict
    from ..networks import build_generator

    config = section_from_dict(GeneratorConfig, json.loads(config_json), "the generator", "generator")
    with torch.device("meta"):  # counted without weights or arithmetic
        G = build_generator(config)
        side = max(G.pad_multiple, G.pad_minimum, 64)
        x = torch.zeros(1, config.in_channels, side, side)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        G(x)
    return counter.get_total_flops() / 1e9 / side ** 2


def gflop_per_pixel(config: GeneratorConfig) -> float:
    """The generator's forward pass per input pixel, in GFLOP (torch's FLOP counter on the meta device)."""
    return _gflop_per_pixel(json.dumps(dataclasses.asdict(config), sort_keys=True))


def batch_pixels(engine: str) -> int:
    """How many pixels of input test, eval, translate and tiling put through ``engine`` in one call. Measured on
    the AMX Xeon, unet_256 at 256x256 in the paper's mode, ms an image at batch 1 / 4 / 8: PyTorch's bf16 fast
    path 63 / 36 / 31, ONNX Runtime fp32 67 / 62 / 60, the compiled engine 20 / 16 / 16.5 (17 at batch 2): four
    images at a time there, eight elsewhere."""
    return (4 if engine == "compiled" else 8) * 256 * 256


def compiler_available() -> bool:
    """Inductor compiles C++ for the CPU: is its compiler (``$CXX``, else g++) on this machine?"""
    return shutil.which(os.environ.get("CXX") or "g++") is not None


def engine_for(device: torch.device, fast: bool = True, gflop: float | None = LONG_LIVED) -> str:
    """The fastest engine measured for ``device`` that repays its set-up on ``gflop`` of work
    (:func:`work_gflop`; None: a long-lived server). Without ``fast``, PyTorch fp32 (the reference's, bit for
    bit)."""
    if not fast or device.type != "cpu":
        return "torch"
    if cpu_has_bf16():
        pays = gflop is LONG_LIVED or gflop >= COMPILE_PAYS_FROM
        return "compiled" if pays and compiler_available() else "torch"
    pays = gflop is LONG_LIVED or gflop >= ONNX_PAYS_FROM
    return "onnxruntime" if pays and onnxruntime_available() else "torch"


def engine_for_run(device: torch.device, eval: bool, seed: int | None, fast: bool, gflop: float | None) -> str:
    """The engine to ask for, for a run of ``gflop``: ``auto``, except that a seed in the paper's mode asks
    for PyTorch's exact dropout noise (the other engines draw their own), so PyTorch, said in one line where
    another engine would have run."""
    if seed is None or eval:
        return "auto"
    other = engine_for(device, fast, gflop)
    if other != "torch":
        name = {"compiled": "the compiled engine", "onnxruntime": "ONNX Runtime"}[other]
        log.info(f"note: --seed {seed} asks for PyTorch's exact dropout noise, so PyTorch runs ({name}, faster "
                 "here, draws its own noise when no --seed is given)")
    return "torch"


class _Autocast(nn.Module):
    def __init__(self, G: nn.Module, dtype: torch.dtype | None):
        super().__init__()
        self.G, self.dtype = G, dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=self.dtype or torch.bfloat16, enabled=self.dtype is not None):
            return self.G(x).float()


class Compiled:
    """``G`` (fp32, in its test mode, on the CPU) compiled by inductor with frozen, prepacked weights. Call it
    on a (B, C, H, W) fp32 input: each new shape compiles once, said in one line with the time it took, and
    the call returns the output; or None where it did not compile that shape (past :attr:`MAX_SIZES` image
    sizes, or, with ``background``, while the shape compiles in a background thread), and the caller runs
    :meth:`eager`, PyTorch's bf16 fast path. Compiling that fails (no C++ compiler, an operator inductor cannot
    lower) is said in one line and sets :attr:`failed`: from then on every call returns None. Dropout's noise is inductor's own, drawn from
    torch's generator: ``torch.manual_seed`` repeats it, but it is not eager PyTorch's noise of that seed."""

    MAX_SIZES = 4  # (channels, height, width) compiled, each at any batch sizes

    def __init__(self, G: nn.Module, bf16: bool | None = None, background: bool = False):
        bf16 = cpu_has_bf16() if bf16 is None else bf16
        self.precision = "bf16" if bf16 else "fp32"
        self.G, self.net = G, _Autocast(G, torch.bfloat16 if bf16 else None)
        # Its first run draws dropout's noise from the global generator (the paper's mode).
        self.noisy = any(isinstance(m, nn.Dropout) and m.training and m.p > 0 for m in G.modules())
        self.background = background
        self.fn = None
        self.shapes: frozenset[tuple[int, ...]] = frozenset()  # compiled
        self.pending: set[tuple[int, ...]] = set()  # compiling in the background
        self.lock = threading.Lock()
        self._eager: nn.Module | None = None
        self.failed: str | None = None
        # What is not compiled runs as the ``torch`` engine would: its fast path (in fp32 for an fp32 compile).
        self.eager_speed = inference_path(torch.device("cpu"), enabled=bf16)

    def eager(self, x: torch.Tensor) -> torch.Tensor:
        """PyTorch's fast path on a copy of ``G`` made on first use (bf16 weights, channels_last)."""
        x = to_device(x.to(self.eager_speed.dtype), torch.device("cpu"), self.eager_speed)
        return self.eager_net()(x).float().contiguous()

    def eager_net(self) -> nn.Module:
        with self.lock:
            if self._eager is None:
                self._eager = prepare(copy.deepcopy(self.G).to(self.eager_speed.dtype), self.eager_speed)
            return self._eager

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, pad: bool = False) -> torch.Tensor | None:
        """``pad``: images are independent of each other in the batch (eval mode, or each image normalised by
        its own statistics), so a batch may be run as part of a larger compiled one, padded with copies of its
        last image, rather than compile its own size (the last, short batch of a split or a row of tiles)."""
        shape, compiled = tuple(x.shape), self.shapes  # a frozenset, replaced (never changed) by the compiling thread
        if shape in compiled:
            return self.fn(x)
        larger = sorted(s[0] for s in compiled if s[1:] == shape[1:] and s[0] > shape[0])
        if pad and larger:
            filler = x[-1:].expand(larger[0] - shape[0], *shape[1:])
            return self.fn(torch.cat([x, filler]))[:shape[0]]
        if pad and self.background:  # a server's batches of 1 to 8: compiled as 1, 2, 4 and 8, the others padded
            shape = (1 << (shape[0] - 1).bit_length(), *shape[1:])
        with self.lock:
            sizes = {s[1:] for s in self.shapes | self.pending}
            if self.failed is not None or shape in self.pending or \
                    (shape[1:] not in sizes and len(sizes) >= self.MAX_SIZES):
                return None
            if self.fn is None:
                # inductor's caches beside this user's models, so that a later process finds the compiled code
                os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(home() / "compiled"))
                self.fn = torch.compile(self.net, dynamic=False)
            self.pending.add(shape)
        if self.background:  # not a daemon: exiting waits for it (killing it mid-compile aborts the process)
            threading.Thread(target=self._compile, args=(torch.zeros(shape),), name="pix2pix-compile").start()
            return None
        return self._compile(x)

    @torch.no_grad()
    def _compile(self, x: torch.Tensor) -> torch.Tensor | None:
        shape = tuple(x.shape)
        if self.failed is not None:  # another shape's compile failed meanwhile
            with self.lock:
                self.pending.discard(shape)
            return None
        cache = os.environ.get("TORCHINDUCTOR_CACHE_DIR") or home() / "compiled"
        log.info(f"compiling the generator for {'x'.join(map(str, shape))} inputs ({self.precision}; once per "
                 f"model and size, and a later run finds most of it in {cache})")
        start = time.perf_counter()
        try:
            import torch._inductor.config

            # Weights frozen into the graph, prepacked for oneDNN (measured: 19 against 66 ms without, unet_256
            # at 256x256 in bf16 on the AMX Xeon). torch.compile's ``options`` did not turn it on: the patch does.
            # Its first run draws the paper's noise from the global generator: in the background, not while
            # another thread runs a seed's noise (which waits for it).
            with torch._inductor.config.patch(freezing=True), \
                    GLOBAL_RNG if self.background and self.noisy else nullcontext():
                y = self.fn(x)
        except Exception as e:  # noqa: BLE001 - inductor raises many kinds; each means "run eagerly"
            failed = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            log.warning(f"the compiled engine could not compile this generator ({failed}); PyTorch runs it")
            with self.lock:  # no more compiles: the caller runs PyTorch from now on
                self.pending.discard(shape)
                self.failed = failed
            return None
        with self.lock:
            self.pending.discard(shape)
            self.shapes = self.shapes | {shape}
        log.info(f"compiled in {time.perf_counter() - start:.0f} s")
        return y
