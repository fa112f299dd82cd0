"""``python -m pix2pix.training.torchrun ARGS``: torchrun as ``pix2pix train --nproc N`` starts it, whose stop by a
signal (a scheduler's SIGTERM, Ctrl-C) ends in the shells' exit status, 128 + the signal, rather than in its own
traceback: by then the training processes have stopped at one step, saved it and said so."""

from __future__ import annotations

import sys

if __name__ == "__main__":
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.run import main

    try:
        main()
    except SignalException as e:
        sys.exit(128 + int(e.sigval))
