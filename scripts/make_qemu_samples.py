#!/usr/bin/env python3
"""Capture real QEMU ``info mtree`` dumps as test inputs for flatview.

For every configuration below the script starts ``qemu-system-*`` paused (``-S``) with QMP
on a unix socket, resumes it, polls ``info pci`` (through QMP ``human-monitor-command``)
until the firmware has assigned the PCI BARs and the set of mapped BARs has stayed the same
for a while, stops the VM and saves the monitor output byte for byte as QMP returned it:

    info-mtree.txt       info mtree
    info-mtree-f.txt     info mtree -f
    info-mtree-o.txt     info mtree -o
    info-mtree-D.txt     info mtree -D
    info-mtree-f-d.txt   info mtree -f -d
    info-mtree-f-o.txt   info mtree -f -o
    info-pci.txt         info pci
    cmdline.txt          the QEMU command line, shell-quoted (``#`` lines are comments)
    versions.txt         ``qemu-system-X --version`` (first line) and ``dpkg-query -W`` lines

into ``<out>/<config>/``.  HMP output reaches QMP with CRLF line ends; they are kept.

Stdlib only; nothing is installed.  QEMU is always killed and temporary files are removed.
Exit status is non-zero when a (non-optional) configuration failed; all are tried first.

Usage::

    python3 scripts/make_qemu_samples.py                 # all configurations
    python3 scripts/make_qemu_samples.py --list
    python3 scripts/make_qemu_samples.py --only x86_64-q35 ppc64-pseries --out /tmp/s
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

MTREE_COMMANDS = {
    "info-mtree.txt": "info mtree",
    "info-mtree-f.txt": "info mtree -f",
    "info-mtree-o.txt": "info mtree -o",
    "info-mtree-D.txt": "info mtree -D",
    "info-mtree-f-d.txt": "info mtree -f -d",
    "info-mtree-f-o.txt": "info mtree -f -o",
    "info-pci.txt": "info pci",
}

AARCH64_EFI = "/usr/share/qemu-efi-aarch64/QEMU_EFI.fd"
X86_OVMF = "/usr/share/ovmf/OVMF.fd"
UNMAPPED = 0xFFFFFFFFFFFFFFFF


# --------------------------------------------------------------------------- configurations


@dataclass
class Dev:
    """One ``-device``, optionally with a backing ``-drive``/``-object``."""

    driver: str
    id: str
    props: dict[str, str] = field(default_factory=dict)
    drive: bool = False  # create a small raw image and pass drive=<id>-drive
    memdev: bool = False  # ivshmem: create a shared RAM backend and pass memdev=
    root_port: bool = True  # behind its own pcie-root-port when the config uses them


@dataclass
class Config:
    name: str
    arch: str  # qemu-system-<arch>
    machine: str
    devices: list[Dev]
    accel: str = "tcg"
    cpu: str | None = None
    extra: list[str] = field(default_factory=list)  # before the devices
    root_ports: bool = False
    ports_per_slot: int = 1  # >1: root ports are functions of multifunction slots from 0x2
    pre_devices: list[str] = field(default_factory=list)  # -device args before the others
    bus: str | None = None  # bus= for devices not behind root ports
    firmware_files: list[str] = field(default_factory=list)  # for versions.txt (dpkg -S)
    memory: str = "256M"
    smp: int = 1
    settle: float = 5.0  # seconds the mapped-BAR set must stay unchanged
    timeout: float = 240.0  # give up waiting for BARs after this many seconds
    optional: bool = False  # failure is reported as a skip (e.g. KVM unavailable)
    drop_refused: bool = False  # drop devices the machine refuses, note it in cmdline.txt
    paused: bool = False  # read the monitor at -S, before any firmware runs (no BARs wait)
    notes: str = ""


def common_devices(n: int = 0) -> list[Dev]:
    return [
        Dev("e1000e", f"nic{n}"),
        Dev("virtio-net-pci", f"vnet{n}"),
        Dev("virtio-blk-pci", f"vblk{n}", drive=True),
        Dev("virtio-scsi-pci", f"vscsi{n}"),
        Dev("nvme", f"nvme{n}", {"serial": f"flatview{n + 1:04d}"}, drive=True),
        Dev("qemu-xhci", f"xhci{n}"),
        Dev("ivshmem-plain", f"ivshmem{n}", memdev=True),
    ]


SEABIOS_FILES = ["/usr/share/seabios/bios-256k.bin", "/usr/lib/ipxe/qemu/efi-e1000e.rom"]

CONFIGS: list[Config] = [
    Config(
        "x86_64-q35",
        "x86_64",
        "q35",
        common_devices(),
        root_ports=True,
        firmware_files=SEABIOS_FILES,
        notes="SeaBIOS; each device behind its own pcie-root-port",
    ),
    Config(
        "x86_64-pc",
        "x86_64",
        "pc",
        common_devices(),
        bus="pci.0",
        firmware_files=SEABIOS_FILES,
        notes="SeaBIOS; i440fx, devices directly on pci.0",
    ),
    Config(
        "aarch64-virt",
        "aarch64",
        "virt,gic-version=3",
        common_devices(),
        cpu="cortex-a57",
        root_ports=True,
        extra=["-bios", AARCH64_EFI],
        firmware_files=[AARCH64_EFI],
        settle=30.0,
        timeout=600.0,
        notes="UEFI (edk2 ArmVirtQemu); devices behind pcie-root-ports",
    ),
    Config(
        "ppc64-pseries",
        "ppc64",
        "pseries",
        common_devices(),
        bus="pci.0",
        firmware_files=["/usr/share/qemu/slof.bin"],
        drop_refused=True,
        memory="512M",
        settle=10.0,
        timeout=420.0,
        notes="SLOF; devices on the default PHB (no root ports on pseries)",
    ),
    Config(
        "x86_64-q35-kvm",
        "x86_64",
        "q35",
        common_devices(),
        accel="kvm",
        root_ports=True,
        firmware_files=SEABIOS_FILES,
        optional=True,
        timeout=120.0,
        notes="as x86_64-q35 under KVM; skipped when KVM does not work",
    ),
    Config(
        "x86_64-q35-iommu",
        "x86_64",
        "q35,kernel-irqchip=split",
        common_devices(),
        root_ports=True,
        pre_devices=["intel-iommu,intremap=on"],
        firmware_files=SEABIOS_FILES,
        notes="as x86_64-q35 plus intel-iommu (intremap=on): per-device IOMMU address spaces",
    ),
    Config(
        "x86_64-pc-vga-ahci",
        "x86_64",
        "pc",
        [
            Dev("VGA", "vga0"),
            Dev("ich9-ahci", "ahci0"),
            Dev("ide-hd", "ahci0-disk0", {"bus": "ahci0.0"}, drive=True, root_port=False),
            Dev("virtio-net-pci", "vnet0"),
            Dev("nvme", "nvme0", {"serial": "flatview0002"}, drive=True),
        ],
        bus="pci.0",
        firmware_files=[*SEABIOS_FILES, "/usr/share/seabios/vgabios-stdvga.bin"],
        notes="SeaBIOS; std VGA (legacy VGA windows, vbe, vga.vram), ich9-ahci with a disk",
    ),
    Config(
        "x86_64-q35-ovmf",
        "x86_64",
        "q35",
        [
            Dev("bochs-display", "bochs0"),
            *common_devices(),
        ],
        root_ports=True,
        extra=["-bios", X86_OVMF],
        firmware_files=[X86_OVMF],
        settle=20.0,
        timeout=480.0,
        notes="OVMF (UEFI) instead of SeaBIOS, plus bochs-display; 64-bit BARs above 4 GiB",
    ),
    # Machines read paused (-S): no firmware has run.  Each has equal-priority siblings
    # that overlap; QEMU's own -f shows which one it added last (renders first).
    *(
        Config(
            name,
            arch,
            machine,
            [],
            memory=memory,
            paused=True,
            notes=f"read paused (-S), no firmware ran; {why}",
        )
        for name, arch, machine, memory, why in (
            ("ppc-mac99", "ppc", "mac99", "256M", "equal-priority overlaps (macio, uni-north)"),
            ("ppc-g3beige", "ppc", "g3beige", "256M", "equal-priority overlaps (grackle)"),
            ("ppc-40p", "ppc", "40p", "128M", "PReP: equal-priority overlaps"),
            ("ppc64-powernv9", "ppc64", "powernv9", "2G", "PowerNV: XSCOM, PHB4 windows"),
            ("x86_64-isapc", "x86_64", "isapc", "256M", "isa-bios of a RAM BIOS"),
            ("x86_64-microvm", "x86_64", "microvm", "256M", "isa-bios of a RAM BIOS"),
        )
    ),
    Config(
        "x86_64-q35-smp2",
        "x86_64",
        "q35",
        [],
        smp=2,
        paused=True,
        notes="read paused (-S); two CPUs: identical cpu-smm-0/cpu-smm-1 trees, two roots",
    ),
    Config(
        "x86_64-q35-nested-bridges",
        "x86_64",
        "q35",
        [Dev("e1000e", "nic0", {"bus": "dn"}, root_port=False)],
        pre_devices=[
            "pcie-root-port,id=r1,chassis=5",
            "x3130-upstream,id=up,bus=r1",
            "xio3130-downstream,id=dn,bus=up,chassis=6",
        ],
        paused=True,
        notes="read paused (-S); a switch behind a root port: one pci_bridge_pci per bridge",
    ),
    Config(
        "x86_64-q35-vga-megasas",
        "x86_64",
        "q35",
        [Dev("VGA", "vga0"), Dev("megasas", "sas0")],
        firmware_files=[*SEABIOS_FILES, "/usr/share/seabios/vgabios-stdvga.bin"],
        notes="SeaBIOS; std VGA (vga.mmio holds subregions) and megasas (MSI-X in its MMIO BAR)",
    ),
    Config(
        "x86_64-q35-70dev",
        "x86_64",
        "q35",
        [d for n in range(10) for d in common_devices(n)],
        root_ports=True,
        ports_per_slot=8,
        firmware_files=SEABIOS_FILES,
        memory="512M",
        settle=10.0,
        timeout=480.0,
        notes="as x86_64-q35 with the 7 devices 10 times (70 devices), each behind its own "
        "pcie-root-port, 8 root ports per multifunction slot: a ~3,000-line tree",
    ),
]


# --------------------------------------------------------------------------- helpers

_START = time.monotonic()


def log(config: str, msg: str) -> None:
    print(f"[{time.monotonic() - _START:7.1f}s] [{config}] {msg}", flush=True)


class QmpError(RuntimeError):
    pass


class Qmp:
    """Minimal synchronous QMP client on a unix socket."""

    def __init__(self, path: str, proc: subprocess.Popen, connect_timeout: float = 30.0):
        self.events: list[dict] = []
        deadline = time.monotonic() + connect_timeout
        while True:
            if proc.poll() is not None:
                raise QmpError(f"QEMU exited with status {proc.returncode} before QMP came up")
            try:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(path)
                break
            except OSError:
                sock.close()
                if time.monotonic() > deadline:
                    raise QmpError(f"could not connect to QMP socket {path}") from None
                time.sleep(0.1)
        sock.settimeout(120.0)
        self.sock = sock
        self.file = sock.makefile("rb")
        greeting = self._read()
        if "QMP" not in greeting:
            raise QmpError(f"unexpected QMP greeting: {greeting!r}")
        self.greeting = greeting
        self.execute("qmp_capabilities")

    def _read(self) -> dict:
        line = self.file.readline()
        if not line:
            raise QmpError("QMP connection closed")
        return json.loads(line)

    def execute(self, command: str, **arguments):
        msg: dict = {"execute": command}
        if arguments:
            msg["arguments"] = arguments
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            reply = self._read()
            if "event" in reply:
                self.events.append(reply)
                continue
            if "error" in reply:
                raise QmpError(f"{command}: {reply['error']}")
            return reply["return"]

    def hmp(self, command_line: str) -> str:
        out = self.execute("human-monitor-command", **{"command-line": command_line})
        if not isinstance(out, str):
            raise QmpError(f"{command_line}: unexpected reply {out!r}")
        return out

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.file.close()
        with contextlib.suppress(OSError):
            self.sock.close()


_BDF = re.compile(r"^\s*Bus\s+(\d+), device\s+(\d+), function (\d+):")
_BAR = re.compile(r"^\s*BAR(\d+): (.*?) at 0x([0-9a-fA-F]+) \[0x([0-9a-fA-F]+)\]")


def mapped_bars(info_pci: str) -> frozenset[tuple[str, int, int, int]]:
    """(bus:dev.fn, BAR index, start, end) of every BAR that is mapped (address != ~0)."""
    bdf = "?"
    out = set()
    for line in info_pci.splitlines():
        if m := _BDF.match(line):
            bdf = f"{int(m[1]):02x}:{int(m[2]):02x}.{int(m[3])}"
        elif m := _BAR.match(line):
            addr = int(m[3], 16)
            if addr != UNMAPPED:
                out.add((bdf, int(m[1]), addr, int(m[4], 16)))
    return frozenset(out)


def run_text(argv: list[str]) -> str:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"# {shlex.join(argv)}: {e}"
    if r.returncode != 0:
        return f"# {shlex.join(argv)}: exit {r.returncode}: {r.stderr.strip()}"
    return r.stdout.strip()


def versions_text(binary: str, firmware_files: list[str]) -> str:
    lines = [run_text([binary, "--version"]).splitlines()[0]]
    path = shutil.which(binary) or binary
    packages = []
    for f in [os.path.realpath(path), *firmware_files]:
        owner = run_text(["dpkg-query", "-S", f])
        if owner.startswith("#"):
            # /usr/bin may be a merged-usr symlink target; try the unresolved path too
            owner = run_text(["dpkg-query", "-S", path]) if f != path else owner
        if owner.startswith("#"):
            lines.append(owner)
            continue
        pkg = owner.split(":", 1)[0].strip()
        for p in pkg.split(", "):
            if p not in packages:
                packages.append(p)
    for p in packages:
        lines.append(run_text(["dpkg-query", "-W", p]))
    return "\n".join(lines) + "\n"


def write_exact(path: Path, text: str) -> None:
    """Write text exactly (no newline translation)."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)


