"""The paper's datasets, fetched from the authors' server: resumable download, verification, safe extraction.

``download_dataset("facades", Path("datasets"))`` leaves ``datasets/facades/{train,val,test}/*.jpg``:

1. the archive streams into ``datasets/facades.tar.gz.part`` with a progress bar; a ``.part`` left by an
   interrupted run is resumed with an HTTP Range request (a server that ignores Range sends the whole file,
   which then replaces the partial one);
2. its size is checked against what the server announced (Content-Length or Content-Range) and against
   ``expected_size``, and its SHA-256 against ``sha256`` when given;
3. it is extracted into a hidden sibling folder, member by member, tarfile's data filter (PEP 706) refusing
   anything that would land outside that folder (absolute paths, ``..``, links leading out, device files);
   only a complete extraction is renamed to ``datasets/facades``, so a folder of that name is a whole dataset;
4. the ``.part`` file is deleted. It is kept after a network failure (the next run resumes it) and removed
   when the archive proves corrupt or unsafe (the next run fetches it afresh).

Cityscapes is not downloaded: its licence requires registration, so :func:`cityscapes_instructions` says
how to obtain and prepare it. Every failure a user can cause or fix is a one-line :class:`Pix2PixError`.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import logging
import os
import re
import shutil
import socket
import tarfile
import tempfile
import threading
import time
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from tqdm import tqdm

from ..data.pairs import SPLITS
from ..errors import Pix2PixError
from ..files import Lock

logger = logging.getLogger(__name__)

BASE_URL = "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets"
TIMEOUT = 30.0  # seconds a connect or a read may wait before the download counts as failed
CHUNK = 1 << 20  # bytes per read and write
# Bounds on what a download may cost, each with a flag of `pix2pix datasets download` to raise it.
MAX_BYTES = 16 * 2**30  # a response that does not state its size (the paper's largest archive is 8 GB)
MAX_EXPANSION = 50  # extracted bytes per archive byte (the paper's archives of JPEGs expand about 1x)
MAX_MEMBERS = 1_000_000  # files and folders in one archive (edges2handbags holds about 138k)
STALL_WINDOW_S, STALL_BYTES = 60.0, 64 * 1024  # fewer bytes than this in a window is a stalled transfer
HEADERS_DEADLINE_S = 60.0  # the status line and headers, all of them, within this (a drip of header bytes)
MAX_HEADER_BYTES = 1 << 20  # a tar member's pax header or GNU long name: a few hundred bytes in real archives


@dataclass(frozen=True)
class Archive:
    url: str
    listed_size: str  # as the server's directory index shows it; for messages only, never checked
    about: str


# The listed sizes are the rounded figures of the server's directory index (files dated 2018-09-02, night2day
# 2018-09-08), as two third-party repositories reproduce it: a course README (a fork of the DIP-Teaching
# assignments) and a torchvision-based Pix2Pix dataset class. No exact byte counts or SHA-256 sums were found,
# so downloads are checked against the server's Content-Length and by extracting the archive.
STANDARD: dict[str, Archive] = {
    "facades": Archive(f"{BASE_URL}/facades.tar.gz", "29M",
                       "CMP Facades: 400 train, 100 val, 106 test; A = photo, B = labels (labels -> photo is BtoA)"),
    "maps": Archive(f"{BASE_URL}/maps.tar.gz", "239M",
                    "Google Maps: 1,096 train, 1,098 val; A = aerial photo, B = map"),
    "edges2shoes": Archive(f"{BASE_URL}/edges2shoes.tar.gz", "2.0G",
                           "UT Zappos50K: 50k train; A = edges, B = photo"),
    "edges2handbags": Archive(f"{BASE_URL}/edges2handbags.tar.gz", "8.0G",
                              "Amazon handbags: 137k train; A = edges, B = photo"),
    "night2day": Archive(f"{BASE_URL}/night2day.tar.gz", "1.9G",
                         "about 17.8k train; A = night, B = day (day -> night is BtoA)"),
}
INSTRUCTIONS_ONLY = ("cityscapes",)  # known names that are prepared by hand, not downloaded


def known_names() -> list[str]:
    return [*STANDARD, *INSTRUCTIONS_ONLY]


def cityscapes_instructions() -> str:
    """How to obtain Cityscapes (which may not be redistributed) and turn it into an aligned dataset."""
    return """\
