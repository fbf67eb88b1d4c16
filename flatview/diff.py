"""What changed between two dumps: regions, flat ranges, direct-mapped pages.

Each input becomes a :class:`Side`: the dumps compared (a tree, a flat view or both), the
flat views (QEMU's own ``info mtree -f`` when the input has one, else recomputed from
the tree), the system view and the assigned devices (:func:`flatview.devices.gather`).
:func:`diff` then compares two sides in three ways, all pure:

* **Regions** (both sides have a tree): regions are matched by their *path* -- the names
  from the root down, each with its ``-o`` owner text when printed and its occurrence
  among same-named siblings -- never by name alone.  A region is added, removed, moved
  (its offset in the parent changed), resized, re-prioritised, enabled, disabled, of
  another type, or an alias retargeted.  A subtree that comes or goes is one change.
* **Flat ranges**, per address space (views matched by address-space name; address
  spaces whose before and after views are identical are folded into one entry): the
  union of both views' boundaries is swept and every interval whose owner differs is
  reported, merged: ``kind`` (direct <-> trapped, e.g. ``ramd`` -> ``i/o``), ``type``,
  ``region``, ``offset``, ``priority``, ``added`` (was unassigned), ``removed``.
* **Direct-mapped pages** per device, BAR and host page size (:func:`bar_diffs`): read off
  each side's system view with :func:`flatview.pages.bar_pages`; a page is direct-mapped
  when KVM can map it whole (inside one ``ramd`` range).  A BAR *regresses* when a page
  that was direct-mapped is not any more, or its count of direct pages drops; a device
  that disappears regresses too.  :mod:`flatview.gate` turns these into a CI verdict.

Pages are counted literally, BAR by BAR: a BAR that holds only MSI-X (the advisor's
``msix_only``) still counts the pages its table takes.
"""

from __future__ import annotations

import bisect
import itertools
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace

from . import api
from .errors import UsageError
from .model import Dump, FlatDump, FlatRange, FlatView, MemoryRegion, MtreeDump, walk
from .pages import PageRun, Span, bar_pages, clip_runs, count_pages, run_spans, subtract_spans
from .vfio.devices import DeviceFacts, system_view
from .vfio.names import VFIO_NAME
from .vfio.pci import PciDevice

__all__ = [
    "BarDiff",
    "BarFigures",
    "DeviceDiff",
    "DiffReport",
    "RangeChange",
    "RegionChange",
    "Side",
    "Trap",
    "ViewDiff",
    "bar_diffs",
    "bar_figures",
    "diff",
    "diff_trees",
    "diff_views",
    "load_side",
    "range_changes",
    "select_dumps",
    "side_from_dumps",
    "verdict",
]


# ------------------------------------------------------------------------------ inputs


@dataclass(frozen=True, slots=True)
class Side:
    """One input of a comparison."""

    name: str
    tree: MtreeDump | None
    flat: FlatDump | None
    views: tuple[FlatView, ...]  # QEMU's own (flat) or recomputed from the tree
    view: FlatView | None  # the system view (what CPUs see)
    facts: tuple[DeviceFacts, ...]
    notes: tuple[str, ...] = ()

    @property
    def recomputed(self) -> bool:
        return self.flat is None

    @property
    def label(self) -> str:
        used = [
            f"{kind} at line {d.line}"
            for kind, d in (("info mtree", self.tree), ("info mtree -f", self.flat))
            if d is not None
        ]
        return f"{self.name} ({', '.join(used)})"


select_dumps = api.select_dumps  # the dumps of one machine state (shared with advise)


def side_from_dumps(
    dumps: Sequence[Dump], name: str, notes: Sequence[str] = (), pci: Sequence[PciDevice] = ()
) -> Side:
    """A side from its dumps: a tree alone is flattened (its views recomputed)."""
    m = api.machine(dumps, pci)
    if not m.views:
        raise UsageError(f"{name}: no dump to compare")
    return Side(name, m.tree, m.flat, m.views, m.view, m.facts, tuple(notes))


def load_side(text: str, name: str, lines: Sequence[int] = ()) -> Side:
    """Parse an input (file text, stdin, pasted mail) into a side.  The dumps are read,
    and the ``(qemu) info pci`` part of a capture bundle or monitor session (the BARs of
    QEMU-emulated devices); lspci text in the same input is ignored."""
    dumps = api.parse_text(text, name)
    pci = api.monitor_pci(text, name)
    chosen = api.select_dumps(dumps, name, lines)
    return side_from_dumps(chosen, name, _choice_notes(name, len(dumps), chosen, lines), pci)


