/**
 * The bundle behind the structure view: the dataflow diagram (with its layout worker, which is
 * why this view has a bundle of its own: the other views need not carry ELK), the module tree,
 * and the autograd graph drawn by torchviz in the kernel.
 *
 * Tabs: "Graph" and "Autograd" exist when the kernel traced an example input (`graph` is set);
 * "Modules" always. The diagram and the autograd drawing are made when their tab is first shown.
 */

import { h, viewRoot } from "./draw/dom";
import { createTree } from "./draw/tree";
import { prestartLayoutWorker } from "./graph/layout";
import { graphNotes } from "./graph/notes";
import { createGraphView, type GraphView } from "./graph/render";
import type { WireGraph } from "./graph/wire";
import {
  Cleanup,
  createRender,
  errorMessage,
  layersOf,
  type Mounted,
  outputsOf,
  type StateModel,
  select,
  selectedOf,
  type ViewModel,
  watch,
} from "./mount/common";
import { expansionOptions, followExpansion } from "./mount/expansion";
import { createOverlay } from "./mount/overlay";
import type { ViewKind } from "./protocol";
import { createRpc, type RpcClient } from "./rpc";

// ELK parses in the worker while the state model and the view are set up.
prestartLayoutWorker();

type Tab = "graph" | "modules" | "autograd";

const TAB_LABELS: Record<Tab, string> = {
  graph: "Graph",
  modules: "Modules",
  autograd: "Autograd",
};

function graphOf(state: StateModel): WireGraph | null {
  const graph: unknown = state.get("graph");
  return typeof graph === "object" && graph !== null && Array.isArray((graph as WireGraph).nodes)
    ? (graph as WireGraph)
    : null;
}

function warningsOf(state: StateModel): string[] {
  const warnings: unknown = state.get("warnings");
  return Array.isArray(warnings) ? warnings.filter((w) => typeof w === "string") : [];
}

interface GraphPane {
  el: HTMLElement;
  view: GraphView;
  /** Destroys the diagram and drops the pane's listeners on the state model. */
  dispose(): void;
}

function createGraphPane(state: StateModel, graph: WireGraph, cleanup: Cleanup): GraphPane {
  const view = createGraphView(
    { graph, selected: selectedOf(state) },
    { onSelect: (name) => select(state, name), ...expansionOptions(state) },
  );
  cleanup.add(() => view.destroy());
  followExpansion(state, view, cleanup);
  const search = h("input", {
    class: "nbviz-search",
    attrs: { type: "search", placeholder: "Search name or class", "aria-label": "Search" },
  });
  const found = h("span", { class: "nbviz-summary" });
  let pending = 0;
  search.addEventListener("input", () => {
    const query = search.value.trim();
    const ticket = ++pending;
    view.search(query).then(
      (result) => {
        if (ticket !== pending) return;
        found.textContent = query === "" ? "" : `${result.matches.length} found`;
      },
      (error: unknown) => {
        found.textContent = `search failed: ${errorMessage(error)}`;
      },
    );
  });
  const button = (text: string, action: () => unknown): HTMLButtonElement => {
    const b = h("button", { class: "nbviz-button", text, attrs: { type: "button" } });
    b.addEventListener("click", () => void action());
    return b;
  };
  const toolbar = h(
    "div",
    { class: "nbviz-toolbar" },
    search,
    found,
    button("Fit", () => view.fit()),
    button("Expand all", () => view.expandAll()),
    button("Collapse", () => view.collapseAll()),
  );
  toolbar.append(createOverlay(state, view, cleanup).controls);
  const notes = graphNotes(graph);
  const el = h("div", { class: "nbviz-pane" }, toolbar, notes, view.el);
  return { el, view, dispose: () => cleanup.run() };
}

function createAutogradPane(rpc: RpcClient, cleanup: Cleanup): HTMLElement {
  const status = h("div", { class: "nbviz-loading", text: "Drawing the autograd graph…" });
  const el = h("div", { class: "nbviz-pane nbviz-autograd" }, status);
  rpc.request<{ svg?: unknown }>("autograd_graph").then(
    ({ result }) => {
      if (cleanup.closed) return;
      if (typeof result.svg !== "string") throw new Error("the kernel sent no SVG");
      // As an image: an SVG shown through <img> runs no script, whatever its text contains.
      const url = URL.createObjectURL(new Blob([result.svg], { type: "image/svg+xml" }));
      cleanup.add(() => URL.revokeObjectURL(url));
      const img = h("img", {
        class: "nbviz-autograd-img",
        attrs: { src: url, alt: "Autograd graph of the example's output (torchviz)" },
      });
      el.replaceChildren(img);
    },
    (error: unknown) => {
      if (cleanup.closed) return;
      status.className = "nbviz-error";
      status.setAttribute("role", "alert");
      status.textContent = `Autograd graph unavailable: ${errorMessage(error)}`;
    },
  );
  return el;
}

