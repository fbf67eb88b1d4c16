"""flatview.vfio.lspci: real lspci excerpts from the seed mails and the spec, and bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from flatview.errors import SourceError
from flatview.vfio.lspci import UNKNOWN_ADDRESS, parse_lspci
from flatview.vfio.pci import PciDevice

SEEDS = Path(__file__).resolve().parent / "fixtures" / "seeds"

K = 1024


def _seed(prefix: str) -> tuple[str, str]:
    """(path, text) of the seed file ``<prefix>_*.txt``; skip the test if absent."""
    found = sorted(SEEDS.glob(f"{prefix}_*.txt"))
    if not found:
        pytest.fail(f"seed {prefix} not found under {SEEDS}")
    return str(found[0]), found[0].read_text(encoding="utf-8")


def _line_of(text: str, needle: str, start: int = 1) -> int:
    """1-based number of the first line at or after ``start`` that contains ``needle``."""
    for no, line in enumerate(text.splitlines(), 1):
        if no >= start and needle in line:
            return no
    raise AssertionError(f"{needle!r} not in seed")


def _bars(dev: PciDevice) -> list[tuple[int, int | None, int | None, bool, bool, bool, bool]]:
    """(index, size, address, io, 64-bit, prefetchable, inferred) of every BAR."""
    return [
        (b.index, b.size, b.address, b.is_io, b.is_64bit, b.prefetchable, b.index_inferred)
        for b in dev.bars
    ]


# --- seed 000: the merged x-msix-relocation commit message --------------------------------


@pytest.fixture(scope="module")
def seed000() -> tuple[str, list[PciDevice]]:
    path, text = _seed("000")
    return text, parse_lspci(text, path)


def test_seed000_finds_exactly_the_two_lspci_examples(seed000):
    _, devices = seed000
    assert [d.address for d in devices] == ["0000:0a:00.0", "0000:02:00.0"]


def test_seed000_i350(seed000):
    text, devices = seed000
    i350 = devices[0]
    assert i350.description == (
        "Ethernet controller: Intel Corporation I350 Gigabit Network Connection"
    )
    assert i350.line == _line_of(text, "0a:00.0 Ethernet controller")
    assert _bars(i350) == [
        (0, 512 * K, 0xDB680000, False, False, False, False),
        (3, 16 * K, 0xDB7F8000, False, False, False, False),
    ]
    assert i350.bars[0].line == _line_of(text, "Region 0: Memory at db680000")
    msix = i350.msix
    assert msix is not None
    assert (msix.vectors, msix.table_bar, msix.table_offset, msix.pba_bar, msix.pba_offset) == (
        10,
        3,
        0,
        3,
        0x2000,
    )
    assert (msix.enabled, msix.masked, msix.cap_offset) == (True, False, 0x70)
    assert msix.line == _line_of(text, "Capabilities: [70] MSI-X")
    assert msix.source == i350.source == i350.bars[0].source == "lspci"


def test_seed000_sas(seed000):
    _, devices = seed000
    sas = devices[1]
    assert _bars(sas) == [
        (0, 256, 0xC000, True, False, False, False),
        (1, 64 * K, 0xEF640000, False, True, False, False),
        (3, 256 * K, 0xEF600000, False, True, False, False),
    ]
    assert sas.bars[1].slots == (1, 2)
    assert sas.msix is not None
    assert (
        sas.msix.vectors,
        sas.msix.table_bar,
        sas.msix.table_offset,
        sas.msix.pba_bar,
        sas.msix.pba_offset,
    ) == (16, 1, 0xE000, 1, 0xF000)


# --- seed 003: RFC test results, SAS3008 quoted at several depths --------------------------


@pytest.fixture(scope="module")
def seed003() -> tuple[str, list[PciDevice]]:
    path, text = _seed("003")
    return text, parse_lspci(text, path)


def _at(devices: list[PciDevice], line: int) -> PciDevice:
    (dev,) = [d for d in devices if d.line == line]
    return dev


def test_seed003_sas3008_without_region_prefix(seed003):
    """`Memory at ...` lines without `Region N:`: indices guessed 0 and 2, kept as guessed
    although the MSI-X capability says BAR=1 (BAR0 is an I/O BAR left out of the mail)."""
    text, devices = seed003
    dev = _at(devices, _line_of(text, "00:00.0 Serial Attached SCSI controller"))
    assert dev.address == "0000:00:00.0"
    # The header was wrapped by the mail client; the second line is joined back.
    assert dev.description == (
        "Serial Attached SCSI controller: LSI Logic / Symbios Logic "
        "SAS3008 PCI-Express Fusion-MPT SAS-3 (rev 02)"
    )
    assert _bars(dev) == [
        (0, 64 * K, 0x210000000000, False, True, False, True),
        (2, 256 * K, 0x210000040000, False, True, False, True),
    ]
    assert dev.msix is not None
    assert (
        dev.msix.vectors,
        dev.msix.table_bar,
        dev.msix.table_offset,
        dev.msix.pba_bar,
        dev.msix.pba_offset,
    ) == (96, 1, 0xE000, 1, 0xF000)
    assert dev.msix.table_size == 0x600 and dev.msix.pba_size == 16


def test_seed003_quoted_copies_read_the_same(seed003):
    """The same excerpt quoted with '>', '>>', '> >>' and '>>>>' gives the same device."""
    text, devices = seed003
    headed = [
        d
        for d in devices
        if d.description and "SAS3008" in d.description and d.address == "0000:00:00.0"
    ]
    assert len(headed) == 5
    first = headed[0]
    for dev in headed[1:]:
        assert _bars(dev) == _bars(first)
        assert dev.msix is not None and first.msix is not None
        assert dev.msix.vectors == first.msix.vectors
        assert dev.msix.table_offset == first.msix.table_offset
    # Line numbers point into the original (quoted) file.
    quoted = _line_of(text, ">>>> 00:00.0 Serial Attached SCSI controller")
    assert headed[-1].line == quoted
    assert headed[-1].bars[0].line == _line_of(text, ">>>> Memory at 210000000000", quoted)


def test_seed003_headerless_excerpts_are_separate_devices(seed003):
    """Test #2 ("auto": MSI-X moved to a new 32-bit BAR0) has no header line."""
    text, devices = seed003
    dev = _at(devices, _line_of(text, "Region 0: Memory at 200080000000"))
    assert dev.address == UNKNOWN_ADDRESS
    assert dev.description is None
    assert _bars(dev) == [
        (0, 64 * K, 0x200080000000, False, False, True, False),
        (1, 64 * K, 0x210000000000, False, True, False, False),
        (3, 256 * K, 0x210000040000, False, True, False, False),
    ]
    assert dev.msix is not None
    assert (dev.msix.enabled, dev.msix.table_bar, dev.msix.pba_offset) == (False, 0, 0x600)
    # Test #4 ("bar5") follows later in the same mail: a device of its own.
    bar5 = _at(devices, _line_of(text, "Region 1: Memory at 210000000000", dev.line + 3))
    assert bar5.address == UNKNOWN_ADDRESS
    assert [b.index for b in bar5.bars] == [1, 3, 5]
    assert bar5.msix is not None and bar5.msix.table_bar == 5


