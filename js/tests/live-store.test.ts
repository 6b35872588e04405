import { describe, expect, it } from "vitest";
import { appendOf, storeFor } from "../src/live/attach";
import { lastAtOrBefore, StepColumns } from "../src/live/columns";
import { RunStore } from "../src/live/store";
import { PROTOCOL } from "../src/protocol";
import { FakeModel, runAppend, seriesRow } from "./fixtures";

const F = PROTOCOL.RECORD_FIELDS.length;
const BINS = PROTOCOL.HIST_BINS;
const FIELD = (name: string): number => PROTOCOL.RECORD_FIELDS.indexOf(name as never);

function manual(): { store: RunStore; frame: () => void } {
  const pending: (() => void)[] = [];
  const store = new RunStore((cb) => pending.push(cb));
  const frame = (): void => {
    for (const cb of pending.splice(0)) cb();
  };
  return { store, frame };
}

function apply(store: RunStore, parts: Parameters<typeof runAppend>[0]): void {
  const { message, buffers } = runAppend(parts);
  store.apply(message, buffers);
}

describe("lastAtOrBefore", () => {
  const steps = Int32Array.from([0, 20, 40, 60, 0, 0]); // capacity beyond length
  it.each([
    [-1, -1],
    [0, 0],
    [19, 0],
    [20, 1],
    [59, 2],
    [60, 3],
    [1000, 3],
  ])("at step %i finds row %i", (step, row) => {
    expect(lastAtOrBefore(steps, 4, step)).toBe(row);
  });
  it("on no rows finds none", () => {
    expect(lastAtOrBefore(steps, 0, 5)).toBe(-1);
  });
});

describe("StepColumns", () => {
  it("keeps rows sorted through appends, inserts and replacements while it doubles", () => {
    const rows = new StepColumns([{ name: "v", width: 2, make: (n) => new Float64Array(n) }], 2);
    const order = [5, 1, 9, 3, 7, 2, 8, 4, 6, 0, 11, 10];
    for (const s of order) rows.put(s, { v: [s, -s] }, 0);
    rows.put(3, { v: [33, -33] }, 0); // replaced, not added
    expect(rows.length).toBe(12);
    expect(rows.capacity).toBeGreaterThanOrEqual(12);
    expect([...rows.steps()]).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    const v = rows.view("v");
    expect(v.length).toBe(24);
    expect([v[6], v[7]]).toEqual([33, -33]);
    expect([v[22], v[23]]).toEqual([11, -11]);
  });
});

