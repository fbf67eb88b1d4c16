"""What QEMU's vfio-pci builds for an assigned device, simulated.

Mirrors hw/vfio/pci.c (QEMU 7.2 and master, see docs/qemu-source-notes.md Q5/Q6):
``vfio_pci_relocate_msix`` (validity, error text, new BAR sizes), ``vfio_pci_fixup_msix_region``
and the kernel's sparse mmap (which parts of a BAR are mmap'd), and ``vfio_bar_register`` +
``vfio_region_mmap`` + ``msix_init`` (the MemoryRegion stack: ``<bdf> base BAR N`` >
``<bdf> BAR N`` > ``<bdf> BAR N mmaps[k]``, with ``msix-table``/``msix-pba`` in the base
BAR).  The stack is a real :class:`~flatview.model.MtreeDump`, rendered by the same
flattener as a dump read from QEMU.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import NamedTuple

from ..errors import UsageError
from ..model import U64, AddressSpaceTree, MemoryRegion, MtreeDump, Variant
from .names import VFIO_NAME
from .pci import MsixCapability, PciDevice, pba_size, table_size

__all__ = [
    "OPTIONS",
    "VFIO_NAME",
    "GuestBar",
    "KernelEra",
    "Relocation",
    "StackOptions",
    "build_stack",
    "kernel_era",
    "mmap_areas",
    "msix_relocation_size",
    "place_bars",
    "relocate",
]

OPTIONS = ("off", "auto", "bar0", "bar1", "bar2", "bar3", "bar4", "bar5")
GiB = 1 << 30
PCI_ROM_SLOT = 6


# A host kernel release as `uname -r` prints it: 4.15, 6.1, 6.1.0-13-amd64, 5.14.0-362.el9
_KERNEL_RELEASE = re.compile(
    r"v?([2-9]|[1-9][0-9])\.([0-9]{1,3})(?:[.+~_-][0-9A-Za-z.+~_-]{0,64})?"
)


def kernel_era(version: str) -> str:
    """Which host-kernel behaviour applies (vfio-msix.md §1.2): E0 < 4.6 <= E1 < 4.16 <= E2.

    Only a release number (``4.15``, ``6.1``, ``6.1.0-13-amd64``) is understood; anything
    else is a usage error rather than a guess."""
    m = _KERNEL_RELEASE.fullmatch(version.strip())
    if m is None:
        raise UsageError(
            f"--kernel: {version[:40]!r} is not a kernel release like 4.15, 6.1 or 6.1.0-13-amd64"
        )
    major, minor = int(m.group(1)), int(m.group(2))
    if (major, minor) < (4, 6):
        return "E0"
    if (major, minor) < (4, 16):
        return "E1"
    return "E2"


KernelEra = str


def _align_up(x: int, p: int) -> int:
    return (x + p - 1) // p * p


def _pow2ceil(x: int) -> int:
    return 1 << (x - 1).bit_length() if x > 1 else 1


def msix_relocation_size(vectors: int, page: int) -> int:
    """msix_sz of vfio_pci_relocate_msix: pow2ceil(REAL_HOST_PAGE_ALIGN(table + PBA))."""
    return _pow2ceil(_align_up(table_size(vectors) + pba_size(vectors), page))


class GuestBar(NamedTuple):
    """A BAR as the guest sees it: ``size`` may exceed the host BAR (``host_size``)."""

    index: int
    size: int
    host_size: int
    is_io: bool = False
    is_64bit: bool = False
    prefetchable: bool = False
    created: bool = False  # added by relocation (no host BAR behind it)

    @property
    def added(self) -> int:
        return self.size - self.host_size


class Relocation(NamedTuple):
    """The outcome of ``x-msix-relocation=<option>`` for one device and host page size."""

    option: str
    valid: bool
    error: str | None
    bars: tuple[GuestBar, ...]
    msix: MsixCapability | None  # table/PBA placement the guest sees

    @property
    def added_mmio(self) -> int:
        return sum(b.added for b in self.bars)

    def bar(self, index: int) -> GuestBar | None:
        return next((b for b in self.bars if b.index == index), None)


def _guest_bars(dev: PciDevice) -> tuple[GuestBar, ...]:
    return tuple(
        GuestBar(b.index, b.size or 0, b.size or 0, b.is_io, b.is_64bit, b.prefetchable)
        for b in sorted(dev.bars, key=lambda b: b.index)
        if b.size or b.is_io  # an I/O BAR of unknown size is still an I/O BAR
    )


def relocate(dev: PciDevice, option: str, page: int) -> Relocation:
    """vfio_pci_relocate_msix, with QEMU's own error text (prefixed ``vfio <bdf>: ``)."""
    bars = _guest_bars(dev)
    msix = dev.msix
    prefix = f"vfio {dev.address}: "
    if option not in OPTIONS:
        raise ValueError(option)
    if msix is None:
        return Relocation(
            option,
            option == "off",
            None
            if option == "off"
            else prefix + "device has no MSI-X capability: nothing to relocate",
            bars,
            None,
        )
    pba_host = next((b.host_size for b in bars if b.index == msix.pba_bar), 0)
    if msix.pba_offset >= pba_host:
        msix = _pba_quirk(dev, msix)
    if option == "off":
        return Relocation("off", *_check_msix_off(dev, bars, msix, prefix), bars, msix)
    if option == "auto":
        ids = (
            f"{dev.vendor_id:04x}:{dev.device_id:04x}"
            if dev.vendor_id is not None and dev.device_id is not None
            else "<ids unknown: not in the input>"
        )
        return Relocation(
            option,
            False,
            prefix + f"No automatic MSI-X relocation available for device {ids}",
            bars,
            msix,
        )
    t = int(option[3:])
    by = {b.index: b for b in bars}
    cur = by.get(t)
    if cur is not None and cur.is_io:
        return Relocation(
            option, False, prefix + f"Invalid MSI-X relocation BAR {t}, I/O port BAR", bars, msix
        )
    prev = by.get(t - 1)
    if cur is None and prev is not None and prev.is_64bit:  # BAR -1 is never in by
        return Relocation(
            option,
            False,
            prefix + f"Invalid MSI-X relocation BAR {t}, consumed by 64-bit BAR {t - 1}",
            bars,
            msix,
        )
    if cur is not None and cur.size > GiB and not cur.is_64bit:
        return Relocation(
            option,
            False,
            prefix + f"Invalid MSI-X relocation BAR {t}, no space to extend 32-bit BAR",
            bars,
            msix,
        )
    unit = msix_relocation_size(msix.vectors, page)
    if cur is None:  # a new BAR: 64-bit if the next slot is free too, always prefetchable
        mem64 = t < PCI_ROM_SLOT - 1 and (t + 1) not in by
        new = GuestBar(t, unit, 0, False, mem64, True, created=True)
        table_offset = 0
    else:  # extend: double, MSI-X in the upper half, on its own host page
        new = cur._replace(size=max(cur.size * 2, unit * 2))
        table_offset = new.size // 2
    out = tuple(sorted([*(b for b in bars if b.index != t), new], key=lambda b: b.index))
    placed = replace(
        msix,
        table_bar=t,
        table_offset=table_offset,
        pba_bar=t,
        pba_offset=table_offset + msix.table_size,
    )
    return Relocation(option, True, None, out, placed)


