"""``pix2pix bench``: the fast path against the reference's step, of the identical model and loss, side by side.

Both are timed in one run on the same device: the training step (G and D, Adam, the paper's loss) on random
data, and inference in the paper's test mode on each engine (PyTorch's fast path, ONNX Runtime fp32 on the
CPU, the compiled engine where inductor can compile, the baseline), each engine's images per second, its
ratio to the baseline, and its share of the device's peak (:func:`device_peak`: the FLOPs the generator's
forward pass takes, counted by torch's FLOP counter, times images per second, over what one large matmul
reaches on this device, in the engine's precision). The baseline is :data:`BASELINE`. With ``--data`` (else a
few procedural facades made on the fly) it also times the input path the trainer would use, and says whether
the step would wait for it.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .data.batches import EpochSampler, PreloadedPairs, make_loader
from .config import RunConfig
from .data.pairs import PairDataset, scan_split
from .errors import Pix2PixError
from .inference import engines as engine_choice
from .inference.translate import Translator
from .networks import build_generator, init_weights
from .inference.onnx_graph import onnxruntime_available
from .speed import PLAIN, Speed, cpu_has_bf16, fast_path, inference_path, resolve_device, synchronize
from .training.planning import measure_step_seconds


BASELINE = ("the reference's step: fp32 eager, torch's default Adam (no foreach/fused argument), torch's default "
            "cudnn/TF32 settings, a host sync each step (it reads its losses); every timer starts and stops after "
            "a device synchronise")


@dataclass
class BenchResult:
    device: str
    config: str
    fast_path: str
    train_img_per_s: float
    baseline_train_img_per_s: float
    infer_img_per_s: float
    baseline_infer_img_per_s: float
    infer_batch_size: int
    infer_engine: str = "torch"  # what translate/test/eval/serve run here over long work (engines.engine_for)
    engines: dict[str, float] = field(default_factory=dict)  # images/s of each engine present, in the paper's mode
    precisions: dict[str, str] = field(default_factory=dict)  # each engine's arithmetic: bf16, fp16 or fp32
    compile_seconds: float | None = None  # the compiled engine's first call here (from inductor's cache or not)
    gflop_per_image: float | None = None  # the generator's forward pass, counted
    peak_gflop_s: dict[str, float] = field(default_factory=dict)  # by precision: one large matmul's rate here
    peak: str = ""  # how the peak was measured
    baseline: str = BASELINE
    peak_memory_bytes: int | None = None
    baseline_peak_memory_bytes: int | None = None
    input_path: str | None = None
    input_img_per_s: float | None = None
    input_bound: bool | None = None
    notes: list[str] = field(default_factory=list)

    def share_of_peak(self, engine: str) -> float | None:
        """The engine's achieved FLOP rate over the device's peak in its precision."""
        peak = self.peak_gflop_s.get(self.precisions.get(engine, ""))
        if not peak or not self.gflop_per_image or engine not in self.engines:
            return None
        return self.engines[engine] * self.gflop_per_image / peak

    @property
    def train_speedup(self) -> float:
        return self.train_img_per_s / self.baseline_train_img_per_s

    @property
    def infer_speedup(self) -> float:
        return self.infer_img_per_s / self.baseline_infer_img_per_s

    def to_dict(self) -> dict:
        shares = {e: float(f"{v:.4g}") for e in self.engines if (v := self.share_of_peak(e)) is not None}
        return dict(self.__dict__, train_speedup=round(self.train_speedup, 3),
                    infer_speedup=round(self.infer_speedup, 3), share_of_peak=shares)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    else:
        try:  # Linux: writing 5 resets the process's peak resident set size (VmHWM)
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass


def _peak(device: torch.device) -> int | None:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def time_training(cfg: RunConfig, device: torch.device, speed: Speed, steps: int) -> tuple[float, int | None]:
    """Images per second of the training step, and peak memory."""
    _reset_peak(device)
    warmup = 6 if speed.compile else 2  # compiling, and capturing CUDA graphs, happen in the first calls
    seconds = measure_step_seconds(cfg, steps=steps, warmup=warmup, speed=speed)
    return cfg.data.batch_size / seconds, _peak(device)


def time_inference(cfg: RunConfig, device: torch.device, engine: str, fast: bool, batch: int,
                   steps: int) -> tuple[float, float | None]:
    """Images per second of the generator in the paper's test mode (dropout on, batch statistics; each image's
    own statistics on ONNX Runtime, whose graph holds them, when the batch is larger than one), and the seconds
    its set-up took (the compiled engine's first call, ONNX Runtime's export) where it has one."""
    translator = Translator(init_weights(build_generator(cfg.generator)), cfg.generator, device=str(device),
                            fast=fast, engine=engine)
    if engine == "onnxruntime":
        translator.normalise_per_image()
    size = cfg.data.crop_size
    x = (torch.rand(batch, cfg.generator.in_channels, size, size) * 2 - 1).to(device)
    setup = None
    if engine in ("compiled", "onnxruntime"):
        start = time.perf_counter()
        translator.translate_tensor(x) if engine == "compiled" else translator.session()
        setup = time.perf_counter() - start
        if translator.engine != engine:
            raise Pix2PixError(f"the {engine} engine could not run this generator here")
    for _ in range(3):
        translator.translate_tensor(x)
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        translator.translate_tensor(x)
    synchronize(device)
    return batch * steps / (time.perf_counter() - start), setup


PEAK_SIDE = {"cpu": 4096, "cuda": 8192}


def device_peak(device: torch.device, precision: str) -> float:
    """GFLOP/s of one large square matmul in ``precision`` on ``device`` (all its threads), best of three: the
    peak this device reaches in practice, which the engines' rates are a share of."""
    n = PEAK_SIDE.get(device.type, 2048)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    a, b = torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device)
    a @ b
    best = float("inf")
    for _ in range(3):
        synchronize(device)
        start = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best / 1e9


