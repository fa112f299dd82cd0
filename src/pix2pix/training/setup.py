"""Everything a run needs before its first step, built once into one :class:`Setup`: the configuration checked
against the run's own (a resume) or the source's (fine-tuning), the training pairs and their scalings, the
batches, the networks with the views the step runs them through, the optimizers, the validator, and where the
run stands (a resume restores it with :func:`pix2pix.checkpoints.restore_run`).

Nothing is written before every check has passed, and a resume with nothing left to do writes nothing at all.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..checkpoints import (checkpoint_scales, load_checkpoint, load_into, read_metadata, resolve_checkpoint_path,
                           restore_run)
from ..config import RunConfig, resolve
from ..data.batches import TrainingBatches
from ..data.pairs import fit_scales, load_scaled_pair, pairs_shape, scan_split
from ..data.units import Scales
from ..errors import Pix2PixError
from ..networks import build_discriminator, build_generator, init_weights
from ..networks.hd import global_into_local
from ..networks.vgg import load_vgg
from ..speed import Precision, Speed, adam, compiled, configure, fast_path, prepare, resolve_device
from .distributed import (World, join, leave, on_main, rank_share, set_rng_state, sync_batch_norm, waiting_room,
                          world_from_env)
from .guards import bad_image_hint
from .rules import check_resume, fine_tune, source_said
from .runs import RunFolder, read_log
from .step import Networks
from .validation import Validator, best_record

log = logging.getLogger(__name__)


@dataclass
class Position:
    """Where a run stands: optimizer steps taken, epochs ended, and batches taken in the current epoch."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0


@dataclass
class Setup:
    cfg: RunConfig
    world: World
    device: torch.device
    speed: Speed
    amp: Precision
    folder: RunFolder
    progress: bool
    at: Position = field(default_factory=Position)
    scales: Scales | None = None
    pairs: dict | None = None  # what the training files are (pix2pix.data.pairs.pairs_shape), for checkpoints
    data: TrainingBatches | None = None
    nets: Networks | None = None
    validates: bool = False  # on every process: whether the run validates (the main one holds the validator)
    validator: Validator | None = None
    room: object = None  # where the other processes wait while the main one validates or writes checkpoints
    steps_per_epoch: int = 0
    total_steps: int = 0
    bad_images: list[str] = field(default_factory=list)
    saved_at: int | None = None
    nothing_to_do: bool = False
    stop: object = None  # the run's StopRequests (pix2pix.training.guards), once the loop has it
    bar: object = None  # the run's progress bar (tqdm), once the loop has it

    @property
    def total_epochs(self) -> int:
        return self.cfg.train.epochs + self.cfg.train.epochs_decay

    def close(self, clean: bool = True) -> None:
        """Release what the run holds. Under torchrun the networks (and DistributedDataParallel's pending work
        with them) go before the process group, and after a clean end every process waits for the others first:
        gloo's threads must not outlive the interpreter's teardown (a SIGABRT at exit otherwise)."""
        self.folder.close()
        self.folder.lock.release()
        self.nets = self.data = None
        leave(wait=clean)


def setup(cfg: RunConfig, resume: bool = False, progress: bool = True, stated: set | None = None) -> Setup:
    """Build the run (and hold its lock, on the main process, until :meth:`Setup.close`). ``stated``: the fields
    the caller chose, for fine-tuning's rules (:func:`pix2pix.training.rules.fine_tune`)."""
    if cfg.train.init_from and not resume:
        fine_tune(cfg, stated)  # before resolve(): the crop size may fit only the source's generator
    cfg = resolve(cfg)
    world = world_from_env()
    device = resolve_device(cfg.train.device)
    device = join(world, device) if world.distributed else device
    speed = fast_path(device, cfg.train.fast)
    configure(device, speed)
    s = Setup(cfg, world, device, speed, Precision(device, speed), RunFolder(cfg.run_dir), progress and world.main)
    s.folder.check_writable()
    if world.main:
        s.folder.lock.acquire()  # one writer per run, before anything is written
    try:
        _build(s, resume)
    except BaseException:
        s.close(clean=False)
        raise
    return s


