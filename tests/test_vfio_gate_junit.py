"""Issue 6: the gate's JUnit report for the real VFIO samples, default -> x-no-mmap=on.

The report is a checked-in fixture (tests/fixtures/junit/vfio-default-to-no-mmap.xml):
the test regenerates it, compares byte for byte (FLATVIEW_REGENERATE=1 rewrites it), and
validates it against Jenkins' junit-10.xsd.  The failing testcases must be exactly the
BARs whose `ramd` ranges of the default dump hold a whole 4K page and whose no-mmap dump
has no `ramd` at all (derived here from the dump text with a regex, not from flatview).
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
