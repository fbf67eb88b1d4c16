"""Clean-up of pasted text, before any grammar sees it.

Users paste monitor output from terminals, mail, issue trackers, docs and blogs: quoted
with ``>``/``> >``/``>>`` at any depth, folded at 72-80 columns, quoted-printable
encoded, indented as a code block, fenced, elided, cut into fragments, inside a QMP
reply or a hand-made diff.  :func:`clean` undoes all of that and returns each run of
dump lines as a :class:`Segment` whose every line keeps its original 1-based number,
with a count of every line it dropped or rewrote, by kind (:data:`KINDS`), so that no
loss is silent.

Whole-text forms, undone first:

* ``bom``: a UTF-8 byte-order mark is ignored.
* ``qmp``: a QMP reply ``{"return": "..."}`` (a JSON array of them, or one per line) is
  read as the text it carries; line numbers are then those of the carried text.
* ``quoted-printable``: ``=XX`` escapes and soft line breaks (``=`` at the end of a line)
  are decoded when the text is quoted-printable mail.
* ``diff``: a hand-made diff of two dumps (`` ``/``+``/``-`` prefixes, ``@@`` hunks) is
  read as two texts, the before (`` `` and ``-``) and the after (`` `` and ``+``).

Line forms, each named and tested (tests/test_source.py, tests/test_pastes.py):

* ``CR``: CRLF and lone CR line ends become LF.
* ``quote``: a mail quote prefix (``>`` markers) is removed; a change of depth ends a run.
* ``tabs``: tabs become spaces (8-column stops), except the one leading tab QEMU
  itself prints on ``-d`` dispatch node entries.
* ``nbsp``: non-breaking spaces (mail, web pages) become spaces.
* ``indent``: a run indented as a whole (2/4/8 spaces or a TAB of a code block, 1 or 3
  after a quote) is moved back to QEMU's columns; the margin is learnt from each heading
  (column 0 in QEMU's output), from `` AS``/`` Root`` lines (column 1), or, for rows
  without a heading, from the least indented row.
* ``trailing``: trailing blanks are removed.
* ``prompt``: a ``(qemu) ...`` monitor prompt line ends a run and is dropped.
* ``fence``: a Markdown code fence line ends a run and is dropped.
* ``elision``: ``...``, ``[...]``, ``<snip>``, ``... skipped 30 regions`` are dropped;
  the run goes on and is marked elided (what it holds is partial).
* ``rejoin``: a line that is not a dump line, directly after a dump line at the same
  quote depth, is the tail a mail client wrapped off it when the dump line is cut short
  (its region prefix or alias offsets are incomplete, a ``{`` is open) or was long and
  the tail is short or has the form of a suffix QEMU prints (``@offset``, ``owner:{}``,
  ``KVM``): it is joined back with one space.  Two dump lines are never joined.
* ``old-format``: QEMU 1.x's ``memory``/``I/O``/``aliases`` headings and root lines in
  column 0 are rewritten into the headings of later QEMU.
* ``prose``: any other line that is not a dump line ends a run and is dropped.
"""

from __future__ import annotations

from collections import Counter

