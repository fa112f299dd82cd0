"""Units: how each side's values, in the data's own units, map to the networks' [-1, 1] and back.

One :class:`Scale` per side (the generator's input and its output), chosen by ``--normalize`` and stored in
every checkpoint (:class:`Scales`), so that ``translate``, ``test``, ``eval``, ``serve``, the ONNX export and
:class:`pix2pix.Translator` apply the scaling the weights were trained with, and invert it on the output.
With x a value in the data's units and u its value in [-1, 1], per channel c:

* ``uint8`` (8-bit images, the default): u = (x / 255 - 0.5) / 0.5, the reference's arithmetic bit for bit;
  back, x = trunc((u + 1) / 2 * 255) as the reference writes its images;
* ``uint16`` (16-bit images): u = (x / 65535 - 0.5) / 0.5, the full range; back, x = round((u + 1) / 2 * 65535);
* ``minmax`` (the default for other data): u = ((x - lo_c) / (hi_c - lo_c) - 0.5) / 0.5, with lo_c and hi_c
  the channel's minimum and maximum over the training split, so the training data spans [-1, 1] exactly;
  back, x = (u + 1) / 2 * (hi_c - lo_c) + lo_c;
* ``meanstd``: u = (x - mean_c) / (3 std_c), with the training split's mean and standard deviation (three
  standard deviations: G's output ends in tanh, so it reaches [-1, 1] only); back, x = 3 std_c u + mean_c;
* ``none``: u = x (the data is in [-1, 1] already).

A constant channel (hi = lo, or std = 0) divides by 1 instead.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import Pix2PixError

KINDS = ("uint8", "uint16", "minmax", "meanstd", "none")
BITS = {"uint8": 255.0, "uint16": 65535.0}


def needs_statistics(kind: str) -> bool:
    """Whether a scaling is made of the training split's per-channel statistics."""
    return kind in ("minmax", "meanstd")


# The 8-bit pair, with the reference's arithmetic (its checkpoints give its outputs bit for bit).


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> float32 in [-1, 1]: (x / 255 - 0.5) / 0.5."""
    return (x.float().div(255) - 0.5) / 0.5


def from_unit(y: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> uint8 pixels: (y + 1) / 2 * 255, clamped and truncated."""
    return ((y.detach().float().clamp(-1, 1) + 1) / 2 * 255).to(torch.uint8)


def dtype_class(dtype: np.dtype) -> str:
    """What a side's files must agree on: ``uint8``, ``uint16``, ``int`` (other integers) or ``float``."""
    dtype = np.dtype(dtype)
    if dtype.kind == "u" and dtype.itemsize in (1, 2):  # of either byte order
        return f"uint{8 * dtype.itemsize}"
    if dtype.kind in "iu":
        return "int"
    if dtype.kind == "f":
        return "float"
    raise Pix2PixError(f"{dtype} is not a real number type")


