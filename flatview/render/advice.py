"""The advisor's report: text for a terminal (100 columns unless ``wide``), plain data for
``--json``."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import Any

from ..advisor import HAZARDS, DeviceAdvice, RelocationReport, era_words, size_text
from ..pages import BarPages, count_pages
from .pages import run_data, run_text

__all__ = ["WIDTH", "advice_data", "advice_text"]

WIDTH = 100  # columns of the default text report


def _codes(r: RelocationReport) -> list[str]:
    """Hazard codes of one option, each once (a device with two sub-page BARs has one)."""
    return list(dict.fromkeys(h.code for h in r.hazards if h.code != "guest-dependent"))


def _lost_cell(b: BarPages, limit: int) -> str:
    runs = b.lost
    lost = ", ".join(run_text(r, state=True) for r in runs[:limit])
    if len(runs) > limit:
        lost += f", ... ({len(runs)} runs, {count_pages(runs)} pages)"
    return lost or "-"


def _bar_row(b: BarPages, label: str, limit: int) -> list[Any]:
    if b.is_io:
        size = size_text(b.size) if b.size else "?"
        return [f"BAR{b.index}", label, "I/O", size, "-", "port I/O: always trapped"]
    kind = "64-bit" if b.is_64bit else "32-bit"
    return [
        f"BAR{b.index}",
        label,
        kind,
        size_text(b.size),
        f"{b.pages_lost}/{b.pages_total}",
        _lost_cell(b, limit),
    ]


def _verdict(r: RelocationReport) -> str:
    if not r.valid:
        return "refuses"
    return "accepts" if not r.conditions else "only if"


def _reloc_row(r: RelocationReport) -> list[Any]:
    if not r.valid:
        return [r.option, _verdict(r), "", "", "", "(below)"]
    layout = (
        ", ".join(
            f"BAR{b.index} {size_text(b.size)}{' new' if b.created else ''}"
            for b in r.relocation.bars
            if b.added
        )
        or "native layout"
    )
    msix = r.relocation.msix
    if msix is not None and r.option != "off":
        layout += f"; table BAR{msix.table_bar}+{msix.table_offset:#x}"
    hz = ", ".join(_codes(r))
    return [
        r.option,
        _verdict(r),
        f"+{size_text(r.added_mmio)}" if r.added_mmio else "0",
        str(r.pages_lost),
        str(r.pages_recovered),
        layout + (f" [{hz}]" if hz else ""),
    ]


class _Out:
    """Lines of the report, free text wrapped to WIDTH columns unless wide."""

    def __init__(self, wide: bool) -> None:
        self.wide = wide
        self.lines: list[str] = []
        # Devices of one model share their tables (their rows name no device): each is
        # laid out once; tabulate costs ~0.6 ms a table, 260 tables for 130 devices.
        self._tables: dict[tuple, list[str]] = {}
        self._wrapped: dict[tuple[str, str, str], list[str]] = {}

    def text(self, line: str, indent: str = "   ", more: str = "     ") -> None:
        if self.wide:
            self.lines.append(indent + line)
            return
        if len(indent) + len(line) <= WIDTH and line.isprintable() and line[-1:] not in " ":
            self.lines.append(indent + line)  # what textwrap returns for it, much sooner
            return
        key = (line, indent, more)  # notes repeat from device to device: wrap each once
        lines = self._wrapped.get(key)
        if lines is None:
            lines = self._wrapped[key] = textwrap.wrap(
                line,
                WIDTH,
                initial_indent=indent,
                subsequent_indent=more,
                break_on_hyphens=False,
                break_long_words=False,
            ) or [indent.rstrip()]
        self.lines.extend(lines)

    def table(self, rows: list[list[Any]], headers: list[str], widths: list[int | None]) -> None:
        if not rows:  # a table of no rows says nothing (and tabulate 0.9 fails on one)
            return
        key = (tuple(map(tuple, rows)), tuple(headers), tuple(widths))
        lines = self._tables.get(key)
        if lines is None:
            from tabulate import tabulate  # when a table is laid out: not for --json

            text = tabulate(
                rows,
                headers=headers,
                maxcolwidths=None if self.wide else widths,
                disable_numparse=True,
                tablefmt="plain",
            )
            lines = self._tables[key] = ["   " + line for line in text.splitlines()]
        self.lines.extend(lines)


def _title(a: DeviceAdvice) -> str:
    dev = a.facts.device
    ids = (
        f" [{dev.vendor_id:04x}:{dev.device_id:04x}]"
        if dev.vendor_id is not None
        and dev.device_id is not None
        and f"{dev.vendor_id:04x}:{dev.device_id:04x}" not in (dev.description or "")
        else ""
    )
    return f"{dev.address}" + (f" {dev.description}" if dev.description else "") + ids


def advice_text(advice: Sequence[DeviceAdvice], wide: bool = False) -> str:
    o = _Out(wide)
    used: dict[str, None] = {}
    # (address, page size) -> the lines of its findings, options and action: a device
    # whose advice repeats another's (DeviceAdvice.same_as) reads the same but for the
    # address, which is as long, so the lines wrap alike
    done: dict[tuple[str, int], tuple[Sequence[str], ...]] = {}
    for a in advice:
        dev = a.facts.device
        _head(o, a)
        was = a.same_as
        seen = done.get((was, a.page_size)) if was and len(was) == len(dev.address) else None
        fresh: list[Sequence[str]] = []
        k = 0  # the shared sections so far
        for section, shared in _SECTIONS:
            if not shared:
                section(o, a, used)
                continue
            if seen is not None:
                o.lines += [line.replace(was, dev.address) for line in seen[k]]
            else:
                n = len(o.lines)
                section(o, a, used)
                fresh.append(o.lines[n:])
            k += 1
        if seen is None:
            done[(dev.address, a.page_size)] = tuple(fresh)
        o.lines.append("")
    if used:
        o.text("hazards:", indent="")
        for code in used:
            meaning, where = HAZARDS[code]
            o.text(f"{code}: {meaning} (see: {where})", indent="  ", more="    ")
    return "\n".join(o.lines) + ("\n" if o.lines else "")


def _head(o: _Out, a: DeviceAdvice) -> None:
    """The device and the facts read about it."""
    o.text(f"== {_title(a)}", indent="", more="   ")
    o.text(
        f"host pages {size_text(a.page_size)}, {era_words(a.era)}; "
        f"from: {', '.join(a.facts.sources) or 'input'}"
    )
    msix = a.facts.device.msix
    if msix is not None:
        o.text(
            f"MSI-X: {msix.vectors} vectors, table BAR{msix.table_bar}+"
            f"{msix.table_offset:#x} ({msix.table_size} bytes), PBA BAR{msix.pba_bar}+"
            f"{msix.pba_offset:#x} ({msix.pba_size} bytes)"
        )
    for f in a.facts.provenance:
        if f.source.startswith("inferred"):
            o.text(f"inferred: {f.what} = {f.value}: {f.source.removeprefix('inferred: ')}")


def _findings(o: _Out, a: DeviceAdvice, used: dict[str, None]) -> None:
    """What the device loses: the assumptions, the headline, its BARs' pages and why."""
    for assumption in a.recommended.assumptions if a.recommended else ():
        o.text(f"assumed: {assumption}")
    o.text(a.headline)
    limit = 64 if o.wide else 3
    rows = [_bar_row(b, "dump", limit) for b in a.observed]
    rows += [_bar_row(b, "simulated", limit) for b in a.simulated]
    if not rows:  # hostile or cut input: a device named by a region, with no BAR shown
        o.text("BARs: none in the input, so no host page to lose")
    o.table(
        rows,
        ["BAR", "from", "type", "size", "lost", "lost pages (offset in BAR, why)"],
        [None, None, None, None, None, 50],
    )
    for b in a.bars:
        for r in b.lost[:4]:
            parts = "; ".join(f"{x.name} +{x.start:#x}-{x.end - 1:#x} ({x.what})" for x in r.parts)
            what = "page" if r.count == 1 else "pages"
            verb = "holds" if r.count == 1 else "hold"
            o.text(f"BAR{b.index} {what} {run_text(r)} {verb}: {parts or 'nothing'}")
        for n in b.notes:
            o.text(f"note: {n}")
    for e in a.explanations:
        o.text(f"explain: {e}")