Cityscapes is not downloaded by this tool: it must be obtained from its owners, under their licence.
1. Register at https://www.cityscapes-dataset.com/, accept the licence, and download gtFine_trainvaltest.zip
   (fine annotations) and leftImg8bit_trainvaltest.zip (photos). Use them under the terms of that licence.
2. Unzip both. Photos are leftImg8bit/{train,val}/CITY/CITY_xxxxxx_yyyyyy_leftImg8bit.png and their colour
   label images gtFine/{train,val}/CITY/CITY_xxxxxx_yyyyyy_gtFine_color.png (2975 train, 500 val).
3. Put the photos in PHOTOS/train and PHOTOS/val, and the *_gtFine_color.png images in LABELS/train and
   LABELS/val, renamed to matching stems (drop the _leftImg8bit and _gtFine_color suffixes). The reference
   resized both to 256x256 (use nearest-neighbour for the labels so their colours stay exact); training
   resizes anyway, so this only saves disk space and loading time.
4. pix2pix datasets combine --a PHOTOS --b LABELS --out datasets/cityscapes
   pairs them by name into aligned images, A = photo on the left, B = labels on the right.
5. Train labels -> photo with --preset cityscapes (which sets --direction BtoA)."""


# ------------------------------------------------------------------------------------------ the one call


def download_dataset(name: str, out: Path, url: str | None = None, progress: bool = True,
                     expected_size: int | None = None, sha256: str | None = None, max_bytes: int = MAX_BYTES,
                     max_expansion: float = MAX_EXPANSION, max_members: int = MAX_MEMBERS) -> Path:
    """Download and extract the dataset ``name`` into ``out/name``; return that folder.

    ``url`` replaces the paper's source (a .tar.gz, .tar.bz2, .tar.xz or .tar), and ``name`` then only names
    the result folder. A single top-level folder in the archive (``facades/train/...``) is dropped, so the
    splits land directly in ``out/name``. ``cityscapes`` (without ``url``) downloads nothing: its preparation
    steps (:func:`cityscapes_instructions`, which a CLI should print itself) are logged as a warning and the
    folder they lead to is returned.

    Bounded: a response without a stated size stops at ``max_bytes``; the archive may expand to at most
    ``max_expansion`` times its size and hold at most ``max_members`` members (zip bombs, sparse members),
    and must fit the free disk space; a transfer slower than ``STALL_BYTES`` per ``STALL_WINDOW_S`` seconds
    (a drip that never trips a socket timeout) stops, keeping every byte that arrived, for the next run.
    """
    out = Path(out)
    if url is None:
        if name in INSTRUCTIONS_ONLY:
            logger.warning(cityscapes_instructions())
            return out / name
        if name not in STANDARD:
            raise Pix2PixError(f"unknown dataset '{name}'; known: {', '.join(known_names())} "
                               "(or give any .tar.gz with --url)")
        url = STANDARD[name].url
    elif not name or name in (".", "..") or name.startswith(".") or re.search(r"[/\\]", name):
        raise Pix2PixError(f"dataset name '{name}' must be a plain folder name (no '/', not starting with '.')")
    if not hasattr(tarfile, "data_filter"):  # checked first: no use downloading what cannot be extracted safely
        raise Pix2PixError("this Python lacks tarfile's extraction filters (PEP 706); use Python 3.10.12+, "
                           "3.11.4+ or 3.12+")
    dest = out / name
    if dest.exists() and not (dest.is_dir() and not any(dest.iterdir())):
        raise Pix2PixError(f"{dest} already exists, so {name} looks downloaded already; to download it again, "
                           f"remove that folder (rm -r {dest}) and run the same command")
    with _writing(out, "creating the download folder"):
        out.mkdir(parents=True, exist_ok=True)
    lock = Lock(out / f".{name}.lock", f"is downloading {name} here; wait for it to end")
    lock.acquire()  # one downloader of a dataset at a time: the .part and the extraction are its own
    try:
        return _download(name, out, dest, url, progress, expected_size, sha256, max_bytes, max_expansion,
                         max_members)
    finally:
        lock.release()


def _download(name: str, out: Path, dest: Path, url: str, progress: bool, expected_size: int | None,
              sha256: str | None, max_bytes: int, max_expansion: float, max_members: int) -> Path:
    for leftover in out.glob(f".{name}.extract-*"):  # a kill during an earlier extraction (we hold the lock)
        shutil.rmtree(leftover, ignore_errors=True)
    part = out / f"{name}.tar.gz.part"

    size = fetch(url, part, name, progress, expected_size, max_bytes)
    try:
        if expected_size is not None and size != expected_size:
            raise _BadArchive(f"it is {size:,} bytes, not the expected {expected_size:,}")
        if sha256 is not None:
            digest = _sha256(part)
            if digest != sha256.lower():
                raise _BadArchive(f"its SHA-256 is {digest}, not the expected {sha256.lower()}")
        _extract(part, dest, name, progress, Bounds(max_expansion * size, max_members))
    except _BadArchive as e:
        part.unlink(missing_ok=True)
        raise Pix2PixError(f"{url}: the download is unusable: {e}; {part.name} was removed, so the same command "
                           "fetches it afresh (check --url if this repeats)") from None
    except _Unsafe as e:
        part.unlink(missing_ok=True)
        raise Pix2PixError(f"{url}: archive member '{e.member}' {e.why}; refused to extract it (nothing was "
                           f"written outside {out}, {part.name} was removed)") from None
    part.unlink(missing_ok=True)
    return dest


class _BadArchive(Exception):
    """The downloaded file is not the archive it should be (corrupt, wrong size or checksum)."""


class _Unsafe(Exception):
    """An archive member would be written, or would point, outside the extraction folder."""

    def __init__(self, member: str, why: str):
        super().__init__(f"{member}: {why}")
        self.member, self.why = member, why


# ----------------------------------------------------------------------------------------- the download


def fetch(url: str, part: Path, label: str, progress: bool, expected_size: int | None, max_bytes: int = MAX_BYTES,
           restarted: bool = False) -> int:
    """Bring ``part`` to the whole remote file, resuming what is there; return its size in bytes."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "pix2pix-datasets", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        resp = _open_within(Request(url, headers=headers), HEADERS_DEADLINE_S)
    except HTTPError as e:
        e.close()
        if e.code == 416 and offset:
            # Nothing left to send: the .part is complete, unless the server names another total size.
            total = _content_range(e.headers.get("Content-Range", ""))[1]
            if total is None or total == offset:
                return offset
            if not restarted:
                part.unlink()
                return fetch(url, part, label, progress, expected_size, max_bytes, restarted=True)
        hint = " (no such file: check the dataset name or --url)" if e.code == 404 else ""
        if 300 <= e.code < 400:
            hint = " (its redirects never reach the file: a redirect loop, or too many)"
        reason = str(e.reason).strip().splitlines()[0] if str(e.reason).strip() else ""
        raise Pix2PixError(f"{url}: the server answered HTTP {e.code} {reason}{hint}".replace("  ", " ")) from None
    except URLError as e:
        raise _unreachable(url, e.reason) from None
    except (OSError, http.client.HTTPException) as e:  # timeouts and resets before the headers arrive
        raise _unreachable(url, e) from None
    except ValueError as e:
        raise Pix2PixError(f"--url {url}: not a URL that can be downloaded ({e})") from None

    with resp:
        length = resp.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None
        if resp.status == 206:
            start, total = _content_range(resp.headers.get("Content-Range", ""))
            if start is None:
                start = offset
            if total is None and length is not None:
                total = start + length
            if start != offset:
                raise Pix2PixError(f"{url}: asked to resume at byte {offset:,}, the server answered from byte "
                                   f"{start:,}; remove {part} and run the same command")
            mode = "ab"
        else:  # 200: the whole file, either asked for or because the server ignores Range
            offset, total, mode = 0, length, "wb"
        if expected_size is not None and total is not None and total != expected_size:
            part.unlink(missing_ok=True)
            raise Pix2PixError(f"{url}: the server offers {total:,} bytes but {expected_size:,} were expected; "
                               "the file on the server has changed, or the URL is not the expected archive")
        need = total - offset if total is not None else None
        _check_space(part.parent, need, label)

        done = offset
        bar = tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                   desc=f"download {label}", disable=not progress)
        window, in_window = time.monotonic(), 0
        with bar, _writing(part, f"downloading {label}", need), open(part, mode) as f:
            while True:
                try:  # read1: whatever has arrived, so that a stall or a timeout loses none of it
                    chunk = resp.read1(CHUNK)
                except (OSError, http.client.HTTPException) as e:  # converted here: OSErrors left are the disk's
                    raise _interrupted(url, part, done, total, _reason(e)) from None
                if not chunk:
                    break
                f.write(chunk)
                f.flush()
                done += len(chunk)
                bar.update(len(chunk))
                if total is None and done > max_bytes:
                    f.close()
                    part.unlink(missing_ok=True)
                    raise Pix2PixError(f"{url}: the server sent more than --max-bytes {max_bytes:,} without saying "
                                       "how large the file is; refused (raise --max-bytes if it is right)")
                in_window, now = in_window + len(chunk), time.monotonic()
                if now - window >= STALL_WINDOW_S:
                    if in_window < STALL_BYTES:
                        raise _interrupted(url, part, done, total, f"too slow: {in_window:,} bytes in the last "
                                           f"{now - window:.0f} s")
                    window, in_window = now, 0
    if total is not None and done < total:
        raise _interrupted(url, part, done, total, None)
    return done


