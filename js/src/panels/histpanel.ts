/**
 * Histogram panel: the selected layer at the current step, one row per kind (weights, weight
 * gradients, activations, activation gradients, updates when recorded), one cell per tensor of
 * the layer side by side, each with its histogram and summary statistics.
 *
 * Cells are built when the layer changes; a step change only rewrites bar attributes and table
 * texts (no element is created).
 *
 * Hooks: `.nbviz.nbviz-histpanel`; `.nbviz-hp-title`; `.nbviz-hp-row[data-kind]`;
 * `.nbviz-hp-cell[data-series][data-tensor]` with `svg.nbviz-hp-svg` (`path.nbviz-bars`: one
 * rectangle per non-empty bin), `td[data-stat]`, `.nbviz-hp-nodata` (shown when nothing at this step),
 * `.nbviz-hp-missing` (kind not recorded).
 */

import { h, layerLabel, s, viewRoot } from "../draw/dom";
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
/** Layers whose built cells are kept for a switch back. */
const RECENT_LAYERS = 16;

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
  const el = h(
    "div",
    {
      class: "nbviz-hp-cell",
      attrs: { "data-series": series.id, "data-tensor": series.tensor },
    },
    h(
      "div",
      { class: "nbviz-hp-head" },
      h("span", { class: "nbviz-hp-tensor", text: tensorLabel(series) }),
      series.dtype ? h("span", { class: "nbviz-hp-dtype", text: series.dtype }) : "",
    ),
    h("div", { class: "nbviz-hp-body" }, svg, h("table", { class: "nbviz-stats" }, body)),
    nodata,
    sampled,
  );
  return { series, el, bars, lo, hi, nodata, sampled, cells };
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
  cell.nodata.hidden = hist !== null || hasStats;
  if (hist === null) {
    cell.nodata.textContent = hasStats ? "no histogram at this step" : "no data at this step";
    cell.nodata.hidden = false;
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
    if (entry.tr.hidden !== hidden) entry.tr.hidden = hidden;
    setText(entry.td, null, formatStat(row, value));
    const bad = row.bad === true && value > 0;
    if (entry.td.classList.contains("is-bad") !== bad) entry.td.classList.toggle("is-bad", bad);
  }
}

export function createHistogramPanel(data: HistogramPanelData): View<HistogramPanelData> {
  const title = h("div", { class: "nbviz-hp-title" });
  const rows = h("div", { class: "nbviz-hp-rows" });
  const el = viewRoot("histpanel", title, rows);
  let current: HistogramPanelData = { ...data };
  let cells: Cell[] = [];
  let builtFor: { source: StatsSource; layer: string | null; mode: string; n: number } | null =
    null;
  // Recently shown layers' rows and cells, reused on a switch back (most recent last).
  let recent = new Map<string, { rows: HTMLElement[]; cells: Cell[] }>();

  function build(): void {
    const { source, layer, mode } = current;
    const n = source.series.length;
    if (builtFor?.source !== source || builtFor.n !== n) recent = new Map();
    cells = [];
    builtFor = { source, layer, mode, n };
    if (layer === null) {
      title.replaceChildren(h("span", { class: "nbviz-hp-prompt", text: "Select a layer" }));
      rows.replaceChildren();
      return;
    }
    title.replaceChildren(
      h("span", { class: "nbviz-name", text: layerLabel(layer) }),
      h("span", { class: "nbviz-hp-step" }),
    );
    const key = `${mode}\u0000${layer}`;
    const hit = recent.get(key);
    if (hit !== undefined) {
      recent.delete(key);
      recent.set(key, hit);
      cells = hit.cells;
      rows.replaceChildren(...hit.rows);
      return;
    }
    const out: HTMLElement[] = [];
    for (const kind of ROW_KINDS) {
      const series = source.seriesOf(layer, kind, mode);
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
      out.push(row);
    }
    rows.replaceChildren(...out);
    recent.set(key, { rows: out, cells });
    if (recent.size > RECENT_LAYERS) {
      const oldest = recent.keys().next().value;
      if (oldest !== undefined) recent.delete(oldest);
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
    const stepLabel = title.querySelector(".nbviz-hp-step");
    if (stepLabel) stepLabel.textContent = ` step ${formatCount(current.step)}`;
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
      el.replaceChildren();
    },
  };
}