def _build(s: Setup, resume: bool) -> None:
    cfg = s.cfg
    s.room = waiting_room()  # under torchrun, where the others wait while the main process works alone
    if resume:
        check_resume(cfg, RunConfig.load(s.folder.config), s.folder.path)
    elif s.folder.holds_a_run():
        raise Pix2PixError(f"{s.folder.path} already holds a run; continue it with --resume {s.folder.path}, "
                           "or choose another --name")
    pairs = _train_pairs(s)
    s.pairs = pairs_shape(pairs)
    s.steps_per_epoch = math.ceil(len(pairs) / (cfg.data.batch_size * s.world.size))
    s.total_steps = min(s.steps_per_epoch * s.total_epochs, cfg.train.max_steps or math.inf)
    if resume and _at_the_end(s):
        return
    s.scales = _scales(s, pairs, resume)
    _validation(s)  # before anything is written: its files may be missing
    if s.world.main:
        s.folder.make()
    share = (lambda order: rank_share(order, cfg.data.batch_size, s.world)) if s.world.distributed else None
    s.data = TrainingBatches(pairs, cfg.data, cfg.generator.in_channels, cfg.generator.out_channels,
                             cfg.train.seed, s.device, cfg.train.fast, share=share, bad_images=bool(s.bad_images),
                             scales=s.scales)
    s.nets = build_networks(cfg, s.device, s.speed, s.world, views=True)
    if resume:
        _restore(s)
    elif cfg.train.init_from:
        _load_source(s)
    if s.world.main:
        said = cfg.train.init_from and not resume and source_said(cfg)
        if said:
            log.info(said)
        cfg.save(s.folder.config)


def _at_the_end(s: Setup) -> bool:
    """A resume's saved step against the schedule: past its end is one line (a resume may lengthen a schedule,
    not cut it short); at its end (or at --max-steps) there is nothing to do. Takes up the saved step and epoch."""
    meta, t = read_metadata(resolve_checkpoint_path(s.folder.latest)), s.cfg.train
    saved = int(meta["step"])
    end = s.steps_per_epoch * s.total_epochs
    if saved > end:
        raise Pix2PixError(f"--epochs {t.epochs} --epochs-decay {t.epochs_decay}: that schedule ends at step {end}, "
                           f"before the run's saved step {saved}; a resume may lengthen a schedule, not cut it short")
    s.at.step, s.at.epoch, s.nothing_to_do = saved, int(meta.get("epoch", 0)), saved >= s.total_steps
    return s.nothing_to_do


def build_networks(cfg: RunConfig, device: torch.device, speed: Speed, world: World = World(),
                   views: bool = False) -> Networks:
    """G and D initialised from ``cfg.train.seed`` (the same weights in every process), on ``device`` in the fast
    path's layout, with the paper's Adam. Under torchrun batch norm becomes SyncBatchNorm and each process
    then draws its own dropout noise. With ``views``, the step runs them through DistributedDataParallel under
    torchrun, compiled on the fast path where that pays (pix2pix.speed)."""
    t = cfg.train
    torch.manual_seed(t.seed)
    G = init_weights(build_generator(cfg.generator), t.init, t.init_gain)
    D = init_weights(build_discriminator(cfg.discriminator), t.init, t.init_gain) if t.loss.uses_gan else None
    if world.distributed:
        G = sync_batch_norm(G, device)
        D = sync_batch_norm(D, device) if D else None
    if world.rank:
        torch.manual_seed(process_seed(t.seed, world.rank, 0))
    G = prepare(G.to(device), speed).train()
    D = prepare(D.to(device), speed).train() if D else None
    opt_G, opt_D = adam(trained_parameters(G, t, epoch=0), t, speed), adam(D.parameters(), t, speed) if D else None
    vgg = prepare(load_vgg(Path(t.vgg)).to(device), speed) if t.vgg else None
    if not views:
        return Networks(G, D, opt_G, opt_D, vgg=vgg)
    ddp = (lambda m: _ddp(m, device)) if world.distributed else (lambda m: m)
    D_step = compiled(ddp(D), speed) if D else None
    D_frozen = (compiled(D, speed) if world.distributed else D_step) if D else None
    return Networks(G, D, opt_G, opt_D, G_step=compiled(ddp(G), speed), D_step=D_step, D_frozen=D_frozen, vgg=vgg)


def trained_parameters(G: nn.Module, t, epoch: int) -> list[nn.Parameter]:
    """What opt_G steps in ``epoch``: all of G, except that a local generator's global part is held fixed for its
    first --fix-global-epochs epochs (pix2pixHD's niter_fix_global; its gradients are still computed, so that
    under torchrun every process reduces the same parameters)."""
    if t.fix_global_epochs and epoch < t.fix_global_epochs:
        fixed = {id(p) for p in G.global_part()}
        return [p for p in G.parameters() if id(p) not in fixed]
    return list(G.parameters())


