/**
 * Pure functions over the wire graph: an index (children per group, ancestors), folds of
 * repeated blocks, and the visible graph for a given expansion state. No DOM.
 */

import type { WireGraph, WireNode } from "./wire";

/**
 * Groups (and the top level) with more children than this show them in pages of this many,
 * each a box that opens on its own: one click never lays out thousands of boxes.
 */
export const PAGE_SIZE = 1000;

/** The top level, as a group id. */
export const ROOT = -1;
/** The top level, as a box id. */
export const ROOT_BOX = "root";

/** A run of consecutive sibling modules with the same signature, each feeding the next. */
export interface Fold {
  /** Stable across runs of the same model: the first member's name and call index. */
  key: string;
  parent: number;
  members: number[];
}

export interface GraphIndex {
  graph: WireGraph;
  /** Node by id (ids are dense; a missing id is undefined). */
  nodes: (WireNode | undefined)[];
  /** Sanitised parent per node: ROOT where missing, not a module, or cyclic. */
  parent: Int32Array;
  /** Children per group id (ROOT for the top level), in id (execution) order. */
  children: Map<number, number[]>;
  /** Fold per member id. */
  foldOf: Map<number, Fold>;
  folds: Fold[];
}

export function isGroup(index: GraphIndex, id: number): boolean {
  return id !== ROOT && (index.children.get(id)?.length ?? 0) > 0;
}

/** Enclosing groups of a node, nearest first. */
export function ancestors(index: GraphIndex, id: number): number[] {
  const out: number[] = [];
  for (let p = index.parent[id] ?? ROOT; p !== ROOT; p = index.parent[p] ?? ROOT) out.push(p);
  return out;
}

function sanitiseParents(nodes: (WireNode | undefined)[]): Int32Array {
  const n = nodes.length;
  const parent = new Int32Array(n).fill(ROOT);
  for (let i = 0; i < n; i++) {
    const p = nodes[i]?.parent ?? ROOT;
    if (Number.isInteger(p) && p >= 0 && p < n && p !== i && nodes[p]?.kind === "module") {
      parent[i] = p;
    }
  }
  // Break cycles: walk up from each node; a walk longer than n means a loop.
  const state = new Uint8Array(n); // 0 unknown, 1 on the current walk, 2 known good
  for (let i = 0; i < n; i++) {
    const walk: number[] = [];
    let j = i;
    while (j !== ROOT && state[j] === 0) {
      state[j] = 1;
      walk.push(j);
      j = parent[j] ?? ROOT;
    }
    if (j !== ROOT && state[j] === 1) parent[j] = ROOT; // j closes a loop: cut it there
    for (const k of walk) state[k] = 2;
  }
  return parent;
}

/** For each edge, the pair of siblings it connects at its endpoints' lowest common ancestor. */
function siblingLinks(index: GraphIndex): Set<string> {
  const links = new Set<string>();
  for (const e of index.graph.edges) {
    if (index.nodes[e.src] === undefined || index.nodes[e.dst] === undefined) continue;
    const up = [e.src, ...ancestors(index, e.src)];
    const down = [e.dst, ...ancestors(index, e.dst)];
    const upSet = new Set(up);
    for (let k = 1; k < down.length + 1; k++) {
      const lca = k < down.length ? (down[k] ?? ROOT) : ROOT;
      if (lca !== ROOT && !upSet.has(lca)) continue;
      const a = lca === ROOT ? up[up.length - 1] : up[up.indexOf(lca) - 1];
      const b = down[k - 1];
      if (a !== undefined && b !== undefined && a !== b) links.add(`${a},${b}`);
      break;
    }
  }
  return links;
}

function findFolds(index: GraphIndex): Fold[] {
  const links = siblingLinks(index);
  const folds: Fold[] = [];
  for (const [parent, kids] of index.children) {
    let run: number[] = [];
    const flush = (): void => {
      if (run.length >= 2) {
        const first = index.nodes[run[0] ?? 0];
        folds.push({ key: `${first?.name ?? ""}#${first?.call ?? 0}`, parent, members: run });
      }
      run = [];
    };
    for (const [i, id] of kids.entries()) {
      if (kids.length > PAGE_SIZE && i % PAGE_SIZE === 0) flush(); // a fold stays in its page
      const node = index.nodes[id];
      const prev = run[run.length - 1];
      const foldable = node?.kind === "module" && node.sig !== "";
      if (!foldable) {
        flush();
        continue;
      }
      if (prev !== undefined && index.nodes[prev]?.sig === node.sig && links.has(`${prev},${id}`)) {
        run.push(id);
      } else {
        flush();
        run = [id];
      }
    }
    flush();
  }
  return folds;
}

