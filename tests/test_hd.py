"""pix2pixHD's networks, losses and staged training, and how they meet the rest of the project."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from conftest import make_pair, one_line_error
from pix2pix.cli import main
from pix2pix.config import DiscriminatorConfig, GeneratorConfig, RunConfig, resolve
from pix2pix.networks import build_discriminator, build_generator, count_params
from pix2pix.networks.hd import ClassInput, instance_edges
from pix2pix.networks.vgg import TAPS, VGG19Features, load_vgg
from pix2pix.training.losses import d_loss, feature_matching, g_loss, vgg_loss

# pix2pixHD's figures (REFERENCE.md, read from its networks.py)
COUNTS = {("global", 3): 182_443_267, ("global", 36): 182_546_755, ("local", 3): 182_701_827,
          ("local", 36): 182_857_059}


def test_models_json_lists_the_hd_networks_with_pix2pixhds_counts(capsys):
    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["global"]["params"] == COUNTS["global", 3]  # ngf 64, 3 -> 3
    assert rows["local"]["params"] == COUNTS["local", 3]  # ngf 32 (its global part is 64 wide)
    assert rows["multiscale"]["params"] == 5_535_618  # 2 scales of 6 channels, ndf 64, 3 layers
    assert rows["multiscale"]["receptive_field"] == 70
    assert rows["global"]["settings"]["ngf"] == 64 and rows["local"]["settings"]["ngf"] == 32


@pytest.mark.parametrize("arch,ngf", [("global", 64), ("local", 32)])
def test_class_map_input_counts_35_classes_and_the_boundary(arch, ngf):
    with torch.device("meta"):
        G = build_generator(GeneratorConfig(arch=arch, ngf=ngf, in_channels=2, label_nc=35, instance=True))
        assert count_params(G) == COUNTS[arch, 36]
        assert count_params(build_discriminator(DiscriminatorConfig(arch="multiscale", num_d=3))) == 8_303_427


def test_class_input_is_one_hot_plus_instance_boundaries():
    labels = torch.tensor([[0, 0, 2], [1, 1, 2], [7, 1, 2]], dtype=torch.float32)  # 7: outside 0..2
    ids = torch.tensor([[5, 5, 9], [5, 5, 9], [5, 5, 9]], dtype=torch.float32)
    out = ClassInput(3, instance=True)(torch.stack([labels, ids])[None])
    assert out.shape == (1, 4, 3, 3)
    assert torch.equal(out[0, :3].argmax(0)[:2], labels[:2].long())
    assert out[0, :3, 2, 0].sum() == 0  # an index beyond the classes is no class
    assert torch.equal(out[0, 3], torch.tensor([[0, 1, 1], [0, 1, 1], [0, 1, 1.]]))
    assert torch.equal(instance_edges(ids[None, None])[0, 0], out[0, 3])


def test_class_input_keeps_instance_ids_exact_in_a_bf16_network():
    ids = torch.tensor([[26001.0, 26002.0]]).view(1, 1, 1, 2)  # two cars of Cityscapes: one id apart
    x = torch.cat([torch.zeros_like(ids), ids], 1)  # class 0, two instances (float32, as the data gives it)
    out = ClassInput(2, instance=True).to(torch.bfloat16)(x)
    assert out.dtype == torch.bfloat16 and out[0, 2].tolist() == [[1.0, 1.0]]  # their boundary
    assert torch.bfloat16 != x.dtype and x.to(torch.bfloat16)[0, 1, 0, 0] == x.to(torch.bfloat16)[0, 1, 0, 1]


def test_class_maps_are_read_as_indices_and_checked(tmp_path):
    from pix2pix.data.rasters import read_raster
    from pix2pix.errors import Pix2PixError

    idx = np.array([[0, 1], [2, 4]], np.uint8)
    pal = Image.fromarray(idx, "P")
    pal.putpalette([0, 0, 0, 200, 10, 10, 10, 200, 10, 10, 10, 200, 255, 255, 255] + [0] * 753)
    pal.save(tmp_path / "p.png")
    assert read_raster(tmp_path / "p.png", 1, label_nc=5)[..., 0].tolist() == idx.tolist()  # not brightness
    assert read_raster(tmp_path / "p.png", 1)  # without --label-nc: an image, as before
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(Pix2PixError, match="a RGB image, and --label-nc reads one class index"):
        read_raster(tmp_path / "rgb.png", 1, label_nc=5)
    with pytest.raises(Pix2PixError, match="class index 4 in a map of --label-nc 4 classes"):
        read_raster(tmp_path / "p.png", 1, label_nc=4)


def test_hd_generators_take_any_size_and_keep_it():
    torch.manual_seed(0)
    for arch in ("global", "local"):
        G = build_generator(GeneratorConfig(arch=arch, ngf=4)).eval()
        y = G(torch.rand(1, 3, 37, 70) * 2 - 1)
        assert y.shape == (1, 3, 37, 70) and y.abs().max() <= 1


def test_multiscale_d_judges_each_scale_with_its_features():
    D = build_discriminator(DiscriminatorConfig(arch="multiscale", ndf=4, num_d=3))
    out = D(torch.zeros(2, 6, 64, 128))
    assert len(out) == 3 and all(len(scale) == 5 for scale in out)  # 4 features and the logits, per scale
    # full size, then halved twice: 64 -> 33 -> 17 -> 9 -> 10 -> 11 (4x4 convs, padding 2; the last two stride 1)
    assert [tuple(s[-1].shape[-2:]) for s in out] == [(11, 19), (7, 11), (5, 7)]


# ------------------------------------------------------------------------------------- the losses by hand


def _scales(values):
    """A multi-scale D's output made of constants: values[i][j] fills layer j of scale i."""
    return [[torch.full((1, 2, 2, 2), float(v)) for v in scale] for scale in values]


