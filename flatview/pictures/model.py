"""What a picture shows, before any geometry: BAR rows of host-page runs, the MSI-X
table and PBA marks, and the guest physical address map of each address space.

Built from the analyses' results only (the advisor's :class:`~flatview.advisor.DeviceAdvice`,
diff's :class:`~flatview.diff.BarDiff`, the FlatViews): nothing here reads dump text.
A BAR's host pages are kept as *runs* of like pages (start, count, state), never one
object per page, so a 64 GiB BAR at 4K pages (16M pages) is a handful of runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from .. import pages
from ..advisor import DeviceAdvice
from ..diff import BarDiff, BarFigures, DiffReport, Side
from ..model import FlatView
from ..vfio.pci import MsixCapability

__all__ = [
    "STATES",
    "BarBlock",
    "MapRange",
    "MapView",
    "Mark",
    "Panel",
    "Picture",
    "Row",
    "Run",
    "from_advice",
    "from_diff",
    "memory_maps",
    "page_runs",
    "page_state",
]

# Page states, in legend order: (colour, legend text).  The colours are mid-tones that
# stay distinct on a white and on a near-black background.
STATES: dict[str, tuple[str, str]] = {
    "direct": ("#2f9e44", "direct-mapped (in a ramd range: KVM maps the page)"),
    "shared": ("#e03131", "lost: registers sharing a page with the MSI-X table or PBA"),
    "msix-table": ("#7048e8", "MSI-X table (emulated by QEMU)"),
    "msix-pba": ("#1c7ed6", "PBA (emulated by QEMU)"),
    "trapped": ("#868e96", "trapped registers (no mmap, quirk, no host BAR)"),
    "unaligned": ("#f08c00", "lost: its ramd range does not cover the whole page"),
}

# Memory-map kinds of a flat range (the printed type), with their colours.
KINDS: dict[str, str] = {
    "ram": "#2f9e44",
    "ramd": "#66a80f",
    "rom": "#ae3ec9",
    "romd": "#d6336c",
    "i/o": "#868e96",
}


@dataclass(frozen=True, slots=True)
class Run:
    """``count`` host pages from page ``start`` of the BAR's page grid, all in ``state``."""

    start: int
    count: int
    state: str
    why: str = ""  # what the first page of the run holds, for hover text

    @property
    def end(self) -> int:
        return self.start + self.count


@dataclass(frozen=True, slots=True)
class Mark:
    """The MSI-X table or PBA: byte offsets in the BAR's page grid."""

    what: str  # "msix-table" or "msix-pba"
    start: int
    end: int  # exclusive
    guessed: bool = False  # the input does not show it (a dump without lspci: the PBA)


@dataclass(frozen=True, slots=True)
class Row:
    """One BAR under one layout (the dump, ``off``, a relocation option, before/after)."""

    label: str
    runs: tuple[Run, ...]
    marks: tuple[Mark, ...] = ()
    note: str = ""
    lost_since: tuple[Run, ...] = ()  # diff: pages direct before, not now
    gained: tuple[Run, ...] = ()  # diff: pages direct now, not before
    lead: int = 0  # bytes from the page grid's start to the BAR's first byte

    @property
    def pages(self) -> int:
        return self.runs[-1].end if self.runs else 0


@dataclass(frozen=True, slots=True)
class BarBlock:
    """One BAR of one device at one page size: its rows share one axis."""

    device: str
    index: int
    size: int
    page_size: int
    title: str
    rows: tuple[Row, ...]


@dataclass(frozen=True, slots=True)
class Panel:
    title: str
    lines: tuple[str, ...]  # recommendation, notes
    blocks: tuple[BarBlock, ...]


@dataclass(frozen=True, slots=True)
class MapRange:
    start: int
    end: int  # exclusive
    type: str  # printed type: ram, ramd, rom, romd, i/o
    name: str
    owner: str
    priority: int
    changed: str = ""  # diff: how this range changed


