/**
 * The browser's own code for the structure diagram, for tests/test_export_structure.py, which
 * bundles this file with esbuild and runs `reference` in node: boxes, box text and colours for
 * expansion states, overlay colours on a scale, and number formats. Not a vitest suite.
 */

import { formatParams, formatValue } from "../src/format";
import { boxLines, boxText, edgeLabel, nodeColor } from "../src/graph/labels";
import { indexGraph, isGroup, visibleGraph } from "../src/graph/model";
import type { WireGraph } from "../src/graph/wire";
import { createScale } from "../src/panels/scale";
import type { Metric } from "../src/panels/source";

interface Request {
  graph?: WireGraph;
  expansions?: { expanded: string[]; unfolded: string[] }[];
  classes?: string[];
  scales?: { metric: Metric; domain: [number, number]; values: (number | null)[] }[];
  values?: number[];
  params?: number[];
}

export function reference(request: Request): Record<string, unknown> {
  const out: Record<string, unknown> = {};

  if (request.graph !== undefined) {
    const index = indexGraph(request.graph);
    out.diagrams = (request.expansions ?? []).map(({ expanded, unfolded }) => {
      const open = new Set<number>();
      for (const id of index.children.keys()) {
        const node = index.nodes[id];
        if (isGroup(index, id) && expanded.includes(`${node?.name}#${node?.call}`)) open.add(id);
      }
      const vg = visibleGraph(index, open, new Set(unfolded));
      return {
        boxes: [...vg.boxes.values()].map((box) => {
          const node = index.nodes[box.node];
          return {
            id: box.id,
            kind: box.kind,
            parent: box.parent,
            lines: boxLines(boxText(index, box)).map((l) => l.text),
            fill: node ? nodeColor(node) : null,
          };
        }),
        edges: vg.edges.map((e) => [e.src, e.dst, edgeLabel(e.shape, e.dtype, e.count)]),
      };
    });
  }
  out.colors = (request.classes ?? []).map((cls) => nodeColor({ kind: "module", cls }));
  out.scales = (request.scales ?? []).map(({ metric, domain, values }) => {
    const scale = createScale(metric, domain);
    return values.map((v) => {
      const rgb = [0, 0, 0];
      scale.rgbInto(v ?? Number.NaN, rgb, 0);
      return rgb;
    });
  });
  out.values = (request.values ?? []).map(formatValue);
  out.params = (request.params ?? []).map((n) => formatParams(n).text);
  return out;
}
