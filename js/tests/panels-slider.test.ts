import { afterEach, describe, expect, it, vi } from "vitest";
import { indexAtOrBefore, markPath, nextFollow, stepBy } from "../src/panels/follow";
import { createStepSlider, type StepSliderData } from "../src/panels/stepslider";

describe("follow logic", () => {
  it("follows new data until the user moves, and the follow button returns", () => {
    let s = { step: 5, following: true };
    s = nextFollow(s, { type: "data", lastStep: 9 });
    expect(s).toEqual({ step: 9, following: true });
    s = nextFollow(s, { type: "user", step: 3 });
    expect(s).toEqual({ step: 3, following: false });
    s = nextFollow(s, { type: "data", lastStep: 12 });
    expect(s).toEqual({ step: 3, following: false });
    s = nextFollow(s, { type: "follow", lastStep: 12 });
    expect(s).toEqual({ step: 12, following: true });
    expect(nextFollow(s, { type: "external", step: 12, lastStep: 12 }).following).toBe(true);
    expect(nextFollow(s, { type: "external", step: 4, lastStep: 12 })).toEqual({
      step: 4,
      following: false,
    });
    expect(nextFollow({ step: 0, following: true }, { type: "data", lastStep: -1 }).step).toBe(0);
  });

  it("moves over sparse recorded steps", () => {
    const steps = Int32Array.of(0, 10, 20, 30);
    expect(indexAtOrBefore(steps, 25)).toBe(2);
    expect(indexAtOrBefore(steps, -1)).toBe(0);
    expect(indexAtOrBefore(new Int32Array(0), 3)).toBe(-1);
    expect(stepBy(steps, 20, 1)).toBe(30);
    expect(stepBy(steps, 25, -1)).toBe(10);
    expect(stepBy(steps, 30, 5)).toBe(30);
    expect(stepBy(steps, 0, -1)).toBe(0);
  });

  it("marks runs of steps as merged rectangles", () => {
    expect(markPath(0, 100, () => true)).toBe("");
    const d = markPath(11, 100, (i) => i === 2 || i === 3 || i === 9);
    expect(d).toBe("M19 0h12v1h-12zM89 0h2v1h-2z");
  });
});

function data(partial: Partial<StepSliderData> = {}): StepSliderData {
  return {
    steps: Int32Array.from({ length: 10 }, (_, i) => i * 2),
    lastStep: 18,
    anomalies: [{ step: 14 }],
    skipped: Uint8Array.from({ length: 10 }, (_, i) => (i === 3 ? 1 : 0)),
    step: 0,
    following: true,
    ...partial,
  };
}

describe("createStepSlider", () => {
  afterEach(() => vi.useRealTimers());

  it("starts at the latest step when following and follows new steps", () => {
    const onStep = vi.fn();
    const slider = createStepSlider(data(), { onStep });
    expect(slider.state).toEqual({ step: 18, following: true });
    expect(onStep).toHaveBeenLastCalledWith(18);
    const input = slider.el.querySelector<HTMLInputElement>("input.nbviz-range");
    expect(input?.value).toBe("9");
    slider.update({ steps: Int32Array.from({ length: 11 }, (_, i) => i * 2), lastStep: 20 });
    expect(slider.state.step).toBe(20);
    expect(onStep).toHaveBeenLastCalledWith(20);
    expect(slider.el.querySelector(".nbviz-follow")?.classList.contains("is-on")).toBe(true);
  });

  it("stops following when the user moves, returns with the follow button", () => {
    const onStep = vi.fn();
    const onFollow = vi.fn();
    const slider = createStepSlider(data(), { onStep, onFollow });
    const input = slider.el.querySelector<HTMLInputElement>("input.nbviz-range");
    if (!input) throw new Error("no input");
    input.value = "2";
    input.dispatchEvent(new Event("input"));
    expect(onStep).toHaveBeenLastCalledWith(4);
    expect(onFollow).toHaveBeenLastCalledWith(false);
    slider.update({ steps: Int32Array.from({ length: 12 }, (_, i) => i * 2), lastStep: 22 });
    expect(slider.state).toEqual({ step: 4, following: false });
    slider.el.querySelector<HTMLButtonElement>(".nbviz-follow")?.click();
    expect(slider.state).toEqual({ step: 22, following: true });
    expect(onStep).toHaveBeenLastCalledWith(22);
  });

  it("steps with buttons and keys, and shows its marks", () => {
    const onStep = vi.fn();
    const slider = createStepSlider(data({ following: false, step: 6 }), { onStep });
    slider.el.querySelector<HTMLButtonElement>(".nbviz-forward")?.click();
    expect(onStep).toHaveBeenLastCalledWith(8);
    slider.el.querySelector<HTMLButtonElement>(".nbviz-back")?.click();
    slider.el.querySelector<HTMLButtonElement>(".nbviz-back")?.click();
    expect(onStep).toHaveBeenLastCalledWith(4);
    const back = slider.el.querySelector<HTMLButtonElement>(".nbviz-back");
    back?.dispatchEvent(new KeyboardEvent("keydown", { key: "End", bubbles: true }));
    expect(onStep).toHaveBeenLastCalledWith(18);
    back?.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowLeft", bubbles: true }));
    expect(onStep).toHaveBeenLastCalledWith(16);
    expect(slider.el.querySelector(".nbviz-mark-skipped")?.getAttribute("d")).not.toBe("");
    expect(slider.el.querySelector(".nbviz-mark-anomaly")?.getAttribute("d")).toMatch(/^M/);
    expect(slider.el.querySelector(".nbviz-step-label")?.textContent).toBe("step 16 (9 of 10)");
  });

  it("keeps its scrubbing keys from the page around it (JupyterLab cancels them)", () => {
    const slider = createStepSlider(data({ following: false, step: 6 }));
    const page = document.createElement("div");
    page.append(slider.el);
    const seen: string[] = [];
    page.addEventListener("keydown", (event) => seen.push(event.key));
    const input = slider.el.querySelector("input.nbviz-range");
    for (const key of ["ArrowRight", "Home", "PageDown", "Enter"])
      input?.dispatchEvent(new KeyboardEvent("keydown", { key, bubbles: true }));
    expect(seen).toEqual(["Enter"]);
  });

  it("does not echo steps set from outside; plays to the end", () => {
    vi.useFakeTimers();
    const onStep = vi.fn();
    const slider = createStepSlider(data({ following: false, step: 0 }), { onStep, fps: 10 });
    slider.update({ step: 12 });
    expect(onStep).not.toHaveBeenCalled();
    expect(slider.state).toEqual({ step: 12, following: false });
    slider.play();
    vi.advanceTimersByTime(1000);
    expect(onStep.mock.calls.map((c) => c[0])).toEqual([14, 16, 18]);
    expect(slider.el.querySelector(".nbviz-play")?.textContent).toBe("▶");
    slider.destroy();
  });
});
