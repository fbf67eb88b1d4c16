"""PCI device descriptions: BARs and the MSI-X capability, from any source.

The advisor combines these with what the flat view shows.  Field names follow QEMU's
``VFIOBAR`` / ``VFIOMSIXInfo`` (hw/vfio/pci.h) and ``msix_init`` (hw/pci/msix.c).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "PCI_MSIX_ENTRY_SIZE",
    "UNKNOWN_ADDRESS",
    "MsixCapability",
    "PciBar",
    "PciDevice",
    "pba_size",
    "table_size",
]

PCI_MSIX_ENTRY_SIZE = 16  # bytes per MSI-X table entry (PCI spec; hw/pci/msix.c)
# The address of a device whose header line is not in the text (an lspci excerpt)
UNKNOWN_ADDRESS = "?"


def table_size(vectors: int) -> int:
    """Bytes of the MSI-X vector table: 16 per vector."""
    return vectors * PCI_MSIX_ENTRY_SIZE


def pba_size(vectors: int) -> int:
    """Bytes of the Pending Bit Array: one bit per vector, in 64-bit words.

    QEMU_ALIGN_UP(n, 64) / 8 in hw/vfio/pci.c; 8 * ceil(n / 64)."""
    return (vectors + 63) // 64 * 8


@dataclass(frozen=True, slots=True)
class PciBar:
    """One implemented BAR (index 0..5; the expansion ROM is not a BAR here)."""

    index: int
    size: int | None  # bytes; None when the source does not say
    is_io: bool = False
    is_64bit: bool = False
    prefetchable: bool = False
    address: int | None = None  # None: unassigned, ignored or unknown
    source: str = ""  # "lspci", "info pci", "mtree", "simulated"
    line: int | None = None  # 1-based line of the source text
    index_inferred: bool = False  # lspci -v without "Region N:": index guessed from order

    @property
    def slots(self) -> tuple[int, ...]:
        """BAR registers this BAR occupies: a 64-bit BAR also consumes the next one."""
        return (self.index, self.index + 1) if self.is_64bit else (self.index,)


@dataclass(frozen=True, slots=True)
class MsixCapability:
    """The MSI-X capability: vector count, and where table and PBA live (BIR + offset)."""

    vectors: int
    table_bar: int
    table_offset: int
    pba_bar: int
    pba_offset: int
    enabled: bool | None = None
    masked: bool | None = None
    cap_offset: int | None = None  # config-space offset of the capability, e.g. 0xc0
    source: str = ""
    line: int | None = None

    @property
    def table_size(self) -> int:
        return table_size(self.vectors)

    @property
    def pba_size(self) -> int:
        return pba_size(self.vectors)

    def dedicated_bar(self, bar_size: int) -> int | None:
        """The BAR index if that BAR holds nothing but MSI-X: table at 0, the PBA in the same
        BAR, and the BAR just large enough for both (pow2ceil of the PBA end), like the
        I350's BAR3 in seed 000 or QEMU's own msix_init_exclusive_bar."""
        if self.table_bar != self.pba_bar or self.table_offset != 0:
            return None
        end = max(self.table_size, self.pba_offset + self.pba_size)
        return self.table_bar if bar_size <= 1 << (end - 1).bit_length() else None


@dataclass(frozen=True, slots=True)
class PciDevice:
    """A PCI function as one source describes it."""

    address: str  # as printed, normalised to DDDD:BB:DD.F when a domain is known
    bars: tuple[PciBar, ...] = ()
    msix: MsixCapability | None = None
    description: str | None = None
    vendor_id: int | None = None
    device_id: int | None = None
    qdev_id: str | None = None  # QEMU's -device id= (info pci `id "..."`)
    source: str = ""
    line: int | None = None
    capabilities: tuple[int, ...] = ()  # config-space offsets of the standard capabilities

    def bar(self, index: int) -> PciBar | None:
        for b in self.bars:
            if b.index == index:
                return b
        return None
