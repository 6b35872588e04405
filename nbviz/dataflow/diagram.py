"""The structure diagram's boxes, as the browser computes them: a port of js/src/graph/model.ts
(groups, folds of repeated blocks, the visible graph for an expansion state) and of the box text
and colours of js/src/graph/labels.ts and js/src/format.ts.

Kept line for line with the TypeScript so an export shows what the widget shows;
tests/test_export_structure.py runs both on the same inputs. Works on the wire graph
(docs/graph-format.md), so a graph from the widget's state and one from `nbviz.trace` read alike.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final

ROOT: Final = -1
ROOT_BOX: Final = "root"

# labels.ts: fills readable under dark text, picked per module class by hash.
PALETTE: Final = (
    "#cfe3f7",
    "#d7ecd0",
    "#f9dcc4",
    "#e6d7f0",
    "#f6e7a8",
    "#cdeae8",
    "#f5d0dc",
    "#dfe3c3",
    "#d9d4f5",
    "#f3d9b1",
    "#c9e4d6",
    "#ecd5cf",
)
OP_COLOR: Final = "#eeeeee"
IO_COLOR: Final = "#ffffff"

# labels.ts: box text is clipped to what a 280px box holds.
_BOX_MAX_WIDTH: Final = 280
_BOX_PAD_X: Final = 10
MAX_TITLE_CHARS: Final = math.floor((_BOX_MAX_WIDTH - 2 * _BOX_PAD_X - 16) / 7.2)
MAX_TEXT_CHARS: Final = math.floor((_BOX_MAX_WIDTH - 2 * _BOX_PAD_X) / 6.4)


def group_key(node: Mapping[str, Any]) -> str:
    """A module call's stable id: "name#call" (also the key of a fold starting with it)."""
    return f"{node['name']}#{node['call']}"


@dataclass
class Fold:
    key: str
    parent: int
    members: list[int]


@dataclass
class GraphIndex:
    graph: Mapping[str, Any]
    nodes: list[Mapping[str, Any] | None]
    parent: list[int]
    children: dict[int, list[int]]
    fold_of: dict[int, Fold] = field(default_factory=dict)
    folds: list[Fold] = field(default_factory=list)

    def is_group(self, node_id: int) -> bool:
        return node_id != ROOT and len(self.children.get(node_id, ())) > 0

    def ancestors(self, node_id: int) -> list[int]:
        out: list[int] = []
        p = self.parent[node_id]
        while p != ROOT:
            out.append(p)
            p = self.parent[p]
        return out

    def group_keys(self) -> dict[str, int]:
        """Group key -> node id, for every group."""
        return {
            group_key(node): i
            for i, node in enumerate(self.nodes)
            if node is not None and self.is_group(i)
        }


def _sanitise_parents(nodes: list[Mapping[str, Any] | None]) -> list[int]:
    n = len(nodes)
    parent = [ROOT] * n
    for i, node in enumerate(nodes):
        p = ROOT if node is None else node.get("parent", ROOT)
        target = nodes[p] if isinstance(p, int) and 0 <= p < n and p != i else None
        if target is not None and target.get("kind") == "module":
            parent[i] = p
    # Break cycles: a walk that comes back onto itself is cut where it closes.
    state = [0] * n  # 0 unknown, 1 on the current walk, 2 known good
    for i in range(n):
        walk: list[int] = []
        j = i
        while j != ROOT and state[j] == 0:
            state[j] = 1
            walk.append(j)
            j = parent[j]
        if j != ROOT and state[j] == 1:
            parent[j] = ROOT
        for k in walk:
            state[k] = 2
    return parent


