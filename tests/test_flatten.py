"""flatview.flatten: one small ``info mtree`` tree per rendering rule of the spec (§2).

Every tree is written as QEMU prints it (newest format, ``memory-region:`` sections for
alias targets), read with :func:`flatview.build.read_dumps`, flattened, and compared with
ranges derived in the test.  Expected ranges are ``(start, last, prio, type, name,
offset)``: ``last`` is the inclusive end QEMU prints, ``type`` carries the ``nv-`` prefix,
and the arithmetic that gives each number is written out.
"""

from __future__ import annotations

import re
from pathlib import Path
from textwrap import dedent

import pytest

from flatview import api
from flatview.build import read_dumps
from flatview.check import range_key
from flatview.flatten import FlattenResult, flatten, flatview_root
from flatview.model import U64, FlatDump, FlatView, MemoryRegion, MtreeDump
from flatview.render.qemu import format_flatview, format_range
from flatview.terminates import READONLY_ALIASES, Knowledge

SEEDS = Path(__file__).resolve().parent / "fixtures" / "seeds"

K = 1 << 10
M = 1 << 20

Row = tuple[int, int, int, str, str, int]


# ------------------------------------------------------------------------------ helpers


def load_tree(text: str) -> MtreeDump:
    dumps = read_dumps(dedent(text), "test-tree")
    assert len(dumps) == 1, dumps
    assert isinstance(dumps[0], MtreeDump)
    return dumps[0]


def load_flat(text: str) -> FlatDump:
    dumps = read_dumps(dedent(text), "test-flat")
    assert len(dumps) == 1, dumps
    assert isinstance(dumps[0], FlatDump)
    return dumps[0]


def rows(view: FlatView) -> list[Row]:
    return [
        (
            r.start,
            r.end - 1,
            r.priority,
            ("nv-" if r.nonvolatile else "") + r.type,
            r.name,
            r.offset,
        )
        for r in view.ranges
    ]


def view_of(result: FlattenResult, as_name: str) -> FlatView:
    found = [v for v in result.views if as_name in v.names]
    assert len(found) == 1, [v.names for v in result.views]
    return found[0]


def only_view(result: FlattenResult) -> FlatView:
    assert len(result.views) == 1, [v.names for v in result.views]
    return result.views[0]


def flat_rows(text: str) -> list[Row]:
    return rows(only_view(flatten(load_tree(text))))


def owner_at(view: FlatView, addr: int) -> tuple[str, int] | None:
    """(name, offset in region) of the range covering ``addr``, None in a hole."""
    found = [r for r in view.ranges if r.start <= addr < r.end]
    assert len(found) <= 1
    return (found[0].name, found[0].offset + addr - found[0].start) if found else None


def region(dump: MtreeDump, name: str) -> MemoryRegion:
    found = {id(mr): mr for mr, _ in dump.regions() if mr.name == name}
    assert len(found) == 1, f"{len(found)} regions named {name!r}"
    return next(iter(found.values()))


# ---------------------------------------------------------------------------- clipping


def test_child_overhanging_its_parent_is_clipped_to_the_parent():
    text = """\
        address-space: memory
          0000000000000000-ffffffffffffffff (prio 0, i/o): system
            0000000000001000-0000000000001fff (prio 0, i/o): dev
              0000000000001800-00000000000027ff (prio 0, i/o): regs
        """
    # regs spans [0x1800, 0x2800); dev ends at 0x1000 + 0x1000 = 0x2000.
    assert flat_rows(text) == [(0x1800, 0x1000 + 0x1000 - 1, 0, "i/o", "regs", 0)]


def test_child_overhanging_a_terminating_parent_is_clipped_and_parent_fills_the_rest():
    text = """\
        address-space: I/O
          0000000000000000-000000000000ffff (prio 0, i/o): io
            0000000000000070-0000000000000071 (prio 0, i/o): rtc
              0000000000000071-0000000000000074 (prio 0, i/o): rtc-index
        """
    assert flat_rows(text) == [
        (0x0, 0x6F, 0, "i/o", "io", 0),
        (0x70, 0x70, 0, "i/o", "rtc", 0),
        # rtc-index spans [0x71, 0x75) but rtc ends at 0x70 + 2 = 0x72.
        (0x71, 0x72 - 1, 0, "i/o", "rtc-index", 0),
        (0x72, 0xFFFF, 0, "i/o", "io", 0x72),
    ]


def test_region_partly_above_2_64_is_cut_at_2_64():
    # The end wraps: size = (0xfff - 0xfffffffffffff000 + 1) mod 2^64 = 0x2000, so the
    # region covers [2^64 - 0x1000, 2^64 + 0x1000); the top clip [0, 2^64) keeps 0x1000.
    text = """\
        address-space: memory
          0000000000000000-ffffffffffffffff (prio 0, i/o): system
        [DETECTED OVERFLOW!]     fffffffffffff000-0000000000000fff (prio 0, i/o): top
        """
    tree = load_tree(text)
    assert region(tree, "top").size == (0xFFF - 0xFFFFFFFFFFFFF000 + 1) % U64 == 0x2000
    view = only_view(flatten(tree))
    assert rows(view) == [(0xFFFFFFFFFFFFF000, U64 - 1, 0, "i/o", "top", 0)]
    assert view.ranges[0].size == U64 - 0xFFFFFFFFFFFFF000 == 0x1000


def test_size_2_64_region_placed_above_0_is_clipped_at_2_64():
    # Spec 6.5 (real line, bcm2838 review): size (0x5ffffffff - 0x600000000 + 1) mod 2^64
    # = 0, i.e. 2^64, placed at 0x600000000.
    text = """\
        address-space: memory
          0000000000000000-ffffffffffffffff (prio 0, i/o): system
        [DETECTED OVERFLOW!]     0000000600000000-00000005ffffffff (prio 0, i/o): bcm2838_pcie_mmio_window
        """  # noqa: E501
    tree = load_tree(text)
    assert region(tree, "bcm2838_pcie_mmio_window").size == U64
    assert rows(only_view(flatten(tree))) == [
        (0x600000000, U64 - 1, 0, "i/o", "bcm2838_pcie_mmio_window", 0)
    ]


def test_child_whose_start_wraps_past_2_64_renders_nothing():
    # The child's start 0xffffffffffff0000 + 0x20000 wraps to 0x10000 (printed with the
    # marker); in QEMU's Int128 arithmetic it lies at 2^64 + 0x10000, outside [0, 2^64).
    text = """\
        address-space: memory
          0000000000000000-ffffffffffffffff (prio 0, i/o): system
            ffffffffffff0000-ffffffffffffffff (prio 0, i/o): hiwin
        [DETECTED OVERFLOW!]       0000000000010000-0000000000010fff (prio 0, i/o): wrapped
        """
    tree = load_tree(text)
    assert region(tree, "wrapped").addr == 0x20000
    assert flat_rows(text) == []


# -------------------------------------------------------------------------- priorities


def test_higher_priority_wins_even_when_printed_after_the_lower():
    text = """\
        address-space: memory
          0000000000000000-ffffffffffffffff (prio 0, i/o): system
            0000000000000000-0000000000002fff (prio 0, i/o): low
            0000000000001000-0000000000001fff (prio 1, i/o): high
        """
    assert flat_rows(text) == [
        (0x0000, 0x0FFF, 0, "i/o", "low", 0),
        (0x1000, 0x1FFF, 1, "i/o", "high", 0),
        (0x2000, 0x2FFF, 0, "i/o", "low", 0x2000 - 0x0),
    ]


def test_negative_priority_loses_to_priority_0():
    text = """\
        address-space: memory
          0000000000000000-ffffffffffffffff (prio 0, i/o): system
            0000000000000000-0000000000000fff (prio 0, ram): ram
            0000000000000000-ffffffffffffffff (prio -1, i/o): pci
              0000000000000000-0000000000001fff (prio 1, i/o): bar
        """
    assert flat_rows(text) == [
        (0x0000, 0x0FFF, 0, "ram", "ram", 0),
        (0x1000, 0x1FFF, 1, "i/o", "bar", 0x1000 - 0x0),
    ]


def test_lower_priority_shows_through_holes_of_a_higher_priority_pure_container():
    text = """\
        address-space: memory
          0000000000000000-ffffffffffffffff (prio 0, i/o): system
            0000000000000000-0000000000003fff (prio 1, i/o): window
              0000000000001000-0000000000001fff (prio 0, i/o): x
            0000000000000000-0000000000003fff (prio 0, ram): lowram
        """
    assert flat_rows(text) == [
        (0x0000, 0x0FFF, 0, "ram", "lowram", 0),
        (0x1000, 0x1FFF, 0, "i/o", "x", 0),
        (0x2000, 0x3FFF, 0, "ram", "lowram", 0x2000),
    ]


SPEC_2_4_TREE = """\
    address-space: memory
      0000000000000000-0000000000007fff (prio 0, i/o): A
        0000000000000000-0000000000005fff (prio 1, i/o): C
        0000000000002000-0000000000005fff (prio 2, i/o): B
          0000000000002000-0000000000002fff (prio 0, i/o): D
          0000000000004000-0000000000004fff (prio 0, i/o): E
    """


def test_spec_2_4_worked_example_exactly():
    view = only_view(flatten(load_tree(SPEC_2_4_TREE)))
    # The flat result quoted in spec §2.4 (B, a pure container, renders first; C, MMIO,
    # fills what is left of its own span after that).
    assert [format_range(r) for r in view.ranges] == [
        "  0000000000000000-0000000000001fff (prio 1, i/o): C",
        "  0000000000002000-0000000000002fff (prio 0, i/o): D",
        "  0000000000003000-0000000000003fff (prio 1, i/o): C @0000000000003000",
        "  0000000000004000-0000000000004fff (prio 0, i/o): E",
        "  0000000000005000-0000000000005fff (prio 1, i/o): C @0000000000005000",
    ]
    assert view.root == "A"