# --------------------------------------------------------------------------- one run


class ConfigFailed(Exception):
    pass


class DeviceRefused(Exception):
    def __init__(self, dev: Dev, message: str):
        super().__init__(message)
        self.dev = dev
        self.message = message


def build_argv(cfg: Config, devices: list[Dev], tmp: Path, qmp_path: Path) -> list[str]:
    binary = f"qemu-system-{cfg.arch}"
    argv = [binary, "-machine", cfg.machine, "-accel", cfg.accel]
    if cfg.cpu:
        argv += ["-cpu", cfg.cpu]
    argv += ["-m", cfg.memory, "-smp", str(cfg.smp)]
    argv += ["-display", "none", "-nodefaults", "-no-user-config", "-S"]
    argv += ["-qmp", f"unix:{qmp_path},server=on,wait=off"]
    argv += ["-serial", "none", "-monitor", "none"]
    argv += cfg.extra
    for d in cfg.pre_devices:
        argv += ["-device", d]
    port = 0
    for dev in devices:
        props = dict(dev.props)
        if dev.drive:
            img = tmp / f"{dev.id}.img"
            if not img.exists():
                with open(img, "wb") as f:
                    f.truncate(4 * 1024 * 1024)
            argv += ["-drive", f"if=none,id={dev.id}-drive,file={img},format=raw"]
            props["drive"] = f"{dev.id}-drive"
        if dev.memdev:
            argv += [
                "-object",
                f"memory-backend-ram,id={dev.id}-mem,size=1M,share=on",
            ]
            props["memdev"] = f"{dev.id}-mem"
        if dev.root_port and cfg.root_ports:
            port += 1
            rp = f"pcie-root-port,id=rp{port},bus=pcie.0,chassis={port}"
            if cfg.ports_per_slot > 1:
                slot, fn = divmod(port - 1, cfg.ports_per_slot)
                rp += f",addr={slot + 2:#x}.{fn}" + (",multifunction=on" if fn == 0 else "")
            argv += ["-device", rp]
            props.setdefault("bus", f"rp{port}")
        elif dev.root_port and cfg.bus:
            props.setdefault("bus", cfg.bus)
        opts = ",".join([dev.driver, f"id={dev.id}", *(f"{k}={v}" for k, v in props.items())])
        argv += ["-device", opts]
    return argv