def _sibling_links(index: GraphIndex) -> set[tuple[int, int]]:
    """For each edge, the pair of siblings it connects at its ends' lowest common ancestor."""
    links: set[tuple[int, int]] = set()
    n = len(index.nodes)
    for edge in index.graph["edges"]:
        src, dst = edge["src"], edge["dst"]
        if not (0 <= src < n and 0 <= dst < n) or index.nodes[src] is None:
            continue
        if index.nodes[dst] is None:
            continue
        up = [src, *index.ancestors(src)]
        down = [dst, *index.ancestors(dst)]
        up_set = set(up)
        for k in range(1, len(down) + 1):
            lca = down[k] if k < len(down) else ROOT
            if lca != ROOT and lca not in up_set:
                continue
            at = len(up) - 1 if lca == ROOT else up.index(lca) - 1
            a = up[at] if at >= 0 else None
            b = down[k - 1]
            if a is not None and a != b:
                links.add((a, b))
            break
    return links


def _find_folds(index: GraphIndex) -> list[Fold]:
    links = _sibling_links(index)
    folds: list[Fold] = []
    for parent, kids in index.children.items():
        run: list[int] = []

        def flush(run: list[int], parent: int = parent) -> None:
            if len(run) >= 2:
                first = index.nodes[run[0]]
                key = group_key(first) if first is not None else "#0"
                folds.append(Fold(key, parent, run))

        for node_id in kids:
            node = index.nodes[node_id]
            foldable = node is not None and node.get("kind") == "module" and node.get("sig")
            if not foldable or node is None:
                flush(run)
                run = []
                continue
            prev = run[-1] if run else None
            prev_node = None if prev is None else index.nodes[prev]
            if (
                prev is not None
                and prev_node is not None
                and prev_node.get("sig") == node.get("sig")
                and (prev, node_id) in links
            ):
                run.append(node_id)
            else:
                flush(run)
                run = [node_id]
        flush(run)
    return folds


def with_enclosing(index: GraphIndex, keys: Iterable[str]) -> list[str]:
    """Group keys with the keys of the groups around them: what opens them into view."""
    ids = index.group_keys()
    key_of = {i: k for k, i in ids.items()}
    out: list[str] = []
    for key in keys:
        out += [key_of[a] for a in reversed(index.ancestors(ids[key]))] + [key]
    return list(dict.fromkeys(out))


def index_graph(graph: Mapping[str, Any]) -> GraphIndex:
    """Children per group, sanitised parents and folds of a wire graph."""
    ids = [node["id"] for node in graph["nodes"]]
    n = max((i + 1 for i in ids), default=0)
    nodes: list[Mapping[str, Any] | None] = [None] * n
    for node in graph["nodes"]:
        if isinstance(node["id"], int) and node["id"] >= 0:
            nodes[node["id"]] = node
    parent = _sanitise_parents(nodes)
    children: dict[int, list[int]] = {ROOT: []}
    for i in range(n):
        if nodes[i] is not None:
            children.setdefault(parent[i], []).append(i)
    index = GraphIndex(graph, nodes, parent, children)
    index.folds = _find_folds(index)
    for fold in index.folds:
        for member in fold.members:
            index.fold_of[member] = fold
    return index


def default_expanded(index: GraphIndex) -> set[int]:
    """Nothing open, unless the top level is one module wrapping everything (render.ts)."""
    top = index.children.get(ROOT, [])
    groups = [i for i in top if (node := index.nodes[i]) is not None and node["kind"] == "module"]
    if len(groups) == 1 and index.is_group(groups[0]):
        return {groups[0]}
    return set()


@dataclass
class Box:
    id: str
    kind: str  # "leaf", "group", "open", "fold"
    node: int
    parent: str
    fold: Fold | None = None


@dataclass
class VisibleEdge:
    src: str
    dst: str
    count: int
    shape: list[int]
    dtype: str


@dataclass
class VisibleGraph:
    boxes: dict[str, Box]  # in drawing order
    children: dict[str, list[str]]  # per level: ROOT_BOX and each open box
    edges: list[VisibleEdge]