export function indexGraph(graph: WireGraph): GraphIndex {
  const n = graph.nodes.reduce((m, node) => Math.max(m, node.id + 1), 0);
  const nodes: (WireNode | undefined)[] = new Array(n);
  for (const node of graph.nodes) {
    if (Number.isInteger(node.id) && node.id >= 0) nodes[node.id] = node;
  }
  const parent = sanitiseParents(nodes);
  const children = new Map<number, number[]>([[ROOT, []]]);
  for (let i = 0; i < n; i++) {
    if (nodes[i] === undefined) continue;
    const p = parent[i] ?? ROOT;
    let list = children.get(p);
    if (list === undefined) {
      list = [];
      children.set(p, list);
    }
    list.push(i);
  }
  const index: GraphIndex = { graph, nodes, parent, children, foldOf: new Map(), folds: [] };
  index.folds = findFolds(index);
  for (const fold of index.folds) for (const m of fold.members) index.foldOf.set(m, fold);
  return index;
}

export type BoxKind = "leaf" | "group" | "open" | "fold" | "page";

/** A page of a group with more than PAGE_SIZE children: children first..first+count-1 of `of`. */
export interface Page {
  /** Its box id, and its key in the `unfolded` set when open: "p:<group id>:<page>". */
  key: string;
  group: number;
  first: number;
  count: number;
  of: number;
}

export const pageKey = (group: number, page: number): string => `p:${group}:${page}`;

/** The page of its parent that holds node `id`, when its parent is paged. */
export function pageOf(index: GraphIndex, id: number): string | undefined {
  const parent = index.parent[id] ?? ROOT;
  const kids = index.children.get(parent) ?? [];
  if (kids.length <= PAGE_SIZE) return undefined;
  return pageKey(parent, Math.floor(kids.indexOf(id) / PAGE_SIZE));
}

export interface Box {
  /** "n<node id>", or "f:<fold key>" for a folded run. */
  id: string;
  kind: BoxKind;
  /** The node drawn (a fold's first member). */
  node: number;
  /** The containing box: ROOT_BOX, an open group's box or an open page's. */
  parent: string;
  fold?: Fold;
  /** Set on a page's box (kind "page", or "open" when opened). */
  page?: Page;
}

export interface VisibleEdge {
  src: string;
  dst: string;
  /** Wire edges merged into this one. */
  count: number;
  shape: number[];
  dtype: string;
}

/** One laid-out level: the direct children of the root or of an open group. */
export interface Level {
  id: string;
  children: string[];
  /**
   * Visible edges lifted to this level's children (src, dst direct children, or ANCHOR_IN /
   * ANCHOR_OUT for edges entering or leaving an open group), merged.
   */
  edges: VisibleEdge[];
}

export interface VisibleGraph {
  boxes: Map<string, Box>;
  levels: Map<string, Level>;
  /** Edges between the visible (not open) boxes, merged, with internal ones dropped. */
  edges: VisibleEdge[];
  /** Node id -> the box that shows it (its own, or its nearest collapsed ancestor or fold). */
  boxOf: (string | undefined)[];
}

export const nodeBox = (id: number): string => `n${id}`;
/** Inside an open group, where edges from outside enter and edges to outside leave. */
export const ANCHOR_IN = "@in";
export const ANCHOR_OUT = "@out";

/** The anchors a level's edges use, in layout order (input first). */
export function levelAnchors(level: Level): string[] {
  const out: string[] = [];
  if (level.edges.some((e) => e.src === ANCHOR_IN)) out.push(ANCHOR_IN);
  if (level.edges.some((e) => e.dst === ANCHOR_OUT)) out.push(ANCHOR_OUT);
  return out;
}
export const foldBox = (key: string): string => `f:${key}`;

function mergeEdge(map: Map<string, VisibleEdge>, src: string, dst: string, from: VisibleEdge) {
  const key = `${src}>${dst}`;
  const found = map.get(key);
  if (found) found.count += from.count;
  else map.set(key, { src, dst, count: from.count, shape: from.shape, dtype: from.dtype });
}

/**
 * The boxes to draw for an expansion state. Groups are collapsed unless in `expanded` (so the
 * default is the top-level modules); folds are folded unless their key is in `unfolded`.
 */
