"""flatview.build on every seed dump and every real QEMU sample, checked against counts
computed here with our own regular expressions over the same file; QEMU-format round trip
of the real samples; hidden disabled regions; alias resolution; the pre-7.0 layout.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from itertools import pairwise
from pathlib import Path

import pytest

from flatview import build
from flatview.api import parse_text
from flatview.errors import SourceError
from flatview.model import FlatDump, MemoryRegion, MtreeDump, walk
from flatview.render.json import to_data
from flatview.render.qemu import format_dump

REPO = Path(__file__).resolve().parents[1]
SEEDS = Path(__file__).resolve().parent / "fixtures" / "seeds"

# Real QEMU dumps: the VFIO samples, and whatever emulated-device samples exist now.
REAL = sorted(
    {*REPO.glob("samples/vfio/*/info-mtree*.txt"), *REPO.glob("samples/qemu/**/info-mtree*.txt")}
)
SEED_FILES = sorted(SEEDS.glob("*.txt"))


def _id(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def _is_flat_file(path: Path) -> bool:
    """info-mtree-f*.txt hold `info mtree -f [-d|-o]`; the others `info mtree [-o|-D]`."""
    return re.match(r"info-mtree-f\b", path.stem) is not None


# --------------------------------------------------------------------------- our own counts

QUOTE = re.compile(r"^(?:> ?)*")
REGION = re.compile(
    r"^(?:\[DETECTED OVERFLOW!\] )?( +)(?:\[DETECTED OVERFLOW!\] )?"
    r"([0-9a-f]{16})-([0-9a-f]{16}) \(prio -?\d+, (?:nv-)?([a-zA-Z/-]+)\): (.*)$"
)
ALIAS_REST = re.compile(r"^alias .+ @.+ ([0-9a-f]{16})-([0-9a-f]{16})(?: \[disabled\])?(?: |$)")
DISPATCH = re.compile(
    r"^(?:  Dispatch|    Physical sections|      #\d+ @.*|    Nodes \(.*|      \[\d+\]|\t.*)$"
)


@dataclass
class Counts:
    """What a file shows, counted line by line (quote prefixes removed)."""

    as_headings: int = 0
    mr_headings: int = 0
    tree_lines: int = 0
    tree_types: Counter = field(default_factory=Counter)
    aliases: int = 0
    disabled: int = 0
    owners: int = 0
    hidden: int = 0  # levels skipped by indentation jumps
    flatview_headings: int = 0
    old_flat_headings: int = 0
    as_lines: int = 0
    ranges: int = 0
    range_types: Counter = field(default_factory=Counter)
    dispatch_lines: int = 0
    no_rendered: int = 0


def count(text: str) -> Counts:
    c = Counts()
    context = None  # "tree" | "flat"
    level = 0  # level of the previous region line of this block (0: a heading)
    for raw in text.replace("\r\n", "\n").split("\n"):
        line = raw[QUOTE.match(raw).end() :].rstrip()
        if not line:
            level = 0
            continue
        if line.startswith(("address-space: ", "memory-region: ")):
            context, level = "tree", 0
            c.as_headings += line.startswith("address-space: ")
            c.mr_headings += line.startswith("memory-region: ")
            continue
        if re.fullmatch(r"FlatView #\d+", line) or line.startswith("address-space (flat view): "):
            context = "flat"
            c.flatview_headings += line.startswith("FlatView")
            c.old_flat_headings += line.startswith("address-space (flat")
            continue
        m = REGION.match(line)
        if context == "flat":
            c.as_lines += line.startswith(' AS "')
            c.no_rendered += line.startswith("  No rendered FlatView")
            c.dispatch_lines += DISPATCH.match(line) is not None
            if m:
                c.ranges += 1
                c.range_types[m.group(4)] += 1
        elif context == "tree" and m:
            new = len(m.group(1)) // 2
            c.hidden += max(0, new - level - 1)
            level = new
            c.tree_lines += 1
            c.tree_types[m.group(4)] += 1
            c.aliases += ALIAS_REST.match(m.group(5)) is not None
            c.disabled += " [disabled]" in m.group(5)
            c.owners += re.search(r" (?:owner:\{|parent:\{|orphan$)", m.group(5)) is not None
    return c


def printed_regions(dump: MtreeDump) -> list[MemoryRegion]:
    """Every region line the dump printed: each group's tree and each section, walked
    separately (a tree printed twice is counted twice, as it was printed twice)."""
    roots = [g.root for g in dump.address_spaces] + [s.root for s in dump.sections]
    return [mr for root in roots if root is not None for mr, _ in walk(root)]


def model_counts(dumps) -> Counts:
    c = Counts()
    for d in dumps:
        if isinstance(d, MtreeDump):
            c.as_headings += sum(len(g.names) for g in d.address_spaces)
            c.mr_headings += len(d.sections)
            regions = printed_regions(d)
            shown = [mr for mr in regions if not mr.hidden]
            c.tree_lines += len(shown)
            c.tree_types.update(mr.type for mr in shown)
            c.aliases += sum(mr.alias is not None for mr in shown)
            c.disabled += sum(not mr.enabled for mr in shown)
            c.owners += sum(mr.owner is not None for mr in shown)
            c.hidden += sum(mr.hidden for mr in regions)
        else:
            assert isinstance(d, FlatDump)
            c.flatview_headings += sum(v.number is not None for v in d.views)
            c.old_flat_headings += sum(v.number is None for v in d.views)
            c.as_lines += sum(len(v.address_spaces) for v in d.views if v.number is not None)
            c.ranges += sum(len(v.ranges) for v in d.views)
            c.range_types.update(r.type for v in d.views for r in v.ranges)
            c.dispatch_lines += sum(len(v.dispatch) for v in d.views)
            c.no_rendered += sum(not v.rendered for v in d.views)
    return c


@cache
def load(path: Path):
    """(LF text, dumps) of a file, parsed once per session."""
    text = path.read_bytes().decode("utf-8")
    return text.replace("\r\n", "\n"), parse_text(text, str(path))


# --------------------------------------------------------------------------- every file


@pytest.mark.parametrize("path", SEED_FILES, ids=lambda p: p.name[:3])
def test_seed_dumps_counts(path):
    text = path.read_text(encoding="utf-8")
    expected = count(text)
    if expected.as_headings + expected.mr_headings + expected.flatview_headings == 0:
        with pytest.raises(SourceError, match="no 'info mtree' dump found"):
            parse_text(text, str(path))
        return
    dumps = parse_text(text, str(path))
    assert model_counts(dumps) == expected


@pytest.mark.parametrize("path", REAL, ids=_id)
def test_real_sample_counts(path):
    text, dumps = load(path)
    expected = count(text)
    assert len(dumps) == 1
    assert model_counts(dumps) == expected
    (dump,) = dumps
    if _is_flat_file(path):
        assert isinstance(dump, FlatDump)
        assert expected.ranges > 0 and expected.flatview_headings > 0
    else:
        assert isinstance(dump, MtreeDump)
        assert expected.tree_lines > 0 and expected.as_headings > 0
        assert not dump.diagnostics or all(str(path) in d for d in dump.diagnostics)


@pytest.mark.parametrize("path", REAL, ids=_id)
def test_real_sample_variant(path):
    text, (dump,) = load(path)
    c = count(text)
    v = dump.variant
    assert v.owners == (c.owners > 0 or " owner:{" in text or " parent:{" in text)
    if isinstance(dump, MtreeDump):
        lines = text.split("\n")
        grouped = any(
            a.startswith("address-space: ") and b.startswith("address-space: ")
            for a, b in pairwise(lines)
        )
        assert (v.grouped, v.disabled_marks, v.hidden_disabled) == (
            grouped,
            c.disabled > 0,
            c.hidden > 0,
        )
    else:
        assert v.dispatch == (c.dispatch_lines > 0)
        assert v.old_flat_format is False


@pytest.mark.parametrize("path", REAL, ids=_id)
def test_real_sample_round_trip(path):
    """format_dump prints QEMU's own text back, line for line (CRLF -> LF; trailing empty
    lines aside)."""
    text, dumps = load(path)
    expected = text.split("\n")
    got = "".join(format_dump(d) for d in dumps).split("\n")
    while expected and expected[-1] == "":
        expected.pop()
    while got and got[-1] == "":
        got.pop()
    assert got == expected


def test_real_samples_cover_tree_and_flat_files():
    names = {p.name for p in REAL}
    if not names:
        pytest.fail("no real samples under samples/")
    for name in [
        "info-mtree.txt",
        "info-mtree-o.txt",
        "info-mtree-D.txt",
        "info-mtree-f.txt",
        "info-mtree-f-o.txt",
        "info-mtree-f-d.txt",
    ]:
        assert name in names


# --------------------------------------------------------------------------- the seed


def test_seed003_dump_by_dump():
    """Seed 003: per dump (one heading each), the range lines between its heading and the
    next heading, counted here, equal the model's."""
    found = sorted(SEEDS.glob("003_*.txt"))
    if not found:
        pytest.fail(f"seed 003 not found under {SEEDS}")
    text = found[0].read_text(encoding="utf-8")
    raw = text.split("\n")
    starts = [
        n
        for n, line in enumerate(raw, 1)
        if re.match(r"(?:FlatView #\d+$|memory-region: )", line[QUOTE.match(line).end() :])
    ]
    dumps = parse_text(text, str(found[0]))
    assert [d.line for d in dumps] == starts
    for i, d in enumerate(dumps):
        stop = starts[i + 1] - 1 if i + 1 < len(starts) else len(raw)
        piece = "\n".join(raw[d.line - 1 : stop])
        assert model_counts([d]) == count(piece), d.line


