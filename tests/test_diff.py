"""flatview.diff and ``flatview diff``: both sides as small mtree snippets written the
way QEMU prints them, then the real dumps of seed 003 (x-msix-relocation off vs bar5)
and the advisor's simulated stacks of the same device.

Expected changes are read off the snippets: every address below is written in the
snippet it comes from.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from pathlib import Path
from textwrap import dedent

import pytest

from flatview import api
from flatview.advisor import simulate
from flatview.diff import (
    RangeChange,
    RangeRef,
    RegionRef,
    Side,
    bar_diffs,
    diff,
    diff_trees,
    kind,
    load_side,
    load_sides,
    range_changes,
    select_dumps,
    side_from_dumps,
    verdict,
)
from flatview.errors import UsageError
from flatview.model import FlatRange, FlatView, FlatViewAS, MtreeDump
from flatview.render.diff import diff_data, diff_text
from flatview.render.qemu import format_flatview, format_mtree

ROOT = Path(__file__).resolve().parents[1]
SEED003 = ROOT / "tests" / "fixtures" / "seeds" / "003_285237e5c96dd813.txt"
K = 1 << 10
P4K, P16K, P64K = 4 * K, 16 * K, 64 * K
SAS = "0001:03:00.0"


def side(text: str, name: str = "t") -> Side:
    return load_side(dedent(text), name)


def changes_of(before: str, after: str):
    b, a = side(before, "before"), side(after, "after")
    assert b.tree is not None and a.tree is not None
    return diff_trees(b.tree, a.tree)


def by_name(changes):
    return {c.path[-1]: c for c in changes}


BASE = """\
    address-space: memory
      0000000000000000-ffffffffffffffff (prio 0, i/o): system
        0000000000000000-0000000000000fff (prio 0, ram): ram
        0000000000010000-0000000000010fff (prio 1, i/o): dev
          0000000000010000-00000000000100ff (prio 0, i/o): regs
          0000000000010800-00000000000108ff (prio 0, i/o): regs
        0000000000020000-0000000000020fff (prio 0, i/o): gone
          0000000000020000-00000000000200ff (prio 0, i/o): inner
        0000000000030000-0000000000030fff (prio 0, ram): alias win @blk 0000000000000000-0000000000000fff

    memory-region: blk
      0000000000000000-0000000000001fff (prio 0, ram): blk
    """  # noqa: E501


# ------------------------------------------------------------------------------- regions


def test_identical_trees_have_no_region_change():
    assert changes_of(BASE, BASE) == ()


def test_region_changes_of_every_kind():
    after = """\
        address-space: memory
          0000000000000000-ffffffffffffffff (prio 0, i/o): system
            0000000000000000-0000000000001fff (prio 0, ram): ram
            0000000000018000-0000000000018fff (prio 2, i/o): dev
              0000000000018000-00000000000180ff (prio 0, i/o): regs
              0000000000018900-00000000000189ff (prio 0, ramd): regs [disabled]
            0000000000030000-0000000000030fff (prio 0, ram): alias win @blk 0000000000001000-0000000000001fff
            0000000000040000-0000000000040fff (prio 0, i/o): new
              0000000000040000-00000000000400ff (prio 0, i/o): new-inner

        memory-region: blk
          0000000000000000-0000000000001fff (prio 0, ram): blk
        """  # noqa: E501
    got = changes_of(BASE, after)
    what = {(c.path, c.what) for c in got}
    sys_ = ("system",)
    assert what == {
        ((*sys_, "ram"), ("resized",)),  # 0x1000 -> 0x2000 bytes
        ((*sys_, "dev"), ("moved", "re-prioritised")),  # 0x10000 -> 0x18000, prio 1 -> 2
        # the second `regs` (occurrence 1): 0x800 -> 0x900 in dev, disabled, i/o -> ramd
        ((*sys_, "dev", "regs"), ("moved", "disabled", "type changed")),
        ((*sys_, "gone"), ("removed",)),
        ((*sys_, "win"), ("alias retargeted",)),  # @blk offset 0 -> 0x1000
        ((*sys_, "new"), ("added",)),
    }
    c = by_name(got)
    # A subtree that comes or goes is one change, counting what went with it.
    assert c["gone"].below == 1 and c["new"].below == 1
    assert c["dev"].before.start == 0x10000 and c["dev"].after.start == 0x18000
    assert c["win"].before.alias == "blk @0x0" and c["win"].after.alias == "blk @0x1000"


def test_duplicate_names_are_matched_by_occurrence_not_confused():
    # Two `regs` under dev: only the second one moves; the first is unchanged.
    after = BASE.replace(
        "0000000000010800-00000000000108ff (prio 0, i/o): regs",
        "0000000000010c00-0000000000010cff (prio 0, i/o): regs",
    )
    got = changes_of(BASE, after)
    assert [(c.path, c.what, c.before.line) for c in got] == [
        (("system", "dev", "regs"), ("moved",), 6)  # line 6 of the snippet: the second regs
    ]


def test_regions_are_matched_by_path_not_by_name_alone():
    # The same name in two containers: moving one `bar` out of devA into devB is a
    # removal and an addition, not a "move" of a region matched by name.
    before = """\
        address-space: memory
          0000000000000000-ffffffffffffffff (prio 0, i/o): system
            0000000000010000-0000000000010fff (prio 0, i/o): devA
              0000000000010000-00000000000100ff (prio 0, i/o): bar
            0000000000020000-0000000000020fff (prio 0, i/o): devB
              0000000000020000-00000000000200ff (prio 0, i/o): bar
        """
    after = """\
        address-space: memory
          0000000000000000-ffffffffffffffff (prio 0, i/o): system
            0000000000010000-0000000000010fff (prio 0, i/o): devA
            0000000000020000-0000000000020fff (prio 0, i/o): devB
              0000000000020000-00000000000200ff (prio 0, i/o): bar
              0000000000020800-00000000000208ff (prio 0, i/o): bar
        """
    got = changes_of(before, after)
    assert {(c.path, c.what) for c in got} == {
        (("system", "devA", "bar"), ("removed",)),
        (("system", "devB", "bar"), ("added",)),
    }


def test_owner_is_part_of_the_path():
    before = """\
        address-space: memory
          0000000000000000-ffffffffffffffff (prio 0, i/o): system
            0000000000010000-0000000000010fff (prio 0, i/o): nvme-bar0 owner:{dev id=nvme0}
            0000000000020000-0000000000020fff (prio 0, i/o): nvme-bar0 owner:{dev id=nvme1}
        """
    # Swap the addresses: matched by owner, both moved (by name alone nothing moved).
    after = """\
        address-space: memory
          0000000000000000-ffffffffffffffff (prio 0, i/o): system
            0000000000010000-0000000000010fff (prio 0, i/o): nvme-bar0 owner:{dev id=nvme1}
            0000000000020000-0000000000020fff (prio 0, i/o): nvme-bar0 owner:{dev id=nvme0}
        """
    got = changes_of(before, after)
    assert sorted((c.before.owner, c.before.start, c.after.start, c.what) for c in got) == [
        ("owner:{dev id=nvme0}", 0x10000, 0x20000, ("moved",)),
        ("owner:{dev id=nvme1}", 0x20000, 0x10000, ("moved",)),
    ]


def test_enabled_region_and_address_space_groups_matched_by_name():
    before = """\
        address-space: memory
        address-space: cpu-memory-0
          0000000000000000-ffffffffffffffff (prio 0, i/o): system
            0000000000010000-0000000000010fff (prio 0, i/o): smram [disabled]
        """
    # QEMU < 7.0 prints one tree per address space: still one change.
    after = """\
        address-space: memory
          0000000000000000-ffffffffffffffff (prio 0, i/o): system
            0000000000010000-0000000000010fff (prio 0, i/o): smram

        address-space: cpu-memory-0
          0000000000000000-ffffffffffffffff (prio 0, i/o): system
            0000000000010000-0000000000010fff (prio 0, i/o): smram
        """
    got = changes_of(before, after)
    assert [(c.where, c.path, c.what) for c in got] == [
        ("address-space: memory, cpu-memory-0", ("system", "smram"), ("enabled",))
    ]


# --------------------------------------------------------------------------- flat ranges


FLAT_BEFORE = """\
    FlatView #0
     AS "memory", root: system
     AS "cpu-memory-0", root: system
     Root memory region: system
      0000000000000000-0000000000000fff (prio 0, ram): ram
      0000000000010000-0000000000013fff (prio 0, ramd): 0000:01:00.0 BAR 0 mmaps[0]
      0000000000020000-0000000000020fff (prio 0, i/o): dev

    FlatView #1
     AS "I/O", root: io
     Root memory region: io
      0000000000000000-000000000000ffff (prio 0, i/o): io
    """

FLAT_AFTER = """\
    FlatView #0
     AS "memory", root: system
     AS "cpu-memory-0", root: system
     Root memory region: system
      0000000000000000-0000000000000fff (prio 0, ram): ram
      0000000000010000-0000000000011fff (prio 0, ramd): 0000:01:00.0 BAR 0 mmaps[0]
      0000000000012000-00000000000120ff (prio 0, i/o): msix-table
      0000000000012100-0000000000012fff (prio 0, i/o): 0000:01:00.0 BAR 0 @0000000000002100
      0000000000013000-0000000000013fff (prio 0, ramd): 0000:01:00.0 BAR 0 mmaps[0] @0000000000003000
      0000000000030000-0000000000030fff (prio 0, i/o): dev

    FlatView #1
     AS "I/O", root: io
     Root memory region: io
      0000000000000000-000000000000ffff (prio 0, i/o): io
    """  # noqa: E501


def test_flat_range_kind_changes_are_swept_and_merged():
    r = diff(side(FLAT_BEFORE, "b"), side(FLAT_AFTER, "a"), [P4K])
    assert r.regions == ()  # flat views only: no tree to compare
    # Identical views are folded; here the I/O view did not change at all.
    assert r.unchanged == (("I/O",),)
    assert len(r.views) == 1
    v = r.views[0]
    assert v.address_spaces == ("memory", "cpu-memory-0")  # one view, two address spaces
    got = [
        (c.start, c.end, c.what, c.before and c.before.name, c.after and c.after.name)
        for c in v.changes
    ]
    bar0 = "0000:01:00.0 BAR 0"
    assert got == [
        # ramd -> i/o: the msix-table, then the trap hole (both no longer direct)
        (0x12000, 0x12100, "kind", f"{bar0} mmaps[0]", "msix-table"),
        (0x12100, 0x13000, "kind", f"{bar0} mmaps[0]", bar0),
        (0x20000, 0x21000, "removed", "dev", None),
        (0x30000, 0x31000, "added", None, "dev"),
    ]
    # The changes inside the BAR are attributed to the device and BAR.
    assert {(c.device, c.bar) for c in v.changes[:2]} == {("0000:01:00.0", 0)}
    assert v.changes[2].device is None


def test_flat_offset_change_with_same_region_is_reported():
    before = dedent(FLAT_BEFORE)
    after = before.replace(
        "0000000000020000-0000000000020fff (prio 0, i/o): dev",
        "0000000000020000-0000000000020fff (prio 0, i/o): dev @0000000000001000",
    )
    views_b = api.parse_text(before)[0].views
    views_a = api.parse_text(after)[0].views
    got = range_changes(views_b[0], views_a[0])
    assert [(c.start, c.end, c.what, c.before.offset, c.after.offset) for c in got] == [
        (0x20000, 0x21000, "offset", 0, 0x1000)
    ]


def test_folding_groups_address_spaces_with_identical_before_and_after_views():
    # Old -f format: one block per address space.  memory and cpu-memory-0 change the
    # same way and are folded; I/O is unchanged.
    def old(text: str) -> str:
        out = []
        for blk in dedent(text).split("\n\n"):
            lines = blk.strip("\n").splitlines()
            if not lines:
                continue
            ranges = [ln for ln in lines if ln.startswith("  ")]
            names = [ln.split('"')[1] for ln in lines if ln.startswith(" AS ")]
            for n in names:
                out.append(f"address-space (flat view): {n}")
                out.extend(ranges)
                out.append("")
        return "\n".join(out) + "\n"

    r = diff(load_side(old(FLAT_BEFORE), "b"), load_side(old(FLAT_AFTER), "a"), [P4K])
    assert [v.address_spaces for v in r.views] == [("memory", "cpu-memory-0")]
    assert r.unchanged == (("I/O",),)


def test_tree_alone_is_flattened_and_compared_with_a_flat_view():
    tree = format_mtree(simulate_sas("off", P4K)[0])
    flat = simulate_sas("off", P4K)[1]
    b, a = load_side(tree, "tree"), load_side(flat, "flat")
    assert b.recomputed and not a.recomputed
    r = diff(b, a, [P4K])
    assert r.views == () and r.regressions == () and r.reverse_regressions == ()
    assert "a tree on one side only: region changes not compared" in r.notes


# ------------------------------------------------------------------------ dump selection


def test_dump_selection_by_line_and_default():
    text = SEED003.read_text()
    dumps = api.parse_text(text, "seed003")
    # Default: the first dump (a flat view at line 81); the next (97) is a flat view
    # too, so it is not taken with it.
    assert [d.line for d in select_dumps(dumps, "s")] == [81]
    assert [d.line for d in select_dumps(dumps, "s", [169, 181])] == [169, 181]
    with pytest.raises(UsageError, match="no dump starts at line 170"):
        select_dumps(dumps, "s", [170])
    with pytest.raises(UsageError, match="at most one tree and one flat-view"):
        select_dumps(dumps, "s", [81, 97])
    s = load_side(text, "seed003")
    assert any("holds 20 dumps" in n for n in s.notes)


def test_tree_then_flat_taken_together_by_default():
    _reloc, tree, view = simulate(sas_facts(), "off", P4K)
    text = format_mtree(tree) + "\n" + "\n".join(format_flatview(view)) + "\n"
    s = load_side(text, "both")
    assert s.tree is not None and s.flat is not None and not s.recomputed


# --------------------------------------------------- seed 003: the real dumps, off vs bar5


@pytest.fixture(scope="module")
def seed003() -> tuple[Side, Side]:
    text = SEED003.read_text()
    # Test #1, x-msix-relocation=off: "FlatView #1" at line 81; test #4, bar5:
    # "FlatView #0" at line 169 (the seed's own line numbers).
    return load_side(text, "off", [81]), load_side(text, "bar5", [169])


def test_seed003_off_vs_bar5_flat_views(seed003):
    off, bar5 = seed003
    r = diff(off, bar5, [P64K])
    assert r.unchanged == ()
    (v,) = r.views
    assert v.address_spaces == ("memory", "cpu-memory")
    got = [
        (c.start, c.end - 1, c.what, c.before and c.before.name, c.after and c.after.name, c.bar)
        for c in v.changes
    ]
    assert got == [
        # the new BAR5 (seed line 174-176) holds the relocated msix-table ...
        (0x200080000000, 0x2000800005FF, "added", None, "msix-table", 5),
        (0x200080000600, 0x20008000FFFF, "added", None, f"{SAS} base BAR 5", 5),
        # ... and BAR1 loses its MSI-X carve-out (lines 87 -> 177), staying i/o
        (0x21000000E000, 0x21000000E5FF, "region", "msix-table", f"{SAS} BAR 1", 1),
    ]
    assert v.changes[2].before.type == v.changes[2].after.type == "i/o"


def test_seed003_pages_per_bar_and_gate_both_ways(seed003):
    off, bar5 = seed003
    r = diff(off, bar5, [P64K])
    (dev,) = r.devices
    bars = {b.index: b for b in dev.bars}
    assert set(bars) == {1, 3, 5}
    # BAR1: no ramd in either dump (no mmap): 0 of 1 page both ways.
    assert (bars[1].pages_before, bars[1].pages_after) == (0, 0)
    assert bars[1].before.ramd_bytes == bars[1].after.ramd_bytes == 0
    assert verdict(bars[1]).startswith("stays trapped (no mmap in either dump)")
    assert "msix-table moved out" in verdict(bars[1])
    # BAR3: 256K ramd = 4 pages of 64K, direct on both sides.
    assert (bars[3].pages_before, bars[3].pages_after) == (4, 4)
    # BAR5: guest space only (no host BAR), holding the msix-table.
    assert bars[5].before is None and bars[5].after.host_size == 0
    assert bars[5].after.holds == ("msix-table",)
    assert r.regressions == () and r.reverse_regressions == ()
    rev = diff(bar5, off, [P64K])
    assert rev.regressions == () and rev.reverse_regressions == ()


def test_seed003_text_says_the_gate_passes_both_ways(seed003):
    out = diff_text(diff(*seed003, [P64K]), None)  # --wide: one line per row
    assert f"== {SAS} (in both)" in out
    assert "stays trapped (no mmap in either dump)" in out
    assert "new BAR, no host pages (relocation space); holds msix-table" in out
    assert "gate BEFORE -> AFTER: passes" in out
    assert "reversed (gate AFTER -> BEFORE): passes" in out


# ---------------------------------------------- the advisor's simulated stacks, off vs bar5


def sas_facts():
    text, name = api.bundled_sample()
    facts, _view, _kvm = api.gather_devices(text, name)
    (f,) = facts
    return f


def simulate_sas(option: str, page: int):
    _reloc, tree, view = simulate(sas_facts(), option, page, "E2")
    return tree, "\n".join(format_flatview(view)) + "\n"


@pytest.mark.parametrize("form", ["tree", "flat"])
def test_simulated_off_vs_bar5_bar1_gains_its_page_at_64k(form):
    def text(option):
        tree, flat = simulate_sas(option, P64K)
        return format_mtree(tree) if form == "tree" else flat

    off, bar5 = load_side(text("off"), "off"), load_side(text("bar5"), "bar5")
    r = diff(off, bar5, [P64K])
    bars = {b.index: b for b in r.devices[0].bars}
    assert (bars[1].pages_before, bars[1].pages_after) == (0, 1)
    assert [(g.start, g.count, g.state) for g in bars[1].gained] == [(0, 1, "direct")]
    assert verdict(bars[1]).startswith("gains 1 page(s)")
    assert r.regressions == ()
    # Reversed: BAR1 loses that page to the msix-table at BAR1+0xe000.
    (reg,) = r.reverse_regressions
    assert (reg.device, reg.index, reg.page_size, reg.pages_before, reg.pages_after) == (
        SAS,
        1,
        P64K,
        1,
        0,
    )
    (trap,) = reg.traps
    assert (trap.name, trap.start, trap.end) == ("msix-table", 0xE000, 0xE000 + 96 * 16)
    if form == "tree":
        whats = {(c.path[-1], c.what) for c in r.regions}
        assert whats == {
            ("msix-table", ("removed",)),
            ("msix-pba", ("removed",)),
            (f"{SAS} base BAR 5", ("added",)),
        }


def test_bar_diffs_device_gone():
    tree, _ = simulate_sas("off", P4K)
    empty = side(
        """\
        address-space: memory
          0000000000000000-ffffffffffffffff (prio 0, i/o): system
        """
    )
    got = bar_diffs(load_side(format_mtree(tree), "b"), empty, [P4K])
    (d,) = got
    assert d.gone and d.index is None and d.regressed
    assert d.pages_before == 15 + 64  # BAR1: 16 pages but the table's; BAR3: 256K / 4K
    assert verdict(d) == "device gone"


# --------------------------------------------------------------------------------- JSON


def test_diff_json_data(seed003):
    data = diff_data(diff(*seed003, [P64K]))
    assert data["gate"] == {
        "passes": True,
        "regressions": [],
        "reverse_passes": True,
        "reverse_regressions": [],
    }
    (dev,) = data["devices"]
    bar1 = next(b for b in dev["bars"] if b["bar"] == 1)
    assert bar1["pages_before"] == bar1["pages_after"] == 0
    assert bar1["before"]["holds"] == ["msix-table"] and bar1["after"]["holds"] == []
    assert [c["what"] for c in dev["ranges"]] == ["added", "added", "region"]
    json.dumps(data)  # plain data


# ---------------------------------------------------------------------------------- CLI


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flatview", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )


def test_cli_diff_seed003_text():
    p = run(
        "diff",
        str(SEED003),
        str(SEED003),
        "--before-dump",
        "81",
        "--after-dump",
        "169",
        "--page-size",
        "64K",
        "--wide",
    )
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""
    assert "stays trapped (no mmap in either dump)" in p.stdout
    assert "gate BEFORE -> AFTER: passes" in p.stdout


def test_cli_diff_json_and_stdin(tmp_path):
    off = tmp_path / "off.txt"
    off.write_text(simulate_sas("off", P64K)[1])
    p = run(
        "diff",
        str(off),
        "-",
        "--json",
        "--page-size",
        "4K,64K",
        stdin=format_mtree(simulate_sas("bar5", P64K)[0]),
    )
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["schema_version"] == 1 and doc["command"] == "diff"
    assert doc["page_sizes"] == [P4K, P64K]
    assert doc["gate"]["passes"] and not doc["gate"]["reverse_passes"]


def test_cli_diff_pasted_mail_text(tmp_path):
    # The same flat views, quoted in a reply (">" prefixes): read as-is.
    before = tmp_path / "b.txt"
    after = tmp_path / "a.txt"
    before.write_text("".join(f"> {ln}\n" for ln in dedent(FLAT_BEFORE).splitlines()))
    after.write_text(dedent(FLAT_AFTER))
    p = run("diff", str(before), str(after), "--wide")
    assert p.returncode == 0, p.stderr
    assert "ramd -> i/o" in p.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("nonexistent.txt", "nonexistent.txt"), "cannot read"),
        (("-", "-"), "only one of the two inputs"),
        ((str(SEED003), str(SEED003), "--before-dump", "5"), "no dump starts at line 5"),
        ((str(SEED003), str(SEED003), "--page-size", "3K"), "not a power of two"),
    ],
)
def test_cli_diff_bad_input_exit_2(args, message):
    p = run("diff", *args, stdin="")
    assert p.returncode == 2
    assert p.stdout == ""
    assert message in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_cli_diff_not_a_dump_exit_2(tmp_path):
    junk = tmp_path / "junk.txt"
    junk.write_text("hello\n")
    p = run("diff", str(junk), str(junk))
    assert p.returncode == 2 and "no 'info mtree' dump found" in p.stderr


def test_side_from_dumps_needs_a_dump():
    with pytest.raises(UsageError):
        side_from_dumps([], "empty")


def test_device_filter_keeps_only_that_device():
    v = ROOT / "samples" / "vfio"
    before = load_side((v / "q35-base" / "info-mtree-f.txt").read_text(), "base")
    after = load_side((v / "q35-msix-relocation-bar" / "info-mtree-f.txt").read_text(), "bar")
    everything = diff(before, after, [P4K])
    assert [d.bdf for d in everything.devices] == ["0000:00:03.0", "0000:00:04.0", "0000:00:05.0"]
    one = diff(before, after, [P4K], ["0000:00:04.0"])
    assert [d.bdf for d in one.devices] == ["0000:00:04.0"]
    assert {b.device for b in one.devices[0].bars} == {"0000:00:04.0"}
    # Real QEMU 7.2 dumps (samples/vfio): the BARs that gain a page are those whose whole
    # 4K pages inside `ramd` ranges (kvm_align_section) grow, read off QEMU's -f text.
    direct_b = _ramd_pages((v / "q35-base" / "info-mtree-f.txt").read_text(), P4K)
    direct_a = _ramd_pages((v / "q35-msix-relocation-bar" / "info-mtree-f.txt").read_text(), P4K)
    derived = {k for k in direct_a if direct_a[k] - direct_b.get(k, set())}
    assert {bdf for bdf, _ in derived} == {"0000:00:03.0", "0000:00:04.0", "0000:00:05.0"}
    gains = {(b.device, b.index) for d in everything.devices for b in d.bars if b.gained}
    assert gains == derived
    for d in everything.devices:
        for b in d.bars:
            if (b.device, b.index) in derived:
                assert len(b.gained) == len(
                    direct_a[b.device, b.index] - direct_b[b.device, b.index]
                )
    assert everything.regressions == ()


RAMD_F = re.compile(
    r"^  ([0-9a-f]{16})-([0-9a-f]{16}) \(prio \d+, ramd\): (\S+) BAR (\d) mmaps\[\d+\]", re.M
)


def _ramd_pages(text: str, page: int) -> dict[tuple[str, int], set[int]]:
    """Per (device, BAR): the page-aligned addresses of whole pages inside one ramd range
    of the `memory` FlatView (start rounded up, end down, as kvm_align_section does)."""
    (memory,) = [v for v in text.replace("\r\n", "\n").split("\n\n") if ' AS "memory",' in v]
    out: dict[tuple[str, int], set[int]] = {}
    for m in RAMD_F.finditer(memory):
        start, end = int(m[1], 16), int(m[2], 16) + 1
        out.setdefault((m[3], int(m[4])), set()).update(
            range(-(-start // page) * page, end // page * page, page)
        )
    return out


@pytest.mark.parametrize(
    "path", [SEED003, ROOT / "samples" / "vfio" / "q35-base" / "info-mtree.txt"]
)
def test_an_input_given_twice_is_read_once_and_named_per_side(path):
    # seed 003 holds 20 dumps (a note names the side); the q35-base tree has devices.
    text = path.read_text()
    once = load_sides([(text, "a", ()), (text, "b", ())])
    apart = (load_side(text, "a"), load_side(text, "b"))
    assert once[1].views is once[0].views  # the second side reused the first's work
    assert [(s.name, s.label, s.notes) for s in once] == [(s.name, s.label, s.notes) for s in apart]
    assert [d.file for s in once for d in (s.tree, s.flat) if d] == [
        d.file for s in apart for d in (s.tree, s.flat) if d
    ]
    assert diff_data(diff(*once, [P4K])) == diff_data(diff(*apart, [P4K]))
    assert diff_text(diff(*once, [P4K])) == diff_text(diff(*apart, [P4K]))


# ------------------------------------------------ region changes on a real QEMU 7.2 tree
# samples/vfio/q35-base/info-mtree.txt (three vfio-pci devices); each candidate is that
# text with one edit made here, so each expected change -- where, the path of names, what
# changed, the region before and after, how many subregions came or went with it, the
# device -- is read off the edited lines.

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


def test_the_second_of_same_named_siblings_moved_is_one_change():
    """pci holds three `pci_bridge_mem` aliases (lines 11-13); the second moves from
    0xfe000000 to 0xfe400000.  QEMU prints system and pci again as memory-region
    sections (same regions, same text): the move is one change, in the address space
    (cpu-memory-0 and memory share that root), at the second sibling's line."""
    old = "00000000fe000000-00000000fe1fffff (prio 1, i/o): alias pci_bridge_mem"
    new = "00000000fe400000-00000000fe5fffff (prio 1, i/o): alias pci_bridge_mem"
    assert TREE.count(old) == 3  # in memory, in the system section, in the pci section
    (c,) = diff_trees(dump(TREE), dump(TREE.replace(old, new)))
    assert (c.where, c.path, c.what, c.below, c.device) == (
        "address-space: cpu-memory-0, memory",
        ("system", "pci", "pci_bridge_mem"),
        ("moved",),
        0,
        None,
    )
    line = next(i for i, x in enumerate(LINES, 1) if old in x)
    alias = "pci_bridge_pci @0xfe000000"  # the alias offset did not change
    assert c.before == RegionRef(
        "pci_bridge_mem", 0xFE000000, 0x200000, 1, "i/o", True, alias, None, line
    )
    assert c.after == RegionRef(
        "pci_bridge_mem", 0xFE400000, 0x200000, 1, "i/o", True, alias, None, line
    )


def test_diff_notes_and_the_device_filter():
    """A tree on one side only (flat views recomputed there); the device filter keeps
    one device; a device in neither input is an error naming every such device."""
    tree_only = load_side(TREE, "tree.txt")
    flat_only = load_side(FLAT, "flat.txt")
    report = diff(tree_only, flat_only, [4096], devices=["0000:00:03.0"])
    assert report.notes == (
        "a tree on one side only: region changes not compared",
        "tree.txt: flat views recomputed from the tree",
    )
    assert report.regions == ()
    assert [d.bdf for d in report.devices] == ["0000:00:03.0"]
    assert {b.device for d in report.devices for b in d.bars} == {"0000:00:03.0"}
    with pytest.raises(UsageError, match=r"^no assigned device 0000:00:1e\.0, 0000:00:1f\.0 in"):
        diff(tree_only, flat_only, [4096], devices=["0000:00:1e.0", "0000:00:1f.0"])
