#!/usr/bin/env python3
"""Benchmark of flatview's parse (read_dumps) and flatten stages.

    python3 benchmarks/bench.py            # table
    python3 benchmarks/bench.py --json     # the same figures as JSON
    python3 benchmarks/bench.py --profile  # also: cProfile of read_dumps on (b), top 15

Inputs (see benchmarks/README.md):
  (a)  the largest real sample, samples/**/info-mtree*.txt by line count, at run time;
  (a') when (a) holds no tree dump (e.g. an ``info mtree -f -d``): the largest real
       sample that does, so flatten can be timed on real data;
  (b)  ~300,000 lines in the pre-7.0 layout (one tree per address space), derived in
       memory from the largest real tree sample by benchmarks/make_pre70.py;
  (c)  exactly 1,000 lines, derived the same way from the same sample.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import platform
import pstats
import re
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from make_pre70 import make_pre70  # noqa: E402
from pictures import figures as picture_figures  # noqa: E402
from pictures import report as picture_report  # noqa: E402

import flatview.parse  # noqa: E402
from flatview.build import read_dumps  # noqa: E402
from flatview.errors import FlatviewError  # noqa: E402
from flatview.flatten import flatten  # noqa: E402
from flatview.model import MtreeDump  # noqa: E402

B_TARGET_LINES = 300_000
C_TARGET_LINES = 1_000
TARGET_RATIO_B = 3.0
TARGET_C_MS = 150.0
LARGE = 50_000  # lines: inputs above this get --runs-large runs (time budget)

# The bare baseline: one compiled regex matching a region line (tree or flat view),
# applied to every line.  It only recognises lines; it builds nothing.
REGION_RE = re.compile(
    r"(?:\[DETECTED OVERFLOW!\] )? +(?:\[DETECTED OVERFLOW!\] )?"
    r"(?:0x)?([0-9a-f]{16})-(?:0x)?([0-9a-f]{16}) \(prio (-?\d+), ([\w/-]+)\): (.*)"
)


# --------------------------------------------------------------------------- inputs


@dataclass
class Sample:
    path: Path
    text: str
    lines: int

    @property
    def rel(self) -> str:
        return str(self.path.relative_to(ROOT))


def read_sample(path: Path) -> str:
    return path.read_bytes().decode("utf-8")  # as flatview.api.read_text: CRLF kept


def find_samples() -> list[Sample]:
    """samples/**/info-mtree*.txt, largest first (ties: path order)."""
    out = []
    for p in sorted((ROOT / "samples").glob("**/info-mtree*.txt")):
        try:
            text = read_sample(p)
        except (OSError, UnicodeDecodeError):
            continue
        out.append(Sample(p, text, len(text.splitlines())))
    out.sort(key=lambda s: (-s.lines, str(s.path)))
    return out


def parses(text: str, name: str) -> list | None:
    try:
        return read_dumps(text, name)
    except FlatviewError:
        return None


def pick_inputs(samples: list[Sample]) -> tuple[list[dict], list[str]]:
    """The inputs to measure, and notes on what was skipped and why."""
    notes: list[str] = []
    inputs: list[dict] = []
    largest = None
    for s in samples:
        if parses(s.text, s.rel) is not None:
            largest = s
            break
        notes.append(f"skipped {s.rel} ({s.lines} lines): flatview cannot parse it")
    if largest is None:
        raise SystemExit("no parsable samples/**/info-mtree*.txt")
    dumps = parses(largest.text, largest.rel) or []
    inputs.append(
        dict(
            id="a",
            label="(a) largest real sample",
            source=largest.rel,
            derivation="file as is (bytes decoded as UTF-8, line ends kept)",
            make=lambda: largest.text,
            child={"kind": "file", "path": str(largest.path)},
        )
    )

    # The tree source for (a'), (b) and (c): the largest sample with a 'system' tree
    # that make_pre70 can un-group and flatview parses into one tree dump.
    tree_src = None
    for s in samples:
        try:
            make_pre70(s.text, len(s.text.splitlines()) * 4, render=False)
        except ValueError:
            continue
        ds = parses(s.text, s.rel)
        if ds and len(ds) == 1 and isinstance(ds[0], MtreeDump):
            tree_src = s
            break
    if tree_src is None:
        raise SystemExit("no real sample with an address space whose root is 'system'")

    if not any(isinstance(d, MtreeDump) for d in dumps):
        notes.append(
            f"(a) {largest.rel} holds no tree dump (flat views only): flatten is timed "
            f"on (a'), the largest real sample with a tree"
        )
        inputs.append(
            dict(
                id="a'",
                label="(a') largest real tree sample",
                source=tree_src.rel,
                derivation="file as is",
                make=lambda: tree_src.text,
                child={"kind": "file", "path": str(tree_src.path)},
            )
        )

    # Figures only: the texts are built when measured, after the fresh-process runs
    # (a child's max RSS starts at its parent's, see fresh_process()).
    b = make_pre70(tree_src.text, B_TARGET_LINES, render=False)
    eol = "CRLF" if "\r\n" in tree_src.text else "LF"
    inputs.append(
        dict(
            id="b",
            label="(b) pre-7.0 layout, ~300k lines",
            source=tree_src.rel,
            derivation=(
                f"{tree_src.rel} ({b.source_lines} lines) un-grouped into one tree per "
                f"address space ({b.ungrouped} shared heading(s) un-grouped), plus "
                f"{b.added} address spaces cpu-memory-{b.first_cpu}..cpu-memory-"
                f"{b.first_cpu + b.added - 1} sharing the 'system' tree, memory-region "
                f"sections once at the end; {eol} line ends as in the sample"
            ),
            make=lambda: make_pre70(tree_src.text, B_TARGET_LINES).text,
            generator={"added": b.added, "first_cpu": b.first_cpu, "ungrouped": b.ungrouped},
            child={
                "kind": "pre70",
                "path": str(tree_src.path),
                "target": B_TARGET_LINES,
                "exact": False,
            },
        )
    )
    c = make_pre70(tree_src.text, C_TARGET_LINES, exact=True, render=False)
    inputs.append(
        dict(
            id="c",
            label="(c) 1,000 lines",
            source=tree_src.rel,
            derivation=(
                f"same derivation as (b) from {tree_src.rel}, stopped at exactly "
                f"{C_TARGET_LINES} lines: {c.added} cpu-memory-N address spaces added"
                + (
                    f", the last one's 'system' tree cut to its first {c.last_tree_lines} "
                    f"of {c.system_lines} lines"
                    if c.truncated_last
                    else ""
                )
            ),
            make=lambda: make_pre70(tree_src.text, C_TARGET_LINES, exact=True).text,
            generator={"added": c.added, "first_cpu": c.first_cpu, "ungrouped": c.ungrouped},
            child={
                "kind": "pre70",
                "path": str(tree_src.path),
                "target": C_TARGET_LINES,
                "exact": True,
            },
        )
    )
    return inputs, notes


def child_text(spec: dict) -> str:
    text = read_sample(Path(spec["path"]))
    if spec["kind"] == "pre70":
        text = make_pre70(text, spec["target"], exact=spec["exact"]).text
    return text


# ----------------------------------------------------------------------- measuring


def cold() -> None:
    """Forget every parsed line (the per-line lark memo); the Lark object is kept."""
    flatview.parse._parse_cached.cache_clear()


def timed(fn, runs: int, before=None) -> tuple[list[float], object]:
    times, result = [], None
    for _ in range(runs):
        result = None
        if before:
            before()
        gc.collect()
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return times, result


def bare_scan(text: str) -> int:
    n = 0
    for line in text.splitlines():
        m = REGION_RE.match(line)
        if m:
            n += 1
    return n


def fresh_process(spec: dict) -> dict:
    """Parse the input once in a new interpreter: max RSS and one-shot wall times.

    On Linux a process's max RSS survives fork and execve (the kernel keeps the old
    address space's high-water mark), so a child started from a big parent reports at
    least the parent's peak.  main() therefore starts these children first, while the
    parent holds only its imports (the child's own imports are the same size).
    ``vmhwm_*`` (VmHWM of /proc/self/status, per address space) cross-check it.
    """
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode:
        return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(proc.stdout)


def _maxrss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def _vmhwm_kib() -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def child_main(spec: dict) -> None:
    # Runs with flatview, lark and networkx already imported (top of this file).
    t0 = time.perf_counter()
    flatview.parse._parser()
    t1 = time.perf_counter()
    text = child_text(spec)
    gc.collect()
    rss0, hwm0 = _maxrss_kib(), _vmhwm_kib()
    t2 = time.perf_counter()
    dumps = read_dumps(text, "bench")
    t3 = time.perf_counter()
    rss1, hwm1 = _maxrss_kib(), _vmhwm_kib()
    print(
        json.dumps(
            {
                "maxrss_before_parse_kib": rss0,
                "maxrss_after_parse_kib": rss1,
                "vmhwm_before_parse_kib": hwm0,
                "vmhwm_after_parse_kib": hwm1,
                "grammar_build_s": t1 - t0,
                "first_parse_s": t3 - t2,
                "dumps": len(dumps),
            }
        )
    )


def measure(inp: dict, text: str, child: dict, runs: int, log) -> dict:
    lines = text.splitlines()
    n, distinct = len(lines), len(set(lines))
    del lines
    log(f"  {inp['id']}: {n} lines ...")
    # Interleaved rounds (bare scan, cold parse, warm parse), so that the three see the
    # same machine load; medians over the rounds.
    bare_t, cold_t, warm_t = [], [], []
    matched, dumps = 0, None
    for _ in range(runs):
        t, matched = timed(lambda: bare_scan(text), 1)
        bare_t += t
        dumps = None
        t, _ = timed(lambda: read_dumps(text, inp["source"]), 1, before=cold)
        cold_t += t
        t, dumps = timed(lambda: read_dumps(text, inp["source"]), 1)
        warm_t += t

    cold()
    gc.collect()
    tracemalloc.start()
    read_dumps(text, inp["source"])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    trees = [d for d in dumps if isinstance(d, MtreeDump)]
    flat_t = None
    views = None
    if trees:
        tree = max(trees, key=lambda d: len(d.address_spaces))
        flat_t, res = timed(lambda: flatten(tree), runs)
        views = len(res.views)

    bare = statistics.median(bare_t)
    cold_m = statistics.median(cold_t)
    warm_m = statistics.median(warm_t)
    out = {
        "id": inp["id"],
        "label": inp["label"],
        "source": inp["source"],
        "derivation": inp["derivation"],
        "lines": n,
        "distinct_lines": distinct,
        "bytes": len(text.encode()),
        "region_lines_matched_by_bare_scan": matched,
        "dumps": [type(d).__name__ for d in dumps],
        "runs": runs,
        "bare_scan_s": {"median": bare, "runs": bare_t},
        "parse_cold_s": {"median": cold_m, "runs": cold_t},
        "parse_warm_s": {"median": warm_m, "runs": warm_t},
        "lines_per_s_cold": n / cold_m,
        "lines_per_s_warm": n / warm_m,
        "lines_per_s_bare_scan": n / bare,
        "ratio_cold": cold_m / bare,
        "ratio_warm": warm_m / bare,
        "tracemalloc_peak_bytes": peak,
        "fresh_process": child,
    }
    if "generator" in inp:
        out["generator"] = inp["generator"]
    if flat_t is not None:
        f = statistics.median(flat_t)
        out["flatten_s"] = {"median": f, "runs": flat_t}
        out["flatten_views"] = views
        out["flatten_over_parse_warm"] = f / warm_m
        out["flatten_over_parse_cold"] = f / cold_m
    return out


# ----------------------------------------------------------------------- reporting


def environment() -> dict:
    import lark

    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "flatview", "grammars"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        commit = head + (" + uncommitted changes in flatview/ or grammars/" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "lark": lark.__version__,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or "?",
        "cpus": os.cpu_count(),
        "loadavg_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "flatview_commit": commit,
    }


def grammar_build_s() -> float:
    flatview.parse._parser.cache_clear()
    t0 = time.perf_counter()
    flatview.parse._parser()
    return time.perf_counter() - t0


def targets(results: list[dict]) -> list[dict]:
    by = {r["id"]: r for r in results}
    out = []
    if "b" in by:
        r = by["b"]["ratio_cold"]
        out.append(
            {
                "target": "(b) flatview cold parse / bare re scan <= 3",
                "value": round(r, 2),
                "ok": r <= TARGET_RATIO_B,
            }
        )
    if "c" in by:
        ms = by["c"]["parse_cold_s"]["median"] * 1e3
        out.append(
            {
                "target": "(c) 1,000-line cold parse < 150 ms",
                "value": round(ms, 1),
                "ok": ms < TARGET_C_MS,
            }
        )
    for r in results:
        if "flatten_s" in r:
            x = r["flatten_over_parse_warm"]
            out.append(
                {
                    "target": f"({r['id']}) flatten not slower than parse (warm)",
                    "value": round(x, 3),
                    "ok": x <= 1.0,
                }
            )
    return out


def fmt_table(rows: list[list[str]], head: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows, strict=True)]
    line = lambda r: "  ".join(  # noqa: E731
        str(x).ljust(w) if i == 0 else str(x).rjust(w)
        for i, (x, w) in enumerate(zip(r, widths, strict=True))
    )
    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(head), sep, *(line(r) for r in rows)])


def ms(s: float) -> str:
    return f"{s * 1e3:.1f}" if s < 10 else f"{s:.2f}s"


def text_report(rep: dict) -> str:
    env = rep["environment"]
    out = [
        "flatview benchmark",
        f"  Python   {env['python']}   lark {env['lark']}",
        f"  machine  {env['platform']} ({env['machine']}, {env['cpus']} CPUs, "
        f"load {env['loadavg_1min']} at start, {rep['loadavg_end']} at end)",
        f"  flatview {env['flatview_commit']}",
        f"  runs     {rep['runs']['default']} per figure, {rep['runs']['large']} above "
        f"{rep['runs']['large_above_lines']:,} lines (medians of interleaved rounds)",
        f"  grammar  Lark object built in {rep['grammar_build_s'] * 1e3:.1f} ms (once per "
        f"process, not in the parse figures)",
        "",
        "Inputs:",
    ]
    for r in rep["results"]:
        out.append(
            f"  {r['label']}: {r['lines']:,} lines, {r['distinct_lines']:,} distinct, "
            f"{r['bytes']:,} bytes -> {', '.join(r['dumps'])}"
        )
        out.append(f"      {r['derivation']}")
    for n in rep["notes"]:
        out.append(f"  note: {n}")
    out += ["", "Parse (read_dumps: clean-up + lark + model build), wall time in ms:"]
    rows = []
    for r in rep["results"]:
        rows.append(
            [
                r["id"],
                f"{r['lines']:,}",
                ms(r["bare_scan_s"]["median"]),
                ms(r["parse_cold_s"]["median"]),
                ms(r["parse_warm_s"]["median"]),
                f"{r['lines_per_s_cold']:,.0f}",
                f"{r['lines_per_s_warm']:,.0f}",
                f"{r['ratio_cold']:.1f}",
                f"{r['ratio_warm']:.1f}",
            ]
        )
    out.append(
        fmt_table(
            rows,
            [
                "in",
                "lines",
                "bare re",
                "cold",
                "warm",
                "lines/s cold",
                "lines/s warm",
                "ratio cold",
                "ratio warm",
            ],
        )
    )
    out += ["", "Memory, fresh process, flatten:"]
    rows = []
    for r in rep["results"]:
        fp = r["fresh_process"]
        if "error" in fp:
            rss = first = "error"
        else:
            a, b = fp["maxrss_after_parse_kib"], fp["maxrss_before_parse_kib"]
            rss = f"{a / 1024:.1f} (+{(a - b) / 1024:.1f})"
            if fp.get("vmhwm_after_parse_kib"):
                rss += f" / {fp['vmhwm_after_parse_kib'] / 1024:.1f}"
            first = ms(fp["first_parse_s"])
        fl = r.get("flatten_s")
        rows.append(
            [
                r["id"],
                f"{r['tracemalloc_peak_bytes'] / 2**20:.2f}",
                rss,
                first,
                ms(fl["median"]) if fl else "n/a (no tree)",
                f"{r['flatten_over_parse_warm']:.3f}" if fl else "",
                str(r.get("flatten_views", "")),
            ]
        )
    out.append(
        fmt_table(
            rows,
            [
                "in",
                "tracemalloc peak MiB",
                "max RSS MiB (+parse) / VmHWM",
                "1st parse ms",
                "flatten ms",
                "flatten/parse warm",
                "views",
            ],
        )
    )
    out += ["", "Targets:"]
    for t in rep["targets"]:
        out.append(f"  [{'ok' if t['ok'] else 'MISSED'}] {t['target']}: {t['value']}")
    out.append("")
    out.append(f"Total benchmark time: {rep['total_s']:.1f} s")
    return "\n".join(out)


def profile_b(inputs: list[dict], top: int = 15) -> str:
    b = next(i for i in inputs if i["id"] == "b")
    cold()
    prof = cProfile.Profile()
    prof.enable()
    read_dumps(b["make"](), b["source"])
    prof.disable()
    buf = io.StringIO()
    st = pstats.Stats(prof, stream=buf)
    st.sort_stats("cumulative").print_stats(top)
    st.sort_stats("tottime").print_stats(top)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    ap.add_argument("--runs", type=int, default=5, help="runs per figure (median; default 5)")
    ap.add_argument(
        "--runs-large",
        type=int,
        default=3,
        help=f"runs per figure for inputs over {LARGE:,} lines, i.e. (b) (default 3)",
    )
    ap.add_argument(
        "--profile",
        action="store_true",
        help="also profile read_dumps on (b) (cProfile, cold, top 15)",
    )
    ap.add_argument("-v", "--verbose", action="store_true", help="progress on stderr")
    ap.add_argument("--only", help="comma-separated input ids to measure (a,a',b,c)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child_main(json.loads(args.child))
        return 0

    start = time.perf_counter()
    log = (lambda m: print(m, file=sys.stderr)) if args.verbose else (lambda m: None)
    env = environment()
    gb = grammar_build_s()
    inputs, notes = pick_inputs(find_samples())
    chosen = inputs
    if args.only:
        ids = set(args.only.split(","))
        chosen = [i for i in inputs if i["id"] in ids]
    children = {}
    for i in chosen:  # first, while this process is small (see fresh_process)
        log(f"  {i['id']}: fresh process ...")
        children[i["id"]] = fresh_process(i["child"])
    results = []
    for i in chosen:
        text = i["make"]()
        runs = args.runs_large if len(text.splitlines()) > LARGE else args.runs
        results.append(measure(i, text, children[i["id"]], runs, log))
        del text
    rep = {
        "environment": env,
        "runs": {"default": args.runs, "large": args.runs_large, "large_above_lines": LARGE},
        "grammar_build_s": gb,
        "notes": notes,
        "results": results,
        "targets": targets(results),
    }
    if args.profile:
        rep["profile_b"] = profile_b(inputs)
    rep["pictures"] = picture_figures(args.runs)  # benchmarks/pictures.py
    rep["total_s"] = time.perf_counter() - start
    rep["loadavg_end"] = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    if args.json:
        print(json.dumps(rep, indent=2))
    else:
        print(text_report(rep))
        print("\n" + picture_report(rep["pictures"]))
        if args.profile:
            print("\ncProfile of read_dumps on (b), cold caches:\n")
            print(rep["profile_b"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
