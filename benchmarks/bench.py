#!/usr/bin/env python3
"""flatview's speed and memory figures, each beside its floor, measured in one run.

    python3 benchmarks/bench.py            # the table and the goals (about 1 minute)
    python3 benchmarks/bench.py --json     # the same figures as JSON on stdout
    python3 benchmarks/bench.py --runs 3   # fewer runs per whole-process figure

Every whole-process figure is the median of ``--runs`` (5) fresh processes of this
interpreter (or of ``--python``'s, e.g. a clean venv's: see benchmarks/README.md): wall
time, and CPU time (user + system, ``os.wait4``), and the largest peak RSS (the child's
own VmHWM).  The goals are checked on CPU time: on this shared 2-CPU
machine the wall time mostly measures the other tenants' load (both are printed).  The
floors are measured in the same run, interleaved with the figures they bound:

  python -c pass   the bare interpreter start (with its site-packages' start-up hooks);
  bare re scan     a process that reads the same file(s) and matches one compiled
                   region-line regex against every line: it recognises lines and
                   builds nothing, the cheapest any Python line parser could do.

flatview runs as the ``flatview`` console script does (``from flatview.cli import
run``) from the repository root, so the working tree is what is measured.  The inputs
(see benchmarks/README.md) are real samples, or made from them in a temporary folder
that is removed at exit: nothing is written to the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from make_pre70 import make_pre70  # noqa: E402
from pictures import figures as picture_figures  # noqa: E402
from pictures import report as picture_report  # noqa: E402

REAL_TREE = ROOT / "samples/qemu/x86_64-q35-70dev/info-mtree.txt"
REAL_FLAT = ROOT / "samples/qemu/x86_64-q35-70dev/info-mtree-f.txt"
NO_MMAP = ROOT / "samples/vfio/q35-no-mmap/info-mtree-D.txt"
VFIO_PAIR = (
    str(ROOT / "samples/vfio/q35-base/info-mtree.txt"),
    str(ROOT / "samples/vfio/q35-no-mmap/info-mtree.txt"),
)
PRE70_LINES = 300_000
GiB, TiB = 1 << 30, 1 << 40

SCAN = r"""
import re, sys
REGION_RE = re.compile(
    r"(?:\[DETECTED OVERFLOW!\] )? +(?:\[DETECTED OVERFLOW!\] )?"
    r"(?:0x)?([0-9a-f]{16})-(?:0x)?([0-9a-f]{16}) \(prio (-?\d+), ([\w/-]+)\): (.*)"
)
for path in sys.argv[1:]:
    for line in open(path, encoding="utf-8").read().splitlines():
        m = REGION_RE.match(line)
"""
FLATVIEW = "from flatview.cli import run; run()"
# Appended to every child: its own peak RSS (VmHWM) on stderr at exit.  A child's
# ru_maxrss would start at this parent's peak (Linux keeps it across fork and exec).
HWM = (
    "import atexit, sys\n"
    "atexit.register(lambda: sys.stderr.write(next(l for l in open('/proc/self/status')"
    " if l.startswith('VmHWM:'))))\n"
)


# ------------------------------------------------------------------- whole processes


# The children run as an installed flatview does: with compiled bytecode.  An environment
# with PYTHONDONTWRITEBYTECODE set (as some sandboxes and CI images are) would make every
# run compile flatview's modules from source again (~30 ms a process, more than the
# parse itself), which no installed copy does: the children write their bytecode to a
# temporary folder instead (PYTHONPYCACHEPREFIX, set in main), and every command runs
# once unmeasured first, so the cache is warm for floors and figures alike.
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _once(argv: list[str]) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and peak RSS (MiB) of one fresh process."""
    t = time.perf_counter()
    p = subprocess.Popen(
        argv, cwd=ROOT, env=CHILD_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    err = p.stderr.read() if p.stderr else b""
    _, _, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    hwm = [line for line in err.decode().splitlines() if line.startswith("VmHWM:")]
    return wall, usage.ru_utime + usage.ru_stime, int(hwm[-1].split()[1]) / 1024 if hwm else 0.0


def measure(commands: dict[str, list[str]], runs: int) -> dict[str, dict]:
    """Median wall time and max RSS of each command, run interleaved: run k of every
    command before run k+1 of any, so all see the same machine load."""
    for argv in commands.values():  # warm-up, unmeasured: fills the bytecode cache
        _once(argv)
    times: dict[str, list[float]] = {k: [] for k in commands}
    cpu: dict[str, list[float]] = {k: [] for k in commands}
    rss: dict[str, float] = dict.fromkeys(commands, 0.0)
    for _ in range(runs):
        for key, argv in commands.items():
            t, c, r = _once(argv)
            times[key].append(t)
            cpu[key].append(c)
            rss[key] = max(rss[key], r)
    return {
        k: {
            "s": statistics.median(v),
            "cpu_s": statistics.median(cpu[k]),
            "runs": v,
            "rss_mib": rss[k],
        }
        for k, v in times.items()
    }


def instructions(argv: list[str]) -> int:
    """Instructions one fresh process executes (valgrind's callgrind ``Ir``): unlike CPU
    time it does not move with what runs beside it on the same core, so before/after
    comparisons on a busy machine hold.  One run: the count is deterministic to ~0.1%."""
    p = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv],
        cwd=ROOT,
        env=CHILD_ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    m = re.search(r"Collected : (\d+)", p.stderr)
    if m is None:
        raise RuntimeError(f"valgrind: {p.stderr.strip().splitlines()[-1:]}")
    return int(m[1])


