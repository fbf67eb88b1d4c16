"""The real QEMU as the oracle: flatview's FlatViews == QEMU's own ``info mtree -f``.

For a few x86 machine configurations, QEMU is started paused (``-S``, no guest code
runs) with a QMP socket; a tiny QMP client sends ``qmp_capabilities`` and then ``info
mtree`` / ``info mtree -f`` through ``human-monitor-command``, and the tree must
flatten to exactly QEMU's flat views with flatview's rules alone (``learn=False``).
Some configurations also let SeaBIOS run until the PCI BARs are assigned, then stop
the machine, so that BARs, MSI-X tables and bridge windows are really mapped.

Every configuration runs on every QEMU build tests/qemu_builds.py finds: 7.2 (Debian
bookworm, the system QEMU) and 10.x (bookworm-backports, unpacked beside it by
``scripts/qemu_side_by_side.py``, which ``.ci/run`` calls).  A version that is absent
skips with the reason; configurations that need a newer QEMU skip on older ones.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
from qemu_builds import QemuBuild, find_builds, missing_reason, versions

from flatview import api
from flatview.model import FlatDump, MtreeDump
from flatview.render.table import mismatch_text

OVMF = Path("/usr/share/OVMF")

DEVICES = [
    "-device", "e1000e",
    "-device", "virtio-net-pci",
    "-device", "nvme,serial=flatview0",
    "-device", "qemu-xhci",
]  # fmt: skip

PAUSED = ("paused",)
BOTH = ("paused", "bars-assigned")  # also let SeaBIOS assign the BARs, then stop

# name: (arguments, modes)
CONFIGS: dict[str, tuple[list[str], tuple[str, ...]]] = {
    "q35": (["-machine", "q35", *DEVICES], BOTH),
    "pc": (["-machine", "pc", *DEVICES], BOTH),
    "q35-root-ports": ([
        "-machine", "q35",
        "-device", "pcie-root-port,id=rp1,chassis=1,slot=1",
        "-device", "pcie-root-port,id=rp2,chassis=2,slot=2",
        "-device", "virtio-net-pci,bus=rp1",
        "-device", "nvme,serial=flatview1,bus=rp2",
        "-device", "e1000e",
    ], BOTH),
    "q35-intel-iommu": ([
        "-machine", "q35",
        "-device", "intel-iommu",
        "-device", "e1000e",
        "-device", "nvme,serial=flatview2",
    ], PAUSED),
    "pc-pci-bridge": ([
        "-machine", "pc",
        "-device", "pci-bridge,id=br1,chassis_nr=1",
        "-device", "e1000,bus=br1",
        "-device", "virtio-net-pci,bus=br1",
        "-device", "qemu-xhci",
    ], BOTH),
    # Legacy virtio: the I/O BAR `virtio-pci` is an MMIO leaf, the modern BAR of the
    # same name a container.
    "pc-virtio-transitional": ([
        "-machine", "pc",
        "-device", "virtio-net-pci,disable-modern=on",
        "-device", "virtio-net-pci,disable-legacy=off",
        "-device", "virtio-balloon",
    ], BOTH),
    # nv- ranges (nvdimm), DIMMs, 4 GiB (ram-above-4g).
    "pc-memory-devices": ([
        "-machine", "pc,nvdimm=on",
        "-m", "4G,slots=2,maxmem=8G",
        "-object", "memory-backend-ram,id=m1,size=128M",
        "-device", "nvdimm,memdev=m1",
        "-object", "memory-backend-ram,id=m2,size=128M",
        "-device", "pc-dimm,memdev=m2",
    ], PAUSED),
    "q35-storage-usb-audio": ([
        "-machine", "q35",
        "-device", "usb-ehci",
        "-device", "sdhci-pci",
        "-device", "ich9-intel-hda",
        "-device", "hda-duplex,audiodev=snd0",
        "-audiodev", "none,id=snd0",
        "-device", "virtio-scsi-pci",
        "-device", "lsi53c895a",
    ], BOTH),
    "q35-pxb": ([
        "-machine", "q35",
        "-device", "pxb-pcie,id=pxb1,bus_nr=10,bus=pcie.0",
        "-device", "pcie-root-port,id=rpx,bus=pxb1,chassis=3",
        "-device", "e1000e,bus=rpx",
    ], BOTH),
    # romd (pflash), a read-only file-backed nvdimm (rom + nv-), a virtio IOMMU.
    "q35-pflash": ([
        "-machine", "q35",
        "-drive", "if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE.fd",
    ], BOTH),
    "pc-readonly-nvdimm": ([
        "-machine", "pc,nvdimm=on",
        "-m", "256M,slots=2,maxmem=1G",
        "-object", "memory-backend-file,id=f1,size=1M,mem-path=/dev/zero,readonly=on",
        "-device", "nvdimm,memdev=f1,unarmed=on",
    ], PAUSED),
    "q35-virtio-iommu": ([
        "-machine", "q35",
        "-device", "virtio-iommu-pci",
        "-device", "e1000e",
    ], BOTH),
    # --- configurations that show flatview bugs (see the tests in test_flatten.py) ---
    # isa-bios is not read-only when the BIOS is RAM (isapc_ram_fw).
    "isapc": (["-machine", "isapc"], PAUSED),
    "microvm": (["-machine", "microvm"], PAUSED),
    # Identical trees of distinct roots (per-CPU cpu-smm-N, per-device AMD IOMMU roots)
    # must stay distinct FlatViews.
    "q35-smp2": (["-machine", "q35", "-smp", "2"], PAUSED),
    "q35-amd-iommu": (["-machine", "q35", "-device", "amd-iommu", "-device", "e1000e"], PAUSED),
    # i/o BARs created with memory_region_init_io that hold subregions: they terminate.
    "q35-vga": (["-machine", "q35", "-device", "VGA"], BOTH),
    "q35-bochs-display": (["-machine", "q35", "-device", "bochs-display"], BOTH),
    "q35-megasas": (["-machine", "q35", "-device", "megasas"], BOTH),
    # One pci_bridge_pci per bridge: the downstream window sits in the root port's.
    "q35-nested-bridges": ([
        "-machine", "q35",
        "-device", "pcie-root-port,id=r1,chassis=5",
        "-device", "x3130-upstream,id=up,bus=r1",
        "-device", "xio3130-downstream,id=dn,bus=up,chassis=6",
        "-device", "e1000e,bus=dn",
    ], PAUSED),
    # --- new or changed since 7.2 (hw/pci-bridge/, hw/i386/, virtio-mem, CXL) ---
    # pcie-pci-bridge: a PCIe-to-PCI bridge with its SHPC BAR (shpc-bar, shpc-mmio) and a
    # conventional PCI bus behind it.
    "q35-pcie-pci-bridge": ([
        "-machine", "q35",
        "-device", "pcie-root-port,id=rp1,chassis=1",
        "-device", "pcie-pci-bridge,id=ppb,bus=rp1",
        "-device", "e1000,bus=ppb,addr=1",
        "-device", "virtio-net-pci,bus=ppb,addr=2",
    ], BOTH),
    "pc-pci-bridge-no-shpc": ([
        "-machine", "pc",
        "-device", "pci-bridge,id=br1,chassis_nr=1,shpc=off",
        "-device", "e1000,bus=br1",
    ], BOTH),
    # pflash firmware: since QEMU 9.1 isa-bios is a read-only alias of the flash
    # (x86_isa_bios_init), in 7.2 a copy; code + vars units, with and without SMM-secure.
    "q35-pflash-code-vars": ([
        "-machine", "q35",
        "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF}/OVMF_CODE_4M.fd",
        "-drive", f"if=pflash,format=raw,unit=1,readonly=on,file={OVMF}/OVMF_VARS_4M.fd",
    ], BOTH),
    "q35-pflash-secure": ([
        "-machine", "q35,smm=on",
        "-global", "driver=cfi.pflash01,property=secure,value=on",
        "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF}/OVMF_CODE_4M.secboot.fd",
        "-drive", f"if=pflash,format=raw,unit=1,readonly=on,file={OVMF}/OVMF_VARS_4M.ms.fd",
    ], PAUSED),
    "pc-pflash": ([
        "-machine", "pc",
        "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF}/OVMF_CODE_4M.fd",
        "-drive", f"if=pflash,format=raw,unit=1,readonly=on,file={OVMF}/OVMF_VARS_4M.fd",
    ], PAUSED),
    "pc-pflash-secure": ([
        "-machine", "pc,smm=on",
        "-global", "driver=cfi.pflash01,property=secure,value=on",
        "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF}/OVMF_CODE_4M.secboot.fd",
        "-drive", f"if=pflash,format=raw,unit=1,readonly=on,file={OVMF}/OVMF_VARS_4M.ms.fd",
    ], PAUSED),
    # virtio-mem: its device-memory container; with dynamic-memslots (QEMU >= 8.2) the
    # memslot-N aliases, whose ranges flatview_simplify never merges (unmergeable).
    "q35-virtio-mem": ([
        "-machine", "q35",
        "-m", "512M,maxmem=2G",
        "-object", "memory-backend-ram,id=vmem0,size=1G",
        "-device", "virtio-mem-pci,id=vm0,memdev=vmem0,requested-size=0",
    ], BOTH),
    # CXL: a pxb-cxl host bridge, root port, type-3 persistent memory and a fixed window.
    "q35-cxl": ([
        "-machine", "q35,cxl=on",
        "-m", "512M,maxmem=2G,slots=2",
        "-object", "memory-backend-ram,id=cxl-mem1,size=256M",
        "-object", "memory-backend-ram,id=lsa1,size=256M",
        "-device", "pxb-cxl,bus_nr=12,bus=pcie.0,id=cxl.1",
        "-device", "cxl-rp,port=0,bus=cxl.1,id=root_port13,chassis=0,slot=2",
        "-device", "cxl-type3,bus=root_port13,memdev=cxl-mem1,lsa=lsa1,id=cxl-pmem0",
        "-M", "cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=4G",
    ], PAUSED),
}  # fmt: skip

# Configurations whose command line depends on the QEMU version: (first version, args),
# the last entry not newer than the build is used; a build older than every entry skips.
VERSIONED: dict[str, list[tuple[tuple[int, int], list[str]]]] = {
    "q35-virtio-mem-dynamic-memslots": [((8, 2), [
        "-machine", "q35",
        "-m", "512M,maxmem=2G",
        "-object", "memory-backend-ram,id=vmem0,size=1G",
        "-device", "virtio-mem-pci,id=vm0,memdev=vmem0,requested-size=0,dynamic-memslots=on",
    ])],
    "q35-cxl-volatile": [((8, 0), [
        "-machine", "q35,cxl=on",
        "-m", "512M,maxmem=2G,slots=2",
        "-object", "memory-backend-ram,id=cxl-vmem1,size=256M",
        "-device", "pxb-cxl,bus_nr=12,bus=pcie.0,id=cxl.1",
        "-device", "cxl-rp,port=0,bus=cxl.1,id=root_port13,chassis=0,slot=2",
        "-device", "cxl-type3,bus=root_port13,volatile-memdev=cxl-vmem1,id=cxl-vmem0",
        "-M", "cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=4G",
    ])],
}  # fmt: skip

# Other targets of the same QEMU build, when installed (paused only).
OTHER_TARGETS: dict[str, tuple[str, list[str]]] = {
    "aarch64-virt": ("qemu-system-aarch64", [
        "-machine", "virt,gic-version=3", "-cpu", "cortex-a57",
        "-device", "e1000e", "-device", "virtio-net-pci", "-device", "nvme,serial=a",
    ]),
    "aarch64-virt-smmuv3": ("qemu-system-aarch64", [
        "-machine", "virt,iommu=smmuv3", "-cpu", "cortex-a57", "-device", "e1000e",
    ]),
    "ppc64-pseries": ("qemu-system-ppc64", [
        "-machine", "pseries", "-m", "512M",
        "-device", "e1000e", "-device", "nvme,serial=p", "-device", "qemu-xhci",
    ]),
    # Machines whose bus spaces are childless pure containers (terminates.KNOWN_CONTAINERS)
    "arm-versatilepb": ("qemu-system-arm", ["-machine", "versatilepb"]),
    "ppc64-powernv9": ("qemu-system-ppc64", ["-machine", "powernv9", "-m", "2G"]),
    "ppc-mac99": ("qemu-system-ppc", ["-machine", "mac99"]),
    "ppc-g3beige": ("qemu-system-ppc", ["-machine", "g3beige"]),
    "ppc-40p": ("qemu-system-ppc", ["-machine", "40p"]),
}  # fmt: skip

# Arguments a target needs from some version on: QEMU 10.0 finds no default audio driver
# for versatilepb's lm4549 codec without `-audio none`, which 7.2 rejects (no model=).
TARGET_EXTRA_SINCE: dict[str, tuple[tuple[int, int], list[str]]] = {
    "arm-versatilepb": ((8, 2), ["-audio", "none"]),
}

KVM_CONFIG = ["-accel", "kvm", "-machine", "q35", *DEVICES]
KVM_USABLE = os.access("/dev/kvm", os.R_OK | os.W_OK)

VERSIONS = versions()
CASES = [
    pytest.param(name, mode, id=f"{name}-{mode}")
    for name, (_, modes) in CONFIGS.items()
    for mode in modes
] + [pytest.param(name, "paused", id=f"{name}-paused") for name in VERSIONED]

# Tree command and flat command read from one machine state.
COMMAND_PAIRS = (
    ("info mtree", "info mtree -f"),
    ("info mtree -o", "info mtree -f -o"),
    ("info mtree -D", "info mtree -f"),
)

START_TIMEOUT = 10.0


# ----------------------------------------------------------------------------- QMP client


class QmpError(RuntimeError):
    pass


class Qmp:
    """Just enough QMP: one JSON object per line each way."""

    def __init__(self, path: str, proc: subprocess.Popen, errlog: Path) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                raise QmpError(f"QEMU exited ({proc.returncode}): {errlog.read_text()}")
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                self.sock.close()
                if time.monotonic() > deadline:
                    raise QmpError(f"no QMP socket after {START_TIMEOUT}s") from None
                time.sleep(0.02)
        self.sock.settimeout(START_TIMEOUT)
        self.file = self.sock.makefile("rwb")
        greeting = self._read()
        self.version = greeting["QMP"]["version"]
        self.execute("qmp_capabilities")

    def _read(self) -> dict:
        line = self.file.readline()
        if not line:
            raise QmpError("QMP connection closed")
        return json.loads(line)

    def execute(self, command: str, **arguments) -> object:
        msg: dict = {"execute": command}
        if arguments:
            msg["arguments"] = arguments
        self.file.write(json.dumps(msg).encode() + b"\n")
        self.file.flush()
        while True:
            reply = self._read()
            if "return" in reply:
                return reply["return"]
            if "error" in reply:
                raise QmpError(f"{command}: {reply['error']}")
            # anything else is an asynchronous event (STOP, RESUME, ...)

    def hmp(self, command_line: str) -> str:
        out = self.execute("human-monitor-command", **{"command-line": command_line})
        assert isinstance(out, str)
        return out

    def close(self) -> None:
        try:
            self.file.close()
        finally:
            self.sock.close()


@contextmanager
def qemu(args: list[str], command: list[str]) -> Iterator[Qmp]:
    """Start QEMU (``command``: binary plus -L options) paused with a QMP socket; always
    kill it afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix="fvq"))  # short: unix socket paths are limited
    sock = str(tmp / "qmp.sock")
    errlog = tmp / "stderr.txt"
    cmd = [
        *command, "-S", "-display", "none", "-nodefaults",
        "-qmp", f"unix:{sock},server=on,wait=off",
        *args,
    ]  # fmt: skip
    with open(errlog, "wb") as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
    qmp = None
    try:
        qmp = Qmp(sock, proc, errlog)
        yield qmp
    finally:
        if qmp is not None:
            with suppress(OSError, QmpError, ValueError):
                qmp.execute("quit")
            qmp.close()
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