describe("RunStore.apply", () => {
  it("holds series, steps and statistics, and looks them up at any step", () => {
    const { store } = manual();
    expect(store.lastStep()).toBe(-1);
    apply(store, {
      series: [seriesRow(0, "fc1", "weight", "weight"), seriesRow(1, "fc1", "grad", "weight")],
      steps: [0, 1, 2, 3],
      skipped: [2],
      stats: [
        { series: 0, step: 0, fields: { mean: 1, std: 2 } },
        { series: 0, step: 2, fields: { mean: 3, std: 4 } },
      ],
    });
    expect(store.lastStep()).toBe(3);
    const { step, skipped } = store.steps();
    expect([...step]).toEqual([0, 1, 2, 3]);
    expect([...skipped]).toEqual([0, 0, 1, 0]);
    expect(store.seriesOf("fc1").map((s) => s.id)).toEqual([0, 1]);
    expect(store.seriesOf("fc1", "grad").map((s) => s.id)).toEqual([1]);
    expect(store.statAt(0, "mean", -1)).toBeNaN();
    expect(store.statAt(0, "mean", 0)).toBe(1);
    expect(store.statAt(0, "mean", 1)).toBe(1); // latest row at or before
    expect(store.statAt(0, "std", 2)).toBe(4);
    expect(store.statAt(0, "std", 99)).toBe(4);
    expect(store.statAt(1, "mean", 2)).toBeNaN(); // no rows
    expect(store.statAt(7, "mean", 2)).toBeNaN(); // no such series
    expect(store.statAt(0, "dead", 2)).toBeNaN(); // not applicable
  });

  it("replaces rows held at a (series, step), inserts older ones in order", () => {
    const { store } = manual();
    apply(store, {
      series: [seriesRow(0, "a", "weight")],
      stats: [10, 20, 30].map((step) => ({ series: 0, step, fields: { mean: step } })),
    });
    apply(store, {
      stats: [
        { series: 0, step: 20, fields: { mean: -20 } },
        { series: 0, step: 5, fields: { mean: 5 } },
      ],
    });
    const { step, values } = store.stats(0);
    expect([...step]).toEqual([5, 10, 20, 30]);
    expect(values.length).toBe(4 * F);
    expect(values[2 * F + FIELD("mean")]).toBe(-20);
    expect(store.statAt(0, "mean", 25)).toBe(-20);
  });

  it("drops what a thinning notice names before taking the rows that follow it", () => {
    const { store } = manual();
    const steps = Array.from({ length: 12 }, (_, i) => i);
    apply(store, {
      series: [seriesRow(0, "a", "weight"), seriesRow(1, "b", "weight")],
      steps,
      stats: steps.flatMap((step) => [
        { series: 0, step, fields: { mean: step } },
        { series: 1, step, fields: { mean: -step } },
      ]),
      hists: steps.map((step) => ({ series: 0, step, lo: step, fill: 1 })),
    });
    // The kernel merged steps 0..9 of series 0 into envelopes at 0 and 5 (their means).
    apply(store, {
      thinned: [
        { series: 0, table: "stats", through: 11 },
        { series: 0, table: "hists", through: 4 },
      ],
      stats: [0, 5, 10, 11].map((step) => ({
        series: 0,
        step,
        fields: { mean: step < 10 ? step + 2 : step },
      })),
    });
    expect([...store.stats(0).step]).toEqual([0, 5, 10, 11]);
    expect(store.statAt(0, "mean", 3)).toBe(2);
    expect(store.statAt(0, "mean", 9)).toBe(7);
    expect(store.statAt(0, "mean", 11)).toBe(11);
    expect([...store.histograms(0).step]).toEqual([5, 6, 7, 8, 9, 10, 11]);
    expect(store.histogramAt(0, 6)?.lo).toBe(6);
    expect(store.stats(1).step.length).toBe(12); // other series untouched
    expect(store.thinnings).toBe(2);
  });

  it("holds histograms by step and grows past any initial capacity", () => {
    const { store } = manual();
    apply(store, { series: [seriesRow(0, "a", "activation")] });
    for (let step = 0; step < 1000; step += 10) {
      apply(store, { hists: [{ series: 0, step, lo: step, fill: step + 1 }] });
    }
    expect(store.histogramCount(0)).toBe(100);
    expect(store.histogramAt(0, -5)).toBeNull();
    const h = store.histogramAt(0, 555);
    expect(h?.step).toBe(550);
    expect(h?.lo).toBe(550);
    expect(h?.width).toBe(0.5);
    expect(h?.sample).toBe(100);
    expect(h?.counts.length).toBe(BINS);
    expect(h?.counts[BINS - 1]).toBe(551);
    expect(store.histograms(0).counts.length).toBe(100 * BINS);
    expect(store.histograms(3).step.length).toBe(0);
  });

  it("takes a response's result the same way, and keeps revision and completeness", () => {
    const { store } = manual();
    const { message, buffers } = runAppend({ revision: 7, complete: true });
    const response = { type: "response", id: "x", ok: true, result: message };
    expect(appendOf(response)).toBe(message);
    expect(appendOf({ type: "response", id: "x", ok: false, error: "no" })).toBeNull();
    expect(appendOf({ type: "something else" })).toBeNull();
    store.apply(message, buffers);
    expect(store.revision).toBe(7);
    expect(store.complete).toBe(true);
  });
});

