/**
 * Step slider: a range over the recorded train steps, back / play-pause / forward buttons,
 * keyboard arrows, and "follow" (track the latest step while training until the user moves it).
 * Skipped and anomalous steps are marked on a strip under the track.
 *
 * Hooks: `.nbviz.nbviz-stepslider`; `input.nbviz-range`; `button.nbviz-back|nbviz-play|
 * nbviz-forward|nbviz-follow` (`.is-on` while following); `.nbviz-step-label`;
 * `svg.nbviz-marks` with `path.nbviz-mark-skipped` and `path.nbviz-mark-anomaly`.
 */

import { h, s, viewRoot } from "../draw/dom";
import { formatCount } from "../format";
import { type FollowState, indexAtOrBefore, markPath, nextFollow, stepBy } from "./follow";
import type { View } from "./source";

export interface StepSliderData {
  /** Recorded train steps, ascending (the store's `steps().step`). */
  steps: ArrayLike<number>;
  /** The latest step (-1 when none). */
  lastStep: number;
  /** Anomalous steps (the store's `anomalies()` rows fit). */
  anomalies: readonly { step: number }[];
  /** Skipped flags aligned with `steps` (the store's `steps().skipped`). */
  skipped: ArrayLike<number>;
  step: number;
  following: boolean;
}

export interface StepSliderOptions {
  onStep?: (step: number) => void;
  onFollow?: (following: boolean) => void;
  /** Steps per second while playing (default 20). */
  fps?: number;
}

export interface StepSlider extends View<StepSliderData> {
  readonly state: FollowState;
  play(): void;
  pause(): void;
}

const MARK_W = 1000;

function button(cls: string, text: string, title: string): HTMLButtonElement {
  return h("button", { class: `nbviz-btn ${cls}`, text, title, attrs: { type: "button" } });
}

const SCRUB_KEYS = new Set([
  "ArrowLeft",
  "ArrowRight",
  "ArrowUp",
  "ArrowDown",
  "Home",
  "End",
  "PageUp",
  "PageDown",
]);

