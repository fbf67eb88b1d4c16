"""Host pages of a BAR: direct-mapped or lost, read off a FlatView.

KVM maps only whole host pages: QEMU hands it each RAM-like flat range trimmed to the
page grid (accel/kvm/kvm-all.c ``kvm_align_section``: start rounded up, size rounded
down).  A page of a BAR is direct-mapped when it lies inside such a trimmed ``ramd``
range; otherwise every access to it traps into QEMU.  The same function reads a real
dump and a simulated one (vfio-msix.md §3.3).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from .model import FlatRange

__all__ = ["BarPages", "LostPage", "PagePart", "bar_pages"]

_QUIRK = re.compile(r"quirk")


@dataclass(frozen=True, slots=True)
class PagePart:
    """What occupies part of a lost page (offsets relative to the BAR's guest base)."""

    start: int
    end: int  # exclusive
    name: str
    type: str
    what: str  # "msix-table", "msix-pba", "quirk", "trapped", "relocation space", "direct"


@dataclass(frozen=True, slots=True)
class LostPage:
    offset: int  # page start relative to the BAR's guest base
    reason: str  # the first of: msix-table, msix-pba, quirk, no-mmap, unaligned, unassigned
    parts: tuple[PagePart, ...]


@dataclass(frozen=True, slots=True)
class BarPages:
    """The direct-mapping picture of one BAR at one host page size."""

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
    lost: tuple[LostPage, ...]
    notes: tuple[str, ...] = ()
    msix_only: bool = False  # a BAR dedicated to MSI-X: its trapped pages cost nothing


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
    is_io: bool = False,
    is_64bit: bool = False,
    kvm_labels: bool = False,
    msix_only: bool = False,
) -> BarPages:
    """Pages of ``[guest_base, guest_base + size)`` against the view's ``ranges``."""
    g = guest_base
    inside = [r for r in ranges if r.start < g + guest_size and r.end > g]
    if is_io:
        return BarPages(index, size, g, guest_size, page, True, is_64bit, 0, size, 0, 0, ())
    ramd = [r for r in inside if r.type == "ramd"]
    ramd_bytes = sum(min(r.end, g + size) - max(r.start, g) for r in ramd if r.start < g + size)
    slots = [(-(-r.start // page) * page, r.end // page * page) for r in ramd]
    first = g // page * page
    last = -(-(g + size) // page) * page
    total = (last - first) // page
    lost: list[LostPage] = []
    for lo, hi in _uncovered(first, last, slots):
        # walk the ranges once per lost run, not once per page (BARs reach 128G)
        j = 0
        for p in range(lo, hi, page):
            while j < len(inside) and inside[j].end <= p:
                j += 1
            parts = tuple(
                PagePart(max(r.start, p, g) - g, min(r.end, p + page) - g, r.name, r.type, _what(r))
                for r in inside[j:]
                if r.start < p + page and r.end > p
            )
            # offset in the BAR's page grid (a sub-page BAR's one page is page 0)
            lost.append(LostPage(p - first, _reason(parts), parts))
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
        total,
        0 if msix_only else len(lost),
        tuple(lost),
        tuple(notes),
        msix_only,
    )


def _uncovered(first: int, last: int, slots: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of [first, last) that no KVM slot covers (slots are page aligned)."""
    out, pos = [], first
    for lo, hi in sorted(sl for sl in slots if sl[1] > sl[0]):
        if lo > pos:
            out.append((pos, min(lo, last)))
        pos = max(pos, hi)
        if pos >= last:
            break
    if pos < last:
        out.append((pos, last))
    return [(lo, hi) for lo, hi in out if lo < hi]


def _reason(parts: tuple[PagePart, ...]) -> str:
    whats = {p.what for p in parts}
    for w in _REASONS:
        if w in whats:
            return _REASON_CODE.get(w, w)
    return "unaligned" if whats else "unassigned"
