/** The trace's notes above the diagram: what it could not see, and the forward's error. */

import { h } from "../draw/dom";
import type { WireGraph } from "./wire";

/** One list item per warning (and the error first): never a silent omission. Text only. */
export function graphNotes(graph: WireGraph): HTMLElement {
  const items = graph.warnings.map((w) =>
    h("li", { text: w.module ? `${w.module}: ${w.message}` : w.message }),
  );
  if (graph.error) items.unshift(h("li", { class: "nbviz-error", text: graph.error }));
  return h(
    "ul",
    { class: "nbviz-warnings nbviz-graph-notes", attrs: { hidden: items.length === 0 } },
    ...items,
  );
}