def test_spec_2_4_with_B_terminating_B_replaces_the_last_C_pieces():
    tree = load_tree(SPEC_2_4_TREE)
    expected = [
        (0x0000, 0x1FFF, 1, "i/o", "C", 0),
        (0x2000, 0x2FFF, 0, "i/o", "D", 0),
        (0x3000, 0x3FFF, 2, "i/o", "B", 0x3000 - 0x2000),
        (0x4000, 0x4FFF, 0, "i/o", "E", 0),
        (0x5000, 0x5FFF, 2, "i/o", "B", 0x5000 - 0x2000),
    ]
    # Told directly ...
    assert rows(only_view(flatten(tree, Knowledge(flat_names=frozenset({"B"}))))) == expected
    # ... or learned from a QEMU flat view of the same machine that shows B.
    flat = load_flat("""\
        FlatView #0
         AS "memory", root: A
         Root memory region: A
          0000000000003000-0000000000003fff (prio 2, i/o): B @0000000000001000
        """)
    assert rows(only_view(api.flatten(tree, [flat]))) == expected


def test_terminating_higher_priority_region_hides_everything_below_it():
    text = """\
        address-space: memory
          0000000000000000-ffffffffffffffff (prio 0, i/o): system
            0000000000000000-0000000000003fff (prio 1, i/o): 0000:00:02.0 base BAR 0
              0000000000000000-0000000000000fff (prio 0, i/o): 0000:00:02.0 BAR 0
            0000000000000000-0000000000003fff (prio 0, ram): lowram
            0000000000004000-0000000000005fff (prio 2, ram): hiram
            0000000000004000-0000000000004fff (prio 1, i/o): shadowed
        """
    assert flat_rows(text) == [
        (0x0000, 0x0FFF, 0, "i/o", "0000:00:02.0 BAR 0", 0),
        (0x1000, 0x3FFF, 1, "i/o", "0000:00:02.0 base BAR 0", 0x1000),
        (0x4000, 0x5FFF, 2, "ram", "hiram", 0),
    ]


def test_equal_priority_at_the_same_address_first_printed_wins_without_ambiguity():
    # Same addr: print order is render order (spec §4 B), newest first.
    text = """\
        address-space: memory
          0000000000000000-ffffffffffffffff (prio 0, i/o): system
            0000000000001000-0000000000001fff (prio 0, i/o): newer
            0000000000001000-0000000000002fff (prio 0, i/o): older
        """
    result = flatten(load_tree(text))
    assert rows(only_view(result)) == [
        (0x1000, 0x1FFF, 0, "i/o", "newer", 0),
        (0x2000, 0x2FFF, 0, "i/o", "older", 0x2000 - 0x1000),
    ]
    assert result.ambiguities == ()


def test_equal_priority_overlap_at_different_addresses_is_an_ambiguity():
    text = """\
        address-space: memory
          0000000000000000-ffffffffffffffff (prio 0, i/o): system
            0000000000001000-0000000000002fff (prio 0, i/o): first
            0000000000002000-0000000000003fff (prio 0, i/o): second
        """
    tree = load_tree(text)
    result = flatten(tree)
    view = only_view(result)
    # Outside the overlap [0x2000, 0x3000) the outcome is certain.
    assert owner_at(view, 0x1000) == ("first", 0)
    assert owner_at(view, 0x1FFF) == ("first", 0x1FFF - 0x1000)
    assert owner_at(view, 0x3000) == ("second", 0x3000 - 0x2000)
    assert owner_at(view, 0x3FFF) == ("second", 0x3FFF - 0x2000)
    assert owner_at(view, 0x4000) is None
    # Inside it, one of the two, all through, and the ambiguity spells out both outcomes.
    inside = {owner_at(view, a)[0] for a in (0x2000, 0x2800, 0x2FFF)}
    assert inside in ({"first"}, {"second"})
    [amb] = result.ambiguities
    assert amb.kind == "equal-priority overlap"
    assert {m.name for m in amb.regions} == {"first", "second"}
    assert (amb.start, amb.end) == (0x2000, 0x3000)
    assert len(amb.outcomes) == 2
    assert any("'first' wins" in o for o in amb.outcomes)
    assert any("'second' wins" in o for o in amb.outcomes)


# ------------------------------------------------------------------------ alias arithmetic


def test_spec_6_1_two_aliases_of_one_ram_block_and_an_mmio_window():
    text = """\
        address-space: memory
          0000000000000000-ffffffffffffffff (prio 0, container): system
            0000000000000000-000000007fffffff (prio 0, ram): alias ram-lo @ram 0000000000000000-000000007fffffff
            0000000080000000-00000000bfffffff (prio 0, ram): alias ram-hi @ram 0000000080000000-00000000bfffffff
            00000000a0000000-00000000a0000fff (prio 1, i/o): mmio-x

        memory-region: ram
          0000000000000000-00000000bfffffff (prio 0, ram): ram
        """  # noqa: E501
    view = only_view(flatten(load_tree(text)))
    assert rows(view) == [
        # ram-lo (origin 0) and ram-hi (origin 0x80000000 - 0x80000000 = 0) merge: same MR,
        # offsets 0 + 0x80000000 == 0x80000000.
        (0x0, 0x9FFFFFFF, 0, "ram", "ram", 0),
        (0xA0000000, 0xA0000FFF, 1, "i/o", "mmio-x", 0),
        (0xA0001000, 0xBFFFFFFF, 0, "ram", "ram", 0xA0001000 - 0x80000000 + 0x80000000),
    ]
    assert [format_range(r) for r in view.ranges] == [
        "  0000000000000000-000000009fffffff (prio 0, ram): ram",
        "  00000000a0000000-00000000a0000fff (prio 1, i/o): mmio-x",
        "  00000000a0001000-00000000bfffffff (prio 0, ram): ram @00000000a0001000",
    ]


NEG_ORIGIN_TREE = """\
    address-space: memory
      0000000000000000-ffffffffffffffff (prio 0, i/o): system
        0000000000001000-0000000000001fff (prio 0, ram): alias win @blk 0000000000003000-0000000000003fff
    {extra}
    memory-region: blk
      0000000040000000-000000004000ffff (prio 0, ram): blk
    """  # noqa: E501


def test_spec_6_2_negative_origin():
    text = NEG_ORIGIN_TREE.format(extra="")
    # blk origin = 0x1000 - 0x3000 = -0x2000 (its own 0x40000000 cancels out).
    origin = 0x1000 - 0x3000
    assert flat_rows(text) == [(0x1000, 0x1FFF, 0, "ram", "blk", 0x1000 - origin)]
    assert 0x1000 - origin == 0x3000


def test_offset_in_region_advances_over_higher_priority_pieces():
    # One level below system once the text is dedented (the template indents by 4).
    hole = "    0000000000001400-00000000000014ff (prio 1, i/o): hole\n"
    text = NEG_ORIGIN_TREE.format(extra=hole)
    origin = 0x1000 - 0x3000
    assert flat_rows(text) == [
        (0x1000, 0x13FF, 0, "ram", "blk", 0x1000 - origin),
        (0x1400, 0x14FF, 1, "i/o", "hole", 0),
        (0x1500, 0x1FFF, 0, "ram", "blk", 0x1500 - origin),
    ]
    assert 0x1500 - origin == 0x3500


def test_alias_into_a_container_target_places_the_target_children():
    text = """\
        address-space: memory
          0000000000000000-ffffffffffffffff (prio 0, i/o): system
            0000000000010000-000000000001ffff (prio 0, i/o): alias bar-win @devc 0000000000000080-000000000001007f

        memory-region: devc
          0000000000000000-000000000001ffff (prio 0, i/o): devc
            0000000000000000-000000000000007f (prio 0, i/o): before
            0000000000000100-00000000000001ff (prio 0, i/o): regs
            0000000000010000-0000000000017fff (prio 0, i/o): beyond
        """  # noqa: E501
    origin = 0x10000 - 0x80  # alias start - alias_offset
    assert flat_rows(text) == [
        # before spans [origin, origin + 0x80) = [0xff80, 0x10000): left of the window.
        (origin + 0x100, origin + 0x1FF, 0, "i/o", "regs", 0),
        # beyond spans [origin + 0x10000, origin + 0x18000); the alias window ends at
        # 0x10000 + 0x10000 = 0x20000, so only 0x80 bytes are left.
        (origin + 0x10000, 0x1FFFF, 0, "i/o", "beyond", 0),
    ]
    assert 0x20000 - (origin + 0x10000) == 0x80


def test_alias_longer_than_its_target_renders_only_the_target_extent():
    text = """\
        address-space: memory
          0000000000000000-ffffffffffffffff (prio 0, i/o): system
            0000000000005000-0000000000006fff (prio 0, ram): alias big @small 0000000000000800-00000000000027ff
            0000000000005000-0000000000006fff (prio -1, i/o): under

        memory-region: small
          0000000000000000-0000000000000fff (prio 0, ram): small
        """  # noqa: E501
    origin = 0x5000 - 0x800  # small spans [0x4800, 0x5800); the alias window [0x5000, 0x7000)
    assert flat_rows(text) == [
        (0x5000, origin + 0x1000 - 1, 0, "ram", "small", 0x5000 - origin),
        (origin + 0x1000, 0x6FFF, -1, "i/o", "under", origin + 0x1000 - 0x5000),
    ]


def test_alias_of_an_alias_adds_both_offsets():
    text = """\
        address-space: memory
          0000000000000000-ffffffffffffffff (prio 0, i/o): system
            0000000000100000-0000000000100fff (prio 0, ram): alias outer @inner 0000000000000100-00000000000010ff

        memory-region: inner
          0000000000000000-0000000000001fff (prio 0, ram): alias inner @ram 0000000000004000-0000000000005fff

        memory-region: ram
          0000000000000000-000000000000ffff (prio 0, ram): ram
        """  # noqa: E501
    inner_origin = 0x100000 - 0x100
    ram_origin = inner_origin - 0x4000
    assert flat_rows(text) == [(0x100000, 0x100FFF, 0, "ram", "ram", 0x100000 - ram_origin)]
    assert 0x100000 - ram_origin == 0x4000 + 0x100


# ------------------------------------------------------------------ readonly, nonvolatile


