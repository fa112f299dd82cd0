"""Every file format of a model: release weights in safetensors with the architecture in the metadata, the
run state an exact resume needs beside them, and the reference PyTorch code's ``*_net_G.pth`` files.

``runs/NAME/checkpoints/latest.safetensors`` holds ``generator.*`` and ``discriminator.*`` tensors; its
metadata holds the generator and discriminator configs as JSON (enough to rebuild both), the step, the
epoch, the run configuration and the name of its training state file, ``state_STEP.pt``, which holds what
only a resume needs: optimizer and scheduler states, RNG states and the position in the epoch. Every file
is written to a temporary name and renamed, so a crash mid-write never leaves a corrupt ``latest``.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save
from torch import nn

from .config import DiscriminatorConfig, GeneratorConfig, RunConfig, check_section, section_from_dict, settled
from .errors import Pix2PixError
from .files import atomic_write, write_bytes
from .networks import build_discriminator, build_generator, check_size
from .published import resolve_published
from .data.units import EIGHT_BIT, Scales

FORMAT = "pix2pix/1"
# Every key of a checkpoint's metadata (each value JSON but the format tag): see save_weights, save_run.
METADATA_KEYS = {"format", "generator", "discriminator", "step", "epoch", "config", "state", "source", "published",
                 "val", "scales", "pairs"}


def save_weights(path: Path, G: nn.Module, G_cfg: GeneratorConfig, D: nn.Module | None = None,
                 D_cfg: DiscriminatorConfig | None = None, **meta: Any) -> None:
    tensors = {f"generator.{k}": v.detach().cpu().contiguous() for k, v in G.state_dict().items()}
    if D is not None:
        tensors |= {f"discriminator.{k}": v.detach().cpu().contiguous() for k, v in D.state_dict().items()}
    metadata = {"format": FORMAT, "generator": json.dumps(dataclasses.asdict(settled(G_cfg))),
                "discriminator": json.dumps(dataclasses.asdict(D_cfg)) if D_cfg is not None else "null"}
    metadata |= {k: json.dumps(v) for k, v in meta.items()}
    # The bytes, then one write of our own: safetensors' save_file would write its own temporary file.
    write_bytes(path, save(tensors, metadata=metadata))


# ------------------------------------------------------------------------------------- run state

STATE_VERSION = 2


@dataclass
class RunState:
    """What an exact resume needs beyond the weights: ``state_STEP.pt`` (plain tensors and containers, so it
    loads with ``weights_only=True``). ``rng`` holds every process's random state, ``{"cpu", "cuda"}`` per rank
    (one entry for a single process); there is no schedule state: the lr is a function of the step."""

    step: int
    epoch: int
    batch_in_epoch: int
    opt_G: dict
    opt_D: dict | None
    rng: list[dict]
    bad_images: list[str] = field(default_factory=list)
    scalers: dict | None = None  # the fp16 gradient scalers' states (CUDA 7.x), else None
    version: int = STATE_VERSION

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "training state") -> RunState:
        """A state of this version or any earlier one (:func:`upgrade_state`); an unknown key is one line."""
        d = upgrade_state(d)
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise Pix2PixError(f"{where}: unknown key '{unknown[0]}' in the training state (written by another "
                               "version of pix2pix?)")
        return cls(**d)


def upgrade_state(d: dict[str, Any]) -> dict[str, Any]:
    """The one place old state files are brought up to date. Version 1 (no ``version`` key) also held the lr
    schedulers' states (dropped: the lr is recomputed from the step) and its random states as ``rng_cpu``,
    ``rng_cuda`` (in its first form a list of every visible GPU's) and ``rng_processes`` (every rank's, or
    None when only the main process had saved)."""
    d = dict(d)
    if d.get("version", 1) == 1:
        d.pop("schedulers", None)
        processes, cpu, cuda = d.pop("rng_processes", None), d.pop("rng_cpu", None), d.pop("rng_cuda", None)
        if isinstance(cuda, list):
            cuda = cuda[0] if cuda else None
        d["rng"] = list(processes) if processes else [{"cpu": cpu, "cuda": cuda}]
        d["version"] = STATE_VERSION
    return d


def save_state(path: Path, state: RunState) -> None:
    # A shallow dict, not dataclasses.asdict: that deep-copies every optimizer tensor before each save.
    fields = {f.name: getattr(state, f.name) for f in dataclasses.fields(state)}
    atomic_write(path, lambda tmp: torch.save(fields, tmp))


def load_state(path: Path) -> RunState:
    try:
        return RunState.from_dict(torch.load(path, map_location="cpu", weights_only=True), str(path))
    except Pix2PixError:
        raise
    except FileNotFoundError:
        raise Pix2PixError(f"{path}: no training state to resume from") from None
    except Exception as e:  # a corrupt pickle raises many kinds of errors
        raise Pix2PixError(f"{path}: unreadable training state ({_load_failure(e, path)})") from None


def _load_failure(e: Exception, path: Path | None = None) -> str:
    """Why torch.load failed, in our words: a pickle that asks for more than tensors and containers is refused
    (it could run code), without torch's advice to switch that protection off."""
    said = str(e)
    if any(w in said for w in ("Unsupported global", "Unsupported class", "not an allowed global")) or \
            (path is not None and _asks_for_code(path)):
        return ("refused for safety: it asks for Python objects other than tensors and plain containers, which "
                "could run code")
    if isinstance(e, pickle.UnpicklingError) or "Weights only load failed" in said:
        return "not a PyTorch file, or a damaged one"
    first = said.strip().splitlines()[0] if said.strip() else ""
    return f"{e.__class__.__name__}: {first[:200]}" if first else e.__class__.__name__


