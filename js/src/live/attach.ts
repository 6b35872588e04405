/**
 * Connects a `RunStore` to a state model's comm: one store per model, shared by all its views.
 *
 * Pushes (`run_append`) and every response whose result is an append are applied, whoever
 * asked: comm messages reach every open page of the notebook, so a snapshot one view asked for
 * fills the others too. The first `storeFor` of a model asks for a snapshot, which the kernel
 * answers once it is idle; until then pushes fill the store.
 */

import { PROTOCOL } from "../protocol";
import { createRpc, type MessageChannel, type RpcClient } from "../rpc";
import { type Append, type FrameScheduler, RunStore } from "./store";

/**
 * Stores by state model, kept on the page's global object: the view bundles (widget.js,
 * structure.js) each carry this module, and views of one state must share one store (one
 * snapshot, one copy of the run) whichever bundle draws them.
 */
const STORES_KEY = Symbol.for("nbviz.runStores");
const holder = globalThis as { [STORES_KEY]?: WeakMap<object, RunStore> };
holder[STORES_KEY] ??= new WeakMap<object, RunStore>();
const stores: WeakMap<object, RunStore> = holder[STORES_KEY];

function isAppend(value: unknown): value is Append {
  return (
    typeof value === "object" &&
    value !== null &&
    (value as { type?: unknown }).type === PROTOCOL.RUN_APPEND_TYPE
  );
}

/** The append a custom message carries, if any: a push, or a successful response's result. */
export function appendOf(msg: unknown): Append | null {
  if (isAppend(msg)) return msg;
  if (typeof msg !== "object" || msg === null) return null;
  const m = msg as { type?: unknown; ok?: unknown; result?: unknown };
  return m.type === PROTOCOL.RESPONSE_TYPE && m.ok === true && isAppend(m.result) ? m.result : null;
}

export interface AttachOptions {
  schedule?: FrameScheduler;
  rpc?: RpcClient;
}

/** The run store of `stateModel`, created (and subscribed, and a snapshot asked for) once. */
export function storeFor(stateModel: MessageChannel, options: AttachOptions = {}): RunStore {
  const held = stores.get(stateModel);
  if (held !== undefined) return held;
  const store = new RunStore(options.schedule);
  stores.set(stateModel, store);
  stateModel.on("msg:custom", (msg: unknown, buffers: DataView[]) => {
    const append = appendOf(msg);
    if (append === null) return;
    try {
      store.apply(append, Array.isArray(buffers) ? buffers : []);
    } catch (error) {
      console.error("nbviz: could not read run data from the kernel", error);
    }
  });
  const rpc = options.rpc ?? createRpc(stateModel);
  const asked = new Set<number>();
  store.setRequester((series) => {
    const fresh = series.filter((s) => !asked.has(s));
    if (fresh.length === 0) return; // already answered or on the way: the store holds them
    for (const s of fresh) asked.add(s);
    rpc.request("run_histograms", { series: fresh }).catch((error: unknown) => {
      for (const s of fresh) asked.delete(s); // e.g. a timeout while training: ask again later
      console.warn("nbviz: histograms request failed", error);
    });
  });
  rpc.request("run_snapshot").catch((error: unknown) => {
    console.warn("nbviz: run snapshot request failed", error);
  });
  return store;
}
