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

import json
import re
from collections import Counter
from dataclasses import dataclass, field

from .errors import SourceError, SourceLocation

__all__ = [
    "CONTROL",
    "KINDS",
    "Cleaned",
    "Segment",
    "clean",
    "segments",
    "strip_quote",
    "unquote_lines",
]

# Kinds of dropped lines (they count as "skipped") and of rewritten ones.
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
_QUOTE = re.compile(r"^(?:> ?)+")
# The quote markers alone, up to the last '>': what follows (its spaces too) is the text,
# whose margin is learnt from its headings (`>address-space:` and `> address-space:`).
_QUOTE_MARKS = re.compile(r"^>(?: ?>)*")

# The start of every line QEMU prints in `info mtree [-f] [-d] [-o] [-D]` output.  A
# region line is recognised loosely (a long run of letters and digits, then '-') so a
# mangled address still reaches the grammar and gets a precise error.
_DUMP_LINE = (
    r"(?:address-space(?: \(flat view\))?: |memory-region: |FlatView #\d| AS \""
    r"| Root memory region: |  No rendered FlatView|  Dispatch$|    Physical sections$"
    r"|      #\d+ @|    Nodes \(|      \[\d+\]$|\t[ \d.]+ skip="
    r"|(?:\[DETECTED OVERFLOW!\] )? +(?:\[DETECTED OVERFLOW!\] )?"
    r"(?:(?:0x)?[0-9a-f]{16}-|\S{8,24}-\S* \(prio ))"
)
_IS_DUMP = re.compile(_DUMP_LINE)
_PROMPT = re.compile(r"^\(qemu\)")
_DISPATCH_TAB = re.compile(r"^\t[ \d.]+ skip=")
# Control characters no dump line holds (tab, LF, FF and CR are handled as text).
CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")

