#!/usr/bin/env python3
"""Mutation testing (mutmut 3) of the modules whose bugs would pass silently, one at a time.

Each module runs in its own scratch copy of the repository (``git ls-files``) against the
fast, in-process test files that exercise it (MODULES below), at low CPU priority, with
one time limit per module.  mutmut records which tests call each function and runs only
those on that function's mutants; tests that run flatview in a subprocess (CLI, wheel,
live QEMU) record nothing and so never run against mutants.

    python3 scripts/mutation.py                      # every module
    python3 scripts/mutation.py pages gate           # some
    python3 scripts/mutation.py --survivors diff     # and list what survived

Prints one line per module: mutants, killed (timeouts count as killed, as mutmut counts
them), survived, not covered by any selected test, and the score: killed / (killed +
survived + not covered).  The scratch copies are
kept under --work (default: a temporary folder, printed) for ``mutmut show NAME`` there.
Why mutmut and not cosmic-ray: mutmut 3 needs no session database or per-module config
file, selects the tests per mutated function by itself, and runs from pyproject.toml, so a
scratch copy with one edited ``[tool.mutmut]`` table is the whole set-up.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# module -> the fast test files that exercise it
# Modules that live in a subpackage.
PATHS = {"vfio": "flatview/vfio/stack.py"}

MODULES: dict[str, list[str]] = {
    "flatten": [
        "tests/test_flatten.py",
        "tests/test_flatten_properties.py",
        "tests/test_tiebreak_samples.py",
        "tests/test_qemu_versions.py",
    ],
    "terminates": [
        "tests/test_flatten.py",
        "tests/test_flatten_properties.py",
        "tests/test_tiebreak_samples.py",
        "tests/test_qemu_versions.py",
    ],
    "pages": [
        "tests/test_pages.py",
        "tests/test_gate_vfio.py",
        "tests/test_vfio_samples.py",
    ],
    "gate": [
        "tests/test_gate.py",
        "tests/test_gate_vfio.py",
        "tests/test_gate_matrix.py",
        "tests/test_junit.py",
    ],
    "diff": ["tests/test_diff.py", "tests/test_gate_vfio.py", "tests/test_gate.py"],
    "vfio": ["tests/test_vfio_sim.py", "tests/test_vfio_samples.py", "tests/test_advisor_notes.py"],
}


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def scratch_copy(dest: Path, module: str) -> None:
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, files):
        src = ROOT / name.decode()
        if src.is_file():
            out = dest / name.decode()
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, out)
    py = dest / "pyproject.toml"
    text = py.read_text()
    table = text.index("[tool.mutmut]")
    end = text.find("\n[", table + 1)
    tail = "" if end < 0 else text[end:]
    text = (
        text[:table]
        + "[tool.mutmut]\n"
        + 'source_paths = ["flatview"]\n'
        + f'only_mutate = ["{PATHS.get(module, f"flatview/{module}.py")}"]\n'
        + 'also_copy = ["grammars", "samples"]\n'
        + f"pytest_add_cli_args_test_selection = {_toml_list(MODULES[module])}\n"
        + 'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q"]\n'
        # one process imports the tests (lark grammars, samples) once and forks per mutant
        + 'process_isolation = "forkserver"\n'
        + tail
    )
    py.write_text(text)


def run_module(module: str, work: Path, timeout: float, jobs: int) -> dict:
    where = work / module
    if where.exists():
        shutil.rmtree(where)
    scratch_copy(where, module)
    # FLATVIEW_MUTATION: fixed, fewer hypothesis examples per mutant (tests/conftest.py)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "FLATVIEW_MUTATION": "1"}
    t0 = time.monotonic()
    cmd = ["nice", "-n", "15", sys.executable, "-m", "mutmut", "run", "--max-children", str(jobs)]
    try:
        subprocess.run(cmd, cwd=where, env=env, capture_output=True, timeout=timeout, check=False)
        finished = True
    except subprocess.TimeoutExpired:
        finished = False
    out = subprocess.run(
        [sys.executable, "-m", "mutmut", "results", "--all", "true"],
        cwd=where,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    states = re.findall(r"^\s+(\S+): (.+)$", out, re.M)
    counts: dict[str, int] = {}
    for _name, state in states:
        counts[state] = counts.get(state, 0) + 1
    killed = counts.get("killed", 0) + counts.get("timeout", 0)
    survived = [n for n, s in states if s == "survived"]
    # a mutant no selected test reaches is not killed: it counts against the score
    tested = killed + len(survived) + counts.get("no tests", 0)
    return {
        "module": module,
        "mutants": len(states),
        "killed": killed,
        "survived": survived,
        "no tests": counts.get("no tests", 0),
        "other": {k: v for k, v in counts.items() if k not in ("killed", "timeout", "survived")},
        "score": 100.0 * killed / tested if tested else 0.0,
        "seconds": time.monotonic() - t0,
        "finished": finished,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("modules", nargs="*", choices=[*MODULES, []], metavar="MODULE")
    ap.add_argument("--work", type=Path, help="keep the scratch copies here")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per module")
    ap.add_argument("--jobs", type=int, default=1, help="mutants run side by side")
    ap.add_argument("--survivors", action="store_true", help="list surviving mutants")
    args = ap.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="flatview-mutation-"))
    print(f"scratch copies in {work}", flush=True)
    for module in args.modules or list(MODULES):
        r = run_module(module, work, args.timeout, args.jobs)
        state = "" if r["finished"] else f" (stopped after {args.timeout:.0f}s: partial)"
        print(
            f"{module:11} {r['mutants']:4d} mutants  {r['killed']:4d} killed  "
            f"{len(r['survived']):4d} survived  {r['no tests']:4d} not covered  "
            f"score {r['score']:5.1f}%  {r['seconds']:5.0f}s{state}",
            flush=True,
        )
        if args.survivors:
            for name in r["survived"]:
                print(f"    survived: {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
