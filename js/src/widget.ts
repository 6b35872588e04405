/**
 * The one bundle behind every nbviz view. Each view widget has its own model with `state` (a
 * reference to the shared state model) and `view` (which drawing); `render` fetches the shared
 * model and mounts the drawing. Views talk only through the shared model, so selecting a layer
 * updates every view in the browser without a round trip to the (possibly busy) kernel.
 *
 * This is the only module that touches models; the drawings in ./draw are pure.
 */

import type { AnyModel, Render } from "@anywidget/types";
import {
  decodeExactHistogram,
  decodeHist,
  decodeStats,
  type HistTable,
  type StatsTable,
} from "./data";
import { h, viewRoot } from "./draw/dom";
import { createHistogram, type ExactState } from "./draw/histogram";
import { createPicker } from "./draw/picker";
import { createSlider } from "./draw/slider";
import { createTree } from "./draw/tree";
import {
  type LayerRow,
  PROTOCOL,
  type StateTraits,
  type TensorRow,
  type ViewKind,
  type ViewTraits,
} from "./protocol";
import { createRpc, type MessageChannel, RequestError } from "./rpc";

export type StateModel = AnyModel<StateTraits>;
export type ViewModel = AnyModel<ViewTraits>;

const MODEL_PREFIX = "IPY_MODEL_";

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function isModel(value: unknown): value is StateModel {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as StateModel).get === "function" &&
    typeof (value as StateModel).on === "function"
  );
}

/** The shared state model a view points at ("IPY_MODEL_<id>" in its `state` trait). */
export async function resolveState(model: ViewModel): Promise<StateModel> {
  const ref: unknown = model.get("state");
  if (isModel(ref)) return ref;
  if (typeof ref !== "string" || ref === "") {
    throw new Error("nbviz: this view has no state model (its 'state' trait is empty)");
  }
  const id = ref.startsWith(MODEL_PREFIX) ? ref.slice(MODEL_PREFIX.length) : ref;
  return model.widget_manager.get_model<StateTraits>(id);
}

/** Runs registered teardown functions once, in reverse order. */
class Cleanup {
  private readonly fns: (() => void)[] = [];
  private done = false;
  get closed(): boolean {
    return this.done;
  }
  add(fn: () => void): void {
    if (this.done) fn();
    else this.fns.push(fn);
  }
  run(): void {
    if (this.done) return;
    this.done = true;
    for (const fn of this.fns.reverse()) {
      try {
        fn();
      } catch (error) {
        console.error("nbviz: cleanup failed", error);
      }
    }
    this.fns.length = 0;
  }
}

/**
 * Calls `update` once (in a microtask) after any of `traits` changes, however many change
 * together, so a batch from the kernel (layers, tensors, stats, hist) is drawn consistently.
 */
function watch(
  model: StateModel,
  traits: readonly (keyof StateTraits)[],
  update: () => void,
  cleanup: Cleanup,
): void {
  let scheduled = false;
  const schedule = (): void => {
    if (scheduled) return;
    scheduled = true;
    queueMicrotask(() => {
      scheduled = false;
      if (!cleanup.closed) update();
    });
  };
  for (const trait of traits) {
    const event = `change:${trait}` as const;
    model.on(event, schedule);
    cleanup.add(() => model.off(event, schedule));
  }
}

function layersOf(state: StateModel): LayerRow[] {
  const layers = state.get("layers");
  return Array.isArray(layers) ? layers : [];
}

function tensorsOf(state: StateModel): TensorRow[] {
  const tensors = state.get("tensors");
  return Array.isArray(tensors) ? tensors : [];
}

function selectedOf(state: StateModel): string | null {
  const selected = state.get("selected");
  return typeof selected === "string" ? selected : null;
}

function outputsOf(state: StateModel): Record<string, string[]> {
  const outputs: unknown = state.get("outputs");
  return typeof outputs === "object" && outputs !== null && !Array.isArray(outputs)
    ? (outputs as Record<string, string[]>)
    : {};
}