# What a line is, read without its indentation: (kind, the column QEMU prints it at).
_HEADING = re.compile(r"(?:address-space(?: \(flat view\))?: |memory-region: |FlatView #\d)")
_FIXED = re.compile(
    r"(?P<as>AS \")|(?P<root>Root memory region: )|(?P<norend>No rendered FlatView)"
    r"|(?P<disp>Dispatch$)|(?P<phys>Physical sections$)|(?P<sect>#\d+ @)|(?P<nodes>Nodes \()"
    r"|(?P<node>\[\d+\]$)"
)
_FIXED_COL = {"as": 1, "root": 1, "norend": 2, "disp": 2, "phys": 4, "sect": 6, "nodes": 4}
_FIXED_COL["node"] = 6
_OVF = "[DETECTED OVERFLOW!] "
# A dispatch node entry (mtree_print_phys_entries: "\t%3d..%-4d  skip=%d  ptr=...")
_ENTRY = re.compile(r"\d+(?:\.\.\d+)? +skip=\d+ +ptr=")
_ENTRY_COL = 8
_RANGE = re.compile(r"(?:(?:0x)?[0-9a-f]{16}-|\S{8,24}-\S* \(prio )")
# A line cut inside its first address (only inside a run: a lone hex number is prose).
_CUT_ADDR = re.compile(r"(?:0x)?[0-9a-f]{9,}-?$")
_ELISION = re.compile(
    r"^(?:\.{3,}|…|\[\s*(?:\.{3,}|…)[^\]]*\]|<\s*snip[^>]*>|\[\s*snip[^\]]*\]|-+\s*snip\s*-+"
    r"|(?:\.{3,}|…)\s.*|\(\s*(?:\.{3,}|…)[^)]*\)|<\s*(?:\.{3,}|…)\s*>)$",
    re.IGNORECASE,
)
_FENCE = re.compile(r"^(?:```|~~~)")
_ADDR32 = re.compile(r"()([0-9a-f]{8})-([0-9a-f]{8})( \(prio )")
_ADDR32_ALIAS = re.compile(r"(\): alias .* @\S+ )([0-9a-f]{8})-([0-9a-f]{8})((?: \[disabled\])?$)")
_EMBEDDED = re.compile(r"(?:0x)?[0-9a-f]{16}-(?:0x)?[0-9a-f]{16} \(prio -?\d+, ")
_SHARED = re.compile(r"address-space shared \d+ times:$")
_SHARED_ITEM = re.compile(r" *- (\S.*)$")
# A joined line must still read as a complete region or heading line.
_FULL_RANGE = re.compile(
    r"^(?:\[DETECTED OVERFLOW!\] )? +(?:\[DETECTED OVERFLOW!\] )?"
    r"(?:0x)?[0-9a-f]{16}-(?:0x)?[0-9a-f]{16} \(prio -?\d+, [a-zA-Z/-]+\): \S"
)
_ALIAS_START = re.compile(r"\): alias(?: |$)")
_FULL_ALIAS = re.compile(r"\): alias .* @\S+ (?:0x)?[0-9a-f]{16}-(?:0x)?[0-9a-f]{16}")
# A line was wrapped if the first word of the next would not have fitted: mail clients
# fold at 72-80 columns (and quote after, so the quote counts too).
_REJOIN_MIN_WIDTH = 64
_REJOIN_MAX_TAIL = 32  # and the wrapped-off tail is short (a name's end, ` @offset`)
# ... or it is an alias line's offsets (with the suffixes that may follow them)
_ALIAS_TAIL = re.compile(
    r"^(?:0x)?[0-9a-f]{16}-(?:0x)?[0-9a-f]{16}( \[disabled\])?( \S+:\{[^}]*\})*"
    r"( orphan)?( (?:KVM|kvm\S*))*$"
)
# ... or the suffixes QEMU appends to a region line (the whole tail is made of them)
_SUFFIX_TAIL = re.compile(
    r"^(?:@(?:0x)?[0-9a-f]{16} ?)?(?:\[disabled\] ?)?(?:(?:owner|parent):\{[^{}]*\} ?)*"
    r"(?:orphan ?)?(?:(?:KVM|kvm(?::[a-z]+)*) ?)*$"
)
_SUFFIX_START = re.compile(
    r"(?:^| )(?:@(?:0x)?[0-9a-f]{16}|\[disabled\]|owner:\{|parent:\{|orphan$|KVM$|kvm(?::[a-z]+)*$)"
)
# Quoted-printable: an escape of a byte (=20, =3D, =A0, =C2=A0) or a soft line break
_QP_ESCAPE = re.compile(r"=([0-9A-F]{2})")
_QP_HINT = re.compile(r"=(?:20|3D|A0|C2|09|0D)(?![0-9A-Za-z])|=$", re.MULTILINE)
_DIFF_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+\d+(?:,\d+)? @@")
_DIFF_HEADER = re.compile(r"^(?:--- |\+\+\+ |diff |index [0-9a-f]|\\ No newline)")


@dataclass(frozen=True, slots=True)
class Segment:
    """A run of cleaned dump lines (blank lines included) with their original numbers.

    ``part`` is ``"before"``/``"after"`` for the sides of a diff paste; ``elided`` says
    lines of the run were elided by whoever pasted it (what it holds is partial)."""

    lines: tuple[str, ...]
    linenos: tuple[int, ...]
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
    return list(clean(text, file).segments)


def clean(text: str, file: str = "-") -> Cleaned:
    """Every run of dump lines in ``text`` and the count of lines dropped or rewritten."""
    counts: Counter[str] = Counter()
    if text.startswith("\ufeff"):
        text = text[1:]
        counts["bom"] += 1
    if not text.strip():
        raise SourceError(SourceLocation(file, 1), "empty input: no dump found")
    norm = text.replace("\r\n", "\n") if "\r\n" in text else text  # QMP ends lines CRLF
    if "\r" not in norm:
        lines = norm.split("\n")
        # Fast path: a monitor dump as QEMU printed it, nothing to undo.  Dumps repeat
        # their lines (one tree per address space before 7.0): check each distinct one.
        first = next((ln for ln in lines if ln), "")
        if _HEADING.match(first) and all(map(_as_printed, set(lines))):
            if lines[-1] == "":
                lines.pop()
            seg = Segment(tuple(lines), tuple(range(1, len(lines) + 1)))
            return Cleaned(tuple(_trimmed([seg])), dict(counts))
    carried = _qmp(norm)
    if carried is not None:
        counts["qmp"] += 1
        norm = carried.replace("\r\n", "\n")
    check_text(norm, file)
    numbered = list(enumerate(norm.replace("\r", "\n").split("\n"), 1))
    if _QP_HINT.search(norm) and _looks_quoted_printable(norm):
        numbered = _qp_decode(numbered, counts)
    segs: list[Segment] = []
    for part, zone in _zones(numbered, counts) if _maybe_diff(norm) else [(None, numbered)]:
        segs += [
            Segment(s.lines, s.linenos, s.quote_depth, part, s.elided)
            for s in _Cleaner(counts, file).run(zone)
        ]
    return Cleaned(tuple(_trimmed(segs)), {k: v for k, v in counts.items() if v})


