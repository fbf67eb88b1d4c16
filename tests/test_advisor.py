"""The MSI-X advisor end to end: the seed dumps and lspci excerpts, the spec's worked
examples, ``flatview advise`` (text, ``--json``, exit status, ``--emit-mtree`` /
``--emit-flat``).

Expected figures come from the seed texts (seed 003: the SAS3008 of the 2017 relocation
RFC; seed 000: the I350 and SAS examples of the merged commit), the spec's worked example
of an NVMe (vfio-msix.md §1.7), or arithmetic written out in the test (vfio-msix.md
§2.1/§2.6 formulas).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from flatview import api
from flatview.render.advice import advice_data, advice_text

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "tests" / "fixtures" / "seeds"

K = 1 << 10
P4K, P16K, P64K = 4 * K, 16 * K, 64 * K
PAGES = (P4K, P16K, P64K)
OPTIONS = ("off", "auto", "bar0", "bar1", "bar2", "bar3", "bar4", "bar5")
STRATEGIES = ("RFC v1 least-cost auto", "last BAR first", "extend only")


# --- the spec's formulas (vfio-msix.md §2.1, §2.6) ----------------------------------------------


def pow2ceil(x: int) -> int:
    p = 1
    while p < x:
        p *= 2
    return p


def ceil_p(x: int, p: int) -> int:
    return (x + p - 1) // p * p


def unit(n: int, p: int) -> int:
    """pow2ceil(ceil_P(16n + 8 ceil(n/64)))"""
    return pow2ceil(ceil_p(16 * n + 8 * ((n + 63) // 64), p))


def extend_cost(size: int, n: int, p: int) -> int:
    """added MMIO of extending an existing BAR: max(2S, 2 unit) - S"""
    return max(2 * size, 2 * unit(n, p)) - size


def rfc_v1_auto(bars: dict[int, tuple[int, bool, bool]], n: int, p: int) -> str:
    """The auto loop of the RFC (seed 003, ``vfio_pci_relocate_msix`` v1): skip I/O BARs and
    BARs over 2G, cost max(2S, S ? 2 unit : unit), first least cost wins, a 64-bit BAR
    skips its upper slot.  ``bars``: {index: (size, is_io, is_64bit)}."""
    best, target, i = None, None, 0
    while i < 6:
        size, is_io, is_64 = bars.get(i, (0, False, False))
        if is_io or size > 0xFFFFFFFF // 2:
            i += 1
            continue
        cost = max(size * 2, unit(n, p) * 2 if size else unit(n, p))
        if best is None or cost < best:
            best, target = cost, i
        i += 2 if is_64 else 1
    return f"bar{target}"


def qemu_accepts(bars: dict[int, tuple[int, bool, bool]], t: int) -> bool:
    """vfio_pci_relocate_msix's checks for an explicit bar<t>."""
    size, is_io, is_64 = bars.get(t, (0, False, False))
    if is_io:
        return False
    if not size and t > 0 and bars.get(t - 1, (0, False, False))[2]:
        return False
    return not (size > 1 << 30 and not is_64)


def last_bar_first(bars, n, p) -> str:
    return next(f"bar{t}" for t in range(5, -1, -1) if qemu_accepts(bars, t))


def extend_only(bars, n, p) -> str:
    mem = [(extend_cost(s, n, p), i) for i, (s, io, _) in bars.items() if s and not io]
    return f"bar{min(mem)[1]}"


# --- helpers ----------------------------------------------------------------------------------


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flatview", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,  # no pipe of the runner's
        timeout=300,
    )


def seed(prefix: str) -> Path:
    found = sorted(SEEDS.glob(f"{prefix}_*.txt"))
    if not found:
        pytest.fail(f"seed {prefix} not found under {SEEDS}")
    return found[0]


def one(devices: list[dict], address: str, page: int) -> dict:
    found = [d for d in devices if d["device"] == address and d["page_size"] == page]
    assert len(found) == 1, [(d["device"], d["page_size"]) for d in devices]
    return found[0]


def bar(entry: dict, index: int, key: str = "bars") -> dict:
    found = [b for b in entry[key] if b["index"] == index]
    assert len(found) == 1, entry[key]
    return found[0]


def reloc(entry: dict, option: str) -> dict:
    found = [r for r in entry["relocations"] if r["option"] == option]
    assert len(found) == 1
    return found[0]