def test_rom_region_prints_rom_directly_and_through_an_alias():
    text = """\
        address-space: memory
          0000000000000000-ffffffffffffffff (prio 0, i/o): system
            00000000000e0000-00000000000fffff (prio 1, rom): alias isa-bios @pc.bios 0000000000020000-000000000003ffff
            00000000fffc0000-00000000ffffffff (prio 0, rom): pc.bios

        memory-region: pc.bios
          00000000fffc0000-00000000ffffffff (prio 0, rom): pc.bios
        """  # noqa: E501
    view = only_view(flatten(load_tree(text)))
    assert rows(view) == [
        (0xE0000, 0xFFFFF, 0, "rom", "pc.bios", 0x20000),
        (0xFFFC0000, 0xFFFFFFFF, 0, "rom", "pc.bios", 0),
    ]
    assert all(r.readonly for r in view.ranges)
    # The alias reaches the very object mapped in system (one MR printed twice).
    assert view.ranges[0].region is view.ranges[1].region


PAM_TREE = """\
    address-space: memory
      0000000000000000-ffffffffffffffff (prio 0, i/o): system
        0000000000000000-0000000007ffffff (prio 0, ram): alias ram-below-4g @pc.ram 0000000000000000-0000000007ffffff
        00000000000c0000-00000000000c9fff (prio 1, ram): alias pam-rom @pc.ram 00000000000c0000-00000000000c9fff
        00000000000ca000-00000000000ccfff (prio 1, ram): alias pam-ram @pc.ram 00000000000ca000-00000000000ccfff
        00000000000cd000-00000000000cffff (prio 1, ram): alias pam-rom @pc.ram 00000000000cd000-00000000000cffff

    memory-region: pc.ram
      0000000000000000-0000000007ffffff (prio 0, ram): pc.ram
    """  # noqa: E501


def test_pam_rom_alias_makes_rom_ranges_of_a_ram_target_and_splits_merges():
    assert "pam-rom" in READONLY_ALIASES
    result = flatten(load_tree(PAM_TREE))
    view = only_view(result)
    assert rows(view) == [
        (0x00000, 0xBFFFF, 0, "ram", "pc.ram", 0),
        (0xC0000, 0xC9FFF, 0, "rom", "pc.ram", 0xC0000),
        (0xCA000, 0xCCFFF, 0, "ram", "pc.ram", 0xCA000),
        (0xCD000, 0xCFFFF, 0, "rom", "pc.ram", 0xCD000),
        # Every neighbour pair above is one MR with continuous offsets (0 + 0xc0000 ==
        # 0xc0000, ...): only the readonly flag keeps the five pieces apart.
        (0xD0000, 0x7FFFFFF, 0, "ram", "pc.ram", 0xD0000),
    ]
    # The two lines quoted from the message of QEMU commit 377a07aa (spec §2.3).
    printed = [format_range(r) for r in view.ranges]
    assert printed[1:3] == [
        "  00000000000c0000-00000000000c9fff (prio 0, rom): pc.ram @00000000000c0000",
        "  00000000000ca000-00000000000ccfff (prio 0, ram): pc.ram @00000000000ca000",
    ]
    # Same MR object everywhere: only readonly keeps them apart.
    assert len({id(r.region) for r in view.ranges}) == 1
    assert any(g.region.name == "pam-rom" and g.what == "is read-only" for g in result.guesses)


def test_readonly_alias_over_mmio_prints_rom():
    text = """\
        address-space: memory
          0000000000000000-ffffffffffffffff (prio 0, i/o): system
            00000000000c0000-00000000000c3fff (prio 1, i/o): alias pam-rom @mmio-dev 0000000000000000-0000000000003fff

        memory-region: mmio-dev
          0000000000000000-0000000000003fff (prio 0, i/o): mmio-dev
        """  # noqa: E501
    # mtree_print_flatview prints `range->readonly ? "rom" : memory_region_type(mr)`.
    assert flat_rows(text) == [(0xC0000, 0xC3FFF, 0, "rom", "mmio-dev", 0)]


def test_nonvolatile_alias_propagates_nv_and_blocks_a_merge():
    text = """\
        address-space: memory
          0000000000000000-ffffffffffffffff (prio 0, i/o): system
            0000000100000000-0000000100007fff (prio 0, nv-ram): alias nvdimm-lo @pmem 0000000000000000-0000000000007fff
            0000000100008000-000000010000ffff (prio 0, ram): alias plain-hi @pmem 0000000000008000-000000000000ffff

        memory-region: pmem
          0000000000000000-000000000000ffff (prio 0, ram): pmem
        """  # noqa: E501
    view = only_view(flatten(load_tree(text)))
    # Same MR and offsets 0 + 0x8000 == 0x8000, but nonvolatile differs: no merge.
    assert rows(view) == [
        (0x100000000, 0x100007FFF, 0, "nv-ram", "pmem", 0),
        (0x100008000, 0x10000FFFF, 0, "ram", "pmem", 0x8000),
    ]
    assert format_range(view.ranges[0]) == (
        "  0000000100000000-0000000100007fff (prio 0, nv-ram): pmem"
    )


def test_nonvolatile_region_itself_prints_nv():
    text = """\
        address-space: memory
          0000000000000000-ffffffffffffffff (prio 0, i/o): system
            0000000290000000-000000029fffffff (prio 0, nv-ram): cxl-pmem
        """
    assert flat_rows(text) == [(0x290000000, 0x29FFFFFFF, 0, "nv-ram", "cxl-pmem", 0)]


# --------------------------------------------------------------------------- gap filling


def test_pure_container_leaves_its_holes_empty():
    text = """\
        address-space: memory
          0000000000000000-ffffffffffffffff (prio 0, i/o): system
            0000000000001000-0000000000001fff (prio 0, i/o): dev
            0000000000020000-000000000003ffff (prio 1, i/o): e1000e-flash
        """
    # system and e1000e-flash (memory_region_init, no children) are pure containers.
    assert flat_rows(text) == [(0x1000, 0x1FFF, 0, "i/o", "dev", 0)]


def test_io_root_fills_its_holes_after_its_children():
    text = """\
        address-space: I/O
          0000000000000000-000000000000ffff (prio 0, i/o): io
            0000000000000020-0000000000000021 (prio 0, i/o): pic
            0000000000000cf8-0000000000000cfb (prio 0, i/o): pci-conf-idx
        """
    view = only_view(flatten(load_tree(text)))
    assert rows(view) == [
        (0x0, 0x1F, 0, "i/o", "io", 0),
        (0x20, 0x21, 0, "i/o", "pic", 0),
        (0x22, 0xCF7, 0, "i/o", "io", 0x22),
        (0xCF8, 0xCFB, 0, "i/o", "pci-conf-idx", 0),
        (0xCFC, 0xFFFF, 0, "i/o", "io", 0xCFC),
    ]
    assert view.root == "io"


# ------------------------------------------------------------------------------ merging


def test_same_mr_reached_directly_and_through_an_alias_merges():
    text = """\
        address-space: memory
          0000000000000000-ffffffffffffffff (prio 0, i/o): system
            0000000000000000-0000000000001fff (prio 0, ram): lowram
            0000000000001000-0000000000001fff (prio 1, ram): alias lowram-hi @lowram 0000000000001000-0000000000001fff

        memory-region: lowram
          0000000000000000-0000000000001fff (prio 0, ram): lowram
        """  # noqa: E501
    # [0x1000, 0x2000) via the alias (offset 0x1000) then [0, 0x1000) directly (offset 0):
    # 0 + 0x1000 == 0x1000 and the same object, so one range.
    assert flat_rows(text) == [(0x0, 0x1FFF, 0, "ram", "lowram", 0)]


def test_different_mr_objects_with_the_same_name_do_not_merge():
    text = """\
        address-space: memory
          0000000000000000-ffffffffffffffff (prio 0, i/o): system
            0000000000000000-0000000000000fff (prio 0, ram): dup
            0000000000001000-0000000000001fff (prio 0, ram): alias dup-hi @dup 0000000000001000-0000000000001fff

        memory-region: dup
          0000000000000000-0000000000001fff (prio 0, ram): dup
        """  # noqa: E501
    view = only_view(flatten(load_tree(text)))
    # Continuous offsets (0 + 0x1000 == 0x1000) and one name, but two objects (the section
    # is 0x2000 long, the mapped `dup` 0x1000): QEMU prints two lines.
    assert rows(view) == [
        (0x0000, 0x0FFF, 0, "ram", "dup", 0),
        (0x1000, 0x1FFF, 0, "ram", "dup", 0x1000),
    ]
    assert view.ranges[0].region is not view.ranges[1].region


def test_back_to_back_aliases_with_discontinuous_offsets_do_not_merge():
    text = """\
        address-space: memory
          0000000000000000-ffffffffffffffff (prio 0, i/o): system
            0000000000000000-0000000000000fff (prio 0, ram): alias a @ram 0000000000000000-0000000000000fff
            0000000000001000-0000000000001fff (prio 0, ram): alias b @ram 0000000000003000-0000000000003fff

        memory-region: ram
          0000000000000000-0000000000003fff (prio 0, ram): ram
        """  # noqa: E501
    assert flat_rows(text) == [
        (0x0000, 0x0FFF, 0, "ram", "ram", 0),
        (0x1000, 0x1FFF, 0, "ram", "ram", 0x3000),  # 0 + 0x1000 != 0x3000
    ]


# ------------------------------------------------------------------------- root skipping


def test_root_alias_covering_its_target_is_skipped_and_the_view_is_shared():
    text = """\
        address-space: memory
          0000000000000000-ffffffffffffffff (prio 0, i/o): system
            0000000000000000-0000000000000fff (prio 0, i/o): regs
            00000000fee00000-00000000feefffff (prio 4096, i/o): apic-msi

        address-space: dma-view
          0000000000000000-ffffffffffffffff (prio 0, i/o): alias dma-alias @system 0000000000000000-ffffffffffffffff

        memory-region: system
          0000000000000000-ffffffffffffffff (prio 0, i/o): system
            0000000000000000-0000000000000fff (prio 0, i/o): regs
            00000000fee00000-00000000feefffff (prio 4096, i/o): apic-msi
        """  # noqa: E501
    tree = load_tree(text)
    result = flatten(tree)
    view = only_view(result)
    assert sorted(view.names) == ["dma-view", "memory"]
    assert view.root == "system"
    assert rows(view) == [
        (0x0, 0xFFF, 0, "i/o", "regs", 0),
        (0xFEE00000, 0xFEEFFFFF, 4096, "i/o", "apic-msi", 0),
    ]
    ases = {a.name: (a.root, a.root_alias) for a in view.address_spaces}
    assert ases == {"memory": ("system", None), "dma-view": ("dma-alias", "system")}
    lines = format_flatview(view)
    assert ' AS "dma-view", root: dma-alias, alias system' in lines
    assert flatview_root(tree.address_spaces[1].root, Knowledge()) is region(tree, "system")


