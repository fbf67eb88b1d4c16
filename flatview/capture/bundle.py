"""The capture bundle: what one capture of a running QEMU writes, as plain text.

A bundle is a monitor session a person could have typed, so it can be pasted into mail
and every flatview command reads it as it reads any dump (the clean-up drops the prompts
and the lines around the dumps)::

    QEMU 7.2.22 monitor - type 'help' for more information
    # captured by flatview 0.1.0 from qmp:/run/vm.sock
    # command line: qemu-system-x86_64 -machine q35 ...
    (qemu) info version
    7.2.22Debian 1:7.2+dfsg-7+deb12u18+b3
    (qemu) info mtree
    address-space: memory
    ...
    (qemu) info mtree -f
    FlatView #0
    ...
    (qemu) info pci
      Bus  0, device   0, function 0:
    ...

The banner is the one HMP prints when a monitor opens (monitor/hmp.c ``monitor_event``),
with the version QMP ``query-version`` gave; every part is the text QMP
``human-monitor-command`` returned for that command, line ends made LF.  ``info version``
is printed as QEMU prints it (``hmp_info_version``: "%d.%d.%d%s" with the package
string, Debian's has no leading space).
"""

from __future__ import annotations

import os
import shlex
import tempfile
from dataclasses import dataclass

from ..errors import UsageError

__all__ = [
    "COMMANDS",
    "Bundle",
    "format_bundle",
    "write_atomic",
]

# The HMP commands a capture runs, in the order the bundle holds them.
COMMANDS = ("info version", "info mtree", "info mtree -f", "info pci")


@dataclass(frozen=True, slots=True)
class Bundle:
    """One capture: QEMU's version (``query-version``), where it came from, the command
    line where known, and each HMP command's output (LF line ends)."""

    version: str  # "7.2.22"
    package: str  # "Debian 1:7.2+dfsg-7+deb12u18+b3" ("" when QEMU has none)
    source: str  # "qmp:/path/to/socket", "libvirt:qemu:///system/NAME", "launch"
    parts: tuple[tuple[str, str], ...]  # (HMP command, its output)
    command_line: tuple[str, ...] | None = None
    notes: tuple[str, ...] = ()  # e.g. the BAR map had not settled when captured

    def part(self, command: str) -> str | None:
        return next((text for cmd, text in self.parts if cmd == command), None)


def format_bundle(bundle: Bundle, tool_version: str) -> str:
    """The bundle as text (see the module docstring)."""
    out = [
        f"QEMU {bundle.version} monitor - type 'help' for more information",
        f"# captured by flatview {tool_version} from {bundle.source}",
    ]
    if bundle.command_line:
        out.append(f"# command line: {shlex.join(bundle.command_line)}")
    out += [f"# note: {n}" for n in bundle.notes]
    for command, text in bundle.parts:
        out.append(f"(qemu) {command}")
        body = text.replace("\r\n", "\n").rstrip("\n")
        if body:
            out.append(body)
        out.append("")  # QEMU ends `info mtree` with a blank line: keep parts apart alike
    return "\n".join(out) + "\n"


def write_atomic(path: str, text: str) -> None:
    """Write all or nothing: a temporary file beside ``path``, then os.replace, so a
    failed capture never leaves a partial bundle (or report) behind."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".flatview-", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            mask = os.umask(0)
            os.umask(mask)
            os.chmod(tmp, 0o666 & ~mask)  # mkstemp makes it private; a bundle is not
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as exc:
        raise UsageError(f"{path}: cannot write: {exc.strerror}") from None


def command_line_of(pid: int | None) -> tuple[str, ...] | None:
    """QEMU's own argv from /proc (Linux; None when the process is not readable)."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    args = [a.decode("utf-8", "backslashreplace") for a in raw.split(b"\0")]
    if args and args[-1] == "":
        args.pop()
    return tuple(args) or None
