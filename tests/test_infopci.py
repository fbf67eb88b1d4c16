"""flatview.vfio.infopci: real QEMU 7.2 captures (tests/fixtures/info-pci), spec examples,
the QEMU >= 9.1 format, QMP query-pci, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flatview.errors import SourceError
from flatview.vfio.infopci import parse_info_pci, parse_query_pci
from flatview.vfio.pci import PciDevice

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "info-pci"

K = 1024


def _text(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def _json(name: str) -> object:
    return json.loads(_text(name))


def _by_address(devices: list[PciDevice]) -> dict[str, PciDevice]:
    return {d.address: d for d in devices}


def _bars(dev: PciDevice) -> list[tuple[int, int | None, int | None, bool, bool, bool]]:
    """(index, size, address, io, 64-bit, prefetchable) of every BAR."""
    return [(b.index, b.size, b.address, b.is_io, b.is_64bit, b.prefetchable) for b in dev.bars]


# --- real QEMU 7.2 output (pre-9.1 format) -------------------------------------------------


def test_booted_q35():
    devices = parse_info_pci(_text("q35-booted.txt"), "q35-booted.txt")
    assert [d.address for d in devices] == [
        "0000:00:00.0",
        "0000:00:01.0",
        "0000:00:02.0",
        "0000:00:03.0",
        "0000:01:00.0",
        "0000:00:04.0",
        "0000:02:03.0",
        "0000:00:1f.0",
        "0000:00:1f.2",
        "0000:00:1f.3",
    ]
    dev = _by_address(devices)
    e1000e = dev["0000:00:01.0"]
    assert (e1000e.description, e1000e.vendor_id, e1000e.device_id, e1000e.qdev_id) == (
        "Ethernet controller",
        0x8086,
        0x10D3,
        "net0",
    )
    # BAR6 (the ROM) is skipped.
    assert _bars(e1000e) == [
        (0, 128 * K, 0xFE640000, False, False, False),
        (1, 128 * K, 0xFE660000, False, False, False),
        (2, 32, 0xD040, True, False, False),
        (3, 16 * K, 0xFE680000, False, False, False),
    ]
    assert e1000e.line == 5 and e1000e.bars[0].line == 9
    assert e1000e.source == e1000e.bars[0].source == "info pci"
    assert e1000e.msix is None
    nvme = dev["0000:00:02.0"]
    assert (nvme.description, nvme.qdev_id) == ("Class 0264", "nvme0")
    assert _bars(nvme) == [(0, 16 * K, 0xFE684000, False, True, False)]
    # Behind the pcie-root-port (bus 1) and the pci-bridge (bus 2, slot 3).
    assert _bars(dev["0000:01:00.0"]) == [
        (1, 4 * K, 0xFE440000, False, False, False),
        (4, 16 * K, 0xFEA00000, False, True, True),
    ]
    assert dev["0000:02:03.0"].qdev_id == "e1"
    assert _bars(dev["0000:00:04.0"]) == [(0, 256, 0xFE689000, False, True, False)]
    assert dev["0000:00:00.0"].qdev_id is None and dev["0000:00:00.0"].bars == ()


def test_stopped_q35_all_unmapped():
    """-S: no firmware ran; QEMU < 9.1 prints 0xffffffffffffffff and end = size - 2."""
    dev = _by_address(parse_info_pci(_text("q35-stopped.txt")))
    assert _bars(dev["0000:00:01.0"]) == [
        (0, None, None, False, False, False),
        (1, None, None, False, False, False),
        (2, None, None, True, False, False),
        (3, None, None, False, False, False),
    ]
    assert _bars(dev["0000:00:02.0"]) == [(0, None, None, False, True, False)]


def test_stdio_monitor_echo_is_ignored():
    """Raw `-monitor stdio` output: banner, CRLF and readline escape sequences."""
    raw = (FIXTURES / "q35-stopped-stdio.txt").read_bytes().decode("utf-8")
    assert "\x1b[" in raw and "\r\n" in raw
    noisy = parse_info_pci(raw)
    clean = parse_info_pci(_text("q35-stopped.txt"))
    assert [(d.address, _bars(d), d.qdev_id) for d in noisy] == [
        (d.address, _bars(d), d.qdev_id) for d in clean
    ]
    assert noisy[0].line == 3  # after the banner and the echoed command


def test_mail_quoted():
    quoted = "".join(f"> {line}\n" for line in _text("q35-booted.txt").splitlines())
    assert [_bars(d) for d in parse_info_pci(quoted)] == [
        _bars(d) for d in parse_info_pci(_text("q35-booted.txt"))
    ]


# --- spec 5.3 and the QEMU >= 9.1 format ---------------------------------------------------

# Spec 5.3 "Illustrative block, pre-9.1 punctuation", verbatim.
SPEC_BLOCK = """\
  Bus  0, device   3, function 0:
    Ethernet controller: PCI device 8086:100e
      PCI subsystem 1af4:1100
      IRQ 11, pin A
      BAR0: 32 bit memory at 0xfebc0000 [0xfebdffff].
      BAR1: I/O at 0xc000 [0xc03f].
      BAR6: 32 bit memory at 0xffffffffffffffff [0x0003fffe].
      id "net0"
