import { describe, expect, it, vi } from "vitest";
import { createElkCompute } from "../src/graph/elk-layout";
import type { LayoutEngine } from "../src/graph/layout";
import { foldBox, nodeBox } from "../src/graph/model";
import { createGraphView } from "../src/graph/render";
import { GraphBuilder, gpt, resnet } from "./fixtures/graphs";

const fallback = createElkCompute();

function boxes(el: Element): string[] {
  return [...el.querySelectorAll("[data-box]")].map((b) => b.getAttribute("data-box") ?? "");
}

function click(el: Element | null | undefined): void {
  if (!el) throw new Error("nothing to click");
  el.dispatchEvent(new MouseEvent("click", { bubbles: true }));
}

describe("createGraphView", () => {
  it("draws the collapsed top level with names, classes, shapes and parameter counts", async () => {
    const view = createGraphView({ graph: resnet(), selected: null }, { fallback });
    await view.idle();
    expect(view.el.matches(".nbviz.nbviz-graph")).toBe(true);
    const layer1 = view.el.querySelector('[data-box="f:layer1.0#0"]');
    expect(layer1).toBeNull(); // inside the collapsed layer1
    const ids = boxes(view.el);
    expect(ids).toContain(nodeBox(0));
    const conv = view.el.querySelector(`[data-box="${nodeBox(1)}"]`);
    expect(conv?.querySelector(".nbviz-box-title")?.textContent).toBe("conv1");
    expect(conv?.querySelector(".nbviz-box-sub")?.textContent).toBe("Conv2d");
    expect(conv?.querySelector(".nbviz-box-detail")?.textContent).toBe(
      "[1, 16, 32, 32] · 432 params",
    );
    expect(view.el.querySelectorAll(".nbviz-edge").length).toBeGreaterThan(3);
    expect(view.el.querySelector(".nbviz-edge-label")?.textContent).toMatch(/^\[/);
    await new Promise((r) => setTimeout(r, 50)); // the transform is applied on the next frame
    const vp = view.el.querySelector(".nbviz-viewport");
    expect(vp?.getAttribute("transform")).toMatch(/^translate\(.*\) scale\(/);
    view.destroy();
  });

  it("expands a group with its toggle, unfolds a fold, collapses again", async () => {
    const view = createGraphView({ graph: resnet(), selected: null }, { fallback });
    await view.idle();
    const layer1 = view.index.nodes.findIndex((n) => n?.name === "layer1");
    click(view.el.querySelector(`[data-box="${nodeBox(layer1)}"] [data-toggle]`));
    await view.idle();
    const fold = view.el.querySelector(`[data-box="${foldBox("layer1.0#0")}"]`);
    expect(fold?.getAttribute("data-kind")).toBe("fold");
    expect(fold?.querySelector(".nbviz-box-title")?.textContent).toBe("BasicBlock ×2");
    expect(fold?.querySelector(".nbviz-box-sub")?.textContent).toBe("layer1.0–1");
    click(fold);
    await view.idle();
    const b0 = view.index.nodes.findIndex((n) => n?.name === "layer1.0");
    expect(view.el.querySelector(`[data-box="${nodeBox(b0)}"]`)?.getAttribute("data-kind")).toBe(
      "group",
    );
    click(view.el.querySelector(`[data-box="${nodeBox(layer1)}"] > [data-toggle]`));
    await view.idle();
    expect(view.el.querySelector(`[data-box="${nodeBox(b0)}"]`)).toBeNull();
    view.destroy();
  });

  it("reports a click on a module, highlights its neighbours, and shows outside selections", async () => {
    const onSelect = vi.fn();
    const view = createGraphView({ graph: resnet(), selected: null }, { fallback, onSelect });
    await view.idle();
    click(view.el.querySelector(`[data-box="${nodeBox(2)}"] .nbviz-box-title`)); // bn1
    expect(onSelect).toHaveBeenCalledWith("bn1");
    expect(
      view.el.querySelector(`[data-box="${nodeBox(1)}"]`)?.classList.contains("is-neighbour"),
    ).toBe(true);
    expect(
      view.el.querySelector(`[data-box="${nodeBox(2)}"]`)?.classList.contains("is-selected"),
    ).toBe(true);
    // selecting a module inside a collapsed stage and a fold reveals it
    await view.select("layer1.1.conv2");
    const id = view.index.nodes.findIndex((n) => n?.name === "layer1.1.conv2");
    expect(
      view.el.querySelector(`[data-box="${nodeBox(id)}"]`)?.classList.contains("is-selected"),
    ).toBe(true);
    view.destroy();
  });

  it("highlights search matches and reveals them when few", async () => {
    const view = createGraphView({ graph: resnet(), selected: null }, { fallback });
    await view.idle();
    const result = await view.search("DOWNSAMPLE.0");
    expect(result.matches.map((m) => view.index.nodes[m]?.name)).toEqual(["layer2.0.downsample.0"]);
    const box = view.el.querySelector(`[data-box="${nodeBox(result.matches[0] ?? -1)}"]`);
    expect(box?.classList.contains("is-highlighted")).toBe(true);
    view.destroy();
  });

  it("folds GPT blocks and expands everything on request", async () => {
    const view = createGraphView({ graph: gpt(3), selected: null }, { fallback });
    await view.idle();
    expect(boxes(view.el)).toContain(foldBox("blocks.0#0"));
    await view.expandAll();
    // boxes are created when they come into view: fit the whole graph into the view
    view.fit();
    await view.idle();
    expect(boxes(view.el).length).toBe(view.index.nodes.length);
    view.destroy();
  });

  it("zooms with the wheel and pans by dragging, changing only the viewport transform", async () => {
    const view = createGraphView({ graph: resnet(), selected: null }, { fallback });
    await view.idle();
    const t0 = view.getTransform();
    view.el
      .querySelector("svg")
      ?.dispatchEvent(new WheelEvent("wheel", { deltaY: -100, bubbles: true }));
    expect(view.getTransform().k).toBeGreaterThan(t0.k);
    view.setTransform({ k: 0.2, x: 0, y: 0 });
    await new Promise((r) => setTimeout(r, 50));
    expect(view.el.querySelector("svg")?.classList.contains("is-far")).toBe(true);
    view.destroy();
  });

  it("starts over on a new graph, keeping the selection", async () => {
    const view = createGraphView({ graph: resnet(), selected: "fc" }, { fallback });
    await view.idle();
    await view.expandAll();
    view.update({ graph: gpt(2) });
    await view.idle();
    expect(boxes(view.el)).toContain(foldBox("blocks.0#0"));
    expect(view.el.querySelectorAll('[data-kind="open"]')).toHaveLength(0);
    view.update({ selected: "lm_head" });
    await view.idle();
    await new Promise((r) => setTimeout(r, 50));
    const head = view.index.nodes.findIndex((n) => n?.name === "lm_head");
    expect(
      view.el.querySelector(`[data-box="${nodeBox(head)}"]`)?.classList.contains("is-selected"),
    ).toBe(true);
    view.destroy();
  });

  it("draws a small diagram at once while its engine starts, then the engine's layout", async () => {
    let ready = false;
    let start = (): void => {};
    const started = new Promise<void>((resolve) => {
      start = resolve;
    });
    const engine: LayoutEngine = {
      kind: "starting",
      ready: () => ready,
      compute: async (request) => {
        await started;
        return fallback(request);
      },
      dispose() {},
    };
    const view = createGraphView({ graph: gpt(4), selected: null }, { engine });
    const fold = `[data-box="${foldBox("blocks.0#0")}"]`;
    const quick = view.el.querySelector(fold);
    expect(quick).not.toBeNull(); // drawn before the engine has answered
    expect(view.el.querySelector(".nbviz-graph-status")?.textContent).toBe("");
    ready = true;
    start();
    await view.idle();
    const drawn = view.el.querySelector(fold);
    expect(drawn).not.toBeNull();
    expect(drawn).not.toBe(quick); // drawn again where ELK put it
    view.destroy();
  });

  it("keeps user-controlled names as text", async () => {
    const evil = "<img src=x onerror=alert(1)>";
    const g = new GraphBuilder();
    const x = g.node("input", evil, "Tensor", -1, [1]);
    const grp = g.node("module", evil, "<script>alert(2)</script>", -1, [1], { params: 3 });
    g.leaf(`${evil}.${evil}`, evil, grp, [1], 3, x);
    const view = createGraphView({ graph: g.graph, selected: evil }, { fallback });
    await view.idle();
    await view.setExpanded(grp, true);
    expect(view.el.querySelector("img")).toBeNull();
    expect(view.el.querySelector("script")).toBeNull();
    expect(view.el.textContent).toContain(evil);
    expect(
      view.el.querySelector(`[data-box="${nodeBox(grp)}"]`)?.classList.contains("is-selected"),
    ).toBe(true);
    view.destroy();
  });
});
