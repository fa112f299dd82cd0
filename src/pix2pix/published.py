"""The reference's published pix2pix generators, and where this machine keeps them once downloaded.

Each is a ``latest_net_G.pth``-style state dict of ``unet_256`` (ngf 64, batch norm, dropout, 3 -> 3) at
``http://efrosgans.eecs.berkeley.edu/pix2pix/models-pytorch/NAME.pth`` (the reference's
``scripts/download_pix2pix_model.sh``; no checksums are published). ``pix2pix pretrained download NAME`` turns
one into ``$PIX2PIX_HOME/models/NAME.safetensors`` (default ``~/.cache/pix2pix``), with its task, direction and
input kind in the metadata; everywhere a checkpoint is accepted, the bare NAME then means that file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import Pix2PixError

BASE_URL = "http://efrosgans.eecs.berkeley.edu/pix2pix/models-pytorch"


@dataclass(frozen=True)
class Published:
    name: str
    task: str
    dataset: str
    direction: str  # of the dataset's aligned images
    kind: str  # what it takes: labels, sketch or photo

    @property
    def url(self) -> str:
        return f"{BASE_URL}/{self.name}.pth"


PUBLISHED = {p.name: p for p in (
    Published("facades_label2photo", "CMP label map -> facade photo", "facades", "BtoA", "labels"),
    Published("sat2map", "aerial photo -> map", "maps", "AtoB", "photo"),
    Published("map2sat", "map -> aerial photo", "maps", "BtoA", "photo"),
    Published("edges2shoes", "edge sketch -> shoe photo", "edges2shoes", "AtoB", "sketch"),
    Published("day2night", "daytime scene -> night scene", "night2day", "BtoA", "photo"),
)}


def home() -> Path:
    """``$PIX2PIX_HOME``, else ``~/.cache/pix2pix``: this user's downloaded models."""
    return Path(os.environ.get("PIX2PIX_HOME") or Path.home() / ".cache" / "pix2pix")


def model_path(name: str, folder: Path | None = None) -> Path:
    return Path(folder or home() / "models") / f"{name}.safetensors"


def resolve_published(text: str) -> Path | None:
    """A bare published NAME -> its downloaded file; None when ``text`` is not such a name. A name that is not
    downloaded yet is one line saying the command that downloads it (nothing downloads implicitly)."""
    if text not in PUBLISHED or Path(text).exists():
        return None
    path = model_path(text)
    if not path.exists():
        raise Pix2PixError(f"'{text}' is a published model that is not downloaded here yet; run: "
                           f"pix2pix pretrained download {text}")
    return path
