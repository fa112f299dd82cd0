"""The ``pix2pix`` command: a thin layer that parses flags and calls the library, one module per group of
subcommands (``train`` and ``bench``; ``test``, ``translate``, ``export``, ``serve``, ``models``; ``datasets``
and ``demo``; ``segmenter``, ``eval``, ``ablate``).

Errors a user can cause arrive as :class:`Pix2PixError`; they are printed as one line and exit with 2.
"""

from __future__ import annotations

import argparse
import errno
import logging
import sys

from ..errors import Pix2PixError
from . import data, evaluate, serve, train


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not usage + error
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


# The commands as the top-level help lists them: the main job first, then by what they are for.
GROUPS = {
    "train and use": ("demo", "train", "test", "translate", "export", "pretrained", "models", "bench"),
    "data": ("datasets",),
    "evaluate": ("eval", "segmenter", "ablate"),
    "app": ("serve",),
}
EXAMPLES = """examples:
  pix2pix demo                                          # the main job: make data, train 8 minutes, a page
  pix2pix datasets check DATA                           # what a dataset holds and what is wrong with it
  pix2pix train --data DATA --preset cpu --minutes 30   # a CPU-sized model in the time given
  pix2pix train --data DATA --preset facades            # the paper's recipe (a GPU's)
  pix2pix test --run runs/NAME --checkpoint best        # translate and score the test split
  pix2pix translate --checkpoint runs/NAME --input photos/ --output out/
  pix2pix serve --checkpoint runs/NAME                  # the app: draw and translate in a browser
  pix2pix export --checkpoint runs/NAME --out model.onnx
  pix2pix export --checkpoint runs/NAME --format web --out site/   # the app as a static site, no server

'pix2pix COMMAND --help' says what a command takes."""


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = _Parser(prog="pix2pix", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
                     usage="pix2pix [-h] [--version] COMMAND ...")
    parser.add_argument("--version", action="version", version=f"pix2pix {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", help=argparse.SUPPRESS,
                                prog="pix2pix")  # the commands' usage lines: "pix2pix train ...", not ours
    for group in (train, serve, data, evaluate):
        group.add_commands(sub)
    helps = {a.dest: a.help for a in sub._choices_actions}
    listed = [name for names in GROUPS.values() for name in names]  # every command (tests/test_cli.py)
    width = max(map(len, listed)) + 2
    parser.description = "Image-to-image translation with conditional adversarial networks (Isola et al., CVPR " \
        "2017).\n\n" + "\n\n".join(f"{title}:\n" + "\n".join(f"  {n:<{width}}{helps[n]}" for n in names)
                                      for title, names in GROUPS.items())
    for name, p in sub.choices.items():  # a command without a description of its own says its summary
        p.description = p.description or helps[name][0].upper() + helps[name][1:] + "."
    return parser


class _Say(logging.Handler):
    """The library's log records as the command's own lines (whatever sys.stdout and sys.stderr are now): what
    it is doing on stdout, warnings on stderr as ``warning: ...`` (so that stderr holds only what went wrong)."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm  # through tqdm: a line said while a progress bar runs goes above the bar

        if record.levelno >= logging.WARNING:
            tqdm.write("warning: " + record.getMessage(), file=sys.stderr)
        else:
            tqdm.write(record.getMessage(), file=sys.stdout)
            sys.stdout.flush()


def _say_library_logs() -> None:
    logger = logging.getLogger("pix2pix")
    if not any(isinstance(h, _Say) for h in logger.handlers):
        logger.addHandler(_Say())
    logger.setLevel(logging.INFO)
    logger.propagate = False


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    _say_library_logs()
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return args.func(args)
    except Pix2PixError as e:
        print(f"pix2pix: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pix2pix: interrupted", file=sys.stderr)
        return 130
    except OSError as e:  # a full disk anywhere not already said in our words: one line naming the file
        if e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise
        print(f"pix2pix: error: {e.filename or 'a file'}: no space left on the device; free some space and "
              "run again", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
