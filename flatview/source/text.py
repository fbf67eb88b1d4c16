"""Whole-text forms, undone before lines are read: QMP replies, quoted-printable mail,
hand-made diffs of two dumps (see flatview.source); and the part of a monitor session
(a capture bundle, a paste) that one command printed."""

from __future__ import annotations

import re
from collections import Counter

from .common import (
    IS_DUMP,
    QP_HINT,
    QUOTE,
    QUOTE_MARKS,
)

# A prompt with the command typed after it (a capture bundle, a pasted monitor session).
PROMPT_COMMAND = re.compile(r"^\(qemu\) ?(?P<command>.*)$")
# Quoted-printable: an escape of a byte (=20, =3D, =A0, =C2=A0)
QP_ESCAPE = re.compile(r"=([0-9A-F]{2})")
DIFF_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+\d+(?:,\d+)? @@")
DIFF_HEADER = re.compile(r"^(?:--- |\+\+\+ |diff |index [0-9a-f]|\\ No newline)")


def qmp(text: str) -> str | None:
    """The monitor text a QMP reply carries (``human-monitor-command``), or None."""
    body = text.strip()
    if body[:1] not in "{[":
        return None
    import json  # only for what looks like JSON: a dump never does

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


def maybe_diff(text: str) -> bool:
    """A cheap test before looking for diffs of dumps line by line."""
    return ("+" in text and "-" in text) or "@@ " in text


def looks_quoted_printable(text: str) -> bool:
    """QEMU never prints ``=XX`` with two upper-case hex digits, nor a line ending in
    ``=``; several of them (or a mail header saying so) make a quoted-printable text."""
    if "quoted-printable" in text.lower():
        return True
    return len(QP_HINT.findall(text)) >= 2


def qp_decode(numbered: list[tuple[int, str]], counts: Counter[str]) -> list[tuple[int, str]]:
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
        if "=" in body and QP_ESCAPE.search(body):
            raw = QP_ESCAPE.sub(lambda m: f"\x00{m.group(1)}", body)
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


def zones(
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
        marked = [ln for _, ln in zone if ln[:1] in "+-" and IS_DUMP.match(ln[1:])]
        if not any(ln[0] == "+" for ln in marked) and not any(ln[0] == "-" for ln in marked):
            plain.extend(zone)
            i = j
            continue
        while plain and DIFF_HEADER.match(plain[-1][1]):
            plain.pop()
            counts["diff-header"] += 1
        out.append((None, _requoted(plain, prefix)))
        plain = []
        before: list[tuple[int, str]] = []
        after: list[tuple[int, str]] = []
        for no, line in zone:
            if not line or DIFF_HUNK.match(line) or DIFF_HEADER.match(line):
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
    m = QUOTE_MARKS.match(line)
    if not m:
        return "", line
    end = m.end() + (line[m.end() : m.end() + 1] == " ")
    return line[:end], line[end:]


def _requoted(lines: list[tuple[int, str]], prefix: dict[int, str]) -> list[tuple[int, str]]:
    return [(no, prefix.get(no, "") + line) for no, line in lines]


def _diff_line(line: str) -> bool:
    return line[:1] in (" ", "+", "-", "\\") or line.startswith("@@ ") or not line


def monitor_part(text: str, command: str) -> str | None:
    """The output of ``(qemu) COMMAND`` in a monitor session (a bundle, a paste), with
    every other line blanked so line numbers stay those of ``text``; None when the text
    has no such prompt.  Mail quoting before the prompt is allowed."""
    lines = text.splitlines()
    keep = [False] * len(lines)
    found = False
    inside = False
    for i, raw in enumerate(lines):
        m = PROMPT_COMMAND.match(QUOTE.sub("", raw.rstrip(), count=1))
        if m:
            inside = " ".join(m["command"].split()) == command
            found = found or inside
        elif inside:
            keep[i] = True
    if not found:
        return None
    return "\n".join(line if k else "" for line, k in zip(lines, keep, strict=True)) + "\n"