def _as_printed(line: str) -> bool:
    """Blank, or a dump line with nothing a paste adds: no quote, prompt, control
    character, trailing blank, or tab other than the leading one of ``-d`` entries."""
    if not line:
        return True
    return (
        _IS_DUMP.match(line) is not None
        and line[-1] not in " \t"
        and "\t" not in line[1:]
        and "\u00a0" not in line
        and not CONTROL.search(line)
    )


# ------------------------------------------------------------------ whole-text forms


def _qmp(text: str) -> str | None:
    """The monitor text a QMP reply carries (``human-monitor-command``), or None."""
    body = text.strip()
    if body[:1] not in "{[":
        return None
    try:
        values = [json.loads(body)]
    except ValueError:
        values = []
        for line in body.split("\n"):  # a transcript: one JSON object a line
            try:
                values.append(json.loads(line))
            except ValueError:
                if line.strip():
                    return None
    out = []
    for value in values:
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict) and isinstance(item.get("return"), str):
                out.append(item["return"])
    return "\n".join(out) if out else None


def _maybe_diff(text: str) -> bool:
    """A cheap test before looking for diffs of dumps line by line."""
    return ("+" in text and "-" in text) or "@@ " in text


def _looks_quoted_printable(text: str) -> bool:
    """QEMU never prints ``=XX`` with two upper-case hex digits, nor a line ending in
    ``=``; several of them (or a mail header saying so) make a quoted-printable text."""
    if "quoted-printable" in text.lower():
        return True
    return len(_QP_HINT.findall(text)) >= 2


def _qp_decode(numbered: list[tuple[int, str]], counts: Counter[str]) -> list[tuple[int, str]]:
    """Decode quoted-printable lines (RFC 2045): soft breaks join lines, ``=XX`` are bytes
    of UTF-8 text.  A joined line keeps the number of its first physical line."""
    out: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for no, line in numbered:
        if pending is not None:
            no, line = pending[0], pending[1] + line
            pending = None
        body = line.rstrip(" \t")
        if body.endswith("=") and not body.endswith("=="):
            pending = (no, body[:-1])
            counts["quoted-printable"] += 1
            continue
        if "=" in body and _QP_ESCAPE.search(body):
            raw = _QP_ESCAPE.sub(lambda m: f"\x00{m.group(1)}", body)
            data = bytearray()
            parts = raw.split("\x00")
            data += parts[0].encode("utf-8")
            for part in parts[1:]:
                data.append(int(part[:2], 16))
                data += part[2:].encode("utf-8")
            try:
                body = data.decode("utf-8")
            except UnicodeDecodeError:  # a Latin-1 mail: =A0 alone is a no-break space
                body = data.decode("latin-1")
            counts["quoted-printable"] += 1
        out.append((no, body))
    if pending is not None:
        out.append(pending)
    return out


