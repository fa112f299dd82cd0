"""File formats: release weights, the run state an exact resume needs, and what a broken file gets."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from conftest import train_tiny as _train
from pix2pix.checkpoints import RunState, load_checkpoint, load_latest, load_state, save_state
from pix2pix.cli import main
from pix2pix.config import GeneratorConfig, RunConfig
from pix2pix.errors import Pix2PixError
from pix2pix.inference.translate import Translator
from pix2pix.networks import build_generator


def _weights(run):
    return load_file(str(run / "checkpoints" / "latest.safetensors"))


def test_a_crash_between_state_and_weights_still_resumes(tmp_path, blocks, tiny, monkeypatch):
    """The training state is written first; if the weights never follow, the previous pair still resumes."""
    import pix2pix.checkpoints as ck

    common = ["train", "--data", str(blocks), "--runs", str(tmp_path / "runs"), *tiny]
    assert main(common + ["--name", "straight", "--max-steps", "4"]) == 0
    assert main(common + ["--name", "crash", "--max-steps", "2"]) == 0

    def die(*args, **kwargs):
        raise KeyboardInterrupt  # the process dies after the state file, before the weights

    monkeypatch.setattr(ck, "save_weights", die)
    run = tmp_path / "runs" / "crash"
    try:
        main(["train", "--resume", str(run), "--max-steps", "3", "--no-progress"])
    except KeyboardInterrupt:
        pass
    monkeypatch.undo()
    assert main(["train", "--resume", str(run), "--max-steps", "4", "--no-progress"]) == 0
    a, b = _weights(tmp_path / "runs" / "straight"), _weights(run)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [p.name for p in (run / "checkpoints").glob("state_*.pt")] == ["state_00000004.pt"]


def test_interrupted_save_keeps_previous_latest(tmp_path, blocks, tiny, monkeypatch):
    """A crash while writing a checkpoint leaves the previous latest intact and no temp file behind."""
    import pix2pix.checkpoints as ck

    run = tmp_path / "runs" / "r"
    assert main(["train", "--data", str(blocks), "--runs", str(tmp_path / "runs"), "--name", "r",
                 "--max-steps", "2", *tiny]) == 0
    before = (run / "checkpoints" / "latest.safetensors").read_bytes()

    def crash(path, data):
        with open(path, "wb") as f:
            f.write(data[:100])
        raise KeyboardInterrupt  # stands for the process dying mid-write

    import pix2pix.files as files

    monkeypatch.setattr(files.Path, "write_bytes", lambda self, data: crash(self, data))
    G = build_generator(GeneratorConfig(arch="unet_32", ngf=4))
    try:
        ck.save_weights(run / "checkpoints" / "latest.safetensors", G, GeneratorConfig(arch="unet_32", ngf=4))
    except KeyboardInterrupt:
        pass
    assert (run / "checkpoints" / "latest.safetensors").read_bytes() == before
    assert [p.name for p in (run / "checkpoints").iterdir() if p.name.endswith(".tmp")] == []


def test_a_checkpoint_alone_rebuilds_the_model(tmp_path, blocks, tiny):
    run = _train(tmp_path, blocks, tiny, "--max-steps", "2", "--norm", "instance", "--ngf", "6")
    translator = Translator.load(run / "checkpoints" / "latest.safetensors", eval=True, device="cpu")
    assert translator.config.arch == "unet_32"
    assert translator.config.norm == "instance" and translator.config.ngf == 6
    D = load_checkpoint(run / "checkpoints" / "latest.safetensors").build_discriminator()
    assert D(torch.zeros(1, 6, 32, 32)).shape == (1, 1, 2, 2)  # the conditional 70x70 PatchGAN, ndf 4


def test_pth_that_is_not_a_state_dict(tmp_path):
    path = tmp_path / "latest_net_G.pth"
    torch.save([torch.zeros(3), torch.ones(2)], path)
    with pytest.raises(Pix2PixError, match="latest_net_G.pth") as e:
        Translator.load(path, device="cpu", fast=False)
    assert str(path) in str(e.value)


def test_pth_with_foreign_tensors(tmp_path):
    path = tmp_path / "latest_net_D.pth"
    torch.save({"model.0.weight": torch.zeros(64, 6, 4, 4), "model.0.bias": torch.zeros(64)}, path)
    with pytest.raises(Pix2PixError) as e:
        Translator.load(path, device="cpu", fast=False)
    assert str(path) in str(e.value)


@pytest.mark.parametrize("content", [b"", b"\x00garbage\xff" * 100, b"PK\x03\x04not really a zip"],
                         ids=["empty", "garbage", "bad-zip"])
def test_pth_with_garbage_bytes(tmp_path, content):
    path = tmp_path / "latest_net_G.pth"
    path.write_bytes(content)
    with pytest.raises(Pix2PixError) as e:
        Translator.load(path, device="cpu", fast=False)
    assert str(path) in str(e.value)


@pytest.mark.parametrize("content", [b"", b"\x00garbage\xff" * 100, (8).to_bytes(8, "little") + b"{bad json",
                                     (10 ** 12).to_bytes(8, "little") + b"{}"],
                         ids=["empty", "garbage", "bad-header", "huge-header"])
def test_safetensors_with_garbage_bytes(tmp_path, content):
    path = tmp_path / "latest.safetensors"
    path.write_bytes(content)
    with pytest.raises(Pix2PixError) as e:
        Translator.load(path, device="cpu", fast=False)
    assert str(path) in str(e.value)


def test_latest_names_its_state_and_both_hold_the_step_and_the_run(tmp_path, blocks, tiny):
    run = _train(tmp_path, blocks, tiny, "--max-steps", "3")
    ckpt, state = load_latest(run / "checkpoints")
    assert ckpt.meta["state"] == "state_00000003.pt" and ckpt.meta["step"] == state.step == 3
    assert RunConfig.from_dict(ckpt.meta["config"]) == RunConfig.load(run / "config.json")
    assert state.opt_D is not None and len(state.rng) == 1 and state.rng[0]["cuda"] is None
    assert state.epoch == 0 and state.batch_in_epoch == 3 and state.bad_images == []


def test_run_state_round_trips_and_an_older_state_file_still_loads(tmp_path):
    state = RunState(step=7, epoch=1, batch_in_epoch=3, opt_G={"state": {}, "param_groups": []}, opt_D=None,
                     rng=[{"cpu": torch.get_rng_state(), "cuda": None}], bad_images=["x.png: broken"])
    save_state(tmp_path / "s.pt", state)
    back = load_state(tmp_path / "s.pt")
    assert (back.step, back.epoch, back.batch_in_epoch, back.bad_images) == (7, 1, 3, ["x.png: broken"])
    assert torch.equal(back.rng[0]["cpu"], state.rng[0]["cpu"])
    # A state written before RunState existed: a plain dict with the same keys and none of the later ones.
    cpu = torch.get_rng_state()
    old = {"step": 2, "epoch": 0, "batch_in_epoch": 2, "opt_G": {}, "opt_D": None, "schedulers": [],
           "rng_cpu": cpu, "rng_cuda": None}
    torch.save(old, tmp_path / "old.pt")
    upgraded = load_state(tmp_path / "old.pt")
    assert len(upgraded.rng) == 1 and torch.equal(upgraded.rng[0]["cpu"], cpu) and upgraded.version == 2
    # Version 1 with every process's states: each process keeps its own.
    torch.save(old | {"rng_processes": [{"cpu": cpu, "cuda": None}] * 2}, tmp_path / "two.pt")
    assert len(load_state(tmp_path / "two.pt").rng) == 2
    with pytest.raises(Pix2PixError, match="no training state"):
        load_state(tmp_path / "missing.pt")


def test_an_unknown_key_in_the_training_state_is_one_line(tmp_path):
    path = tmp_path / "state_00000001.pt"
    torch.save({"step": 1, "epoch": 0, "batch_in_epoch": 1, "opt_G": {}, "opt_D": None, "schedulers": [],
                "rng_cpu": torch.get_rng_state(), "momentum": 3}, path)
    with pytest.raises(Pix2PixError) as e:
        load_state(path)
    assert "'momentum'" in str(e.value) and str(path) in str(e.value) and "unreadable" not in str(e.value)


class _RunsCode:
    def __reduce__(self):
        return (print, ("this ran",))


@pytest.mark.parametrize("name", ["latest_net_G.pth", "state_00000001.pt"])
def test_a_pickle_that_runs_code_is_refused_in_one_line_without_torchs_advice(tmp_path, capsys, name):
    from pix2pix.checkpoints import load_reference_checkpoint

    path = tmp_path / name
    torch.save({"model.1.weight": _RunsCode()}, path)
    with pytest.raises(Pix2PixError) as e:
        (load_reference_checkpoint if name.endswith(".pth") else load_state)(path)
    msg = str(e.value)
    assert "refused" in msg and "could run code" in msg and "weights_only" not in msg and "\n" not in msg
    assert "this ran" not in capsys.readouterr().out



def test_a_damaged_file_is_not_called_a_pickle_that_runs_code(tmp_path):
    path = tmp_path / "state_00000001.pt"
    path.write_bytes(b"\x80\x02" + bytes(range(256)) * 4)
    with pytest.raises(Pix2PixError) as e:
        load_state(path)
    assert "could run code" not in str(e.value)


@pytest.mark.parametrize("field, value, needle", [
    ("ngf", -8, "--ngf: must be in 1..4096, not -8"), ("ngf", "8", "--ngf: expected an integer, not '8'"),
    ("ngf", 8.5, "--ngf: expected an integer, not 8.5"), ("ngf", 4000, "G parameters"),
    ("ngf", 100000, "--ngf: must be in 1..4096"), ("in_channels", 10**9, "--in-channels: must be in 1..1024"),
    ("arch", "resnet_100000blocks", "from 1 to 256 blocks")])
def test_an_edited_checkpoint_is_one_line_before_anything_is_built(tmp_path, blocks, tiny, capsys, field, value,
                                                                   needle):
    """Issue 20's probes: metadata a hand (or an attacker) edited is checked like the flags, and the networks are
    sized on the meta device before a byte is allocated."""
    import json
    import time

    from safetensors import safe_open
    from safetensors.torch import save_file

    run = _train(tmp_path, blocks, tiny, "--max-steps", "1")
    path = run / "checkpoints" / "latest.safetensors"
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    generator = json.loads(meta["generator"]) | {field: value}
    edited = tmp_path / "edited.safetensors"
    save_file(load_file(str(path)), str(edited), metadata=meta | {"generator": json.dumps(generator)})
    start = time.perf_counter()
    code = main(["translate", "--checkpoint", str(edited), "--input", str(blocks / "val"), "--output",
                 str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "Traceback" not in err, err
    assert str(edited) in err and needle in err, err
    assert time.perf_counter() - start < 5


def test_a_reference_pth_with_a_missing_or_misshapen_weight_is_one_line(tmp_path, capsys):
    from pix2pix.checkpoints import load_checkpoint

    G = build_generator(GeneratorConfig(arch="unet_32", ngf=4, dropout_placement="reference"))
    state = G.state_dict()
    for name, edit in (("missing", lambda s: s.pop("model.model.3.weight")),
                       ("flat", lambda s: s.__setitem__("model.model.0.weight", torch.zeros(4))),
                       ("misshapen", lambda s: s.__setitem__("model.model.1.model.1.weight", torch.zeros(8, 4, 3, 3)))):
        edited = dict(state)
        edit(edited)
        torch.save(edited, tmp_path / f"{name}.pth")
        with pytest.raises(Pix2PixError) as e:
            load_checkpoint(tmp_path / f"{name}.pth")
        assert str(tmp_path / f"{name}.pth") in str(e.value) and "\n" not in str(e.value), name
    assert "model.model.1.model.1.weight is of shape (8, 4, 3, 3)" in str(e.value)


def test_a_pickle_that_builds_an_object_by_inst_is_refused_for_safety(tmp_path):
    """Protocol 0's INST opcode builds an object from a class (it could run code): refused, and said so."""
    path = tmp_path / "latest_net_G.pth"
    path.write_bytes(b"(S'echo hi'\nios\nsystem\n.")  # INST os.system('echo hi')
    with pytest.raises(Pix2PixError, match="refused for safety"):
        load_checkpoint(path)
