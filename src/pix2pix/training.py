"""Training: the paper's step as a plain function, the lr schedule, the networks it trains, and the loop.

Objective (Isola et al., eq. 4):  G* = arg min_G max_D  L_cGAN(G, D) + lambda * L_L1(G).
Each iteration takes one D step on a real pair and a (detached) fake pair, then one G step with D frozen.

Read top to bottom: :func:`train_step`, :func:`lr_factor`, :func:`build` (what training, ``pix2pix bench``
and step timing all train: :mod:`pix2pix.planning`), then :class:`Trainer`, whose :meth:`Trainer.fit` is one
``for step in range(...)`` loop with every stop condition in it.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .checkpoints import (RunState, checkpoint_scales, load_checkpoint, load_into, load_latest, save_latest,
                          save_weights)
from .config import BETTER, LossConfig, RunConfig, resolve
from .batches import TrainingBatches
from .data import fit_scales, load_scaled_pair, scan_split
from .distributed import (World, agree, gather_rng_states, join, leave, mean_over_processes, own_rng_state,
                          rank_share, set_rng_state, sync_batch_norm, world_from_env)
from .errors import Pix2PixError
from .losses import d_loss, g_loss, gradient_penalty
from .networks import build_discriminator, build_generator, init_weights
from .runs import RunFolder, read_log
from .evaluation import image_only
from .units import Scales
from .validation import Validator
from .speed import (FP32, Precision, Speed, adam, compiled, configure, fast_path, load_adam, prepare, resolve_device,
                    to_device)

# ------------------------------------------------------------------------------------------ step


def train_step(real_A: torch.Tensor, real_B: torch.Tensor, G: nn.Module, D: nn.Module | None,
               opt_G: torch.optim.Optimizer, opt_D: torch.optim.Optimizer | None,
               loss: LossConfig, amp: Precision = FP32, D_frozen: nn.Module | None = None,
               D_eager: nn.Module | None = None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """One pix2pix iteration on a batch (x = real_A, y = real_B). Returns detached losses and G(x).

    The losses stay on the device: reading them is a host sync, so the loop does it only every few steps.
    ``amp`` is the fast path's arithmetic (:class:`pix2pix.speed.Precision`): autocast for the forward passes,
    and gradient scaling for fp16; the default is the plain fp32 ``loss.backward()``, ``opt.step()``.
    ``D_frozen`` is the D the G step runs through (default ``D``): under torchrun the D step goes through
    DistributedDataParallel and the G step, which must not touch D's gradients, through the bare module.
    ``D_eager`` is the bare, uncompiled D (default ``D``) that WGAN-GP's penalty differentiates twice.
    """
    def d_input(b: torch.Tensor) -> torch.Tensor:  # a conditional D sees (x, y); an unconditional one y only
        return torch.cat([real_A, b], 1) if loss.conditional else b

    with amp():
        fake_B = G(real_A)  # G(x, z): the noise z is dropout
    losses: dict[str, torch.Tensor] = {}

    if D is not None:
        # D step: maximise log D(x, y) + log(1 - D(x, G(x))), halved (for wgangp: minimise Gulrajani et al.'s
        # E[D(x, G(x))] - E[D(x, y)] + lambda_gp * GP); the fake is detached so G is untouched.
        D.requires_grad_(True)
        opt_D.zero_grad(set_to_none=True)
        with amp():
            pred_fake = D(d_input(fake_B.detach()))
            pred_real = D(d_input(real_B))
            loss_D = d_loss(loss.gan_loss, pred_real.float(), pred_fake.float())
            if loss.gan_loss == "wgangp":
                gp = gradient_penalty(D_eager or D, real_A if loss.conditional else None, real_B, fake_B.detach(),
                                      scale=amp.loss_scale("D"))
                losses["D_gp"] = gp.detach()
                loss_D = loss_D + loss.lambda_gp * gp
        amp.backward(loss_D, "D")
        amp.step(opt_D, "D")
        losses["D"] = loss_D.detach()
        D.requires_grad_(False)  # D is frozen for the G step

    # G step: fool D (non-saturating: maximise log D(x, G(x))) and stay close to y in L1.
    opt_G.zero_grad(set_to_none=True)
    loss_G = real_B.new_zeros(())
    if D is not None:
        with amp():
            pred = (D_frozen or D)(d_input(fake_B))
        loss_G_gan = g_loss(loss.gan_loss, pred.float())
        losses["G_gan"] = loss_G_gan.detach()
        loss_G = loss_G + loss_G_gan
    if loss.uses_l1:
        loss_G_l1 = F.l1_loss(fake_B.float(), real_B) * loss.lambda_l1
        losses["G_l1"] = loss_G_l1.detach()
        loss_G = loss_G + loss_G_l1
    amp.backward(loss_G, "G")
    amp.step(opt_G, "G")
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


# ------------------------------------------------------------------------------------- networks


@dataclass
class Networks:
    """What a step trains: G and its optimizer, and D and its optimizer (None for L1 alone)."""

    G: nn.Module
    D: nn.Module | None
    opt_G: torch.optim.Optimizer
    opt_D: torch.optim.Optimizer | None


def build(cfg: RunConfig, device: torch.device, speed: Speed, world: World = World()) -> Networks:
    """G and D initialised from ``cfg.train.seed`` (the same weights in every process), on ``device`` in the fast
    path's layout, with the paper's Adam. Under torchrun batch norm becomes SyncBatchNorm and each process
    then draws its own dropout noise."""
    t = cfg.train
    torch.manual_seed(t.seed)
    G = init_weights(build_generator(cfg.generator), t.init, t.init_gain)
    D = init_weights(build_discriminator(cfg.discriminator), t.init, t.init_gain) if t.loss.uses_gan else None
    if world.distributed:
        G = sync_batch_norm(G, device)
        D = sync_batch_norm(D, device) if D else None
    if world.rank:
        torch.manual_seed(process_seed(t.seed, world.rank, 0))
    G = prepare(G.to(device), speed)
    D = prepare(D.to(device), speed) if D else None
    return Networks(G, D, adam(G.parameters(), t, speed), adam(D.parameters(), t, speed) if D else None)


def process_seed(seed: int, rank: int, step: int) -> int:
    """The seed of a process's own dropout noise under torchrun (rank 0 keeps the run's seed)."""
    return seed + 1_000_003 * rank + step


# ------------------------------------------------------------------------------------------ loop


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
    terminated: bool = False  # by SIGTERM (a scheduler, docker stop, pre-emption); saved like Ctrl-C
    validation: str | None = None  # what validation cost and found, one line


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the loop is, so that it saves and ends as at Ctrl-C."""


