"""Bundled sample input: the SAS3008 MSI-X relocation thread (seed 003), as mailed."""