# What a state dict's pickle may name: torch's own classes and rebuild functions, and the containers torch.save
# writes. Anything else (os.system, builtins.eval, subprocess, ...) is a pickle that asks to run code.
SAFE_MODULES = ("torch", "collections", "_codecs", "numpy")


def _asks_for_code(path: Path) -> bool:
    """Whether a pickle (raw, or a torch.save zip's data.pkl) names a callable outside :data:`SAFE_MODULES`, read
    opcode by opcode without running it (a damaged file stops the reading, and says nothing)."""
    import pickletools
    import zipfile

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                name = next((n for n in z.namelist() if n.endswith("data.pkl")), None)
                data = z.read(name) if name else b""
        else:
            data = Path(path).read_bytes()[:2**24]
        strings: list[str] = []
        for op, arg, _ in pickletools.genops(data):
            if op.name in ("GLOBAL", "INST"):
                module = str(arg).split(" ")[0]
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                module = strings[-2]
            else:
                if isinstance(arg, str):
                    strings.append(arg)
                continue
            if module.split(".")[0] not in SAFE_MODULES:
                return True
    except Exception:  # not a pickle, or a damaged one: pickletools says so by raising
        return False
    return False


def save_run(ckpt_dir: Path, G: nn.Module, G_cfg: GeneratorConfig, D: nn.Module | None,
             D_cfg: DiscriminatorConfig | None, state: RunState, config: dict, scales: Scales = EIGHT_BIT,
             snapshot: str | None = None, pairs: dict | None = None) -> Path:
    """Write ``latest.safetensors`` and its ``state_STEP.pt`` (and a snapshot ``SNAPSHOT.safetensors``).

    ``pairs``: what the training files were (:func:`pix2pix.data.pairs.pairs_shape`), for translate's guard.
    The state file is named by its step and the weights name theirs: a crash between the two writes leaves the
    previous weights pointing at the previous state, which is deleted only afterwards."""
    latest = ckpt_dir / "latest.safetensors"
    meta = dict(step=state.step, epoch=state.epoch, config=config, scales=scales.to_dict())
    if pairs:
        meta["pairs"] = pairs
    state_path = ckpt_dir / f"state_{state.step:08d}.pt"
    save_state(state_path, state)
    save_weights(latest, G, G_cfg, D, D_cfg, state=state_path.name, **meta)
    for old in ckpt_dir.glob("state_*.pt"):
        if old != state_path:
            old.unlink()
    if snapshot:
        save_weights(ckpt_dir / f"{snapshot}.safetensors", G, G_cfg, D, D_cfg, **meta)
    return latest