def device_arg(argv: list[str], dev: Dev) -> str | None:
    for i, a in enumerate(argv[:-1]):
        if a == "-device" and argv[i + 1].startswith(f"{dev.driver},id={dev.id},"):
            return argv[i + 1]
        if a == "-device" and argv[i + 1] == f"{dev.driver},id={dev.id}":
            return argv[i + 1]
    return None


def stop_qemu(proc: subprocess.Popen, qmp: Qmp | None) -> None:
    if proc.poll() is None and qmp is not None:
        with contextlib.suppress(Exception):
            qmp.execute("quit")
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
    if proc.poll() is None:
        proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
    if qmp is not None:
        qmp.close()


def capture_once(
    cfg: Config, devices: list[Dev], tmp: Path, stage: Path, comments: list[str]
) -> dict:
    qmp_path = tmp / "qmp.sock"
    with contextlib.suppress(FileNotFoundError):
        qmp_path.unlink()
    argv = build_argv(cfg, devices, tmp, qmp_path)
    log(cfg.name, "starting: " + shlex.join(argv))
    stderr_path = tmp / "qemu.stderr"
    stats: dict = {}
    with open(stderr_path, "wb") as errf:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=errf,
            start_new_session=True,
        )
    qmp = None

    def stderr_text() -> str:
        try:
            return stderr_path.read_text(errors="replace").strip()
        except OSError:
            return ""

    def died(what: str) -> Exception:
        err = stderr_text()
        for dev in devices:
            arg = device_arg(argv, dev)
            if arg and f"-device {arg}:" in err:
                return DeviceRefused(dev, err)
        return ConfigFailed(f"QEMU {what} (status {proc.returncode}): {err or 'no stderr'}")

    try:
        try:
            qmp = Qmp(str(qmp_path), proc)
        except QmpError as e:
            proc.poll()
            if proc.returncode is not None:
                raise died("exited at start-up") from None
            raise ConfigFailed(str(e)) from None
        if cfg.paused:
            outputs = {fname: qmp.hmp(cmd) for fname, cmd in MTREE_COMMANDS.items()}
            stats = {"first": None, "settled": 0.0, "saved": 0.0, "bars": 0}
            log(cfg.name, "read paused (-S): no firmware ran")
            return _save(cfg, outputs, argv, stage, comments, stats)
        qmp.execute("cont")
        t0 = time.monotonic()
        last: frozenset | None = None
        last_change = t0
        first_mapped = None
        while True:
            time.sleep(1.0)
            now = time.monotonic()
            if proc.poll() is not None:
                raise died("exited while waiting for BARs")
            bars = mapped_bars(qmp.hmp("info pci"))
            for ev in qmp.events:
                log(cfg.name, f"event {ev.get('event')} at {now - t0:.1f}s")
            qmp.events.clear()
            if bars != last:
                if bars and first_mapped is None:
                    first_mapped = now - t0
                log(cfg.name, f"{len(bars)} BARs mapped at {now - t0:.1f}s")
                last = bars
                last_change = now
            elif bars and now - last_change >= cfg.settle:
                break
            if now - t0 > cfg.timeout:
                why = (
                    "no BAR was ever mapped"
                    if first_mapped is None
                    else f"the mapped BARs did not stay unchanged for {cfg.settle:.0f}s"
                )
                raise ConfigFailed(f"gave up after {cfg.timeout:.0f}s: {why}")
        stats = {
            "first": first_mapped,
            "settled": last_change - t0,
            "saved": time.monotonic() - t0,
            "bars": len(last or ()),
        }
        log(
            cfg.name,
            f"BARs settled: first mapped at {stats['first']:.1f}s, last change at "
            f"{stats['settled']:.1f}s, {stats['bars']} mapped; stopping VM",
        )
        qmp.execute("stop")
        outputs = {fname: qmp.hmp(cmd) for fname, cmd in MTREE_COMMANDS.items()}
    finally:
        stop_qemu(proc, qmp)
        for line in stderr_text().splitlines():
            log(cfg.name, f"qemu stderr: {line}")

    return _save(cfg, outputs, argv, stage, comments, stats)