def lost_offsets(b: dict) -> list[int]:
    return page_offsets(b["lost_pages"])


def page_offsets(runs: list[dict]) -> list[int]:
    """Every page offset of JSON runs (``offset`` .. ``end`` inclusive, ``count`` pages)."""
    out = []
    for r in runs:
        step = (r["end"] + 1 - r["offset"]) // r["count"]
        assert step * r["count"] == r["end"] + 1 - r["offset"]
        out += range(r["offset"], r["end"] + 1, step)
    return out


def advise_data(text: str, name: str, pages, **kw) -> list[dict]:
    advice, _facts = api.advise(text, name, pages, **kw)
    return advice_data(advice)["devices"]


# --- 1. Seed 003: the SAS3008 -------------------------------------------------------------------

SAS = "0001:03:00.0"
SAS_N = 96  # seed 003 lspci: "MSI-X: Enable+ Count=96"
SAS_BAR1 = 64 * K  # "Memory at 210000000000 (64-bit, non-prefetchable) [size=64K]"
SAS_BAR3 = 256 * K  # "Memory at 210000040000 (64-bit, non-prefetchable) [size=256K]"
SAS_TABLE = 0xE000  # "Vector table: BAR=1 offset=0000e000"
SAS_BARS = {0: (0, True, False), 1: (SAS_BAR1, False, True), 3: (SAS_BAR3, False, True)}
SAS_REFUSED = {
    "bar0": f"vfio {SAS}: Invalid MSI-X relocation BAR 0, I/O port BAR",
    "bar2": f"vfio {SAS}: Invalid MSI-X relocation BAR 2, consumed by 64-bit BAR 1",
    "bar4": f"vfio {SAS}: Invalid MSI-X relocation BAR 4, consumed by 64-bit BAR 3",
}


def test_bundled_sample_is_seed_003():
    text, _name = api.bundled_sample()
    assert "SAS3008" in text and "Count=96" in text
    assert "0000210000000000-000021000000dfff (prio 0, i/o): 0001:03:00.0 BAR 1" in text
    assert text == seed("003").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def sas_cli() -> list[dict]:
    """``flatview advise --json``: the bundled seed 003 at its default 64K pages."""
    p = run("advise", "--json")
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""
    data = json.loads(p.stdout)
    return data["devices"]


@pytest.fixture(scope="module")
def sas_api() -> list[dict]:
    text, name = api.bundled_sample()
    return advise_data(text, name, PAGES)


def test_sas3008_64k_whole_bar1_lost_with_off(sas_cli, sas_api):
    for devices in (sas_cli, sas_api):
        d = one(devices, SAS, P64K)
        assert d["basis"] == "dump"
        for key in ("bars", "simulated_bars"):  # the dump and the simulation agree here
            b1 = bar(d, 1, key)
            assert (b1["size"], b1["is_64bit"], b1["is_io"]) == (SAS_BAR1, True, False)
            assert b1["pages_total"] == SAS_BAR1 // P64K == 1
            assert b1["pages_lost"] == 1
            assert lost_offsets(b1) == [0]
            b3 = bar(d, 3, key)
            assert (b3["size"], b3["pages_total"], b3["pages_lost"]) == (SAS_BAR3, 4, 0)
        # the seed's test #1 flat view: BAR1 has no ramd, BAR3 is mmaps[0] ramd all through
        assert bar(d, 1)["ramd_bytes"] == 0 and bar(d, 1)["trapped_bytes"] == SAS_BAR1
        assert bar(d, 3)["ramd_bytes"] == SAS_BAR3
        assert bar(d, 0)["is_io"] is True
        off = reloc(d, "off")
        assert off["valid"] and off["pages_lost"] == 1 and off["added_mmio"] == 0


@pytest.mark.parametrize("page", PAGES)
def test_sas3008_recovering_options_and_their_cost(sas_api, page):
    d = one(sas_api, SAS, page)
    u = unit(SAS_N, page)
    expected_added = {
        "bar1": extend_cost(SAS_BAR1, SAS_N, page),  # max(2*64K, 2*unit) - 64K
        "bar3": extend_cost(SAS_BAR3, SAS_N, page),  # max(2*256K, 2*unit) - 256K
        "bar5": u,  # a new BAR of one unit
    }
    assert expected_added["bar1"] == 64 * K and expected_added["bar3"] == 256 * K
    lost_off = reloc(d, "off")["pages_lost"]
    assert lost_off == 1  # 4K: page 0xe000; 16K: page 0xc000; 64K: the only page
    for option, added in expected_added.items():
        r = reloc(d, option)
        assert r["valid"] and r["error"] is None, option
        assert r["added_mmio"] == added, option
        assert r["pages_lost"] == 0 and r["pages_recovered"] == lost_off, option
        assert r["hazards"], option
    new5 = [b for b in reloc(d, "bar5")["bars"] if b["index"] == 5]
    assert new5 == [{"index": 5, "size": u, "new": True, "is_64bit": False}]


