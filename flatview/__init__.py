"""flatview: read QEMU ``info mtree`` dumps, recompute FlatViews, advise on MSI-X relocation."""

__version__ = "0.1.0"
