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


def compare(result: FlattenResult, flat: FlatDump) -> CheckReport:
    mine: dict[tuple[str, ...], list[FlatView]] = {}
    for v in result.views:
        mine.setdefault(_key(v), []).append(v)
    mismatches: list[Mismatch] = []
    views = ranges = 0
    for theirs in flat.views:
        key = _key(theirs)
        cands = mine.get(key)
        if not cands:
            mismatches.append(Mismatch(key, "missing view", theirs.ranges, qemu_line=theirs.line))
            continue
        ours = cands.pop(0)
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