def _pba_quirk(dev: PciDevice, msix: MsixCapability) -> MsixCapability:
    """vfio_msix_early_setup's fixes for devices that report a PBA outside their BAR."""
    vendor, device = dev.vendor_id, dev.device_id or 0
    if vendor == 0x1425 and device & 0xFF00 == 0x5800:  # Chelsio T5 VF
        return replace(msix, pba_offset=0x1000)
    if (vendor, device) == (0x1D22, 0x3685):  # Baidu Kunlun VF
        return replace(msix, pba_offset=0xB400)
    return msix


def _cap_size(dev: PciDevice, pos: int) -> int:
    """vfio_std_cap_max_size: up to the next standard capability, or to 0x100."""
    return min([c for c in dev.capabilities if c > pos] + [0x100]) - pos


def _check_msix_off(
    dev: PciDevice, bars: tuple[GuestBar, ...], msix: MsixCapability, prefix: str
) -> tuple[bool, str | None]:
    """vfio_msix_early_setup's PBA check and msix_init's sanity test, for the native layout."""
    by = {b.index: b for b in bars}
    pba_bar, table_bar = by.get(msix.pba_bar), by.get(msix.table_bar)
    if pba_bar is None or msix.pba_offset >= pba_bar.host_size:
        return False, prefix + (
            "hardware reports invalid configuration, MSIX PBA outside of specified BAR"
        )
    same = msix.table_bar == msix.pba_bar
    overlap = same and (
        msix.table_offset < msix.pba_offset + msix.pba_size
        and msix.pba_offset < msix.table_offset + msix.table_size
    )
    if (
        table_bar is None
        or overlap
        or msix.table_offset + msix.table_size > table_bar.size
        or msix.pba_offset + msix.pba_size > pba_bar.size
        or msix.table_offset & 7
        or msix.pba_offset & 7
    ):
        if msix.cap_offset is None:
            where = "0x11[0x?]@0x?"
        else:
            where = f"0x11[{_cap_size(dev, msix.cap_offset):#x}]@{msix.cap_offset:#x}"
        return False, prefix + (
            f"failed to add PCI capability {where}: table & pba "
            "overlap, or they don't fit in BARs, or don't align"
        )
    return True, None


