/**
 * What every view bundle shares: finding the shared state model, teardown, batched trait
 * watching, and the render function anywidget calls. The entry points (`widget.ts` for the
 * picker, histograms and slider; `structure.ts` for the structure diagram, which carries the
 * layout worker) only say how to mount their kinds.
 */

import type { AnyModel, Render } from "@anywidget/types";
import { h, viewRoot } from "../draw/dom";
import {
  type LayerRow,
  PROTOCOL,
  type StateTraits,
  type TensorRow,
  type ViewKind,
  type ViewTraits,
} from "../protocol";

export type StateModel = AnyModel<StateTraits>;
export type ViewModel = AnyModel<ViewTraits>;

const MODEL_PREFIX = "IPY_MODEL_";

export function errorMessage(error: unknown): string {
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
export class Cleanup {
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
export function watch(
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

export function layersOf(state: StateModel): LayerRow[] {
  const layers = state.get("layers");
  return Array.isArray(layers) ? layers : [];
}

export function tensorsOf(state: StateModel): TensorRow[] {
  const tensors = state.get("tensors");
  return Array.isArray(tensors) ? tensors : [];
}

export function selectedOf(state: StateModel): string | null {
  const selected = state.get("selected");
  return typeof selected === "string" ? selected : null;
}

export function outputsOf(state: StateModel): Record<string, string[]> {
  const outputs: unknown = state.get("outputs");
  return typeof outputs === "object" && outputs !== null && !Array.isArray(outputs)
    ? (outputs as Record<string, string[]>)
    : {};
}

export function select(state: StateModel, name: string): void {
  if (state.get("selected") === name) return;
  state.set("selected", name);
  state.save_changes();
}

/** A banner when the kernel speaks another protocol version than this bundle. */
export function versionBanner(state: StateModel): HTMLElement | null {
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

export interface Mounted {
  el: HTMLElement;
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

export type Mount = (
  kind: ViewKind,
  state: StateModel,
  model: ViewModel,
  cleanup: Cleanup,
) => Mounted;

/** anywidget's render for the view kinds in `kinds`, each drawn by `mount`. */
export function createRender(kinds: readonly ViewKind[], mount: Mount): Render<ViewTraits> {
  return async ({ model, el, signal }) => {
    const cleanup = new Cleanup();
    signal?.addEventListener("abort", () => cleanup.run(), { once: true });
    const kind: unknown = model.get("view");
    if (!isViewKind(kind) || !kinds.includes(kind)) {
      el.replaceChildren(
        errorView(
          "error",
          `nbviz: unknown view ${JSON.stringify(kind)}; expected one of ${kinds.join(", ")}`,
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
}
