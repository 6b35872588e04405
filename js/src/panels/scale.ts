/**
 * Colour scales for the graph overlay and the heatmap: one per metric, its domain taken from the
 * whole run (so colours stay put while scrubbing), log for norms, stds and ratios, clamped.
 */

import { h } from "../draw/dom";
import { formatValue } from "../format";
import type { Metric, StatsSource } from "./source";

export type ScaleType = "log" | "linear" | "count";

export const SCALE_TYPES: Readonly<Record<Metric, ScaleType>> = {
  grad_norm: "log",
  activation_std: "log",
  update_ratio: "log",
  dead_fraction: "linear",
  nonfinite: "count",
};

export const METRIC_LABELS: Readonly<Record<Metric, string>> = {
  grad_norm: "gradient norm",
  activation_std: "activation std",
  update_ratio: "update / weight",
  dead_fraction: "dead fraction",
  nonfinite: "NaN/Inf count",
};

/** Colour of "no value" (NaN, layer not recorded at this step). */
export const NO_DATA_COLOR = "rgb(200, 200, 200)";
const NO_DATA_RGB = [200, 200, 200] as const;

// Viridis, 9 stops; the non-finite count runs from pale grey to red.
const VIRIDIS: readonly (readonly [number, number, number])[] = [
  [68, 1, 84],
  [71, 45, 123],
  [59, 82, 139],
  [44, 114, 142],
  [33, 145, 140],
  [40, 174, 128],
  [94, 201, 98],
  [170, 220, 50],
  [253, 231, 37],
];
const REDS: readonly (readonly [number, number, number])[] = [
  [235, 235, 235],
  [252, 187, 161],
  [251, 106, 74],
  [203, 24, 29],
  [103, 0, 13],
];

export interface ColorScale {
  metric: Metric;
  type: ScaleType;
  /** [lo, hi]; for log scales both positive. */
  domain: readonly [number, number];
  /** Position 0..1 of a value, clamped; NaN for no value (NaN, or <= 0 on a log scale: none). */
  position(value: number): number;
  /** CSS colour of a value; NO_DATA_COLOR for NaN. */
  colorFor(value: number): string;
  /** Writes r, g, b (0..255) of a value at out[offset..offset+2] (no allocation). */
  rgbInto(value: number, out: Uint8ClampedArray | number[], offset: number): void;
}

/** Extends the extent [lo, hi] with the values a scale of this type uses (see `domainOf`). */
export function extend(
  extent: [number, number],
  values: Iterable<number>,
  type: ScaleType,
): [number, number] {
  for (const v of values) {
    if (!Number.isFinite(v) || (type === "log" && v <= 0)) continue;
    if (v < extent[0]) extent[0] = v;
    if (v > extent[1]) extent[1] = v;
  }
  return extent;
}

/** The scale domain of an extent of values: degenerate domains are widened. */
export function domainFromExtent(lo: number, hi: number, type: ScaleType): [number, number] {
  if (type === "log") {
    if (!(lo <= hi)) return [1e-6, 1];
    return lo === hi ? [lo / 10, hi * 10] : [lo, hi];
  }
  if (type === "count") return [0, Math.max(1, hi > 0 ? hi : 1)];
  if (!(lo <= hi)) return [0, 1];
  const l = Math.min(lo, 0);
  return l === hi ? [l, l + 1] : [l, hi];
}

/**
 * The domain of a scale from every value of the run: log takes the finite positive values,
 * linear and count take the finite ones (from 0); degenerate domains are widened.
 */
export function domainOf(values: Iterable<number>, type: ScaleType): [number, number] {
  const [lo, hi] = extend([Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY], values, type);
  return domainFromExtent(lo, hi, type);
}

function ramp(
  stops: readonly (readonly [number, number, number])[],
  t: number,
  out: Uint8ClampedArray | number[],
  offset: number,
): void {
  const x = t * (stops.length - 1);
  const i = Math.min(Math.floor(x), stops.length - 2);
  const f = x - i;
  const a = stops[i] ?? [0, 0, 0];
  const b = stops[i + 1] ?? a;
  out[offset] = Math.round(a[0] + (b[0] - a[0]) * f);
  out[offset + 1] = Math.round(a[1] + (b[1] - a[1]) * f);
  out[offset + 2] = Math.round(a[2] + (b[2] - a[2]) * f);
}