def _zones(
    numbered: list[tuple[int, str]], counts: Counter[str]
) -> list[tuple[str | None, list[tuple[int, str]]]]:
    """Cut a text into plain stretches and hand-made diffs of dumps.

    A diff of dumps is a run of lines with `` ``/``+``/``-`` prefixes (``@@`` hunk lines
    and empty lines between them included) in which a ``+`` or ``-`` line is a dump line;
    it yields its before (`` `` and ``-``) and its after (`` `` and ``+``).  Diffs of
    code (a patch in the same mail) stay plain text."""
    out: list[tuple[str | None, list[tuple[int, str]]]] = []
    plain: list[tuple[int, str]] = []
    quoted = [_split_quote(line) for _, line in numbered]
    numbered = [(no, body) for (no, _), (_, body) in zip(numbered, quoted, strict=True)]
    prefix = {no: q for (no, _), (q, _) in zip(numbered, quoted, strict=True) if q}
    i, n = 0, len(numbered)
    while i < n:
        if not _diff_line(numbered[i][1]) or not numbered[i][1].strip():
            plain.append(numbered[i])
            i += 1
            continue
        j = i
        while j < n and (_diff_line(numbered[j][1]) or not numbered[j][1]):
            j += 1
        while j > i and not numbered[j - 1][1]:
            j -= 1
        zone = numbered[i:j]
        marked = [ln for _, ln in zone if ln[:1] in "+-" and _IS_DUMP.match(ln[1:])]
        if not any(ln[0] == "+" for ln in marked) and not any(ln[0] == "-" for ln in marked):
            plain.extend(zone)
            i = j
            continue
        while plain and _DIFF_HEADER.match(plain[-1][1]):
            plain.pop()
            counts["diff-header"] += 1
        out.append((None, _requoted(plain, prefix)))
        plain = []
        before: list[tuple[int, str]] = []
        after: list[tuple[int, str]] = []
        for no, line in zone:
            if not line or _DIFF_HUNK.match(line) or _DIFF_HEADER.match(line):
                if line:
                    counts["diff-header"] += 1
                before.append((no, ""))
                after.append((no, ""))
                continue
            counts["diff"] += 1
            if line[0] != "+":
                before.append((no, line[1:]))
            if line[0] != "-":
                after.append((no, line[1:]))
        out.append(("before", _requoted(before, prefix)))
        out.append(("after", _requoted(after, prefix)))
        i = j
    out.append((None, _requoted(plain, prefix)))
    return out


def _split_quote(line: str) -> tuple[str, str]:
    """(mail quote prefix with the one space after it, the rest): diffs get quoted too."""
    m = _QUOTE_MARKS.match(line)
    if not m:
        return "", line
    end = m.end() + (line[m.end() : m.end() + 1] == " ")
    return line[:end], line[end:]


def _requoted(lines: list[tuple[int, str]], prefix: dict[int, str]) -> list[tuple[int, str]]:
    return [(no, prefix.get(no, "") + line) for no, line in lines]


def _diff_line(line: str) -> bool:
    return line[:1] in (" ", "+", "-", "\\") or line.startswith("@@ ") or not line


# ------------------------------------------------------------------ line forms


@dataclass(slots=True)
class _Line:
    """One physical line, classified."""

    no: int
    depth: int  # number of quote markers
    text: str  # without quote markers and trailing blanks, tabs expanded
    kind: str  # "blank", "heading", "fixed", "range", "cut", "old", "elision", ...
    ind: int  # leading spaces
    col: int = 0  # the column QEMU prints a heading / fixed line at
    raw_len: int = 0


