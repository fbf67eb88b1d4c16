"""Capture a running QEMU into a bundle (see :mod:`flatview.capture.bundle`).

Three ways in, one bundle out: a QMP socket (:func:`~flatview.capture.qmp.capture_qmp`),
a libvirt domain (:func:`~flatview.capture.libvirt.capture_domain`), or a QEMU this
process starts itself (:func:`~flatview.capture.launch.capture_launch`); a matrix of
such launches writes one bundle per configuration (:mod:`flatview.capture.matrix`).
``qemu.qmp`` is imported only when capturing.
"""

# Here, not in launch.py: the command line's default, without importing asyncio.
DEFAULT_SETTLE = 0.5  # seconds the BAR map must stay the same
