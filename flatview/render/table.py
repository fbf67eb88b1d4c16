"""Tables a person reads in a terminal (render.layout imports tabulate only when it draws
one, so the notes and summaries of other commands do not load it)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from ..model import Dump, FlatDump, FlatRange, FlatView, MemoryRegion, MtreeDump
from ..source import REWRITTEN
from .layout import WIDTH, table, wrap, wrap_lines
from .qemu import format_range
from .units import addr, human_size

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (4 ms a run)

if TYPE_CHECKING:
    from ..check import CheckReport
    from ..flatten import FlattenResult

__all__ = [
    "dump_summary",
    "flatten_table",
    "guesses_text",
    "human_size",
    "kind_of",
    "mismatch_text",
]


def summary_row(d: Dump) -> dict[str, object]:
    if isinstance(d, MtreeDump):
        regions = list(d.regions())
        types = Counter(mr.type for mr, _ in regions if not mr.hidden)
        return {
            "line": d.line,
            "dump": "info mtree",
            "AS": sum(len(g.names) for g in d.address_spaces),
            "regions": sum(1 for mr, _ in regions if not mr.hidden),
            "aliases": sum(1 for mr, _ in regions if mr.alias is not None),
            "sections": len(d.sections),
            "views": "",
            "ranges by type": " ".join(f"{t}:{n}" for t, n in sorted(types.items())),
        }
    assert isinstance(d, FlatDump)
    types = Counter(r.type for v in d.views for r in v.ranges)
    return {
        "line": d.line,
        "dump": "info mtree -f",
        "AS": sum(len(v.address_spaces) for v in d.views),
        "regions": "",
        "aliases": "",
        "sections": "",
        "views": len(d.views),
        "ranges by type": " ".join(f"{t}:{n}" for t, n in sorted(types.items())),
    }


def dump_summary(dumps: Iterable[Dump], width: int | None = WIDTH) -> str:
    dumps = list(dumps)
    rows = [summary_row(d) for d in dumps]
    if any(d.part or d.partial for d in dumps):
        for row, d in zip(rows, dumps, strict=True):
            row["notes"] = ", ".join(n for n in (d.part, "partial" if d.partial else "") if n)
    heads = list(rows[0]) if rows else []
    return table([list(r.values()) for r in rows], heads, width)


def cleanup_text(counts: dict[str, int], skipped: int) -> list[str]:
    """What clean-up did to the text, so that no loss is silent (flatview.source)."""
    out = []
    if skipped:
        out.append(f"{skipped} lines skipped as elisions/prose")
    rewritten = {k: n for k, n in counts.items() if k in REWRITTEN}
    if rewritten:
        out.append(
            "lines rewritten: " + ", ".join(f"{k} {n}" for k, n in sorted(rewritten.items()))
        )
    return out


def kind_of(r: FlatRange) -> str:
    """What the guest gets: direct-mapped RAM, ROM, or a trap into QEMU."""
    if r.type == "ramd":
        return "direct (RAM device)"
    if r.type == "ram":
        return "direct (RAM)"
    if r.type in ("rom", "romd"):
        return "ROM" if r.type == "rom" else "ROM device"
    return "trapped I/O"


def region_path(mr: MemoryRegion | None, parents: dict[int, MemoryRegion]) -> str:
    parts = []
    while mr is not None:
        parts.append(mr.name)
        mr = parents.get(id(mr))
    return " / ".join(reversed(parts))


def flatten_table(
    view: FlatView, parents: dict[int, MemoryRegion], width: int | None = WIDTH
) -> str:
    rows = [
        [
            addr(r.start),
            addr((r.end - 1) % (1 << 64)),
            human_size(r.size),
            kind_of(r),
            r.type,
            r.priority,
            r.name + (f" @{r.offset:#x}" if r.offset else ""),
            region_path(parents.get(id(r.region)) if r.region else None, parents),
        ]
        for r in view.ranges
    ]
    heads = ["start", "end", "size", "kind", "type", "prio", "region", "inside"]
    return table(rows, heads, width)


def guesses_text(result: FlattenResult, width: int | None = WIDTH) -> list[str]:
    """The guesses grouped by rule, and every ambiguity, each wrapped to ``width``."""
    lines = []
    by_rule = Counter((g.what, g.rule) for g in result.guesses)
    if by_rule:
        lines.append(f"guesses ({len(result.guesses)} regions; the tree does not print these):")
        for (what, rule), n in by_rule.most_common():
            names = sorted({g.region.name for g in result.guesses if g.rule == rule})
            shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
            lines.extend(wrap(f"  {n:4d} {what}: {rule} [{shown}]", width, "     "))
    by_kind: dict[str, list] = {}
    for a in result.ambiguities:
        by_kind.setdefault(a.kind, []).append(a)
    for kind, items in by_kind.items():
        if len(items) > 3:
            names = ", ".join(sorted({r.name for a in items for r in a.regions})[:6])
            line = f"ambiguous: {len(items)} x {kind} ({names}, ...); --json lists each"
            lines.extend(wrap(line, width))
            items = items[:1]
        lines.extend(wrap_lines([f"ambiguous: {a}" for a in items], width))
    return lines


def mismatch_text(report: CheckReport) -> list[str]:
    """One line per differing range, QEMU's own line whole (tools and people grep it)."""
    lines = []
    for m in report.mismatches:
        where = ", ".join(m.address_spaces)
        if m.what != "range":
            lines.append(f"{m.what}: FlatView of {where}")
        for r in m.qemu:
            lines.append(f"only in QEMU   [{where}] line {r.line}: {format_range(r)}")
        for r in m.flatview:
            lines.append(f"only flatview  [{where}]: {format_range(r)}")
    return lines


def visibility_text(vis: list, width: int | None = WIDTH) -> str:
    """``flatten --region``: per placement of the region, what the guest sees there."""
    out = []
    for v in vis:
        out.extend(
            wrap(
                f"{v.region!r} (line {v.line}) in "
                f"{', '.join(v.address_spaces) or 'its section'}: "
                f"{v.start:#x}-{v.end - 1:#x}, {human_size(v.visible_bytes)} of "
                f"{human_size(v.end - v.start)} visible",
                width,
            )
        )
        rows = [
            [
                addr(p.start),
                addr(p.end - 1),
                human_size(p.end - p.start),
                "visible" if p.own else "shadowed",
                p.by or "(nothing: unassigned)",
            ]
            for p in v.parts
        ]
        out.append(table(rows, ["start", "end", "size", "", "seen there"], width))
        out.append("")
    return "\n".join(out) + ("\n" if out else "")
