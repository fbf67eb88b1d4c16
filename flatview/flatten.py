"""Recompute FlatViews from a region tree, exactly as QEMU renders them.

Mirrors system/memory.c: ``memory_region_get_flatview_root`` (which views are shared),
``render_memory_region`` + ``flatview_insert`` (priorities, clipping, alias arithmetic,
gap filling by terminating regions), and ``flatview_simplify`` / ``can_merge``.

A dump does not print everything rendering needs.  What the text leaves open is decided
by the rules in :mod:`flatview.terminates` and reported: every :class:`Guess` the
flattener relied on and every :class:`Ambiguity` whose outcome the dump cannot settle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import attrgetter
from typing import NamedTuple

# (importing the module runs the package's __init__ all the same: SortedDict and
# SortedSet are loaded too)
from sortedcontainers.sortedlist import SortedKeyList

from .model import (
    U64,
    UNPASTED_ROOT,
    FlatRange,
    FlatView,
    FlatViewAS,
    MemoryRegion,
    MtreeDump,
)
from .terminates import UNMERGEABLE, Knowledge, Rule

__all__ = ["Ambiguity", "FlattenResult", "Guess", "flatten", "flatview_root"]


class Guess(NamedTuple):
    """A fact the dump does not print that the flattener had to assume."""

    region: MemoryRegion
    what: str  # "terminates", "container", "readonly", "render order"
    rule: str  # why: the rule of flatview.terminates that decided

    def __str__(self) -> str:
        return f"line {self.region.line}: {self.region.name!r} {self.what}: {self.rule}"


class Ambiguity(NamedTuple):
    """A range whose content the dump cannot decide; each outcome is spelled out."""

    kind: str
    regions: tuple[MemoryRegion, ...]
    start: int
    end: int  # exclusive
    outcomes: tuple[str, ...]

    def __str__(self) -> str:
        names = ", ".join(f"{r.name!r} (line {r.line})" for r in self.regions)
        return f"{self.kind}: {names} over {self.start:#x}-{self.end - 1:#x}: " + " | ".join(
            self.outcomes
        )


@dataclass(frozen=True, slots=True)
class FlattenResult:
    views: tuple[FlatView, ...]
    guesses: tuple[Guess, ...] = ()
    ambiguities: tuple[Ambiguity, ...] = ()
    # id(MemoryRegion) -> [(view index, start, end)]: where each region was rendered
    placements: dict[int, list[tuple[int, int, int]]] = field(default_factory=dict)


# ---------------------------------------------------------------------------- render


@dataclass(slots=True)
class _Piece:
    """A FlatRange under construction (start, size, the MR, offset_in_region, flags)."""

    start: int
    size: int
    mr: MemoryRegion
    offset: int
    readonly: bool
    nonvolatile: bool
    unmergeable: bool  # FlatRange.unmergeable (QEMU >= 8.2)

    @property
    def end(self) -> int:
        return self.start + self.size


@dataclass
class _Renderer:
    """One render_memory_region walk: the knowledge it applies, and what it had to guess
    or could not decide."""

    know: Knowledge
    guesses: dict[tuple[int, str], Guess] = field(default_factory=dict)
    ambiguities: list[Ambiguity] = field(default_factory=list)
    _seen_amb: set[tuple] = field(default_factory=set)
    placements: dict[int, list[tuple[int, int, int]]] = field(default_factory=dict)
    view_index: int = 0

    def terminates(self, mr: MemoryRegion) -> bool:
        decision = self.know.terminates(mr)
        self._note(mr, "terminates" if decision.value else "is a pure container", decision)
        return decision.value

    def readonly(self, mr: MemoryRegion) -> bool:
        decision = self.know.readonly(mr)
        if decision.value or decision.guess:
            self._note(mr, "is read-only" if decision.value else "is writable", decision)
        return decision.value

    def unmergeable(self, mr: MemoryRegion) -> bool:
        decision = self.know.unmergeable(mr)
        if decision is None:
            return False
        self._note(mr, "is unmergeable" if decision.value else "is mergeable", decision)
        return decision.value

    def _note(self, mr: MemoryRegion, what: str, decision: Rule) -> None:
        if decision.guess:
            key = (id(mr), what)
            if key not in self.guesses:  # once: a region renders once per view it is in
                self.guesses[key] = Guess(mr, what, decision.reason)

    def render(
        self,
        view: SortedKeyList,
        mr: MemoryRegion,
        base: int,
        clip: tuple[int, int],
        ro: bool,
        nv: bool,
        um: bool = False,
    ) -> None:
        """render_memory_region: ``clip`` is [start, end); ``base`` may be negative;
        ``um``: an unmergeable region on the path (QEMU >= 8.2)."""
        if not mr.enabled:
            if mr.hidden and mr.subregions:
                self._hidden(mr, base)
            return
        base += mr.addr
        ro = ro or self.readonly(mr)
        nv = nv or mr.nonvolatile
        um = um or self.unmergeable(mr)
        lo, hi = base, base + mr.size
        if not (lo <= clip[0] < hi or clip[0] <= lo < clip[1]):
            return  # int128 "intersects"
        clip = (lo if lo > clip[0] else clip[0], hi if hi < clip[1] else clip[1])
        if clip[0] < clip[1]:
            placed = self.placements.get(id(mr))
            if placed is None:
                placed = self.placements[id(mr)] = []
            placed.append((self.view_index, *clip))
        if mr.alias is not None:
            target = mr.alias.target
            if target is not None:
                if not ro and target.type in ("ram", "ramd") and not self.know.flat_names:
                    self._maybe_readonly(mr, target, clip)
                self.render(view, target, base - target.addr - mr.alias.offset, clip, ro, nv, um)
            elif clip[0] < clip[1]:
                self._unpasted(mr, clip, base)
            return
        if mr.name == UNPASTED_ROOT and mr.line is not None and mr.subregions:
            self._unpasted_parent(mr, base)
        if mr.subregions:
            for child in self.know.render_order(mr):
                self.render(view, child, base, clip, ro, nv, um)
            for members, why in self.know.overlaps(mr):
                self._check_overlap(mr, members, why, base, clip)
        if self.terminates(mr):
            _fill_gaps(view, mr, base, clip, ro, nv, um)

    def _unpasted(self, alias: MemoryRegion, clip: tuple[int, int], base: int) -> None:
        """An alias whose target's ``memory-region:`` section was not pasted: what it
        shows over its window is unknown (render_memory_region would render the target)."""
        assert alias.alias is not None
        self.ambiguities.append(
            Ambiguity(
                "alias target not pasted",
                (alias,),
                clip[0],
                clip[1],
                (
                    f"the guest sees {alias.alias.target_name!r} from offset "
                    f"{alias.alias.offset + clip[0] - base:#x}, whose section was not pasted",
                    "left out of the view above: paste 'info mtree' whole to decide",
                ),
            )
        )

    def _unpasted_parent(self, mr: MemoryRegion, base: int) -> None:
        """Rows pasted without the region that holds them: between and around them the
        parent may render its own MMIO or RAM, or nothing (a pure container)."""
        lo = min(base + c.addr for c in mr.subregions)
        hi = max(base + c.addr + c.size for c in mr.subregions)
        self.ambiguities.append(
            Ambiguity(
                "parent not pasted",
                mr.subregions,
                lo,
                hi,
                (
                    "nothing between the pasted rows: their parent is a pure container",
                    "the parent's own MMIO or RAM between them: paste its line to decide",
                ),
            )
        )

    def _hidden(self, mr: MemoryRegion, base: int) -> None:
        """Subregions printed one level too deep: their parent is a disabled region QEMU
        >= 5.1 did not print (no -D), so none of them renders (spec §4 G)."""
        if ("hidden", id(mr)) in self._seen_amb:
            return
        self._seen_amb.add(("hidden", id(mr)))
        base += mr.addr
        lo = min(base + c.addr for c in mr.subregions)
        hi = max(base + c.addr + c.size for c in mr.subregions)
        self.ambiguities.append(
            Ambiguity(
                "hidden disabled region",
                mr.subregions,
                lo,
                hi,
                (
                    "nothing renders: these subregions belong to a disabled region that "
                    "'info mtree' hid (QEMU >= 5.1 without -D)",
                    "take 'info mtree -D' to see the region and confirm",
                ),
            )
        )

    def _maybe_readonly(
        self, alias: MemoryRegion, target: MemoryRegion, clip: tuple[int, int]
    ) -> None:
        """memory_region_set_readonly on an alias is never printed (spec §4 D)."""
        if ("ro", id(alias)) in self._seen_amb or clip[0] >= clip[1]:
            return
        self._seen_amb.add(("ro", id(alias)))
        self.ambiguities.append(
            Ambiguity(
                "read-only alias?",
                (alias,),
                clip[0],
                clip[1],
                (
                    f"{alias.name!r} is writable: the guest sees {target.name!r} as "
                    f"{target.type} (flatview's reading)",
                    f"if QEMU set {alias.name!r} read-only, QEMU prints these ranges as rom",
                ),
            )
        )

    def _check_overlap(
        self,
        parent: MemoryRegion,
        members: tuple[MemoryRegion, ...],
        why: str,
        base: int,
        clip: tuple[int, int],
    ) -> None:
        """Report an equal-priority overlap only where at least two of the siblings would
        render something (spec §4 A): then the dump cannot tell which one the guest sees.
        ``members`` are two siblings, or a cluster of many overlapping one another."""
        key = tuple(id(m) for m in members)
        if key in self._seen_amb:
            return
        starts = [base + m.addr for m in members]
        ends = [base + m.addr + m.size for m in members]
        if len(members) == 2:  # where the two overlap
            lo, hi = max(*starts, clip[0]), min(*ends, clip[1])
        else:  # the cluster's span
            lo, hi = max(min(starts), clip[0]), min(max(ends), clip[1])
        if lo >= hi:
            return
        scratch = _Renderer(self.know)
        shown = 0
        for sib in members:
            pieces = _new_view()
            scratch.render(pieces, sib, base, (lo, hi), False, False)
            shown += bool(pieces)
        if shown < 2:
            return
        self._seen_amb.add(key)
        first = members[0]
        if len(members) == 2:
            outcomes = (
                f"{first.name!r} wins ({why})",
                f"{members[1].name!r} wins if it was added to {parent.name!r} last",
            )
        else:
            outcomes = (
                f"{first.name!r} wins where it overlaps ({why}), then the others in printed order",
                f"where two of these {len(members)} siblings overlap, the one added to "
                f"{parent.name!r} last wins",
            )
        self.ambiguities.append(Ambiguity("equal-priority overlap", members, lo, hi, outcomes))


def _fill_gaps(
    view: SortedKeyList,
    mr: MemoryRegion,
    base: int,
    clip: tuple[int, int],
    ro: bool,
    nv: bool,
    um: bool,
) -> None:
    """The gap-filling loop of render_memory_region (``flatview_insert`` of each hole).

    The view is kept sorted by start (QEMU's array with memmove is quadratic when many
    siblings fill holes in front of each other: 200,000 siblings)."""
    pos, end = clip
    holes: list[_Piece] = []
    i = view.bisect_key_right(pos)  # the first piece starting after pos
    if i and view[i - 1].end > pos:  # the piece before may cover pos
        pos = view[i - 1].end
    n = len(view)
    while i < n and pos < end:
        r = view[i]
        i += 1
        if pos < r.start:
            size = min(end, r.start) - pos
            holes.append(_Piece(pos, size, mr, pos - base, ro, nv, um))
        pos = max(pos, r.end)
    if pos < end:
        holes.append(_Piece(pos, end - pos, mr, pos - base, ro, nv, um))
    # most fills leave one hole or none: add() it (update() sorts what it is given and,
    # into a view under four times its size, rebuilds the whole view)
    if len(holes) == 1:
        view.add(holes[0])
    elif holes:
        view.update(holes)


def _new_view() -> SortedKeyList:
    return SortedKeyList(key=attrgetter("start"))


def _simplify(view: SortedKeyList, kept_apart: list[tuple[_Piece, _Piece]]) -> list[_Piece]:
    """flatview_simplify: merge neighbours when can_merge() holds.  Neighbours that only
    ``unmergeable`` keeps apart (QEMU >= 8.2) go to ``kept_apart``: older QEMUs merge them.
    Merging grows the view's own pieces (no copies): the view is dropped after this."""
    out: list[_Piece] = []
    for p in view:
        if out:
            q = out[-1]
            if (
                q.end == p.start
                and q.mr is p.mr
                and q.offset + q.size == p.offset
                and q.readonly == p.readonly
                and q.nonvolatile == p.nonvolatile
            ):
                if not q.unmergeable and not p.unmergeable:
                    q.size += p.size
                    continue
                kept_apart.append((q, p))
        out.append(p)
    return out