"""


def test_spec_block():
    (dev,) = parse_info_pci(SPEC_BLOCK)
    assert (dev.address, dev.qdev_id, dev.vendor_id, dev.device_id) == (
        "0000:00:03.0",
        "net0",
        0x8086,
        0x100E,
    )
    assert _bars(dev) == [
        (0, 128 * K, 0xFEBC0000, False, False, False),
        (1, 64, 0xC000, True, False, False),
    ]


def test_spec_unmapped_size_minus_one_example():
    """Spec 5.3: `BAR4: 32 bit memory at 0xffffffffffffffff [0x00000ffe].` is unmapped."""
    text = (
        "  Bus  0, device  31, function 2:\n"
        "    SATA controller: PCI device 8086:2922\n"
        "      BAR4: 32 bit memory at 0xffffffffffffffff [0x00000ffe].\n"
    )
    (dev,) = parse_info_pci(text)
    assert _bars(dev) == [(4, None, None, False, False, False)]


# QEMU >= 9.1, assembled from the format strings of hmp_info_pci_device in qemu/qemu
# master (hw/pci/pci-hmp-cmds.c): no trailing '.', "(not mapped)" for unmapped BARs.
# Not a capture (no QEMU 9.1 here); the bridge is a pcie-root-port.
QEMU_91 = """\
  Bus  0, device   3, function 0:
    PCI bridge: PCI device 1b36:000c
      IRQ 11, pin A
      BUS 0.
      secondary bus 1.
      subordinate bus 1.
      IO range [0xd000, 0xcfff]
      memory range [0xfe400000, 0xfe5fffff]
      prefetchable memory range [0xfea00000, 0xfebfffff]
      BAR0: 32 bit memory at 0xfe688000 [0xfe688fff]
      id "rp1"
  Bus  1, device   0, function 0:
    Ethernet controller: PCI device 1af4:1041
      PCI subsystem 1af4:1100
      IRQ 11, pin A
      BAR0: I/O (not mapped)
      BAR1: 32 bit memory at 0xfe440000 [0xfe440fff]
      BAR2: 64 bit prefetchable memory (not mapped)
      BAR4: 64 bit prefetchable memory at 0x0000008000000000 [0x0000008000003fff]
      BAR6: 32 bit memory (not mapped)
      id "vnet1"
