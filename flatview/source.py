"""Clean-up of pasted text, before any grammar sees it.

Users paste monitor output from terminals and mail: quoted with ``>``/``> >``/``>>`` at
any depth, wrapped at ~72 columns, with CRLF, tabs, trailing blanks, monitor prompts
and prose around the dumps.  :func:`segments` undoes all of that and returns each run of
dump lines as a :class:`Segment` whose every line keeps its original 1-based number.

Normalisations, each named and tested (tests/test_source.py):

* ``CR``: CRLF and lone CR line ends become LF.
* ``quote``: a mail quote prefix (``(> ?)+``) is removed; a change of depth ends a run.
* ``tabs``: tabs become spaces (8-column stops), except the one leading tab QEMU
  itself prints on ``-d`` dispatch node entries.
* ``trailing``: trailing blanks are removed.
* ``prompt``: a ``(qemu) ...`` monitor prompt line ends a run and is dropped.
* ``rejoin``: a short line that is not a dump line, directly after a long dump line at
  the same quote depth, is the tail a mail client wrapped off it: it is joined back with
  one space.  Two dump lines are never joined.
* ``prose``: any other line that is not a dump line ends a run and is dropped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import SourceError, SourceLocation

__all__ = ["CONTROL", "Segment", "monitor_part", "segments", "strip_quote", "unquote_lines"]

# One or more '>' each optionally followed by one space: the prefix mail clients add.
_QUOTE = re.compile(r"^(?:> ?)+")

# The start of every line QEMU prints in `info mtree [-f] [-d] [-o] [-D]` output.  A
# region line is recognised loosely (a long run of letters and digits, then '-'; or hex
# digits too many to be an address) so a mangled address still reaches the grammar and
# gets a precise error with its own line number.
_DUMP_LINE = (
    r"(?:address-space(?: \(flat view\))?: |memory-region: |FlatView #\d| AS \""
    r"| Root memory region: |  No rendered FlatView|  Dispatch$|    Physical sections$"
    r"|      #\d+ @|    Nodes \(|      \[\d+\]$|\t[ \d.]+ skip="
    r"|(?:\[DETECTED OVERFLOW!\] )? +(?:\[DETECTED OVERFLOW!\] )?"
    r"(?:(?:0x)?[0-9a-f]{16}-|\S{8,24}-\S* \(prio |(?:0x)?[0-9a-fA-F]{17,}-))"
)
_IS_DUMP = re.compile(_DUMP_LINE)
_PROMPT = re.compile(r"^\(qemu\)")
# A prompt with the command typed after it (a capture bundle, a pasted monitor session).
_PROMPT_COMMAND = re.compile(r"^\(qemu\) ?(?P<command>.*)$")
_DISPATCH_TAB = re.compile(r"^\t[ \d.]+ skip=")
# Control characters no dump line holds (tab, LF, FF and CR are handled as text).
CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
# A joined line must still read as a complete region or heading line.
_FULL_RANGE = re.compile(
    r"^ +(?:0x)?[0-9a-f]{16}-(?:0x)?[0-9a-f]{16} \(prio -?\d+, [a-zA-Z/-]+\): \S"
)
_REJOIN_MIN_PREV = 60  # a wrapped line was long: mail wraps at 72-80 columns
_REJOIN_MAX_TAIL = 32  # and the wrapped-off tail is short (a name's end, ` @offset`)
# ... or it is an alias line's offsets (with the suffixes that may follow them)
_ALIAS_TAIL = re.compile(
    r"^(?:0x)?[0-9a-f]{16}-(?:0x)?[0-9a-f]{16}( \[disabled\])?( \S+:\{[^}]*\})*$"
)


@dataclass(frozen=True, slots=True)
class Segment:
    """A run of cleaned dump lines (blank lines included) with their original numbers."""

    lines: tuple[str, ...]
    linenos: Sequence[int]  # a range when the lines are the input's lines one for one
    quote_depth: int = 0

    @property
    def start_line(self) -> int:
        return self.linenos[0]


def strip_quote(line: str) -> tuple[int, str]:
    """Remove a mail quote prefix; return (quote depth, rest of the line)."""
    m = _QUOTE.match(line)
    if not m:
        return 0, line
    return m.group(0).count(">"), line[m.end() :]


def unquote_lines(text: str) -> list[tuple[int, str]]:
    """Split ``text`` into (line number, line) with quoting, CR and trailing blanks removed.

    Tabs are kept: lspci indents with them.
    """
    out = []
    for no, raw in enumerate(text.splitlines(), 1):
        out.append((no, strip_quote(raw.rstrip())[1].rstrip()))
    return out


def check_text(text: str, file: str) -> None:
    """Reject binary junk, naming the line it is on."""
    m = CONTROL.search(text)
    if m:
        # number lines as segments() does: LF, CRLF and lone CR end a line, nothing else
        norm = text[: m.start()].replace("\r\n", "\n").replace("\r", "\n")
        lineno = norm.count("\n") + 1
        start = max(text.rfind("\n", 0, m.start()), text.rfind("\r", 0, m.start())) + 1
        ends = [i for i in (text.find("\n", m.start()), text.find("\r", m.start())) if i >= 0]
        line = text[start : min(ends) if ends else len(text)]
        raise SourceError(SourceLocation(file, lineno), "binary data, not a text dump", line)


def segments(text: str, file: str = "-") -> list[Segment]:
    """Return every run of dump lines in ``text``, cleaned (see the module docstring)."""
    if not text.strip():
        raise SourceError(SourceLocation(file, 1), "empty input: no dump found")
    # Fast path: a monitor dump as QEMU printed it (QMP ends lines CRLF), nothing to undo.
    # Dumps repeat their lines (one tree per address space before 7.0): equal lines share
    # one string and each distinct one is checked once.
    lines = _shared_lines(text)
    distinct = set(lines)
    if all("\r" not in line and _as_printed(line) for line in distinct):
        if lines[-1] == "":
            lines.pop()
        return _trimmed([Segment(tuple(lines), range(1, len(lines) + 1))])
    del lines, distinct
    check_text(text, file)
    norm = text.replace("\r\n", "\n") if "\r\n" in text else text
    return _trimmed(_slow_segments(norm))


def _shared_lines(text: str) -> list[str]:
    """``text.replace("\\r\\n", "\\n").split("\\n")`` without a copy of the text or a
    string per line: a 300,000-line pre-7.0 dump holds a few thousand distinct lines."""
    memo: dict[str, str] = {}
    out: list[str] = []
    find, pos = text.find, 0
    while True:
        end = find("\n", pos)
        stop = len(text) if end < 0 else end - 1 if text[end - 1 : end] == "\r" else end
        line = text[pos:stop]
        out.append(memo.setdefault(line, line))
        if end < 0:
            return out
        pos = end + 1


def _as_printed(line: str) -> bool:
    """Blank, or a dump line with nothing a paste adds: no quote, prompt, control
    character, trailing blank, or tab other than the leading one of ``-d`` entries."""
    if not line:
        return True
    return (
        _IS_DUMP.match(line) is not None
        and line[-1] not in " \t"
        and "\t" not in line[1:]
        and not CONTROL.search(line)
    )


def _clean(raw: str) -> tuple[int, str]:
    depth, rest = strip_quote(raw)
    if "\t" in rest:
        rest = "\t" + rest[1:].expandtabs(8) if _DISPATCH_TAB.match(rest) else rest.expandtabs(8)
    return depth, rest.rstrip()


def _slow_segments(text: str) -> list[Segment]:
    raws = text.replace("\r", "\n").split("\n")  # CRLF is already LF here
    out: list[Segment] = []
    lines: list[str] = []
    nos: list[int] = []
    depth = -1
    prev_raw_len = 0

    def flush() -> None:
        nonlocal lines, nos
        if lines:
            out.append(Segment(tuple(lines), tuple(nos), max(depth, 0)))
        lines, nos = [], []

    for i, raw in enumerate(raws):
        d, line = _clean(raw)
        if _PROMPT.match(line):
            flush()
            continue
        if not line:
            prev_raw_len = 0  # nothing wraps across an empty line
            if lines and d == depth:
                lines.append("")
                nos.append(i + 1)
            continue
        if _IS_DUMP.match(line):
            if d != depth:
                flush()
                depth = d
            lines.append(line)
            nos.append(i + 1)
            prev_raw_len = len(raw.rstrip())
            continue
        if lines and d == depth and lines[-1] and _is_wrapped_tail(lines[-1], prev_raw_len, line):
            lines[-1] = lines[-1] + " " + line  # rejoin: keep the first line's number
            prev_raw_len = 0  # a tail is joined once
            continue
        flush()  # prose
    flush()
    return out


def _is_wrapped_tail(prev: str, prev_raw_len: int, tail: str) -> bool:
    """Is ``tail`` the end of ``prev`` that a mail client wrapped onto its own line?"""
    if prev_raw_len < _REJOIN_MIN_PREV:
        return False
    if _ALIAS_TAIL.match(tail) and " alias " in prev:
        return True
    if len(tail) > _REJOIN_MAX_TAIL:
        return False
    if tail[0] == " " or tail.endswith((".", "!", "?", ":")):
        return False  # indented text, or the end of a sentence
    if _FULL_RANGE.match(prev):
        return True
    return prev.startswith((' AS "', "address-space", "memory-region", " Root memory region"))


def _trimmed(segs: list[Segment]) -> list[Segment]:
    """Drop leading/trailing blank lines of each run, and runs with nothing left."""
    out = []
    for s in segs:
        lo, hi = 0, len(s.lines)
        while lo < hi and not s.lines[lo]:
            lo += 1
        while hi > lo and not s.lines[hi - 1]:
            hi -= 1
        if lo < hi:
            out.append(Segment(s.lines[lo:hi], s.linenos[lo:hi], s.quote_depth))
    return out


def monitor_part(text: str, command: str) -> str | None:
    """The output of ``(qemu) COMMAND`` in a monitor session (a bundle, a paste), with
    every other line blanked so line numbers stay those of ``text``; None when the text
    has no such prompt.  Mail quoting before the prompt is allowed."""
    lines = text.splitlines()
    keep = [False] * len(lines)
    found = False
    inside = False
    for i, raw in enumerate(lines):
        m = _PROMPT_COMMAND.match(strip_quote(raw.rstrip())[1])
        if m:
            inside = " ".join(m["command"].split()) == command
            found = found or inside
        elif inside:
            keep[i] = True
    if not found:
        return None
    return "\n".join(line if k else "" for line, k in zip(lines, keep, strict=True)) + "\n"