def test_lsgan_sums_over_scales():
    real, fake = _scales([[0, 0, 0, 0, 0.5], [0, 0, 0, 0, 0.8]]), _scales([[0, 0, 0, 0, 0.25], [0, 0, 0, 0, -1]])
    # D: 0.5 * ((0.5-1)^2 + 0.25^2) + 0.5 * ((0.8-1)^2 + (-1)^2); G: (0.25-1)^2 + (-1-1)^2
    assert d_loss("lsgan", real, fake).item() == pytest.approx(0.5 * (0.25 + 0.0625) + 0.5 * (0.04 + 1))
    assert g_loss("lsgan", fake).item() == pytest.approx(0.5625 + 4)
    # one map of logits is the paper's loss as before
    assert d_loss("vanilla", torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2)).item() == pytest.approx(np.log(2))


def test_feature_matching_over_two_scales_and_three_layers_by_hand():
    # 3 D layers: 4 features and the logits a scale; weight 4 / (3 + 1) x 1 / 2 = 0.5 a feature
    real = _scales([[1, 2, 3, 4, 9], [0, 0, 0, 0, 9]])
    fake = _scales([[1, 1, 1, 1, -9], [1, -1, 2, 0.5, -9]])
    by_hand = 0.5 * (0 + 1 + 2 + 3) + 0.5 * (1 + 1 + 2 + 0.5)  # the logits (9 vs -9) are not compared
    assert feature_matching(fake, real).item() == pytest.approx(by_hand)


def test_feature_matching_detaches_the_real_features():
    real = [[torch.ones(1, 1, 2, 2, requires_grad=True), torch.zeros(1, 1, 1, 1)]]
    fake = [[torch.zeros(1, 1, 2, 2, requires_grad=True), torch.zeros(1, 1, 1, 1)]]
    feature_matching(fake, real).backward()
    assert real[0][0].grad is None and fake[0][0].grad is not None


def test_vgg_loss_weights_the_five_relus_by_hand(tmp_path):
    torch.manual_seed(0)
    vgg = VGG19Features().eval()
    fake, real = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    taps_f, taps_r = vgg(fake), vgg(real)
    assert [t.shape[1] for t in taps_f] == [64, 128, 256, 512, 512]
    by_hand = sum(w * (f - r).abs().mean() for (_, w), f, r in zip(TAPS, taps_f, taps_r))
    assert [w for _, w in TAPS] == [1 / 32, 1 / 16, 1 / 8, 1 / 4, 1]
    assert vgg_loss(vgg, fake, real).item() == pytest.approx(by_hand.item(), rel=1e-5)
    # the taps are torchvision's relu1_1 .. relu5_1: after conv1_1 (features.1) ... conv5_1 (features.29)
    x = fake
    for i in range(2):
        x = vgg.features[i](x)
    assert torch.equal(x, taps_f[0])