@dataclass(frozen=True)
class Scale:
    """One side's mapping (see the module's formulas). ``a``/``b``: per channel, (lo, hi) for minmax and
    (mean, std) for meanstd; empty otherwise. ``data``: the dtype class of the files it was made for."""

    kind: str = "uint8"
    a: tuple[float, ...] = ()
    b: tuple[float, ...] = ()
    data: str = "uint8"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise Pix2PixError(f"unknown scaling '{self.kind}' (expected one of {', '.join(KINDS)})")
        if needs_statistics(self.kind) and (not self.a or len(self.a) != len(self.b)):
            raise Pix2PixError(f"a {self.kind} scaling needs one pair of statistics per channel")

    @property
    def channels(self) -> int | None:
        """The channel count its statistics are for (None: any)."""
        return len(self.a) if self.a else None

    def _ab(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (-1,) + (1,) * 2  # per channel of (..., C, H, W)
        a = torch.tensor(self.a, dtype=torch.float64).reshape(shape)
        b = torch.tensor(self.b, dtype=torch.float64).reshape(shape)
        if self.kind == "minmax":
            a, b = a, torch.where(b - a > 0, b - a, torch.ones_like(b))  # lo, width
        else:
            b = torch.where(b > 0, 3 * b, torch.ones_like(b))  # mean, 3 std
        return a.to(like.device, torch.float32), b.to(like.device, torch.float32)

    def to_unit(self, x: torch.Tensor) -> torch.Tensor:
        """Data units -> [-1, 1], float32, for (C, H, W) or (B, C, H, W)."""
        if self.kind == "uint8":
            return to_unit(x)
        x = x.float()
        if self.kind in BITS:
            return (x.div(BITS[self.kind]) - 0.5) / 0.5
        if self.kind == "none":
            return x
        a, b = self._ab(x)
        if self.kind == "minmax":
            return ((x - a) / b - 0.5) / 0.5
        return (x - a) / b

    def from_unit(self, u: torch.Tensor) -> torch.Tensor:
        """[-1, 1] -> data units as float32 (not rounded: :meth:`to_data` gives the data's own type)."""
        u = u.detach().float()
        if self.kind in BITS:
            return (u.clamp(-1, 1) + 1) / 2 * BITS[self.kind]
        if self.kind == "none":
            return u
        a, b = self._ab(u)
        if self.kind == "minmax":
            return (u + 1) / 2 * b + a
        return u * b + a

    def to_data(self, u: torch.Tensor) -> torch.Tensor:
        """[-1, 1] -> the data's own type: uint8 truncated (the reference's images), uint16 rounded, else
        float32 units."""
        if self.kind == "uint8":
            return from_unit(u)
        x = self.from_unit(u)
        if self.kind == "uint16":
            return x.round().to(torch.int32)  # torch has no general uint16; the writer narrows it
        return x

    def check(self, arr: np.ndarray, where: Any) -> None:
        """A file's values fit this scaling: the same dtype class and (for statistics) the same channels."""
        got = dtype_class(arr.dtype)
        if got != self.data:
            raise Pix2PixError(f"{where}: its values are {arr.dtype} ({got}), and this side of the model takes "
                               f"{self.data} data; every file of a side must be of one kind")
        channels = arr.shape[-1] if arr.ndim == 3 else 1
        if self.channels is not None and channels != self.channels:
            raise Pix2PixError(f"{where}: {channels} channels, and the model's stored scaling is for "
                               f"{self.channels}")

    def describe(self) -> str:
        if self.kind in BITS:
            return f"{self.kind} (0..{int(BITS[self.kind])} -> [-1, 1])"
        if self.kind == "none":
            return "none (values taken as they are)"
        names = ("lo", "hi") if self.kind == "minmax" else ("mean", "std")
        per = ", ".join(f"[{x:.4g}, {y:.4g}]" for x, y in zip(self.a, self.b))
        return f"{self.kind} ({'/'.join(names)} per channel: {per})"


@dataclass(frozen=True)
class Scales:
    """The generator's two sides: ``input`` (what it reads) and ``output`` (what it writes: the target's)."""

    input: Scale = Scale()
    output: Scale = Scale()

    @property
    def eight_bit(self) -> bool:
        return self == EIGHT_BIT

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Any, where: str) -> Scales:
        try:
            sides = {k: Scale(**{f: (tuple(v) if f in ("a", "b") else v) for f, v in d[k].items()})
                     for k in ("input", "output")}
        except (TypeError, KeyError, AttributeError) as e:
            raise Pix2PixError(f"{where}: not a valid scaling record ({e})") from None
        if set(d) - {"input", "output"}:
            raise Pix2PixError(f"{where}: unknown key '{sorted(set(d) - {'input', 'output'})[0]}' in its scaling")
        return cls(**sides)

    def fits(self, in_channels: int, out_channels: int, where: Any) -> None:
        for side, scale, channels in (("input", self.input, in_channels), ("output", self.output, out_channels)):
            if scale.channels is not None and scale.channels != channels:
                raise Pix2PixError(f"{where}: its stored {side} scaling is for {scale.channels} channels, and the "
                                   f"generator has {channels}")


EIGHT_BIT = Scales()


# ------------------------------------------------------------------------------------- statistics


class Statistics:
    """Per-channel minimum, maximum, mean and standard deviation, accumulated file by file (float64)."""

    def __init__(self):
        self.lo = self.hi = self.total = self.squares = None
        self.count = 0
        self.data: str | None = None

    def add(self, arr: np.ndarray, where: Any) -> None:
        kind = dtype_class(arr.dtype)
        if self.data is None:
            self.data = kind
        elif kind != self.data:
            raise Pix2PixError(f"{where}: its values are {arr.dtype} ({kind}), and the files before it are "
                               f"{self.data}; every file of a side must be of one kind")
        x = arr.reshape(-1, arr.shape[-1] if arr.ndim == 3 else 1).astype(np.float64)
        if self.lo is not None and x.shape[1] != len(self.lo):
            raise Pix2PixError(f"{where}: {x.shape[1]} channels, and the files before it have {len(self.lo)}")
        lo, hi, total, squares = x.min(0), x.max(0), x.sum(0), (x * x).sum(0)
        if self.lo is None:
            self.lo, self.hi, self.total, self.squares = lo, hi, total, squares
        else:
            self.lo, self.hi = np.minimum(self.lo, lo), np.maximum(self.hi, hi)
            self.total, self.squares = self.total + total, self.squares + squares
        self.count += len(x)

    def scale(self, kind: str) -> Scale:
        if kind == "minmax":
            return Scale("minmax", tuple(map(float, self.lo)), tuple(map(float, self.hi)), self.data)
        mean = self.total / self.count
        std = np.sqrt(np.maximum(self.squares / self.count - mean * mean, 0))
        return Scale("meanstd", tuple(map(float, mean)), tuple(map(float, std)), self.data)


def kind_for(normalize: str, data: str) -> str:
    """The scaling ``--normalize`` gives data of dtype class ``data``: auto is an 8- or 16-bit image's full range,
    and minmax for any other data."""
    if normalize == "auto":
        return data if data in BITS else "minmax"
    return normalize