def _choice_notes(name: str, count: int, chosen: Sequence[Dump], lines: Sequence[int]):
    if count <= len(chosen) or lines:
        return []
    where = " and ".join(f"line {d.line}" for d in chosen)
    return [
        f"{name} holds {count} dumps; compared the one(s) at {where} "
        "(choose others with the --...-dump LINE options)"
    ]


def load_sides(inputs: Iterable[tuple[str, str, Sequence[int]]]) -> tuple[Side, ...]:
    """:func:`load_side` of each ``(text, name, lines)``.  An input whose text and chosen
    dumps repeat an earlier one's (a dump compared with itself, a gate run on an unchanged
    build) is parsed and flattened once: the sides share the dumps, only the names they
    are printed under differ."""
    done: dict[tuple[str, tuple[int, ...]], tuple[Side, int]] = {}
    sides = []
    for text, name, lines in inputs:
        key = (text, tuple(lines))
        if key not in done:
            dumps = api.parse_text(text, name)
            chosen = api.select_dumps(dumps, name, lines)
            notes = _choice_notes(name, len(dumps), chosen, lines)
            pci = api.monitor_pci(text, name)
            done[key] = side_from_dumps(chosen, name, notes, pci), len(dumps)
            sides.append(done[key][0])
            continue
        first, count = done[key]
        tree = replace(first.tree, file=name) if first.tree is not None else None
        flat = replace(first.flat, file=name) if first.flat is not None else None
        chosen = sorted((d for d in (tree, flat) if d is not None), key=lambda d: d.line)
        notes = tuple(_choice_notes(name, count, chosen, lines))
        sides.append(replace(first, name=name, tree=tree, flat=flat, notes=notes))
    return tuple(sides)


def _device_of(names: Iterable[str]) -> str | None:
    for n in names:
        m = VFIO_NAME.match(n)
        if m:
            return m["bdf"]
    return None


# ----------------------------------------------------------------------------- regions


@dataclass(frozen=True, slots=True)
class RegionRef:
    """What a region looked like on one side (enough to print and to compare)."""

    name: str
    start: int
    size: int
    priority: int
    type: str
    enabled: bool
    alias: str | None  # "TARGET @OFFSET"
    owner: str | None
    line: int | None


@dataclass(frozen=True, slots=True)
class RegionChange:
    where: str  # "address-space: memory" or "memory-region: pci"
    path: tuple[str, ...]  # names from the root down to the region
    what: tuple[str, ...]  # added, removed, moved, resized, re-prioritised, ...
    before: RegionRef | None
    after: RegionRef | None
    below: int = 0  # added or removed: how many subregions came or went with it
    device: str | None = None


def _ref(mr: MemoryRegion) -> RegionRef:
    alias = f"{mr.alias.target_name} @{mr.alias.offset:#x}" if mr.alias is not None else None
    owner = mr.owner.text.strip() if mr.owner is not None else None
    return RegionRef(
        mr.name, mr.start, mr.size, mr.priority, mr.type, mr.enabled, alias, owner, mr.line
    )


def _keyed(children: Sequence[MemoryRegion]) -> dict[tuple, MemoryRegion]:
    """Children by (name, owner, occurrence among same-named siblings)."""
    seen: Counter = Counter()
    out = {}
    for c in children:
        base = (c.name, c.owner.text if c.owner is not None else None)
        out[(*base, seen[base])] = c
        seen[base] += 1
    return out


def _what_changed(b: MemoryRegion, a: MemoryRegion) -> tuple[str, ...]:
    if b.hidden and a.hidden:
        return ()
    checks = (
        ("moved", b.addr != a.addr),
        ("resized", b.size != a.size),
        ("re-prioritised", b.priority != a.priority),
        ("disabled", b.enabled and not a.enabled),
        ("enabled", a.enabled and not b.enabled),
        ("type changed", b.type != a.type),
        ("alias retargeted", _ref(b).alias != _ref(a).alias),
    )
    return tuple(what for what, changed in checks if changed)


def _count(mr: MemoryRegion) -> int:
    return sum(1 for _ in walk(mr)) - 1


