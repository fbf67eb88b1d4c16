#!/usr/bin/env python3
"""Benchmark of the pictures stage (``flatview map``): a 64 GiB BAR at 4K host pages.

    python3 benchmarks/pictures.py          # table (also printed by benchmarks/bench.py)
    python3 benchmarks/pictures.py --json

Inputs, built in memory as FlatRanges of one BAR at 0x80_0000_0000:
  (p1) 64 GiB, 16M pages of 4K, the MSI-X table (2048 vectors, 32K) at +32G between two
       ``ramd`` mmaps: 3 runs;
  (p2) the same BAR with 1,000 trapped 4K windows spread over it (quirks): 2,001 runs,
       a scaling figure (the cost grows with runs, not pages), no goal;
  (p3) the same BAR fully trapped (x-no-mmap=on: one i/o range): 1 run.
Each figure is the median of 5 runs of: host pages -> runs (``page_runs``) -> layout ->
SVG text (drawsvg), and the same -> HTML text.  ``bar_pages`` (the analysis) is timed
apart: the picture is fed by its result.  Goal for (p1) and (p3): each file under 1 MB,
each drawing well under a second.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flatview.model import FlatRange  # noqa: E402
from flatview.pages import bar_pages  # noqa: E402
from flatview.pictures.html import to_html  # noqa: E402
from flatview.pictures.layout import layout  # noqa: E402
from flatview.pictures.model import BarBlock, Panel, Picture, Row, page_runs  # noqa: E402
from flatview.pictures.svg import to_svg  # noqa: E402

BASE = 0x80_0000_0000
SIZE = 64 << 30
PAGE = 4096
GOAL_BYTES = 1 << 20
GOAL_S = 1.0


def ranges_p1() -> tuple[FlatRange, ...]:
    t, n = 32 << 30, 2048 * 16
    return (
        FlatRange(BASE, t, 0, "ramd", "0000:01:00.0 BAR 0 mmaps[0]"),
        FlatRange(BASE + t, n, 0, "i/o", "msix-table"),
        FlatRange(BASE + t + n, SIZE - t - n, 0, "ramd", "0000:01:00.0 BAR 0 mmaps[0]"),
    )


def ranges_p2(windows: int = 1000) -> tuple[FlatRange, ...]:
    out, pos, step = [], 0, SIZE // windows
    for k in range(windows):
        at = k * step + step // 2
        out.append(FlatRange(BASE + pos, at - pos, 0, "ramd", "0000:01:00.0 BAR 0 mmaps[0]"))
        out.append(FlatRange(BASE + at, PAGE, 0, "i/o", f"0000:01:00.0 quirk {k}"))
        pos = at + PAGE
    out.append(FlatRange(BASE + pos, SIZE - pos, 0, "ramd", "0000:01:00.0 BAR 0 mmaps[0]"))
    return tuple(out)


def ranges_p3() -> tuple[FlatRange, ...]:
    return (FlatRange(BASE, SIZE, 0, "i/o", "0000:01:00.0 BAR 0"),)


def median_s(fn, runs: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def measure(label: str, ranges: tuple[FlatRange, ...], runs: int) -> dict:
    analyse_s, bp = median_s(
        lambda: bar_pages(ranges, index=0, guest_base=BASE, size=SIZE, guest_size=SIZE, page=PAGE),
        runs,
    )

    def picture() -> Picture:
        row = Row("dump", page_runs(bp))
        block = BarBlock("0000:01:00.0", 0, SIZE, PAGE, "0000:01:00.0 · BAR0 · 64G", (row,))
        return Picture("benchmark", (Panel("0000:01:00.0 — host pages 4K", (), (block,)),))

    svg_s, svg = median_s(lambda: to_svg(layout(picture())), runs)
    html_s, page = median_s(lambda: to_html(picture(), layout(picture())), runs)
    return {
        "input": label,
        "pages": SIZE // PAGE,
        "runs": len(page_runs(bp)),
        "bar_pages_s": analyse_s,
        "svg_s": svg_s,
        "svg_bytes": len(svg.encode()),
        "html_s": html_s,
        "html_bytes": len(page.encode()),
    }


def figures(runs: int = 5) -> list[dict]:
    return [
        measure("p1 64G BAR, 4K pages, MSI-X table at +32G", ranges_p1(), runs),
        measure("p2 64G BAR, 4K pages, 1,000 trapped windows", ranges_p2(), runs),
        measure("p3 64G BAR, 4K pages, fully trapped (no mmap)", ranges_p3(), runs),
    ]


def report(rows: list[dict]) -> str:
    cols = ("input", "pages", "runs", "bar_pages", "svg", "svg size", "html", "html size", "")
    widths = (46, 11, 6, 10, 9, 10, 9, 10, 0)
    # the last column is the verdict
    head = " ".join(
        f"{c:>{w}}" if i else f"{c:{w}}" for i, (c, w) in enumerate(zip(cols, widths, strict=True))
    )
    lines = [
        f"pictures (flatview map): median of 5; goal: files < 1 MB, drawing < {GOAL_S} s",
        head,
    ]
    for r in rows:
        ok = max(r["svg_bytes"], r["html_bytes"]) < GOAL_BYTES
        ok = ok and max(r["svg_s"], r["html_s"]) < GOAL_S
        verdict = "(scaling)" if r["input"].startswith("p2") else "ok" if ok else "OVER GOAL"
        cells = (
            f"{r['pages']:,}",
            f"{r['runs']:,}",
            f"{r['bar_pages_s'] * 1e3:.1f}ms",
            f"{r['svg_s'] * 1e3:.1f}ms",
            f"{r['svg_bytes'] / 1024:.1f}K",
            f"{r['html_s'] * 1e3:.1f}ms",
            f"{r['html_bytes'] / 1024:.1f}K",
        )
        row = " ".join(f"{c:>{w}}" for c, w in zip(cells, widths[1:-1], strict=True))
        lines.append(f"{r['input']:46} {row}  {verdict}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args(argv)
    rows = figures(args.runs)
    print(json.dumps(rows, indent=2) if args.json else report(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