def test_vgg_file_loads_by_torchvisions_keys_and_a_wrong_one_is_one_line(tmp_path):
    state = {f"features.{k}": v for k, v in VGG19Features().features.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)  # the rest of torchvision's file is left alone
    torch.save(state, tmp_path / "vgg19.pth")
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "vgg19.safetensors"))
    for name in ("vgg19.pth", "vgg19.safetensors"):
        net = load_vgg(tmp_path / name)
        assert torch.equal(net.features[28].weight, state["features.28.weight"])
        assert not any(p.requires_grad for p in net.parameters())
    from pix2pix.errors import Pix2PixError
    with pytest.raises(Pix2PixError, match="vgg19-dcbbf8b2.pth"):
        load_vgg(tmp_path / "missing.pth")
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(Pix2PixError, match="not VGG19 weights"):
        load_vgg(tmp_path / "other.pth")


# ------------------------------------------------------------------------------ configuration and presets


def test_the_hd_family_resolves_to_pix2pixhds_recipe():
    cfg = RunConfig()
    cfg.generator.arch = "global"
    resolve(cfg)
    g, d, t = cfg.generator, cfg.discriminator, cfg.train
    assert (g.norm, g.dropout, d.arch, d.norm, d.num_d) == ("instance", 0.0, "multiscale", "instance", 2)
    assert (t.objective, t.gan_loss, t.lambda_feat) == ("cgan", "lsgan", 10.0)
    paper = resolve(RunConfig())  # the paper's own defaults are untouched
    assert (paper.generator.norm, paper.generator.dropout, paper.discriminator.arch, paper.train.objective,
            paper.train.gan_loss) == ("batch", 0.5, "patch70", "l1+cgan", "vanilla")
    assert resolve(RunConfig.from_dict(cfg.to_dict())).to_dict() == cfg.to_dict()  # idempotent
    # pix2pixHD's losses come with its D: the global generator against one PatchGAN keeps the paper's L1
    one = RunConfig()
    one.generator.arch, one.discriminator.arch = "global", "patch70"
    assert (resolve(one).train.objective, one.train.gan_loss, one.generator.norm) == ("l1+cgan", "vanilla", "instance")


@pytest.mark.parametrize("flags,needle", [
    (["--gan-loss", "wgangp", "--generator", "global"], "not --discriminator multiscale"),
    (["--fix-global-epochs", "3", "--generator", "global"], "only a --generator local"),
    (["--fix-global-epochs", "3", "--generator", "local"], "give --init-from a global run"),
    (["--label-nc", "35", "--generator", "global"], "--in-channels 1"),
    (["--instance", "--generator", "global", "--in-channels", "2"], "give --label-nc N too"),
    (["--label-nc", "4", "--generator", "unet_32", "--in-channels", "1"], "not unet_32"),
    (["--vgg", "nowhere.pth", "--generator", "global"], "no such file; the VGG19 loss needs"),
])
def test_hd_misuse_is_one_line(tmp_path, capsys, blocks, flags, needle):
    code = main(["train", "--data", str(blocks), "--runs", str(tmp_path / "runs"), "--no-progress",
                 "--max-steps", "1", "--ngf", "4", "--ndf", "4", "--crop-size", "64", "--load-size", "64", *flags])
    one_line_error(capsys, code, needle)