@pytest.mark.parametrize(
    ("alias_line", "expected"),
    [
        # Offset 0 but shorter than its target: the alias stays the root (and its window
        # [0, 0x1000) leaves `more` out).
        (
            "0000000000000000-0000000000000fff (prio 0, i/o): alias dma-win @system "
            "0000000000000000-0000000000000fff",
            [(0x0, 0xFFF, 0, "i/o", "regs", 0)],
        ),
        # Full length but a non-zero offset: the alias stays the root, regs shifts down.
        (
            "0000000000000000-ffffffffffffffff (prio 0, i/o): alias dma-win @system "
            "0000000000000800-00000000000007ff",
            [
                (0x0, 0x7FF, 0, "i/o", "regs", 0x800),
                (0x1000 - 0x800, 0x1FFF - 0x800, 0, "i/o", "more", 0),
            ],
        ),
    ],
)
def test_root_alias_not_covering_its_target_is_a_root_of_its_own(alias_line, expected):
    text = (
        "address-space: memory\n"
        "  0000000000000000-ffffffffffffffff (prio 0, i/o): system\n"
        "    0000000000000000-0000000000000fff (prio 0, i/o): regs\n"
        "    0000000000001000-0000000000001fff (prio 0, i/o): more\n"
        "\n"
        "address-space: dma-view\n"
        f"  {alias_line}\n"
        "\n"
        "memory-region: system\n"
        "  0000000000000000-ffffffffffffffff (prio 0, i/o): system\n"
        "    0000000000000000-0000000000000fff (prio 0, i/o): regs\n"
        "    0000000000001000-0000000000001fff (prio 0, i/o): more\n"
    )
    result = flatten(load_tree(text))
    assert len(result.views) == 2
    dma = view_of(result, "dma-view")
    assert dma.root == "dma-win"
    assert rows(dma) == expected
    assert rows(view_of(result, "memory")) == [
        (0x0, 0xFFF, 0, "i/o", "regs", 0),
        (0x1000, 0x1FFF, 0, "i/o", "more", 0),
    ]


def test_container_with_a_single_enabled_child_at_0_is_skipped():
    text = """\
        address-space: wrapped
          0000000000000000-ffffffffffffffff (prio 0, i/o): wrap
            0000000000000000-000000000000ffff (prio 0, i/o): inner
              0000000000000000-0000000000000fff (prio 0, i/o): a
              0000000000002000-0000000000002fff (prio 0, i/o): b
            0000000000010000-000000000001ffff (prio 0, i/o): gone [disabled]

        address-space: not-at-0
          0000000000000000-ffffffffffffffff (prio 0, i/o): wrap2
            0000000000001000-0000000000001fff (prio 0, i/o): c
        """
    tree = load_tree(text)
    know = Knowledge()
    # wrap: one *enabled* child, at 0, no larger: skipped; inner has two: kept.
    assert flatview_root(tree.address_spaces[0].root, know) is region(tree, "inner")
    # wrap2's only child is not at 0: kept.
    assert flatview_root(tree.address_spaces[1].root, know) is region(tree, "wrap2")
    result = flatten(tree)
    assert view_of(result, "wrapped").root == "inner"
    assert view_of(result, "not-at-0").root == "wrap2"
    assert rows(view_of(result, "wrapped")) == [
        (0x0000, 0x0FFF, 0, "i/o", "a", 0),
        (0x2000, 0x2FFF, 0, "i/o", "b", 0),
    ]
    assert rows(view_of(result, "not-at-0")) == [(0x1000, 0x1FFF, 0, "i/o", "c", 0)]


@pytest.mark.parametrize(
    ("alias", "kept_type"),
    [
        ("(prio 0, ram): alias pam-rom @blk", "rom"),  # readonly by rule
        ("(prio 0, nv-ram): alias nvdimm @blk", "nv-ram"),  # nonvolatile as printed
    ],
)
def test_flags_of_skipped_root_levels_are_dropped(alias, kept_type):
    # Spec §2.1 consequence 1: the view is rendered from the resolved root (blk), so the
    # readonly/nonvolatile of the skipped alias does not apply ...
    skipped = f"""\
        address-space: flags
          0000000000000000-ffffffffffffffff (prio 0, i/o): wrap
            0000000000000000-000000000000ffff {alias} 0000000000000000-000000000000ffff

        memory-region: blk
          0000000000000000-000000000000ffff (prio 0, ram): blk
        """
    view = only_view(flatten(load_tree(skipped)))
    assert view.root == "blk"
    assert rows(view) == [(0x0, 0xFFFF, 0, "ram", "blk", 0)]
    # ... whereas the same alias one page up is not skipped and the flag applies.
    kept = skipped.replace(
        "0000000000000000-000000000000ffff " + alias,
        "0000000000001000-0000000000010fff " + alias,
    )
    view = only_view(flatten(load_tree(kept)))
    assert view.root == "wrap"
    assert rows(view) == [(0x1000, 0x10FFF, 0, kept_type, "blk", 0)]


def test_resolved_root_own_address_shifts_the_view():
    # Spec §2.1 consequence 2: rendering starts at base 0 and adds the resolved root's
    # own addr (blk is mapped at 0x40000000 in its container, as its section shows).
    text = """\
        address-space: shifted
          0000000000000000-ffffffffffffffff (prio 0, i/o): wrap
            0000000000000000-000000000000ffff (prio 0, ram): alias whole @blk 0000000000000000-000000000000ffff

        memory-region: blk
          0000000040000000-000000004000ffff (prio 0, ram): blk
        """  # noqa: E501
    view = only_view(flatten(load_tree(text)))
    assert view.root == "blk"
    assert rows(view) == [(0x0 + 0x40000000, 0x40000000 + 0x10000 - 1, 0, "ram", "blk", 0)]


BUS_MASTER_TREE = """\
    address-space: cpu-memory-0
    address-space: memory
      0000000000000000-ffffffffffffffff (prio 0, i/o): system
        0000000000000000-0000000007ffffff (prio 0, ram): alias ram-below-4g @pc.ram 0000000000000000-0000000007ffffff
        00000000fec00000-00000000fec00fff (prio 0, i/o): ioapic

    address-space: e1000e
      0000000000000000-ffffffffffffffff (prio 0, i/o): bus master container
        0000000000000000-ffffffffffffffff (prio 0, i/o): alias bus master @system 0000000000000000-ffffffffffffffff

    address-space: nvme
      0000000000000000-ffffffffffffffff (prio 0, i/o): bus master container
    {nvme_child}
    address-space: virtio-net-pci
      0000000000000000-ffffffffffffffff (prio 0, i/o): bus master container
    {virtio_child}
    memory-region: pc.ram
      0000000000000000-0000000007ffffff (prio 0, ram): pc.ram

    memory-region: system
      0000000000000000-ffffffffffffffff (prio 0, i/o): system
        0000000000000000-0000000007ffffff (prio 0, ram): alias ram-below-4g @pc.ram 0000000000000000-0000000007ffffff
        00000000fec00000-00000000fec00fff (prio 0, i/o): ioapic
    """  # noqa: E501

DISABLED_BUS_MASTER = (
    "    0000000000000000-ffffffffffffffff (prio 0, i/o): alias bus master @system "
    "0000000000000000-ffffffffffffffff [disabled]\n"
)

EXPECTED_BUS_MASTER_FLAT = """\
    FlatView #0
     AS "nvme", root: bus master container
     AS "virtio-net-pci", root: bus master container
     Root memory region: (none)
      No rendered FlatView

    FlatView #1
     AS "memory", root: system
     AS "cpu-memory-0", root: system
     AS "e1000e", root: bus master container
     Root memory region: system
      0000000000000000-0000000007ffffff (prio 0, ram): pc.ram
      00000000fec00000-00000000fec00fff (prio 0, i/o): ioapic
    """


@pytest.mark.parametrize(
    "form",
    ["-D", "hidden"],  # the disabled alias printed with [disabled], or hidden (5.1+)
)
def test_bus_master_views_enabled_share_system_disabled_share_the_empty_view(form):
    child = DISABLED_BUS_MASTER if form == "-D" else ""
    text = dedent(BUS_MASTER_TREE).format(nvme_child=child, virtio_child=child)
    tree = load_tree(text)
    assert tree.variant.disabled_marks is (form == "-D")
    result = flatten(tree)
    assert len(result.views) == 2
    system = view_of(result, "memory")
    assert sorted(system.names) == ["cpu-memory-0", "e1000e", "memory"]
    assert system.root == "system" and system.rendered
    assert rows(system) == [
        (0x0, 0x7FFFFFF, 0, "ram", "pc.ram", 0),
        (0xFEC00000, 0xFEC00FFF, 0, "i/o", "ioapic", 0),
    ]
    empty = view_of(result, "nvme")
    assert sorted(empty.names) == ["nvme", "virtio-net-pci"]
    assert empty.root is None and not empty.rendered and empty.ranges == ()
    assert format_flatview(empty)[1:] == [
        ' AS "nvme", root: bus master container',
        ' AS "virtio-net-pci", root: bus master container',
        " Root memory region: (none)",
        "  No rendered FlatView",
    ]
    # And the hand-derived -f text above is what check accepts, rules alone.
    report = api.check(tree, load_flat(EXPECTED_BUS_MASTER_FLAT), learn=False)
    assert report.ok, report.mismatches
    assert (report.views_compared, report.ranges_compared) == (2, 2)


# ----------------------------------------------------------------------------- 2^64 sizes