# --------------------------------------------------------------------------- hidden regions

WITH_D = """\
address-space: memory
  0000000000000000-ffffffffffffffff (prio 0, i/o): system
    00000000fe000000-00000000fe0fffff (prio 1, i/o): devB-container [disabled]
      00000000fe010000-00000000fe010fff (prio 0, i/o): devB-regs
      00000000fe020000-00000000fe020fff (prio 0, i/o): devB-irq
    00000000fe100000-00000000fe10ffff (prio 1, i/o): devA

address-space: I/O
  0000000000000000-000000000000ffff (prio 0, i/o): io [disabled]
    0000000000000000-0000000000000007 (prio 0, i/o): dma-chan

"""
# The same without -D (QEMU >= 5.1): the disabled lines are gone, their children stay at
# their own level (spec 3.3, 6.4); the first child of each therefore jumps a level.
WITHOUT_D = "".join(line + "\n" for line in WITH_D.split("\n")[:-1] if "[disabled]" not in line)


def _shape(mr: MemoryRegion, depth: int = 0):
    """(depth, name or None for a disabled region, start) in pre-order."""
    return [(d, m.name if m.enabled else None, m.start if m.enabled else None) for m, d in walk(mr)]


def test_hidden_disabled_regions_from_indentation_jumps():
    (with_d,) = parse_text(WITH_D)
    (without,) = parse_text(WITHOUT_D)
    assert count(WITHOUT_D).hidden == 2 and count(WITH_D).hidden == 0
    assert not with_d.variant.hidden_disabled and with_d.variant.disabled_marks
    assert without.variant.hidden_disabled and not without.variant.disabled_marks
    for a, b in zip(with_d.address_spaces, without.address_spaces, strict=True):
        assert _shape(a.root) == _shape(b.root)
    hidden = [mr for mr in printed_regions(without) if mr.hidden]
    assert [(mr.enabled, mr.name, [c.name for c in mr.subregions]) for mr in hidden] == [
        (False, "", ["devB-regs", "devB-irq"]),
        (False, "", ["dma-chan"]),
    ]
    assert without.address_spaces[1].root is hidden[1]  # the hidden root of 'I/O'
    assert "".join(format_dump(without)) == WITHOUT_D