describe("RunStore.metricAt", () => {
  it("follows the definitions of docs/live-data.md", () => {
    const { store } = manual();
    apply(store, {
      series: [
        seriesRow(0, "fc", "grad", "weight"),
        seriesRow(1, "fc", "grad", "bias"),
        seriesRow(2, "fc", "update", "weight"),
        seriesRow(3, "fc", "update", "bias"),
        seriesRow(4, "fc", "activation"),
        seriesRow(5, "relu", "activation"),
        { ...seriesRow(6, "fc", "activation"), call: 1 },
        { ...seriesRow(7, "fc", "grad", "weight"), mode: "eval" },
      ],
      stats: [
        { series: 0, step: 0, fields: { l2: 3, nan: 0, posinf: 0, neginf: 0 } },
        { series: 1, step: 0, fields: { l2: 4, nan: 1, posinf: 2, neginf: 0 } },
        { series: 2, step: 0, fields: { ratio: 0.01 } },
        { series: 3, step: 0, fields: { ratio: 0.03 } },
        { series: 4, step: 0, fields: { std: 1.5, dead: 0.25 } },
        { series: 5, step: 0, fields: { std: 0.5 } },
        { series: 6, step: 0, fields: { std: 99, dead: 0.99 } },
        { series: 7, step: 0, fields: { l2: 100 } },
        { series: 0, step: 10, fields: { l2: 6 } },
      ],
    });
    expect(store.metricAt("grad_norm", 0)).toEqual(new Map([["fc", 5]]));
    expect(store.metricAt("grad_norm", 10).get("fc")).toBeCloseTo(Math.hypot(6, 4));
    expect(store.metricAt("update_ratio", 0).get("fc")).toBeCloseTo(0.03);
    expect(store.metricAt("activation_std", 0)).toEqual(
      new Map([
        ["fc", 1.5],
        ["relu", 0.5],
      ]),
    );
    expect(store.metricAt("dead_fraction", 0)).toEqual(new Map([["fc", 0.25]]));
    expect(store.metricAt("nonfinite", 0).get("fc")).toBe(3);
    expect(store.metricAt("grad_norm", -1).size).toBe(0);
  });
});

describe("RunStore.onChange", () => {
  it("calls listeners once per frame however many appends arrive", () => {
    const { store, frame } = manual();
    let calls = 0;
    const off = store.onChange(() => {
      calls += 1;
    });
    apply(store, { steps: [0] });
    apply(store, { steps: [1] });
    apply(store, { steps: [2] });
    expect(calls).toBe(0);
    frame();
    expect(calls).toBe(1);
    frame();
    expect(calls).toBe(1);
    apply(store, { steps: [3] });
    frame();
    expect(calls).toBe(2);
    off();
    apply(store, { steps: [4] });
    frame();
    expect(calls).toBe(2);
  });
});

describe("storeFor", () => {
  it("is one store per model that applies pushes and any append response", () => {
    const model = new FakeModel({});
    const store = storeFor(model, { schedule: () => {} });
    expect(storeFor(model)).toBe(store);
    const sent = model.sent as { type: string; id: string; series?: number[] }[];
    expect(sent.map((m) => m.type)).toEqual(["run_snapshot"]);
    const push = runAppend({ series: [seriesRow(0, "a", "weight")], steps: [0, 1] });
    model.emit("msg:custom", push.message, push.buffers);
    expect(store.lastStep()).toBe(1);
    const snap = runAppend({ steps: [0, 1, 2], revision: 3, complete: true });
    const id = sent[0]?.id;
    model.emit(
      "msg:custom",
      { type: "response", id, ok: true, result: snap.message },
      snap.buffers,
    );
    expect(store.lastStep()).toBe(2);
    expect(store.complete).toBe(true);
    store.requestHistograms([0, 1]);
    store.requestHistograms([1]); // already asked: not again
    expect(sent.map((m) => m.type)).toEqual(["run_snapshot", "run_histograms"]);
    expect(sent[1]?.series).toEqual([0, 1]);
  });
});
