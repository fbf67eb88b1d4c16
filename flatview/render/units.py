"""Sizes and addresses as every renderer prints them: one style everywhere.

Sizes read like QEMU's command line takes them (``-m 16G``, ``x-msix-relocation`` page sizes,
``--page-size 64K``): the largest binary unit the size is a whole multiple of, or an exact
short fraction of (``62.5K`` for 0xfa00), never ``1024K`` next to ``1M`` and never hex next to
``256K``. Addresses and offsets are hex with ``0x``, as ``info pci`` and ``info mtree`` print
them.
"""

from __future__ import annotations

__all__ = ["addr", "human_size", "page_label"]

_UNITS = (("E", 60), ("P", 50), ("T", 40), ("G", 30), ("M", 20), ("K", 10))


def human_size(n: int) -> str:
    """``4K``, ``64K``, ``1M``, ``16G``; ``62.5K`` when an eighth, quarter or half of a unit
    makes it exact; else the largest whole unit (``1025K``); bytes below 1K (``512B``)."""
    if n == 0:
        return "0"
    for unit, shift in _UNITS:
        if n >= 1 << shift and n % (1 << (shift - 3)) == 0:
            whole, rest = divmod(n, 1 << shift)
            if not rest:
                return f"{whole}{unit}"
            frac = f"{(rest >> (shift - 3)) / 8:.3f}"[1:].rstrip("0")
            return f"{whole}{frac}{unit}"
    for unit, shift in _UNITS:
        if n % (1 << shift) == 0:
            return f"{n >> shift}{unit}"
    return f"{n}B"


def page_label(size: int) -> str:
    """A host page size as ``--page-size`` takes it."""
    return human_size(size)


def addr(n: int) -> str:
    """An address or offset as QEMU's ``info pci`` prints one (``0xfe200000``)."""
    return f"{n:#x}"
