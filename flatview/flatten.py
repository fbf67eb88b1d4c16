"""Recompute FlatViews from a region tree, exactly as QEMU renders them.

Mirrors system/memory.c: ``memory_region_get_flatview_root`` (which views are shared),
``render_memory_region`` + ``flatview_insert`` (priorities, clipping, alias arithmetic,
gap filling by terminating regions), and ``flatview_simplify`` / ``can_merge``.

A dump does not print everything rendering needs.  What the text leaves open is decided
by the rules in :mod:`flatview.terminates` and reported: every :class:`Guess` the
flattener relied on and every :class:`Ambiguity` whose outcome the dump cannot settle.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field

from .model import (
    U64,
    UNPASTED_ROOT,
    FlatRange,
    FlatView,
    FlatViewAS,
    MemoryRegion,
    MtreeDump,
)
from .terminates import Knowledge, Rule

__all__ = ["Ambiguity", "FlattenResult", "Guess", "flatten", "flatview_root"]


@dataclass(frozen=True, slots=True)
class Guess:
    """A fact the dump does not print that the flattener had to assume."""

    region: MemoryRegion
    what: str  # "terminates", "container", "readonly", "render order"
    rule: str  # why: the rule of flatview.terminates that decided

    def __str__(self) -> str:
        return f"line {self.region.line}: {self.region.name!r} {self.what}: {self.rule}"


@dataclass(frozen=True, slots=True)
class Ambiguity:
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

    @property
    def end(self) -> int:
        return self.start + self.size


@dataclass
class _Renderer:
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

    def _note(self, mr: MemoryRegion, what: str, decision: Rule) -> None:
        if decision.guess:
            self.guesses.setdefault((id(mr), what), Guess(mr, what, decision.reason))

    def render(
        self,
        view: list[_Piece],
        mr: MemoryRegion,
        base: int,
        clip: tuple[int, int],
        ro: bool,
        nv: bool,
    ) -> None:
        """render_memory_region: ``clip`` is [start, end); ``base`` may be negative."""
        if not mr.enabled:
            if mr.hidden and mr.subregions:
                self._hidden(mr, base)
            return
        base += mr.addr
        ro = ro or self.readonly(mr)
        nv = nv or mr.nonvolatile
        lo, hi = base, base + mr.size
        if not (lo <= clip[0] < hi or clip[0] <= lo < clip[1]):
            return  # int128 "intersects"
        clip = (max(lo, clip[0]), min(hi, clip[1]))
        if clip[0] < clip[1]:
            self.placements.setdefault(id(mr), []).append((self.view_index, *clip))
        if mr.alias is not None:
            target = mr.alias.target
            if target is not None:
                if not ro and target.type in ("ram", "ramd") and not self.know.flat_names:
                    self._maybe_readonly(mr, target, clip)
                self.render(view, target, base - target.addr - mr.alias.offset, clip, ro, nv)
            elif clip[0] < clip[1]:
                self._unpasted(mr, clip, base)
            return
        if mr.name == UNPASTED_ROOT and mr.line is not None and mr.subregions:
            self._unpasted_parent(mr, base)
        for child in self.know.render_order(mr):
            self.render(view, child, base, clip, ro, nv)
        for first, other, why in self.know.overlaps(mr):
            self._check_overlap(mr, first, other, why, base, clip)
        if self.terminates(mr):
            _fill_gaps(view, mr, base, clip, ro, nv)

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
        first: MemoryRegion,
        other: MemoryRegion,
        why: str,
        base: int,
        clip: tuple[int, int],
    ) -> None:
        """Report an equal-priority overlap only where both siblings would render something
        (spec §4 A): then the dump cannot tell which one the guest sees."""
        key = (id(first), id(other))
        if key in self._seen_amb:
            return
        lo = max(base + first.addr, base + other.addr, clip[0])
        hi = min(base + first.addr + first.size, base + other.addr + other.size, clip[1])
        if lo >= hi:
            return
        scratch = _Renderer(self.know)
        shows = []
        for sib in (first, other):
            pieces: list[_Piece] = []
            scratch.render(pieces, sib, base, (lo, hi), False, False)
            shows.append(pieces)
        if not all(shows):
            return
        self._seen_amb.add(key)
        self.ambiguities.append(
            Ambiguity(
                "equal-priority overlap",
                (first, other),
                lo,
                hi,
                (
                    f"{first.name!r} wins ({why})",
                    f"{other.name!r} wins if it was added to {parent.name!r} last",
                ),
            )
        )


def _fill_gaps(
    view: list[_Piece], mr: MemoryRegion, base: int, clip: tuple[int, int], ro: bool, nv: bool
) -> None:
    """The gap-filling loop of render_memory_region (``flatview_insert`` of each hole)."""
    pos, end = clip
    off = pos - base
    # Skip ranges entirely before the clip (the view is sorted and disjoint).
    i = bisect_right(view, pos, key=lambda p: p.end)
    while i < len(view) and pos < end:
        r = view[i]
        if pos >= r.end:
            i += 1
            continue
        if pos < r.start:
            size = min(end, r.start) - pos
            view.insert(i, _Piece(pos, size, mr, off, ro, nv))
            i += 1
            pos += size
            off += size
        skip = min(end, r.end) - pos
        if skip > 0:
            pos += skip
            off += skip
        i += 1
    if pos < end:
        view.insert(i, _Piece(pos, end - pos, mr, off, ro, nv))


def _simplify(view: list[_Piece]) -> list[_Piece]:
    """flatview_simplify: merge neighbours when can_merge() holds."""
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
                q.size += p.size
                continue
        out.append(_Piece(p.start, p.size, p.mr, p.offset, p.readonly, p.nonvolatile))
    return out


def _readonly_type(printed: str) -> str:
    """The type a read-only range prints: ``rom``; QEMU <= 2.8 printed letters (readable,
    writable: mtree_print_mr's ``%c%c``), there a read-only range reads ``R-``."""
    if len(printed) == 2 and printed[0] in "R-" and printed[1] in "W-":
        return printed[0] + "-"
    return "rom"


def _to_range(p: _Piece) -> FlatRange:
    mr = p.mr
    return FlatRange(
        start=p.start,
        size=p.size,
        priority=mr.priority,
        type=_readonly_type(mr.type) if p.readonly else mr.type,
        name=mr.name,
        offset=p.offset,
        nonvolatile=p.nonvolatile,
        owner=mr.owner,
        region=mr,
        readonly=p.readonly,
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
        pieces: list[_Piece] = []
        if root is not None:
            r.view_index = len(views)
            r.render(pieces, root, 0, (0, U64), False, False)
        ranges = tuple(_to_range(p) for p in _simplify(pieces))
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
