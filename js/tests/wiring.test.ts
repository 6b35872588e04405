/**
 * The statistics views wired to the run store of a (fake) state model: appends arrive as
 * `msg:custom` on the state model, as the kernel pushes them, and the views show them.
 */

import type { AnyModel, RenderProps } from "@anywidget/types";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { ViewTraits } from "../src/protocol";
import structure from "../src/structure";
import widget from "../src/widget";
import {
  FakeModel,
  flush,
  layer,
  nextFrames,
  runAppend,
  makeState as sampleState,
  seriesRow,
} from "./fixtures";
import resnet from "./fixtures/resnet.json";

vi.mock("../src/graph/layout", async (importOriginal) => {
  const actual = await importOriginal<typeof import("../src/graph/layout")>();
  const { createElkCompute } = await import("../src/graph/elk-layout");
  return { ...actual, createLayoutEngine: () => actual.createLayoutEngine(createElkCompute()) };
});

const CONV1 = "features.conv1";
const CONV2 = "features.conv2";

/** The state model with the first conv layer selected. */
function makeState(extra: Record<string, unknown> = {}): FakeModel {
  return sampleState({ selected: CONV1, num_steps: 1, ...extra });
}

async function mount(view: string, state: FakeModel) {
  const model = new FakeModel({ state: "IPY_MODEL_s", view });
  model.models.set("s", state);
  const el = document.createElement("div");
  document.body.append(el);
  const bundle = view === "structure" ? structure : widget;
  await bundle.render({
    model: model as unknown as AnyModel<ViewTraits>,
    el,
    signal: new AbortController().signal,
  } as unknown as RenderProps<ViewTraits>);
  await flush();
  return el;
}

const SERIES = [
  seriesRow(0, CONV1, "weight", `${CONV1}.weight`),
  seriesRow(1, CONV1, "grad", `${CONV1}.weight`),
  seriesRow(2, CONV2, "grad", `${CONV2}.weight`),
];

/** Three train steps of the two layers, as the kernel pushes them while training. */
function push(state: FakeModel, anomalies = false, countSteps = true): void {
  const steps = [0, 1, 2];
  const { message, buffers } = runAppend({
    series: SERIES,
    steps,
    stats: steps.flatMap((step) =>
      SERIES.map((s) => ({
        series: s.id,
        step,
        fields: { min: -step, max: step + 1, mean: 0, std: 1, l2: (s.id + 1) * (step + 1) },
      })),
    ),
    hists: steps.map((step) => ({ series: 0, step, lo: -1 - step, fill: step + 1 })),
    anomalies: anomalies
      ? [{ step: 1, phase: "backward", series: 2, nan: 3, posinf: 0, neginf: 0, detail: "" }]
      : [],
  });
  if (countSteps) state.set("num_steps", 3);
  state.emit("msg:custom", message, buffers);
}

afterEach(() => {
  document.body.replaceChildren();
});

