/**
 * The bundle behind the layer picker, statistics ("histogram"), slider and flow views (the structure view has its
 * own, `structure.ts`, which carries the layout worker). Each view widget has its own model with
 * `state` (a reference to the shared state model) and `view` (which drawing); `render` fetches
 * the shared model and mounts the drawing. Views talk only through the shared model, so
 * selecting a layer updates every view in the browser without a round trip to the (possibly
 * busy) kernel.
 *
 * The mount functions here and in ./mount touch models; the drawings in ./draw are pure.
 */

import {
  decodeExactHistogram,
  decodeHist,
  decodeStats,
  type HistTable,
  type StatsTable,
} from "./data";
import { createHistogram, type ExactState } from "./draw/histogram";
import { createPicker } from "./draw/picker";
import {
  type Cleanup,
  createRender,
  errorMessage,
  layersOf,
  type Mounted,
  outputsOf,
  type StateModel,
  select,
  selectedOf,
  tensorsOf,
  type ViewModel,
  watch,
} from "./mount/common";
import { mountFlow } from "./mount/flow";
import { mountStepSlider } from "./mount/slider";
import { mountStats } from "./mount/stats";
import type { ViewKind } from "./protocol";
import { createRpc, type MessageChannel, RequestError } from "./rpc";

export type { StateModel, ViewModel } from "./mount/common";
export { resolveState } from "./mount/common";

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

function mountPicker(state: StateModel, cleanup: Cleanup): Mounted {
  const read = () => ({ layers: layersOf(state), selected: selectedOf(state) });
  const picker = createPicker(read(), { onSelect: (name) => select(state, name) });
  watch(state, ["layers", "selected"], () => picker.update(read()), cleanup);
  return picker;
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
    case "picker":
      return mountPicker(state, cleanup);
    case "histogram":
      return mountStats(state, mountHistogram(state, model, cleanup), cleanup);
    case "slider":
      return mountStepSlider(state, cleanup);
    case "flow":
      return mountFlow(state, cleanup);
    default:
      throw new Error(`the ${kind} view is drawn by another bundle`);
  }
}

export const render = createRender(["picker", "histogram", "slider", "flow"], mount);

export default { render };
