"""Host pages of a BAR: direct-mapped or lost, read off a FlatView, as runs.

KVM maps only whole host pages: QEMU hands it each RAM-like flat range trimmed to the
page grid (accel/kvm/kvm-all.c ``kvm_align_section``: start rounded up, size rounded
down).  A page of a BAR is direct-mapped when it lies inside such a trimmed ``ramd``
range; otherwise every access to it traps into QEMU.  The same function reads a real
dump and a simulated one (vfio-msix.md §3.3).

Pages are never listed one by one: a BAR reaches 64 GiB and more (16M pages at 4K), so a
BAR's pages are :class:`PageRun` s, consecutive pages in one state holding the same
flat ranges.  The number of runs grows with the number of flat ranges, not of pages.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from itertools import pairwise
from typing import NamedTuple

from .model import FlatRange

__all__ = [
    "BarPages",
    "PagePart",
    "PageRun",
    "Span",
    "bar_pages",
    "clip_runs",
    "count_pages",
    "run_spans",
    "subtract_spans",
]

_QUIRK = re.compile(r"quirk")

Span = tuple[int, int]  # [start, end) in bytes


class PagePart(NamedTuple):
    """What occupies part of a run of pages (offsets relative to the BAR's guest base)."""

    start: int
    end: int  # exclusive
    name: str
    type: str
    what: str  # "msix-table", "msix-pba", "quirk", "trapped", "relocation space", "direct"


class PageRun(NamedTuple):
    """``count`` consecutive host pages of one BAR in one ``state``.

    ``start`` is the first page's offset in the BAR's page grid: page 0 is the host page
    holding the BAR's guest base (a sub-page BAR's one page is page 0), so the run is
    ``[start, end)`` in bytes from there.  ``state`` is ``direct`` (inside a KVM slot) or
    why the pages trap, the first of: msix-table, msix-pba, quirk, no-mmap, unaligned,
    unassigned.  ``parts`` are the flat ranges that occupy the run, clipped to it (offsets
    from the BAR's guest base); every page of a run holds the same flat ranges.
    """

    start: int
    count: int
    page_size: int
    state: str
    parts: tuple[PagePart, ...] = ()

    @property
    def end(self) -> int:
        """Exclusive end offset (``start + count * page_size``)."""
        return self.start + self.count * self.page_size

    @property
    def lost(self) -> bool:
        """The run's pages trap into QEMU."""
        return self.state != "direct"


class BarPages(NamedTuple):
    """The direct-mapping picture of one BAR at one host page size.

    ``runs`` cover every host page of the BAR in order, direct and lost ones
    (empty for an I/O BAR); ``lost`` are the runs that trap.
    """

    index: int
    size: int  # host BAR size: only these bytes are host pages
    guest_base: int
    guest_size: int
    page_size: int
    is_io: bool
    is_64bit: bool
    ramd_bytes: int
    trapped_bytes: int
    pages_total: int
    pages_lost: int
    runs: tuple[PageRun, ...]
    notes: tuple[str, ...] = ()
    msix_only: bool = False  # a BAR dedicated to MSI-X: its trapped pages cost nothing

    @property
    def lost(self) -> tuple[PageRun, ...]:
        return tuple(r for r in self.runs if r.lost)

    def moved(self, guest_base: int, runs: tuple[PageRun, ...]) -> BarPages:
        """The same pages of a BAR at ``guest_base`` (its runs renamed): what
        dataclasses.replace does, without its per-field introspection."""
        return BarPages(
            self.index,
            self.size,
            guest_base,
            self.guest_size,
            self.page_size,
            self.is_io,
            self.is_64bit,
            self.ramd_bytes,
            self.trapped_bytes,
            self.pages_total,
            self.pages_lost,
            runs,
            self.notes,
            self.msix_only,
        )


def count_pages(runs: Iterable[PageRun]) -> int:
    """How many pages the runs hold."""
    return sum(r.count for r in runs)


def _what(r: FlatRange) -> str:
    if r.name in ("msix-table", "msix-pba"):
        return r.name
    if _QUIRK.search(r.name):
        return "quirk"
    if r.type in ("ramd", "ram"):
        return "direct"
    if " base BAR " in r.name:
        return "relocation space"
    return "trapped"


_REASONS = ("msix-table", "msix-pba", "quirk", "trapped", "relocation space")
_REASON_CODE = {"trapped": "no-mmap", "relocation space": "unassigned"}


def bar_pages(
    ranges: Sequence[FlatRange],
    *,
    index: int,
    guest_base: int,
    size: int,
    guest_size: int,
    page: int,
    is_64bit: bool = False,
    kvm_labels: bool = False,
    msix_only: bool = False,
) -> BarPages:
    """Pages of the memory BAR ``[guest_base, guest_base + size)`` against the view's
    ``ranges`` (an I/O BAR has no host pages: callers build its :class:`BarPages`)."""
    g = guest_base
    inside = [r for r in ranges if r.start < g + guest_size and r.end > g]
    ramd = [r for r in inside if r.type == "ramd"]
    ramd_bytes = sum(min(r.end, g + size) - max(r.start, g) for r in ramd if r.start < g + size)
    slots = sorted(
        s for r in ramd if (s := (-(-r.start // page) * page, r.end // page * page))[1] > s[0]
    )
    first = g // page * page
    last = -(-(g + size) // page) * page
    runs = _runs(inside, slots, g, first, last, page)
    lost = [r for r in runs if r.lost]
    notes = []
    if kvm_labels:
        for r in ramd:
            if r.start % page == 0 and r.end % page == 0 and not r.accel:
                notes.append(
                    f"{r.name} at {r.start:#x} is page aligned but has no KVM slot "
                    "label: slot registration missing?"
                )
    if msix_only and lost:
        notes.append(
            f"BAR {index} holds only the MSI-X table and PBA: its trapped pages hold no "
            "device registers, so nothing is lost"
        )
    return BarPages(
        index,
        size,
        g,
        guest_size,
        page,
        False,
        is_64bit,
        ramd_bytes,
        size - ramd_bytes,
        (last - first) // page,
        0 if msix_only else count_pages(lost),
        runs,
        tuple(notes),
        msix_only,
    )


def _runs(
    inside: list[FlatRange], slots: list[Span], g: int, first: int, last: int, page: int
) -> tuple[PageRun, ...]:
    """Cut ``[first, last)`` where a KVM slot or a flat range begins or ends: between two
    cuts every page is in one state and holds the same ranges whole, and a page that a
    range boundary splits is a piece of its own.  Neighbouring pieces of one state over
    the same range, or over nothing, join into one run."""
    cuts = {first, last}
    for lo, hi in slots:
        cuts.update(x for x in (lo, hi) if first < x < last)
    for x in [g] + [y for r in inside for y in (r.start, r.end)]:
        if first < x < last:
            down = x // page * page
            cuts.add(down)
            if down != x:  # down + page <= last: the page grid is last's too
                cuts.add(down + page)
    edges = sorted(cuts)
    out: list[PageRun] = []
    keys: list[tuple[int, ...]] = []
    j = s = 0
    for a, b in pairwise(edges):
        while s < len(slots) and slots[s][1] <= a:
            s += 1
        direct = s < len(slots) and slots[s][0] <= a and b <= slots[s][1]
        # flat ranges are disjoint and sorted: past j every range ends after a
        while j < len(inside) and inside[j].end <= a:
            j += 1
        over = []
        k = j
        while k < len(inside) and inside[k].start < b:
            over.append(inside[k])
            k += 1
        parts = tuple(
            PagePart(max(r.start, a, g) - g, min(r.end, b) - g, r.name, r.type, _what(r))
            for r in over
        )
        state = "direct" if direct else _reason(parts)
        key = tuple(id(r) for r in over)
        prev = out[-1] if out else None
        # Two neighbouring pieces never share two ranges (a piece over two holds the
        # boundary between them), so equal keys are one range or none.
        if prev is not None and prev.state == state and keys[-1] == key:
            merged = tuple(
                PagePart(p.start, q.end, p.name, p.type, p.what)
                # equal keys: equally long, so strict=False (a mutant) changes nothing
                for p, q in zip(prev.parts, parts, strict=True)  # pragma: no mutate
            )
            out[-1] = PageRun(prev.start, prev.count + (b - a) // page, page, state, merged)
            continue
        out.append(PageRun(a - first, (b - a) // page, page, state, parts))
        keys.append(key)
    return tuple(out)


def _reason(parts: tuple[PagePart, ...]) -> str:
    whats = {p.what for p in parts}
    for w in _REASONS:
        if w in whats:
            return _REASON_CODE.get(w, w)
    return "unaligned" if whats else "unassigned"


# ------------------------------------------------------------------ spans of page offsets


def run_spans(runs: Iterable[PageRun]) -> list[Span]:
    """The byte spans ``[start, end)`` the runs cover, sorted and joined."""
    out: list[Span] = []
    for r in sorted(runs, key=lambda r: r.start):
        if out and out[-1][1] >= r.start:
            out[-1] = (out[-1][0], max(out[-1][1], r.end))
        else:
            out.append((r.start, r.end))
    return out


def subtract_spans(spans: Sequence[Span], minus: Sequence[Span]) -> list[Span]:
    """The parts of sorted, disjoint ``spans`` outside sorted, disjoint ``minus``."""
    out: list[Span] = []
    j = 0
    for lo, hi in spans:
        pos = lo
        while j < len(minus) and minus[j][1] <= pos:
            j += 1
        k = j
        while k < len(minus) and minus[k][0] < hi:
            if minus[k][0] > pos:
                out.append((pos, minus[k][0]))
            pos = max(pos, minus[k][1])
            k += 1
        if pos < hi:
            out.append((pos, hi))
    return out


def clip_runs(runs: Sequence[PageRun], spans: Sequence[Span], shift: int) -> tuple[PageRun, ...]:
    """The pieces of ``runs`` inside sorted, disjoint ``spans`` (page-aligned offsets),
    their parts clipped too.  ``shift`` is page 0's offset from the BAR's guest base
    (``-(guest_base % page)``)."""
    out: list[PageRun] = []
    j = 0
    ordered = sorted(runs, key=lambda r: r.start)
    for lo, hi in spans:
        while j < len(ordered) and ordered[j].end <= lo:
            j += 1
        k = j
        while k < len(ordered) and ordered[k].start < hi:
            r = ordered[k]
            # runs are disjoint and sorted: r ends after lo and starts before hi, a < b
            a, b = max(r.start, lo), min(r.end, hi)
            parts = tuple(
                PagePart(max(p.start, a + shift), min(p.end, b + shift), p.name, p.type, p.what)
                for p in r.parts
                if p.start < b + shift and p.end > a + shift
            )
            out.append(PageRun(a, (b - a) // r.page_size, r.page_size, r.state, parts))
            k += 1
    return tuple(out)
