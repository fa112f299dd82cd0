"""A run folder, ``runs/NAME/``, and what training writes into it besides checkpoints:

* ``config.json``: the resolved configuration (:meth:`RunConfig.save`);
* ``checkpoints/``: ``latest.safetensors``, its ``state_STEP.pt``, snapshots (formats: :mod:`pix2pix.checkpoints`);
* ``losses.csv``: one row per log interval (step, epoch, lr, images/s and each loss term);
* ``tensorboard/``: the same figures and the samples, for ``tensorboard --logdir``;
* ``web/index.html``: input | output | target samples over time, under the loss and validation curves
  (``web/curves.png``) and a table of the validations.

Only the main process writes (under torchrun every process holds a :class:`RunFolder`, and only rank 0 calls
its writers), and only one process at a time: it holds the folder's :class:`RunLock` while it trains.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import threading
import time
from pathlib import Path

import torch

from ..data.rasters import preview
from ..errors import Pix2PixError
from ..files import Lock, atomic_write, remove_debris, write_text
from ..pages import line_panels, write_page

log = logging.getLogger(__name__)

SAMPLE_NAMES = ("input", "output", "target")
CURVES_EVERY_S = 120.0  # the samples page redraws its curves at most this often (and at a session's end)
# val.csv: one row per validation (pix2pix.training.validation). The FCN-scores and FID/KID are blank when no segmenter or
# Inception file was given.
VAL_OPTIONAL = ("per_pixel_acc", "per_class_acc", "class_iou", "fid", "kid")
VAL_FIELDS = ("step", "epoch", "l1", "psnr", "ssim", *VAL_OPTIONAL, "images", "seconds")
VAL_COLUMNS = {"step": ("step", ".0f"), "l1": ("val L1", ".4f"), "psnr": ("PSNR", ".2f"), "ssim": ("SSIM", ".4f"),
               "per_pixel_acc": ("FCN per-pixel acc.", ".3f"), "per_class_acc": ("FCN per-class acc.", ".3f"),
               "class_iou": ("FCN class IoU", ".3f"), "fid": ("FID", ".2f"), "kid": ("KID", ".4f")}  # the page's


class RunLock(Lock):
    """One writer per run: the OS lock on ``RUN/.lock`` (:class:`pix2pix.files.Lock`)."""

    def __init__(self, run_dir: Path):
        super().__init__(Path(run_dir) / ".lock", "is writing this run; wait for it to end, or choose another --name")


class RunFolder:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.checkpoints = self.path / "checkpoints"
        self.web = self.path / "web"
        self.losses = self.path / "losses.csv"
        self.val = self.path / "val.csv"  # VAL_FIELDS
        self.config = self.path / "config.json"
        self.lock = RunLock(self.path)
        self.writer = None  # TensorBoard, between open() and close()
        self.curves = self.web / "curves.png"
        self.curves_drawn = -CURVES_EVERY_S  # time.monotonic() of the last drawing

    @property
    def latest(self) -> Path:
        return self.checkpoints / "latest.safetensors"

    def holds_a_run(self) -> bool:
        return self.latest.exists()

    def check_writable(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / f".write-test-{os.getpid()}"  # one per process: torchrun starts several
            probe.write_text("")
            probe.unlink()
        except OSError as e:
            raise Pix2PixError(f"{self.path}: cannot write there ({e.strerror}); choose a writable --runs folder") \
                from None

    def make(self) -> None:
        """The folders, and no debris: temporary files that a crash left half-written (with the lock held, no
        other process can be writing them)."""
        self.checkpoints.mkdir(exist_ok=True)
        (self.web / "images").mkdir(parents=True, exist_ok=True)
        for folder in (self.path, self.checkpoints, self.web, self.web / "images"):
            remove_debris(folder)

    # -------------------------------------------------------------------------------- while training

    def open(self, step: int) -> None:
        """Start writing at ``step`` (0, or the step a resume starts from)."""
        from torch.utils.tensorboard import SummaryWriter  # slow import; only when training

        self.truncate_log(step)
        _quiet_tensorboard_threads(True)
        try:
            self.writer = SummaryWriter(str(self.path / "tensorboard"), purge_step=step or None)
            self.writer.flush()  # its first record written now: a file it cannot write is said here, once
        except OSError as e:  # a full disk, a file-size limit: one line, before any step
            self.close()
            raise Pix2PixError(f"{self.path / 'tensorboard'}: cannot write TensorBoard's log ({e.strerror or e}); "
                               "free some space and run again (--resume for a run)") from None

    def close(self) -> None:
        if self.writer is not None:
            try:
                self.writer.close()
            except OSError:  # said already, where it first failed
                pass
            self.writer = None
        _quiet_tensorboard_threads(False)

    def log(self, step: int, epoch: int, lr: float, images_per_s: float, means: dict[str, float]) -> None:
        """One log interval: a row of losses.csv and the same scalars in TensorBoard."""
        for k, v in means.items():
            self.writer.add_scalar(f"loss/{k}", v, step)
        self.writer.add_scalar("lr", lr, step)
        self.writer.add_scalar("images_per_s", images_per_s, step)
        row = {"step": step, "epoch": epoch, "lr": lr, "images_per_s": round(images_per_s, 3)} \
            | {k: round(v, 6) for k, v in sorted(means.items())}
        with self.losses.open("a", newline="") as f:
            out = csv.DictWriter(f, fieldnames=list(row))
            if f.tell() == 0:
                out.writeheader()
            out.writerow(row)

    def log_val(self, step: int, epoch: int, metrics: dict[str, float]) -> dict[str, float]:
        """One validation: a row of val.csv and its scores in TensorBoard (``val/l1``, ...); returns the scores
        as recorded (rounded), so that what is said of them agrees with the file. A val.csv written with other
        columns (by an older version) is rewritten with these."""
        scores = {k: round(float(metrics[k]), 6) for k in VAL_FIELDS[2:-2] if k in metrics}
        for k, v in scores.items():
            self.writer.add_scalar(f"val/{k}", v, step)
        # images: the val set scored (the first K of the split; an unreadable one among them is left out)
        row = {"step": step, "epoch": epoch, **scores, "images": int(metrics.get("images", metrics["count"])),
               "seconds": metrics["seconds"]}
        header = ""
        if self.val.exists():
            with self.val.open(newline="") as f:
                header = f.readline().strip()
        if header and header.split(",") != list(VAL_FIELDS):  # an older version's columns: rewritten whole
            with self.val.open(newline="") as f:
                old = list(csv.DictReader(f))
            write_text(self.val, _csv_text(list(VAL_FIELDS), old + [row]))
            return scores
        with self.val.open("a", newline="") as f:
            out = csv.DictWriter(f, fieldnames=list(VAL_FIELDS), restval="", extrasaction="ignore")
            if not header:
                out.writeheader()
            out.writerow(row)
        return scores

    def sample(self, step: int, title: str, real_A: torch.Tensor, fake_B: torch.Tensor, real_B: torch.Tensor) -> None:
        """(C, H, W) input, output and target of one step: in TensorBoard side by side when they are images of
        one channel count, and as PNGs on the web page of every step's samples (rewritten, newest first; data of
        other channel counts as :func:`pix2pix.data.rasters.preview` pictures)."""
        if real_A.shape[0] == real_B.shape[0] and real_A.shape[0] in (1, 3, 4):
            self.writer.add_image("samples/input_output_target", (torch.cat([real_A, fake_B, real_B], 2) + 1) / 2,
                                  step)
        tag = f"step{step:08d}"
        for name, img in zip(SAMPLE_NAMES, (real_A, fake_B, real_B)):
            picture = preview(img)
            atomic_write(self.web / "images" / f"{tag}_{name}.png", lambda tmp: picture.save(tmp, "PNG"))
        self.write_page(title, curves=time.monotonic() - self.curves_drawn >= CURVES_EVERY_S)

    def write_page(self, title: str, curves: bool = True) -> None:
        """The samples page: the curves (redrawn with ``curves``), the validations, then every step's samples."""
        if curves:
            self.draw_curves()
        steps = sorted({p.name.split("_")[0] for p in (self.web / "images").glob("step*_output.png")},
                       reverse=True)
        rows = [(f"step {int(s[4:])}", [(n, f"images/{s}_{n}.png") for n in SAMPLE_NAMES]) for s in steps]
        plot = f"<img class=plot src='{self.curves.name}' alt='loss and validation curves'>" \
            if self.curves.exists() else ""
        write_page(self.web / "index.html", title, rows, intro=plot + self._val_table())

    def draw_curves(self) -> Path | None:
        """The losses (losses.csv) and validation scores (val.csv) so far, side by side in ``web/curves.png``."""
        losses, vals = read_log(self.losses), read_log(self.val)
        points = lambda rows, key: [(r["step"], r[key]) for r in rows if key in r]  # noqa: E731
        panels = [("generator's L1 term (x lambda)", {"G L1": points(losses, "G_l1")}),
                  ("adversarial terms", {"D": points(losses, "D"), "G GAN": points(losses, "G_gan")}),
                  ("validation L1 (lower is better)", {"val L1": points(vals, "l1")})]
        self.curves_drawn = time.monotonic()
        return line_panels(self.curves, panels)

    def _val_table(self) -> str:
        """The validations so far (val.csv), newest first, as an HTML table for the samples page."""
        rows = read_log(self.val)
        if not rows:
            return ""
        columns = [k for k in VAL_COLUMNS if any(k in r for r in rows)]
        head = "".join(f"<th>{VAL_COLUMNS[k][0]}</th>" for k in columns)
        cells = "".join("<tr>" + "".join(f"<td>{format(r[k], VAL_COLUMNS[k][1]) if k in r else ''}</td>"
                                         for k in columns) + "</tr>" for r in reversed(rows[-20:]))
        return f"<table class=kv><tr>{head}</tr>{cells}</table>"

    def truncate_log(self, step: int) -> None:
        """Drop rows of losses.csv and val.csv past ``step`` (after a resume they are from a future that was lost)
        and rows that cannot be read (a row cut short by a crash or a full disk), saying how many of those went."""
        for path in (self.losses, self.val):
            _truncate(path, step)