# --------------------------------------------------------------------------- mmaps


def mmap_areas(
    bar: GuestBar,
    msix: MsixCapability | None,
    page: int,
    era: KernelEra,
    no_mmap: bool = False,
    host_base: int | None = None,
) -> tuple[tuple[int, int], ...]:
    """The ``mmaps[k]`` of a host BAR as (offset, size): the kernel's sparse mmap (E1),
    QEMU's fixup of the original table BAR (E0), or the whole BAR (E2, MSIX_MAPPABLE)."""
    size = bar.host_size
    if no_mmap or bar.is_io or size == 0:
        return ()
    if size < page and host_base is not None and host_base % page:
        return ()  # vfio_pci_probe_mmaps: a sub-page BAR needs a page-aligned host base
    if msix is None or msix.table_bar != bar.index or era == "E2":
        return ((0, size),)
    lo = msix.table_offset // page * page
    hi = _align_up(msix.table_offset + msix.table_size, page)
    areas = [(0, lo), (hi, size - hi)]
    return tuple((o, s) for o, s in areas if s > 0)


# --------------------------------------------------------------------------- the stack


class StackOptions(NamedTuple):
    page: int = 4096
    era: KernelEra = "E2"
    no_mmap: bool = False
    host_bases: dict[int, int] | None = None  # host BAR addresses, if known


def _mr(
    name: str,
    start: int,
    addr: int,
    size: int,
    prio: int,
    type_: str,
    subs: tuple[MemoryRegion, ...] = (),
    enabled: bool = True,
) -> MemoryRegion:
    return MemoryRegion(
        name=name,
        addr=addr,
        start=start,
        size=size,
        priority=prio,
        type=type_,
        enabled=enabled,
        subregions=subs,
    )


def _print_order(subs: list[MemoryRegion]) -> tuple[MemoryRegion, ...]:
    """mtree_print_mr's order: address ascending, priority descending, then list order."""
    return tuple(sorted(subs, key=lambda m: (m.addr, -m.priority)))


