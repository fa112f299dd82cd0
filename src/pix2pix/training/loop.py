"""The training loop: :func:`train` builds the run (:mod:`.setup`) and :func:`fit` takes its steps in one
``for step in range(...)`` that reads top to bottom: the next batch, the stop check, the lr, the paper's step
(:func:`.step.train_step`), then logging, samples, validation and saving on their schedules.

Stops are read between two steps only (:class:`.guards.StopRequests`): the schedule's end, ``--max-steps``,
``--minutes``, SIGTERM and Ctrl-C; under torchrun every process stops at the same step. Whatever stops it,
:func:`finish` logs the interval in progress, validates the final state (unless a signal asked to be quick) and
saves ``latest``, so a resume continues exactly. An error (a diverged loss among them) ends it without another
save, so ``latest`` stays the last good one.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from ..checkpoints import RunState, save_run, save_weights
from ..config import BETTER, RunConfig
from ..errors import Pix2PixError
from ..speed import to_device
from .distributed import (any_process, gather_bad_images, gather_rng_states, mean_over_processes, on_main,
                          own_rng_state)
from .guards import (SIGNALS, CollapseWatch, StopRequests, bad_image_hint, diverged, first_non_finite,
                     non_finite_loss, out_of_memory, stopped_by_signal, too_big)
from .planning import LONG_PLAN_HOURS, planned_step_seconds
from .setup import Setup, release_global, setup
from .step import lr_at, set_lr, train_step
from .validation import FCN

log = logging.getLogger(__name__)


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
    stopped: str = "done"  # done, max_steps, max_minutes, SIGTERM, SIGINT, or nothing (a resume at its end)
    validation: str | None = None  # what validation cost and found, one line

    @property
    def interrupted(self) -> bool:
        return self.stopped in SIGNALS.values()

    @property
    def terminated(self) -> bool:
        return self.stopped == "SIGTERM"


@dataclass
class Meter:
    """What the loop keeps between logs: loss sums on the device (read at each log, a host sync), images seen,
    the last samples, the collapse watch, and when training last started after a validation."""

    start: float = field(default_factory=time.perf_counter)
    sums: dict = field(default_factory=dict)
    steps: int = 0
    images: int = 0
    samples: tuple = ()
    sampled_at: int | None = None
    validated_at: int | None = None
    trained_since: float = field(default_factory=time.perf_counter)  # the end of the last validation
    watch: CollapseWatch = field(default_factory=CollapseWatch)

    def add(self, losses: dict[str, torch.Tensor], images: int, samples: tuple) -> None:
        for k, v in losses.items():
            self.sums[k] = self.sums.get(k, 0) + v
        self.steps, self.images, self.samples = self.steps + 1, self.images + images, samples


def train(cfg: RunConfig, resume: bool = False, progress: bool = True, stated: set | None = None) -> TrainResult:
    """Train ``cfg``'s run from its start, or (``resume``) from where its folder's ``latest`` stopped. A signal
    from the moment this starts (while the run is being built too) stops it at its first step boundary.
    ``stated``: the (section, field) pairs the caller chose, where ``--init-from`` inherits the rest; None takes
    every field still at its default as not chosen."""
    with StopRequests() as stop:
        s = setup(cfg, resume, progress, stated)
        try:
            result = _result(s, Meter(), "nothing") if s.nothing_to_do else fit(s, stop)
        except BaseException:
            s.close(clean=False)
            raise
        s.close()
        return result


def fit(s: Setup, stop: StopRequests) -> TrainResult:
    """Take the steps to the schedule's end (or a stop), then :func:`finish`."""
    meter, s.stop = Meter(), stop
    if s.world.main:
        s.folder.open(s.at.step)
        log.info(summary(s))
        warn_of_a_long_plan(s)
    stop.start_clock(s.cfg.train.max_minutes)
    bar = s.bar = tqdm(total=s.total_steps, initial=s.at.step, disable=not s.progress, unit="step",
                       dynamic_ncols=True, desc="training")
    try:
        stopped = steps(s, stop, meter, bar)
    except (torch.OutOfMemoryError, RuntimeError) as e:
        if out_of_memory(e):
            raise too_big(s.cfg.data.batch_size, s.cfg.data.crop_size, s.device) from None
        raise
    finally:
        bar.close()
        s.bar = None
    finish(s, stopped, meter)
    return _result(s, meter, stopped)


