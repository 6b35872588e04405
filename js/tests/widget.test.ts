import type { AnyModel, RenderProps } from "@anywidget/types";
import { afterEach, describe, expect, it, vi } from "vitest";
import { PROTOCOL, type ViewKind, type ViewTraits } from "../src/protocol";
import structure from "../src/structure";
import widget from "../src/widget";
import { FakeModel, flush, makeState, viewAt } from "./fixtures";

/** The run store of a state model (and its request channel) stay subscribed for its lifetime. */
const STORE_LISTENERS = 2;

interface Mounted {
  el: HTMLElement;
  model: FakeModel;
  controller: AbortController;
  cleanup: (() => unknown) | undefined;
}

async function mount(view: string, state: FakeModel, id = "abc123"): Promise<Mounted> {
  const model = new FakeModel({ state: `IPY_MODEL_${id}`, view });
  model.models.set(id, state);
  const el = document.createElement("div");
  document.body.append(el);
  const controller = new AbortController();
  const props = {
    model: model as unknown as AnyModel<ViewTraits>,
    el,
    signal: controller.signal,
  } as unknown as RenderProps<ViewTraits>;
  // The structure view has a bundle of its own (it carries the layout worker).
  const bundle = view === "structure" ? structure : widget;
  const result = await bundle.render(props);
  return { el, model, controller, cleanup: typeof result === "function" ? result : undefined };
}

async function mountAll(state: FakeModel): Promise<Record<ViewKind, Mounted>> {
  return {
    structure: await mount("structure", state),
    picker: await mount("picker", state),
    histogram: await mount("histogram", state),
    slider: await mount("slider", state),
    flow: await mount("flow", state),
  };
}

afterEach(() => {
  document.body.replaceChildren();
  vi.useRealTimers();
});

