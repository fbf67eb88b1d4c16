"""flatview.gate and ``flatview gate``: the seed 003 dumps, the advisor's simulated stacks,
the allow-list, and regression tests by mutation.

Mutation tests: every VFIO device described by an ``lspci -vvv`` example in the seeds and
the spec (vfio-msix.md §1.6 SAS3008, §1.7 NVMe), plus the device the seed 003 dumps
show, is simulated with :func:`flatview.advisor.simulate` (``x-msix-relocation=off``,
kernel eras E2 and E1, host pages 4K, 16K and 64K) and printed as ``info mtree``.  The
printed text is then mutated -- the msix-table moved onto a page that was direct-mapped
(in its own BAR or another), enlarged onto one, or an ``mmaps[k]`` line dropped -- and
the gate is run on the tree pair and on the flat views printed from them.

The expected outcome comes from an oracle written here from the spec (vfio-msix.md
§3.1-§3.3), independent of flatview.pages: a host page of a BAR is direct when it lies
inside one ``mmaps[k]`` region and no enabled ``msix-table``/``msix-pba`` overlaps it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from textwrap import dedent

import pytest

from flatview import api
from flatview.advisor import simulate
from flatview.diff import load_side
from flatview.errors import SourceError, UsageError
from flatview.gate import gate, parse_allow
from flatview.render.diff import gate_data, gate_text
from flatview.render.qemu import format_flatview, format_mtree
from flatview.vfio.devices import DeviceFacts
from flatview.vfio.lspci import parse_lspci
from flatview.vfio.pci import PciDevice
from flatview.vfio.stack import relocate

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "tests" / "fixtures" / "seeds"
SEED003 = SEEDS / "003_285237e5c96dd813.txt"
K = 1 << 10
P4K, P16K, P64K = 4 * K, 16 * K, 64 * K
PAGES = (P4K, P16K, P64K)
ERAS = ("E2", "E1")
SAS = "0001:03:00.0"


# ----------------------------------------------------------------- devices and stacks

# vfio-msix.md §1.6 (worked example A, the BAR layout of the Dell HBA330 lspci with the
# 1M BAR3 its tables use) and §1.7 (worked example B, the "Sentinel Rock" NVMe of the
# cloud-hypervisor PR), written as lspci -vvv prints them (§5.1).
SPEC_LSPCI = {
    "spec §1.6 SAS3008": """\
01:00.0 Serial Attached SCSI controller [0107]: Broadcom / LSI SAS3008 PCI-Express Fusion-MPT SAS-3 [1000:0097] (rev 02)
\tRegion 0: I/O ports at 6000 [size=256]
\tRegion 1: Memory at ce500000 (64-bit, non-prefetchable) [size=64K]
\tRegion 3: Memory at ce400000 (64-bit, non-prefetchable) [size=1M]
\tCapabilities: [c0] MSI-X: Enable+ Count=96 Masked-
\t\tVector table: BAR=1 offset=0000e000
\t\tPBA: BAR=1 offset=0000f000
""",  # noqa: E501
    "spec §1.7 NVMe": """\
