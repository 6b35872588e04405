/**
 * Gradient flow: the per-layer gradient norm at the current step (bars, log scale on the run's
 * domain so bars are comparable across steps) and a layer x step heatmap of any metric, both on
 * canvas. The current step and the selected layer are markers; clicking a bar selects its layer,
 * clicking a heatmap cell selects its layer and step.
 *
 * The canvases say nothing to a screen reader (or a test): the bars' values are also in a
 * visually hidden table, and the hover line carries the hovered cell's layer, step and value.
 * The table follows the step once the step has stayed TABLE_QUIET_MS and the page is idle, not
 * in the frame that redraws the bars: rewriting 200 cells and laying them out cost about as much
 * as the rest of a slider step, in every step of a scrub. Its `data-step` is written with its
 * values.
 *
 * Hooks: `.nbviz.nbviz-gradflow`; `canvas.nbviz-gf-bars`, `canvas.nbviz-gf-heat`;
 * `table.nbviz-gf-table[data-step]` (`tr[data-layer]`, `td[data-value]`: the bars' values);
 * `.nbviz-gf-hover[data-layer][data-step][data-value]`; `select.nbviz-gf-metric`;
 * `.nbviz-gf-step-marker`, `.nbviz-gf-layer-marker`; `.nbviz-legend`.
 */

import { h, layerLabel, setHidden, viewRoot, whenIdle } from "../draw/dom";
import { formatValue } from "../format";
import { paletteOf, surface } from "./canvas";
import { indexAtOrBefore } from "./follow";
import { cellAt, type Matrix, metricMatrix, recordedLayers } from "./heatmap";
import { createLegend, METRIC_LABELS, scaleForRun } from "./scale";
import { METRICS, type Metric, type StatsSource, type View } from "./source";

export interface GradientFlowData {
  source: StatsSource;
  step: number;
  /** Metric of the heatmap. */
  metric: Metric;
  selected: string | null;
  /** Layers in display order; null: those recorded, in capture order. */
  layers: readonly string[] | null;
}

export interface GradientFlowOptions {
  onSelect?: (layer: string) => void;
  onStep?: (step: number) => void;
  onMetric?: (metric: Metric) => void;
  width?: number;
}

const BARS_H = 140;
const HEAT_H = 220;
const LEFT = 8;
/** The hidden table is rewritten once the step has not changed for this long (and when idle). */
const TABLE_QUIET_MS = 150;

