/**
 * The statistics view (view kind "histogram", issue 5), fed by the state model's run store: the
 * anomaly banner, the histogram panel of the selected layer at `state.step`, and the
 * distribution over time of one kind. While the store holds no series for the selected layer
 * (no training recorded yet) the parameter histograms of `fallback` are shown instead.
 *
 * Everything redraws from data already in the browser; selecting a layer asks the kernel for its
 * histogram series not yet held (answered once idle, or pushed while training).
 */

import { h, setHidden, viewRoot } from "../draw/dom";
import { storeFor } from "../live/attach";
import type { RunStore } from "../live/store";
import { createAnomalyBanner, createDistribution, createHistogramPanel } from "../panels";
import { KIND_LABELS } from "../panels/histpanel";
import { KINDS, type Kind } from "../panels/source";
import { type Cleanup, type Mounted, type StateModel, select, selectedOf, watch } from "./common";

/** The store's step shown for `state.step`: the requested one (panels snap at or before). */
export function stepOf(state: StateModel): number {
  return Number(state.get("step")) || 0;
}

/**
 * Sets `state.step` to a step the kernel counts (`num_steps`) or the run store holds: a push can
 * be drawn before the `num_steps` update that preceded it, and the kernel has counted it by then.
 */
export function setStep(state: StateModel, step: number, store: RunStore): void {
  if (state.get("step") === step) return;
  const max = Math.max((Number(state.get("num_steps")) || 1) - 1, store.lastStep());
  if (step < 0 || step > max) return; // the kernel would refuse it
  state.set("step", step);
  state.save_changes();
}

/** Asks for the histogram series of `layer` that the store does not hold yet. */
export function requestLayer(store: RunStore, layer: string | null): void {
  if (layer === null) return;
  const missing = store
    .seriesOf(layer)
    .filter((s) => store.histogramCount(s.id) === 0)
    .map((s) => s.id);
  if (missing.length > 0) store.requestHistograms(missing);
}

export function mountStats(state: StateModel, fallback: Mounted, cleanup: Cleanup): Mounted {
  const store = storeFor(state);
  // The kind shown over time is the state's `kind` trait: the kernel exports what is shown.
  const kindOf = (): Kind => {
    const value: unknown = state.get("kind");
    return (KINDS as readonly unknown[]).includes(value) ? (value as Kind) : "weight";
  };
  let kind: Kind = kindOf();
  const setKind = (next: Kind): void => {
    kind = next;
    kindSelect.value = next;
    if (state.get("kind") === next) return;
    state.set("kind", next);
    state.save_changes();
  };
  const layer = (): string | null => selectedOf(state);
  const banner = createAnomalyBanner(
    { anomaly: null, series: null, total: 0 },
    {
      onSelect: (name) => select(state, name),
      onStep: (step) => setStep(state, step, store),
    },
  );
  const panel = createHistogramPanel({ source: store, layer: layer(), step: 0, mode: "train" });
  const dist = createDistribution(
    { source: store, layer: layer(), kind, tensor: null, step: 0, mode: "train" },
    { onStep: (step) => setStep(state, step, store) },
  );
  const kindSelect = h("select", {
    class: "nbviz-dist-kind",
    attrs: { "aria-label": "Kind shown over time" },
  });
  for (const k of KINDS)
    kindSelect.append(h("option", { text: KIND_LABELS[k], attrs: { value: k } }));
  kindSelect.value = kind;
  const onKind = (): void => {
    setKind(kindSelect.value as Kind);
    dist.update({ kind, tensor: null });
  };
  kindSelect.addEventListener("change", onKind);
  const distBox = h(
    "div",
    { class: "nbviz-stats-over-time" },
    h("label", { class: "nbviz-dist-kind-label" }, "Over time: ", kindSelect),
    dist.el,
  );
  const body = h("div", { class: "nbviz-stats-body" });
  const el = viewRoot("stats", banner.el, body, distBox);

  let live: boolean | null = null;
  let requestedFor: string | null | undefined;
  let distLayer: string | null = null;

  function draw(): void {
    const name = layer();
    const step = stepOf(state);
    const hasData = name !== null && store.seriesOf(name).length > 0;
    if (hasData !== live) {
      live = hasData;
      body.replaceChildren(hasData ? panel.el : fallback.el);
      setHidden(distBox, !hasData);
      el.dataset.source = hasData ? "run" : "parameters";
    }
    if (name !== requestedFor || hasData) {
      requestedFor = name;
      requestLayer(store, name);
    }
    const first = store.firstAnomaly();
    banner.update({
      anomaly: first,
      series: first === null ? null : (store.series[first.series] ?? null),
      total: store.anomalies().length,
    });
    if (hasData) {
      panel.update({ layer: name, step });
      // A layer without the kind shown over time (a ReLU has no weights): its first kind held.
      if (name !== distLayer) {
        distLayer = name;
        if (store.seriesOf(name, kind).length === 0) {
          const held = KINDS.find((k) => store.seriesOf(name, k).length > 0);
          if (held !== undefined) setKind(held);
        }
        dist.update({ layer: name, kind, tensor: null, step });
      } else dist.update({ layer: name, step });
    }
  }

  cleanup.add(store.onChange(draw));
  watch(state, ["selected", "step"], draw, cleanup);
  watch(
    state,
    ["kind"],
    () => {
      if (kindOf() === kind) return;
      kind = kindOf();
      kindSelect.value = kind;
      dist.update({ kind, tensor: null });
    },
    cleanup,
  );
  cleanup.add(() => {
    kindSelect.removeEventListener("change", onKind);
    banner.destroy();
    panel.destroy();
    dist.destroy();
  });
  draw();
  return { el };
}
