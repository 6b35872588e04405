/**
 * Histograms and statistics of the selected layer's own parameters: one card per tensor.
 * Pure drawing; the exact-histogram requests are made by widget.ts through `onExact`.
 *
 * Hooks: `.nbviz.nbviz-histogram`; `.nbviz-hist-title`; cards `.nbviz-hist-card[data-tensor=
 * "<tensor name>"]` with `svg.nbviz-hist-svg` (`rect.nbviz-bar` per non-empty bin),
 * `table.nbviz-stats` (`td[data-stat="min"|"max"|"mean"|"std"|"zeros"|"nan"|"posinf"|"neginf"]`,
 * `.is-bad` on non-zero NaN/Inf counts), `.nbviz-sampled` with `button.nbviz-exact`,
 * `.nbviz-error`, `.nbviz-lazy`; `.nbviz-hist-none` for layers without parameters.
 */

import { type Histogram, type HistTable, histogramOf, type StatsTable, stat } from "../data";
import { formatCount, formatOutputs, formatShape, formatValue, plural } from "../format";
import type { LayerRow, StatField, TensorRow } from "../protocol";
import { h, layerLabel, s, viewRoot } from "./dom";

export interface Bar {
  /** Bin index. */
  index: number;
  x: number;
  y: number;
  width: number;
  height: number;
  count: number;
  /** The bin's value range [x0, x1). */
  x0: number;
  x1: number;
}

export interface PlotSize {
  width: number;
  height: number;
  /** Smallest height of a non-empty bar, so single counts stay visible (default 1). */
  minBarHeight?: number;
}

/**
 * Bar rectangles of a histogram in a `width` x `height` plot area (y down): bin i spans
 * x = i*width/n .. (i+1)*width/n, and its height is count/max(counts) of the plot height.
 * Empty (and non-finite) bins get no bar; an all-empty histogram gives none.
 */
export function histogramBars(
  counts: ArrayLike<number>,
  lo: number,
  binWidth: number,
  size: PlotSize,
): Bar[] {
  const n = counts.length;
  let max = 0;
  for (let i = 0; i < n; i++) {
    const c = counts[i] ?? 0;
    if (Number.isFinite(c) && c > max) max = c;
  }
  if (n === 0 || max <= 0) return [];
  const barWidth = size.width / n;
  const minHeight = Math.min(size.minBarHeight ?? 1, size.height);
  const bars: Bar[] = [];
  for (let i = 0; i < n; i++) {
    const count = counts[i] ?? 0;
    if (!(Number.isFinite(count) && count > 0)) continue;
    const height = Math.max((count / max) * size.height, minHeight);
    bars.push({
      index: i,
      x: i * barWidth,
      y: size.height - height,
      width: barWidth,
      height,
      count,
      x0: lo + i * binWidth,
      x1: lo + (i + 1) * binWidth,
    });
  }
  return bars;
}

/** SVG coordinates with at most 2 decimals, for stable, compact output. */
function px(v: number): string {
  return String(Math.round(v * 100) / 100);
}

/**
 * The bins from the first to the last non-empty one: the stable grid can span up to twice the
 * data's range, and drawing the empty rest would squeeze the data into a corner.
 */
export function occupiedBins(counts: ArrayLike<number>): { first: number; last: number } | null {
  let first = -1;
  let last = -1;
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i] ?? 0;
    if (Number.isFinite(c) && c > 0) {
      if (first < 0) first = i;
      last = i;
    }
  }
  return first < 0 ? null : { first, last };
}

const CHART = { width: 320, height: 120, left: 8, right: 8, top: 14, bottom: 20 } as const;