def restore_run(ckpt_dir: Path, G: nn.Module, D: nn.Module | None, opt_G: torch.optim.Optimizer,
                opt_D: torch.optim.Optimizer | None, what: tuple[str, str]) -> RunState:
    """The other half of :func:`save_run`: ``latest``'s weights into G and D, the optimizers' states into
    theirs (keeping this run's Adam kernel), and the rest of the run state returned for the loop to take up.
    ``what``: how messages name G and D (``generator unet_256``)."""
    from .speed import load_adam

    ckpt, state = load_latest(ckpt_dir)
    load_into(G, ckpt.generator_state, ckpt.path, what[0])
    load_adam(opt_G, state.opt_G)
    if D is not None:
        load_into(D, ckpt.discriminator_state, ckpt.path, what[1])
        load_adam(opt_D, state.opt_D)
    return state


def load_latest(ckpt_dir: Path) -> tuple[Checkpoint, RunState]:
    """The weights of ``latest.safetensors`` and the run state it names."""
    ckpt = load_checkpoint(ckpt_dir / "latest.safetensors")
    return ckpt, load_state(ckpt_dir / ckpt.meta.get("state", "state_missing.pt"))


@dataclass
class Checkpoint:
    """What a checkpoint file holds: configs to rebuild the nets, their weights, and metadata."""

    generator: GeneratorConfig
    generator_state: dict[str, torch.Tensor]
    discriminator: DiscriminatorConfig | None = None
    discriminator_state: dict[str, torch.Tensor] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def scales(self) -> Scales:
        """How its generator's input and output map to [-1, 1] (8-bit for files from before scalings were
        stored, and for the reference's)."""
        return _scales(self.meta, self.path)

    def build_generator(self) -> nn.Module:
        G = build_generator(self.generator)
        load_into(G, self.generator_state, self.path, f"generator {self.generator.arch}")
        return G

    def build_discriminator(self) -> nn.Module | None:
        if self.discriminator is None:
            return None
        D = build_discriminator(self.discriminator)
        load_into(D, self.discriminator_state, self.path, f"discriminator {self.discriminator.arch}")
        return D


def load_into(net: nn.Module, state: dict[str, torch.Tensor], path: Path | None, what: str) -> None:
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        detail = " ".join(str(e).split())
        if len(detail) > 300:
            detail = detail[:300] + "..."
        raise Pix2PixError(f"{path}: checkpoint does not match {what} ({detail})") from None


def resolve_checkpoint_path(path: Path) -> Path:
    """A run folder, a ``.safetensors`` file, a reference ``.pth`` file or a downloaded published model's name
    (:mod:`pix2pix.published`) -> the file to read."""
    published = resolve_published(str(path))
    if published is not None:
        return published
    path = Path(path)
    if path.is_dir():
        latest = path / "checkpoints" / "latest.safetensors"
        if not latest.exists():
            raise Pix2PixError(f"{path}: a folder but not a run with a checkpoint (no checkpoints/latest.safetensors)")
        return latest
    if not path.exists():
        raise Pix2PixError(f"{path}: no such checkpoint file or run folder")
    return path


def run_checkpoint(run_dir: Path, which: str = "latest") -> Path:
    """The checkpoint of a run that ``which`` names: ``latest``, ``best`` (kept by validation), a snapshot's
    name (``epoch_005``), or the path of a checkpoint file."""
    folder = Path(run_dir) / "checkpoints"
    which = which.removesuffix(".safetensors") if "/" not in which else which
    named = folder / f"{which}.safetensors"
    if named.exists():
        return named
    if which == "best":
        raise Pix2PixError(f"{run_dir}: no best checkpoint (it is kept by validation, which needs a val split); "
                           "use --checkpoint latest")
    if which == "latest":
        raise Pix2PixError(f"{run_dir}: no checkpoints/latest.safetensors: the run has not saved a checkpoint yet")
    if "/" not in which and not Path(which).exists():
        have = sorted(p.stem for p in folder.glob("*.safetensors"))
        raise Pix2PixError(f"{run_dir}: no checkpoint '{which}'" + (f"; it has {', '.join(have)}" if have else
                                                                    " (it has none yet)"))
    return resolve_checkpoint_path(Path(which))


