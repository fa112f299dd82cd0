"""onnxruntime-web, the engine a page translates with (``pix2pix export --format web``, and ``serve``'s
in-browser switch): Microsoft's npm package, never a runtime of our own.

It is obtained as the package's tarball, from the npm registry (``$npm_config_registry``, as for npm, else
npm's own) or from ``--runtime PATH`` (a tarball ``npm pack onnxruntime-web@VERSION`` made, or a folder
holding the files, such as ``node_modules/onnxruntime-web``). A tarball must be :data:`VERSION` and match the
integrity hash pinned here, which the registry publishes for it too (checked before the download). The files a
page needs (:data:`FILES`: the wasm build, and the WebGPU build for browsers that have it) are kept in
``$PIX2PIX_HOME/web/onnxruntime-web-VERSION/``, written whole or not at all, one process at a time.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from ..errors import Pix2PixError
from ..files import Lock, write_text
from ..published import home

PACKAGE = "onnxruntime-web"
VERSION = "1.31.1"
INTEGRITY = "sha512-5GeH+bWQ+HxM10z7erGlsWqryrwMbSvm/1tkIsKTT48g0fI19VXVVC435t4t7VsPdSQeS7NmuZPXrQ73k82URw=="
REGISTRY = "https://registry.npmjs.org"
WASM = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
WEBGPU = ("ort.webgpu.min.js", "ort-wasm-simd-threaded.asyncify.mjs", "ort-wasm-simd-threaded.asyncify.wasm")
FILES = WASM + WEBGPU
NOTICE = (f"{PACKAGE} {VERSION} (https://www.npmjs.com/package/{PACKAGE}), unchanged: MIT License, "
          "Copyright (c) Microsoft Corporation.\n")


def npm_pack_command() -> str:
    return f"npm pack {PACKAGE}@{VERSION}"


def cache_folder() -> Path:
    return home() / "web" / f"{PACKAGE}-{VERSION}"


def runtime_folder(runtime: Path | None = None, progress: bool = True) -> Path:
    """A folder holding :data:`FILES`: ``runtime`` (a checked tarball, unpacked into the cache, or a folder),
    else the cache, else the registry's tarball, checked and unpacked into the cache."""
    if runtime is not None:
        runtime = Path(runtime)
        if runtime.is_dir():
            return _files_in(runtime)
        if not runtime.is_file():
            raise Pix2PixError(f"--runtime {runtime}: no such file or folder")
        return _unpacked(lambda part: shutil.copyfile(runtime, part), f"--runtime {runtime}", progress)
    if _complete(cache_folder()):
        return cache_folder()
    return _unpacked(lambda part: _download(part, progress), "the registry", progress)


def cached() -> Path | None:
    return cache_folder() if _complete(cache_folder()) else None


def _complete(folder: Path) -> bool:
    return all((folder / f).is_file() for f in FILES)


def _files_in(folder: Path) -> Path:
    """The folder of :data:`FILES` in ``folder`` (itself, dist/ or package/dist/), whose package.json, where
    there is one, must say :data:`VERSION` (a folder is not hashed: its files are the user's word)."""
    for candidate in (folder, folder / "dist", folder / "package" / "dist"):
        if _complete(candidate):
            for manifest in (candidate / "package.json", candidate.parent / "package.json"):
                try:
                    version = json.loads(manifest.read_text()).get("version")
                except (OSError, ValueError, AttributeError):
                    continue
                if version != VERSION:
                    raise Pix2PixError(f"--runtime {folder}: {PACKAGE} {version}, not the {VERSION} this version "
                                       f"of pix2pix pins; '{npm_pack_command()}' makes a tarball of it")
                break
            return candidate
    missing = [f for f in FILES if not (folder / f).is_file()]
    raise Pix2PixError(f"--runtime {folder}: not an {PACKAGE} folder (no {missing[0]} in it or in its dist/)")


