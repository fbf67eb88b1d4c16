"""The gate over a matrix of bundles (``flatview gate BASE_DIR CAND_DIR``), in process.

Bundles are real QEMU 7.2 dumps from ``samples/`` copied into two folders: the VFIO
samples (samples/vfio/, see tests/test_gate_vfio.py) and a machine without assigned
devices (samples/qemu/x86_64-pc).  Each configuration's expected status comes from the
dump-text oracle of tests/test_gate_vfio.py (a page direct before and not after fails).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_gate_vfio import NVME, direct_pages, drop_device, tree

from flatview.errors import UsageError
from flatview.gate import gate_matrix, pair_bundles, parse_allow

ROOT = Path(__file__).resolve().parents[1]
K4 = 4096
NO_VFIO = (ROOT / "samples" / "qemu" / "x86_64-pc" / "info-mtree.txt").read_text()


def loses_a_page(base: str, cand: str) -> bool:
    """The oracle: some (device, BAR) had a direct page the candidate does not have."""
    b, c = direct_pages(base, K4), direct_pages(cand, K4)
    return any(pages - c.get(key, frozenset()) for key, pages in b.items())


def folders(tmp_path: Path, base: dict[str, str], cand: dict[str, str]) -> tuple[str, str]:
    out = []
    for side, bundles in (("base", base), ("cand", cand)):
        d = tmp_path / side
        d.mkdir()
        for name, text in bundles.items():
            (d / name).write_text(text)
        out.append(str(d))
    return out[0], out[1]


def test_every_configuration_gets_its_verdict(tmp_path):
    relocated, default = tree("q35-msix-relocation-bar"), tree("q35-base")
    assert loses_a_page(relocated, default) and not loses_a_page(default, default)
    base, cand = folders(
        tmp_path,
        {
            "same.txt": default,
            "moved.txt": relocated,
            "gone.txt": default,
            "plain.txt": NO_VFIO,
            ".hidden.txt": relocated,  # dot files and other suffixes are no bundles
            "notes.md": "x",
        },
        {
            "same.txt": default,
            "moved.txt": default,
            "plain.txt": NO_VFIO,
            "added.txt": default,
            ".hidden.txt": default,
            "notes.md": "y",
        },
    )
    assert [n for n, _, _ in pair_bundles(base, cand)] == [
        "added",
        "gone",
        "moved",
        "plain",
        "same",
    ]
    report = gate_matrix(base, cand, [K4])
    by = {v.name: v for v in report.verdicts}
    assert list(by) == ["added", "gone", "moved", "plain", "same"]
    assert (by["added"].status, by["added"].message) == (
        "new",
        f"not in {base}: nothing to compare",
    )
    assert (by["gone"].status, by["gone"].message) == ("missing", f"no gone.txt in {cand}")
    assert by["plain"].status == "nothing to gate"
    assert by["plain"].message == "no assigned device and no device with MSI-X"
    assert by["plain"].report is None and by["gone"].report is None
    assert by["same"].status == "pass" and by["same"].report.ok
    assert by["moved"].status == "regression" and not by["moved"].report.ok
    for name in ("same", "moved"):
        r = by[name].report
        assert by[name].message == (
            f"{len(r.checks)} check(s), {len(r.regressions)} regression(s), 0 allowed"
        )
    assert by["same"].report.regressions == () and by["moved"].report.regressions
    assert (report.baseline, report.candidate, report.page_sizes) == (base, cand, (K4,))
    # each configuration's report names the two bundle files
    assert by["moved"].report.baseline == f"{base}/moved.txt (info mtree at line 1)"
    assert by["moved"].report.candidate == f"{cand}/moved.txt (info mtree at line 1)"
    assert not report.ok  # a regression and a missing configuration


@pytest.mark.parametrize(
    ("names", "ok"),
    [
        ({"same.txt"}, True),
        ({"same.txt", "plain.txt"}, True),  # nothing to gate is no failure
        ({"same.txt", "added.txt"}, True),  # a new configuration is no failure
        ({"same.txt", "gone.txt"}, False),  # a missing one is
    ],
)
def test_the_matrix_fails_on_a_missing_configuration(tmp_path, names, ok):
    default = tree("q35-base")
    every = {"same.txt": default, "plain.txt": NO_VFIO, "gone.txt": default}
    base = {n: t for n, t in every.items() if n in names}
    cand = {n: t for n, t in every.items() if n in names and n != "gone.txt"}
    if "added.txt" in names:
        cand["added.txt"] = default
    b, c = folders(tmp_path, base, cand)
    assert gate_matrix(b, c, [K4]).ok is ok


def test_an_allow_rule_lets_a_configuration_pass(tmp_path):
    relocated, default = tree("q35-msix-relocation-bar"), tree("q35-base")
    b, c = folders(tmp_path, {"moved.txt": relocated}, {"moved.txt": default})
    rules = parse_allow("* * * every table page may move back\n", "allow.txt")
    (v,) = gate_matrix(b, c, [K4], allow=rules).verdicts
    n = len(v.report.allowed)
    assert v.status == "pass" and n > 0 and v.report.regressions == ()
    assert v.message == f"{len(v.report.checks)} check(s), 0 regression(s), {n} allowed"


def test_the_device_filter_reaches_each_configuration(tmp_path):
    default = tree("q35-base")
    b, c = folders(tmp_path, {"one.txt": default}, {"one.txt": drop_device(default, NVME)})
    (everyone,) = gate_matrix(b, c, [K4]).verdicts
    (only,) = gate_matrix(b, c, [K4], devices=[NVME]).verdicts
    assert everyone.status == only.status == "regression"
    assert {x.device for x in only.report.checks} == {NVME}
    assert len({x.device for x in everyone.report.checks}) == 3  # three vfio-pci devices


def test_folder_errors_are_usage_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "a.txt").write_text(tree("q35-base"))
    with pytest.raises(UsageError, match=r"^.*/missing: cannot list: No such file"):
        pair_bundles(str(tmp_path / "missing"), str(tmp_path / "one"))
    with pytest.raises(UsageError, match=r"/empty: no bundle \(\*\.txt\) to gate$"):
        pair_bundles(str(tmp_path / "empty"), str(tmp_path / "one"))
    # an empty candidate folder is fine: every configuration is missing
    assert pair_bundles(str(tmp_path / "one"), str(tmp_path / "empty")) == [
        ("a", str(tmp_path / "one" / "a.txt"), None)
    ]


def test_an_unknown_device_is_an_error_not_a_verdict(tmp_path):
    b, c = folders(tmp_path, {"one.txt": tree("q35-base")}, {"one.txt": tree("q35-base")})
    with pytest.raises(UsageError, match=r"^no assigned device 0000:00:1f\.7 in either input$"):
        gate_matrix(b, c, [K4], devices=["00:1f.7"])