def _quiet_tensorboard_threads(on: bool) -> None:
    """TensorBoard writes in a thread of its own, and an OSError there (a full disk) would print that thread's
    traceback; the writer raises the same error in the training thread at its next call, where it is said in
    one line. While a run writes, this hook keeps the first one quiet."""
    if on and threading.excepthook is not _hook:
        _previous_hooks.append(threading.excepthook)
        threading.excepthook = _hook
    elif not on and threading.excepthook is _hook:
        threading.excepthook = _previous_hooks.pop()


_previous_hooks: list = []


def _hook(args) -> None:
    if type(args.thread).__name__ == "_AsyncWriterThread" and isinstance(args.exc_value, OSError):
        return
    _previous_hooks[-1](args)


def _truncate(path: Path, step: int) -> None:
    """Rewrite ``path`` (whole, atomically: a kill or a full disk leaves the old file) without rows past ``step``
    and unreadable rows; a file that needs neither is not touched."""
    bad: list[int] = []
    rows = read_log(path, bad)
    if bad:
        log.warning(f"{path}: dropped {len(bad)} unreadable row{'s' * (len(bad) > 1)} (lines "
                    f"{', '.join(map(str, bad))}: cut short by a crash or a full disk?)")
    if bad or (rows and rows[-1]["step"] > step):
        kept = [r for r in rows if r["step"] <= step]
        with path.open(newline="") as f:
            fields = next(csv.reader(f), None) or list(kept[0] if kept else [])
        write_text(path, _csv_text(fields, [{k: (int(v) if k in ("step", "epoch") else v) for k, v in r.items()}
                                            for r in kept]) if kept else "")


def _csv_text(fields: list[str], rows: list[dict]) -> str:
    buffer = io.StringIO(newline="")
    out = csv.DictWriter(buffer, fieldnames=fields, restval="", extrasaction="ignore")
    out.writeheader()
    out.writerows(rows)
    return buffer.getvalue()


def read_log(path: Path, bad: list[int] | None = None) -> list[dict[str, float]]:
    """The rows of a run's ``losses.csv`` (step, epoch, lr, images_per_s and each loss term) or ``val.csv``, as
    numbers. A row that is not numbers, or is short of fields, is skipped (its line number goes into ``bad``);
    a blank cell (in val.csv, a score that was not computed) is left out of its row."""
    if not path.exists():
        return []
    rows = []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        for row in reader:
            try:
                if None in row or None in row.values():
                    raise ValueError("the row's field count")
                rows.append({k: float(v) for k, v in row.items() if v != ""})
            except ValueError:
                if bad is not None:
                    bad.append(reader.line_num)
    return rows
