/**
 * Distribution over time of one series (the selected layer and kind): TensorBoard-style
 * percentile bands (0/7/16/31/50/69/84/93/100, from each step's histogram) and an offset
 * (ridgeline) view of the histograms. The current step is a marker moved without redrawing the
 * charts; clicking a step calls `onStep`. Percentiles are computed once per series and cached.
 *
 * Hooks: `.nbviz.nbviz-distribution`; `.nbviz-dist-tensors button[data-series]`;
 * `canvas.nbviz-dist-bands`, `canvas.nbviz-dist-ridges`; `.nbviz-dist-marker`; `.nbviz-dist-empty`.
 */

import { h, layerLabel, setHidden, viewRoot } from "../draw/dom";
import { formatValue } from "../format";
import { PROTOCOL } from "../protocol";
import { linear, nearestStep, paletteOf, type Surface, surface } from "./canvas";
import { indexAtOrBefore } from "./follow";
import { KIND_LABELS } from "./histpanel";
import { DIST_PERCENTILES, percentileMatrix } from "./percentiles";
import type { Kind, SeriesInfo, StatsSource, View } from "./source";

export interface DistributionData {
  source: StatsSource;
  layer: string | null;
  kind: Kind;
  /** Tensor name of the series to show; null: the layer's first of this kind. */
  tensor: string | null;
  step: number;
  mode: "train" | "eval";
}

export interface DistributionOptions {
  onStep?: (step: number) => void;
  onTensor?: (tensor: string) => void;
  width?: number;
}

interface Bands {
  rows: number;
  steps: Int32Array;
  pct: Float64Array;
  y0: number;
  y1: number;
}

const BINS = PROTOCOL.HIST_BINS;
const NP = DIST_PERCENTILES.length;
const RIDGES = 32;
const cache = new WeakMap<StatsSource, Map<number, Bands>>();

/** Percentile bands of a series, cached per source and series until its row count changes. */
export function bandsOf(source: StatsSource, series: number): Bands {
  let bySeries = cache.get(source);
  if (bySeries === undefined) {
    bySeries = new Map();
    cache.set(source, bySeries);
  }
  const hist = source.histograms(series);
  const hit = bySeries.get(series);
  if (hit !== undefined && hit.rows === hist.step.length && hit.steps[0] === hist.step[0])
    return hit;
  // The exact min and max of each step bound the bands (the histogram may be of a sample).
  const pct = percentileMatrix(hist, BINS, DIST_PERCENTILES, (r) => {
    const step = hist.step[r] ?? 0;
    return [source.statAt(series, "min", step), source.statAt(series, "max", step)];
  });
  let y0 = Number.POSITIVE_INFINITY;
  let y1 = Number.NEGATIVE_INFINITY;
  for (let r = 0; r < hist.step.length; r++) {
    const lo = pct[r * NP] ?? Number.NaN;
    const hi = pct[r * NP + NP - 1] ?? Number.NaN;
    if (lo < y0) y0 = lo;
    if (hi > y1) y1 = hi;
  }
  if (!(y0 <= y1)) [y0, y1] = [0, 1];
  const bands = { rows: hist.step.length, steps: hist.step.slice(), pct, y0, y1 };
  bySeries.set(series, bands);
  return bands;
}

const PAD = { left: 44, right: 8, top: 6, bottom: 6 };

