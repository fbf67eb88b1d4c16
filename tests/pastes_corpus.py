"""The paste corpus: our real dumps as people paste them (tests/test_pastes.py).

Every item is made, deterministically, from a real dump of the repository
(``samples/qemu``, ``samples/vfio``: QEMU 7.2 captured here; ``tests/fixtures/seeds``:
dumps pasted into public mail) by what mail clients, issue trackers, docs and people do
to a paste: fold at 72/76/80 columns (as ``fold -s -w N``) then quote, indent (spaces,
TAB, a quote with 1 or 3 columns more), fence (Markdown) or make a reST literal block,
quoted-printable encode (with non-breaking-space indentation and CR), wrap in a QMP
reply, prepend a byte-order mark, elide, cut into fragments, diff two dumps.

Run ``python3 tests/pastes_corpus.py DIR`` to write the corpus out as files to look at.
"""

from __future__ import annotations

import difflib
import json
import quopri
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLES = sorted(
    p
    for p in (REPO / "samples").glob("*/*/info-mtree*.txt")
    # -d dispatch dumps carry their own TAB: covered by tests/test_source.py
    if not p.name.startswith("info-mtree-f-d")
)


def fold(text: str, width: int) -> str:
    """``fold -s -w WIDTH``: break a line longer than WIDTH columns after its last blank
    within the width (the blank stays on the first line), else at the width."""
    out: list[str] = []
    for line in text.split("\n"):
        while len(line) > width:
            cut = line.rfind(" ", 0, width)
            cut = width if cut <= 0 else cut + 1
            out.append(line[:cut])
            line = line[cut:]
        out.append(line)
    return "\n".join(out)


def quote(text: str, prefix: str = "> ") -> str:
    return "\n".join(prefix + line if line or prefix.strip() else line for line in text.split("\n"))


def indent(text: str, margin: str) -> str:
    return "\n".join(margin + line if line else line for line in text.split("\n"))


def qp(text: str, crlf: bool = False) -> str:
    """Quoted-printable mail: indentation as UTF-8 no-break spaces (as some clients send
    a paste), '=' escaped, soft line breaks at 76 columns, CR as ``=0D`` if ``crlf``."""
    lines = []
    for line in text.split("\n"):
        body = line.lstrip(" ")
        lines.append("\u00a0" * (len(line) - len(body)) + body)
    encoded = quopri.encodestring("\n".join(lines).encode("utf-8")).decode("ascii")
    if crlf:
        encoded = "\n".join(ln if ln.endswith("=") else ln + "=0D" for ln in encoded.split("\n"))
    return "Content-Transfer-Encoding: quoted-printable\n\n" + encoded


def mail(text: str) -> str:
    return "Hi,\n\nthis is what I see on the monitor:\n\n" + text + "\nThanks,\nA. User\n"


# name -> what it does to a dump's text; every item parses to the original's model
SAME: dict[str, Callable[[str], str]] = {
    "fold72-quoted": lambda t: mail(quote(fold(t, 72))),
    "fold76-quoted": lambda t: mail(quote(fold(t, 76))),
    "fold80-quoted": lambda t: mail(quote(fold(t, 80))),
    "fold72-quoted-nospace": lambda t: quote(fold(t, 72), ">"),
    "quoted-twice": lambda t: quote(quote(fold(t, 76)), ">"),
    "indent2": lambda t: mail(indent(t, "  ")),
    "indent4": lambda t: mail(indent(t, "    ")),
    "indent8": lambda t: indent(t, " " * 8),
    "tab": lambda t: mail(indent(t, "\t")),
    "quote-offset1": lambda t: quote(t, ">  "),
    "quote-offset3": lambda t: quote(t, ">    "),
    "markdown-fence": lambda t: "Output:\n\n```\n" + t + "```\n\nAny idea?\n",
    "rest-literal": lambda t: "The tree is::\n\n" + indent(t, "    ") + "\nas expected.\n",
    "quoted-printable": lambda t: qp(t),
    "quoted-printable-crlf-folded": lambda t: qp(fold(t, 72), crlf=True),
    "qmp": lambda t: json.dumps({"return": t.replace("\n", "\r\n")}),
    "bom": lambda t: "\ufeff" + t,
}


@dataclass(frozen=True)
class Item:
    name: str
    source: Path
    text: str