def test_hidden_levels_counted_like_the_indentation():
    text = (
        "address-space: memory\n"
        "  0000000000000000-ffffffffffffffff (prio 0, i/o): system\n"
        "        0000000000001000-0000000000001fff (prio 0, i/o): three-levels-down\n"
        "      0000000000002000-0000000000002fff (prio 0, i/o): two-levels-down\n"
        "    0000000000003000-0000000000003fff (prio 0, i/o): child\n"
    )
    (dump,) = parse_text(text)
    assert sum(mr.hidden for mr in printed_regions(dump)) == count(text).hidden == 2
    assert [(d, mr.name) for mr, d in walk(dump.address_spaces[0].root)] == [
        (0, "system"),
        (1, ""),
        (2, ""),
        (3, "three-levels-down"),
        (2, "two-levels-down"),
        (1, "child"),
    ]
    assert format_dump(dump) == text + "\n"


def test_address_space_with_hidden_root_and_no_lines():
    """spec 3.2: a group whose root line is hidden prints its heading, then the empty line."""
    text = (
        "address-space: off\n"
        "\n"
        "address-space: memory\n"
        "  0000000000000000-ffffffffffffffff (prio 0, i/o): system\n"
        "\n"
    )
    (dump,) = parse_text(text)
    assert [(g.names, g.root is None) for g in dump.address_spaces] == [
        (("off",), True),
        (("memory",), False),
    ]
    assert format_dump(dump) == text


