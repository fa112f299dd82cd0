"""Reference checkpoints (``latest_net_G.pth`` of the reference PyTorch code) load and translate exactly
as the reference would.

The reference code is not a dependency, so this file carries a small independent replica of its two
generators, written from the layout facts in REFERENCE.md: a recursive U-Net whose blocks hold a
``model`` Sequential, and a ResNet generator whose ``model`` Sequential holds blocks with a ``conv_block``.
The replica's state dict is saved the way the reference saves it, loaded through our public API, and the
outputs compared in eval mode and in the paper's test mode (dropout on, batch statistics).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from pix2pix.cli import main
from pix2pix.config import GeneratorConfig
from pix2pix.errors import Pix2PixError
from pix2pix.inference.translate import Translator

# ------------------------------------------------------------------------------------ the replica


def ref_norm(norm: str, channels: int) -> nn.Module:
    if norm == "batch":
        return nn.BatchNorm2d(channels, affine=True, track_running_stats=True)
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    return nn.Identity()


class RefUnetSkipBlock(nn.Module):
    """One U-Net level. Sequential indices (what the checkpoint keys record):

    outermost: 0 down conv, 1 submodule, 2 ReLU, 3 up transposed conv (with bias), 4 Tanh
    middle:    0 LeakyReLU, 1 down conv, 2 norm, 3 submodule, 4 ReLU, 5 up conv, 6 norm, [7 Dropout]
    innermost: 0 LeakyReLU, 1 down conv, 2 ReLU, 3 up conv, 4 norm

    The activations are in place, as in the reference: the LeakyReLU that opens a level rewrites the
    level's input, so the skip carries the activated features (harmless: the parent's ReLU comes next).
    """

    def __init__(self, outer_nc, inner_nc, input_nc=None, submodule=None, outermost=False, innermost=False,
                 norm="batch", use_dropout=False):
        super().__init__()
        self.outermost = outermost
        bias = norm == "instance"
        input_nc = outer_nc if input_nc is None else input_nc
        downconv = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=bias)
        if outermost:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1)
            layers = [downconv, submodule, nn.ReLU(True), upconv, nn.Tanh()]
        elif innermost:
            upconv = nn.ConvTranspose2d(inner_nc, outer_nc, kernel_size=4, stride=2, padding=1, bias=bias)
            layers = [nn.LeakyReLU(0.2, True), downconv, nn.ReLU(True), upconv, ref_norm(norm, outer_nc)]
        else:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1, bias=bias)
            layers = [nn.LeakyReLU(0.2, True), downconv, ref_norm(norm, inner_nc), submodule,
                      nn.ReLU(True), upconv, ref_norm(norm, outer_nc)]
            if use_dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class RefUnetGenerator(nn.Module):
    def __init__(self, input_nc, output_nc, num_downs, ngf=64, norm="batch", use_dropout=True):
        super().__init__()
        block = RefUnetSkipBlock(ngf * 8, ngf * 8, innermost=True, norm=norm)
        for _ in range(num_downs - 5):  # the levels just above the innermost carry the dropout
            block = RefUnetSkipBlock(ngf * 8, ngf * 8, submodule=block, norm=norm, use_dropout=use_dropout)
        block = RefUnetSkipBlock(ngf * 4, ngf * 8, submodule=block, norm=norm)
        block = RefUnetSkipBlock(ngf * 2, ngf * 4, submodule=block, norm=norm)
        block = RefUnetSkipBlock(ngf, ngf * 2, submodule=block, norm=norm)
        self.model = RefUnetSkipBlock(output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True,
                                      norm=norm)

    def forward(self, x):
        return self.model(x)


class RefResnetBlock(nn.Module):
    def __init__(self, dim, norm, use_dropout):
        super().__init__()
        bias = norm == "instance"
        layers = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, kernel_size=3, bias=bias), ref_norm(norm, dim),
                  nn.ReLU(True)]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, kernel_size=3, bias=bias), ref_norm(norm, dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv_block(x)


class RefResnetGenerator(nn.Module):
    def __init__(self, input_nc, output_nc, ngf=64, norm="batch", use_dropout=False, n_blocks=9):
        super().__init__()
        bias = norm == "instance"
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, kernel_size=7, bias=bias), ref_norm(norm, ngf),
                  nn.ReLU(True)]
        for i in range(2):
            c = ngf * 2 ** i
            layers += [nn.Conv2d(c, c * 2, kernel_size=3, stride=2, padding=1, bias=bias), ref_norm(norm, c * 2),
                       nn.ReLU(True)]
        layers += [RefResnetBlock(ngf * 4, norm, use_dropout) for _ in range(n_blocks)]
        for i in range(2):
            c = ngf * 2 ** (2 - i)
            layers += [nn.ConvTranspose2d(c, c // 2, kernel_size=3, stride=2, padding=1, output_padding=1,
                                          bias=bias),
                       ref_norm(norm, c // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, kernel_size=7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


def randomize(net: nn.Module, seed: int) -> nn.Module:
    """Random weights, biases and batch-norm running statistics, so that eval mode (running statistics) and
    train mode (batch statistics) give clearly different outputs and a wrong buffer would show."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                fan_in = m.weight[0].numel() if isinstance(m, nn.Conv2d) else m.weight[:, 0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) / fan_in ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            elif isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(0.5 + torch.rand(n, generator=g))
                m.bias.copy_(torch.randn(n, generator=g) * 0.2)
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.3)
                m.running_var.copy_(0.3 + 2 * torch.rand(n, generator=g))
                m.num_batches_tracked.fill_(int(torch.randint(1, 1000, (1,), generator=g)))
    return net


