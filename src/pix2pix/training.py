"""Training: the paper's step as a plain function, the lr schedule, and the loop around them.

Objective (Isola et al., eq. 4):  G* = arg min_G max_D  L_cGAN(G, D) + lambda * L_L1(G).
Each iteration takes one D step on a real pair and a (detached) fake pair, then one G step with D frozen.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .checkpoints import load_checkpoint, load_into, load_state, save_state, save_weights
from .config import DiscriminatorConfig, RunConfig, TrainConfig
from .data import EpochSampler, PairDataset, PreloadedPairs, make_loader, scan_split, to_image
from .distributed import (agree, gather_rng_states, join, leave, mean_over_processes, set_rng_state, sync_batch_norm,
                          world_from_env)
from .errors import Pix2PixError
from .losses import d_loss, g_loss, gradient_penalty
from .networks import build_discriminator, build_generator, init_weights
from .speed import PLAIN, Speed, adam, autocast, compiled, configure, device_free_bytes, fast_path, prepare, to_device
from .webpage import write_page

# ------------------------------------------------------------------------------------------ step


def is_conditional(objective: str) -> bool:
    return objective.endswith("cgan")


def uses_gan(objective: str) -> bool:
    return objective != "l1"


def train_step(real_A: torch.Tensor, real_B: torch.Tensor, G: nn.Module, D: nn.Module | None,
               opt_G: torch.optim.Optimizer, opt_D: torch.optim.Optimizer | None,
               cfg: TrainConfig, amp=contextlib.nullcontext,
               D_frozen: nn.Module | None = None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """One pix2pix iteration on a batch (x = real_A, y = real_B). Returns detached losses and G(x).

    The losses stay on the device: reading them is a host sync, so the loop does it only every few steps.
    ``amp`` is the fast path's autocast for the forward passes. ``D_frozen`` is the D the G step runs through
    (default ``D``): under torchrun the D step goes through DistributedDataParallel and the G step, which
    must not touch D's gradients, through the bare module.
    """
    conditional = is_conditional(cfg.objective)
    use_l1 = cfg.objective.startswith("l1")

    def d_input(b: torch.Tensor) -> torch.Tensor:  # a conditional D sees (x, y); an unconditional one y only
        return torch.cat([real_A, b], 1) if conditional else b

    with amp():
        fake_B = G(real_A)  # G(x, z): the noise z is dropout
    losses: dict[str, torch.Tensor] = {}

    if D is not None:
        # D step: maximise log D(x, y) + log(1 - D(x, G(x))), halved; the fake is detached so G is untouched.
        D.requires_grad_(True)
        opt_D.zero_grad(set_to_none=True)
        with amp():
            pred_fake = D(d_input(fake_B.detach()))
            pred_real = D(d_input(real_B))
            loss_D = d_loss(cfg.gan_loss, pred_real.float(), pred_fake.float())
            if cfg.gan_loss == "wgangp":
                gp = gradient_penalty(D, real_A if conditional else None, real_B, fake_B.detach())
                losses["D_gp"] = gp.detach()
                loss_D = loss_D + cfg.lambda_gp * gp
        loss_D.backward()
        opt_D.step()
        losses["D"] = loss_D.detach()
        D.requires_grad_(False)  # D is frozen for the G step

    # G step: fool D (non-saturating: maximise log D(x, G(x))) and stay close to y in L1.
    opt_G.zero_grad(set_to_none=True)
    loss_G = real_B.new_zeros(())
    if D is not None:
        with amp():
            pred = (D_frozen or D)(d_input(fake_B))
        loss_G_gan = g_loss(cfg.gan_loss, pred.float())
        losses["G_gan"] = loss_G_gan.detach()
        loss_G = loss_G + loss_G_gan
    if use_l1:
        loss_G_l1 = F.l1_loss(fake_B.float(), real_B) * cfg.lambda_l1
        losses["G_l1"] = loss_G_l1.detach()
        loss_G = loss_G + loss_G_l1
    loss_G.backward()
    opt_G.step()
    losses["G"] = loss_G.detach()
    return losses, fake_B.detach()


def lr_factor(step: int, steps_per_epoch: int, epochs: int, epochs_decay: int) -> float:
    """Constant for ``epochs`` epochs, then linear to zero over ``epochs_decay`` epochs, per step:

        factor(t) = min(1, (S * (E + D) - t) / (S * D)),   t = optimizer steps taken, S = steps per epoch.

    The first decaying step runs at the full lr, the last at lr / (S * D); the lr would reach 0 only after
    the final step. (The reference decays per epoch, starting one epoch early and ending on an epoch at 0.)
    """
    if epochs_decay <= 0:
        return 1.0
    s, total = steps_per_epoch, steps_per_epoch * (epochs + epochs_decay)
    return max(0.0, min(1.0, (total - step) / (s * epochs_decay)))


# ------------------------------------------------------------------------------------------ loop


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise Pix2PixError("--device cuda: no CUDA device is available here; use --device auto or cpu")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise Pix2PixError("--device mps: no Apple MPS device is available here; use --device auto or cpu")
    if name not in ("cpu", "cuda", "mps"):
        raise Pix2PixError(f"unknown --device '{name}'; choose from auto, cpu, cuda, mps")
    return torch.device(name)


def discriminator_config(cfg: RunConfig) -> DiscriminatorConfig | None:
    """The D the objective needs: none for L1 alone; it sees (x, y) if conditional, y alone if not."""
    if not uses_gan(cfg.train.objective):
        return None
    g = cfg.generator
    in_channels = g.in_channels + g.out_channels if is_conditional(cfg.train.objective) else g.out_channels
    return DiscriminatorConfig(**{**cfg.discriminator.__dict__, "in_channels": in_channels})


def measure_step_seconds(cfg: RunConfig, steps: int = 5, warmup: int = 2, speed: Speed | None = None) -> float:
    """Seconds per training step of ``cfg``'s networks, loss and batch size on random data (no data loading),
    after ``warmup`` steps, on the fast path ``cfg.train.fast`` selects (or ``speed``). For planning a run that
    has to fit a time budget, and for ``pix2pix bench``."""
    device = resolve_device(cfg.train.device)
    speed = fast_path(device, cfg.train.fast) if speed is None else speed
    configure(device, speed)
    g, d, t = cfg.generator, discriminator_config(cfg), cfg.train
    G = prepare(init_weights(build_generator(g)).to(device), speed)
    D = prepare(init_weights(build_discriminator(d)).to(device), speed) if d else None
    opt_G, opt_D = adam(G.parameters(), t, speed), adam(D.parameters(), t, speed) if D else None
    G_step, D_step = compiled(G, speed), compiled(D, speed) if D else None
    n, size = cfg.data.batch_size, cfg.data.crop_size
    A = to_device(torch.rand(n, g.in_channels, size, size) * 2 - 1, device, speed)
    B = to_device(torch.rand(n, g.out_channels, size, size) * 2 - 1, device, speed)
    amp = lambda: autocast(device, speed)  # noqa: E731
    for i in range(warmup + steps):
        if i == warmup:
            start = time.perf_counter()
        losses, _ = train_step(A, B, G_step, D_step, opt_G, opt_D, t, amp=amp)
        if speed == PLAIN or i == warmup + steps - 1:
            float(losses["G"])  # a host sync: the reference reads its losses every step, the fast path not
    return (time.perf_counter() - start) / steps


@dataclass
class TrainResult:
    run_dir: Path
    checkpoint: Path
    page: Path
    step: int
    epoch: int
    seconds: float
    images: int
    bad_images: list[str]
    interrupted: bool = False
    out_of_time: bool = False


class Trainer:
    """Builds everything a run needs from a :class:`RunConfig`, then :meth:`fit` runs the loop."""

    def __init__(self, cfg: RunConfig, resume: bool = False, progress: bool = True):
        self.cfg = cfg
        t = cfg.train
        self.world = world_from_env()
        self.device = resolve_device(t.device)
        if self.world.distributed:
            self.device = join(self.world, self.device)
        self.progress = progress and self.world.main
        self.speed = fast_path(self.device, t.fast)
        configure(self.device, self.speed)
        self.run_dir = cfg.run_dir
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.web_dir = self.run_dir / "web"
        _make_writable(self.run_dir)
        if not resume and (self.ckpt_dir / "latest.safetensors").exists():
            raise Pix2PixError(f"{self.run_dir} already holds a run; continue it with --resume {self.run_dir}, "
                               "or choose another --name")
        if self.world.main:
            self.ckpt_dir.mkdir(exist_ok=True)
            (self.web_dir / "images").mkdir(parents=True, exist_ok=True)

        pairs, problems = scan_split(Path(cfg.data.root), "train")
        self.bad_images: list[str] = []
        if problems:
            if not cfg.data.skip_bad_images:
                raise Pix2PixError(_bad_image_hint(problems[0], len(problems)))
            self.bad_images += problems
        if not pairs:
            raise Pix2PixError(f"--data {cfg.data.root}: no usable images in the 'train' split")
        g, batch = cfg.generator, cfg.data.batch_size
        self.sampler = EpochSampler(len(pairs), t.seed, batch_size=batch,
                                    world=self.world if self.world.distributed else None)
        self.preloaded = self._preload(pairs)
        if self.preloaded is None:
            dataset = PairDataset(pairs, cfg.data, g.in_channels, g.out_channels, train=True, seed=t.seed)
            self.loader = make_loader(dataset, batch, cfg.data.workers, self.sampler,
                                      pin_memory=self.device.type == "cuda")
        self.steps_per_epoch = math.ceil(len(pairs) / (batch * self.world.size))
        self.total_epochs = t.epochs + t.epochs_decay
        self.total_steps = self.steps_per_epoch * self.total_epochs
        if t.max_steps is not None:
            self.total_steps = min(self.total_steps, t.max_steps)

        torch.manual_seed(t.seed)  # the same initial weights in every process
        self.D_cfg = discriminator_config(cfg)
        G = init_weights(build_generator(g), t.init, t.init_gain)
        D = init_weights(build_discriminator(self.D_cfg), t.init, t.init_gain) if self.D_cfg else None
        if self.world.distributed:
            G = sync_batch_norm(G, self.device)
            D = sync_batch_norm(D, self.device) if D else None
        if self.world.rank:
            torch.manual_seed(self._process_seed(0))  # each process its own dropout noise
        self.G = prepare(G.to(self.device), self.speed)
        self.D = prepare(D.to(self.device), self.speed) if D else None
        self.opt_G = adam(self.G.parameters(), t, self.speed)
        self.opt_D = adam(self.D.parameters(), t, self.speed) if self.D else None
        schedule = lambda step: lr_factor(step, self.steps_per_epoch, t.epochs, t.epochs_decay)  # noqa: E731
        self.schedulers = [torch.optim.lr_scheduler.LambdaLR(o, schedule) for o in (self.opt_G, self.opt_D) if o]
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        if resume:
            self._load_latest()
        if self.world.main:
            cfg.save(self.run_dir / "config.json")
        self.G.train()
        if self.D:
            self.D.train()
        # What the step runs: DistributedDataParallel under torchrun, compiled on the fast path where it pays.
        ddp = self._ddp if self.world.distributed else (lambda m: m)
        self.G_step = compiled(ddp(self.G), self.speed)
        self.D_step = compiled(ddp(self.D), self.speed) if self.D else None
        self.D_frozen = (compiled(self.D, self.speed) if self.world.distributed else self.D_step) if self.D else None
        self.amp = lambda: autocast(self.device, self.speed)

    def _process_seed(self, step: int) -> int:
        return self.cfg.train.seed + 1_000_003 * self.world.rank + step

    def _ddp(self, module: nn.Module) -> nn.Module:
        ids = [self.device.index] if self.device.type == "cuda" else None
        # SyncBatchNorm keeps the buffers equal on every process, so DDP need not broadcast them.
        return nn.parallel.DistributedDataParallel(module, device_ids=ids, broadcast_buffers=False)

    def _preload(self, pairs: list) -> PreloadedPairs | None:
        """The training split held on the device when --preload says so, or (auto) on the fast path when it
        takes at most a quarter of the device's free memory (an eighth of RAM on the CPU)."""
        d, g = self.cfg.data, self.cfg.generator
        if d.preload == "no" or (d.preload == "auto" and not self.cfg.train.fast) or self.bad_images:
            return None
        try:
            need = PreloadedPairs.estimate_bytes(pairs[0], len(pairs), d, g.in_channels, g.out_channels)
        except Pix2PixError:
            if d.preload == "yes":
                raise
            return None  # the loader reports the bad image (or skips it) as usual
        free = device_free_bytes(self.device)
        if need > free // (4 if self.device.type == "cuda" else 8):
            if d.preload == "yes":
                raise Pix2PixError(f"--preload yes: the training split needs {need / 2**30:.1f} GiB on "
                                   f"{self.device.type}, more than it can spare; use --preload auto or no")
            return None
        try:
            return PreloadedPairs(pairs, d, g.in_channels, g.out_channels, self.cfg.train.seed, self.device,
                                  threads=max(1, d.workers))
        except Pix2PixError:
            if d.preload == "yes":
                raise
            return None

    # --------------------------------------------------------------------------- checkpoints

    def save(self, snapshot: str | None = None, every_process: bool = True) -> Path:
        """Write latest (and a snapshot). Under torchrun every process calls this at the same step
        (``every_process``) so the main one can store each process's random state; after an interrupt only the
        main one's is stored, and the others start fresh noise on resume."""
        latest = self.ckpt_dir / "latest.safetensors"
        rng = gather_rng_states(self.device) if every_process and self.world.distributed else None
        if not self.world.main:
            return latest
        meta = dict(step=self.step, epoch=self.epoch, config=self.cfg.to_dict())
        # The state file is named by its step and the weights name theirs: a crash between the two writes
        # leaves the previous weights pointing at the previous state, which is deleted only afterwards.
        state_path = self.ckpt_dir / f"state_{self.step:08d}.pt"
        save_state(state_path, {
            "step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
            "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict() if self.opt_D else None,
            "schedulers": [s.state_dict() for s in self.schedulers],
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else None,
            "rng_processes": rng,
            "bad_images": self.bad_images,
        })
        save_weights(latest, self.G, self.cfg.generator, self.D, self.D_cfg, state=state_path.name, **meta)
        for old in self.ckpt_dir.glob("state_*.pt"):
            if old != state_path:
                old.unlink()
        if snapshot:
            save_weights(self.ckpt_dir / f"{snapshot}.safetensors", self.G, self.cfg.generator, self.D,
                         self.D_cfg, **meta)
        return latest

    def _load_latest(self) -> None:
        ckpt = load_checkpoint(self.ckpt_dir / "latest.safetensors")
        state = load_state(self.ckpt_dir / ckpt.meta.get("state", "state_missing.pt"))
        load_into(self.G, ckpt.generator_state, ckpt.path, f"generator {self.cfg.generator.arch}")
        if self.D is not None:
            load_into(self.D, ckpt.discriminator_state, ckpt.path, f"discriminator {self.D_cfg.arch}")
            self.opt_D.load_state_dict(state["opt_D"])
        self.opt_G.load_state_dict(state["opt_G"])
        for sched, s in zip(self.schedulers, state["schedulers"]):
            sched.load_state_dict(s)
        per_process = state.get("rng_processes")
        if per_process is not None and len(per_process) == self.world.size:
            set_rng_state(per_process[self.world.rank], self.device)
        elif self.world.main:
            torch.set_rng_state(state["rng_cpu"])
            if state["rng_cuda"] is not None and self.device.type == "cuda":
                torch.cuda.set_rng_state_all(state["rng_cuda"])
        else:  # saved by a different number of processes, or after an interrupt: fresh noise for this one
            torch.manual_seed(self._process_seed(state["step"]))
        self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        self.bad_images = list(state.get("bad_images", []))

    # ---------------------------------------------------------------------------------- loop

    def fit(self) -> TrainResult:
        t = self.cfg.train
        writer = None
        if self.world.main:
            from torch.utils.tensorboard import SummaryWriter  # slow import; only when training

            writer = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=self.step or None)
            _truncate_log(self.run_dir / "losses.csv", self.step)  # rows past a resumed step are from a lost future
        bar = tqdm(total=self.total_steps, initial=self.step, disable=not self.progress, unit="step",
                   dynamic_ncols=True)
        start, images, interrupted, running_steps = time.perf_counter(), 0, False, 0
        deadline = start + 60 * t.max_minutes if t.max_minutes else float("inf")
        running: dict[str, torch.Tensor] = {}  # loss sums since the last log, still on the device
        try:
            while self.epoch < self.total_epochs and self.step < self.total_steps:
                self.sampler.set_epoch(self.epoch, self.batch_in_epoch * self.cfg.data.batch_size)
                batches = (self.preloaded.batches(self.sampler, self.cfg.data.batch_size) if self.preloaded
                           else self.loader)
                for batch in batches:
                    self.batch_in_epoch += 1
                    if batch["errors"]:
                        if not self.cfg.data.skip_bad_images:
                            raise Pix2PixError(_bad_image_hint(batch["errors"][0], 1))
                        self.bad_images += [e for e in batch["errors"] if e not in self.bad_images]
                    if "A" not in batch:
                        continue
                    real_A = to_device(batch["A"], self.device, self.speed)
                    real_B = to_device(batch["B"], self.device, self.speed)
                    losses, fake_B = train_step(real_A, real_B, self.G_step, self.D_step, self.opt_G, self.opt_D,
                                                t, amp=self.amp, D_frozen=self.D_frozen)
                    for s in self.schedulers:
                        s.step()
                    self.step += 1
                    images += real_A.shape[0] * self.world.size
                    bar.update(1)
                    for k, v in losses.items():
                        running[k] = running.get(k, 0) + v
                    running_steps += 1
                    out_of_time = time.perf_counter() > deadline
                    if self.world.distributed and deadline != float("inf"):
                        out_of_time = agree(out_of_time, self.device)  # every process stops at the same step
                    last = self.step == self.total_steps or out_of_time
                    if self.step % t.log_every == 0 or last:
                        self._log(writer, bar, mean_over_processes(running), running_steps, images, start)
                        running, running_steps = {}, 0
                    if self.world.main and (self.step % t.sample_every == 0 or last):
                        self._sample(writer, real_A[0], fake_B[0], real_B[0])
                    if self.step % t.save_every == 0:
                        self.save()
                    if last:
                        break
                else:
                    self.epoch, self.batch_in_epoch = self.epoch + 1, 0
                    keep = t.snapshot_every and self.epoch % t.snapshot_every == 0
                    self.save(snapshot=f"epoch_{self.epoch:03d}" if keep else None)
                    continue
                break  # max steps or minutes reached mid-epoch
        except KeyboardInterrupt:
            interrupted = True
        except (torch.OutOfMemoryError, RuntimeError) as e:
            if not _out_of_memory(e):
                raise
            raise Pix2PixError(f"batch {self.cfg.data.batch_size} at {self.cfg.data.crop_size}x"
                               f"{self.cfg.data.crop_size} does not fit in {self.device} memory; lower "
                               "--batch-size or --crop-size, or use a smaller --generator") from None
        finally:
            bar.close()
        latest = self.save(every_process=not interrupted)
        if writer:
            writer.close()
        end = time.perf_counter()
        leave()
        return TrainResult(self.run_dir, latest, self.web_dir / "index.html", self.step, self.epoch,
                           end - start, images, self.bad_images, interrupted,
                           out_of_time=end > deadline and self.step < self.total_steps)

    def _log(self, writer, bar, running: dict[str, torch.Tensor], n: int, images: int, start: float) -> None:
        if not self.world.main:
            return
        means = {k: float(v) / n for k, v in running.items()}  # the one host sync per log interval
        for k, v in means.items():
            writer.add_scalar(f"loss/{k}", v, self.step)
        writer.add_scalar("lr", self.opt_G.param_groups[0]["lr"], self.step)
        rate = images / max(time.perf_counter() - start, 1e-9)
        writer.add_scalar("images_per_s", rate, self.step)
        row = {"step": self.step, "epoch": self.epoch + 1, "lr": self.opt_G.param_groups[0]["lr"],
               "images_per_s": round(rate, 3)} | {k: round(v, 6) for k, v in sorted(means.items())}
        log = self.run_dir / "losses.csv"
        with log.open("a", newline="") as f:
            out = csv.DictWriter(f, fieldnames=list(row))
            if f.tell() == 0:
                out.writeheader()
            out.writerow(row)
        bar.set_postfix(epoch=self.epoch + 1, **{k: f"{v:.3f}" for k, v in means.items()}, img_s=f"{rate:.1f}")

    def _sample(self, writer, real_A: torch.Tensor, fake_B: torch.Tensor, real_B: torch.Tensor) -> None:
        names = ("input", "output", "target")
        tag = f"step{self.step:08d}"
        for name, img in zip(names, (real_A, fake_B, real_B)):
            to_image(img).save(self.web_dir / "images" / f"{tag}_{name}.png")
        if real_A.shape[0] == real_B.shape[0]:  # side by side in TensorBoard when channel counts agree
            writer.add_image("samples/input_output_target", (torch.cat([real_A, fake_B, real_B], 2) + 1) / 2,
                             self.step)
        steps = sorted({p.name.split("_")[0] for p in (self.web_dir / "images").glob("step*_output.png")},
                       reverse=True)
        rows = [(f"step {int(s[4:])}", [(n, f"images/{s}_{n}.png") for n in names]) for s in steps]
        write_page(self.web_dir / "index.html", f"{self.cfg.name}: training samples (input | output | target)", rows)