function select(state: StateModel, name: string): void {
  if (state.get("selected") === name) return;
  state.set("selected", name);
  state.save_changes();
}

interface DecodedArrays {
  stats: StatsTable | null;
  hist: HistTable | null;
  error: string | null;
}

/** Decodes `stats` and `hist` once per change of those traits, shared by all views of a state. */
class ArrayCache {
  private key: readonly unknown[] = [];
  private value: DecodedArrays = { stats: null, hist: null, error: null };
  constructor(private readonly state: StateModel) {}

  get(): DecodedArrays {
    const stats: unknown = this.state.get("stats");
    const hist: unknown = this.state.get("hist");
    const n = tensorsOf(this.state).length;
    const key = [stats, hist, n];
    if (key.every((k, i) => k === this.key[i])) return this.value;
    this.key = key;
    const errors: string[] = [];
    let statsTable: StatsTable | null = null;
    let histTable: HistTable | null = null;
    try {
      statsTable = decodeStats(stats, n);
    } catch (error) {
      errors.push(errorMessage(error));
    }
    try {
      histTable = decodeHist(hist, n);
    } catch (error) {
      errors.push(errorMessage(error));
    }
    this.value = {
      stats: statsTable,
      hist: histTable,
      error: errors.length > 0 ? `nbviz could not read the statistics: ${errors.join("; ")}` : null,
    };
    return this.value;
  }
}

const caches = new WeakMap<object, ArrayCache>();

function arraysOf(state: StateModel): DecodedArrays {
  let cache = caches.get(state);
  if (cache === undefined) {
    cache = new ArrayCache(state);
    caches.set(state, cache);
  }
  return cache.get();
}

/** A banner when the kernel speaks another protocol version than this bundle. */
function versionBanner(state: StateModel): HTMLElement | null {
  const version: unknown = state.get("protocol_version");
  if (version === undefined || version === PROTOCOL.PROTOCOL_VERSION) return null;
  return h("div", {
    class: "nbviz-warning nbviz-version",
    attrs: { role: "alert" },
    text:
      `nbviz: the kernel sent protocol version ${String(version)}, this front end speaks ` +
      `${PROTOCOL.PROTOCOL_VERSION}. Restart the kernel and reload the page after upgrading nbviz.`,
  });
}

interface Mounted {
  el: HTMLElement;
}

function mountStructure(state: StateModel, cleanup: Cleanup): Mounted {
  const read = () => ({
    layers: layersOf(state),
    selected: selectedOf(state),
    warnings: Array.isArray(state.get("warnings")) ? state.get("warnings") : [],
    outputs: outputsOf(state),
  });
  const tree = createTree(read(), { onSelect: (name) => select(state, name) });
  watch(state, ["layers", "selected", "warnings", "outputs"], () => tree.update(read()), cleanup);
  return tree;
}

function mountPicker(state: StateModel, cleanup: Cleanup): Mounted {
  const read = () => ({ layers: layersOf(state), selected: selectedOf(state) });
  const picker = createPicker(read(), { onSelect: (name) => select(state, name) });
  watch(state, ["layers", "selected"], () => picker.update(read()), cleanup);
  return picker;
}

function mountSlider(state: StateModel, cleanup: Cleanup): Mounted {
  const read = () => ({
    step: Number(state.get("step")) || 0,
    numSteps: Number(state.get("num_steps")) || 1,
  });
  const slider = createSlider(read(), {
    onStep: (step) => {
      if (state.get("step") === step) return;
      state.set("step", step);
      state.save_changes();
    },
  });
  watch(state, ["step", "num_steps"], () => slider.update(read()), cleanup);
  return slider;
}