def _facts_notes(o: _Out, a: DeviceAdvice, used: dict[str, None]) -> None:
    for n in a.facts.notes:
        o.text(f"note: {n}")


def _options(o: _Out, a: DeviceAdvice, used: dict[str, None]) -> None:
    """Each x-msix-relocation option: what QEMU does with it and what it costs."""
    o.table(
        [_reloc_row(r) for r in a.relocations],
        ["option", "QEMU", "+MMIO", "lost", "back", "guest layout [hazards]"],
        [None, None, None, None, None, 48],
    )
    for r in a.relocations:
        if not r.valid:
            o.text(f"{r.option}: QEMU refuses: {r.error}")
        elif r.conditions:
            o.text(f"{r.option}: QEMU accepts it only if {' and '.join(r.conditions)}")
        for code in _codes(r):
            used[code] = None
    strat = "; ".join(f"{name}: {opt or 'none'}" for name, opt, _ in a.strategies)
    o.text(f"strategies: {strat}")
    for p in a.reported:
        o.text(f"reported working (not verified): {p.option}, {p.problem} ({p.source})")


def _changed(o: _Out, a: DeviceAdvice, used: dict[str, None]) -> None:
    for c in a.changed:
        o.text(f"changed: {c}")


def _action(o: _Out, a: DeviceAdvice, used: dict[str, None]) -> None:
    address = a.facts.device.address
    o.text(f"=> {address} at {size_text(a.page_size)} pages: {a.action}", "", "   ")


