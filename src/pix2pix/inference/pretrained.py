"""``pix2pix pretrained``: the reference's published generators, listed and downloaded into this user's cache
as self-describing ``.safetensors`` files (:mod:`pix2pix.published` holds the table and the paths).

A download streams the ``.pth`` into ``NAME.pth.part`` (resumed by a later run, like a dataset download), loads
it with ``weights_only=True``, rebuilds the generator from its tensors (which checks them) and writes
``NAME.safetensors`` atomically, with the architecture, task, direction and input kind in its metadata. The
``.pth`` is then deleted; a file that is not such a generator is removed and is one line.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..checkpoints import load_reference_checkpoint, save_weights
from ..datasets.download import MAX_BYTES, fetch
from ..errors import Pix2PixError
from ..published import PUBLISHED, model_path


def list_published(folder: Path | None = None) -> list[dict]:
    """Each published model: name, task, dataset, direction, architecture, input kind, and where it is (None
    when not downloaded)."""
    rows = []
    for p in PUBLISHED.values():
        path = model_path(p.name, folder)
        rows.append({"name": p.name, "task": p.task, "dataset": p.dataset, "direction": p.direction,
                     "generator": "unet_256", "kind": p.kind, "url": p.url,
                     "downloaded": str(path) if path.exists() else None})
    return rows


def download_published(name: str, folder: Path | None = None, url: str | None = None, sha256: str | None = None,
                       progress: bool = True) -> Path:
    """Fetch and convert published model ``name``; returns its ``.safetensors`` file."""
    if name not in PUBLISHED:
        raise Pix2PixError(f"unknown published model '{name}'; choose from {', '.join(PUBLISHED)}")
    pub = PUBLISHED[name]
    out = model_path(name, folder)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise Pix2PixError(f"{out.parent}: cannot create the models folder ({e.strerror}); set PIX2PIX_HOME or "
                           "pass --into") from None
    part = out.with_suffix(".pth.part")
    fetch(url or pub.url, part, name, progress, None, MAX_BYTES)
    try:
        if sha256 is not None:
            digest = hashlib.sha256(part.read_bytes()).hexdigest()
            if digest != sha256.lower():
                raise Pix2PixError(f"{url or pub.url}: its SHA-256 is {digest}, not the expected {sha256.lower()}")
        ckpt = load_reference_checkpoint(part)
        G = ckpt.build_generator()  # rebuilt from the tensors: a file that is not such a generator stops here
        published = {"name": name, "task": pub.task, "dataset": pub.dataset, "direction": pub.direction,
                     "kind": pub.kind, "url": url or pub.url}
        save_weights(out, G, ckpt.generator, source="reference", published=published)
    except Pix2PixError:
        part.unlink(missing_ok=True)  # the next run fetches it afresh
        raise
    part.unlink(missing_ok=True)
    return out