def test_alias_to_a_disabled_target_section_without_lines():
    """spec 3.3: "a disabled alias target yields a memory-region: heading with no level-1
    line".  The alias still points to that section; the dump is complete."""
    text = (
        "address-space: memory\n"
        "  0000000000000000-ffffffffffffffff (prio 0, i/o): system\n"
        "    0000000000001000-0000000000001fff (prio 0, i/o): alias win @blk "
        "0000000000000000-0000000000000fff\n"
        "\n"
        "memory-region: blk\n"
        "\n"
    )
    (dump,) = parse_text(text, "t.txt")
    ((name, root),) = [(s.name, s.root) for s in dump.sections]
    # the target exists but prints nothing: a hidden, disabled region renders nothing
    assert (name, root.hidden, root.enabled, root.subregions) == ("blk", True, False, ())
    (win,) = dump.address_spaces[0].root.subregions
    assert (win.name, win.alias.target_name, win.alias.target) == ("win", "blk", root)
    assert format_dump(dump) == text


# --------------------------------------------------------------------------- aliases


@pytest.mark.parametrize("path", [p for p in REAL if not _is_flat_file(p)], ids=_id)
def test_every_alias_resolves_to_its_target_section(path):
    text, (dump,) = load(path)
    lines = text.split("\n")
    aliases = [mr for mr, _ in dump.regions() if mr.alias is not None]
    assert len(aliases) > 0
    for mr in aliases:
        target = mr.alias.target
        assert target is not None, mr
        same_name = [s.root for s in dump.sections if s.name == mr.alias.target_name]
        assert any(target is root for root in same_name), mr
        # the line the target was read from prints the target's name (our own check)
        printed = REGION.match(lines[target.line - 1])
        assert printed and re.match(re.escape(mr.alias.target_name) + r"(?: |$)", printed.group(5))
        # the alias line itself reads 'alias NAME @TARGET'
        assert f"alias {mr.name} @{mr.alias.target_name} " in lines[mr.line - 1]


