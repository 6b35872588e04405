/**
 * Browser entry for tests/test_browser_zoo.py: draws a wire graph with the structure diagram
 * (its trace notes above it, as the structure pane shows them), clicks its toggles and folds
 * as a user would, and reports what is on screen. Exposes `window.nbvizZoo`.
 */

import { createLayoutEngine } from "../../src/graph/layout";
import { graphNotes } from "../../src/graph/notes";
import { createGraphView, type GraphView } from "../../src/graph/render";
import type { WireGraph } from "../../src/graph/wire";

/** A drawn box: its box id ("n<node id>" or "f:<fold key>"), kind, module name and title. */
interface DrawnBox {
  box: string;
  kind: string;
  name: string | null;
  title: string;
}

interface Report {
  /** The boxes directly inside the level (the root, or an open group). */
  boxes: DrawnBox[];
  edges: number;
  status: string;
  ms: number;
}

// One worker for every graph: the test is about drawing, not about starting workers.
const engine = createLayoutEngine();
let view: GraphView | null = null;
let notes: HTMLElement | null = null;
/** Modules the diagram selected (click or keyboard), latest last. */
const selections: string[] = [];

function host(): HTMLElement {
  const el = document.getElementById("host");
  if (el === null) throw new Error("no #host");
  return el;
}

function current(): GraphView {
  if (view === null) throw new Error("no graph drawn");
  return view;
}

/** Every box fitted into view, so that the culler has created them all. */
async function settle(v: GraphView): Promise<void> {
  await v.idle();
  v.fit();
  await v.idle();
}

function report(level: string, t0: number): Report {
  const v = current();
  const boxes = [
    ...v.el.querySelectorAll(`[data-level="${CSS.escape(level)}"] > .nbviz-boxes > .nbviz-box`),
  ].map((el) => ({
    box: el.getAttribute("data-box") ?? "",
    kind: el.getAttribute("data-kind") ?? "",
    name: el.getAttribute("data-name"),
    title: el.querySelector(".nbviz-box-title")?.textContent ?? "",
  }));
  return {
    boxes,
    edges: v.el.querySelectorAll(".nbviz-edge").length,
    status: v.el.querySelector(".nbviz-graph-status")?.textContent ?? "",
    ms: performance.now() - t0,
  };
}

function boxEl(box: string): Element {
  const el = current().el.querySelector(`[data-box="${CSS.escape(box)}"]`);
  if (el === null) throw new Error(`box ${box} is not drawn`);
  return el;
}

function click(el: Element): void {
  el.dispatchEvent(new MouseEvent("click", { bubbles: true, cancelable: true }));
}

const api = {
  /** Draws `graph` collapsed; reports the root level and the notes' lines. */
  async mount(graph: WireGraph): Promise<Report & { notes: string[]; notesHidden: boolean }> {
    view?.destroy();
    const t0 = performance.now();
    view = createGraphView(
      { graph, selected: null },
      { engine, onSelect: (name) => selections.push(name) },
    );
    notes = graphNotes(graph);
    host().replaceChildren(notes, view.el);
    await settle(view);
    return {
      ...report("root", t0),
      notes: [...notes.querySelectorAll("li")].map((li) => li.textContent ?? ""),
      notesHidden: notes.hidden,
    };
  },

  /** Clicks a group's toggle (▸ opens, ▾ closes); reports its own level (empty when closed). */
  async toggle(box: string): Promise<Report & { kind: string }> {
    const v = current();
    const toggle = boxEl(box).querySelector("[data-toggle]");
    if (toggle === null) throw new Error(`box ${box} has no toggle`);
    const t0 = performance.now();
    click(toggle);
    await settle(v);
    return { ...report(box, t0), kind: boxEl(box).getAttribute("data-kind") ?? "" };
  },

  /** The module selected last by the diagram, or null. */
  selected(): string | null {
    return selections[selections.length - 1] ?? null;
  },

  /** Resolves when the diagram is laid out and drawn. */
  idle(): Promise<void> {
    return current().idle();
  },

  /** Reports a level as drawn now. */
  level(box: string): Report {
    return report(box, performance.now());
  },

  /** Clicks a fold; reports the level that held it. */
  async unfold(box: string, level: string): Promise<Report> {
    const v = current();
    const t0 = performance.now();
    click(boxEl(box));
    await settle(v);
    return report(level, t0);
  },
};

(window as unknown as { nbvizZoo: typeof api }).nbvizZoo = api;