/** The inline SVG bar chart of one histogram (deterministic for the same input). */
export function histogramSvg(histogram: Histogram, label: string): SVGSVGElement {
  const plotW = CHART.width - CHART.left - CHART.right;
  const plotH = CHART.height - CHART.top - CHART.bottom;
  const occupied = occupiedBins(histogram.counts);
  const first = occupied?.first ?? 0;
  const last = occupied?.last ?? histogram.counts.length - 1;
  const counts = Array.prototype.slice.call(histogram.counts, first, last + 1) as number[];
  const width = histogram.width;
  const lo = histogram.lo + first * width;
  const hi = lo + counts.length * width;
  const bars = histogramBars(counts, lo, width, { width: plotW, height: plotH });
  const max = bars.reduce((m, b) => Math.max(m, b.count), 0);
  const baseline = CHART.top + plotH;
  const axisY = baseline + 0.5;

  const svg = s("svg", {
    class: "nbviz-hist-svg",
    attrs: {
      viewBox: `0 0 ${CHART.width} ${CHART.height}`,
      width: CHART.width,
      height: CHART.height,
      role: "img",
      "aria-label": `Histogram of ${label}: ${counts.length} bins from ${formatValue(lo)} to ${formatValue(hi)}`,
    },
  });
  const plot = s("g", {
    class: "nbviz-bars",
    attrs: { transform: `translate(${CHART.left} ${CHART.top})` },
  });
  for (const bar of bars) {
    plot.append(
      s("rect", {
        class: "nbviz-bar",
        attrs: {
          x: px(bar.x),
          y: px(bar.y),
          width: px(bar.width),
          height: px(bar.height),
          "data-bin": bar.index + first,
        },
        title: `[${formatValue(bar.x0)}, ${formatValue(bar.x1)}): ${formatCount(bar.count)}`,
      }),
    );
  }
  const axis = s(
    "g",
    { class: "nbviz-axis" },
    s("line", {
      class: "nbviz-axis-line",
      attrs: { x1: CHART.left, x2: CHART.left + plotW, y1: px(axisY), y2: px(axisY) },
    }),
  );
  const tick = (value: number, x: number, anchor: string, kind: string): void => {
    axis.append(
      s("line", {
        class: "nbviz-tick",
        attrs: { x1: px(x), x2: px(x), y1: px(axisY), y2: px(axisY + 4) },
      }),
      s("text", {
        class: `nbviz-tick-label nbviz-tick-${kind}`,
        attrs: { x: px(x), y: px(CHART.height - 4), "text-anchor": anchor },
        text: formatValue(value),
      }),
    );
  };
  tick(lo, CHART.left, "start", "lo");
  tick(hi, CHART.left + plotW, "end", "hi");
  if (lo < 0 && hi > 0) {
    const x = CHART.left + (-lo / (hi - lo)) * plotW;
    // Only when it does not collide with the end labels.
    if (x - CHART.left > plotW * 0.2 && CHART.left + plotW - x > plotW * 0.2)
      tick(0, x, "middle", "zero");
  }
  axis.append(
    s("text", {
      class: "nbviz-ymax",
      attrs: { x: CHART.left, y: CHART.top - 4, "text-anchor": "start" },
      text: `max ${formatCount(max)}`,
    }),
  );
  svg.append(axis, plot);
  return svg;
}

const STAT_ROWS: readonly { field: StatField; label: string; count: boolean }[] = [
  { field: "min", label: "min", count: false },
  { field: "max", label: "max", count: false },
  { field: "mean", label: "mean", count: false },
  { field: "std", label: "std", count: false },
  { field: "zeros", label: "zeros", count: true },
  { field: "nan", label: "NaN", count: true },
  { field: "posinf", label: "+Inf", count: true },
  { field: "neginf", label: "−Inf", count: true },
];

const BAD_FIELDS: ReadonlySet<StatField> = new Set(["nan", "posinf", "neginf"]);

/** The statistics table of tensor `k`. */
export function statsTable(stats: StatsTable, k: number): HTMLTableElement {
  const numel = stat(stats, k, "numel");
  const body = h("tbody");
  for (const { field, label, count } of STAT_ROWS) {
    const value = stat(stats, k, field);
    const bad = BAD_FIELDS.has(field) && value > 0;
    let text: string;
    if (count) text = Number.isNaN(value) ? "—" : formatCount(value);
    else text = formatValue(value);
    const title =
      count && numel > 0 && Number.isFinite(value)
        ? `${formatCount(value)} of ${formatCount(numel)} elements (${formatValue((100 * value) / numel)}%)`
        : Number.isFinite(value)
          ? String(value)
          : text;
    body.append(
      h(
        "tr",
        {},
        h("th", { attrs: { scope: "row" }, text: label }),
        h("td", { class: bad ? "is-bad" : "", attrs: { "data-stat": field }, text, title }),
      ),
    );
  }
  return h("table", { class: "nbviz-stats" }, body);
}