def _diff_region(
    where: str, path: tuple[str, ...], b: MemoryRegion, a: MemoryRegion, out: list[RegionChange]
) -> None:
    if b is a:  # one frozen region on both sides (an input given twice): nothing changed
        return
    path = (*path, a.name if not a.hidden else "(hidden)")
    what = _what_changed(b, a)
    if what:
        out.append(RegionChange(where, path, what, _ref(b), _ref(a), 0, _device_of(path)))
    bk, ak = _keyed(b.subregions), _keyed(a.subregions)
    for k, c in bk.items():
        if k not in ak:
            p = (*path, c.name)
            out.append(
                RegionChange(where, p, ("removed",), _ref(c), None, _count(c), _device_of(p))
            )
    for k, c in ak.items():
        if k in bk:
            _diff_region(where, path, bk[k], c, out)
        else:
            p = (*path, c.name)
            out.append(RegionChange(where, p, ("added",), None, _ref(c), _count(c), _device_of(p)))


def _sections(dump: MtreeDump) -> Iterator[tuple[str, MemoryRegion | None]]:
    """The ``memory-region:`` sections that are not regions of an address-space tree."""
    seen = {id(mr) for g in dump.address_spaces if g.root for mr, _ in walk(g.root)}
    for s in dump.sections:
        if s.root is None or id(s.root) not in seen:
            yield s.name, s.root


def _pair_roots(before: MtreeDump, after: MtreeDump):
    """(label, before root, after root): address spaces paired by name (those sharing a
    root on both sides folded into one label), then sections by name and occurrence."""
    bmap = {n: g.root for g in before.address_spaces for n in g.names}
    amap = {n: g.root for g in after.address_spaces for n in g.names}
    pairs: dict[tuple[int, int], tuple[list[str], MemoryRegion | None, MemoryRegion | None]] = {}
    for n in dict.fromkeys([*bmap, *amap]):
        b, a = bmap.get(n), amap.get(n)
        pairs.setdefault((id(b), id(a)), ([], b, a))[0].append(n)
    for names, b, a in pairs.values():
        yield "address-space: " + ", ".join(names), b, a
    bsec: dict[tuple[str, int], MemoryRegion | None] = {}
    asec: dict[tuple[str, int], MemoryRegion | None] = {}
    for dump, out in ((before, bsec), (after, asec)):
        count: Counter = Counter()
        for name, root in _sections(dump):
            out[(name, count[name])] = root
            count[name] += 1
    for key in dict.fromkeys([*bsec, *asec]):
        yield f"memory-region: {key[0]}", bsec.get(key), asec.get(key)


def diff_trees(before: MtreeDump, after: MtreeDump) -> tuple[RegionChange, ...]:
    """Region changes between two trees (see the module docstring)."""
    out: list[RegionChange] = []
    for label, b, a in _pair_roots(before, after):
        if b is not None and a is not None:
            _diff_region(label, (), b, a, out)
        elif b is not None or a is not None:
            mr = a if b is None else b
            assert mr is not None
            ref, what = _ref(mr), ("added",) if b is None else ("removed",)
            before_ref, after_ref = (None, ref) if b is None else (ref, None)
            out.append(RegionChange(label, (mr.name,), what, before_ref, after_ref, _count(mr)))
    return tuple(out)


# ------------------------------------------------------------------------- flat ranges


@dataclass(frozen=True, slots=True)
class RangeRef:
    name: str
    type: str
    priority: int
    offset: int  # offset in the region at the start of the changed interval


@dataclass(frozen=True, slots=True)
class RangeChange:
    start: int
    end: int  # exclusive
    what: str  # kind, type, region, offset, priority, added, removed
    before: RangeRef | None
    after: RangeRef | None
    device: str | None = None
    bar: int | None = None


@dataclass(frozen=True, slots=True)
class ViewDiff:
    """The changes of one flat view; ``address_spaces`` lists every address space whose
    before and after views are these (identical views folded together)."""

    address_spaces: tuple[str, ...]
    changes: tuple[RangeChange, ...]
    before_line: int | None
    after_line: int | None
    only_in: str | None = None  # "before" or "after": the address space is on one side


def kind(type_: str) -> str:
    """What the guest gets from a range of this printed type."""
    if type_ in ("ram", "ramd"):
        return "direct"
    if type_ in ("rom", "romd"):
        return "rom"
    return "trapped"


def _names(v: FlatView) -> tuple[str, ...]:
    return v.names or (f"(root {v.root})",)


def _signature(v: FlatView | None) -> tuple | None:
    if v is None:
        return None
    return tuple((r.start, r.size, r.type, r.name, r.offset, r.priority) for r in v.ranges)


