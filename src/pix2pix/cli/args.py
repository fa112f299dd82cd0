"""Argument types and the flags several subcommands share."""

from __future__ import annotations

import argparse

from ..config import DEVICES


def _number(kind, allow_zero: bool = False):
    """An argparse type: a number of ``kind`` that is > 0 (or >= 0 with ``allow_zero``)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
        if value < 0 or (value == 0 and not allow_zero):
            raise argparse.ArgumentTypeError(f"must be {'>=' if allow_zero else '>'} 0, not {text}")
        return value
    return parse


def positive(kind):
    return _number(kind)


def non_negative(kind):
    return _number(kind, allow_zero=True)


def add_device(p: argparse.ArgumentParser, default: str = "auto", choices=DEVICES) -> None:
    p.add_argument("--device", default=default, choices=choices, help=f"default {default}")


def add_no_fast(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-fast", dest="fast", action="store_false",
                   help="fp32 outputs bit for bit (default: the fast path, bf16 where the device has it)")