def summary(s: Setup) -> str:
    """What this session trains, in two lines, before its first step."""
    from ..networks import count_params

    cfg, t, d = s.cfg, s.cfg.train, s.cfg.data
    def params(net) -> str:
        n = count_params(net)
        return f"{n / 1e6:.1f} M" if n >= 100_000 else f"{n / 1e3:.1f} k"

    nets = f"G {cfg.generator.arch} ngf {cfg.generator.ngf} ({params(s.nets.G)})"
    if s.nets.D is not None:
        nets += f", D {cfg.discriminator.arch} ndf {cfg.discriminator.ndf} ({params(s.nets.D)})"
    where = f"{s.device}" + (f" x {s.world.size} processes" if s.world.distributed else "")
    start = f"from step {s.at.step}" if s.at.step else "from step 0"
    size = {"scale_width": f"{d.load_size} px wide images", "none": "images at their own size"}.get(
        d.preprocess, f"{d.crop_size}x{d.crop_size} crops")
    return (f"training {cfg.run_dir}: {d.root} {d.direction}, {nets}; {size}, batch {d.batch_size}\n"
            f"{s.total_steps:,} steps {start} ({s.steps_per_epoch:,} an epoch, {t.epochs} + {t.epochs_decay} epochs) "
            f"on {where}, {s.speed.name}")


PLANNED_FROM = 50  # steps left: fewer are not worth a timing (it builds networks of its own)


def warn_of_a_long_plan(s: Setup) -> None:
    """How long the rest of the schedule takes here, timed on a CPU of one process (elsewhere the progress bar's
    estimate says it: a timing there would compile), and a warning when that is hours."""
    schedule = s.steps_per_epoch * s.total_epochs - s.at.step
    if s.device.type != "cpu" or s.world.distributed or schedule < PLANNED_FROM:
        return
    per_step = planned_step_seconds(s.cfg, s.speed)
    session = min((s.total_steps - s.at.step) * per_step, (s.cfg.train.max_minutes or math.inf) * 60)
    log.info(f"planned: about {_duration(schedule * per_step)} on this CPU" + (
        f"; this session stops after about {_duration(session)} (--max-steps or --minutes)"
        if session < schedule * per_step * 0.99 else ""))
    if schedule * per_step > LONG_PLAN_HOURS * 3600:
        log.warning(f"this schedule takes about {_duration(schedule * per_step)} on this CPU (the paper's recipes "
                    "are sized for a GPU); --preset cpu --minutes N trains the demo's smaller model in the time you "
                    "give it")


def _duration(seconds: float) -> str:
    if seconds >= 5400:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds / 60:.1f} minutes" if seconds >= 60 else f"{seconds:.0f} s"


def steps(s: Setup, stop: StopRequests, meter: Meter, bar) -> str:
    """Take the steps from the current one on; returns why they stopped."""
    t, nets = s.cfg.train, s.nets
    batches = s.data.stream(s.at.epoch, s.at.batch_in_epoch, s.total_epochs, lambda errors: _bad_batch(s, errors))
    first = s.at.step + 1
    for step in range(first, s.total_steps + 1):
        item = next_batch(s, batches, stop, meter)
        why = stop.reason()  # the time cap lets a session take at least one step
        signalled, out_of_time, spent = any_process([why in SIGNALS.values(), why == "max_minutes" and step > first,
                                                     item is None], s.device)  # every process stops alike
        if signalled or out_of_time or spent:
            return (stop.signal or "SIGTERM") if signalled else "max_minutes" if out_of_time else "done"
        batch, epoch, done, ends_epoch = item
        set_lr(nets, lr_at(t, s.steps_per_epoch, step - 1))
        real_A, real_B = to_device(batch["A"], s.device, s.speed), to_device(batch["B"], s.device, s.speed)
        losses, fake_B = train_step(real_A, real_B, nets, t.loss, s.amp)
        s.at.step, s.at.epoch, s.at.batch_in_epoch = step, epoch, done
        meter.add(losses, real_A.shape[0] * s.world.size, (real_A[0], fake_B[0], real_B[0]))
        bar.update(1)
        if step % t.log_every == 0:
            log_losses(s, meter, bar)
        if step % t.sample_every == 0:
            sample(s, meter)
        if ends_epoch:
            end_epoch(s, meter)
        if s.validates and t.val_every and step % t.val_every == 0:
            validate(s, meter)
        if step % t.save_every == 0:
            save(s)
    return "max_steps" if s.total_steps < s.steps_per_epoch * s.total_epochs else "done"