from ..errors import SourceError, SourceLocation
from .common import (
    CONTROL,
    DROPPED,
    HEADING,
    IS_DUMP,
    KINDS,
    QP_HINT,
    QUOTE,
    REWRITTEN,
    Cleaned,
    Segment,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from .text import monitor_part

__all__ = [
    "CONTROL",
    "DROPPED",
    "KINDS",
    "REWRITTEN",
    "Cleaned",
    "Segment",
    "clean",
    "monitor_part",
    "segments",
    "strip_quote",
    "unquote_lines",
]


def __getattr__(name: str) -> object:
    """``monitor_part`` (of :mod:`.text`), imported when it is first asked for."""
    if name == "monitor_part":
        from .text import monitor_part

        return monitor_part
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def strip_quote(line: str) -> tuple[int, str]:
    """Remove a mail quote prefix; return (quote depth, rest of the line)."""
    m = QUOTE.match(line)
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
    return list(clean(text, file).segments)


def clean(text: str, file: str = "-") -> Cleaned:
    """Every run of dump lines in ``text`` and the count of lines dropped or rewritten."""
    counts: Counter[str] = Counter()
    if text.startswith("\ufeff"):
        text = text[1:]
        counts["bom"] += 1
    if not text.strip():
        raise SourceError(SourceLocation(file, 1), "empty input: no dump found")
    # Fast path: a monitor dump as QEMU printed it (QMP ends lines CRLF), nothing to undo.
    # Dumps repeat their lines (one tree per address space before 7.0): equal lines share
    # one string and each distinct one is checked once.  It starts with a heading (rows
    # without one are a fragment: their margin is learnt on the slow path).
    start = len(text) - len(text.lstrip("\n"))
    if HEADING.match(text, start):
        lines = _shared_lines(text)
        if all(map(_as_printed, set(lines))):
            if lines[-1] == "":
                lines.pop()
            seg = Segment(tuple(lines), range(1, len(lines) + 1))
            return Cleaned(tuple(_trimmed([seg])), dict(counts))
        del lines
    # What a paste adds: the line and whole-text forms, whose patterns are compiled only
    # now (as QEMU printed it, a dump never needs them).
    from .lines import Cleaner
    from .text import looks_quoted_printable, maybe_diff, qmp, qp_decode, zones

    norm = text.replace("\r\n", "\n") if "\r\n" in text else text
    carried = qmp(norm)
    if carried is not None:
        counts["qmp"] += 1
        norm = carried.replace("\r\n", "\n")
    check_text(norm, file)
    numbered = list(enumerate(norm.replace("\r", "\n").split("\n"), 1))
    if QP_HINT.search(norm) and looks_quoted_printable(norm):
        numbered = qp_decode(numbered, counts)
    segs: list[Segment] = []
    for part, zone in zones(numbered, counts) if maybe_diff(norm) else [(None, numbered)]:
        segs += [
            Segment(s.lines, s.linenos, s.quote_depth, part, s.elided)
            for s in Cleaner(counts, file).run(zone)
        ]
    return Cleaned(tuple(_trimmed(segs)), {k: v for k, v in counts.items() if v})


def _shared_lines(text: str) -> list[str]:
    """``text.replace("\\r\\n", "\\n").split("\\n")`` where equal lines share one string:
    a 300,000-line pre-7.0 dump holds a few thousand distinct lines.  The text is split
    a chunk at a time (str.split and map run in C, a Python loop per line cost a tenth of
    reading a dump), so only a chunk's lines exist twice at once."""
    memo: dict[str, str] = {}
    out: list[str] = []
    pos = 0
    while True:
        cut = text.find("\n", pos + _CHUNK)  # a chunk ends with a whole line
        chunk = text[pos:] if cut < 0 else text[pos : cut + 1]
        if "\r\n" in chunk:
            chunk = chunk.replace("\r\n", "\n")
        lines = chunk.split("\n")
        if cut >= 0:
            lines.pop()  # the empty string after the chunk's last newline
        out += map(memo.setdefault, lines, lines)
        if cut < 0:
            return out
        pos = cut + 1


_CHUNK = 1 << 20


def _as_printed(line: str) -> bool:
    """Blank, or a dump line with nothing a paste adds: no quote, prompt, control
    character, trailing blank, or tab other than the leading one of ``-d`` entries."""
    if not line:
        return True
    if line.isprintable():  # no control character, tab, CR or no-break space: one C scan
        return IS_DUMP.match(line) is not None and line[-1] != " "
    return (
        "\r" not in line
        and IS_DUMP.match(line) is not None
        and line[-1] not in " \t"
        and "\t" not in line[1:]
        and "\u00a0" not in line
        and not CONTROL.search(line)
    )


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
            out.append(Segment(s.lines[lo:hi], s.linenos[lo:hi], s.quote_depth, s.part, s.elided))
    return out