def test_seed003_lspci_vbxs_block(seed003):
    """`lspci -vbxs`: header wrapped over three lines, space-indented BAR lines without
    `Region N:`, an unassigned disabled I/O BAR, no sizes, capabilities denied."""
    text, devices = seed003
    dev = _at(devices, _line_of(text, "0001:03:00.0 Serial Attached SCSI controller"))
    assert dev.address == "0001:03:00.0"
    assert dev.description == (
        "Serial Attached SCSI controller: LSI Logic / Symbios Logic "
        "SAS3008 PCI-Express Fusion-MPT SAS-3 (rev 02)"
    )
    # The guessed indices agree with the config dump below it (BAR1 = 0x80140004).
    assert _bars(dev) == [
        (0, None, None, True, False, False, True),
        (1, None, 0x80140000, False, True, False, True),
        (3, None, 0x80100000, False, True, False, True),
    ]
    assert dev.msix is None


def test_seed003_regions_without_size(seed003):
    text, devices = seed003
    region5 = _line_of(text, "Region 5: Memory at 80000000")
    (dev,) = [d for d in devices if any(b.line == region5 for b in d.bars)]
    assert dev.address == UNKNOWN_ADDRESS
    assert _bars(dev) == [
        (1, None, 0x210000000000, False, True, False, False),
        (3, None, 0x210000040000, False, True, False, False),
        (5, None, 0x80000000, False, False, True, False),
    ]
    assert dev.msix is not None and (dev.msix.table_bar, dev.msix.pba_offset) == (5, 0x600)


