"""The advisor against real QEMU 7.2 dumps of VFIO-assigned devices (samples/vfio/): an
nvme (0000:00:03.0), an e1000e (0000:00:04.0) and a virtio-net (0000:00:05.0) assigned to
a nested guest, with the default options, with ``x-msix-relocation`` and with
``x-no-mmap``, plus the command lines QEMU refused.

Every expected figure is read here, with regular expressions, from what QEMU and lspci
printed (``info pci``, ``info mtree -f``, ``info mtree -D``, ``qemu-refusal.txt``,
``l1-lspci-vvv.txt``, ``cmdline.txt``), never from flatview's own output.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from flatview import api
from flatview.advisor import simulate
from flatview.model import walk
from flatview.render.advice import advice_data
from flatview.vfio.infopci import parse_info_pci
from flatview.vfio.lspci import parse_lspci
from flatview.vfio.stack import place_bars

ROOT = Path(__file__).resolve().parents[1]
# test_vfio_samples_qemu10.py runs this module again on the QEMU 10 corpus (CORPUS set)
VFIO = ROOT / "samples" / globals().get("CORPUS", "vfio")
BASE = VFIO / "q35-base"
RELOC = VFIO / "q35-msix-relocation-bar"
NOMMAP = VFIO / "q35-no-mmap"
PAGE = 0x1000  # x86 host: 4K pages
DEVICES = ("0000:00:03.0", "0000:00:04.0", "0000:00:05.0")


def read(path: Path) -> str:
    return path.read_bytes().decode("utf-8")  # CRLF kept, as QEMU sent it


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flatview", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        input=stdin,
        timeout=300,
    )


# --- independent readers of the sample files -------------------------------------------------


@dataclass
class LspciDev:
    bdf: str
    ids: str  # vvvv:dddd
    bars: dict[int, tuple[int, bool, bool, bool]] = field(default_factory=dict)
    # index -> (size, is_io, is_64bit, prefetchable)
    count: int | None = None
    table: tuple[int, int] | None = None  # (BIR, offset)
    pba: tuple[int, int] | None = None


_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def read_lspci(text: str) -> dict[str, LspciDev]:
    """``lspci -vvv -nn``: header ``BB:DD.F ... [vvvv:dddd]``, Region lines, MSI-X block."""
    out: dict[str, LspciDev] = {}
    cur = None
    for line in text.splitlines():
        m = re.match(r"^([0-9a-f]{2}:[0-9a-f]{2}\.[0-7]) .*\[([0-9a-f]{4}):([0-9a-f]{4})\]", line)
        if m:
            cur = out.setdefault(f"0000:{m[1]}", LspciDev(f"0000:{m[1]}", f"{m[2]}:{m[3]}"))
            continue
        m = re.match(
            r"^\tRegion (\d): (?:I/O ports at \S+|Memory at \S+ \((32|64)-bit, "
            r"(non-)?prefetchable\))(?: \[\w+\])* \[size=(\d+)([KMG]?)\]$",
            line,
        )
        if m and cur is not None:
            io = "I/O ports" in line
            cur.bars[int(m[1])] = (
                int(m[4]) * _UNITS[m[5]],
                io,
                m[2] == "64",
                not io and m[3] is None,
            )
            continue
        m = re.match(r"^\tCapabilities: \[[0-9a-f]+\] MSI-X: Enable[+-] Count=(\d+)", line)
        if m and cur is not None:
            cur.count = int(m[1])
            continue
        m = re.match(r"^\t\t(Vector table|PBA): BAR=(\d) offset=([0-9a-f]{8})$", line)
        if m and cur is not None:
            where = (int(m[2]), int(m[3], 16))
            if m[1] == "PBA":
                cur.pba = where
            else:
                cur.table = where
    return out


@dataclass
class InfoPciDev:
    ids: str
    qdev_id: str
    bars: dict[int, tuple[int, int, bool, bool, bool]] = field(default_factory=dict)
    # index -> (address, size, is_io, is_64bit, prefetchable)


def read_info_pci(text: str) -> dict[str, InfoPciDev]:
    """``info pci`` (trailing dots before QEMU 9.1), devices keyed by ``vvvv:dddd``."""
    out: dict[str, InfoPciDev] = {}
    cur = None
    for line in text.splitlines():
        m = re.match(r"^    .*: PCI device ([0-9a-f]{4}:[0-9a-f]{4})$", line)
        if m:
            cur = InfoPciDev(m[1], "")
            continue
        m = re.match(
            r"^      BAR([0-5]): (?:(I/O)|(32|64) bit( prefetchable)? memory) at "
            r"0x([0-9a-f]+) \[0x([0-9a-f]+)\]\.?$",  # the '.' is gone from QEMU 9.1
            line,
        )
        if m and cur is not None:
            start, end = int(m[5], 16), int(m[6], 16)
            if start != 0xFFFFFFFFFFFFFFFF:
                cur.bars[int(m[1])] = (
                    start,
                    end - start + 1,
                    m[2] is not None,
                    m[3] == "64",
                    m[4] is not None,
                )
            continue
        m = re.match(r'^      id "(.*)"$', line)
        if m and cur is not None:
            cur.qdev_id = m[1]
            out.setdefault(cur.ids, cur)
            cur = None
    return out


_RANGE = re.compile(
    r"^  ([0-9a-f]{16})-([0-9a-f]{16}) \(prio (-?\d+), ([a-z/-]+)\): (.*?)"
    r"(?: @([0-9a-f]{16}))?(?: KVM)?$"
)


def read_memory_view(text: str) -> list[tuple[int, int, int, str, str, int]]:
    """The ranges of the FlatView whose AS list holds ``memory``:
    (start, end exclusive, prio, type, name, @offset)."""
    views: list[list[str]] = []
    for line in text.splitlines():  # CRLF as QEMU's monitor sent it
        if re.match(r"^FlatView #\d+$", line):
            views.append([])
        elif views:
            views[-1].append(line)
    (view,) = [v for v in views if any(x.startswith(' AS "memory", root: ') for x in v)]
    out = []
    for line in view:
        m = _RANGE.match(line)
        if m:
            s, e = int(m[1], 16), int(m[2], 16) + 1
            out.append((s, e, int(m[3]), m[4], m[5], int(m[6], 16) if m[6] else 0))
    return out


def read_tree_msix(text: str, bdf: str) -> dict[int, dict[str, tuple[int, int, bool]]]:
    """From ``info mtree -D``: per ``<bdf> base BAR N``, its msix-table / msix-pba children
    as (offset in the base BAR, size, disabled)."""
    out: dict[int, dict[str, tuple[int, int, bool]]] = {}
    lines = text.splitlines()
    pat = re.compile(
        r"^( *)([0-9a-f]{16})-([0-9a-f]{16}) \(prio -?\d+, [a-z/-]+\): (.*?)( \[disabled\])?$"
    )
    for i, line in enumerate(lines):
        m = pat.match(line)
        if not m or not m[4].startswith(f"{bdf} base BAR "):
            continue
        k, indent, base = int(m[4].rsplit(" ", 1)[1]), len(m[1]), int(m[2], 16)
        kids = out.setdefault(k, {})
        for child in lines[i + 1 :]:
            c = pat.match(child)
            if not c or len(c[1]) <= indent:
                break
            if c[4] in ("msix-table", "msix-pba"):
                s, e = int(c[2], 16), int(c[3], 16) + 1
                kids[c[4]] = (s - base, e - s, c[5] is not None)
    return out


def read_disabled_mmaps(text: str, bdf: str) -> set[int]:
    """From ``info mtree -D``: the BARs whose ``<bdf> BAR N mmaps[k]`` print [disabled].
    vfio_intx_interrupt (hw/vfio/pci.c) turns every mmap of a device off while an INTx is
    pending; a QEMU_CLOCK_VIRTUAL timer turns them on again, and a stopped VM never runs
    it.  (QEMU 10's q35-msix-relocation-bar run stopped in that state for the nvme.)"""
    pat = re.compile(rf"\): {re.escape(bdf)} BAR (\d) mmaps\[\d+\] \[disabled\]$")
    return {int(m[1]) for line in text.splitlines() if (m := pat.search(line))}


def cmdline_options(folder: Path) -> dict[str, dict[str, str]]:
    """The L2 ``-device vfio-pci,host=...`` options per host BDF."""
    text = read(folder / "cmdline.txt")
    out = {}
    for m in re.finditer(r"-device vfio-pci,(\S+)", text):
        opts = dict(kv.split("=", 1) for kv in m[1].split(",") if "=" in kv)
        out[opts["host"]] = opts
    return out


def lspci_info() -> dict[str, LspciDev]:
    return read_lspci(read(BASE / "l1-lspci-vvv.txt"))


def info_pci_of(folder: Path, bdf: str) -> InfoPciDev:
    return read_info_pci(read(folder / "info-pci.txt"))[lspci_info()[bdf].ids]


def msix_only(dev: LspciDev, index: int) -> bool:
    """A BAR holding only MSI-X: table at 0, PBA in the same BAR, BAR no larger than
    pow2ceil(end of table and PBA) (QEMU's own msix_init_exclusive_bar layout)."""
    n = dev.count
    if dev.table != (index, 0) or dev.pba[0] != index:
        return False
    end = max(16 * n, dev.pba[1] + 8 * ((n + 63) // 64))
    p = 1
    while p < end:
        p *= 2
    return dev.bars[index][0] <= p


def expected_pages(ranges, base: int, size: int) -> tuple[list[int], int]:
    """vfio-msix.md §3.3 steps 4-5: a page is direct iff it lies in a ``ramd`` range trimmed
    to whole pages (kvm_align_section); returns (lost page offsets, ramd bytes)."""
    slots = [
        ((s + PAGE - 1) // PAGE * PAGE, e // PAGE * PAGE)
        for s, e, _, t, _, _ in ranges
        if t == "ramd"
    ]
    lost = [
        off
        for off in range(0, size, PAGE)
        if not any(lo <= base + off and base + off + PAGE <= hi for lo, hi in slots)
    ]
    ramd = sum(
        max(0, min(e, base + size) - max(s, base)) for s, e, _, t, _, _ in ranges if t == "ramd"
    )
    return lost, ramd


# --- 7. q35-base: the pages each device's real flat view loses -----------------------------------


@pytest.fixture(scope="module")
def base_dump_advice() -> list[dict]:
    text = read(BASE / "info-mtree-D.txt") + read(BASE / "info-mtree-f.txt")
    extra = parse_lspci(read(BASE / "l1-lspci-vvv.txt"), "l1-lspci-vvv.txt")
    extra += parse_info_pci(read(BASE / "info-pci.txt"), "info-pci.txt")
    advice, _facts = api.advise(text, "q35-base", [PAGE], extra_pci=extra)
    return advice_data(advice)["devices"]


@pytest.fixture(scope="module")
def base_cli_advice() -> list[dict]:
    """The brief's command line: dumps on stdin, lspci and info pci as options."""
    p = run(
        "advise",
        "-",
        "--lspci",
        str(BASE / "l1-lspci-vvv.txt"),
        "--info-pci",
        str(BASE / "info-pci.txt"),
        "--json",
        stdin=read(BASE / "info-mtree-D.txt") + read(BASE / "info-mtree-f.txt"),
    )
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)["devices"]


@pytest.fixture(scope="module")
def lspci_only_advice() -> list[dict]:
    p = run("advise", str(BASE / "l1-lspci-vvv.txt"), "--json")
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)["devices"]


def page_offsets(runs: list[dict]) -> list[int]:
    """Every page offset of JSON runs (``offset`` .. ``end`` inclusive, ``count`` pages)."""
    out = []
    for r in runs:
        step = (r["end"] + 1 - r["offset"]) // r["count"]
        assert step * r["count"] == r["end"] + 1 - r["offset"]
        out += range(r["offset"], r["end"] + 1, step)
    return out


def _dev(devices: list[dict], bdf: str) -> dict:
    found = [d for d in devices if d["device"] == bdf]
    assert len(found) == 1, [d["device"] for d in devices]
    return found[0]


def _bar(entry: dict, index: int) -> dict:
    (b,) = [b for b in entry["bars"] if b["index"] == index]
    return b


def test_nvme_loses_exactly_its_msix_table_page(base_dump_advice, base_cli_advice):
    ipci = info_pci_of(BASE, "0000:00:03.0")
    bar0_base, bar0_size = ipci.bars[0][:2]  # "BAR0: 64 bit memory at 0xfe200000 [0xfe203fff]."
    view = read_memory_view(read(BASE / "info-mtree-f.txt"))
    (table,) = [
        r for r in view if r[4] == "msix-table" and bar0_base <= r[0] < bar0_base + bar0_size
    ]
    table_page = (table[0] - bar0_base) // PAGE * PAGE
    assert table_page == 0x2000
    # the PBA (lspci: PBA BAR=0 offset=00003000) is in the tree, disabled, and its page is
    # direct-mapped: no msix-pba range in the flat view inside BAR0
    pba_offset = lspci_info()["0000:00:03.0"].pba[1]
    tree = read_tree_msix(read(BASE / "info-mtree-D.txt"), "0000:00:03.0")
    assert tree[0]["msix-pba"][0] == pba_offset and tree[0]["msix-pba"][2] is True
    assert tree[0]["msix-table"] == (table[0] - bar0_base, table[1] - table[0], False)
    assert not [r for r in view if r[4] == "msix-pba" and bar0_base <= r[0] < bar0_base + bar0_size]
    for devices in (base_dump_advice, base_cli_advice):
        d = _dev(devices, "0000:00:03.0")
        assert d["basis"] == "dump" and d["page_size"] == PAGE
        b0 = _bar(d, 0)
        assert (b0["size"], b0["guest_base"]) == (bar0_size, bar0_base)
        assert b0["pages_total"] == bar0_size // PAGE
        assert b0["pages_lost"] == 1
        assert page_offsets(b0["lost_pages"]) == [table_page]
        assert b0["lost_pages"][0]["reason"] == "msix-table"
        assert pba_offset // PAGE * PAGE not in page_offsets(b0["lost_pages"])
        assert d["explanations"] == []  # the simulation of `off` agrees with the dump


@pytest.mark.parametrize("bdf", DEVICES)
def test_every_bar_as_its_real_flat_view_shows(base_dump_advice, base_cli_advice, bdf):
    lsp = lspci_info()[bdf]
    ipci = info_pci_of(BASE, bdf)
    view = read_memory_view(read(BASE / "info-mtree-f.txt"))
    for devices in (base_dump_advice, base_cli_advice):
        d = _dev(devices, bdf)
        assert sorted(b["index"] for b in d["bars"]) == sorted(lsp.bars)
        for k, (addr, size, is_io, is_64, _pf) in ipci.bars.items():
            b = _bar(d, k)
            assert (b["size"], b["is_io"]) == (size, is_io)
            assert b["size"] == lsp.bars[k][0]  # host and guest agree (no relocation)
            if is_io:
                assert b["pages_lost"] == 0 and b["ramd_bytes"] == 0
                continue
            assert b["is_64bit"] == is_64
            lost, ramd = expected_pages(view, addr, size)
            assert b["guest_base"] == addr
            assert b["pages_total"] == size // PAGE
            assert page_offsets(b["lost_pages"]) == lost, (bdf, k)
            assert b["ramd_bytes"] == ramd and b["trapped_bytes"] == size - ramd
            # an MSI-X-only BAR (e1000e BAR3, virtio-net BAR1) holds no registers
            assert b["pages_lost"] == (0 if msix_only(lsp, k) else len(lost)), (bdf, k)


def test_msix_only_bars_are_the_table_bars_of_e1000e_and_virtio(base_dump_advice):
    lsp = lspci_info()
    # e1000e: Count=5, table BAR=3 offset 0, PBA BAR=3 offset 0x2000, BAR3 16K
    assert msix_only(lsp["0000:00:04.0"], 3)
    # virtio-net: Count=4, table BAR=1 offset 0, PBA BAR=1 offset 0x800, BAR1 4K
    assert msix_only(lsp["0000:00:05.0"], 1)
    assert not msix_only(lsp["0000:00:03.0"], 0)
    for bdf, k in (("0000:00:04.0", 3), ("0000:00:05.0", 1)):
        b = _bar(_dev(base_dump_advice, bdf), k)
        assert page_offsets(b["lost_pages"]) == [0]  # trapped, the table page
        assert b["pages_lost"] == 0
        assert any("only the MSI-X table and PBA" in n for n in b["notes"])


@pytest.mark.parametrize("bdf", DEVICES)
def test_lspci_alone_gives_the_same_figures(base_dump_advice, lspci_only_advice, bdf):
    dump = _dev(base_dump_advice, bdf)
    alone = _dev(lspci_only_advice, bdf)
    assert alone["basis"] == "simulated" and alone["page_size"] == PAGE

    def figures(d):
        return [
            (
                b["index"],
                b["size"],
                b["is_io"],
                b["is_64bit"] if not b["is_io"] else None,
                b["pages_total"],
                b["pages_lost"],
                b["ramd_bytes"],
                page_offsets(b["lost_pages"]),
            )
            for b in sorted(d["bars"], key=lambda b: b["index"])
        ]

    assert figures(alone) == figures(dump)
    # the relocation options do not depend on where the guest put the BARs
    assert [
        (r["option"], r["valid"], r["error"], r["added_mmio"], r["pages_recovered"])
        for r in alone["relocations"]
    ] == [
        (r["option"], r["valid"], r["error"], r["added_mmio"], r["pages_recovered"])
        for r in dump["relocations"]
    ]


def test_lspci_alone_nvme_text(lspci_only_advice):
    b0 = _bar(_dev(lspci_only_advice, "0000:00:03.0"), 0)
    lsp = lspci_info()["0000:00:03.0"]
    assert lsp.table == (0, 0x2000) and lsp.bars[0][0] == 0x4000
    assert (b0["pages_total"], b0["pages_lost"]) == (0x4000 // PAGE, 1)
    assert page_offsets(b0["lost_pages"]) == [lsp.table[1] // PAGE * PAGE]


def test_no_mmap_dump_loses_every_register_page():
    text = read(NOMMAP / "info-mtree-D.txt") + read(NOMMAP / "info-mtree-f.txt")
    extra = parse_lspci(read(NOMMAP / "l1-lspci-vvv.txt"), "l1-lspci-vvv.txt")
    advice, _ = api.advise(text, "q35-no-mmap", [PAGE], extra_pci=extra)
    devices = advice_data(advice)["devices"]
    view = read_memory_view(read(NOMMAP / "info-mtree-f.txt"))
    assert not [r for r in view if r[3] == "ramd"]  # x-no-mmap=on: no ramd at all
    for bdf in DEVICES:
        lsp = lspci_info()[bdf]
        d = _dev(devices, bdf)
        for k, (size, is_io, _, _) in lsp.bars.items():
            b = _bar(d, k)
            if is_io:
                continue
            assert b["ramd_bytes"] == 0
            assert page_offsets(b["lost_pages"]) == list(range(0, size, PAGE))
            assert b["pages_lost"] == (0 if msix_only(lsp, k) else size // PAGE)


def test_no_mmap_dump_is_explained():
    text = read(NOMMAP / "info-mtree-D.txt") + read(NOMMAP / "info-mtree-f.txt")
    extra = parse_lspci(read(NOMMAP / "l1-lspci-vvv.txt"), "l1-lspci-vvv.txt")
    advice, _ = api.advise(text, "q35-no-mmap", [PAGE], extra_pci=extra)
    d = _dev(advice_data(advice)["devices"], "0000:00:03.0")
    (why,) = [e for e in d["explanations"] if "x-no-mmap=on" in e]
    assert "no BAR of this device is direct-mapped" in why and "INTx" in why
    # every page traps because nothing is mmap'd, not because of MSI-X: no relocation
    assert d["recommended"]["option"] is None
    assert "relocation=bar" not in d["recommendation"]
    assert all(b["ramd_bytes"] == 0 for b in d["bars"] if not b["is_io"])


def test_relocated_dump_loses_no_register_page():
    """q35-msix-relocation-bar: every real BAR is one ramd range in QEMU's flat view, so
    no host page is lost; the MSI-X BAR QEMU added is not a host BAR."""
    text = read(RELOC / "info-mtree-D.txt") + read(RELOC / "info-mtree-f.txt")
    extra = parse_lspci(read(RELOC / "l1-lspci-vvv.txt"), "l1-lspci-vvv.txt")
    extra += parse_info_pci(read(RELOC / "info-pci.txt"), "info-pci.txt")
    advice, _ = api.advise(text, "reloc", [PAGE], extra_pci=extra)
    devices = advice_data(advice)["devices"]
    view = read_memory_view(read(RELOC / "info-mtree-f.txt"))
    for bdf in DEVICES:
        lsp = lspci_info()[bdf]
        ipci = info_pci_of(RELOC, bdf)
        d = _dev(devices, bdf)
        assert d["basis"] == "dump"
        assert sorted(b["index"] for b in d["bars"]) == sorted(lsp.bars)
        off = read_disabled_mmaps(read(RELOC / "info-mtree-D.txt"), bdf)
        for k, (size, is_io, _, _) in lsp.bars.items():
            if is_io:
                continue
            addr = ipci.bars[k][0]
            lost, ramd = expected_pages(view, addr, size)
            b = _bar(d, k)
            if k in off:  # mmaps off for a pending INTx: every page traps, and it is said
                assert (lost, ramd) == (list(range(0, size, PAGE)), 0), (bdf, k)
                assert (b["pages_lost"], b["ramd_bytes"]) == (size // PAGE, 0)
                assert any(
                    "vfio_intx_interrupt" in e and "[disabled]" in e for e in d["explanations"]
                )
                continue
            assert (lost, ramd) == ([], size), (bdf, k)
            assert (b["pages_lost"], b["lost_pages"], b["ramd_bytes"]) == (0, [], size)
        assert any("already relocated" in e for e in d["explanations"])


# --- 8. the simulated stacks match what QEMU built ---------------------------------------------


def _sample_bars(folder: Path, bdf: str) -> dict[int, tuple[int, int]]:
    return {k: (a, s) for k, (a, s, io, _, _) in info_pci_of(folder, bdf).bars.items() if not io}


def _rel(ranges, bars):
    """Ranges inside the given BARs, relative to each BAR's base."""
    out = []
    for start, end, prio, typ, name, off in ranges:
        for k, (base, size) in bars.items():
            if base <= start < base + size:
                assert end <= base + size, (name, hex(start), hex(end))
                out.append((k, start - base, end - base, prio, typ, name, off))
                break
    return sorted(out)


CONFIGS = [
    # (folder, option per device from its cmdline.txt, x-no-mmap)
    pytest.param(BASE, id="q35-base"),
    pytest.param(RELOC, id="q35-msix-relocation-bar"),
    pytest.param(NOMMAP, id="q35-no-mmap"),
]


def _facts(source: str):
    if source == "lspci":
        facts, _, _ = api.gather_devices(read(BASE / "l1-lspci-vvv.txt"), "l1-lspci-vvv.txt")
    else:
        text = read(BASE / "info-mtree-D.txt") + read(BASE / "info-mtree-f.txt")
        extra = parse_lspci(read(BASE / "l1-lspci-vvv.txt"), "l1-lspci-vvv.txt")
        facts, _, _ = api.gather_devices(text, "q35-base", extra)
    return {f.device.address: f for f in facts}


@pytest.mark.parametrize("source", ["lspci", "q35-base dump"])
@pytest.mark.parametrize("folder", CONFIGS)
@pytest.mark.parametrize("bdf", DEVICES)
def test_simulated_stack_matches_qemu(folder, bdf, source):
    opts = cmdline_options(folder)[bdf]
    option = opts.get("x-msix-relocation", "off")
    no_mmap = opts.get("x-no-mmap", "off") == "on"
    if folder is RELOC:
        assert (
            option == {"0000:00:03.0": "bar2", "0000:00:04.0": "bar5", "0000:00:05.0": "bar2"}[bdf]
        )
    facts = _facts(source)[bdf]
    reloc, tree, view = simulate(facts, option, PAGE, "E2", no_mmap=no_mmap)
    assert reloc.valid, reloc.error
    if read_disabled_mmaps(read(folder / "info-mtree-D.txt"), bdf):
        # The run stopped while an INTx was pending: QEMU had every mmap of the device off,
        # so its flat view is the x-no-mmap one (ranges of `BAR N`, no `mmaps[k]`).
        view = simulate(facts, option, PAGE, "E2", no_mmap=True)[2]

    # BAR sizes and types: info pci of that run
    ipci = info_pci_of(folder, bdf)
    mem = {k: v for k, v in ipci.bars.items() if not v[2]}
    sim_mem = {b.index: b for b in reloc.bars if not b.is_io}
    assert {k: v[1] for k, v in mem.items()} == {k: b.size for k, b in sim_mem.items()}
    for k, (_a, _s, _io, is_64, prefetch) in mem.items():
        assert (sim_mem[k].is_64bit, sim_mem[k].prefetchable) == (is_64, prefetch), k
    io = sorted(k for k, v in ipci.bars.items() if v[2])
    assert io == sorted(b.index for b in reloc.bars if b.is_io)

    # table and PBA: info mtree -D of that run (msix-pba is there, disabled)
    seen = {k: v for k, v in read_tree_msix(read(folder / "info-mtree-D.txt"), bdf).items() if v}
    (k,) = seen
    sim_base = next(
        mr
        for g in tree.address_spaces
        for mr, _ in walk(g.root)
        if mr.name == f"{bdf} base BAR {k}"
    )
    sim_kids = {
        c.name: (c.addr, c.size, not c.enabled)
        for c in sim_base.subregions
        if c.name in ("msix-table", "msix-pba")
    }
    assert sim_kids == seen[k]
    assert seen[k]["msix-pba"][2] is True
    assert (reloc.msix.table_bar, reloc.msix.table_offset) == (k, seen[k]["msix-table"][0])
    assert (reloc.msix.pba_bar, reloc.msix.pba_offset) == (k, seen[k]["msix-pba"][0])

    # ramd and i/o ranges, relative to each BAR's base: info mtree -f of that run
    real = _rel(read_memory_view(read(folder / "info-mtree-f.txt")), _sample_bars(folder, bdf))
    bases = place_bars(reloc, facts.guest_bases, PAGE)
    sim = _rel(
        [(r.start, r.end, r.priority, r.type, r.name, r.offset) for r in view.ranges],
        {b.index: (bases[b.index], b.size) for b in sim_mem.values()},
    )
    assert sim == real
    assert real  # the device is in the sample's flat view


def test_simulation_keeps_the_observed_bases():
    """With the q35-base dump as input, `off` puts every BAR where SeaBIOS put it: the
    simulated flat view equals QEMU's, address for address."""
    facts = _facts("q35-base dump")
    real = read_memory_view(read(BASE / "info-mtree-f.txt"))
    for bdf in DEVICES:
        _reloc, _tree, view = simulate(facts[bdf], "off", PAGE, "E2")
        bars = _sample_bars(BASE, bdf)
        mine = [(r.start, r.end, r.priority, r.type, r.name, r.offset) for r in view.ranges]
        inside = [r for r in real if any(a <= r[0] < a + s for a, s in bars.values())]
        assert mine == inside, bdf


def test_relocated_dump_is_recognised():
    text = read(RELOC / "info-mtree-D.txt") + read(RELOC / "info-mtree-f.txt")
    extra = parse_lspci(read(RELOC / "l1-lspci-vvv.txt"), "l1-lspci-vvv.txt")
    facts, _, _ = api.gather_devices(text, "reloc", extra)
    got = {f.device.address: f.relocated_to for f in facts}
    want = {bdf: int(opts["x-msix-relocation"][3:]) for bdf, opts in cmdline_options(RELOC).items()}
    assert got == want
    # the native layout still comes from the host's lspci
    lsp = lspci_info()
    for f in facts:
        assert (f.device.msix.table_bar, f.device.msix.table_offset) == lsp[f.device.address].table


# --- 9. refused command lines: the advisor's error is QEMU's -------------------------------------

REFUSED = sorted(VFIO.glob("refused-*"))


def _refusal(folder: Path) -> tuple[str, str, str]:
    text = read(folder / "qemu-refusal.txt").strip()
    m = re.match(
        r"^qemu-system-x86_64: -device vfio-pci,host=(?P<bdf>[^,]+),\S*"
        r"x-msix-relocation=(?P<opt>\w+): (?P<msg>vfio (?P=bdf): .*)$",
        text,
    )
    assert m, text
    return m["bdf"], m["opt"], m["msg"]


@pytest.mark.parametrize("folder", REFUSED, ids=[f.name for f in REFUSED])
def test_refusal_text_is_qemus(folder):
    bdf, option, msg = _refusal(folder)
    assert cmdline_options(folder)[bdf]["x-msix-relocation"] == option
    for lspci in (BASE / "l1-lspci-vvv.txt", VFIO / "l1" / "lspci-vvv-nn-after-binding.txt"):
        advice, _ = api.advise(read(lspci), str(lspci), [PAGE], devices=[bdf])
        (d,) = advice_data(advice)["devices"]
        (r,) = [r for r in d["relocations"] if r["option"] == option]
        assert (r["valid"], r["error"]) == (False, msg)
    # and on the command line: --emit-flat of a refused option is QEMU's error, exit 2
    p = run("advise", str(BASE / "l1-lspci-vvv.txt"), "--device", bdf, "--emit-flat", option)
    assert p.returncode == 2
    assert p.stderr.splitlines() == [f"flatview: x-msix-relocation={option}: {msg}"]


def test_refusals_cover_the_three_kinds():
    msgs = {folder.name: _refusal(folder)[2] for folder in REFUSED}
    assert len(msgs) == 3
    assert any("No automatic MSI-X relocation available for device" in m for m in msgs.values())
    assert any(m.endswith("I/O port BAR") for m in msgs.values())
    assert any("consumed by 64-bit BAR" in m for m in msgs.values())


@pytest.mark.parametrize("bdf", DEVICES)
def test_auto_names_each_devices_ids(bdf):
    """QEMU refuses `auto` for any device: "No automatic MSI-X relocation available for
    device %04x:%04x" with the ids lspci -nn prints as [vvvv:dddd]."""
    ids = lspci_info()[bdf].ids
    advice, _ = api.advise(read(BASE / "l1-lspci-vvv.txt"), "l1", [PAGE], devices=[bdf])
    (d,) = advice_data(advice)["devices"]
    (r,) = [r for r in d["relocations"] if r["option"] == "auto"]
    assert r["error"] == f"vfio {bdf}: No automatic MSI-X relocation available for device {ids}"
    # the refused-msix-relocation-auto run passed auto to all three devices
    assert cmdline_options(VFIO / "refused-msix-relocation-auto")[bdf]["x-msix-relocation"] == (
        "auto"
    )


def test_relocations_qemu_accepted_are_valid():
    """q35-msix-relocation-bar ran: every option it used is valid for the advisor, and its
    added MMIO is the BAR QEMU created (info pci of that run)."""
    advice, _ = api.advise(read(BASE / "l1-lspci-vvv.txt"), "l1", [PAGE])
    devices = advice_data(advice)["devices"]
    for bdf, opts in cmdline_options(RELOC).items():
        option = opts["x-msix-relocation"]
        t = int(option[3:])
        (r,) = [r for r in _dev(devices, bdf)["relocations"] if r["option"] == option]
        assert r["valid"] and r["error"] is None
        new_size = info_pci_of(RELOC, bdf).bars[t][1]
        assert t not in lspci_info()[bdf].bars  # a new BAR
        assert r["added_mmio"] == new_size