export function createDistribution(
  data: DistributionData,
  options: DistributionOptions = {},
): View<DistributionData> {
  const width = options.width ?? 480;
  const bandsH = 150;
  const ridgeH = 170;
  const title = h("div", { class: "nbviz-dist-title" });
  const tensors = h("div", { class: "nbviz-dist-tensors" });
  const bandSurface: Surface = surface("nbviz-dist-bands", width, bandsH, "percentile bands");
  const ridgeSurface: Surface = surface("nbviz-dist-ridges", width, ridgeH, "histograms over time");
  const marker = h("div", { class: "nbviz-dist-marker" });
  const ridgeMarker = h("div", { class: "nbviz-dist-marker nbviz-dist-ridge-marker" });
  const yLo = h("span", { class: "nbviz-dist-ylo" });
  const yHi = h("span", { class: "nbviz-dist-yhi" });
  const empty = h("div", { class: "nbviz-dist-empty" });
  const bandsBox = h("div", { class: "nbviz-dist-box" }, bandSurface.canvas, marker, yHi, yLo);
  const ridgeBox = h("div", { class: "nbviz-dist-box" }, ridgeSurface.canvas, ridgeMarker);
  const el = viewRoot("distribution", title, tensors, empty, bandsBox, ridgeBox);
  let current: DistributionData = { ...data };
  let shown: { series: SeriesInfo | null; bands: Bands | null; source: StatsSource | null } = {
    series: null,
    bands: null,
    source: null,
  };
  const plotW = width - PAD.left - PAD.right;

  function pickSeries(): { all: readonly SeriesInfo[]; series: SeriesInfo | null } {
    const { source, layer, kind, mode, tensor } = current;
    if (layer === null) return { all: [], series: null };
    const all = source.seriesOf(layer, kind, mode);
    return { all, series: all.find((s) => s.tensor === tensor) ?? all[0] ?? null };
  }

  function xOf(bands: Bands, step: number): number {
    const s0 = bands.steps[0] ?? 0;
    const s1 = bands.steps[bands.rows - 1] ?? 0;
    return PAD.left + linear(step, s0, s1, plotW);
  }

  function drawBands(bands: Bands): void {
    const ctx = bandSurface.ctx;
    if (ctx === null) return;
    ctx.clearRect(0, 0, width, bandsH);
    const plotH = bandsH - PAD.top - PAD.bottom;
    const y = (v: number): number => PAD.top + plotH - linear(v, bands.y0, bands.y1, plotH);
    const accent = paletteOf(el).accent;
    ctx.fillStyle = accent;
    const { pct, rows } = bands;
    for (let b = 0; b < NP >> 1; b++) {
      ctx.globalAlpha = 0.12 + 0.1 * b;
      ctx.beginPath();
      let started = false;
      for (let r = 0; r < rows; r++) {
        const v = pct[r * NP + b] ?? Number.NaN;
        if (Number.isNaN(v)) continue;
        const x = xOf(bands, bands.steps[r] ?? 0);
        if (started) ctx.lineTo(x, y(v));
        else ctx.moveTo(x, y(v));
        started = true;
      }
      for (let r = rows - 1; r >= 0; r--) {
        const v = pct[r * NP + NP - 1 - b] ?? Number.NaN;
        if (Number.isNaN(v)) continue;
        ctx.lineTo(xOf(bands, bands.steps[r] ?? 0), y(v));
      }
      ctx.closePath();
      ctx.fill();
    }
    ctx.globalAlpha = 1;
    ctx.strokeStyle = accent;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    let started = false;
    for (let r = 0; r < rows; r++) {
      const v = pct[r * NP + (NP >> 1)] ?? Number.NaN;
      if (Number.isNaN(v)) continue;
      const x = xOf(bands, bands.steps[r] ?? 0);
      if (started) ctx.lineTo(x, y(v));
      else ctx.moveTo(x, y(v));
      started = true;
    }
    ctx.stroke();
  }

  function ridgeY(bands: Bands, step: number): number {
    const s0 = bands.steps[0] ?? 0;
    const s1 = bands.steps[bands.rows - 1] ?? 0;
    const top = 30;
    return top + linear(step, s0, s1, ridgeH - top - 4);
  }

  function drawRidges(source: StatsSource, series: number, bands: Bands): void {
    const ctx = ridgeSurface.ctx;
    if (ctx === null) return;
    ctx.clearRect(0, 0, width, ridgeH);
    const hist = source.histograms(series);
    const n = bands.rows;
    const count = Math.min(RIDGES, n);
    const { fg, bg } = paletteOf(el);
    const xv = (v: number): number => PAD.left + linear(v, bands.y0, bands.y1, plotW);
    for (let k = 0; k < count; k++) {
      const r = count === 1 ? 0 : Math.round((k * (n - 1)) / (count - 1));
      const base = ridgeY(bands, bands.steps[r] ?? 0);
      const lo = hist.lo[r] ?? 0;
      const w = hist.width[r] ?? 0;
      let max = 0;
      for (let i = 0; i < BINS; i++) max = Math.max(max, hist.counts[r * BINS + i] ?? 0);
      if (!(max > 0)) continue;
      ctx.beginPath();
      ctx.moveTo(xv(lo), base);
      for (let i = 0; i < BINS; i++) {
        const c = hist.counts[r * BINS + i] ?? 0;
        const hgt = (c / max) * 28;
        ctx.lineTo(xv(lo + i * w), base - hgt);
        ctx.lineTo(xv(lo + (i + 1) * w), base - hgt);
      }
      ctx.lineTo(xv(lo + BINS * w), base);
      ctx.fillStyle = bg;
      ctx.globalAlpha = 0.85;
      ctx.fill();
      ctx.globalAlpha = 1;
      ctx.strokeStyle = fg;
      ctx.lineWidth = 1;
      ctx.stroke();
    }
  }

  function drawMarker(): void {
    const bands = shown.bands;
    if (bands === null || bands.rows === 0) {
      setHidden(marker, true);
      setHidden(ridgeMarker, true);
      return;
    }
    const r = indexAtOrBefore(bands.steps, current.step);
    const step = bands.steps[r] ?? 0;
    setHidden(marker, false);
    setHidden(ridgeMarker, false);
    marker.style.left = `${xOf(bands, step)}px`;
    ridgeMarker.style.top = `${ridgeY(bands, step)}px`;
    marker.title = `step ${step}`;
  }

  function draw(): void {
    const { source, layer, kind } = current;
    const { all, series } = pickSeries();
    if (
      series !== shown.series ||
      source !== shown.source ||
      all.length !== tensors.childElementCount
    ) {
      tensors.replaceChildren(
        ...(all.length > 1
          ? all.map((info) => {
              const b = h("button", {
                class: `nbviz-btn${info === series ? " is-selected" : ""}`,
                text: info.tensor === "" ? "output" : info.tensor,
                attrs: { type: "button", "data-series": info.id },
              });
              b.addEventListener("click", () => {
                current = { ...current, tensor: info.tensor };
                options.onTensor?.(info.tensor);
                draw();
              });
              return b;
            })
          : []),
      );
    }
    title.textContent =
      layer === null ? "Select a layer" : `${layerLabel(layer)} · ${KIND_LABELS[kind]}`;
    const bands = series === null ? null : bandsOf(source, series.id);
    const changed = series !== shown.series || source !== shown.source || bands !== shown.bands;
    shown = { series, bands, source };
    const none = bands === null || bands.rows === 0;
    setHidden(empty, !none);
    const note = series === null ? "not recorded" : none ? "no histograms yet" : "";
    if (empty.textContent !== note) empty.textContent = note;
    setHidden(bandsBox, none);
    setHidden(ridgeBox, none);
    if (changed && bands !== null && series !== null && !none) {
      yHi.textContent = formatValue(bands.y1);
      yLo.textContent = formatValue(bands.y0);
      drawBands(bands);
      drawRidges(source, series.id, bands);
    }
    drawMarker();
  }

  function clickStep(event: MouseEvent, axis: "x" | "y"): void {
    const bands = shown.bands;
    if (bands === null || bands.rows === 0) return;
    const rect = (event.currentTarget as HTMLElement).getBoundingClientRect();
    const s0 = bands.steps[0] ?? 0;
    const s1 = bands.steps[bands.rows - 1] ?? 0;
    const t =
      axis === "x"
        ? (event.clientX - rect.left - PAD.left) / plotW
        : (event.clientY - rect.top - 30) / (ridgeH - 34);
    const step = nearestStep(bands.steps, s0 + Math.min(Math.max(t, 0), 1) * (s1 - s0));
    if (step !== undefined) options.onStep?.(step);
  }
  const onBands = (e: MouseEvent): void => clickStep(e, "x");
  const onRidges = (e: MouseEvent): void => clickStep(e, "y");
  bandSurface.canvas.addEventListener("click", onBands);
  ridgeSurface.canvas.addEventListener("click", onRidges);

  draw();
  return {
    el,
    update(next: Partial<DistributionData>): void {
      const onlyStep = Object.keys(next).every((k) => k === "step");
      current = { ...current, ...next };
      // New rows (live training) redraw the charts; a step alone only moves the markers.
      const id = shown.series?.id;
      const grown =
        id !== undefined && current.source.histograms(id).step.length !== shown.bands?.rows;
      if (onlyStep && !grown) drawMarker();
      else draw();
    },
    destroy(): void {
      bandSurface.canvas.removeEventListener("click", onBands);
      ridgeSurface.canvas.removeEventListener("click", onRidges);
      el.replaceChildren();
    },
  };
}