def run_firmware_until_bars_settle(qmp: Qmp, limit: float = 8.0) -> None:
    """Let SeaBIOS assign the BARs: run until the flat view has not changed for half
    a second (and at least one BAR is mapped), then stop."""
    qmp.execute("cont")
    deadline = time.monotonic() + limit
    last, same = None, 0
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = qmp.hmp("info mtree -f")
        same = same + 1 if now == last else 0
        last = now
        if same >= 5 and "(prio 1, i/o)" in now:
            break
    qmp.execute("stop")


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", params=VERSIONS, ids=lambda v: f"qemu{v}")
def build(request) -> QemuBuild:
    """One QEMU build per version; absent versions skip with the reason."""
    found = find_builds().get(request.param)
    if found is None:
        pytest.skip(missing_reason(request.param))
    # Shown in the test output even under -q (output capture is bypassed for this line).
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capman = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capman is not None:
        with capman.global_and_fixture_disabled():
            reporter.write_line(f"\nQEMU oracle: {found.bindir}: {found.banner}")
    return found


def x86(build: QemuBuild) -> list[str]:
    command = build.argv("x86_64")
    assert command is not None
    return command


def config_args(config: str, build: QemuBuild) -> list[str]:
    if config in CONFIGS:
        args = CONFIGS[config][0]
    else:
        usable = [a for since, a in VERSIONED[config] if build.major_minor >= since]
        if not usable:
            first = ".".join(map(str, VERSIONED[config][0][0]))
            pytest.skip(f"{config} needs QEMU >= {first}; this is {build.version}")
        args = usable[-1]
    for a in args:
        if a.startswith("if=pflash") and not Path(a.rsplit("file=", 1)[1]).is_file():
            pytest.skip(f"firmware {a.rsplit('file=', 1)[1]} is missing (Debian package ovmf)")
    return args