function mountHistogram(state: StateModel, channel: MessageChannel, cleanup: Cleanup): Mounted {
  const rpc = createRpc(channel);
  cleanup.add(() => rpc.dispose());
  /** Exact histograms fetched for the current data, by tensor index; dropped when it changes. */
  let exact = new Map<number, ExactState>();
  let generation = 0;
  let dataKey: readonly unknown[] = [];

  const read = () => {
    const tensors = tensorsOf(state);
    const key = [state.get("hist"), state.get("stats"), tensors];
    if (!key.every((k, i) => k === dataKey[i])) {
      dataKey = key;
      generation += 1;
      exact = new Map();
    }
    const arrays = arraysOf(state);
    return {
      layers: layersOf(state),
      tensors,
      stats: arrays.stats,
      hist: arrays.hist,
      selected: selectedOf(state),
      exact,
      outputs: outputsOf(state),
      error: arrays.error,
    };
  };

  const setExact = (k: number, value: ExactState): void => {
    exact = new Map(exact).set(k, value);
    view.update({ exact });
  };

  const requestExact = (k: number): void => {
    const status = exact.get(k)?.status;
    if (status === "loading" || status === "done") return;
    const asked = generation;
    setExact(k, { status: "loading" });
    rpc.request("exact_histogram", { tensor: k }).then(
      ({ result, buffers }) => {
        if (cleanup.closed || asked !== generation) return;
        try {
          setExact(k, { status: "done", histogram: decodeExactHistogram(result, buffers) });
        } catch (error) {
          setExact(k, {
            status: "error",
            message: `Exact histogram failed: ${errorMessage(error)}`,
          });
        }
      },
      (error: unknown) => {
        if (cleanup.closed || asked !== generation) return;
        const message =
          error instanceof RequestError
            ? `Exact histogram ${error.reason === "timeout" ? "timed out" : "failed"}: ${error.detail}`
            : `Exact histogram failed: ${errorMessage(error)}`;
        setExact(k, { status: "error", message });
      },
    );
  };

  const view = createHistogram(read(), {
    onExact: requestExact,
    onSelect: (name) => select(state, name),
  });
  watch(
    state,
    ["layers", "tensors", "stats", "hist", "selected", "outputs"],
    () => view.update(read()),
    cleanup,
  );
  return view;
}

function mount(kind: ViewKind, state: StateModel, model: ViewModel, cleanup: Cleanup): Mounted {
  switch (kind) {
    case "structure":
      return mountStructure(state, cleanup);
    case "picker":
      return mountPicker(state, cleanup);
    case "histogram":
      return mountHistogram(state, model, cleanup);
    case "slider":
      return mountSlider(state, cleanup);
  }
}

function isViewKind(value: unknown): value is ViewKind {
  return (PROTOCOL.VIEW_KINDS as readonly unknown[]).includes(value);
}

function errorView(kind: string, message: string): HTMLElement {
  return viewRoot(
    kind === "" ? "error" : kind,
    h("div", { class: "nbviz-error", attrs: { role: "alert" }, text: message }),
  );
}

export const render: Render<ViewTraits> = async ({ model, el, signal }) => {
  const cleanup = new Cleanup();
  signal?.addEventListener("abort", () => cleanup.run(), { once: true });
  const kind: unknown = model.get("view");
  if (!isViewKind(kind)) {
    el.replaceChildren(
      errorView(
        "error",
        `nbviz: unknown view ${JSON.stringify(kind)}; expected one of ${PROTOCOL.VIEW_KINDS.join(", ")}`,
      ),
    );
    return () => cleanup.run();
  }
  el.replaceChildren(viewRoot(kind, h("div", { class: "nbviz-loading", text: "Loading…" })));
  let state: StateModel;
  try {
    state = await resolveState(model);
  } catch (error) {
    el.replaceChildren(
      errorView(kind, `nbviz: could not load the shared state: ${errorMessage(error)}`),
    );
    return () => cleanup.run();
  }
  if (signal?.aborted || cleanup.closed) return () => cleanup.run();
  try {
    const view = mount(kind, state, model, cleanup);
    const banner = versionBanner(state);
    if (banner) view.el.prepend(banner);
    el.replaceChildren(view.el);
    cleanup.add(() => view.el.remove());
  } catch (error) {
    console.error("nbviz: render failed", error);
    el.replaceChildren(
      errorView(kind, `nbviz: could not draw the ${kind} view: ${errorMessage(error)}`),
    );
  }
  return () => cleanup.run();
};

export default { render };
