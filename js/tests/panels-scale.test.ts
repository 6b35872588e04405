import { describe, expect, it } from "vitest";
import {
  createLegend,
  createScale,
  domainOf,
  NO_DATA_COLOR,
  overlayColors,
  scaleForRun,
} from "../src/panels/scale";
import { syntheticRun } from "./fakesource";

describe("scale domains", () => {
  it("log domains skip non-positive and non-finite values", () => {
    expect(domainOf([0, -1, Number.NaN, Number.POSITIVE_INFINITY, 1e-3, 10], "log")).toEqual([
      1e-3, 10,
    ]);
    expect(domainOf([], "log")).toEqual([1e-6, 1]);
    expect(domainOf([2, 2], "log")).toEqual([0.2, 20]);
  });

  it("linear domains start at zero and widen when flat", () => {
    expect(domainOf([0.2, 0.5], "linear")).toEqual([0, 0.5]);
    expect(domainOf([-1, 3], "linear")).toEqual([-1, 3]);
    expect(domainOf([0, 0], "linear")).toEqual([0, 1]);
    expect(domainOf([0, 0], "count")).toEqual([0, 1]);
    expect(domainOf([0, 7], "count")).toEqual([0, 7]);
  });
});

describe("createScale", () => {
  const scale = createScale("grad_norm", [1e-4, 1]);

  it("is logarithmic and clamped", () => {
    expect(scale.position(1e-4)).toBe(0);
    expect(scale.position(1)).toBe(1);
    expect(scale.position(1e-2)).toBeCloseTo(0.5, 12);
    expect(scale.position(1e-9)).toBe(0);
    expect(scale.position(0)).toBe(0);
    expect(scale.position(-5)).toBe(0);
    expect(scale.position(1e9)).toBe(1);
    expect(scale.position(Number.POSITIVE_INFINITY)).toBe(1);
    expect(Number.isNaN(scale.position(Number.NaN))).toBe(true);
  });

  it("gives CSS colours, the no-data colour for NaN, ramp ends at the domain ends", () => {
    expect(scale.colorFor(Number.NaN)).toBe(NO_DATA_COLOR);
    expect(scale.colorFor(1e-4)).toBe("rgb(68, 1, 84)");
    expect(scale.colorFor(1)).toBe("rgb(253, 231, 37)");
    expect(scale.colorFor(1e-12)).toBe(scale.colorFor(1e-4));
    const px = new Uint8ClampedArray(4);
    scale.rgbInto(1, px, 0);
    expect([...px.slice(0, 3)]).toEqual([253, 231, 37]);
  });

  it("linear and count scales", () => {
    const dead = createScale("dead_fraction", [0, 1]);
    expect(dead.position(0.25)).toBe(0.25);
    expect(dead.position(2)).toBe(1);
    const nf = createScale("nonfinite", [0, 99]);
    expect(nf.position(0)).toBe(0);
    expect(nf.position(99)).toBe(1);
    expect(nf.position(1)).toBeGreaterThan(0.1); // one NaN is visible
    expect(nf.colorFor(0)).toBe("rgb(235, 235, 235)");
  });
});

describe("run scales", () => {
  const source = syntheticRun({ layers: 4, steps: 30, nanAt: { step: 20, layer: 2 } });

  it("take the domain from the whole run and stay put while scrubbing", () => {
    const scale = scaleForRun(source, "grad_norm");
    let lo = Number.POSITIVE_INFINITY;
    let hi = 0;
    for (let t = 0; t < 30; t++)
      for (const v of source.metricAt("grad_norm", t).values()) {
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
    expect(scale.domain[0]).toBeCloseTo(lo, 12);
    expect(scale.domain[1]).toBeCloseTo(hi, 12);
    expect(scaleForRun(source, "grad_norm")).toBe(scale); // cached
    const layers = ["layers.0.linear", "nope"];
    const a = overlayColors(source, "grad_norm", 3, layers);
    const value = source.metricAt("grad_norm", 3).get("layers.0.linear") ?? 0;
    expect(a.get("layers.0.linear")).toBe(scale.colorFor(value));
    expect(a.get("nope")).toBe(NO_DATA_COLOR);
    expect(scaleForRun(source, "grad_norm").domain).toEqual(scale.domain);
  });

  it("dead fraction is fixed to [0, 1]; non-finite counts colour the NaN layer", () => {
    expect(scaleForRun(source, "dead_fraction").domain).toEqual([0, 1]);
    const colors = overlayColors(source, "nonfinite", 25, ["layers.1.linear", "layers.2.linear"]);
    expect(colors.get("layers.1.linear")).toBe("rgb(235, 235, 235)");
    expect(colors.get("layers.2.linear")).not.toBe("rgb(235, 235, 235)");
  });

  it("draws a legend with the domain ends", () => {
    const legend = createLegend(createScale("update_ratio", [1e-4, 1e-2]));
    expect(legend.dataset.scale).toBe("log");
    expect(legend.querySelector(".nbviz-legend-lo")?.textContent).toBe("1e-4");
    expect(legend.querySelector(".nbviz-legend-hi")?.textContent).toBe("0.01");
    expect(legend.querySelectorAll(".nbviz-legend-swatch").length).toBe(25);
  });
});

describe("run scales during training", () => {
  it("count only the new steps and match a full recount", () => {
    const source = syntheticRun({ layers: 3, steps: 40 });
    const full = source.stepList;
    source.stepList = full.slice(0, 10);
    const early = scaleForRun(source, "activation_std");
    source.stepList = full;
    let calls = 0;
    const metricAt = source.metricAt.bind(source);
    source.metricAt = (m, step) => {
      calls++;
      return metricAt(m, step);
    };
    const grown = scaleForRun(source, "activation_std");
    expect(calls).toBe(30);
    const fresh = syntheticRun({ layers: 3, steps: 40 });
    expect(grown.domain).toEqual(scaleForRun(fresh, "activation_std").domain);
    expect(grown.domain[1]).toBeGreaterThanOrEqual(early.domain[1]);
  });
});
