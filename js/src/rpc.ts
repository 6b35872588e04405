/**
 * Request/response over a view model's custom messages.
 *
 * A request is `{type, id, ...payload}` sent with `model.send`; the kernel answers with
 * `{type: "response", id, ok, result | error}` plus binary buffers. Responses are matched by id;
 * anything else on the channel is ignored.
 */

import { PROTOCOL, type RequestType } from "./protocol";

/** The part of an anywidget model the client uses. */
export interface MessageChannel {
  send(content: unknown, callbacks?: unknown, buffers?: ArrayBuffer[] | ArrayBufferView[]): void;
  on(event: "msg:custom", callback: (msg: unknown, buffers: DataView[]) => void): void;
  off(event: "msg:custom", callback: (msg: unknown, buffers: DataView[]) => void): void;
}

export interface Reply<R = unknown> {
  result: R;
  buffers: DataView[];
}

/** Why a request failed: the kernel said so, it did not answer in time, or it was cancelled. */
export class RequestError extends Error {
  override name = "RequestError";
  /** The message without the request type, e.g. the kernel's own error text. */
  readonly detail: string;
  constructor(
    readonly type: string,
    readonly reason: "error" | "timeout" | "cancelled",
    detail: string,
  ) {
    const verb =
      reason === "timeout" ? "timed out" : reason === "cancelled" ? "cancelled" : "failed";
    super(`${type} ${verb}: ${detail}`);
    this.detail = detail;
  }
}

export interface RpcOptions {
  timeoutMs?: number;
  /** Makes request ids; the default is a per-client random prefix plus a counter. */
  newId?: () => string;
}

export interface RpcClient {
  request<R = unknown>(type: RequestType, payload?: Record<string, unknown>): Promise<Reply<R>>;
  /** How many requests await an answer. */
  readonly pending: number;
  /** Stops listening; pending requests reject as cancelled. */
  dispose(): void;
}

interface Pending {
  type: string;
  resolve(reply: Reply): void;
  reject(error: RequestError): void;
  timer: ReturnType<typeof setTimeout>;
}

function randomPrefix(): string {
  const uuid = globalThis.crypto?.randomUUID?.();
  return uuid ?? Math.random().toString(36).slice(2);
}

export function createRpc(channel: MessageChannel, options: RpcOptions = {}): RpcClient {
  const timeoutMs = options.timeoutMs ?? PROTOCOL.REQUEST_TIMEOUT_MS;
  const prefix = randomPrefix();
  let counter = 0;
  const newId = options.newId ?? (() => `${prefix}-${++counter}`);
  const pending = new Map<string, Pending>();
  let disposed = false;

  const onMessage = (msg: unknown, buffers: DataView[]): void => {
    if (typeof msg !== "object" || msg === null) return;
    const m = msg as Record<string, unknown>;
    if (m.type !== PROTOCOL.RESPONSE_TYPE || typeof m.id !== "string") return;
    const entry = pending.get(m.id);
    if (entry === undefined) return;
    pending.delete(m.id);
    clearTimeout(entry.timer);
    if (m.ok === true) {
      entry.resolve({ result: m.result, buffers: Array.isArray(buffers) ? buffers : [] });
    } else {
      const detail = typeof m.error === "string" && m.error !== "" ? m.error : "unknown error";
      entry.reject(new RequestError(entry.type, "error", detail));
    }
  };
  channel.on("msg:custom", onMessage);

  return {
    request<R>(type: RequestType, payload: Record<string, unknown> = {}): Promise<Reply<R>> {
      if (disposed) {
        return Promise.reject(new RequestError(type, "cancelled", "the view was closed"));
      }
      const id = newId();
      return new Promise<Reply<R>>((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(id);
          const seconds = Math.round(timeoutMs / 100) / 10;
          const detail = `no answer from the kernel after ${seconds} s (is it busy or disconnected?)`;
          reject(new RequestError(type, "timeout", detail));
        }, timeoutMs);
        pending.set(id, { type, resolve: resolve as (reply: Reply) => void, reject, timer });
        try {
          channel.send({ ...payload, type, id });
        } catch (error) {
          pending.delete(id);
          clearTimeout(timer);
          const detail = error instanceof Error ? error.message : String(error);
          reject(new RequestError(type, "error", `could not send the request: ${detail}`));
        }
      });
    },
    get pending() {
      return pending.size;
    },
    dispose(): void {
      if (disposed) return;
      disposed = true;
      channel.off("msg:custom", onMessage);
      for (const [id, entry] of pending) {
        clearTimeout(entry.timer);
        pending.delete(id);
        entry.reject(new RequestError(entry.type, "cancelled", "the view was closed"));
      }
    },
  };
}
