/**
 * The standalone report's stand-in for the kernel: answers the views' requests from replies the
 * kernel computed when the report was written (`nbviz/export/html.py`), so every view runs its
 * real code over the same wire protocol as in the notebook.
 *
 * Pure: no DOM, no timers (the caller delivers the replies asynchronously, as a kernel would).
 */

import { PROTOCOL } from "../protocol";

/** A custom message as embedded: its JSON content and its binary buffers in base64. */
export interface EmbeddedMessage {
  content: Record<string, unknown>;
  buffers: string[];
}

/** A request the kernel answered at export time, with its answer (`VizState.handle_request`). */
export interface EmbeddedReply {
  request: { type: string; series?: number[] };
  reply: EmbeddedMessage;
}

/** The state model's traits as ipywidgets sends them: buffers lifted out, with their paths. */
export interface EmbeddedState {
  values: Record<string, unknown>;
  buffer_paths: (string | number)[][];
  buffers: string[];
}

export interface EmbeddedReport {
  format: number;
  title: string;
  notes: string[];
  state: EmbeddedState;
  replies: EmbeddedReply[];
}

export const REPORT_FORMAT = 1;

/** What a request gets when nothing was computed for it: the views show this text. */
export const NEEDS_KERNEL: Record<string, string> = {
  exact_histogram:
    "exact histograms need a running kernel; this report holds the sampled histograms",
  autograd_graph: "the autograd graph needs a running kernel; it was not drawn into this report",
  run_histograms: "these histograms were left out of this report (over its size budget)",
  run_snapshot: "this report holds no recorded run",
};

export function base64ToBytes(text: string): Uint8Array<ArrayBuffer> {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

export function toDataViews(buffers: readonly string[]): DataView[] {
  return buffers.map((b) => {
    const bytes = base64ToBytes(b);
    return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  });
}

/** The state traits with each lifted buffer put back at its path, as a DataView. */
export function stateValues(state: EmbeddedState): Record<string, unknown> {
  if (state.buffer_paths.length !== state.buffers.length) {
    throw new Error(
      `the report's state has ${state.buffers.length} buffers for ${state.buffer_paths.length} paths`,
    );
  }
  const values = structuredClone(state.values);
  const views = toDataViews(state.buffers);
  state.buffer_paths.forEach((path, i) => {
    let target: Record<string | number, unknown> = values;
    for (const key of path.slice(0, -1)) target = target[key] as Record<string | number, unknown>;
    const last = path[path.length - 1];
    if (last === undefined) throw new Error("the report's state has an empty buffer path");
    target[last] = views[i];
  });
  return values;
}

/** One message to deliver on the model: content and decoded buffers. */
export type Delivery = [content: Record<string, unknown>, buffers: DataView[]];

export interface FakeKernel {
  /** The messages answering `request` (empty for what is not a request). */
  answer(request: unknown): Delivery[];
}

function failure(id: string, error: string): Delivery {
  return [{ type: PROTOCOL.RESPONSE_TYPE, id, ok: false, error }, []];
}

/**
 * Answers requests from `replies`. A `run_histograms` request gets every reply whose series
 * overlap it (replies are per layer): the first answers the request, the others follow under the
 * same id, which the run store applies as it applies any response holding run data.
 */
export function createKernel(replies: readonly EmbeddedReply[]): FakeKernel {
  const decoded = new Map<EmbeddedReply, DataView[]>();
  const buffersOf = (entry: EmbeddedReply): DataView[] => {
    let views = decoded.get(entry);
    if (views === undefined) {
      views = toDataViews(entry.reply.buffers);
      decoded.set(entry, views);
    }
    return views;
  };
  const deliver = (entry: EmbeddedReply, id: string): Delivery => [
    { ...entry.reply.content, id },
    buffersOf(entry),
  ];
  return {
    answer(request: unknown): Delivery[] {
      if (typeof request !== "object" || request === null) return [];
      const { type, id, series } = request as { type?: unknown; id?: unknown; series?: unknown };
      if (typeof id !== "string" || typeof type !== "string") return [];
      const sameType = replies.filter((r) => r.request.type === type);
      if (type === "run_histograms") {
        const asked = new Set(Array.isArray(series) ? series : []);
        const found = sameType.filter((r) => r.request.series?.some((s) => asked.has(s)));
        return found.length > 0
          ? found.map((r) => deliver(r, id))
          : [failure(id, NEEDS_KERNEL.run_histograms ?? "")];
      }
      const entry = sameType[0];
      if (entry !== undefined) return [deliver(entry, id)];
      return [failure(id, NEEDS_KERNEL[type] ?? `unknown request type ${JSON.stringify(type)}`)];
    },
  };
}