0000:02:00.0 Non-Volatile memory controller [0108]: Intel Corporation NVMe Datacenter SSD [8086:0b60]
\tRegion 0: Memory at 630040010000 (64-bit, non-prefetchable) [size=16K]
\tCapabilities: [b0] MSI-X: Enable- Count=136 Masked-
\t\tVector table: BAR=0 offset=00002000
\t\tPBA: BAR=0 offset=00003000
""",  # noqa: E501
}


def _layout(d: PciDevice) -> tuple:
    m = d.msix
    assert m is not None
    bars = tuple((b.index, b.size, b.is_io, b.is_64bit) for b in d.bars)
    return bars, (m.vectors, m.table_bar, m.table_offset, m.pba_bar, m.pba_offset)


def vfio_devices() -> list[tuple[str, DeviceFacts]]:
    """Every distinct assigned-device layout the seeds and the spec describe."""
    found: list[tuple[str, PciDevice]] = []
    for path in sorted(SEEDS.glob("*.txt")):
        try:
            found += [(f"{path.name[:3]}:{d.line}", d) for d in parse_lspci(path.read_text())]
        except SourceError:
            continue  # no lspci text in this seed
    for name, text in SPEC_LSPCI.items():
        found += [(name, d) for d in parse_lspci(text)]
    out: dict[tuple, tuple[str, DeviceFacts]] = {}
    for i, (name, d) in enumerate(found):
        if d.msix is None or not relocate(d, "off", P4K).valid:
            continue  # no MSI-X, or BARs without sizes the capability can live in
        d = replace(d, address=f"0000:f{i // 32:x}:{i % 32:02x}.0")
        guest = {b.index: b.address for b in d.bars if b.address is not None}
        out.setdefault(_layout(d), (name, DeviceFacts(d, guest)))
    # The device the seed 003 dumps show, reconciled from dump + lspci (as `advise` does).
    text, name = api.bundled_sample()
    (facts,), _view, _kvm = api.gather_devices(text, name)
    out.setdefault(_layout(facts.device), ("seed 003 dumps", facts))
    return list(out.values())


DEVICES = vfio_devices()


def test_devices_cover_the_seeds_and_the_spec():
    names = [n for n, _ in DEVICES]
    assert "seed 003 dumps" in names and "spec §1.6 SAS3008" in names
    assert "spec §1.7 NVMe" in names
    assert any(n.startswith("000:") for n in names)  # the I350 and SAS of seed 000
    assert len({n[:3] for n in names if n[:3] in ("000", "003")}) == 2
    assert len(DEVICES) >= 8, names


def stack(facts: DeviceFacts, page: int, era: str) -> str:
    _reloc, tree, _view = simulate(facts, "off", page, era)
    assert tree is not None
    return format_mtree(tree)


def flat_text(tree_text: str) -> str:
    (tree,) = api.parse_text(tree_text, "tree")
    return "".join("\n".join(format_flatview(v)) + "\n\n" for v in api.flatten(tree).views)


# -------------------------------------------------------------------------------- oracle

BASE_BAR = re.compile(r"^(?P<bdf>\S+) base BAR (?P<k>\d)$")


def direct_pages(tree_text: str, page: int) -> dict[tuple[str, int], frozenset[int]]:
    """vfio-msix.md §3.1: host page [p, p+P) of a BAR is direct iff it lies inside one
    mmap area and no enabled MSI-X overlay intersects it (absolute guest addresses)."""
    (tree,) = api.parse_text(tree_text, "oracle")
    regions = [mr for mr, _ in tree.regions()]
    overlays = [
        (mr.start, mr.end) for mr in regions if mr.name in ("msix-table", "msix-pba") and mr.enabled
    ]
    out = {}
    for base in regions:
        m = BASE_BAR.match(base.name)
        host = m and next(
            (c for c in base.subregions if c.name == f"{m['bdf']} BAR {m['k']}"), None
        )
        if not host:
            continue
        mmaps = [(c.start, c.end) for c in host.subregions if c.enabled and c.type == "ramd"]
        first = base.start // page * page
        last = -(-(base.start + host.size) // page) * page
        out[(m["bdf"], int(m["k"]))] = frozenset(
            p
            for p in range(first, last, page)
            if any(lo <= p and p + page <= hi for lo, hi in mmaps)
            and not any(lo < p + page and hi > p for lo, hi in overlays)
        )
    return out


def expected_regressions(base: str, mutant: str, page: int) -> set[tuple[str, int]]:
    b, m = direct_pages(base, page), direct_pages(mutant, page)
    return {
        key
        for key, pages in b.items()
        if pages - m.get(key, frozenset()) or len(m.get(key, ())) < len(pages)
    }


# ----------------------------------------------------------------------------- mutations

TABLE_LINE = re.compile(
    r"^(?P<ind> *)(?P<s>[0-9a-f]{16})-(?P<e>[0-9a-f]{16})(?P<rest> \(prio \d+, i/o\): msix-table)$",
    re.M,
)


@dataclass(frozen=True)
class Mutant:
    kind: str  # move, move-other-bar, enlarge, drop-mmap, nudge
    text: str
    note: str


def _table(text: str) -> tuple[int, int, re.Match]:
    (m,) = list(TABLE_LINE.finditer(text))
    return int(m["s"], 16), int(m["e"], 16) + 1, m


def _set_table(text: str, start: int, end: int) -> str:
    _s, _e, m = _table(text)
    line = f"{m['ind']}{start:016x}-{end - 1:016x}{m['rest']}"
    return text[: m.start()] + line + text[m.end() :]


def _bar_of(text: str, addr: int, page: int) -> tuple[str, int] | None:
    (tree,) = api.parse_text(text, "t")
    for mr, _ in tree.regions():
        m = BASE_BAR.match(mr.name)
        if m and mr.start <= addr < mr.end:
            return m["bdf"], int(m["k"])
    return None


def mutants(base: str, page: int) -> list[Mutant]:
    """Derived dumps: the msix-table moved or enlarged onto a direct page, a dropped
    mmaps[k] line, and a nudge of the table inside the page(s) it already takes."""
    out: list[Mutant] = []
    direct = direct_pages(base, page)
    t0, t1, m = _table(base)
    size = t1 - t0
    own = _bar_of(base, t0, page)
    (tree,) = api.parse_text(base, "t")
    bases = {
        (mm["bdf"], int(mm["k"])): mr for mr, _ in tree.regions() if (mm := BASE_BAR.match(mr.name))
    }
    hit = {p for p in range(t0 // page * page, t1, page)}  # pages the table takes now
    mine = sorted(direct.get(own, frozenset()) - hit) if own else []
    bar = bases[own] if own else None
    for p in mine[:1] + mine[-1:] if mine else []:
        start = min(p + (page // 2 if p == mine[-1] and len(mine) > 1 else 0), bar.end - size)
        start -= start % 8
        out.append(Mutant("move", _set_table(base, start, start + size), f"to {start:#x}"))
    after = [p for p in mine if p >= t1]
    before = [p for p in mine if p + page <= t0]
    if after:
        out.append(Mutant("enlarge", _set_table(base, t0, after[0] + 16), f"up to {after[0]:#x}"))
    elif before:
        lo = before[-1] + page - 16
        out.append(Mutant("enlarge", _set_table(base, lo, t1), f"down to {lo:#x}"))
    for key, pages in direct.items():  # onto a direct page of another BAR
        if key == own or not pages:
            continue
        p = min(pages)
        line = m.group(0)
        moved = f"{' ' * (len(m['ind']))}{p:016x}-{p + size - 1:016x}{m['rest']}"
        text = base.replace(line + "\n", "")
        head = re.search(rf"^.*: {re.escape(bases[key].name)}$", text, re.M)
        assert head is not None
        text = text[: head.end()] + "\n" + moved + text[head.end() :]
        out.append(Mutant("move-other-bar", text, f"into {key} at {p:#x}"))
        break
    for mm in re.finditer(r"^.*mmaps\[\d+\]\n", base, re.M):
        text = base[: mm.start()] + base[mm.end() :]
        out.append(Mutant("drop-mmap", text, mm.group(0).strip()))
    nudge = t0 + 8 if (t1 + 8 - 1) // page == (t1 - 1) // page else t0 - 8
    if own and nudge >= bar.start and nudge // page == t0 // page:
        out.append(Mutant("nudge", _set_table(base, nudge, nudge + size), f"to {nudge:#x}"))
    return out


# --------------------------------------------------------------------- the mutation run


@dataclass(frozen=True)
class Outcome:
    device: str
    page: int
    era: str
    mutant: Mutant
    form: str  # tree or flat
    expected: frozenset
    got: frozenset


def _gate_keys(base_text: str, mut_text: str, page: int) -> frozenset:
    report = gate(load_side(base_text, "baseline"), load_side(mut_text, "candidate"), [page])
    return frozenset((r.device, r.bar) for r in report.regressions)


@pytest.fixture(scope="module")
def mutation_run() -> tuple[list[Outcome], list[tuple]]:
    outcomes: list[Outcome] = []
    unmutated: list[tuple] = []
    for name, facts in DEVICES:
        for page in PAGES:
            for era in ERAS:
                base = stack(facts, page, era)
                flat = flat_text(base)
                for b, c in ((base, base), (flat, flat), (base, flat), (flat, base)):
                    unmutated.append((name, page, era, _gate_keys(b, c, page)))
                for mut in mutants(base, page):
                    exp = frozenset(expected_regressions(base, mut.text, page))
                    for form, (b, c) in (
                        ("tree", (base, mut.text)),
                        ("flat", (flat, flat_text(mut.text))),
                    ):
                        got = _gate_keys(b, c, page)
                        outcomes.append(Outcome(name, page, era, mut, form, exp, got))
    return outcomes, unmutated


def test_every_unmutated_pair_passes(mutation_run):
    _outcomes, unmutated = mutation_run
    assert len(unmutated) == len(DEVICES) * len(PAGES) * len(ERAS) * 4
    assert [u for u in unmutated if u[3]] == []


def test_gate_catches_every_mutation_that_loses_a_page(mutation_run):
    outcomes, _ = mutation_run
    wrong = [
        (o.device, o.page, o.era, o.mutant.kind, o.mutant.note, o.form, o.expected, o.got)
        for o in outcomes
        if o.expected != o.got
    ]
    assert wrong == []
    losing = [o for o in outcomes if o.expected]
    caught = [o for o in losing if o.got]
    print(
        f"\nmutations: {len(outcomes)} gate runs, {len(caught)}/{len(losing)} losing "
        f"mutations caught, {len(outcomes) - len(losing)} page-neutral passed"
    )
    assert len(caught) == len(losing) >= 200


def test_moves_and_enlargements_onto_direct_pages_always_lose_a_page(mutation_run):
    # By construction each lands on a page that was direct-mapped: the oracle agrees,
    # so every one of them is a regression the gate must (and does) catch.
    outcomes, _ = mutation_run
    landing = [o for o in outcomes if o.mutant.kind in ("move", "enlarge", "move-other-bar")]
    assert {o.mutant.kind for o in landing} == {"move", "enlarge", "move-other-bar"}
    assert all(o.expected and o.got == o.expected for o in landing)


def test_page_neutral_mutations_pass(mutation_run):
    outcomes, _ = mutation_run
    neutral = [o for o in outcomes if not o.expected]
    # Dropping the mmap of a BAR with no direct page (SAS3008 BAR1 at 64K, the E1
    # table window) and nudging the table inside its page lose nothing.
    assert {o.mutant.kind for o in neutral} >= {"drop-mmap", "nudge"}
    assert all(not o.got for o in neutral)
    dropped = [o for o in outcomes if o.mutant.kind == "drop-mmap"]
    assert any(o.expected for o in dropped) and any(not o.expected for o in dropped)


# ------------------------------------------------------------ seed 003 and the advisor


def test_seed003_real_dumps_pass_both_ways():
    text = SEED003.read_text()
    off, bar5 = load_side(text, "off", [81]), load_side(text, "bar5", [169])
    for b, a in ((off, bar5), (bar5, off)):
        r = gate(b, a, [P64K])
        assert r.ok and r.regressions == ()
        bar1 = next(c for c in r.checks if c.bar == 1)
        assert (bar1.pages_before, bar1.pages_after) == (0, 0)
        assert bar1.verdict.startswith("stays trapped (no mmap in either dump)")
        assert "PASS" in gate_text(r)


def sas_stack(option: str, page: int = P64K) -> tuple[str, str]:
    text, name = api.bundled_sample()
    (facts,), _view, _kvm = api.gather_devices(text, name)
    _reloc, tree, view = simulate(facts, option, page, "E2")
    return format_mtree(tree), "\n".join(format_flatview(view)) + "\n"


@pytest.mark.parametrize("form", [0, 1], ids=["tree", "flat"])
def test_simulated_off_vs_bar5(form):
    off, bar5 = sas_stack("off")[form], sas_stack("bar5")[form]
    r = gate(load_side(off, "off"), load_side(bar5, "bar5"), [P64K])
    assert r.ok
    bar1 = next(c for c in r.checks if c.bar == 1)
    assert (bar1.pages_before, bar1.pages_after) == (0, 1) and "gains 1" in bar1.verdict
    rev = gate(load_side(bar5, "bar5"), load_side(off, "off"), [P64K])
    assert not rev.ok
    (reg,) = rev.regressions
    assert (reg.device, reg.bar, reg.page_size, reg.pages_before, reg.pages_after) == (
        SAS,
        1,
        P64K,
        1,
        0,
    )
    assert "msix-table now traps" in reg.why and "BAR1+0xe000-0xe5ff" in reg.why


def test_device_disappearing_is_a_regression():
    empty = "address-space: memory\n  0000000000000000-ffffffffffffffff (prio 0, i/o): system\n"
    r = gate(load_side(sas_stack("off")[0], "b"), load_side(empty, "c"), [P4K, P64K])
    assert [(x.device, x.bar, x.page_size, x.pages_after) for x in r.regressions] == [
        (SAS, None, P4K, 0),
        (SAS, None, P64K, 0),
    ]
    assert r.regressions[0].why == "device not in the candidate"
    # ... and a new device is not.
    assert gate(load_side(empty, "b"), load_side(sas_stack("off")[0], "c"), [P4K]).ok


def test_device_filter_and_unknown_device():
    off, bar5 = load_side(sas_stack("bar5")[0], "b"), load_side(sas_stack("off")[0], "c")
    assert not gate(off, bar5, [P64K], [SAS]).ok
    with pytest.raises(UsageError, match=r"no assigned device 0000:05:00\.0"):
        gate(off, bar5, [P64K], ["05:00.0"])


def test_no_device_at_all_is_an_input_error():
    empty = load_side(FLAT_NO_DEVICE, "x")
    with pytest.raises(UsageError, match="nothing to gate"):
        gate(empty, empty, [P4K])


FLAT_NO_DEVICE = """\
FlatView #0
 AS "memory", root: system
 Root memory region: system
  0000000000000000-0000000000000fff (prio 0, ram): ram
