"""Derive large ``info mtree`` dumps in the pre-7.0 layout from a real (>= 7.0) sample.

QEMU >= 7.0 (``mtree_info`` with address-space grouping) prints consecutive
``address-space:`` headings whose address spaces share one root, then that tree once::

    address-space: cpu-memory-0
    address-space: memory
      0000000000000000-ffffffffffffffff (prio 0, i/o): system
        ...
    <empty line>

QEMU < 7.0 printed one full tree per address space::

    address-space: cpu-memory-0
      0000000000000000-ffffffffffffffff (prio 0, i/o): system
        ...
    <empty line>
    address-space: memory
      0000000000000000-ffffffffffffffff (prio 0, i/o): system
        ...
    <empty line>

:func:`make_pre70` un-groups a sample that way, then adds ``cpu-memory-N`` address
spaces (one per extra vCPU) sharing the ``system`` tree right after the block that
holds it, until the dump reaches the requested number of lines.  The
``memory-region:`` sections stay at the end, printed once.  Everything is
deterministic: same sample text and target, same output, byte for byte.

Line counts are ``len(text.splitlines())``: the final empty line QEMU prints after the
last section counts as a line, as ``wc -l`` counts it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Pre70", "make_pre70", "split_blocks"]

_CPU_MEMORY = re.compile(r"^address-space: cpu-memory-(\d+)$")


@dataclass(frozen=True)
class Pre70:
    text: str
    lines: int
    added: int  # cpu-memory-N address spaces added
    first_cpu: int  # N of the first added one
    ungrouped: int  # headings that shared a tree in the sample and now have their own
    truncated_last: bool  # the last added tree is a prefix of 'system' (exact mode)
    last_tree_lines: int  # lines of the last added tree
    system_lines: int  # lines of the 'system' tree
    source_lines: int


def split_blocks(text: str) -> list[tuple[list[str], list[str]]]:
    """(headings, body) per block; blocks end at an empty line (QEMU's layout)."""
    blocks: list[tuple[list[str], list[str]]] = []
    heads: list[str] = []
    body: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            if heads or body:
                blocks.append((heads, body))
            heads, body = [], []
        elif line.startswith(("address-space: ", "memory-region: ")):
            if body:  # a heading with no empty line before it
                blocks.append((heads, body))
                heads, body = [], []
            heads.append(line)
        else:
            body.append(line)
    if heads or body:
        blocks.append((heads, body))
    return blocks


def _is_system_tree(body: list[str]) -> bool:
    return bool(body) and body[0].rstrip().endswith("): system")


def make_pre70(sample: str, target_lines: int, exact: bool = False, render: bool = True) -> Pre70:
    """The sample in the pre-7.0 layout, grown with ``cpu-memory-N`` address spaces.

    Without ``exact``, whole copies of the ``system`` tree are added until the dump has
    at least ``target_lines`` lines.  With ``exact``, the last added tree is cut short
    (a prefix of a tree by lines is still a well-formed tree) so the dump has exactly
    ``target_lines`` lines.  The sample's line ending (CRLF from the HMP monitor, or LF)
    is kept.  With ``render=False`` only the figures are computed (``text`` is empty).
    """
    eol = "\r\n" if "\r\n" in sample else "\n"
    blocks = split_blocks(sample)
    as_blocks = [b for b in blocks if b[0] and b[0][0].startswith("address-space: ")]
    mr_blocks = [b for b in blocks if b[0] and b[0][0].startswith("memory-region: ")]
    if len(as_blocks) + len(mr_blocks) != len(blocks):
        raise ValueError("sample has lines outside address-space/memory-region blocks")
    if any(len(h) > 1 for h, _ in mr_blocks):
        raise ValueError("sample has grouped memory-region headings")
    system = next((b for b in as_blocks if _is_system_tree(b[1])), None)
    if system is None:
        raise ValueError("sample has no address space whose root is 'system'")
    cpus = [int(m.group(1)) for h, _ in as_blocks for x in h if (m := _CPU_MEMORY.match(x))]
    first_cpu = max(cpus) + 1 if cpus else 0

    def emit(out: list[str], heading: str, body: list[str]) -> None:
        out.append(heading)
        out.extend(body)
        out.append("")

    before: list[str] = []  # address spaces up to and including the system block
    after: list[str] = []  # the other address spaces, then the memory-region sections
    ungrouped = 0
    dest = before
    for heads, body in as_blocks:
        ungrouped += len(heads) - 1
        for h in heads:
            emit(dest, h, body)
        if (heads, body) is system:
            dest = after
    for heads, body in mr_blocks:
        emit(after, heads[0], body)

    tree = system[1]
    per_copy = len(tree) + 2  # heading + tree + empty line
    base = len(before) + len(after)
    if target_lines < base:
        raise ValueError(f"target {target_lines} is below the un-grouped sample ({base})")
    missing = target_lines - base
    added: list[str] = []
    truncated = False
    last = len(tree)
    if exact:
        full, rest = divmod(missing, per_copy)
        if rest and rest < 3:  # a tree needs a heading, a line and the empty line
            if full == 0:
                raise ValueError(f"cannot add exactly {missing} lines")
            full -= 1
            rest += per_copy
        n = first_cpu
        for _ in range(full):
            emit(added, f"address-space: cpu-memory-{n}", tree)
            n += 1
        if rest:
            emit(added, f"address-space: cpu-memory-{n}", tree[: rest - 2])
            truncated = rest - 2 < len(tree)
            last = rest - 2
            n += 1
        count = n - first_cpu
    else:
        count = -(-missing // per_copy)
        for n in range(first_cpu, first_cpu + count):
            emit(added, f"address-space: cpu-memory-{n}", tree)

    lines = before + added + after
    nlines = len(lines)
    text = eol.join(lines) + eol if render else ""
    assert not render or len(text.splitlines()) == nlines
    assert not exact or nlines == target_lines
    return Pre70(
        text,
        nlines,
        count,
        first_cpu,
        ungrouped,
        truncated,
        last,
        len(tree),
        len(sample.splitlines()),
    )


if __name__ == "__main__":  # python3 benchmarks/make_pre70.py SAMPLE LINES > out.txt
    import sys

    with open(sys.argv[1], encoding="utf-8", newline="") as f:
        res = make_pre70(f.read(), int(sys.argv[2]), exact="--exact" in sys.argv)
    sys.stdout.buffer.write(res.text.encode())
    print(
        f"{res.lines} lines, {res.added} cpu-memory-N added from N={res.first_cpu}, "
        f"{res.ungrouped} headings un-grouped",
        file=sys.stderr,
    )
