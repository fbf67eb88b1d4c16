"""The advisor's report: tables for a terminal, plain data for ``--json``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tabulate import tabulate

from ..advisor import DeviceAdvice, RelocationReport
from ..pages import BarPages, count_pages
from .pages import run_data, run_text
from .units import human_size

__all__ = ["advice_data", "advice_text"]


def _bar_row(b: BarPages, label: str) -> list[Any]:
    if b.is_io:
        return [
            f"BAR{b.index}",
            label,
            "I/O",
            human_size(b.size) if b.size else "?",
            "-",
            "-",
            "port I/O: always trapped",
        ]
    kind = "64-bit" if b.is_64bit else "32-bit"
    runs = b.lost
    lost = ", ".join(run_text(r, state=True) for r in runs[:6])
    if len(runs) > 6:
        lost += f", ... ({len(runs)} runs, {count_pages(runs)} pages)"
    return [
        f"BAR{b.index}",
        label,
        kind,
        human_size(b.size),
        human_size(b.ramd_bytes) if b.ramd_bytes else "0",
        f"{b.pages_lost}/{b.pages_total}",
        lost or "-",
    ]


def _reloc_row(r: RelocationReport) -> list[Any]:
    if not r.valid:
        return [r.option, "refused", "", "", r.error or ""]
    layout = (
        ", ".join(
            f"BAR{b.index} {human_size(b.size)}{' new' if b.created else ''}"
            for b in r.relocation.bars
            if b.added
        )
        or "native layout"
    )
    msix = r.relocation.msix
    if msix is not None and r.option != "off":
        layout += f"; table BAR{msix.table_bar}+{msix.table_offset:#x}"
    hz = ", ".join(h.code for h in r.hazards if h.code != "guest-dependent")
    return [
        r.option,
        f"+{human_size(r.added_mmio)}" if r.added_mmio else "0",
        str(r.pages_lost),
        str(r.pages_recovered),
        layout + (f" [{hz}]" if hz else ""),
    ]


def advice_text(advice: Sequence[DeviceAdvice]) -> str:
    out: list[str] = []
    for a in advice:
        dev = a.facts.device
        page = human_size(a.page_size)
        title = f"{dev.address}" + (f" {dev.description}" if dev.description else "")
        msix = dev.msix
        out.append(f"== {title} — host pages {page}, kernel era {a.era}")
        if msix is not None:
            out.append(
                f"   MSI-X: {msix.vectors} vectors, table BAR{msix.table_bar}+"
                f"{msix.table_offset:#x} ({msix.table_size:#x} bytes), PBA BAR{msix.pba_bar}+"
                f"{msix.pba_offset:#x} ({msix.pba_size:#x} bytes)"
            )
        rows = [_bar_row(b, "dump") for b in a.observed]
        rows += [_bar_row(b, "simulated off") for b in a.simulated]
        out.append(
            tabulate(
                rows,
                headers=[
                    "BAR",
                    "from",
                    "type",
                    "size",
                    "ramd",
                    "lost",
                    "lost pages (offset in BAR: why)",
                ],
            )
        )
        for b in a.bars:
            for r in b.lost[:4]:
                parts = "; ".join(
                    f"{x.name} +{x.start:#x}-{x.end - 1:#x} ({x.what})" for x in r.parts
                )
                what = "page" if r.count == 1 else "pages"
                out.append(f"   BAR{b.index} {what} {run_text(r)} hold: {parts or 'nothing'}")
            out.extend(f"   note: {n}" for n in b.notes)
        out.extend(f"   explain: {e}" for e in a.explanations)
        out.extend(f"   note: {n}" for n in a.facts.notes)
        out.append(
            tabulate(
                [_reloc_row(r) for r in a.relocations],
                headers=[
                    "x-msix-relocation",
                    "added MMIO",
                    "pages lost",
                    "recovered",
                    "layout / error [hazards]",
                ],
            )
        )
        strat = "; ".join(f"{name}: {opt or 'none'}" for name, opt, _ in a.strategies)
        out.append(f"   strategies: {strat}")
        for p in a.reported:
            out.append(f"   reported working (not verified): {p.option} — {p.problem} — {p.source}")
        out.append(f"=> {a.recommendation}")
        out.append("")
    return "\n".join(out) + ("\n" if out else "")


def _bar_data(b: BarPages) -> dict[str, Any]:
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
    }


def advice_data(advice: Sequence[DeviceAdvice]) -> dict[str, Any]:
    devices = []
    for a in advice:
        dev = a.facts.device
        devices.append(
            {
                "device": dev.address,
                "page_size": a.page_size,
                "kernel_era": a.era,
                "basis": "dump" if a.observed else "simulated",
                "bars": [_bar_data(b) for b in a.bars],
                "simulated_bars": [_bar_data(b) for b in a.simulated],
                "relocations": [
                    {
                        "option": r.option,
                        "valid": r.valid,
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
                "strategies": [{"name": n, "option": o, "why": w} for n, o, w in a.strategies],
                "reported_working": [
                    {"option": p.option, "problem": p.problem, "source": p.source}
                    for p in a.reported
                ],
                "explanations": list(a.explanations),
                "notes": list(a.facts.notes),
                "recommendation": a.recommendation,
            }
        )
    return {"devices": devices}
