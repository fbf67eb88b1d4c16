"""Tables a person reads in a terminal (tabulate, imported by the functions that draw
one, so the notes and summaries of other commands do not load it)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..model import Dump, FlatDump, FlatRange, FlatView, MemoryRegion, MtreeDump
from .qemu import format_range
from .units import human_size

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
            "address spaces": sum(len(g.names) for g in d.address_spaces),
            "regions": sum(1 for mr, _ in regions if not mr.hidden),
            "aliases": sum(1 for mr, _ in regions if mr.alias is not None),
            "sections": len(d.sections),
            "flat views": "",
            "ranges by type": " ".join(f"{t}:{n}" for t, n in sorted(types.items())),
        }
    assert isinstance(d, FlatDump)
    types = Counter(r.type for v in d.views for r in v.ranges)
    return {
        "line": d.line,
        "dump": "info mtree -f",
        "address spaces": sum(len(v.address_spaces) for v in d.views),
        "regions": "",
        "aliases": "",
        "sections": "",
        "flat views": len(d.views),
        "ranges by type": " ".join(f"{t}:{n}" for t, n in sorted(types.items())),
    }


def dump_summary(dumps: Iterable[Dump]) -> str:
    from tabulate import tabulate

    rows = [summary_row(d) for d in dumps]
    return tabulate(rows, headers="keys", tablefmt="simple")


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


def flatten_table(view: FlatView, parents: dict[int, MemoryRegion]) -> str:
    from tabulate import tabulate

    rows = [
        [
            f"{r.start:016x}",
            f"{(r.end - 1) % (1 << 64):016x}",
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
    return tabulate(rows, headers=heads, tablefmt="simple")


def guesses_text(result: FlattenResult) -> list[str]:
    """The guesses grouped by rule, and every ambiguity."""
    lines = []
    by_rule = Counter((g.what, g.rule) for g in result.guesses)
    if by_rule:
        lines.append(f"guesses ({len(result.guesses)} regions; the tree does not print these):")
        for (what, rule), n in by_rule.most_common():
            names = sorted({g.region.name for g in result.guesses if g.rule == rule})
            shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
            lines.append(f"  {n:4d} {what}: {rule} [{shown}]")
    by_kind: dict[str, list] = {}
    for a in result.ambiguities:
        by_kind.setdefault(a.kind, []).append(a)
    for kind, items in by_kind.items():
        if len(items) > 3:
            names = ", ".join(sorted({r.name for a in items for r in a.regions})[:6])
            lines.append(f"ambiguous: {len(items)} x {kind} ({names}, ...); --json lists each")
            items = items[:1]
        lines.extend(f"ambiguous: {a}" for a in items)
    return lines


def mismatch_text(report: CheckReport) -> list[str]:
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


def visibility_text(vis: list) -> str:
    """``flatten --region``: per placement of the region, what the guest sees there."""
    from tabulate import tabulate

    out = []
    for v in vis:
        out.append(
            f"{v.region!r} (line {v.line}) in {', '.join(v.address_spaces) or 'its section'}: "
            f"{v.start:#x}-{v.end - 1:#x}, {human_size(v.visible_bytes)} of "
            f"{human_size(v.end - v.start)} visible"
        )
        rows = [
            [
                f"{p.start:016x}",
                f"{p.end - 1:016x}",
                human_size(p.end - p.start),
                "visible" if p.own else "shadowed",
                p.by or "(nothing: unassigned)",
            ]
            for p in v.parts
        ]
        out.append(tabulate(rows, headers=["start", "end", "size", "", "seen there"]))
        out.append("")
    return "\n".join(out) + ("\n" if out else "")
