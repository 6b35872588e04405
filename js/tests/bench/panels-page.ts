/**
 * Benchmark page for benchmarks/bench_panels.py: every panel over a fake source of 200 layers x
 * 1,000 steps, wired as widget.ts would wire them, plus 200 boxes recoloured per step (a
 * stand-in for the structure diagram's overlay). Exposes `window.nbvizPanelsBench`.
 */

import {
  createAnomalyBanner,
  createDistribution,
  createGradientFlow,
  createHistogramPanel,
  createStepSlider,
  overlayColors,
} from "../../src/panels";
import { loadHistograms, syntheticRun } from "../fakesource";

const LAYERS = 200;
const STEPS = 1000;

const t0 = performance.now();
const source = syntheticRun({ layers: LAYERS, steps: STEPS, nanAt: { step: 700, layer: 123 } });
const generateMs = performance.now() - t0;
const names = Array.from({ length: LAYERS }, (_, i) => `layers.${i}.linear`);
loadHistograms(source, names[0] ?? "");

const host = document.getElementById("host") as HTMLElement;
const boxes = names.map((name) => {
  const box = document.createElement("div");
  box.className = "box";
  box.textContent = name;
  return box;
});
const graph = document.createElement("div");
graph.className = "graph";
graph.append(...boxes);

let layer = names[0] ?? "";
let redraws = 0;
let inputs = 0;
let slowest = 0;
const redrawMs: number[] = [];

const t1 = performance.now();
const first = source.firstAnomaly();
const banner = createAnomalyBanner({
  anomaly: first,
  series: source.series[first?.series ?? -1] ?? null,
  total: source.anomalies().length,
});
const hist = createHistogramPanel({ source, layer, step: STEPS - 1, mode: "train" });
const dist = createDistribution({
  source,
  layer,
  kind: "weight",
  tensor: null,
  step: STEPS - 1,
  mode: "train",
});
const flow = createGradientFlow({
  source,
  step: STEPS - 1,
  metric: "grad_norm",
  selected: layer,
  layers: names,
});
function recolor(step: number): void {
  const colors = overlayColors(source, "grad_norm", step, names);
  for (let i = 0; i < LAYERS; i++) {
    const box = boxes[i];
    const c = colors.get(names[i] ?? "");
    if (box && c && box.style.backgroundColor !== c) box.style.backgroundColor = c;
  }
}
const parts = {
  hist: [] as number[],
  dist: [] as number[],
  flow: [] as number[],
  recolor: [] as number[],
};
function onStep(step: number): void {
  const start = performance.now();
  hist.update({ step });
  const a = performance.now();
  dist.update({ step });
  const b = performance.now();
  flow.update({ step });
  const c = performance.now();
  recolor(step);
  const d = performance.now();
  parts.hist.push(a - start);
  parts.dist.push(b - a);
  parts.flow.push(c - b);
  parts.recolor.push(d - c);
  redraws++;
  redrawMs.push(d - start);
  slowest = Math.max(slowest, d - start);
}
function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  return s[s.length >> 1] ?? Number.NaN;
}
const { step: steps, skipped } = source.steps();
const slider = createStepSlider(
  {
    steps,
    skipped,
    lastStep: source.lastStep(),
    anomalies: source.anomalies(),
    step: 0,
    following: true,
  },
  { onStep },
);
host.append(banner.el, slider.el, hist.el, dist.el, flow.el, graph);
const createMs = performance.now() - t1;
slider.el.querySelector("input")?.addEventListener("input", () => inputs++);

function nextFrame(): Promise<void> {
  return new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
}

/**
 * Runs `work` at the start of an animation frame: `sync` is its script plus forced style and
 * layout; `frame` the time to the next frame's start (one interval, ~16.7 ms at 60 Hz, when the
 * work, paint included, fitted into the frame; a multiple of it when frames were dropped).
 */
async function timed(work: () => void): Promise<{ sync: number; frame: number }> {
  await nextFrame();
  return new Promise((resolve) =>
    requestAnimationFrame((t0) => {
      const start = performance.now();
      work();
      void host.offsetHeight; // style and layout, forced
      const sync = performance.now() - start;
      requestAnimationFrame((t1) => resolve({ sync, frame: t1 - t0 }));
    }),
  );
}

function select(name: string): void {
  layer = name;
  hist.update({ layer: name });
  dist.update({ layer: name });
  flow.update({ selected: name });
}

const bench = {
  info: () => ({ generateMs, createMs, series: source.series.length }),
  /** Histograms of a layer arrive (not timed), then the panels switch to it (timed). */
  async switchLayer(i: number) {
    const name = names[i] ?? "";
    const cached = source.hists.has(source.seriesOf(name)[0]?.id ?? -1);
    loadHistograms(source, name);
    return { ...(await timed(() => select(name))), cached };
  },
  async step(s: number) {
    return timed(() => slider.update({ step: s }) ?? onStep(s));
  },
  resetScrub() {
    slider.update({ step: 0, following: false });
    onStep(0);
    redraws = 0;
    inputs = 0;
    slowest = 0;
    redrawMs.length = 0;
    (slider.el.querySelector("input") as HTMLInputElement).focus();
  },
  scrubResult: () => {
    const sorted = [...redrawMs].sort((a, b) => a - b);
    return {
      inputs,
      redraws,
      slowest,
      p50: sorted[sorted.length >> 1] ?? 0,
      p99: sorted[Math.floor(sorted.length * 0.99)] ?? 0,
      over16: sorted.filter((x) => x > 16).length,
      step: slider.state.step,
    };
  },
  layer: () => layer,
  /** Median script time of each panel's step update (no style/layout), since the last reset. */
  parts: () => Object.fromEntries(Object.entries(parts).map(([k, v]) => [k, median(v)])),
  resetParts() {
    for (const v of Object.values(parts)) v.length = 0;
  },
};
(window as unknown as { nbvizPanelsBench: typeof bench }).nbvizPanelsBench = bench;