"""


def test_qemu_91_format():
    bridge, nic = parse_info_pci(QEMU_91)
    assert (bridge.address, bridge.qdev_id) == ("0000:00:03.0", "rp1")
    assert _bars(bridge) == [(0, 4 * K, 0xFE688000, False, False, False)]
    assert nic.address == "0000:01:00.0"
    assert _bars(nic) == [
        (0, None, None, True, False, False),
        (1, 4 * K, 0xFE440000, False, False, False),
        (2, None, None, False, True, True),
        (4, 16 * K, 0x8000000000, False, True, True),
    ]


# --- QMP query-pci -------------------------------------------------------------------------


def _comparable(dev: PciDevice) -> tuple[object, ...]:
    return (dev.address, dev.description, dev.vendor_id, dev.device_id, dev.qdev_id, _bars(dev))


def test_query_pci_matches_info_pci_when_mapped():
    qmp = parse_query_pci(_json("q35-booted.query-pci.json"))
    hmp = parse_info_pci(_text("q35-booted.txt"))
    assert [_comparable(d) for d in qmp] == [_comparable(d) for d in hmp]
    assert {d.source for d in qmp} == {"query-pci"} and qmp[0].line is None


def test_query_pci_keeps_size_of_unmapped_bars():
    reply = _json("q35-stopped.query-pci.json")
    assert isinstance(reply, dict)
    dev = _by_address(parse_query_pci(reply["return"]))  # the bare list works too
    assert _bars(dev["0000:00:01.0"]) == [
        (0, 128 * K, None, False, False, False),
        (1, 128 * K, None, False, False, False),
        (2, 32, None, True, False, False),
        (3, 16 * K, None, False, False, False),
    ]
    assert dev["0000:00:02.0"].description == "Class 0264"


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        ({"error": {"class": "GenericError"}}, "expected a list of buses"),
        ([], "no query-pci device information found"),
        ([{"bus": 0}], "'devices' is not list"),
        ([{"bus": 0, "devices": [{"bus": 0, "slot": "1"}]}], "'slot' is not int"),
        (
            [
                {
                    "bus": 0,
                    "devices": [
                        {
                            "bus": 0,
                            "slot": 1,
                            "function": 0,
                            "class_info": {"class": 512},
                            "id": {"vendor": 1, "device": 2},
                            "regions": [{"bar": 0, "type": "rom", "address": 0, "size": 1}],
                        }
                    ],
                }
            ],
            "region type 'rom'",
        ),
    ],
)
def test_query_pci_errors(reply: object, message: str):
    with pytest.raises(SourceError) as err:
        parse_query_pci(reply, "reply.json")
    assert str(err.value).startswith("reply.json: ")
    assert message in str(err.value) and "\n" not in str(err.value)


# --- HMP errors: one line, original line number, offending text ----------------------------


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("      BAR0: 32 bit memory at 0xfebzz000 [0xfebdffff].", "cannot read info pci BAR line"),
        ("      BAR0: 48 bit memory at 0xfebc0000 [0xfebdffff].", "cannot read info pci BAR line"),
        ("      BAR7: 32 bit memory at 0xfebc0000 [0xfebdffff].", "BAR index 7 is not 0..6"),
        ("      BAR1: I/O at 0xc000 [0xc03f].", "BAR1 listed twice"),
        ("  Bus  x, device   3, function 0:", "cannot read info pci device line"),
        ("  Bus  0, device  40, function 0:", "bus, device or function out of range"),
    ],
)
def test_unreadable_lines_raise_with_location(bad: str, message: str):
    text = (
        "(qemu) info pci\r\n"
        "  Bus  0, device   3, function 0:\r\n"
        "    Ethernet controller: PCI device 8086:100e\r\n"
        "      BAR1: I/O at 0xc000 [0xc03f].\r\n"
        f"{bad}\r\n"
        '      id "net0"\r\n'
    )
    with pytest.raises(SourceError) as err:
        parse_info_pci(text, "hmp.txt")
    assert str(err.value) == f"hmp.txt:5: {message}: {bad!r}"


def test_bar_before_any_device_raises():
    bad = "      BAR0: 32 bit memory at 0xfebc0000 [0xfebdffff]."
    with pytest.raises(SourceError) as err:
        parse_info_pci(f"(qemu) info pci\n{bad}\n", "hmp.txt")
    assert str(err.value) == (
        f"hmp.txt:2: BAR line before any 'Bus N, device N, function N:' line: {bad!r}"
    )


def test_no_device_information():
    with pytest.raises(SourceError) as err:
        parse_info_pci(
            "QEMU 7.2.22 monitor - type 'help' for more information\n(qemu) quit\n", "empty.txt"
        )
    assert str(err.value) == "empty.txt: no info pci device information found"
