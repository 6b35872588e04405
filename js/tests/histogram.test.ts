import { describe, expect, it, vi } from "vitest";
import { decodeHist, decodeStats, type Histogram } from "../src/data";
import {
  createHistogram,
  type ExactState,
  histogramBars,
  histogramSvg,
  occupiedBins,
} from "../src/draw/histogram";
import { histWire, sampleLayers, sampleTensors, statsWire } from "./fixtures";

describe("histogramBars", () => {
  it("scales bars to the plot and the largest count", () => {
    const bars = histogramBars([0, 2, 4, 1], -1, 0.5, { width: 100, height: 50 });
    expect(bars).toEqual([
      { index: 1, x: 25, y: 25, width: 25, height: 25, count: 2, x0: -0.5, x1: 0 },
      { index: 2, x: 50, y: 0, width: 25, height: 50, count: 4, x0: 0, x1: 0.5 },
      { index: 3, x: 75, y: 37.5, width: 25, height: 12.5, count: 1, x0: 0.5, x1: 1 },
    ]);
  });

  it("keeps tiny non-empty bins visible with a minimum height", () => {
    const bars = histogramBars([1000, 1, 0], 0, 1, { width: 30, height: 50 });
    expect(bars.map((b) => [b.index, b.height, b.y])).toEqual([
      [0, 50, 0],
      [1, 1, 49],
    ]);
    const exact = histogramBars([1000, 1], 0, 1, { width: 20, height: 50, minBarHeight: 0 });
    expect(exact[1]?.height).toBeCloseTo(0.05);
  });

  it("draws nothing for an empty or non-finite histogram", () => {
    expect(histogramBars([0, 0, 0], 0, 1, { width: 10, height: 10 })).toEqual([]);
    expect(histogramBars([], 0, 1, { width: 10, height: 10 })).toEqual([]);
    expect(
      histogramBars([Number.NaN, 2], 0, 1, { width: 10, height: 10 }).map((b) => b.index),
    ).toEqual([1]);
  });
});

function histogram64(bins: Record<number, number>, lo: number, width: number): Histogram {
  const counts = new Float64Array(64);
  for (const [i, c] of Object.entries(bins)) counts[Number(i)] = c;
  return { counts, lo, width, sample: 10 };
}

describe("occupiedBins", () => {
  it("spans the first to the last non-empty bin", () => {
    expect(occupiedBins([0, 0, 2, 0, 5, 0])).toEqual({ first: 2, last: 4 });
    expect(occupiedBins([0, Number.NaN, 0])).toBeNull();
  });

  it("crops the drawing to those bins, keeping absolute bin numbers and values", () => {
    const svg = histogramSvg(histogram64({ 20: 1, 23: 3 }, -2, 0.5), "w");
    const rects = [...svg.querySelectorAll("rect.nbviz-bar")];
    expect(rects.map((r) => r.getAttribute("data-bin"))).toEqual(["20", "23"]);
    // 4 bins share the 304-wide plot: 76 each.
    expect(rects.map((r) => r.getAttribute("x"))).toEqual(["0", "228"]);
    expect(svg.querySelector(".nbviz-tick-lo")?.textContent).toBe("8");
    expect(svg.querySelector(".nbviz-tick-hi")?.textContent).toBe("10");
  });
});

describe("histogramSvg", () => {
  const hist = histogram64({ 0: 3, 10: 6, 63: 1 }, -2, 0.0625);

  it("draws one rect per non-empty bin in a 304 x 86 plot area", () => {
    const svg = histogramSvg(hist, "w");
    expect(svg.getAttribute("class")).toBe("nbviz-hist-svg");
    const rects = [...svg.querySelectorAll("rect.nbviz-bar")];
    expect(rects.map((r) => r.getAttribute("data-bin"))).toEqual(["0", "10", "63"]);
    const attrs = (r: Element | undefined) =>
      ["x", "y", "width", "height"].map((a) => r?.getAttribute(a));
    expect(attrs(rects[0])).toEqual(["0", "43", "4.75", "43"]);
    expect(attrs(rects[1])).toEqual(["47.5", "0", "4.75", "86"]);
    expect(attrs(rects[2])).toEqual(["299.25", "71.67", "4.75", "14.33"]);
    expect(rects[1]?.querySelector("title")?.textContent).toBe("[-1.375, -1.313): 6");
    expect(rects[0]?.querySelector("title")?.textContent).toBe("[-2, -1.938): 3");
  });

  it("labels the axis with lo, hi, zero and the max count", () => {
    const svg = histogramSvg(hist, "w");
    expect(svg.querySelector(".nbviz-tick-lo")?.textContent).toBe("-2");
    expect(svg.querySelector(".nbviz-tick-hi")?.textContent).toBe("2");
    expect(svg.querySelector(".nbviz-tick-zero")?.getAttribute("x")).toBe("160");
    expect(svg.querySelector(".nbviz-ymax")?.textContent).toBe("max 6");
  });

  it("is deterministic", () => {
    const serialize = (node: Node) => new XMLSerializer().serializeToString(node);
    expect(serialize(histogramSvg(hist, "w"))).toBe(serialize(histogramSvg(hist, "w")));
  });
});

