import { describe, expect, it, vi } from "vitest";
import { RunStore } from "../src/live/store";
import { createAnomalyBanner } from "../src/panels/banner";
import { createDistribution } from "../src/panels/distribution";
import { createGradientFlow } from "../src/panels/gradflow";
import { createHistogramPanel } from "../src/panels/histpanel";
import { FIELD_INDEX, NFIELDS } from "../src/panels/source";
import { loadHistograms, syntheticRun } from "./fakesource";
import { runAppend, seriesRow } from "./fixtures";

const EVIL = "<img src=x onerror=alert(1)>";

describe("createHistogramPanel", () => {
  const source = syntheticRun({ layers: 3, steps: 20 });
  loadHistograms(source, "layers.1.linear");

  it("shows one row per kind and one cell per tensor, with stats", () => {
    const panel = createHistogramPanel({
      source,
      layer: "layers.1.linear",
      step: 5,
      mode: "train",
    });
    const kinds = [...panel.el.querySelectorAll<HTMLElement>(".nbviz-hp-row")].map(
      (r) => r.dataset.kind,
    );
    expect(kinds).toEqual(["weight", "grad", "activation", "activation_grad", "update"]);
    const weights = panel.el.querySelectorAll('.nbviz-hp-row[data-kind="weight"] .nbviz-hp-cell');
    expect([...weights].map((c) => (c as HTMLElement).dataset.tensor)).toEqual(["weight", "bias"]);
    const cell = weights[0] as HTMLElement;
    const id = Number(cell.dataset.series);
    const mean = cell.querySelector('td[data-stat="mean"]')?.textContent;
    expect(mean).not.toBe("—");
    expect(cell.querySelector('td[data-stat="l2"]')?.textContent).not.toBe("—");
    const deadRow = cell.querySelector('td[data-stat="dead"]')?.parentElement;
    expect(deadRow?.hidden).toBe(true);
    const d = cell.querySelector("path.nbviz-bars")?.getAttribute("d") ?? "";
    const hist = source.histogramAt(id, 5);
    const nonEmpty = [...(hist?.counts ?? [])].filter((c) => c > 0).length;
    expect(d.split("M").length - 1).toBe(nonEmpty);
    const activation = panel.el.querySelector(
      '.nbviz-hp-row[data-kind="activation"] .nbviz-hp-cell',
    );
    expect(activation?.querySelector('td[data-stat="dead"]')?.textContent).toMatch(/%$/);
  });

  it("redraws a step without creating elements, and says when there is no data", () => {
    const panel = createHistogramPanel({
      source,
      layer: "layers.1.linear",
      step: 5,
      mode: "train",
    });
    const before = panel.el.querySelectorAll("*").length;
    const path = panel.el.querySelector("path.nbviz-bars");
    const d = path?.getAttribute("d");
    panel.update({ step: 15 });
    expect(panel.el.querySelectorAll("*").length).toBe(before);
    expect(panel.el.querySelector("path.nbviz-bars")).toBe(path);
    expect(path?.getAttribute("d")).not.toBe(d);
    panel.update({ step: -1 });
    const nodata = [...panel.el.querySelectorAll<HTMLElement>(".nbviz-hp-nodata")];
    expect(nodata.every((n) => !n.hidden && n.textContent === "no data at this step")).toBe(true);
    panel.update({ layer: "layers.0.linear", step: 3 }); // stats but no histograms yet
    const msg = panel.el.querySelector<HTMLElement>(".nbviz-hp-nodata");
    expect(msg?.textContent).toBe("no histogram at this step");
    const layer0 = panel.el.querySelector<HTMLElement>(".nbviz-hp-cell");
    const count = panel.el.querySelectorAll("*").length;
    // A layer of the same shape rebinds the same cells to its series: no element is created.
    panel.update({ layer: "layers.1.linear" });
    expect(panel.el.querySelectorAll("*").length).toBe(count);
    expect(panel.el.querySelector(".nbviz-hp-cell")).toBe(layer0);
    const weight1 = source.seriesOf("layers.1.linear", "weight", "train")[0];
    expect(layer0?.dataset.series).toBe(String(weight1?.id));
    expect(layer0?.dataset.tensor).toBe(weight1?.tensor);
    expect(panel.el.querySelector(".nbviz-hp-title .nbviz-name")?.textContent).toBe(
      "layers.1.linear",
    );
    panel.update({ layer: "layers.0.linear", step: 4 }); // a switch back reuses the cells
    expect(panel.el.querySelector(".nbviz-hp-cell")).toBe(layer0);
    const weight0 = source.seriesOf("layers.0.linear", "weight", "train")[0];
    expect(layer0?.dataset.series).toBe(String(weight0?.id));
    expect(panel.el.querySelector(".nbviz-hp-step")?.textContent).toBe(" step 4");
    panel.update({ layer: null });
    expect(panel.el.textContent).toBe("Select a layer");
  });

  it("marks non-finite counts and shows unrecorded kinds", () => {
    const bad = syntheticRun({ layers: 2, steps: 5, nanAt: { step: 2, layer: 1 } });
    const panel = createHistogramPanel({
      source: bad,
      layer: "layers.1.linear",
      step: 3,
      mode: "train",
    });
    const nan = panel.el.querySelector('.nbviz-hp-row[data-kind="grad"] td[data-stat="nan"]');
    expect(nan?.classList.contains("is-bad")).toBe(true);
    expect(nan?.textContent).toBe("3");
    const empty = syntheticRun({ layers: 1, steps: 2 });
    empty.series.splice(0); // nothing recorded
    const none = createHistogramPanel({ source: empty, layer: "x", step: 0, mode: "train" });
    expect(none.el.querySelectorAll(".nbviz-hp-missing").length).toBe(4);
  });
});

