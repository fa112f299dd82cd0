"""Inference engines (pix2pix.inference.engines): which one runs where, the accuracy contract on every engine
present (fp32 engines within 1 level of --no-fast, bf16 ones at 40 dB or more against fp32 in eval mode), the
paper's test mode on each, compiling only where it pays, and batching that changes no answer."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import pix2pix.inference.engines as engines
from conftest import train_tiny as _train
from pix2pix.cli import main
from pix2pix.config import GeneratorConfig
from pix2pix.data.labels import FACADES
from pix2pix.datasets.facades_synth import make_layout
from pix2pix.inference.engines import COMPILE_PAYS_FROM, ONNX_PAYS_FROM, engine_for, engine_for_run
from pix2pix.inference.translate import Translator
from pix2pix.networks import build_generator, init_weights
from pix2pix.speed import cpu_has_bf16

CPU = torch.device("cpu")
IMAGE = 256 * 256


UNET_256 = 12.1  # GFLOP a 256x256 image


@pytest.mark.parametrize("bf16, compiler, fast, gflop, engine", [
    (True, True, True, None, "compiled"),  # a server: compiled, in the background
    (True, True, True, COMPILE_PAYS_FROM, "compiled"),  # work that repays the compile
    (True, True, True, 10 * UNET_256, "torch"),  # ten images do not
    (True, False, True, None, "torch"),  # no C++ compiler: PyTorch's bf16 fast path
    (False, True, True, None, "onnxruntime"),  # AVX2 only: ONNX Runtime fp32 was the fastest measured
    (False, True, True, ONNX_PAYS_FROM - 1, "torch"),  # less work than its export costs
    (True, True, False, None, "torch"), (False, True, False, None, "torch"),  # --no-fast: fp32 bit for bit
])
def test_the_engine_is_the_fastest_measured_that_repays_its_set_up(monkeypatch, bf16, compiler, fast, gflop,
                                                                   engine):
    monkeypatch.setattr(engines, "cpu_has_bf16", lambda: bf16)
    monkeypatch.setattr(engines, "compiler_available", lambda: compiler)
    assert engine_for(CPU, fast, gflop) == engine
    assert engine_for(torch.device("cuda"), fast, gflop) == "torch"  # a GPU: PyTorch's fast path


def test_the_work_is_counted_in_the_generators_flops():
    """A thousand unet_256 images repay a compile; a narrow model's as many pixels do not, and a few images are
    not even counted."""
    paper = GeneratorConfig(arch="unet_256")
    assert engines.work_gflop(paper, IMAGE * 1000) == pytest.approx(1000 * UNET_256, rel=0.01)
    assert engines.work_gflop(paper, IMAGE * 1000) >= COMPILE_PAYS_FROM
    assert engines.work_gflop(GeneratorConfig(arch="unet_256", ngf=8), IMAGE * 1000) < COMPILE_PAYS_FROM / 50
    assert engines.work_gflop(paper, IMAGE) == 0 and engines.work_gflop(paper, None) is None


def test_a_seed_in_the_papers_mode_keeps_pytorch_and_says_so_where_another_engine_would_run(monkeypatch, caplog):
    monkeypatch.setattr(engines, "cpu_has_bf16", lambda: False)
    caplog.set_level(logging.INFO, "pix2pix")
    assert engine_for_run(CPU, eval=False, seed=None, fast=True, gflop=None) == "auto"
    assert engine_for_run(CPU, eval=True, seed=3, fast=True, gflop=None) == "auto"  # eval mode: no noise to match
    assert caplog.text == ""
    assert engine_for_run(CPU, eval=False, seed=3, fast=True, gflop=None) == "torch"
    assert "--seed 3 asks for PyTorch's exact dropout noise, so PyTorch runs (ONNX Runtime" in caplog.text
    caplog.clear()
    assert engine_for_run(CPU, eval=False, seed=3, fast=True, gflop=UNET_256) == "torch"  # PyTorch anyway: no note
    assert caplog.text == ""


# ------------------------------------------------------------------------------------- the contract


def facade_labels(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """(n, 3, size, size) procedural facade label maps in [-1, 1]: the inputs of a facades model."""
    rng = np.random.default_rng(seed)
    maps = [FACADES.colours(make_layout(rng, size).classes) for _ in range(n)]
    return torch.from_numpy(np.stack(maps)).permute(0, 3, 1, 2).float() / 127.5 - 1


def lively_generator(arch: str = "unet_64", ngf: int = 16) -> tuple[torch.nn.Module, GeneratorConfig]:
    """A generator whose outputs span the range as a trained one's do (He-initialised: the paper's N(0, 0.02)
    gives outputs near 0, where no rounding shows)."""
    torch.manual_seed(0)
    cfg = GeneratorConfig(arch=arch, ngf=ngf)
    return init_weights(build_generator(cfg), "kaiming"), cfg


def levels(y: torch.Tensor) -> np.ndarray:
    """Outputs in [-1, 1] as the 8-bit levels an image file gets."""
    return np.round((y.clamp(-1, 1).numpy() + 1) * 127.5)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((levels(a) - levels(b)) ** 2).mean())
    return 10 * np.log10(255 ** 2 / max(mse, 1e-12))


def engines_present() -> list[tuple[str, str]]:
    """(engine, precision) of each engine this machine runs: fp32 ones everywhere, bf16 ones where the CPU
    computes bf16 (elsewhere they would be emulated, and the fast path does not use them)."""
    present = [("onnxruntime", "fp32")]
    if cpu_has_bf16():
        present.append(("torch", "bf16"))
        if engines.compiler_available():
            present.append(("compiled", "bf16"))
    return present


def run_engine(G, cfg, engine: str, precision: str, x: torch.Tensor, eval: bool = True) -> torch.Tensor:
    return Translator(G, cfg, eval=eval, device="cpu", engine=engine, fast=precision == "bf16").translate_tensor(x)


@pytest.mark.compiles
@pytest.mark.parametrize("engine, precision", engines_present())
def test_each_engine_keeps_the_accuracy_contract_against_fp32(engine, precision):
    """fp32 engines within 1 level (of 255) of --no-fast; bf16 engines at 40 dB PSNR or more, in eval mode, on
    facade label maps."""
    G, cfg = lively_generator()
    x = facade_labels(3, 64)
    exact = Translator(G, cfg, eval=True, device="cpu", fast=False).translate_tensor(x)
    assert float(exact.std()) > 0.3  # outputs over the range, where rounding would show
    y = run_engine(G, cfg, engine, precision, x)
    assert y.shape == exact.shape and y.dtype == torch.float32
    if precision == "fp32":
        assert np.abs(levels(y) - levels(exact)).max() <= 1
    else:
        assert psnr(y, exact) >= 40


def test_the_compiled_engine_is_refused_in_one_line_where_the_cpu_has_no_bf16(monkeypatch, tmp_path, blocks, tiny,
                                                                             capsys):
    from conftest import one_line_error

    import pix2pix.inference.translate as inference

    monkeypatch.setattr(inference, "cpu_has_bf16", lambda: False)
    run = _train(tmp_path, blocks, tiny, "--max-steps", "1")
    args = ["translate", "--checkpoint", str(run), "--input", str(blocks / "val" / "1.png"), "--output",
            str(tmp_path / "o")]
    one_line_error(capsys, main([*args, "--engine", "compiled"]), "AVX512-BF16 or AMX, and this one has neither")
    one_line_error(capsys, main([*args, "--engine", "compiled", "--no-fast"]), "--no-fast is PyTorch fp32")


def test_no_fast_is_the_reference_arithmetic_bit_for_bit():
    G, cfg = lively_generator()
    x = facade_labels(2, 64)
    with torch.no_grad():
        G.eval()
        reference = G(x)
    assert torch.equal(Translator(G, cfg, eval=True, device="cpu", fast=False).translate_tensor(x), reference)


@pytest.mark.compiles
def test_the_compiled_engine_runs_the_papers_mode_repeatably_and_compiles_each_size_once(caplog):
    G, cfg = lively_generator("unet_32", 8)
    translator = Translator(G, cfg, eval=False, device="cpu", engine="compiled")
    translator.normalise_per_image()
    caplog.set_level(logging.INFO, "pix2pix")
    x = facade_labels(4, 32)
    torch.manual_seed(1)
    first = translator.translate_tensor(x)
    assert caplog.text.count("compiling the generator for 4x3x32x32 inputs") == 1 and "compiled in" in caplog.text
    assert not torch.equal(first, translator.translate_tensor(x))  # dropout: its own noise on each call
    torch.manual_seed(1)
    assert torch.equal(translator.translate_tensor(x), first)  # the same seed, the same noise
    # A shorter batch of the same size runs inside the compiled one (each image its own statistics): no compile.
    caplog.clear()
    short = translator.translate_tensor(x[:3])
    assert short.shape == (3, 3, 32, 32) and "compiling" not in caplog.text
    assert translator.engine_of(4, seed=None) == "compiled" and translator.engine_of(4, seed=5) == "torch"
    # A seed asks for PyTorch's exact noise: the seeded call equals the eager paper's mode.
    eager = Translator(G, cfg, eval=False, device="cpu", fast=False).normalise_per_image()
    assert torch.equal(translator.translate_tensor(x[:1], seed=5), eager.translate_tensor(x[:1], seed=5))


@pytest.mark.compiles
def test_a_compile_that_fails_is_one_line_and_pytorch_runs(monkeypatch, caplog):
    def broken(*args, **kwargs):
        def fn(x):
            raise RuntimeError("InductorError: CppCompileError: C++ compile error\nmany more lines")
        return fn

    monkeypatch.setattr(torch, "compile", broken)
    G, cfg = lively_generator("unet_32", 8)
    translator = Translator(G, cfg, eval=True, device="cpu", engine="compiled")
    caplog.set_level(logging.INFO, "pix2pix")
    y = translator.translate_tensor(facade_labels(1, 32))
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == ["the compiled engine could not compile this generator (InductorError: CppCompileError: "
                        "C++ compile error); PyTorch runs it"]
    assert translator.engine == "torch" and y.shape == (1, 3, 32, 32)
    assert translator.dtype == torch.bfloat16 and next(G.parameters()).dtype == torch.float32  # its fast path
    exact = Translator(G, cfg, eval=True, device="cpu", engine="torch").translate_tensor(facade_labels(1, 32))
    assert torch.equal(translator.translate_tensor(facade_labels(1, 32)), exact)


@pytest.mark.compiles
def test_a_server_compiles_in_the_background_while_pytorch_answers():
    from pix2pix.inference.backends import CheckpointBackend

    G, cfg = lively_generator("unet_32", 8)
    x = facade_labels(2, 32).numpy()
    exact = Translator(G, cfg, eval=True, device="cpu", fast=False).translate_tensor(torch.from_numpy(x))
    backend = CheckpointBackend(G, cfg, device="cpu")
    assert backend.name == "compiled"
    start = time.perf_counter()
    first = backend(x, eval=True, seed=None)  # answered at once, eagerly, while the size compiles
    assert time.perf_counter() - start < 5 and backend.ran(True) == "torch"
    compiled = backend.modes[True].compiled
    deadline = time.perf_counter() + 300
    while compiled.pending and time.perf_counter() < deadline:
        time.sleep(0.2)
    assert compiled.shapes == {(2, 3, 32, 32)}
    again = backend(x, eval=True, seed=None)
    assert backend.ran(True) == "compiled"  # what the server's X-Engine header says
    for y in (first, again):
        assert psnr(torch.from_numpy(y), exact) >= 40


# ------------------------------------------------------------------------------------------ batching


def test_batches_are_counted_at_the_size_the_generator_pads_to():
    """unet_256 pads a 32x32 input to 256x256: eight of those at most (four on the compiled engine), one
    1024x1024 at a time, never hundreds of small files at once."""
    cfg = GeneratorConfig(arch="unet_256", ngf=4)
    eager = Translator(build_generator(cfg), cfg, eval=True, device="cpu", engine="torch")
    assert eager.batch_for(32, 32) == 8 and eager.batch_for(256, 256) == 8 and eager.batch_for(1024, 1024) == 1
    if cpu_has_bf16():
        compiled = Translator(build_generator(cfg), cfg, eval=True, device="cpu", engine="compiled")
        assert compiled.batch_for(32, 32) == 4 and compiled.batch_for(512, 512) == 1


def test_a_seed_in_the_papers_mode_goes_with_pytorch_or_is_one_line(tmp_path, blocks, tiny, capsys):
    from conftest import one_line_error

    run = _train(tmp_path, blocks, tiny, "--max-steps", "1")
    one_line_error(capsys, main(["test", "--run", str(run), "--split", "val", "--engine", "onnxruntime", "--seed",
                                 "3"]), "--seed asks for PyTorch's exact dropout noise in the paper's mode")
    assert main(["test", "--run", str(run), "--split", "val", "--engine", "onnxruntime", "--seed", "3",
                 "--eval"]) == 0  # eval mode has no noise: the seed changes nothing


def test_translating_many_files_batches_them_without_changing_an_answer(tmp_path, blocks, tiny, monkeypatch):
    """Files of one size go through the engine together, each image normalised by its own statistics in the
    paper's mode: in eval mode the outputs are those of one file at a time."""
    run = _train(tmp_path, blocks, tiny, "--max-steps", "2")
    rng = np.random.default_rng(0)
    src = tmp_path / "in"
    src.mkdir()
    for i in range(5):
        Image.fromarray(rng.integers(0, 255, (32, 48 if i == 3 else 32, 3), dtype=np.uint8)).save(src / f"{i}.png")
    batches = []
    original = Translator.translate_tensor

    def spy(self, x, seed=None):
        batches.append(x.shape[0])
        return original(self, x, seed)

    monkeypatch.setattr(Translator, "translate_tensor", spy)
    assert main(["translate", "--checkpoint", str(run), "--input", str(src), "--output", str(tmp_path / "all"),
                 "--eval", "--no-fast"]) == 0
    assert batches == [3, 1, 1]  # 0, 1, 2 together; 3 is wider; 4 alone after it
    for i in range(5):
        batches.clear()
        assert main(["translate", "--checkpoint", str(run), "--input", str(src / f"{i}.png"), "--output",
                     str(tmp_path / f"one{i}"), "--eval", "--no-fast"]) == 0
        together = np.asarray(Image.open(tmp_path / "all" / f"{i}.png"), np.int16)
        alone = np.asarray(Image.open(tmp_path / f"one{i}" / f"{i}.png"), np.int16)
        assert np.abs(together - alone).max() <= 1


def test_test_translates_a_split_in_batches_with_the_same_answers(tmp_path, blocks, tiny, monkeypatch):
    import pix2pix.inference.translate as inference

    run = _train(tmp_path, blocks, tiny, "--max-steps", "2")

    def outputs():
        assert main(["test", "--run", str(run), "--split", "val", "--eval", "--no-fast"]) == 0
        return {p.name: np.asarray(Image.open(p), np.int16)
                for p in (Path(run) / "results" / "val" / "images").glob("*_output.png")}

    batched = outputs()
    monkeypatch.setattr(inference, "equal_batches", lambda items, pixels: ([item] for item in items))
    alone = outputs()
    assert batched.keys() == alone.keys() and len(batched) > 1
    assert all(np.abs(batched[k] - alone[k]).max() <= 1 for k in batched)