class _Cover:
    """Which range covers an address (views are sorted and disjoint)."""

    def __init__(self, ranges: Sequence[FlatRange]) -> None:
        self.ranges = ranges
        self.starts = [r.start for r in ranges]

    def at(self, x: int) -> FlatRange | None:
        i = bisect.bisect_right(self.starts, x) - 1
        if i >= 0 and self.ranges[i].end > x:
            return self.ranges[i]
        return None


def _classify(rb: FlatRange | None, ra: FlatRange | None, x: int) -> str | None:
    if rb is None or ra is None:
        return None if rb is ra else ("added" if rb is None else "removed")
    if kind(rb.type) != kind(ra.type):
        return "kind"
    if rb.type != ra.type:
        return "type"
    if rb.name != ra.name:
        return "region"
    if rb.offset + x - rb.start != ra.offset + x - ra.start:
        return "offset"
    if rb.priority != ra.priority:
        return "priority"
    return None


def _rref(r: FlatRange | None, x: int) -> RangeRef | None:
    if r is None:
        return None
    return RangeRef(r.name, r.type, r.priority, r.offset + x - r.start)


def _same_owner(c: RangeChange, rb: FlatRange | None, ra: FlatRange | None) -> bool:
    def same(ref: RangeRef | None, r: FlatRange | None) -> bool:
        if ref is None or r is None:
            return ref is None and r is None
        return (ref.name, ref.type) == (r.name, r.type)

    return same(c.before, rb) and same(c.after, ra)


def range_changes(
    before: FlatView | None, after: FlatView | None, spans: Sequence[tuple] = ()
) -> tuple[RangeChange, ...]:
    """Sweep the union of both views' boundaries; merge neighbouring intervals that
    changed the same way.  ``spans`` (lo, hi, device, bar) attribute changes to BARs."""
    br = before.ranges if before is not None else ()
    ar = after.ranges if after is not None else ()
    cuts = sorted({x for r in (*br, *ar) for x in (r.start, r.end)})
    cb, ca = _Cover(br), _Cover(ar)
    out: list[RangeChange] = []
    for lo, hi in itertools.pairwise(cuts):
        rb, ra = cb.at(lo), ca.at(lo)
        what = _classify(rb, ra, lo)
        if what is None:
            continue
        last = out[-1] if out else None
        if last is not None and last.end == lo and last.what == what and _same_owner(last, rb, ra):
            out[-1] = RangeChange(
                last.start, hi, what, last.before, last.after, last.device, last.bar
            )
            continue
        dev, bar = next(((d, k) for s, e, d, k in spans if s <= lo < e), (None, None))
        out.append(RangeChange(lo, hi, what, _rref(rb, lo), _rref(ra, lo), dev, bar))
    return tuple(out)


def diff_views(
    before: Sequence[FlatView],
    after: Sequence[FlatView],
    spans: Sequence[tuple] = (),
    system: tuple[FlatView | None, FlatView | None] = (None, None),
) -> tuple[tuple[ViewDiff, ...], tuple[tuple[str, ...], ...]]:
    """Changed views (folded by address space) and the address spaces left unchanged.
    ``spans`` attribute ranges to device BARs in the system views ``system``."""
    bmap = {n: v for v in before for n in _names(v)}
    amap = {n: v for v in after for n in _names(v)}
    if before and after and not set(bmap) & set(amap):
        # No address space in common (a tree of sections only vs. a -f dump): compare
        # the system views with each other.
        sb, sa = system_view(before), system_view(after)
        label = " / ".join(dict.fromkeys([*_names(sb), *_names(sa)]))  # type: ignore[arg-type]
        bmap, amap = {label: sb}, {label: sa}
    groups: dict[tuple, list[str]] = {}
    pair: dict[tuple, tuple[FlatView | None, FlatView | None]] = {}
    sigs: dict[int, tuple | None] = {}
    for n in dict.fromkeys([*bmap, *amap]):
        b, a = bmap.get(n), amap.get(n)
        key = tuple(sigs.setdefault(id(v), _signature(v)) if v else None for v in (b, a))
        groups.setdefault(key, []).append(n)
        pair.setdefault(key, (b, a))
    changed, same = [], []
    for key, names in groups.items():
        b, a = pair[key]
        if key[0] == key[1]:
            same.append(tuple(names))
            continue
        # any name of the group: identical views fold under the first name, which need
        # not be the system view's (q35: cpu-smm-0 folds with memory)
        in_system = any(
            v is not None and v is s
            for n in names
            for v, s in zip((bmap.get(n), amap.get(n)), system, strict=True)
        )
        changes = range_changes(b, a, spans if in_system else ())
        only = "after" if b is None else "before" if a is None else None
        changed.append(
            ViewDiff(tuple(names), changes, b.line if b else None, a.line if a else None, only)
        )
    return tuple(changed), tuple(same)


