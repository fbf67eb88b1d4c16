"""Fuzz every flatview command with mutated real samples and hostile options.

    python3 benchmarks/fuzz.py --runs 5000            # random mutations, seed 0
    python3 benchmarks/fuzz.py --runs 20000 --seed 7 -v

Each run takes a real dump from ``samples/vfio`` (or an lspci / ``info pci`` listing),
mutates it the ways a bad day does (a digit flipped, a line cut, duplicated or moved, an
indent changed, a heading renamed, bytes of junk, an address or priority made huge) and
runs one command on it in-process (``flatview.cli.main``), sometimes with a hostile
option value.  Every outcome must be an exit status flatview documents -- 0 fine, 1 a
finding, 2 bad input (exactly one line on stderr) -- and never 3 (a bug) or a traceback;
a report file (``--junit``) exists only when the run succeeded.  The run prints the
exit statuses seen and each failing case (command line and the mutation), and exits 1 if
there was one.  ``tests/test_fuzz.py`` drives the same mutations from hypothesis, bounded
for CI.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SAMPLES = ROOT / "samples" / "vfio"
MACHINES = ("q35-base", "q35-no-mmap", "q35-msix-relocation-bar")


def dumps() -> list[Path]:
    """The real dumps the mutations start from."""
    return sorted(p for m in MACHINES for p in (SAMPLES / m).glob("info-mtree*.txt"))


# ---------------------------------------------------------------------------- mutations

_JUNK = [
    "\x00",
    "\ufeff",
    "\r",
    "\t",
    "²",
    "→",
    "\u202e",
    "\x1b[31m",
    "(prio ",
    " @",
    "alias ",
    "[disabled]",
    ": ",
    "-",
    "memory-region: ",
    "address-space: ",
    "FlatView #0",
    "> ",
    "(qemu) ",
]


def _lines_op(fn: Callable[[list[str], random.Random], None]):
    def op(text: str, rnd: random.Random) -> str:
        lines = text.split("\n")
        if len(lines) > 1:
            fn(lines, rnd)
        return "\n".join(lines)

    op.__name__ = fn.__name__
    return op


@_lines_op
def delete_line(lines, rnd):
    del lines[rnd.randrange(len(lines))]


@_lines_op
def duplicate_line(lines, rnd):
    i = rnd.randrange(len(lines))
    lines.insert(rnd.randrange(len(lines)), lines[i])


@_lines_op
def move_line(lines, rnd):
    line = lines.pop(rnd.randrange(len(lines)))
    lines.insert(rnd.randrange(len(lines) + 1), line)


@_lines_op
def cut_line(lines, rnd):
    i = rnd.randrange(len(lines))
    lines[i] = lines[i][: rnd.randrange(len(lines[i]) + 1)]


@_lines_op
def reindent(lines, rnd):
    i = rnd.randrange(len(lines))
    lines[i] = " " * rnd.choice([0, 1, 2, 3, 4, 6, 40, 1000]) + lines[i].lstrip(" ")


@_lines_op
def rename_heading(lines, rnd):
    heads = [i for i, x in enumerate(lines) if x.startswith(("memory-region:", "address-space"))]
    if heads:
        i = rnd.choice(heads)
        lines[i] = lines[i].replace("-", rnd.choice(["_", "", "--"]), 1)


def flip_digit(text: str, rnd: random.Random) -> str:
    spots = [i for i, c in enumerate(text) if c in "0123456789abcdef"]
    if not spots:
        return text
    i = rnd.choice(spots)
    return text[:i] + rnd.choice("0123456789abcdef") + text[i + 1 :]


def huge_number(text: str, rnd: random.Random) -> str:
    """An address or a priority far beyond what QEMU prints (a 5 TiB BAR and worse)."""
    spots = [i for i in range(len(text)) if text.startswith(("(prio ", "-0000"), i)]
    if not spots:
        return text
    i = rnd.choice(spots)
    digits = rnd.choice(["9" * 20, "0" * 30, "1" * rnd.randrange(17, 200), "2147483648"])
    if text.startswith("(prio ", i):
        return text[: i + 6] + rnd.choice(["", "-"]) + digits + text[i + 6 :].lstrip("-0123456789")
    return text[: i + 1] + digits[:17] + text[i + 17 :]


def insert_junk(text: str, rnd: random.Random) -> str:
    i = rnd.randrange(len(text) + 1)
    return text[:i] + rnd.choice(_JUNK) * rnd.choice([1, 1, 2, 50]) + text[i:]


def delete_span(text: str, rnd: random.Random) -> str:
    i = rnd.randrange(len(text) + 1)
    return text[:i] + text[i + rnd.randrange(1, 40) :]


def truncate(text: str, rnd: random.Random) -> str:
    return text[: rnd.randrange(len(text) + 1)]


MUTATIONS = (
    delete_line,
    duplicate_line,
    move_line,
    cut_line,
    reindent,
    rename_heading,
    flip_digit,
    flip_digit,
    flip_digit,
    huge_number,
    insert_junk,
    delete_span,
    truncate,
)


def mutate(text: str, rnd: random.Random, count: int | None = None) -> tuple[str, list[str]]:
    """Apply 1-3 mutations; return the text and their names."""
    names = []
    for _ in range(count or rnd.choice([1, 1, 1, 2, 3])):
        op = rnd.choice(MUTATIONS)
        text = op(text, rnd)
        names.append(op.__name__)
    return text, names


# ----------------------------------------------------------------------- command lines

HOSTILE_OPTIONS = {
    "--page-size": ["4K", "64K", "²K", "1", "0x10000", "65536", "3K", "1T", "9" * 60],
    "--kernel": ["6.1", "4.15", "abc", "9" * 5000, "4.16.0-rc1", ""],
    "--device": ["zz:zz.z", "0000:00:05.0", "01:00.0", "*"],
}


def command_lines(path: Path, other: Path, tmp: Path, rnd: random.Random) -> list[list[str]]:
    """Every command on the mutated ``path`` (``other``: its unmutated counterpart)."""
    p, o = str(path), str(other)
    junit = str(tmp / "report.xml")
    lines = [
        ["parse", p],
        ["parse", p, "--json"],
        ["parse", p, "--format", "qemu"],
        ["flatten", p],
        ["flatten", p, "--json"],
        ["check", o, p],
        ["advise", p],
        ["advise", p, "--json", "--page-size", "4K,64K"],
        ["diff", o, p],
        ["diff", p, o, "--json"],
        ["gate", o, p, "--junit", junit],
        ["gate", p, o],
    ]
    for line in lines:
        if line[0] in ("advise", "diff", "gate") and rnd.random() < 0.3:
            opt = rnd.choice(["--page-size", "--device"] + (["--kernel"] * (line[0] == "advise")))
            line += [opt, rnd.choice(HOSTILE_OPTIONS[opt])]
    return lines


# ------------------------------------------------------------------------------- a run


@dataclass
class Outcome:
    argv: list[str]
    status: int
    stderr: str
    problem: str | None


def run(argv: list[str], junit: Path | None = None) -> Outcome:
    """One in-process run; ``problem`` says what broke a rule, if anything did."""
    from flatview import cli

    if junit is not None:
        junit.unlink(missing_ok=True)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = cli.main(argv)
        except BaseException as exc:  # what main() let through is itself the bug
            status = -1
            err.write(f"escaped main(): {type(exc).__name__}: {exc}\n")
    text = err.getvalue()
    problem = None
    if status not in (0, 1, 2):
        problem = f"exit status {status}"
    elif "Traceback" in text:
        problem = "traceback"
    elif status == 2 and len(text.splitlines()) != 1:
        problem = f"{len(text.splitlines())} lines on stderr for an input error"
    elif status == 2 and out.getvalue():
        problem = "output printed although the run failed"
    elif junit is not None and "--junit" in argv and status == 2 and junit.exists():
        problem = "report written although the run failed"
    return Outcome(argv, status, text, problem)


def fuzz(runs: int, seed: int, verbose: bool = False) -> tuple[Counter, list[tuple]]:
    rnd = random.Random(seed)
    sources = dumps()
    seen: Counter = Counter()
    failures: list[tuple] = []
    done = 0
    with tempfile.TemporaryDirectory(prefix="flatview-fuzz-") as d:
        tmp = Path(d)
        while done < runs:
            src = rnd.choice(sources)
            text, names = mutate(src.read_text(encoding="utf-8"), rnd)
            path = tmp / src.name
            path.write_bytes(text.encode("utf-8", "surrogatepass"))
            for argv in command_lines(path, src, tmp, rnd):
                if done >= runs:
                    break
                o = run(argv, tmp / "report.xml")
                done += 1
                seen[o.status] += 1
                if o.problem:
                    kept = tmp.parent / f"flatview-fuzz-{seed}-{done}.txt"
                    kept.write_text(text, encoding="utf-8", errors="surrogatepass")
                    failures.append((o.problem, argv, names, src.name, str(kept), o.stderr))
                if verbose and done % 500 == 0:
                    print(f"{done} runs, statuses {dict(seen)}", file=sys.stderr)
    return seen, failures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=2000, help="command runs (default 2000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-v", action="store_true", help="progress on stderr")
    args = ap.parse_args()
    t0 = time.perf_counter()
    seen, failures = fuzz(args.runs, args.seed, args.v)
    took = time.perf_counter() - t0
    print(f"{args.runs} runs (seed {args.seed}) in {took:.0f} s")
    print("exit statuses: " + ", ".join(f"{k}: {v}" for k, v in sorted(seen.items())))
    print(f"failures: {len(failures)}")
    for problem, argv, names, src, kept, err in failures[:50]:
        print(f"- {problem}: flatview {' '.join(argv)}  [{src}, {'+'.join(names)}; kept {kept}]")
        print("    " + (err.strip().splitlines() or [""])[-1][:300])
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