@contextlib.contextmanager
def sigterm_saves(raise_it: bool = True):
    """Within: SIGTERM raises :class:`Terminated` (while training), or with ``raise_it`` off is ignored (while
    the final save is written). Only in the main thread; elsewhere signals cannot be caught."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler if raise_it else signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)  # None: set from C


class Trainer:
    """A run: built once from a resolved :class:`RunConfig` (or resumed from its folder), then :meth:`fit`."""

    def __init__(self, cfg: RunConfig, resume: bool = False, progress: bool = True):
        self.cfg = resolve(cfg)
        self.world = world_from_env()
        device = resolve_device(cfg.train.device)
        self.device = join(self.world, device) if self.world.distributed else device
        self.progress = progress and self.world.main
        self.speed = fast_path(self.device, cfg.train.fast)
        configure(self.device, self.speed)
        self.amp = Precision(self.device, self.speed)
        self.run = RunFolder(cfg.run_dir)
        self.run.check_writable()
        if self.world.main:
            self.run.lock.acquire()  # one writer per run, before anything is written; released by fit()
        try:
            self._start(cfg, resume)
        except BaseException:
            self.run.lock.release()
            raise

    def _start(self, cfg: RunConfig, resume: bool) -> None:
        if not resume and self.run.holds_a_run():
            raise Pix2PixError(f"{self.run.path} already holds a run; continue it with --resume {self.run.path}, "
                               "or choose another --name")
        self.bad_images: list[str] = []
        pairs = self._train_pairs()
        self.scales = self._scales(pairs, resume)
        self.validator = self._validator()  # before anything is written: its files may be missing
        if self.world.main:
            self.run.make()
        self._data(pairs)
        self.nets = build(cfg, self.device, self.speed, self.world)
        t = cfg.train
        schedule = lambda step: lr_factor(step, self.steps_per_epoch, t.epochs, t.epochs_decay)  # noqa: E731
        self.schedulers = [torch.optim.lr_scheduler.LambdaLR(o, schedule)
                           for o in (self.nets.opt_G, self.nets.opt_D) if o]
        self.step, self.epoch, self.batch_in_epoch, self.saved_at = 0, 0, 0, None
        if resume:
            self._resume()
        elif cfg.train.init_from:
            self._init_from(cfg.train.init_from)
        if self.world.main:
            cfg.save(self.run.config)
        self._wrap()

    def _train_pairs(self) -> list:
        """The training split's pairs (its stray files are errors, or with --skip-bad-images reported)."""
        cfg = self.cfg
        pairs, problems = scan_split(Path(cfg.data.root), "train")
        if problems:
            if not cfg.data.skip_bad_images:
                raise Pix2PixError(_bad_image_hint(problems[0], len(problems)))
            self.bad_images += problems
        if not pairs:
            raise Pix2PixError(f"--data {cfg.data.root}: no usable images in the 'train' split")
        return pairs

    def _data(self, pairs: list) -> None:
        """The training batches (this process's share of them) and the schedule's length in steps."""
        cfg, g = self.cfg, self.cfg.generator
        batch = cfg.data.batch_size
        share = (lambda order: rank_share(order, batch, self.world)) if self.world.distributed else None
        self.data = TrainingBatches(pairs, cfg.data, g.in_channels, g.out_channels, cfg.train.seed, self.device,
                                    cfg.train.fast, share=share, bad_images=bool(self.bad_images),
                                    scales=self.scales)
        self.steps_per_epoch = math.ceil(len(pairs) / (batch * self.world.size))
        self.total_epochs = cfg.train.epochs + cfg.train.epochs_decay
        self.total_steps = self.steps_per_epoch * self.total_epochs
        if cfg.train.max_steps is not None:
            self.total_steps = min(self.total_steps, cfg.train.max_steps)

    def _scales(self, pairs: list, resume: bool) -> Scales:
        """How each side maps to [-1, 1]: the resumed run's, the --init-from checkpoint's (its weights expect
        them), or fitted to the training split by --normalize (every process computes the same)."""
        cfg, g = self.cfg, self.cfg.generator
        if resume:
            scales = checkpoint_scales(self.run.latest)
        elif cfg.train.init_from:
            scales = checkpoint_scales(Path(cfg.train.init_from))
            if cfg.data.normalize != "auto" and self.world.main:
                print(f"warning: --normalize {cfg.data.normalize} has no effect with --init-from: the weights keep "
                      "the scalings they were trained with", file=sys.stderr)
            try:  # the new data must be of the kind those weights were trained on
                load_scaled_pair(pairs[0], cfg.data.direction, g.in_channels, g.out_channels, scales)
            except Pix2PixError as e:
                raise Pix2PixError(f"--init-from {cfg.train.init_from}: its model takes input "
                                   f"{scales.input.describe()} and output {scales.output.describe()}, which this "
                                   f"data does not fit ({e})") from None
        else:
            scales = fit_scales(pairs, cfg.data, g.in_channels, g.out_channels, progress=self.progress,
                                skip_bad=cfg.data.skip_bad_images)
        if not scales.eight_bit and self.world.main and not resume:
            print(f"scaling: input {scales.input.describe()}; output {scales.output.describe()}")
            if cfg.data.preprocess not in ("crop", "none"):  # a preprocess that resizes
                print(f"note: --preprocess {cfg.data.preprocess} resamples the data (bicubic, in float); for pixels "
                      "that are measurements, --preprocess none (or crop) keeps them as measured")
        return scales

    def _validator(self) -> Validator | None:
        """The val split's scorer, when there is one to score (only the main process validates), with the
        segmenter and Inception file it was given."""
        from .evaluation import InceptionFeatures
        from .segmentation import Segmenter

        t, g = self.cfg.train, self.cfg.generator
        try:
            val_pairs, _ = scan_split(Path(self.cfg.data.root), "val")
        except Pix2PixError:  # no val folder
            val_pairs = []
        if t.val_every and not val_pairs:
            raise Pix2PixError(f"--val-every {t.val_every}: {self.cfg.data.root} has no val split to score (add "
                               "one with 'pix2pix datasets split', or leave --val-every out)")
        if t.val_every == 0 or not val_pairs or not self.world.main:
            return None
        why = image_only(self.scales, g.in_channels, g.out_channels, bool(t.segmenter), bool(t.inception))
        if why:
            flag = "--segmenter" if t.segmenter and "FCN" in why else "--inception"
            raise Pix2PixError(f"{flag}: {why}, and this run's data is {self.scales.output.data} with "
                               f"{g.out_channels} output channel(s); validation scores L1, PSNR and SSIM without it")
        segmenter = Segmenter.load(Path(t.segmenter), device=self.device) if t.segmenter else None
        features = InceptionFeatures(Path(t.inception)).to(self.device) if t.inception else None
        return Validator(val_pairs, self.cfg.data, g.in_channels, g.out_channels, t.val_images, t.best_metric,
                         segmenter, features, self.scales)

    def _wrap(self) -> None:
        """What the step runs: DistributedDataParallel under torchrun, compiled on the fast path where it pays."""
        G, D = self.nets.G, self.nets.D
        for net in (G, D):
            if net is not None:
                net.train()
        ddp = self._ddp if self.world.distributed else (lambda m: m)
        self.G_step = compiled(ddp(G), self.speed)
        self.D_step = compiled(ddp(D), self.speed) if D else None
        self.D_frozen = (compiled(D, self.speed) if self.world.distributed else self.D_step) if D else None

    def _ddp(self, module: nn.Module) -> nn.Module:
        ids = [self.device.index] if self.device.type == "cuda" else None
        # SyncBatchNorm keeps the buffers equal on every process, so DDP need not broadcast them.
        return nn.parallel.DistributedDataParallel(module, device_ids=ids, broadcast_buffers=False)

    # --------------------------------------------------------------------------- checkpoints

    def save(self, snapshot: str | None = None, every_process: bool = True) -> Path:
        """Write latest (and a snapshot). Under torchrun every process calls this at the same step
        (``every_process``) so the main one can store each process's random state; after an interrupt only the
        main one's is stored, and the others start fresh noise on resume."""
        self._check_finite()
        rng = gather_rng_states(self.device) if every_process and self.world.distributed else None
        own = own_rng_state(self.device)
        if not self.world.main:
            self.saved_at = self.step
            return self.run.latest
        nets = self.nets
        state = RunState(
            step=self.step, epoch=self.epoch, batch_in_epoch=self.batch_in_epoch,
            opt_G=nets.opt_G.state_dict(), opt_D=nets.opt_D.state_dict() if nets.opt_D else None,
            schedulers=[s.state_dict() for s in self.schedulers], rng_cpu=own["cpu"], rng_cuda=own["cuda"],
            rng_processes=rng, bad_images=self.bad_images, scalers=self.amp.state_dict())
        D_cfg = self.cfg.discriminator if nets.D is not None else None
        latest = save_latest(self.run.checkpoints, nets.G, self.cfg.generator, nets.D, D_cfg, state,
                             self.cfg.to_dict(), snapshot, scales=self.scales)
        self.saved_at = self.step  # only once written: a save cut short (by SIGTERM, say) is made again
        return latest

    def _init_from(self, source: str) -> None:
        """Fine-tuning: G (and D, where the file has one of this run's architecture) from ``source``."""
        ckpt = load_checkpoint(Path(source))
        load_into(self.nets.G, ckpt.generator_state, ckpt.path, f"generator {self.cfg.generator.arch}")
        if self.nets.D is None:
            return
        if ckpt.discriminator == self.cfg.discriminator:
            load_into(self.nets.D, ckpt.discriminator_state, ckpt.path, f"discriminator {self.cfg.discriminator.arch}")
        elif self.world.main:
            why = "has none" if ckpt.discriminator is None else "has another one"
            print(f"warning: --init-from {ckpt.path} {why} for this run's {self.cfg.discriminator.arch}; "
                  "D starts from its init", file=sys.stderr)

    def _resume(self) -> None:
        ckpt, state = load_latest(self.run.checkpoints)
        nets = self.nets
        load_into(nets.G, ckpt.generator_state, ckpt.path, f"generator {self.cfg.generator.arch}")
        if nets.D is not None:
            load_into(nets.D, ckpt.discriminator_state, ckpt.path, f"discriminator {self.cfg.discriminator.arch}")
            load_adam(nets.opt_D, state.opt_D)
        load_adam(nets.opt_G, state.opt_G)
        t = self.cfg.train
        if self.steps_per_epoch * (t.epochs + t.epochs_decay) < state.step:
            raise Pix2PixError(f"--epochs {t.epochs} --epochs-decay {t.epochs_decay}: that schedule ends at step "
                               f"{self.steps_per_epoch * (t.epochs + t.epochs_decay)}, before the run's saved step "
                               f"{state.step}; a resume may lengthen a schedule, not cut it short")
        for sched, s in zip(self.schedulers, state.schedulers):
            sched.load_state_dict(s)
            # The lr at the saved step under this (maybe lengthened) schedule: the same number when unchanged.
            for group, base, factor in zip(sched.optimizer.param_groups, sched.base_lrs, sched.lr_lambdas):
                group["lr"] = base * factor(sched.last_epoch)  # LambdaLR's own expression
        if state.rng_processes is not None and len(state.rng_processes) == self.world.size:
            set_rng_state(state.rng_processes[self.world.rank], self.device)
        elif self.world.main:
            cuda = state.rng_cuda
            if isinstance(cuda, list):  # saved before: every visible GPU's state; this device's, if it was there
                index = self.device.index or 0
                cuda = cuda[index] if index < len(cuda) else None
            set_rng_state({"cpu": state.rng_cpu, "cuda": cuda}, self.device)
        else:  # saved by a different number of processes, or after an interrupt: fresh noise for this one
            torch.manual_seed(process_seed(self.cfg.train.seed, self.world.rank, state.step))
        self.amp.load_state_dict(state.scalers)
        if self.validator is not None:  # the best so far, from the validations before the saved step
            metric = self.cfg.train.best_metric
            scores = [r[metric] for r in read_log(self.run.val)  # on the same images
                      if r["step"] <= state.step and r["images"] == self.validator.images and metric in r]
            for value in scores:
                if self.validator.better(value):
                    self.validator.best = value
        self.step, self.epoch, self.batch_in_epoch = state.step, state.epoch, state.batch_in_epoch
        self.bad_images = list(state.bad_images)

    # ---------------------------------------------------------------------------------- loop

    def fit(self) -> TrainResult:
        """Train from the current step to the end of the schedule (or --max-steps). The loop stops early when
        the data of every epoch is spent, when --max-minutes have passed (every process at the same step), at
        Ctrl-C or SIGTERM; whatever stops it, latest is saved. An error (a diverged loss among them) ends it
        without another save, so latest stays the last good one. The run's lock is released either way."""
        try:
            return self._fit()
        finally:
            self.run.close()
            self.run.lock.release()

    def _fit(self) -> TrainResult:
        if self.world.main:
            self.run.open(self.step)
        bar = tqdm(total=self.total_steps, initial=self.step, disable=not self.progress, unit="step",
                   dynamic_ncols=True)
        self.start, self.images, self.running, self.running_steps = time.perf_counter(), 0, {}, 0
        self._validated_at, self.best_step = self.start, None
        interrupted = out_of_time = terminated = False
        try:
            with sigterm_saves():
                out_of_time = self._loop(bar)
        except Terminated:
            interrupted = terminated = True
        except KeyboardInterrupt:
            interrupted = True
        except (torch.OutOfMemoryError, RuntimeError) as e:
            if "killed by signal: Terminated" in str(e):  # a scheduler's SIGTERM reached the loader processes first
                interrupted = terminated = True
            elif not _out_of_memory(e):
                raise
            else:
                raise Pix2PixError(f"batch {self.cfg.data.batch_size} at {self.cfg.data.crop_size}x"
                                   f"{self.cfg.data.crop_size} does not fit in {self.device} memory; lower "
                                   "--batch-size or --crop-size, or use a smaller --generator") from None
        finally:
            bar.close()
        with sigterm_saves(raise_it=False):  # a second SIGTERM does not cut the last save short
            latest = self.run.latest if self.saved_at == self.step else self.save(every_process=not interrupted)
        seconds = time.perf_counter() - self.start
        leave()
        return TrainResult(self.run.path, latest, self.run.web / "index.html", self.step, self.epoch, seconds,
                           self.images, self.bad_images, interrupted,
                           out_of_time=out_of_time and self.step < self.total_steps, terminated=terminated,
                           validation=self._validation_summary(seconds))

    def _validation_summary(self, seconds: float) -> str | None:
        v = self.validator
        if v is None or not v.runs:
            return None
        t = self.cfg.train
        best = f"; best {t.best_metric} {v.best:.4f}" if v.best is not None else ""
        where = f" at step {self.best_step}: {self.run.checkpoints / 'best.safetensors'}" \
            if self.best_step is not None else ""
        return (f"validation: {v.runs} run(s) on {v.images} val images, {v.seconds:.1f} s "
                f"({100 * v.seconds / max(seconds, 1e-9):.1f}% of this session){best}{where}")

    def _loop(self, bar) -> bool:
        """The steps, from the current one on; True when --max-minutes stopped them."""
        t = self.cfg.train
        batches = self.data.stream(self.epoch, self.batch_in_epoch, self.total_epochs, self._bad_batch)
        deadline = self.start + 60 * t.max_minutes if t.max_minutes else float("inf")
        for step in range(self.step + 1, self.total_steps + 1):
            item = self._next_batch(batches)
            if item is None:  # every epoch's batches are spent
                return False
            batch, epoch, done, ends_epoch = item
            real_A, fake_B, real_B = self._train_on(batch, step, epoch, done)
            bar.update(1)
            out_of_time = time.perf_counter() > deadline
            if self.world.distributed and deadline != float("inf"):
                out_of_time = agree(out_of_time, self.device)  # every process stops at the same step
            self._report(bar, last=step == self.total_steps or out_of_time, samples=(real_A, fake_B, real_B))
            if ends_epoch:
                self._end_epoch()
            if out_of_time:
                return True
        return False

    def _next_batch(self, batches):
        """The next batch to train on; epochs that end without one (their last images all unreadable, or a
        resume at an epoch's end) are ended on the way, without a step."""
        for batch, epoch, done, ends_epoch in batches:
            if batch is not None:
                return batch, epoch, done, ends_epoch
            self.epoch, self.batch_in_epoch = epoch, done
            self._end_epoch()
        return None

    def _train_on(self, batch: dict, step: int, epoch: int, done: int) -> tuple[torch.Tensor, ...]:
        real_A = to_device(batch["A"], self.device, self.speed)
        real_B = to_device(batch["B"], self.device, self.speed)
        nets = self.nets
        losses, fake_B = train_step(real_A, real_B, self.G_step, self.D_step, nets.opt_G, nets.opt_D,
                                    self.cfg.train.loss, amp=self.amp, D_frozen=self.D_frozen, D_eager=nets.D)
        for s in self.schedulers:
            s.step()
        self.step, self.epoch, self.batch_in_epoch = step, epoch, done
        self.images += real_A.shape[0] * self.world.size
        for k, v in losses.items():
            self.running[k] = self.running.get(k, 0) + v
        self.running_steps += 1
        return real_A, fake_B, real_B

    def _end_epoch(self) -> None:
        t = self.cfg.train
        self.epoch, self.batch_in_epoch = self.epoch + 1, 0
        if self.validator is not None and t.val_every is None:
            self._validate()
        keep = t.snapshot_every and self.epoch % t.snapshot_every == 0
        self.save(snapshot=f"epoch_{self.epoch:03d}" if keep else None)

    def _watch(self, means: dict[str, float], fake: torch.Tensor) -> None:
        """Warn once, with what to try, when D has won (its loss under 1e-3) or G's output has stopped varying
        (its standard deviation under 1e-3), for five log intervals running."""
        self._watched = getattr(self, "_watched", {"D": 0, "G": 0, "said": set()})
        w = self._watched
        w["D"] = w["D"] + 1 if "D" in means and means["D"] < 1e-3 else 0
        w["G"] = w["G"] + 1 if float(fake.float().std()) < 1e-3 else 0
        hints = {"D": f"warning: D's loss has stayed under 1e-3 for 5 logs (step {self.step}): the discriminator "
                      "has won and G learns nothing from it; check that A and B are paired and aligned, or try "
                      "--gan-loss lsgan, a smaller --ndf, or --lr lower for a fresh run",
                 "G": f"warning: G's outputs have stopped varying for 5 logs (step {self.step}), e.g. all black; "
                      "check the data (empty or constant targets?), or lower --lr"}
        for k in ("D", "G"):
            if w[k] >= 5 and k not in w["said"] and self.world.main:
                print(hints[k], file=sys.stderr)
                w["said"].add(k)

    def _check_finite(self, means: dict[str, float] | None = None) -> None:
        """A diverged run stops with one line before it can overwrite latest: the loss means of a log interval
        (``means``), or before a save every weight, must be finite."""
        if means is not None:
            bad = next((f"the {k} loss is {v}" for k, v in means.items() if not math.isfinite(v)), None)
        else:
            params = [p for net in (self.nets.G, self.nets.D) if net is not None for p in net.parameters()]
            bad = None if bool(torch.stack([p.detach().isfinite().all() for p in params]).all()) \
                else "a weight is not finite"
        if bad is not None:
            raise _diverged(self.step, bad, self.run.holds_a_run())

    def _bad_batch(self, errors: list[str]) -> None:
        if not self.cfg.data.skip_bad_images:
            raise Pix2PixError(_bad_image_hint(errors[0], 1))
        self.bad_images += [e for e in errors if e not in self.bad_images]

    # ------------------------------------------------------------------------------- logging

    def _report(self, bar, last: bool, samples: tuple[torch.Tensor, ...]) -> None:
        """Every --log-every steps the loss means (one host sync), every --sample-every steps the samples, and
        every --save-every steps latest."""
        t = self.cfg.train
        if self.step % t.log_every == 0 or last:
            running = mean_over_processes(self.running)  # a collective: every process takes part
            means = {k: float(v) / self.running_steps for k, v in running.items()}  # the host sync
            self._check_finite(means)
            self._watch(means, samples[1])
            if self.world.main:
                rate = self.images / max(time.perf_counter() - self.start, 1e-9)
                self.run.log(self.step, self.epoch + 1, self.nets.opt_G.param_groups[0]["lr"], rate, means)
                bar.set_postfix(epoch=self.epoch + 1, **{k: f"{v:.3f}" for k, v in means.items()},
                                img_s=f"{rate:.1f}")
            self.running, self.running_steps = {}, 0
        if self.world.main and (self.step % t.sample_every == 0 or last):
            self.run.sample(self.step, f"{self.cfg.name}: training samples (input | output | target)",
                            *(s[0] for s in samples))
        if self.validator is not None and t.val_every and self.step % t.val_every == 0:
            self._validate()
        if self.step % t.save_every == 0:
            self.save()

    def _validate(self) -> None:
        """Score the val split now: val.csv, TensorBoard, and checkpoints/best.safetensors when it is the best."""
        now = time.perf_counter()
        trained = now - self._validated_at
        metrics = self.validator.score(self.nets.G, self.device, trained)
        self._validated_at = time.perf_counter()
        metrics = self.run.log_val(self.step, self.epoch, metrics)
        value = metrics[self.cfg.train.best_metric]
        if self.validator.better(value):
            self.validator.best = value
            self._check_finite()
            nets, t = self.nets, self.cfg.train
            D_cfg = self.cfg.discriminator if nets.D is not None else None
            val = {"metric": t.best_metric, "better": BETTER[t.best_metric], "value": value,
                   **{k: metrics[k] for k in BETTER if k in metrics}}
            save_weights(self.run.checkpoints / "best.safetensors", nets.G, self.cfg.generator, nets.D, D_cfg,
                         step=self.step, epoch=self.epoch, config=self.cfg.to_dict(), val=val,
                         scales=self.scales.to_dict())
            self.best_step = self.step


def _diverged(step: int, what: str, saved: bool) -> Pix2PixError:
    kept = "latest keeps the last save before it" if saved else "no checkpoint was written"
    return Pix2PixError(f"training diverged at step {step}: {what} ({kept}); lower --lr, or check the data")


def _out_of_memory(e: BaseException) -> bool:
    return isinstance(e, torch.OutOfMemoryError) or "can't allocate memory" in str(e) or "out of memory" in str(e)


def _bad_image_hint(problem: str, count: int) -> str:
    more = f" ({count} problems; 'pix2pix datasets check DIR' lists them all)" if count > 1 else ""
    return f"{problem}{more}; fix or remove it, or pass --skip-bad-images"


def train(cfg: RunConfig, resume: bool = False, progress: bool = True) -> TrainResult:
    return Trainer(cfg, resume=resume, progress=progress).fit()
