"""Region visibility: which parts of a region the guest sees, and what hides the rest.

The flattener records where it rendered each MemoryRegion (its span in the address
space, after clipping); comparing that with the FlatRanges there tells which parts
belong to the region (or its subregions) and which to something of higher precedence.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import UsageError
from .flatten import FlattenResult
from .model import MtreeDump, walk

__all__ = ["Shadow", "Visibility", "visibility"]


@dataclass(frozen=True, slots=True)
class Shadow:
    start: int
    end: int  # exclusive
    by: str  # the region name that the guest sees there ("" = nothing: unassigned)
    own: bool  # the region itself or one of its subregions


@dataclass(frozen=True, slots=True)
class Visibility:
    region: str
    line: int | None
    address_spaces: tuple[str, ...]
    start: int
    end: int
    parts: tuple[Shadow, ...]

    @property
    def visible_bytes(self) -> int:
        return sum(p.end - p.start for p in self.parts if p.own)


def visibility(tree: MtreeDump, result: FlattenResult, name: str) -> list[Visibility]:
    targets = [mr for mr, _ in tree.regions() if mr.name == name]
    if not targets:
        raise UsageError(f"no region named {name!r} in the tree")
    out: list[Visibility] = []
    for mr in targets:
        own = {id(m) for m, _ in walk(mr)}
        for vi, start, end in result.placements.get(id(mr), ()):
            view = result.views[vi]
            parts: list[Shadow] = []
            pos = start
            for r in view.ranges:
                if r.end <= start or r.start >= end:
                    continue
                lo, hi = max(r.start, start), min(r.end, end)
                if lo > pos:
                    parts.append(Shadow(pos, lo, "", False))
                mine = r.region is not None and id(r.region) in own
                parts.append(Shadow(lo, hi, r.name, mine))
                pos = hi
            if pos < end:
                parts.append(Shadow(pos, end, "", False))
            out.append(Visibility(mr.name, mr.line, view.names, start, end, tuple(parts)))
    return out
