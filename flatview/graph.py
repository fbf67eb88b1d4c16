"""The alias-cycle check: containment and alias edges between MemoryRegions.

A region points at its subregions (containment) and, when it is an alias, at its
target.  Containment alone is a tree; only an alias can close a loop, which QEMU's
render_memory_region would follow for ever (memory_region_init_alias forbids it).

A depth-first search with three colours visits each region and each edge once, so
the check is linear in the number of regions (networkx's find_cycle is too, but
building its DiGraph cost more than parsing the dump, and importing networkx more
than starting Python: nothing else here needs a graph library).  The same search
measures the longest path down from the roots (render_memory_region recurses along
it), so the depth bound costs no second walk.
"""

from __future__ import annotations

from .model import MemoryRegion, MtreeDump

__all__ = ["alias_cycle"]


def _edges(mr: MemoryRegion) -> tuple[MemoryRegion, ...]:
    if mr.alias is not None and mr.alias.target is not None:
        return (*mr.subregions, mr.alias.target)
    return mr.subregions


def alias_cycle(dump: MtreeDump) -> tuple[list[MemoryRegion] | None, int]:
    """A loop through alias edges (possibly via containment), from its first region
    back to it, or None; and, when there is none, the number of regions on the longest
    path from a root through subregions and alias targets."""
    # black: regions on the longest path down from each; grey (on the current path): 0
    height: dict[int, int] = {}
    deepest = 0
    for root in dump.roots():
        if id(root) in height:
            continue
        path = [root]
        height[id(root)] = 0
        stack = [iter(_edges(root))]
        below = [0]  # per region on the path: its tallest successor so far
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                stack.pop()
                h = below.pop() + 1
                height[id(path.pop())] = h
                if below:
                    if h > below[-1]:
                        below[-1] = h
                elif h > deepest:
                    deepest = h
                continue
            h = height.get(id(nxt))
            if h is None:
                height[id(nxt)] = 0
                path.append(nxt)
                stack.append(iter(_edges(nxt)))
                below.append(0)
            elif h == 0:  # grey: back on the current path
                return [*path[path.index(nxt) :], nxt], 0
            elif h > below[-1]:
                below[-1] = h
    return None, deepest
