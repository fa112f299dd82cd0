"""The models a server holds: each with its backend (:mod:`pix2pix.inference.backends`), what its input looks like
(label map, sketch or photo), its classes and colours, and sample inputs from its own val split."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..inference.backends import CheckpointBackend, load_onnx
from ..checkpoints import load_checkpoint
from ..config import GeneratorConfig
from ..data.pairs import list_images, open_image
from ..data.rasters import MODES, image_side, split_ab
from ..errors import Pix2PixError
from ..data.labels import FACADES, MIN_MATCHING, LabelSet, colour_match, label_set
from ..data.units import EIGHT_BIT, Scales

KINDS = ("labels", "sketch", "photo")
SAMPLES = 24  # sample inputs offered from a model's val split


BYTES_PER_WIDTH_PIXEL = 10  # measured 4.4 to 9.7 (ServedModel.cost_bytes), with room for what was not measured


@dataclass
class ServedModel:
    name: str
    source: Path
    config: GeneratorConfig
    backend: object  # a backends.CheckpointBackend or backends.OnnxBackend: (x, eval, seed) -> y
    kind: str = "photo"
    labels: LabelSet | None = None
    samples: list[Path] = field(default_factory=list)  # aligned images of the val split
    direction: str = "AtoB"
    step: int | None = None
    scales: Scales = EIGHT_BIT

    @property
    def images(self) -> bool:
        """Whether it takes and gives 8-bit images of 1, 3 or 4 channels, as the page draws and shows them; any
        other model is served by the API alone."""
        return image_side(self.scales.input, self.config.in_channels) and \
            image_side(self.scales.output, self.config.out_channels)

    @property
    def png(self) -> bool:
        """Whether the API takes and gives it PNGs: 8-bit images, or 16-bit grayscale ones (else .npy only)."""
        return all(image_side(s, c) or (s.kind == "uint16" and c == 1) for s, c in
                   ((self.scales.input, self.config.in_channels), (self.scales.output, self.config.out_channels)))

    def cost_bytes(self, h: int, w: int) -> int:
        """What translating one h x w input takes, in bytes, from the size the generator pads it to: the
        activations, about :data:`BYTES_PER_WIDTH_PIXEL` per unit of width per padded pixel, plus the image
        decoded, scaled and encoded (``scripts/serve_memory.py`` measures the peak against this: for ``unet_128``
        ngf 32 on a 2-core AMX Xeon, PyTorch bf16 took 4.4 to 5.2 bytes per width-pixel and ONNX Runtime fp32 6.7
        at 1024x1024 and 9.7 at 128x4096, where this estimate gives 416 and 208 MiB against 224 and 162)."""
        from ..networks.generators import padded_size

        ph, pw = padded_size(h, w, *self.backend.pad_rule)
        channels = self.config.in_channels + self.config.out_channels
        return BYTES_PER_WIDTH_PIXEL * self.config.ngf * ph * pw + 4 * 4 * channels * ph * pw

    def describe(self) -> dict:
        d = {"name": self.name, "kind": self.kind, "direction": self.direction,
             "backend": self.backend.name if self.backend else "browser",
             "in_channels": self.config.in_channels, "out_channels": self.config.out_channels,
             "generator": self.config.arch, "step": self.step, "samples": len(self.samples),
             "classes": None, "palette": None, "page": self.images,
             "takes": ["image/png", "application/x-npy"] if self.png else ["application/x-npy"]}
        if self.labels is not None:
            d["classes"] = list(self.labels.classes)
            d["palette"] = ["#%02x%02x%02x" % tuple(int(v) for v in c) for c in self.labels.palette]
        return d

    def sample_input(self, i: int):
        """The input half of sample ``i`` (a PIL image)."""
        path = self.samples[i]
        a, b = split_ab(open_image(path, 3), path)
        img = a if self.direction == "AtoB" else b
        return img.convert(MODES[self.config.in_channels])


def guess_kind(images: list, labels: LabelSet | None) -> tuple[str, LabelSet | None]:
    """labels (most pixels in a label set's colours), sketch (mostly white with dark strokes) or photo."""
    if not images:
        return "photo", None
    arrays = [np.asarray(im.convert("RGB")) for im in images]
    for candidate in ([labels] if labels else []) + [FACADES, label_set("cityscapes")]:
        if np.mean([colour_match(a, candidate) for a in arrays]) >= max(MIN_MATCHING, 0.6):
            return "labels", candidate
    white = np.mean([(a.min(-1) > 200).mean() for a in arrays])
    return ("sketch" if white > 0.6 else "photo"), None


def load_served(checkpoint: Path, name: str | None = None, backend: str = "auto", device: str = "auto",
                kind: str | None = None, labels: str | None = None) -> ServedModel:
    """A checkpoint (run folder, .safetensors, reference .pth, or with ``backend='onnx'`` an exported .onnx)
    ready to serve, with its input kind guessed from its dataset unless ``kind`` says."""
    checkpoint = Path(checkpoint)
    if backend == "onnx":
        G_backend, cfg, meta = load_onnx(checkpoint)
    elif backend in ("auto", "torch"):  # auto: the faster engine for the device (inference.engines)
        ckpt = load_checkpoint(checkpoint)
        cfg, meta = ckpt.generator, ckpt.meta | {"scales": ckpt.scales.to_dict()}
        engine = "auto" if backend == "auto" else "torch"
        G_backend = CheckpointBackend(ckpt.build_generator(), cfg, device, engine=engine)
    else:
        raise Pix2PixError(f"unknown --backend '{backend}'; choose auto, torch or onnx")
    return described(checkpoint, cfg, meta, G_backend, name, kind, labels)


def described(checkpoint: Path, cfg: GeneratorConfig, meta: dict, G_backend, name: str | None = None,
              kind: str | None = None, labels: str | None = None) -> ServedModel:
    """A model's description (input kind, classes, samples, direction) from its config and metadata, around
    ``G_backend`` (None for a page that runs it elsewhere: ``export --format web``)."""
    run_cfg = meta.get("config") or {}
    data = run_cfg.get("data", {})
    published = meta.get("published") or {}  # a published model: its dataset's direction and its input kind
    direction = published.get("direction") or data.get("direction", "AtoB")
    kind = kind or published.get("kind")
    samples: list[Path] = []
    root = Path(data["root"]) if data.get("root") else None
    for split in ("val", "test", "train"):
        if root is not None and (root / split).is_dir():
            samples = list_images(root / split)[0][:SAMPLES]
            break
    scales = Scales.from_dict(meta["scales"], str(checkpoint)) if meta.get("scales") else EIGHT_BIT
    model = ServedModel(name or _default_name(checkpoint), checkpoint, cfg, G_backend, samples=samples,
                        direction=direction, step=meta.get("step"), scales=scales)
    if not model.images:
        model.kind, model.samples = ("16-bit" if model.png else "arrays"), []
        return model
    chosen = label_set(labels) if labels else None
    if kind is not None:
        if kind not in KINDS:
            raise Pix2PixError(f"unknown input kind '{kind}'; choose from {', '.join(KINDS)}")
        model.kind, model.labels = kind, (chosen or FACADES) if kind == "labels" else None
    else:
        try:
            probes = [model.sample_input(i) for i in range(min(4, len(samples)))]
        except Pix2PixError:
            probes = []
        model.kind, model.labels = guess_kind(probes, chosen)
    return model


def _default_name(path: Path) -> str:
    """runs/facades/checkpoints/latest.safetensors -> facades; runs/facades -> facades; x.onnx -> x."""
    if path.is_dir():
        return path.name
    if path.parent.name == "checkpoints":
        return path.parent.parent.name
    return path.stem