def test_size_exactly_2_64_prints_0_to_ffffffffffffffff():
    text = """\
        address-space: dma
          0000000000000000-ffffffffffffffff (prio 0, i/o): dma-root
            0000000000000000-ffffffffffffffff (prio 0, i/o): all-mmio
        """
    tree = load_tree(text)
    assert region(tree, "all-mmio").size == U64 == 2**64
    view = only_view(flatten(tree))
    assert view.root == "all-mmio"  # dma-root: single child at 0, skipped
    assert rows(view) == [(0, 2**64 - 1, 0, "i/o", "all-mmio", 0)]
    assert view.ranges[0].size == 2**64
    assert format_range(view.ranges[0]) == (
        "  0000000000000000-ffffffffffffffff (prio 0, i/o): all-mmio"
    )


def test_2_64_alias_with_offset_ends_where_its_target_ends():
    text = """\
        address-space: memory
          0000000000000000-ffffffffffffffff (prio 0, i/o): system
            0000000000000000-ffffffffffffffff (prio 0, i/o): alias up @big 0000000000001000-0000000000000fff

        memory-region: big
          0000000000000000-ffffffffffffffff (prio 0, i/o): big
        """  # noqa: E501
    # big's origin = 0 - 0x1000; it ends at 2^64 - 0x1000, the alias window at 2^64.
    assert flat_rows(text) == [(0x0, 2**64 - 0x1000 - 1, 0, "i/o", "big", 0x1000)]


# --------------------------------------------------------------------- disabled regions


def test_disabled_regions_and_their_subtrees_render_nothing():
    text = """\
        address-space: memory
          0000000000000000-ffffffffffffffff (prio 0, i/o): system
            0000000000000000-0000000000003fff (prio 0, ram): lowram
            0000000000001000-0000000000001fff (prio 1, i/o): off-mmio [disabled]
            0000000000002000-0000000000002fff (prio 1, i/o): off-box [disabled]
              0000000000002000-00000000000027ff (prio 0, i/o): inside
            0000000000003000-0000000000003fff (prio 1, ram): alias off-alias @lowram 0000000000000000-0000000000000fff [disabled]

        memory-region: lowram
          0000000000000000-0000000000003fff (prio 0, ram): lowram
        """  # noqa: E501
    result = flatten(load_tree(text))
    assert rows(only_view(result)) == [(0x0, 0x3FFF, 0, "ram", "lowram", 0)]
    rendered = {mr.name for mr, _ in load_tree(text).regions() if id(mr) in result.placements}
    assert "inside" not in rendered


def test_hidden_disabled_region_indentation_jump_renders_nothing():
    # devB-regs is printed two levels below system: its parent (a disabled region QEMU
    # >= 5.1 did not print) is hidden, so nothing of it renders and lowmmio shows.
    text = """\
        address-space: memory
          0000000000000000-ffffffffffffffff (prio 0, i/o): system
              0000000000000000-0000000000000fff (prio 0, i/o): devB-regs
            0000000000000000-000000000000ffff (prio -1, i/o): lowmmio
        """
    tree = load_tree(text)
    assert tree.variant.hidden_disabled
    assert flat_rows(text) == [(0x0, 0xFFFF, -1, "i/o", "lowmmio", 0)]


def test_hidden_disabled_root_gives_the_empty_view():
    text = """\
        address-space: memory
          0000000000000000-ffffffffffffffff (prio 0, i/o): system
            0000000000000000-0000000000000fff (prio 0, i/o): regs

        address-space: gone
            0000000000000000-0000000000000fff (prio 0, i/o): child
        """
    result = flatten(load_tree(text))
    gone = view_of(result, "gone")
    assert gone.root is None and not gone.rendered and gone.ranges == ()
    assert rows(view_of(result, "memory")) == [(0x0, 0xFFF, 0, "i/o", "regs", 0)]


# --------------------------------------------------------------------------- seed 003


def _seed003() -> tuple[str, list]:
    found = sorted(SEEDS.glob("003_*.txt"))
    if not found:
        pytest.fail(f"seed 003 not found under {SEEDS}")
    text = found[0].read_text(encoding="utf-8")
    return text, read_dumps(text, str(found[0]))


def _line_of(text: str, needle: str) -> int:
    for no, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return no
    raise AssertionError(f"{needle!r} not in seed 003")


def _first_after(dumps: list, kind: type, line: int):
    return next(d for d in dumps if isinstance(d, kind) and d.line > line)


@pytest.fixture(scope="module")
def seed003():
    text, dumps = _seed003()
    t1, t3, t4 = (_line_of(text, f"Test #{n}:") for n in (1, 3, 4))
    return {
        "off-flat": _first_after(dumps, FlatDump, t1),
        "bar1-flat": _first_after(dumps, FlatDump, t3),
        "bar1-tree": _first_after(dumps, MtreeDump, t3),
        "bar5-flat": _first_after(dumps, FlatDump, t4),
        "bar5-tree": _first_after(dumps, MtreeDump, t4),
    }


def _pci_part(flat: FlatDump, tree: MtreeDump) -> list:
    """The ranges of QEMU's flat view that come from the PHB window the tree shows."""
    [view] = flat.views
    names = {mr.name for mr, _ in tree.regions()}
    assert {r.name for r in view.ranges} - names == {"ppc_spapr.ram"}
    return [r for r in view.ranges if r.name in names]


def test_seed003_bar1_tree_reproduces_the_bar1_flat_view(seed003):
    tree, flat = seed003["bar1-tree"], seed003["bar1-flat"]
    assert [s.name for s in tree.sections] == ["pci@800000020000000.mmio"]
    result = flatten(tree)
    view = only_view(result)
    # The 64-bit window maps PCI addresses 1:1: compare by absolute address.
    expected = _pci_part(flat, tree)
    assert [range_key(r) for r in view.ranges] == [range_key(r) for r in expected]
    assert len(expected) == 4
    # msix-table and BAR 1 do not overlap here (BAR 1 is 64K, the table at 64K).
    assert result.ambiguities == ()


def test_seed003_bar5_tree_reproduces_the_bar5_flat_view_relative_to_each_bar(seed003):
    tree, flat = seed003["bar5-tree"], seed003["bar5-flat"]
    view = only_view(flatten(tree))
    qemu = _pci_part(flat, tree)
    bars = [mr for mr, _ in tree.regions() if re.search(r" base BAR \d$", mr.name)]
    assert sorted(b.name[-1] for b in bars) == ["1", "3", "5"]
    seen = 0
    for bar in bars:
        # The 32-bit window (PCI 0x80000000) appears at 0x200080000000: the PHB's alias
        # places PCI address 0 at 0x200000000000 (spec §6.3); the 64-bit one is 1:1.
        shift = 0x200000000000 if bar.start < 1 << 32 else 0
        lo, hi = bar.start, bar.start + bar.size

        def rel(ranges, base, size):
            return sorted(
                (r.start - base, r.size, r.priority, r.type, r.name, r.offset)
                for r in ranges
                if base <= r.start < base + size
            )

        mine = rel(view.ranges, lo, bar.size)
        theirs = rel(qemu, lo + shift, bar.size)
        assert mine == theirs, bar.name
        assert mine, bar.name
        seen += len(theirs)
        assert hi - lo == bar.size
    assert seen == len(qemu) == 4
    bar5 = [r for r in view.ranges if r.start < 1 << 32]
    assert [(r.start - 0x80000000, r.size, r.name, r.offset) for r in bar5] == [
        (0x0, 0x600, "msix-table", 0),
        (0x600, 0x10000 - 0x600, "0001:03:00.0 base BAR 5", 0x600),
    ]


OFF_TREE = """\
    memory-region: pci@800000020000000.mmio
      0000000000000000-ffffffffffffffff (prio 0, i/o): pci@800000020000000.mmio
        0000210000000000-000021000000ffff (prio 1, i/o): 0001:03:00.0 base BAR 1
          0000210000000000-000021000000ffff (prio 0, i/o): 0001:03:00.0 BAR 1
          000021000000e000-000021000000e5ff (prio 0, i/o): msix-table
          000021000000f000-000021000000f00f (prio 0, i/o): msix-pba [disabled]
        0000210000040000-000021000007ffff (prio 1, i/o): 0001:03:00.0 base BAR 3
          0000210000040000-000021000007ffff (prio 0, i/o): 0001:03:00.0 BAR 3
            0000210000040000-000021000007ffff (prio 0, ramd): 0001:03:00.0 BAR 3 mmaps[0]
    """


def test_msix_table_printed_after_bar_n_still_wins_inside_base_bar(seed003):
    # The seed's "off" test (x-msix-relocation=off): the 96-entry table (96 * 16 = 0x600
    # bytes) sits at 0xe000 of a 64K BAR 1.  msix_init adds it to `base BAR 1` after
    # `BAR 1` (docs/qemu-source-notes.md Q5), so it wins although BAR 1 prints first.
    tree = load_tree(OFF_TREE)
    result = flatten(tree)
    view = only_view(result)
    qemu = _pci_part(seed003["off-flat"], tree)
    assert [range_key(r) for r in view.ranges] == [range_key(r) for r in qemu]
    assert rows(view)[:3] == [
        (0x210000000000, 0x210000000000 + 0xE000 - 1, 0, "i/o", "0001:03:00.0 BAR 1", 0),
        (0x210000000000 + 0xE000, 0x210000000000 + 0xE000 + 0x600 - 1, 0, "i/o", "msix-table", 0),
        (0x210000000000 + 0xE600, 0x21000000FFFF, 0, "i/o", "0001:03:00.0 BAR 1", 0xE600),
    ]
    # ... and the dump cannot prove it: reported as an ambiguity with both outcomes.
    [amb] = result.ambiguities
    assert amb.kind == "equal-priority overlap"
    assert {m.name for m in amb.regions} == {"msix-table", "0001:03:00.0 BAR 1"}
    assert (amb.start, amb.end) == (0x21000000E000, 0x21000000E000 + 0x600)
    assert "'msix-table' wins" in amb.outcomes[0]
    assert "msix_init" in amb.outcomes[0]
    assert "'0001:03:00.0 BAR 1' wins" in amb.outcomes[1]
    assert "msix-table" in str(amb) and "0x21000000e000-0x21000000e5ff" in str(amb)