def ms(fig: dict) -> str:
    """Wall time, and the CPU time beside it (it moves less with the machine's load)."""
    return f"{fig['s'] * 1e3:.0f} ms (cpu {fig['cpu_s'] * 1e3:.0f})"


# The interpreter every child runs (--python): flatview from the working tree, the
# floors and the figures alike.
PYTHON = [sys.executable]


def py(code: str, *args: str) -> list[str]:
    return [*PYTHON, "-c", HWM + code, *args]


def flatview(*args: str) -> list[str]:
    return py(FLATVIEW, *args)


def scan(*paths: str) -> list[str]:
    return py(SCAN, *paths)


# --------------------------------------------------------------------------- inputs


def big_bar(size: int, mapped: bool) -> str:
    """samples/vfio/q35-no-mmap (real QEMU 7.2, x-no-mmap=on) with the nvme's BAR 0 made
    ``size`` bytes at a size-aligned address above 4G (the bridge window follows it), so
    every page of it traps; ``mapped``: the baseline, where the BAR holds the ramd
    ``mmaps[0]`` subregion QEMU adds when it mmaps the BAR (as in samples/vfio/q35-base)."""
    text = NO_MMAP.read_text(encoding="utf-8")
    base = 0x100_0000_0000 if size > 64 * GiB else 0x10_0000_0000

    def at(lo: int, hi: int) -> str:
        return f"{base + lo:016x}-{base + hi:016x}"

    span = at(0, size - 1)
    bar = f"      {span} (prio 0, i/o): 0000:00:03.0 BAR 0"
    if mapped:
        bar += f"\n        {span} (prio 0, ramd): 0000:00:03.0 BAR 0 mmaps[0]"
    for old, new in (
        ("00000000fe200000-00000000fe3fffff", span),  # the root port's window onto it
        (
            "    00000000fe200000-00000000fe203fff (prio 1, i/o): 0000:00:03.0 base BAR 0",
            f"    {span} (prio 1, i/o): 0000:00:03.0 base BAR 0",
        ),
        ("      00000000fe200000-00000000fe203fff (prio 0, i/o): 0000:00:03.0 BAR 0", bar),
        ("00000000fe202000-00000000fe20240f", at(0x2000, 0x240F)),  # msix-table
        ("00000000fe203000-00000000fe20300f", at(0x3000, 0x300F)),  # msix-pba
    ):
        assert old in text, old
        text = text.replace(old, new)
    return text


def flatten_siblings(n: int, overlap: bool) -> dict:
    """flatten() of one container with ``n`` equal-priority i/o siblings: 4K apart and
    disjoint, or 64K long each so that every one overlaps the next 15."""
    from flatview.flatten import flatten
    from flatview.model import AddressSpaceTree, MemoryRegion, MtreeDump, Variant

    size = 0x10000 if overlap else 0x1000
    kids = tuple(MemoryRegion(f"r{i}", i * 0x1000, i * 0x1000, size, 0, "i/o") for i in range(n))
    root = MemoryRegion("system", 0, 0, 1 << 64, 0, "container", subregions=kids)
    dump = MtreeDump((AddressSpaceTree(("memory",), root, 1),), (), Variant(), "bench", 1)
    t = time.process_time()
    result = flatten(dump)
    seconds = time.process_time() - t
    peak = 0.0
    if overlap:  # tracemalloc slows Python several times: a second run for memory only
        tracemalloc.start()
        flatten(dump)
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return {
        "s": seconds,
        "us_per_region": seconds / n * 1e6,
        "tracemalloc_peak_mib": peak,
        "ranges": len(result.views[0].ranges),
        "ambiguities": len(result.ambiguities),
    }


# ---------------------------------------------------------------------------- report


FLOORS = {"help": "pass", "check": "scan2", "diff": "scan_twice", "gate": "scan_twice"}
FLOORS["advise"] = "scan_pci"
FLOORS["gate_vfio"] = "scan_vfio"
FLOORS["advise_vfio"] = "scan_vfio1"
REAL_COMMANDS = (
    "help",
    "parse",
    "flatten",
    "check",
    "diff",
    "gate",
    "advise",
    "gate_vfio",
    "advise_vfio",
)


