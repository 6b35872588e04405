/**
 * Anomaly banner: the first NaN/Inf of the run, its step, phase and layer; a click selects that
 * layer and step. Hidden while there is none. Names go in as text only.
 *
 * Hooks: `.nbviz.nbviz-anomaly` (`hidden` when none); `button.nbviz-anomaly-go`
 * (`data-layer`, `data-step`); `.nbviz-anomaly-layer`; `.nbviz-anomaly-more`.
 */

import { h, layerLabel, viewRoot } from "../draw/dom";
import { formatCount, plural } from "../format";
import { KIND_LABELS } from "./histpanel";
import type { AnomalyRow, Kind, SeriesInfo, View } from "./source";

export interface AnomalyBannerData {
  /** The first anomaly (the store's `firstAnomaly()`), or null. */
  anomaly: AnomalyRow | null;
  /** Its series (the store's `series[anomaly.series]`), when known. */
  series: SeriesInfo | null;
  /** How many anomalies the run has (the store's `anomalies().length`). */
  total: number;
}

export interface AnomalyBannerOptions {
  onSelect?: (layer: string) => void;
  onStep?: (step: number) => void;
}

/** What the banner says: the counts, in words. */
export function anomalyCounts(a: AnomalyRow): string {
  const parts: string[] = [];
  if (a.nan > 0) parts.push(`${formatCount(a.nan)} NaN`);
  if (a.posinf > 0) parts.push(`${formatCount(a.posinf)} +Inf`);
  if (a.neginf > 0) parts.push(`${formatCount(a.neginf)} −Inf`);
  return parts.length > 0 ? parts.join(", ") : "non-finite values";
}

export function createAnomalyBanner(
  data: AnomalyBannerData,
  options: AnomalyBannerOptions = {},
): View<AnomalyBannerData> {
  const go = h("button", { class: "nbviz-anomaly-go", attrs: { type: "button" } });
  const more = h("span", { class: "nbviz-anomaly-more" });
  const el = viewRoot("anomaly", go, more);
  el.setAttribute("role", "alert");
  let current: AnomalyBannerData = { ...data };

  function draw(): void {
    const { anomaly, series, total } = current;
    el.hidden = anomaly === null;
    if (anomaly === null) {
      go.replaceChildren();
      more.textContent = "";
      return;
    }
    const layer = series?.layer;
    const what =
      series === null
        ? ""
        : ` · ${KIND_LABELS[series.kind as Kind] ?? series.kind}${series.tensor ? ` ${series.tensor}` : ""}`;
    go.replaceChildren(
      h("span", { class: "nbviz-anomaly-icon", text: "⚠" }),
      ` First ${anomalyCounts(anomaly)} at step ${formatCount(anomaly.step)} (${anomaly.phase})`,
      layer === undefined ? "" : " in ",
      layer === undefined
        ? ""
        : h("span", { class: "nbviz-anomaly-layer", text: layerLabel(layer) }),
      what,
    );
    go.title = anomaly.detail || "Show this layer and step";
    go.dataset.step = String(anomaly.step);
    if (layer !== undefined) go.dataset.layer = layer;
    else delete go.dataset.layer;
    more.textContent = total > 1 ? `${plural(total - 1, "more anomaly", "more anomalies")}` : "";
  }

  function onClick(): void {
    const { anomaly, series } = current;
    if (anomaly === null) return;
    if (series !== null) options.onSelect?.(series.layer);
    options.onStep?.(anomaly.step);
  }
  go.addEventListener("click", onClick);

  draw();
  return {
    el,
    update(next: Partial<AnomalyBannerData>): void {
      const previous = current;
      current = { ...current, ...next };
      // Redrawn with every view draw (each slider step): only when what it shows changed.
      if (
        current.anomaly === previous.anomaly &&
        current.series === previous.series &&
        current.total === previous.total
      )
        return;
      draw();
    },
    destroy(): void {
      go.removeEventListener("click", onClick);
      el.replaceChildren();
    },
  };
}