def _parse(text: str, name: str):
    return api.parse_text(text.replace("\r\n", "\n"), name)


def _check_pair(tree_text: str, flat_text: str, label: str, version: str) -> tuple[int, int]:
    trees, _ = api.split_kinds(_parse(tree_text, f"{label}.tree"))
    _, flats = api.split_kinds(_parse(flat_text, f"{label}.flat"))
    assert len(trees) == 1 and len(flats) == 1, label
    tree: MtreeDump = trees[0]
    flat: FlatDump = flats[0]
    report = api.check(tree, flat, learn=False)
    assert report.ok, f"{version}: {label}:\n" + "\n".join(mismatch_text(report))
    assert report.views_compared == len(flat.views)
    assert report.ranges_compared == sum(len(v.ranges) for v in flat.views) > 0
    return report.views_compared, report.ranges_compared


# -------------------------------------------------------------------------------- tests


def test_qemu_version_is_recorded(build, record_property):
    record_property("qemu_version", build.banner)
    with qemu(CONFIGS["q35"][0], x86(build)) as qmp:
        v = qmp.version["qemu"]
    assert f"{v['major']}.{v['minor']}" == build.version
    assert f"{v['major']}.{v['minor']}.{v['micro']}" in build.banner


def _run_and_check(
    args: list[str], booted: bool, label: str, version: str, command: list[str]
) -> dict[str, str]:
    t0 = time.monotonic()
    outputs: dict[str, str] = {}
    with qemu(args, command) as qmp:
        if booted:
            run_firmware_until_bars_settle(qmp)
        for cmd in {c for pair in COMMAND_PAIRS for c in pair}:
            outputs[cmd] = qmp.hmp(cmd)
    elapsed = time.monotonic() - t0
    assert elapsed < 15, f"QEMU run took {elapsed:.1f}s"
    for tree_cmd, flat_cmd in COMMAND_PAIRS:
        pair = f"{label}: {tree_cmd!r} vs {flat_cmd!r}"
        _check_pair(outputs[tree_cmd], outputs[flat_cmd], pair, version)
    return outputs


