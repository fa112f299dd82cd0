"""Inference: test mode (paper, eval, per-image statistics, the exported graph's), any image size, the
Python API and the commands that translate. Importing it loads nothing of training, torchrun or the app."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import make_pair
from conftest import train_tiny as _train
from pix2pix.cli import main
from pix2pix.config import GeneratorConfig
from pix2pix.data import to_tensor
from pix2pix.inference import Translator, exportable, per_image, set_test_mode
from pix2pix.networks import build_generator, init_weights


def _pair():
    label, photo = make_pair(np.random.default_rng(0), 32)
    return to_tensor(Image.fromarray(label))[None], to_tensor(Image.fromarray(photo))[None]


def test_test_command_writes_results_page(tmp_path, blocks, tiny):
    run = _train(tmp_path, blocks, tiny, "--max-steps", "2")
    assert main(["test", "--run", str(run), "--split", "val", "--eval"]) == 0
    results = run / "results" / "val"
    assert sorted(p.name for p in (results / "images").iterdir()) == [
        f"{i}_{kind}.png" for i in (1, 2) for kind in ("input", "output", "target")]
    assert "1_output.png" in (results / "index.html").read_text()


@pytest.mark.parametrize("size", [(300, 200), (256, 384), (37, 53)])
def test_translate_any_size(tmp_path, blocks, tiny, size):
    run = _train(tmp_path, blocks, tiny, "--max-steps", "1")
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), np.uint8)).save(src / "x.jpg")
    assert main(["translate", "--checkpoint", str(run), "--input", str(src), "--output", str(tmp_path / "out")]) == 0
    assert Image.open(tmp_path / "out" / "x.png").size == size


def test_translate_modes_eval_is_deterministic_paper_mode_follows_the_seed(tmp_path, blocks, tiny):
    run = _train(tmp_path, blocks, tiny, "--max-steps", "3")
    img = blocks / "val" / "1.png"

    def out(*flags):
        dest = tmp_path / "o"
        assert main(["translate", "--checkpoint", str(run), "--input", str(img), "--output", str(dest),
                     "--direction", "BtoA", *flags]) == 0
        return np.asarray(Image.open(dest / "1.png"))

    assert out("--eval").shape == (32, 32, 3)  # the B half of a 64x32 A|B pair
    assert np.array_equal(out("--eval"), out("--eval"))
    assert np.array_equal(out("--seed", "1"), out("--seed", "1"))
    assert not np.array_equal(out("--seed", "1"), out("--seed", "2"))


def test_python_api_in_three_lines(tmp_path, blocks, tiny):
    run = _train(tmp_path, blocks, tiny, "--max-steps", "1")
    translator = Translator.load(run, eval=True)
    pil = translator(Image.open(blocks / "val" / "1.png").crop((32, 0, 64, 32)))
    assert isinstance(pil, Image.Image) and pil.size == (32, 32)
    arr = translator(np.zeros((40, 24, 3), np.uint8))
    assert isinstance(arr, np.ndarray) and arr.shape == (40, 24, 3)
    t = translator(torch.zeros(2, 3, 20, 30))
    assert t.shape == (2, 3, 20, 30) and float(t.abs().max()) <= 1


def test_fast_inference_is_within_a_few_levels_of_fp32():
    torch.manual_seed(0)
    cfg = GeneratorConfig(arch="unet_64", ngf=8)
    G = init_weights(build_generator(cfg))
    x = _pair()[0].repeat(1, 1, 2, 2)
    exact = Translator(G, cfg, eval=True, device="cpu", fast=False).translate_tensor(x)
    fast = Translator(G, cfg, eval=True, device="cpu", fast=True)
    out = fast.translate_tensor(x)
    assert out.dtype == torch.float32 and out.shape == exact.shape
    diff = (out - exact).abs()
    assert float(diff.max()) <= 4 / 127.5  # at most 4 of 255 levels
    if fast.speed.amp:
        assert float(diff.max()) > 0  # it did run in bf16 (on CPUs with bf16 in hardware)


@pytest.mark.slow
def test_importing_inference_loads_no_training_torchrun_or_app_module():
    code = ("import sys, pix2pix.inference; from pix2pix import Translator; "
            "print(sorted(m for m in sys.modules if m.startswith('pix2pix')))")
    loaded = eval(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert not [m for m in loaded if m.split(".")[1:2] in (["training"], ["distributed"], ["app"], ["cli"], ["bench"])], loaded
    assert "pix2pix.inference" in loaded


def test_per_image_statistics_equal_batch_norm_on_each_image_alone():
    torch.manual_seed(0)
    G = init_weights(build_generator(GeneratorConfig(arch="unet_32", ngf=4, dropout=0.0)))
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        alone = torch.cat([set_test_mode(G, eval=False)(x[i:i + 1]) for i in range(3)])
        together = per_image(set_test_mode(G, eval=False))(x)
    assert torch.allclose(alone, together, atol=1e-5)


@pytest.mark.parametrize("arch, multiple, minimum", [("unet_32", 32, 1), ("resnet_2blocks", 4, 8)])
def test_the_generator_states_its_padding_rule_and_the_graph_leaves_it_out(arch, multiple, minimum):
    G = init_weights(build_generator(GeneratorConfig(arch=arch, ngf=4, dropout=0.0)))
    assert (G.pad_multiple, G.pad_minimum) == (multiple, minimum)
    x = torch.rand(1, 3, 64, 32) * 2 - 1  # a multiple of both rules
    with torch.no_grad():
        assert torch.allclose(exportable(G, eval=True)(x), set_test_mode(G, eval=True)(x), atol=1e-6)
        assert exportable(G, eval=True)(x).shape == (1, 3, 64, 32)