def visible_graph(index: GraphIndex, expanded: set[int], unfolded: set[str]) -> VisibleGraph:
    """The boxes to draw: groups collapsed unless in `expanded`, folds folded unless unfolded."""
    boxes: dict[str, Box] = {}
    levels: dict[str, list[str]] = {}
    box_of: list[str | None] = [None] * len(index.nodes)

    def hide(node_id: int, box: str) -> None:
        stack = [node_id]
        while stack:
            j = stack.pop()
            box_of[j] = box
            stack.extend(index.children.get(j, ()))

    def visit(group: int, container: str) -> None:
        level = levels.setdefault(container, [])

        def add(box: Box) -> None:
            boxes[box.id] = box
            level.append(box.id)

        for node_id in index.children.get(group, ()):
            fold = index.fold_of.get(node_id)
            if fold is not None and fold.key not in unfolded:
                fid = f"f:{fold.key}"
                if fid not in boxes:
                    add(Box(fid, "fold", node_id, container, fold))
                hide(node_id, fid)
            elif index.is_group(node_id) and node_id in expanded:
                add(Box(f"n{node_id}", "open", node_id, container))
                box_of[node_id] = f"n{node_id}"
                visit(node_id, f"n{node_id}")
            else:
                kind = "group" if index.is_group(node_id) else "leaf"
                add(Box(f"n{node_id}", kind, node_id, container))
                hide(node_id, f"n{node_id}")

    visit(ROOT, ROOT_BOX)
    merged: dict[tuple[str, str], VisibleEdge] = {}
    n = len(box_of)
    for edge in index.graph["edges"]:
        src = box_of[edge["src"]] if 0 <= edge["src"] < n else None
        dst = box_of[edge["dst"]] if 0 <= edge["dst"] < n else None
        if src is None or dst is None or src == dst:
            continue
        found = merged.get((src, dst))
        if found is not None:
            found.count += 1
        else:
            merged[(src, dst)] = VisibleEdge(src, dst, 1, list(edge["shape"]), edge["dtype"])
    return VisibleGraph(boxes, levels, list(merged.values()))


# -- text and colour (labels.ts, format.ts) ------------------------------------------------------


def hash_string(text: str) -> int:
    """32-bit FNV-1a of the string's UTF-16 code units, as labels.ts computes it."""
    h = 0x811C9DC5
    units = text.encode("utf-16-le")
    for i in range(0, len(units), 2):
        h ^= units[i] | (units[i + 1] << 8)
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def node_color(kind: str, cls: str) -> str:
    """A box's fill: a module's class picks a palette entry by hash; ops grey, I/O white."""
    if kind == "op":
        return OP_COLOR
    if kind in ("input", "output"):
        return IO_COLOR
    return PALETTE[hash_string(cls) % len(PALETTE)]