@pytest.mark.parametrize(("config", "mode"), CASES)
def test_flatten_equals_qemu_flat_view(config, mode, build, record_property):
    record_property("qemu_version", build.banner)
    args = config_args(config, build)
    booted = mode == "bars-assigned"
    outputs = _run_and_check(args, booted, f"{config} ({mode})", build.banner, x86(build))
    if booted:
        # The firmware really mapped device BARs (prio 1 in the PCI address spaces).
        assert "(prio 1, " in outputs["info mtree -f"]


@pytest.mark.skipif(not KVM_USABLE, reason="/dev/kvm is not usable here")
@pytest.mark.parametrize("mode", BOTH)
def test_flatten_equals_qemu_flat_view_under_kvm(mode, build):
    # KVM labels -f lines backed by a memory slot (` KVM`), which check must ignore
    # (and adds a KVM-SMRAM address space when the host KVM supports SMM).
    booted = mode == "bars-assigned"
    outputs = _run_and_check(KVM_CONFIG, booted, f"kvm ({mode})", build.banner, x86(build))
    assert "): pc.ram KVM" in outputs["info mtree -f"].replace("\r", "")


@pytest.mark.parametrize("config", sorted(OTHER_TARGETS))
def test_flatten_equals_qemu_flat_view_of_other_targets(config, build):
    name, args = OTHER_TARGETS[config]
    command = build.argv(name.removeprefix("qemu-system-"))
    if command is None:
        pytest.skip(f"{name} is not in QEMU {build.version} at {build.bindir}")
    since, extra = TARGET_EXTRA_SINCE.get(config, ((99, 0), []))
    if build.major_minor >= since:
        args = [*args, *extra]
    _run_and_check(args, False, f"{config} (paused)", build.banner, command)


