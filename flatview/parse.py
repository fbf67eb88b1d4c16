"""The line stage: one dump line in, one typed line record out.

Every distinct line is parsed once (a memo keyed by the line text): QEMU dumps repeat
the same lines many times (one tree per address space before QEMU 7.0, the same
``memory-region:`` sections), so a dump of 300,000 lines holds only a few thousand
distinct ones.  Plain region lines, nearly all of a dump, are read by a fast path;
every other line goes through the lark grammar (:mod:`flatview.linegrammar`, the only
module that knows its rule names, imported only when a line needs it).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

from .errors import SourceError, SourceLocation
from .model import Owner

__all__ = [
    "DispatchLine",
    "FlatViewASLine",
    "FlatViewRootLine",
    "Heading",
    "LineRecord",
    "NoRenderedLine",
    "Owner",
    "RangeLine",
    "parse_line",
]

U64 = 1 << 64


class Heading(NamedTuple):
    """A heading: ``address-space:``, ``memory-region:``, ``address-space (flat view):``,
    ``FlatView #n``."""

    kind: str  # "address-space" | "memory-region" | "flat-address-space" | "flatview"
    name: str


class FlatViewASLine(NamedTuple):
    """`` AS "name", root: X[, alias Y]`` inside a ``FlatView #n`` block."""

    name: str
    root: str
    root_alias: str | None


class FlatViewRootLine(NamedTuple):
    """`` Root memory region: X`` (``None`` for ``(none)``, the shared empty view)."""

    name: str | None


class NoRenderedLine(NamedTuple):
    """``  No rendered FlatView`` (F3) or ``... for address space 'X'`` (F1)."""

    address_space: str | None


class DispatchLine(NamedTuple):
    """A line of the ``-d`` dispatch dump, kept as text."""

    text: str


class RangeLine(NamedTuple):
    """A region line of a tree, or a range line of a flat view (they share one syntax)."""

    indent: int  # number of spaces before the address
    start: int
    end: int
    priority: int
    type: str  # "ram", "ramd", "rom", "romd", "i/o", "container", or "RW"/"R-"/"-W"/"--"
    nonvolatile: bool
    name: str
    overflow: str | None = None  # "before" or "after" the indentation, None if absent
    alias_target: str | None = None
    alias_start: int | None = None
    alias_end: int | None = None
    offset: int | None = None  # ` @offset` of a flat range
    disabled: bool = False
    owner: Owner | None = None
    accel: tuple[str, ...] = ()
    hex_prefix: bool = False  # addresses printed with 0x (patched builds)

    @property
    def is_alias(self) -> bool:
        return self.alias_target is not None

    @property
    def size(self) -> int:
        """Size decoded from the printed inclusive end (``int128_get64`` of MR_SIZE + 1).

        ``end - start + 1`` modulo 2^64; 0 there means exactly 2^64.  A printed ``X-X`` is
        size 1 or size 0, which the text cannot tell apart (size 1 is returned).
        """
        size = (self.end - self.start + 1) % U64
        return size or U64


LineRecord = Heading | FlatViewASLine | FlatViewRootLine | NoRenderedLine | DispatchLine | RangeLine


def parse_line(
    text: str, where: SourceLocation | str = "-", lineno: int | None = None
) -> LineRecord:
    """Parse one cleaned dump line; raise SourceError at ``where`` (a location, or a file
    name and ``lineno``) on failure.  The location is built only when there is an error."""
    rec = _parse_cached(text)
    if isinstance(rec, str):
        raise SourceError(_loc(where, lineno), rec, text)
    return rec


def _loc(where: SourceLocation | str, lineno: int | None) -> SourceLocation:
    return where if isinstance(where, SourceLocation) else SourceLocation(where, lineno)


@lru_cache(maxsize=1 << 16)
def _parse_cached(text: str) -> LineRecord | str:
    """A line's record, or why it is not a dump line (a bad line repeats: its reason is
    memoised too)."""
    fast = _fast(text)
    if fast is not None:
        return fast
    from .linegrammar import parse_or_explain  # lark: only for what the fast path leaves

    return parse_or_explain(text)


