/**
 * Histogram panel: the selected layer at the current step, one row per kind (weights, weight
 * gradients, activations, activation gradients, updates when recorded), one cell per tensor of
 * the layer side by side, each with its histogram and summary statistics.
 *
 * Cells are built once per shape (the kinds recorded and how many tensors each has) and rebound
 * to the series of the layer shown: a switch to a layer of a shape seen before, as a step change,
 * only rewrites texts and attributes (no element is created, none restyled from scratch).
 *
 * Hooks: `.nbviz.nbviz-histpanel`; `.nbviz-hp-title`; `.nbviz-hp-row[data-kind]`;
 * `.nbviz-hp-cell[data-series][data-tensor]` with `svg.nbviz-hp-svg` (`path.nbviz-bars`: one
 * rectangle per non-empty bin), `td[data-stat]`, `.nbviz-hp-nodata` (shown when nothing at this step),
 * `.nbviz-hp-missing` (kind not recorded).
 */

import { h, layerLabel, s, setHidden, viewRoot } from "../draw/dom";
import { formatCount, formatValue } from "../format";
import { PROTOCOL } from "../protocol";
import { type BarGeometry, emptyGeometry, histogramGeometry } from "./histgeom";
import type { Kind, RecordField, SeriesInfo, StatsSource, View } from "./source";

export interface HistogramPanelData {
  source: StatsSource;
  layer: string | null;
  step: number;
  mode: "train" | "eval";
}

export const KIND_LABELS: Readonly<Record<Kind, string>> = {
  weight: "weights",
  grad: "weight gradients",
  activation: "activations",
  activation_grad: "activation gradients",
  update: "updates",
};
/** Rows always shown (a "not recorded" note when absent); `update` only when recorded. */
const ROW_KINDS: readonly Kind[] = ["weight", "grad", "activation", "activation_grad", "update"];
const OPTIONAL: ReadonlySet<Kind> = new Set<Kind>(["update"]);

interface StatRow {
  field: RecordField;
  label: string;
  count?: boolean;
  bad?: boolean;
  optional?: boolean;
}
export const STAT_ROWS: readonly StatRow[] = [
  { field: "min", label: "min" },
  { field: "max", label: "max" },
  { field: "mean", label: "mean" },
  { field: "std", label: "std" },
  { field: "l2", label: "L2" },
  { field: "zeros", label: "zeros", count: true },
  { field: "nan", label: "NaN", count: true, bad: true },
  { field: "posinf", label: "+Inf", count: true, bad: true },
  { field: "neginf", label: "−Inf", count: true, bad: true },
  { field: "dead", label: "dead", optional: true },
  { field: "saturated", label: "saturated", optional: true },
  { field: "ratio", label: "update/weight", optional: true },
];

const W = 240;
const H = 90;
const PAD = { left: 4, right: 4, top: 4, bottom: 16 };
const PLOT_W = W - PAD.left - PAD.right;
const PLOT_H = H - PAD.top - PAD.bottom;
const BINS = PROTOCOL.HIST_BINS;
/** Shapes whose built cells are kept for a switch back. */
const RECENT_SHAPES = 16;

/** A statistic as shown in the table. */
export function formatStat(row: StatRow, value: number): string {
  if (Number.isNaN(value)) return "—";
  if (row.count) return formatCount(value);
  if (row.field === "dead" || row.field === "saturated") return `${formatValue(100 * value)}%`;
  return formatValue(value);
}

interface Cell {
  series: SeriesInfo;
  el: HTMLDivElement;
  tensor: HTMLSpanElement;
  dtype: HTMLSpanElement;
  /** One path of every non-empty bin's rectangle (one attribute write per step). */
  bars: SVGPathElement;
  lo: SVGTextElement;
  hi: SVGTextElement;
  nodata: HTMLDivElement;
  sampled: HTMLDivElement;
  cells: Map<RecordField, { tr: HTMLTableRowElement; td: HTMLTableCellElement }>;
}

function tensorLabel(series: SeriesInfo): string {
  const call = series.call > 0 ? ` (call ${series.call + 1})` : "";
  return `${series.tensor === "" ? "output" : series.tensor}${call}`;
}

