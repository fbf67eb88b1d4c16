"""The gate on real QEMU dumps with direct-mapped pages on both sides.

Inputs: the `info mtree` trees QEMU 7.2 printed for three vfio-pci devices
(samples/vfio/: q35-base with x-msix-relocation=off, q35-msix-relocation-bar with the
MSI-X table moved to a free BAR, q35-no-mmap).  Candidates are made here by editing one
real dump (the msix-table line moved, a device's lines removed), so every region, size
and address is what QEMU printed except the one edit.

Each expected verdict comes from an oracle written here, on the dump text alone
(hw/vfio/pci.c, accel/kvm/kvm-all.c kvm_align_section): a host page [p, p+P) of BAR k
of a device is direct-mapped when one ``BDF BAR k mmaps[j]`` ramd region holds it whole
and no msix-table/msix-pba region touches it.  A page direct before and not after is
lost; the gate fails on a lost page even when the BAR's count of direct pages stays.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from flatview.diff import BarDiff, Trap, bar_diffs, load_side, verdict
from flatview.errors import UsageError
from flatview.gate import gate, parse_allow, why_text

ROOT = Path(__file__).resolve().parents[1]
VFIO = ROOT / "samples" / "vfio"
K = 1 << 10
NVME, E1000E, VIRTIO = "0000:00:03.0", "0000:00:04.0", "0000:00:05.0"

LINE = re.compile(
    r"^(?P<ind>(?:  )*)(?P<s>[0-9a-f]{16})-(?P<e>[0-9a-f]{16}) "
    r"\(prio -?\d+, (?P<type>[a-z/]+)\): (?P<name>.*?)(?P<off> \[disabled\])?$"
)
MMAP = re.compile(r"^(?P<bdf>\S+) BAR (?P<k>\d) mmaps\[\d+\]$")
HOST_BAR = re.compile(r"^(?P<bdf>\S+) BAR (?P<k>\d)$")


def tree(folder: str) -> str:
    """The `info mtree` of a sample, as QEMU printed it (read in text mode: CRLF becomes LF)."""
    return (VFIO / folder / "info-mtree.txt").read_text(encoding="utf-8")


def _lines(text: str) -> list[tuple[re.Match, tuple[int, int]]]:
    """Enabled region lines of every section (the BARs sit in the bridges' windows,
    printed as ``memory-region: pci_bridge_pci`` sections, at their guest addresses), each
    with the part of it its container lets show (render_memory_region clips a child to
    its parent)."""
    out = []
    stack: list[tuple[int, int, int]] = []  # (indent, start, end) of the open containers
    for raw in text.replace("\r\n", "\n").split("\n"):
        m = LINE.match(raw)
        if not m:
            stack = []
            continue
        ind = len(m["ind"])
        while stack and stack[-1][0] >= ind:
            stack.pop()
        start, end = int(m["s"], 16), int(m["e"], 16) + 1
        for _i, lo, hi in stack:
            start, end = max(start, lo), min(end, hi)
        stack.append((ind, start, end))
        if not m["off"]:
            out.append((m, (start, end)))
    return out


def direct_pages(text: str, page: int) -> dict[tuple[str, int], frozenset[int]]:
    """Per (device, BAR): offsets (from the BAR's page-aligned base) of its direct pages."""
    lines = _lines(text)
    overlays = [sp for m, sp in lines if m["name"] in ("msix-table", "msix-pba")]
    out: dict[tuple[str, int], frozenset[int]] = {}
    for bar, (start, end) in lines:
        h = HOST_BAR.match(bar["name"])
        if not h:
            continue
        mmaps = [
            sp
            for m, sp in lines
            if m["type"] == "ramd" and (mm := MMAP.match(m["name"])) and mm.groups() == h.groups()
        ]
        first = start // page * page
        out[(h["bdf"], int(h["k"]))] = frozenset(
            p - first
            for p in range(first, end, page)
            if any(lo <= p and p + page <= hi for lo, hi in mmaps)
            and not any(lo < p + page and hi > p for lo, hi in overlays)
        )
    return out


def move_table(text: str, container: str, old: int, new: int) -> str:
    """The msix-table line at ``old`` moved to ``new`` (same size) as the first child of
    ``container`` (where QEMU prints it: msix_init adds it last, at the BAR's priority),
    as QEMU would print it had the device put its table there; nothing else changes."""
    lines = text.split("\n")
    (i,) = [i for i, raw in enumerate(lines) if re.match(rf" *{old:016x}-.*: msix-table$", raw)]
    m = LINE.match(lines.pop(i))
    size = int(m["e"], 16) + 1 - old
    (j,) = [j for j, raw in enumerate(lines) if raw.endswith(f": {container}")]
    ind = LINE.match(lines[j])["ind"] + "  "
    lines.insert(j + 1, f"{ind}{new:016x}-{new + size - 1:016x} (prio 0, i/o): msix-table")
    return "\n".join(lines)


def drop_device(text: str, bdf: str) -> str:
    """Every line that names ``bdf`` and the lines nested under them removed."""
    out, skip_below = [], None
    for raw in text.split("\n"):
        ind = len(raw) - len(raw.lstrip(" "))
        if skip_below is not None and ind > skip_below and raw.strip():
            continue
        skip_below = None
        if f"{bdf} " in raw:
            skip_below = ind
            continue
        out.append(raw)
    return "\n".join(out)


def expected(base: str, cand: str, page: int) -> dict[tuple[str, int], tuple[int, int, set]]:
    """(device, BAR) -> (pages before, pages after, lost page offsets), by the oracle."""
    b, c = direct_pages(base, page), direct_pages(cand, page)
    return {
        key: (len(pages), len(c.get(key, ())), set(pages - c.get(key, frozenset())))
        for key, pages in b.items()
    }


def run_gate(base: str, cand: str, page: int, allow: str = ""):
    rules = parse_allow(allow, "allow.txt") if allow else ()
    return gate(load_side(base, "baseline"), load_side(cand, "candidate"), [page], allow=rules)


def _by_bar(report) -> dict[tuple[str, int | None], object]:
    return {(c.device, c.bar): c for c in report.checks}


def _assert_matches_oracle(report, base: str, cand: str, page: int) -> None:
    checks = _by_bar(report)
    for key, (before, after, lost) in expected(base, cand, page).items():
        c = checks[key]
        assert (c.pages_before, c.pages_after) == (before, after), key
        failed = bool(lost) or after < before
        assert (c.regression is not None) == failed, (key, c.verdict)
        if c.regression is not None:
            runs = c.regression.pages  # the candidate's runs that hold the lost pages
            offsets = {off for r in runs for off in range(r.start, r.end, r.page_size)}
            assert offsets == lost, key


# --------------------------------------------------------------------------- the samples


def test_the_samples_have_direct_pages_on_both_sides() -> None:
    """What the tests below rest on: both real dumps map whole pages of every device."""
    for folder in ("q35-base", "q35-msix-relocation-bar"):
        pages = direct_pages(tree(folder), 4 * K)
        for bdf in (NVME, E1000E, VIRTIO):
            assert sum(len(p) for (d, _), p in pages.items() if d == bdf) > 0, (folder, bdf)
    assert not any(direct_pages(tree("q35-no-mmap"), 4 * K).values())


@pytest.mark.parametrize("page", [4 * K, 8 * K, 64 * K], ids=["4K", "8K", "64K"])
def test_relocated_to_default_loses_the_table_pages(page: int) -> None:
    """Real dumps both ways: moving MSI-X back into the BARs loses the pages it takes."""
    base, cand = tree("q35-msix-relocation-bar"), tree("q35-base")
    report = run_gate(base, cand, page)
    _assert_matches_oracle(report, base, cand, page)
    lost = {k for k, (_b, _a, pages) in expected(base, cand, page).items() if pages}
    assert {(r.device, r.bar) for r in report.regressions} == lost
    assert report.ok is (not lost)
    back = run_gate(cand, base, page)
    _assert_matches_oracle(back, cand, base, page)
    assert back.ok


@pytest.mark.parametrize("page", [4 * K, 8 * K], ids=["4K", "8K"])
@pytest.mark.parametrize(
    ("bdf", "bar", "table", "step"),
    [(NVME, 0, 0xFE202000, -1), (E1000E, 3, 0xFE080000, +1)],
    ids=["nvme-BAR0-down", "e1000e-BAR3-up"],
)
def test_a_page_lost_while_the_count_stays(bdf: str, bar: int, table: int, step: int, page: int):
    """A msix-table moved by one host page inside its BAR (nvme BAR0, 16K at 0xfe200000,
    table at +0x2000; e1000e BAR3, 16K at 0xfe080000, table at +0): the page it left
    becomes direct, the page it lands on is lost.  The BAR keeps its count of direct
    pages, and the gate still fails."""
    base = tree("q35-base")
    cand = move_table(base, f"{bdf} base BAR {bar}", table, table + step * page)
    before, after, lost = expected(base, cand, page)[(bdf, bar)]
    assert before == after > 0 and len(lost) == 1  # the oracle says: one page moved
    report = run_gate(base, cand, page)
    _assert_matches_oracle(report, base, cand, page)
    (reg,) = report.regressions
    assert (reg.device, reg.bar, reg.pages_before, reg.pages_after) == (bdf, bar, before, after)
    assert "msix-table now traps" in reg.why
    assert "gains 1 page(s)" in _by_bar(report)[(bdf, bar)].verdict


@pytest.mark.parametrize("page", [4 * K, 16 * K], ids=["4K", "16K"])
def test_a_page_lost_while_another_is_gained(page: int) -> None:
    """e1000e: its msix-table moved from BAR3 (0xfe080000) into BAR0 (0xfe040000).  BAR3
    gains the page, BAR0 loses one: the device keeps its count, BAR0 fails."""
    base = tree("q35-base")
    cand = move_table(base, f"{E1000E} base BAR 0", 0xFE080000, 0xFE040000)
    exp = expected(base, cand, page)
    b0, b3 = exp[(E1000E, 0)], exp[(E1000E, 3)]
    assert b0[1] == b0[0] - 1 and b3[1] == b3[0] + 1 and not b3[2]
    report = run_gate(base, cand, page)
    _assert_matches_oracle(report, base, cand, page)
    assert [(r.device, r.bar) for r in report.regressions] == [(E1000E, 0)]
    (run,) = report.regressions[0].pages
    assert (run.start, run.count, run.state) == (0, 1, "msix-table")


@pytest.mark.parametrize("folder", ["q35-base", "q35-msix-relocation-bar"])
def test_a_device_gone(folder: str) -> None:
    base = tree(folder)
    cand = drop_device(base, VIRTIO)
    assert VIRTIO not in cand and NVME in cand
    page = 4 * K
    report = run_gate(base, cand, page)
    had = sum(len(p) for (d, _), p in direct_pages(base, page).items() if d == VIRTIO)
    (reg,) = report.regressions
    assert (reg.device, reg.bar, reg.pages_before, reg.pages_after) == (VIRTIO, None, had, 0)
    # the other devices: exactly what the oracle says (nothing lost)
    others = {k: lost for k, (_b, _a, lost) in expected(base, cand, page).items() if k[0] != VIRTIO}
    assert not any(others.values())


def test_an_allow_listed_loss() -> None:
    base, cand, page = tree("q35-msix-relocation-bar"), tree("q35-base"), 4 * K
    lost = sorted(k for k, (_b, _a, pages) in expected(base, cand, page).items() if pages)
    assert len(lost) >= 2
    (bdf, bar), *rest = lost
    report = run_gate(base, cand, page, f"{bdf} BAR{bar} 4K table back in its BAR\n")
    assert [(r.device, r.bar) for r in report.allowed] == [(bdf, bar)]
    assert [(r.device, r.bar) for r in report.regressions] == rest
    assert report.allowed[0].allowed_by.reason == "table back in its BAR"
    everything = "\n".join(f"{d} {b} * known" for d, b in lost)
    assert run_gate(base, cand, page, everything).ok
    # a rule for another page size allows nothing
    other = run_gate(base, cand, page, f"{bdf} BAR{bar} 64K not this size\n")
    assert [(r.device, r.bar) for r in other.regressions] == lost


def test_cli_exit_status_on_the_moved_page(tmp_path: Path) -> None:
    base = tree("q35-base")
    cand = move_table(base, f"{NVME} base BAR 0", 0xFE202000, 0xFE201000)
    (tmp_path / "b.txt").write_text(base, encoding="utf-8")
    (tmp_path / "c.txt").write_text(cand, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "flatview", "gate", "b.txt", "c.txt", "--page-size", "4K"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert f"REGRESSION {NVME} BAR0 4K: 3 direct-mapped page(s) before, 3 after" in proc.stdout


# ------------------------------------------------------------------ what traps, in words

WHY = re.compile(
    r"(.+?) now traps (0x[0-9a-f]+)-(0x[0-9a-f]+) \(BAR(\d)\+(0x[0-9a-f]+)-(0x[0-9a-f]+)\)"
)


def _bar_base(text: str, bdf: str, bar: int) -> int:
    (base,) = {sp[0] for m, sp in _lines(text) if m["name"] == f"{bdf} BAR {bar}"}
    return base


def _runs(offsets: set[int], page: int) -> list[tuple[int, int]]:
    """Sorted offsets of pages as runs [lo, hi] (inclusive end, as the text prints)."""
    out: list[tuple[int, int]] = []
    for off in sorted(offsets):
        if out and out[-1][1] + 1 == off:
            out[-1] = (out[-1][0], off + page - 1)
        else:
            out.append((off, off + page - 1))
    return out


@pytest.mark.parametrize("page", [4 * K, 8 * K], ids=["4K", "8K"])
def test_why_names_each_trapped_range_exactly(page: int) -> None:
    """Default -> no-mmap: each regression's text names the ranges that now trap, in guest
    addresses and BAR offsets; together they are exactly the pages lost (runs of them)."""
    base, cand = tree("q35-base"), tree("q35-no-mmap")
    report = run_gate(base, cand, page)
    exp = expected(base, cand, page)
    assert report.regressions
    for reg in report.regressions:
        bar_base = _bar_base(cand, reg.device, reg.bar)
        first = bar_base // page * page
        found = []
        for part in reg.why.split("; "):
            m = WHY.fullmatch(part)
            assert m, reg.why
            lo, hi, k, off_lo, off_hi = (int(x, 16) for x in m.groups()[1:])
            assert k == reg.bar and m[1] == f"{reg.device} BAR {reg.bar}"
            assert (lo - bar_base, hi - bar_base) == (off_lo, off_hi)
            found.append((lo - first, hi - first))
        assert found == _runs(exp[(reg.device, reg.bar)][2], page)


def split_mmaps(text: str, bdf: str, bar: int, holes: list[int], page: int) -> str:
    """The BAR's one mmaps[0] line replaced by mmaps[0..n] around one-page holes (offsets),
    as vfio-pci prints a region whose sparse mmap areas leave gaps."""
    lines = text.split("\n")
    name = f"{bdf} BAR {bar} mmaps[0]"
    (i,) = [i for i, raw in enumerate(lines) if raw.endswith(f"(prio 0, ramd): {name}")]
    m = LINE.match(lines[i])
    start, end = int(m["s"], 16), int(m["e"], 16) + 1
    cuts = [start, *(x for h in sorted(holes) for x in (start + h, start + h + page)), end]
    parts = [
        f"{m['ind']}{lo:016x}-{hi - 1:016x} (prio 0, ramd): {bdf} BAR {bar} mmaps[{n}]"
        for n, (lo, hi) in enumerate(zip(cuts[::2], cuts[1::2], strict=True))
    ]
    return "\n".join([*lines[:i], *parts, *lines[i + 1 :]])


@pytest.mark.parametrize("n", [4, 6])
def test_why_lists_four_ranges_and_counts_the_rest(n: int) -> None:
    """e1000e BAR0 (128K) with n one-page holes between its mmap areas: n lost runs; the
    text names the first four and says how many more (nothing more to say at four)."""
    page, holes = 4 * K, [0x2000, 0x5000, 0x8000, 0xB000, 0xE000, 0x11000][:n]
    base = tree("q35-base")
    cand = split_mmaps(base, E1000E, 0, holes, page)
    before, after, lost = expected(base, cand, page)[(E1000E, 0)]
    assert (before - after, sorted(lost)) == (len(holes), holes)
    (reg,) = run_gate(base, cand, page).regressions
    parts = reg.why.split("; ")
    more = [f"and {n - 4} more range(s)"] if n > 4 else []
    assert parts[4:] == more
    assert [int(WHY.fullmatch(p)[5], 16) for p in parts[:4]] == holes[:4]


def test_lost_pages_say_what_now_occupies_them() -> None:
    """Each lost run names its state and what lies in it, read off the dump: with
    x-no-mmap=on the vfio region `BDF BAR k` (memory_region_init_io, vfio_region_ops)
    traps the whole page; back in its BAR, the msix-table traps and the rest of the page
    is still the ramd mmap (direct, but not a whole page)."""
    report = run_gate(tree("q35-base"), tree("q35-no-mmap"), 4 * K)
    for reg in report.regressions:
        for run in reg.pages:
            assert run.state == "no-mmap"
            assert {(p.name, p.what, p.type) for p in run.parts} == {
                (f"{reg.device} BAR {reg.bar}", "trapped", "i/o")
            }
    report = run_gate(tree("q35-msix-relocation-bar"), tree("q35-base"), 4 * K)
    for reg in report.regressions:
        (run,) = reg.pages
        assert (run.state, run.count) == ("msix-table", 1)
        assert {(p.name, p.what) for p in run.parts} == {
            ("msix-table", "msix-table"),
            (f"{reg.device} BAR {reg.bar} mmaps[0]", "direct"),
        }


def test_a_gone_device_is_allowed_only_by_a_rule_for_every_bar() -> None:
    """A device gone matches only rules whose BAR is ``*`` (gate.py's docstring)."""
    base = tree("q35-base")
    cand = drop_device(base, VIRTIO)
    one_bar = run_gate(base, cand, 4 * K, f"{VIRTIO} BAR4 * not the device\n")
    assert [(r.device, r.bar) for r in one_bar.regressions] == [(VIRTIO, None)]
    assert one_bar.allowed == () and not one_bar.ok
    assert [r.line for r in one_bar.unused_rules] == [1]
    every_bar = run_gate(base, cand, 4 * K, f"{VIRTIO} * * retired\n")
    assert every_bar.ok and [(r.device, r.bar) for r in every_bar.allowed] == [(VIRTIO, None)]
    assert every_bar.unused_rules == ()


def test_only_the_devices_asked_for_are_checked() -> None:
    base, cand = load_side(tree("q35-base"), "b"), load_side(tree("q35-base"), "c")
    report = gate(base, cand, [4 * K], devices=["00:03.0"])  # BB:DD.F means domain 0000
    assert {c.device for c in report.checks} == {NVME}
    with pytest.raises(UsageError, match=r"^no assigned device 0000:00:1e\.0, 0000:00:1f\.0 in"):
        gate(base, cand, [4 * K], devices=["00:1e.0", "0000:00:1f.0"])


def test_why_text_without_traps_and_without_a_guest_address() -> None:
    """why_text's fallbacks: no trap named (the cause in ``why``, else a plain sentence),
    and a trap whose guest address is unknown (only its place in the BAR)."""
    plain = BarDiff(NVME, 0, 4 * K, None, None, 2, 1)
    assert why_text(plain) == "the direct-mapped pages dropped"
    assert why_text(replace(plain, why="slot gone")) == "slot gone"
    traps = (
        Trap("msix-table", 0x2000, 0x3000, "msix-table"),
        Trap("BAR 0", 0x3000, 0x3010, "trapped", 0xFE003000),
    )
    assert why_text(replace(plain, traps=traps)) == (
        "msix-table now traps BAR0+0x2000-0x2fff; "
        "BAR 0 now traps 0xfe003000-0xfe00300f (BAR0+0x3000-0x300f)"
    )


def test_the_report_names_its_inputs_and_keeps_their_notes() -> None:
    t = tree("q35-base")
    f = (VFIO / "q35-base" / "info-mtree-f.txt").read_text(encoding="utf-8")
    twice = load_side(t + "\n" + t, "two.txt")  # two trees: the first one is compared
    both = load_side(t + "\n" + f, "both.txt")  # a tree and QEMU's own flat view
    report = gate(twice, both, [4 * K])
    flat_line = t.count("\n") + 2  # the tree's lines, the blank line, then the flat view
    assert report.baseline == "two.txt (info mtree at line 1)"
    assert report.candidate == f"both.txt (info mtree at line 1, info mtree -f at line {flat_line})"
    assert report.notes == (
        "two.txt holds 2 dumps; compared the one(s) at line 1 "
        "(choose others with the --...-dump LINE options)",
        "two.txt: flat views recomputed from the tree",  # both.txt brought its own
    )


FLAT_LINE = re.compile(
    r"^  (?P<s>[0-9a-f]{16})-(?P<e>[0-9a-f]{16}) \(prio -?\d+, (?P<type>[a-z/]+)\): "
    r"(?P<name>.*?)(?: @[0-9a-f]{16})?(?: KVM)?$"
)


def memory_view(flat_text: str) -> list[tuple[int, int, str, str]]:
    """(start, end, type, name) of the `AS "memory"` flat view, as QEMU printed it."""
    block = next(b for b in flat_text.split("FlatView #") if '\n AS "memory"' in b)
    return [
        (int(m["s"], 16), int(m["e"], 16) + 1, m["type"], m["name"])
        for m in map(FLAT_LINE.match, block.splitlines())
        if m
    ]


@pytest.mark.parametrize("page", [4 * K, 8 * K, 16 * K])
def test_no_mmap_traps_are_the_candidates_ranges_over_the_lost_pages(page: int) -> None:
    """Real dumps on both sides (trees and QEMU's flat views): q35-base, then q35-no-mmap.
    Each lost BAR's traps are the candidate's flat ranges over the lost pages, clipped to
    them, a range's pieces on neighbouring lost pages joined."""
    sides, flats = [], []
    for folder in ("q35-base", "q35-no-mmap"):
        flat = (VFIO / folder / "info-mtree-f.txt").read_text(encoding="utf-8")
        sides.append(load_side(tree(folder) + "\n" + flat, folder))
        flats.append(flat)
    view = memory_view(flats[1])
    bar_start = {
        (h["bdf"], int(h["k"])): start
        for m, (start, _end) in _lines(tree("q35-no-mmap"))
        if (h := HOST_BAR.match(m["name"]))
    }
    exp = expected(tree("q35-base"), tree("q35-no-mmap"), page)
    diffs = {(d.device, d.index): d for d in bar_diffs(sides[0], sides[1], [page]) if d.lost}
    assert set(diffs) == {k for k, (_b, _a, lost) in exp.items() if lost}
    for key, d in diffs.items():
        first = bar_start[key] // page * page  # page 0: the page holding the BAR's start
        pieces = []
        for p in sorted(exp[key][2]):
            lo, hi = first + p, first + p + page
            pieces += [[n, max(s, lo), min(e, hi)] for s, e, _t, n in view if s < hi and e > lo]
        pieces.sort(key=lambda x: (x[1], x[2]))
        joined: list[list] = []
        for name, lo, hi in pieces:
            if joined and joined[-1][0] == name and joined[-1][2] >= lo:
                joined[-1][2] = max(joined[-1][2], hi)
            else:
                joined.append([name, lo, hi])
        got = [[t.name, t.guest, t.guest + t.end - t.start] for t in d.traps]
        assert got == joined, key
        assert all(
            t.what == ("msix-table" if t.name == "msix-table" else "trapped") for t in d.traps
        )


BASE_BAR = re.compile(r"^(?P<bdf>\S+) base BAR (?P<k>\d)$")


def _bars(text: str) -> tuple[set, set, set]:
    """(device, BAR) keys of the dump: with a host BAR region, with a ramd mmap, and
    relocation space (a base BAR with no host BAR region under it)."""
    lines = _lines(text)
    host = {(h["bdf"], int(h["k"])) for m, _ in lines if (h := HOST_BAR.match(m["name"]))}
    ramd = {
        (mm["bdf"], int(mm["k"]))
        for m, _ in lines
        if m["type"] == "ramd" and (mm := MMAP.match(m["name"]))
    }
    base = {(b["bdf"], int(b["k"])) for m, _ in lines if (b := BASE_BAR.match(m["name"]))}
    return host - io_bars(text), ramd, base - host


def io_bars(text: str) -> set:
    """Host BARs printed under an I/O heading (`address-space: I/O`, a `pci_bridge_io`
    or `io` section): I/O port BARs, always trapped."""
    out, heading = set(), ""
    for raw in text.splitlines():
        if raw.startswith(("address-space:", "memory-region:")):
            heading = raw.split(":", 1)[1].strip()
        elif (
            (m := LINE.match(raw))
            and (h := HOST_BAR.match(m["name"]))
            and (heading in ("I/O", "io") or heading.startswith("pci_bridge_io"))
        ):
            out.add((h["bdf"], int(h["k"])))
    return out


@pytest.mark.parametrize("page", [4 * K, 64 * K])
@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("q35-base", "q35-msix-relocation-bar"),
        ("q35-msix-relocation-bar", "q35-base"),
        ("q35-base", "q35-no-mmap"),
        ("q35-no-mmap", "q35-no-mmap"),
    ],
)
def test_each_bars_verdict_follows_the_oracle(before: str, after: str, page: int) -> None:
    """diff.verdict's first clause for every BAR, from the dump texts: pages lost (direct
    before, not after, or the count dropping) and gained; unchanged; no whole page
    direct-mapped (ramd on a side, no page); stays trapped (no ramd on either side); a
    BAR of relocation space new or gone."""
    bt, at = tree(before), tree(after)
    b_pages, a_pages = direct_pages(bt, page), direct_pages(at, page)
    b_host, b_ramd, b_reloc = _bars(bt)
    a_host, a_ramd, a_reloc = _bars(at)
    diffs = bar_diffs(load_side(bt, "b"), load_side(at, "a"), [page])
    seen = set()
    for d in diffs:
        key = (d.device, d.index)
        seen.add(key)
        head = verdict(d).split("; ")[0]
        if key in io_bars(bt) | io_bars(at):
            assert head == "I/O BAR: always trapped", key
        elif key in b_reloc and key not in a_reloc | a_host:
            assert head == "BAR gone (it had no host pages: relocation space)", key
        elif key in a_reloc and key not in b_reloc | b_host:
            assert head == "new BAR, no host pages (relocation space)", key
        elif key in b_reloc and key in a_reloc:
            assert head == "no host pages (relocation space)", key
        else:
            bp, ap = b_pages[key], a_pages[key]
            lost = max(len(bp - ap), len(bp) - len(ap))
            gained = len(ap - bp) or max(0, len(ap) - len(bp))
            bits = [f"loses {lost} page(s)"] * bool(lost) + [f"gains {gained} page(s)"] * bool(
                gained
            )
            if bits:
                want = ", ".join(bits)
            elif not bp and not ap and key not in b_ramd | a_ramd:
                want = "stays trapped (no mmap in either dump)"
            elif not bp and not ap:
                want = "no whole page direct-mapped on either side"
            else:
                want = "unchanged"
            assert head == want, key
    assert seen == (b_host | b_reloc | a_host | a_reloc | io_bars(bt) | io_bars(at))


