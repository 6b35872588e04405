import { describe, expect, it } from "vitest";
import { nearestStep } from "../src/panels/canvas";
import { cellAt, cellRect, metricMatrix, recordedLayers } from "../src/panels/heatmap";
import { histogramGeometry } from "../src/panels/histgeom";
import {
  DIST_PERCENTILES,
  percentileMatrix,
  percentilesFromHistogram,
} from "../src/panels/percentiles";
import { syntheticRun } from "./fakesource";

/** Independent reference: bisection on the piecewise-linear CDF over the value axis. */
function refPercentile(counts: number[], lo: number, width: number, p: number): number {
  const total = counts.reduce((a, b) => a + b, 0);
  const cdf = (x: number): number => {
    let acc = 0;
    counts.forEach((c, i) => {
      const t = (x - (lo + i * width)) / width;
      acc += c * Math.min(Math.max(t, 0), 1);
    });
    return acc / total;
  };
  let a = lo;
  let b = lo + counts.length * width;
  for (let k = 0; k < 200; k++) {
    const m = (a + b) / 2;
    if (cdf(m) < p / 100) a = m;
    else b = m;
  }
  return b;
}

describe("percentilesFromHistogram", () => {
  const counts = new Array(64).fill(0).map((_, i) => (i > 10 && i < 50 ? ((i * 37) % 11) + 1 : 0));
  const lo = -2;
  const width = 0.0625;

  it("matches an independent inverse CDF at interior percentiles", () => {
    const out = percentilesFromHistogram(counts, lo, width);
    DIST_PERCENTILES.forEach((p, k) => {
      if (p === 0 || p === 100) return;
      expect(out[k]).toBeCloseTo(refPercentile(counts, lo, width, p), 9);
    });
  });

  it("puts 0 and 100 on the edges of the occupied bins", () => {
    const out = percentilesFromHistogram(counts, lo, width);
    expect(out[0]).toBe(lo + 11 * width);
    expect(out[8]).toBe(lo + 50 * width);
  });

  it("is monotone and NaN for an empty histogram", () => {
    const out = percentilesFromHistogram(counts, lo, width);
    for (let k = 1; k < out.length; k++) expect(out[k]).toBeGreaterThanOrEqual(out[k - 1] ?? 0);
    const none = percentilesFromHistogram(new Array(64).fill(0), 0, 1);
    expect([...none].every(Number.isNaN)).toBe(true);
  });

  it("ignores NaN/negative counts and clamps into the exact range", () => {
    const c = [0, Number.NaN, 4, -3, 4, 0];
    const out = percentilesFromHistogram(c, 0, 1, [0, 50, 100]);
    expect([...out]).toEqual([2, 3, 5]); // the median is the smallest x with CDF(x) = 1/2
    const clamped = percentilesFromHistogram(c, 0, 1, [0, 50, 100], undefined, [2.5, 4.5]);
    expect([...clamped]).toEqual([2.5, 3, 4.5]);
    // 0 and 100 are the exact min and max, even outside the (sampled) histogram's bins
    const exact = percentilesFromHistogram(c, 0, 1, [0, 50, 100], undefined, [1.5, 7]);
    expect([...exact]).toEqual([1.5, 3, 7]);
    const partial = percentilesFromHistogram(c, 0, 1, [0, 100], undefined, [Number.NaN, 7]);
    expect([...partial]).toEqual([2, 7]);
  });

  it("a single bin spreads linearly", () => {
    const out = percentilesFromHistogram([0, 10, 0], 1, 0.5, [0, 25, 50, 100]);
    expect([...out]).toEqual([1.5, 1.625, 1.75, 2]);
  });

  it("computes a matrix row by row", () => {
    const hist = {
      lo: Float64Array.of(0, 10),
      width: Float64Array.of(1, 2),
      counts: new Float32Array(128),
    };
    hist.counts[3] = 5;
    hist.counts[64 + 1] = 5;
    const m = percentileMatrix(hist, 64, [0, 100]);
    expect([...m]).toEqual([3, 4, 12, 14]);
  });
});

