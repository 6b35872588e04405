/**
 * The step slider (view kind "slider") over the state model's run store: it follows the latest
 * recorded step while training until the user moves it, writes `state.step` (a recorded step),
 * and follows `state.step` set from Python.
 */

import { viewRoot } from "../draw/dom";
import { storeFor } from "../live/attach";
import { createStepSlider } from "../panels";
import { type Cleanup, type Mounted, type StateModel, watch } from "./common";
import { setStep, stepOf } from "./stats";

function numSteps(state: StateModel): number {
  return Math.max(1, Number(state.get("num_steps")) || 1);
}

export function mountStepSlider(state: StateModel, cleanup: Cleanup): Mounted {
  const store = storeFor(state);
  // Before the store holds a step (no training yet, or the snapshot is on its way) the slider
  // ranges over 0 .. num_steps - 1 as the kernel counts them.
  let range = { steps: new Int32Array(0), skipped: new Uint8Array(0) };
  const counted = () => {
    const n = numSteps(state);
    if (range.steps.length !== n) {
      range = { steps: Int32Array.from({ length: n }, (_, i) => i), skipped: new Uint8Array(n) };
    }
    return range;
  };
  const data = () => {
    const held = store.steps();
    const { steps, skipped } =
      held.step.length > 0 ? { steps: held.step, skipped: held.skipped } : counted();
    const lastStep = held.step.length > 0 ? store.lastStep() : (steps[steps.length - 1] ?? 0);
    return { steps, skipped, lastStep, anomalies: store.anomalies() };
  };
  const slider = createStepSlider(
    // Follows the latest step when it shows the last one (a fresh widget, or one set so).
    { ...data(), step: stepOf(state), following: stepOf(state) >= numSteps(state) - 1 },
    { onStep: (step) => setStep(state, step, store) },
  );
  cleanup.add(store.onChange(() => slider.update(data())));
  watch(
    state,
    ["step", "num_steps"],
    () => {
      const step = stepOf(state);
      slider.update(step !== slider.state.step ? { ...data(), step } : data());
    },
    cleanup,
  );
  cleanup.add(() => slider.destroy());
  return { el: viewRoot("slider", slider.el) };
}