def test_guesses_are_listed_and_certain_facts_are_not(seed003):
    tree = load_tree(OFF_TREE)
    result = flatten(tree)
    by_name: dict[str, list] = {}
    for g in result.guesses:
        by_name.setdefault(g.region.name, []).append(g)
    # An i/o leaf is MMIO: a guess (memory_region_init_io), listed with its line.
    [table] = by_name["msix-table"]
    assert table.what == "terminates" and "i/o leaf" in table.rule
    assert table.region.line == 5
    assert str(table).startswith("line 5: 'msix-table' terminates:")
    # base BAR N terminates by a source rule: still a guess (the dump does not print it).
    assert by_name["0001:03:00.0 base BAR 1"][0].what == "terminates"
    assert by_name["pci@800000020000000.mmio"][0].what == "is a pure container"
    # ramd always terminates: certain, not listed.  The disabled msix-pba is never asked.
    assert "0001:03:00.0 BAR 3 mmaps[0]" not in by_name
    assert "msix-pba" not in by_name
    # Learning from QEMU's own flat view turns the msix-table guess into a fact.
    learned = api.flatten(tree, [seed003["off-flat"]])
    assert not [g for g in learned.guesses if g.region.name == "msix-table"]


def test_every_region_is_reported_at_most_once_per_decision():
    result = flatten(load_tree(SPEC_2_4_TREE))
    keys = [(id(g.region), g.what) for g in result.guesses]
    assert len(keys) == len(set(keys))
    assert {g.region.name for g in result.guesses} == {"A", "B", "C", "D", "E"}


# ------------------------------------------------- found with QEMU 7.2 as the oracle
# The trees below are excerpts of real `info mtree` output of QEMU 7.2.22 (Debian
# 1:7.2+dfsg-7+deb12u18+b3); the expected ranges are the lines QEMU's `info mtree -f`
# printed for the same machine.  Each machine's whole output is checked in under
# samples/qemu/ (scripts/make_qemu_samples.py), and each test below finds its expected
# lines there; tests/test_check.py flattens those samples in full.

QEMU_SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "qemu"


def qemu_lines(sample: str, name: str = "info-mtree-f.txt") -> list[str]:
    return (QEMU_SAMPLES / sample / name).read_text(encoding="utf-8").splitlines()


def as_flat_line(row: Row, shift: int = 0) -> str:
    """A row as QEMU's `info mtree -f` prints it (render_memory_region / mtree_print_flatview)."""
    start, end, prio, type_, name, offset = row
    at = f" @{offset:016x}" if offset else ""
    return f"  {start + shift:016x}-{end + shift:016x} (prio {prio}, {type_}): {name}{at}"


def assert_qemu_printed(sample: str, rows: list[Row], shift: int = 0) -> None:
    printed = set(qemu_lines(sample))
    assert [r for r in rows if as_flat_line(r, shift) not in printed] == []


def test_isa_bios_alias_of_a_ram_bios_is_not_readonly():
    # qemu-system-x86_64 -M isapc -S (also -M microvm): x86_bios_rom_init is called with
    # isapc_ram_fw=true, so neither pc.bios nor its isa-bios alias is set read-only
    # (hw/i386/x86.c: `if (!isapc_ram_fw) memory_region_set_readonly(isa_bios, true)`).
    text = """\
        address-space: memory
          0000000000000000-ffffffffffffffff (prio 0, i/o): system
            00000000000e0000-00000000000fffff (prio 1, ram): alias isa-bios @pc.bios 0000000000000000-000000000001ffff
            00000000fffe0000-00000000ffffffff (prio 0, ram): pc.bios

        memory-region: pc.bios
          00000000fffe0000-00000000ffffffff (prio 0, ram): pc.bios
        """  # noqa: E501
    # QEMU 7.2 -M isapc, info mtree -f:
    #   00000000000e0000-00000000000fffff (prio 0, ram): pc.bios
    #   00000000fffe0000-00000000ffffffff (prio 0, ram): pc.bios
    expected = [
        (0xE0000, 0xFFFFF, 0, "ram", "pc.bios", 0),
        (0xFFFE0000, 0xFFFFFFFF, 0, "ram", "pc.bios", 0),
    ]
    assert flat_rows(text) == expected
    assert_qemu_printed("x86_64-isapc", expected)
    tree = set(qemu_lines("x86_64-isapc", "info-mtree.txt"))
    assert {ln for ln in dedent(text).splitlines() if "(prio" in ln} <= tree
    # microvm: the same rule, its 64K BIOS at the top of 4G and below 1M (QEMU's -f)
    assert_qemu_printed(
        "x86_64-microvm",
        [
            (0xF0000, 0xFFFFF, 0, "ram", "pc.bios", 0),
            (0xFFFF0000, 0xFFFFFFFF, 0, "ram", "pc.bios", 0),
        ],
    )


SMP_TREE = """\
    address-space: cpu-memory-0
    address-space: cpu-memory-1
    address-space: memory
      0000000000000000-ffffffffffffffff (prio 0, i/o): system
        0000000000000000-0000000007ffffff (prio 0, ram): alias ram-below-4g @pc.ram 0000000000000000-0000000007ffffff
        00000000fec00000-00000000fec00fff (prio 0, i/o): ioapic

    address-space: cpu-smm-1
      0000000000000000-ffffffffffffffff (prio 0, i/o): memory
        0000000000000000-00000000ffffffff (prio 1, i/o): alias smram @smram 0000000000000000-00000000ffffffff
        0000000000000000-ffffffffffffffff (prio 0, i/o): alias memory @system 0000000000000000-ffffffffffffffff

    address-space: cpu-smm-0
      0000000000000000-ffffffffffffffff (prio 0, i/o): memory
        0000000000000000-00000000ffffffff (prio 1, i/o): alias smram @smram 0000000000000000-00000000ffffffff
        0000000000000000-ffffffffffffffff (prio 0, i/o): alias memory @system 0000000000000000-ffffffffffffffff

    memory-region: smram
      0000000000000000-00000000ffffffff (prio 0, i/o): smram

    memory-region: system
      0000000000000000-ffffffffffffffff (prio 0, i/o): system
        0000000000000000-0000000007ffffff (prio 0, ram): alias ram-below-4g @pc.ram 0000000000000000-0000000007ffffff
        00000000fec00000-00000000fec00fff (prio 0, i/o): ioapic

    memory-region: pc.ram
      0000000000000000-0000000007ffffff (prio 0, ram): pc.ram
    """  # noqa: E501


def test_identical_trees_of_two_roots_in_a_grouped_dump_are_two_flat_views():
    # qemu-system-x86_64 -M q35 -smp 2 -S (TCG): each CPU's cpu-smm-N address space has
    # its own root container `memory`.  Since QEMU 7.0 tree groups are keyed by the root
    # pointer (the address-space lines grouped under `system` show the dump is >= 7.0),
    # so two groups are two MemoryRegions even when their text is identical, and QEMU's
    # -f prints one FlatView per cpu-smm-N:
    #   FlatView #0 / AS "cpu-smm-0", root: memory / Root memory region: memory / ...
    #   FlatView #3 / AS "cpu-smm-1", root: memory / Root memory region: memory / ...
    tree = load_tree(SMP_TREE)
    assert tree.variant.grouped
    result = flatten(tree)
    assert len(result.views) == 3, [v.names for v in result.views]
    for name in ("cpu-smm-0", "cpu-smm-1"):
        view = view_of(result, name)
        assert view.names == (name,)
        assert view.root == "memory"
        assert rows(view) == [
            (0x0, 0x7FFFFFF, 0, "ram", "pc.ram", 0),
            (0xFEC00000, 0xFEC00FFF, 0, "i/o", "ioapic", 0),
        ]
    # QEMU's own -f of that machine (samples/qemu/x86_64-q35-smp2): two FlatViews, one
    # per cpu-smm-N, each alone under its header, both rooted at `memory`.
    headers = "\n".join(qemu_lines("x86_64-q35-smp2")).split("FlatView #")[1:]
    for name in ("cpu-smm-0", "cpu-smm-1"):
        (view_text,) = [h for h in headers if f' AS "{name}",' in h]
        assert f' AS "{name}", root: memory' in view_text
        assert view_text.count(" AS ") == 1


VGA_MMIO_TREE = """\
    address-space: memory
      0000000000000000-ffffffffffffffff (prio 0, i/o): system
        0000000000000000-ffffffffffffffff (prio -1, i/o): pci
          00000000fd000000-00000000fdffffff (prio 1, ram): vga.vram
          00000000febf0000-00000000febf0fff (prio 1, i/o): vga.mmio
            00000000febf0000-00000000febf017f (prio 0, i/o): edid
            00000000febf0400-00000000febf041f (prio 0, i/o): vga ioports remapped
            00000000febf0500-00000000febf0515 (prio 0, i/o): bochs dispi interface
            00000000febf0600-00000000febf0607 (prio 0, i/o): qemu extended regs
        00000000fec00000-00000000fec00fff (prio 0, i/o): ioapic
    """


def test_vga_mmio_bar_terminates_and_fills_its_holes():
    # qemu-system-x86_64 -M q35 -device VGA, BARs assigned by SeaBIOS, then stopped.
    # hw/display/vga-pci.c: memory_region_init_io(&d->mmio, ..., &unassigned_io_ops,
    # NULL, "vga.mmio", PCI_VGA_MMIO_SIZE): an i/o parent that terminates, which no
    # rule of flatview.terminates knows (learning from -f hides it).  QEMU's -f:
    expected = [
        (0xFD000000, 0xFDFFFFFF, 1, "ram", "vga.vram", 0),
        (0xFEBF0000, 0xFEBF017F, 0, "i/o", "edid", 0),
        (0xFEBF0180, 0xFEBF03FF, 1, "i/o", "vga.mmio", 0x180),
        (0xFEBF0400, 0xFEBF041F, 0, "i/o", "vga ioports remapped", 0),
        (0xFEBF0420, 0xFEBF04FF, 1, "i/o", "vga.mmio", 0x420),
        (0xFEBF0500, 0xFEBF0515, 0, "i/o", "bochs dispi interface", 0),
        (0xFEBF0516, 0xFEBF05FF, 1, "i/o", "vga.mmio", 0x516),
        (0xFEBF0600, 0xFEBF0607, 0, "i/o", "qemu extended regs", 0),
        (0xFEBF0608, 0xFEBF0FFF, 1, "i/o", "vga.mmio", 0x608),
        (0xFEC00000, 0xFEC00FFF, 0, "i/o", "ioapic", 0),
    ]
    assert flat_rows(VGA_MMIO_TREE) == expected
    # samples/qemu/x86_64-q35-vga-megasas: the same BAR at the address SeaBIOS gave it
    (base,) = {
        int(ln.split("-")[0], 16)
        for ln in qemu_lines("x86_64-q35-vga-megasas", "info-mtree.txt")
        if ln.endswith("(prio 1, i/o): vga.mmio")
    }
    in_bar = [r for r in expected if 0xFEBF0000 <= r[0] <= 0xFEBF0FFF]
    assert_qemu_printed("x86_64-q35-vga-megasas", in_bar, shift=base - 0xFEBF0000)