def instructions_report(real: dict) -> str:
    """The real-dump figures in instructions, each beside its floor's (see instructions)."""
    out = ["instructions (valgrind callgrind Ir, one run each; the same floors as above)"]
    for cmd in REAL_COMMANDS:
        floor = FLOORS.get(cmd, "scan")
        ir, base = real[cmd]["instructions"], real[floor]["instructions"]
        out.append(
            f"  flatview {cmd:9} {ir / 1e6:8.1f}M   {floor:10} {base / 1e6:6.1f}M   "
            f"{ir / base:5.2f}x"
        )
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    ap.add_argument(
        "--instructions",
        action="store_true",
        help="also count the instructions of the real-dump figures and their floors "
        "(valgrind; about 2 minutes more): ratios that do not move with the load",
    )
    ap.add_argument(
        "--python",
        metavar="PATH",
        default=sys.executable,
        help="the interpreter the children run (default: this one), e.g. a clean venv's "
        "with only flatview's dependencies: an interpreter whose site-packages hold .pth "
        "start-up hooks pays for them in every floor and figure alike",
    )
    args = ap.parse_args()
    if args.instructions and shutil.which("valgrind") is None:
        ap.error("--instructions needs valgrind (Debian: apt-get install valgrind)")
    if shutil.which(args.python) is None:
        ap.error(f"--python: {args.python!r} is not an interpreter that can be run")
    PYTHON[:] = [args.python]
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    rows: list[tuple[str, str, str, str, bool]] = []  # figure, value, floor, goal, met
    data: dict = {
        "python": platform.python_version(),
        "interpreter": args.python,
        "cpus": os.cpu_count(),
    }

    with tempfile.TemporaryDirectory(prefix="flatview-bench-") as tmpdir:
        tmp = Path(tmpdir)
        CHILD_ENV["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
        pre70 = make_pre70(REAL_TREE.read_text(encoding="utf-8"), PRE70_LINES)
        pre70_path = tmp / "pre70.txt"
        pre70_path.write_text(pre70.text, encoding="utf-8")
        bars = {}
        for label, size in (("64G", 64 * GiB), ("5T", 5 * TiB)):
            for side, mapped in (("base", True), ("trapped", False)):
                path = tmp / f"bar-{label}-{side}.txt"
                path.write_text(big_bar(size, mapped), encoding="utf-8")
                bars[label, side] = str(path)
        tree, flat = str(REAL_TREE), str(REAL_FLAT)
        info_pci = str(REAL_TREE.parent / "info-pci.txt")  # advise's emulated MSI-X devices
        lines = len(REAL_TREE.read_text(encoding="utf-8").splitlines())
        rel = str(REAL_TREE.relative_to(ROOT))

        # 1. start-up and the real ~3,000-line dump, with their floors
        real = {
            "pass": py("pass"),
            "help": flatview("--help"),
            "scan": scan(tree),
            "scan2": scan(tree, flat),
            "scan_twice": scan(tree, tree),
            "parse": flatview("parse", tree),
            "flatten": flatview("flatten", tree),
            "check": flatview("check", tree, flat),
            "diff": flatview("diff", tree, tree),
            "gate": flatview("gate", tree, tree),
            "scan_pci": scan(tree, info_pci),
            "advise": flatview("advise", tree, "--info-pci", info_pci),
            # a gate with something to gate: two real dumps of one assigned device, its
            # BARs direct-mapped and then not (x-no-mmap=on)
            "scan_vfio": scan(*VFIO_PAIR),
            "gate_vfio": flatview("gate", *VFIO_PAIR),
            # the advisor on what it is for: a real dump with one assigned device
            "scan_vfio1": scan(VFIO_PAIR[0]),
            "advise_vfio": flatview("advise", VFIO_PAIR[0]),
        }
        m = measure(real, args.runs)
        data["real"] = {"file": rel, "lines": lines, **m}
        if args.instructions:
            for key, argv in real.items():
                data["real"][key]["instructions"] = instructions(argv)
        ratio = m["help"]["cpu_s"] / m["pass"]["cpu_s"]
        rows.append(
            (
                "flatview --help",
                ms(m["help"]),
                f"python -c pass {ms(m['pass'])}",
                f"<= 6x: {ratio:.1f}x",
                ratio <= 6,
            )
        )
        for cmd in REAL_COMMANDS[1:]:
            floor = m[FLOORS.get(cmd, "scan")]
            ratio = m[cmd]["cpu_s"] / floor["cpu_s"]
            what = {
                "check": "tree + -f",
                "diff": "the tree with itself",
                "gate": "the tree with itself",
                "advise": "the tree + its info pci",
                "gate_vfio": "q35-base -> q35-no-mmap",
                "advise_vfio": "q35-base: one assigned device",
            }.get(cmd, f"{lines} lines")
            rows.append(
                (
                    f"flatview {cmd.split('_')[0]} ({what})",
                    ms(m[cmd]),
                    f"bare re scan {ms(floor)}",
                    f"<= 4x: {ratio:.1f}x",
                    ratio <= 4,
                )
            )

        # 2. a fully trapped BAR at 4K pages: advise and gate, time and memory
        m = measure(
            {
                "advise 64G": flatview("advise", bars["64G", "trapped"], "--page-size", "4K"),
                "gate 64G": flatview(
                    "gate", bars["64G", "base"], bars["64G", "trapped"], "--page-size", "4K"
                ),
                "advise 5T": flatview("advise", bars["5T", "trapped"], "--page-size", "4K"),
                "gate 5T": flatview(
                    "gate", bars["5T", "base"], bars["5T", "trapped"], "--page-size", "4K"
                ),
            },
            args.runs,
        )
        data["bars"] = m
        for key, fig in m.items():
            ok = fig["cpu_s"] < 1 and fig["rss_mib"] < 200
            cmd, size = key.split()
            rows.append(
                (
                    f"{cmd}, fully trapped {size} BAR, 4K pages",
                    f"{ms(fig)}, {fig['rss_mib']:.0f} MiB",
                    "-",
                    f"< 1 s and < 200 MiB: {'yes' if ok else 'no'}",
                    ok,
                )
            )

        # 3. the 300,000-line pre-7.0 dump, whole process and peak memory
        big = str(pre70_path)
        m = measure({"scan": scan(big), "parse": flatview("parse", big)}, args.runs)
        size_mib = pre70_path.stat().st_size / 2**20
        data["pre70"] = {"lines": pre70.lines, "mib": size_mib, **m}
        ratio = m["parse"]["cpu_s"] / m["scan"]["cpu_s"]
        rows.append(
            (
                f"flatview parse, pre-7.0 dump ({pre70.lines} lines)",
                ms(m["parse"]),
                f"bare re scan {ms(m['scan'])}",
                f"<= 2x: {ratio:.2f}x",
                ratio <= 2,
            )
        )
        ratio = m["parse"]["rss_mib"] / size_mib
        rows.append(
            (
                "  its max RSS (whole process)",
                f"{m['parse']['rss_mib']:.0f} MiB",
                f"input {size_mib:.1f} MiB (scan {m['scan']['rss_mib']:.0f} MiB)",
                f"<= 3x input: {ratio:.1f}x",
                ratio <= 3,
            )
        )

    # 4. flatten of many siblings (in this process)
    for n, overlap in ((10_000, False), (200_000, False), (6_000, True)):
        fig = flatten_siblings(n, overlap)
        data[f"flatten {n}{' overlapping' if overlap else ''}"] = fig
        if overlap:
            ok = fig["tracemalloc_peak_mib"] < 100
            rows.append(
                (
                    f"flatten {n} overlapping equal-priority siblings",
                    f"{fig['s']:.2f} s, peak {fig['tracemalloc_peak_mib']:.0f} MiB",
                    "-",
                    f"bounded (< 100 MiB): {'yes' if ok else 'no'}",
                    ok,
                )
            )
        else:
            ok = n < 200_000 or fig["s"] < 10
            rows.append(
                (
                    f"flatten {n} sibling regions",
                    f"{fig['s']:.2f} s ({fig['us_per_region']:.0f} us/region)",
                    "-",
                    "in seconds (< 10 s)" if n == 200_000 else "(per-region cost: compare)",
                    ok,
                )
            )

    data["pictures"] = picture_figures(args.runs)  # benchmarks/pictures.py
    data["seconds"] = time.perf_counter() - t0
    data["load"] = [load0, os.getloadavg()[0]]
    keys = ("figure", "value", "floor", "goal", "met")
    data["goals"] = [dict(zip(keys, r, strict=True)) for r in rows]
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print(
        f"flatview benchmark: {args.python} (this one: Python {data['python']}), "
        f"{data['cpus']} CPUs, "
        f"{args.runs} runs per whole-process figure (median), load {load0:.1f} -> "
        f"{data['load'][1]:.1f}"
    )
    print(f"real dump: {rel} ({lines} lines, QEMU 7.2)\n")
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    head = ("figure", "value", "floor (same run)", "goal")
    print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + "  met")
    for r in rows:
        cells = "  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True))
        print(f"{cells}  {'ok' if r[4] else 'MISSED'}")
    if args.instructions:
        print("\n" + instructions_report(data["real"]))
    print("\n" + picture_report(data["pictures"]))
    print(f"\nthe whole benchmark took {data['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
