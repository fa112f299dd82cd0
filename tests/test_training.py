"""The training step, the lr schedule, and the loop's guarantees (exact resume, atomic checkpoints)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from conftest import make_pair, one_line_error, train_tiny
from pix2pix.cli import main
from pix2pix.data.rasters import to_tensor
from pix2pix.config import DiscriminatorConfig, GeneratorConfig, TrainConfig
from pix2pix.networks import build_discriminator, build_generator, init_weights
from pix2pix.training.step import Networks, lr_factor, train_step


def _nets(objective: str = "l1+cgan", gan_loss: str = "vanilla"):
    torch.manual_seed(0)
    G = init_weights(build_generator(GeneratorConfig(arch="unet_32", ngf=8)))
    D = None
    if objective != "l1":
        in_ch = 6 if objective.endswith("cgan") else 3
        D = init_weights(build_discriminator(DiscriminatorConfig(arch="patch16", in_channels=in_ch, ndf=8)))
    opt_G = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999)) if D else None
    return G, D, opt_G, opt_D


@pytest.mark.slow
def test_overfit_one_pair_lowers_l1():
    G, D, opt_G, opt_D = _nets()
    cfg = TrainConfig()
    label, photo = make_pair(np.random.default_rng(0), 32)
    A, B = to_tensor(Image.fromarray(label))[None], to_tensor(Image.fromarray(photo))[None]
    first = None
    for _ in range(120):
        losses, _ = train_step(A, B, Networks(G, D, opt_G, opt_D), cfg.loss)
        first = first if first is not None else float(losses["G_l1"])
    last = float(losses["G_l1"])
    assert last < 0.5 * first, (first, last)


def test_each_objective_trains_the_terms_it_names():
    A, B = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    expected = {"l1": {"G", "G_l1"}, "gan": {"D", "G", "G_gan"}, "cgan": {"D", "G", "G_gan"},
                "l1+gan": {"D", "G", "G_gan", "G_l1"}, "l1+cgan": {"D", "G", "G_gan", "G_l1"}}
    for objective, keys in expected.items():
        G, D, opt_G, opt_D = _nets(objective)
        g_before = [p.clone() for p in G.parameters()]
        losses, fake = train_step(A, B, Networks(G, D, opt_G, opt_D), TrainConfig(objective=objective).loss)
        assert set(losses) == keys, objective
        assert fake.shape == B.shape
        assert any(not torch.equal(a, b) for a, b in zip(g_before, G.parameters())), objective
        assert all(torch.isfinite(v) for v in losses.values())


def test_each_gan_loss_updates_d_and_wgangp_reports_its_penalty():
    A, B = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    for gan_loss in ("vanilla", "lsgan", "hinge", "wgangp"):
        G, D, opt_G, opt_D = _nets()
        d_before = [p.clone() for p in D.parameters()]
        losses, _ = train_step(A, B, Networks(G, D, opt_G, opt_D), TrainConfig(gan_loss=gan_loss).loss)
        assert any(not torch.equal(a, b) for a, b in zip(d_before, D.parameters())), gan_loss
        assert ("D_gp" in losses) == (gan_loss == "wgangp")
        # D is frozen after the step so that the G step leaves its gradients alone.
        assert not any(p.requires_grad for p in D.parameters())


def test_wgangp_critic_loss_is_gulrajanis_on_one_scale():
    """loss_D = E[D(x, G(x))] - E[D(x, y)] + lambda_gp * GP: the Wasserstein term is not halved."""
    import copy

    torch.manual_seed(0)
    G = init_weights(build_generator(GeneratorConfig(arch="unet_32", ngf=8)))
    D = init_weights(build_discriminator(DiscriminatorConfig(arch="patch16", in_channels=6, ndf=8, norm="layer")))
    opt_G, opt_D = torch.optim.Adam(G.parameters()), torch.optim.Adam(D.parameters())
    A, B = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    D0, loss = copy.deepcopy(D), TrainConfig(gan_loss="wgangp", lambda_gp=10.0).loss
    losses, fake = train_step(A, B, Networks(G, D, opt_G, opt_D), loss)
    with torch.no_grad():
        wasserstein = D0(torch.cat([A, fake], 1)).mean() - D0(torch.cat([A, B], 1)).mean()
    assert float(losses["D_gp"]) > 0
    torch.testing.assert_close(losses["D"], wasserstein + 10.0 * losses["D_gp"], atol=1e-5, rtol=1e-5)


def test_one_step_is_the_papers_alternation_written_out():
    """One train_step equals, to the last bit that fp32 allows, the paper's iteration written out here: D steps
    on (x, y) and the detached (x, G(x)), then G steps through the updated D frozen, with lambda = 100 L1. A step
    that leaves D unfrozen in the G step (its gradients then hold the G loss's, and a later D step moves it) or
    lets the D step reach G fails this."""
    import copy

    import torch.nn.functional as F

    torch.manual_seed(0)
    G = init_weights(build_generator(GeneratorConfig(arch="unet_32", ngf=8, dropout=0.0)))  # no noise: comparable
    D = init_weights(build_discriminator(DiscriminatorConfig(arch="patch16", in_channels=6, ndf=8)))
    G0, D0 = copy.deepcopy(G), copy.deepcopy(D)
    adam = lambda net: torch.optim.Adam(net.parameters(), lr=2e-4, betas=(0.5, 0.999))  # noqa: E731
    opt_G, opt_D, opt_G0, opt_D0 = adam(G), adam(D), adam(G0), adam(D0)
    A, B = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    train_step(A, B, Networks(G, D, opt_G, opt_D), TrainConfig().loss)

    bce = lambda logits, target: F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))  # noqa
    fake = G0(A)
    pred_fake = D0(torch.cat([A, fake.detach()], 1))  # fake first, as the reference (batch-norm statistics)
    loss_D = 0.5 * (bce(D0(torch.cat([A, B], 1)), 1.0) + bce(pred_fake, 0.0))
    opt_D0.zero_grad()
    loss_D.backward()
    opt_D0.step()
    d_grads = [p.grad.clone() for p in D0.parameters()]
    assert all(p.grad is None for p in G0.parameters())  # the D step never reached G
    D0.requires_grad_(False)
    loss_G = bce(D0(torch.cat([A, fake], 1)), 1.0) + 100.0 * F.l1_loss(fake, B)
    opt_G0.zero_grad()
    loss_G.backward()
    opt_G0.step()

    for mine, paper in ((D, D0), (G, G0)):
        for (name, a), b in zip(mine.state_dict().items(), paper.state_dict().values()):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    for p, g in zip(D.parameters(), d_grads):  # D's gradients are its own step's only
        torch.testing.assert_close(p.grad, g, rtol=1e-5, atol=1e-7)


def test_lr_schedule_constant_then_linear_to_zero():
    s, e, d = 10, 2, 3  # 10 steps per epoch, 2 constant epochs, 3 decaying
    assert [lr_factor(t, s, e, d) for t in (0, 19, 20)] == [1.0, 1.0, 1.0]
    assert lr_factor(21, s, e, d) == (50 - 21) / 30
    last = lr_factor(49, s, e, d)
    assert 0 < last == 1 / 30  # the last step still learns; 0 would come only after training ends
    values = [lr_factor(t, s, e, d) for t in range(20, 50)]
    assert all(a > b for a, b in zip(values, values[1:]))
    assert lr_factor(5, s, 4, 0) == 1.0  # no decay epochs: constant, as the Lua code


def _weights(run):
    return load_file(str(run / "checkpoints" / "latest.safetensors"))


def test_resume_equals_uninterrupted_bit_for_bit(tmp_path, blocks, tiny):
    # 4 pairs at batch 1: an epoch is 4 steps, so stopping at 3 and going on to 7 crosses an epoch boundary.
    common = ["train", "--data", str(blocks), "--runs", str(tmp_path / "runs"), "--seed", "3", *tiny]
    assert main(common + ["--name", "straight", "--max-steps", "7"]) == 0
    assert main(common + ["--name", "split", "--max-steps", "3"]) == 0
    partial = _weights(tmp_path / "runs" / "split")
    assert main(["train", "--resume", str(tmp_path / "runs" / "split"), "--max-steps", "7", "--no-progress"]) == 0
    straight, resumed = _weights(tmp_path / "runs" / "straight"), _weights(tmp_path / "runs" / "split")
    assert straight.keys() == resumed.keys()
    assert any(not torch.equal(partial[k], straight[k]) for k in straight)  # training moved on after the stop
    mismatched = [k for k in straight if not torch.equal(straight[k], resumed[k])]
    assert mismatched == []


@pytest.mark.slow
def test_resume_with_loader_workers_matches_a_run_without(tmp_path, blocks, tiny):
    common = ["train", "--data", str(blocks), "--runs", str(tmp_path / "runs"), *tiny, "--preload", "no"]
    assert main(common + ["--name", "a", "--max-steps", "5"]) == 0
    assert main(common + ["--name", "b", "--max-steps", "2", "--workers", "1"]) == 0
    assert main(["train", "--resume", str(tmp_path / "runs" / "b"), "--max-steps", "5", "--workers", "1",
                 "--no-progress"]) == 0
    a, b = _weights(tmp_path / "runs" / "a"), _weights(tmp_path / "runs" / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_preloaded_split_trains_exactly_as_the_loader_does(tmp_path, blocks, tiny):
    common = ["train", "--data", str(blocks), "--runs", str(tmp_path / "runs"), *tiny, "--max-steps", "6"]
    assert main(common + ["--name", "loader", "--preload", "no"]) == 0
    assert main(common + ["--name", "preloaded", "--preload", "yes"]) == 0
    a, b = _weights(tmp_path / "runs" / "loader"), _weights(tmp_path / "runs" / "preloaded")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_batch_that_does_not_fit_is_one_line(tmp_path, blocks, tiny, capsys, monkeypatch):
    import pix2pix.training.loop as loop

    def too_big(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(loop, "train_step", too_big)
    code = main(["train", "--data", str(blocks), "--runs", str(tmp_path / "runs"), *tiny, "--batch-size", "4"])
    one_line_error(capsys, code, "batch 4 at 32x32 does not fit in cpu memory; lower --batch-size")


def test_the_progress_bar_counts_every_step(tmp_path, blocks, tiny, capsys):
    flags = [f for f in tiny if f != "--no-progress"]
    assert main(["train", "--data", str(blocks), "--runs", str(tmp_path / "runs"), "--max-steps", "5", *flags]) == 0
    assert "5/5" in capsys.readouterr().err


def _state(run):
    from pix2pix.checkpoints import load_latest

    return load_latest(run / "checkpoints")[1]


def test_a_full_schedule_ends_with_its_last_epoch_saved(tmp_path, blocks, tiny):
    # 4 pairs at batch 1, 1 + 1 epochs: 8 steps; the last step ends epoch 2, which is snapshot and recorded.
    run = train_tiny(tmp_path, blocks, tiny, "--epochs", "1", "--epochs-decay", "1", "--snapshot-every", "1")
    state = _state(run)
    assert (state.step, state.epoch, state.batch_in_epoch) == (8, 2, 0)
    assert {p.name for p in (run / "checkpoints").glob("epoch_*")} == {"epoch_001.safetensors", "epoch_002.safetensors"}


def test_an_epoch_whose_last_image_is_unreadable_still_ends(tmp_path, blocks, tiny):
    # With --no-flip and the seed's order known, make the last example of epoch 0 the bad one.
    from pix2pix.data.batches import EpochSampler

    last = int(EpochSampler(4, seed=0).order(0)[-1])
    (blocks / "train" / f"{last + 1}.png").write_bytes(b"not a png")
    run = train_tiny(tmp_path, blocks, tiny, "--skip-bad-images", "--epochs", "1", "--epochs-decay", "1",
                     "--snapshot-every", "1", "--max-steps", "4")
    state = _state(run)
    assert state.step == 4 and state.epoch == 1  # 3 steps in epoch 0, its end marked, 1 step into epoch 1
    assert (run / "checkpoints" / "epoch_001.safetensors").exists()
    assert len(state.bad_images) == 1 and f"{last + 1}.png" in state.bad_images[0]


def test_a_bad_image_after_the_last_step_does_not_stop_the_run(tmp_path, blocks, tiny):
    from pix2pix.data.batches import EpochSampler

    order = EpochSampler(4, seed=0).order(0)
    (blocks / "train" / f"{int(order[2]) + 1}.png").write_bytes(b"not a png")  # the third example of epoch 0
    run = train_tiny(tmp_path, blocks, tiny, "--max-steps", "2")
    assert _state(run).step == 2


def test_resuming_at_an_epochs_end_ends_that_epoch_first(tmp_path, blocks, tiny):
    import torch

    from pix2pix.checkpoints import load_latest, save_state

    run = train_tiny(tmp_path, blocks, tiny, "--epochs", "2", "--epochs-decay", "0", "--snapshot-every", "1",
                     "--max-steps", "3")
    # A run saved at step 4 before its epoch's end was recorded (a crash right after a --save-every save).
    assert main(["train", "--resume", str(run), "--max-steps", "4", "--no-progress"]) == 0
    ckpt, state = load_latest(run / "checkpoints")
    state.epoch, state.batch_in_epoch = 0, 4
    save_state(run / "checkpoints" / ckpt.meta["state"], state)
    (run / "checkpoints" / "epoch_001.safetensors").unlink()
    assert main(["train", "--resume", str(run), "--max-steps", "5", "--no-progress"]) == 0
    assert (run / "checkpoints" / "epoch_001.safetensors").exists()
    state = _state(run)
    assert (state.step, state.epoch, state.batch_in_epoch) == (5, 1, 1)
    assert torch.is_tensor(state.rng[0]["cpu"])


def test_no_fast_on_resume_really_switches_adams_kernel(tmp_path, blocks, tiny):
    """The saved optimizer state carries the fused flag of the run that saved it; a resume keeps its own."""
    from pix2pix.config import RunConfig
    from pix2pix.training.guards import StopRequests
    from pix2pix.training.loop import fit
    from pix2pix.training.setup import setup

    run = train_tiny(tmp_path, blocks, tiny, "--max-steps", "2")
    saved = torch.load(next((run / "checkpoints").glob("state_*.pt")), weights_only=True)
    assert saved["opt_G"]["param_groups"][0]["fused"] is True  # the fast path's kernel
    cfg = RunConfig.load(run / "config.json")
    cfg.train.fast, cfg.train.max_steps = False, 3
    s = setup(cfg, resume=True, progress=False)
    try:
        for opt in (s.nets.opt_G, s.nets.opt_D):
            assert not opt.param_groups[0]["fused"] and not opt.param_groups[0]["foreach"]
            assert opt.state_dict()["state"], "the moments were loaded"
        assert fit(s, StopRequests()).step == 3
    finally:
        s.close()


def test_the_fp16_step_scales_gradients_and_trains(tmp_path):
    """fp16 autocast with a gradient scaler per network (the policy for CUDA 7.x GPUs), here on the CPU: the
    step, WGAN-GP's scaled penalty included, trains and reports the same penalty as fp32 within fp16's error."""
    from pix2pix.speed import Precision, Speed

    amp = Precision(torch.device("cpu"), Speed(amp="fp16"))
    assert set(amp.scalers) == {"G", "D"} and float(amp.loss_scale("D")) == 65536.0
    torch.manual_seed(0)
    G = init_weights(build_generator(GeneratorConfig(arch="unet_32", ngf=8)))
    D = init_weights(build_discriminator(DiscriminatorConfig(arch="patch16", in_channels=6, ndf=8, norm="layer")))
    opt_G, opt_D = torch.optim.Adam(G.parameters()), torch.optim.Adam(D.parameters())
    A, B = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    d_before = [p.clone() for p in D.parameters()]
    for _ in range(3):
        losses, fake = train_step(A, B, Networks(G, D, opt_G, opt_D), TrainConfig(gan_loss="wgangp").loss, amp=amp)
    assert all(torch.isfinite(v) for v in losses.values())
    assert any(not torch.equal(a, b) for a, b in zip(d_before, D.parameters()))
    assert amp.state_dict()["D"]["scale"] > 0
    from pix2pix.training.losses import gradient_penalty

    torch.manual_seed(5)
    gp32 = gradient_penalty(D, A, B, fake)
    torch.manual_seed(5)
    with amp():
        gp16 = gradient_penalty(D, A, B, fake, scale=amp.loss_scale("D"))
    assert float(gp16.detach()) == pytest.approx(float(gp32.detach()), rel=2e-2)


def test_the_gradient_penalty_runs_through_the_eager_d():
    """Under torch.compile or DistributedDataParallel the D step's module cannot be differentiated twice: the
    penalty goes through the bare D (Networks.D), the D step's two passes through its view (Networks.D_step)."""
    class Counted(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net, self.calls = net, 0

        def forward(self, x):
            self.calls += 1
            return self.net(x)

    G, D, opt_G, opt_D = _nets()
    stepped, eager, frozen = Counted(D), Counted(D), Counted(D)
    A, B = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    train_step(A, B, Networks(G, eager, opt_G, opt_D, D_step=stepped, D_frozen=frozen), TrainConfig(gan_loss="wgangp").loss)
    assert (stepped.calls, eager.calls, frozen.calls) == (2, 1, 1)


def test_init_from_starts_a_new_run_from_a_checkpoints_weights(tmp_path, blocks, tiny, capsys):
    """Fine-tuning: step 0, fresh optimizers, G and D from the source; the architecture comes from it, and the
    source is recorded."""
    from pix2pix.checkpoints import load_checkpoint
    from pix2pix.config import RunConfig

    source = train_tiny(tmp_path, blocks, tiny, "--max-steps", "3", name="source")
    args = ["train", "--data", str(blocks), "--runs", str(tmp_path / "runs"), "--name", "tuned", "--init-from",
            str(source), "--crop-size", "32", "--load-size", "32", "--max-steps", "1", "--lr", "1e-30",
            "--no-progress"]
    assert main(args) == 0
    assert "trains with its --generator unet_32, --ngf 4" in capsys.readouterr().out  # said in one line
    tuned = load_checkpoint(tmp_path / "runs" / "tuned")
    src = load_checkpoint(source)
    assert tuned.meta["step"] == 1 and tuned.generator == src.generator  # ngf 4 from the source, not 64
    for mine, theirs in ((tuned.generator_state, src.generator_state),
                         (tuned.discriminator_state, src.discriminator_state)):
        floats = [k for k in theirs if theirs[k].is_floating_point() and "running" not in k]
        assert all(torch.allclose(mine[k], theirs[k], atol=1e-6) for k in floats)
    cfg = RunConfig.load(tmp_path / "runs" / "tuned" / "config.json")
    assert cfg.train.init_from == str((source / "checkpoints" / "latest.safetensors").resolve())
    one_line_error(capsys, main(args[:5] + ["--name", "bad", "--init-from", str(source), "--ngf", "8"]),
                   "its generator has --ngf 4, not 8")
    one_line_error(capsys, main(args[:5] + ["--name", "bad2", "--init-from", str(tmp_path / "nothing")]),
                   "nothing")


def test_a_resume_may_lengthen_the_schedule(tmp_path, blocks, tiny, capsys):
    """4 pairs at batch 1: 1 + 1 epochs end at step 8; resumed with 2 + 2, the run goes on to step 16, the lr
    recomputed from the new totals at the saved step; a schedule that would end before it is one line."""
    from pix2pix.checkpoints import load_checkpoint
    from pix2pix.training.runs import read_log

    run = train_tiny(tmp_path, blocks, tiny, "--epochs", "1", "--epochs-decay", "1", "--log-every", "1")
    assert load_checkpoint(run).meta["step"] == 8
    one_line_error(capsys, main(["train", "--resume", str(run), "--epochs", "0", "--epochs-decay", "1",
                                 "--no-progress"]), "that schedule ends at step 4, before the run's saved step 8")
    assert main(["train", "--resume", str(run), "--epochs", "2", "--epochs-decay", "2", "--no-progress"]) == 0
    assert load_checkpoint(run).meta["step"] == 16
    lrs = {int(r["step"]): r["lr"] for r in read_log(run / "losses.csv")}
    # After step t the lr is 2e-4 * min(1, (16 - t) / 8): full again at step 8 of the longer schedule.
    assert lrs[9] == pytest.approx(2e-4 * 7 / 8) and lrs[16] == pytest.approx(0.0)


def test_a_plan_of_hours_on_a_cpu_is_warned_of_before_the_first_step(tmp_path, blocks, tiny, capsys):
    """The paper's schedule of a large dataset on a CPU: train says how long it would take, and names the CPU
    recipe, before it takes a step."""
    code = main(["train", "--data", str(blocks), "--runs", str(tmp_path / "runs"), *tiny, "--epochs", "2000000",
                 "--epochs-decay", "0", "--max-steps", "1", "--device", "cpu"])
    said = capsys.readouterr()
    assert code == 0
    warning = [line for line in said.err.splitlines() if "hours on this CPU" in line]
    assert len(warning) == 1 and "--preset cpu" in warning[0]
    assert "planned: about" in said.out and said.out.index("planned: about") < said.out.index("stopped at --max-steps")


def test_a_short_plan_is_not_warned_of(tmp_path, blocks, tiny, capsys):
    assert main(["train", "--data", str(blocks), "--runs", str(tmp_path / "runs"), *tiny, "--max-steps", "2"]) == 0
    said = capsys.readouterr()
    assert "planned: about" in said.out and "hours on this CPU" not in said.err


def test_the_cpu_preset_sizes_its_schedule_to_the_minutes_given(tmp_path, blocks, capsys):
    """--preset cpu: the demo's networks and a schedule of the paper's shape that fits --minutes (and stops
    there); the old spelling --max-minutes still works and says the new one."""
    from pix2pix.config import RunConfig

    code = main(["train", "--preset", "cpu", "--data", str(blocks), "--runs", str(tmp_path / "runs"), "--name", "c",
                 "--crop-size", "32", "--generator", "unet_32", "--max-minutes", "0.05", "--no-progress"])
    said = capsys.readouterr()
    assert code == 0 and "--max-minutes is now --minutes" in said.err
    cfg = RunConfig.load(tmp_path / "runs" / "c" / "config.json")
    assert (cfg.generator.ngf, cfg.discriminator.ndf, cfg.data.batch_size) == (32, 32, 1)
    assert cfg.train.epochs == cfg.train.epochs_decay >= 1  # the paper's shape: half constant, half decaying
    assert "timing a step here to size the schedule to 0.05 minutes" in said.out
    assert "validation at step" in said.out


def test_the_cpu_preset_refuses_several_processes(tmp_path, blocks, capsys):
    one_line_error(capsys, main(["train", "--preset", "cpu", "--nproc", "2", "--data", str(blocks)]),
                   "--preset cpu sizes its schedule for one process")


def test_the_cpu_preset_takes_both_epoch_counts_or_neither(tmp_path, blocks, capsys):
    one_line_error(capsys, main(["train", "--preset", "cpu", "--data", str(blocks), "--epochs", "3"]),
                   "give both, or neither")


def test_the_old_spelling_of_the_runs_folder_still_works_and_says_the_new_one(tmp_path, blocks, tiny, capsys):
    assert main(["train", "--data", str(blocks), "--out", str(tmp_path / "old"), "--name", "r", *tiny,
                 "--max-steps", "1"]) == 0
    assert "--out is now --runs" in capsys.readouterr().err
    assert (tmp_path / "old" / "r" / "checkpoints" / "latest.safetensors").exists()


def test_every_runs_samples_page_shows_its_curves(tmp_path, blocks, tiny):
    run = train_tiny(tmp_path, blocks, tiny, "--max-steps", "6", "--val-every", "3")
    page = (run / "web" / "index.html").read_text()
    assert "src='curves.png'" in page and (run / "web" / "curves.png").stat().st_size > 5000
