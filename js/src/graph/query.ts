/** Search and neighbourhood over the graph index: pure, no DOM. */

import { ancestors, type GraphIndex, isGroup, ROOT } from "./model";

export interface SearchResult {
  /** Matching node ids, in id order. */
  matches: number[];
  /** Groups to expand so that every match is drawn as its own box. */
  expand: number[];
  /** Fold keys to unfold for the same purpose. */
  unfold: string[];
}

/** Nodes whose name or class contains `query` (case-insensitive), and how to reveal them. */
export function search(index: GraphIndex, query: string): SearchResult {
  const q = query.trim().toLowerCase();
  const matches: number[] = [];
  const expand = new Set<number>();
  const unfold = new Set<string>();
  if (q === "") return { matches, expand: [], unfold: [] };
  index.nodes.forEach((node, id) => {
    if (node === undefined) return;
    if (!node.name.toLowerCase().includes(q) && !node.cls.toLowerCase().includes(q)) return;
    matches.push(id);
    for (const a of [id, ...ancestors(index, id)]) {
      if (a !== id) expand.add(a);
      const fold = index.foldOf.get(a);
      if (fold !== undefined) unfold.add(fold.key);
    }
  });
  return {
    matches,
    expand: [...expand].sort((a, b) => a - b),
    unfold: [...unfold].sort(),
  };
}

/** All nodes in the subtree of `id` (itself included). */
export function subtree(index: GraphIndex, id: number): Set<number> {
  const out = new Set<number>();
  const stack = [id];
  while (stack.length > 0) {
    const j = stack.pop() ?? ROOT;
    out.add(j);
    for (const k of index.children.get(j) ?? []) stack.push(k);
  }
  return out;
}

export interface Neighbours {
  inputs: number[];
  outputs: number[];
}

/**
 * The nodes feeding `id` and fed by it, at the finest level. For a group, the edges that cross
 * its boundary.
 */
export function neighbours(index: GraphIndex, id: number): Neighbours {
  const inside = isGroup(index, id) ? subtree(index, id) : new Set([id]);
  const inputs = new Set<number>();
  const outputs = new Set<number>();
  for (const e of index.graph.edges) {
    const s = inside.has(e.src);
    const d = inside.has(e.dst);
    if (d && !s) inputs.add(e.src);
    if (s && !d) outputs.add(e.dst);
  }
  const sorted = (set: Set<number>): number[] => [...set].sort((a, b) => a - b);
  return { inputs: sorted(inputs), outputs: sorted(outputs) };
}

/** The first node of kind "module" with this qualified name (lowest id, i.e. the first call). */
export function findModule(index: GraphIndex, name: string): number {
  return index.nodes.findIndex((n) => n !== undefined && n.kind === "module" && n.name === name);
}
