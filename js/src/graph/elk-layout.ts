/**
 * The layout computation: one level as an ELK layered graph, top to bottom. Runs inside the
 * layout worker (and in process under vitest); never on the widget's main thread.
 */

import ELK from "elkjs/lib/elk.bundled.js";
import type { ElkExtendedEdge, ElkNode } from "elkjs/lib/elk-api";
import type { LayoutCompute, LayoutRequest, LayoutResult } from "./layout-types";

const OPTIONS: Record<string, string> = {
  "elk.algorithm": "layered",
  "elk.direction": "DOWN",
  "elk.edgeRouting": "POLYLINE",
  "elk.spacing.nodeNode": "24",
  "elk.layered.spacing.nodeNodeBetweenLayers": "36",
  "elk.spacing.edgeLabel": "2",
  "elk.edgeLabels.inline": "false",
  "elk.layered.considerModelOrder.strategy": "NODES_AND_EDGES",
  "elk.layered.nodePlacement.strategy": "BRANDES_KOEPF",
  "elk.padding": "[top=8,left=8,bottom=8,right=8]",
};

export function toElk(request: LayoutRequest): ElkNode {
  const edges: ElkExtendedEdge[] = request.edges.map((e, i) => ({
    id: `e${i}`,
    sources: [`c${e.s}`],
    targets: [`c${e.t}`],
    // ELK places a label only when it has text; the text itself does not matter here
    ...(e.lw > 0 ? { labels: [{ id: `l${i}`, text: "label", width: e.lw, height: e.lh }] } : {}),
  }));
  return {
    id: "root",
    layoutOptions: OPTIONS,
    children: request.children.map((c, i) => ({
      id: `c${i}`,
      width: c.w,
      height: c.h,
      ...(c.c === undefined
        ? {}
        : {
            layoutOptions: {
              "elk.layered.layering.layerConstraint": c.c === "first" ? "FIRST" : "LAST",
            },
          }),
    })),
    edges,
  };
}

export function fromElk(request: LayoutRequest, out: ElkNode): LayoutResult {
  const byId = new Map((out.children ?? []).map((c) => [c.id, c]));
  const nodes = request.children.map((_, i) => {
    const c = byId.get(`c${i}`);
    return { x: c?.x ?? 0, y: c?.y ?? 0 };
  });
  const edgeById = new Map((out.edges ?? []).map((e) => [e.id, e as ElkExtendedEdge]));
  const edges = request.edges.map((_, i) => {
    const e = edgeById.get(`e${i}`);
    const points: number[] = [];
    for (const s of e?.sections ?? []) {
      points.push(s.startPoint.x, s.startPoint.y);
      for (const b of s.bendPoints ?? []) points.push(b.x, b.y);
      points.push(s.endPoint.x, s.endPoint.y);
    }
    const label = e?.labels?.[0];
    return { points, lx: label?.x ?? Number.NaN, ly: label?.y ?? Number.NaN };
  });
  return { width: out.width ?? 0, height: out.height ?? 0, nodes, edges };
}

/** An ELK instance running in this thread (ELK's own fake worker). */
export function createElkCompute(): LayoutCompute {
  const elk = new ELK();
  return async (request) => fromElk(request, await elk.layout(toElk(request)));
}
