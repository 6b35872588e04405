import type { AnyModel, RenderProps } from "@anywidget/types";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { ViewTraits } from "../src/protocol";
import structure from "../src/structure";
import { FakeModel, flush, sampleLayers } from "./fixtures";
import resnet from "./fixtures/resnet.json";

// jsdom has no Worker: the diagram lays out with ELK in process.
vi.mock("../src/graph/layout", async (importOriginal) => {
  const actual = await importOriginal<typeof import("../src/graph/layout")>();
  const { createElkCompute } = await import("../src/graph/elk-layout");
  return { ...actual, createLayoutEngine: () => actual.createLayoutEngine(createElkCompute()) };
});

const HOSTILE = "<img src=x onerror=alert(1)>";

function graphWithWarning(): Record<string, unknown> {
  return {
    ...resnet,
    warnings: [{ kind: "not_run", module: HOSTILE, message: "registered but never called" }],
    error: null,
  };
}

async function mountStructure(graph: Record<string, unknown> | null) {
  const state = new FakeModel({
    layers: sampleLayers(),
    selected: null,
    warnings: [],
    outputs: {},
    graph,
    protocol_version: 1,
  });
  const model = new FakeModel({ state: "IPY_MODEL_s", view: "structure" });
  model.models.set("s", state);
  const el = document.createElement("div");
  document.body.append(el);
  await structure.render({
    model: model as unknown as AnyModel<ViewTraits>,
    el,
    signal: new AbortController().signal,
  } as unknown as RenderProps<ViewTraits>);
  await flush();
  return { el, model, state };
}

function tabs(el: HTMLElement): string[] {
  return [...el.querySelectorAll<HTMLButtonElement>(".nbviz-tab")].map((b) => b.textContent ?? "");
}

function click(el: HTMLElement, tab: string): void {
  const button = [...el.querySelectorAll<HTMLButtonElement>(".nbviz-tab")].find(
    (b) => b.textContent === tab,
  );
  if (button === undefined) throw new Error(`no tab ${tab}`);
  button.click();
}

afterEach(() => {
  document.body.replaceChildren();
});

describe("structure view", () => {
  it("without a trace shows the module tree alone", async () => {
    const { el } = await mountStructure(null);
    expect(el.querySelector(".nbviz-tabs")?.hasAttribute("hidden")).toBe(true);
    expect(el.querySelectorAll(".nbviz-row").length).toBeGreaterThan(0);
    expect(el.querySelector(".nbviz-graph")).toBeNull();
  });

  it("with a trace opens on the graph, lists its warnings as text, and switches tabs", async () => {
    const { el } = await mountStructure(graphWithWarning());
    expect(tabs(el)).toEqual(["Graph", "Modules", "Autograd"]);
    expect(el.querySelector(".nbviz-graph-svg")).not.toBeNull();
    const note = el.querySelector(".nbviz-graph-notes li");
    expect(note?.textContent).toBe(`${HOSTILE}: registered but never called`);
    expect(el.querySelector("img")).toBeNull(); // the hostile name stayed text
    click(el, "Modules");
    expect(el.querySelector(".nbviz-graph-svg")).toBeNull();
    expect(el.querySelectorAll(".nbviz-row").length).toBeGreaterThan(0);
    click(el, "Graph");
    expect(el.querySelector(".nbviz-graph-svg")).not.toBeNull();
  });

  it("asks the kernel for the autograd graph once and shows it as an image", async () => {
    const { el, model } = await mountStructure(graphWithWarning());
    click(el, "Autograd");
    expect(model.sent).toHaveLength(1);
    const request = model.sent[0] as { type: string; id: string };
    expect(request.type).toBe("autograd_graph");
    expect(el.querySelector(".nbviz-loading")?.textContent).toContain("autograd");
    const svg = `<svg xmlns="http://www.w3.org/2000/svg"><text>${HOSTILE}</text></svg>`;
    model.emit("msg:custom", { type: "response", id: request.id, ok: true, result: { svg } }, []);
    await flush();
    const img = el.querySelector<HTMLImageElement>("img.nbviz-autograd-img");
    expect(img?.getAttribute("src")).toMatch(/^blob:/);
    click(el, "Graph");
    click(el, "Autograd");
    expect(model.sent).toHaveLength(1); // drawn once, kept
  });

  it("shows a failed autograd request as an error", async () => {
    const { el, model } = await mountStructure(graphWithWarning());
    click(el, "Autograd");
    const request = model.sent[0] as { id: string };
    model.emit(
      "msg:custom",
      { type: "response", id: request.id, ok: false, error: "needs Graphviz's `dot`" },
      [],
    );
    await flush();
    expect(el.querySelector(".nbviz-error")?.textContent).toContain("needs Graphviz's `dot`");
  });
});
