"""scripts/qemu_side_by_side.py derives the backports suite from the machine's own apt
sources (never a hard-coded archive).  The inputs are made-up sources in both formats,
with a placeholder address."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "qemu_side_by_side", Path(__file__).resolve().parents[1] / "scripts" / "qemu_side_by_side.py"
)
assert _spec is not None and _spec.loader is not None
side = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(side)

DEB822 = """Types: deb
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/example.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
"""


def test_deb822_entry_gets_the_backports_suite_only():
    out = side.backports_entries(DEB822, "", "bookworm")
    assert out == (
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm-backports\n"
        "Components: main contrib\nSigned-By: /usr/share/keyrings/example.gpg\n"
    )


def test_one_line_sources_are_read_too():
    one = (
        "# comment\ndeb [signed-by=/k.gpg] http://mirror.example/debian bookworm main\n"
        "deb http://mirror.example/debian-security bookworm-security main\n"
    )
    out = side.backports_entries("", one, "bookworm")
    assert out == (
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm-backports\n"
        "Components: main\nSigned-By: /k.gpg\n"
    )


def test_no_entry_for_the_codename_gives_nothing():
    assert side.backports_entries(DEB822, "", "trixie") == ""


def test_codename_from_os_release():
    assert side.codename('PRETTY_NAME="Debian GNU/Linux 12"\nVERSION_CODENAME=bookworm\n') == (
        "bookworm"
    )
