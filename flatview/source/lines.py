"""Line forms: quotes, tabs, indentation, elisions, wrapped tails, old headings; each
physical line is classified, then runs of dump lines are moved back to QEMU's columns
(see flatview.source)."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from ..errors import SourceError, SourceLocation
from .common import (
    HEADING,
    QUOTE_MARKS,
    RANGE_START,
    Segment,
)

PROMPT = re.compile(r"^\(qemu\)")
DISPATCH_TAB = re.compile(r"^\t[ \d.]+ skip=")
# What a line is, read without its indentation: (kind, the column QEMU prints it at).
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
RANGE = re.compile(RANGE_START)  # a region line's start, as IS_DUMP reads it
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


class Cleaner:
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
            if EMBEDDED.search(line.text):
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
            m = QUOTE_MARKS.match(text)
            assert m is not None
            depth = m.group(0).count(">")
            text = text[m.end() :]
            self.counts["quote"] += 1
        if "\t" in text:
            stripped = text.lstrip(" ")
            if DISPATCH_TAB.match(stripped):
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
        if HEADING.match(body):
            return _Line(no, depth, text, "heading", ind, 0, raw_len)
        if body.startswith(OVF):
            rest = body[len(OVF) :]
            if RANGE.match(rest.lstrip(" ")):
                return _Line(no, depth, text, "range", ind, 0, raw_len)
        if RANGE.match(body):
            if body[8] == "-" and ADDR32.match(body):
                # QEMU < 1.3 on a 32-bit target printed target_phys_addr_t as %08x
                text = text[:ind] + ADDR32_ALIAS.sub(_pad32, ADDR32.sub(_pad32, body, 1), 1)
                self.counts["old-format"] += 1
            return _Line(no, depth, text, "range", ind, 0, raw_len)
        m = FIXED.match(body)
        if m:
            return _Line(no, depth, text, "fixed", ind, FIXED_COL[m.lastgroup or ""], raw_len)
        if body[0] == "\t" and DISPATCH_TAB.match(body):
            return _Line(no, depth, text, "fixed", ind, ENTRY_COL, raw_len)
        if ENTRY.match(body):  # a dispatch node entry whose TAB became spaces
            return _Line(no, depth, text, "fixed", ind, ENTRY_COL, raw_len)
        if PROMPT.match(body):
            return _Line(no, depth, text, "prompt", ind)
        if FENCE.match(body):
            return _Line(no, depth, text, "fence", ind)
        if ELISION.match(body):
            return _Line(no, depth, text, "elision", ind)
        if CUT_ADDR.match(body):
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
            if line.kind != "prose" or not SHARED.match(line.text.lstrip(" ")):
                continue
            j = i + 1
            while j < len(lines) and lines[j].kind == "prose":
                m = SHARED_ITEM.match(lines[j].text)
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
        if prev.raw_len + 1 + word <= REJOIN_MIN_WIDTH or line.ind > _run_margin(run):
            return False  # the tail's first word fitted: not wrapped; nor is indented text
        # the end of a name (short), then only suffixes QEMU prints
        m = SUFFIX_START.search(tail)
        name, rest = (tail[: m.start()], tail[m.start() :].strip()) if m else (tail, "")
        if rest and not SUFFIX_TAIL.match(rest):
            return False
        if len(name) > REJOIN_MAX_TAIL:
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
            if line.col == ENTRY_COL and text.startswith("        "):
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
            elif line.kind == "fixed" and line.col != ENTRY_COL:
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
    if body.startswith(OVF):
        body = body[len(OVF) :].lstrip(" ")
    if not FULL_RANGE.match("  " + body):
        return True
    if ALIAS_START.search(head) and not FULL_ALIAS.search(head):
        return True
    return head.count("{") > head.count("}")


def _run_margin(run: list[_Line]) -> int:
    """The columns a run is moved right by, as far as its first line tells."""
    first = next((ln for ln in run if ln.kind != "blank"), None)
    if first is None:
        return 0
    col = 0 if first.kind == "heading" else first.col if first.kind == "fixed" else 2
    return max(first.ind - col, 0)