def _readonly_type(printed: str) -> str:
    """The type a read-only range prints: ``rom``; QEMU <= 2.8 printed letters (readable,
    writable: mtree_print_mr's ``%c%c``), there a read-only range reads ``R-``."""
    if len(printed) == 2 and printed[0] in "R-" and printed[1] in "W-":
        return printed[0] + "-"
    return "rom"


def _to_range(p: _Piece) -> FlatRange:
    mr = p.mr
    # positional, in FlatRange's field order (start, size, priority, type, name, offset,
    # nonvolatile, owner, accel, line, region, readonly): keywords cost a fifth more
    return FlatRange(
        p.start,
        p.size,
        mr.priority,
        _readonly_type(mr.type) if p.readonly else mr.type,
        mr.name,
        p.offset,
        p.nonvolatile,
        mr.owner,
        (),
        None,
        mr,
        p.readonly,
    )


# ----------------------------------------------------------------------- whole views


def flatview_root(mr: MemoryRegion | None, know: Knowledge) -> MemoryRegion | None:
    """memory_region_get_flatview_root: skip aliases and containers that add nothing."""
    while mr is not None and mr.enabled:
        if mr.alias is not None:
            target = mr.alias.target
            if target is not None and mr.alias.offset == 0 and mr.size >= target.size:
                mr = target
                continue
            return mr
        if not know.terminates(mr).value:
            enabled = [c for c in mr.subregions if c.enabled]
            if not enabled:
                return None
            if len(enabled) == 1 and enabled[0].addr == 0 and mr.size >= enabled[0].size:
                mr = enabled[0]
                continue
        return mr
    return None


