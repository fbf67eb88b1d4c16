"""flatview.parse: one test per format variant of the spec's summary table (section 0), with
the example lines quoted in /work/shared/spec/qemu-memory-model.md sections 0, 3.2 and 3.4
(each marked "spec" below; the spec marks which of them are real QEMU output), lines of the
real QEMU 7.2 samples (marked "sample"), and region names QEMU prints verbatim.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from flatview.api import parse_text
from flatview.errors import SourceError, SourceLocation
from flatview.model import FlatDump, MtreeDump, walk
from flatview.parse import (
    DispatchLine,
    FlatViewASLine,
    FlatViewRootLine,
    Heading,
    NoRenderedLine,
    Owner,
    RangeLine,
    parse_line,
)

LOC = SourceLocation("t.txt", 7)
U64 = 1 << 64


def p(text: str):
    return parse_line(text, LOC)


def typed(rec) -> tuple:
    """A line record with its type: records are NamedTuples, and two kinds of one field
    each (a root line and a no-rendered line of the same name) compare equal as tuples."""
    return type(rec), rec


def _fields(rec: RangeLine, *names: str) -> tuple:
    return tuple(getattr(rec, n) for n in names)


# --------------------------------------------------------------------------- T0


@pytest.mark.parametrize(
    ("line", "letters", "name"),
    [
        # spec 3.2, T0 examples
        ("  0000000000000000-ffffffffffffffff (prio 0, RW): system", "RW", "system"),
        ("    00000000fffc0000-00000000ffffffff (prio 0, R-): pc.bios", "R-", "pc.bios"),
        # spec 3.2: ROM devices in MMIO mode print -W; '--' is the fourth combination
        ("    00000000fffc0000-00000000ffffffff (prio 0, -W): flash", "-W", "flash"),
        ("    00000000fffc0000-00000000ffffffff (prio 0, --): flash", "--", "flash"),
    ],
)
def test_t0_type_letters(line, letters, name):
    rec = p(line)
    assert isinstance(rec, RangeLine)
    assert (rec.type, rec.name, rec.nonvolatile, rec.is_alias) == (letters, name, False, False)


def test_t0_alias_disabled():
    # spec 3.2, T0
    rec = p(
        "    00000000000c0000-00000000000c3fff (prio 1, R-): alias pam-rom @pc.ram "
        "00000000000c0000-00000000000c3fff [disabled]"
    )
    assert _fields(
        rec,
        "indent",
        "start",
        "end",
        "priority",
        "type",
        "name",
        "alias_target",
        "alias_start",
        "alias_end",
        "disabled",
    ) == (4, 0xC0000, 0xC3FFF, 1, "R-", "pam-rom", "pc.ram", 0xC0000, 0xC3FFF, True)


def test_t0_dump_variant():
    text = (
        "address-space: memory\n"
        "  0000000000000000-ffffffffffffffff (prio 0, RW): system\n"
        "    00000000fffc0000-00000000ffffffff (prio 0, R-): pc.bios\n"
    )
    (dump,) = parse_text(text)
    assert isinstance(dump, MtreeDump) and dump.variant.type_letters


# --------------------------------------------------------------------------- T1, T1n, T2


def test_t1_alias_typed_io():
    # spec section 0 / 3.2, T1
    rec = p(
        "    0000000000000000-0000000007ffffff (prio 0, i/o): alias ram-below-4g @pc.ram "
        "0000000000000000-0000000007ffffff"
    )
    assert _fields(rec, "type", "name", "alias_target", "alias_start", "alias_end", "size") == (
        "i/o",
        "ram-below-4g",
        "pc.ram",
        0,
        0x7FFFFFF,
        0x8000000,
    )


@pytest.mark.parametrize(
    ("line", "type_", "name", "disabled"),
    [
        # spec 3.2, T1 (real, seed-003)
        (
            "    0000210000040000-000021000007ffff (prio 0, ramd): 0001:03:00.0 BAR 3 mmaps[0]",
            "ramd",
            "0001:03:00.0 BAR 3 mmaps[0]",
            False,
        ),
        (
            "    0000210000010600-000021000001060f (prio 0, i/o): msix-pba [disabled]",
            "i/o",
            "msix-pba",
            True,
        ),
        # sample: q35-base/info-mtree.txt
        ("      00000000000c0000-00000000000dffff (prio 1, rom): pc.rom", "rom", "pc.rom", False),
        # constructed: a ROM device in ROMD mode (spec 3.2, T1+ type words)
        ("  0000000000000000-ffffffffffffffff (prio 0, romd): flash0", "romd", "flash0", False),
    ],
)
def test_t1_type_words(line, type_, name, disabled):
    rec = p(line)
    assert (rec.type, rec.name, rec.disabled, rec.nonvolatile) == (type_, name, disabled, False)


def test_t1n_nonvolatile_prefix():
    # spec 3.2, T1n
    rec = p(
        "    0000000140000000-000000017fffffff (prio 0, nv-i/o): alias nvdimm-memory @mem1 "
        "0000000000000000-000000003fffffff"
    )
    assert _fields(rec, "type", "nonvolatile", "name", "alias_target", "start", "size") == (
        "i/o",
        True,
        "nvdimm-memory",
        "mem1",
        0x140000000,
        0x40000000,
    )
    assert p("  0000000000000000-000000003fffffff (prio 0, nv-ram): mem1").nonvolatile


def test_t2_alias_typed_like_its_target():
    # spec section 0 / 3.2, T2 (real, 5.1 commit message)
    rec = p(
        "    0000000000000000-0000000007ffffff (prio 0, ram): alias ram-below-4g @pc.ram "
        "0000000000000000-0000000007ffffff"
    )
    assert (rec.type, rec.name, rec.alias_target) == ("ram", "ram-below-4g", "pc.ram")


# --------------------------------------------------------------------------- T3


def test_t3_overflow_before_the_indentation():
    # spec 3.2 / 6.5 (real, 2023 bcm2838 review): size 2^64 placed at 0x600000000
    rec = p(
        "[DETECTED OVERFLOW!]     0000000600000000-00000005ffffffff (prio 0, i/o): "
        "bcm2838_pcie_mmio_window"
    )
    assert _fields(rec, "overflow", "indent", "start", "end", "name") == (
        "before",
        4,
        0x600000000,
        0x5FFFFFFFF,
        "bcm2838_pcie_mmio_window",
    )
    # (0x5ffffffff - 0x600000000 + 1) mod 2^64 = 0, meaning 2^64 (spec 3.1 / 6.5)
    assert rec.size == U64


def test_t3_overflow_after_the_indentation_up_to_5_0():
    # spec 3.2: "after the indentation up to 5.0" (constructed with the same line)
    rec = p(
        "    [DETECTED OVERFLOW!] 0000000600000000-00000005ffffffff (prio 0, i/o): "
        "bcm2838_pcie_mmio_window"
    )
    assert (rec.overflow, rec.indent, rec.size) == ("after", 4, U64)


def test_t3_overflow_in_a_tree():
    text = (
        "address-space: memory\n"
        "  0000000000000000-ffffffffffffffff (prio 0, i/o): system\n"
        "[DETECTED OVERFLOW!]     0000000600000000-00000005ffffffff (prio 0, i/o): "
        "bcm2838_pcie_mmio_window\n"
    )
    (dump,) = parse_text(text)
    system = dump.address_spaces[0].root
    (window,) = system.subregions
    assert (window.overflow, window.start, window.size, window.addr) == (
        "before",
        0x600000000,
        U64,
        0x600000000,
    )
    assert dump.variant.overflow_before_indent is True


def test_size_of_a_one_address_range():
    # spec 3.1: X-X is size 1 or 0; the text cannot tell, 1 is returned
    assert p("  0000000000000060-0000000000000060 (prio 0, i/o): i8042-data").size == 1


# --------------------------------------------------------------------------- T4, T5


def test_t4_grouped_address_space_headings():
    # spec 3.2, T4 (real, 7.0 commit message)
    text = (
        "address-space: cpu-memory-0\n"
        "address-space: cpu-memory-1\n"
        "address-space: memory\n"
        "  0000000000000000-ffffffffffffffff (prio 0, i/o): system\n"
    )
    assert p("address-space: cpu-memory-0") == Heading("address-space", "cpu-memory-0")
    (dump,) = parse_text(text)
    (group,) = dump.address_spaces
    assert group.names == ("cpu-memory-0", "cpu-memory-1", "memory")
    assert group.root.name == "system"
    assert dump.variant.grouped


def test_t5_container_type():
    # spec 3.2, T5
    rec = p("  0000000000000000-ffffffffffffffff (prio 0, container): system")
    assert (rec.type, rec.name) == ("container", "system")
    (dump,) = parse_text(
        "address-space: I/O\n  0000000000000000-000000000000ffff (prio 0, container): io\n"
    )
    assert dump.variant.container_type


# --------------------------------------------------------------------------- F1, F2


def test_f1_old_flat_heading_and_no_rendered():
    # spec 3.4, F1 (real)
    assert p("address-space (flat view): KVM-SMRAM") == Heading("flat-address-space", "KVM-SMRAM")
    assert typed(p("  No rendered FlatView for address space 'X'")) == typed(NoRenderedLine("X"))
    rec = p("  0000000000000000-00000000000bffff (prio 0, ram): pc.ram")
    assert (rec.indent, rec.start, rec.end, rec.name, rec.offset) == (2, 0, 0xBFFFF, "pc.ram", None)


def test_f1_dump():
    text = (
        "address-space (flat view): KVM-SMRAM\n"
        "  0000000000000000-00000000000bffff (prio 0, ram): pc.ram\n"
        "\n"
        "address-space (flat view): I/O\n"
        "  No rendered FlatView for address space 'I/O'\n"
    )
    (dump,) = parse_text(text)
    assert isinstance(dump, FlatDump) and dump.variant.old_flat_format
    assert [(v.names, v.rendered, len(v.ranges)) for v in dump.views] == [
        (("KVM-SMRAM",), True, 1),
        (("I/O",), False, 0),
    ]


def test_f2_offset_and_rom():
    # spec 3.4, F2 (real)
    rec = p("  00000000000cd000-00000000000ebfff (prio 0, rom): pc.ram @00000000000cd000")
    assert _fields(rec, "type", "name", "offset", "start", "size") == (
        "rom",
        "pc.ram",
        0xCD000,
        0xCD000,
        0x1F000,
    )


# --------------------------------------------------------------------------- F3, F3e


def test_f3_headings():
    # spec 3.4, F3 (real, seed)
    assert p("FlatView #1") == Heading("flatview", "1")
    assert p(' AS "memory", root: system') == FlatViewASLine("memory", "system", None)
    assert p(' AS "cpu-memory", root: system') == FlatViewASLine("cpu-memory", "system", None)
    assert typed(p(" Root memory region: system")) == typed(FlatViewRootLine("system"))


def test_f3_as_root_alias():
    # spec 3.4 format: ' AS "<as name>", root: <root name>[, alias <alias name>]'
    assert p(' AS "cpu-smm-0", root: memory, alias smram') == FlatViewASLine(
        "cpu-smm-0", "memory", "smram"
    )


def test_f3_range_with_offset():
    # spec 3.4, F3 (real, seed, unwrapped)
    rec = p(
        "  0000210000010600-000021000001ffff (prio 1, i/o): 0001:03:00.0 base BAR 1 "
        "@0000000000010600"
    )
    assert _fields(rec, "priority", "name", "offset") == (1, "0001:03:00.0 base BAR 1", 0x10600)


def test_f3e_empty_view():
    # spec 3.4 (real, loongarch report)
    lines = [
        "FlatView #0",
        ' AS "virtio-net-pci", root: bus master container',
        " Root memory region: (none)",
        "  No rendered FlatView",
    ]
    assert [typed(p(x)) for x in lines] == [
        typed(Heading("flatview", "0")),
        typed(FlatViewASLine("virtio-net-pci", "bus master container", None)),
        typed(FlatViewRootLine(None)),
        typed(NoRenderedLine(None)),
    ]
    (dump,) = parse_text("\n".join(lines) + "\n")
    (view,) = dump.views
    assert (view.number, view.names, view.root, view.rendered, view.ranges) == (
        0,
        ("virtio-net-pci",),
        None,
        False,
        (),
    )


# --------------------------------------------------------------------------- O


@pytest.mark.parametrize(
    ("line", "name", "owner"),
    [
        # spec 3.4, O
        (
            "  00000000fed00000-00000000fed003ff (prio 0, i/o): hpet "
            "owner:{dev path=/machine/unattached/device[9]}",
            "hpet",
            Owner(
                " owner:{dev path=/machine/unattached/device[9]}",
                "dev path=/machine/unattached/device[9]",
            ),
        ),
        # spec section 0, O
        (
            "  0000000000000000-0000000007ffffff (prio 0, ram): pc.ram "
            "owner:{obj path=/objects/pc.ram}",
            "pc.ram",
            Owner(" owner:{obj path=/objects/pc.ram}", "obj path=/objects/pc.ram"),
        ),
        # sample: q35-base/info-mtree-o.txt
        (
            "      00000000fde00000-00000000fdffffff (prio 1, i/o): alias pci_bridge_mem "
            "@pci_bridge_pci 00000000fde00000-00000000fdffffff owner:{dev id=rp3}",
            "pci_bridge_mem",
            Owner(" owner:{dev id=rp3}", "dev id=rp3"),
        ),
        (
            "  0000000000000000-ffffffffffffffff (prio 0, i/o): system "
            "parent:{obj path=/machine/unattached}",
            "system",
            Owner(" parent:{obj path=/machine/unattached}", None, "obj path=/machine/unattached"),
        ),
        # spec 3.5: owner and a different QOM parent; neither (orphan)
        (
            "  0000000000000000-0000000000000fff (prio 0, i/o): regs owner:{dev id=nvme0} "
            "parent:{obj path=/machine/peripheral/nvme0}",
            "regs",
            Owner(
                " owner:{dev id=nvme0} parent:{obj path=/machine/peripheral/nvme0}",
                "dev id=nvme0",
                "obj path=/machine/peripheral/nvme0",
            ),
        ),
        (
            "  0000000000000000-0000000000000fff (prio 0, i/o): regs orphan",
            "regs",
            Owner(" orphan", None, None, True),
        ),
        # spec 3.2: owner text after ' [disabled]'
        (
            "    0000000000000000-ffffffffffffffff (prio 0, i/o): alias bus master @system "
            "0000000000000000-ffffffffffffffff [disabled] owner:{dev path=/machine/q35/pcie.0}",
            "bus master",
            Owner(" owner:{dev path=/machine/q35/pcie.0}", "dev path=/machine/q35/pcie.0"),
        ),
    ],
    ids=[
        "dev-path",
        "obj-path",
        "dev-id-alias",
        "parent-only",
        "owner-parent",
        "orphan",
        "disabled-alias",
    ],
)
def test_o_owners(line, name, owner):
    rec = p(line)
    assert (rec.name, rec.owner) == (name, owner)


def test_o_flat_range_offset_then_owner():
    # sample: q35-base/info-mtree-f-o.txt
    rec = p(
        "  0000000000000071-0000000000000071 (prio 0, i/o): rtc @0000000000000001 "
        "owner:{dev path=/machine/unattached/device[8]}"
    )
    assert (rec.name, rec.offset, rec.owner.owner) == (
        "rtc",
        1,
        "dev path=/machine/unattached/device[8]",
    )


# --------------------------------------------------------------------------- K1, K2


@pytest.mark.parametrize(
    ("line", "name", "accel"),
    [
        # spec 3.4, K1 (real, 4.1 commit message)
        (
            "  0000000000000000-0000002fffffffff (prio 0, ram): /objects/mem0 kvm",
            "/objects/mem0",
            ("kvm",),
        ),
        # spec 3.4: "the -machine accel= string (so kvm, or even kvm:tcg)"
        (
            "  0000000000000000-0000002fffffffff (prio 0, ram): /objects/mem0 kvm:tcg",
            "/objects/mem0",
            ("kvm:tcg",),
        ),
        # spec 3.4, K2
        ("  0000000000000000-000000000009ffff (prio 0, ram): pc.ram KVM", "pc.ram", ("KVM",)),
        # spec 3.4: several ASes of the group can each give a label
        (
            "  0000000000000000-000000000009ffff (prio 0, ram): pc.ram KVM KVM",
            "pc.ram",
            ("KVM", "KVM"),
        ),
    ],
    ids=["K1", "K1-kvm:tcg", "K2", "K2-two-labels"],
)
def test_k_accelerator_labels(line, name, accel):
    rec = p(line)
    assert (rec.name, rec.accel) == (name, accel)


def test_k_label_after_offset_and_owner():
    # spec 3.4: NAME[ @OOOO][OWNER][ ACCEL]
    rec = p(
        "  00000000000c0000-00000000000dffff (prio 0, ram): pc.ram @00000000000c0000 "
        "owner:{obj path=/objects/pc.ram} KVM"
    )
    assert (rec.name, rec.offset, rec.owner.owner, rec.accel) == (
        "pc.ram",
        0xC0000,
        "obj path=/objects/pc.ram",
        ("KVM",),
    )


def test_k_dump_variant_lists_labels():
    text = (
        "FlatView #0\n"
        ' AS "memory", root: system\n'
        " Root memory region: system\n"
        "  0000000000000000-000000000009ffff (prio 0, ram): pc.ram KVM\n"
        "  00000000000a0000-00000000000bffff (prio 1, i/o): vga-lowmem\n"
    )
    (dump,) = parse_text(text)
    assert dump.variant.accel_labels == ("KVM",)
    assert [r.accel for r in dump.views[0].ranges] == [("KVM",), ()]


# --------------------------------------------------------------------------- D


# sample: q35-base/info-mtree-f-d.txt (spec 3.7 gives the format)
DISPATCH = [
    "  Dispatch",
    "    Physical sections",
    "      #0 @0000000000000000..ffffffffffffffff (noname) [unassigned]",
    "      #1 @0000000000000000..0000000000000fff (noname) [not dirty] [MRU]",
    "      #4 @0000000000000010..000000000000001f io [ROOT]",
    "    Nodes (9 bits per level, 6 levels) ptr=[5] skip=6",
    "      [0]",
    "\t  0       skip=5  ptr=[5]",
    "\t  1..511  skip=1  ptr=NIL",
    "\t448..511  skip=0  ptr=#39",
]


@pytest.mark.parametrize("line", DISPATCH)
def test_d_dispatch_lines_kept_as_text(line):
    assert typed(p(line)) == typed(DispatchLine(line))


def test_d_dispatch_block_in_a_view():
    head = [
        "FlatView #0",
        ' AS "I/O", root: io',
        " Root memory region: io",
        "  0000000000000000-0000000000000007 (prio 0, i/o): dma-chan",
    ]
    (dump,) = parse_text("\n".join(head + DISPATCH) + "\n")
    (view,) = dump.views
    assert view.dispatch == tuple(DISPATCH)
    assert len(view.ranges) == 1 and dump.variant.dispatch


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    "name",
    [
        "bus master container",  # spaces (spec 3.1)
        "0001:03:00.0 BAR 3 mmaps[0]",  # ':' '[' ']' (seed 003)
        "bcm2835-gpu-ram-alias[*]",  # '*' (spec 3.1)
        "pci@800000020000000.mmio",  # '@' without a space before it (seed 003)
        "vga ioports remapped",  # spec 3.1
        "(null)",  # a NULL name printed by glibc (spec 3.1)
        "dev#1 win: [a] @b *c",  # all of them at once
        "msix-table #2",
    ],
)
@pytest.mark.parametrize("indent", [2, 8])
def test_names_are_free_text(name, indent):
    rec = p(" " * indent + "0000000000001000-0000000000001fff (prio 0, i/o): " + name)
    assert (rec.name, rec.indent, rec.offset, rec.owner, rec.accel, rec.disabled) == (
        name,
        indent,
        None,
        None,
        (),
        False,
    )


@pytest.mark.parametrize(
    "name", ["bus master container", "0001:03:00.0 BAR 3 mmaps[0]", "dev#1 win: [a] @b *c"]
)
def test_names_with_suffixes(name):
    rec = p(
        "  0000000000001000-0000000000001fff (prio 0, i/o): " + name + " @0000000000000040"
        " owner:{dev id=x} KVM"
    )
    assert (rec.name, rec.offset, rec.owner.owner, rec.accel) == (name, 0x40, "dev id=x", ("KVM",))
    rec = p("    0000000000001000-0000000000001fff (prio 0, i/o): " + name + " [disabled]")
    assert (rec.name, rec.disabled) == (name, True)


@pytest.mark.parametrize("name", ["memory", "I/O", "bus master: #0 [x] @y *"])
def test_names_in_headings(name):
    assert p("address-space: " + name) == Heading("address-space", name)
    assert p("memory-region: " + name) == Heading("memory-region", name)
    assert p(f' AS "{name}", root: {name}') == FlatViewASLine(name, name, None)
    assert typed(p(" Root memory region: " + name)) == typed(FlatViewRootLine(name))


def _alias_dump(alias_words: str, sections: list[str]) -> MtreeDump:
    text = (
        "address-space: memory\n"
        "  0000000000000000-ffffffffffffffff (prio 0, i/o): system\n"
        f"    0000000000000000-0000000000000fff (prio 0, ram): alias {alias_words} "
        "0000000000000000-0000000000000fff\n"
    )
    for s in sections:
        text += f"\nmemory-region: {s}\n  0000000000000000-0000000000000fff (prio 0, ram): {s}\n"
    (dump,) = parse_text(text)
    return dump


@pytest.mark.parametrize(
    ("alias_words", "sections", "name", "target"),
    [
        ("lo @pc.ram", ["pc.ram"], "lo", "pc.ram"),
        # spec Appendix A: name and target may contain ' @'; prefer the split whose
        # target names a memory-region section
        ("win @x @blk @y", ["blk @y"], "win @x", "blk @y"),
        ("win @x @blk @y", ["x @blk @y"], "win", "x @blk @y"),
        ("win @x @blk @y", ["y"], "win @x @blk", "y"),
        ("a b @c d @e f", ["e f"], "a b @c d", "e f"),
        ("dev#1 [x] @pci@8000.mmio @bar[*]", ["bar[*]"], "dev#1 [x] @pci@8000.mmio", "bar[*]"),
    ],
)
def test_alias_split_picks_the_target_that_names_a_section(alias_words, sections, name, target):
    dump = _alias_dump(alias_words, sections)
    (alias,) = dump.address_spaces[0].root.subregions
    assert (alias.name, alias.alias.target_name) == (name, target)
    (sec,) = dump.sections
    assert sec.name == target and alias.alias.target is sec.root


def test_alias_split_with_two_candidate_sections_in_the_dump():
    """Only one split names a section even when others exist under other names."""
    dump = _alias_dump("win @x @blk", ["blk", "other"])
    (alias,) = dump.address_spaces[0].root.subregions
    assert (alias.name, alias.alias.target_name) == ("win @x", "blk")
    assert alias.alias.target is dump.sections[0].root
    assert [mr.name for mr, _ in walk(dump.sections[0].root)] == ["blk"]


# --------------------------------------------------------------------------- bad lines


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("  0000000000000000-ffffffffffffffff (prio 0, foo): x", "unknown region type"),
        (
            "  00000000000g0000-ffffffffffffffff (prio 0, i/o): x",
            "bad hex address (16 lowercase hex digits expected)",
        ),
        (
            "  0000000000000000-ffffffffffffffff (prio",
            "truncated region line (wrapped or cut off?)",
        ),
        (
            "  0000000000000000-ffffffffffffffff (prio 0, i/o):",
            "truncated region line (wrapped or cut off?)",
        ),
        # the same cut after another type word: still a truncated line, not a bad type
        (
            "  0000000000000000-ffffffffffffffff (prio 0, ram):",
            "truncated region line (wrapped or cut off?)",
        ),
        (
            "    0000000000000000-0000000000000fff (prio 0, ramd):",
            "truncated region line (wrapped or cut off?)",
        ),
    ],
    ids=["type", "hex", "cut-prio", "cut-io", "cut-ram", "cut-ramd"],
)
def test_bad_line_messages(line, message):
    with pytest.raises(SourceError) as exc:
        p(line)
    assert (exc.value.loc, exc.value.msg, exc.value.text) == (LOC, message, line)


def test_alias_line_cut_before_its_offsets_is_an_error():
    """An alias line without 'OOOO-QQQQ' (what a mail client leaves when it wraps a 110
    column T2 alias line) is not a region named 'alias ...'."""
    line = "    0000000000000000-0000000007ffffff (prio 0, ram): alias ram-below-4g @pc.ram"
    with pytest.raises(SourceError) as exc:
        p(line)
    assert exc.value.text == line
    assert exc.value.msg.startswith("truncated alias line")


# ------------------------------------------------------- the fast path agrees with lark

REPO = Path(__file__).resolve().parents[1]


def _lark(text: str):
    from flatview.linegrammar import LineTransformer, _parser

    try:
        return LineTransformer().transform(_parser().parse(text))
    except Exception as exc:  # any lark failure: then the fast path must refuse too
        return exc


def _sample_lines() -> list[str]:
    lines: set[str] = set()
    for path in [*REPO.glob("samples/**/*.txt"), *REPO.glob("tests/fixtures/**/*.txt")]:
        for line in path.read_bytes().decode("utf-8", "replace").splitlines():
            lines.add(line.rstrip("\r"))
    return sorted(lines)


def test_fast_path_gives_larks_record_for_every_sample_line():
    """Every line of every sample and fixture the fast path takes, lark reads the same."""
    from flatview.parse import _fast

    taken = 0
    for line in _sample_lines():
        rec = _fast(line)
        if rec is not None:
            taken += 1
            assert rec == _lark(line), line
    assert taken > 1000  # the samples' region lines do go the fast way


def test_fast_path_takes_vfio_mmap_lines():
    """vfio-pci's direct-mapped parts ("<bdf> BAR N mmaps[K]") are most of what users
    paste: they must not each cost a lark parse (and lark's import)."""
    from flatview.parse import _fast

    mmaps = [
        line
        for line in _sample_lines()
        if line.startswith(" ") and line.endswith("]") and " mmaps[" in line
        if "(prio" in line and not line.endswith(" [disabled]")  # a suffix: lark's to read
    ]
    assert len(mmaps) > 10
    assert all(_fast(line) == _lark(line) for line in mmaps)


@pytest.mark.parametrize(
    "line",
    [
        "  0000000000000000-0000000000000fff (prio 0, ram): pc.ram KVM",
        "  0000000000000000-0000000000000fff (prio 0, ram): pc.ram kvm:smm",
        "  0000000000000000-0000000000000fff (prio 0, i/o): x orphan",
        "  0000000000000000-0000000000000fff (prio 0, i/o): x [disabled]",
        "  0000000000000000-0000000000000fff (prio 0, i/o): x owner:{dev id=a}",
        "  0000000000000000-0000000000000fff (prio 0, i/o): x @0000000000001000",
        "  0000000000000000-0000000000000fff (prio 0, i/o): alias a @b",
        "  0000000000000000-0000000000000fff (prio 0, i/o): alias a @b "
        "0000000000000000-0000000000000fff [disabled]",
        "  0000000000000000-0000000000000fff (prio 0, i/o): alias a @b @c "
        "0000000000000000-0000000000000fff",
        "  0000000000000000-0000000000000fff (prio 0, nv-ram): a name with spaces",
        "  0000000000000000-0000000000000fff (prio -1, RW): old letters",
        "  0x0000000000000000-0x0000000000000fff (prio 0, i/o): patched build",
        "address-space: memory",
        "memory-region: pci_bridge_pci",
        "  0000000000000000-0000000000000fff (prio 0, i/o): x @0000000000001000",
        "  0000000000000000-0000000000000fff (prio 0, ram): x @0000000000001000 KVM",
        "  0000000000000000-0000000000000fff (prio 0, i/o): a @b @0000000000001000",
        "FlatView #3",
        ' AS "x", root: a, alias b, alias c',
        ' AS "x", root: a',
        " Root memory region: (none)",
        " Root memory region: (none) x",
        "  No rendered FlatView",
        "  No rendered FlatView for address space 'a'b'",
        "  0000000000000000-0000000000000fff (prio 0, ramd): 0000:00:05.0 BAR 1 mmaps[0]",
        "  0000000000000000-0000000000000fff (prio 0, ramd): 0000:00:05.0 BAR 1 mmaps[0] "
        "@0000000000000040",
        "  0000000000000000-0000000000000fff (prio 0, ramd): x mmaps[0] [disabled]",
        "  0000000000000000-0000000000000fff (prio 0, i/o): a [disabled] b",
        "  0000000000000000-0000000000000fff (prio 0, i/o): a [disabled] KVM",
        "  0000000000000000-0000000000000fff (prio 0, i/o): [",
        "  0000000000000000-0000000000000fff (prio 0, i/o): x [disabled] orphan",
    ],
)
def test_fast_path_on_suffixes_and_edges(line):
    """Where the fast path answers it is lark's answer; suffixed lines go to lark."""
    from flatview.parse import _fast

    rec, slow = _fast(line), _lark(line)
    if rec is not None:
        assert rec == slow
    if isinstance(slow, Exception):
        with pytest.raises(SourceError):
            parse_line(line, LOC)
    else:
        assert parse_line(line, LOC) == slow