def time_input(cfg: RunConfig, device: torch.device, data: Path, batches: int) -> tuple[str, float]:
    """The trainer's input path on ``data`` (preloaded on the device, or loader processes): images per s."""
    pairs, _ = scan_split(data, "train")
    g, d = cfg.generator, cfg.data
    sampler = EpochSampler(len(pairs), 0)
    if cfg.data.preload != "no":
        source = PreloadedPairs(pairs, d, g.in_channels, g.out_channels, 0, device)
        kind, make = "preloaded on the device", lambda: source.batches(sampler, d.batch_size)
    else:
        loader = make_loader(PairDataset(pairs, d, g.in_channels, g.out_channels, train=True), d.batch_size,
                             d.workers, sampler, pin_memory=device.type == "cuda")
        kind, make = f"{d.workers} loader processes", lambda: iter(loader)
    images, epoch, start = 0, 0, None
    while images < batches * d.batch_size + d.batch_size:
        sampler.set_epoch(epoch)
        for batch in make():
            if start is None:  # the first batch pays for starting workers
                start = time.perf_counter()
                continue
            batch["A"].to(device, non_blocking=True)
            batch["B"].to(device, non_blocking=True)
            images += batch["A"].shape[0]
            if images >= batches * d.batch_size:
                break
        epoch += 1
    synchronize(device)
    return kind, images / (time.perf_counter() - start)


