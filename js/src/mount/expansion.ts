/**
 * The structure diagram's expansion state in the shared state model (`expanded`, `unfolded`:
 * lists of "name#call" keys), so the kernel sees what the diagram shows (`viz.export`) and can
 * set it. Keys, unlike node ids, name the same module call in every trace of the model.
 */

import { type GraphIndex, isGroup } from "../graph/model";
import type { Expansion, GraphView, GraphViewOptions } from "../graph/render";
import { type Cleanup, type StateModel, watch } from "./common";

/** A module call's key: "name#call", as `nbviz.dataflow.diagram.group_key` writes it. */
export function groupKey(index: GraphIndex, id: number): string {
  const node = index.nodes[id];
  return `${node?.name ?? ""}#${node?.call ?? 0}`;
}

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];
}

/** The state's expansion as node ids and fold keys; keys this graph lacks are ignored. */
export function readExpansion(state: StateModel, index: GraphIndex): Expansion {
  const open = new Set(strings(state.get("expanded")));
  const expanded = new Set<number>();
  for (const id of index.children.keys()) {
    if (isGroup(index, id) && open.has(groupKey(index, id))) expanded.add(id);
  }
  return { expanded, unfolded: new Set(strings(state.get("unfolded"))) };
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  const set = new Set(a);
  return a.length === b.length && b.every((x) => set.has(x));
}

/** Writes the diagram's expansion to the state, unless the state already says the same. */
export function writeExpansion(state: StateModel, index: GraphIndex, next: Expansion): void {
  const expanded = [...next.expanded].map((id) => groupKey(index, id)).sort();
  const unfolded = [...next.unfolded].sort();
  const changed =
    !sameSet(expanded, strings(state.get("expanded"))) ||
    !sameSet(unfolded, strings(state.get("unfolded")));
  if (!changed) return;
  state.set("expanded", expanded);
  state.set("unfolded", unfolded);
  state.save_changes();
}

/** True when the state names the same open groups and folds as `current`. */
export function sameExpansion(state: StateModel, index: GraphIndex, current: Expansion): boolean {
  const read = readExpansion(state, index);
  const ids = (s: ReadonlySet<number>) => [...s].map(String);
  return (
    sameSet(ids(read.expanded), ids(current.expanded)) &&
    sameSet([...read.unfolded], [...current.unfolded])
  );
}

/** Options for `createGraphView`: start from the state's expansion, write back each change. */
export function expansionOptions(
  state: StateModel,
): Pick<GraphViewOptions, "initial" | "onExpansion"> {
  return {
    initial: (index) => readExpansion(state, index),
    onExpansion: (next, index) => writeExpansion(state, index, next),
  };
}

/** Applies expansions set from the kernel (`viz.expanded = [...]`) to the diagram. */
export function followExpansion(state: StateModel, view: GraphView, cleanup: Cleanup): void {
  watch(
    state,
    ["expanded", "unfolded"],
    () => {
      const index = view.index;
      if (!sameExpansion(state, index, view.expansion())) {
        void view.setExpansion(readExpansion(state, index));
      }
    },
    cleanup,
  );
}
