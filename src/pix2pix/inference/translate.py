"""Inference: test mode, and translating images of any size with a generator from any checkpoint.

Test-time mode, stated explicitly (the reference hides it behind ``--eval``), and defined here for every
backend (PyTorch, the exported ONNX graph):

* ``eval=False`` (default, the paper's): dropout stays on and batch norm uses the statistics of the
  batch being translated, as in the paper ("we apply dropout at test time ... and batch normalization using
  the statistics of the test batch"). Outputs vary with the seed. A server that batches requests of several
  users normalises each image by its own statistics instead (:func:`per_image`), which for one image is the
  same; an exported graph draws its dropout noise with its own random op (:class:`NoiseDropout`).
* ``eval=True``: no dropout and batch norm's running statistics: deterministic.

The padding rule that makes any size work is the generator's own (``G.pad_multiple``, ``G.pad_minimum``):
``forward`` pads and crops back, and so does an exported graph, which holds the same ops.

Engines (:mod:`pix2pix.inference.engines`): PyTorch; the compiled engine on a CPU with bf16 for work that
repays its compile; ONNX Runtime fp32 on a CPU without bf16. Each keeps the accuracy contract stated there; in
the paper's mode the compiled engine and ONNX Runtime draw their own dropout noise (repeatable: seeded), so a
request for a seed's exact PyTorch noise runs PyTorch.

Three lines::

    from pix2pix import Translator
    translator = Translator.load("runs/facades")
    photo = translator(Image.open("labels.png"))
"""

from __future__ import annotations

import copy
import logging
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from tqdm import tqdm

from ..checkpoints import Checkpoint, load_checkpoint, run_checkpoint
from ..config import GeneratorConfig, RunConfig, settled
from ..data.pairs import PairDataset, is_data_file, scan_split, to_image
from ..data.rasters import (MODES, SUFFIX, Raster, as_array, checked_array, class_map, encode, fit_channels, image_side,
                      output_format, pil_raster, preview, read_raster, size_of, split_ab, to_tensor, write_raster)
from ..data.units import EIGHT_BIT, Scales
from ..errors import Pix2PixError
from ..files import atomic_write
from ..published import PUBLISHED
from .engines import ENGINES, GLOBAL_RNG, Compiled, batch_pixels, engine_for, engine_for_run, work_gflop
from .onnx_graph import graph_bytes, onnx_session, seeded
from ..speed import PLAIN, cpu_has_bf16, inference_path, prepare, resolve_device, to_device
from ..pages import write_page

log = logging.getLogger(__name__)

# ------------------------------------------------------------------------------------------ test mode


def set_test_mode(G: nn.Module, eval: bool) -> nn.Module:
    """Eval mode, or the paper's mode: dropout on and batch statistics, without touching running stats."""
    G.eval()
    if not eval:
        for m in G.modules():
            if isinstance(m, nn.Dropout):
                m.train()
            elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.train()
                m.track_running_stats = False  # use the batch's statistics and leave the running ones alone
    return G


class PerImageNorm(nn.Module):
    """Batch norm in the paper's test mode (statistics of the batch being translated) for one image at a
    time, whatever the batch: the server batches requests of different users, and one user's output must not
    depend on another's image. For a batch of one it is exactly the batch norm it replaces."""

    def __init__(self, bn: nn.modules.batchnorm._BatchNorm):
        super().__init__()
        self.weight, self.bias, self.eps = bn.weight, bn.bias, bn.eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.instance_norm(x, weight=self.weight, bias=self.bias, eps=self.eps)


def per_image(G: nn.Module) -> nn.Module:
    """``G`` with every batch norm normalising each image by its own statistics (see :class:`PerImageNorm`)."""
    for name, child in G.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(G, name, PerImageNorm(child))
        else:
            per_image(child)
    return G


