"""Clean-up of pasted text, before any grammar sees it.

Mail quoting (``>``, ``> >``, ``>>`` at any depth), CRLF and trailing blanks are removed
line by line; every line keeps its original 1-based line number so errors still point
into the user's file.
"""

from __future__ import annotations

import re

__all__ = ["strip_quote", "unquote_lines"]

# One or more '>' each optionally followed by one space: the prefix mail clients add.
_QUOTE = re.compile(r"^(?:> ?)+")


def strip_quote(line: str) -> tuple[int, str]:
    """Remove a mail quote prefix; return (quote depth, rest of the line)."""
    m = _QUOTE.match(line)
    if not m:
        return 0, line
    return m.group(0).count(">"), line[m.end():]


def unquote_lines(text: str) -> list[tuple[int, str]]:
    """Split ``text`` into (line number, line) with quoting, CR and trailing blanks removed.

    Tabs are kept: lspci indents with them.
    """
    out = []
    for no, raw in enumerate(text.splitlines(), 1):
        out.append((no, strip_quote(raw.rstrip())[1].rstrip()))
    return out