def _sections_by_text(text: str) -> list[tuple[int, str, list[tuple[int, int, bool]]]]:
    """(heading line, name, level-2 children as (start, end, enabled) relative to the root
    line's start) of every memory-region section, read with our own regexes."""
    out = []
    lines = text.split("\n")
    for n, line in enumerate(lines, 1):
        if not line.startswith("memory-region: "):
            continue
        root = REGION.match(lines[n])
        base = int(root.group(2), 16)
        kids = []
        for sub in lines[n + 1 :]:
            m = REGION.match(sub)
            if not m:
                break
            if len(m.group(1)) == 4:
                s, e = int(m.group(2), 16) - base, int(m.group(3), 16) - base
                kids.append((s, e, " [disabled]" not in m.group(5)))
        out.append((n, line.removeprefix("memory-region: "), kids))
    return out


@pytest.mark.parametrize(
    "path",
    [p for p in REAL if p.parent.name == "q35-base" and not _is_flat_file(p)],
    ids=_id,
)
def test_repeated_section_names_resolve_to_the_section_with_regions_in_the_window(path):
    """q35-base has three 'memory-region: pci_bridge_pci' sections (one per pcie-root-port)
    and three 'pci_bridge_io'.  An alias whose window [OOOO, QQQQ] holds regions of exactly
    one of them points to that one."""
    text, (dump,) = load(path)
    sections = _sections_by_text(text)
    names = Counter(name for _, name, _ in sections)
    assert names["pci_bridge_pci"] == 3 and names["pci_bridge_io"] == 3
    checked = 0
    for mr, _ in dump.regions():
        if mr.alias is None or names[mr.alias.target_name] < 2:
            continue
        m = ALIAS_REST.match(REGION.match(text.split("\n")[mr.line - 1]).group(5))
        lo, hi = int(m.group(1), 16), int(m.group(2), 16)
        holding = [
            n
            for n, name, kids in sections
            if name == mr.alias.target_name and any(en and s <= hi and lo <= e for s, e, en in kids)
        ]
        if len(holding) == 1:
            assert mr.alias.target.line == holding[0] + 1, (mr, holding)
            checked += 1
    assert checked >= 4


def test_q35_base_bridge_windows():
    """The three pcie-root-ports' memory windows (lines read from q35-base/info-mtree.txt):
    fde00000 holds 0000:00:05.0 (section at line 180), fe000000 holds 0000:00:04.0 (190),
    fe200000 holds 0000:00:03.0 (203); the section's root line follows its heading."""
    path = REPO / "samples" / "vfio" / "q35-base" / "info-mtree.txt"
    if not path.exists():
        pytest.fail(f"{path} missing")
    text, (dump,) = load(path)
    lines = text.split("\n")
    assert [lines[n - 1] for n in (180, 190, 203)] == ["memory-region: pci_bridge_pci"] * 3
    got = {
        mr.start: mr.alias.target.line
        for mr, _ in dump.regions()
        if mr.alias is not None and mr.name == "pci_bridge_mem"
    }
    assert got == {0xFDE00000: 181, 0xFE000000: 191, 0xFE200000: 204}


def test_alias_target_printed_in_a_tree_is_that_tree_region():
    """'memory-region: system' is the same object as the root of 'address-space: memory'
    (QEMU prints a section per alias-target object; 'bus master' aliases point to system)."""
    path = REPO / "samples" / "vfio" / "q35-base" / "info-mtree.txt"
    if not path.exists():
        pytest.fail(f"{path} missing")
    _, (dump,) = load(path)
    memory = next(g for g in dump.address_spaces if "memory" in g.names).root
    (system,) = [s for s in dump.sections if s.name == "system"]
    assert system.root is memory
    bus_master = [mr for mr, _ in dump.regions() if mr.name == "bus master"]
    assert bus_master and all(mr.alias.target is memory for mr in bus_master)


def test_trailing_blank_after_a_section_name_does_not_break_alias_resolution():
    text = (
        "address-space: memory\n"
        "  0000000000000000-ffffffffffffffff (prio 0, i/o): system\n"
        "    0000000000000000-0000000000000fff (prio 0, ram): alias lo @ram "
        "0000000000000000-0000000000000fff\n"
        "\n"
        "memory-region: ram \n"
        "  0000000000000000-0000000000000fff (prio 0, ram): ram\n"
    )
    for eol in ("\n", "\r\n"):
        (dump,) = parse_text(text.replace("\n", eol), "t.txt")
        (lo,) = dump.address_spaces[0].root.subregions
        assert lo.alias.target is dump.sections[0].root


