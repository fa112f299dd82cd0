"""The segmenter behind the FCN-score: a network trained on a dataset's real photos to label them, which then
labels generated photos. If it finds the input's classes in a generated photo, the photo looks real enough.

The paper used an FCN-8s trained on Cityscapes; this project reuses its own U-Net with a class-logit head
(the generator with ``num_classes`` outputs and no tanh) and cross-entropy, so nothing is downloaded.

Class maps (the truth) come from :func:`pix2pix.data.labels.read_truth`: a split's ``labels/STEM.png`` index
images when present (the procedural facades write them), else the colours of the label images.
Scores follow the FCN paper and pix2pix's Cityscapes evaluation: a confusion matrix summed over the split,
then per-pixel accuracy, per-class accuracy (mean over the classes present in the truth) and class IoU
(mean over the classes present in the truth or the prediction). Void pixels (:data:`IGNORE`) count nowhere.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save
from torch import nn
from tqdm import tqdm

from ..checkpoints import FORMAT as CHECKPOINT_FORMAT
from ..checkpoints import load_into, read_safetensors
from ..files import write_bytes
from ..config import DIRECTIONS, GeneratorConfig, jittered_load_size
from ..data.pairs import load_pair, scan_split
from ..data.rasters import to_tensor
from ..data.units import to_unit
from ..errors import Pix2PixError
from ..data.labels import IGNORE, LabelSet, label_set, read_truth, resize_classes
from ..networks import build_generator

FORMAT = "pix2pix-segmenter/1"


@dataclass
class SegmenterConfig:
    label_set: str = "facades"
    arch: str = "unet_256"  # unet_N: the project's U-Net, 2**depth = N
    ngf: int = 32
    size: int = 256  # photos and class maps are resized to size x size
    direction: str = "BtoA"  # the labels -> photo direction of the dataset: the photo is its target side


def build_segmenter(cfg: SegmenterConfig) -> nn.Module:
    """The U-Net generator with one output channel per class and its final tanh removed: logits."""
    if not re.fullmatch(r"unet_\d+", cfg.arch):
        raise Pix2PixError(f"segmenter architecture {cfg.arch!r}: use a U-Net, unet_N")
    classes = len(label_set(cfg.label_set).classes)
    net = build_generator(GeneratorConfig(arch=cfg.arch, in_channels=3, out_channels=classes, ngf=cfg.ngf,
                                          dropout=0.0))
    outermost = net.model.model
    assert isinstance(outermost[-1], nn.Tanh)
    outermost[-1] = nn.Identity()
    return net


# ---------------------------------------------------------------------------------------- class maps


def split_examples(root: Path, split: str, direction: str, labels: LabelSet) -> list[tuple[str, Image.Image, np.ndarray]]:
    """(stem, real photo, class map at the photo's size) for every pair of a split."""
    if direction not in DIRECTIONS:
        raise Pix2PixError(f"direction must be one of {', '.join(DIRECTIONS)}, not {direction!r}")
    pairs, problems = scan_split(Path(root), split)
    if problems:
        raise Pix2PixError(f"{problems[0]}; 'pix2pix datasets check {root}' lists every problem")
    if not pairs:
        raise Pix2PixError(f"{root}: the {split} split is empty")
    out = []
    for pair in pairs:
        label_img, photo = load_pair(pair, direction, 3, 3)  # labels -> photo: input = labels, target = photo
        stem = Path(pair.a).stem
        classes = read_truth(labels, label_img, where=pair.b or pair.a, index=Path(root) / split / "labels" / f"{stem}.png")
        out.append((stem, photo, classes))
    return out


# ------------------------------------------------------------------------------------------- scores


def confusion(pred: np.ndarray, truth: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) counts, rows = true class, columns = predicted class; void truth pixels are left out."""
    pred, truth = np.asarray(pred).reshape(-1).astype(np.int64), np.asarray(truth).reshape(-1).astype(np.int64)
    if pred.shape != truth.shape:
        raise ValueError(f"prediction and truth differ in size: {pred.shape} vs {truth.shape}")
    keep = truth != IGNORE
    pred = np.clip(pred[keep], 0, num_classes - 1)
    return np.bincount(truth[keep] * num_classes + pred, minlength=num_classes ** 2).reshape(num_classes,
                                                                                            num_classes)


def fcn_scores(conf: np.ndarray) -> dict[str, float]:
    """Per-pixel accuracy, mean per-class accuracy and mean class IoU of a confusion matrix."""
    conf = conf.astype(np.float64)
    hit, truth, predicted = np.diag(conf), conf.sum(1), conf.sum(0)
    if truth.sum() == 0:
        raise Pix2PixError("no labelled pixels to score")
    union = truth + predicted - hit
    return {"per_pixel_acc": float(hit.sum() / truth.sum()),
            "per_class_acc": float(np.mean(hit[truth > 0] / truth[truth > 0])),
            "class_iou": float(np.mean(hit[union > 0] / union[union > 0]))}


# ---------------------------------------------------------------------------------------- the model


class Segmenter:
    """A trained segmenter, in eval mode, ready to label photos."""

    def __init__(self, net: nn.Module, config: SegmenterConfig, meta: dict | None = None, device: str = "cpu"):
        self.net, self.config, self.meta = net.to(device).eval(), config, meta or {}
        self.labels = label_set(config.label_set)
        self.device = device

    @torch.no_grad()
    def predict(self, photo: Image.Image) -> np.ndarray:
        """Class map (size x size, uint8) of a photo, resized to the segmenter's size first."""
        s = self.config.size
        x = to_tensor(photo.convert("RGB").resize((s, s), Image.BICUBIC))[None].to(self.device)
        return self.net(x)[0].argmax(0).to(torch.uint8).cpu().numpy()

    def score(self, photos: Iterable[tuple[Image.Image, np.ndarray]], progress: bool = False,
              desc: str = "segment") -> dict[str, float]:
        """FCN-score of (photo, true class map) pairs; the truth is resized (nearest) to the segmenter's size."""
        k, s = len(self.labels.classes), self.config.size
        conf = np.zeros((k, k), np.int64)
        for photo, truth in tqdm(photos, disable=not progress, desc=desc, unit="img"):
            conf += confusion(self.predict(photo), resize_classes(truth, (s, s)), k)
        return fcn_scores(conf)

    def save(self, path: Path, **meta) -> None:
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}
        metadata = {"format": FORMAT, "config": json.dumps(dataclasses.asdict(self.config)),
                    "classes": json.dumps(list(self.labels.classes)),
                    **{k: json.dumps(v) for k, v in {**self.meta, **meta}.items()}}
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        write_bytes(Path(path), save(tensors, metadata=metadata))

    @classmethod
    def load(cls, path: Path, device: str = "cpu") -> Segmenter:
        path = Path(path)
        if path.is_dir():
            path = path / "segmenter.safetensors"
        if not path.exists():
            raise Pix2PixError(f"{path}: no such segmenter; make one with 'pix2pix segmenter train'")
        metadata, tensors = read_safetensors(path)
        if metadata.get("format") != FORMAT:
            kind = "a pix2pix generator checkpoint" if metadata.get("format") == CHECKPOINT_FORMAT else "not one"
            raise Pix2PixError(f"{path}: not a segmenter ({kind}); make one with 'pix2pix segmenter train'")
        cfg = SegmenterConfig(**json.loads(metadata["config"]))
        net = build_segmenter(cfg)
        load_into(net, tensors, path, f"segmenter {cfg.arch}")
        meta = {k: json.loads(v) for k, v in metadata.items() if k not in ("format", "config", "classes")}
        return cls(net, cfg, meta, device)


