"""Runs of host pages (flatview.pages.PageRun) as text and as JSON data."""

from __future__ import annotations

from ..pages import PageRun

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (4 ms a run)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["run_data", "run_text"]


def run_text(r: PageRun, state: bool = False) -> str:
    """``+0x2000`` for one page, ``+0x0-0x1fff (2 pages)`` for a run; with ``state``:
    ``+0x2000 (msix-table)``, ``+0x0-0x1fff (2 pages, no-mmap)``."""
    if r.count == 1:
        return f"+{r.start:#x}" + (f" ({r.state})" if state else "")
    return f"+{r.start:#x}-{r.end - 1:#x} ({r.count} pages{', ' + r.state if state else ''})"


def run_data(r: PageRun) -> dict[str, Any]:
    """A run of pages as JSON: first and last byte offset in the BAR's page grid, the
    number of pages, their state and the flat ranges that share them."""
    return {
        "offset": r.start,
        "end": r.end - 1,
        "count": r.count,
        "reason": r.state,
        "shared_with": [
            {"name": x.name, "start": x.start, "end": x.end - 1, "what": x.what} for x in r.parts
        ],
    }