# ------------------------------------------------------------------ direct-mapped pages


@dataclass(frozen=True, slots=True)
class BarFigures:
    """One BAR of one device on one side, at one host page size."""

    index: int
    page_size: int
    guest_base: int | None
    guest_size: int
    host_size: int  # 0: no host BAR behind it (relocation space only)
    is_io: bool
    ramd_bytes: int
    pages_total: int
    pages_direct: int
    runs: tuple[PageRun, ...]  # every host page of the BAR (flatview.pages.bar_pages)
    holds: tuple[str, ...]  # msix-table, msix-pba and quirk ranges inside the BAR
    msix_only: bool = False

    @property
    def lost(self) -> tuple[PageRun, ...]:
        return tuple(r for r in self.runs if r.lost)

    def on_grid(self, spans: Sequence[Span]) -> list[Span]:
        """The parts of ``spans`` (page offsets) that are host pages of this BAR: none
        when its guest base is off the page grid (its pages are not the host's pages)."""
        if self.guest_base is None or not self.pages_total or self.guest_base % self.page_size:
            return []
        end = self.pages_total * self.page_size
        return [(max(lo, 0), min(hi, end)) for lo, hi in spans if lo < end and hi > 0]

    @property
    def shift(self) -> int:
        """Page 0's offset from the guest base (its pages' parts are from the base)."""
        return -((self.guest_base or 0) % self.page_size)


def _holds(view: FlatView, lo: int, hi: int) -> tuple[str, ...]:
    names = [
        r.name
        for r in view.ranges
        if r.start < hi
        and r.end > lo
        and (r.name in ("msix-table", "msix-pba") or "quirk" in r.name)
    ]
    return tuple(dict.fromkeys(names))


def _figures(f: DeviceFacts, k: int, view: FlatView | None, page: int) -> BarFigures:
    dev = f.device
    hb = dev.bar(k)
    ob = f.observed.bar(k) if f.observed is not None else None
    host = hb.size if hb is not None and hb.size else 0
    is_io = hb is not None and hb.is_io
    g = None if is_io else f.guest_bases.get(k)
    gsize = ob.guest_size if ob is not None else host
    holds = _holds(view, g, g + gsize) if view is not None and g is not None else ()
    if is_io or not host or g is None or view is None:
        return BarFigures(k, page, g, gsize, host, is_io, 0, 0, 0, (), holds)
    dedicated = dev.msix is not None and dev.msix.dedicated_bar(host) == k
    bp = bar_pages(
        view.ranges, index=k, guest_base=g, size=host, guest_size=max(gsize, host), page=page
    )
    direct = bp.pages_total - count_pages(bp.lost)
    return BarFigures(
        k,
        page,
        g,
        gsize,
        host,
        False,
        bp.ramd_bytes,
        bp.pages_total,
        direct,
        bp.runs,
        holds,
        dedicated,
    )


def bar_figures(side: Side, page: int) -> dict[str, dict[int, BarFigures]]:
    """Every device's BARs (host BARs and guest-only ones) at one page size."""
    out: dict[str, dict[int, BarFigures]] = {}
    for f in side.facts:
        bars = {b.index for b in f.device.bars}
        if f.observed is not None:
            bars |= {b.index for b in f.observed.bars}
        out[f.device.address] = {k: _figures(f, k, side.view, page) for k in sorted(bars)}
    return out


@dataclass(frozen=True, slots=True)
class Trap:
    """What takes (part of) a lost page, in offsets from the BAR's guest base."""

    name: str
    start: int
    end: int  # exclusive
    what: str  # msix-table, msix-pba, quirk, trapped, relocation space, direct, none
    guest: int | None = None  # guest-physical address of ``start``


