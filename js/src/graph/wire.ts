/**
 * The dataflow graph as it arrives from Python (`Graph.to_wire()`, format version 1; see
 * notes/graph-format.md). Types only: the contract with nbviz/trace.
 */

export type NodeKind = "input" | "output" | "module" | "op";

export interface WireNode {
  /** Dense 0..N-1, in execution order (a topological order of the dataflow). */
  id: number;
  kind: NodeKind;
  /** Module: qualified name; op: short op name; input/output: argument path. */
  name: string;
  /** Module: class name; op: qualified callable; input/output: "Tensor". */
  cls: string;
  /** Id of the enclosing module-call node, -1 at the top level. */
  parent: number;
  /** Module: call index of this module (0 for the first call). */
  call: number;
  /** Module: parameters it owns, deduplicated, including children; else 0. */
  params: number;
  shape: number[] | null;
  dtype: string;
  /** Module: structural signature, equal for structurally identical calls; "" otherwise. */
  sig: string;
}

export interface WireEdge {
  src: number;
  dst: number;
  shape: number[];
  dtype: string;
}

export interface WireWarning {
  kind: string;
  module: string;
  message: string;
}

export interface WireGraph {
  version: number;
  nodes: WireNode[];
  edges: WireEdge[];
  warnings: WireWarning[];
  error: string | null;
}