# --------------------------------------------------------------------------- pre-7.0 layout

PRE_70 = """\
address-space: memory
  0000000000000000-ffffffffffffffff (prio 0, i/o): system
    0000000000000000-0000000007ffffff (prio 0, ram): alias ram-below-4g @pc.ram 0000000000000000-0000000007ffffff
    00000000fee00000-00000000feefffff (prio 4096, i/o): apic-msi

address-space: I/O
  0000000000000000-000000000000ffff (prio 0, i/o): io
    0000000000000060-0000000000000060 (prio 0, i/o): i8042-data

address-space: cpu-memory-0
  0000000000000000-ffffffffffffffff (prio 0, i/o): system
    0000000000000000-0000000007ffffff (prio 0, ram): alias ram-below-4g @pc.ram 0000000000000000-0000000007ffffff
    00000000fee00000-00000000feefffff (prio 4096, i/o): apic-msi

memory-region: pc.ram
  0000000000000000-0000000007ffffff (prio 0, ram): pc.ram

"""  # noqa: E501  (QEMU's lines are as long as they are)


def test_pre_7_0_layout_trees_printed_per_address_space_are_shared():
    """Before 7.0 every address space printed its own copy of its root's tree (spec 3.2);
    identical trees are one region tree in the model."""
    (dump,) = parse_text(PRE_70)
    memory, io, cpu = dump.address_spaces
    assert (memory.names, io.names, cpu.names) == (("memory",), ("I/O",), ("cpu-memory-0",))
    assert memory.root is cpu.root
    assert io.root is not memory.root
    assert not dump.variant.grouped
    alias = memory.root.subregions[0]
    assert alias.alias.target is dump.sections[0].root
    assert format_dump(dump) == PRE_70
    assert len(printed_regions(dump)) == count(PRE_70).tree_lines == 9


def test_pre_7_0_layout_different_trees_stay_apart():
    text = PRE_70.replace(
        "    00000000fee00000-00000000feefffff (prio 4096, i/o): apic-msi\n\nmemory-region",
        "    00000000fee00000-00000000feefffff (prio 4096, i/o): apic-msi-1\n\nmemory-region",
    )
    (dump,) = parse_text(text)
    memory, _, cpu = dump.address_spaces
    assert memory.root is not cpu.root
    assert [c.name for c in cpu.root.subregions] == ["ram-below-4g", "apic-msi-1"]
    assert format_dump(dump) == text


# --------------------------------------------------------------------------- identity


@pytest.mark.parametrize("name", ["info-mtree.txt", "info-mtree-o.txt", "info-mtree-D.txt"])
def test_each_printed_root_of_a_grouped_dump_is_its_own_region(name):
    """Since 7.0 an 'address-space:' group is printed once per root MemoryRegion, and a
    'memory-region:' section once per alias-target object (spec 3.2): two groups (or two
    sections) are two objects even when their text is the same, like the 'bus master
    container' of each PCI device or the 'pci_bridge_io' of each pcie-root-port.  With -o
    the owners make those texts differ; the model of one machine must not depend on -o."""
    path = REPO / "samples" / "vfio" / "q35-base" / name
    if not path.exists():
        pytest.fail(f"{path} missing")
    _, (dump,) = load(path)
    assert dump.variant.grouped
    groups = [g.root for g in dump.address_spaces if g.root is not None]
    sections = [s.root for s in dump.sections if s.root is not None]
    assert (len(groups), len(sections)) == (13, 11)  # 14 headings, cpu-memory-0 + memory grouped
    assert len({id(r) for r in groups}) == len(groups)
    assert len({id(r) for r in sections}) == len(sections)


# ------------------------------------------------- sections printed again, not built again


