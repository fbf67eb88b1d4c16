"""Issue 6: the gate's JUnit report for the real VFIO samples, default -> x-no-mmap=on.

The report is a checked-in fixture (tests/fixtures/junit/vfio-default-to-no-mmap.xml):
the test regenerates it, compares byte for byte (FLATVIEW_REGENERATE=1 rewrites it), and
validates it against Jenkins' junit-10.xsd.  What the fixture claims is checked on its
own against the dump text (regexes and page arithmetic here, not flatview): the failing
testcases are exactly the BARs whose `ramd` ranges of the default dump hold a whole 4K
page, each testcase's page counts and each failure's trapped ranges follow from the
dumps, so a regenerated fixture cannot pass by itself.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "junit" / "vfio-default-to-no-mmap.xml"
BASE = "samples/vfio/q35-base/info-mtree-f.txt"
NOMMAP = "samples/vfio/q35-no-mmap/info-mtree-f.txt"
RAMD = re.compile(
    r"^  ([0-9a-f]{16})-([0-9a-f]{16}) \(prio \d+, ramd\): (\S+) BAR (\d) mmaps\[\d+\]", re.M
)
P = 4096


def _bars_with_direct_pages(text: str) -> set[tuple[str, int]]:
    out = set()
    for m in RAMD.finditer(text.replace("\r\n", "\n")):
        start, end = int(m[1], 16), int(m[2], 16) + 1
        first, last = -(-start // P) * P, end // P * P  # kvm_align_section
        if last > first:
            out.add((m[3], int(m[4])))
    return out


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    out = tmp_path_factory.mktemp("junit") / "gate.xml"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "flatview",
            "gate",
            BASE,
            NOMMAP,
            "--page-size",
            "4K",
            "--junit",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1, proc.stderr
    return out.read_bytes()


def test_report_equals_the_fixture(report: bytes) -> None:
    if os.environ.get("FLATVIEW_REGENERATE"):
        FIXTURE.write_bytes(report)
    assert report == FIXTURE.read_bytes(), "FLATVIEW_REGENERATE=1 rewrites the fixture"


def test_fixture_is_valid_junit() -> None:
    xmlschema = pytest.importorskip("xmlschema")
    xmlschema.XMLSchema(str(FIXTURE.parent / "junit-10.xsd")).validate(str(FIXTURE))


def test_fixture_fails_exactly_the_bars_that_lost_their_mmaps() -> None:
    base = _bars_with_direct_pages((REPO / BASE).read_text())
    assert _bars_with_direct_pages((REPO / NOMMAP).read_text()) == set()
    failed = {
        (tc.get("classname"), int(tc.get("name").split()[0].removeprefix("BAR")))
        for tc in ET.parse(FIXTURE).getroot().iter("testcase")
        if tc.find("failure") is not None
    }
    assert failed == base
    assert {bdf for bdf, _ in failed} == {"0000:00:03.0", "0000:00:04.0", "0000:00:05.0"}


def _direct_page_runs(text: str) -> dict[tuple[str, int], list[tuple[int, int]]]:
    """Per BAR named in the `memory` view: its whole 4K pages inside one ramd range
    (kvm_align_section: start rounded up, end down), as sorted runs [lo, hi)."""
    pages: dict[tuple[str, int], set[int]] = {}
    bar = re.compile(r"^  [0-9a-f]{16}-[0-9a-f]{16} \(prio \d+, \S+\): (\S+) BAR (\d)\b", re.M)
    (memory,) = [v for v in text.replace("\r\n", "\n").split("\n\n") if ' AS "memory",' in v]
    for m in bar.finditer(memory):
        pages.setdefault((m[1], int(m[2])), set())
    for m in RAMD.finditer(memory):
        start, end = int(m[1], 16), int(m[2], 16) + 1
        pages[(m[3], int(m[4]))].update(range(-(-start // P) * P, end // P * P, P))
    runs: dict[tuple[str, int], list[tuple[int, int]]] = {}
    for key, ps in pages.items():
        runs[key] = []
        for p in sorted(ps):
            if runs[key] and runs[key][-1][1] == p:
                runs[key][-1] = (runs[key][-1][0], p + P)
            else:
                runs[key].append((p, p + P))
    return runs


COUNTS = re.compile(r"^(\d+) direct-mapped page\(s\) before, (\d+) after")
TRAPS = re.compile(r"now traps (0x[0-9a-f]+)-(0x[0-9a-f]+) \(BAR")


def test_fixture_page_counts_and_trapped_ranges_follow_from_the_dumps() -> None:
    """Every figure the golden report claims, recomputed from the two dumps: the page
    counts before and after of each testcase, the trapped ranges each failure names (the
    runs of pages direct before), and the suite's totals.  A regenerated report that says
    anything else fails here."""
    before = _direct_page_runs((REPO / BASE).read_text())
    after = _direct_page_runs((REPO / NOMMAP).read_text())
    cases = list(ET.parse(FIXTURE).getroot().iter("testcase"))
    seen = set()
    for tc in cases:
        key = (tc.get("classname"), int(tc.get("name").split()[0].removeprefix("BAR")))
        seen.add(key)
        count_b = sum((hi - lo) // P for lo, hi in before[key])
        count_a = sum((hi - lo) // P for lo, hi in after.get(key, []))
        assert COUNTS.match(tc.find("system-out").text).groups() == (str(count_b), str(count_a))
        failure = tc.find("failure")
        assert (failure is not None) == (count_a < count_b), key
        if failure is not None:
            traps = [(int(a, 16), int(b, 16) + 1) for a, b in TRAPS.findall(failure.get("message"))]
            assert traps == before[key], key
    # one testcase per memory BAR of the baseline (the I/O BAR is in no memory view)
    assert seen == set(before)
    suite = ET.parse(FIXTURE).getroot()
    lost = [k for k in before if before[k]]
    assert (suite.get("tests"), suite.get("failures")) == (str(len(before)), str(len(lost)))