function setup(overrides: { selected?: string | null; exact?: Map<number, ExactState> } = {}) {
  const tensors = sampleTensors();
  tensors[1] = {
    ...(tensors[1] as (typeof tensors)[number]),
    shared_with: ["other.bias"],
    complex: true,
  };
  const stats = decodeStats(
    statsWire([
      {
        numel: 1234,
        min: -0.5,
        max: 0.75,
        mean: 0.0123456,
        std: 0.25,
        l2: 3,
        zeros: 2,
        nan: 0,
        posinf: 0,
        neginf: 0,
      },
      { numel: 0, zeros: 0, nan: 0, posinf: 0, neginf: 0 },
      {
        numel: 166,
        min: -1,
        max: 1,
        mean: 0,
        std: 1,
        l2: 1,
        zeros: 0,
        nan: 3,
        posinf: 1,
        neginf: 0,
      },
      {
        numel: 100,
        min: 0,
        max: 1,
        mean: 0.5,
        std: 0.1,
        l2: 1,
        zeros: 0,
        nan: 0,
        posinf: 0,
        neginf: 0,
      },
    ]),
    4,
  );
  const hist = decodeHist(
    histWire([
      { counts: [1, 2, 3], lo: -0.5, width: 0.02, sample: 1000 },
      { counts: [], lo: Number.NaN, width: Number.NaN, sample: 0 },
      { counts: [0, 5], lo: -1, width: 0.03125, sample: 162 },
      { counts: [100], lo: 0, width: 1 / 64, sample: 100 },
    ]),
    4,
  );
  const onExact = vi.fn();
  const onSelect = vi.fn();
  const view = createHistogram(
    {
      layers: sampleLayers(),
      tensors,
      stats,
      hist,
      selected: overrides.selected === undefined ? "features.conv1" : overrides.selected,
      exact: overrides.exact ?? new Map(),
    },
    { onExact, onSelect },
  );
  return { view, onExact, onSelect, el: view.el };
}

function card(el: HTMLElement, name: string): HTMLElement {
  const found = el.querySelector<HTMLElement>(`.nbviz-hist-card[data-tensor="${name}"]`);
  if (found === null) throw new Error(`no card ${name}`);
  return found;
}