def release_global(s: Setup) -> None:
    """At the end of the fixed epochs: Adam rebuilt over all of G, as pix2pixHD rebuilds it (fresh moments)."""
    s.nets.opt_G = adam(trained_parameters(s.nets.G, s.cfg.train, s.at.epoch), s.cfg.train, s.speed)
    if s.world.main:
        log.info(f"epoch {s.at.epoch}: the global generator is trained from here on, with the enhancer "
                 "(--fix-global-epochs)")


def _ddp(module: nn.Module, device: torch.device) -> nn.Module:
    ids = [device.index] if device.type == "cuda" else None
    # SyncBatchNorm keeps the buffers equal on every process, so DDP need not send them before each forward
    # (torch 2.13 names that forward_sync_buffers, and marks broadcast_buffers deprecated; older torch has only it).
    ddp = nn.parallel.DistributedDataParallel
    own = "forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(ddp.__init__).parameters \
        else "broadcast_buffers"
    return ddp(module, device_ids=ids, **{own: False})


def process_seed(seed: int, rank: int, step: int) -> int:
    """The seed of a process's own dropout noise under torchrun (rank 0 keeps the run's seed)."""
    return seed + 1_000_003 * rank + step


def _train_pairs(s: Setup) -> list:
    """The training split's pairs (its stray files are errors, or with --skip-bad-images reported)."""
    cfg = s.cfg
    pairs, problems = scan_split(Path(cfg.data.root), "train")
    if problems:
        if not cfg.data.skip_bad_images:
            raise Pix2PixError(bad_image_hint(problems[0], len(problems)))
        s.bad_images += problems
    if not pairs:
        raise Pix2PixError(f"--data {cfg.data.root}: no usable images in the 'train' split")
    return pairs


def _scales(s: Setup, pairs: list, resume: bool) -> Scales:
    """How each side maps to [-1, 1]: the resumed run's, the --init-from checkpoint's (its weights expect
    them), or fitted to the training split by --normalize (every process computes the same)."""
    cfg, g = s.cfg, s.cfg.generator
    if resume:
        return checkpoint_scales(s.folder.latest)
    if cfg.train.init_from:
        scales = checkpoint_scales(Path(cfg.train.init_from))
        if cfg.data.normalize != "auto" and s.world.main:
            log.warning(f"--normalize {cfg.data.normalize} has no effect with --init-from: the weights keep the "
                        "scalings they were trained with")
        try:  # the new data must be of the kind those weights were trained on
            load_scaled_pair(pairs[0], cfg.data.direction, g.in_channels, g.out_channels, scales, cfg.data.label_nc)
        except Pix2PixError as e:
            raise Pix2PixError(f"--init-from {cfg.train.init_from}: its model takes input "
                               f"{scales.input.describe()} and output {scales.output.describe()}, which this "
                               f"data does not fit ({e})") from None
        return scales
    scales = fit_scales(pairs, cfg.data, g.in_channels, g.out_channels, progress=s.progress,
                        skip_bad=cfg.data.skip_bad_images)
    if not scales.eight_bit and s.world.main:
        log.info(f"scaling: input {scales.input.describe()}; output {scales.output.describe()}")
        if cfg.data.preprocess not in ("crop", "none") and not cfg.data.label_nc:  # resizes (class maps: nearest)
            log.info(f"note: --preprocess {cfg.data.preprocess} resamples the data (bicubic, in float); for pixels "
                     "that are measurements, --preprocess none (or crop) keeps them as measured")
    return scales


def _validation(s: Setup) -> None:
    """Whether the run validates (every process knows), and on the main process the val split's scorer."""
    t = s.cfg.train
    try:
        val_pairs, _ = scan_split(Path(s.cfg.data.root), "val")
    except Pix2PixError:  # no val folder
        val_pairs = []
    if t.val_every and not val_pairs:
        raise Pix2PixError(f"--val-every {t.val_every}: {s.cfg.data.root} has no val split to score (add one with "
                           "'pix2pix datasets split', or leave --val-every out)")
    s.validates = t.val_every != 0 and bool(val_pairs)
    if s.validates:
        s.validator = on_main(s.room, s.world, lambda: _validator(s, val_pairs))


def _validator(s: Setup, val_pairs: list) -> Validator:
    """The val split's scorer, with the segmenter and Inception file it was given (the main process's)."""
    from ..evaluation.metrics import InceptionFeatures, image_only
    from ..evaluation.segmentation import Segmenter

    t, g = s.cfg.train, s.cfg.generator
    why = image_only(s.scales, g.in_channels, g.out_channels, bool(t.segmenter), bool(t.inception))
    if why:
        flag = "--segmenter" if t.segmenter and "FCN" in why else "--inception"
        raise Pix2PixError(f"{flag}: {why}, and this run's data is {s.scales.output.data} with {g.out_channels} "
                           "output channel(s); validation scores L1, PSNR and SSIM without it")
    segmenter = Segmenter.load(Path(t.segmenter), device=s.device) if t.segmenter else None
    features = InceptionFeatures(Path(t.inception)).to(s.device) if t.inception else None
    return Validator(val_pairs, s.cfg.data, g.in_channels, g.out_channels, t.val_images, t.best_metric, segmenter,
                     features, s.scales)


