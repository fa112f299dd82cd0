"""Dataset downloads: layout after extraction, resume, verification, network and disk failures, and archives
that try to write outside their folder.

Every download goes to an HTTP server on 127.0.0.1 that the test starts and fills with archives it made.
"""

from __future__ import annotations

import errno
import hashlib
import io
import logging
import re
import socket
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pix2pix.data.pairs import scan_split
from pix2pix.datasets import download
from pix2pix.datasets.download import STANDARD, cityscapes_instructions, download_dataset
from pix2pix.errors import Pix2PixError

SPLIT_COUNTS = {"train": 3, "val": 2, "test": 1}


# ------------------------------------------------------------------------------------- the test server


class _Handler(BaseHTTPRequestHandler):
    """Serves ``server.files``; honours ``Range: bytes=K-`` unless ``server.ignore_range``; sends only half
    the body (with the full Content-Length) while ``server.truncate`` > 0; waits on ``server.stall``."""

    def do_GET(self):
        srv = self.server
        srv.requests.append({"path": self.path, "range": self.headers.get("Range")})
        if self.path in getattr(srv, "redirects", {}):
            self.send_response(302)
            self.send_header("Location", srv.redirects[self.path])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if srv.stall is not None:
            srv.stall.wait(5)
            return
        body = srv.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start, rng = 0, self.headers.get("Range")
        if rng and not srv.ignore_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", rng)[1])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        if not srv.no_length:
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if srv.truncate > 0:
            srv.truncate -= 1
            payload = payload[: len(payload) // 2]
        try:
            if srv.drip:  # the first bytes at once, then one byte per drip interval
                self.wfile.write(payload[:200])
                self.wfile.flush()
                for i in range(200, len(payload)):
                    time.sleep(srv.drip)
                    self.wfile.write(payload[i:i + 1])
                    self.wfile.flush()
            else:
                self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files, srv.requests = {}, []
    srv.ignore_range, srv.truncate, srv.stall = False, 0, None
    srv.no_length, srv.drip = False, 0.0
    srv.url = lambda path: f"http://127.0.0.1:{srv.server_address[1]}{path}"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield srv
    if srv.stall is not None:
        srv.stall.set()
    srv.shutdown()
    srv.server_close()
    thread.join(5)


# ----------------------------------------------------------------------------------------- archives


def _png(seed: int) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 256, (8, 16, 3), dtype=np.uint8)  # an 8x8 A | 8x8 B pair
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def make_archive(top: str | None = "facades", compression: str = "gz") -> bytes:
    """A tiny aligned dataset as the paper's archives hold it: TOP/{train,val,test}/N.png (TOP optional)."""
    files = {}
    for split, n in SPLIT_COUNTS.items():
        for i in range(n):
            files[f"{split}/{i + 1}.png"] = _png(len(files))
    return tar_bytes({(f"{top}/{k}" if top else k): v for k, v in files.items()}, compression)