# ------------------------------------------------------------------------------------------ training


def _arrays(examples, load: int) -> tuple[np.ndarray, np.ndarray]:
    photos = np.stack([np.asarray(p.convert("RGB").resize((load, load), Image.BICUBIC)) for _, p, _ in examples])
    classes = np.stack([resize_classes(c, (load, load)) for _, _, c in examples])
    return photos, classes  # (N, L, L, 3) uint8, (N, L, L) uint8


def train_segmenter(data: Path, out: Path, cfg: SegmenterConfig | None = None, steps: int | None = None,
                    minutes: float | None = 5.0, batch_size: int = 4, lr: float = 1e-3, seed: int = 0,
                    device: str = "cpu", progress: bool = True) -> Segmenter:
    """Train on the real photos of ``data/train`` with the paper's jitter (resize to 286/256 of the size, random
    crop, flip). ``steps`` fixes the length; otherwise it is sized from a timing to fit ``minutes``. The lr is
    constant for the first half and decays linearly to zero over the second. Saves ``out`` and returns it."""
    cfg = cfg or SegmenterConfig()
    labels = label_set(cfg.label_set)
    examples = split_examples(Path(data), "train", cfg.direction, labels)
    load = jittered_load_size(cfg.size)
    photos, classes = _arrays(examples, load)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = build_segmenter(cfg).to(device).train()
    opt = torch.optim.Adam(net.parameters(), lr=lr)

    def batch():
        idx = rng.integers(0, len(photos), batch_size)
        x0, y0 = rng.integers(0, load - cfg.size + 1, 2)
        p = photos[idx, y0:y0 + cfg.size, x0:x0 + cfg.size]
        c = classes[idx, y0:y0 + cfg.size, x0:x0 + cfg.size]
        if rng.random() < 0.5:
            p, c = p[:, :, ::-1], c[:, :, ::-1]
        x = to_unit(torch.from_numpy(np.ascontiguousarray(p)).permute(0, 3, 1, 2))
        return x.to(device), torch.from_numpy(np.ascontiguousarray(c)).long().to(device)

    def step(factor: float) -> torch.Tensor:
        for g in opt.param_groups:
            g["lr"] = lr * factor
        x, y = batch()
        loss = F.cross_entropy(net(x), y, ignore_index=IGNORE)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    done = 0
    if steps is None:  # time a few steps at the full lr, then size the schedule to the budget
        t0 = time.perf_counter()
        for done in range(1, 6):
            step(1.0)
        steps = max(done + 2, int((minutes or 5.0) * 60 / ((time.perf_counter() - t0) / done)))
    with tqdm(total=steps, initial=done, disable=not progress, desc="segmenter", unit="step") as bar:
        for i in range(done, steps):
            loss = step(min(1.0, 2 * (1 - i / steps)))  # constant, then linear decay to zero
            if i % 50 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}")
            bar.update()
    seg = Segmenter(net, cfg, {"data": str(Path(data).resolve()), "steps": steps, "seed": seed}, device)
    seg.save(out)
    return seg


def evaluate_segmenter(seg: Segmenter, data: Path, split: str, progress: bool = True) -> dict[str, float]:
    """The FCN-score of the real photos of a split: the paper's "ground truth" row."""
    examples = split_examples(Path(data), split, seg.config.direction, seg.labels)
    return seg.score(((p, c) for _, p, c in examples), progress, desc=f"segment {split}")