describe("statistics view on the run store", () => {
  it("shows the parameters until run data arrive, then the panels, and follows the step", async () => {
    const state = makeState();
    const el = await mount("histogram", state);
    expect(el.querySelectorAll(".nbviz-hist-card").length).toBeGreaterThan(0);
    expect(el.querySelector<HTMLElement>(".nbviz-stats")?.dataset.source).toBe("parameters");
    // the store asked for a snapshot on the state model's comm
    expect(state.sent.some((m) => (m as { type?: string }).type === "run_snapshot")).toBe(true);

    push(state);
    await nextFrames();
    expect(el.querySelector<HTMLElement>(".nbviz-stats")?.dataset.source).toBe("run");
    expect(el.querySelector(".nbviz-hist-card")).toBeNull();
    const cells = el.querySelectorAll(".nbviz-hp-cell");
    expect(cells.length).toBe(2);
    const bars = () => el.querySelector(".nbviz-hp-row[data-kind=weight] path.nbviz-bars");
    const max = () => el.querySelector('.nbviz-hp-row[data-kind=weight] td[data-stat="max"]');
    expect(bars()?.getAttribute("d")).toBeTruthy();
    expect(max()?.textContent).toBe("1");
    state.set("step", 2);
    await flush();
    expect(el.querySelector(".nbviz-hp-step")?.textContent).toContain("step 2");
    expect(max()?.textContent).toBe("3");
    expect(el.querySelector(".nbviz-distribution")).not.toBeNull();

    // a layer whose histograms are not held: asked for, no round trip needed to draw its stats
    state.set("selected", CONV2);
    await flush();
    const asked = state.sent.filter((m) => (m as { type?: string }).type === "run_histograms");
    expect(asked.at(-1)).toMatchObject({ series: [2] });
    expect(el.querySelector(".nbviz-hp-row[data-kind=grad] .nbviz-hp-cell")).not.toBeNull();
    // it has no weights: the distribution shows its gradients, and the state model says so
    const kindSelect = el.querySelector<HTMLSelectElement>("select.nbviz-dist-kind");
    expect(kindSelect?.value).toBe("grad");
    expect(state.get("kind")).toBe("grad");
    // the user's pick goes to the state model; the kernel's comes back to the picker
    if (kindSelect === null) throw new Error("no kind picker");
    kindSelect.value = "weight";
    kindSelect.dispatchEvent(new Event("change"));
    expect(state.get("kind")).toBe("weight");
    state.set("kind", "grad");
    await flush();
    expect(kindSelect.value).toBe("grad");
  });

  it("shows the first anomaly and selects its layer and step on a click", async () => {
    const state = makeState();
    const el = await mount("histogram", state);
    push(state, true);
    await nextFrames();
    const banner = el.querySelector<HTMLElement>(".nbviz-anomaly");
    expect(banner?.hidden).toBe(false);
    el.querySelector<HTMLButtonElement>(".nbviz-anomaly-go")?.click();
    expect(state.get("selected")).toBe(CONV2);
    expect(state.get("step")).toBe(1);
  });
});

describe("step slider on the run store", () => {
  it("follows steps the store holds before the kernel's num_steps counts them", async () => {
    const state = makeState();
    const el = await mount("slider", state);
    push(state, false, false);
    await nextFrames();
    expect(state.get("step")).toBe(2);
    state.set("num_steps", 3); // arrives later
    await flush();
    await nextFrames();
    expect(state.get("step")).toBe(2);
    expect(el.querySelector(".nbviz-follow")?.classList.contains("is-on")).toBe(true);
  });

  it("follows the latest step, then writes the step the user picks", async () => {
    const state = makeState();
    const el = await mount("slider", state);
    expect(el.querySelector(".nbviz-step-label")?.textContent).toBe("step 0 (1 of 1)");
    push(state);
    await nextFrames();
    expect(el.querySelector(".nbviz-step-label")?.textContent).toBe("step 2 (3 of 3)");
    expect(state.get("step")).toBe(2);
    const input = el.querySelector<HTMLInputElement>("input.nbviz-range");
    if (input === null) throw new Error("no slider");
    input.value = "0";
    input.dispatchEvent(new Event("input"));
    expect(state.get("step")).toBe(0);
    expect(el.querySelector("button.nbviz-follow")?.classList.contains("is-on")).toBe(false);
    // set from Python
    state.set("step", 1);
    await flush();
    expect(el.querySelector(".nbviz-step-label")?.textContent).toBe("step 1 (2 of 3)");
  });
});

describe("gradient flow view", () => {
  it("selects the layer clicked", async () => {
    const state = makeState({ selected: null });
    const el = await mount("flow", state);
    push(state);
    await nextFrames();
    const bars = el.querySelector("canvas.nbviz-gf-bars, .nbviz-gf-bars canvas, .nbviz-gf-bars");
    expect(bars).not.toBeNull();
    bars?.dispatchEvent(new MouseEvent("click", { clientX: 540, clientY: 5 }));
    expect(state.get("selected")).toBe(CONV2);
    bars?.dispatchEvent(new MouseEvent("click", { clientX: 9, clientY: 5 }));
    expect(state.get("selected")).toBe(CONV1);
  });
});