def _save(
    cfg: Config,
    outputs: dict[str, str],
    argv: list[str],
    stage: Path,
    comments: list[str],
    stats: dict,
) -> dict:
    for fname, text in outputs.items():
        if not text.strip() and cfg.paused and fname == "info-pci.txt":
            continue  # a machine without PCI (isapc, powernv's PHBs print nothing)
        if not text.strip():
            raise ConfigFailed(f"{MTREE_COMMANDS[fname]!r} returned nothing")
        write_exact(stage / fname, text)
    cmdline = "".join(c + "\n" for c in comments) + shlex.join(argv) + "\n"
    write_exact(stage / "cmdline.txt", cmdline)
    write_exact(stage / "versions.txt", versions_text(argv[0], cfg.firmware_files))
    return stats


def capture(cfg: Config, out: Path) -> dict:
    if shutil.which(f"qemu-system-{cfg.arch}") is None:
        raise ConfigFailed(f"qemu-system-{cfg.arch} not found")
    for f in cfg.firmware_files:
        if cfg.extra and f in cfg.extra and not os.path.exists(f):
            raise ConfigFailed(f"firmware {f} not found")
    if cfg.accel == "kvm" and not os.access("/dev/kvm", os.R_OK | os.W_OK):
        raise ConfigFailed("/dev/kvm is missing or not accessible")
    devices = list(cfg.devices)
    comments: list[str] = []
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"flatview-{cfg.name}-") as tmpdir:
        tmp = Path(tmpdir)
        stage = out / f".staging-{cfg.name}"
        if stage.exists():
            shutil.rmtree(stage)
        stage.mkdir()
        try:
            while True:
                try:
                    stats = capture_once(cfg, devices, tmp, stage, comments)
                    break
                except DeviceRefused as e:
                    if not cfg.drop_refused:
                        raise ConfigFailed(f"device refused: {e.message}") from None
                    msg = " ".join(e.message.split())
                    log(cfg.name, f"dropping refused device {e.dev.driver} ({e.dev.id}): {msg}")
                    comments.append(f"# dropped -device {e.dev.driver} (id={e.dev.id}): {msg}")
                    devices = [d for d in devices if d is not e.dev]
            final = out / cfg.name
            if final.exists():
                shutil.rmtree(final)
            stage.rename(final)
        finally:
            if stage.exists():
                shutil.rmtree(stage)
    return stats


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--out",
        type=Path,
        default=Path("samples/qemu"),
        help="output directory (default: samples/qemu)",
    )
    ap.add_argument("--only", nargs="+", metavar="NAME", help="run only these configurations")
    ap.add_argument("--list", action="store_true", help="list configurations and exit")
    ap.add_argument("--timeout", type=float, help="override every configuration's BAR timeout")
    ap.add_argument(
        "--settle",
        type=float,
        help="override every configuration's settle time (seconds without change)",
    )
    args = ap.parse_args(argv)

    if args.list:
        for c in CONFIGS:
            devs = ", ".join(d.driver for d in c.devices)
            print(
                f"{c.name:20} qemu-system-{c.arch} -machine {c.machine} -accel {c.accel}: "
                f"{devs}  ({c.notes})"
            )
        return 0

    names = [c.name for c in CONFIGS]
    selected = CONFIGS
    if args.only:
        unknown = [n for n in args.only if n not in names]
        if unknown:
            ap.error(f"unknown configuration(s): {', '.join(unknown)}; known: {', '.join(names)}")
        selected = [c for c in CONFIGS if c.name in args.only]

    # Make SIGTERM/SIGHUP unwind through the finally blocks (QEMU killed, temp dirs removed).
    def _terminate(signum, _frame):
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _terminate)

    results: list[tuple[str, str, str]] = []
    for cfg in selected:
        if args.timeout:
            cfg.timeout = args.timeout
        if args.settle:
            cfg.settle = args.settle
        t = time.monotonic()
        try:
            stats = capture(cfg, args.out)
        except (ConfigFailed, QmpError, OSError) as e:
            status = "SKIPPED" if cfg.optional else "FAILED"
            log(cfg.name, f"{status}: {e}")
            results.append((cfg.name, status, str(e).splitlines()[0] if str(e) else ""))
            continue
        dt = time.monotonic() - t
        log(cfg.name, f"OK in {dt:.0f}s -> {args.out / cfg.name}")
        results.append(
            (
                cfg.name,
                "OK",
                f"read paused; total {dt:.0f}s"
                if cfg.paused
                else f"BARs first mapped {stats['first']:.1f}s, settled "
                f"{stats['settled']:.1f}s, {stats['bars']} mapped; total {dt:.0f}s",
            )
        )

    print("\nSummary:")
    for name, status, detail in results:
        print(f"  {name:20} {status:8} {detail}")
    return 1 if any(s == "FAILED" for _, s, _ in results) else 0


if __name__ == "__main__":
    sys.exit(main())
