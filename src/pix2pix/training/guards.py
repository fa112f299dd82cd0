"""What watches a run without being part of its step: stop requests (signals and the time cap) read at a step
boundary, finite checks, the collapse watch, and the one-line messages for what a user can fix.

Signals are flags, never exceptions: SIGTERM (a scheduler, ``docker stop``, pre-emption) and Ctrl-C set
:attr:`StopRequests.reason`, and the loop reads it between two steps, so whatever it saves is a whole step. A
second Ctrl-C is a user who wants out now: it raises KeyboardInterrupt (what was saved before stays good, since
every file is written atomically).
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time

import torch
from torch import nn

from ..errors import Pix2PixError

log = logging.getLogger(__name__)

SIGNALS = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "SIGINT"}


class StopRequests:
    """``with StopRequests() as stop:`` catches SIGTERM and SIGINT as flags (only in the main thread, where
    signals can be caught) from the moment a run starts being built; :meth:`start_clock` starts the time cap with
    the first step; :meth:`reason` says why the run should stop now."""

    def __init__(self) -> None:
        self.signal: str | None = None
        self.deadline = math.inf
        self._previous: dict = {}

    def start_clock(self, max_minutes: float | None) -> None:
        self.deadline = time.perf_counter() + 60 * max_minutes if max_minutes else math.inf

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._caught)
        return self

    def __exit__(self, *exc) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, signal.SIG_DFL if previous is None else previous)  # None: set from C
        self._previous.clear()

    def _caught(self, signum, frame) -> None:
        if signum == signal.SIGINT and self.signal == "SIGINT":
            raise KeyboardInterrupt  # the second Ctrl-C
        self.signal = self.signal or SIGNALS[signum]

    def reason(self) -> str | None:
        """"SIGTERM", "SIGINT", "max_minutes" or None, in that order."""
        if self.signal:
            return self.signal
        return "max_minutes" if time.perf_counter() > self.deadline else None


def stopped_by_signal(e: BaseException, stop: StopRequests) -> bool:
    """Whether an error from the data loader is a signal's doing: a scheduler's SIGTERM that reached the loader
    processes too, or Ctrl-C in a terminal (which every process of the group gets). Either way the main process
    is between two steps, and stops there."""
    said = str(e)
    if "killed by signal: Terminated" in said:
        stop.signal = stop.signal or "SIGTERM"
        return True
    if "killed by signal: Interrupt" in said or ("exited unexpectedly" in said and stop.signal):
        stop.signal = stop.signal or "SIGINT"
        return True
    return False


def first_non_finite(nets: list[nn.Module | None]) -> str | None:
    """What is not finite in the networks (parameters and buffers, batch-norm statistics among them), or None."""
    for net in nets:
        if net is None:
            continue
        for kind, named in (("weight", net.named_parameters()), ("buffer", net.named_buffers())):
            tensors = [(n, t) for n, t in named if t.is_floating_point()]
            if tensors and not bool(torch.stack([t.detach().isfinite().all() for _, t in tensors]).all()):
                name = next(n for n, t in tensors if not bool(t.detach().isfinite().all()))
                return f"a {kind} is not finite ({name})"
    return None


def non_finite_loss(means: dict[str, float]) -> str | None:
    return next((f"the {k} loss is {v}" for k, v in means.items() if not math.isfinite(v)), None)


def diverged(step: int, what: str, saved: bool) -> Pix2PixError:
    kept = "latest keeps the last save before it" if saved else "no checkpoint was written"
    return Pix2PixError(f"training diverged at step {step}: {what} ({kept}); lower --lr, or check the data")


class CollapseWatch:
    """Warns once each, with what to try, when D has won (its loss under 1e-3) or G's output has stopped varying
    (its standard deviation under 1e-3), for five log intervals running."""

    RUNS = 5

    def __init__(self) -> None:
        self.counts = {"D": 0, "G": 0}
        self.said: set[str] = set()

    def see(self, step: int, means: dict[str, float], fake: torch.Tensor) -> list[str]:
        """The warnings this log interval raises (each at most once a run)."""
        self.counts["D"] = self.counts["D"] + 1 if "D" in means and means["D"] < 1e-3 else 0
        self.counts["G"] = self.counts["G"] + 1 if float(fake.float().std()) < 1e-3 else 0
        hints = {"D": f"D's loss has stayed under 1e-3 for 5 logs (step {step}): the discriminator has won and G "
                      "learns nothing from it; check that A and B are paired and aligned, or try --gan-loss lsgan, "
                      "a smaller --ndf, or --lr lower for a fresh run",
                 "G": f"G's outputs have stopped varying for 5 logs (step {step}), e.g. all black; check the data "
                      "(empty or constant targets?), or lower --lr"}
        new = [k for k in ("D", "G") if self.counts[k] >= self.RUNS and k not in self.said]
        self.said |= set(new)
        return [hints[k] for k in new]


def out_of_memory(e: BaseException) -> bool:
    return isinstance(e, torch.OutOfMemoryError) or "can't allocate memory" in str(e) or "out of memory" in str(e)


def too_big(batch_size: int, crop_size: int, device: torch.device) -> Pix2PixError:
    return Pix2PixError(f"batch {batch_size} at {crop_size}x{crop_size} does not fit in {device} memory; lower "
                        "--batch-size or --crop-size, or use a smaller --generator")


def bad_image_hint(problem: str, count: int) -> str:
    more = f" ({count} problems; 'pix2pix datasets check DIR' lists them all)" if count > 1 else ""
    return f"{problem}{more}; fix or remove it, or pass --skip-bad-images"