export function createGradientFlow(
  data: GradientFlowData,
  options: GradientFlowOptions = {},
): View<GradientFlowData> {
  const width = options.width ?? 560;
  const bars = surface("nbviz-gf-bars", width, BARS_H, "gradient norm per layer");
  const heat = surface("nbviz-gf-heat", width, HEAT_H, "layer by step heatmap");
  const select = h("select", { class: "nbviz-gf-metric", attrs: { "aria-label": "Metric" } });
  for (const m of METRICS)
    select.append(h("option", { text: METRIC_LABELS[m], attrs: { value: m } }));
  const hover = h("div", { class: "nbviz-gf-hover" });
  const stepMarker = h("div", { class: "nbviz-gf-step-marker" });
  const layerMarker = h("div", { class: "nbviz-gf-layer-marker" });
  const legendBox = h("div", { class: "nbviz-gf-legend" });
  const barRange = h("div", { class: "nbviz-gf-range" });
  const caption = h("caption");
  const tbody = h("tbody");
  const table = h("table", { class: "nbviz-gf-table" }, caption, tbody);
  const el = viewRoot(
    "gradflow",
    h("div", { class: "nbviz-gf-title", text: "Gradient norm per layer (log)" }),
    barRange,
    bars.canvas,
    // Contained: a change in the table lays out the table alone, not the page around it.
    h("div", { class: "nbviz-sr-only nbviz-gf-table-box" }, table),
    h("div", { class: "nbviz-gf-head" }, h("span", { text: "Heatmap of " }), select, legendBox),
    h("div", { class: "nbviz-dist-box" }, heat.canvas, stepMarker, layerMarker),
    hover,
  );
  let current: GradientFlowData = { ...data };
  let matrix: Matrix | null = null;
  let matrixKey = "";
  let matrixThinnings = 0;
  let layers: readonly string[] = [];
  let tableLayers: readonly string[] | null = null;
  /** The table's value cells and the values they show (null: not written yet), as `layers`. */
  let tableCells: HTMLTableCellElement[] = [];
  let tableValues: (number | undefined | null)[] = [];
  let tableTimer: ReturnType<typeof setTimeout> | null = null;
  let destroyed = false;
  /** The bars' values at `barValues.step` (the table reuses them). */
  let barValues: { step: number; source: StatsSource; values: ReadonlyMap<string, number> } | null =
    null;
  const image = heat.ctx ? document.createElement("canvas") : null;
  const plotW = width - 2 * LEFT;

  function layerList(): readonly string[] {
    return current.layers ?? recordedLayers(current.source);
  }

  function drawHeat(): void {
    const { source, metric } = current;
    const key = `${metric}:${source.lastStep()}:${source.series.length}:${source.steps().step.length}:${source.thinnings ?? 0}`;
    const list = layerList();
    if (matrix !== null && key === matrixKey && list.length === layers.length) return;
    layers = list;
    matrixKey = key;
    // New steps only, when it can; rows thinned at old steps: all again.
    const thinnings = source.thinnings ?? 0;
    matrix = metricMatrix(source, metric, layers, thinnings === matrixThinnings ? matrix : null);
    matrixThinnings = thinnings;
    const scale = scaleForRun(source, metric);
    legendBox.replaceChildren(createLegend(scale));
    select.value = metric;
    const ctx = heat.ctx;
    if (ctx === null || image === null) return;
    const cols = matrix.steps.length;
    const rows = layers.length;
    ctx.clearRect(0, 0, width, HEAT_H);
    if (cols === 0 || rows === 0) return;
    image.width = cols;
    image.height = rows;
    const ictx = image.getContext("2d");
    if (ictx === null) return;
    const pixels = ictx.createImageData(cols, rows);
    const px = pixels.data;
    for (let i = 0; i < rows * cols; i++) {
      scale.rgbInto(matrix.values[i] ?? Number.NaN, px, i * 4);
      px[i * 4 + 3] = 255;
    }
    ictx.putImageData(pixels, 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(image, LEFT, 0, plotW, HEAT_H);
  }

  function drawBars(): void {
    const { source, step, selected } = current;
    const ctx = bars.ctx;
    const scale = scaleForRun(source, "grad_norm");
    const [d0, d1] = scale.domain;
    barRange.textContent = `${formatValue(d0)} … ${formatValue(d1)}`;
    const values = source.metricAt("grad_norm", step);
    barValues = { step, source, values };
    queueTable();
    if (ctx === null) return;
    ctx.clearRect(0, 0, width, BARS_H);
    const n = layers.length;
    if (n === 0) return;
    const bw = plotW / n;
    const { accent, bad, border: faint } = paletteOf(el);
    const plotH = BARS_H - 4;
    for (let i = 0; i < n; i++) {
      const layer = layers[i] ?? "";
      const v = values.get(layer) ?? Number.NaN;
      const x = LEFT + i * bw;
      if (Number.isNaN(v)) continue;
      if (!Number.isFinite(v)) {
        ctx.fillStyle = bad;
        ctx.fillRect(x, 0, Math.max(bw - 1, 1), plotH);
        continue;
      }
      const t = Math.max(scale.position(v), 0.01);
      ctx.fillStyle = layer === selected ? bad : accent;
      ctx.fillRect(x, 4 + plotH * (1 - t), Math.max(bw - (bw > 3 ? 1 : 0), 0.5), plotH * t);
    }
    ctx.fillStyle = faint;
    ctx.fillRect(LEFT, BARS_H - 1, plotW, 1);
  }

  function queueTable(): void {
    if (tableTimer !== null) clearTimeout(tableTimer);
    tableTimer = setTimeout(() => {
      tableTimer = null;
      whenIdle(() => {
        if (destroyed || tableTimer !== null) return;
        // Laid out now, in the idle time: else the next frame (the next step's) would pay it.
        if (drawTable() && table.isConnected) table.getBoundingClientRect();
      });
    }, TABLE_QUIET_MS);
  }

  /**
   * The bars' values in the hidden table: rows rebuilt when the layers change, else the cells
   * whose value changed rewritten. Says whether it changed anything.
   */
  function drawTable(): boolean {
    const { source, step } = current;
    const values =
      barValues !== null && barValues.step === step && barValues.source === source
        ? barValues.values
        : source.metricAt("grad_norm", step);
    let changed = false;
    if (tableLayers !== layers) {
      changed = true;
      tableLayers = layers;
      tableCells = layers.map(() => h("td"));
      tableValues = layers.map(() => null);
      tbody.replaceChildren(
        ...layers.map((layer, i) =>
          h(
            "tr",
            { attrs: { "data-layer": layer } },
            h("th", { text: layerLabel(layer) }),
            tableCells[i] ?? null,
          ),
        ),
      );
    }
    if (table.dataset.step !== String(step)) {
      changed = true;
      caption.textContent = `Gradient norm per layer at step ${step}`;
      table.dataset.step = String(step);
    }
    for (let i = 0; i < layers.length; i++) {
      const td = tableCells[i];
      if (td === undefined) continue;
      const v = values.get(layers[i] ?? "");
      if (tableValues[i] !== null && Object.is(tableValues[i], v)) continue;
      changed = true;
      tableValues[i] = v;
      td.dataset.value = v === undefined ? "" : String(v);
      td.textContent = v === undefined ? "–" : formatValue(v);
    }
    return changed;
  }

  function drawMarkers(): void {
    const m = matrix;
    if (m === null || m.steps.length === 0) {
      setHidden(stepMarker, true);
      setHidden(layerMarker, true);
      return;
    }
    const cols = m.steps.length;
    const col = indexAtOrBefore(m.steps, current.step);
    setHidden(stepMarker, false);
    stepMarker.style.left = `${LEFT + ((col + 0.5) / cols) * plotW}px`;
    const row = current.selected === null ? -1 : layers.indexOf(current.selected);
    setHidden(layerMarker, row < 0);
    if (row >= 0) layerMarker.style.top = `${((row + 0.5) / layers.length) * HEAT_H}px`;
  }

  function draw(): void {
    drawHeat();
    drawBars();
    drawMarkers();
  }

  function barClick(event: MouseEvent): void {
    const rect = bars.canvas.getBoundingClientRect();
    const hit = cellAt(event.clientX - rect.left - LEFT, 0, plotW, 1, 1, layers.length);
    const layer = hit === null ? undefined : layers[hit.col];
    if (layer !== undefined) options.onSelect?.(layer);
  }
  function heatClick(event: MouseEvent): void {
    const m = matrix;
    if (m === null) return;
    const rect = heat.canvas.getBoundingClientRect();
    const hit = cellAt(
      event.clientX - rect.left - LEFT,
      event.clientY - rect.top,
      plotW,
      HEAT_H,
      layers.length,
      m.steps.length,
    );
    if (hit === null) return;
    const layer = layers[hit.row];
    const step = m.steps[hit.col];
    if (layer !== undefined) options.onSelect?.(layer);
    if (step !== undefined) options.onStep?.(step);
  }
  function showHover(layer: string | null, step = 0, value = 0, text = ""): void {
    if (layer === null) {
      hover.textContent = "";
      delete hover.dataset.layer;
      delete hover.dataset.step;
      delete hover.dataset.value;
      return;
    }
    hover.textContent = `${layerLabel(layer)} · step ${step} · ${text}`;
    hover.dataset.layer = layer;
    hover.dataset.step = String(step);
    hover.dataset.value = String(value);
  }
  function barMove(event: MouseEvent): void {
    const rect = bars.canvas.getBoundingClientRect();
    const hit = cellAt(event.clientX - rect.left - LEFT, 0, plotW, 1, 1, layers.length);
    const layer = hit === null ? undefined : layers[hit.col];
    if (layer === undefined) {
      showHover(null);
      return;
    }
    const v = current.source.metricAt("grad_norm", current.step).get(layer) ?? Number.NaN;
    showHover(layer, current.step, v, `gradient norm ${formatValue(v)}`);
  }
  function heatMove(event: MouseEvent): void {
    const m = matrix;
    if (m === null) return;
    const rect = heat.canvas.getBoundingClientRect();
    const hit = cellAt(
      event.clientX - rect.left - LEFT,
      event.clientY - rect.top,
      plotW,
      HEAT_H,
      layers.length,
      m.steps.length,
    );
    if (hit === null) {
      showHover(null);
      return;
    }
    const v = m.values[hit.row * m.steps.length + hit.col] ?? Number.NaN;
    showHover(layers[hit.row] ?? "", m.steps[hit.col] ?? 0, v, formatValue(v));
  }
  function onMetric(): void {
    const metric = select.value as Metric;
    current = { ...current, metric };
    options.onMetric?.(metric);
    draw();
  }
  bars.canvas.addEventListener("click", barClick);
  bars.canvas.addEventListener("mousemove", barMove);
  heat.canvas.addEventListener("click", heatClick);
  heat.canvas.addEventListener("mousemove", heatMove);
  select.addEventListener("change", onMetric);

  draw();
  return {
    el,
    update(next: Partial<GradientFlowData>): void {
      current = { ...current, ...next };
      draw();
    },
    destroy(): void {
      destroyed = true;
      if (tableTimer !== null) clearTimeout(tableTimer);
      bars.canvas.removeEventListener("click", barClick);
      bars.canvas.removeEventListener("mousemove", barMove);
      heat.canvas.removeEventListener("click", heatClick);
      heat.canvas.removeEventListener("mousemove", heatMove);
      select.removeEventListener("change", onMetric);
      el.replaceChildren();
    },
  };
}