# A device's report after its head, in order: each section, and whether it is the
# advisor's (a repeated advice's reads the same but for the address) or the device's own.
_SECTIONS = (
    (_findings, True),
    (_facts_notes, False),
    (_options, True),
    (_changed, False),
    (_action, True),
)


def _bar_data(b: BarPages, sources: dict[str, str]) -> dict[str, Any]:
    return {
        "index": b.index,
        "size": b.size,
        "is_64bit": b.is_64bit,
        "is_io": b.is_io,
        "guest_base": b.guest_base,
        "ramd_bytes": b.ramd_bytes,
        "trapped_bytes": b.trapped_bytes,
        "pages_total": b.pages_total,
        "pages_lost": b.pages_lost,
        "lost_pages": [run_data(r) for r in b.lost],
        "notes": list(b.notes),
        "source": sources,
    }


def _sources(a: DeviceAdvice, b: BarPages, simulated: bool) -> dict[str, str]:
    """Where each fact of one BAR came from: the input's facts, and for a simulated BAR
    the guest placement (the dump's, else the simulation's) and the simulated mapping."""
    got = dict(a.facts.sources_of(b.index))
    if simulated:
        if b.index not in a.facts.guest_bases:
            got["guest address"] = "simulated: placed as firmware allocates BARs"
        got["pages"] = f"simulated: x-msix-relocation=off, {era_words(a.era)}"
    else:
        got["pages"] = "dump: the flat view's ramd ranges"
    return got


def advice_data(advice: Sequence[DeviceAdvice]) -> dict[str, Any]:
    devices = []
    for a in advice:
        dev = a.facts.device
        rec = a.recommended
        devices.append(
            {
                "device": dev.address,
                "page_size": a.page_size,
                "kernel_era": a.era,
                "host_kernel": era_words(a.era),
                "basis": a.basis,
                "headline": a.headline,
                "bars": [_bar_data(b, _sources(a, b, not a.observed)) for b in a.bars],
                "simulated_bars": [_bar_data(b, _sources(a, b, True)) for b in a.simulated],
                "facts": [
                    {"fact": f.what, "value": f.value, "source": f.source}
                    for f in a.facts.provenance
                ],
                "msix": {
                    "source": a.facts.sources_of(None),
                }
                if dev.msix is not None
                else None,
                "relocations": [
                    {
                        "option": r.option,
                        "valid": r.valid,
                        "certain": r.certain,
                        "conditions": list(r.conditions),
                        "error": r.error,
                        "added_mmio": r.added_mmio,
                        "pages_lost": r.pages_lost,
                        "pages_recovered": r.pages_recovered,
                        "bars": [
                            {
                                "index": b.index,
                                "size": b.size,
                                "new": b.created,
                                "is_64bit": b.is_64bit,
                            }
                            for b in r.relocation.bars
                        ],
                        "hazards": [
                            {"code": h.code, "text": h.text, "source": h.source} for h in r.hazards
                        ],
                    }
                    for r in a.relocations
                ],
                "ranking": list(a.ranking),
                "recommended": {
                    "option": rec.option,
                    "pages_recovered": rec.pages_recovered,
                    "added_mmio": rec.added_mmio,
                    "assumptions": list(rec.assumptions),
                    "conditions": list(rec.conditions),
                    "alternative": rec.alternative,
                }
                if rec is not None
                else None,
                "strategies": [{"name": n, "option": o, "why": w} for n, o, w in a.strategies],
                "reported_working": [
                    {"option": p.option, "problem": p.problem, "source": p.source}
                    for p in a.reported
                ],
                "explanations": list(a.explanations),
                "changed": list(a.changed),
                "notes": list(a.facts.notes),
                "recommendation": a.recommendation,
            }
        )
    return {"devices": devices}