export type ExactState =
  | { status: "loading" }
  | { status: "done"; histogram: Histogram }
  | { status: "error"; message: string };

export interface HistogramData {
  layers: readonly LayerRow[];
  tensors: readonly TensorRow[];
  stats: StatsTable | null;
  hist: HistTable | null;
  selected: string | null;
  /** Exact histograms by tensor index (replace the map, do not mutate it, to redraw). */
  exact: ReadonlyMap<number, ExactState>;
  /** Layer name -> output shapes per call, when the kernel ran a probe forward. */
  outputs?: Readonly<Record<string, readonly string[]>>;
  /** Shown instead of the cards, e.g. when the arrays could not be decoded. */
  error?: string | null;
}

export interface HistogramOptions {
  onExact?: (tensor: number) => void;
  onSelect?: (name: string) => void;
}

export interface HistogramView {
  el: HTMLDivElement;
  update(next: Partial<HistogramData>): void;
}

/** One tensor's card. */
export function tensorCard(
  tensor: TensorRow,
  k: number,
  data: Pick<HistogramData, "stats" | "hist" | "exact">,
  options: HistogramOptions = {},
): HTMLDivElement {
  const badges: HTMLElement[] = [];
  if (tensor.complex) {
    badges.push(
      h("span", {
        class: "nbviz-badge nbviz-badge-complex",
        text: "complex: magnitude",
        title: "statistics and histogram are of the absolute values",
      }),
    );
  }
  if (!tensor.requires_grad) {
    badges.push(
      h("span", {
        class: "nbviz-badge nbviz-badge-frozen",
        text: "frozen",
        title: "requires_grad=False",
      }),
    );
  }
  const card = h(
    "div",
    { class: "nbviz-hist-card", attrs: { "data-tensor": tensor.name, "data-index": k } },
    h(
      "div",
      { class: "nbviz-hist-head" },
      h("span", { class: "nbviz-hist-name", text: tensor.param, title: tensor.name }),
      h("span", {
        class: "nbviz-hist-shape",
        text: tensor.lazy ? "[?]" : formatShape(tensor.shape),
      }),
      h("span", {
        class: "nbviz-hist-dtype",
        text: tensor.device ? `${tensor.dtype} · ${tensor.device}` : tensor.dtype,
      }),
      ...badges,
    ),
  );
  if (tensor.shared_with.length > 0) {
    card.append(
      h("div", { class: "nbviz-shared", text: `shared with ${tensor.shared_with.join(", ")}` }),
    );
  }
  if (tensor.lazy) {
    card.append(h("div", { class: "nbviz-lazy", text: "lazy (uninitialized)" }));
    return card;
  }

  const exact = data.exact.get(k);
  const sampled = data.hist ? histogramOf(data.hist, k) : null;
  const histogram = exact?.status === "done" ? exact.histogram : sampled;
  const chart = h("div", { class: "nbviz-chart" });
  if (histogram?.counts.some((c) => Number.isFinite(c) && c > 0)) {
    chart.append(histogramSvg(histogram, tensor.name));
  } else {
    chart.append(h("div", { class: "nbviz-hist-empty", text: "no finite values to plot" }));
  }
  const body = h("div", { class: "nbviz-hist-body" }, chart);
  if (data.stats) body.append(statsTable(data.stats, k));
  card.append(body);

  const numel = data.stats ? stat(data.stats, k, "numel") : Number.NaN;
  if (exact?.status === "done") {
    card.append(
      h("div", {
        class: "nbviz-exact-note",
        text: `exact: all ${formatCount(exact.histogram.sample)} elements`,
      }),
    );
  } else if (sampled && Number.isFinite(numel) && sampled.sample > 0 && sampled.sample < numel) {
    // sample 0 means nothing finite to count (all NaN/Inf): an exact count would be empty too.
    const loading = exact?.status === "loading";
    const button = h("button", {
      class: "nbviz-exact",
      text: loading ? "exact…" : "exact",
      title: "Count every element (asks the kernel)",
      attrs: { type: "button", disabled: loading, "aria-busy": loading ? "true" : null },
    });
    button.addEventListener("click", () => options.onExact?.(k));
    card.append(
      h(
        "div",
        { class: "nbviz-sampled" },
        h("span", {
          text: `sampled: ${formatCount(sampled.sample)} of ${formatCount(numel)} elements`,
        }),
        " ",
        button,
      ),
    );
  }
  if (exact?.status === "error") {
    card.append(h("div", { class: "nbviz-error", attrs: { role: "alert" }, text: exact.message }));
  }
  return card;
}