export function createStepSlider(
  data: StepSliderData,
  options: StepSliderOptions = {},
): StepSlider {
  const back = button("nbviz-back", "◀", "Previous step (←)");
  const play = button("nbviz-play", "▶", "Play");
  const forward = button("nbviz-forward", "▶", "Next step (→)");
  const follow = button("nbviz-follow", "follow", "Follow the latest step");
  const input = h("input", {
    class: "nbviz-range",
    attrs: { type: "range", min: 0, step: 1, "aria-label": "Step" },
  });
  const skippedPath = s("path", { class: "nbviz-mark-skipped" });
  const anomalyPath = s("path", { class: "nbviz-mark-anomaly" });
  const marks = s(
    "svg",
    {
      class: "nbviz-marks",
      attrs: { viewBox: `0 0 ${MARK_W} 1`, preserveAspectRatio: "none", "aria-hidden": "true" },
    },
    skippedPath,
    anomalyPath,
  );
  const label = h("span", { class: "nbviz-step-label" });
  const track = h("div", { class: "nbviz-track" }, input, marks);
  const el = viewRoot("stepslider", back, play, forward, track, label, follow);
  el.tabIndex = -1;

  let current: StepSliderData = { ...data };
  let state: FollowState = { step: data.step, following: data.following };
  let timer: ReturnType<typeof setInterval> | null = null;
  let marksFor: unknown[] = [];

  function drawMarks(): void {
    const { steps, skipped, anomalies } = current;
    if (marksFor[0] === steps && marksFor[1] === skipped && marksFor[2] === anomalies) return;
    marksFor = [steps, skipped, anomalies];
    const n = steps.length;
    skippedPath.setAttribute(
      "d",
      markPath(n, MARK_W, (i) => (skipped[i] ?? 0) !== 0),
    );
    const bad = new Set<number>();
    for (const a of anomalies) bad.add(indexAtOrBefore(steps, a.step));
    anomalyPath.setAttribute(
      "d",
      markPath(n, MARK_W, (i) => bad.has(i)),
    );
  }

  function drawPosition(): void {
    const n = current.steps.length;
    const index = Math.max(0, indexAtOrBefore(current.steps, state.step));
    input.max = String(Math.max(0, n - 1));
    input.value = String(index);
    input.disabled = n <= 1;
    input.setAttribute("aria-valuetext", `step ${state.step}`);
    label.textContent =
      n === 0 ? "no steps yet" : `step ${formatCount(state.step)} (${index + 1} of ${n})`;
    follow.classList.toggle("is-on", state.following);
    follow.setAttribute("aria-pressed", String(state.following));
    play.textContent = timer === null ? "▶" : "⏸";
    play.title = timer === null ? "Play" : "Pause";
  }

  function set(next: FollowState, emit: boolean): void {
    const changed = next.step !== state.step;
    const followChanged = next.following !== state.following;
    state = next;
    drawPosition();
    if (followChanged) options.onFollow?.(state.following);
    if (changed && emit) options.onStep?.(state.step);
  }

  function userStep(step: number): void {
    set(nextFollow(state, { type: "user", step }), true);
  }

  function stopTimer(): void {
    if (timer !== null) clearInterval(timer);
    timer = null;
  }

  function pause(): void {
    stopTimer();
    drawPosition();
  }

  function start(): void {
    if (timer !== null || current.steps.length < 2) return;
    const steps = current.steps;
    if (state.step >= (steps[steps.length - 1] ?? 0)) userStep(steps[0] ?? 0);
    timer = setInterval(
      () => {
        const last = current.steps[current.steps.length - 1] ?? 0;
        if (state.step >= last) {
          pause();
          return;
        }
        userStep(stepBy(current.steps, state.step, 1));
      },
      1000 / (options.fps ?? 20),
    );
    drawPosition();
  }

  input.addEventListener("input", () => {
    const step = current.steps[Number(input.value)];
    if (step !== undefined) userStep(step);
  });
  back.addEventListener("click", () => userStep(stepBy(current.steps, state.step, -1)));
  forward.addEventListener("click", () => userStep(stepBy(current.steps, state.step, 1)));
  play.addEventListener("click", () => (timer === null ? start() : pause()));
  follow.addEventListener("click", () => {
    pause();
    set(nextFollow(state, { type: "follow", lastStep: current.lastStep }), true);
  });
  el.addEventListener("keydown", (event) => {
    // The keys scrub here: JupyterLab's notebook, further up, would cancel them.
    if (SCRUB_KEYS.has(event.key)) event.stopPropagation();
    if (event.target === input) return; // the range handles its own keys
    const steps = current.steps;
    let step: number | null = null;
    if (event.key === "ArrowLeft") step = stepBy(steps, state.step, -1);
    else if (event.key === "ArrowRight") step = stepBy(steps, state.step, 1);
    else if (event.key === "Home") step = steps[0] ?? null;
    else if (event.key === "End") step = steps[steps.length - 1] ?? null;
    if (step === null) return;
    event.preventDefault();
    userStep(step);
  });

  drawMarks();
  set(nextFollow(state, { type: "data", lastStep: current.lastStep }), true);
  drawPosition();

  return {
    el,
    get state() {
      return state;
    },
    play: start,
    pause,
    update(next: Partial<StepSliderData>): void {
      current = { ...current, ...next };
      drawMarks();
      let s2 = state;
      if (next.following !== undefined && next.following !== s2.following) {
        s2 = next.following
          ? nextFollow(s2, { type: "follow", lastStep: current.lastStep })
          : { ...s2, following: false };
      }
      if (next.step !== undefined && next.step !== s2.step)
        s2 = nextFollow(s2, { type: "external", step: next.step, lastStep: current.lastStep });
      s2 = nextFollow(s2, { type: "data", lastStep: current.lastStep });
      // Steps set from outside are not echoed back; follow moves are (the host must learn them).
      set(s2, s2.step !== (next.step ?? state.step));
    },
    destroy(): void {
      stopTimer();
      el.replaceChildren();
    },
  };
}
