"""What every part of the clean-up shares: the kinds of change it counts, the patterns
of the lines QEMU prints, and the runs it returns (:class:`Segment`, :class:`Cleaned`).
Patterns only the line forms or the whole-text forms use live in :mod:`.lines` and
:mod:`.text`, imported only for a text that is not a dump as QEMU printed it (compiling
them cost more than cleaning a 3,000-line dump)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

DROPPED = ("elision", "prose", "prompt", "fence", "diff-header")
REWRITTEN = (
    "bom",
    "qmp",
    "quoted-printable",
    "diff",
    "quote",
    "tabs",
    "nbsp",
    "indent",
    "rejoin",
    "old-format",
)
KINDS = DROPPED + REWRITTEN

# One or more '>' each optionally followed by one space: the prefix mail clients add.
QUOTE = re.compile(r"^(?:> ?)+")
# The quote markers alone, up to the last '>': what follows (its spaces too) is the text,
# whose margin is learnt from its headings (`>address-space:` and `> address-space:`).
QUOTE_MARKS = re.compile(r"^>(?: ?>)*")

# The start of every line QEMU prints in `info mtree [-f] [-d] [-o] [-D]` output.  A
# region line is recognised loosely (a long run of letters and digits, then '-') so a
# mangled address still reaches the grammar and gets a precise error.
RANGE_START = r"(?:(?:0x)?[0-9a-f]{16}-|\S{8,24}-\S* \(prio |(?:0x)?[0-9a-fA-F]{17,}-)"
DUMP_LINE = (
    r"(?:address-space(?: \(flat view\))?: |memory-region: |FlatView #\d| AS \""
    r"| Root memory region: |  No rendered FlatView|  Dispatch$|    Physical sections$"
    r"|      #\d+ @|    Nodes \(|      \[\d+\]$|\t[ \d.]+ skip="
    r"|(?:\[DETECTED OVERFLOW!\] )? +(?:\[DETECTED OVERFLOW!\] )?" + RANGE_START + ")"
)
IS_DUMP = re.compile(DUMP_LINE)
# Control characters no dump line holds (tab, LF, FF and CR are handled as text).
CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")

# A heading: QEMU prints it in column 0 (the fast path checks the text starts with one).
HEADING = re.compile(r"(?:address-space(?: \(flat view\))?: |memory-region: |FlatView #\d)")
# Quoted-printable: a hint of an escape of a byte (=20, =3D, =A0, =C2=A0) or a soft line
# break (the whole-text check before the decoder in text.py is loaded)
QP_HINT = re.compile(r"=(?:20|3D|A0|C2|09|0D)(?![0-9A-Za-z])|=$", re.MULTILINE)


class Segment(NamedTuple):
    """A run of cleaned dump lines (blank lines included) with their original numbers.

    ``part`` is ``"before"``/``"after"`` for the sides of a diff paste; ``elided`` says
    lines of the run were elided by whoever pasted it (what it holds is partial)."""

    lines: tuple[str, ...]
    linenos: Sequence[int]  # a range when the lines are the input's lines one for one
    quote_depth: int = 0
    part: str | None = None
    elided: bool = False

    @property
    def start_line(self) -> int:
        return self.linenos[0]


class Cleaned(NamedTuple):
    """The runs of a text and what clean-up did to get them: lines per kind of change."""

    segments: tuple[Segment, ...]
    counts: dict[str, int]

    @property
    def skipped(self) -> int:
        """Lines dropped as elisions or prose (prompts, fences, diff headers included)."""
        return sum(self.counts.get(k, 0) for k in DROPPED)