function childIndices(layers: readonly LayerRow[], i: number): number[] {
  const out: number[] = [];
  layers.forEach((row, j) => {
    if (row.parent === i && j !== i) out.push(j);
  });
  return out;
}

const MAX_CHILD_LINKS = 24;

export function createHistogram(
  data: HistogramData,
  options: HistogramOptions = {},
): HistogramView {
  const title = h("div", { class: "nbviz-hist-title" });
  const cards = h("div", { class: "nbviz-hist-cards" });
  const el = viewRoot("histogram", title, cards);
  let current: HistogramData = { ...data };

  function selectButton(name: string, cls: string, attr: string): HTMLButtonElement {
    const button = h("button", {
      class: cls,
      text: layerLabel(name),
      attrs: { type: "button", [attr]: name },
    });
    button.addEventListener("click", () => options.onSelect?.(name));
    return button;
  }

  function draw(): void {
    const { layers, tensors, selected } = current;
    const index = selected === null ? -1 : layers.findIndex((row) => row.name === selected);
    const layer = layers[index];
    if (layer === undefined) {
      title.replaceChildren(h("span", { class: "nbviz-hist-prompt", text: "Select a layer" }));
      cards.replaceChildren();
      if (current.error)
        cards.append(
          h("div", { class: "nbviz-error", attrs: { role: "alert" }, text: current.error }),
        );
      return;
    }
    const own = layer.tensors.map((k) => [k, tensors[k]] as const);
    const outputs = current.outputs ?? {};
    const output = formatOutputs(
      Object.hasOwn(outputs, layer.name) ? outputs[layer.name] : undefined,
    );
    title.replaceChildren(
      h("span", { class: "nbviz-name", text: layerLabel(layer.name) }),
      " ",
      h("span", { class: "nbviz-cls", text: layer.cls }),
      own.length > 0
        ? h("span", {
            class: "nbviz-hist-summary",
            text: `${plural(own.length, "parameter")} · ${formatCount(layer.own_params)} elements`,
          })
        : "",
      output.text === ""
        ? ""
        : h("span", {
            class: "nbviz-hist-output",
            text: `output ${output.text}`,
            title: output.title,
          }),
    );
    if (current.error) {
      cards.replaceChildren(
        h("div", { class: "nbviz-error", attrs: { role: "alert" }, text: current.error }),
      );
      return;
    }
    if (own.length === 0) {
      const none = h(
        "div",
        { class: "nbviz-hist-none" },
        h("p", { text: "No parameters of its own" }),
      );
      if (layer.alias_of !== null) {
        none.append(
          h(
            "p",
            { class: "nbviz-hint" },
            "Alias of ",
            selectButton(layer.alias_of, "nbviz-alias-link", "data-alias"),
          ),
        );
      }
      const children = childIndices(layers, index);
      if (children.length > 0) {
        const links = children
          .slice(0, MAX_CHILD_LINKS)
          .map((j) => selectButton(layers[j]?.name ?? "", "nbviz-child", "data-child"));
        const more =
          children.length > MAX_CHILD_LINKS ? ` and ${children.length - MAX_CHILD_LINKS} more` : "";
        none.append(
          h("p", { class: "nbviz-hint", text: "Pick a child layer to see its parameters:" }),
          h("div", { class: "nbviz-children" }, ...links, more),
        );
      }
      cards.replaceChildren(none);
      return;
    }
    cards.replaceChildren(
      ...own.map(([k, tensor]) =>
        tensor === undefined
          ? h("div", { class: "nbviz-error", text: `tensor ${k} is missing from the tensors list` })
          : tensorCard(tensor, k, current, options),
      ),
    );
  }

  draw();
  return {
    el,
    update(next: Partial<HistogramData>): void {
      const previous = current;
      current = { ...current, ...next };
      const changed = (Object.keys(current) as (keyof HistogramData)[]).some(
        (key) => current[key] !== previous[key],
      );
      if (changed) draw();
    },
  };
}