def test_presets_follow_pix2pixhds_scripts():
    from pix2pix.config import apply_preset

    hd512 = resolve(apply_preset(RunConfig(), "cityscapes-hd-512"))
    assert (hd512.generator.arch, hd512.generator.ngf, hd512.data.preprocess, hd512.data.load_size) == \
        ("global", 64, "scale_width", 1024)
    assert (hd512.train.epochs, hd512.train.epochs_decay, hd512.discriminator.num_d) == (100, 100, 2)
    assert (hd512.generator.label_nc, hd512.generator.instance, hd512.generator.in_channels) == (35, True, 2)
    hd1024 = apply_preset(RunConfig(), "cityscapes-hd-1024")
    with pytest.raises(Exception, match="give --init-from a global run"):  # its second stage needs the first
        resolve(hd1024.copy())
    hd1024.train.init_from = "runs/city512"
    hd1024 = resolve(hd1024)
    assert (hd1024.generator.arch, hd1024.generator.ngf, hd1024.discriminator.num_d) == ("local", 32, 3)
    assert (hd1024.train.epochs, hd1024.train.epochs_decay, hd1024.train.fix_global_epochs) == (50, 50, 10)
    assert hd1024.data.preprocess == "none"


# --------------------------------------------------------------------------------- staged, end to end


def _wide_pairs(root, n: int, w: int = 128, h: int = 64):
    """Aligned pairs of w x h (2:1, as Cityscapes): labels (A) left of the photo (B)."""
    rng = np.random.default_rng(1)
    (root / "train").mkdir(parents=True)
    for i in range(n):
        label, photo = make_pair(rng, w)
        Image.fromarray(np.concatenate([label[:h], photo[:h]], 1)).save(root / "train" / f"{i}.png")
    return root


COMMON = ["--workers", "0", "--no-progress", "--log-every", "2", "--sample-every", "4", "--val-every", "0",
          "--ndf", "4", "--preprocess", "scale_width", "--seed", "2"]


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    """pix2pixHD's two stages at toy scale: global at 64x32, then local at 128x64 (global fixed for one epoch)."""
    tmp = tmp_path_factory.mktemp("hd")
    data, runs = _wide_pairs(tmp / "wide", 4), tmp / "runs"
    base = ["train", "--data", str(data), "--runs", str(runs), *COMMON]
    assert main(base + ["--name", "global", "--generator", "global", "--ngf", "8", "--load-size", "64",
                        "--crop-size", "64", "--epochs", "1", "--epochs-decay", "0"]) == 0
    local = base + ["--generator", "local", "--init-from", str(runs / "global"), "--load-size", "128",
                    "--crop-size", "128", "--num-d", "3", "--fix-global-epochs", "1", "--epochs", "2",
                    "--epochs-decay", "1", "--snapshot-every", "1"]
    assert main(local + ["--name", "local"]) == 0
    assert main(local + ["--name", "split", "--max-steps", "3"]) == 0  # stops inside the fixed epoch
    assert main(["train", "--resume", str(runs / "split"), "--no-progress"]) == 0
    return tmp, runs


def _weights(run):
    return load_file(str(run / "checkpoints" / "latest.safetensors"))


def test_staged_run_holds_the_global_part_then_trains_all(staged):
    tmp, runs = staged
    cfg = json.loads((runs / "local" / "config.json").read_text())
    assert (cfg["generator"]["arch"], cfg["generator"]["ngf"], cfg["discriminator"]["num_d"]) == ("local", 4, 3)
    glob = _weights(runs / "global")
    fixed = load_file(str(runs / "local" / "checkpoints" / "epoch_001.safetensors"))
    end = _weights(runs / "local")
    inner = [k for k in fixed if k.startswith("generator.model.")]
    assert inner and all(k in glob for k in inner)  # the global run's weights, at the same keys
    assert all(torch.equal(fixed[k], glob[k]) for k in inner)  # held for the fixed epoch
    enhancer = [k for k in fixed if k.startswith("generator.model1_") and k.endswith("weight")]
    assert enhancer and all(k not in glob for k in enhancer)
    assert any(not torch.equal(end[k], fixed[k]) for k in inner)  # and trained once released
    assert any(not torch.equal(end[k], fixed[k]) for k in enhancer)


def test_staged_run_resumes_bit_for_bit_across_the_switch(staged):
    _, runs = staged
    straight, resumed = _weights(runs / "local"), _weights(runs / "split")
    assert straight.keys() == resumed.keys()
    assert [k for k in straight if not torch.equal(straight[k], resumed[k])] == []