describe("graph overlay", () => {
  it("colours module boxes by the chosen metric at the step", async () => {
    const layers = [
      layer({ name: "", cls: "ResNet", depth: 0, parent: -1 }),
      layer({ name: "conv1", cls: "Conv2d", depth: 1, parent: 0 }),
      layer({ name: "fc", cls: "Linear", depth: 1, parent: 0 }),
    ];
    const state = makeState({ selected: null, graph: resnet, layers });
    const el = await mount("structure", state);
    for (let i = 0; i < 100 && el.querySelector('[data-name="conv1"]') === null; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const rect = () =>
      el.querySelector<SVGElement>('.nbviz-box[data-name="conv1"] > rect.nbviz-box-rect');
    expect(rect()).not.toBeNull();
    expect(rect()?.style.fill).toBe("");
    const picker = el.querySelector<HTMLSelectElement>("select.nbviz-overlay-metric");
    if (picker === null) throw new Error("no overlay picker");
    picker.value = "grad_norm";
    picker.dispatchEvent(new Event("change"));
    expect(state.get("overlay")).toBe("grad_norm");
    const { message, buffers } = runAppend({
      series: [seriesRow(0, "conv1", "grad", "conv1.weight"), seriesRow(1, "fc", "grad", "fc.w")],
      steps: [0, 1],
      stats: [
        { series: 0, step: 0, fields: { l2: 1 } },
        { series: 1, step: 0, fields: { l2: 100 } },
        { series: 0, step: 1, fields: { l2: 100 } },
        { series: 1, step: 1, fields: { l2: 1 } },
      ],
    });
    state.set("num_steps", 2);
    state.emit("msg:custom", message, buffers);
    await nextFrames();
    const at0 = rect()?.style.fill;
    expect(at0).toBeTruthy();
    expect(el.querySelector(".nbviz-overlay-legend .nbviz-legend")).not.toBeNull();
    state.set("step", 1);
    await flush();
    expect(rect()?.style.fill).toBeTruthy();
    expect(rect()?.style.fill).not.toBe(at0);
    picker.value = "";
    picker.dispatchEvent(new Event("change"));
    expect(rect()?.style.fill).toBe("");
    expect(state.get("overlay")).toBeNull();
    // set from the kernel: the picker follows and the boxes are coloured again
    state.set("overlay", "grad_norm");
    await flush();
    expect(picker.value).toBe("grad_norm");
    expect(rect()?.style.fill).toBeTruthy();
    // A new trace replaces the pane; the old overlay's listeners go with it.
    const listeners = state.listenerCount();
    state.set("graph", { ...resnet });
    await flush();
    expect(state.listenerCount()).toBe(listeners);
  });
});

describe("diagram expansion in the state model", () => {
  const box = (el: HTMLElement, name: string) => el.querySelector(`[data-name="${name}"]`);
  async function until(test: () => boolean): Promise<void> {
    for (let i = 0; i < 200 && !test(); i++) await new Promise((r) => setTimeout(r, 20));
  }

  it("starts from the state, writes the user's clicks and follows the kernel's changes", async () => {
    const state = makeState({ selected: null, graph: resnet, expanded: ["layer1#0"] });
    const el = await mount("structure", state);
    await until(() => box(el, "layer1.0") !== null);
    expect(box(el, "layer1.0")).not.toBeNull(); // opened from the state at first draw
    expect(box(el, "layer2.0")).toBeNull();

    // The user opens layer2: the state model hears of it, by "name#call".
    el.querySelector<SVGElement>('[data-name="layer2"] [data-toggle]')?.dispatchEvent(
      new MouseEvent("click", { bubbles: true }),
    );
    const expanded = () => JSON.stringify(state.get("expanded"));
    await until(() => expanded() !== '["layer1#0"]');
    expect(state.get("expanded")).toEqual(["layer1#0", "layer2#0"]);
    expect(state.saves).toBeGreaterThan(0);

    // The kernel sets it: layer1's two blocks unfold and the first opens.
    state.set("unfolded", ["layer1.0#0"]);
    state.set("expanded", ["layer1#0", "layer1.0#0"]);
    await until(() => box(el, "layer1.0.conv1") !== null);
    expect(box(el, "layer1.0.conv1")).not.toBeNull();
    expect(el.querySelector('[data-kind="fold"][data-name="layer1.0"]')).toBeNull();
  }, 20_000);
});