@pytest.mark.parametrize("page", PAGES)
def test_sas3008_refused_options_have_qemus_text(sas_api, page):
    d = one(sas_api, SAS, page)
    for option, text in SAS_REFUSED.items():
        r = reloc(d, option)
        assert (r["valid"], r["error"]) == (False, text), option
        assert r["added_mmio"] == 0 and r["pages_recovered"] == 0
    auto = reloc(d, "auto")
    assert auto["valid"] is False
    assert auto["error"].startswith(f"vfio {SAS}: No automatic MSI-X relocation available")
    assert "auto" not in d["ranking"]
    assert set(d["ranking"]) == {"bar1", "bar3", "bar5"}


def test_sas3008_cli_refusals_and_costs_at_64k(sas_cli):
    d = one(sas_cli, SAS, P64K)
    for option, text in SAS_REFUSED.items():
        assert reloc(d, option)["error"] == text
    assert reloc(d, "bar5")["added_mmio"] == unit(SAS_N, P64K) == 64 * K
    assert reloc(d, "bar1")["added_mmio"] == max(2 * SAS_BAR1, 2 * 64 * K) - SAS_BAR1
    assert reloc(d, "bar3")["added_mmio"] == max(2 * SAS_BAR3, 2 * 64 * K) - SAS_BAR3
    assert "No automatic MSI-X relocation available" in reloc(d, "auto")["error"]


def test_sas3008_auto_error_names_the_ids_from_the_config_dump():
    """QEMU prints ``... for device %04x:%04x``; the seed's ``lspci -vbxs`` config dump
    (``00: 00 10 97 00``) gives vendor 0x1000, device 0x0097 (vfio-msix.md §2.4 quotes
    exactly ``No automatic MSI-X relocation available for device 1000:0097``)."""
    text, name = api.bundled_sample()
    m = re.search(r"^00: ([0-9a-f]{2}) ([0-9a-f]{2}) ([0-9a-f]{2}) ([0-9a-f]{2})", text, re.M)
    ids = f"{m[2]}{m[1]}:{m[4]}{m[3]}"
    assert ids == "1000:0097"
    d = one(advise_data(text, name, [P64K]), SAS, P64K)
    assert reloc(d, "auto")["error"] == (
        f"vfio {SAS}: No automatic MSI-X relocation available for device {ids}"
    )


