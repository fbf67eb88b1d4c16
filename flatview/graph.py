"""The alias-cycle check: containment and alias edges between MemoryRegions.

A region points at its subregions (containment) and, when it is an alias, at its
target.  Containment alone is a tree; only an alias can close a loop, which QEMU's
render_memory_region would follow for ever (memory_region_init_alias forbids it).

A depth-first search with three colours visits each region and each edge once, so
the check is linear in the number of regions (networkx's find_cycle is too, but
building its DiGraph cost more than parsing the dump, and importing networkx more
than starting Python: nothing else here needs a graph library).
"""

from __future__ import annotations

from collections.abc import Iterator

from .model import MemoryRegion, MtreeDump

__all__ = ["alias_cycle"]


def _edges(mr: MemoryRegion) -> Iterator[MemoryRegion]:
    yield from mr.subregions
    if mr.alias is not None and mr.alias.target is not None:
        yield mr.alias.target


def alias_cycle(dump: MtreeDump) -> list[MemoryRegion] | None:
    """A loop through alias edges (possibly via containment), from its first region
    back to it, or None."""
    done: set[int] = set()
    for root in dump.roots():
        if id(root) in done:
            continue
        path = [root]
        on_path = {id(root): 0}  # grey: on the current path, with its position
        stack = [_edges(root)]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                stack.pop()
                node = path.pop()
                del on_path[id(node)]
                done.add(id(node))
                continue
            key = id(nxt)
            if key in on_path:
                return [*path[on_path[key] :], nxt]
            if key in done:
                continue
            on_path[key] = len(path)
            path.append(nxt)
            stack.append(_edges(nxt))
    return None