function buildCell(series: SeriesInfo): Cell {
  const bars = s("path", {
    class: "nbviz-bars",
    attrs: { transform: `translate(${PAD.left} ${PAD.top})` },
  });
  const lo = s("text", {
    class: "nbviz-tick-label",
    attrs: { x: PAD.left, y: H - 3, "text-anchor": "start" },
  });
  const hi = s("text", {
    class: "nbviz-tick-label",
    attrs: { x: W - PAD.right, y: H - 3, "text-anchor": "end" },
  });
  const svg = s(
    "svg",
    {
      class: "nbviz-hp-svg",
      attrs: { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img" },
    },
    s("line", {
      class: "nbviz-axis-line",
      attrs: {
        x1: PAD.left,
        x2: W - PAD.right,
        y1: H - PAD.bottom + 0.5,
        y2: H - PAD.bottom + 0.5,
      },
    }),
    bars,
    lo,
    hi,
  );
  const cells = new Map<RecordField, { tr: HTMLTableRowElement; td: HTMLTableCellElement }>();
  const body = h("tbody");
  for (const row of STAT_ROWS) {
    const td = h("td", { attrs: { "data-stat": row.field } });
    const tr = h("tr", {}, h("th", { attrs: { scope: "row" }, text: row.label }), td);
    cells.set(row.field, { tr, td });
    body.append(tr);
  }
  const nodata = h("div", { class: "nbviz-hp-nodata", text: "no data at this step" });
  const sampled = h("div", { class: "nbviz-hp-sampled" });
  const tensor = h("span", { class: "nbviz-hp-tensor" });
  const dtype = h("span", { class: "nbviz-hp-dtype" });
  const el = h(
    "div",
    { class: "nbviz-hp-cell" },
    h("div", { class: "nbviz-hp-head" }, tensor, dtype),
    h("div", { class: "nbviz-hp-body" }, svg, h("table", { class: "nbviz-stats" }, body)),
    nodata,
    sampled,
  );
  const cell = { series, el, tensor, dtype, bars, lo, hi, nodata, sampled, cells };
  labelCell(cell, series);
  return cell;
}

/** Names `series` in `cell` (its head and hooks). */
function labelCell(cell: Cell, series: SeriesInfo): void {
  cell.series = series;
  setText(cell.el, "data-series", String(series.id));
  setText(cell.el, "data-tensor", series.tensor);
  setText(cell.tensor, null, tensorLabel(series));
  setText(cell.dtype, null, series.dtype);
  setHidden(cell.dtype, series.dtype === "");
}

const geometry = emptyGeometry(BINS);

function px(v: number): string {
  return String(Math.round(v * 100) / 100);
}

/** Sets a text (attr null) or an attribute only when it changes: no style work for equal values. */
function setText(el: Element, attr: string | null, value: string): void {
  if (attr === null) {
    if (el.textContent !== value) el.textContent = value;
  } else if (el.getAttribute(attr) !== value) el.setAttribute(attr, value);
}

/** The rectangles of the non-empty bins as one SVG path (y down, baseline at plotH). */
export function barsPath(g: BarGeometry, plotH: number): string {
  let d = "";
  for (let i = 0; i < g.h.length; i++) {
    const bh = g.h[i] ?? 0;
    if (bh <= 0) continue;
    const w = px(g.w[i] ?? 0);
    d += `M${px(g.x[i] ?? 0)} ${px(plotH - bh)}h${w}v${px(bh)}h-${w}z`;
  }
  return d;
}

function drawCell(cell: Cell, source: StatsSource, step: number): void {
  const id = cell.series.id;
  const hist = source.histogramAt(id, step);
  const numel = source.statAt(id, "numel", step);
  const hasStats = !Number.isNaN(numel);
  cell.el.classList.toggle("is-empty", hist === null && !hasStats);
  setHidden(cell.nodata, hist !== null);
  if (hist === null) {
    setText(cell.nodata, null, hasStats ? "no histogram at this step" : "no data at this step");
  }
  histogramGeometry(hist?.counts ?? [], hist?.lo ?? 0, hist?.width ?? 0, PLOT_W, PLOT_H, geometry);
  const empty = hist === null || geometry.max === 0;
  setText(cell.bars, "d", empty ? "" : barsPath(geometry, PLOT_H));
  setText(cell.lo, null, empty ? "" : formatValue(geometry.domain[0]));
  setText(cell.hi, null, empty ? "" : formatValue(geometry.domain[1]));
  setText(
    cell.sampled,
    null,
    hist !== null && hasStats && hist.sample > 0 && hist.sample < numel
      ? `sampled ${formatCount(hist.sample)} of ${formatCount(numel)}`
      : "",
  );
  for (const row of STAT_ROWS) {
    const entry = cell.cells.get(row.field);
    if (entry === undefined) continue;
    const value = source.statAt(id, row.field, step);
    const hidden = row.optional === true && Number.isNaN(value);
    setHidden(entry.tr, hidden);
    setText(entry.td, null, formatStat(row, value));
    const bad = row.bad === true && value > 0;
    if (entry.td.classList.contains("is-bad") !== bad) entry.td.classList.toggle("is-bad", bad);
  }
}

interface Built {
  rows: HTMLElement[];
  /** In the order of the kinds' series. */
  cells: Cell[];
}

/** The rows of a layer's kinds, its cells bound to `kinds`' series. */
function buildRows(kinds: readonly { kind: Kind; series: readonly SeriesInfo[] }[]): Built {
  const rows: HTMLElement[] = [];
  const cells: Cell[] = [];
  for (const { kind, series } of kinds) {
    if (series.length === 0 && OPTIONAL.has(kind)) continue;
    const row = h(
      "div",
      { class: "nbviz-hp-row", attrs: { "data-kind": kind } },
      h("div", { class: "nbviz-hp-kind", text: KIND_LABELS[kind] }),
    );
    if (series.length === 0) {
      row.append(h("div", { class: "nbviz-hp-missing", text: "not recorded" }));
    } else {
      const line = h("div", { class: "nbviz-hp-cells" });
      for (const info of series) {
        const cell = buildCell(info);
        cells.push(cell);
        line.append(cell.el);
      }
      row.append(line);
    }
    rows.push(row);
  }
  return { rows, cells };
}

export function createHistogramPanel(data: HistogramPanelData): View<HistogramPanelData> {
  const title = h("div", { class: "nbviz-hp-title" });
  const rows = h("div", { class: "nbviz-hp-rows" });
  const el = viewRoot("histpanel", title, rows);
  let current: HistogramPanelData = { ...data };
  const nameLabel = h("span", { class: "nbviz-name" });
  const stepLabel = h("span", { class: "nbviz-hp-step" });
  let cells: Cell[] = [];
  let builtFor: { source: StatsSource; layer: string | null; mode: string; n: number } | null =
    null;
  // Rows and cells by shape, rebound to the layer shown (most recently shown last).
  let recent = new Map<string, Built>();
  let shown: Built | null = null;

  function build(): void {
    const { source, layer, mode } = current;
    const n = source.series.length;
    if (builtFor?.source !== source || builtFor.n !== n) recent = new Map();
    builtFor = { source, layer, mode, n };
    if (layer === null) {
      cells = [];
      shown = null;
      title.replaceChildren(h("span", { class: "nbviz-hp-prompt", text: "Select a layer" }));
      rows.replaceChildren();
      return;
    }
    if (title.firstChild !== nameLabel) title.replaceChildren(nameLabel, stepLabel);
    setText(nameLabel, null, layerLabel(layer));
    const kinds = ROW_KINDS.map((kind) => ({ kind, series: source.seriesOf(layer, kind, mode) }));
    const shape = kinds.map(({ series }) => series.length).join(",");
    let built = recent.get(shape);
    if (built === undefined) {
      built = buildRows(kinds);
      if (recent.size >= RECENT_SHAPES) {
        const oldest = recent.keys().next().value;
        if (oldest !== undefined) recent.delete(oldest);
      }
    } else recent.delete(shape);
    recent.set(shape, built); // most recent last
    if (shown !== built) rows.replaceChildren(...built.rows);
    shown = built;
    cells = built.cells;
    let i = 0;
    for (const { series } of kinds) {
      for (const info of series) {
        const cell = cells[i++];
        if (cell !== undefined && cell.series !== info) labelCell(cell, info);
      }
    }
  }

  function draw(): void {
    const { source, layer, mode } = current;
    if (
      builtFor === null ||
      builtFor.source !== source ||
      builtFor.layer !== layer ||
      builtFor.mode !== mode ||
      builtFor.n !== source.series.length
    )
      build();
    if (current.layer !== null) setText(stepLabel, null, ` step ${formatCount(current.step)}`);
    for (const cell of cells) drawCell(cell, source, current.step);
  }

  draw();
  return {
    el,
    update(next: Partial<HistogramPanelData>): void {
      current = { ...current, ...next };
      draw();
    },
    destroy(): void {
      cells = [];
      recent = new Map();
      shown = null;
      el.replaceChildren();
    },
  };
}