def next_batch(s: Setup, batches, stop: StopRequests, meter: Meter):
    """The next batch to train on, as (batch, epoch, batches done in it, ends the epoch), or None when every
    epoch's batches are spent, or when a signal reached the loader's processes too. A batch of nothing but
    unreadable images is passed over (under torchrun by every process, when any has one: they stay in step),
    and an epoch that ends on one (or that a resume starts at the end of) is ended on the way."""
    try:
        for batch, epoch, done, ends_epoch in batches:
            usable = not any_process([batch is None], s.device)[0] if s.world.distributed else batch is not None
            if usable:
                return batch, epoch, done, ends_epoch
            s.at.epoch, s.at.batch_in_epoch = epoch, done
            if ends_epoch:
                end_epoch(s, meter)
    except RuntimeError as e:
        if not stopped_by_signal(e, stop):
            raise
    return None


def end_epoch(s: Setup, meter: Meter) -> None:
    """An epoch's end: the global generator released after --fix-global-epochs, validation (by default), then
    latest and, every --snapshot-every epochs, a snapshot."""
    t = s.cfg.train
    s.at.epoch, s.at.batch_in_epoch = s.at.epoch + 1, 0
    if t.fix_global_epochs and s.at.epoch == t.fix_global_epochs:
        release_global(s)
    if s.validates and t.val_every is None:
        validate(s, meter)
    keep = t.snapshot_every and s.at.epoch % t.snapshot_every == 0
    save(s, snapshot=f"epoch_{s.at.epoch:03d}" if keep else None)


def finish(s: Setup, stopped: str, meter: Meter) -> None:
    """Whatever stopped the steps: the log interval in progress, the last samples, the final state validated
    (not after a signal, which asks for a quick end) and saved."""
    if meter.steps:
        log_losses(s, meter, None)
    if meter.samples and meter.sampled_at != s.at.step:
        sample(s, meter)
    if s.validates and stopped not in SIGNALS.values() and meter.validated_at != s.at.step and meter.images:
        validate(s, meter)  # the final state, when this session trained it and no validation has scored it
    if s.saved_at != s.at.step:
        save(s)
    on_main(s.room, s.world, lambda: s.folder.write_page(page_title(s)))  # with the session's final curves


# ------------------------------------------------------------------------- on their schedules


def log_losses(s: Setup, meter: Meter, bar) -> None:
    """The loss means of the interval (a collective: every process takes part; one host sync): a diverged run
    stops here, a collapsed one is warned of, and the main process writes losses.csv and TensorBoard."""
    sums = mean_over_processes(meter.sums)
    means = {k: float(v) / meter.steps for k, v in sums.items()}
    bad = non_finite_loss(means)
    if bad:
        raise diverged(s.at.step, bad, s.folder.holds_a_run())
    said = meter.watch.see(s.at.step, means, meter.samples[1])
    rate = meter.images / max(time.perf_counter() - meter.start, 1e-9)

    def write() -> None:
        for line in said:
            log.warning(line)
        s.folder.log(s.at.step, s.at.epoch + 1, lr_at(s.cfg.train, s.steps_per_epoch, s.at.step), rate, means)
        if bar is not None:
            bar.set_postfix(epoch=s.at.epoch + 1, **{k: f"{v:.3f}" for k, v in means.items()}, img_s=f"{rate:.1f}")

    on_main(s.room, s.world, write)
    meter.sums, meter.steps = {}, 0


def sample(s: Setup, meter: Meter) -> None:
    on_main(s.room, s.world, lambda: s.folder.sample(s.at.step, page_title(s), *meter.samples))
    meter.sampled_at = s.at.step


def page_title(s: Setup) -> str:
    return f"{s.cfg.name}: training samples (input | output | target)"