NESTED_BRIDGES_TREE = """\
    address-space: memory
      0000000000000000-ffffffffffffffff (prio 0, i/o): system
        0000000000000000-ffffffffffffffff (prio -1, i/o): pci
          0000000000000000-0000000000000000 (prio 1, i/o): alias pci_bridge_mem @pci_bridge_pci 0000000000000000-0000000000000000
        00000000fec00000-00000000fec00fff (prio 0, i/o): ioapic

    memory-region: pci_bridge_pci
      0000000000000000-ffffffffffffffff (prio 0, i/o): pci_bridge_pci
        0000000000000000-0000000000000000 (prio 1, i/o): alias pci_bridge_mem @pci_bridge_pci 0000000000000000-0000000000000000

    memory-region: pci_bridge_pci
      0000000000000000-ffffffffffffffff (prio 0, i/o): pci_bridge_pci
    """  # noqa: E501


def test_nested_pci_bridges_read_and_flatten():
    # qemu-system-x86_64 -M q35 -S -device pcie-root-port,id=r1,chassis=5
    #   -device x3130-upstream,id=up,bus=r1 -device xio3130-downstream,id=dn,bus=up,chassis=6
    # Each bridge has its own `pci_bridge_pci`; the root port's one holds the
    # downstream port's `pci_bridge_mem` window, which points at the *other* section.
    # QEMU printed it, so it has no alias cycle; its -f shows (windows still empty):
    #   00000000fec00000-00000000fec00fff (prio 0, i/o): ioapic
    assert flat_rows(NESTED_BRIDGES_TREE) == [(0xFEC00000, 0xFEC00FFF, 0, "i/o", "ioapic", 0)]
    # samples/qemu/x86_64-q35-nested-bridges: QEMU printed three pci_bridge_pci sections
    # (root port, upstream, downstream) and the windows' aliases, yet no cycle.
    tree = qemu_lines("x86_64-q35-nested-bridges", "info-mtree.txt")
    assert tree.count("memory-region: pci_bridge_pci") == 3
    (real,) = api.parse_text("\n".join(tree), "nested")
    assert flatten(real).views
    assert_qemu_printed(
        "x86_64-q35-nested-bridges", [(0xFEC00000, 0xFEC00FFF, 0, "i/o", "ioapic", 0)]
    )


def test_device_mmio_bar_holding_its_msix_table_terminates():
    # qemu-system-x86_64 -M q35 -device megasas, BARs assigned by SeaBIOS, then stopped.
    # hw/scsi/megasas.c: memory_region_init_io(&s->mmio_io, ..., &megasas_mmio_ops, s,
    # "megasas-mmio", 0x4000), and msix_init puts msix-table / msix-pba inside it.
    text = """\
        address-space: memory
          0000000000000000-ffffffffffffffff (prio 0, i/o): system
            0000000000000000-ffffffffffffffff (prio -1, i/o): pci
              00000000febd0000-00000000febd3fff (prio 1, i/o): megasas-mmio
                00000000febd2000-00000000febd20ef (prio 0, i/o): msix-table
                00000000febd3800-00000000febd3807 (prio 0, i/o): msix-pba
              00000000febd4000-00000000febd7fff (prio 1, i/o): mptsas-mmio
        """
    # QEMU 7.2 info mtree -f of that machine:
    expected = [
        (0xFEBD0000, 0xFEBD1FFF, 1, "i/o", "megasas-mmio", 0),
        (0xFEBD2000, 0xFEBD20EF, 0, "i/o", "msix-table", 0),
        (0xFEBD20F0, 0xFEBD37FF, 1, "i/o", "megasas-mmio", 0x20F0),
        (0xFEBD3800, 0xFEBD3807, 0, "i/o", "msix-pba", 0),
        (0xFEBD3808, 0xFEBD3FFF, 1, "i/o", "megasas-mmio", 0x3808),
        (0xFEBD4000, 0xFEBD7FFF, 1, "i/o", "mptsas-mmio", 0),
    ]
    assert flat_rows(text) == expected
    # samples/qemu/x86_64-q35-vga-megasas (megasas without mptsas, same BAR address)
    assert_qemu_printed("x86_64-q35-vga-megasas", expected[:5])


# ------------------------------------------------- what the tree cannot show (spec §4 D, G)


def test_alias_onto_ram_is_reported_as_possibly_read_only():
    # memory_region_set_readonly on an alias is never printed: the alias `win` onto RAM
    # renders as ram, and the report names the alias and its range, 0x1000-0x1fff.
    text = """\
address-space: memory
  0000000000000000-ffffffffffffffff (prio 0, i/o): system
    0000000000001000-0000000000001fff (prio 0, ram): alias win @blk \
0000000000000000-0000000000000fff

memory-region: blk
  0000000000000000-000000000000ffff (prio 0, ram): blk

"""
    (dump,) = read_dumps(text, "t")
    result = flatten(dump)
    (amb,) = [a for a in result.ambiguities if a.kind == "read-only alias?"]
    assert ([r.name for r in amb.regions], amb.start, amb.end) == (["win"], 0x1000, 0x2000)
    assert any("rom" in o for o in amb.outcomes)


def test_children_of_a_hidden_disabled_region_are_reported():
    # QEMU >= 5.1 without -D: `devB-container` [disabled] is not printed, its child prints
    # two levels below `system` (spec §6.4 shape); nothing renders at 0x10000-0x10fff.
    text = """\
address-space: memory
  0000000000000000-ffffffffffffffff (prio 0, i/o): system
    0000000000000000-000000000000ffff (prio 1, i/o): devA
        0000000000010000-0000000000010fff (prio 0, i/o): devB-regs

"""
    (dump,) = read_dumps(text, "t")
    result = flatten(dump)
    (amb,) = [a for a in result.ambiguities if a.kind == "hidden disabled region"]
    assert [r.name for r in amb.regions] == ["devB-regs"]
    assert (amb.start, amb.end) == (0x10000, 0x10000 + 0x1000)
    assert [r.name for r in result.views[0].ranges] == ["devA"]


# ------------------------------------------ equal-priority overlaps the dump cannot order


def _io(name: str, addr: int, size: int, prio: int = 0) -> MemoryRegion:
    return MemoryRegion(name=name, addr=addr, start=addr, size=size, priority=prio, type="i/o")


def _container(*subs: MemoryRegion) -> MemoryRegion:
    return MemoryRegion(name="c", addr=0, start=0, size=1 << 20, priority=0, type="i/o",
                        subregions=subs)  # fmt: skip


def test_overlapping_siblings_are_listed_in_render_order_with_why():
    """Knowledge.overlaps: equal-priority siblings at different starts that overlap, the
    one rendered first (msix-table/pba: added last by msix_init; otherwise the higher,
    later-printed one) first.  Siblings at one address are print order: no overlap."""
    low, high = _io("low", 0x0, 0x2000), _io("high", 0x1000, 0x2000)
    table = _io("msix-table", 0x1800, 0x10)
    same_a, same_b = _io("a", 0x8000, 0x100), _io("b", 0x8000, 0x100)
    other_prio = _io("p1", 0x1000, 0x100, prio=1)
    c = _container(low, high, table, same_a, same_b, other_prio)
    know = Knowledge()
    # priority first; msix-table before its equal-priority siblings; then the higher
    # start first; a and b (one address) in print order
    assert [m.name for m in know.render_order(c)] == ["p1", "msix-table", "a", "b", "high", "low"]
    later = "printed later, at the higher address: QEMU 7.2 added it last on ppc mac99 and 40p"
    msix = "msix_init adds msix-table/msix-pba after the BAR's own regions"
    got = [(tuple(m.name for m in ms), why) for ms, why in know.overlaps(c)]
    assert got == [
        (("msix-table", "high"), msix),
        (("msix-table", "low"), msix),
        (("high", "low"), later),
    ]


def test_a_large_overlapping_cluster_is_one_overlap():
    """More than 64 overlapping pairs: one Overlap naming the whole cluster in render
    order; 12 siblings overlapping one another are 12 * 11 / 2 = 66 pairs, 11 are 55."""
    for n, expected_overlaps in ((11, 55), (12, 1)):
        subs = tuple(_io(f"r{i}", i * 0x10, 0x1000) for i in range(n))
        c = _container(*subs)
        know = Knowledge()
        order = know.render_order(c)
        overlaps = know.overlaps(c)
        assert len(overlaps) == expected_overlaps
        if n == 12:
            (members, why) = overlaps[0]
            assert members == order  # the higher start renders first: r11 ... r0
            assert [m.name for m in members] == [f"r{i}" for i in reversed(range(12))]
            assert why.startswith("printed later, at the higher address")
    # exactly 64 pairs are still listed one by one: r0 (0x0-0x9f) overlaps r1..r9 only,
    # 66 - 2 = 64 pairs
    subs = (_io("r0", 0, 0xA0), *(_io(f"r{i}", i * 0x10, 0x1000) for i in range(1, 12)))
    c = _container(*subs)
    know = Knowledge()
    know.render_order(c)
    assert len(know.overlaps(c)) == 64
    # 66 pairs over two addresses: still one overlap (different starts exist)
    two = _container(*(_io(f"t{i}", 0x10 * (i % 2), 0x1000) for i in range(12)))
    know = Knowledge()
    know.render_order(two)
    assert len(know.overlaps(two)) == 1
    # a cluster of 12 at one address: print order, nothing to list
    same = _container(*(_io(f"s{i}", 0x100, 0x100) for i in range(12)))
    know = Knowledge()
    know.render_order(same)
    assert know.overlaps(same) == ()


