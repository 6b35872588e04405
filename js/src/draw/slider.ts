/**
 * The step slider. Hooks: `.nbviz.nbviz-slider`; `input[type=range].nbviz-range`;
 * `.nbviz-step-label` ("step k of N").
 */

import { formatCount } from "../format";
import { h, viewRoot } from "./dom";

export interface SliderData {
  step: number;
  numSteps: number;
}

export interface SliderOptions {
  onStep?: (step: number) => void;
}

export interface Slider {
  el: HTMLDivElement;
  input: HTMLInputElement;
  update(next: Partial<SliderData>): void;
}

/** The step clamped into 0..numSteps-1 (numSteps is at least 1). */
export function clampStep(step: number, numSteps: number): number {
  const last = Math.max(1, Math.floor(numSteps)) - 1;
  if (!Number.isFinite(step)) return 0;
  return Math.min(Math.max(Math.round(step), 0), last);
}

export function createSlider(data: SliderData, options: SliderOptions = {}): Slider {
  const input = h("input", {
    class: "nbviz-range",
    attrs: { type: "range", min: 0, step: 1, "aria-label": "Step" },
  });
  const label = h("span", { class: "nbviz-step-label" });
  const el = viewRoot("slider", input, label);
  let current: SliderData = { ...data };

  function draw(): void {
    const n = Math.max(1, Math.floor(current.numSteps) || 1);
    const step = clampStep(current.step, n);
    input.max = String(n - 1);
    input.value = String(step);
    input.disabled = n <= 1;
    input.setAttribute("aria-valuetext", `step ${step} of ${n}`);
    label.textContent = `step ${formatCount(step)} of ${formatCount(n)}`;
  }

  input.addEventListener("input", () => {
    const step = clampStep(Number(input.value), current.numSteps);
    current = { ...current, step };
    label.textContent = `step ${formatCount(step)} of ${formatCount(Math.max(1, current.numSteps))}`;
    options.onStep?.(step);
  });

  draw();
  return {
    el,
    input,
    update(next: Partial<SliderData>): void {
      current = { ...current, ...next };
      draw();
    },
  };
}