def test_staged_model_translates_a_wide_image_and_exports_to_onnx(staged, capsys):
    tmp, runs = staged
    rng = np.random.default_rng(5)
    big = make_pair(rng, 1000)[0][:500]  # a 1000x500 label map
    Image.fromarray(big).save(tmp / "wide.png")
    assert main(["translate", "--checkpoint", str(runs / "local"), "--input", str(tmp / "wide.png"), "--output",
                 str(tmp / "out"), "--eval"]) == 0
    out = Image.open(tmp / "out" / "wide.png")
    assert out.size == (1000, 500)
    assert np.asarray(out).std() > 1  # an image, not a constant
    assert main(["translate", "--checkpoint", str(runs / "local"), "--input", str(tmp / "wide.png"), "--output",
                 str(tmp / "tiled"), "--eval", "--tile", "384"]) == 0
    tiled = np.asarray(Image.open(tmp / "tiled" / "wide.png"), np.float64)
    assert tiled.shape == (500, 1000, 3)
    mse = ((tiled - np.asarray(out, np.float64)) ** 2).mean()
    print("tiled against whole:", 10 * np.log10(255 ** 2 / max(mse, 1e-9)), "dB")
    assert 10 * np.log10(255 ** 2 / max(mse, 1e-9)) > 20  # tiles normalised by their own statistics: close, not equal
    capsys.readouterr()
    assert main(["export", "--checkpoint", str(runs / "local"), "--out", str(tmp / "local.onnx"), "--eval"]) == 0
    said = capsys.readouterr().out
    assert "matches PyTorch within" in said
    import onnxruntime as ort

    from pix2pix.checkpoints import load_checkpoint

    G = load_checkpoint(runs / "local" / "checkpoints" / "latest.safetensors").build_generator().eval()
    x = torch.rand(1, 3, 100, 200) * 2 - 1
    with torch.no_grad():
        want = G(x).numpy()
    got = ort.InferenceSession(str(tmp / "local.onnx")).run(None, {"x": x.numpy()})[0]
    assert got.shape == (1, 3, 100, 200) and np.abs(got - want).max() < 1e-4


def test_feature_matching_and_lsgan_are_in_the_losses_log(staged):
    _, runs = staged
    header = (runs / "local" / "losses.csv").read_text().splitlines()[0]
    assert "G_feat" in header and "G_gan" in header and "G_l1" not in header


def test_a_vgg_run_logs_its_term(tmp_path, blocks):
    state = {f"features.{k}": v for k, v in VGG19Features().features.state_dict().items()}
    torch.save(state, tmp_path / "vgg19.pth")
    assert main(["train", "--data", str(blocks), "--runs", str(tmp_path / "runs"), "--name", "vgg", *COMMON,
                 "--generator", "global", "--ngf", "4", "--load-size", "32", "--crop-size", "32",
                 "--vgg", str(tmp_path / "vgg19.pth"), "--max-steps", "2"]) == 0
    assert "G_vgg" in (tmp_path / "runs" / "vgg" / "losses.csv").read_text().splitlines()[0]


def test_label_nc_run_reads_class_indices_nearest_and_checks_them(tmp_path, capsys):
    rng = np.random.default_rng(0)
    root = tmp_path / "classes"
    (root / "A" / "train").mkdir(parents=True)
    (root / "B" / "train").mkdir(parents=True)
    for i in range(2):
        labels = rng.integers(0, 5, (8, 16)).repeat(4, 0).repeat(4, 1).astype(np.uint8)  # 32x64 index map
        Image.fromarray(labels).save(root / "A" / "train" / f"{i}.png")
        Image.fromarray(make_pair(rng, 64)[1][:32]).save(root / "B" / "train" / f"{i}.png")
    args = ["train", "--data", str(root), "--runs", str(tmp_path / "runs"), *COMMON, "--generator", "global",
            "--ngf", "4", "--load-size", "48", "--crop-size", "48", "--max-steps", "2", "--in-channels", "1"]
    assert main(args + ["--name", "ok", "--label-nc", "5"]) == 0
    ckpt = json.loads((tmp_path / "runs" / "ok" / "config.json").read_text())
    assert ckpt["data"]["label_nc"] == 5 and ckpt["discriminator"]["label_nc"] == 5
    from pix2pix.checkpoints import checkpoint_scales
    assert checkpoint_scales(tmp_path / "runs" / "ok").input.kind == "none"
    capsys.readouterr()
    one_line_error(capsys, main(args + ["--name", "few", "--label-nc", "3"]), "in a map of --label-nc 3 classes")


