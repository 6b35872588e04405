"""The module tree of a recorded run, for showing a run file without its model.

A run stores one `LayerMeta` per row of the model's hierarchy (name, class, parent, parameter
names), not the parameters themselves: the tree has the same rows, with no tensors and zero
counts, since sizes, dtypes and devices were not recorded.
"""

from __future__ import annotations

from collections.abc import Sequence

from .hierarchy import Hierarchy, LayerInfo
from .records import LayerMeta


def run_hierarchy(layers: Sequence[LayerMeta]) -> Hierarchy:
    """The hierarchy rows of a run's `layers` table (depth first, as `layer_metas` wrote them).

    A run without layers (a writer given none) gets a lone root row, so the views have a tree.
    """
    metas = list(layers) or [LayerMeta("", "Model", None)]
    index: dict[str, int] = {}
    rows: list[LayerInfo] = []
    for meta in metas:
        parent = -1 if meta.parent is None else index.get(meta.parent, 0 if rows else -1)
        depth = 0 if parent < 0 else rows[parent].depth + 1
        # An alias row (a module reached twice) has the same class under another path: the run
        # does not say which, so every row is shown as its own module.
        index.setdefault(meta.name, len(rows))
        rows.append(
            LayerInfo(
                name=meta.name,
                parent=parent,
                depth=depth,
                cls=meta.cls,
                module="",
                own_params=0,
                total_params=0,
                trainable=0,
                frozen=0,
                buffers=(),
                buffer_elements=0,
                dtypes=(),
                devices=(),
                lazy=False,
                shared=False,
                alias_of=None,
                tensors=(),
            )
        )
    return Hierarchy(layers=tuple(rows), params=())
