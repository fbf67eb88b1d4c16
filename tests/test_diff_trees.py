"""Region changes between two trees (flatview.diff.diff_trees) on a real QEMU 7.2 tree.

The input is samples/vfio/q35-base/info-mtree.txt (three vfio-pci devices); each
candidate is that text with one edit made here, so each expected change -- where, the
path of names, what changed, the region before and after, how many subregions came or
went with it, the device -- is read off the edited lines.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from flatview import api
from flatview.diff import RegionRef, diff_trees, kind
from flatview.model import MtreeDump

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