def _model(dump: MtreeDump) -> tuple:
    """A tree dump as plain data, plus which sections are a region of an address-space
    tree (by identity) and which region each alias resolved to (by line)."""
    mapped = {id(mr) for g in dump.address_spaces if g.root for mr, _ in walk(g.root)}
    shared = [s.root is not None and id(s.root) in mapped for s in dump.sections]
    targets = [
        (mr.line, mr.alias.target.line if mr.alias.target else None)
        for mr, _ in dump.regions()
        if mr.alias is not None
    ]
    return to_data(dump), shared, targets


def _built_whole(monkeypatch, text: str, name: str) -> list:
    """The dumps of a text with every section built from its own lines, as before
    _printed_again (which then only _unify_sections reconciled with the trees)."""
    with monkeypatch.context() as m:
        m.setattr(build._TreeBuilder, "_printed_again", lambda self, block, groups: None)
        return parse_text(text, name)


@pytest.mark.parametrize("path", [p for p in REAL if not _is_flat_file(p)], ids=_id)
def test_a_section_printed_again_is_the_same_model_unbuilt(path, monkeypatch):
    # the region of a tree a section prints again (q35's system, pci, pc.bios) is taken
    # from the tree without building the section: the model is the one building gives
    text = path.read_text(encoding="utf-8")
    (fast,) = parse_text(text, str(path))
    (whole,) = _built_whole(monkeypatch, text, str(path))
    assert _model(fast) == _model(whole)


def test_q35_sections_printed_again():
    path = REPO / "samples" / "qemu" / "x86_64-q35-70dev" / "info-mtree.txt"
    _, (dump,) = load(path)
    memory = next(g.root for g in dump.address_spaces if "memory" in g.names)
    by_name = {s.name: s.root for s in dump.sections}
    assert by_name["system"] is memory  # `memory-region: system` prints memory's root
    pci = next(c for c in memory.subregions if c.name == "pci")
    assert by_name["pci"] is pci


def test_a_section_two_tree_regions_could_be_is_built(monkeypatch):
    # 'x' is printed in two trees with one shape: which object the section prints is
    # not known, so the section keeps its own tree (as _unify_sections decides)
    row = "(prio 0, i/o)"
    text = "\n".join(
        [
            "address-space: a",
            f"  0000000000000000-000000000000ffff {row}: a",
            f"    0000000000000000-00000000000000ff {row}: x",
            f"      0000000000000000-000000000000000f {row}: y",
            f"    0000000000001000-00000000000010ff {row}: alias w @x {0:016x}-{0xFF:016x}",
            "",
            "address-space: b",
            f"  0000000000000000-000000000000ffff {row}: b",
            f"    0000000000000000-00000000000000ff {row}: x",
            f"      0000000000000000-000000000000000f {row}: y",
            "",
            "memory-region: x",
            f"  0000000000000000-00000000000000ff {row}: x",
            f"    0000000000000000-000000000000000f {row}: y",
            "",
        ]
    )
    (dump,) = parse_text(text, "two.txt")
    (whole,) = _built_whole(monkeypatch, text, "two.txt")
    assert _model(dump) == _model(whole)
    (section,) = dump.sections
    trees = [g.root.subregions[0] for g in dump.address_spaces]
    assert section.root.line == 13 and all(section.root is not t for t in trees)


def test_to_data_renders_a_namedtuple_record_by_field_name():
    """Result records are NamedTuples or dataclasses (README, How it is built): the
    generic JSON renderer names the fields of both, nested too, not a bare list."""
    from flatview.pages import PagePart, PageRun

    part = PagePart(0, 16, "msix-table", "i/o", "msix-table")
    run = PageRun(0, 1, 4096, "msix-table", (part,))
    assert to_data({"runs": [run]}) == {
        "runs": [
            {
                "start": 0,
                "count": 1,
                "page_size": 4096,
                "state": "msix-table",
                "parts": [
                    {"start": 0, "end": 16, "name": "msix-table", "type": "i/o",
                     "what": "msix-table"}
                ],
            }
        ]
    }  # fmt: skip