def integrity(path: Path) -> str:
    """npm's integrity string of a file: sha512-<base64 of the digest>."""
    h = hashlib.sha512()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha512-" + base64.b64encode(h.digest()).decode()


def _unpacked(obtain, source: str, progress: bool) -> Path:
    """Obtain the tarball into a temporary file (``obtain(path)``), check it, unpack :data:`FILES` into the
    cache (a folder beside it, renamed into place)."""
    dest = cache_folder()
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise Pix2PixError(f"{dest.parent}: cannot create it ({e.strerror}); set PIX2PIX_HOME") from None
    lock = Lock(dest.parent / f".{dest.name}.lock", f"is unpacking {PACKAGE}; wait for it")
    lock.acquire()
    try:
        with tempfile.TemporaryDirectory(dir=dest.parent, prefix=f".{dest.name}-") as tmp:
            tgz = Path(tmp) / "package.tgz"
            obtain(tgz)
            got = integrity(tgz)
            if got != INTEGRITY:
                raise Pix2PixError(f"{source}: not {PACKAGE} {VERSION}'s npm tarball (its sha512 integrity differs: "
                                   f"another version, an altered file, or no tarball at all); make one with "
                                   f"'{npm_pack_command()}'")
            if _complete(dest):  # the same package, unpacked before
                return dest
            unpacked = Path(tmp) / "files"
            unpacked.mkdir()
            _extract(tgz, unpacked, source)
            write_text(unpacked / "NOTICE", NOTICE)
            if dest.exists():  # a partial folder from before this code wrote whole ones, or a complete one
                shutil.rmtree(dest)
            os.replace(unpacked, dest)
    finally:
        lock.release()
    return dest


def _extract(tgz: Path, into: Path, source: str) -> None:
    """Only :data:`FILES`, from ``package/dist/``, as regular files named here (nothing else in the tarball is
    written anywhere)."""
    wanted = {f"package/dist/{f}": f for f in FILES}
    try:
        with tarfile.open(tgz, "r:gz") as tar:
            for member in tar:
                name = wanted.pop(member.name, None)
                if name is None:
                    continue
                if not member.isfile():
                    raise Pix2PixError(f"{source}: {member.name} in the tarball is not a regular file")
                with tar.extractfile(member) as src, open(into / name, "wb") as out:
                    shutil.copyfileobj(src, out)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise Pix2PixError(f"{source}: the tarball cannot be read ({e})") from None
    if wanted:
        raise Pix2PixError(f"{source}: the tarball has no {next(iter(wanted))}")


def _download(part: Path, progress: bool) -> None:
    """The registry's tarball of :data:`VERSION`, after checking the integrity the registry publishes for it."""
    from ..datasets.download import MAX_BYTES, fetch

    registry = (os.environ.get("npm_config_registry") or os.environ.get("NPM_CONFIG_REGISTRY") or REGISTRY).rstrip("/")
    where = f"{registry}/{PACKAGE}/{VERSION}"
    hint = f"; or pass --runtime a tarball from '{npm_pack_command()}'"
    manifest = part.with_name("manifest.json")
    try:
        fetch(where, manifest, f"{PACKAGE} {VERSION} (its manifest)", False, None, 1 << 24)
        try:
            dist = json.loads(manifest.read_text())["dist"]
            tarball, published = dist["tarball"], dist["integrity"]
        except (ValueError, KeyError, TypeError):
            raise Pix2PixError(f"{where}: not an npm package manifest") from None
        if published != INTEGRITY:
            raise Pix2PixError(f"{where}: the registry publishes integrity {published[:24]}... for {PACKAGE} "
                               f"{VERSION}, not the {INTEGRITY[:24]}... pinned here: refused")
        fetch(tarball, part, f"{PACKAGE} {VERSION}", progress, None, MAX_BYTES)
    except Pix2PixError as e:
        message = str(e).replace(", or download from elsewhere with --url", "")  # the datasets' flag, not ours
        raise Pix2PixError(message if "--runtime" in message else message + hint) from None
