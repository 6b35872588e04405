/** Messages between the layout client and the layout worker: sizes in, positions out. */

/** One level to lay out: boxes and edges by local index, so identical blocks share a result. */
export interface LayoutRequest {
  /** `c`: keep in the first or last layer (an open group's input and output anchors). */
  children: { w: number; h: number; c?: "first" | "last" }[];
  /** Source and target child indices; label size (0 when none). */
  edges: { s: number; t: number; lw: number; lh: number }[];
}

export interface EdgeRoute {
  /** Polyline as flat x0, y0, x1, y1, ... in the level's coordinates. */
  points: number[];
  /** Label's top-left corner, when the edge has a label. */
  lx: number;
  ly: number;
}

export interface LayoutResult {
  width: number;
  height: number;
  /** Top-left corner per child, by local index. */
  nodes: { x: number; y: number }[];
  edges: EdgeRoute[];
}

export type LayoutCompute = (request: LayoutRequest) => Promise<LayoutResult>;

export type WorkerRequest = { id: number; request: LayoutRequest };
export type WorkerResponse = { id: number; result: LayoutResult } | { id: number; error: string };
