"""Inference: test mode (paper, eval, per-image statistics, the exported graph's), any image size, the
Python API and the commands that translate. Importing it loads nothing of training, torchrun or the app."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import make_pair, one_line_error
from conftest import train_tiny as _train
from pix2pix.cli import main
from pix2pix.config import GeneratorConfig
from pix2pix.data.rasters import to_tensor
from pix2pix.inference.translate import Translator, exportable, per_image, set_test_mode
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
    fast = Translator(G, cfg, eval=True, device="cpu", fast=True, engine="torch")  # PyTorch's fast path
    out = fast.translate_tensor(x)
    assert out.dtype == torch.float32 and out.shape == exact.shape
    diff = (out - exact).abs()
    assert float(diff.max()) <= 4 / 127.5  # at most 4 of 255 levels
    if fast.speed.amp:
        assert float(diff.max()) > 0  # it did run in bf16 (on CPUs with bf16 in hardware)


@pytest.mark.slow
def test_importing_inference_loads_no_training_torchrun_or_app_module():
    code = ("import sys, pix2pix.inference.translate; from pix2pix import Translator; "
            "print(sorted(m for m in sys.modules if m.startswith('pix2pix')))")
    loaded = eval(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert not [m for m in loaded if m.split(".")[1:2] in (["training"], ["distributed"], ["app"], ["cli"], ["bench"])], loaded
    assert "pix2pix.inference.translate" in loaded


def test_per_image_statistics_equal_batch_norm_on_each_image_alone():
    torch.manual_seed(0)
    G = init_weights(build_generator(GeneratorConfig(arch="unet_32", ngf=4, dropout=0.0)))
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        alone = torch.cat([set_test_mode(G, eval=False)(x[i:i + 1]) for i in range(3)])
        together = per_image(set_test_mode(G, eval=False))(x)
    assert torch.allclose(alone, together, atol=1e-5)


@pytest.mark.parametrize("arch, multiple, minimum", [("unet_32", 32, 1), ("resnet_2blocks", 4, 8)])
def test_the_generator_states_its_padding_rule_and_the_graph_holds_it(arch, multiple, minimum):
    G = init_weights(build_generator(GeneratorConfig(arch=arch, ngf=4, dropout=0.0)))
    assert (G.pad_multiple, G.pad_minimum) == (multiple, minimum)
    for h, w in ((64, 32), (45, 7), (3, 70)):  # a multiple of both rules; not one; narrower than the padding
        x = torch.rand(1, 3, h, w) * 2 - 1
        with torch.no_grad():
            assert torch.allclose(exportable(G, eval=True)(x), set_test_mode(G, eval=True)(x), atol=1e-6)
            assert exportable(G, eval=True)(x).shape == (1, 3, h, w)


def test_padding_reflects_then_replicates_past_the_image():
    from pix2pix.networks.generators import pad_to_multiple

    x = torch.arange(3.0).view(1, 1, 1, 3)
    y, size = pad_to_multiple(x, 8)
    assert size == (1, 3) and y.shape == (1, 1, 8, 8)
    assert y[0, 0, 0].tolist() == [0, 1, 2, 1, 0, 0, 0, 0]  # reflected as far as the row allows, then replicated
    assert torch.equal(y[0, 0], y[0, 0, :1].expand(8, 8))


def test_onnxruntime_engine_equals_torch_in_eval_and_draws_its_own_noise_in_paper_mode():
    torch.manual_seed(0)
    cfg = GeneratorConfig(arch="unet_64", ngf=8)
    G = init_weights(build_generator(cfg))
    x = torch.rand(2, 3, 45, 70) * 2 - 1
    exact = Translator(G, cfg, eval=True, device="cpu", fast=False).translate_tensor(x)
    ort = Translator(G, cfg, eval=True, device="cpu", fast=False, engine="onnxruntime")
    assert ort.engine_of(2, seed=None) == "onnxruntime"
    assert float((ort.translate_tensor(x) - exact).abs().max()) < 1e-4

    paper = Translator(G, cfg, eval=False, device="cpu", fast=False, engine="onnxruntime")
    one = x[:1]
    assert paper.engine_of(1, seed=None) == "onnxruntime"
    first = paper.translate_tensor(one)
    assert not torch.equal(first, paper.translate_tensor(one))  # its own noise on each call
    again = Translator(G, cfg, eval=False, device="cpu", fast=False, engine="onnxruntime")
    assert torch.equal(again.translate_tensor(one), first)  # seeded: a fresh translator repeats the sequence
    # A seed asks for PyTorch's exact noise of that seed, and so does a batch (its batch statistics).
    assert paper.engine_of(1, seed=3) == "torch" and paper.engine_of(2, seed=None) == "torch"
    torch_paper = Translator(G, cfg, eval=False, device="cpu", fast=False)
    assert torch.equal(paper.translate_tensor(one, seed=3), torch_paper.translate_tensor(one, seed=3))


def test_a_seed_in_paper_mode_says_it_runs_pytorch(tmp_path, blocks, tiny, capsys, monkeypatch):
    """Where ONNX Runtime would run (a CPU without bf16, enough work), --seed asks for PyTorch's exact noise:
    the CLI says so, and the outputs are PyTorch's (the same seed gives the same pixels)."""
    import pix2pix.inference.engines as engines

    monkeypatch.setattr(engines, "cpu_has_bf16", lambda: False)
    monkeypatch.setattr(engines, "ONNX_PAYS_FROM", 0)
    run = _train(tmp_path, blocks, tiny, "--max-steps", "1")
    capsys.readouterr()
    src = blocks / "val" / "1.png"
    outs = []
    for k in range(2):
        assert main(["translate", "--checkpoint", str(run), "--input", str(src), "--output", str(tmp_path / f"o{k}"),
                     "--direction", "AtoB", "--seed", "4", "--device", "cpu"]) == 0
        assert "PyTorch runs" in capsys.readouterr().out
        outs.append(np.asarray(Image.open(tmp_path / f"o{k}" / "1.png")))
    assert np.array_equal(*outs)
    assert main(["translate", "--checkpoint", str(run), "--input", str(src), "--output", str(tmp_path / "o"),
                 "--direction", "AtoB", "--device", "cpu"]) == 0
    assert "PyTorch runs" not in capsys.readouterr().out