def validate(s: Setup, meter: Meter) -> None:
    """Score the val split now (the main process; the others wait for it): val.csv, TensorBoard, and
    checkpoints/best.safetensors when the validator finds it the best. A signal while it runs cuts it short,
    unrecorded: the run stops at once, and saves."""
    def score() -> None:
        v = s.validator
        metrics = v.score(s.nets.G, s.device, time.perf_counter() - meter.trained_since,
                          cancelled=lambda: s.stop is not None and s.stop.signal is not None)
        if metrics is None:
            return
        scores = s.folder.log_val(s.at.step, s.at.epoch, metrics)
        best = v.improves(scores, s.at.step)
        if best:
            save_best(s, scores)
        said = ", ".join(f"{k} {scores[k]:.4g}" for k in ("l1", "psnr", "ssim", *FCN, "fid", "kid") if k in scores)
        log.info(f"validation at step {s.at.step} on {v.images} val images ({metrics['seconds']:.1f} s): {said}; "
                 + ("the best so far" if best else f"best {s.cfg.train.best_metric} {v.best:.4g} at step "
                                                    f"{v.best_step}"))

    phase(s, "validating")
    on_main(s.room, s.world, score)
    phase(s, "training")
    meter.validated_at, meter.trained_since = s.at.step, time.perf_counter()


def phase(s: Setup, name: str) -> None:
    """Say on the progress bar what the run is doing; back to training, its time estimate leaves the pause out."""
    if s.bar is not None:
        s.bar.set_description_str(name, refresh=True)
        if name == "training":
            s.bar.unpause()


def save_best(s: Setup, scores: dict[str, float]) -> None:
    _check_finite(s)
    t, nets = s.cfg.train, s.nets
    val = {"metric": t.best_metric, "better": BETTER[t.best_metric], "value": scores[t.best_metric],
           "images": s.validator.images, **{k: scores[k] for k in BETTER if k in scores}}
    save_weights(s.folder.checkpoints / "best.safetensors", nets.G, s.cfg.generator, nets.D,
                 s.cfg.discriminator if nets.D is not None else None, step=s.at.step, epoch=s.at.epoch,
                 config=s.cfg.record(), val=val, scales=s.scales.to_dict(), **({"pairs": s.pairs} if s.pairs else {}))


def save(s: Setup, snapshot: str | None = None) -> None:
    """Write latest (and a snapshot) at this step: every process takes part (the main one stores each one's
    random state, and the others wait for its writes, which a slow disk may make long), so a resume draws what
    this run would have drawn."""
    if s.saved_at == s.at.step and not snapshot:
        return
    _check_finite(s)
    rng = gather_rng_states(s.device) if s.world.distributed else [own_rng_state(s.device)]
    if s.world.distributed:  # every process's skipped images, in every process's record
        s.bad_images = gather_bad_images(s.bad_images)

    def write() -> None:
        nets = s.nets
        state = RunState(step=s.at.step, epoch=s.at.epoch, batch_in_epoch=s.at.batch_in_epoch,
                         opt_G=nets.opt_G.state_dict(), opt_D=nets.opt_D.state_dict() if nets.opt_D else None,
                         rng=rng, bad_images=s.bad_images, scalers=s.amp.state_dict())
        save_run(s.folder.checkpoints, nets.G, s.cfg.generator, nets.D,
                 s.cfg.discriminator if nets.D is not None else None, state, s.cfg.record(), s.scales, snapshot,
                 s.pairs)

    on_main(s.room, s.world, write)
    s.saved_at = s.at.step


def _check_finite(s: Setup) -> None:
    """A diverged run stops with one line before it can overwrite a checkpoint: every weight and buffer of G
    and D (batch-norm statistics too) must be finite."""
    bad = first_non_finite([s.nets.G, s.nets.D])
    if bad is not None:
        raise diverged(s.at.step, bad, s.folder.holds_a_run())


def _bad_batch(s: Setup, errors: list[str]) -> None:
    if not s.cfg.data.skip_bad_images:
        raise Pix2PixError(bad_image_hint(errors[0], 1))
    s.bad_images += [e for e in errors if e not in s.bad_images]


def _result(s: Setup, meter: Meter, stopped: str) -> TrainResult:
    seconds = time.perf_counter() - meter.start
    return TrainResult(s.folder.path, s.folder.latest, s.folder.web / "index.html", s.at.step, s.at.epoch, seconds,
                       meter.images, s.bad_images, stopped, _validation_summary(s, seconds))


def _validation_summary(s: Setup, seconds: float) -> str | None:
    v = s.validator
    if v is None or not v.runs:
        return None
    best = f"; best {s.cfg.train.best_metric} {v.best:.4f}" if v.best is not None else ""
    where = f" at step {v.best_step}: {s.folder.checkpoints / 'best.safetensors'}" if v.best_step is not None else ""
    return (f"validation: {v.runs} run(s) on {v.images} val images, {v.seconds:.1f} s "
            f"({100 * v.seconds / max(seconds, 1e-9):.1f}% of this session){best}{where}")