def test_sas3008_4k_simulation_loses_the_table_page_only(sas_api):
    d = one(sas_api, SAS, P4K)
    sim = bar(d, 1, "simulated_bars")
    assert sim["pages_total"] == SAS_BAR1 // P4K == 16
    assert sim["pages_lost"] == 1
    assert lost_offsets(sim) == [SAS_TABLE // P4K * P4K] == [0xE000]
    (page,) = sim["lost_pages"]
    assert page["reason"] == "msix-table"
    # table 0xe000..0xe5ff shares the page with direct-mapped bytes 0xe600..0xefff
    parts = {(x["what"], x["start"], x["end"]) for x in page["shared_with"]}
    assert ("msix-table", 0xE000, 0xE000 + 16 * SAS_N - 1) in parts
    assert sim["ramd_bytes"] == SAS_BAR1 - 16 * SAS_N


def test_sas3008_4k_report_says_what_the_dump_shows_and_why(sas_api):
    d = one(sas_api, SAS, P4K)
    dump = bar(d, 1)  # basis "dump": the seed's test #1 flat view
    assert d["basis"] == "dump"
    assert dump["ramd_bytes"] == 0
    assert dump["pages_lost"] == dump["pages_total"] == 16
    assert lost_offsets(dump) == list(range(0, SAS_BAR1, P4K))
    why = [e for e in d["explanations"] if e.startswith("BAR 1")]
    assert len(why) == 1
    assert "no ramd" in why[0] and "MSIX_MAPPABLE" in why[0]
    assert "vfio_pci_fixup_msix_region" in why[0]
    text, name = api.bundled_sample()
    advice, _ = api.advise(text, name, [P4K])
    out = advice_text(advice)
    assert "explain: BAR 1: the dump shows no direct mapping (no ramd)" in out


def test_sas3008_strategies_follow_the_arithmetic(sas_api):
    for page in PAGES:
        d = one(sas_api, SAS, page)
        got = {s["name"]: s["option"] for s in d["strategies"]}
        # RFC v1: BAR1 costs max(128K, 2 unit) >= 128K, BAR3 512K, new BAR5 unit <= 64K
        assert rfc_v1_auto(SAS_BARS, SAS_N, page) == "bar5"
        # last BAR first: slot 5 is free and accepted
        assert last_bar_first(SAS_BARS, SAS_N, page) == "bar5"
        # extend only: BAR1 +64K beats BAR3 +256K
        assert extend_only(SAS_BARS, SAS_N, page) == "bar1"
        assert got["RFC v1 least-cost auto"] == rfc_v1_auto(SAS_BARS, SAS_N, page)
        assert got["last BAR first"] == last_bar_first(SAS_BARS, SAS_N, page)
        assert got["extend only"] == extend_only(SAS_BARS, SAS_N, page)
        assert got["QEMU auto"] is None


def test_sas3008_reported_working_pair_cites_seed_003(sas_api, sas_cli):
    for d in (one(sas_api, SAS, P64K), one(sas_cli, SAS, P64K)):
        pairs = d["reported_working"]
        assert [p["option"] for p in pairs] == ["bar5"]
        assert "qemu-devel, 2017-12-19" in pairs[0]["source"]
        assert reloc(d, "bar5")["valid"]


def test_sas3008_text_report():
    p = run("advise")
    assert p.returncode == 0 and p.stderr == ""
    out = p.stdout
    assert "SAS3008" in out and "host pages 64K" in out
    for text in SAS_REFUSED.values():
        assert text in out
    assert "reported working (not verified): bar5" in out
    assert "seed 0" not in out and "qemu-devel, 2017-12-19" in out
    assert "No automatic MSI-X relocation available" in out


def test_sas3008_hazards(sas_api):
    d = one(sas_api, SAS, P64K)
    codes = {o: {h["code"] for h in reloc(d, o)["hazards"]} for o in ("bar1", "bar3", "bar5")}
    assert "bar-grows" in codes["bar1"] and "bar-grows" in codes["bar3"]
    # the new BAR5 is 32-bit (no slot 6) and prefetchable; it comes after BAR1, the
    # first memory BAR mpt3sas takes as its registers
    assert {"32-bit-window", "new-bar-attributes"} <= codes["bar5"]
    assert "first-memory-bar" not in codes["bar5"]
    for option in ("bar1", "bar3", "bar5"):
        for h in reloc(d, option)["hazards"]:
            assert h["text"] and h["source"]


@pytest.mark.parametrize("page", ["4K", "64K"])
def test_pre_4_16_kernel_recovers_nothing(page):
    """vfio-msix.md §1.3/§6.1: before 4.16 the kernel (E1) or QEMU's fixup (E0) keeps the
    table page out of the mmap before relocation runs, so no option recovers a page."""
    p = run("advise", "--page-size", page, "--kernel", "4.14", "--json")
    assert p.returncode == 0, p.stderr
    (d,) = json.loads(p.stdout)["devices"]
    assert d["kernel_era"] == "E1"
    # E1 sparse window [floor_P(0xe000), ceil_P(0xe600)): one page at 4K, all of BAR1 at 64K
    sim = bar(d, 1, "simulated_bars")
    size = {"4K": P4K, "64K": P64K}[page]
    lo, hi = SAS_TABLE // size * size, ceil_p(SAS_TABLE + 16 * SAS_N, size)
    assert lost_offsets(sim) == list(range(lo, hi, size))
    for option in ("bar1", "bar3", "bar5"):
        r = reloc(d, option)
        assert r["valid"] and r["pages_recovered"] == 0, option
        assert "old-kernel" in {h["code"] for h in r["hazards"]}
    assert "kernel" in d["recommendation"]


# --- 2. The NVMe of vfio-msix.md §1.7 (lspci only, no dump) -------------------------------------

NVME_LSPCI = (
    "0000:01:00.0 Non-Volatile memory controller [0108]: "
    "Intel Corporation NVMe Datacenter SSD [8086:0b60]\n"
    """\
\tRegion 0: Memory at 630040010000 (64-bit, non-prefetchable) [size=16K]
\tCapabilities: [b0] MSI-X: Enable- Count=136 Masked-
\t\tVector table: BAR=0 offset=00002000
\t\tPBA: BAR=0 offset=00003000
"""
)
NVME = "0000:01:00.0"
NVME_BAR0, NVME_N, NVME_TABLE = 16 * K, 136, 0x2000
NVME_BARS = {0: (NVME_BAR0, False, True)}


@pytest.fixture(scope="module")
def nvme_data() -> list[dict]:
    return advise_data(NVME_LSPCI, "nvme.txt", PAGES)


@pytest.mark.parametrize(
    ("page", "total", "lost"),
    [
        (P4K, NVME_BAR0 // P4K, [NVME_TABLE]),  # 1 of 4: the table page 0x2000
        (P16K, NVME_BAR0 // P16K, [0]),  # 1 of 1
        # sub-page BAR: 1 of 1; host page j = 0 (vfio-msix.md §3.1: the host pages of a BAR
        # are [H + jP, H + (j+1)P) for j = 0 .. ceil(S/P) - 1), wherever the guest puts it
        (P64K, 1, [0]),
    ],
)
def test_nvme_pages(nvme_data, page, total, lost):
    d = one(nvme_data, NVME, page)
    assert d["basis"] == "simulated"
    b0 = bar(d, 0)
    assert (b0["size"], b0["is_64bit"], b0["is_io"]) == (NVME_BAR0, True, False)
    assert b0["pages_total"] == total
    assert b0["pages_lost"] == len(lost) == 1
    assert lost_offsets(b0) == lost
    assert reloc(d, "off")["pages_lost"] == 1


def test_nvme_4k_pba_page_stays_direct(nvme_data):
    # msix-pba is disabled after msix_init: page 0x3000 (PBA 0x3000..0x3017) is mapped
    b0 = bar(one(nvme_data, NVME, P4K), 0)
    assert 0x3000 not in lost_offsets(b0)
    assert b0["ramd_bytes"] == NVME_BAR0 - 16 * NVME_N  # everything but the 0x880 table


@pytest.mark.parametrize(("page", "added"), [(P4K, 16 * K), (P16K, 16 * K), (P64K, 112 * K)])
def test_nvme_bar0_extension_cost(nvme_data, page, added):
    d = one(nvme_data, NVME, page)
    r = reloc(d, "bar0")
    assert r["valid"] and r["pages_recovered"] == 1
    assert r["added_mmio"] == extend_cost(NVME_BAR0, NVME_N, page) == added  # spec table 2.7
    assert [b["size"] for b in r["bars"] if b["index"] == 0] == [NVME_BAR0 + added]


@pytest.mark.parametrize("page", PAGES)
def test_nvme_bar1_refused_and_new_bars(nvme_data, page):
    d = one(nvme_data, NVME, page)
    assert reloc(d, "bar1")["error"] == (
        f"vfio {NVME}: Invalid MSI-X relocation BAR 1, consumed by 64-bit BAR 0"
    )
    assert reloc(d, "auto")["error"] == (
        f"vfio {NVME}: No automatic MSI-X relocation available for device 8086:0b60"
    )
    for t in (2, 3, 4, 5):
        r = reloc(d, f"bar{t}")
        assert r["valid"] and r["added_mmio"] == unit(NVME_N, page)
        (new,) = [b for b in r["bars"] if b["index"] == t]
        assert new["new"] and new["is_64bit"] == (t < 5)  # 64-bit iff the next slot is free


def test_nvme_strategies_all_differ(nvme_data):
    for page in PAGES:
        got = {s["name"]: s["option"] for s in one(nvme_data, NVME, page)["strategies"]}
        want = {
            "RFC v1 least-cost auto": rfc_v1_auto(NVME_BARS, NVME_N, page),
            "last BAR first": last_bar_first(NVME_BARS, NVME_N, page),
            "extend only": extend_only(NVME_BARS, NVME_N, page),
        }
        # new BAR2 (unit) < BAR0 doubled (>= 32K); BAR5 is the last free slot; BAR0 the only
        # BAR to extend
        assert want == {
            "RFC v1 least-cost auto": "bar2",
            "last BAR first": "bar5",
            "extend only": "bar0",
        }
        assert {k: got[k] for k in STRATEGIES} == want


def test_nvme_64k_prefers_extending_the_sub_page_bar(nvme_data):
    """vfio-msix.md §3.4: on 64K hosts a BAR < 64K is direct-mapped only if the guest puts
    it on a page boundary; "prefer relocation targets that extend the sub-page BAR itself
    (its new size >= 2P makes it naturally page aligned) over new BARs", and §3.8: rank by
    (recovered, risk, added MMIO), "never rank by MMIO alone"."""
    d = one(nvme_data, NVME, P64K)
    new_bar = {h["code"] for h in reloc(d, "bar2")["hazards"]}
    assert "sub-page-bar" in new_bar  # the advisor itself flags the guest dependency
    assert "sub-page-bar" not in {h["code"] for h in reloc(d, "bar0")["hazards"]}
    assert d["ranking"][0] == "bar0"
    assert "x-msix-relocation=bar0" in d["recommendation"]


def test_nvme_cli_from_an_lspci_file(tmp_path):
    f = tmp_path / "nvme.txt"
    f.write_text(NVME_LSPCI)
    p = run("advise", str(f), "--page-size", "4K,16K,64K", "--json")
    assert p.returncode == 0, p.stderr
    devices = json.loads(p.stdout)["devices"]
    assert [(d["device"], d["page_size"]) for d in devices] == [
        (NVME, P4K),
        (NVME, P16K),
        (NVME, P64K),
    ]
    assert [bar(d, 0)["pages_lost"] for d in devices] == [1, 1, 1]
    assert [bar(d, 0)["pages_total"] for d in devices] == [4, 1, 1]


# --- 3. Seed 000: the I350 (MSI-X-only BAR3) and the SAS example --------------------------------


@pytest.fixture(scope="module")
def seed000() -> list[dict]:
    path = seed("000")
    return advise_data(path.read_text(encoding="utf-8"), str(path), PAGES)


@pytest.mark.parametrize("page", PAGES)
def test_i350_loses_nothing(seed000, page):
    # "Region 0: ... [size=512K]", "Region 3: ... [size=16K]", Count=10, table BAR3+0,
    # PBA BAR3+0x2000: BAR3 holds only MSI-X (16*10 = 0xa0 table, 8-byte PBA).
    d = one(seed000, "0000:0a:00.0", page)
    assert [(b["index"], b["size"]) for b in d["bars"]] == [(0, 512 * K), (3, 16 * K)]
    assert bar(d, 0)["pages_total"] == 512 * K // page
    assert bar(d, 3)["pages_total"] == max(1, 16 * K // page)
    assert [b["pages_lost"] for b in d["bars"]] == [0, 0]
    assert reloc(d, "off")["pages_lost"] == 0
    assert all(r["pages_recovered"] == 0 for r in d["relocations"])
    assert "no page lost" in d["recommendation"]
    assert any("only the MSI-X table and PBA" in n for n in bar(d, 3)["notes"])


@pytest.mark.parametrize("page", PAGES)
def test_seed000_sas_example(seed000, page):
    # "Region 1: Memory at ef640000 (64-bit, non-prefetchable) [size=64K]", Count=16,
    # table BAR1+0xe000 (16*16 = 0x100 bytes), PBA BAR1+0xf000.
    d = one(seed000, "0000:02:00.0", page)
    b1 = bar(d, 1)
    assert b1["pages_total"] == 64 * K // page
    assert b1["pages_lost"] == 1
    assert lost_offsets(b1) == [0xE000 // page * page]
    assert bar(d, 3)["pages_lost"] == 0
    assert bar(d, 0)["is_io"] is True
    assert reloc(d, "bar5")["added_mmio"] == unit(16, page) == page
    assert reloc(d, "bar1")["added_mmio"] == extend_cost(64 * K, 16, page) == 64 * K
    assert reloc(d, "bar3")["added_mmio"] == extend_cost(256 * K, 16, page) == 256 * K
    for option in ("bar1", "bar3", "bar5"):
        assert reloc(d, option)["pages_recovered"] == 1
    assert reloc(d, "bar0")["error"] == (
        "vfio 0000:02:00.0: Invalid MSI-X relocation BAR 0, I/O port BAR"
    )
    assert reloc(d, "bar2")["error"].endswith("consumed by 64-bit BAR 1")
    assert reloc(d, "bar4")["error"].endswith("consumed by 64-bit BAR 3")


def test_seed000_cli():
    path = seed("000")
    p = run("advise", str(path), "--page-size", "4K,64K")
    assert p.returncode == 0, p.stderr
    assert "I350" in p.stdout and "0000:02:00.0" in p.stdout
    assert "no page lost" in p.stdout


# --- 4. --json structure and exit status ----------------------------------------------------------

BAR_KEYS = {
    "index",
    "size",
    "is_64bit",
    "is_io",
    "ramd_bytes",
    "trapped_bytes",
    "pages_total",
    "pages_lost",
}
RELOC_KEYS = {"option", "valid", "error", "added_mmio", "pages_recovered", "hazards"}


def _check_structure(data: dict) -> None:
    assert isinstance(data["devices"], list) and data["devices"]
    for d in data["devices"]:
        assert isinstance(d["device"], str)
        assert isinstance(d["page_size"], int)
        assert d["bars"]
        for b in d["bars"]:
            assert set(b) >= BAR_KEYS, set(b)
            for k in BAR_KEYS - {"is_64bit", "is_io"}:
                assert isinstance(b[k], int) and b[k] >= 0, (k, b[k])
            assert isinstance(b["is_64bit"], bool) and isinstance(b["is_io"], bool)
            assert b["ramd_bytes"] + b["trapped_bytes"] == b["size"]
            assert b["pages_lost"] <= b["pages_total"]
        assert [r["option"] for r in d["relocations"]] == list(OPTIONS)
        for r in d["relocations"]:
            assert set(r) >= RELOC_KEYS, set(r)
            assert isinstance(r["valid"], bool)
            assert (r["error"] is None) == r["valid"]
            assert isinstance(r["added_mmio"], int) and isinstance(r["pages_recovered"], int)
            assert isinstance(r["hazards"], list)
            for h in r["hazards"]:
                assert {"code", "text", "source"} <= set(h)


def test_json_structure_bundled():
    p = run("advise", "--page-size", "4K,16K,64K", "--json")
    assert p.returncode == 0 and p.stderr == ""
    data = json.loads(p.stdout)
    _check_structure(data)
    assert [d["page_size"] for d in data["devices"]] == [P4K, P16K, P64K]


def test_json_structure_lspci_only(tmp_path):
    f = tmp_path / "nvme.txt"
    f.write_text(NVME_LSPCI)
    p = run("advise", str(f), "--json")
    assert p.returncode == 0
    data = json.loads(p.stdout)
    _check_structure(data)
    assert [d["page_size"] for d in data["devices"]] == [P4K]  # default for a file: 4K


def test_exit_zero_with_and_without_lost_pages(tmp_path):
    # pages lost: the SAS3008 at 64K
    p = run("advise")
    assert p.returncode == 0
    # no page lost: the I350 alone
    i350 = tmp_path / "i350.txt"
    i350.write_text(
        "0a:00.0 Ethernet controller: Intel Corporation I350 Gigabit Network Connection\n"
        "\tRegion 0: Memory at db680000 (32-bit, non-prefetchable) [size=512K]\n"
        "\tRegion 3: Memory at db7f8000 (32-bit, non-prefetchable) [size=16K]\n"
        "\tCapabilities: [70] MSI-X: Enable+ Count=10 Masked-\n"
        "\t\tVector table: BAR=3 offset=00000000\n"
        "\t\tPBA: BAR=3 offset=00002000\n"
    )
    for fmt in ([], ["--json"]):
        p = run("advise", str(i350), "--page-size", "4K,16K,64K", *fmt)
        assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    assert [sum(b["pages_lost"] for b in d["bars"]) for d in data["devices"]] == [0, 0, 0]


def _one_line_error(p: subprocess.CompletedProcess) -> str:
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert p.stdout == ""
    lines = p.stderr.splitlines()
    assert len(lines) == 1, p.stderr
    assert "Traceback" not in p.stderr
    return lines[0]


@pytest.mark.parametrize("size", ["3K", "0", "abc", "4X", "-4K", "4K,3K"])
def test_bad_page_size(size):
    line = _one_line_error(run("advise", f"--page-size={size}"))
    assert "--page-size" in line


def test_unreadable_files(tmp_path):
    line = _one_line_error(run("advise", str(tmp_path / "missing.txt")))
    assert "missing.txt" in line
    line = _one_line_error(run("advise", str(tmp_path)))  # a directory
    assert str(tmp_path) in line
    line = _one_line_error(run("advise", "--lspci", str(tmp_path / "nope.txt")))
    assert "nope.txt" in line


@pytest.mark.parametrize(
    "content",
    [
        "hello world\nthis is not a dump\n",
        "",
        'FlatView #0\n AS "memory", root: system\n Root memory region: system\n'
        "  0000000000000000-000000007fffffff (prio 0, ram): pc.ram\n",
        "\tRegion 0: Memory at zz (64-bit, non-prefetchable) [size=16K]\n",
    ],
)
def test_garbage_input(tmp_path, content):
    f = tmp_path / "garbage.txt"
    f.write_text(content)
    _one_line_error(run("advise", str(f)))
    _one_line_error(run("advise", "-", stdin=content))


def test_binary_input(tmp_path):
    f = tmp_path / "blob.bin"
    f.write_bytes(bytes(range(256)) * 8)
    _one_line_error(run("advise", str(f)))


def test_unknown_device_and_refused_emit():
    assert "0000:99:00.0" in _one_line_error(run("advise", "--device", "0000:99:00.0"))
    line = _one_line_error(run("advise", "--emit-flat", "bar0"))
    assert SAS_REFUSED["bar0"] in line
    line = _one_line_error(run("advise", "--emit-mtree", "auto"))
    assert "No automatic MSI-X relocation available" in line


# --- 5. --emit-mtree parses back and flattens to --emit-flat ------------------------------------

_RANGE_LINE = re.compile(r"^\s+[0-9a-f]{16}-[0-9a-f]{16} \(prio -?\d+, [a-z/-]+\): .*$")


def _range_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if _RANGE_LINE.match(line)]


def _roundtrip(tmp_path: Path, option: str, *args: str) -> list[str]:
    emitted = run("advise", *args, "--emit-mtree", option)
    assert emitted.returncode == 0, emitted.stderr
    assert emitted.stdout.startswith("address-space: ")
    f = tmp_path / f"sim-{option}.txt"
    f.write_text(emitted.stdout)
    parsed = run("parse", str(f))
    assert parsed.returncode == 0, parsed.stderr
    assert "info mtree" in parsed.stdout
    again = run("parse", str(f), "--format", "qemu")
    assert again.returncode == 0 and again.stdout == emitted.stdout
    flat = run("flatten", str(f))
    assert flat.returncode == 0, flat.stderr
    printed = run("advise", *args, "--emit-flat", option)
    assert printed.returncode == 0, printed.stderr
    want = _range_lines(printed.stdout)
    assert want, printed.stdout
    assert _range_lines(flat.stdout) == want
    return want


@pytest.mark.parametrize("option", ["off", "bar1", "bar3", "bar5"])
@pytest.mark.parametrize("page", ["4K", "64K"])
def test_emit_roundtrip_sas3008(tmp_path, option, page):
    lines = _roundtrip(tmp_path, option, "--page-size", page)
    table = [x for x in lines if x.endswith("): msix-table")]
    assert len(table) == 1
    if option != "off":  # the relocated MSI-X space past the device's own BAR
        assert any(" base BAR " in x for x in lines)


@pytest.mark.parametrize("option", ["off", "bar0", "bar2", "bar5"])
def test_emit_roundtrip_nvme(tmp_path, option):
    f = tmp_path / "nvme.txt"
    f.write_text(NVME_LSPCI)
    for page in ("4K", "64K"):
        _roundtrip(tmp_path, option, str(f), "--page-size", page)


def test_emit_flat_sas3008_4k_off_is_spec_example_a():
    # vfio-msix.md §1.6, E2, P = 4K: G+0000-dfff ramd, e000-e5ff msix-table, e600-ffff ramd
    p = run("advise", "--page-size", "4K", "--emit-flat", "off")
    assert p.returncode == 0
    g = 0x210000000000  # seed 003: "Memory at 210000000000 (64-bit, non-prefetchable)"
    lines = _range_lines(p.stdout)
    assert lines[:3] == [
        f"{g:016x}-{g + 0xDFFF:016x} (prio 0, ramd): {SAS} BAR 1 mmaps[0]",
        f"{g + 0xE000:016x}-{g + 0xE5FF:016x} (prio 0, i/o): msix-table",
        f"{g + 0xE600:016x}-{g + 0xFFFF:016x} (prio 0, ramd): {SAS} BAR 1 mmaps[0] @{0xE600:016x}",
    ]
