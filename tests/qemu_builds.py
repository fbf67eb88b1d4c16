"""Find the QEMU builds the oracle tests run: 7.2 (Debian bookworm) and 10.x beside it.

A build is a folder with ``usr/bin/qemu-system-*`` (``dpkg -x`` of Debian's packages, run
with ``-L`` at the folder's own firmware) or the ``qemu-system-*`` on PATH.  Searched in
this order, the first build of each version wins:

1. ``FLATVIEW_QEMU_DIRS``: folders separated by ``os.pathsep`` (``.ci/run`` sets it);
2. ``/opt/flatview-qemu/*``: where ``scripts/qemu_side_by_side.py`` extracts builds;
3. ``PATH``.

Every version in ``WANTED`` is a test parameter: absent, its tests skip and say how to
get it; any other version found is tested too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

WANTED = ("7.2", "10.0")
KNOWN_FOLDER = Path("/opt/flatview-qemu")
ENV = "FLATVIEW_QEMU_DIRS"
# Firmware folders of a dpkg -x tree, given to QEMU with -L (searched before its built-in
# data directory, which holds the system QEMU's firmware).
FIRMWARE_DIRS = ("usr/share/qemu", "usr/share/seabios", "usr/lib/ipxe/qemu")


@dataclass(frozen=True)
class QemuBuild:
    version: str  # major.minor, e.g. "10.0"
    banner: str  # first line of --version
    bindir: Path
    firmware: tuple[Path, ...] = ()  # -L folders; empty for a system QEMU

    def argv(self, arch: str = "x86_64") -> list[str] | None:
        """The command to start ``qemu-system-<arch>`` of this build, or None."""
        binary = self.bindir / f"qemu-system-{arch}"
        if not binary.is_file():
            return None
        out = [str(binary)]
        for d in self.firmware:
            out += ["-L", str(d)]
        return out

    @property
    def major_minor(self) -> tuple[int, int]:
        major, minor = self.version.split(".")
        return int(major), int(minor)


def _banner(binary: Path) -> str | None:
    try:
        out = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    first = out.stdout.splitlines()[0] if out.stdout else ""
    return first if first.startswith("QEMU emulator version ") else None


def _build_at(bindir: Path, root: Path | None) -> QemuBuild | None:
    binary = bindir / "qemu-system-x86_64"
    if not binary.is_file():
        return None
    banner = _banner(binary)
    if banner is None:
        return None
    version = ".".join(banner.split()[3].split(".")[:2])
    firmware = tuple(root / d for d in FIRMWARE_DIRS if (root / d).is_dir()) if root else ()
    return QemuBuild(version, banner, bindir, firmware)


def _folders() -> list[Path]:
    env = [Path(p) for p in os.environ.get(ENV, "").split(os.pathsep) if p]
    known = sorted(KNOWN_FOLDER.glob("*")) if KNOWN_FOLDER.is_dir() else []
    return env + known


@cache
def find_builds() -> dict[str, QemuBuild]:
    """version -> build, first found wins."""
    builds: dict[str, QemuBuild] = {}
    for root in _folders():
        build = _build_at(root / "usr" / "bin", root)
        if build is not None:
            builds.setdefault(build.version, build)
    system = shutil.which("qemu-system-x86_64")
    if system is not None:
        build = _build_at(Path(system).parent, None)
        if build is not None:
            builds.setdefault(build.version, build)
    return builds


def versions() -> list[str]:
    """The versions to test: every wanted one, then any other found."""
    return [*WANTED, *sorted(v for v in find_builds() if v not in WANTED)]


def missing_reason(version: str) -> str:
    return (
        f"QEMU {version} not found (looked in ${ENV}, {KNOWN_FOLDER}/*, PATH); "
        f"`python3 scripts/qemu_side_by_side.py` installs it beside the system QEMU"
    )