export function createScale(metric: Metric, domain: readonly [number, number]): ColorScale {
  const type = SCALE_TYPES[metric];
  const [d0, d1] = domain;
  const l0 = Math.log(d0);
  const l1 = Math.log(d1);
  const c1 = Math.log1p(d1);
  const stops = metric === "nonfinite" ? REDS : VIRIDIS;
  function position(value: number): number {
    if (Number.isNaN(value)) return Number.NaN;
    let t: number;
    if (type === "log") {
      if (value <= 0) return 0; // below any positive domain: clamped low
      t = (Math.log(value) - l0) / (l1 - l0);
    } else if (type === "count") {
      t = value <= 0 ? 0 : Math.log1p(value) / c1;
    } else {
      t = (value - d0) / (d1 - d0);
    }
    if (!(t > 0)) return 0; // also -Infinity
    return Math.min(t, 1);
  }
  const scratch = [0, 0, 0];
  function rgbInto(value: number, out: Uint8ClampedArray | number[], offset: number): void {
    const t = position(value);
    if (Number.isNaN(t)) {
      out[offset] = NO_DATA_RGB[0];
      out[offset + 1] = NO_DATA_RGB[1];
      out[offset + 2] = NO_DATA_RGB[2];
      return;
    }
    ramp(stops, t, out, offset);
  }
  return {
    metric,
    type,
    domain: [d0, d1],
    position,
    rgbInto,
    colorFor(value: number): string {
      if (Number.isNaN(position(value))) return NO_DATA_COLOR;
      rgbInto(value, scratch, 0);
      return `rgb(${scratch[0]}, ${scratch[1]}, ${scratch[2]})`;
    },
  };
}

/** Every value of a metric at the train steps from index `from` on (one metricAt per step). */
export function* runValues(source: StatsSource, metric: Metric, from = 0): Generator<number> {
  const { step } = source.steps();
  for (let i = from; i < step.length; i++) {
    for (const v of source.metricAt(metric, step[i] ?? 0).values()) yield v;
  }
}

interface Cached {
  scale: ColorScale;
  extent: [number, number];
  /** Train steps counted, the first of them, the series count and last step then. */
  counted: number;
  first: number;
  series: number;
  last: number;
}
const cache = new WeakMap<StatsSource, Map<Metric, Cached>>();

/**
 * The scale of a metric over the whole run, cached per source: scrubbing never changes it. New
 * train steps (live training) only extend it with their own values; new series recount the run.
 * Rows replaced at old steps (retention thinning) can widen it but never narrow it.
 */
export function scaleForRun(source: StatsSource, metric: Metric): ColorScale {
  let bySource = cache.get(source);
  if (bySource === undefined) {
    bySource = new Map();
    cache.set(source, bySource);
  }
  const steps = source.steps().step;
  const last = source.lastStep();
  const series = source.series.length;
  const hit = bySource.get(metric);
  if (hit?.counted === steps.length && hit.last === last && hit.series === series) return hit.scale;
  const type = SCALE_TYPES[metric];
  const incremental =
    hit !== undefined &&
    hit.series === series &&
    hit.first === (steps[0] ?? -1) &&
    steps.length >= hit.counted;
  const extent: [number, number] = incremental
    ? hit.extent
    : [Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY];
  extend(extent, runValues(source, metric, incremental ? hit.counted : 0), type);
  const domain: [number, number] =
    metric === "dead_fraction" ? [0, 1] : domainFromExtent(extent[0], extent[1], type);
  const same =
    hit !== undefined && hit.scale.domain[0] === domain[0] && hit.scale.domain[1] === domain[1];
  const scale = same ? hit.scale : createScale(metric, domain);
  bySource.set(metric, {
    scale,
    extent,
    counted: steps.length,
    first: steps[0] ?? -1,
    series,
    last,
  });
  return scale;
}

/** Layer -> CSS colour of `metric` at `step`, on the run's scale; NO_DATA_COLOR where absent. */
export function overlayColors(
  source: StatsSource,
  metric: Metric,
  step: number,
  layers: Iterable<string>,
): Map<string, string> {
  const scale = scaleForRun(source, metric);
  const values = source.metricAt(metric, step);
  const out = new Map<string, string>();
  for (const layer of layers) out.set(layer, scale.colorFor(values.get(layer) ?? Number.NaN));
  return out;
}

const LEGEND_SWATCHES = 24;

/** A legend: a colour strip with the domain's ends, the scale type and the no-data swatch. */
export function createLegend(scale: ColorScale): HTMLDivElement {
  const strip = h("div", { class: "nbviz-legend-strip" });
  const [d0, d1] = scale.domain;
  for (let i = 0; i < LEGEND_SWATCHES; i++) {
    const t = i / (LEGEND_SWATCHES - 1);
    const value =
      scale.type === "log"
        ? Math.exp(Math.log(d0) + t * (Math.log(d1) - Math.log(d0)))
        : scale.type === "count"
          ? Math.expm1(t * Math.log1p(d1))
          : d0 + t * (d1 - d0);
    const swatch = h("span", { class: "nbviz-legend-swatch", title: formatValue(value) });
    swatch.style.background = scale.colorFor(value);
    strip.append(swatch);
  }
  const none = h("span", { class: "nbviz-legend-swatch nbviz-legend-none" });
  none.style.background = NO_DATA_COLOR;
  return h(
    "div",
    { class: "nbviz-legend", attrs: { "data-metric": scale.metric, "data-scale": scale.type } },
    h("span", { class: "nbviz-legend-title", text: METRIC_LABELS[scale.metric] }),
    h("span", { class: "nbviz-legend-lo", text: formatValue(d0) }),
    strip,
    h("span", { class: "nbviz-legend-hi", text: formatValue(d1) }),
    scale.type === "linear" ? "" : h("span", { class: "nbviz-legend-type", text: "log" }),
    none,
    h("span", { class: "nbviz-legend-none-label", text: "no data" }),
  );
}