def test_seed003_bcm5719_and_tusb73x0(seed003):
    text, devices = seed003
    bcm = _at(devices, _line_of(text, "001e:80:00.2 Ethernet controller"))
    assert bcm.address == "001e:80:00.2"
    assert bcm.description is not None and bcm.description.endswith("PCIe (rev 01)")
    assert _bars(bcm) == [
        (0, 64 * K, 0x3FC2C0250000, False, True, True, False),
        (2, 64 * K, 0x3FC2C0240000, False, True, True, False),
        (4, 64 * K, 0x3FC2C0230000, False, True, True, False),
    ]
    assert bcm.msix is not None
    assert (
        bcm.msix.vectors,
        bcm.msix.table_bar,
        bcm.msix.pba_bar,
        bcm.msix.pba_offset,
        bcm.msix.cap_offset,
    ) == (17, 4, 4, 0x120, 0xA0)

    usb = _at(devices, _line_of(text, "0001:09:00.0 USB controller"))
    assert _bars(usb) == [
        (0, 64 * K, 0x3FE080800000, False, True, False, False),
        (2, 8 * K, 0x3FE080810000, False, True, False, False),
    ]
    assert usb.msix is not None
    assert (usb.msix.vectors, usb.msix.table_bar, usb.msix.pba_offset) == (8, 2, 0x1000)


def test_seeds_without_lspci_text_raise():
    path, text = _seed("004")
    with pytest.raises(SourceError) as err:
        parse_lspci(text, path)
    assert str(err.value) == f"{path}: no lspci device information found"


# --- spec examples (/work/shared/spec/vfio-msix.md) ----------------------------------------

# Spec 1.7 "Intel NVMe Sentinel Rock" (from cloud-hypervisor PR #7939): the Region line
# and the MSI-X line are quoted in the spec; the table/PBA lines are written from its
# "table BAR=0 offset 0x2000, PBA BAR=0 offset 0x3000" in cap_msix format.  The
# capability offset [b0] is NOT given by the spec: it is made up for this test.
SPEC_NVME = (
    "\tRegion 0: Memory at 630040010000 (64-bit, non-prefetchable) [size=16K]\n"
    "\tCapabilities: [b0] MSI-X: Enable- Count=136 Masked-\n"
    "\t\tVector table: BAR=0 offset=00002000\n"
    "\t\tPBA: BAR=0 offset=00003000\n"
)


def test_spec_nvme_excerpt_without_header():
    (dev,) = parse_lspci(SPEC_NVME)
    assert dev.address == UNKNOWN_ADDRESS and dev.line == 1
    assert _bars(dev) == [(0, 16 * K, 0x630040010000, False, True, False, False)]
    msix = dev.msix
    assert msix is not None
    assert (
        msix.vectors,
        msix.table_bar,
        msix.table_offset,
        msix.pba_bar,
        msix.pba_offset,
        msix.enabled,
    ) == (136, 0, 0x2000, 0, 0x3000, False)
    assert msix.table_size == 0x880 and msix.pba_size == 24