function mountStructure(state: StateModel, model: ViewModel, cleanup: Cleanup): Mounted {
  const rpc = createRpc(model);
  cleanup.add(() => rpc.dispose());
  const readTree = () => ({
    layers: layersOf(state),
    selected: selectedOf(state),
    warnings: warningsOf(state),
    outputs: outputsOf(state),
  });
  const tree = createTree(readTree(), { onSelect: (name) => select(state, name) });
  watch(
    state,
    ["layers", "selected", "warnings", "outputs"],
    () => tree.update(readTree()),
    cleanup,
  );

  const tabs = h("div", { class: "nbviz-tabs", attrs: { role: "tablist" } });
  const body = h("div", { class: "nbviz-tab-body" });
  const el = viewRoot("structure", tabs, body);
  const panes = new Map<Tab, HTMLElement>([["modules", tree.el]]);
  let graphPane: GraphPane | null = null;
  let shownGraph: WireGraph | null = null;
  let current: Tab = "modules";

  const paneFor = (tab: Tab): HTMLElement => {
    const existing = panes.get(tab);
    if (existing) return existing;
    const graph = graphOf(state);
    let pane: HTMLElement;
    if (tab === "graph" && graph !== null) {
      shownGraph = graph;
      try {
        // The pane's own teardown (diagram, overlay listeners), run on a new trace or at the end.
        const paneCleanup = new Cleanup();
        cleanup.add(() => paneCleanup.run());
        graphPane = createGraphPane(state, graph, paneCleanup);
        pane = graphPane.el;
      } catch (error) {
        // The other tabs stay usable when the diagram cannot be drawn here.
        pane = h("div", {
          class: "nbviz-error",
          attrs: { role: "alert" },
          text: `The diagram could not be drawn: ${errorMessage(error)}`,
        });
      }
    } else if (tab === "autograd") {
      pane = createAutogradPane(rpc, cleanup);
    } else {
      pane = h("div", { class: "nbviz-empty", text: "No example input: nothing was traced." });
    }
    panes.set(tab, pane);
    return pane;
  };

  const show = (tab: Tab): void => {
    current = tab;
    for (const button of tabs.querySelectorAll<HTMLButtonElement>("button")) {
      const on = button.dataset.tab === tab;
      button.setAttribute("aria-selected", String(on));
      button.classList.toggle("is-active", on);
    }
    body.replaceChildren(paneFor(tab));
  };

  const renderTabs = (): void => {
    const traced = graphOf(state) !== null;
    const available: Tab[] = traced ? ["graph", "modules", "autograd"] : ["modules"];
    tabs.replaceChildren(
      ...available.map((tab) => {
        const button = h("button", {
          class: "nbviz-tab",
          text: TAB_LABELS[tab],
          attrs: { type: "button", role: "tab", "data-tab": tab },
        });
        button.addEventListener("click", () => show(tab));
        return button;
      }),
    );
    tabs.hidden = available.length < 2;
    show(
      available.includes(current) && current !== "modules" ? current : (available[0] ?? "modules"),
    );
  };

  watch(
    state,
    ["graph"],
    () => {
      // A new trace: the old diagram and autograd drawing are stale.
      if (graphOf(state) === shownGraph) return;
      panes.delete("graph");
      panes.delete("autograd");
      graphPane?.dispose();
      graphPane = null;
      renderTabs();
    },
    cleanup,
  );
  watch(
    state,
    ["selected"],
    () => {
      void graphPane?.view.select(selectedOf(state));
    },
    cleanup,
  );
  renderTabs();
  return { el };
}

function mount(kind: ViewKind, state: StateModel, model: ViewModel, cleanup: Cleanup): Mounted {
  if (kind !== "structure") throw new Error(`the ${kind} view is drawn by another bundle`);
  return mountStructure(state, model, cleanup);
}

export const render = createRender(["structure"], mount);

export default { render };