def test_bus_master_off_devices_share_the_empty_view_like_qemu(build):
    # Paused, no device has bus mastering on: every bus-master AS resolves to no root.
    with qemu(CONFIGS["q35"][0], x86(build)) as qmp:
        tree_text, flat_text = qmp.hmp("info mtree"), qmp.hmp("info mtree -f")
    [tree] = api.split_kinds(_parse(tree_text, "tree"))[0]
    [flat] = api.split_kinds(_parse(flat_text, "flat"))[1]
    empty_qemu = [v for v in flat.views if v.root is None]
    assert len(empty_qemu) == 1 and not empty_qemu[0].rendered
    result = api.flatten(tree)
    empty_mine = [v for v in result.views if v.root is None]
    assert len(empty_mine) == 1 and not empty_mine[0].rendered
    assert sorted(empty_mine[0].names) == sorted(empty_qemu[0].names)
    assert {"e1000e", "nvme", "qemu-xhci"} <= set(empty_qemu[0].names)


def test_qemu_is_gone_after_the_run(build):
    with qemu(CONFIGS["pc"][0], x86(build)) as qmp:
        pid_probe = qmp.execute("query-status")
    assert isinstance(pid_probe, dict) and pid_probe.get("status") == "prelaunch"
    # No qemu child of this process is left running.
    children = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children")
    if children.exists():
        for pid in children.read_text().split():
            comm = Path(f"/proc/{pid}/comm")
            if comm.exists():
                assert "qemu" not in comm.read_text(), f"QEMU {pid} still running"