def run_bench(cfg: RunConfig, steps: int = 10, infer_batch: int | None = None, data: Path | None = None,
              baseline: bool = True) -> BenchResult:
    device = resolve_device(cfg.train.device)
    cfg.train.device = str(device)
    infer_batch = infer_batch or cfg.data.batch_size
    speed = fast_path(device)
    infer_speed = inference_path(device)
    g, d = cfg.generator, cfg.discriminator
    label = f"{g.arch} (ngf {g.ngf}) + {d.arch} (ndf {d.ndf}), {cfg.data.crop_size}x{cfg.data.crop_size}, " \
            f"batch {cfg.data.batch_size}, {cfg.train.objective}"
    engines: dict[str, float] = {}
    compile_seconds = None
    candidates = ["torch"]
    if device.type == "cpu":
        candidates += ["compiled"] if engine_choice.compiler_available() and cpu_has_bf16() else []
        candidates += ["onnxruntime"] if onnxruntime_available() else []
    try:
        fast_train, fast_peak = time_training(cfg, device, speed, steps)
        plain_train, plain_peak = time_training(cfg, device, PLAIN, steps) if baseline \
            else (float("nan"), None)
        for engine in candidates:
            try:
                engines[engine], setup = time_inference(cfg, device, engine, True, infer_batch, steps)
            except Pix2PixError:  # said by the engine in one line (the compiled one could not compile)
                continue
            compile_seconds = setup if engine == "compiled" else compile_seconds
        plain_infer = time_inference(cfg, device, "torch", False, infer_batch, steps)[0] if baseline \
            else float("nan")
    except torch.OutOfMemoryError:
        raise Pix2PixError(f"batch {max(cfg.data.batch_size, infer_batch)} at {cfg.data.crop_size}x"
                           f"{cfg.data.crop_size} does not fit in {device} memory; lower --batch-size, "
                           "--infer-batch-size or --size") from None
    chosen = engine_choice.engine_for(device)
    chosen = chosen if chosen in engines else "torch"
    bf16 = cpu_has_bf16() if device.type == "cpu" else None
    precisions = {"torch": infer_speed.amp or "fp32", "onnxruntime": "fp32",
                  "compiled": "bf16" if bf16 else "fp32"}
    precisions = {e: precisions[e] for e in engines}
    names = {"torch": f"torch {infer_speed.name}", "compiled": f"compiled {precisions.get('compiled')}",
             "onnxruntime": "onnxruntime fp32"}
    result = BenchResult(str(device) if device.type != "cuda" else torch.cuda.get_device_name(device), label,
                         f"train: {speed.name}; inference: {names[chosen]}", fast_train, plain_train,
                         engines[chosen], plain_infer, infer_batch, chosen, engines, precisions, compile_seconds,
                         peak_memory_bytes=fast_peak, baseline_peak_memory_bytes=plain_peak)
    result.gflop_per_image = engine_choice.gflop_per_pixel(cfg.generator) * cfg.data.crop_size ** 2
    for precision in sorted(set(precisions.values()) | {"fp32"}):
        result.peak_gflop_s[precision] = device_peak(device, precision)
    n = PEAK_SIDE.get(device.type, 2048)
    result.peak = (f"one {n}x{n} matmul in the engine's precision on this {device.type} ({torch.get_num_threads()} "
                   "threads)" if device.type == "cpu" else f"one {n}x{n} matmul in the engine's precision") + \
        ", best of three; the generator's FLOPs from torch's FLOP counter"
    if device.type == "cpu":
        result.notes.append(f"{torch.get_num_threads()} CPU threads")
    with tempfile.TemporaryDirectory() as tmp:
        if data is None:
            from .datasets.facades_synth import make_facades_synth

            size = max(cfg.data.load_size, cfg.data.crop_size)
            data = make_facades_synth(Path(tmp) / "facades-synth", train=32, val=0, test=0,
                                      size=1 << (size - 1).bit_length(), seed=0, progress=False)
        kind, rate = time_input(cfg, device, Path(data), batches=max(steps, 16))
    result.input_path, result.input_img_per_s = kind, rate
    result.input_bound = rate < fast_train
    return result


def format_result(r: BenchResult) -> str:
    def mem(b):
        return "n/a" if b is None else f"{b / 2**30:.2f} GiB"

    def row(name: str, fast: float, base: float) -> str:
        return f"{name:38}{fast:12.1f}{base:12.1f}{fast / base:7.2f}x"

    lines = [f"pix2pix bench on {r.device}: {r.config}" + (f" ({'; '.join(r.notes)})" if r.notes else ""),
             f"fast path: {r.fast_path}",
             f"baseline: {r.baseline}",
             f"{'':38}{'fast path':>12}{'baseline':>12}{'ratio':>8}",
             row("train, images/s", r.train_img_per_s, r.baseline_train_img_per_s)]
    for engine, rate in r.engines.items():
        chosen = " *" if engine == r.infer_engine else ""
        share = r.share_of_peak(engine)
        lines.append(row(f"inference {engine} {r.precisions.get(engine, '')} (batch {r.infer_batch_size}){chosen}",
                         rate, r.baseline_infer_img_per_s) +
                     (f"  {share:.0%} of peak" if share is not None else ""))
    lines.append(f"{'peak memory (training)':38}{mem(r.peak_memory_bytes):>12}{mem(r.baseline_peak_memory_bytes):>12}")
    lines.append("* the engine test, eval, translate and serve use here for long work (a few images: torch)")
    if r.infer_batch_size > 1 and "onnxruntime" in r.engines:
        lines.append("  (ONNX Runtime at a batch above 1 normalises each image by its own statistics, as the server "
                     "does; the others use the batch's)")
    if r.compile_seconds is not None:
        lines.append(f"the compiled engine's first call took {r.compile_seconds:.1f} s here (compiling, or loading "
                     "from inductor's cache)")
    if r.gflop_per_image:
        peaks = ", ".join(f"{p} {v:,.0f} GFLOP/s" for p, v in r.peak_gflop_s.items())
        lines.append(f"the generator: {r.gflop_per_image:.1f} GFLOP an image; peak: {peaks} ({r.peak})")
    if r.input_img_per_s is not None:
        verdict = "the step would wait for it (input-bound)" if r.input_bound else "keeps up with the step"
        lines.append(f"input path ({r.input_path}): {r.input_img_per_s:.1f} images/s, {verdict}")
    return "\n".join(lines)