@dataclass(frozen=True, slots=True)
class BarDiff:
    """Direct-mapped pages of one BAR (``index`` None: the whole device) before and after."""

    device: str
    index: int | None
    page_size: int
    before: BarFigures | None
    after: BarFigures | None
    pages_before: int
    pages_after: int
    lost: tuple[PageRun, ...] = ()  # pages direct before and not after (``after``'s runs)
    gained: tuple[PageRun, ...] = ()  # pages direct after and not before
    traps: tuple[Trap, ...] = ()  # what takes the lost pages now
    why: str = ""  # the lost pages' cause in words, when no trap names it
    gone: bool = False  # the device is not in ``after`` at all

    @property
    def regressed(self) -> bool:
        return self.gone or self.pages_after < self.pages_before or bool(self.lost)


def _holds_text(b: BarFigures | None, a: BarFigures) -> list[str]:
    if b is None:
        return [f"holds {', '.join(a.holds)}"] if a.holds else []
    out = [f"{n} moved out" for n in b.holds if n not in a.holds]
    out += [f"now holds {n}" for n in a.holds if n not in b.holds]
    return out


def verdict(d: BarDiff) -> str:
    """One line on what happened to a BAR's direct-mapped pages."""
    b, a = d.before, d.after
    if d.gone:
        return "device gone"
    if a is None:
        if b is not None and not b.host_size and not b.is_io:
            return "BAR gone (it had no host pages: relocation space)"
        return "BAR gone" + (f": {d.pages_before} direct page(s) lost" if d.pages_before else "")
    if a.is_io:
        return "I/O BAR: always trapped"
    if b is None:
        head = (
            "new BAR, no host pages (relocation space)"
            if not a.host_size
            else f"new BAR: {a.pages_direct} of {a.pages_total} page(s) direct"
        )
    elif not a.host_size and not b.host_size:
        head = "no host pages (relocation space)"
    else:
        lost = max(count_pages(d.lost), d.pages_before - d.pages_after)
        gained = count_pages(d.gained) or max(0, d.pages_after - d.pages_before)
        bits = [f"loses {lost} page(s)"] if lost else []
        bits += [f"gains {gained} page(s)"] if gained else []
        if bits:
            head = ", ".join(bits)
        elif d.pages_before == d.pages_after == 0 and b.ramd_bytes == a.ramd_bytes == 0:
            head = "stays trapped (no mmap in either dump)"
        elif d.pages_before == d.pages_after == 0:
            head = "no whole page direct-mapped on either side"
        else:
            head = "unchanged"
    return "; ".join([head, *_holds_text(b, a)])


def _traps(a: BarFigures, lost: Sequence[PageRun]) -> tuple[Trap, ...]:
    parts = sorted(
        (p for r in lost for p in r.parts if p.what != "direct"), key=lambda p: (p.start, p.end)
    )
    out: list[Trap] = []
    for p in parts:
        if out and out[-1].name == p.name and out[-1].end >= p.start:
            last = out[-1]
            out[-1] = Trap(last.name, last.start, max(last.end, p.end), last.what, last.guest)
            continue
        g = a.guest_base + p.start if a.guest_base is not None else None
        out.append(Trap(p.name, p.start, p.end, p.what, g))
    return tuple(out)


def _compare_bar(dev: str, k: int, b: BarFigures | None, a: BarFigures | None, page: int):
    pb = b.pages_direct if b is not None else 0
    pa = a.pages_direct if a is not None else 0
    if b is None or a is None:
        why = "" if a is not None else f"BAR {k} is not in the candidate"
        return BarDiff(dev, k, page, b, a, pb, pa, why=why if pb else "")
    b_lost, a_lost = run_spans(b.lost), run_spans(a.lost)
    # pages lost after and direct before: a page of ``before``'s grid it did not lose
    lost = clip_runs(a.runs, b.on_grid(subtract_spans(a_lost, b_lost)), a.shift)
    gained = clip_runs(a.runs, a.on_grid(subtract_spans(b_lost, a_lost)), a.shift)
    traps = _traps(a, lost)
    why = ""
    if lost and not traps:
        why = "no ramd range covers the page(s) any more (nothing mapped there)"
    elif pa < pb and not lost:
        if a.host_size != b.host_size:
            why = f"BAR {k} is {a.host_size:#x} bytes now, {b.host_size:#x} before"
        elif a.guest_base is None:  # e.g. its memory-region section lost its heading
            why = f"BAR {k} has no guest address in the candidate (nothing maps it)"
        else:
            why = f"BAR {k} moved to {a.guest_base:#x} and its pages no longer align"
    return BarDiff(dev, k, page, b, a, pb, pa, lost, gained, traps, why)