def flatten(dump: MtreeDump, know: Knowledge | None = None) -> FlattenResult:
    """One FlatView per distinct flatview root, shared by the address spaces using it."""
    know = know or Knowledge.for_dump(dump)
    r = _Renderer(know)
    order: list[int] = []
    by_root: dict[int, tuple[MemoryRegion | None, list[FlatViewAS]]] = {}
    for group in dump.address_spaces:
        fv_root = flatview_root(group.root, know)
        key = id(fv_root) if fv_root is not None else 0
        if key not in by_root:
            by_root[key] = (fv_root, [])
            order.append(key)
        root = group.root
        alias = root.alias.target_name if root is not None and root.alias is not None else None
        for name in group.names:
            by_root[key][1].append(FlatViewAS(name, root.name if root else None, alias))
    views: list[FlatView] = []

    def add_view(root: MemoryRegion | None, ases: list[FlatViewAS], name: str | None) -> None:
        """generate_memory_topology: render from the root, then flatview_simplify."""
        pieces = _new_view()
        if root is not None:
            r.view_index = len(views)
            r.render(pieces, root, 0, (0, U64), False, False)
        kept_apart: list[tuple[_Piece, _Piece]] = []
        ranges = tuple(_to_range(p) for p in _simplify(pieces, kept_apart))
        for q, p in kept_apart:
            r.ambiguities.append(
                Ambiguity(
                    "version-dependent",
                    (q.mr,),
                    q.start,
                    p.end,
                    (
                        f"QEMU >= {UNMERGEABLE.since[0]}.{UNMERGEABLE.since[1]}: two ranges, "
                        f"split at {p.start:#x} (unmergeable memslot aliases; "
                        f"{UNMERGEABLE.source})",
                        "older QEMU: one range (flatview_simplify merges them)",
                    ),
                )
            )
        views.append(FlatView(tuple(ases), name, ranges, len(views), rendered=bool(ranges)))

    for key in order:
        fv_root, ases = by_root[key]
        add_view(fv_root, ases, fv_root.name if fv_root is not None else None)
    if not dump.address_spaces:
        # Only memory-region: sections (a pasted excerpt): render each on its own.
        for sec in dump.sections:
            if sec.root is not None:
                add_view(sec.root, [], sec.name)
    return FlattenResult(
        tuple(views), tuple(r.guesses.values()), tuple(r.ambiguities), r.placements
    )
