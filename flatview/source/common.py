"""What every part of the clean-up shares: the kinds of change it counts, the patterns
of the lines QEMU prints, and the runs it returns (:class:`Segment`, :class:`Cleaned`)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

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
DUMP_LINE = (
    r"(?:address-space(?: \(flat view\))?: |memory-region: |FlatView #\d| AS \""
    r"| Root memory region: |  No rendered FlatView|  Dispatch$|    Physical sections$"
    r"|      #\d+ @|    Nodes \(|      \[\d+\]$|\t[ \d.]+ skip="
    r"|(?:\[DETECTED OVERFLOW!\] )? +(?:\[DETECTED OVERFLOW!\] )?"
    r"(?:(?:0x)?[0-9a-f]{16}-|\S{8,24}-\S* \(prio |(?:0x)?[0-9a-fA-F]{17,}-))"
)
IS_DUMP = re.compile(DUMP_LINE)
PROMPT = re.compile(r"^\(qemu\)")
# A prompt with the command typed after it (a capture bundle, a pasted monitor session).
PROMPT_COMMAND = re.compile(r"^\(qemu\) ?(?P<command>.*)$")
DISPATCH_TAB = re.compile(r"^\t[ \d.]+ skip=")
# Control characters no dump line holds (tab, LF, FF and CR are handled as text).
CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")

# What a line is, read without its indentation: (kind, the column QEMU prints it at).
HEADING = re.compile(r"(?:address-space(?: \(flat view\))?: |memory-region: |FlatView #\d)")
FIXED = re.compile(
    r"(?P<as>AS \")|(?P<root>Root memory region: )|(?P<norend>No rendered FlatView)"
    r"|(?P<disp>Dispatch$)|(?P<phys>Physical sections$)|(?P<sect>#\d+ @)|(?P<nodes>Nodes \()"
    r"|(?P<node>\[\d+\]$)"
)
FIXED_COL = {"as": 1, "root": 1, "norend": 2, "disp": 2, "phys": 4, "sect": 6, "nodes": 4}
FIXED_COL["node"] = 6
OVF = "[DETECTED OVERFLOW!] "
# A dispatch node entry (mtree_print_phys_entries: "\t%3d..%-4d  skip=%d  ptr=...")
ENTRY = re.compile(r"\d+(?:\.\.\d+)? +skip=\d+ +ptr=")
ENTRY_COL = 8
RANGE = re.compile(r"(?:(?:0x)?[0-9a-f]{16}-|\S{8,24}-\S* \(prio |(?:0x)?[0-9a-fA-F]{17,}-)")
# A line cut inside its first address (only inside a run: a lone hex number is prose).
CUT_ADDR = re.compile(r"(?:0x)?[0-9a-f]{9,}-?$")
ELISION = re.compile(
    r"^(?:\.{3,}|…|\[\s*(?:\.{3,}|…)[^\]]*\]|<\s*snip[^>]*>|\[\s*snip[^\]]*\]|-+\s*snip\s*-+"
    r"|(?:\.{3,}|…)\s.*|\(\s*(?:\.{3,}|…)[^)]*\)|<\s*(?:\.{3,}|…)\s*>)$",
    re.IGNORECASE,
)
FENCE = re.compile(r"^(?:```|~~~)")
ADDR32 = re.compile(r"()([0-9a-f]{8})-([0-9a-f]{8})( \(prio )")
ADDR32_ALIAS = re.compile(r"(\): alias .* @\S+ )([0-9a-f]{8})-([0-9a-f]{8})((?: \[disabled\])?$)")
EMBEDDED = re.compile(r"(?:0x)?[0-9a-f]{16}-(?:0x)?[0-9a-f]{16} \(prio -?\d+, ")
SHARED = re.compile(r"address-space shared \d+ times:$")
SHARED_ITEM = re.compile(r" *- (\S.*)$")
# A joined line must still read as a complete region or heading line.
FULL_RANGE = re.compile(
    r"^(?:\[DETECTED OVERFLOW!\] )? +(?:\[DETECTED OVERFLOW!\] )?"
    r"(?:0x)?[0-9a-f]{16}-(?:0x)?[0-9a-f]{16} \(prio -?\d+, [a-zA-Z/-]+\): \S"
)
ALIAS_START = re.compile(r"\): alias(?: |$)")
FULL_ALIAS = re.compile(r"\): alias .* @\S+ (?:0x)?[0-9a-f]{16}-(?:0x)?[0-9a-f]{16}")
# A line was wrapped if the first word of the next would not have fitted: mail clients
# fold at 72-80 columns (and quote after, so the quote counts too).
REJOIN_MIN_WIDTH = 64
REJOIN_MAX_TAIL = 32  # and the wrapped-off tail is short (a name's end, ` @offset`)
# ... or the suffixes QEMU appends to a region line (the whole tail is made of them; the
# last ``owner:{``/``parent:{`` may be cut open, QEMU 10's ``owner:{...} parent:{dev path=``
# folding over three lines: the rest follows, as _cut_short says)
SUFFIX_TAIL = re.compile(
    r"^(?:@(?:0x)?[0-9a-f]{16} ?)?(?:\[disabled\] ?)?(?:(?:owner|parent):\{[^{}]*(?:\} ?|$))*"
    r"(?:orphan ?)?(?:(?:KVM|kvm(?::[a-z]+)*) ?)*$"
)
SUFFIX_START = re.compile(
    r"(?:^| )(?:@(?:0x)?[0-9a-f]{16}|\[disabled\]|owner:\{|parent:\{|orphan$|KVM$|kvm(?::[a-z]+)*$)"
)
# Quoted-printable: an escape of a byte (=20, =3D, =A0, =C2=A0) or a soft line break
QP_ESCAPE = re.compile(r"=([0-9A-F]{2})")
QP_HINT = re.compile(r"=(?:20|3D|A0|C2|09|0D)(?![0-9A-Za-z])|=$", re.MULTILINE)
DIFF_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+\d+(?:,\d+)? @@")
DIFF_HEADER = re.compile(r"^(?:--- |\+\+\+ |diff |index [0-9a-f]|\\ No newline)")


@dataclass(frozen=True, slots=True)
class Segment:
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


@dataclass(frozen=True, slots=True)
class Cleaned:
    """The runs of a text and what clean-up did to get them: lines per kind of change."""

    segments: tuple[Segment, ...]
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def skipped(self) -> int:
        """Lines dropped as elisions or prose (prompts, fences, diff headers included)."""
        return sum(self.counts.get(k, 0) for k in DROPPED)
