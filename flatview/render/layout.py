"""Text a person reads fits a 100-column terminal; ``--wide`` keeps one line per row.

Every renderer of terminal text goes through :func:`table` and :func:`wrap`: a table too
wide for ``width`` folds its longest cells at blanks inside their column (never inside a
word: addresses and names stay whole), a long sentence wraps with a hanging indent.
``width=None`` is ``--wide``: nothing is wrapped.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["WIDTH", "table", "wrap", "wrap_lines"]

WIDTH = 100
_GAP = 2  # tabulate "simple": two spaces between columns
_PAD = 2  # ... and a header is padded by two (tabulate's MIN_PADDING)


def _words(text: str) -> list[str]:
    return text.replace("\n", " ").split() or [""]


def table(
    rows: Sequence[Sequence[object]],
    headers: Sequence[str],
    width: int | None = WIDTH,
    indent: str = "",
) -> str:
    """tabulate "simple", its widest columns wrapped at blanks (never inside a word, so
    addresses and names stay whole; headers wrap too) until the table fits ``width``."""
    rows = [["" if c is None else c for c in r] for r in rows]
    heads = [str(h) for h in headers]
    cells = [[str(r[i]) for r in rows] for i in range(len(heads))]
    natural = [
        max([len(h) + _PAD, *(len(x) for c in col for x in c.split("\n"))])
        for h, col in zip(heads, cells, strict=True)
    ]
    content = [max([0, *(len(x) for c in col for x in c.split("\n"))]) for col in cells]
    least = [
        max([max(map(len, _words(h))) + _PAD, *(len(w) for c in col for w in _words(c))])
        for h, col in zip(heads, cells, strict=True)
    ]
    cur = list(natural)
    if width is not None and rows:
        limit = width - len(indent)
        while sum(cur) + _GAP * (len(cur) - 1) > limit:
            free = [i for i in range(len(cur)) if cur[i] > least[i]]
            if not free:
                break  # every column is down to its longest word: the table stays wider
            # wrap long cells first, headers (of short number columns) last
            i = max(free, key=lambda k: (cur[k] <= content[k], cur[k] - least[k]))
            cur[i] -= 1
    narrowed = [c if c < n else None for c, n in zip(cur, natural, strict=True)]
    heads = [h if m is None else _fold(h, m - _PAD) for h, m in zip(heads, narrowed, strict=True)]
    body = [
        [c if m is None else _fold(str(c), m) for c, m in zip(r, narrowed, strict=True)]
        for r in rows
    ]
    import textwrap  # here, not at import: its regexes cost a command that wraps nothing

    from tabulate import tabulate  # imported when a table is laid out (CLI start-up)

    text = tabulate(body, headers=heads, tablefmt="simple")
    return textwrap.indent(text, indent) if indent else text


def _fold(text: str, width: int) -> str:
    """A cell folded at blanks to ``width`` (a word longer than that stays whole)."""
    if len(text) <= width:
        return text
    import textwrap

    return "\n".join(
        out
        for part in text.split("\n")
        for out in textwrap.wrap(part, width, break_long_words=False, break_on_hyphens=False)
        or [""]
    )


def wrap(line: str, width: int | None = WIDTH, indent: str = "  ") -> list[str]:
    """One sentence as lines of at most ``width`` columns, continuation lines indented
    (the line's own leading blanks are kept on the first line and added to ``indent``)."""
    if width is None or len(line) <= width:
        return [line]
    lead = line[: len(line) - len(line.lstrip(" "))]
    import textwrap

    return textwrap.wrap(
        line,
        width=width,
        subsequent_indent=lead + indent,
        break_long_words=False,
        break_on_hyphens=False,
    ) or [line]


def wrap_lines(lines: Sequence[str], width: int | None = WIDTH, indent: str = "  ") -> list[str]:
    return [out for line in lines for out in wrap(line, width, indent)]