def shift_subtree(text: str, head: str, delta: int | None) -> str:
    """The region line ending in ``: head`` and every line nested under it moved by
    ``delta`` bytes (start and end), as QEMU would print the BAR mapped elsewhere;
    removed when ``delta`` is None."""
    out, below = [], None
    for raw in text.split("\n"):
        ind = len(raw) - len(raw.lstrip(" "))
        m = LINE.match(raw)
        if below is not None and (not m or ind <= below):
            below = None
        if m and (below is not None or raw.endswith(f": {head}")):
            below = ind if below is None else below
            if delta is None:
                continue
            s, e = int(m["s"], 16) + delta, int(m["e"], 16) + delta
            raw = f"{m['ind']}{s:016x}-{e:016x}" + raw[len(m["ind"]) + 33 :]
        out.append(raw)
    return "\n".join(out)


def test_why_a_bar_lost_its_pages_without_a_trap() -> None:
    """BarDiff.why when no trap names the loss: the BAR is gone from the candidate; or
    e1000e BAR 1 (128K at 0xfe060000, all ramd) moved up by 0x800, so page 0 holds only
    a piece of ramd (not a whole page, nothing else: no trap) -- lost, by the oracle."""
    base = tree("q35-base")
    no_bar1 = shift_subtree(base, f"{E1000E} base BAR 1", None)
    assert f"{E1000E} BAR 1 mmaps" not in no_bar1
    moved = shift_subtree(base, f"{E1000E} base BAR 1", 0x800)
    assert "00000000fe060800-00000000fe0807ff (prio 1, i/o): 0000:00:04.0 base BAR 1" in moved
    assert expected(base, moved, 4 * K)[(E1000E, 1)] == (32, 31, {0})
    b = load_side(base, "b")
    for cand, why, lost in (
        (no_bar1, "BAR 1 is not in the candidate", []),
        (moved, "no ramd range covers the page(s) any more (nothing mapped there)", [(0, 1)]),
    ):
        (d,) = [x for x in bar_diffs(b, load_side(cand, "c"), [4 * K]) if x.device == E1000E
                and x.index == 1]  # fmt: skip
        assert d.pages_before == 32 and d.traps == ()
        assert (d.why, [(r.start, r.count) for r in d.lost]) == (why, lost)