# Spec 5.1 "Example lines" and its MSI-X block, verbatim; the three -nn -D headers are
# made up (real lspci prints one header per device) so that the ids are read too.
SPEC_EXAMPLE_LINES = (
    "0000:01:00.0 Serial Attached SCSI controller [0107]: Broadcom / LSI SAS3008 "
    "PCI-Express Fusion-MPT SAS-3 [1000:0097] (rev 02)\n"
    "\tRegion 0: I/O ports at 6000 [size=256]\n"
    "\tRegion 1: Memory at ce500000 (64-bit, non-prefetchable) [size=64K]\n"
    "\tExpansion ROM at c6700000 [disabled] [size=64K]\n"
    "\tCapabilities: [c0] MSI-X: Enable+ Count=96 Masked-\n"
    "\t\tVector table: BAR=1 offset=0000e000\n"
    "\t\tPBA: BAR=1 offset=0000f000\n"
    "0000:02:00.0 Non-Volatile memory controller [0108]: Intel Corporation Device "
    "[8086:0b60] (prog-if 02 [NVM Express])\n"
    "\tRegion 0: Memory at 630040010000 (64-bit, non-prefetchable) [size=16K]\n"
    "0000:03:00.0 3D controller [0302]: NVIDIA Corporation Device [10de:2330] (rev a1)\n"
    "\tRegion 0: Memory at d9000000 (32-bit, non-prefetchable) [size=16M]\n"
    "\tRegion 1: Memory at 2ab23fe00000 (64-bit, prefetchable) [size=128G]\n"
    "\tExpansion ROM at <ignored> [disabled]\n"
)


def test_spec_example_lines_with_nn_header():
    sas, nvme, gpu = parse_lspci(SPEC_EXAMPLE_LINES)
    assert (sas.address, sas.vendor_id, sas.device_id) == ("0000:01:00.0", 0x1000, 0x0097)
    assert _bars(sas) == [
        (0, 256, 0x6000, True, False, False, False),
        (1, 64 * K, 0xCE500000, False, True, False, False),
    ]
    assert sas.msix is not None and sas.msix.table_offset == 0xE000
    assert (nvme.vendor_id, nvme.device_id) == (0x8086, 0x0B60)
    assert nvme.description == (
        "Non-Volatile memory controller [0108]: Intel Corporation "
        "Device [8086:0b60] (prog-if 02 [NVM Express])"
    )
    assert _bars(gpu) == [
        (0, 16 * K * K, 0xD9000000, False, False, False, False),
        (1, 128 * K * K * K, 0x2AB23FE00000, False, True, True, False),
    ]
    assert gpu.msix is None


def test_spec_guest_view_without_capability_line_has_no_msix():
    """Spec 5.2 (guest after relocation to bar5), verbatim: no `Capabilities:` line, so the
    vector count is unknown and no MsixCapability is built."""
    text = (
        "\tRegion 5: Memory at fe900000 (32-bit, prefetchable) [size=4K]\n"
        "\t\tVector table: BAR=5 offset=00000000\n"
        "\t\tPBA: BAR=5 offset=00000600\n"
    )
    (dev,) = parse_lspci(text)
    assert _bars(dev) == [(5, 4 * K, 0xFE900000, False, False, True, False)]
    assert dev.msix is None


# --- pciutils format variants (lspci.c show_bases / show_size, ls-caps.c cap_msix) ---------


