"""Read QEMU's HMP ``info pci`` text and QMP ``query-pci`` replies into PciDevice.

Mirrors QEMU ``hw/pci/pci-hmp-cmds.c`` ``hmp_info_pci_device`` (HMP text) and
``qapi/pci.json`` ``PciDeviceInfo`` (QMP).  Neither shows the MSI-X capability, so
``PciDevice.msix`` is always None here.

Rules a caller should know:

* Addresses are ``0000:BB:DD.F``: ``info pci`` prints no PCI domain (segment) and
  QEMU's x86 and Arm machines put every root bus in domain 0.
* BAR6 is the expansion ROM and is skipped; the upper register of a 64-bit BAR is
  never listed by QEMU.
* HMP before QEMU 9.1 ends BAR lines with ``.`` and prints an unmapped BAR at address
  ``0xffffffffffffffff`` with a meaningless end; 9.1 and later print ``(not mapped)``.
  Either way the BAR gets ``address=None`` and ``size=None``.  A mapped BAR's size is
  ``end - start + 1`` (the bracket is the inclusive end).
* QMP reports the real size even for an unmapped BAR (address -1), and that size is
  kept.  QMP devices carry ``source="query-pci"``, HMP ones ``source="info pci"``.
* Bridge lines (``BUS``, ``secondary bus``, ranges), ``PCI subsystem`` and ``IRQ`` lines,
  monitor banners, prompts and echo are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..errors import SourceError, SourceLocation
from ..source import unquote_lines
from .pci import PciBar, PciDevice

__all__ = ["parse_info_pci", "parse_query_pci"]

_HMP_SOURCE = "info pci"
_QMP_SOURCE = "query-pci"
_ROM_BAR = 6  # PCI_ROM_SLOT: QEMU lists the expansion ROM as "BAR6"
_UNMAPPED = (1 << 64) - 1  # PCI_BAR_UNMAPPED, printed by "%08" PRIx64 as 16 f's
_MASK64 = (1 << 64) - 1

# hmp_info_pci_device: "  Bus %2" PRId64 ", device %3" PRId64 ", function %" PRId64 ":".
_DEVICE = re.compile(
    r"^\s*Bus\s+(?P<bus>\d+),\s+device\s+(?P<slot>\d+),\s+function\s+(?P<fn>\d+):$"
)
# Anything that starts like that header line; it must then match _DEVICE in full.
_DEVICE_LIKE = re.compile(r"^\s*Bus\s+\S+,\s*device\b")
# hmp_info_pci_device: "    DESC: PCI device %04x:%04x" or "    Class %04d: PCI device ..."
# (the class number is printed in decimal).
_CLASS = re.compile(
    r"^\s*(?P<desc>\S.*?): PCI device (?P<vendor>[0-9a-fA-F]{4}):(?P<device>[0-9a-fA-F]{4})$"
)
# hmp_info_pci_device BAR lines: "      BAR%d: I/O at 0x%04x [0x%04x]." or
# "      BAR%d: %d bit[ prefetchable] memory at 0x%08x [0x%08x]." (the "." is gone
# from QEMU 9.1), or from 9.1 "BAR%d: I/O (not mapped)" /
# "BAR%d: %d bit[ prefetchable] memory (not mapped)".
_BAR = re.compile(
    r"^\s*BAR(?P<index>\d+): "
    r"(?:I/O|(?P<bits>32|64) bit(?P<prefetch> prefetchable)? memory)"
    r"(?: at 0x(?P<start>[0-9a-fA-F]+) \[0x(?P<end>[0-9a-fA-F]+)\]\.?| \(not mapped\))$"
)
# Anything that starts like a BAR line; it must then match _BAR in full.
_BAR_LIKE = re.compile(r"^\s*BAR\s*\S*\s*:\s*(?:I/O\b|\S+\s+bit\b)")
# hmp_info_pci_device: '      id "%s"' (the -device id=, empty when none was given).
_QDEV_ID = re.compile(r'^\s*id "(?P<id>.*)"$')


@dataclass
class _Device:
    """One ``info pci`` device while its lines are being read."""

    address: str
    line: int
    description: str | None = None
    vendor_id: int | None = None
    device_id: int | None = None
    qdev_id: str | None = None
    bars: list[PciBar] = field(default_factory=list)


def parse_info_pci(text: str, file: str = "<info pci>") -> list[PciDevice]:
    """Read every device in HMP ``info pci`` text (QEMU ``hmp_info_pci_device``).

    Raises SourceError for a device header or BAR line that cannot be read, a BAR line
    before any device header, a BAR listed twice, and a text with no device at all.
    """
    devices: list[PciDevice] = []
    cur: _Device | None = None
    for no, line in unquote_lines(text):
        loc = SourceLocation(file, no)
        if _DEVICE_LIKE.match(line):
            if cur is not None:
                devices.append(_finish(cur))
            cur = _start(loc, line)
        elif _BAR_LIKE.match(line):
            _bar_line(cur, loc, line)
        elif cur is not None:
            _other_line(cur, line)
    if cur is not None:
        devices.append(_finish(cur))
    if not devices:
        raise SourceError(SourceLocation(file), "no info pci device information found")
    return devices


def _address(bus: int, slot: int, function: int) -> str:
    return f"0000:{bus:02x}:{slot:02x}.{function:x}"


def _start(loc: SourceLocation, line: str) -> _Device:
    """A device from its ``Bus N, device N, function N:`` line."""
    m = _DEVICE.match(line)
    if m is None:
        raise SourceError(loc, "cannot read info pci device line", line)
    bus, slot, fn = int(m["bus"]), int(m["slot"]), int(m["fn"])
    if bus > 0xFF or slot > 0x1F or fn > 7:
        raise SourceError(loc, "bus, device or function out of range", line)
    return _Device(address=_address(bus, slot, fn), line=loc.line or 0)


def _other_line(cur: _Device, line: str) -> None:
    """The class line and the ``id`` line; everything else is ignored."""
    m = _QDEV_ID.match(line)
    if m:
        cur.qdev_id = m["id"] or None
        return
    m = _CLASS.match(line)
    if m and cur.description is None:
        cur.description = m["desc"]
        cur.vendor_id = int(m["vendor"], 16)
        cur.device_id = int(m["device"], 16)


def _bar_line(cur: _Device | None, loc: SourceLocation, line: str) -> None:
    """A ``BARn:`` line: add the BAR (not the ROM) to the current device."""
    m = _BAR.match(line)
    if m is None:
        raise SourceError(loc, "cannot read info pci BAR line", line)
    if cur is None:
        raise SourceError(loc, "BAR line before any 'Bus N, device N, function N:' line", line)
    index = int(m["index"])
    if index == _ROM_BAR:
        return
    if index > _ROM_BAR:
        raise SourceError(loc, f"BAR index {index} is not 0..6", line)
    if any(b.index == index for b in cur.bars):
        raise SourceError(loc, f"BAR{index} listed twice", line)
    cur.bars.append(_hmp_bar(m, index, loc.line))


def _hmp_bar(m: re.Match[str], index: int, line: int | None) -> PciBar:
    """A PciBar from a matched ``hmp_info_pci_device`` BAR line."""
    address = size = None
    if m["start"] is not None:
        start, end = int(m["start"], 16), int(m["end"], 16)
        if start != _UNMAPPED:
            address, size = start, ((end - start) & _MASK64) + 1
    return PciBar(
        index=index,
        size=size,
        is_io=m["bits"] is None,
        is_64bit=m["bits"] == "64",
        prefetchable=m["prefetch"] is not None,
        address=address,
        source=_HMP_SOURCE,
        line=line,
    )


def _finish(cur: _Device) -> PciDevice:
    return PciDevice(
        address=cur.address,
        bars=tuple(cur.bars),
        description=cur.description,
        vendor_id=cur.vendor_id,
        device_id=cur.device_id,
        qdev_id=cur.qdev_id,
        source=_HMP_SOURCE,
        line=cur.line,
    )


# --- QMP query-pci -------------------------------------------------------------------


def parse_query_pci(obj: Any, file: str = "<query-pci>") -> list[PciDevice]:
    """Read a QMP ``query-pci`` reply (``qmp_query_pci``, ``qapi/pci.json`` ``PciInfo``).

    ``obj`` is the decoded JSON: the whole reply ``{"return": [...]}`` or its list of
    buses.  Devices behind bridges (``pci_bridge.devices``) follow their bridge, in the
    order ``info pci`` prints them.  Raises SourceError when a member is missing or has
    the wrong type.
    """
    loc = SourceLocation(file)
    buses = obj.get("return") if isinstance(obj, dict) else obj
    if not isinstance(buses, list):
        raise SourceError(loc, 'query-pci: expected a list of buses or {"return": [...]}')
    devices = [
        _qmp_device(dev, loc)
        for bus in buses
        for dev in _walk(_member(bus, "devices", list, loc), loc)
    ]
    if not devices:
        raise SourceError(loc, "no query-pci device information found")
    return devices


def _walk(devices: list[Any], loc: SourceLocation) -> Iterator[dict[str, Any]]:
    """Each device, then the devices behind it if it is a bridge (depth first)."""
    for dev in devices:
        if not isinstance(dev, dict):
            raise SourceError(loc, f"query-pci: device is not an object: {dev!r:.60}")
        yield dev
        bridge = dev.get("pci_bridge")
        if bridge is not None:
            yield from _walk(_member(bridge, "devices", list, loc, []), loc)


_NO_DEFAULT = object()


def _member(obj: Any, key: str, kind: type, loc: SourceLocation, default: Any = _NO_DEFAULT) -> Any:
    """``obj[key]`` checked to be a ``kind``; ``default`` when absent, if given."""
    if not isinstance(obj, dict):
        raise SourceError(loc, f"query-pci: expected an object holding {key!r}")
    if key not in obj and default is not _NO_DEFAULT:
        return default
    value = obj.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise SourceError(loc, f"query-pci: {key!r} is not {kind.__name__}: {value!r:.60}")
    return value


def _qmp_device(dev: dict[str, Any], loc: SourceLocation) -> PciDevice:
    """A PciDevice from one ``PciDeviceInfo``."""
    address = _address(
        _member(dev, "bus", int, loc),
        _member(dev, "slot", int, loc),
        _member(dev, "function", int, loc),
    )
    class_info = _member(dev, "class_info", dict, loc)
    ids = _member(dev, "id", dict, loc)
    regions = _member(dev, "regions", list, loc, [])
    return PciDevice(
        address=address,
        bars=tuple(_qmp_bar(r, loc) for r in regions if _member(r, "bar", int, loc) != _ROM_BAR),
        description=_qmp_description(class_info, loc),
        vendor_id=_member(ids, "vendor", int, loc),
        device_id=_member(ids, "device", int, loc),
        qdev_id=_member(dev, "qdev_id", str, loc, "") or None,
        source=_QMP_SOURCE,
    )


def _qmp_description(class_info: dict[str, Any], loc: SourceLocation) -> str:
    """``desc``, or ``Class %04d`` as ``hmp_info_pci_device`` prints a class without one."""
    desc = _member(class_info, "desc", str, loc, None)
    return desc if desc is not None else f"Class {_member(class_info, 'class', int, loc):04d}"


def _qmp_bar(region: dict[str, Any], loc: SourceLocation) -> PciBar:
    """A PciBar from one ``PciMemoryRegion``; address -1 (all ones) means unmapped."""
    kind = _member(region, "type", str, loc)
    if kind not in ("io", "memory"):
        raise SourceError(loc, f"query-pci: region type {kind!r} is not 'io' or 'memory'")
    index = _member(region, "bar", int, loc)
    if not 0 <= index < _ROM_BAR:
        raise SourceError(loc, f"query-pci: BAR index {index} is not 0..6")
    address = _member(region, "address", int, loc) & _MASK64
    return PciBar(
        index=index,
        size=_member(region, "size", int, loc),
        is_io=kind == "io",
        is_64bit=bool(_member(region, "mem_type_64", bool, loc, False)),
        prefetchable=bool(_member(region, "prefetch", bool, loc, False)),
        address=None if address == _UNMAPPED else address,
        source=_QMP_SOURCE,
    )