def build_stack(
    dev: PciDevice,
    reloc: Relocation,
    bases: dict[int, int],
    orig_msix: MsixCapability | None,
    opts: StackOptions,
) -> MtreeDump:
    """The MemoryRegion tree vfio-pci builds (vfio_bar_register, vfio_region_mmap,
    msix_init), with each base BAR at its guest address ``bases[index]`` in ``pci``."""
    bdf = dev.address
    base_bars: list[MemoryRegion] = []
    for gb in reloc.bars:
        if gb.is_io:
            continue
        g = bases[gb.index]
        list_order: list[MemoryRegion] = []  # newest first, as QEMU's subregion list
        msix = reloc.msix
        if msix is not None and msix.pba_bar == gb.index:
            list_order.append(
                _mr(
                    "msix-pba",
                    g + msix.pba_offset,
                    msix.pba_offset,
                    msix.pba_size,
                    0,
                    "i/o",
                    enabled=False,
                )
            )
        if msix is not None and msix.table_bar == gb.index:
            list_order.append(
                _mr(
                    "msix-table",
                    g + msix.table_offset,
                    msix.table_offset,
                    msix.table_size,
                    0,
                    "i/o",
                )
            )
        if gb.host_size:
            areas = mmap_areas(
                gb,
                orig_msix,
                opts.page,
                opts.era,
                opts.no_mmap,
                (opts.host_bases or {}).get(gb.index),
            )
            mmaps = []
            for k, (off, size) in enumerate(areas):
                if gb.host_size < opts.page and g % opts.page == 0 and len(areas) == 1:
                    size = opts.page  # vfio_sub_page_bar_update_mapping widens to a page
                mmaps.append(_mr(f"{bdf} BAR {gb.index} mmaps[{k}]", g + off, off, size, 0, "ramd"))
            region_size = max(gb.host_size, max((m.addr + m.size for m in mmaps), default=0))
            list_order.append(
                _mr(
                    f"{bdf} BAR {gb.index}",
                    g,
                    0,
                    region_size,
                    0,
                    "i/o",
                    _print_order(list(reversed(mmaps))),
                )
            )
        size = max(gb.size, max((m.addr + m.size for m in list_order), default=0))
        base_bars.append(
            _mr(f"{bdf} base BAR {gb.index}", g, g, size, 1, "i/o", _print_order(list_order))
        )
    pci = _mr("pci", 0, 0, U64, -1, "i/o", _print_order(base_bars))
    system = _mr("system", 0, 0, U64, 0, "i/o", (pci,))
    group = AddressSpaceTree(("memory",), system, 0)
    return MtreeDump((group,), (), Variant(), f"<simulated {reloc.option}>", 0)


def place_bars(reloc: Relocation, known: dict[int, int], page: int) -> dict[int, int]:
    """Guest addresses for every memory BAR: the observed one where known and the BAR is
    unchanged; grown and new BARs in naturally aligned slots above all of them, largest
    first, as firmware allocates.  A sub-page BAR of unknown guest address is put off a
    page boundary: the worst case, since only a page-aligned one is direct-mapped."""
    out: dict[int, int] = {}
    sizes = {b.index: b.size for b in reloc.bars if not b.is_io}
    for b in reloc.bars:  # a BAR the relocation grew or created is placed anew
        g = known.get(b.index)
        if g is not None and not b.is_io and not b.added and g % b.size == 0:
            out[b.index] = g
    cursor = max((out[i] + sizes[i] for i in out), default=0x80000000)
    for i in sorted(sizes, key=lambda i: -sizes[i]):
        if i in out:
            continue
        if sizes[i] < page:
            # a sub-page BAR: the guest may put it off a page boundary; assume it does
            cursor = _align_up(cursor, sizes[i])
            if cursor % page == 0:
                cursor += sizes[i]
        else:
            cursor = _align_up(cursor, sizes[i])
        out[i] = cursor
        cursor += sizes[i]
    return out