describe("render", () => {
  it("draws each view kind from the shared state model", async () => {
    const state = makeState({ selected: "head" });
    const views = await mountAll(state);
    for (const kind of PROTOCOL.VIEW_KINDS) {
      expect(views[kind].el.querySelector(`.nbviz.nbviz-${kind}`), kind).not.toBeNull();
    }
    expect(views.structure.el.querySelectorAll(".nbviz-row")).toHaveLength(6);
    expect(
      views.picker.el.querySelector(".nbviz-item.is-selected")?.getAttribute("data-layer"),
    ).toBe("head");
    expect(views.histogram.el.querySelector(".nbviz-hist-title .nbviz-name")?.textContent).toBe(
      "head",
    );
    expect(views.slider.el.querySelector(".nbviz-step-label")?.textContent).toBe("step 0 (1 of 5)");
  });

  it("links the views through the state model only", async () => {
    const state = makeState();
    const views = await mountAll(state);
    views.structure.el
      .querySelector<HTMLElement>('.nbviz-row[data-layer="features.conv1"]')
      ?.click();
    expect(state.get("selected")).toBe("features.conv1");
    expect(state.saves).toBe(1);
    await flush();
    expect(views.structure.el.querySelector(".is-selected")?.getAttribute("data-layer")).toBe(
      "features.conv1",
    );
    expect(views.picker.el.querySelector(".is-selected")?.getAttribute("data-layer")).toBe(
      "features.conv1",
    );
    expect(views.histogram.el.querySelectorAll(".nbviz-hist-card")).toHaveLength(2);
    // no view sent anything to the kernel
    for (const v of Object.values(views)) expect(v.model.sent).toEqual([]);

    views.picker.el.querySelector<HTMLElement>('.nbviz-item[data-layer="head"]')?.click();
    await flush();
    expect(views.structure.el.querySelector(".is-selected")?.getAttribute("data-layer")).toBe(
      "head",
    );
    expect(views.histogram.el.querySelector(".nbviz-hist-card")?.getAttribute("data-tensor")).toBe(
      "head.weight",
    );
  });

  it("follows changes made by the kernel", async () => {
    const state = makeState();
    const views = await mountAll(state);
    state.set("selected", "features.conv2.inner");
    state.set("num_steps", 10);
    state.set("step", 7);
    await flush();
    const inner = views.structure.el.querySelector<HTMLElement>(
      '[data-layer="features.conv2.inner"]',
    );
    expect(inner?.classList.contains("is-selected")).toBe(true);
    expect(inner?.hidden).toBe(false);
    expect(views.histogram.el.querySelector(".nbviz-hist-none")?.textContent).toBe(
      "No parameters of its own",
    );
    expect(views.slider.el.querySelector(".nbviz-step-label")?.textContent).toBe(
      "step 7 (8 of 10)",
    );
    expect(views.slider.el.querySelector<HTMLInputElement>("input[type=range]")?.max).toBe("9");
    state.set("outputs", { "features.conv2.inner": ["1×8"] });
    await flush();
    expect(inner?.querySelector(".nbviz-output")?.textContent).toBe("1×8");
    expect(views.histogram.el.querySelector(".nbviz-hist-output")?.textContent).toBe("output 1×8");
    state.set("warnings", ["could not trace forward"]);
    await flush();
    expect(views.structure.el.querySelector(".nbviz-warning")?.textContent).toBe(
      "could not trace forward",
    );
  });

  it("sets the step from the slider", async () => {
    const state = makeState();
    const { el } = await mount("slider", state);
    const input = el.querySelector<HTMLInputElement>("input[type=range]");
    if (input === null) throw new Error("no slider");
    expect(input.disabled).toBe(false);
    input.value = "3";
    input.dispatchEvent(new Event("input"));
    expect(state.get("step")).toBe(3);
    expect(state.saves).toBe(1);
    state.set("num_steps", 1);
    state.set("step", 0);
    await flush();
    expect(input.disabled).toBe(true);
  });

  it("fetches, caches and shows an exact histogram", async () => {
    const state = makeState({ selected: "features.conv1" });
    const { el, model } = await mount("histogram", state);
    const weight = () => el.querySelector<HTMLElement>('[data-tensor="features.conv1.weight"]');
    expect(weight()?.querySelector(".nbviz-sampled")?.textContent).toContain(
      "sampled: 3 of 1,234 elements",
    );
    weight()?.querySelector<HTMLButtonElement>(".nbviz-exact")?.click();
    expect(model.sent).toHaveLength(1);
    const request = model.sent[0] as { type: string; id: string; tensor: number };
    expect(request).toMatchObject({ type: "exact_histogram", tensor: 0 });
    expect(weight()?.querySelector<HTMLButtonElement>(".nbviz-exact")?.disabled).toBe(true);

    const counts = new Float64Array(64);
    counts[0] = 1000;
    counts[63] = 234;
    model.emit(
      "msg:custom",
      {
        type: "response",
        id: request.id,
        ok: true,
        result: {
          lo: -1,
          width: 2 / 64,
          sample: 1234,
          counts: { buffer: 0, dtype: "float64", shape: [64] },
        },
      },
      [viewAt(counts, 8)],
    );
    await flush();
    expect(weight()?.querySelector(".nbviz-exact-note")?.textContent).toBe(
      "exact: all 1,234 elements",
    );
    expect(
      [...(weight()?.querySelectorAll("rect.nbviz-bar") ?? [])].map((r) =>
        r.getAttribute("data-bin"),
      ),
    ).toEqual(["0", "63"]);

    // cached: switching away and back shows it again without a new request
    state.set("selected", "head");
    await flush();
    state.set("selected", "features.conv1");
    await flush();
    expect(weight()?.querySelector(".nbviz-exact-note")).not.toBeNull();
    expect(model.sent).toHaveLength(1);

    // new data from the kernel drops the cache
    state.set("hist", { ...(state.get("hist") as object) });
    await flush();
    expect(weight()?.querySelector(".nbviz-exact")).not.toBeNull();
  });

  it("shows the kernel's error and a timeout under the histogram", async () => {
    vi.useFakeTimers();
    const state = makeState({ selected: "features.conv1" });
    const { el, model } = await mount("histogram", state);
    const weight = () => el.querySelector<HTMLElement>('[data-tensor="features.conv1.weight"]');
    weight()?.querySelector<HTMLButtonElement>(".nbviz-exact")?.click();
    const first = model.sent[0] as { id: string };
    model.emit(
      "msg:custom",
      { type: "response", id: first.id, ok: false, error: "model was deleted" },
      [],
    );
    await flush();
    expect(weight()?.querySelector(".nbviz-error")?.textContent).toBe(
      "Exact histogram failed: model was deleted",
    );

    weight()?.querySelector<HTMLButtonElement>(".nbviz-exact")?.click(); // retry
    expect(model.sent).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(PROTOCOL.REQUEST_TIMEOUT_MS);
    expect(weight()?.querySelector(".nbviz-error")?.textContent).toBe(
      "Exact histogram timed out: no answer from the kernel after 15 s (is it busy or disconnected?)",
    );
  });

  it("removes every listener when the signal aborts", async () => {
    const state = makeState();
    const views = await mountAll(state);
    expect(state.listenerCount()).toBeGreaterThan(0);
    for (const v of Object.values(views)) v.controller.abort();
    expect(state.listenerCount()).toBe(STORE_LISTENERS);
    expect(views.histogram.model.listenerCount()).toBe(0);
    // a later change does not touch the (detached) views
    state.set("selected", "head");
    await flush();
  });

  it("runs cleanup through the returned function too", async () => {
    const state = makeState();
    const { cleanup, model } = await mount("histogram", state);
    expect(cleanup).toBeTypeOf("function");
    await cleanup?.();
    expect(state.listenerCount()).toBe(STORE_LISTENERS);
    expect(model.listenerCount()).toBe(0);
  });

  it("reports an unknown view, a missing state and a protocol mismatch", async () => {
    const state = makeState();
    const unknown = await mount("sunburst", state);
    expect(unknown.el.querySelector(".nbviz-error")?.textContent).toContain(
      'unknown view "sunburst"',
    );

    const model = new FakeModel({ state: "IPY_MODEL_missing", view: "picker" });
    const el = document.createElement("div");
    await widget.render({
      model,
      el,
      signal: new AbortController().signal,
    } as unknown as RenderProps<ViewTraits>);
    expect(el.querySelector(".nbviz-error")?.textContent).toContain(
      "could not load the shared state: no model missing",
    );

    const future = await mount("structure", makeState({ protocol_version: 99 }));
    expect(future.el.querySelector(".nbviz-version")?.textContent).toContain("protocol version 99");
    expect(future.el.querySelectorAll(".nbviz-row")).toHaveLength(6);
  });

  it("shows undecodable statistics as an error instead of failing", async () => {
    const state = makeState({ selected: "head" });
    state.set("stats", {
      view: viewAt(new Float64Array(3)),
      dtype: "float64",
      shape: [3],
    } as never);
    const { el } = await mount("histogram", state);
    expect(el.querySelector(".nbviz-error")?.textContent).toContain(
      "stats: shape [3] where [4, 10] was expected",
    );
  });
});
