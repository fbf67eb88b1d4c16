"""Host pages as runs (flatview.pages): the runs of a BAR against a page-by-page
reading of the same flat ranges, and BARs too large to list page by page.

Expected values come from arithmetic on the ranges (KVM maps a ramd flat range trimmed to
whole pages: accel/kvm/kvm-all.c kvm_align_section) and from a per-page walk written
here, independent of flatview.pages."""

from __future__ import annotations

import random
import tracemalloc

import pytest

from flatview.model import FlatRange
from flatview.pages import (
    PageRun,
    bar_pages,
    clip_runs,
    count_pages,
    run_spans,
    subtract_spans,
)

K4 = 4096
G = 1 << 30


def fr(start: int, end: int, name: str, type_: str = "i/o") -> FlatRange:
    return FlatRange(start, end - start, 0, type_, name)


def trapped_bar(base: int, size: int) -> list[FlatRange]:
    """A BAR QEMU did not mmap (x-no-mmap=on): the BAR region, the msix-table at
    +0x2000 (65 vectors: 0x410 bytes) and the PBA at +0x3000, as a flat view shows it."""
    return [
        fr(base, base + 0x2000, "BAR 0"),
        fr(base + 0x2000, base + 0x2410, "msix-table"),
        fr(base + 0x2410, base + 0x3000, "BAR 0"),
        fr(base + 0x3000, base + 0x3010, "msix-pba"),
        fr(base + 0x3010, base + size, "BAR 0"),
    ]


@pytest.mark.parametrize("size", [64 * G, 5 << 40])
def test_a_fully_trapped_huge_bar_is_four_runs(size):
    base = 0x100_0000_0000
    tracemalloc.start()
    bp = bar_pages(
        trapped_bar(base, size), index=0, guest_base=base, size=size, guest_size=size, page=K4
    )
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1 << 20  # a few runs, not 16M (64G) or 1.3G (5T) page objects
    assert bp.pages_total == bp.pages_lost == size // K4
    assert bp.ramd_bytes == 0 and bp.trapped_bytes == size
    assert [(r.start, r.count, r.state) for r in bp.runs] == [
        (0, 2, "no-mmap"),
        (0x2000, 1, "msix-table"),
        (0x3000, 1, "msix-pba"),
        (0x4000, size // K4 - 4, "no-mmap"),
    ]
    assert bp.runs[-1].end == size
    assert [(p.name, p.start, p.end) for p in bp.runs[1].parts] == [
        ("msix-table", 0x2000, 0x2410),
        ("BAR 0", 0x2410, 0x3000),
    ]


def test_a_mapped_bar_is_direct_but_for_the_table_page():
    """vfio-pci's mmaps around the table page (sparse mmap): ramd below and above it."""
    base, size = 0x1_0000_0000, 64 * G
    ranges = [
        fr(base, base + 0x2000, "BAR 0 mmaps[0]", "ramd"),
        fr(base + 0x2000, base + 0x2410, "msix-table"),
        fr(base + 0x2410, base + 0x3000, "BAR 0"),
        fr(base + 0x3000, base + size, "BAR 0 mmaps[1]", "ramd"),
    ]
    bp = bar_pages(ranges, index=0, guest_base=base, size=size, guest_size=size, page=K4)
    assert [(r.start, r.count, r.state) for r in bp.runs] == [
        (0, 2, "direct"),
        (0x2000, 1, "msix-table"),
        (0x3000, size // K4 - 3, "direct"),
    ]
    assert bp.pages_lost == 1 and bp.ramd_bytes == size - 0x1000
    assert [(r.start, r.count) for r in bp.lost] == [(0x2000, 1)]


def _per_page(ranges, base, size, page):
    """Page by page: direct when inside one ramd range trimmed to the page grid; the
    ranges of a page are those that overlap both the page and the BAR."""
    first = base // page * page
    last = -(-(base + size) // page) * page
    out = []
    for p in range(first, last, page):
        direct = any(
            r.type == "ramd"
            and -(-r.start // page) * page <= p
            and p + page <= r.end // page * page
            for r in ranges
        )
        names = [
            r.name for r in ranges if r.start < min(p + page, base + size) and r.end > max(p, base)
        ]
        out.append((p - first, direct, names))
    return out


@pytest.mark.parametrize("seed", range(60))
def test_runs_match_a_page_by_page_walk(seed):
    rnd = random.Random(seed)
    page = rnd.choice([K4, 0x10000])
    base = rnd.randrange(0, 64) * 0x800 + 0x10_0000
    size = rnd.randrange(1, 40) * 0x800
    # random non-overlapping flat ranges around and inside the BAR, some with gaps
    ranges, pos = [], base - rnd.randrange(0, 3) * 0x800
    while pos < base + size + 0x1000:
        length = rnd.choice([0x10, 0x400, 0x800, 0x1000, 0x3000, 0x10000])
        if rnd.random() < 0.2:
            pos += length  # a hole
            continue
        kind = rnd.choice(["ramd", "ramd", "i/o", "msix-table", "quirk"])
        name = {"msix-table": "msix-table", "quirk": "vfio-quirk"}.get(kind, f"r{len(ranges)}")
        ranges.append(fr(pos, pos + length, name, "ramd" if kind == "ramd" else "i/o"))
        pos += length
    bp = bar_pages(ranges, index=0, guest_base=base, size=size, guest_size=size, page=page)
    expected = _per_page(ranges, base, size, page)
    got = []
    for r in bp.runs:
        names = [p.name for p in r.parts]
        for k in range(r.count):
            # every page of a run holds the same ranges: the run's parts name them
            got.append((r.start + k * page, r.state == "direct", names))
    assert [(o, d) for o, d, _ in got] == [(o, d) for o, d, _ in expected]
    for (o, _, names), (_, _, want) in zip(got, expected, strict=True):
        assert names == want, hex(o)
    assert bp.pages_total == len(expected)
    assert bp.pages_lost == sum(1 for _, d, _ in expected if not d)
    assert all(a.end == b.start for a, b in zip(bp.runs, bp.runs[1:], strict=False))


def test_spans_and_clipping():
    runs = (
        PageRun(0, 2, K4, "no-mmap"),
        PageRun(0x2000, 1, K4, "direct"),
        PageRun(0x3000, 5, K4, "no-mmap"),
    )
    lost = [r for r in runs if r.lost]
    assert run_spans(lost) == [(0, 0x2000), (0x3000, 0x8000)]
    assert count_pages(lost) == 7
    # lost after [0, 0x8000) minus lost before [0x1000, 0x4000): [0, 0x1000) and [0x4000, 0x8000)
    spans = subtract_spans([(0, 0x8000)], [(0x1000, 0x4000)])
    assert spans == [(0, 0x1000), (0x4000, 0x8000)]
    clipped = clip_runs(runs, spans, 0)
    assert [(r.start, r.count, r.state) for r in clipped] == [
        (0, 1, "no-mmap"),
        (0x4000, 4, "no-mmap"),
    ]
