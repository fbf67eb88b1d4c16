"""vfio-pci's MemoryRegion names, as a dump prints them (hw/vfio/pci.c, common.c).

Apart from :mod:`flatview.vfio.stack` (which builds regions with these names) so that
reading devices out of a dump (diff, gate) does not import the stack simulator."""

from __future__ import annotations

import re

__all__ = ["VFIO_NAME"]

# "<bdf> BAR N", "<bdf> base BAR N" (a relocated or grown BAR's container), and
# "<bdf> BAR N mmaps[K]" (a direct-mapped part: vfio_region_mmap)
VFIO_NAME = re.compile(
    r"^(?P<bdf>\S+) (?P<base>base )?BAR (?P<bar>\d)(?P<mmap> mmaps\[(?P<k>\d+)\])?$"
)
