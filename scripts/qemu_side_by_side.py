#!/usr/bin/env python3
"""Put QEMU from Debian's ``<codename>-backports`` (10.x on bookworm) beside the system QEMU.

The system QEMU (bookworm's 7.2, ``apt-get install qemu-system-x86 ...``) stays what it
is; the backports build is unpacked with ``dpkg -x`` into ``DEST/<major.minor>/`` and run
from there with ``-L`` at its own firmware (tests/qemu_builds.py finds it).  Why this way
round: other users of the machine keep the QEMU they have, nothing from backports is
installed system-wide (no backports library replaces a bookworm one), and CI and a
developer's machine run the same arrangement.

Steps (as root, Debian):

1. add the ``<codename>-backports`` suite by copying the machine's own apt source
   entries (``/etc/apt/sources.list.d/*.sources``, ``/etc/apt/sources.list``) with the
   suite renamed, into ``/etc/apt/sources.list.d/flatview-backports.sources`` (no archive
   address is written anywhere else), then ``apt-get update``;
2. ``apt-get download`` the newest backports ``qemu-system-{x86,arm,ppc,data,common}``
   and ``seabios``; install (from the normal suites) the libraries they depend on;
3. ``dpkg -x`` each into ``DEST/<major.minor>/`` and print that folder.

Usage::

    python3 scripts/qemu_side_by_side.py [--dest /opt/flatview-qemu]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PACKAGES = ("qemu-system-x86", "qemu-system-arm", "qemu-system-ppc", "qemu-system-data",
            "qemu-system-common")  # fmt: skip
FIRMWARE = ("seabios",)  # QEMU 10 wants seabios >> 1.16.3; bookworm has 1.16.2
SOURCES_OUT = Path("/etc/apt/sources.list.d/flatview-backports.sources")


def codename(os_release: str) -> str:
    m = re.search(r"^VERSION_CODENAME=\"?([a-z]+)\"?$", os_release, re.M)
    if not m:
        raise SystemExit("no VERSION_CODENAME in /etc/os-release")
    return m.group(1)


def backports_entries(deb822: str, one_line: str, code: str) -> str:
    """deb822 stanzas for ``<code>-backports`` derived from the machine's sources: every
    entry that lists the plain ``<code>`` suite, with only that suite, renamed."""
    out: list[str] = []
    for stanza in re.split(r"\n\s*\n", deb822):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            m = re.match(r"^([A-Za-z-]+):\s*(.*)$", line)
            if m:
                fields[m.group(1)] = m.group(2).strip()
        if code not in fields.get("Suites", "").split() or "deb" not in fields.get("Types", ""):
            continue
        keep = ["Types: deb", f"URIs: {fields['URIs']}", f"Suites: {code}-backports",
                f"Components: {fields.get('Components', 'main')}"]  # fmt: skip
        if "Signed-By" in fields:
            keep.append(f"Signed-By: {fields['Signed-By']}")
        out.append("\n".join(keep))
    for line in one_line.splitlines():
        m = re.match(r"^\s*deb\s+(\[[^]]*\]\s+)?(\S+)\s+(\S+)\s+(.+)$", line)
        if m and m.group(3) == code:
            opts = m.group(1) or ""
            signed = re.search(r"signed-by=(\S+?)\]?(\s|$)", opts)
            keep = ["Types: deb", f"URIs: {m.group(2)}", f"Suites: {code}-backports",
                    f"Components: {m.group(4).strip()}"]  # fmt: skip
            if signed:
                keep.append(f"Signed-By: {signed.group(1)}")
            out.append("\n".join(keep))
    unique = list(dict.fromkeys(out))
    return "\n\n".join(unique) + "\n" if unique else ""


def run(argv: list[str], **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    return subprocess.run(argv, check=True, text=True, env=env, **kw)


def suite_version(package: str, suite: str) -> str | None:
    out = run(["apt-cache", "madison", package], capture_output=True).stdout
    for line in out.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) >= 3 and any(t.startswith(f"{suite}/") for t in parts[2].split()):
            return parts[1]
    return None


def library_depends(package: str, version: str) -> list[str]:
    out = run(["apt-cache", "show", f"{package}={version}"], capture_output=True).stdout
    m = re.search(r"^Depends: (.*)$", out, re.M)
    names = [d.split()[0] for d in m.group(1).split(", ")] if m else []
    return [n for n in names if n.startswith(("lib", "zlib"))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dest", type=Path, default=Path("/opt/flatview-qemu"))
    args = ap.parse_args(argv)
    code = codename(Path("/etc/os-release").read_text())
    suite = f"{code}-backports"
    sources = sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))
    have = "".join(p.read_text() for p in sources)
    if not re.search(rf"^Suites:.*\b{suite}\b", have, re.M):
        one = Path("/etc/apt/sources.list")
        text = backports_entries(have, one.read_text() if one.exists() else "", code)
        if not text:
            raise SystemExit(f"no apt source lists the {code} suite to derive {suite} from")
        SOURCES_OUT.write_text(text)
        print(f"added {suite} to {SOURCES_OUT}", file=sys.stderr)
    run(["apt-get", "update", "-qq"])
    version = suite_version(PACKAGES[0], suite)
    if version is None:
        raise SystemExit(f"{PACKAGES[0]} is not in {suite}")
    upstream = re.sub(r"^\d+:", "", version)
    dest = args.dest / ".".join(upstream.split(".")[:2])
    if (dest / "usr/bin/qemu-system-x86_64").is_file():
        print(dest)
        return 0
    wanted = [f"{p}={version}" for p in PACKAGES]
    for fw in FIRMWARE:
        fw_version = suite_version(fw, suite)
        wanted.append(f"{fw}={fw_version}" if fw_version else fw)
    libs = sorted({d for p in PACKAGES[:3] for d in library_depends(p, version)})
    missing = [
        lib
        for lib in libs
        if subprocess.run(["dpkg-query", "-W", "-f", "${Status}", lib], capture_output=True,
                          text=True, check=False).stdout != "install ok installed"
    ]  # fmt: skip
    if missing:
        run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing])
    with tempfile.TemporaryDirectory(prefix="flatview-qemu-") as tmp:
        os.chmod(tmp, 0o755)  # apt's _apt user downloads into it
        run(["apt-get", "download", "-qq", *wanted], cwd=tmp)
        staging = Path(tmp) / "root"
        for deb in sorted(Path(tmp).glob("*.deb")):
            run(["dpkg", "-x", str(deb), str(staging)])
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(staging, dest)
    print(dest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
