"""Region changes between two trees (flatview.diff.diff_trees) on a real QEMU 7.2 tree.

The input is samples/vfio/q35-base/info-mtree.txt (three vfio-pci devices); each
candidate is that text with one edit made here, so each expected change -- where, the
path of names, what changed, the region before and after, how many subregions came or
went with it, the device -- is read off the edited lines.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from flatview import api
from flatview.diff import (
    RangeChange,
    RangeRef,
    RegionRef,
    diff,
    diff_trees,
    kind,
    load_side,
    load_sides,
    range_changes,
)
from flatview.errors import UsageError
from flatview.model import FlatRange, FlatView, FlatViewAS, MtreeDump

ROOT = Path(__file__).resolve().parents[1]
TREE = (ROOT / "samples" / "vfio" / "q35-base" / "info-mtree.txt").read_text(encoding="utf-8")
LINES = TREE.splitlines()
E1000E = "0000:00:04.0"
BAR1 = "    00000000fe060000-00000000fe07ffff (prio 1, i/o): 0000:00:04.0 base BAR 1"
BAR3 = "    00000000fe080000-00000000fe083fff (prio 1, i/o): 0000:00:04.0 base BAR 3"
BAR0 = "    00000000fe040000-00000000fe05ffff (prio 1, i/o): 0000:00:04.0 base BAR 0"
E1000E_SECTION = "memory-region: pci_bridge_pci"  # the second section of that name


def dump(text: str) -> MtreeDump:
    (d,) = api.parse_text(text, "t")
    assert isinstance(d, MtreeDump)
    return d


def line_of(text: str, line: str) -> int:
    (i,) = [i for i, x in enumerate(text.splitlines()) if x == line]
    return i + 1


def edit(old: str, new: str) -> str:
    assert TREE.count(old) == 1, old
    return TREE.replace(old, new)


def test_a_tree_against_itself_has_no_change():
    assert diff_trees(dump(TREE), dump(TREE)) == ()


def test_a_bar_removed_with_its_subregions():
    i = LINES.index(BAR1)
    gone = LINES[i : i + 3]  # base BAR 1, BAR 1, BAR 1 mmaps[0]
    assert gone[2].endswith("0000:00:04.0 BAR 1 mmaps[0]")
    after = "\n".join(LINES[:i] + LINES[i + 3 :]) + "\n"
    (c,) = diff_trees(dump(TREE), dump(after))
    assert (c.where, c.path, c.what) == (
        E1000E_SECTION,
        ("pci_bridge_pci", "0000:00:04.0 base BAR 1"),
        ("removed",),
    )
    assert c.before == RegionRef(
        "0000:00:04.0 base BAR 1", 0xFE060000, 0x20000, 1, "i/o", True, None, None, i + 1
    )
    assert c.after is None and c.below == 2 and c.device == E1000E


def test_a_region_added_inside_a_bar():
    pba = "      00000000fe082000-00000000fe08200f (prio 0, i/o): msix-pba"
    after = edit(BAR3 + "\n", BAR3 + "\n" + pba + "\n")
    (c,) = diff_trees(dump(TREE), dump(after))
    assert (c.where, c.path, c.what, c.before, c.below, c.device) == (
        E1000E_SECTION,
        ("pci_bridge_pci", "0000:00:04.0 base BAR 3", "msix-pba"),
        ("added",),
        None,
        0,
        E1000E,
    )
    assert c.after == RegionRef(
        "msix-pba", 0xFE082000, 0x10, 0, "i/o", True, None, None, line_of(after, pba)
    )


def test_a_bar_re_prioritised_in_the_second_section_of_its_name():
    new = BAR0.replace("(prio 1,", "(prio 2,")
    after = edit(BAR0, new)
    (c,) = diff_trees(dump(TREE), dump(after))
    assert (c.where, c.path, c.what, c.below, c.device) == (
        E1000E_SECTION,
        ("pci_bridge_pci", "0000:00:04.0 base BAR 0"),
        ("re-prioritised",),
        0,
        E1000E,
    )
    n = line_of(TREE, BAR0)
    assert c.before == RegionRef(
        "0000:00:04.0 base BAR 0", 0xFE040000, 0x20000, 1, "i/o", True, None, None, n
    )
    assert c.after == RegionRef(
        "0000:00:04.0 base BAR 0", 0xFE040000, 0x20000, 2, "i/o", True, None, None, n
    )


def test_an_address_space_and_a_section_come_and_go():
    ahci = (
        "address-space: ich9-ahci\n"
        "  0000000000000000-ffffffffffffffff (prio 0, i/o): bus master container\n"
        "    0000000000000000-ffffffffffffffff (prio 0, i/o): alias bus master @system "
        "0000000000000000-ffffffffffffffff\n\n"
    )
    extra = "\nmemory-region: extra\n  0000000000000000-0000000000000fff (prio 0, ram): extra\n"
    after = edit(ahci, "") + extra
    changes = diff_trees(dump(TREE), dump(after))
    by = {c.where: c for c in changes}
    assert set(by) == {"address-space: ich9-ahci", "memory-region: extra"}
    gone, new = by["address-space: ich9-ahci"], by["memory-region: extra"]
    assert (gone.path, gone.what, gone.after, gone.below) == (
        ("bus master container",),
        ("removed",),
        None,
        1,  # the alias below it
    )
    assert gone.before == RegionRef(
        "bus master container",
        0,
        1 << 64,
        0,
        "i/o",
        True,
        None,
        None,
        line_of(TREE, "address-space: ich9-ahci") + 1,
    )
    assert (new.path, new.what, new.before, new.below) == (("extra",), ("added",), None, 0)
    assert new.after == RegionRef(
        "extra", 0, 0x1000, 0, "ram", True, None, None, line_of(after, "memory-region: extra") + 1
    )


@pytest.mark.parametrize(
    ("type_", "expected"),
    [
        ("ram", "direct"),
        ("ramd", "direct"),
        ("rom", "rom"),
        ("romd", "rom"),
        ("i/o", "trapped"),
    ],
)
def test_kind_of_each_printed_type(type_, expected):
    """The module docstring's kinds: RAM-like ranges map directly, ROM-like ones read
    directly, everything else traps into QEMU."""
    assert kind(type_) == expected


# ------------------------------------------------ flat range changes, address by address


def _view(ranges: list[FlatRange], name: str = "memory") -> FlatView:
    return FlatView((FlatViewAS(name),), "system", tuple(ranges))


def _random_view(rnd: random.Random) -> list[FlatRange]:
    out, pos = [], rnd.randrange(0, 4)
    while pos < 48:
        size = rnd.randrange(1, 9)
        if rnd.random() < 0.25:
            pos += size  # a hole: unassigned
            continue
        out.append(
            FlatRange(
                pos,
                size,
                rnd.choice([0, 0, 1]),
                rnd.choice(["ram", "ramd", "i/o", "rom", "romd"]),
                rnd.choice(["a", "b"]),
                rnd.choice([0, 0, 0x10]),
            )
        )
        pos += size
    return out


def _at(ranges: list[FlatRange], x: int) -> FlatRange | None:
    return next((r for r in ranges if r.start <= x < r.start + r.size), None)


def _how(rb: FlatRange | None, ra: FlatRange | None, x: int) -> str | None:
    """The module docstring's order: kind, type, region, offset, priority; added (was
    unassigned), removed."""
    if rb is None and ra is None:
        return None
    if rb is None:
        return "added"
    if ra is None:
        return "removed"
    for what, b, a in (
        ("kind", kind(rb.type), kind(ra.type)),
        ("type", rb.type, ra.type),
        ("region", rb.name, ra.name),
        ("offset", rb.offset + x - rb.start, ra.offset + x - ra.start),
        ("priority", rb.priority, ra.priority),
    ):
        if b != a:
            return what
    return None


@pytest.mark.parametrize("seed", range(30))
def test_range_changes_match_an_address_by_address_walk(seed):
    """Every address classified on its own, then neighbours that changed the same way
    (same kind of change, same region and type on each side) joined."""
    rnd = random.Random(seed)
    before, after = _random_view(rnd), _random_view(rnd)
    spans = [(8, 24, "0000:01:00.0", 2), (24, 40, "0000:01:00.0", 4)]
    expected: list[list] = []
    for x in range(0, 64):
        rb, ra = _at(before, x), _at(after, x)
        what = _how(rb, ra, x)
        if what is None:
            continue
        owners = tuple(None if r is None else (r.name, r.type) for r in (rb, ra))
        last = expected[-1] if expected else None
        if last is not None and last[1] == x and last[2] == what and last[5] == owners:
            last[1] = x + 1
            continue
        refs = [
            None if r is None else RangeRef(r.name, r.type, r.priority, r.offset + x - r.start)
            for r in (rb, ra)
        ]
        dev, bar = next(((d, k) for lo, hi, d, k in spans if lo <= x < hi), (None, None))
        expected.append([x, x + 1, what, *refs, owners, dev, bar])
    want = [RangeChange(s, e, w, b, a, d, k) for s, e, w, b, a, _o, d, k in expected]
    assert list(range_changes(_view(before), _view(after), spans)) == want
    # one side missing: everything on the other side is added or removed
    gone = range_changes(_view(before), None)
    assert {c.what for c in gone} <= {"removed"}
    assert sum(c.end - c.start for c in gone) == sum(r.size for r in before)
    new = range_changes(None, _view(after))
    assert {c.what for c in new} <= {"added"}
    assert sum(c.end - c.start for c in new) == sum(r.size for r in after)


# ------------------------------------------------ flat views of a real QEMU, one line edited

FLAT = (ROOT / "samples" / "vfio" / "q35-base" / "info-mtree-f.txt").read_text(encoding="utf-8")
NVME_MMAP = "  00000000fe200000-00000000fe201fff (prio 0, ramd): 0000:00:03.0 BAR 0 mmaps[0]"


def test_flat_views_diffed_folded_and_attributed_to_the_device():
    """The candidate drops FlatView #0 (I/O) and turns the nvme's first mmap ramd range
    i/o (in every view that shows it: memory and cpu-smm-0 share their ranges)."""
    cut = FLAT.index("FlatView #1")
    cand_flat = FLAT[cut:].replace(NVME_MMAP, NVME_MMAP.replace("ramd", "i/o"))
    before = load_side(TREE + "\n" + FLAT, "before")
    after = load_side(TREE + "\n" + cand_flat, "after")
    report = diff(before, after, [4096])
    flat_at = TREE.count("\n") + 2  # the flat view's first line, after the tree and a blank
    io, mem = report.views
    io_lines = FLAT[:cut].splitlines()
    sizes = [
        int(m[2], 16) + 1 - int(m[1], 16)
        for m in (re.match(r"^  ([0-9a-f]{16})-([0-9a-f]{16}) ", x) for x in io_lines)
        if m
    ]
    assert (io.address_spaces, io.before_line, io.after_line, io.only_in) == (
        ("I/O",),
        flat_at,
        None,
        "before",
    )
    assert {c.what for c in io.changes} == {"removed"}
    assert sum(c.end - c.start for c in io.changes) == sum(sizes)
    assert {"memory", "cpu-smm-0"} <= set(mem.address_spaces) and mem.only_in is None
    assert (mem.before_line, mem.after_line) == (flat_at + FLAT[:cut].count("\n"), flat_at)
    name = "0000:00:03.0 BAR 0 mmaps[0]"
    change = RangeChange(
        0xFE200000,
        0xFE202000,
        "kind",
        RangeRef(name, "ramd", 0, 0),
        RangeRef(name, "i/o", 0, 0),
        "0000:00:03.0",
        0,
    )
    assert mem.changes == (change,)
    nvme = next(d for d in report.devices if d.bdf == "0000:00:03.0")
    assert nvme.ranges == (change,)
    assert all(d.ranges == () for d in report.devices if d.bdf != "0000:00:03.0")
    assert report.regions == () and report.notes == ()
    assert (report.before, report.after) == (before.label, after.label)


# ------------------------------------------------ inputs read once, chosen by line


def test_load_sides_reads_a_repeated_input_once_and_keeps_each_choice():
    """Three dumps in one text: the flat view at line 1, then the tree twice."""
    text = FLAT + "\n" + TREE + "\n" + TREE
    flat_line, tree1 = 1, FLAT.count("\n") + 2
    tree2 = tree1 + TREE.count("\n") + 1
    one, two, other, chosen = load_sides(
        [
            (text, "one.txt", ()),
            (text, "two.txt", ()),  # the same text: read once, named two.txt
            (TREE, "tree.txt", ()),  # another text: its own dumps
            (text, "pick.txt", (tree2,)),  # the second tree alone, as asked
        ]
    )
    note = (
        "{} holds 3 dumps; compared the one(s) at line {} and line {} "
        "(choose others with the --...-dump LINE options)"
    )
    assert one.notes == (note.format("one.txt", flat_line, tree1),)
    assert two.notes == (note.format("two.txt", flat_line, tree1),)
    assert (one.tree.line, one.flat.line) == (two.tree.line, two.flat.line) == (tree1, flat_line)
    assert (two.tree.file, two.flat.file) == ("two.txt", "two.txt")
    assert (other.tree.line, other.flat, other.notes) == (1, None, ())
    assert (chosen.tree.line, chosen.flat, chosen.notes) == (tree2, None, ())
    with pytest.raises(
        UsageError, match=r"^bad\.txt: no dump starts at line 7 \(dumps start at 1, "
    ):
        load_sides([(text, "bad.txt", (7,))])
