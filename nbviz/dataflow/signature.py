"""Structural signatures of module calls, so that a view can fold runs of identical blocks.

Two calls get the same signature when they have the same class and parameter shapes, the same
sequence of child signatures and ops, and the same edges inside them, with node ids taken
relative to the call. The call index, names and the values flowing through do not count.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Mapping, Sequence

from .graph import Edge, Node


def assign_signatures(
    nodes: Sequence[Node], edges: Sequence[Edge], keys: Mapping[int, str]
) -> None:
    """Sets `sig` on every module node; `keys[node.id]` is its class and parameter shapes."""
    end = [node.id for node in nodes]  # last id inside each node's subtree
    children: list[list[int]] = [[] for _ in nodes]
    for node in reversed(nodes):  # a child's id is larger than its parent's
        if node.parent >= 0:
            end[node.parent] = max(end[node.parent], end[node.id])
            children[node.parent].append(node.id)
    by_dst = sorted(edges, key=lambda e: e.dst)
    dsts = [edge.dst for edge in by_dst]
    for node in reversed(nodes):
        if node.kind != "module":
            continue
        first, last = node.id, end[node.id]
        parts = [keys.get(node.id, node.cls)]
        for child in reversed(children[first]):
            c = nodes[child]
            parts.append(c.sig if c.kind == "module" else f"{c.cls}{c.shape}")
        lo, hi = bisect.bisect_left(dsts, first), bisect.bisect_right(dsts, last)
        for edge in by_dst[lo:hi]:
            src = edge.src - first if first <= edge.src <= last else "in"
            parts.append(f"{src}>{edge.dst - first}{edge.shape}{edge.dtype}")
        digest = hashlib.blake2b("|".join(parts).encode(), digest_size=8)
        node.sig = digest.hexdigest()
