"""The fast path and ``pix2pix bench``: what they change, what they must not, and their bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import make_pair, one_line_error
from pix2pix.cli import main
from pix2pix.config import DiscriminatorConfig, GeneratorConfig, TrainConfig
from pix2pix.data.rasters import to_tensor
from pix2pix.inference.translate import Translator
from pix2pix.networks import build_discriminator, build_generator, init_weights
from pix2pix.speed import PLAIN, Precision, Speed, adam, fast_path, inference_path
from pix2pix.training.step import Networks, train_step

CPU = torch.device("cpu")


def test_disabled_fast_path_is_the_plain_fp32_eager_step():
    assert fast_path(CPU, enabled=False) == PLAIN
    assert inference_path(CPU, enabled=False) == PLAIN
    assert PLAIN.name == "fp32 eager"
    cpu = fast_path(CPU)
    assert cpu.fused_adam and not cpu.compile and not cpu.channels_last  # as measured on the CPU (README)


def _pair():
    label, photo = make_pair(np.random.default_rng(0), 32)
    return to_tensor(Image.fromarray(label))[None], to_tensor(Image.fromarray(photo))[None]


@pytest.mark.slow
@pytest.mark.parametrize("speed", [PLAIN, Speed(amp="bf16", fused_adam=True)], ids=["plain", "bf16+fused"])
def test_both_paths_learn_with_fp32_weights(speed):
    """The fast path changes the arithmetic, not the model: parameters and optimiser state stay fp32, and
    overfitting one pair lowers L1 as much as on the plain path."""
    torch.manual_seed(0)
    G = init_weights(build_generator(GeneratorConfig(arch="unet_32", ngf=8)))
    D = init_weights(build_discriminator(DiscriminatorConfig(arch="patch16", in_channels=6, ndf=8)))
    opt_G, opt_D = adam(G.parameters(), TrainConfig(), speed), adam(D.parameters(), TrainConfig(), speed)
    A, B = _pair()
    amp = Precision(CPU, speed)
    first = None
    for _ in range(120):
        losses, fake = train_step(A, B, Networks(G, D, opt_G, opt_D), TrainConfig().loss, amp=amp)
        first = first if first is not None else float(losses["G_l1"])
    assert all(torch.isfinite(v) for v in losses.values())
    assert float(losses["G_l1"]) < 0.5 * first
    assert all(p.dtype == torch.float32 for p in [*G.parameters(), *D.parameters()])
    assert fake.shape == B.shape


BENCH = ["bench", "--device", "cpu", "--size", "32", "--ngf", "4", "--steps", "2", "--discriminator", "patch16"]


def test_bench_prints_both_paths_their_ratio_and_the_input_path(capsys):
    assert main(BENCH + ["--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    for key in ("train_img_per_s", "baseline_train_img_per_s", "infer_img_per_s", "baseline_infer_img_per_s"):
        assert r[key] > 0, key
    assert r["device"] == "cpu" and r["infer_batch_size"] == 1
    assert r["train_speedup"] == pytest.approx(r["train_img_per_s"] / r["baseline_train_img_per_s"], rel=1e-2)
    assert r["input_path"] == "preloaded on the device" and r["input_img_per_s"] > 0
    assert isinstance(r["input_bound"], bool)
    # Each engine side by side with the baseline, whose definition is stated with its numbers, with its share
    # of the device's peak (the generator's FLOPs times images/s over one large matmul's rate, stated).
    assert r["engines"]["torch"] > 0 and r["engines"]["onnxruntime"] > 0
    assert r["infer_img_per_s"] == r["engines"][r["infer_engine"]]
    assert r["precisions"]["onnxruntime"] == "fp32" and r["peak_gflop_s"]["fp32"] > 1
    assert 0 < r["gflop_per_image"] < 1  # unet_32 with 4 filters at 32x32
    for engine, share in r["share_of_peak"].items():
        expected = r["engines"][engine] * r["gflop_per_image"] / r["peak_gflop_s"][r["precisions"][engine]]
        assert share == pytest.approx(expected, rel=1e-2) and 0 < share < 1
    assert "matmul in the engine's precision" in r["peak"]
    assert "torch's default Adam (no foreach/fused argument)" in r["baseline"]
    assert main(BENCH + ["--preload", "no", "--workers", "0"]) == 0
    text = capsys.readouterr().out
    assert "baseline: the reference's step: fp32 eager" in text and "ratio" in text and "0 loader processes" in text
    assert "inference onnxruntime fp32" in text and "inference torch" in text and "of peak" in text
    assert "GFLOP an image; peak:" in text


def test_bench_bad_input_is_one_line(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    one_line_error(capsys, main(BENCH[:1] + ["--device", "cuda"]), "no CUDA device is available")
    one_line_error(capsys, main(BENCH + ["--generator", "unet_7"]), "power of two")

    import pix2pix.bench as bench

    def too_big(*args, **kwargs):
        raise torch.OutOfMemoryError("out of memory")

    monkeypatch.setattr(bench, "time_training", too_big)
    one_line_error(capsys, main(BENCH + ["--batch-size", "512"]), "batch 512 at 32x32 does not fit in cpu memory")


@pytest.mark.gpu
def test_the_cuda_fast_path_trains_resumes_and_translates(tmp_path, blocks, tiny):
    """On a CUDA machine: the fast path's training step, a resume, and inference run and stay finite."""
    from conftest import train_tiny
    from pix2pix.checkpoints import load_checkpoint

    run = train_tiny(tmp_path, blocks, tiny, "--device", "cuda", "--max-steps", "3")
    assert main(["train", "--resume", str(run), "--max-steps", "5", "--no-progress", "--device", "cuda"]) == 0
    ckpt = load_checkpoint(run)
    assert ckpt.meta["step"] == 5 and all(torch.isfinite(t).all() for t in ckpt.generator_state.values()
                                          if t.is_floating_point())
    translator = Translator.load(run, eval=True, device="cuda")
    y = translator.translate_tensor(torch.rand(2, 3, 40, 56) * 2 - 1)
    assert y.shape == (2, 3, 40, 56) and y.device.type == "cuda" and bool(torch.isfinite(y).all())


@pytest.mark.parametrize("capability, train, infer", [
    ((9, 0), "bf16", "bf16"), ((8, 0), "bf16", "bf16"), ((8, 6), "bf16", "bf16"),
    ((7, 5), "fp16", "fp16"), ((7, 0), "fp16", "fp16"), ((6, 1), None, None),
], ids=["H100", "A100", "RTX30xx", "T4", "V100", "GTX10xx"])
def test_cuda_amp_by_compute_capability(monkeypatch, capability, train, infer):
    """bf16 only where the GPU computes it natively: torch.cuda.is_bf16_supported() is true under emulation too
    (T4, V100), so the policy reads the compute capability, never that."""
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    cuda = torch.device("cuda")
    assert fast_path(cuda).amp == train and inference_path(cuda).amp == infer
    assert fast_path(cuda).fused_adam and fast_path(cuda, enabled=False) == PLAIN


def test_the_baseline_adam_is_torchs_default():
    """No kernel argument, as the reference builds it (on CUDA that is the multi-tensor kernel)."""
    params = [torch.nn.Parameter(torch.zeros(2))]
    plain = adam(params, TrainConfig(), PLAIN).param_groups[0]
    default = torch.optim.Adam(params).param_groups[0]
    assert (plain["foreach"], plain["fused"]) == (default["foreach"], default["fused"])
    assert adam(params, TrainConfig(), fast_path(CPU)).param_groups[0]["fused"] is True