def save_reference(net: nn.Module, path: Path, prefix: str = "", drop_num_batches: bool = False) -> Path:
    """What the reference writes: torch.save(state_dict) of the CPU model."""
    state = {prefix + k: v.clone() for k, v in net.state_dict().items()
             if not (drop_num_batches and k.endswith("num_batches_tracked"))}
    torch.save(state, path)
    return path


def inputs(channels: int = 3, size: int = 64, batch: int = 1, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, channels, size, size, generator=g) * 2 - 1


def assert_same(ours: torch.Tensor, ref: torch.Tensor) -> None:
    assert ours.shape == ref.shape
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=0)


def assert_both_modes_match(ref: nn.Module, path: Path, x: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Our load of ``path`` equals the replica in eval mode, and in paper mode (dropout on, batch statistics)
    under the same seed. Returns the replica's (eval, train-mode) outputs."""
    with torch.no_grad():
        y_eval = ref.eval()(x.clone())
    assert_same(Translator.load(path, eval=True, device="cpu", fast=False).translate_tensor(x), y_eval)
    torch.manual_seed(seed)
    with torch.no_grad():
        y_train = ref.train()(x.clone())
    assert_same(Translator.load(path, eval=False, device="cpu", fast=False).translate_tensor(x, seed=seed), y_train)
    return y_eval, y_train


def assert_informative(y_eval: torch.Tensor, y_train: torch.Tensor) -> None:
    """Guard against a vacuous comparison: outputs not saturated, and the two modes really differ."""
    assert y_eval.std() > 0.05 and (y_eval.abs() < 0.99).float().mean() > 0.5
    assert (y_eval - y_train).abs().max() > 1e-2


# ------------------------------------------------------------------------------------ U-Net

UNET_CASES = {
    "batch": dict(input_nc=3, output_nc=3, num_downs=6, ngf=8, norm="batch"),
    "instance": dict(input_nc=3, output_nc=3, num_downs=6, ngf=8, norm="instance"),
    "gray-to-rgb": dict(input_nc=1, output_nc=3, num_downs=6, ngf=8, norm="batch"),
    "depth7-rgba": dict(input_nc=4, output_nc=1, num_downs=7, ngf=4, norm="batch"),
    "no-norm": dict(input_nc=3, output_nc=3, num_downs=6, ngf=8, norm="none"),
}


@pytest.fixture(params=list(UNET_CASES))
def unet_case(request, tmp_path):
    kw = UNET_CASES[request.param]
    ref = randomize(RefUnetGenerator(**kw), seed=len(request.param))
    return kw, ref, save_reference(ref, tmp_path / "latest_net_G.pth")


def test_unet_config_is_inferred(unet_case):
    kw, _, path = unet_case
    tr = Translator.load(path, eval=True, device="cpu", fast=False)
    assert tr.config == GeneratorConfig(arch=f"unet_{2 ** kw['num_downs']}", in_channels=kw["input_nc"],
                                        out_channels=kw["output_nc"], ngf=kw["ngf"], norm=kw["norm"],
                                        dropout=0.5, dropout_placement="reference")
    assert tr.meta.get("source") == "reference"


def test_unet_eval_outputs_equal_reference(unet_case):
    kw, ref, path = unet_case
    x = inputs(kw["input_nc"], 2 ** kw["num_downs"], batch=2)
    tr = Translator.load(path, eval=True, device="cpu", fast=False)
    with torch.no_grad():
        y_ref = ref.eval()(x.clone())
        y_train = ref.train()(x.clone())
    y = tr.translate_tensor(x)
    assert_same(y, y_ref)
    if kw["norm"] == "batch":
        assert_informative(y_ref, y_train)


def test_unet_paper_mode_outputs_equal_reference_train_mode(unet_case):
    """Dropout on and batch statistics: with the same seed, the same dropout masks in the same order."""
    kw, ref, path = unet_case
    x = inputs(kw["input_nc"], 2 ** kw["num_downs"], batch=1, seed=1)
    tr = Translator.load(path, eval=False, device="cpu", fast=False)
    outs = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        with torch.no_grad():
            y_ref = ref.train()(x.clone())
        torch.manual_seed(seed)
        y = tr.translate_tensor(x)
        assert_same(y, y_ref)
        assert_same(tr.translate_tensor(x, seed=seed), y_ref)
        outs.append(y)
    assert not torch.allclose(outs[0], outs[1]), "dropout must be on in the paper's test mode"


def test_paper_mode_leaves_running_statistics_alone(tmp_path):
    ref = randomize(RefUnetGenerator(**UNET_CASES["batch"]), seed=3)
    tr = Translator.load(save_reference(ref, tmp_path / "latest_net_G.pth"), eval=False, device="cpu", fast=False)
    before = {k: v.clone() for k, v in tr.G.state_dict().items()}
    tr.translate_tensor(inputs(batch=2), seed=0)
    after = tr.G.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("variant", ["dataparallel", "no-num-batches-tracked", "both"])
def test_unet_checkpoint_variants(tmp_path, variant):
    """`module.`-prefixed keys (saved from DataParallel) and checkpoints from before num_batches_tracked."""
    kw = UNET_CASES["batch"]
    ref = randomize(RefUnetGenerator(**kw), seed=7)
    path = save_reference(ref, tmp_path / "latest_net_G.pth",
                          prefix="module." if variant != "no-num-batches-tracked" else "",
                          drop_num_batches=variant != "dataparallel")
    saved = torch.load(path, weights_only=True)
    assert all(k.startswith("module.") for k in saved) == (variant != "no-num-batches-tracked")
    assert any(k.endswith("num_batches_tracked") for k in saved) == (variant == "dataparallel")
    tr = Translator.load(path, eval=True, device="cpu", fast=False)
    assert tr.config.arch == "unet_64" and tr.config.ngf == 8 and tr.config.norm == "batch"
    assert_both_modes_match(ref, path, inputs(batch=2), seed=5)


def test_reference_unet_in_the_paper_dropout_placement(tmp_path):
    """Overriding the placement keeps the weights (dropout has none) but moves the dropout inwards."""
    ref = randomize(RefUnetGenerator(**UNET_CASES["batch"]), seed=11)
    path = save_reference(ref, tmp_path / "latest_net_G.pth")
    tr = Translator.load(path, eval=True, device="cpu", dropout_placement="paper", fast=False)
    assert tr.config.dropout_placement == "paper"
    x = inputs(batch=2)
    with torch.no_grad():
        y_ref = ref.eval()(x.clone())
    assert_same(tr.translate_tensor(x), y_ref)  # eval mode: placement does not matter
    assert sum(isinstance(m, nn.Dropout) for m in tr.G.modules()) == 3


def test_translator_on_a_pil_image_matches_reference(tmp_path):
    ref = randomize(RefUnetGenerator(**UNET_CASES["gray-to-rgb"]), seed=13)
    tr = Translator.load(save_reference(ref, tmp_path / "latest_net_G.pth"), eval=True, device="cpu", fast=False)
    arr = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    out = tr(Image.fromarray(arr, "L"))
    assert out.mode == "RGB" and out.size == (64, 64)
    assert np.array_equal(np.asarray(out), reference_pixels(ref, arr))


# ------------------------------------------------------------------------------------ ResNet

RESNET_CASES = [
    pytest.param(dict(norm="batch", use_dropout=True), id="batch-dropout"),
    pytest.param(dict(norm="batch", use_dropout=False), id="batch-no-dropout"),
    pytest.param(dict(norm="instance", use_dropout=False), id="instance-no-dropout"),
    pytest.param(dict(norm="instance", use_dropout=True), id="instance-dropout"),
]


@pytest.mark.parametrize("kw", RESNET_CASES)
def test_resnet_reference_checkpoint(tmp_path, kw):
    ref = randomize(RefResnetGenerator(3, 3, ngf=8, n_blocks=4, **kw), seed=21)
    path = save_reference(ref, tmp_path / "latest_net_G.pth")
    tr = Translator.load(path, eval=True, device="cpu", fast=False)
    assert tr.config == GeneratorConfig(arch="resnet_4blocks", in_channels=3, out_channels=3, ngf=8,
                                        norm=kw["norm"], dropout=0.5 if kw["use_dropout"] else 0.0,
                                        dropout_placement=tr.config.dropout_placement)
    y_ref, y_ref_train = assert_both_modes_match(ref, path, inputs(batch=2), seed=3)
    if kw["norm"] == "batch" or kw["use_dropout"]:
        assert_informative(y_ref, y_ref_train)


# ------------------------------------------------------------------------------------ broken files


def test_pth_with_mismatched_shapes(tmp_path):
    """Keys of a U-Net but a tensor of the wrong shape: one clear error, not a traceback."""
    ref = RefUnetGenerator(**UNET_CASES["batch"])
    state = ref.state_dict()
    key = "model.model.1.model.5.weight"
    state[key] = torch.zeros(3, 3, 4, 4)
    path = tmp_path / "latest_net_G.pth"
    torch.save(state, path)
    with pytest.raises(Pix2PixError) as e:
        Translator.load(path, device="cpu", fast=False)
    assert str(path) in str(e.value)


def test_cli_reports_a_broken_checkpoint_in_one_line(tmp_path, capsys):
    path = tmp_path / "latest_net_G.pth"
    path.write_bytes(b"not a checkpoint")
    img = tmp_path / "img.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(img)
    assert main(["translate", "--checkpoint", str(path), "--input", str(img), "--output",
                 str(tmp_path / "out"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------------------------ CLI


def reference_pixels(ref: nn.Module, arr: np.ndarray) -> np.ndarray:
    """The reference's test pipeline: ToTensor + Normalize(0.5, 0.5), G in eval mode, then
    (y + 1) / 2 * 255 in float32 and truncation to uint8."""
    t = torch.from_numpy(arr).float().div(255)
    t = t[None] if t.ndim == 2 else t.permute(2, 0, 1)
    t = (t - 0.5) / 0.5
    with torch.no_grad():
        y = ref.eval()(t[None])[0]
    out = (np.transpose(y.float().numpy(), (1, 2, 0)) + 1) / 2.0 * 255.0
    assert out.dtype == np.float32
    return out.astype(np.uint8)


def test_cli_translate_matches_reference_pixels(tmp_path, capsys):
    """--no-fast: fp32 bit for bit (the default fast path may differ by a couple of levels, tested below)."""
    ref = randomize(RefUnetGenerator(**UNET_CASES["batch"]), seed=17)
    ckpt = save_reference(ref, tmp_path / "latest_net_G.pth")
    arr = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    img = tmp_path / "img.png"
    Image.fromarray(arr).save(img)
    out = tmp_path / "outdir"
    assert main(["translate", "--checkpoint", str(ckpt), "--input", str(img), "--output", str(out),
                 "--eval", "--device", "cpu", "--no-fast"]) == 0
    written = out / "img.png"
    assert written.is_file()
    with Image.open(written) as im:
        got = np.asarray(im.convert("RGB"))
    expected = reference_pixels(ref, arr)
    assert got.shape == expected.shape == (64, 64, 3)
    assert expected.std() > 10  # a real picture, not a saturated one
    assert np.array_equal(got, expected)


def test_cli_translate_paper_mode_is_seeded(tmp_path):
    """Without --eval: dropout on; the same --seed gives the same image, another seed a different one."""
    ref = randomize(RefUnetGenerator(**UNET_CASES["batch"]), seed=19)
    ckpt = save_reference(ref, tmp_path / "latest_net_G.pth")
    img = tmp_path / "img.png"
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(img)
    results = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        assert main(["translate", "--checkpoint", str(ckpt), "--input", str(img), "--output",
                     str(tmp_path / name), "--seed", str(seed), "--device", "cpu"]) == 0
        with Image.open(tmp_path / name / "img.png") as im:
            results.append(np.asarray(im).copy())
    assert np.array_equal(results[0], results[1])
    assert not np.array_equal(results[0], results[2])


@pytest.mark.parametrize("make", ["unet", "resnet"])
def test_instance_norm_checkpoint_from_before_torch_0_4_loads(tmp_path, make):
    """torch < 0.4 saved running_mean/running_var (and no num_batches_tracked) on InstanceNorm layers: the
    norm is read from the structure (no affine weight, biased convs), and those buffers are dropped as the
    reference drops them, so the checkpoint loads and translates as the reference does."""
    ref = (RefUnetGenerator(**UNET_CASES["instance"]) if make == "unet"
           else RefResnetGenerator(3, 3, ngf=8, n_blocks=2, norm="instance", use_dropout=False))
    ref = randomize(ref, seed=17)
    state = {k: v.clone() for k, v in ref.state_dict().items()}
    for name, m in ref.named_modules():
        if isinstance(m, nn.InstanceNorm2d):
            state[f"{name}.running_mean"] = torch.randn(m.num_features)
            state[f"{name}.running_var"] = torch.rand(m.num_features) + 0.5
    path = tmp_path / "latest_net_G.pth"
    torch.save(state, path)
    tr = Translator.load(path, eval=True, device="cpu", fast=False)
    assert tr.config.norm == "instance"
    assert_both_modes_match(ref, path, inputs(batch=2), seed=2)