@pytest.mark.parametrize("engine", ["torch", "onnxruntime"])
def test_the_default_noise_repeats_run_after_run(tmp_path, blocks, tiny, monkeypatch, engine):
    """Without --seed, test (and eval, which translates the same way) still gives the same images twice, on
    either engine: PyTorch's noise of seed 0, or ONNX Runtime's seeded graph."""
    run = _train(tmp_path, blocks, tiny, "--max-steps", "1")
    outs = []
    for _ in range(2):
        assert main(["test", "--run", str(run), "--split", "val", "--device", "cpu", "--engine", engine]) == 0
        outs.append({p.name: p.read_bytes() for p in (run / "results" / "val" / "images").glob("*_output.png")})
    assert outs[0] and outs[0] == outs[1]


def test_test_of_a_published_model_or_a_checkpoint_file_is_one_line_saying_what_works(tmp_path, capsys):
    from conftest import one_line_error

    for target in ("facades_label2photo", str(tmp_path / "latest.safetensors")):
        Path(target).touch() if target.endswith(".safetensors") else None
        one_line_error(capsys, main(["test", "--run", target]), f"pix2pix translate --checkpoint {target}")


def test_a_results_page_counts_its_images_as_a_person_does(tmp_path):
    """Issue 21 (a part): 1, 2, 10 and 100, not 1, 10, 100, 2."""
    from conftest import make_aligned_dataset
    from pix2pix.inference.translate import natural_key

    assert sorted(["10", "2", "100", "1", "b2", "b10", "a"], key=natural_key) == ["1", "2", "10", "100", "a", "b2",
                                                                                "b10"]
    data = make_aligned_dataset(tmp_path / "d", {"train": 2, "val": 11})
    run = _train(tmp_path, data, ["--generator", "unet_32", "--ngf", "4", "--ndf", "4", "--load-size", "36",
                                  "--crop-size", "32", "--workers", "0", "--no-progress", "--val-every", "0"],
                 "--max-steps", "1")
    assert main(["test", "--run", str(run), "--split", "val", "--eval", "--no-fast"]) == 0
    page = (run / "results" / "val" / "index.html").read_text()
    order = [int(h.split("<")[0]) for h in page.split("<h2>")[1:]]
    assert order == list(range(1, 12))