def bar_diffs(
    before: Side, after: Side, page_sizes: Sequence[int], devices: Iterable[str] = ()
) -> tuple[BarDiff, ...]:
    """Direct-mapped pages of every device's BARs, before and after, at each page size
    (``devices``: only these host addresses).  A device gone from ``after`` is one
    BarDiff with ``index`` None."""
    wanted = set(devices)
    out: list[BarDiff] = []
    for page in page_sizes:
        fb, fa = bar_figures(before, page), bar_figures(after, page)
        for dev in sorted({*fb, *fa}):
            if wanted and dev not in wanted:
                continue
            bb, ab = fb.get(dev), fa.get(dev)
            if ab is None:
                assert bb is not None
                total = sum(x.pages_direct for x in bb.values())
                out.append(
                    BarDiff(
                        dev,
                        None,
                        page,
                        None,
                        None,
                        total,
                        0,
                        why="device not in the candidate",
                        gone=True,
                    )
                )
                continue
            for k in sorted({*(bb or {}), *ab}):
                out.append(_compare_bar(dev, k, (bb or {}).get(k), ab.get(k), page))
    return tuple(out)


# ---------------------------------------------------------------------------- the diff


@dataclass(frozen=True, slots=True)
class DeviceDiff:
    bdf: str
    in_before: bool
    in_after: bool
    bars: tuple[BarDiff, ...]
    regions: tuple[RegionChange, ...]
    ranges: tuple[RangeChange, ...]


@dataclass(frozen=True, slots=True)
class DiffReport:
    before: str
    after: str
    page_sizes: tuple[int, ...]
    regions: tuple[RegionChange, ...]  # every region change (also in ``devices``)
    views: tuple[ViewDiff, ...]
    unchanged: tuple[tuple[str, ...], ...]  # address spaces whose flat view is the same
    devices: tuple[DeviceDiff, ...]
    regressions: tuple[BarDiff, ...]  # what `flatview gate BEFORE AFTER` fails on
    reverse_regressions: tuple[BarDiff, ...]  # ... and `flatview gate AFTER BEFORE`
    notes: tuple[str, ...] = ()


def _spans(*sides: Side) -> list[tuple[int, int, str, int]]:
    out = []
    for s in sides:
        for f in s.facts:
            for b in f.observed.bars if f.observed is not None else ():
                out.append((b.guest_base, b.guest_base + b.guest_size, f.device.address, b.index))
    return out


def diff(
    before: Side, after: Side, page_sizes: Sequence[int], devices: Iterable[str] = ()
) -> DiffReport:
    """Everything that changed from ``before`` to ``after`` (see the module docstring)."""
    notes = [*before.notes, *after.notes]
    if before.tree is not None and after.tree is not None:
        regions = diff_trees(before.tree, after.tree)
    else:
        regions = ()
        if before.tree is not None or after.tree is not None:
            notes.append("a tree on one side only: region changes not compared")
    for s in (before, after):
        if s.recomputed:
            notes.append(f"{s.name}: flat views recomputed from the tree")
    views, same = diff_views(
        before.views, after.views, _spans(after, before), (before.view, after.view)
    )
    wanted = list(devices)
    known = {f.device.address for s in (before, after) for f in s.facts}
    missing = [d for d in wanted if d not in known]
    if missing:  # as gate does: a device in neither input is a typo, not a pass
        raise UsageError(f"no assigned device {', '.join(missing)} in either input")
    bars = bar_diffs(before, after, page_sizes, wanted)
    reverse = bar_diffs(after, before, page_sizes, wanted)
    ranges = [c for v in views for c in v.changes]
    bdfs = sorted({f.device.address for s in (before, after) for f in s.facts})
    devs = tuple(
        DeviceDiff(
            bdf,
            any(f.device.address == bdf for f in before.facts),
            any(f.device.address == bdf for f in after.facts),
            tuple(b for b in bars if b.device == bdf),
            tuple(c for c in regions if c.device == bdf),
            tuple(c for c in ranges if c.device == bdf),
        )
        for bdf in bdfs
        if not wanted or bdf in wanted
    )
    return DiffReport(
        before.label,
        after.label,
        tuple(page_sizes),
        regions,
        views,
        same,
        devs,
        tuple(b for b in bars if b.regressed),
        tuple(b for b in reverse if b.regressed),
        tuple(notes),
    )