def read_safetensors(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """(metadata, tensors) of a safetensors file; an unreadable file is a one-line error."""
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        return metadata, load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise Pix2PixError(f"{path}: not a readable safetensors checkpoint ({e})") from None


def load_checkpoint(path: Path) -> Checkpoint:
    """Read any supported checkpoint: ours (``.safetensors``) or the reference's (``.pth``, generator only)."""
    path = resolve_checkpoint_path(path)
    if path.suffix in (".pth", ".pt"):
        return load_reference_checkpoint(path)
    metadata, tensors = read_safetensors(path)
    if metadata.get("format") != FORMAT:
        raise Pix2PixError(f"{path}: not a pix2pix checkpoint (no '{FORMAT}' format tag in its metadata)")
    unknown = sorted(set(metadata) - METADATA_KEYS)
    if unknown:
        raise Pix2PixError(f"{path}: unknown key '{unknown[0]}' in the checkpoint's metadata (written by another "
                           "version of pix2pix?)")
    try:
        meta = {k: json.loads(v) for k, v in metadata.items() if k != "format"}
    except ValueError as e:
        raise Pix2PixError(f"{path}: the checkpoint's metadata is not valid JSON ({e})") from None
    if "generator" not in meta:
        raise Pix2PixError(f"{path}: the checkpoint's metadata has no generator configuration")
    G_cfg = settled(section_from_dict(GeneratorConfig, meta.pop("generator"), str(path), "generator"))
    D_json = meta.pop("discriminator", None)
    D_cfg = section_from_dict(DiscriminatorConfig, D_json, str(path), "discriminator") if D_json else None
    _buildable(path, G_cfg, D_cfg)
    if meta.get("config") is not None:
        RunConfig.from_dict(meta["config"], f"{path} (its run configuration)")  # unknown keys are one line
    _scales(meta, path).fits(G_cfg.in_channels, G_cfg.out_channels, path)
    _check_pairs(meta.get("pairs"), path)
    split = lambda prefix: {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}  # noqa: E731
    return Checkpoint(G_cfg, split("generator."), D_cfg, split("discriminator."), meta, path)


def _check_pairs(pairs, path: Path) -> None:
    """The ``pairs`` metadata (what the training files were: :func:`pix2pix.data.pairs.pairs_shape`), if any."""
    if pairs is None:
        return
    sides = [pairs.get(k) for k in ("width", "height")] if isinstance(pairs, dict) else []
    if not (sides and pairs.get("layout") == "aligned" and all(type(v) is int and 0 < v <= 2**20 for v in sides)):
        raise Pix2PixError(f"{path}: the checkpoint's 'pairs' metadata is not {{\"layout\": \"aligned\", \"width\": W, "
                           f"\"height\": H}} (it is {json.dumps(pairs)[:80]}); remove it or fix it")


def _buildable(path: Path, G_cfg: GeneratorConfig, D_cfg: DiscriminatorConfig | None) -> None:
    """A checkpoint's network configurations checked before anything is built from them: every value's type and
    range as the flags' (an edited file may hold anything), then the networks built on the meta device (nothing
    allocated) and their sizes bounded. One line naming the file."""
    for section, cfg, build in (("generator", G_cfg, build_generator), ("discriminator", D_cfg, build_discriminator)):
        if cfg is None:
            continue
        try:
            check_section(section, cfg)
            with torch.device("meta"):
                check_size(build(cfg), f"its {section} {cfg.arch}")
        except Pix2PixError as e:
            raise Pix2PixError(f"{path}: the checkpoint's {section} is not one pix2pix builds ({e})") from None


def _scales(meta: dict, path: Path | None) -> Scales:
    return Scales.from_dict(meta["scales"], str(path)) if meta.get("scales") else EIGHT_BIT


def read_metadata(path: Path) -> dict[str, Any]:
    """A ``.safetensors`` checkpoint's metadata, each value JSON-decoded (the format tag as it is), without
    reading its weights."""
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        return {k: v if k == "format" else json.loads(v) for k, v in metadata.items()}
    except (SafetensorError, OSError, ValueError) as e:
        raise Pix2PixError(f"{path}: not a readable safetensors checkpoint ({e})") from None


def checkpoint_scales(path: Path) -> Scales:
    """A checkpoint's scalings, from its metadata alone (no weights are read)."""
    path = resolve_checkpoint_path(path)
    if path.suffix in (".pth", ".pt"):
        return EIGHT_BIT
    return _scales(read_metadata(path), path)


# ------------------------------------------------------------------------------------- reference


def load_reference_checkpoint(path: Path) -> Checkpoint:
    """A ``latest_net_G.pth`` of junyanz/pytorch-CycleGAN-and-pix2pix: a bare state dict. The architecture
    (U-Net depth or ResNet blocks, widths, channels, norm) is read off the tensor names and shapes."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch.load raises many kinds for a corrupt or foreign file
        raise Pix2PixError(f"{path}: not a readable PyTorch state dict ({_load_failure(e, path)})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise Pix2PixError(f"{path}: expected a generator state dict (name -> tensor) as the reference saves")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    try:
        cfg = infer_reference_generator(state, path)
    except (KeyError, IndexError, ValueError, TypeError) as e:  # a key or a shape the layout needs is not there
        raise Pix2PixError(f"{path}: not a generator state dict in the reference's layout ({type(e).__name__}: "
                           f"{str(e)[:120]})") from None
    _buildable(path, cfg, None)
    # Checkpoints from before torch 0.4 lack num_batches_tracked, and their InstanceNorm layers kept running
    # statistics, which the reference drops before loading (its instance norm tracks none): so do we.
    if cfg.norm != "batch":
        state = {k: v for k, v in state.items()
                 if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))}
    expected = build_generator_meta(cfg)
    for k in expected:
        if k.endswith("num_batches_tracked") and k not in state:
            state[k] = torch.tensor(0)
    for k, shape in expected.items():  # key by key and shape by shape against the architecture it looks like
        if k not in state or tuple(state[k].shape) != tuple(shape):
            got = "missing" if k not in state else f"of shape {tuple(state[k].shape)}"
            raise Pix2PixError(f"{path}: looks like a reference {cfg.arch} (ngf {cfg.ngf}), but its {k} is {got}, "
                               f"not of shape {tuple(shape)}")
    return Checkpoint(cfg, state, meta={"source": "reference"}, path=path)


def build_generator_meta(cfg: GeneratorConfig) -> dict[str, torch.Size]:
    with torch.device("meta"):
        return {k: v.shape for k, v in build_generator(cfg).state_dict().items()}


def infer_reference_generator(state: dict[str, torch.Tensor], path: Path) -> GeneratorConfig:
    if "model.model.0.weight" in state:  # U-Net: levels nest as model.model.1.model.3.model. ...
        depth, prefix = 1, "model.model.1.model."
        while prefix + "1.weight" in state:
            depth, prefix = depth + 1, prefix + "3.model."
        ngf, in_channels = state["model.model.0.weight"].shape[:2]
        last = state["model.model.3.weight"]  # (2*ngf, out, 4, 4) with skips
        norm = _norm_of(state, "model.model.1.model.2", "model.model.1.model.1")
        kind = "unet" if last.shape[0] == 2 * ngf else "encoder_decoder"
        return GeneratorConfig(arch=f"{kind}_{2 ** depth}", in_channels=int(in_channels), out_channels=int(last.shape[1]),
                               ngf=int(ngf), norm=norm, dropout=0.5, dropout_placement="reference")
    first = state.get("model.1.weight")
    if first is not None and first.ndim == 4 and first.shape[-1] == 7:  # ResNet: model.K.conv_block.*
        blocks = {k.split(".")[1] for k in state if ".conv_block." in k}
        # With dropout at index 4 the second conv moves from index 5 to 6 (where batch norm sits without it).
        dropout = any(".conv_block.6.weight" in k and v.ndim == 4 for k, v in state.items())
        norm = _norm_of(state, "model.2", "model.1")
        last_idx = max(int(k.split(".")[1]) for k in state if k.endswith(".weight") and ".conv_block." not in k)
        return GeneratorConfig(arch=f"resnet_{len(blocks)}blocks", in_channels=int(first.shape[1]),
                               out_channels=int(state[f"model.{last_idx}.weight"].shape[0]), ngf=int(first.shape[0]),
                               norm=norm, dropout=0.5 if dropout else 0.0)
    raise Pix2PixError(f"{path}: not a pix2pix generator state dict that we recognise "
                       "(expected U-Net keys like model.model.0.weight or ResNet keys like model.1.weight)")


def _norm_of(state: dict[str, torch.Tensor], norm: str, conv: str) -> str:
    """The norm of the reference's layer ``norm`` that follows the conv ``conv``, read from the structure:
    batch norm is affine (it has a weight); instance norm is not, and its conv keeps a bias; with neither,
    none. Running statistics tell nothing: InstanceNorm layers saved by torch < 0.4 carry them too."""
    if f"{norm}.weight" in state:
        return "batch"
    return "instance" if f"{conv}.bias" in state else "none"