describe("createDistribution", () => {
  it("lists the tensors, caches the bands and moves only the marker on a step", () => {
    const source = syntheticRun({ layers: 2, steps: 30 });
    loadHistograms(source, "layers.0.linear");
    const onTensor = vi.fn();
    const view = createDistribution(
      { source, layer: "layers.0.linear", kind: "weight", tensor: null, step: 10, mode: "train" },
      { onTensor },
    );
    const buttons = view.el.querySelectorAll<HTMLButtonElement>(".nbviz-dist-tensors button");
    expect([...buttons].map((b) => b.textContent)).toEqual(["weight", "bias"]);
    expect(buttons[0]?.classList.contains("is-selected")).toBe(true);
    const marker = view.el.querySelector<HTMLElement>(".nbviz-dist-marker");
    const left = marker?.style.left;
    const calls = source.histogramsCalls;
    view.update({ step: 20 });
    expect(marker?.style.left).not.toBe(left);
    expect(source.histogramsCalls - calls).toBeLessThanOrEqual(1);
    buttons[1]?.click();
    expect(onTensor).toHaveBeenCalledWith("bias");
    view.update({ layer: "layers.1.linear" });
    expect(view.el.querySelector<HTMLElement>(".nbviz-dist-empty")?.textContent).toBe(
      "no histograms yet",
    );
    view.update({ kind: "activation", layer: "nope" });
    expect(view.el.querySelector<HTMLElement>(".nbviz-dist-empty")?.textContent).toBe(
      "not recorded",
    );
  });
});

describe("createGradientFlow", () => {
  it("shows the metric legend and selects layer and step on a heatmap click", () => {
    const source = syntheticRun({ layers: 4, steps: 10 });
    const onSelect = vi.fn();
    const onStep = vi.fn();
    const onMetric = vi.fn();
    const view = createGradientFlow(
      { source, step: 3, metric: "grad_norm", selected: "layers.1.linear", layers: null },
      { onSelect, onStep, onMetric, width: 216 },
    );
    expect(view.el.querySelector(".nbviz-legend")?.getAttribute("data-metric")).toBe("grad_norm");
    const heat = view.el.querySelector("canvas.nbviz-gf-heat");
    // jsdom: the canvas is at (0, 0); plot is x 8..208 (10 steps of 20 px), y 0..220 (4 rows).
    heat?.dispatchEvent(new MouseEvent("click", { clientX: 8 + 20 * 7 + 3, clientY: 55 * 2 + 1 }));
    expect(onSelect).toHaveBeenCalledWith("layers.2.linear");
    expect(onStep).toHaveBeenCalledWith(7);
    const bars = view.el.querySelector("canvas.nbviz-gf-bars");
    bars?.dispatchEvent(new MouseEvent("click", { clientX: 8 + 50 * 3 + 1, clientY: 5 }));
    expect(onSelect).toHaveBeenLastCalledWith("layers.3.linear");
    bars?.dispatchEvent(new MouseEvent("mousemove", { clientX: 8 + 1, clientY: 5 }));
    expect(view.el.querySelector(".nbviz-gf-hover")?.textContent).toMatch(
      /^layers\.0\.linear · step 3 · gradient norm \d/,
    );
    const select = view.el.querySelector<HTMLSelectElement>("select.nbviz-gf-metric");
    if (!select) throw new Error("no select");
    select.value = "dead_fraction";
    select.dispatchEvent(new Event("change"));
    expect(onMetric).toHaveBeenCalledWith("dead_fraction");
    expect(view.el.querySelector(".nbviz-legend")?.getAttribute("data-metric")).toBe(
      "dead_fraction",
    );
    view.destroy();
  });

  it("lists each layer's gradient norm at the step in its hidden table, once idle", async () => {
    const source = syntheticRun({ layers: 3, steps: 10 });
    const view = createGradientFlow({
      source,
      step: 4,
      metric: "grad_norm",
      selected: null,
      layers: null,
    });
    // Reference: the L2 of the layer's grad series rows at step 4, combined over its tensors.
    const expected = (step: number): Map<string, number> => {
      const sums = new Map<string, number>();
      for (const info of source.series) {
        if (info.kind !== "grad") continue;
        const rows = source.stats[info.id];
        const at = rows ? rows.step.indexOf(step) : -1;
        if (!rows || at < 0) continue;
        const l2 = rows.values[at * NFIELDS + FIELD_INDEX.l2] as number;
        sums.set(info.layer, (sums.get(info.layer) ?? 0) + l2 * l2);
      }
      return new Map([...sums].map(([k, v]) => [k, Math.sqrt(v)]));
    };
    const shown = (): Map<string, number> =>
      new Map(
        [...view.el.querySelectorAll<HTMLElement>("table.nbviz-gf-table tr[data-layer]")].map(
          (tr) => [tr.dataset.layer ?? "", Number(tr.querySelector("td")?.dataset.value)],
        ),
      );
    const table = view.el.querySelector<HTMLElement>("table.nbviz-gf-table");
    for (const step of [4, 9]) {
      view.update({ step });
      await vi.waitFor(() => expect(table?.dataset.step).toBe(String(step)));
      const want = expected(step);
      expect([...shown().keys()]).toEqual([...want.keys()]);
      for (const [layer, v] of want) expect(shown().get(layer)).toBeCloseTo(v, 5);
    }
    view.destroy();
  });
});