def test_nearest_resize_keeps_class_values():
    from pix2pix.data.rasters import resize

    labels = np.array([[0, 3], [7, 1]], np.uint8)[:, :, None]
    out = resize(labels, (5, 3), nearest=True)
    assert out.shape == (3, 5, 1) and set(np.unique(out)) <= {0, 1, 3, 7}
    pil = np.asarray(Image.fromarray(labels[:, :, 0]).resize((5, 3), Image.NEAREST))
    assert np.array_equal(out[:, :, 0], pil)


def test_scale_width_keeps_a_wide_image_wide():
    from pix2pix.config import DataConfig
    from pix2pix.data.pairs import resize_pair

    cfg = DataConfig(preprocess="scale_width", load_size=64, crop_size=256)
    a = np.zeros((64, 128, 3), np.uint8)
    x, _ = resize_pair(a, a, cfg, train=True)
    assert x.shape[:2] == (32, 64)  # before: the crop size's height (64x256)


def test_pix2pixhd_layout_with_instances_trains_and_translates(tmp_path, capsys):
    rng = np.random.default_rng(3)
    src = tmp_path / "cityscapes"
    for side in ("label", "inst", "img"):
        (src / f"train_{side}").mkdir(parents=True)
    for i in range(2):
        labels = rng.integers(0, 5, (4, 8)).repeat(8, 0).repeat(8, 1).astype(np.uint8)  # 32x64
        ids = (labels.astype(np.int32) * 1000 + rng.integers(0, 3, labels.shape)).astype(np.uint16)
        Image.fromarray(labels).save(src / "train_label" / f"c_{i}_gtFine_labelIds.png")
        Image.fromarray(ids).save(src / "train_inst" / f"c_{i}_gtFine_instanceIds.png")  # 16-bit, as Cityscapes'
        Image.fromarray(make_pair(rng, 64)[1][:32]).save(src / "train_img" / f"c_{i}_leftImg8bit.png")
    assert main(["datasets", "hd", "--from", str(src), "--out", str(tmp_path / "hd")]) == 0
    assert "--instance --in-channels 2" in capsys.readouterr().out
    a = np.load(tmp_path / "hd" / "A" / "train" / "c_0.npy")
    assert a.shape == (32, 64, 2) and a.dtype == np.uint16 and a[..., 1].max() >= 4000
    assert main(["train", "--data", str(tmp_path / "hd"), "--runs", str(tmp_path / "runs"), "--name", "cs", *COMMON,
                 "--generator", "global", "--ngf", "4", "--load-size", "64", "--crop-size", "64", "--max-steps", "2",
                 "--label-nc", "5", "--instance", "--in-channels", "2"]) == 0
    assert main(["translate", "--checkpoint", str(tmp_path / "runs" / "cs"), "--input",
                 str(tmp_path / "hd" / "A" / "train" / "c_1.npy"), "--output", str(tmp_path / "out"), "--eval",
                 "--output-format", "png"]) == 0
    out = next((tmp_path / "out").iterdir())
    assert out.suffix == ".png" and Image.open(out).size == (64, 32)
    one_line_error(capsys, main(["datasets", "hd", "--from", str(tmp_path), "--out", str(tmp_path / "x")]),
                   "no SPLIT_label folder")


def test_the_app_serves_a_local_generator(staged):
    import io

    from fastapi.testclient import TestClient

    from pix2pix.app.models import load_served
    from pix2pix.app.server import create_app

    _, runs = staged
    label = make_pair(np.random.default_rng(9), 96)[0][:40]  # 96x40: not a multiple of the local's 32
    body = io.BytesIO()
    Image.fromarray(label).save(body, format="PNG")
    with TestClient(create_app([load_served(runs / "local")]), base_url="http://localhost") as client:
        r = client.post("/api/translate", files={"image": ("x.png", body.getvalue(), "image/png")},
                        data={"eval": "true"})
    assert r.status_code == 200, r.text
    assert Image.open(io.BytesIO(r.content)).size == (96, 40)