def read_log(path: Path) -> list[dict[str, float]]:
    """The rows of a run's ``losses.csv`` (step, epoch, lr, images_per_s and each loss term), as numbers."""
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _truncate_log(path: Path, step: int) -> None:
    rows = read_log(path)
    if rows and rows[-1]["step"] > step:
        with path.open("w", newline="") as f:
            out = csv.DictWriter(f, fieldnames=list(rows[0]))
            out.writeheader()
            out.writerows({k: (int(v) if k in ("step", "epoch") else v) for k, v in r.items()}
                          for r in rows if r["step"] <= step)


def _out_of_memory(e: BaseException) -> bool:
    return isinstance(e, torch.OutOfMemoryError) or "can't allocate memory" in str(e) or "out of memory" in str(e)


def _bad_image_hint(problem: str, count: int) -> str:
    more = f" ({count} problems; 'pix2pix datasets check DIR' lists them all)" if count > 1 else ""
    return f"{problem}{more}; fix or remove it, or pass --skip-bad-images"


def _make_writable(run_dir: Path) -> None:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / f".write-test-{os.getpid()}"  # one per process: torchrun starts several
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise Pix2PixError(f"--out {run_dir}: cannot write there ({e.strerror}); choose a writable folder") from None


def train(cfg: RunConfig, resume: bool = False, progress: bool = True) -> TrainResult:
    return Trainer(cfg, resume=resume, progress=progress).fit()