export function visibleGraph(
  index: GraphIndex,
  expanded: ReadonlySet<number>,
  unfolded: ReadonlySet<string>,
): VisibleGraph {
  const boxes = new Map<string, Box>();
  const levels = new Map<string, Level>();
  const boxOf: (string | undefined)[] = new Array(index.nodes.length);

  const hide = (id: number, box: string): void => {
    const stack = [id];
    while (stack.length > 0) {
      const j = stack.pop() ?? ROOT;
      boxOf[j] = box;
      for (const k of index.children.get(j) ?? []) stack.push(k);
    }
  };

  const visit = (group: number, container: string): void => {
    const kids = index.children.get(group) ?? [];
    if (kids.length <= PAGE_SIZE) {
      fill(kids, container);
      return;
    }
    const pages: Level = { id: container, children: [], edges: [] };
    levels.set(container, pages);
    for (let first = 0; first < kids.length; first += PAGE_SIZE) {
      const members = kids.slice(first, first + PAGE_SIZE);
      const key = pageKey(group, first / PAGE_SIZE);
      const page: Page = { key, group, first, count: members.length, of: kids.length };
      const open = unfolded.has(key);
      boxes.set(key, {
        id: key,
        kind: open ? "open" : "page",
        node: kids[first] ?? group,
        parent: container,
        page,
      });
      pages.children.push(key);
      if (open) fill(members, key);
      else for (const id of members) hide(id, key);
    }
  };

  /** The level `container` showing nodes `ids`. */
  const fill = (ids: readonly number[], container: string): void => {
    const level: Level = { id: container, children: [], edges: [] };
    levels.set(container, level);
    const add = (box: Box): void => {
      boxes.set(box.id, box);
      level.children.push(box.id);
    };
    for (const id of ids) {
      const fold = index.foldOf.get(id);
      if (fold !== undefined && !unfolded.has(fold.key)) {
        const id0 = foldBox(fold.key);
        if (!boxes.has(id0)) add({ id: id0, kind: "fold", node: id, parent: container, fold });
        hide(id, id0);
      } else if (isGroup(index, id) && expanded.has(id)) {
        add({ id: nodeBox(id), kind: "open", node: id, parent: container });
        boxOf[id] = nodeBox(id);
        visit(id, nodeBox(id));
      } else {
        add({
          id: nodeBox(id),
          kind: isGroup(index, id) ? "group" : "leaf",
          node: id,
          parent: container,
        });
        hide(id, nodeBox(id));
      }
    }
  };
  visit(ROOT, ROOT_BOX);

  const merged = new Map<string, VisibleEdge>();
  for (const e of index.graph.edges) {
    const src = boxOf[e.src];
    const dst = boxOf[e.dst];
    if (src === undefined || dst === undefined || src === dst) continue;
    mergeEdge(merged, src, dst, { src, dst, count: 1, shape: e.shape, dtype: e.dtype });
  }
  const edges = [...merged.values()];

  const chain = (box: string): string[] => {
    const out = [box];
    for (
      let b = boxes.get(box)?.parent;
      b !== undefined && b !== ROOT_BOX;
      b = boxes.get(b)?.parent
    ) {
      out.push(b);
    }
    out.push(ROOT_BOX);
    return out;
  };
  const perLevel = new Map<string, Map<string, VisibleEdge>>();
  const add = (level: string, a: string, b: string, e: VisibleEdge): void => {
    let map = perLevel.get(level);
    if (map === undefined) {
      map = new Map();
      perLevel.set(level, map);
    }
    mergeEdge(map, a, b, e);
  };
  for (const e of edges) {
    const up = chain(e.src);
    const down = chain(e.dst);
    const upSet = new Set(up);
    const k = down.findIndex((b) => upSet.has(b));
    const lca = down[k] ?? ROOT_BOX;
    const ia = up.indexOf(lca) - 1;
    const a = up[ia];
    const b = down[k - 1];
    if (a === undefined || b === undefined) continue;
    add(lca, a, b, e);
    // inside each open group the edge leaves, it runs to the group's output anchor; inside
    // each one it enters, from the group's input anchor
    for (let j = 1; j <= ia; j++) add(up[j] ?? ROOT_BOX, up[j - 1] ?? "", ANCHOR_OUT, e);
    for (let j = 1; j <= k - 1; j++) add(down[j] ?? ROOT_BOX, ANCHOR_IN, down[j - 1] ?? "", e);
  }
  for (const [id, map] of perLevel) {
    const level = levels.get(id);
    if (level) level.edges = [...map.values()];
  }
  return { boxes, levels, edges, boxOf };
}
