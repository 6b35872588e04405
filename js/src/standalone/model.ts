/**
 * An in-page model with the part of anywidget's model interface the views use (get, set, on,
 * off, save_changes, send, widget_manager): what the notebook's widget manager would provide,
 * with the kernel replaced by a `FakeKernel` whose answers arrive asynchronously.
 */

import type { AnyModel } from "@anywidget/types";
import type { FakeKernel } from "./kernel";

// biome-ignore lint/suspicious/noExplicitAny: the handlers anywidget's interface accepts
type Handler = (...args: any[]) => void;

/** Models by id, for views whose `state` trait is an "IPY_MODEL_<id>" reference. */
export class LocalManager {
  readonly models = new Map<string, LocalModel>();
  get_model<T extends Traits>(id: string): Promise<AnyModel<T>> {
    const model = this.models.get(id);
    return model === undefined
      ? Promise.reject(new Error(`no model with id ${id} in this report`))
      : Promise.resolve(model as unknown as AnyModel<T>);
  }
}

/** Traits by name; the views check each value's shape as they read it. */
// biome-ignore lint/suspicious/noExplicitAny: anywidget's model interface types values as any
type Traits = Record<string, any>;

export class LocalModel implements AnyModel<Traits> {
  private readonly handlers = new Map<string, Set<Handler>>();

  constructor(
    private readonly values: Traits,
    private readonly kernel: FakeKernel,
    readonly widget_manager: LocalManager,
  ) {}

  get(key: string): unknown {
    return this.values[key];
  }

  set(key: string, value: unknown): void {
    if (Object.is(this.values[key], value)) return;
    this.values[key] = value;
    this.emit(`change:${key}`);
  }

  on(event: string, callback: Handler): void {
    let set = this.handlers.get(event);
    if (set === undefined) {
      set = new Set();
      this.handlers.set(event, set);
    }
    set.add(callback);
  }

  off(event?: string | null, callback?: Handler | null): void {
    if (event === undefined || event === null) {
      this.handlers.clear();
    } else if (callback === undefined || callback === null) {
      this.handlers.delete(event);
    } else {
      this.handlers.get(event)?.delete(callback);
    }
  }

  /** Nothing to sync: the page is the only copy of the state. */
  save_changes(): void {}

  send(content: unknown): void {
    for (const [reply, buffers] of this.kernel.answer(content)) {
      // Later, as a kernel's answer would be: callers register for the reply after sending.
      setTimeout(() => this.emit("msg:custom", reply, buffers), 0);
    }
  }

  /** How many handlers listen to `event` (tests). */
  listeners(event: string): number {
    return this.handlers.get(event)?.size ?? 0;
  }

  private emit(event: string, ...args: unknown[]): void {
    for (const handler of [...(this.handlers.get(event) ?? [])]) handler(...args);
  }
}
