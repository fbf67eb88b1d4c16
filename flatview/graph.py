"""The region graph: containment and alias edges, as a networkx DiGraph.

Nodes are MemoryRegion objects (hashed by identity); an edge carries ``kind`` =
``"contains"`` (container -> subregion) or ``"alias"`` (alias -> target).  Analyses use
it for reachability; the builder uses it to refuse dumps whose aliases loop, which
QEMU's render_memory_region would never finish.
"""

from __future__ import annotations

import networkx as nx

from .model import MemoryRegion, MtreeDump, walk

__all__ = ["alias_cycle", "region_graph"]


def region_graph(dump: MtreeDump) -> nx.DiGraph:
    g = nx.DiGraph()
    for root in dump.roots():
        for mr, _ in walk(root):
            g.add_node(mr)
            for child in mr.subregions:
                g.add_edge(mr, child, kind="contains")
            if mr.alias is not None and mr.alias.target is not None:
                g.add_edge(mr, mr.alias.target, kind="alias")
    return g


def alias_cycle(dump: MtreeDump) -> list[MemoryRegion] | None:
    """A loop through alias edges (possibly via containment), or None."""
    g = region_graph(dump)
    try:
        edges = nx.find_cycle(g)
    except nx.NetworkXNoCycle:
        return None
    return [u for u, _ in edges] + [edges[-1][1]]
