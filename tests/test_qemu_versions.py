"""Rules that differ between QEMU versions, and what a dump shows about its version.

- ``unmergeable`` (QEMU >= 8.2, system/memory.c can_merge; hw/virtio/virtio-mem.c sets it
  on every memslot-N alias): flatview_simplify keeps neighbouring memslot ranges apart.
  The fixture is hand-written (a paused QEMU plugs no memslot), the expected ranges are
  the arithmetic below.
- infer_version on real samples: QEMU 10.0's pflash isa-bios is an alias of the flash
  (>= 9.1), 7.2's a ROM copy; QEMU 10.0 prints virtio-pci-cfg-mem-as, 7.2 does not.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from flatview import api
from flatview.terminates import Knowledge, VersionEvidence, infer_version, parse_version

ROOT = Path(__file__).resolve().parents[1]
MEMSLOTS = ROOT / "tests" / "fixtures" / "versions" / "virtio-mem-memslots.txt"
SAMPLES = ROOT / "samples"
GiB, MiB = 1 << 30, 1 << 20


def tree_of(path: Path):
    [tree] = api.split_kinds(api.load(str(path)))[0]
    return tree


def ranges(result) -> list[tuple[int, int, str, int]]:
    [view] = [v for v in result.views if "memory" in v.names]
    return [(r.start, r.size, r.name, r.offset) for r in view.ranges]


# memslot-0 maps vmem0[0, 128M) at 4G, memslot-1 maps vmem0[128M, 256M) right after it.
SLOT0 = (4 * GiB, 128 * MiB, "vmem0", 0)
SLOT1 = (4 * GiB + 128 * MiB, 128 * MiB, "vmem0", 128 * MiB)
MERGED = (4 * GiB, 256 * MiB, "vmem0", 0)
PC_RAM = (0, 128 * MiB, "pc.ram", 0)


def test_memslot_ranges_stay_apart_when_the_text_shows_qemu_8_2():
    tree = tree_of(MEMSLOTS)
    assert infer_version(tree).lowest == (8, 2)  # memslot aliases exist only since 8.2
    result = api.flatten(tree)
    assert ranges(result) == [PC_RAM, SLOT0, SLOT1]
    [amb] = [a for a in result.ambiguities if a.kind == "version-dependent"]
    assert (amb.start, amb.end) == (SLOT0[0], SLOT1[0] + SLOT1[1])
    assert "QEMU >= 8.2" in amb.outcomes[0] and "one range" in amb.outcomes[1]
    # settled by the text: not a guess
    assert not [g for g in result.guesses if g.what == "is unmergeable"]


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ((8, 1), [PC_RAM, MERGED]),
        ((8, 2), [PC_RAM, SLOT0, SLOT1]),
        ((10, 0), [PC_RAM, SLOT0, SLOT1]),
    ],
)
def test_qemu_version_decides_the_unmergeable_rule(version, expected):
    assert ranges(api.flatten(tree_of(MEMSLOTS), qemu_version=version)) == expected


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flatview", *args], capture_output=True, text=True, cwd=ROOT
    )


def test_cli_qemu_version():
    merged = run("flatten", str(MEMSLOTS), "--qemu-version", "8.1")
    assert merged.returncode == 0, merged.stderr
    assert "0000000100000000-000000010fffffff (prio 0, ram): vmem0\n" in merged.stdout
    assert "# QEMU version 8.1 (--qemu-version); the text shows: QEMU version >= 8.2" in (
        merged.stdout
    )
    apart = run("flatten", str(MEMSLOTS))
    assert "0000000108000000-000000010fffffff (prio 0, ram): vmem0 @0000000008000000\n" in (
        apart.stdout
    )
    assert "# ambiguous: version-dependent: 'vmem0'" in apart.stdout
    bad = run("flatten", str(MEMSLOTS), "--qemu-version", "ten")
    assert bad.returncode == 2
    assert bad.stderr.splitlines()[-1].endswith("not a QEMU version X.Y: 'ten'")


@pytest.mark.parametrize("text", ["7.2", "10.0", "10.0.2", " 8.2 "])
def test_parse_version(text):
    assert parse_version(text) == tuple(int(x) for x in text.split(".")[:2])


def test_pflash_isa_bios_shows_the_version():
    # QEMU 10.0.2 (samples/qemu-10.0, versions.txt): isa-bios is an alias of system.flash0
    new = infer_version(tree_of(SAMPLES / "qemu-10.0" / "x86_64-q35-pflash" / "info-mtree.txt"))
    assert new.lowest == (9, 1)
    assert any("isa-bios aliases the pflash 'system.flash0'" in r for r in new.reasons)
    # QEMU 7.2.22: a ROM copy named isa-bios, and no virtio-pci-cfg-mem-as
    old = infer_version(tree_of(SAMPLES / "qemu" / "x86_64-q35-pflash" / "info-mtree.txt"))
    assert old.lowest == (7, 0)  # only the grouped headings of >= 7.0


@pytest.mark.parametrize("folder", ["x86_64-q35", "x86_64-pc"])
def test_virtio_pci_cfg_mem_as_marks_qemu_after_7_2(folder):
    new = infer_version(tree_of(SAMPLES / "qemu-10.0" / folder / "info-mtree.txt"))
    old = infer_version(tree_of(SAMPLES / "qemu" / folder / "info-mtree.txt"))
    assert new.lowest == (8, 0) and old.lowest == (7, 0)


def test_version_evidence_in_words():
    """VersionEvidence.text: the bounds (>= lowest, < below) and the reasons, or that
    the input shows nothing."""
    assert VersionEvidence().text() == "QEMU version: not shown by the input"
    assert VersionEvidence((9, 1), None, ("a", "b")).text() == "QEMU version >= 9.1: a; b"
    assert VersionEvidence(None, (2, 9), ("c",)).text() == "QEMU version < 2.9: c"
    assert VersionEvidence((7, 0), (2, 9), ("a", "c")).text() == (
        "QEMU version >= 7.0 and < 2.9: a; c"
    )
    # a real QEMU 7.2 tree: only the grouped headings tell (>= 7.0)
    old = infer_version(tree_of(SAMPLES / "qemu" / "x86_64-q35-pflash" / "info-mtree.txt"))
    assert old.text() == (
        "QEMU version >= 7.0: address spaces grouped by root (mtree_info, QEMU 7.0)"
    )


@pytest.mark.parametrize("text", ["7", "7.x", "7.2.1.4", "v7.2", ""])
def test_parse_version_refuses(text):
    with pytest.raises(ValueError, match=r"^not a QEMU version X\.Y: "):
        parse_version(text)


def test_type_letters_show_an_old_qemu():
    # tests/fixtures/pastes/qemu-1.x-letters.txt: a QEMU 1.x tree, types printed as RW
    tree = tree_of(ROOT / "tests" / "fixtures" / "pastes" / "qemu-1.x-letters.txt")
    ev = infer_version(tree)
    assert (ev.lowest, ev.below) == (None, (2, 9))
    assert ev.text() == "QEMU version < 2.9: type letters like RW (QEMU <= 2.8)"


def test_learning_skips_names_that_are_both_leaf_and_container():
    """x86_64-pc (QEMU 7.2): `virtio-pci` names the legacy I/O BAR (an MMIO leaf) and the
    modern BAR (a container); QEMU's flat view shows the name, which so cannot tell which
    one terminates.  Every other name the flat view shows is learned as terminating."""
    folder = SAMPLES / "qemu" / "x86_64-pc"
    tree = tree_of(folder / "info-mtree.txt")
    [flat] = api.split_kinds(api.load(str(folder / "info-mtree-f.txt")))[1]
    shown = {r.name for v in flat.views for r in v.ranges}
    assert "virtio-pci" in shown
    k = Knowledge.for_dump(tree, [flat], qemu_version=(7, 2))
    assert k.flat_names == shown - {"virtio-pci"}
    assert k.qemu_version == (7, 2) and k.evidence == infer_version(tree)
    plain = Knowledge.for_dump(tree, [], qemu_version=(7, 2))
    assert plain.flat_names == frozenset() and plain.qemu_version == (7, 2)


def test_rule_patterns_name_the_first_rule_that_matches():
    """terminates' rule tables are matched as one alternation whose group names the
    first matching rule (KNOWN_CONTAINERS before TERMINATING_PARENTS, each in order)."""
    from flatview.terminates import _first_rule, _one_pattern

    rules = (("^a$", "rule a"), ("^ab?$", "rule ab"), ("^c", "rule c"))
    pattern = _one_pattern(rules)
    assert [_first_rule(pattern, rules, n) for n in ("a", "ab", "cx", "b")] == [
        "rule a",
        "rule ab",
        "rule c",
        None,
    ]


def test_version_reasons_cite_the_lines_newest_bound_first():
    """QEMU 10.0.2's pflash q35 (samples/qemu-10.0/x86_64-q35-pflash/info-mtree.txt):
    isa-bios aliases system.flash0 at line 199 (>= 9.1; line 312 prints the same region
    again in system's memory-region section), virtio-pci-cfg-mem-as is first printed at
    line 70 (>= 8.0), the headings are grouped (>= 7.0).  Newest bound first."""
    ev = infer_version(tree_of(SAMPLES / "qemu-10.0" / "x86_64-q35-pflash" / "info-mtree.txt"))
    isa = (
        "isa-bios aliases the pflash 'system.flash0' "
        "(hw/i386/pc_sysfw.c, QEMU 9.1; a ROM copy before)"
    )
    assert ev.reasons == (
        f"line 199: {isa}",
        "line 70: address space virtio-pci-cfg-mem-as (hw/virtio/virtio-pci.c; "
        "not printed by QEMU 7.2)",
        "address spaces grouped by root (mtree_info, QEMU 7.0)",
    )
    # memslot aliases (tests/fixtures/versions/virtio-mem-memslots.txt lines 12-13)
    slots = infer_version(tree_of(MEMSLOTS))
    assert slots.reasons[:2] == (
        "line 13: virtio-mem memslot alias 'memslot-1' (dynamic-memslots, QEMU 8.2)",
        "line 12: virtio-mem memslot alias 'memslot-0' (dynamic-memslots, QEMU 8.2)",
    )


def test_a_closed_bridge_window_is_certainly_empty():
    from flatview.terminates import AMDVI_EARLY_WHY, Rule, printed_empty

    rule = printed_empty("pci_bridge_mem", True, [])
    assert rule == Rule(True, "a closed PCI bridge window: 0 bytes (pci_bridge_region_init)", False)
    assert printed_empty("pci_bridge_mem", False, []) is None  # not an alias: one byte
    # QEMU 10's early AMD IOMMU aliases: empty, certain (hw/i386/amd_iommu.c)
    assert printed_empty("amdvi-ir", True, []) == Rule(True, AMDVI_EARLY_WHY, False)
    # a subregion beyond the first byte: empty, a guess; one at offset 0 proves nothing
    beyond = printed_empty("x", False, [0, 1])  # offset 1: past a 1-byte region
    assert beyond == Rule(
        True,
        "printed as one byte but holds a subregion beyond it: taken as 0 bytes "
        "(MR_SIZE prints 0 and 1 alike)",
        True,
    )
    assert printed_empty("x", False, [0]) is None


def _mr(name: str, type_: str = "i/o", size: int = 0x1000, subs=(), alias=None):
    from flatview.model import MemoryRegion

    return MemoryRegion(name=name, addr=0, start=0, size=size, priority=0, type=type_,
                        subregions=tuple(subs), alias=alias)  # fmt: skip


def test_the_terminates_rules_in_their_documented_order():
    """terminates.py's module docstring, rule by rule: the decision, its reason and
    whether the text alone settles it.  One Knowledge answers every region (cached per
    region)."""
    from flatview.terminates import (
        KNOWN_CONTAINERS,
        PCI_IO_BAR_MAX,
        TERMINATING_PARENTS,
        VIRTIO_MODERN_BAR,
        Rule,
    )

    leaf = _mr("leaf")
    system_why = dict(KNOWN_CONTAINERS)["^system$"]
    rtc_why = dict(TERMINATING_PARENTS)["^rtc$"]
    mmio = "an i/o leaf is MMIO (memory_region_init_io)"
    container = "an i/o region with subregions is a pure container (memory_region_init)"
    ram = "RAM, ROM, ROM device and RAM device regions terminate"
    know = Knowledge()
    # (the regions stay alive: Knowledge caches by id)
    cases = [
        (_mr("r", "ram"), Rule(True, ram, False)),
        (_mr("old", "R-"), Rule(True, "ROM or ROM device (type letters of QEMU <= 2.8)", False)),
        (_mr("oldrw", "RW"), Rule(True, mmio)),
        (_mr("virtio-pci", size=0x4000), Rule(False, VIRTIO_MODERN_BAR, False)),
        (_mr("virtio-pci", size=PCI_IO_BAR_MAX), Rule(True, mmio)),
        (_mr("virtio-pci", size=0x4000, subs=[leaf]), Rule(False, container)),
        (_mr("system", subs=[leaf]), Rule(False, system_why)),
        (_mr("rtc", subs=[leaf]), Rule(True, rtc_why)),
        (_mr("dev", subs=[leaf]), Rule(False, container)),
    ]
    for mr, rule in cases:
        assert know.terminates(mr) == rule, mr.name
        assert know.terminates(mr) is know.terminates(mr)
    learned = Knowledge(flat_names=frozenset({"dev"}))
    dev, other = _mr("dev", subs=[leaf]), _mr("other", subs=[leaf])
    assert learned.terminates(dev) == Rule(
        True, "QEMU's own flat view of this machine shows it", False
    )
    assert learned.terminates(other) == Rule(
        False, "pure container: never in QEMU's flat view of this machine"
    )


def test_unmergeable_memslots_by_version():
    """Knowledge.unmergeable: only memslot-N aliases; the user's --qemu-version settles
    it, else the text's lower bound (>= 8.2 settles it), else it is a guess."""
    from flatview.model import Alias
    from flatview.terminates import UNMERGEABLE, Rule

    slot = _mr("memslot-0", "ram", alias=Alias("vmem0", 0))
    assert Knowledge().unmergeable(_mr("memslot-0", "ram")) is None  # not an alias
    assert Knowledge().unmergeable(_mr("slot", "ram", alias=Alias("vmem0", 0))) is None
    assert Knowledge(qemu_version=(8, 1)).unmergeable(slot) == Rule(
        False, "QEMU 8.1 (--qemu-version): no unmergeable regions before 8.2", False
    )
    assert Knowledge(qemu_version=(8, 2)).unmergeable(slot) == Rule(
        True, f"QEMU 8.2 (--qemu-version): {UNMERGEABLE.source}", False
    )
    text = f"{UNMERGEABLE.source} (QEMU >= 8.2)"
    shown = Knowledge(evidence=VersionEvidence((8, 2)))
    assert shown.unmergeable(slot) == Rule(True, text, False)
    assert Knowledge(evidence=VersionEvidence((7, 0))).unmergeable(slot) == Rule(True, text, True)
    assert Knowledge().unmergeable(slot) == Rule(True, text, True)