# A fast path for the lines that make up nearly all of a dump: a region or range line
# with no overflow marker, no 0x and nothing after the name (or an alias line with
# nothing after its target window), and the two tree headings.  Each expression accepts
# a strict subset of what the grammar accepts and gives the same record as lark does
# (tests/test_parse.py checks every line of every sample both ways); any other line,
# and every error, goes through lark.  A 3,000-line dump has ~3,000 distinct lines and
# lark's LALR parser costs tens of microseconds each.
_FAST_RANGE = re.compile(
    r"( +)([0-9a-f]{16})-([0-9a-f]{16}) \(prio (-?[0-9]{1,10}), "
    r"(nv-)?(ramd|ram|romd|rom|i/o|container|[R-][W-])\): ([^\n]+)"
)
# a body the grammar's NAME takes whole: no suffix QEMU appends can start in it (a
# bracket may: vfio-pci's "<bdf> BAR 1 mmaps[0]" is most of an assigned device's lines)
_FAST_NAME = re.compile(
    r"(?!alias )(?![^\n]* (?:KVM|kvm))(?![^\n]* \[disabled\])[^@{}\n]+(?<! orphan)"
)
_FAST_ALIAS = re.compile(r"alias ([^\n]+?) @([^\n]+?) ([0-9a-f]{16})-([0-9a-f]{16})")
_FAST_HEADING = re.compile(r"(address-space|memory-region): ([^\n]+)")
_FAST_OFFSET = re.compile(r"([^\n]+) @([0-9a-f]{16})")  # a flat range's offset_in_region
# the FlatView block of `info mtree -f` (QEMU >= 2.11)
_FAST_FLATVIEW = re.compile(r"FlatView #([0-9]+)")
_FAST_AS = re.compile(r' AS "([^"\n]+)", root: ([^\n]+?)(?:, alias ([^\n]+))?')
_FAST_ROOT = re.compile(r" Root memory region: ([^\n]+)")
_FAST_NO_VIEW = re.compile(r"  No rendered FlatView(?: for address space '([^\n]+)')?")


def _fast(text: str) -> LineRecord | None:
    m = _FAST_RANGE.fullmatch(text)
    if m is None:
        return _fast_heading(text)
    indent, start, end, prio, nv, type_, body = m.groups()
    priority = int(prio)
    if not -(1 << 31) <= priority < 1 << 31:
        return None  # lark's transformer says why (a C int, as QEMU prints it)
    # positional, in RangeLine's field order: a dict of keywords per line cost more
    head = (len(indent), int(start, 16), int(end, 16), priority, type_, nv is not None)
    if _FAST_NAME.fullmatch(body):
        return RangeLine(*head, body)
    o = _FAST_OFFSET.fullmatch(body)
    if o is not None and _FAST_NAME.fullmatch(o[1]):
        return RangeLine(*head, o[1], offset=int(o[2], 16))
    a = _FAST_ALIAS.fullmatch(body)
    if a is None:
        return None
    return RangeLine(
        *head, a[1], alias_target=a[2], alias_start=int(a[3], 16), alias_end=int(a[4], 16)
    )


def _fast_heading(text: str) -> LineRecord | None:
    h = _FAST_HEADING.fullmatch(text)
    if h is not None:
        return Heading(h[1], h[2])
    h = _FAST_AS.fullmatch(text)
    if h is not None:
        return FlatViewASLine(h[1], h[2], h[3])
    h = _FAST_FLATVIEW.fullmatch(text)
    if h is not None:
        return Heading("flatview", h[1])
    h = _FAST_ROOT.fullmatch(text)
    if h is not None:
        return FlatViewRootLine(None if h[1] == "(none)" else h[1])
    h = _FAST_NO_VIEW.fullmatch(text)
    if h is not None:
        return NoRenderedLine(h[1])
    return None
