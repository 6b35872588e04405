import { describe, expect, it, vi } from "vitest";
import { createTree, layerBadges, parentIndices, subtreeEnds } from "../src/draw/tree";
import { layer, sampleLayers } from "./fixtures";

function shown(el: HTMLElement): string[] {
  return [...el.querySelectorAll<HTMLElement>(".nbviz-row")]
    .filter((r) => !r.hidden)
    .map((r) => r.dataset.layer ?? "?");
}

function row(el: HTMLElement, name: string): HTMLElement {
  const found = el.querySelector<HTMLElement>(`.nbviz-row[data-layer="${name}"]`);
  if (found === null) throw new Error(`no row ${name}`);
  return found;
}

describe("tree geometry", () => {
  it("computes subtree ends in depth-first order", () => {
    const parents = parentIndices(sampleLayers());
    expect(Array.from(parents)).toEqual([-1, 0, 1, 1, 3, 0]);
    expect(Array.from(subtreeEnds(parents))).toEqual([6, 5, 3, 5, 5, 6]);
  });
});

describe("createTree", () => {
  it("renders one row per layer, expanded to depth 2", () => {
    const tree = createTree({ layers: sampleLayers(), selected: null });
    expect(tree.el.matches(".nbviz.nbviz-structure")).toBe(true);
    expect(tree.el.querySelectorAll(".nbviz-row")).toHaveLength(6);
    // root, children and grandchildren visible; the great-grandchild hidden
    expect(shown(tree.el)).toEqual(["", "features", "features.conv1", "features.conv2", "head"]);
    expect(
      row(tree.el, "features.conv2").querySelector(".nbviz-toggle")?.getAttribute("aria-expanded"),
    ).toBe("false");
    expect(
      row(tree.el, "features").querySelector(".nbviz-toggle")?.getAttribute("aria-expanded"),
    ).toBe("true");
    expect(row(tree.el, "features.conv1").querySelector(".nbviz-toggle")).toBeNull();
  });

  it("shows names, classes, parameter counts and badges", () => {
    const tree = createTree({ layers: sampleLayers(), selected: null });
    const root = row(tree.el, "");
    expect(root.querySelector(".nbviz-name")?.textContent).toBe("(root)");
    expect(root.querySelector(".nbviz-cls")?.textContent).toBe("Net");
    const conv1 = row(tree.el, "features.conv1");
    expect(conv1.querySelector(".nbviz-name")?.textContent).toBe("conv1");
    expect(conv1.querySelector<HTMLElement>(".nbviz-name")?.title).toBe("features.conv1");
    expect(conv1.querySelector(".nbviz-own")?.textContent).toBe("1,234");
    expect(conv1.querySelector(".nbviz-total")?.textContent).toBe("1,234");
    expect(conv1.querySelector(".nbviz-meta")?.textContent).toBe("float32 · cpu");
    expect(row(tree.el, "features.conv2").querySelector(".nbviz-badge-frozen")?.textContent).toBe(
      "frozen",
    );
    expect(tree.el.querySelector(".nbviz-summary")?.textContent).toBe(
      "6 layers · 1,500 parameters",
    );
  });

  it("formats big counts compactly with the exact count in the tooltip", () => {
    const tree = createTree({
      layers: [layer({ name: "", cls: "Big", own_params: 2_359_296, total_params: 23_456_789 })],
      selected: null,
    });
    const total = tree.el.querySelector<HTMLElement>(".nbviz-total");
    expect(total?.textContent).toBe("23.5M");
    expect(total?.title).toContain("23,456,789");
    expect(tree.el.querySelector(".nbviz-own")?.textContent).toBe("2.4M");
  });

  it("collapses and expands with the toggle without selecting", () => {
    const onSelect = vi.fn();
    const tree = createTree({ layers: sampleLayers(), selected: null }, { onSelect });
    const toggle = row(tree.el, "features").querySelector<HTMLButtonElement>(".nbviz-toggle");
    toggle?.click();
    expect(toggle?.getAttribute("aria-expanded")).toBe("false");
    expect(shown(tree.el)).toEqual(["", "features", "head"]);
    expect(onSelect).not.toHaveBeenCalled();
    toggle?.click();
    expect(shown(tree.el)).toEqual(["", "features", "features.conv1", "features.conv2", "head"]);
    row(tree.el, "features.conv2").querySelector<HTMLButtonElement>(".nbviz-toggle")?.click();
    expect(shown(tree.el)).toContain("features.conv2.inner");
    // collapsing the root hides everything below, and re-expanding restores the inner state
    row(tree.el, "").querySelector<HTMLButtonElement>(".nbviz-toggle")?.click();
    expect(shown(tree.el)).toEqual([""]);
    row(tree.el, "").querySelector<HTMLButtonElement>(".nbviz-toggle")?.click();
    expect(shown(tree.el)).toEqual([
      "",
      "features",
      "features.conv1",
      "features.conv2",
      "features.conv2.inner",
      "head",
    ]);
  });

  it("selects on row click and updates only the selection classes", () => {
    const onSelect = vi.fn();
    const tree = createTree({ layers: sampleLayers(), selected: "head" }, { onSelect });
    expect(row(tree.el, "head").classList.contains("is-selected")).toBe(true);
    row(tree.el, "features.conv1").querySelector<HTMLElement>(".nbviz-own")?.click();
    expect(onSelect).toHaveBeenCalledWith("features.conv1");
    const before = row(tree.el, "features.conv1");
    tree.update({ selected: "features.conv1" });
    expect(row(tree.el, "features.conv1")).toBe(before); // same element: no rebuild
    expect(
      [...tree.el.querySelectorAll(".is-selected")].map((e) => e.getAttribute("data-layer")),
    ).toEqual(["features.conv1"]);
    expect(row(tree.el, "head").getAttribute("aria-selected")).toBe("false");
    tree.update({ selected: null });
    expect(tree.el.querySelectorAll(".is-selected")).toHaveLength(0);
  });

  it("expands the ancestors of a hidden selected layer and scrolls the tree to it", async () => {
    const tree = createTree({ layers: sampleLayers(), selected: null });
    row(tree.el, "features").querySelector<HTMLButtonElement>(".nbviz-toggle")?.click();
    expect(row(tree.el, "features.conv2.inner").hidden).toBe(true);
    // jsdom has no layout: the tree box shows y 0..100, the row sits at y 300..320.
    const box = tree.el.querySelector<HTMLElement>(".nbviz-tree");
    if (box === null) throw new Error("no tree box");
    let scrollTop = 0;
    Object.defineProperty(box, "scrollTop", {
      get: () => scrollTop,
      set: (v: number) => {
        scrollTop = v;
      },
    });
    Object.defineProperty(box, "clientHeight", { get: () => 100 });
    box.getBoundingClientRect = () => new DOMRect(0, 0, 200, 100);
    row(tree.el, "features.conv2.inner").getBoundingClientRect = () =>
      new DOMRect(0, 300 - scrollTop, 200, 20);
    const page = vi.fn();
    const original = Element.prototype.scrollIntoView;
    Element.prototype.scrollIntoView = page;
    try {
      tree.update({ selected: "features.conv2.inner" });
      expect(row(tree.el, "features.conv2.inner").hidden).toBe(false);
      expect(row(tree.el, "features.conv2").hidden).toBe(false);
      expect(tree.isExpanded("features")).toBe(true);
      expect(tree.isExpanded("features.conv2")).toBe(true);
      // At the next frame, the tree box alone scrolls (nearest: the row at its bottom edge).
      await vi.waitFor(() => expect(scrollTop).toBe(220));
      expect(page).not.toHaveBeenCalled();
    } finally {
      Element.prototype.scrollIntoView = original;
    }
  });

  it("shows output shapes as a column when the kernel probed a forward", () => {
    const tree = createTree({ layers: sampleLayers(), selected: null });
    expect(tree.el.classList.contains("has-outputs")).toBe(false);
    const before = row(tree.el, "head");
    tree.update({ outputs: { head: ["16×10"], "features.conv1": ["16×8×4×4", "16×8×4×4"] } });
    expect(row(tree.el, "head")).toBe(before); // no rebuild
    expect(tree.el.classList.contains("has-outputs")).toBe(true);
    expect(row(tree.el, "head").querySelector(".nbviz-output")?.textContent).toBe("16×10");
    expect(row(tree.el, "features.conv1").querySelector(".nbviz-output")?.textContent).toBe(
      "16×8×4×4 (2 calls)",
    );
    expect(row(tree.el, "features").querySelector(".nbviz-output")?.textContent).toBe("");
  });

  it("keeps the user's expansion when the layers are replaced", () => {
    const tree = createTree({ layers: sampleLayers(), selected: null });
    tree.setExpanded("features", false);
    tree.update({ layers: sampleLayers() });
    expect(shown(tree.el)).toEqual(["", "features", "head"]);
  });

  it("handles a large model with cheap selection updates", () => {
    const layers = [layer({ name: "", cls: "Big" })];
    for (let i = 0; i < 600; i++)
      layers.push(layer({ name: `block${i}`, cls: "Linear", parent: 0, depth: 1 }));
    const tree = createTree({ layers, selected: null });
    const rows = tree.el.querySelectorAll(".nbviz-row");
    expect(rows).toHaveLength(601);
    for (let i = 0; i < 600; i += 50) tree.update({ selected: `block${i}` });
    expect(tree.el.querySelectorAll(".nbviz-row")[1]).toBe(rows[1]);
    expect(tree.el.querySelectorAll(".is-selected")).toHaveLength(1);
  });

  it("supports keyboard navigation", () => {
    const onSelect = vi.fn();
    const tree = createTree({ layers: sampleLayers(), selected: null }, { onSelect });
    document.body.append(tree.el);
    const press = (key: string) =>
      (document.activeElement ?? document.body).dispatchEvent(
        new KeyboardEvent("keydown", { key, bubbles: true, cancelable: true }),
      );
    row(tree.el, "").focus();
    press("ArrowDown");
    expect(document.activeElement).toBe(row(tree.el, "features"));
    press("ArrowLeft"); // collapse features
    expect(shown(tree.el)).toEqual(["", "features", "head"]);
    press("ArrowDown");
    expect(document.activeElement).toBe(row(tree.el, "head"));
    press("Enter");
    expect(onSelect).toHaveBeenCalledWith("head");
    tree.el.remove();
  });
});

describe("layerBadges", () => {
  it("names frozen, partly frozen, lazy, shared, alias and buffers", () => {
    const kinds = (partial: Parameters<typeof layer>[0]) =>
      layerBadges(layer(partial)).map((b) => b.text);
    expect(kinds({ name: "a", frozen: 5, trainable: 0 })).toEqual(["frozen"]);
    expect(kinds({ name: "a", frozen: 5, trainable: 3 })).toEqual(["partly frozen"]);
    expect(kinds({ name: "a", trainable: 3 })).toEqual([]);
    expect(
      kinds({
        name: "a",
        lazy: true,
        shared: true,
        alias_of: "b.c",
        buffers: ["running_mean", "running_var"],
      }),
    ).toEqual(["lazy", "shared", "alias of b.c", "2 buffers"]);
  });
});
