"""Read ``lspci -v``/``-vv``/``-vvv`` text (also ``-n``, ``-nn``, ``-D``, ``-b``) into PciDevice.

Mirrors pciutils: ``lspci.c`` ``show_slot_name``/``show_terse`` (the device header),
``show_bases`` (the BAR lines) and ``ls-caps.c`` ``cap_msix`` (the MSI-X capability).
Text pasted into mail is accepted: ``>`` quoting is removed first (``unquote_lines``),
indentation may be tabs, spaces or nothing, and every other line is ignored.

Rules a caller should know:

* A header line (``0a:00.0 Ethernet controller: ...``) starts a device.  Without a
  domain the address is normalised to domain ``0000``: lspci omits the domain only
  when every scanned device is in domain 0 (``scan_device`` sets ``opt_domains``).
* Region/MSI-X lines seen before any header belong to a device whose address is
  :data:`UNKNOWN_ADDRESS` (``"?"``); so do later excerpts that cannot continue the
  current device (see :func:`_needs_new_device`): several pasted excerpts give several
  devices, each ``"?"`` unless it has a header, told apart by ``PciDevice.line``.
* A header wrapped by a mail client (``... SAS3008`` / ``PCI-Express ... (rev 02)``)
  is joined back while the text so far is long (a wrapped line) or has an open
  bracket, for at most a few unindented lines that look like nothing else.
* BAR lines without ``Region N:`` (plain ``-v``, or excerpts) get the next free index
  in order of appearance -- a 64-bit BAR consumes two slots -- and
  ``index_inferred=True``.  The guess is kept even when the MSI-X ``BAR=`` or anything
  else contradicts it (an excerpt that leaves out BAR0 shifts every index); the caller
  reconciles, e.g. by trusting the MSI-X BIR and flagging the BAR.
* Region lines indented deeper than the device's latest ``Capabilities:`` line are
  inside a capability (the SR-IOV VF BARs) and are skipped.
* ``MsixCapability`` is only built from all three lines (capability, ``Vector table:``,
  ``PBA:``).  Plain ``-v`` prints the capability line alone and ``Vector table:`` lines
  without a capability line say nothing about the vector count: both are dropped.
* Expansion ROM lines, the ``[virtual]``/``[disabled]``/``[enhanced]`` flags and the
  MSI-X BIR range (6 and 7 are invalid but printed) are not judged here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import SourceError, SourceLocation
from ..source import unquote_lines
from .pci import UNKNOWN_ADDRESS, MsixCapability, PciBar, PciDevice

__all__ = ["UNKNOWN_ADDRESS", "parse_lspci"]


_SOURCE = "lspci"
_BAR_SLOTS = 6  # PCI_NUM_REGIONS - 1: BAR registers 0..5
_MAX_BIR = 7  # MSI-X BIR is 3 bits; lspci prints 6 and 7 although they are invalid
_MAX_VECTORS = 2048  # MSI-X Table Size field is 11 bits, Count = field + 1
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}  # show_size
_WRAP_LINES = 3  # most continuation lines joined to a wrapped header
_WRAP_WIDTH = 60  # a header line at least this long may have been wrapped by mail

# lspci.c show_slot_name + show_terse: "[DDDD:]BB:DD.F CLASS[ [cccc]]: VENDOR DEVICE
# [ [vvvv:dddd]][ (rev rr)][ (prog-if pp[ [NAME]])]"; -n prints "CCCC: vvvv:dddd".
_HEADER = re.compile(
    r"^\s*(?:(?P<domain>[0-9a-fA-F]{4,8}):)?"
    r"(?P<bus>[0-9a-fA-F]{2}):(?P<dev>[0-9a-fA-F]{2})\.(?P<fn>[0-7])"
    r"\s+(?P<text>[^\s:][^:]*:\s.*)$"
)
# -nn: the numeric vendor:device pair pci_lookup_name appends as "[vvvv:dddd]".
_IDS_NN = re.compile(r"\[([0-9a-fA-F]{4}):([0-9a-fA-F]{4})\]")
# -n: the name is only "vvvv:dddd" (then maybe " (rev rr)").
_IDS_N = re.compile(r"^([0-9a-fA-F]{4}):([0-9a-fA-F]{4})(?:\s|$)")

# lspci.c show_bases: "\tRegion N: " with -vv and up (plain -v prints only the tab), then
# "I/O ports at PORT|<ignored>|<unassigned>" or "Memory at ADDR|<ignored>|<unassigned>|
# <broken-64-bit-slot> (32-bit|64-bit|low-1M|type 3, [non-]prefetchable)", then
# " [virtual]" or " [disabled]", " [enhanced]", and show_size " [size=N[KMGT]]".
# pciutils < 3.6.3 printed "[virtual] " before the body and "<invalid-64bit-slot>".
_REGION = re.compile(
    r"^(?:Region (?P<index>\d+): )?"
    r"(?:\[(?:virtual|enhanced)\] )*"
    r"(?:I/O ports at (?P<port>[0-9a-fA-F]+|<ignored>|<unassigned>)"
    r"|Memory at (?P<mem>[0-9a-fA-F]+|<ignored>|<unassigned>|<broken-64-bit-slot>"
    r"|<invalid-64bit-slot>)"
    r" \((?P<width>32-bit|64-bit|low-1M|type 3), (?P<nonpf>non-)?prefetchable\))"
    r"(?: \[(?:virtual|disabled|disabled by cmd|enhanced)\])*"
    r"(?: \[size=(?P<size>\d+)(?P<unit>[KMGT]?)\])?$"
)
# Anything that starts like a show_bases line; it must then match _REGION in full.
_REGION_LIKE = re.compile(r"^(?:Region\b\s*\S*\s*:|(?:\[\w+\]\s*)*(?:Memory|I/O ports)\s+at\b)")

# ls-caps.c show_caps: every capability line, "Capabilities: [xx] ..." or
# "Capabilities: <access denied>".
_CAPS = re.compile(r"^Capabilities:")
_CAP_OFFSET = re.compile(r"^Capabilities: \[([0-9a-fA-F]+)\]")
# ls-caps.c show_caps + cap_msix: "Capabilities: [%02x] MSI-X: Enable%c Count=%d Masked%c";
# before pciutils 3.1.3 (2009) "MSI-X: Enable%c Mask%c TabSize=%d" (same number).
_MSIX = re.compile(
    r"^Capabilities: \[(?P<cap>[0-9a-fA-F]+)(?: v\d+)?\] MSI-X: Enable(?P<enable>[+-]) "
    r"(?:Count=(?P<count>\d+) Masked(?P<masked>[+-])"
    r"|Mask(?P<old_masked>[+-]) TabSize=(?P<old_count>\d+))$"
)
# Anything that starts like the MSI-X capability line.
_MSIX_LIKE = re.compile(r"^Capabilities:\s*\[[^\]]*\]\s*MSI-X\b")
# ls-caps.c cap_msix (-vv and up): "\t\tVector table: BAR=%d offset=%08x" and
# "\t\tPBA: BAR=%d offset=%08x" (offset with the BIR bits already cleared).
_MSIX_LOC = re.compile(
    r"^(?P<what>Vector table|PBA): BAR=(?P<bir>\d+) offset=(?P<offset>[0-9a-fA-F]+)$"
)
# Anything that starts like one of the two cap_msix location lines.
_MSIX_LOC_LIKE = re.compile(r"^(?:Vector\s+table|PBA)\s*:")
# Runs of blanks inside a line (mail clients and terminals re-space text).
_BLANKS = re.compile(r"\s+")
# lspci -x: the first line of the config space hex dump; vendor and device id are the
# first two little-endian 16-bit words (pciutils lspci.c show_hex_dump).
_CONFIG_00 = re.compile(r"^00: ([0-9a-f]{2}) ([0-9a-f]{2}) ([0-9a-f]{2}) ([0-9a-f]{2})\b")


@dataclass
class _Msix:
    """One MSI-X capability block while its lines are being read."""

    head: re.Match[str]
    line: int
    table: tuple[int, int] | None = None  # (BIR, offset)
    pba: tuple[int, int] | None = None


@dataclass
class _Device:
    """One device while its lines are being read."""

    address: str
    line: int
    text: str | None = None  # header text after the address, wrapped lines joined
    bars: list[PciBar] = field(default_factory=list)
    next_slot: int = 0  # first BAR register after the last BAR seen
    cap_indent: int | None = None  # indentation of the latest "Capabilities:" line
    msix: _Msix | None = None
    msix_open: bool = False  # Vector table / PBA lines still belong to self.msix
    wrap_left: int = 0  # header continuation lines still accepted
    wrap_width: int = 0  # length of the last header line
    config_ids: tuple[int, int] | None = None  # from the -x hex dump's first line
    caps: list[int] = field(default_factory=list)  # standard capability offsets (< 0x100)


def parse_lspci(text: str, file: str = "<lspci>") -> list[PciDevice]:
    """Read every device in ``text``, the output of pciutils ``lspci`` ``show_device``.

    Raises SourceError for a Region or MSI-X line that cannot be read, and when the text
    holds no header, Region or MSI-X line at all.
    """
    done: list[PciDevice] = []
    cur: _Device | None = None
    for no, line in unquote_lines(text):
        cur = _feed(cur, done, file, no, line)
    if cur is not None:
        done.append(_finish(cur))
    if not done:
        raise SourceError(SourceLocation(file), "no lspci device information found")
    return done


def _feed(
    cur: _Device | None, done: list[PciDevice], file: str, no: int, line: str
) -> _Device | None:
    """Apply one line; return the device now being read."""
    header = _HEADER.match(line)
    if header:
        _close(cur, done)
        return _start_header(header, no, line)
    body = _BLANKS.sub(" ", line.strip())
    if cur is not None and cur.wrap_left:
        if _continues_header(cur, line, body):
            cur.text = f"{cur.text} {body}"
            cur.wrap_left -= 1
            cur.wrap_width = len(line)
            return cur
        cur.wrap_left = 0
    loc = SourceLocation(file, no)
    indent = _indent(line)
    if _REGION_LIKE.match(body):
        return _region(cur, done, loc, indent, body, line)
    cap = _CAP_OFFSET.match(body)
    if cap and cur is not None and int(cap[1], 16) < 0x100:
        cur.caps.append(int(cap[1], 16))
    if _MSIX_LIKE.match(body):
        new = _msix_head(cur, done, loc, indent, body, line)
        if new is not cur and new is not None and cap:
            new.caps.append(int(cap[1], 16))
        return new
    if _CAPS.match(body):
        if cur is not None:
            cur.cap_indent = indent
            cur.msix_open = False
        return cur
    if _MSIX_LOC_LIKE.match(body):
        _msix_location(cur, loc, body, line)
    hexdump = _CONFIG_00.match(body)
    if hexdump and cur is not None:
        b = hexdump.groups()
        cur.config_ids = (int(b[1] + b[0], 16), int(b[3] + b[2], 16))
    return cur


def _close(cur: _Device | None, done: list[PciDevice]) -> None:
    if cur is not None:
        done.append(_finish(cur))


def _indent(line: str) -> int:
    """Columns of leading blanks, tabs expanded to 8 as a terminal shows them."""
    expanded = line.expandtabs(8)
    return len(expanded) - len(expanded.lstrip())


def _start_header(m: re.Match[str], no: int, line: str) -> _Device:
    """A device from its show_slot_name/show_terse header line."""
    domain = (m["domain"] or "0000").lower().rjust(4, "0")
    address = f"{domain}:{m['bus'].lower()}:{m['dev'].lower()}.{m['fn']}"
    return _Device(
        address=address,
        line=no,
        text=_BLANKS.sub(" ", m["text"].strip()),
        wrap_left=_WRAP_LINES,
        wrap_width=len(line),
    )


def _continues_header(cur: _Device, line: str, body: str) -> bool:
    """Whether ``line`` is the rest of a header a mail client wrapped."""
    if not body or _indent(line) or cur.text is None:
        return False
    if any(p.match(body) for p in (_REGION_LIKE, _CAPS, _MSIX_LOC_LIKE)):
        return False
    return cur.wrap_width >= _WRAP_WIDTH or _unbalanced(cur.text)


def _unbalanced(text: str) -> bool:
    return text.count("(") > text.count(")") or text.count("[") > text.count("]")


def _needs_new_device(cur: _Device, index: int | None) -> bool:
    """Whether a device Region line must start another (pasted) excerpt.

    show_bases prints BARs in increasing order and before any capability, so a Region
    line after a ``Capabilities:`` line, or with an index not above the last one, is
    another copy of a device.
    """
    if cur.cap_indent is not None:
        return True
    return index is not None and index < cur.next_slot and bool(cur.bars)


def _region(
    cur: _Device | None,
    done: list[PciDevice],
    loc: SourceLocation,
    indent: int,
    body: str,
    line: str,
) -> _Device:
    """A show_bases line: add the BAR to the current device (or a new one)."""
    if cur is not None and cur.cap_indent is not None and indent > cur.cap_indent:
        return cur  # a BAR inside a capability: SR-IOV VF BARs (ls-ecaps.c cap_sriov)
    m = _REGION.match(body)
    if m is None:
        raise SourceError(loc, "cannot read lspci Region line", line)
    index = None if m["index"] is None else int(m["index"])
    if cur is None or _needs_new_device(cur, index):
        _close(cur, done)
        cur = _Device(address=UNKNOWN_ADDRESS, line=loc.line or 0)
    bar = _make_bar(m, cur.next_slot if index is None else index, index is None, loc, line)
    cur.bars.append(bar)
    cur.next_slot = bar.slots[-1] + 1
    return cur


def _make_bar(
    m: re.Match[str], index: int, inferred: bool, loc: SourceLocation, line: str
) -> PciBar:
    """A PciBar from a matched show_bases line."""
    if index >= _BAR_SLOTS:
        what = "more than 6 BAR registers" if inferred else f"BAR index {index} is not 0..5"
        raise SourceError(loc, what, line)
    is_io = m["port"] is not None
    size = None if m["size"] is None else int(m["size"]) * _UNITS[m["unit"]]
    return PciBar(
        index=index,
        size=size,
        is_io=is_io,
        is_64bit=m["width"] == "64-bit",
        prefetchable=not is_io and m["nonpf"] is None,
        address=_address(m["port"] if is_io else m["mem"]),
        source=_SOURCE,
        line=loc.line,
        index_inferred=inferred,
    )


def _address(text: str) -> int | None:
    """A show_bases address: hex, or None for ``<unassigned>`` and the like."""
    return None if text.startswith("<") else int(text, 16)


def _msix_head(
    cur: _Device | None,
    done: list[PciDevice],
    loc: SourceLocation,
    indent: int,
    body: str,
    line: str,
) -> _Device:
    """The cap_msix capability line: opens an MSI-X block."""
    m = _MSIX.match(body)
    if m is None:
        raise SourceError(loc, "cannot read lspci MSI-X capability line", line)
    count = int(m["count"] or m["old_count"])
    if not 1 <= count <= _MAX_VECTORS:
        raise SourceError(loc, f"MSI-X Count={count} is not 1..{_MAX_VECTORS}", line)
    if cur is None or cur.msix is not None:
        _close(cur, done)
        cur = _Device(address=UNKNOWN_ADDRESS, line=loc.line or 0)
    cur.cap_indent = indent
    cur.msix = _Msix(head=m, line=loc.line or 0)
    cur.msix_open = True
    return cur


def _msix_location(cur: _Device | None, loc: SourceLocation, body: str, line: str) -> None:
    """A cap_msix ``Vector table:`` or ``PBA:`` line of the open MSI-X block."""
    m = _MSIX_LOC.match(body)
    if m is None:
        raise SourceError(loc, "cannot read lspci MSI-X location line", line)
    bir = int(m["bir"])
    if bir > _MAX_BIR:
        raise SourceError(loc, f"MSI-X BAR={bir} is not 0..{_MAX_BIR}", line)
    if cur is None or not cur.msix_open or cur.msix is None:
        return  # no capability line above: the vector count is unknown, drop it
    where = (bir, int(m["offset"], 16))
    if m["what"] == "PBA":
        if cur.msix.pba is not None:
            raise SourceError(loc, "second MSI-X PBA line", line)
        cur.msix.pba = where
    else:
        if cur.msix.table is not None:
            raise SourceError(loc, "second MSI-X Vector table line", line)
        cur.msix.table = where


def _finish(cur: _Device) -> PciDevice:
    """The PciDevice for a device whose lines have all been read."""
    vendor_id, device_id = _ids(cur.text)
    if vendor_id is None and cur.config_ids is not None:
        vendor_id, device_id = cur.config_ids
    return PciDevice(
        address=cur.address,
        bars=tuple(cur.bars),
        msix=_finish_msix(cur.msix),
        description=cur.text,
        vendor_id=vendor_id,
        device_id=device_id,
        source=_SOURCE,
        line=cur.line,
        capabilities=tuple(sorted(set(cur.caps))),
    )


def _ids(text: str | None) -> tuple[int | None, int | None]:
    """Vendor and device id from a header under ``-nn`` (``[vvvv:dddd]``) or ``-n``."""
    if text is None:
        return None, None
    name = text.split(": ", 1)[1] if ": " in text else text
    found = _IDS_NN.findall(name)
    if found:
        return int(found[-1][0], 16), int(found[-1][1], 16)
    m = _IDS_N.match(name)
    if m:
        return int(m[1], 16), int(m[2], 16)
    return None, None


def _finish_msix(msix: _Msix | None) -> MsixCapability | None:
    """The MsixCapability, if the capability and both location lines were seen."""
    if msix is None or msix.table is None or msix.pba is None:
        return None
    m = msix.head
    masked = m["masked"] or m["old_masked"]
    return MsixCapability(
        vectors=int(m["count"] or m["old_count"]),
        table_bar=msix.table[0],
        table_offset=msix.table[1],
        pba_bar=msix.pba[0],
        pba_offset=msix.pba[1],
        enabled=m["enable"] == "+",
        masked=masked == "+",
        cap_offset=int(m["cap"], 16),
        source=_SOURCE,
        line=msix.line,
    )
