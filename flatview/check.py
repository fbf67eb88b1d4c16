"""Compare recomputed FlatViews with the ones QEMU printed, by content.

QEMU prints FlatViews and address-space groups in hash-table order (``mtree_info``
walks a GHashTable), and numbers them in that order, so views are matched by the set
of address spaces that share them, and ranges are compared one by one.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from .flatten import FlattenResult
from .model import FlatDump, FlatRange, FlatView

__all__ = ["CheckReport", "Mismatch", "compare", "range_key"]


def range_key(r: FlatRange) -> tuple:
    """What a range line says, minus owners and accelerator labels."""
    return (r.start, r.size, r.priority, r.type, r.nonvolatile, r.name, r.offset)


@dataclass(frozen=True, slots=True)
class Mismatch:
    address_spaces: tuple[str, ...]
    what: str  # "missing view", "extra view", "range"
    qemu: tuple[FlatRange, ...] = ()  # ranges only QEMU printed
    flatview: tuple[FlatRange, ...] = ()  # ranges only flatview computed
    qemu_line: int | None = None


@dataclass(frozen=True, slots=True)
class CheckReport:
    views_compared: int
    ranges_compared: int
    mismatches: tuple[Mismatch, ...]
    result: FlattenResult

    @property
    def ok(self) -> bool:
        return not self.mismatches


def _key(v: FlatView) -> tuple[str, ...]:
    return tuple(sorted(v.names))


def _overlap(a: Counter, b: Counter) -> int:
    return sum((a & b).values())


def compare(result: FlattenResult, flat: FlatDump) -> CheckReport:
    """Pair each printed view with a recomputed one of the same address spaces.

    Several views can share one set of address-space names (one ``pci_bridge_pci_mem``
    per bridge) and QEMU prints them in hash-table order, which changes from run to run
    (QEMU 10 swaps two bridges' views between runs).  So views with the same names are
    paired by content, never by position: identical range sets first, then the pair
    sharing the most ranges, until one side runs out.
    """
    mine: dict[tuple[str, ...], list[FlatView]] = {}
    for v in result.views:
        mine.setdefault(_key(v), []).append(v)
    theirs_by_key: dict[tuple[str, ...], list[FlatView]] = {}
    for v in flat.views:
        theirs_by_key.setdefault(_key(v), []).append(v)
    mismatches: list[Mismatch] = []
    views = ranges = 0
    paired: dict[int, FlatView] = {}  # id(QEMU's view) -> ours
    for key, group in theirs_by_key.items():
        cands = mine.pop(key, [])
        tc = [Counter(range_key(r) for r in v.ranges) for v in group]
        oc = [Counter(range_key(r) for r in v.ranges) for v in cands]
        free_t, free_o = set(range(len(group))), set(range(len(cands)))
        for i in sorted(free_t):  # identical content: certainly the same view
            j = next((j for j in sorted(free_o) if oc[j] == tc[i]), None)
            if j is not None:
                paired[id(group[i])] = cands[j]
                free_t.discard(i)
                free_o.discard(j)
        while free_t and free_o:  # the rest by most ranges in common
            i, j = max(
                ((i, j) for i in sorted(free_t) for j in sorted(free_o)),
                key=lambda ij: _overlap(tc[ij[0]], oc[ij[1]]),
            )
            paired[id(group[i])] = cands[j]
            free_t.discard(i)
            free_o.discard(j)
        for j in sorted(free_o):
            mismatches.append(Mismatch(key, "extra view", flatview=cands[j].ranges))
    for theirs in flat.views:  # report in QEMU's print order
        key = _key(theirs)
        ours = paired.get(id(theirs))
        if ours is None:
            mismatches.append(Mismatch(key, "missing view", theirs.ranges, qemu_line=theirs.line))
            continue
        views += 1
        ranges += len(theirs.ranges)
        a = Counter(range_key(r) for r in theirs.ranges)
        b = Counter(range_key(r) for r in ours.ranges)
        if a != b:
            only_q = tuple(r for r in theirs.ranges if a[range_key(r)] > b[range_key(r)])
            only_f = tuple(r for r in ours.ranges if b[range_key(r)] > a[range_key(r)])
            mismatches.append(Mismatch(key, "range", only_q, only_f, theirs.line))
    for key, rest in mine.items():
        for v in rest:
            mismatches.append(Mismatch(key, "extra view", flatview=v.ranges))
    return CheckReport(views, ranges, tuple(mismatches), result)
