"""The gate as a JUnit XML report, for CI systems that show test results (GitLab's
``artifacts:reports:junit``, GitHub test-report actions, Jenkins).

One ``<testsuite name="flatview gate">`` inside ``<testsuites>``; one ``<testcase>`` per
device, BAR and page size checked (``classname`` the device, ``name`` ``BAR1 at 64K``);
a regression is a ``<failure>``, an allowed one ``<skipped>`` with the allow-list
reason; every testcase carries its verdict in ``<system-out>``.  The layout follows the
JUnit schema of Jenkins' xUnit plugin (``junit-10.xsd``), which tests validate against.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ..gate import GateReport
from .diff import gate_line, page_label
from .diff import gate_text as diff_gate_text

__all__ = ["SUITE", "junit_matrix_xml", "junit_xml"]

SUITE = "flatview gate"


def _case(suite: ET.Element, c) -> None:
    what = f"BAR{c.bar}" if c.bar is not None else "device"
    case = ET.SubElement(
        suite, "testcase", classname=c.device, name=f"{what} at {page_label(c.page_size)}"
    )
    case.set("time", "0")
    r = c.regression
    if r is not None and r.allowed_by is None:
        fail = ET.SubElement(case, "failure", type="regression", message=gate_line(r))
        fail.text = gate_line(r)
    elif r is not None:
        rule = r.allowed_by
        ET.SubElement(
            case, "skipped", message=f"allowed by {rule.where}: {rule.reason}"
        ).text = gate_line(r)
    out = ET.SubElement(case, "system-out")
    out.text = f"{c.pages_before} direct-mapped page(s) before, {c.pages_after} after: {c.verdict}"


def junit_xml(report: GateReport) -> str:
    """The report as a JUnit XML document (a string, ready to write)."""
    tests = str(len(report.checks))
    failures = str(len(report.regressions))
    root = ET.Element(
        "testsuites", name=SUITE, tests=tests, failures=failures, errors="0", time="0"
    )
    suite = ET.SubElement(
        root,
        "testsuite",
        name=SUITE,
        tests=tests,
        failures=failures,
        errors="0",
        skipped=str(len(report.allowed)),
        time="0",
    )
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("baseline", report.baseline),
        ("candidate", report.candidate),
        ("page_sizes", ",".join(page_label(p) for p in report.page_sizes)),
    ):
        ET.SubElement(props, "property", name=name, value=value)
    for c in report.checks:
        _case(suite, c)
    notes = [f"allow-list rule {r.where} matched no regression" for r in report.unused_rules]
    notes += list(report.notes)
    if notes:
        ET.SubElement(suite, "system-out").text = "\n".join(notes)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def junit_matrix_xml(report) -> str:
    """A matrix gate (``flatview gate BASE_DIR CAND_DIR``) as JUnit: one ``<testcase>``
    per configuration (``classname`` ``flatview gate``, ``name`` the configuration); a
    regression or a missing candidate bundle is a ``<failure>``, a configuration with
    nothing to gate or no baseline ``<skipped>``."""
    from .diff import matrix_gate_text

    failures = [v for v in report.verdicts if v.status in ("regression", "missing")]
    skipped = [v for v in report.verdicts if v.status in ("nothing to gate", "new")]
    counts = {"tests": str(len(report.verdicts)), "failures": str(len(failures))}
    root = ET.Element("testsuites", name=SUITE, errors="0", time="0", **counts)
    suite = ET.SubElement(
        root, "testsuite", name=SUITE, errors="0", skipped=str(len(skipped)), time="0", **counts
    )
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("baseline", report.baseline),
        ("candidate", report.candidate),
        ("page_sizes", ",".join(page_label(p) for p in report.page_sizes)),
    ):
        ET.SubElement(props, "property", name=name, value=value)
    for v in report.verdicts:
        case = ET.SubElement(suite, "testcase", classname=SUITE, name=v.name, time="0")
        if v.status in ("regression", "missing"):
            lines = [gate_line(r) for r in v.report.regressions] if v.report else [v.message]
            fail = ET.SubElement(case, "failure", type=v.status, message=f"{v.name}: {v.message}")
            fail.text = "\n".join(lines)
        elif v.status in ("nothing to gate", "new"):
            ET.SubElement(case, "skipped", message=v.message)
        ET.SubElement(case, "system-out").text = (
            diff_gate_text(v.report) if v.report is not None else v.message
        )
    ET.SubElement(suite, "system-out").text = matrix_gate_text(report)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