def _to_fixed(x: float, digits: int) -> str:
    """JavaScript's `x.toFixed(digits)`: the exact binary value rounded half up."""
    return str(Decimal(x).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


def _to_exponential(x: float, digits: int) -> tuple[str, int]:
    """JavaScript's `x.toExponential(digits)`, as mantissa text and exponent."""
    d = abs(Decimal(x))
    exponent = d.adjusted()
    mantissa = d.scaleb(-exponent).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    if mantissa >= 10:
        exponent += 1
        mantissa = d.scaleb(-exponent).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    return ("-" if x < 0 else "") + str(mantissa), exponent


def format_count(n: float) -> str:
    if math.isnan(n):
        return "NaN"
    if math.isinf(n):
        return "∞" if n > 0 else "−∞"
    rounded = math.floor(n + 0.5)
    grouped = f"{abs(rounded):,}"
    return f"-{grouped}" if rounded < 0 else grouped


_UNITS: Final = ((1e12, "T"), (1e9, "B"), (1e6, "M"))


def format_params(n: float) -> str:
    """A parameter count: exact with separators below a million, "1.2M", "138M", "1.5B" above."""
    exact = format_count(n)
    if not math.isfinite(n) or abs(n) < 1e6:
        return exact
    unit = next(i for i, (size, _) in enumerate(_UNITS) if abs(n) >= size)
    while True:
        size, suffix = _UNITS[unit]
        x = abs(n) / size
        text = _to_fixed(x, 1).removesuffix(".0") if x < 99.95 else _to_fixed(x, 0)
        if text == "1000" and unit > 0:
            unit -= 1  # 999.96M rounds to 1000M: say 1B instead
            continue
        return f"{'-' if n < 0 else ''}{text}{suffix}"


def _trim(mantissa: str) -> str:
    return mantissa.rstrip("0").rstrip(".") if "." in mantissa else mantissa


def format_value(x: float) -> str:
    """A float in at most 4 significant digits, as format.ts's formatValue writes it."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "−Inf"
    if x == 0:
        return "0"
    if 1e-3 <= abs(x) < 1e4:
        mantissa, exponent = _to_exponential(x, 3)
        if exponent < 4:  # toPrecision(4) writes fixed notation
            return _trim(_to_fixed(x, max(0, 3 - exponent)))
    mantissa, exponent = _to_exponential(x, 3)
    return f"{_trim(mantissa)}e{exponent}"


def format_shape(shape: Iterable[int]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def edge_label(shape: list[int], dtype: str, count: int) -> str:
    text = format_shape(shape)
    if dtype not in ("", "float32"):
        text += f" {dtype}"
    if count > 1:
        text += f" ×{count}"
    return text


_EN_DASH: Final = "\u2013"


def name_range(first: str, last: str) -> str:
    """ "blocks.0", "blocks.47" -> "blocks.0" en dash "47"; unrelated names -> "a" en dash "b"."""
    dot = first.rfind(".")
    prefix = first[: dot + 1]
    if dot >= 0 and last.startswith(prefix) and "." not in last[len(prefix) :]:
        return f"{first}{_EN_DASH}{last[len(prefix) :]}"
    return first if first == last else f"{first}{_EN_DASH}{last}"


def local_name(index: GraphIndex, node_id: int) -> str:
    """A node's name relative to its parent group ("conv1" under "layer1.0")."""
    node = index.nodes[node_id]
    if node is None:
        return ""
    p = index.parent[node_id]
    parent = None if p == ROOT else index.nodes[p]
    if node["kind"] == "module" and parent is not None and parent["name"] != "":
        prefix = f"{parent['name']}."
        if node["name"].startswith(prefix):
            return str(node["name"][len(prefix) :])
    return str(node["name"])


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` UTF-16 code units with an ellipsis, as labels.ts's `clip`."""
    units = text.encode("utf-16-le")
    if len(units) <= 2 * limit:
        return text
    return units[: 2 * max(1, limit - 1)].decode("utf-16-le", errors="ignore") + "…"


@dataclass(frozen=True)
class BoxText:
    title: str
    subtitle: str
    detail: str


def box_text(index: GraphIndex, box: Box) -> BoxText:
    """Name (or "Class ×n" for a fold), class (or the fold's name range), shape and parameters."""
    node = index.nodes[box.node]
    if node is None:
        return BoxText("?", "", "")
    shape = format_shape(node["shape"]) if node.get("shape") is not None else ""
    members = box.fold.members if box.fold is not None else [box.node]
    params = sum(int((index.nodes[m] or {}).get("params", 0)) for m in members)
    count = f"{format_params(params)} params" if params else ""
    detail = " · ".join(x for x in (shape, count) if x)
    if box.fold is not None:
        last = index.nodes[members[-1]] or node
        return BoxText(
            f"{node['cls']} ×{len(members)}", name_range(node["name"], last["name"]), detail
        )
    subtitle = "" if node["kind"] == "op" else str(node["cls"])
    return BoxText(local_name(index, box.node), subtitle, detail)


def box_lines(text: BoxText) -> list[str]:
    """The lines a box shows, clipped as in the browser."""
    lines = [clip(text.title, MAX_TITLE_CHARS)]
    lines += [clip(t, MAX_TEXT_CHARS) for t in (text.subtitle, text.detail) if t]
    return lines