class NoiseDropout(nn.Module):
    """Dropout written with rand_like, so an exported graph holds a RandomUniformLike that ONNX Runtime draws
    anew on every run (its Dropout op, even in training mode, passed inputs through)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (torch.rand_like(x) >= self.p).to(x.dtype) / (1 - self.p)


def exportable(G: nn.Module, eval: bool, dropout: bool = True) -> nn.Module:
    """An fp32 copy of ``G`` (its padding and crop included) in test mode for a graph: eval mode, or the
    paper's with per-image statistics and (``dropout``) :class:`NoiseDropout`; without ``dropout``, the
    paper's mode minus the noise, which is what an export is compared with."""
    net = set_test_mode(copy.deepcopy(G).float().to("cpu", memory_format=torch.contiguous_format), eval)
    if not eval:
        net = per_image(net)
    _replace_dropout(net, keep=dropout and not eval)
    return net


def _replace_dropout(module: nn.Module, keep: bool) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.Dropout):
            setattr(module, name, NoiseDropout(child.p) if keep and child.p > 0 else nn.Identity())
        else:
            _replace_dropout(child, keep)


# ---------------------------------------------------------------------------------------- translating


MAX_BATCH = 8  # inputs of one size translated together, at most


class Translator:
    """A generator ready for inference. Call it on a PIL image, an (H, W[, C]) array in the data's units, or a
    (C, H, W) / (B, C, H, W) float tensor in [-1, 1]; you get back the same kind of thing. The model's stored
    scalings (:class:`pix2pix.data.units.Scales`) map arrays to [-1, 1] and back: an 8-bit model takes and gives
    uint8 as the reference does; any other gives its output in the target's kind (uint16 for 16-bit data,
    float32 units otherwise), and a PIL image only where one holds it (8-bit, or 16-bit grayscale), else an
    (H, W, C) array.

    ``fast`` (default) runs the faster engine for the device that repays its set-up on ``work`` pixels of
    input (:func:`pix2pix.inference.engines.engine_for`; 0 by default, so no set-up: PyTorch's inference fast
    path of ``speed.inference_path``, bf16 weights and channels_last where the device computes bf16; on a CPU
    with bf16 and the work of a thousand unet_256 images or more, the compiled engine; on a CPU without bf16,
    ONNX Runtime fp32 from 32). ``work=None`` is a long-lived translator (a server): the compiled engine,
    compiling in the background (``background=True``) while PyTorch answers. ``run_seed``: the seed the
    paper's noise of this run is drawn from, which asks for PyTorch's exact noise, so PyTorch (said in a
    line). ``fast=False`` gives PyTorch's fp32 outputs bit for bit, as the reference computes them. ``engine``
    forces one ("torch", "compiled", "onnxruntime")."""

    def __init__(self, G: nn.Module, config: GeneratorConfig, eval: bool = False, device: str = "auto",
                 meta: dict | None = None, fast: bool = True, engine: str = "auto", scales: Scales = EIGHT_BIT,
                 work: int | None = 0, background: bool = False, run_seed: int | None = None):
        self.config, self.eval, self.meta, self.scales = settled(config), eval, meta or {}, scales
        self.device = resolve_device(device)
        if engine not in ENGINES:
            raise Pix2PixError(f"unknown engine '{engine}'; choose from {', '.join(ENGINES)}")
        if engine in ("onnxruntime", "compiled") and self.device.type != "cpu":
            raise Pix2PixError(f"the {engine} engine runs on the CPU, not on {self.device}")
        if engine == "compiled" and not cpu_has_bf16():
            raise Pix2PixError("the compiled engine runs in bf16, on CPUs with AVX512-BF16 or AMX, and this one has "
                               "neither (compiled in fp32 it was no faster than ONNX Runtime and drifted by up to 5 "
                               "levels): use --engine onnxruntime")
        if run_seed is not None and not eval and engine not in ("auto", "torch"):
            raise Pix2PixError(f"--seed asks for PyTorch's exact dropout noise in the paper's mode: it goes with "
                               f"--engine torch (or auto), not {engine}")
        if engine == "auto":  # a run seeded in the paper's mode asks for PyTorch's exact noise: PyTorch
            gflop = work_gflop(config, work)
            engine = engine_for_run(self.device, eval, run_seed, fast, gflop)
            engine = engine_for(self.device, fast, gflop) if engine == "auto" else engine
        self.engine = engine
        # ONNX Runtime's graph and the compiled one are made from the fp32 weights; PyTorch runs its fast path.
        self.speed = PLAIN if self.engine in ("onnxruntime", "compiled") else inference_path(self.device, fast)
        self.dtype = self.speed.dtype
        self.G = prepare(set_test_mode(G.to(self.device, self.dtype), eval), self.speed)
        self.per_image, self._session = False, None
        self.compiled = Compiled(self.G, background=background) if self.engine == "compiled" else None
        self.ran: str | None = None  # the engine that ran the last translation
        self.said_aligned = False  # read_input says once that it takes aligned files' source half

    @classmethod
    def load(cls, checkpoint: str | Path, eval: bool = False, device: str = "auto", fast: bool = True,
             engine: str = "auto", work: int | None = 0, run_seed: int | None = None, **overrides) -> Translator:
        """``checkpoint``: a run folder, a ``.safetensors`` file, or a reference ``latest_net_G.pth``.
        ``overrides`` replace fields of the generator config (e.g. ``dropout_placement="paper"``)."""
        ckpt: Checkpoint = load_checkpoint(Path(checkpoint))
        if overrides:
            ckpt.generator = GeneratorConfig(**{**ckpt.generator.__dict__, **overrides})
        return cls(ckpt.build_generator(), ckpt.generator, eval=eval, device=device, meta=ckpt.meta, fast=fast,
                   engine=engine, scales=ckpt.scales, work=work, run_seed=run_seed)

    def normalise_per_image(self) -> Translator:
        """In the paper's mode, normalise each image by its own statistics whatever the batch (a server
        batching several users' requests: :class:`PerImageNorm`)."""
        if not self.per_image:
            per_image(self.G)
            self.per_image, self._session = True, None
            if self.compiled is not None:  # what it compiled normalised by the batch
                self.compiled = Compiled(self.G, background=self.compiled.background)
        return self

    def engine_of(self, batch: int, seed: int | None) -> str:
        """The engine that translates a batch. A seed in the paper's mode asks for PyTorch's exact noise (ONNX
        Runtime and the compiled engine draw their own), and ONNX Runtime's graph normalises each image by
        itself, so a batch goes to it only where this translator does too."""
        if self.engine == "torch" or self.eval:
            return self.engine
        if seed is not None or (self.engine == "onnxruntime" and batch > 1 and not self.per_image):
            return "torch"
        return self.engine

    @torch.no_grad()
    def translate_tensor(self, x: torch.Tensor, seed: int | None = None) -> torch.Tensor:
        """(B, C, H, W) in [-1, 1] -> (B, C_out, H, W) in [-1, 1]; any H and W."""
        if x.ndim != 4 or x.shape[1] != self.config.in_channels:
            raise Pix2PixError(f"input has shape {tuple(x.shape)}; the generator expects "
                               f"(batch, {self.config.in_channels}, height, width)")
        engine = self.engine_of(x.shape[0], seed)
        self.ran = engine
        if engine == "onnxruntime":
            (y,) = self.session().run(None, {"x": x.detach().float().cpu().contiguous().numpy()})
            return torch.from_numpy(y)
        if seed is not None and not self.eval:  # the seed's noise, which no background compile may draw from meanwhile
            with GLOBAL_RNG:
                torch.manual_seed(seed)
                return self._run(engine, x)
        return self._run(engine, x)

    def _run(self, engine: str, x: torch.Tensor) -> torch.Tensor:
        if engine == "compiled":
            x = x.detach().float().cpu().contiguous()
            y = self.compiled(x, pad=self.eval or self.per_image)
            if y is not None:
                return y
            self.ran = "torch"
            if self.compiled.failed is None:  # a shape it has not compiled (yet): PyTorch's fast path
                return self.compiled.eager(x)
            # it could not compile (said in one line): from now on, PyTorch's fast path
            self.engine, self.G = "torch", self.compiled.eager_net()
            self.speed = inference_path(self.device)
            self.dtype, self.compiled = self.speed.dtype, None
            return self._run("torch", x)
        # A class map stays float32 (its ids are exact there); the network's first layer gives its dtype.
        x = to_device(x if self.config.label_nc else x.to(self.dtype), self.device, self.speed)
        return self.G(x).float().contiguous()

    def session(self):
        """The ONNX Runtime session of this generator in its test mode, made on first use (an export: seconds).
        Its noise is seeded: a fresh translator draws the same sequence (ONNX Runtime's, not PyTorch's)."""
        if self._session is None:
            net = exportable(self.G, self.eval)
            keep = not self.eval and self.config.dropout > 0
            size = max(self.G.pad_multiple, self.G.pad_minimum)
            graph = graph_bytes(net, self.config.in_channels, size, keep)
            self._session = onnx_session(seeded(graph, 0) if keep else graph)
        return self._session

    def __call__(self, image, seed: int | None = None):
        if isinstance(image, torch.Tensor):
            batched = image.ndim == 4
            out = self.translate_tensor(image if batched else image[None], seed)
            return out if batched else out[0]
        if not isinstance(image, (Image.Image, np.ndarray)):
            raise TypeError(f"expected a PIL image, a numpy array or a torch tensor, not {type(image).__name__}")
        c = self.config
        if self.scales.eight_bit and c.in_channels in MODES and c.out_channels in MODES and \
                (isinstance(image, Image.Image) and not _wide(image) or getattr(image, "dtype", None) == np.uint8):
            if isinstance(image, np.ndarray):  # the reference's way: an 8-bit image in, one out
                return np.asarray(self(Image.fromarray(image), seed))
            img = image.convert(MODES[c.in_channels])
            return to_image(self.translate_tensor(to_tensor(img)[None], seed)[0])
        u = self.translate_unit(self._side(image, "the input"), seed)
        out = self.scales.output
        # In the target data's type, as the CLI writes it: 8- and 16-bit data as 8- and 16-bit whatever their
        # scaling (rounded, clipped), any other data as float32 in its units.
        fmt = {"uint8": "png", "uint16": "png16"}.get(out.data)
        data = encode(u, out, fmt) if fmt else out.to_data(u).permute(1, 2, 0).numpy()
        if isinstance(image, Image.Image) and (image_side(out, data.shape[2]) or
                                               (out.data == "uint16" and data.shape[2] == 1)):
            return Image.fromarray(data[:, :, 0] if data.shape[2] == 1 else data)
        return data

    def _side(self, image, where) -> Raster:
        """A PIL image or an array as the generator's input side (its channels; under the 8-bit scaling a 16-bit
        or float grayscale one comes to 8 bits, as before scalings were stored)."""
        side = pil_raster(image) if isinstance(image, Image.Image) else np.asarray(image)
        if isinstance(side, np.ndarray):
            side = checked_array(side, where)
        return fit_channels(side, self.config.in_channels, where, "the generator's input channels",
                            eight_bit=self.scales.input.kind == "uint8")

    def translate_unit(self, side: Raster, seed: int | None = None, where="the input") -> torch.Tensor:
        """One input side (an image or an (H, W, C) array in the data's units) -> the (C, H, W) output in
        [-1, 1]; the input is checked against the model's input scaling first."""
        self.scales.input.check(as_array(side), where)
        return self.translate_tensor(to_tensor(side, self.scales.input)[None], seed)[0]

    def read_input(self, path: Path, direction: str | None = None, whole: bool = False) -> Raster:
        """An input file as the generator's input side. With ``direction``, the file is an aligned A|B pair and
        the source half (A for AtoB, B for BtoA) is taken. Without it, a file of the size of the aligned pairs
        the model was trained on is taken as one of them (and said once), unless ``whole``."""
        channels, eight_bit = self.config.in_channels, self.scales.input.kind == "uint8"
        if direction is None:
            trained = self.meta.get("pairs") or {}
            if whole or trained.get("layout") != "aligned":
                return read_raster(path, channels, "the generator's input channels", eight_bit, self.config.label_nc)
            raw = read_raster(path, None)
            direction = (self.meta.get("config") or {}).get("data", {}).get("direction")
            if size_of(raw) != (trained["width"], trained["height"]) or direction not in ("AtoB", "BtoA"):
                return fit_channels(raw, channels, path, "the generator's input channels", eight_bit,
                                    self.config.label_nc)
            if not self.said_aligned:
                half = "A (left)" if direction == "AtoB" else "B (right)"
                log.info(f"{Path(path).name}: {trained['width']}x{trained['height']}, the size of the aligned A|B "
                         f"files this model was trained on: translating the {half} half of such files, as in "
                         "training (--whole translates whole files)")
                self.said_aligned = True
            return self._source_half(raw, direction, path)
        return self._source_half(read_raster(path, None), direction, path)

    def _source_half(self, whole: Raster, direction: str, path: Path) -> Raster:
        channels, eight_bit = self.config.in_channels, self.scales.input.kind == "uint8"
        if self.config.label_nc:  # a class map's half: its indices as stored
            a, b = split_ab(whole, path)
            return class_map(a if direction == "AtoB" else b, channels, path, self.config.label_nc)
        if isinstance(whole, Image.Image) or (eight_bit and channels in MODES):
            if channels not in MODES:
                raise Pix2PixError(f"{path}: an 8-bit image, and the generator takes {channels} channels")
            whole = fit_channels(whole, max(channels, 3) if channels != 1 else 1, path, eight_bit=eight_bit)
        a, b = split_ab(whole, path)
        return fit_channels(a if direction == "AtoB" else b, channels, path, "the generator's input channels")

    def translate_file(self, path: Path, direction: str | None = None, seed: int | None = None,
                       whole: bool = False):
        """Translate a file (see :meth:`read_input`): a PIL image for an 8-bit model, as ``__call__`` gives."""
        return self(self.read_input(path, direction, whole), seed)

    def write(self, path: Path, out_dir: Path, direction: str | None = None, seed: int | None = None,
              fmt: str | None = None, whole: bool = False, tile: int | None = None,
              overlap: int | None = None) -> Path:
        """Translate a file into ``out_dir/STEM.EXT`` in the data's kind (:func:`pix2pix.data.rasters.output_format`,
        or ``fmt``); returns the path written. With ``tile``, tile by tile (:mod:`.tiling`), the whole file; a
        file over :data:`.tiling.AUTO_TILE_PIXELS` is tiled without being asked (said in one line)."""
        from .tiling import default_overlap, write_tiled

        tile = self.tile_for(path, direction, tile)
        if tile:
            fmt = output_format(path, self.scales.output, self.config.out_channels, fmt)
            return write_tiled(self, path, out_dir, tile, default_overlap(tile) if overlap is None else overlap,
                               seed, fmt)
        u = self.translate_unit(self.read_input(path, direction, whole), seed, where=path)
        return self.write_output(path, u, out_dir, fmt)

    def batch_for(self, height: int, width: int) -> int:
        """How many inputs of this size go through the engine together: by the size the generator pads them to
        (:func:`.engines.batch_pixels`), at most :data:`MAX_BATCH`."""
        from ..networks.generators import padded_size

        ph, pw = padded_size(height, width, self.G.pad_multiple, self.G.pad_minimum)
        return max(1, min(MAX_BATCH, batch_pixels(self.engine) // (ph * pw)))

    def tile_for(self, path: Path, direction: str | None, tile: int | None) -> int | None:
        """The tile size a file is translated in: ``tile``, or for a file over the pixel budget (and not an
        aligned pair's half) :data:`.tiling.AUTO_TILE`, said in one line; None: whole."""
        from .tiling import AUTO_TILE, AUTO_TILE_PIXELS, pixels_of

        if not tile and direction is None and (pixels_of(path) or 0) > AUTO_TILE_PIXELS:
            tile = AUTO_TILE
            log.info(f"{Path(path).name}: over {AUTO_TILE_PIXELS / 1e6:.1f} megapixels, translated in tiles of "
                     f"{tile} (--tile N sets their size)")
        return tile or None

    def write_output(self, path: Path, u: torch.Tensor, out_dir: Path, fmt: str | None = None) -> Path:
        """One output ((C, H, W) in [-1, 1]) of the input ``path`` as ``out_dir/STEM.EXT``."""
        fmt = output_format(path, self.scales.output, u.shape[0], fmt)
        target = Path(out_dir) / f"{Path(path).stem}{SUFFIX[fmt]}"
        write_raster(target, encode(u, self.scales.output, fmt), fmt)
        return target


def translate_files(translator: Translator, files: list[Path], out_dir: Path, direction: str | None = None,
                    seed: int | None = None, fmt: str | None = None, whole: bool = False, tile: int | None = None,
                    overlap: int | None = None, progress: bool = True) -> list[Path]:
    """Translate ``files`` into ``out_dir`` (see :meth:`Translator.write`), consecutive files of one input size
    in batches through the engine (:meth:`Translator.batch_for`). In eval mode batching changes no answer; in
    the paper's mode each image is normalised by its own statistics, as alone, and its noise is drawn with the
    batch's (another sample than one image at a time would draw). With a seed in the paper's mode (file i draws
    PyTorch's noise of seed + i), and for tiled files, one at a time. Returns the paths written."""
    written: list[Path] = []
    pending: list[tuple[Path, torch.Tensor]] = []
    if not translator.eval:
        translator.normalise_per_image()

    def flush() -> None:
        if pending:
            outputs = translator.translate_tensor(torch.stack([x for _, x in pending]))
            written.extend(translator.write_output(f, u, out_dir, fmt) for (f, _), u in zip(pending, outputs))
            bar.update(len(pending))
            pending.clear()

    with tqdm(total=len(files), unit="img", disable=not progress or len(files) < 2) as bar:
        for i, f in enumerate(files):
            tiles = translator.tile_for(f, direction, tile)
            if tiles or (seed is not None and not translator.eval):
                flush()
                written.append(translator.write(f, out_dir, direction, None if seed is None else seed + i, fmt,
                                                whole, tiles, overlap))
                bar.update(1)
                continue
            side = translator.read_input(f, direction, whole)
            translator.scales.input.check(as_array(side), f)
            x = to_tensor(side, translator.scales.input)
            if pending and (pending[0][1].shape != x.shape or len(pending) >= translator.batch_for(*x.shape[1:])):
                flush()
            pending.append((f, x))
        flush()
    return written


def _wide(image: Image.Image) -> bool:
    """A 16-bit or float Pillow image (not one of 8 bits)."""
    return image.mode.startswith("I;16") or image.mode in ("I", "F")


def input_files(inputs: list[Path]) -> list[Path]:
    """Expand files and folders (their image files, sorted) given on the command line."""
    files: list[Path] = []
    for p in map(Path, inputs):
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and is_data_file(f))
            if not found:
                raise Pix2PixError(f"--input {p}: the folder holds no image or array files")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise Pix2PixError(f"--input {p}: no such file or folder")
    return files


def translate_split(run_dir: Path, split: str = "test", eval: bool = False, seed: int | None = None,
                    device: str = "auto", progress: bool = True, fast: bool = True,
                    checkpoint: str = "latest", engine: str = "auto") -> tuple[Path, str, list, dict]:
    """Translate a split of the run's dataset with its ``checkpoint`` (:func:`pix2pix.checkpoints.run_checkpoint`:
    latest, best, a snapshot or a file) into ``run_dir/results/SPLIT/images`` (``results/SPLIT_best`` and so on
    for another than latest)
    (``STEM_input.png``, ``STEM_output.png``, ``STEM_target.png``: the images, or for other data their
    :func:`pix2pix.data.rasters.preview` pictures beside ``STEM_output.npy`` and ``STEM_target.npy`` in the target's
    units). Returns (folder, page title, page rows, {"checkpoint": its path, "step": its step}).
    ``seed``: the paper's mode draws PyTorch's exact noise of that seed; None: the faster engine's own noise,
    repeatable too (PyTorch's of seed 0, or ONNX Runtime's seeded graph)."""
    run_dir = Path(run_dir)
    cfg = run_config(run_dir, split)
    ckpt = load_checkpoint(run_checkpoint(run_dir, checkpoint))
    pairs, problems = scan_split(Path(cfg.data.root), split)
    if problems:
        raise Pix2PixError(f"{problems[0]}; 'pix2pix datasets check {cfg.data.root}' lists every problem")
    if not pairs:
        raise Pix2PixError(f"{cfg.data.root}: the {split} split is empty")
    scales = ckpt.scales
    pixels = len(pairs) * cfg.data.crop_size ** 2
    translator = Translator(ckpt.build_generator(), ckpt.generator, eval=eval, device=device, meta=ckpt.meta,
                            fast=fast, engine=engine, scales=scales, work=pixels, run_seed=seed)
    if not eval:  # batches of images, each normalised by its own statistics, as it would be alone
        translator.normalise_per_image()
    latest = ckpt.path.resolve() == run_checkpoint(run_dir).resolve()
    out = run_dir / "results" / (split if latest else f"{split}_{ckpt.path.stem}")
    (out / "images").mkdir(parents=True, exist_ok=True)
    dataset = PairDataset(pairs, cfg.data, cfg.generator.in_channels, cfg.generator.out_channels, train=False,
                          scales=scales)
    torch.manual_seed(0 if seed is None else seed)
    rows = []
    with tqdm(total=len(dataset), disable=not progress, unit="img", desc=f"test {split}") as bar:
        # With a seed, the paper's noise of that seed image after image, as PyTorch draws it: one at a time.
        batch = (lambda h, w: 1) if seed is not None and not eval else translator.batch_for
        for items in equal_batches((dataset[i] for i in range(len(dataset))), batch):
            fakes = translator.translate_tensor(torch.stack([item["A"] for item in items]))
            for item, fake in zip(items, fakes):
                stem = Path(item["path"]).stem
                names = {"input": item["A"], "output": fake, "target": item["B"]}
                for name, t in names.items():
                    picture = preview(t)
                    atomic_write(out / "images" / f"{stem}_{name}.png", lambda tmp: picture.save(tmp, "PNG"))
                if not image_side(scales.output, cfg.generator.out_channels):
                    for name in ("output", "target"):
                        write_raster(out / "images" / f"{stem}_{name}.npy", encode(names[name], scales.output, "npy"),
                                     "npy")
                rows.append((stem, [(n, f"images/{stem}_{n}.png") for n in names]))
            bar.update(len(items))
    mode = "eval mode" if eval else "paper test mode: dropout on, batch statistics"
    rows.sort(key=lambda row: natural_key(row[0]))  # 1, 2, ..., 10, 11, 100 on the page, as a person counts
    step = translator.meta.get("step")
    title = f"{cfg.name}: {split} split, {ckpt.path.stem} checkpoint, step {step if step is not None else '?'} ({mode})"
    return out, title, rows, {"checkpoint": str(ckpt.path), "step": step}


def equal_batches(items, batch_for):
    """Consecutive dataset items in lists of equal input size, ``batch_for(height, width)`` items at most; an
    item with an ``error`` raises it."""
    batch: list[dict] = []
    for item in items:
        if "error" in item:
            raise Pix2PixError(item["error"])
        shape = tuple(item["A"].shape)
        if batch and (tuple(batch[0]["A"].shape) != shape or len(batch) >= batch_for(*shape[1:])):
            yield batch
            batch = []
        batch.append(item)
    if batch:
        yield batch


def run_config(run_dir: Path, split: str) -> RunConfig:
    """The configuration of the run folder that a split is translated from; what else it might be, in one line."""
    if not (run_dir / "config.json").exists():
        if str(run_dir) in PUBLISHED or run_dir.is_file():  # a checkpoint has no dataset or folder to test into
            raise Pix2PixError(f"--run {run_dir}: a checkpoint, not a run folder; translate a split's aligned "
                               f"images with: pix2pix translate --checkpoint {run_dir} --input DATA/{split} "
                               "--direction BtoA --output DIR")
        raise Pix2PixError(f"{run_dir}: not a run folder (no config.json)")
    return RunConfig.load(run_dir / "config.json")


def natural_key(name: str) -> list:
    """``"img10"`` after ``"img9"``: the digits in a name compared as numbers."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name) if part]


def test_split(run_dir: Path, split: str = "test", eval: bool = False, seed: int | None = None,
               device: str = "auto", progress: bool = True, fast: bool = True, checkpoint: str = "latest",
               engine: str = "auto") -> Path:
    """Translate a split (see :func:`translate_split`) and write its ``index.html``. Returns the page's path."""
    out, title, rows, _ = translate_split(run_dir, split, eval, seed, device, progress, fast, checkpoint, engine)
    write_page(out / "index.html", title, rows)
    return out / "index.html"
