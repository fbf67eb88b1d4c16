"""Host pages as runs (flatview.pages): the runs of a BAR against a page-by-page
reading of the same flat ranges, and BARs too large to list page by page.

Expected values come from arithmetic on the ranges (KVM maps a ramd flat range trimmed to
whole pages: accel/kvm/kvm-all.c kvm_align_section) and from a per-page walk written
here, independent of flatview.pages."""

from __future__ import annotations

import random
import tracemalloc
from itertools import pairwise

import pytest

from flatview.model import FlatRange
from flatview.pages import (
    PagePart,
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
    assert bp.pages_total == len(expected) and type(bp.pages_total) is int
    assert bp.pages_lost == sum(1 for _, d, _ in expected if not d)
    assert all(a.end == b.start for a, b in zip(bp.runs, bp.runs[1:], strict=False))

    def kind(x: FlatRange) -> str:  # what each kind of range made above is
        return {"msix-table": "msix-table", "vfio-quirk": "quirk"}.get(
            x.name, "direct" if x.type == "ramd" else "trapped"
        )

    # a run's parts: each range clipped to the run and the BAR's start (offsets from base)
    first = base // page * page
    for r in bp.runs:
        lo, hi = first + r.start, first + r.end
        want = [
            (max(x.start, lo, base) - base, min(x.end, hi) - base, x.name, x.type, kind(x))
            for x in ranges
            if x.start < min(hi, base + size) and x.end > max(lo, base)
        ]
        got = [(p.start, p.end, p.name, p.type, p.what) for p in r.parts]
        assert got == want, hex(r.start)

    # runs are as long as they can be: neighbours of one state over the same single
    # range or over nothing are one run
    def source(part):
        return next(i for i, x in enumerate(ranges) if x.start <= part.start + base < x.end)

    for a, b in pairwise(bp.runs):
        same = len(a.parts) == len(b.parts) <= 1 and all(
            source(p) == source(q) for p, q in zip(a.parts, b.parts, strict=True)
        )
        assert not (a.state == b.state and same), hex(b.start)


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


# ------------------------------------------------- spans and clipping against byte sets


def _bytes(spans) -> set[int]:
    return {x for lo, hi in spans for x in range(lo, hi)}


def _as_spans(points: set[int]) -> list[tuple[int, int]]:
    """Sorted, joined [start, end) spans of a set of byte offsets."""
    out: list[tuple[int, int]] = []
    for x in sorted(points):
        if out and out[-1][1] == x:
            out[-1] = (out[-1][0], x + 1)
        else:
            out.append((x, x + 1))
    return out


def _random_spans(rnd: random.Random, unit: int, n: int) -> list[tuple[int, int]]:
    """Sorted, disjoint spans of whole units; neighbours may touch (end == next start)."""
    out, pos = [], rnd.randrange(0, 3) * unit
    for _ in range(n):
        length = rnd.randrange(1, 4) * unit
        out.append((pos, pos + length))
        pos += length + rnd.choice([0, 0, unit, 2 * unit])
    return out


@pytest.mark.parametrize("seed", range(40))
def test_spans_match_byte_sets(seed):
    """run_spans joins, subtract_spans subtracts: checked on the sets of bytes."""
    rnd = random.Random(seed)
    unit = 16
    spans = _random_spans(rnd, unit, rnd.randrange(0, 5))
    minus = _random_spans(rnd, unit, rnd.randrange(0, 6))
    left = subtract_spans(spans, minus)
    # spans that touch stay apart (run_spans never gives such): compare the bytes, and
    # that the pieces are sorted, non-empty and disjoint
    assert _bytes(left) == _bytes(spans) - _bytes(minus)
    assert all(lo < hi for lo, hi in left)
    assert all(a[1] <= b[0] for a, b in pairwise(left))
    assert sum(hi - lo for lo, hi in left) == len(_bytes(left))
    # runs given out of order, touching and overlapping: one span per joined stretch
    runs = [PageRun(lo, (hi - lo) // unit, unit, "no-mmap") for lo, hi in spans + minus]
    rnd.shuffle(runs)
    assert run_spans(runs) == _as_spans(_bytes(spans) | _bytes(minus))


def test_subtract_spans_edges():
    # a minus span that starts where the span starts, ends where it ends, or touches it
    assert subtract_spans([(0, 32)], [(0, 16)]) == [(16, 32)]
    assert subtract_spans([(0, 32)], [(16, 32)]) == [(0, 16)]
    assert subtract_spans([(16, 32)], [(0, 16), (32, 48)]) == [(16, 32)]
    # several spans against one long minus span: it is used for each of them
    assert subtract_spans([(0, 16), (32, 48), (64, 80)], [(8, 72)]) == [(0, 8), (72, 80)]
    # minus spans entirely before, between and after
    assert subtract_spans([(16, 32), (64, 80)], [(0, 8), (40, 48), (96, 112)]) == [
        (16, 32),
        (64, 80),
    ]
    assert subtract_spans([(0, 16)], []) == [(0, 16)]
    assert subtract_spans([], [(0, 16)]) == []


@pytest.mark.parametrize("seed", range(40))
def test_clip_runs_match_byte_sets(seed):
    """clip_runs keeps the pages of the runs inside the spans, and of each run's parts
    the bytes inside the kept pages (parts are offsets from the BAR's guest base, pages
    from page 0: part offset = page offset + shift)."""
    rnd = random.Random(seed)
    page = 16
    shift = -rnd.randrange(0, page)  # the guest base's offset in its page, negated
    runs, pos = [], 0
    for i in range(rnd.randrange(1, 6)):
        count = rnd.randrange(1, 4)
        parts = []
        for _ in range(rnd.randrange(0, 3)):
            lo = pos + shift + rnd.randrange(-page, count * page)
            hi = lo + rnd.randrange(1, 2 * page)
            parts.append(PagePart(lo, hi, f"r{i}", "i/o", "trapped"))
        runs.append(PageRun(pos, count, page, rnd.choice(["no-mmap", "direct"]), tuple(parts)))
        pos += count * page + rnd.choice([0, 0, page])
    spans = _random_spans(rnd, page, rnd.randrange(0, 5))
    rnd.shuffle(runs)
    expected = []
    for r in sorted(runs, key=lambda r: r.start):
        for lo, hi in spans:
            kept = _bytes([(r.start, r.end)]) & _bytes([(lo, hi)])
            if not kept:
                continue
            a, b = min(kept), max(kept) + 1
            window = set(range(a + shift, b + shift))
            parts = []
            for p in r.parts:
                inside = _bytes([(p.start, p.end)]) & window
                if inside:
                    parts.append((min(inside), max(inside) + 1, p.name))
            expected.append((a, (b - a) // page, r.state, parts))
    got = [
        (c.start, c.count, c.state, [(p.start, p.end, p.name) for p in c.parts])
        for c in clip_runs(runs, spans, shift)
    ]
    assert got == expected


def test_why_a_page_traps_follows_the_documented_order():
    """PageRun.state: direct inside a KVM slot, else the first of msix-table, msix-pba,
    quirk, no-mmap, unaligned (only RAM-like pieces, none a whole page), unassigned
    (nothing, or only relocation space).  One 4K page per case."""
    base = 0x10_0000
    dev = "0000:01:00.0"

    def at(page_no: int, lo: int, hi: int, name: str, type_: str = "i/o") -> FlatRange:
        return fr(base + page_no * K4 + lo, base + page_no * K4 + hi, name, type_)

    quirk = "vfio-nvidia-bar0-88000-mirror-quirk"  # a name of hw/vfio/pci-quirks.c
    ranges = [
        at(0, 0, K4, f"{dev} BAR 0 mmaps[0]", "ramd"),  # whole page: KVM maps it
        at(1, 0, 0x800, f"{dev} BAR 0 mmaps[0]", "ramd"),  # half a page, then a hole
        at(2, 0, 0x800, "ram-backed piece", "ram"),  # RAM-like too, half a page
        at(3, 0, 0x100, quirk),
        at(3, 0x100, K4, f"{dev} BAR 0"),
        # page 4: nothing at all
        at(5, 0, K4, f"{dev} base BAR 0"),  # relocation space past the device's BAR
        at(6, 0, 0x10, "msix-pba"),
        at(6, 0x10, K4, f"{dev} base BAR 0"),
        at(7, 0, 0x10, "msix-pba"),
        at(7, 0x10, 0x20, "msix-table"),
    ]
    bp = bar_pages(ranges, index=0, guest_base=base, size=8 * K4, guest_size=8 * K4, page=K4)
    assert [(r.start // K4, r.count, r.state) for r in bp.runs] == [
        (0, 1, "direct"),
        (1, 1, "unaligned"),
        (2, 1, "unaligned"),
        (3, 1, "quirk"),
        (4, 1, "unassigned"),
        (5, 1, "unassigned"),
        (6, 1, "msix-pba"),
        (7, 1, "msix-table"),
    ]
    assert [[p.what for p in r.parts] for r in bp.runs] == [
        ["direct"],
        ["direct"],
        ["direct"],
        ["quirk", "trapped"],
        [],
        ["relocation space"],
        ["msix-pba", "relocation space"],
        ["msix-pba", "msix-table"],
    ]
    # ramd bytes: page 0 whole and half of page 1 (a "ram" range is not ramd)
    assert bp.ramd_bytes == K4 + 0x800 and bp.trapped_bytes == 8 * K4 - (K4 + 0x800)
    assert bp.pages_total == 8 and bp.pages_lost == 7
    # defaults: no KVM-label notes unless asked (page 0 is aligned and has no label)
    assert bp.notes == () and (bp.is_64bit, bp.is_io, bp.msix_only) == (False, False, False)
    labelled = bar_pages(
        ranges,
        index=0,
        guest_base=base,
        size=8 * K4,
        guest_size=8 * K4,
        page=K4,
        kvm_labels=True,
    )
    assert labelled.notes == (
        f"{dev} BAR 0 mmaps[0] at {base:#x} is page aligned but has no KVM slot label: "
        "slot registration missing?",
    )


def test_a_bar_of_only_msix_counts_no_lost_pages_and_says_why():
    """msix_only: the BAR holds the MSI-X table and PBA alone (a dedicated BAR), so its
    trapping pages cost nothing: pages_lost is 0 and a note says so."""
    base = 0x20_0000
    ranges = [fr(base, base + 0x10, "msix-table"), fr(base + 0x800, base + 0x808, "msix-pba")]
    kw = dict(index=3, guest_base=base, size=K4, guest_size=K4, page=K4)
    plain = bar_pages(ranges, **kw)
    assert plain.pages_lost == 1 and plain.notes == () and not plain.msix_only
    only = bar_pages(ranges, msix_only=True, is_64bit=True, **kw)
    assert only.pages_lost == 0 and only.msix_only and only.is_64bit
    assert [r.state for r in only.lost] == ["msix-table"]  # the page still traps
    assert only.notes == (
        "BAR 3 holds only the MSI-X table and PBA: its trapped pages hold no device "
        "registers, so nothing is lost",
    )
    assert (only.guest_size, only.page_size, only.size, only.guest_base) == (K4, K4, K4, base)