describe("histogramGeometry", () => {
  it("places every bin exactly on the stable grid", () => {
    const counts = new Array(64).fill(0);
    counts[5] = 2;
    counts[6] = 8;
    counts[20] = 4;
    const lo = -1.5;
    const width = 0.125;
    const g = histogramGeometry(counts, lo, width, 300, 100);
    const d0 = lo + 5 * width;
    const d1 = lo + 21 * width;
    expect(g.domain).toEqual([d0, d1]);
    for (let i = 0; i < 64; i++) {
      expect(g.x[i]).toBeCloseTo(((lo + i * width - d0) * 300) / (d1 - d0), 12);
      expect(g.w[i]).toBeCloseTo((width * 300) / (d1 - d0), 12);
    }
    expect(g.x[5]).toBe(0);
    expect((g.x[20] ?? 0) + (g.w[20] ?? 0)).toBeCloseTo(300, 12);
    expect(g.h[6]).toBe(100);
    expect(g.h[5]).toBe(25);
    expect(g.h[7]).toBe(0);
    expect(g.max).toBe(8);
  });

  it("keeps tiny counts visible and handles empty input", () => {
    const counts = new Array(64).fill(0);
    counts[0] = 1;
    counts[1] = 10000;
    expect(histogramGeometry(counts, 0, 1, 64, 50).h[0]).toBe(1);
    const empty = histogramGeometry(new Array(64).fill(0), 0, 1, 64, 50);
    expect(empty.max).toBe(0);
    expect([...empty.h].every((v) => v === 0)).toBe(true);
  });
});

describe("heatmap mapping", () => {
  it("maps pixels to cells and back", () => {
    for (const [x, y] of [
      [0, 0],
      [599.9, 199.9],
      [123.4, 56.7],
    ] as const) {
      const hit = cellAt(x, y, 600, 200, 200, 1000);
      expect(hit).not.toBeNull();
      const r = cellRect(hit?.row ?? 0, hit?.col ?? 0, 600, 200, 200, 1000);
      expect(x).toBeGreaterThanOrEqual(r.x - 1e-9);
      expect(x).toBeLessThan(r.x + r.w + 1e-9);
      expect(y).toBeGreaterThanOrEqual(r.y - 1e-9);
      expect(y).toBeLessThan(r.y + r.h + 1e-9);
    }
    expect(cellAt(600, 0, 600, 200, 2, 2)).toBeNull();
    expect(cellAt(-1, 0, 600, 200, 2, 2)).toBeNull();
    expect(cellAt(0, 0, 600, 200, 0, 2)).toBeNull();
    expect(cellAt(299, 101, 600, 200, 2, 2)).toEqual({ row: 1, col: 0 });
  });

  it("fills a layer x step matrix from metricAt", () => {
    const source = syntheticRun({ layers: 3, steps: 5 });
    const layers = recordedLayers(source);
    expect(layers).toEqual(["layers.0.linear", "layers.1.linear", "layers.2.linear"]);
    const m = metricMatrix(source, "activation_std", [...layers, "missing"]);
    expect(m.values.length).toBe(4 * 5);
    for (let r = 0; r < 3; r++)
      for (let c = 0; c < 5; c++)
        expect(m.values[r * 5 + c]).toBeCloseTo(
          source.metricAt("activation_std", c).get(layers[r] ?? "") ?? Number.NaN,
          6,
        );
    expect(Number.isNaN(m.values[3 * 5] ?? 0)).toBe(true);
  });

  it("finds the nearest step", () => {
    const steps = Int32Array.of(0, 10, 20, 40);
    expect(nearestStep(steps, -5)).toBe(0);
    expect(nearestStep(steps, 14)).toBe(10);
    expect(nearestStep(steps, 16)).toBe(20);
    expect(nearestStep(steps, 31)).toBe(40);
    expect(nearestStep(steps, 99)).toBe(40);
    expect(nearestStep(new Int32Array(0), 1)).toBeUndefined();
  });
});

describe("live growth", () => {
  it("extends a matrix with new steps only, equal to a full rebuild", () => {
    const source = syntheticRun({ layers: 3, steps: 8 });
    const layers = recordedLayers(source);
    const full = source.stepList;
    source.stepList = full.slice(0, 5);
    const early = metricMatrix(source, "grad_norm", layers);
    source.stepList = full;
    const calls: number[] = [];
    const metricAt = source.metricAt.bind(source);
    source.metricAt = (m, step) => {
      calls.push(step);
      return metricAt(m, step);
    };
    const grown = metricMatrix(source, "grad_norm", layers, early);
    expect(calls).toEqual([5, 6, 7]);
    expect([...grown.values]).toEqual([...metricMatrix(source, "grad_norm", layers).values]);
    expect(metricMatrix(source, "dead_fraction", layers, grown).metric).toBe("dead_fraction");
  });
});