class _Cleaner:
    """Turn numbered physical lines into runs of dump lines (see the module docstring)."""

    def __init__(self, counts: Counter[str], file: str) -> None:
        self.counts = counts
        self.file = file
        self._memo: dict[str, tuple[_Line, tuple[str, ...]]] = {}

    def run(self, numbered: list[tuple[int, str]]) -> list[Segment]:
        lines = [self._classified(no, raw) for no, raw in numbered]
        self._old_format(lines)
        self._shared_headings(lines)
        out: list[Segment] = []
        run: list[_Line] = []
        elided = False
        depth = -1

        def flush() -> None:
            nonlocal run, elided
            if run:
                out.extend(self._segment(run, max(depth, 0), elided))
            run, elided = [], False

        for line in lines:
            kind = line.kind
            if kind == "blank":
                if run:  # at another depth: nothing wraps across it, but the run goes on
                    run.append(line if line.depth == depth else _Line(line.no, depth, "", "gap", 0))
                continue
            if kind in ("prompt", "fence"):
                self.counts[kind] += 1
                flush()
                continue
            if kind == "elision":
                self.counts["elision"] += 1
                elided = elided or bool(run)
                if run and line.depth == depth:
                    run.append(line)  # a marker: the run goes on
                continue
            if kind == "old-drop":
                continue  # 1.x `aliases`: counted as old-format
            if kind == "cut" and not (run and line.depth == depth and run[-1].kind != "blank"):
                kind = line.kind = "prose"
            if (
                kind in ("range", "cut")
                and run
                and line.depth == depth
                and line.ind <= run[0].ind  # cheap first: the margin is at most that
                and line.ind <= _run_margin(run)
                and self._is_wrapped_tail(run, line)
            ):
                run.append(_Line(line.no, line.depth, line.text, "tail", line.ind, 0, line.raw_len))
                continue
            if kind in ("heading", "fixed", "range", "cut", "old"):
                if line.depth != depth:
                    flush()
                    depth = line.depth
                run.append(line)
                continue
            if run and line.depth == depth and self._is_wrapped_tail(run, line):
                run.append(_Line(line.no, line.depth, line.text, "tail", line.ind, 0, line.raw_len))
                continue
            if _EMBEDDED.search(line.text):
                # a region line behind other text (a table, a chat log, a bullet): never
                # dropped in silence
                raise SourceError(
                    SourceLocation(self.file, line.no),
                    "region line inside other text, cannot be read",
                    line.text.strip(),
                )
            self.counts["prose"] += 1
            flush()
        flush()
        return out

    def _classified(self, no: int, raw: str) -> _Line:
        """:meth:`_classify`, once per distinct line (dumps repeat their lines)."""
        hit = self._memo.get(raw)
        if hit is None:
            before = Counter(self.counts)
            line = self._classify(no, raw)
            changed = tuple(k for k in self.counts if self.counts[k] != before[k])
            memo = _Line(no, line.depth, line.text, line.kind, line.ind, line.col, line.raw_len)
            self._memo[raw] = (memo, changed)  # a copy: later passes rewrite lines
            return line
        line, changed = hit
        for k in changed:
            self.counts[k] += 1
        return _Line(no, line.depth, line.text, line.kind, line.ind, line.col, line.raw_len)

    def _classify(self, no: int, raw: str) -> _Line:
        depth = 0
        text = raw
        if text[:1] == ">":
            m = _QUOTE_MARKS.match(text)
            assert m is not None
            depth = m.group(0).count(">")
            text = text[m.end() :]
            self.counts["quote"] += 1
        if "\t" in text:
            stripped = text.lstrip(" ")
            if _DISPATCH_TAB.match(stripped):
                text = text[: len(text) - len(stripped)] + "\t" + stripped[1:].expandtabs(8)
            else:
                # tab stops count from the quoted text, after the '> ' of the quote
                lead = " " if depth and text[:1] == " " else ""
                text = lead + text[len(lead) :].expandtabs(8)
                self.counts["tabs"] += 1
        if "\u00a0" in text:
            text = text.replace("\u00a0", " ")
            self.counts["nbsp"] += 1
        text = text.rstrip()
        if not text:
            return _Line(no, depth, "", "blank", 0)
        body = text.lstrip(" ")
        ind = len(text) - len(body)
        raw_len = len(raw.rstrip())
        if _HEADING.match(body):
            return _Line(no, depth, text, "heading", ind, 0, raw_len)
        if body.startswith(_OVF):
            rest = body[len(_OVF) :]
            if _RANGE.match(rest.lstrip(" ")):
                return _Line(no, depth, text, "range", ind, 0, raw_len)
        if _RANGE.match(body):
            if body[8] == "-" and _ADDR32.match(body):
                # QEMU < 1.3 on a 32-bit target printed target_phys_addr_t as %08x
                text = text[:ind] + _ADDR32_ALIAS.sub(_pad32, _ADDR32.sub(_pad32, body, 1), 1)
                self.counts["old-format"] += 1
            return _Line(no, depth, text, "range", ind, 0, raw_len)
        m = _FIXED.match(body)
        if m:
            return _Line(no, depth, text, "fixed", ind, _FIXED_COL[m.lastgroup or ""], raw_len)
        if body[0] == "\t" and _DISPATCH_TAB.match(body):
            return _Line(no, depth, text, "fixed", ind, _ENTRY_COL, raw_len)
        if _ENTRY.match(body):  # a dispatch node entry whose TAB became spaces
            return _Line(no, depth, text, "fixed", ind, _ENTRY_COL, raw_len)
        if _PROMPT.match(body):
            return _Line(no, depth, text, "prompt", ind)
        if _FENCE.match(body):
            return _Line(no, depth, text, "fence", ind)
        if _ELISION.match(body):
            return _Line(no, depth, text, "elision", ind)
        if _CUT_ADDR.match(body):
            return _Line(no, depth, text, "cut", ind, 0, raw_len)
        return _Line(no, depth, text, "prose", ind, 0, raw_len)

    def _old_format(self, lines: list[_Line]) -> None:
        """QEMU 1.x (mtree_info before ``address-space:`` headings): each address space's
        name alone (``memory``, ``I/O``; later every AddressSpace's name), its tree with
        the root in column 0, then ``aliases`` and each alias target's name and tree, all
        without an empty line.  Names before ``aliases`` are address spaces, after it
        ``memory-region:`` sections."""
        n = len(lines)
        i = 0
        while i < n:
            line = lines[i]
            nxt = lines[i + 1] if i + 1 < n else None
            if (
                line.kind != "prose"
                or nxt is None
                or nxt.kind != "range"
                or nxt.ind != line.ind
                or nxt.depth != line.depth
            ):
                i += 1
                continue
            margin, depth = line.ind, line.depth
            end = i
            while end < n and lines[end].depth == depth and lines[end].kind != "blank":
                end += 1
            block = lines[i:end]
            if not any(b.kind == "prose" and b.text.strip() == "aliases" for b in block):
                i += 1  # prose before column-0 rows (a paste that lost its indentation)
                continue
            heading = "address-space: "
            for j, cur in enumerate(block):
                name = cur.text[margin:] if cur.ind >= margin else cur.text.strip()
                after = block[j + 1] if j + 1 < len(block) else None
                if cur.kind == "range":
                    cur.text = "  " + cur.text
                    cur.ind += 2
                elif cur.kind == "prose" and name == "aliases":
                    cur.kind = "old-drop"
                    heading = "memory-region: "
                elif cur.kind == "prose" and after is not None and after.kind == "range":
                    cur.text = " " * margin + heading + name
                    cur.kind = "heading"
                else:
                    break
                self.counts["old-format"] += 1
            i = end

    def _shared_headings(self, lines: list[_Line]) -> None:
        """``address-space shared N times:`` and its ``  - NAME`` list: how a 2021 RFC of
        mtree_info printed address spaces sharing a root (7.0 prints one heading each)."""
        for i, line in enumerate(lines):
            if line.kind != "prose" or not _SHARED.match(line.text.lstrip(" ")):
                continue
            j = i + 1
            while j < len(lines) and lines[j].kind == "prose":
                m = _SHARED_ITEM.match(lines[j].text)
                if not m or lines[j].ind <= line.ind:
                    break
                lines[j].text = " " * line.ind + "address-space: " + m.group(1)
                lines[j].kind, lines[j].ind = "heading", line.ind
                self.counts["old-format"] += 1
                j += 1
            if j > i + 1:
                line.kind = "old-drop"
                self.counts["old-format"] += 1

    def _is_wrapped_tail(self, run: list[_Line], line: _Line) -> bool:
        """Is ``line`` the end of the run's last line that a mail client wrapped off?"""
        prev = run[-1]
        if prev.kind not in ("range", "heading", "fixed", "tail", "cut"):
            return False
        # the dump line as joined so far
        i = len(run) - 1
        while run[i].kind == "tail":
            i -= 1
        head = " ".join([run[i].text] + [t.text.strip() for t in run[i + 1 :]])
        tail = line.text.strip()
        if run[i].kind in ("range", "cut") and _cut_short(head):
            return True  # the rest must follow (or the grammar says why it does not)
        word = len(tail.split(" ", 1)[0])
        if prev.raw_len + 1 + word <= _REJOIN_MIN_WIDTH or line.ind > _run_margin(run):
            return False  # the tail's first word fitted: not wrapped; nor is indented text
        # the end of a name (short), then only suffixes QEMU prints
        m = _SUFFIX_START.search(tail)
        name, rest = (tail[: m.start()], tail[m.start() :].strip()) if m else (tail, "")
        if rest and not _SUFFIX_TAIL.match(rest):
            return False
        if len(name) > _REJOIN_MAX_TAIL:
            return False
        if not rest and tail.endswith((".", "!", "?", ":")):
            return False  # the end of a sentence
        if run[i].kind == "range":
            return True
        return head.lstrip(" ").startswith(
            ('AS "', "address-space", "memory-region", "Root memory region")
        )

    def _segment(self, run: list[_Line], depth: int, elided: bool) -> list[Segment]:
        """Join tails, move the run back to QEMU's columns, and make it a Segment."""
        joined: list[_Line] = []
        for line in run:
            if line.kind == "tail":
                last = joined[-1]
                last.text = last.text + " " + line.text.strip()
                self.counts["rejoin"] += 1
            elif line.kind not in ("elision", "old-drop", "gap"):
                joined.append(line)
        margins = self._margins(joined)
        texts: list[str] = []
        moved = 0
        for line, margin in zip(joined, margins, strict=True):
            text = line.text
            if margin and text:
                moved += 1
                if margin < 0:
                    text = " " * -margin + text
                elif text.startswith(" " * margin):
                    text = text[margin:]
                else:
                    text = text.lstrip(" ")
            if line.col == _ENTRY_COL and text.startswith("        "):
                text = "\t" + text[8:]  # mtree_print_phys_entries prints a TAB first
            texts.append(text)
        if moved:
            self.counts["indent"] += moved
        nos = tuple(line.no for line in joined)
        return [Segment(tuple(texts), nos, depth, None, elided)]

    @staticmethod
    def _margins(lines: list[_Line]) -> list[int]:
        """The columns to remove from each line: learnt from the heading (column 0), the
        fixed lines of a flat view, or, for rows without a heading, the least indented row
        (a root, or flat-view rows: column 2)."""
        out: list[int] = []
        margin: int | None = None
        pending: list[int] = []  # rows before the first heading
        first_row = False  # the next row is the first under a heading: a root (column 2)
        for idx, line in enumerate(lines):
            if line.kind == "heading":
                margin = line.ind
                first_row = True
            elif line.kind == "fixed" and line.col != _ENTRY_COL:
                if line.col in (1, 2) or margin is None:
                    margin = line.ind - line.col
            elif line.kind in ("range", "cut") and margin is None:
                pending.append(idx)
            elif (
                line.kind == "range"
                and first_row
                and not line.text.lstrip().startswith("[")
                and (line.ind - margin) % 2  # rows pasted one column off their heading
            ):
                margin = line.ind - 2
            if line.kind != "heading" and line.kind != "blank":
                first_row = False
            out.append(margin if margin is not None else 0)
        if pending:
            base = min(lines[i].ind for i in pending) - 2
            first_head = next(
                (i for i, ln in enumerate(lines) if ln.kind in ("heading", "fixed")), len(lines)
            )
            for i in range(first_head):
                out[i] = base
        return out


def _pad32(m: re.Match[str]) -> str:
    return m.group(1) + f"{int(m.group(2), 16):016x}-{int(m.group(3), 16):016x}" + m.group(4)


def _cut_short(head: str) -> bool:
    """Is this region line incomplete: cut inside its ``(prio, type):`` prefix, an
    ``alias`` without its `` @target start-end``, or an owner's ``{`` still open?"""
    body = head.lstrip(" ")
    if body.startswith(_OVF):
        body = body[len(_OVF) :].lstrip(" ")
    if not _FULL_RANGE.match("  " + body):
        return True
    if _ALIAS_START.search(head) and not _FULL_ALIAS.search(head):
        return True
    return head.count("{") > head.count("}")


def _run_margin(run: list[_Line]) -> int:
    """The columns a run is moved right by, as far as its first line tells."""
    first = next((ln for ln in run if ln.kind != "blank"), None)
    if first is None:
        return 0
    col = 0 if first.kind == "heading" else first.col if first.kind == "fixed" else 2
    return max(first.ind - col, 0)


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
