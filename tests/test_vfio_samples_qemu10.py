"""Every check of test_vfio_samples.py, again on real QEMU 10.0.2 dumps (samples/vfio-qemu10).

Same nested setup and devices (nvme 00:03.0, e1000e 00:04.0, virtio-net 00:05.0), with the
L2 QEMU from bookworm-backports: the simulated vfio-pci stacks (``base BAR N`` > ``BAR N`` >
``mmaps[k]``, msix-table/msix-pba, relocation, x-no-mmap) must equal what QEMU 10 built,
range for range relative to each BAR, and its refusal texts must be the advisor's.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "_vfio_samples_qemu10", Path(__file__).with_name("test_vfio_samples.py")
)
assert _spec is not None and _spec.loader is not None
_module = importlib.util.module_from_spec(_spec)
_module.CORPUS = "vfio-qemu10"  # type: ignore[attr-defined]
sys.modules[_spec.name] = _module  # dataclasses look their module up there
_spec.loader.exec_module(_module)
assert _module.VFIO.name == "vfio-qemu10"
globals().update({k: v for k, v in vars(_module).items() if not k.startswith("__")})