describe("createHistogram", () => {
  it("asks for a selection when there is none", () => {
    const { el } = setup({ selected: null });
    expect(el.matches(".nbviz.nbviz-histogram")).toBe(true);
    expect(el.querySelector(".nbviz-hist-title")?.textContent).toBe("Select a layer");
    expect(el.querySelectorAll(".nbviz-hist-card")).toHaveLength(0);
  });

  it("shows a card per own parameter with name, shape, dtype, chart and stats", () => {
    const { el } = setup();
    const title = el.querySelector(".nbviz-hist-title");
    expect(title?.querySelector(".nbviz-name")?.textContent).toBe("features.conv1");
    expect(title?.querySelector(".nbviz-cls")?.textContent).toBe("Conv2d");
    expect(
      [...el.querySelectorAll(".nbviz-hist-card")].map((c) => c.getAttribute("data-tensor")),
    ).toEqual(["features.conv1.weight", "features.conv1.bias"]);
    const weight = card(el, "features.conv1.weight");
    expect(weight.querySelector(".nbviz-hist-name")?.textContent).toBe("weight");
    expect(weight.querySelector(".nbviz-hist-shape")?.textContent).toBe("[2, 617]");
    expect(weight.querySelector(".nbviz-hist-dtype")?.textContent).toBe("float32 · cpu");
    expect(weight.querySelectorAll("svg.nbviz-hist-svg rect.nbviz-bar")).toHaveLength(3);
    const value = (stat: string) =>
      weight.querySelector(`.nbviz-stats [data-stat="${stat}"]`)?.textContent;
    expect(value("min")).toBe("-0.5");
    expect(value("max")).toBe("0.75");
    expect(value("mean")).toBe("0.01235");
    expect(value("std")).toBe("0.25");
    expect(value("zeros")).toBe("2");
    expect(value("nan")).toBe("0");
    expect([...weight.querySelectorAll(".nbviz-stats th")].map((th) => th.textContent)).toEqual([
      "min",
      "max",
      "mean",
      "std",
      "zeros",
      "NaN",
      "+Inf",
      "−Inf",
    ]);
    expect(weight.querySelectorAll(".is-bad")).toHaveLength(0);
  });

  it("marks sampled histograms and asks for the exact one on click", () => {
    const { el, onExact } = setup();
    const weight = card(el, "features.conv1.weight");
    expect(weight.querySelector(".nbviz-sampled")?.textContent).toBe(
      "sampled: 1,000 of 1,234 elements exact",
    );
    weight.querySelector<HTMLButtonElement>("button.nbviz-exact")?.click();
    expect(onExact).toHaveBeenCalledWith(0);
    // the empty bias is not sampled, complex, and shared
    const bias = card(el, "features.conv1.bias");
    expect(bias.querySelector(".nbviz-sampled")).toBeNull();
    expect(bias.querySelector(".nbviz-hist-empty")?.textContent).toBe("no finite values to plot");
    expect(bias.querySelector(".nbviz-badge-complex")?.textContent).toBe("complex: magnitude");
    expect(bias.querySelector(".nbviz-shared")?.textContent).toBe("shared with other.bias");
  });

  it("offers no exact count when nothing finite was counted", () => {
    const { view, el } = setup();
    const hist = decodeHist(histWire([{ counts: [], sample: 0 }, {}, {}, {}]), 4);
    view.update({ hist });
    const weight = card(el, "features.conv1.weight");
    expect(weight.querySelector(".nbviz-sampled")).toBeNull();
    expect(weight.querySelector(".nbviz-hist-empty")?.textContent).toBe("no finite values to plot");
    expect(weight.querySelector('[data-stat="min"]')?.textContent).toBe("-0.5");
  });

  it("shows loading, exact and error states", () => {
    const exact = histogram64({ 5: 7 }, -1, 0.5);
    const { el, view } = setup({ exact: new Map([[0, { status: "loading" }]]) });
    expect(
      card(el, "features.conv1.weight").querySelector<HTMLButtonElement>(".nbviz-exact")?.disabled,
    ).toBe(true);
    view.update({
      exact: new Map([[0, { status: "done", histogram: { ...exact, sample: 1234 } }]]),
    });
    const done = card(el, "features.conv1.weight");
    expect(done.querySelector(".nbviz-sampled")).toBeNull();
    expect(done.querySelector(".nbviz-exact-note")?.textContent).toBe("exact: all 1,234 elements");
    expect(
      [...done.querySelectorAll("rect.nbviz-bar")].map((r) => r.getAttribute("data-bin")),
    ).toEqual(["5"]);
    view.update({
      exact: new Map([[0, { status: "error", message: "exact histogram: timed out" }]]),
    });
    const failed = card(el, "features.conv1.weight");
    expect(failed.querySelector(".nbviz-error")?.textContent).toBe("exact histogram: timed out");
    expect(failed.querySelector<HTMLButtonElement>(".nbviz-exact")?.disabled).toBe(false);
  });

  it("highlights NaN and Inf counts", () => {
    const { el } = setup({ selected: "features.conv2" });
    const weight = card(el, "features.conv2.weight");
    expect([...weight.querySelectorAll(".is-bad")].map((e) => e.getAttribute("data-stat"))).toEqual(
      ["nan", "posinf"],
    );
    expect(weight.querySelector('[data-stat="nan"]')?.textContent).toBe("3");
    expect(weight.querySelector(".nbviz-badge-frozen")).not.toBeNull();
  });

  it("explains layers without parameters and links their children", () => {
    const { el, onSelect } = setup({ selected: "features" });
    expect(el.querySelectorAll(".nbviz-hist-card")).toHaveLength(0);
    const none = el.querySelector(".nbviz-hist-none");
    expect(none?.textContent).toContain("No parameters of its own");
    expect(none?.textContent).toContain("Pick a child layer");
    const children = [...el.querySelectorAll<HTMLButtonElement>(".nbviz-child")];
    expect(children.map((b) => b.textContent)).toEqual(["features.conv1", "features.conv2"]);
    children[1]?.click();
    expect(onSelect).toHaveBeenCalledWith("features.conv2");
    const leaf = setup({ selected: "features.conv2.inner" }).el;
    expect(leaf.querySelector(".nbviz-hist-none")?.textContent).toBe("No parameters of its own");
  });

  it("shows lazy tensors without a chart", () => {
    const { view, el } = setup();
    const tensors = sampleTensors();
    tensors[3] = { ...(tensors[3] as (typeof tensors)[number]), lazy: true, shape: [] };
    view.update({ tensors, selected: "head" });
    const lazy = card(el, "head.weight");
    expect(lazy.querySelector(".nbviz-lazy")?.textContent).toBe("lazy (uninitialized)");
    expect(lazy.querySelector("svg")).toBeNull();
  });
});
