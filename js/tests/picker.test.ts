import { describe, expect, it, vi } from "vitest";
import { createPicker, filterLayers } from "../src/draw/picker";
import { sampleLayers } from "./fixtures";

const rows = [
  { name: "", cls: "ResNet" },
  { name: "conv1", cls: "Conv2d" },
  { name: "layer1.0.conv1", cls: "Conv2d" },
  { name: "layer1.0.bn1", cls: "BatchNorm2d" },
  { name: "fc", cls: "Linear" },
];

describe("filterLayers", () => {
  it("returns every index for an empty or blank query", () => {
    expect(filterLayers(rows, "")).toEqual([0, 1, 2, 3, 4]);
    expect(filterLayers(rows, "   ")).toEqual([0, 1, 2, 3, 4]);
  });
  it("matches a substring of the name", () => {
    expect(filterLayers(rows, "conv1")).toEqual([1, 2]);
    expect(filterLayers(rows, "layer1.0")).toEqual([2, 3]);
  });
  it("matches a substring of the class name", () => {
    expect(filterLayers(rows, "batchnorm")).toEqual([3]);
    expect(filterLayers(rows, "linear")).toEqual([4]);
    expect(filterLayers(rows, "resnet")).toEqual([0]);
  });
  it("is case-insensitive and trims the query", () => {
    expect(filterLayers(rows, "  CONV2D ")).toEqual([1, 2]);
    expect(filterLayers(rows, "FC")).toEqual([4]);
  });
  it("matches name or class, not both required", () => {
    expect(filterLayers(rows, "bn")).toEqual([3]);
    expect(filterLayers(rows, "2d")).toEqual([1, 2, 3]);
  });
  it("returns nothing when nothing matches", () => {
    expect(filterLayers(rows, "transformer")).toEqual([]);
  });
});

/** Names of the items in the list: non-matching items are not in the DOM at all. */
function visibleNames(el: HTMLElement): string[] {
  return [...el.querySelectorAll<HTMLElement>(".nbviz-item")].map((i) => i.dataset.layer ?? "?");
}

describe("createPicker", () => {
  it("lists every layer with name, class and a count", () => {
    const picker = createPicker({ layers: sampleLayers(), selected: null });
    expect(picker.el.classList.contains("nbviz")).toBe(true);
    expect(picker.el.classList.contains("nbviz-picker")).toBe(true);
    const input = picker.el.querySelector<HTMLInputElement>('input[type="search"]');
    expect(input?.placeholder).toBe("Search layers");
    expect(visibleNames(picker.el)).toEqual([
      "",
      "features",
      "features.conv1",
      "features.conv2",
      "features.conv2.inner",
      "head",
    ]);
    const root = picker.el.querySelector('[data-layer=""]');
    expect(root?.querySelector(".nbviz-name")?.textContent).toBe("(root)");
    expect(root?.querySelector(".nbviz-cls")?.textContent).toBe("Net");
    expect(picker.el.querySelector(".nbviz-count")?.textContent).toBe("6 of 6 layers");
  });

  it("filters as the user types", () => {
    const picker = createPicker({ layers: sampleLayers(), selected: null });
    picker.input.value = "Features.CONV2";
    picker.input.dispatchEvent(new Event("input"));
    expect(visibleNames(picker.el)).toEqual(["features.conv2", "features.conv2.inner"]);
    expect(picker.el.querySelector(".nbviz-count")?.textContent).toBe("2 of 6 layers");
    picker.setQuery("zzz");
    expect(visibleNames(picker.el)).toEqual([]);
    expect(picker.el.querySelector<HTMLElement>(".nbviz-empty")?.hidden).toBe(false);
  });

  it("selects on click and marks the selected item", () => {
    const onSelect = vi.fn();
    const picker = createPicker({ layers: sampleLayers(), selected: "head" }, { onSelect });
    expect(picker.el.querySelector(".is-selected")?.getAttribute("data-layer")).toBe("head");
    picker.el.querySelector<HTMLElement>('[data-layer="features.conv1"] .nbviz-cls')?.click();
    expect(onSelect).toHaveBeenCalledWith("features.conv1");
    picker.update({ selected: "features.conv1" });
    const selected = picker.el.querySelectorAll(".is-selected");
    expect(selected).toHaveLength(1);
    expect(selected[0]?.getAttribute("data-layer")).toBe("features.conv1");
    expect(selected[0]?.getAttribute("aria-selected")).toBe("true");
  });

  it("navigates matches with the arrow keys and selects with Enter", () => {
    const onSelect = vi.fn();
    const picker = createPicker({ layers: sampleLayers(), selected: null }, { onSelect });
    const key = (k: string) =>
      picker.input.dispatchEvent(new KeyboardEvent("keydown", { key: k, cancelable: true }));
    picker.setQuery("conv");
    // the first match is active after typing: Enter picks it
    key("Enter");
    expect(onSelect).toHaveBeenLastCalledWith("features.conv1");
    key("ArrowDown");
    expect(picker.el.querySelector(".is-active")?.getAttribute("data-layer")).toBe(
      "features.conv2",
    );
    key("ArrowDown");
    key("ArrowDown"); // stays on the last match
    expect(picker.el.querySelector(".is-active")?.getAttribute("data-layer")).toBe(
      "features.conv2.inner",
    );
    key("ArrowUp");
    key("Enter");
    expect(onSelect).toHaveBeenLastCalledWith("features.conv2");
    expect(picker.el.querySelectorAll(".is-active")).toHaveLength(1);
  });

  it("rebuilds when the layers change", () => {
    const picker = createPicker({ layers: sampleLayers(), selected: "head" });
    picker.update({ layers: sampleLayers().slice(0, 2), selected: "features" });
    expect(visibleNames(picker.el)).toEqual(["", "features"]);
    expect(picker.el.querySelector(".is-selected")?.getAttribute("data-layer")).toBe("features");
    expect(picker.el.querySelector(".nbviz-count")?.textContent).toBe("2 of 2 layers");
  });
});
