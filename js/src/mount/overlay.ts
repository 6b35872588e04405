/**
 * The graph overlay of the structure view: a metric picker for the diagram's toolbar that fills
 * module boxes by the metric at `state.step` (on the run's scale, so colours compare across
 * steps), with a legend. Recolours on a step change and when the run store grows. The store is
 * made when a metric is first chosen.
 */

import { h } from "../draw/dom";
import type { GraphView } from "../graph/render";
import { storeFor } from "../live/attach";
import type { RunStore } from "../live/store";
import { createLegend, overlayColors, scaleForRun } from "../panels";
import { METRIC_LABELS } from "../panels/scale";
import { METRICS, type Metric } from "../panels/source";
import { type Cleanup, layersOf, type StateModel, watch } from "./common";
import { stepOf } from "./stats";

export interface Overlay {
  /** The metric picker and the legend, for the toolbar. */
  controls: HTMLElement;
  metric(): Metric | null;
}

export function createOverlay(state: StateModel, view: GraphView, cleanup: Cleanup): Overlay {
  const picker = h("select", {
    class: "nbviz-overlay-metric",
    attrs: { "aria-label": "Colour modules by" },
  });
  picker.append(h("option", { text: "no overlay", attrs: { value: "" } }));
  for (const m of METRICS)
    picker.append(h("option", { text: METRIC_LABELS[m], attrs: { value: m } }));
  const legendBox = h("span", { class: "nbviz-overlay-legend" });
  const controls = h("span", { class: "nbviz-overlay" }, picker, legendBox);
  let metric: Metric | null = null;
  let store: RunStore | null = null;
  let unsubscribe: (() => void) | null = null;
  let legendFor: unknown = null;
  let layersFor: unknown = null;
  let names: string[] = [];

  function paint(): void {
    if (metric === null || store === null) {
      view.setColors(null);
      legendBox.replaceChildren();
      legendFor = null;
      return;
    }
    const layers = layersOf(state);
    if (layers !== layersFor) {
      layersFor = layers;
      names = layers.map((l) => l.name);
    }
    view.setColors(overlayColors(store, metric, stepOf(state), names));
    const scale = scaleForRun(store, metric);
    if (scale !== legendFor) {
      legendFor = scale;
      legendBox.replaceChildren(createLegend(scale));
    }
  }

  /** Shows `value` (a metric or null), making the run store when a metric is first shown. */
  const show = (value: unknown): void => {
    metric = (METRICS as readonly unknown[]).includes(value) ? (value as Metric) : null;
    picker.value = metric ?? "";
    if (metric !== null && store === null) {
      store = storeFor(state);
      unsubscribe = store.onChange(paint);
    }
    paint();
  };
  // The metric lives in the state model (`overlay`): the kernel exports what is shown, and can
  // set it.
  const onPick = (): void => {
    show(picker.value);
    if (state.get("overlay") === metric) return;
    state.set("overlay", metric);
    state.save_changes();
  };
  picker.addEventListener("change", onPick);
  watch(state, ["step", "layers"], paint, cleanup);
  watch(
    state,
    ["overlay"],
    () => {
      if (state.get("overlay") !== metric) show(state.get("overlay"));
    },
    cleanup,
  );
  cleanup.add(() => {
    picker.removeEventListener("change", onPick);
    unsubscribe?.();
  });
  show(state.get("overlay"));
  return { controls, metric: () => metric };
}