def test_address_forms_flags_and_sizes():
    text = (
        "05:00.0 Ethernet controller: Example\n"
        "\tRegion 0: Memory at <unassigned> (32-bit, non-prefetchable) [disabled] [size=128K]\n"
        "\tRegion 1: Memory at <ignored> (32-bit, prefetchable) [disabled]\n"
        "\tRegion 2: I/O ports at <ignored> [disabled] [size=32]\n"
        "\tRegion 3: Memory at 90000000 (64-bit, prefetchable) [virtual] [size=1536]\n"
        "\tRegion 5: Memory at <broken-64-bit-slot> (64-bit, non-prefetchable) [size=2T]\n"
    )
    (dev,) = parse_lspci(text)
    assert dev.address == "0000:05:00.0"
    assert _bars(dev) == [
        (0, 128 * K, None, False, False, False, False),
        (1, None, None, False, False, True, False),
        (2, 32, None, True, False, False, False),
        (3, 1536, 0x90000000, False, True, True, False),
        (5, 2 * K**4, None, False, True, False, False),
    ]


def test_old_pciutils_prefix_flags_and_msix_line():
    """pciutils < 3.6.3 printed `[virtual] ` before the body and `<invalid-64bit-slot>`;
    before 3.1.3 cap_msix printed `Enable%c Mask%c TabSize=%d`."""
    text = (
        "\tRegion 0: [virtual] Memory at f0000000 (64-bit, non-prefetchable) [size=16K]\n"
        "\tRegion 2: [virtual] [enhanced] Memory at <invalid-64bit-slot> (64-bit, prefetchable)"
        " [enhanced]\n"
        "\tCapabilities: [70] MSI-X: Enable+ Mask- TabSize=32\n"
        "\t\tVector table: BAR=0 offset=00002000\n"
        "\t\tPBA: BAR=0 offset=00003000\n"
    )
    (dev,) = parse_lspci(text)
    assert [(b.index, b.address, b.prefetchable) for b in dev.bars] == [
        (0, 0xF0000000, False),
        (2, None, True),
    ]
    assert dev.msix is not None
    assert (dev.msix.vectors, dev.msix.enabled, dev.msix.masked) == (32, True, False)


def test_plain_v_infers_indices_and_drops_msix_without_table_lines():
    """`lspci -v`: BAR lines start after the tab, cap_msix prints only its first line."""
    text = (
        "03:00.0 Ethernet controller: Intel Corporation 82599ES 10-Gigabit SFI/SFP+\n"
        "\tFlags: bus master, fast devsel, latency 0, IRQ 16\n"
        "\tMemory at f7c80000 (64-bit, non-prefetchable) [size=512K]\n"
        "\tI/O ports at e020 [size=32]\n"
        "\tMemory at f7d04000 (64-bit, non-prefetchable) [size=16K]\n"
        "\tExpansion ROM at f7c00000 [disabled] [size=512K]\n"
        "\tCapabilities: [70] MSI-X: Enable+ Count=64 Masked-\n"
        "\tKernel driver in use: ixgbe\n"
    )
    (dev,) = parse_lspci(text)
    assert [(b.index, b.is_io, b.index_inferred) for b in dev.bars] == [
        (0, False, True),
        (2, True, True),
        (3, False, True),
    ]
    assert dev.msix is None


def test_sriov_vf_regions_are_not_device_bars():
    """ls-ecaps.c cap_sriov prints the VF BARs as `\\t\\tRegion N:` inside the capability."""
    text = (
        "0000:3b:00.0 Ethernet controller [0200]: Intel Corporation I350 [8086:1521] (rev 01)\n"
        "\tRegion 0: Memory at ab000000 (32-bit, non-prefetchable) [size=1M]\n"
        "\tRegion 3: Memory at ab100000 (32-bit, non-prefetchable) [size=16K]\n"
        "\tCapabilities: [70] MSI-X: Enable+ Count=10 Masked-\n"
        "\t\tVector table: BAR=3 offset=00000000\n"
        "\t\tPBA: BAR=3 offset=00002000\n"
        "\tCapabilities: [160 v1] Single Root I/O Virtualization (SR-IOV)\n"
        "\t\tRegion 0: Memory at 00000000ab200000 (64-bit, non-prefetchable)\n"
        "\t\tRegion 3: Memory at 00000000ab300000 (64-bit, non-prefetchable)\n"
    )
    (dev,) = parse_lspci(text)
    assert [b.index for b in dev.bars] == [0, 3]
    assert dev.msix is not None and dev.msix.pba_offset == 0x2000