def same_model_items(step: int = 3) -> list[Item]:
    """Each form applied to a deterministic share of the samples (every ``step``-th,
    rotating), the 72-column fold to all of them."""
    items = []
    for k, (form, make) in enumerate(SAME.items()):
        chosen = SAMPLES if form == "fold72-quoted" else SAMPLES[k % step :: step]
        for src in chosen:
            items.append(Item(f"{src.parent.name}-{src.stem}-{form}", src, make(src.read_text())))
    return items


def elided(text: str, marker: str, every: int = 5) -> tuple[str, str]:
    """Replace leaf region/range lines by an elision marker: (paste, the original with
    those lines removed).  A leaf (the next line is no deeper) can go without changing
    the nesting of the rest; alias lines stay (their targets are printed later)."""
    lines = text.split("\n")
    keep, paste = [], []
    count = 0
    row_depth = 2 if text.startswith("FlatView") else 4  # flat rows; tree rows below a root
    for i, line in enumerate(lines):
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        depth = len(line) - len(line.lstrip(" "))
        leaf = len(nxt) - len(nxt.lstrip(" ")) <= depth or not nxt.strip()
        prev = lines[i - 1] if i else ""
        body = line.lstrip(" ")
        is_row = depth >= row_depth and body[:16].isalnum() and "): alias " not in line
        if is_row and leaf and prev.startswith("  ") and count % every == 1:
            if not paste or paste[-1] != marker:
                paste.append(marker)
        else:
            keep.append(line)
            paste.append(line)
        count += is_row
    return "\n".join(paste), "\n".join(keep)


MARKERS = ("...", "....", "[...]", "... skipped 30 virtio-mmio regions", "<snip>")


def flat_rows(text: str) -> tuple[str, list[str]]:
    """The range rows of the first FlatView, without their header: (paste, rows)."""
    lines = text.split("\n")
    start = next(
        i
        for i, ln in enumerate(lines[:-1])
        if ln.startswith(" Root memory region")
        and lines[i + 1][2:3] != " "
        and lines[i + 1].startswith("  0")
    )
    rows = []
    for ln in lines[start + 1 :]:
        if not ln.startswith("  ") or ln.startswith("  No rendered"):
            break
        rows.append(ln)
    return "\n".join(rows) + "\n", rows


def tree_rows(text: str, name: str = "memory") -> tuple[str, list[str]]:
    """The rows of one address space's tree without its ``address-space:`` heading."""
    lines = text.split("\n")
    start = lines.index(f"address-space: {name}")
    i = start + 1
    while lines[i].startswith("address-space: "):
        i += 1
    rows = []
    while i < len(lines) and lines[i].startswith("  "):
        rows.append(lines[i])
        i += 1
    return "\n".join(rows) + "\n", rows


def without_sections(text: str) -> str:
    """A tree pasted up to its first ``memory-region:`` section (alias targets missing)."""
    return text.split("\nmemory-region: ")[0] + "\n"


def diff_paste(before: str, after: str, context: int) -> str:
    body = difflib.unified_diff(
        before.split("\n"), after.split("\n"), "before.txt", "after.txt", n=context, lineterm=""
    )
    return "I diffed the two:\n\n" + "\n".join(body) + "\n"


def old_format(text: str) -> str:
    """The same tree as QEMU 1.x printed it (mtree_info of 1.x): ``memory`` and ``I/O``
    headings, roots in column 0, ``aliases`` then each alias target's bare name."""
    out = []
    in_sections = False
    for line in text.split("\n"):
        if line.startswith("address-space: "):
            out.append(line.removeprefix("address-space: "))
        elif line.startswith("memory-region: "):
            if not in_sections:
                out.append("aliases")
                in_sections = True
            out.append(line.removeprefix("memory-region: "))
        elif line:
            out.append(line[2:])
    return "\n".join(out) + "\n"


def ungrouped(text: str) -> str:
    """Before QEMU 7.0 every address space printed its own tree: the grouped headings of
    a later dump, each with its own copy of the tree."""
    out = []
    for block in text.strip("\n").split("\n\n"):
        lines = block.split("\n")
        heads = [ln for ln in lines if ln.startswith("address-space: ")]
        body = [ln for ln in lines if not ln.startswith("address-space: ")]
        out.extend("\n".join([h, *body]) for h in heads) if heads else out.append(block)
    return "\n\n".join(out) + "\n"


def main(folder: str) -> None:
    dest = Path(folder)
    dest.mkdir(parents=True, exist_ok=True)
    for item in same_model_items():
        (dest / f"{item.name}.txt").write_text(item.text, encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1])