def tar_bytes(entries: dict[str, bytes | tarfile.TarInfo], compression: str = "gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=f"w:{compression}") as tar:
        for name, content in entries.items():
            if isinstance(content, tarfile.TarInfo):
                tar.addfile(content)
            else:
                info = tarfile.TarInfo(name)
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def link(name: str, target: str, kind=tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


def assert_dataset(folder: Path) -> None:
    for split, n in SPLIT_COUNTS.items():
        pairs, problems = scan_split(folder, split)
        assert len(pairs) == n and not problems
    assert sorted(p.name for p in folder.iterdir()) == ["test", "train", "val"]


def leftovers(out: Path) -> list[str]:
    """What a download left in ``out``, but for its hidden lock file (``.NAME.lock``, kept like a run's)."""
    return sorted(p.name for p in out.iterdir() if not p.name.endswith(".lock")) if out.exists() else []


# ------------------------------------------------------------------------------------------- success


@pytest.mark.parametrize("progress", [True, False])
def test_download_extracts_into_the_layout_and_cleans_up(tmp_path, server, progress):
    server.files["/facades.tar.gz"] = make_archive()
    out = tmp_path / "datasets"
    dest = download_dataset("facades", out, url=server.url("/facades.tar.gz"), progress=progress)
    assert dest == out / "facades"
    assert_dataset(dest)
    assert leftovers(out) == ["facades"]  # no .part, no temporary extraction folder


@pytest.mark.parametrize("top,compression", [(None, "gz"), ("other_name", "gz"), ("maps", "bz2"), (None, "")])
def test_archives_with_or_without_a_top_folder_land_in_name(tmp_path, server, top, compression):
    server.files["/x"] = make_archive(top, compression)
    dest = download_dataset("mine", tmp_path, url=server.url("/x"), progress=False)
    assert dest == tmp_path / "mine"
    assert_dataset(dest)


def test_verified_size_and_sha256_pass(tmp_path, server):
    data = make_archive()
    server.files["/f.tar.gz"] = data
    dest = download_dataset("facades", tmp_path, url=server.url("/f.tar.gz"), progress=False,
                            expected_size=len(data), sha256=hashlib.sha256(data).hexdigest().upper())
    assert_dataset(dest)


def test_standard_sources_share_the_base_url():
    assert set(STANDARD) == {"facades", "maps", "edges2shoes", "edges2handbags", "night2day"}
    for name, archive in STANDARD.items():
        assert archive.url == f"{download.BASE_URL}/{name}.tar.gz"
    assert download.BASE_URL == "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets"


# -------------------------------------------------------------------------------------------- resume


def test_interrupted_transfer_keeps_the_part_and_resumes(tmp_path, server):
    data = make_archive()
    server.files["/f.tar.gz"] = data
    server.truncate = 1
    url = server.url("/f.tar.gz")
    with pytest.raises(Pix2PixError, match="running the same command again resumes") as e:
        download_dataset("facades", tmp_path, url=url, progress=False)
    assert "\n" not in str(e.value)
    part = tmp_path / "facades.tar.gz.part"
    kept = part.stat().st_size
    assert 0 < kept < len(data)
    assert not (tmp_path / "facades").exists()

    dest = download_dataset("facades", tmp_path, url=url, progress=False)
    assert server.requests[-1]["range"] == f"bytes={kept}-"
    assert_dataset(dest)
    assert not part.exists()


def test_a_complete_part_is_extracted_without_downloading_again(tmp_path, server):
    data = make_archive()
    server.files["/f.tar.gz"] = data
    (tmp_path / "facades.tar.gz.part").write_bytes(data)
    assert_dataset(download_dataset("facades", tmp_path, url=server.url("/f.tar.gz"), progress=False))
    assert server.requests[-1]["range"] == f"bytes={len(data)}-"  # answered 416: nothing more to send


def test_a_part_longer_than_the_file_starts_over(tmp_path, server):
    data = make_archive()
    server.files["/f.tar.gz"] = data
    (tmp_path / "facades.tar.gz.part").write_bytes(b"\0" * (len(data) + 10))
    assert_dataset(download_dataset("facades", tmp_path, url=server.url("/f.tar.gz"), progress=False))
    assert [r["range"] for r in server.requests] == [f"bytes={len(data) + 10}-", None]


def test_a_server_that_ignores_range_restarts_from_zero(tmp_path, server):
    data = make_archive()
    server.files["/f.tar.gz"] = data
    server.ignore_range = True
    (tmp_path / "facades.tar.gz.part").write_bytes(b"garbage that is not the archive's start")
    dest = download_dataset("facades", tmp_path, url=server.url("/f.tar.gz"), progress=False)
    assert server.requests[-1]["range"] is not None  # it asked to resume, got the whole file
    assert_dataset(dest)


# ---------------------------------------------------------------------------------------- verification


@pytest.mark.parametrize("check", ["size", "sha256"])
def test_wrong_size_or_checksum_leaves_no_dataset(tmp_path, server, check):
    data = make_archive()
    server.files["/f.tar.gz"] = data
    kwargs = {"expected_size": len(data) + 1} if check == "size" else {"sha256": "0" * 64}
    with pytest.raises(Pix2PixError, match=f"{len(data) + 1:,}" if check == "size" else "SHA-256") as e:
        download_dataset("facades", tmp_path, url=server.url("/f.tar.gz"), progress=False, **kwargs)
    assert "\n" not in str(e.value)
    assert leftovers(tmp_path) == []


def test_corrupt_archive_is_removed_and_leaves_no_dataset(tmp_path, server):
    server.files["/f.tar.gz"] = np.random.default_rng(0).bytes(5000)
    with pytest.raises(Pix2PixError, match="not a readable tar archive.*removed") as e:
        download_dataset("facades", tmp_path, url=server.url("/f.tar.gz"), progress=False)
    assert "\n" not in str(e.value)
    assert leftovers(tmp_path) == []


def test_truncated_gzip_is_corrupt(tmp_path, server):
    data = make_archive()
    server.files["/f.tar.gz"] = data[: len(data) // 2]  # complete as HTTP goes, cut as an archive
    with pytest.raises(Pix2PixError, match="not a readable tar archive"):
        download_dataset("facades", tmp_path, url=server.url("/f.tar.gz"), progress=False)
    assert leftovers(tmp_path) == []


def test_an_empty_archive_is_refused(tmp_path, server):
    server.files["/f.tar.gz"] = tar_bytes({})
    with pytest.raises(Pix2PixError, match="holds no files"):
        download_dataset("facades", tmp_path, url=server.url("/f.tar.gz"), progress=False)
    assert leftovers(tmp_path) == []


# --------------------------------------------------------------------------------- malicious archives


def _malicious(tmp_path: Path) -> dict[str, dict]:
    evil = str(tmp_path / "evil_abs.txt")
    return {
        "dotdot": {"../evil.txt": b"x"},
        "deep_dotdot": {"facades/train/../../../evil.txt": b"x"},
        # Lands inside, but a dataset never names a member so: refused by name, before any path is resolved.
        "dotdot_inside": {"facades/../facades/train/2.png": b"x"},
        "drive": {"C:evil.txt": b"x"},
        "absolute": {evil: b"x"},
        "symlink_abs": {"facades/passwd": link("facades/passwd", "/etc/passwd")},
        "symlink_up": {"facades/up": link("facades/up", "../..")},
        "symlink_then_write": {"facades/d": link("facades/d", "../../"), "facades/d/evil.txt": b"x"},
        "hardlink_abs": {"facades/h": link("facades/h", "/etc/passwd", tarfile.LNKTYPE)},
        "hardlink_up": {"facades/h": link("facades/h", "../evil.txt", tarfile.LNKTYPE)},
        "device": {"facades/dev": link("facades/dev", "", tarfile.CHRTYPE)},
        "fifo": {"facades/fifo": link("facades/fifo", "", tarfile.FIFOTYPE)},
        # Harmless when written; once s/b exists, s/a -> s/b/.. -> the dataset folder's parent.
        "link_chain": {"facades/s/a": link("facades/s/a", "b/.."), "facades/s/b": link("facades/s/b", "..")},
        # Inside the archive, but outside facades/, which becomes the dataset folder.
        "link_to_top": {"facades/up": link("facades/up", "..")},
    }


# What each refusal says, right after the member's name.
WHY = {"dotdot": "has '..' in its path", "deep_dotdot": "has '..' in its path", "absolute": "has an absolute path",
       "dotdot_inside": "has '..' in its path", "drive": "has an absolute path",
       "symlink_abs": "is a link to the absolute path /etc/passwd",
       "symlink_up": "is a link to ../.., outside the folder",
       "symlink_then_write": "is a link to ../../, outside the folder",
       "hardlink_abs": "is a link to the absolute path /etc/passwd",
       "hardlink_up": "is a link to ../evil.txt, outside the folder",
       "device": "is a device file", "fifo": "is a device file or FIFO",
       "link_chain": "is a link that leads outside the folder",
       "link_to_top": "is a link that leads outside the folder"}


@pytest.mark.parametrize("case", list(WHY))
def test_members_escaping_the_folder_are_refused(tmp_path, server, case):
    entries = {"facades/train/1.png": _png(0), **_malicious(tmp_path)[case]}
    server.files["/f.tar.gz"] = tar_bytes(entries)
    out = tmp_path / "a" / "b"
    with pytest.raises(Pix2PixError) as e:
        download_dataset("facades", out, url=server.url("/f.tar.gz"), progress=False)
    message = str(e.value)
    bad = [k for k in entries if k != "facades/train/1.png"][0]
    assert f"member '{bad}' {WHY[case]}" in message and "\n" not in message
    assert leftovers(out) == []  # no dataset, no temporary folder, no .part
    assert sorted(p.name for p in tmp_path.rglob("*") if not p.name.endswith(".lock")) == ["a", "b"]  # nowhere else


def test_links_inside_the_folder_are_kept(tmp_path, server):
    server.files["/f.tar.gz"] = tar_bytes({
        "facades/train/1.png": _png(0),
        "facades/train/2.png": link("facades/train/2.png", "1.png"),
        "facades/train/3.png": link("facades/train/3.png", "facades/train/1.png", tarfile.LNKTYPE),
    })
    dest = download_dataset("facades", tmp_path, url=server.url("/f.tar.gz"), progress=False)
    assert [(dest / "train" / f"{i}.png").read_bytes() == _png(0) for i in (1, 2, 3)] == [True] * 3
    assert (dest / "train" / "2.png").is_symlink()


def test_a_hard_link_to_a_later_member_is_a_bad_archive(tmp_path, server):
    server.files["/f.tar.gz"] = tar_bytes({  # read front to back, 1.png is not there yet when 2.png needs it
        "facades/train/2.png": link("facades/train/2.png", "facades/train/1.png", tarfile.LNKTYPE),
        "facades/train/1.png": _png(0),
    })
    with pytest.raises(Pix2PixError, match=r"member 'facades/train/2.png' is a hard link to facades/train/1.png, "
                                            r"which the archive does not hold before it.*removed") as e:
        download_dataset("facades", tmp_path, url=server.url("/f.tar.gz"), progress=False)
    assert "\n" not in str(e.value)
    assert leftovers(tmp_path) == []


def test_a_python_without_extraction_filters_is_refused_before_downloading(tmp_path, server, monkeypatch):
    server.files["/f.tar.gz"] = make_archive()
    monkeypatch.delattr(tarfile, "data_filter")
    with pytest.raises(Pix2PixError, match=r"extraction filters \(PEP 706\); use Python 3\.10\.12\+") as e:
        download_dataset("facades", tmp_path, url=server.url("/f.tar.gz"), progress=False)
    assert "\n" not in str(e.value)
    assert server.requests == [] and leftovers(tmp_path) == []


# ------------------------------------------------------------------------------------ network failures


def test_404_is_one_line_naming_the_url(tmp_path, server):
    url = server.url("/nothing.tar.gz")
    with pytest.raises(Pix2PixError, match=r"HTTP 404.*--url") as e:
        download_dataset("facades", tmp_path, url=url, progress=False)
    assert url in str(e.value) and "\n" not in str(e.value)
    assert leftovers(tmp_path) == []


def test_connection_refused(tmp_path):
    with socket.socket() as s:  # a port that was free a moment ago, with nothing listening now
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/facades.tar.gz"
    with pytest.raises(Pix2PixError, match="connection refused.*--url") as e:
        download_dataset("facades", tmp_path, url=url, progress=False)
    assert url in str(e.value)
    assert leftovers(tmp_path) == []


def test_a_silent_server_times_out(tmp_path, server, monkeypatch):
    monkeypatch.setattr(download, "TIMEOUT", 0.3)
    server.stall = threading.Event()
    with pytest.raises(Pix2PixError, match="no answer within 0.3 s"):
        download_dataset("facades", tmp_path, url=server.url("/f.tar.gz"), progress=False)


def test_a_url_that_is_not_http(tmp_path):
    with pytest.raises(Pix2PixError, match="not a URL"):
        download_dataset("facades", tmp_path, url="no-scheme/facades.tar.gz", progress=False)


# -------------------------------------------------------------------------------------- user mistakes


def test_unknown_name_lists_the_known_ones(tmp_path):
    with pytest.raises(Pix2PixError, match="unknown dataset 'facade'") as e:
        download_dataset("facade", tmp_path)
    for name in [*STANDARD, "cityscapes"]:
        assert name in str(e.value)
    assert leftovers(tmp_path) == []


def test_bad_folder_name_with_url(tmp_path, server):
    with pytest.raises(Pix2PixError, match="plain folder name"):
        download_dataset("../x", tmp_path, url=server.url("/f.tar.gz"))


def test_cityscapes_gives_instructions_and_downloads_nothing(tmp_path, caplog):
    text = cityscapes_instructions()
    for needle in ("licence", "gtFine_trainvaltest.zip", "leftImg8bit_trainvaltest.zip", "256x256",
                   "pix2pix datasets combine --a PHOTOS --b LABELS --out"):
        assert needle in text
    with caplog.at_level(logging.WARNING, logger=download.__name__):
        assert download_dataset("cityscapes", tmp_path / "out") == tmp_path / "out" / "cityscapes"
    assert "gtFine_trainvaltest.zip" in caplog.text
    assert not (tmp_path / "out").exists()


def test_an_existing_dataset_is_not_overwritten(tmp_path, server):
    server.files["/f.tar.gz"] = make_archive()
    (tmp_path / "facades" / "train").mkdir(parents=True)
    with pytest.raises(Pix2PixError, match=r"already exists.*remove that folder"):
        download_dataset("facades", tmp_path, url=server.url("/f.tar.gz"), progress=False)
    assert server.requests == []  # refused before downloading anything
    (tmp_path / "facades" / "train").rmdir()  # an empty folder is simply filled
    assert_dataset(download_dataset("facades", tmp_path, url=server.url("/f.tar.gz"), progress=False))


# ------------------------------------------------------------------------------------------- full disk


class _FullDisk:
    """A file whose writes fail as on a full disk."""

    def __init__(self, f):
        self.f = f

    def write(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


@pytest.mark.parametrize("stage", ["download", "extract"])
def test_a_full_disk_is_one_line(tmp_path, server, monkeypatch, stage):
    data = make_archive()
    server.files["/f.tar.gz"] = data

    def fake_open(path, mode="r", *args, **kwargs):
        f = open(path, mode, *args, **kwargs)
        writing = any(c in mode for c in "wax")
        chosen = str(path).endswith(".part") == (stage == "download")  # the .part, or an extracted file
        return _FullDisk(f) if writing and chosen else f

    monkeypatch.setattr(download, "open", fake_open, raising=False)
    with pytest.raises(Pix2PixError, match="disk is full") as e:
        download_dataset("facades", tmp_path, url=server.url("/f.tar.gz"), progress=False)
    message = str(e.value)
    assert "\n" not in message
    if stage == "download":
        assert f"({download._size(len(data))} were needed)" in message
    assert not (tmp_path / "facades").exists()
    assert [p for p in leftovers(tmp_path) if p.startswith(".")] == []  # no temporary folder left
    monkeypatch.undo()
    # Space freed: the same command finishes (from the kept .part when it was the extraction that failed).
    assert_dataset(download_dataset("facades", tmp_path, url=server.url("/f.tar.gz"), progress=False))


# ------------------------------------------------------------------------------------------ the CLI


def test_cli_download_then_train_ready(tmp_path, server, capsys):
    from pix2pix.cli import main

    server.files["/facades.tar.gz"] = make_archive()
    code = main(["datasets", "download", "facades", "--url", server.url("/facades.tar.gz"), "--out", str(tmp_path)])
    said = capsys.readouterr()  # the old spelling of --into still works, and says the new one
    assert code == 0 and str(tmp_path / "facades") in said.out and "--out is now --into" in said.err
    assert main(["datasets", "check", str(tmp_path / "facades")]) == 0


def test_cli_download_errors_are_one_line(tmp_path, server, capsys):
    from pix2pix.cli import main

    code = main(["datasets", "download", "mnist", "--into", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "unknown dataset 'mnist'" in err and "\n" not in err
    server.files["/evil.tar.gz"] = tar_bytes({"../evil.txt": b"x"})
    code = main(["datasets", "download", "evil", "--url", server.url("/evil.tar.gz"), "--into", str(tmp_path / "d")])
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress bar, the one error line
    assert code == 2 and last.startswith("pix2pix: error:") and "evil.txt" in last
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "d" / "evil").exists()


def test_cli_cityscapes_prints_how_to_get_it(capsys, tmp_path):
    from pix2pix.cli import main

    assert main(["datasets", "download", "cityscapes", "--into", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "licence" in out.lower() or "license" in out.lower()
    assert "datasets combine" in out



# ------------------------------------------------------------------------------------------ bounds


def test_a_slow_drip_is_a_stall_and_what_arrived_is_kept(tmp_path, server, monkeypatch):
    """One byte at a time never trips a socket timeout; too few bytes per window does. The .part keeps every
    byte that came, the message counts them truly, and the next run resumes from there."""
    monkeypatch.setattr(download, "STALL_WINDOW_S", 0.5)
    monkeypatch.setattr(download, "STALL_BYTES", 100)
    body = make_archive()
    server.files["/facades.tar.gz"] = body
    server.drip = 0.2
    with pytest.raises(Pix2PixError) as e:
        download_dataset("facades", tmp_path, url=server.url("/facades.tar.gz"), progress=False)
    part = tmp_path / "facades.tar.gz.part"
    got = part.stat().st_size
    assert got >= 200 and f"after {got:,} of {len(body):,} bytes" in str(e.value) and "too slow" in str(e.value)
    server.drip = 0.0
    assert_dataset(download_dataset("facades", tmp_path, url=server.url("/facades.tar.gz"), progress=False))
    assert server.requests[-1]["range"] == f"bytes={got}-"


def test_a_response_without_a_length_is_capped_by_max_bytes(tmp_path, server):
    server.files["/big.tar.gz"] = b"\0" * 300_000
    server.no_length = True
    with pytest.raises(Pix2PixError, match="more than --max-bytes 100,000"):
        download_dataset("big", tmp_path, url=server.url("/big.tar.gz"), progress=False, max_bytes=100_000)
    assert not (tmp_path / "big.tar.gz.part").exists()


def _sparse_member(size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo("facades/train/huge.jpg")
    info.size = size
    return info


def test_an_archive_that_expands_far_beyond_its_size_is_refused(tmp_path, server):
    """A small archive that expands to 128 MiB (zeros compress about 1000 to 1): refused as it streams, before
    the disk fills."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        info = _sparse_member(128 * 2**20)

        class Zeros(io.RawIOBase):
            def __init__(self):
                self.left = info.size

            def readable(self):
                return True

            def readinto(self, b):
                n = min(len(b), self.left)
                b[:n] = bytes(n)
                self.left -= n
                return n

        tar.addfile(info, io.BufferedReader(Zeros(), 1 << 20))
    server.files["/bomb.tar.gz"] = raw.getvalue()
    assert len(raw.getvalue()) < 2_000_000
    with pytest.raises(Pix2PixError, match="more than 50 times the archive's size"):
        download_dataset("bomb", tmp_path, url=server.url("/bomb.tar.gz"), progress=False)
    assert leftovers(tmp_path) == []


def test_an_archive_of_too_many_members_is_refused(tmp_path, server):
    entries = {f"facades/train/{i}.jpg": b"x" for i in range(30)}
    server.files["/many.tar.gz"] = tar_bytes(entries)
    with pytest.raises(Pix2PixError, match="more than 20 members"):
        download_dataset("many", tmp_path, url=server.url("/many.tar.gz"), progress=False, max_members=20,
                         max_expansion=10**6)
    assert leftovers(tmp_path) == []


def test_extraction_checks_the_free_space_first(tmp_path, server, monkeypatch):
    import collections

    server.files["/facades.tar.gz"] = make_archive()
    usage = collections.namedtuple("usage", "total used free")
    real = download.shutil.disk_usage
    calls = []

    def small(path):
        calls.append(path)
        return usage(10**9, 10**9 - 2000, 2000) if len(calls) > 1 else real(path)  # the download itself fits

    monkeypatch.setattr(download.shutil, "disk_usage", small)
    with pytest.raises(Pix2PixError, match="not enough disk space to extract"):
        download_dataset("facades", tmp_path, url=server.url("/facades.tar.gz"), progress=False)



def test_hard_links_count_as_the_copies_they_make(tmp_path, server):
    """Each hard link is extracted as a copy of its target: 30 links to one 20 kB file write 620 kB."""
    entries = {"facades/train/a.jpg": bytes(20_000)}
    entries |= {f"facades/train/{i}.jpg": link(f"facades/train/{i}.jpg", "facades/train/a.jpg", tarfile.LNKTYPE)
                for i in range(30)}
    server.files["/links.tar.gz"] = tar_bytes(entries)
    with pytest.raises(Pix2PixError, match="times the archive's size"):
        download_dataset("links", tmp_path, url=server.url("/links.tar.gz"), progress=False, max_expansion=100)



# ------------------------------------------------------------------------------- issue 20's probes


@pytest.mark.parametrize("bomb", ["pax", "gnu_long_name"])
def test_an_extended_header_bomb_is_refused_before_it_is_read(tmp_path, server, bomb):
    """A member's pax header (or GNU long name) of megabytes: tarfile would read it whole into memory. Refused
    from its declared size, and the .part removed (a retry cannot succeed)."""
    buf = io.BytesIO()
    fmt = tarfile.PAX_FORMAT if bomb == "pax" else tarfile.GNU_FORMAT
    with tarfile.open(fileobj=buf, mode="w:gz", format=fmt) as tar:
        info = tarfile.TarInfo("facades/train/" + ("x" * 3_000_000 if bomb == "gnu_long_name" else "1.png"))
        if bomb == "pax":
            info.pax_headers = {"comment": "x" * 3_000_000}
        data = _png(0)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    server.files["/f.tar.gz"] = buf.getvalue()
    out = tmp_path / "datasets"
    with pytest.raises(Pix2PixError, match="extended header declares") as e:
        download_dataset("facades", out, url=server.url("/f.tar.gz"), progress=False)
    assert "\n" not in str(e.value) and leftovers(out) == []


def test_headers_that_drip_are_stopped_at_the_deadline(tmp_path, monkeypatch):
    import socket

    monkeypatch.setattr(download, "HEADERS_DEADLINE_S", 0.5)
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def drip():
        conn, _ = listener.accept()
        with conn:
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            while not stop.wait(0.1):  # one header byte at a time, never the end of the headers
                try:
                    conn.sendall(b"X")
                except OSError:
                    return

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    start = time.monotonic()
    try:
        with pytest.raises(Pix2PixError, match="no complete headers within 0.5 s"):
            download_dataset("facades", tmp_path, url=f"http://127.0.0.1:{listener.getsockname()[1]}/f.tar.gz",
                             progress=False)
        assert time.monotonic() - start < 5
    finally:
        stop.set()
        listener.close()


def test_a_redirect_loop_is_one_line(tmp_path, server):
    server.redirects = {"/a": "/b", "/b": "/a"}
    with pytest.raises(Pix2PixError) as e:
        download_dataset("facades", tmp_path, url=server.url("/a"), progress=False)
    assert "\n" not in str(e.value) and "redirect loop" in str(e.value)


def test_a_killed_extractions_folder_is_removed_by_the_next_download(tmp_path, server):
    server.files["/facades.tar.gz"] = make_archive()
    out = tmp_path / "datasets"
    (out / ".facades.extract-k1ll3d" / "facades").mkdir(parents=True)  # left by a kill during extraction
    download_dataset("facades", out, url=server.url("/facades.tar.gz"), progress=False)
    assert leftovers(out) == ["facades"]


def test_two_downloads_of_one_dataset_are_refused_as_two_writers_of_one_run(tmp_path, server):
    from pix2pix.files import Lock

    out = tmp_path / "datasets"
    out.mkdir()
    first = Lock(out / ".facades.lock", "is downloading facades here")
    first.acquire()
    try:
        with pytest.raises(Pix2PixError, match="another pix2pix process .* is downloading facades"):
            download_dataset("facades", out, url=server.url("/facades.tar.gz"), progress=False)
    finally:
        first.release()