def test_a_trapped_range_split_over_lost_runs_is_one_trap() -> None:
    """e1000e BAR 1 (128K at 0xfe060000) loses its mmap and gains a quirk (prio 1, as
    vfio's quirks are added) at +0x1800-0x18ff: every page is lost; the BAR region shows
    on both sides of the quirk, across runs of different states (page 1 holds the
    quirk), and each side is one trap."""
    base = tree("q35-base")
    mmap = "        00000000fe060000-00000000fe07ffff (prio 0, ramd): 0000:00:04.0 BAR 1 mmaps[0]"
    quirk = "        00000000fe061800-00000000fe0618ff (prio 1, i/o): vfio-quirk"
    assert base.count(mmap + "\n") == 1
    cand = base.replace(mmap + "\n", quirk + "\n")
    (d,) = [
        x
        for x in bar_diffs(load_side(base, "b"), load_side(cand, "c"), [4 * K])
        if (x.device, x.index) == (E1000E, 1)
    ]
    assert (d.pages_before, d.pages_after, sum(r.count for r in d.lost)) == (32, 0, 32)
    g = 0xFE060000
    assert [(t.name, t.start, t.end, t.what, t.guest) for t in d.traps] == [
        (f"{E1000E} BAR 1", 0, 0x1800, "trapped", g),
        ("vfio-quirk", 0x1800, 0x1900, "quirk", g + 0x1800),
        (f"{E1000E} BAR 1", 0x1900, 0x20000, "trapped", g + 0x1900),
    ]