# ------------------------------------------------ what a paste leaves undecided, in words


def test_an_alias_whose_target_was_not_pasted_is_undecided():
    # the window 0x1000-0x1fff shows blk from offset 0x800 (the alias line says so), but
    # blk's memory-region section is not in the paste
    text = """\
address-space: memory
  0000000000000000-ffffffffffffffff (prio 0, i/o): system
    0000000000001000-0000000000001fff (prio 0, ram): alias win @blk \
0000000000000800-00000000000017ff
"""
    (dump,) = read_dumps(text, "t")
    (amb,) = flatten(dump).ambiguities
    assert (amb.kind, [r.name for r in amb.regions], amb.start, amb.end) == (
        "alias target not pasted",
        ["win"],
        0x1000,
        0x2000,
    )
    assert str(amb) == (
        "alias target not pasted: 'win' (line 3) over 0x1000-0x1fff: "
        "the guest sees 'blk' from offset 0x800, whose section was not pasted | "
        "left out of the view above: paste 'info mtree' whole to decide"
    )


def test_rows_pasted_without_their_parent_are_undecided_between_them():
    # tree rows (one is nested: not a flat view) whose parent line was not pasted
    text = """\
0000000000001000-0000000000001fff (prio 0, i/o): a
  0000000000001000-00000000000017ff (prio 0, i/o): a-regs
0000000000003000-0000000000003fff (prio 0, i/o): b
"""
    (dump,) = read_dumps(text, "t")
    (amb,) = [a for a in flatten(dump).ambiguities if a.kind == "parent not pasted"]
    assert ([r.name for r in amb.regions], amb.start, amb.end) == (["a", "b"], 0x1000, 0x4000)
    assert str(amb) == (
        "parent not pasted: 'a' (line 1), 'b' (line 3) over 0x1000-0x3fff: "
        "nothing between the pasted rows: their parent is a pure container | "
        "the parent's own MMIO or RAM between them: paste its line to decide"
    )


def test_a_hidden_region_and_a_writable_alias_are_reported_once_per_dump():
    """devB-regs (line 5) prints two levels below devA: its disabled parent was hidden
    (QEMU >= 5.1 without -D); it sits at 0x110000 (devA's 0x100000 + 0x10000).  `win`
    aliases RAM.  A second address space reaches all of system again through an alias:
    each is still reported once."""
    text = """\
address-space: memory
  0000000000000000-ffffffffffffffff (prio 0, i/o): system
    0000000000001000-0000000000001fff (prio 0, ram): alias win @blk \
0000000000000000-0000000000000fff
    0000000000100000-000000000011ffff (prio 1, i/o): devA
        0000000000110000-0000000000110fff (prio 0, i/o): devB-regs

address-space: bus
  0000000000000000-ffffffffffffffff (prio 0, i/o): bus master container
    0000000000000000-ffffffffffffffff (prio 0, i/o): alias bus master @system \
0000000000000000-ffffffffffffffff

memory-region: blk
  0000000000000000-000000000000ffff (prio 0, ram): blk

"""
    (dump,) = read_dumps(text, "t")
    result = flatten(dump)
    assert len(result.views) == 2
    hidden = [a for a in result.ambiguities if a.kind == "hidden disabled region"]
    ro = [a for a in result.ambiguities if a.kind == "read-only alias?"]
    assert [(a.start, a.end, [r.name for r in a.regions]) for a in hidden] == [
        (0x110000, 0x111000, ["devB-regs"])
    ]
    assert hidden[0].outcomes == (
        "nothing renders: these subregions belong to a disabled region that 'info mtree' "
        "hid (QEMU >= 5.1 without -D)",
        "take 'info mtree -D' to see the region and confirm",
    )
    assert [(a.start, a.end, [r.name for r in a.regions]) for a in ro] == [
        (0x1000, 0x2000, ["win"])
    ]


def test_equal_priority_overlaps_in_words_pairs_clipped_and_a_cluster():
    """Two overlapping siblings of `dev` (0-0x17ff): reported over their overlap clipped
    to dev, 0x1000-0x17ff.  Twelve MMIO siblings overlapping one another (66 pairs, more
    than 64): one report over the cluster's span, 0x0-0x10af, naming all twelve."""
    rows = "\n".join(
        f"    {i * 0x10:016x}-{i * 0x10 + 0xFFF:016x} (prio 0, i/o): r{i}" for i in range(12)
    )
    text = f"""\
address-space: memory
  0000000000000000-ffffffffffffffff (prio 0, i/o): system
{rows}
    0000000000100000-00000000001017ff (prio 1, i/o): dev
      0000000000100000-0000000000101fff (prio 0, i/o): a
      0000000000101000-0000000000102fff (prio 0, i/o): b
"""
    (dump,) = read_dumps(text, "t")
    ambs = [a for a in flatten(dump).ambiguities if a.kind == "equal-priority overlap"]
    later = "printed later, at the higher address: QEMU 7.2 added it last on ppc mac99 and 40p"
    by_size = sorted(ambs, key=lambda a: len(a.regions))
    pair, cluster = by_size
    assert ([r.name for r in pair.regions], pair.start, pair.end) == (
        ["b", "a"],
        0x101000,
        0x101800,
    )
    assert pair.outcomes == (f"'b' wins ({later})", "'a' wins if it was added to 'dev' last")
    assert [r.name for r in cluster.regions] == [f"r{i}" for i in reversed(range(12))]
    assert (cluster.start, cluster.end) == (0, 0xB0 + 0x1000)
    assert cluster.outcomes == (
        f"'r11' wins where it overlaps ({later}), then the others in printed order",
        "where two of these 12 siblings overlap, the one added to 'system' last wins",
    )


def test_a_read_only_range_prints_rom_or_the_old_letters():
    """_readonly_type: `rom`, except QEMU <= 2.8's letters (readable, writable), where a
    read-only range is readable and not writable."""
    from flatview.flatten import _readonly_type

    assert [_readonly_type(t) for t in ("RW", "R-", "-W", "ram", "ramd", "RX", "W")] == [
        "R-",
        "R-",
        "--",
        "rom",
        "rom",
        "rom",
        "rom",
    ]


def test_computed_ranges_carry_the_owners_qemu_prints():
    """`info mtree -o` (samples/qemu/x86_64-q35): the recomputed memory view names the
    same owner on every range as QEMU's own `info mtree -f -o` of that machine."""
    folder = Path(__file__).resolve().parents[1] / "samples" / "qemu" / "x86_64-q35"
    (tree,) = api.split_kinds(api.load(str(folder / "info-mtree-o.txt")))[0]
    (flat,) = api.split_kinds(api.load(str(folder / "info-mtree-f-o.txt")))[1]

    def owners(views):
        (view,) = [v for v in views if "memory" in v.names]
        return [(r.start, r.size, r.owner.text if r.owner else None) for r in view.ranges]

    mine, qemu = owners(flatten(tree).views), owners(flat.views)
    assert mine == qemu and any(o for _s, _n, o in qemu)


def test_a_region_reached_through_two_aliases_is_reported_once():
    """`box` is mapped twice, w1 at 0 and w2 at 0x100000 (w2, the higher, renders first):
    its alias onto RAM (`win`) and the child of its hidden disabled region (printed two
    levels below `dev`) are each reported once, over w2's window."""
    text = """\
address-space: memory
  0000000000000000-ffffffffffffffff (prio 0, i/o): system
    0000000000000000-000000000000ffff (prio 0, i/o): alias w1 @box \
0000000000000000-000000000000ffff
    0000000000100000-000000000010ffff (prio 0, i/o): alias w2 @box \
0000000000000000-000000000000ffff

memory-region: box
  0000000000000000-000000000000ffff (prio 0, i/o): box
    0000000000001000-0000000000001fff (prio 0, ram): alias win @ram \
0000000000000000-0000000000000fff
    0000000000002000-0000000000002fff (prio 0, i/o): dev
        0000000000004000-0000000000004fff (prio 0, i/o): hidden-child

memory-region: ram
  0000000000000000-000000000000ffff (prio 0, ram): ram

"""
    (dump,) = read_dumps(text, "t")
    got = sorted((a.kind, a.start, a.end) for a in flatten(dump).ambiguities)
    assert got == [
        ("hidden disabled region", 0x104000, 0x105000),
        ("read-only alias?", 0x101000, 0x102000),
    ]


def test_guesses_name_what_the_dump_does_not_print():
    """FlattenResult.guesses: a read-only alias (`pam-rom`, hw/pci-host/pam.c) and a
    writable `isa-bios` onto RAM (isapc) are noted with their rule; memslot aliases
    (tests/fixtures/versions/virtio-mem-memslots.txt) are noted unmergeable only when
    neither --qemu-version nor the text settles it."""
    text = """\
address-space: memory
  0000000000000000-ffffffffffffffff (prio 0, i/o): system
    00000000000c0000-00000000000c3fff (prio 1, ram): alias pam-rom @pc.ram \
00000000000c0000-00000000000c3fff
    00000000000e0000-00000000000fffff (prio 1, ram): alias isa-bios @pc.ram \
00000000000e0000-00000000000fffff

memory-region: pc.ram
  0000000000000000-0000000007ffffff (prio 0, ram): pc.ram

"""
    (dump,) = read_dumps(text, "t")
    got = {(g.region.name, g.what, g.rule) for g in flatten(dump).guesses}
    assert ("pam-rom", "is read-only", READONLY_ALIASES["pam-rom"]) in got
    assert ("isa-bios", "is writable", READONLY_ALIASES["isa-bios"]) in got
    path = Path(__file__).resolve().parent / "fixtures" / "versions" / "virtio-mem-memslots.txt"
    (tree,) = api.split_kinds(api.load(str(path)))[0]
    slots = sorted(
        (g.region.name, g.what)
        for g in flatten(tree, Knowledge()).guesses
        if g.region.name.startswith("memslot-")
    )
    assert slots == [("memslot-0", "is unmergeable"), ("memslot-1", "is unmergeable")]
    told = flatten(tree, Knowledge(qemu_version=(8, 1))).guesses
    assert not [g for g in told if g.region.name.startswith("memslot-")]