@dataclass(frozen=True, slots=True)
class MapView:
    title: str
    ranges: tuple[MapRange, ...]


@dataclass(frozen=True, slots=True)
class Picture:
    title: str
    panels: tuple[Panel, ...]
    maps: tuple[MapView, ...] = ()
    notes: tuple[str, ...] = ()


def size_text(n: int) -> str:
    """4K, 64K, 16M, 64G; hex bytes when not a whole unit."""
    for unit, shift in (("E", 60), ("P", 50), ("T", 40), ("G", 30), ("M", 20), ("K", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift}{unit}"
    return f"{n:#x}"


# ---------------------------------------------------------------------- page runs


class _Pages(Protocol):
    """What BarPages (advisor) and BarFigures (diff) both carry."""

    @property
    def runs(self) -> tuple[pages.PageRun, ...]: ...


_MSIX = ("msix-table", "msix-pba")


def page_state(run: pages.PageRun) -> str:
    """What a run of host pages is, for the eye: direct-mapped; the MSI-X table or PBA
    alone; device registers sharing a page with them (the whole page traps); other
    trapped registers; or a direct range that does not cover the whole page."""
    if not run.lost:
        return "direct"
    whats = {p.what for p in run.parts}
    if whats & set(_MSIX):
        if whats - set(_MSIX):  # device registers share the page: they trap with it
            return "shared"
        return "msix-table" if "msix-table" in whats else "msix-pba"
    if run.state == "unaligned":
        return "unaligned"
    return "trapped"


def _why(run: pages.PageRun) -> str:
    if not run.lost:
        return ""
    parts = [p for p in run.parts if p.what != "direct"] or list(run.parts)
    held = ", ".join(f"{p.name} +{p.start:#x}-{p.end - 1:#x}" for p in parts[:3])
    return f"{run.state}: {held}" if held else run.state


def page_runs(bar: _Pages) -> tuple[Run, ...]:
    """A BAR's page runs (flatview.pages) as drawn: like neighbours merged (two runs
    holding different ranges may look the same), page numbers instead of offsets."""
    out: list[Run] = []
    for r in bar.runs:
        state = page_state(r)
        i = r.start // r.page_size
        last = out[-1] if out else None
        if last is not None and last.end == i and last.state == state:
            out[-1] = Run(last.start, last.count + r.count, state, last.why)
        else:
            out.append(Run(i, r.count, state, _why(r)))
    return tuple(out)


def _changed(runs: Iterable[pages.PageRun], why: str) -> tuple[Run, ...]:
    return tuple(Run(r.start // r.page_size, r.count, why, why) for r in runs)


def _marks(
    msix: MsixCapability | None, index: int, lead: int, pba_guessed: bool = False
) -> tuple[Mark, ...]:
    if msix is None:
        return ()
    out = []
    if msix.table_bar == index:
        start = lead + msix.table_offset
        out.append(Mark("msix-table", start, start + msix.table_size))
    if msix.pba_bar == index:
        start = lead + msix.pba_offset
        out.append(Mark("msix-pba", start, start + msix.pba_size, pba_guessed))
    return tuple(out)


def _lead(guest_base: int | None, page: int) -> int:
    return guest_base % page if guest_base is not None else 0


# -------------------------------------------------------------------- the advisor


def _bar_title(device: str, index: int, size: int, page: int, wide: bool | None) -> str:
    width = "" if wide is None else (" · 64-bit" if wide else " · 32-bit")
    return f"{device} · BAR{index} · {size_text(size)}{width} · host pages {size_text(page)}"


def _seen_msix(a: DeviceAdvice) -> MsixCapability | None:
    """The MSI-X layout of the dump; where the dump does not show the PBA (vfio-pci
    disables QEMU's msix-pba), the device's own (lspci, info pci), when not relocated."""
    f = a.facts
    msix, dev = f.observed_msix, f.device.msix
    if msix is None or dev is None or f.relocated_to is not None:
        return msix or dev
    if f.observed is not None and f.observed.pba is None:
        return replace(msix, pba_bar=dev.pba_bar, pba_offset=dev.pba_offset, source=dev.source)
    return msix


def _advice_panel(a: DeviceAdvice, every_option: bool) -> Panel:
    dev = a.facts.device
    layouts: list[tuple[str, Sequence, MsixCapability | None, str]] = []
    if a.observed:
        layouts.append(("dump", a.observed, _seen_msix(a), "what the dump shows"))
    by_option = {r.option: r for r in a.relocations}
    layouts.append(("off", a.simulated, dev.msix, "simulated x-msix-relocation=off"))
    best = a.recommended.option if a.recommended is not None else None
    chosen = [best] if best in by_option and best != "off" else []
    if every_option:
        chosen += [o for o in a.ranking if o != best]
    for option in chosen:
        r = by_option[option]
        star = " ★" if option == best else ""
        msix = r.relocation.msix
        where = f"table → BAR{msix.table_bar}+{msix.table_offset:#x}" if msix else ""
        note = f"{where}; +{size_text(r.added_mmio)} MMIO; recovers {r.pages_recovered}"
        layouts.append((f"{option}{star}", r.bars, msix, note))
    # vfio-pci disables QEMU's msix-pba, so a dump alone does not say where the PBA is
    seen = a.facts.observed
    guess = (dev.msix is not None and dev.msix.source == "dump") and (seen is None or not seen.pba)
    indexes = sorted({b.index for _, bars, _, _ in layouts for b in bars if not b.is_io})
    blocks = []
    for k in indexes:
        rows = []
        size = 0
        for label, bars, msix, note in layouts:
            b = next((x for x in bars if x.index == k and x.pages_total), None)
            if b is None:
                continue
            size = size or b.size
            lead = _lead(b.guest_base, a.page_size)
            lost = f"{b.pages_lost}/{b.pages_total} lost" if not b.msix_only else "MSI-X only"
            rows.append(
                Row(
                    label, page_runs(b), _marks(msix, k, lead, guess), f"{lost} · {note}", lead=lead
                )
            )
        if rows:
            wide = next((b.is_64bit for b in dev.bars if b.index == k), None)
            blocks.append(
                BarBlock(
                    dev.address,
                    k,
                    size,
                    a.page_size,
                    _bar_title(dev.address, k, size, a.page_size, wide),
                    tuple(rows),
                )
            )
    io = [b.index for b in dev.bars if b.is_io]
    lines = [f"{a.headline}: {a.action}" if a.headline and a.action else a.recommendation]
    if io:
        bars = ", ".join(map(str, io))
        lines.append(f"I/O BAR{'s' if len(io) > 1 else ''} {bars}: port I/O, always trapped")
    if not every_option and set(a.ranking) - {best}:
        others = ", ".join(o for o in a.ranking if o != best)
        lines.append(f"other valid options (the HTML form draws them all): {others}")
    name = f"{dev.address} {dev.description}" if dev.description else dev.address
    title = f"{name} — host pages {size_text(a.page_size)}"
    return Panel(title, tuple(lines), tuple(blocks))


def from_advice(
    advice: Sequence[DeviceAdvice],
    views: Sequence[FlatView] = (),
    *,
    title: str,
    every_option: bool = False,
) -> Picture:
    """The advisor's picture: per device and page size, each BAR as the dump shows it,
    under ``off`` and under the recommended option (``every_option``: every valid one)."""
    panels = tuple(_advice_panel(a, every_option) for a in advice)
    return Picture(title, panels, memory_maps(views))


# --------------------------------------------------------------------------- diff


def _diff_row(label: str, fig: BarFigures | None, side: Side, d: BarDiff) -> Row | None:
    """One side of a BAR in a diff; the after side carries the changed pages."""
    if fig is None or not fig.pages_total:
        return None
    lead = _lead(fig.guest_base, fig.page_size)
    marks = tuple(
        Mark(what, lead + off, lead + off + size)
        for what, (bar, off, size) in _msix_seen(side, d.device)
        if bar == d.index
    )
    note = f"{fig.pages_direct}/{fig.pages_total} direct"
    if label == "before":
        return Row(label, page_runs(fig), marks, note, lead=lead)
    lost = _changed(d.lost, "direct before, not after")
    gained = _changed(d.gained, "direct after, not before")
    return Row(label, page_runs(fig), marks, note, lost, gained, lead)


def _msix_seen(side: Side, device: str) -> list[tuple[str, tuple[int, int, int]]]:
    """Where the side's flat view shows the device's msix-table and msix-pba."""
    for f in side.facts:
        if f.device.address == device and f.observed is not None:
            seen = (("msix-table", f.observed.table), ("msix-pba", f.observed.pba))
            return [(what, where) for what, where in seen if where is not None]
    return []


def from_diff(report: DiffReport, before: Side, after: Side, *, title: str) -> Picture:
    """The picture of ``diff``: each BAR before and after, the pages that changed marked;
    the address spaces whose flat view changed, with the changed ranges marked."""
    from ..diff import verdict

    panels = []
    for dd in report.devices:
        for page in report.page_sizes:
            blocks = []
            lines = []
            for d in dd.bars:
                if d.page_size != page or d.index is None:
                    continue
                rows = [
                    r
                    for r in (
                        _diff_row("before", d.before, before, d),
                        _diff_row("after", d.after, after, d),
                    )
                    if r is not None
                ]
                lines.append(f"BAR{d.index}: {verdict(d)}{' — REGRESSION' if d.regressed else ''}")
                if rows:
                    fig = d.after or d.before
                    size = fig.host_size or fig.guest_size
                    blocks.append(
                        BarBlock(
                            dd.bdf,
                            d.index,
                            size,
                            page,
                            _bar_title(dd.bdf, d.index, size, page, None),
                            tuple(rows),
                        )
                    )
            gone = (
                " (gone from AFTER)"
                if not dd.in_after
                else " (new in AFTER)"
                if not dd.in_before
                else ""
            )
            panels.append(
                Panel(f"{dd.bdf}{gone} — host pages {size_text(page)}", tuple(lines), tuple(blocks))
            )
    maps = []
    changed = {tuple(v.address_spaces): v for v in report.views}
    for side, label in ((before, "before"), (after, "after")):
        for v in side.views:
            if not v.ranges:
                continue
            names = v.names or (f"(root {v.root})",)
            vd = next((c for k, c in changed.items() if set(names) & set(k)), None)
            if vd is None:
                continue
            marks = [(c.start, c.end, c.what) for c in vd.changes]
            maps.append(_map_view(v, f"{label}: {', '.join(names)}", marks))
    return Picture(title, tuple(panels), tuple(maps), report.notes)


# ------------------------------------------------------------------ memory maps


def _owner(r) -> str:
    if r.owner is not None:
        return r.owner.text.strip()
    if r.region is not None and r.region.owner is not None:
        return r.region.owner.text.strip()
    return "(not printed: use info mtree -f -o)"


def _map_view(v: FlatView, title: str, changes: Sequence[tuple[int, int, str]] = ()) -> MapView:
    out = []
    for r in v.ranges:
        what = next((w for s, e, w in changes if s < r.end and e > r.start), "")
        out.append(MapRange(r.start, r.end, r.type, r.name, _owner(r), r.priority, what))
    return MapView(title, tuple(out))


def memory_maps(views: Sequence[FlatView]) -> tuple[MapView, ...]:
    """Each FlatView's ranges (views shared by several address spaces drawn once)."""
    out = []
    for v in views:
        if not v.ranges:
            continue
        names = ", ".join(v.names) or f"(root {v.root})"
        number = f"FlatView #{v.number}: " if v.number is not None else ""
        out.append(_map_view(v, f"{number}{names}"))
    return tuple(out)