def test_n_header_and_spaces_for_tabs():
    text = (
        "00:1f.6 0200: 8086:15bb (rev 10)\n"
        "        Region 0: Memory at f7200000 (32-bit, non-prefetchable) [size=128K]\n"
    )
    (dev,) = parse_lspci(text)
    assert (dev.vendor_id, dev.device_id, dev.bars[0].size) == (0x8086, 0x15BB, 128 * K)


def test_several_headers_in_one_listing():
    text = (
        "00:00.0 Host bridge: Intel Corporation Device 3e30 (rev 0d)\n"
        "\tFlags: bus master, fast devsel, latency 0\n\n"
        "00:02.0 VGA compatible controller: Intel Corporation Device 3e98 (rev 02)"
        " (prog-if 00 [VGA controller])\n"
        "\tRegion 0: Memory at a0000000 (64-bit, non-prefetchable) [size=16M]\n"
        "\tRegion 2: Memory at 90000000 (64-bit, prefetchable) [size=256M]\n"
        "\tRegion 4: I/O ports at 5000 [size=64]\n"
    )
    host, vga = parse_lspci(text)
    assert host.bars == () and host.line == 1
    assert [b.index for b in vga.bars] == [0, 2, 4] and vga.line == 4


# --- errors: one line, original line number, offending text --------------------------------


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (
            "\tRegion 0: Memory at zz680000 (32-bit, non-prefetchable) [size=512K]",
            "cannot read lspci Region line",
        ),
        (
            "\tRegion 0: Memory at db680000 (32-bit, non-prefetchable) [size=512X]",
            "cannot read lspci Region line",
        ),
        (
            "\tRegion 6: Memory at db680000 (32-bit, non-prefetchable) [size=512K]",
            "BAR index 6 is not 0..5",
        ),
        (
            "\tCapabilities: [70] MSI-X: Enable+ Count=abc Masked-",
            "cannot read lspci MSI-X capability line",
        ),
        ("\tCapabilities: [70] MSI-X: Enable+ Count=0 Masked-", "MSI-X Count=0 is not 1..2048"),
        ("\t\tVector table: BAR=x offset=00000000", "cannot read lspci MSI-X location line"),
        ("\t\tPBA: BAR=3 offset=0000g000", "cannot read lspci MSI-X location line"),
        ("\t\tPBA: BAR=9 offset=00002000", "MSI-X BAR=9 is not 0..7"),
    ],
)
def test_unreadable_lines_raise_with_location(bad: str, message: str):
    text = (
        "Some mail text.\n"
        "> 0a:00.0 Ethernet controller: Intel Corporation I350 Gigabit Network Connection\n"
        ">\tRegion 3: Memory at db7f8000 (32-bit, non-prefetchable) [size=16K]\n"
        ">\tCapabilities: [70] MSI-X: Enable+ Count=10 Masked-\n"
        f"> {bad}\r\n"
        "> trailing\n"
    )
    with pytest.raises(SourceError) as err:
        parse_lspci(text, "mail.txt")
    assert err.value.loc.line == 5
    assert str(err.value) == f"mail.txt:5: {message}: {bad!r}"
    assert "\n" not in str(err.value)


def test_more_than_six_inferred_slots_raise():
    text = "".join(f"\tMemory at {i:x}0000000 (64-bit, non-prefetchable)\n" for i in range(1, 5))
    with pytest.raises(SourceError) as err:
        parse_lspci(text, "x")
    assert str(err.value).startswith("x:4: more than 6 BAR registers: ")


def test_no_device_information():
    with pytest.raises(SourceError) as err:
        parse_lspci("just some text\n\tFlags: bus master\n", "empty.txt")
    assert str(err.value) == "empty.txt: no lspci device information found"