"""


# ---------------------------------------------------------------------------- allow-list


def test_allow_list_parsing():
    rules = parse_allow(
        dedent(
            """\
            # known regressions
            0001:03:00.0  BAR1  64K  MSI-X table page, tracked in #42
              # an indented comment
            03:00.0       *     *    domain 0 shorthand
            0001:*        3     4k   wildcard device
            """
        ),
        "allow.txt",
    )
    assert [(r.device, r.bar, r.page_size, r.reason, r.line) for r in rules] == [
        ("0001:03:00.0", 1, P64K, "MSI-X table page, tracked in #42", 2),
        ("0000:03:00.0", None, None, "domain 0 shorthand", 4),
        ("0001:*", 3, P4K, "wildcard device", 5),
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("0001:03:00.0 1 64K", "needs DEVICE BAR PAGE_SIZE and a reason"),
        ("0001:03:00.0 7 64K why", "BAR '7' is not"),
        ("0001:03:00.0 1 3K why", "page size '3K' is not"),
        ("0001:03:00.0 BARX 64K why", "BAR 'BARX' is not"),
    ],
)
def test_allow_list_bad_lines_name_file_and_line(line, message):
    with pytest.raises(SourceError) as exc:
        parse_allow(f"# header\n\n{line}\n", "allow.txt")
    assert str(exc.value).startswith("allow.txt:3: ")
    assert message in str(exc.value)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("0001:03:00.0 1 64K", "allow-list rule needs DEVICE BAR PAGE_SIZE and a reason"),
        ("0001:03:00.0 6 64K why", "allow-list: BAR '6' is not '*', 0..5 or BAR0..BAR5"),
        ("0001:03:00.0 BAR6 * why", "allow-list: BAR 'BAR6' is not '*', 0..5 or BAR0..BAR5"),
    ],
)
def test_allow_list_error_is_the_whole_line_as_the_readme_says(line, message):
    """README: every input error is one line, `file:line: what: 'text'` (the rule as
    written, blanks around it trimmed)."""
    with pytest.raises(SourceError) as exc:
        parse_allow(f"# header\n  {line}  \n", "allow.txt")
    assert str(exc.value) == f"allow.txt:2: {message}: {line!r}"


def test_allow_list_takes_every_bar_and_any_case():
    """BAR0..BAR5 are a type 0 header's six BARs (hw/pci/pci.c PCI_NUM_REGIONS - 1); a
    device written as lspci or QEMU prints it in either case matches (QEMU prints BDFs in
    lower case)."""
    rules = parse_allow("".join(f"0A:00.0 BAR{k} 4K bar {k}\n" for k in range(6)), "a")
    assert [r.bar for r in rules] == [0, 1, 2, 3, 4, 5]
    assert all(r.matches("0000:0a:00.0", r.bar, P4K) for r in rules)
    assert not rules[0].matches("0000:0b:00.0", 0, P4K)
    upper = parse_allow("0000:0A:00.* * * upper-case pattern\n", "a")[0]
    assert upper.matches("0000:0a:00.3", 2, P64K)


def test_allow_list_is_honoured_and_reported():
    b, c = load_side(sas_stack("bar5")[0], "b"), load_side(sas_stack("off")[0], "c")
    rules = parse_allow(
        "0001:03:00.0 BAR1 64K table page lost on purpose\n0001:03:00.0 BAR3 * never used\n",
        "allow.txt",
    )
    r = gate(b, c, [P64K, P4K], allow=rules)
    # 64K allowed, 4K still fails (the rule names 64K only).
    assert [(x.bar, x.page_size) for x in r.regressions] == [(1, P4K)]
    (allowed,) = r.allowed
    assert allowed.page_size == P64K and allowed.allowed_by is rules[0]
    assert r.unused_rules == (rules[1],)
    text = gate_text(r, None)  # --wide: one line per row
    assert "ALLOWED    0001:03:00.0 BAR1 64K" in text
    assert "allowed by allow.txt:1: table page lost on purpose" in text
    assert "allow-list rule allow.txt:2 matched no regression" in text
    data = gate_data(r)
    assert data["allowed"][0]["allowed_by"] == {
        "file": "allow.txt",
        "line": 1,
        "reason": "table page lost on purpose",
    }
    assert r.ok is False
    everything = parse_allow("* * * all known\n", "a")
    assert gate(b, c, [P64K, P4K], allow=everything).ok


def test_device_gone_is_allowed_only_by_a_bar_wildcard():
    empty = "address-space: memory\n  0000000000000000-ffffffffffffffff (prio 0, i/o): system\n"
    b, c = load_side(sas_stack("off")[0], "b"), load_side(empty, "c")
    assert not gate(b, c, [P4K], allow=parse_allow(f"{SAS} 1 * no\n", "a")).ok
    assert gate(b, c, [P4K], allow=parse_allow(f"{SAS} * * retired\n", "a")).ok


# ------------------------------------------------------------------------------------ CLI


def run(*args: str, stdin: str | None = None, cwd: Path = ROOT):
    return subprocess.run(
        [sys.executable, "-m", "flatview", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
    )


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for option in ("off", "bar5"):
        tree, flat = sas_stack(option)
        out[f"{option}-tree"] = tmp_path / f"{option}-tree.txt"
        out[f"{option}-tree"].write_text(tree)
        out[f"{option}-flat"] = tmp_path / f"{option}-flat.txt"
        out[f"{option}-flat"].write_text(flat)
    return out


def test_cli_gate_pass_exit_0(files):
    p = run("gate", str(files["off-tree"]), str(files["bar5-flat"]), "--page-size", "64K")
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""
    assert "PASS" in p.stdout and "gains 1 page(s)" in p.stdout


def test_cli_gate_regression_exit_1_one_line(files):
    p = run("gate", str(files["bar5-tree"]), str(files["off-flat"]), "--page-size", "64K", "--wide")
    assert p.returncode == 1
    assert p.stderr == ""
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("REGRESSION ")]
    assert lines == [
        "REGRESSION 0001:03:00.0 BAR1 64K: 1 direct-mapped page(s) before, 0 after: "
        "msix-table now traps 0x21000000e000-0x21000000e5ff (BAR1+0xe000-0xe5ff)"
    ]
    assert p.stdout.rstrip().splitlines()[-1].startswith("FAIL")


def test_cli_gate_seed003_real_dumps_both_ways():
    s = str(SEED003)
    for first, second in (("81", "169"), ("169", "81")):
        p = run(
            "gate", s, s, "--baseline-dump", first, "--candidate-dump", second,
            "--page-size", "64K", "--wide",
        )  # fmt: skip
        assert p.returncode == 0, p.stderr
        assert "stays trapped (no mmap in either dump)" in p.stdout


def test_cli_gate_json_stdin_and_allow(files, tmp_path):
    allow = tmp_path / "allow.txt"
    allow.write_text("# ok\n0001:03:00.0 1 64K known: table page\n")
    p = run(
        "gate",
        "-",
        str(files["off-tree"]),
        "--json",
        "--page-size",
        "4K",
        "--page-size",
        "64K",
        "--allow",
        str(allow),
        stdin=files["bar5-flat"].read_text(),
    )
    assert p.returncode == 1, p.stderr
    doc = json.loads(p.stdout)
    assert doc["schema_version"] == 1 and doc["command"] == "gate" and doc["ok"] is False
    assert [(r["bar"], r["page_size"]) for r in doc["regressions"]] == [(1, P4K)]
    assert [(r["bar"], r["page_size"]) for r in doc["allowed"]] == [(1, P64K)]
    # one run: the 4K page at BAR1+0xe000 that the msix-table (0xe000..0xe5ff) now traps
    (lost,) = doc["regressions"][0]["lost_pages"]
    assert (lost["offset"], lost["end"], lost["count"]) == (0xE000, 0xE000 + P4K - 1, 1)
    assert lost["reason"] == "msix-table"
    statuses = {(c["bar"], c["page_size"]): c["status"] for c in doc["checks"]}
    assert statuses[(1, P64K)] == "allowed" and statuses[(3, P64K)] == "pass"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--allow", "missing-allow.txt"], "missing-allow.txt: cannot read"),
        (["--page-size", "zz"], "--page-size"),
        (["--device", "09:00.0"], "no assigned device 0000:09:00.0"),
        (["--candidate-dump", "7"], "no dump starts at line 7"),
    ],
)
def test_cli_gate_bad_input_exit_2(files, extra, message):
    p = run("gate", str(files["off-tree"]), str(files["bar5-tree"]), *extra)
    assert p.returncode == 2
    assert p.stdout == ""
    assert message in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_cli_gate_bad_allow_line_exit_2(files, tmp_path):
    allow = tmp_path / "allow.txt"
    allow.write_text("0001:03:00.0 1 64K\n")
    p = run("gate", str(files["off-tree"]), str(files["bar5-tree"]), "--allow", str(allow))
    assert p.returncode == 2
    assert p.stderr.startswith(f"flatview: {allow}:1: allow-list rule needs")
