"""Capture a libvirt domain through ``virsh qemu-monitor-command`` (libvirt-clients).

``--hmp`` sends each HMP command through libvirt's own QMP connection to the domain's
QEMU (``virDomainQemuMonitorCommand`` with ``VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP``, i.e.
QMP ``human-monitor-command``); ``query-version`` goes as plain QMP JSON.  libvirt holds
the domain's QMP socket, so this is the way in for a VM it runs.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Sequence

from ..errors import CaptureError
from .bundle import COMMANDS, Bundle, command_line_of

__all__ = ["capture_domain"]

_DEFAULT_TIMEOUT = 30.0  # virsh: the first call to a fresh libvirtd probes the emulators


def _virsh(uri: str | None, args: Sequence[str], domain: str, timeout: float) -> str:
    virsh = shutil.which("virsh")
    if virsh is None:
        raise CaptureError("virsh is not installed (Debian: apt-get install libvirt-clients)")
    cmd = [virsh, "-q", *(["-c", uri] if uri else []), *args]
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        raise CaptureError(f"--domain {domain}: virsh gave no answer within {timeout:g}s") from None
    if done.returncode != 0:
        raise CaptureError(f"--domain {domain}: {_virsh_error(done.stderr, domain, uri)}")
    return done.stdout


def _virsh_error(stderr: str, domain: str, uri: str | None) -> str:
    """virsh's ``error: ...`` lines as one line, the common cases in plain words."""
    errors = [m[1] for m in re.finditer(r"(?m)^error: (.*)$", stderr)] or [stderr.strip()]
    text = "; ".join(errors)
    where = uri or "libvirt's default connection"
    if any(e.startswith("failed to get domain") for e in errors):
        return f"no such domain on {where} ({text})"
    if any("domain is not running" in e for e in errors):
        return f"the domain is not running ({text})"
    if any("failed to connect to the hypervisor" in e for e in errors):
        return f"cannot connect to {where}: {text} (is libvirtd running?)"
    return text


def _pid(domain: str, uri: str | None) -> int | None:
    """The domain's QEMU pid from libvirt's pid file (a local qemu:///system only)."""
    if uri not in (None, "qemu:///system"):
        return None
    try:
        with open(f"/run/libvirt/qemu/{domain}.pid", encoding="ascii") as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


def capture_domain(
    domain: str, uri: str | None = None, timeout: float = _DEFAULT_TIMEOUT
) -> Bundle:
    """Capture the running libvirt domain ``domain`` (``uri`` as ``virsh -c`` takes it)."""
    reply = _virsh(
        uri, ["qemu-monitor-command", domain, '{"execute":"query-version"}'], domain, timeout
    )
    try:
        info = json.loads(reply)["return"]
        q = info["qemu"]
        version = f"{q['major']}.{q['minor']}.{q['micro']}"
    except (ValueError, KeyError, TypeError):
        raise CaptureError(
            f"--domain {domain}: query-version gave {reply.strip()[:80]!r}"
        ) from None
    parts = tuple(
        (cmd, _virsh(uri, ["qemu-monitor-command", domain, "--hmp", cmd], domain, timeout))
        for cmd in COMMANDS
    )
    return Bundle(
        version=version,
        package=str(info.get("package", "")).strip(),
        source=f"libvirt:{uri + ' ' if uri else ''}{domain}",
        parts=tuple((cmd, text.replace("\r\n", "\n")) for cmd, text in parts),
        command_line=command_line_of(_pid(domain, uri)),
    )