def _open_within(request: Request, deadline: float):
    """``urlopen`` whose status line and headers must all arrive within ``deadline`` seconds: its own timeout
    bounds each read, and a server that drips a header byte every few seconds would never trip it. It runs in a
    daemon thread; past the deadline the response (if it ever comes) is dropped."""
    done, box = threading.Event(), {}

    def run() -> None:
        try:
            box["resp"] = urlopen(request, timeout=TIMEOUT)
        except BaseException as e:  # handed to the caller's thread as it is
            box["error"] = e
        finally:
            done.set()

    threading.Thread(target=run, daemon=True, name="pix2pix-download-headers").start()
    if not done.wait(deadline):
        raise OSError(f"no complete headers within {deadline:g} s")
    if "error" in box:
        raise box["error"]
    return box["resp"]


def _content_range(value: str) -> tuple[int | None, int | None]:
    """``bytes 100-199/1000`` -> (100, 1000); ``bytes */1000`` -> (None, 1000); unknown parts are None."""
    m = re.fullmatch(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*", value or "")
    if not m:
        return None, None
    return (int(m[1]) if m[1] else None), (int(m[2]) if m[2] != "*" else None)


def _unreachable(url: str, reason: object) -> Pix2PixError:
    if isinstance(reason, socket.gaierror):
        what = "host name not found"
    elif isinstance(reason, ConnectionRefusedError):
        what = "connection refused"
    elif isinstance(reason, TimeoutError):
        what = f"no answer within {TIMEOUT:g} s"
    else:
        what = getattr(reason, "strerror", None) or str(reason) or type(reason).__name__
    return Pix2PixError(f"{url}: cannot reach the server ({what}); check the network connection, "
                        "or download from elsewhere with --url")


def _interrupted(url: str, part: Path, done: int, total: int | None, why: str | None) -> Pix2PixError:
    got = f"{done:,} of {total:,} bytes" if total is not None else f"{done:,} bytes"
    why = f" ({why})" if why else ""
    return Pix2PixError(f"{url}: the transfer stopped after {got}{why}; {part.name} is kept, so running the "
                        "same command again resumes the download")


def _reason(e: Exception) -> str:
    if isinstance(e, TimeoutError):
        return f"no data for {TIMEOUT:g} s"
    return getattr(e, "strerror", None) or str(e) or type(e).__name__


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


# ------------------------------------------------------------------------------------------- disk space


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _check_space(folder: Path, need: int | None, label: str) -> None:
    if need is None:
        return
    free = shutil.disk_usage(folder).free
    if free < need:
        raise Pix2PixError(f"{folder}: not enough disk space to download {label}: the archive needs {_size(need)} "
                           f"more, {_size(free)} is free (extracting needs about as much again)")


@contextmanager
def _writing(path: Path, doing: str, need: int | None = None):
    """Turn an OSError raised while writing into a one-line error; a full disk says so."""
    try:
        yield
    except OSError as e:
        if e.errno == errno.ENOSPC:
            needed = f" ({_size(need)} were needed)" if need else ""
            raise Pix2PixError(f"{path}: the disk is full while {doing}{needed}; free some space and run the "
                               "same command again") from None
        raise Pix2PixError(f"{path}: cannot write while {doing} ({e.strerror or e})") from None


# ------------------------------------------------------------------------------------------- extraction


@dataclass
class Bounds:
    """What one extraction may write: bytes (a multiple of the archive's size, and the free disk space) and
    members."""

    max_bytes: float
    max_members: int
    written: int = 0
    members: int = 0
    free: int | None = None

    def add(self, member: tarfile.TarInfo, archive_size: int) -> None:
        self.members += 1
        if self.members > self.max_members:
            raise _BadArchive(f"it holds more than {self.max_members:,} members (--max-members raises the limit)")
        self.charge(member.size if member.isfile() else 0, archive_size)

    def charge(self, size: int, archive_size: int) -> None:
        """``size`` more bytes to write (a file, or the copy a hard link makes)."""
        self.written += size
        if self.written > self.max_bytes:
            raise _BadArchive(f"it expands to more than {self.max_bytes / max(archive_size, 1):g} times the archive's "
                              "size (a decompression bomb? --max-expansion raises the limit)")
        if self.free is not None and self.written > self.free:
            raise Pix2PixError(f"not enough disk space to extract: the archive expands past the "
                               f"{_size(self.free)} that were free; free some space and run the same command")


def _extract(archive: Path, dest: Path, label: str, progress: bool, bounds: Bounds | None = None) -> None:
    """Extract into a hidden sibling of ``dest`` and rename the dataset root into place when complete."""
    bounds = bounds or Bounds(MAX_EXPANSION * archive.stat().st_size, MAX_MEMBERS)
    free, size = shutil.disk_usage(dest.parent).free, archive.stat().st_size
    if free < size:  # datasets of JPEGs take about what their archive takes
        raise Pix2PixError(f"{dest.parent}: not enough disk space to extract {label}: {_size(free)} free, and the "
                           f"dataset needs at least about {_size(size)}; free some space and run the same command")
    bounds.free = free
    with _writing(dest.parent, f"extracting {label}"):
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.extract-", dir=dest.parent))
    try:
        files = _extract_members(archive, tmp, dest, label, progress, bounds)
        if files == 0:
            raise _BadArchive("the archive holds no files")
        root = _dataset_root(tmp)
        _check_links(root, tmp)
        with _writing(dest, f"moving the extracted {label} into place"):
            if dest.is_dir():
                dest.rmdir()  # empty (checked before downloading); fails if it has been filled since
            os.rename(root, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _dataset_root(tmp: Path) -> Path:
    """``tmp/facades`` when that is all the archive held (the paper's archives), else ``tmp`` itself."""
    visible = [p for p in tmp.iterdir() if not p.name.startswith(".")]  # e.g. macOS ._* files
    if len(visible) == 1 and visible[0].is_dir() and not visible[0].is_symlink() and visible[0].name not in SPLITS:
        return visible[0]
    return tmp


class _BoundedTarInfo(tarfile.TarInfo):
    """A member whose extended header (pax, GNU long name or link) is refused above :data:`MAX_HEADER_BYTES`
    before tarfile reads it into memory: its size is all the header block says of it."""

    def _proc_member(self, tarfile_):
        long_headers = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME,
                        tarfile.GNUTYPE_LONGLINK)
        if self.type in long_headers and self.size > MAX_HEADER_BYTES:
            raise tarfile.HeaderError(f"a member's extended header declares {self.size:,} bytes (at most "
                                      f"{MAX_HEADER_BYTES:,})")
        return super()._proc_member(tarfile_)


def _extract_members(archive: Path, root: Path, dest: Path, label: str, progress: bool, bounds: Bounds) -> int:
    """Write every member under ``root`` once :func:`_check_member` has passed it; return the number of files
    written. The files are written here rather than by ``tar.extract`` so that write errors become one line
    naming ``dest``, the folder the user asked for, rather than the temporary ``root``."""
    files = 0
    try:
        # Stream mode ("r|*") reads the archive once, front to back: an 8 GB archive is not decompressed twice.
        with tarfile.open(archive, mode="r|*", tarinfo=_BoundedTarInfo) as tar, \
                tqdm(desc=f"extract {label}", unit=" files", disable=not progress) as bar:
            archive_size = archive.stat().st_size
            for member in tar:
                bounds.add(member, archive_size)  # before anything of it is written
                _check_member(member, root)
                target = root / member.name
                with _writing(dest, f"extracting {member.name}"):
                    target.parent.mkdir(parents=True, exist_ok=True)
                    if target.is_symlink():
                        target.unlink()  # a later member replaces an earlier one; never write through a link
                    if member.isdir():
                        target.mkdir(exist_ok=True)
                    elif member.issym():
                        os.symlink(member.linkname, target)
                    elif member.islnk():
                        # Stream mode cannot go back to the member linked to: copy the file it wrote.
                        source = root / member.linkname
                        if not source.is_file():
                            raise _BadArchive(f"member '{member.name}' is a hard link to {member.linkname}, "
                                              "which the archive does not hold before it")
                        bounds.charge(source.stat().st_size, archive_size)  # a copy: bytes like any file's
                        shutil.copyfile(source, target)
                if member.isfile():  # the filter has refused every type but files, folders and links
                    _write_member(tar, member, target, dest)
                if not member.isdir():
                    files += 1
                    bar.update(1)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        # Write errors were already turned into Pix2PixError; what is left comes from reading the archive.
        raise _BadArchive(f"not a readable tar archive ({_reason(e)})") from None
    return files


def _check_member(member: tarfile.TarInfo, root: Path) -> None:
    """tarfile's data filter (PEP 706) refuses what would land or point outside ``root``, also through links
    extracted before, and device files; its refusals become :class:`_Unsafe`, with the reason in words.

    Two lexical checks stand beside it, for what it lets through or judges only by resolving paths: an absolute
    name (the filter would quietly strip the "/"), and ``..`` in a name or a link target (the filter allows
    ``a/../b`` and judges links by ``realpath``, which some patch releases let long symlink chains fool)."""
    name, link = member.name, member.linkname
    if name.startswith(("/", "\\")) or os.path.isabs(name) or re.match(r"[A-Za-z]:", name):
        raise _Unsafe(name, "has an absolute path")
    if ".." in re.split(r"[/\\]", name):
        raise _Unsafe(name, "has '..' in its path, which would leave the folder")
    if member.issym() and (link.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", link)):
        raise _Unsafe(name, f"is a link to the absolute path {link}")
    if member.issym():
        lexical = os.path.normpath(os.path.join(os.path.dirname(name), link))
        if lexical == ".." or lexical.startswith(".." + os.sep):
            raise _Unsafe(name, f"is a link to {link}, outside the folder")
    try:
        tarfile.data_filter(member, root)
    except (tarfile.FilterError, ValueError) as e:  # ValueError: os.path.commonpath on odd names
        why = {tarfile.AbsoluteLinkError: f"is a link to the absolute path {link}",
               tarfile.LinkOutsideDestinationError: f"is a link to {link}, outside the folder",
               tarfile.SpecialFileError: "is a device file or FIFO, which a dataset never holds",
               tarfile.OutsideDestinationError: "would be written through a link that leads outside the folder",
               }.get(type(e), f"is refused by tarfile's data filter ({e})")
        raise _Unsafe(name, why) from None


def _check_links(root: Path, tmp: Path) -> None:
    """Every link under ``root`` must resolve inside it, now that all members are in place. The filter checks
    each link as it is written, against the extraction folder; it cannot see a link that leads outside once
    later links replace parts of its path (``s/a -> b/..``, then ``s/b -> ..``), nor one that points into the
    archive's top folder's parent, which is outside once that folder becomes the dataset folder
    (``facades/up -> ..``). Links are named as in the archive (relative to ``tmp``)."""
    real_root = os.path.realpath(root)
    for dirpath, dirnames, filenames in os.walk(root):
        for entry in dirnames + filenames:
            path = os.path.join(dirpath, entry)
            if os.path.islink(path) and os.path.commonpath([os.path.realpath(path), real_root]) != real_root:
                raise _Unsafe(os.path.relpath(path, tmp), "is a link that leads outside the folder")


def _write_member(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path, dest: Path) -> None:
    src = tar.extractfile(member)
    doing = f"extracting {member.name}"
    with _writing(dest, doing):
        dst = open(target, "wb")
    try:
        while chunk := src.read(CHUNK):  # read errors mean a corrupt archive; write errors are the disk's
            with _writing(dest, doing):
                dst.write(chunk)
    finally:
        with _writing(dest, doing):
            dst.close()
