"""``flatview gate --junit``: the report validates against the JUnit schema CI systems
read (Jenkins xUnit's junit-10.xsd, see tests/fixtures/junit/README.md), carries the
allow-list, and is written whole or not at all."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import xmlschema

from flatview import api
from flatview.advisor import simulate
from flatview.diff import load_side
from flatview.gate import GateReport, gate, parse_allow
from flatview.render.junit import SUITE, junit_xml
from flatview.render.qemu import format_flatview, format_mtree

ROOT = Path(__file__).resolve().parents[1]
SEED003 = ROOT / "tests" / "fixtures" / "seeds" / "003_285237e5c96dd813.txt"
SCHEMA = xmlschema.XMLSchema(str(ROOT / "tests" / "fixtures" / "junit" / "junit-10.xsd"))
K = 1 << 10
P4K, P64K = 4 * K, 64 * K
SAS = "0001:03:00.0"
EMPTY = "address-space: memory\n  0000000000000000-ffffffffffffffff (prio 0, i/o): system\n"


def sas_stack(option: str, form: str = "tree") -> str:
    text, name = api.bundled_sample()
    (facts,), _view, _kvm = api.gather_devices(text, name)
    _reloc, tree, view = simulate(facts, option, P64K, "E2")
    return format_mtree(tree) if form == "tree" else "\n".join(format_flatview(view)) + "\n"


def reports() -> dict[str, GateReport]:
    seed = SEED003.read_text()
    off, bar5 = load_side(sas_stack("off"), "off"), load_side(sas_stack("bar5"), "bar5")
    allow = parse_allow(f'{SAS} 1 64K <known> & "quoted" reason\n{SAS} 3 * unused\n', "a")
    return {
        "pass": gate(load_side(seed, "s", [81]), load_side(seed, "s", [169]), [P64K]),
        "fail": gate(bar5, off, [P4K, P64K]),
        "allowed": gate(bar5, off, [P4K, P64K], allow=allow),
        "gone": gate(off, load_side(EMPTY, "empty"), [P4K]),
    }


REPORTS = reports()


@pytest.mark.parametrize("which", sorted(REPORTS))
def test_report_validates_against_the_junit_schema(which):
    xml = junit_xml(REPORTS[which])
    SCHEMA.validate(xml)  # raises on any violation
    assert SCHEMA.is_valid(xml)


@pytest.mark.parametrize("which", sorted(REPORTS))
def test_report_counts_and_testcases(which):
    report = REPORTS[which]
    root = ET.fromstring(junit_xml(report))
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == SUITE
    cases = suite.findall("testcase")
    # One testcase per device, BAR and page size checked.
    assert len(cases) == len(report.checks) == int(suite.get("tests")) == int(root.get("tests"))
    failures = [c for c in cases if c.find("failure") is not None]
    skipped = [c for c in cases if c.find("skipped") is not None]
    assert len(failures) == len(report.regressions) == int(suite.get("failures"))
    assert len(skipped) == len(report.allowed) == int(suite.get("skipped"))
    assert suite.get("errors") == "0"
    assert all(c.find("system-out") is not None for c in cases)


def test_failure_names_device_bar_page_size_and_why():
    root = ET.fromstring(junit_xml(REPORTS["fail"]))
    failed = {
        (c.get("classname"), c.get("name")): c.find("failure")
        for c in root.iter("testcase")
        if c.find("failure") is not None
    }
    assert set(failed) == {(SAS, "BAR1 at 4K"), (SAS, "BAR1 at 64K")}
    msg = failed[(SAS, "BAR1 at 64K")].get("message")
    assert msg == (
        f"{SAS} BAR1 64K: 1 direct-mapped page(s) before, 0 after: msix-table now traps "
        "0x21000000e000-0x21000000e5ff (BAR1+0xe000-0xe5ff)"
    )


def test_allowed_regression_is_skipped_with_its_reason_and_unused_rules_reported():
    root = ET.fromstring(junit_xml(REPORTS["allowed"]))
    (skipped,) = list(root.iter("skipped"))
    assert skipped.get("message") == 'allowed by a:1: <known> & "quoted" reason'
    (failure,) = list(root.iter("failure"))
    assert "BAR1 4K" in failure.get("message")
    suite_out = root.find("testsuite").find("system-out")
    assert suite_out is not None and "allow-list rule a:2 matched no regression" in suite_out.text


def test_device_gone_is_a_failing_testcase():
    root = ET.fromstring(junit_xml(REPORTS["gone"]))
    (case,) = [c for c in root.iter("testcase") if c.find("failure") is not None]
    assert case.get("name") == "device at 4K"
    assert "device not in the candidate" in case.find("failure").get("message")


# ------------------------------------------------------------------------------------ CLI


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flatview", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path]:
    off, bar5 = tmp_path / "off.txt", tmp_path / "bar5.txt"
    off.write_text(sas_stack("off", "flat"))
    bar5.write_text(sas_stack("bar5"))
    return off, bar5


@pytest.mark.parametrize(("order", "status"), [((0, 1), 0), ((1, 0), 1)])
def test_cli_writes_a_valid_junit_file_on_pass_and_on_fail(inputs, tmp_path, order, status):
    out = tmp_path / "reports" / "gate.xml"
    out.parent.mkdir()
    args = [str(inputs[i]) for i in order]
    p = run("gate", *args, "--page-size", "64K", "--junit", str(out))
    assert p.returncode == status, p.stderr
    SCHEMA.validate(str(out))
    assert sorted(x.name for x in out.parent.iterdir()) == ["gate.xml"]  # no temp file left


def test_cli_junit_not_written_on_bad_input(inputs, tmp_path):
    out = tmp_path / "gate.xml"
    out.write_text("previous report\n")
    bad = tmp_path / "bad-allow.txt"
    bad.write_text("0001:03:00.0 1\n")
    p = run("gate", *map(str, inputs), "--allow", str(bad), "--junit", str(out))
    assert p.returncode == 2 and p.stdout == ""
    assert out.read_text() == "previous report\n"  # untouched
    p = run("gate", str(inputs[0]), str(tmp_path / "missing.txt"), "--junit", str(out))
    assert p.returncode == 2
    assert out.read_text() == "previous report\n"
    assert sorted(x.name for x in tmp_path.iterdir()) == [
        "bad-allow.txt",
        "bar5.txt",
        "gate.xml",
        "off.txt",
    ]


def test_cli_junit_unwritable_path_is_exit_2(inputs, tmp_path):
    p = run("gate", *map(str, inputs), "--junit", str(tmp_path / "no" / "such" / "dir.xml"))
    assert p.returncode == 2 and p.stdout == ""
    assert "cannot write" in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_schema_rejects_a_malformed_report():
    # The check bites: a testsuite without its counts, or a stray attribute, is refused.
    xml = junit_xml(REPORTS["fail"])
    assert not SCHEMA.is_valid(xml.replace(' failures="2" errors="0" skipped', " skipped"))
    assert not SCHEMA.is_valid(xml.replace("<testsuites ", '<testsuites skipped="0" ', 1))