describe("createGradientFlow over the run store", () => {
  it("redraws the heatmap's old steps after retention thinned them", () => {
    const store = new RunStore(() => {});
    const apply = (parts: Parameters<typeof runAppend>[0]): void => {
      const { message, buffers } = runAppend(parts);
      store.apply(message, buffers);
    };
    apply({
      series: [seriesRow(0, "a", "grad", "weight")],
      steps: [0, 1, 2, 3],
      stats: [0, 1, 2, 3].map((step) => ({ series: 0, step, fields: { l2: step + 1 } })),
    });
    const view = createGradientFlow(
      { source: store, step: 3, metric: "grad_norm", selected: null, layers: null },
      { width: 216 },
    );
    const heat = view.el.querySelector("canvas.nbviz-gf-heat");
    const hover = view.el.querySelector<HTMLElement>(".nbviz-gf-hover");
    // jsdom: the canvas is at (0, 0); 4 steps of 50 px from x = 8, one row.
    const valueAt = (step: number): number => {
      heat?.dispatchEvent(new MouseEvent("mousemove", { clientX: 8 + 50 * step + 5, clientY: 5 }));
      return Number(hover?.dataset.value);
    };
    expect(valueAt(2)).toBe(3);
    apply({
      thinned: [{ series: 0, table: "stats", through: 3 }],
      stats: [
        { series: 0, step: 0, fields: { l2: 10 } },
        { series: 0, step: 3, fields: { l2: 4 } },
      ],
    });
    view.update({ source: store });
    expect(valueAt(2)).toBe(10);
    expect(valueAt(3)).toBe(4);
    view.destroy();
  });
});

describe("createAnomalyBanner", () => {
  it("is hidden without anomalies; shows and links the first one, names as text", () => {
    const source = syntheticRun({
      layers: 3,
      steps: 10,
      name: () => EVIL,
      nanAt: { step: 4, layer: 1 },
    });
    const onSelect = vi.fn();
    const onStep = vi.fn();
    const banner = createAnomalyBanner(
      { anomaly: null, series: null, total: 0 },
      { onSelect, onStep },
    );
    expect(banner.el.hidden).toBe(true);
    const first = source.firstAnomaly();
    banner.update({
      anomaly: first,
      series: source.series[first?.series ?? -1] ?? null,
      total: source.anomalies().length,
    });
    expect(banner.el.hidden).toBe(false);
    expect(banner.el.querySelector("img")).toBeNull();
    expect(banner.el.querySelector(".nbviz-anomaly-layer")?.textContent).toBe(EVIL);
    expect(banner.el.textContent).toContain("First 3 NaN at step 4 (backward) in");
    expect(banner.el.textContent).toContain("weight gradients weight");
    banner.el.querySelector<HTMLButtonElement>(".nbviz-anomaly-go")?.click();
    expect(onSelect).toHaveBeenCalledWith(EVIL);
    expect(onStep).toHaveBeenCalledWith(4);
  });

  it("renders evil names as text in every panel", () => {
    const source = syntheticRun({ layers: 1, steps: 3, name: () => EVIL });
    loadHistograms(source, EVIL);
    const views = [
      createHistogramPanel({ source, layer: EVIL, step: 1, mode: "train" }),
      createDistribution({
        source,
        layer: EVIL,
        kind: "weight",
        tensor: null,
        step: 1,
        mode: "train",
      }),
      createGradientFlow({ source, step: 1, metric: "grad_norm", selected: EVIL, layers: null }),
    ];
    for (const v of views) {
      expect(v.el.querySelector("img")).toBeNull();
    }
    expect(views[0]?.el.textContent).toContain(EVIL);
    expect(views[1]?.el.textContent).toContain(EVIL);
  });
});