def test_translate_takes_the_source_half_of_a_file_shaped_like_the_training_pairs(tmp_path, blocks, tiny, capsys):
    """A run trained on aligned A|B files, given one such file without --direction: the source half is
    translated (as training read it), in one line said; --whole translates the whole file."""
    run = _train(tmp_path, blocks, tiny, "--direction", "BtoA", "--max-steps", "2")
    capsys.readouterr()

    def out(dest, *flags):
        assert main(["translate", "--checkpoint", str(run), "--input", str(blocks / "val" / "1.png"),
                     "--output", str(tmp_path / dest), "--eval", *flags]) == 0
        return np.asarray(Image.open(tmp_path / dest / "1.png"))

    guarded = out("guarded")
    said = capsys.readouterr().out
    assert guarded.shape == (32, 32, 3) and "64x32, the size of the aligned A|B files" in said
    assert "translating the B (right) half" in said
    assert np.array_equal(guarded, out("stated", "--direction", "BtoA"))
    assert out("whole", "--whole").shape == (32, 64, 3)
    assert "aligned" not in capsys.readouterr().out


def test_test_and_eval_pick_a_checkpoint_and_print_their_scores(tmp_path, blocks, tiny, capsys):
    run = _train(tmp_path, blocks, tiny, "--max-steps", "4", "--val-every", "2")
    capsys.readouterr()
    assert main(["test", "--run", str(run), "--split", "val", "--eval", "--checkpoint", "best"]) == 0
    said = capsys.readouterr().out
    assert "best.safetensors" in said and "L1: mean absolute error" in said and "PSNR, dB" in said
    assert (run / "results" / "val_best" / "index.html").exists()  # beside latest's results/val, not over them
    assert main(["eval", "--run", str(run), "--split", "val", "--checkpoint", "latest"]) == 0
    said = capsys.readouterr().out
    assert "latest.safetensors" in said and "its training step:" in said
    one_line_error(capsys, main(["test", "--run", str(run), "--checkpoint", "epoch_999"]),
                   "no checkpoint 'epoch_999'; it has best, latest")


def test_whole_and_direction_together_are_one_line(tmp_path, blocks, tiny, capsys):
    run = _train(tmp_path, blocks, tiny, "--max-steps", "1")
    one_line_error(capsys, main(["translate", "--checkpoint", str(run), "--input", str(blocks / "val" / "1.png"),
                                 "--output", str(tmp_path / "o"), "--whole", "--direction", "BtoA"]), "give one")


def test_a_checkpoint_named_with_its_suffix_and_bad_pairs_metadata(tmp_path, blocks, tiny, capsys):
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from pix2pix.checkpoints import load_checkpoint, run_checkpoint

    run = _train(tmp_path, blocks, tiny, "--max-steps", "2")
    assert run_checkpoint(run, "latest.safetensors") == run / "checkpoints" / "latest.safetensors"
    latest = run / "checkpoints" / "latest.safetensors"
    with safe_open(str(latest), framework="pt") as f:
        meta = f.metadata()
    assert json.loads(meta["pairs"]) == {"layout": "aligned", "width": 64, "height": 32}
    bad = tmp_path / "bad.safetensors"
    save_file(load_file(str(latest)), str(bad), metadata=meta | {"pairs": json.dumps({"layout": "aligned"})})
    with pytest.raises(Exception, match="'pairs' metadata is not"):
        load_checkpoint(bad)
