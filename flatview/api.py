"""The library facade: one obvious entry point per stage (as python-hcl2's ``api.py``).

    dumps = flatview.api.load("dump.txt")          # text -> clean-up -> parse -> model
    result = flatview.api.flatten(dumps[0])         # model -> FlatViews (+ guesses)
    report = flatview.api.check(tree, flat)         # recomputed vs QEMU's own -f

Every function raises only :class:`~flatview.errors.FlatviewError` subclasses.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

from .build import read_dumps
from .check import CheckReport, compare
from .errors import SourceError, SourceLocation, UsageError
from .flatten import FlattenResult
from .flatten import flatten as _flatten
from .model import Dump, FlatDump, MtreeDump
from .terminates import Knowledge

__all__ = ["check", "flatten", "load", "parse_text", "read_text", "split_kinds"]


def read_text(path: str) -> str:
    """Read a file (``-`` for standard input) as text; binary input is an input error."""
    try:
        data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise SourceError(SourceLocation(path, line), "not UTF-8 text (binary data?)") from None


def parse_text(text: str, name: str = "-") -> list[Dump]:
    """Every dump in a text, in order (pasted mail, monitor output, files)."""
    return read_dumps(text, name)


def load(path: str) -> list[Dump]:
    return parse_text(read_text(path), path)


def split_kinds(dumps: Iterable[Dump]) -> tuple[list[MtreeDump], list[FlatDump]]:
    trees = [d for d in dumps if isinstance(d, MtreeDump)]
    flats = [d for d in dumps if isinstance(d, FlatDump)]
    return trees, flats


def flatten(tree: MtreeDump, flats: Iterable[FlatDump] = ()) -> FlattenResult:
    """Recompute the FlatViews of a tree; QEMU's own flat views of the same machine, when
    given, teach which regions terminate (see flatview.terminates)."""
    return _flatten(tree, Knowledge.for_dump(tree, flats))


def check(tree: MtreeDump, flat: FlatDump, learn: bool = True) -> CheckReport:
    """Compare the FlatViews recomputed from ``tree`` with QEMU's printed ``flat``."""
    result = flatten(tree, [flat] if learn else [])
    return compare(result, flat)