def _restore(s: Setup) -> None:
    """A resume: the saved weights, optimizers, position, random states and gradient scalers; the validator's
    image set and best."""
    what = (f"generator {s.cfg.generator.arch}", f"discriminator {s.cfg.discriminator.arch}")
    t = s.cfg.train  # the saved epoch (read by _at_the_end) says whether it was saved after the switch
    if t.fix_global_epochs and s.at.epoch >= t.fix_global_epochs:
        s.nets.opt_G = adam(trained_parameters(s.nets.G, t, s.at.epoch), t, s.speed)
    state = restore_run(s.folder.checkpoints, s.nets.G, s.nets.D, s.nets.opt_G, s.nets.opt_D, what)
    s.at = Position(state.step, state.epoch, state.batch_in_epoch)
    s.saved_at = state.step
    s.bad_images = list(state.bad_images)
    s.amp.load_state_dict(state.scalers)
    if len(state.rng) == s.world.size or s.world.main:
        set_rng_state(state.rng[s.world.rank if len(state.rng) == s.world.size else 0], s.device)
    else:  # saved by a different number of processes: fresh noise for this one
        torch.manual_seed(process_seed(s.cfg.train.seed, s.world.rank, state.step))
    if s.validates:
        on_main(s.room, s.world, lambda: _take_up_best(s))


def _other_scales(theirs, mine) -> bool:
    """Two multi-scale Ds that differ in their number of scales alone."""
    return theirs.arch == mine.arch == "multiscale" and dataclasses.replace(theirs, num_d=mine.num_d) == mine


def _take_up_best(s: Setup) -> None:
    v, best = s.validator, s.folder.checkpoints / "best.safetensors"
    rows = [r for r in read_log(s.folder.val) if r["step"] <= s.at.step]
    if v.take_up(rows, best_record(best), stated=s.cfg.train.val_images is not None):
        return
    ckpt = load_checkpoint(best)  # scored on other images (or before they were recorded): again, on these
    with torch.random.fork_rng(devices=[s.device] if s.device.type == "cuda" else []):  # training's draws stay
        G = ckpt.build_generator().to(s.device)
    v.improves(v.score(G, s.device), int(ckpt.meta.get("step", 0)))
    log.info(f"validation: the best checkpoint (step {v.best_step}) scored again on the {v.images} val images "
             f"this run now scores: {s.cfg.train.best_metric} {v.best:.4f}")


def _load_source(s: Setup) -> None:
    """Fine-tuning: G (and D, where the file has one of this run's architecture) from ``init_from``."""
    cfg = s.cfg
    ckpt = load_checkpoint(Path(cfg.train.init_from))
    state = ckpt.generator_state
    if cfg.generator.arch == "local" and ckpt.generator.arch == "global":  # pix2pixHD's second stage
        state = global_into_local(state, s.nets.G)
    load_into(s.nets.G, state, ckpt.path, f"generator {cfg.generator.arch}")
    if s.nets.D is None:
        return
    if ckpt.discriminator == cfg.discriminator:
        load_into(s.nets.D, ckpt.discriminator_state, ckpt.path, f"discriminator {cfg.discriminator.arch}")
    elif ckpt.discriminator is not None and _other_scales(ckpt.discriminator, cfg.discriminator):
        # pix2pixHD's load_pretrain: the scales both have, by name (scale0 is the coarsest of each: the 512p
        # run's half-size scale sees what the 1024p run's quarter-size one does)
        own = s.nets.D.state_dict()
        load_into(s.nets.D, own | {k: v for k, v in ckpt.discriminator_state.items() if k in own}, ckpt.path,
                  f"discriminator {cfg.discriminator.arch}")
        if s.world.main:
            log.info(f"--init-from {ckpt.path}: D's {ckpt.discriminator.num_d} scales start its "
                     f"{cfg.discriminator.num_d} coarsest ones; the others start from their init")
    elif s.world.main:
        why = "has none" if ckpt.discriminator is None else "has another one"
        log.warning(f"--init-from {ckpt.path} {why} for this run's {cfg.discriminator.arch}; D starts from its init")
