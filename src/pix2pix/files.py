"""Files a user owns: written whole or not at all, with the permissions the umask gives, and a write that fails
for want of space (a full disk, a quota, a file-size limit) said in one line.

Every file is written to ``.NAME.XXXXXXXX.tmp`` beside it, synced to the disk and renamed over it, so a crash, a
kill, a power cut or a full disk leaves either the old file or the new one, never half of one. What a crash can leave is the temporary file;
:func:`remove_debris` (run when a run folder is opened, under its lock) removes those, and the ``.tmpXXXXXX``
files that safetensors' own ``save_file`` left in versions of pix2pix that called it.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import shutil
import sys
from pathlib import Path
from typing import Callable

from .errors import Pix2PixError

log = logging.getLogger(__name__)

# errno values that mean "no room for this write": a full disk, a quota, and `ulimit -f` (Python ignores
# SIGXFSZ, so a write past the limit fails with EFBIG instead of killing the process).
NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` on a new temporary file beside ``path``, then rename it over ``path``. The
    temporary file is created with mode 0666 less the umask, as a plain ``open`` would create ``path``."""
    path = Path(path)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as e:
        raise no_room(path, e, 0) if is_no_room(e, path.parent) else e from None
    try:
        write(str(tmp))
        _sync(tmp)  # on the disk before the rename: after a power cut, the old file or the new one, never empty
        os.replace(tmp, path)
        _sync(path.parent)
    except BaseException as e:
        written = tmp.stat().st_size if tmp.exists() else 0
        tmp.unlink(missing_ok=True)
        if isinstance(e, Exception) and is_no_room(e, path.parent):
            raise no_room(path, e, max(written, path.stat().st_size if path.exists() else 0)) from None
        raise


def _sync(path: Path) -> None:
    """fsync a file or a folder (a folder's entries: the rename); where a system cannot, nothing."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def remove_debris(folder: Path) -> None:
    """The temporary files a crash left in ``folder`` (no other process may be writing there)."""
    for pattern in (".*.tmp", ".tmp*"):
        for debris in folder.glob(pattern):
            if debris.is_file():
                debris.unlink(missing_ok=True)


class Lock:
    """One writer of a folder's files at a time: an exclusive OS lock on ``path`` (flock; on Windows a byte-range
    lock), which the kernel releases when its process ends, however it ends, so a killed writer never leaves a
    stale lock. The file holds the PID of the holder, for the message a second writer gets: the folder, "another
    pix2pix process (PID N)", then ``busy``."""

    def __init__(self, path: Path, busy: str):
        self.path, self.busy = Path(path), busy
        self.file = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "a+")
        try:
            _lock(f)
        except (BlockingIOError, PermissionError):  # held by another open of the file
            f.seek(0)
            pid = f.read().strip() or "?"
            f.close()
            raise Pix2PixError(f"{self.path.parent}: another pix2pix process (PID {pid}) {self.busy}") from None
        except OSError as e:  # a file system without locks (NFS without lockd, Lustre without -o flock)
            log.warning(f"{self.path}: this file system cannot lock ({e.strerror or e}); nothing stops a second "
                        "process from writing the same files")
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        self.file = f
        _HELD.add(f.fileno())

    def release(self) -> None:
        if self.file is not None:
            _HELD.discard(self.file.fileno())
            self.file.close()  # closing the descriptor releases the lock
            self.file = None


# The descriptors of locks this process holds. A forked child (a data-loader worker) shares the open file and
# with it the lock, which would then outlive its holder's release or death: each child closes its copies.
_HELD: set[int] = set()


def _close_held_in_child() -> None:
    for fd in list(_HELD):
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_held_in_child)


def _lock(f) -> None:
    if sys.platform == "win32":
        import msvcrt

        f.seek(0)  # the lock covers the byte at the position: one byte, the same for every process
        msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


def is_no_room(e: BaseException, folder: Path) -> bool:
    """Whether a write failed for want of space: ENOSPC, a quota or a file-size limit, or a writer's own words
    for it (torch.save: "unexpected pos", safetensors: "StorageFull") on a disk with next to nothing left."""
    if isinstance(e, OSError) and e.errno in NO_ROOM:
        return True
    said = str(e)
    if any(words in said for words in ("No space left", "StorageFull", "os error 28", "Disk quota exceeded",
                                       "os error 122", "File too large", "os error 27")):
        return True
    return "unexpected pos" in said and shutil.disk_usage(folder).free < 64 * 2**20


def no_room(path: Path, e: BaseException, needed: int) -> Pix2PixError:
    """The one line for a write that found no room; nothing written before is touched."""
    need = f", and this file needs about {human_bytes(needed)}" if needed else ""
    if (isinstance(e, OSError) and e.errno == errno.EFBIG) or "File too large" in str(e) or "os error 27" in str(e):
        why = f"larger than this process may write (a file-size limit, ulimit -f{need})"
    else:
        why = f"no space left on the device ({human_bytes(shutil.disk_usage(path.parent).free)} free{need})"
    return Pix2PixError(f"{path}: {why}; nothing written before is touched: free some space (or lift the limit) "
                        "and run again (--resume for a run)")


def human_bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"
