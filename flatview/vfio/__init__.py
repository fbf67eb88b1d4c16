"""The VFIO model: assigned PCI devices and the MemoryRegion stack vfio-pci builds.

``pci`` (the device model: BARs, MSI-X capability), ``lspci`` and ``infopci`` (the host's
and QEMU's descriptions of it), ``devices`` (device facts gathered from a dump, lspci and
``info pci``, each with its source) and ``stack`` (hw/vfio/pci.c: vfio_pci_relocate_msix,
vfio_pci_fixup_msix_region, the sparse mmaps and the BAR stack, simulated).
"""
