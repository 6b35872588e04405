/** Step slider logic, pure: positions on a sparse step list and the "follow" state machine. */

/** Index of the latest entry of ascending `steps` that is <= step; 0 when none is; -1 if empty. */
export function indexAtOrBefore(steps: ArrayLike<number>, step: number): number {
  let lo = 0;
  let hi = steps.length - 1;
  if (hi < 0) return -1;
  let found = 0;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if ((steps[mid] ?? 0) <= step) {
      found = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return found;
}

/** The step `delta` entries after (or before) `step` in `steps`, clamped to the ends. */
export function stepBy(steps: ArrayLike<number>, step: number, delta: number): number {
  const n = steps.length;
  if (n === 0) return step;
  const i = Math.min(Math.max(indexAtOrBefore(steps, step) + delta, 0), n - 1);
  return steps[i] ?? step;
}

export interface FollowState {
  step: number;
  following: boolean;
}

export type FollowEvent =
  | { type: "data"; lastStep: number }
  | { type: "user"; step: number }
  | { type: "external"; step: number; lastStep: number }
  | { type: "follow"; lastStep: number };

/**
 * The next slider state. New data moves a following slider to the latest step; the user moving
 * it stops following; the follow button returns to the latest step; a step set from outside
 * (Python, a click on a chart) stops following unless it is the latest step.
 */
export function nextFollow(state: FollowState, event: FollowEvent): FollowState {
  switch (event.type) {
    case "data":
      return state.following && event.lastStep >= 0 && event.lastStep !== state.step
        ? { step: event.lastStep, following: true }
        : state;
    case "user":
      return { step: event.step, following: false };
    case "external":
      return {
        step: event.step,
        following: state.following && event.step === event.lastStep,
      };
    case "follow":
      return { step: event.lastStep >= 0 ? event.lastStep : state.step, following: true };
  }
}

/**
 * An SVG path of unit-height ticks at the positions (0..width) of the marked steps: `marked(i)`
 * says whether index i of n is marked. Consecutive marks merge into one rectangle.
 */
export function markPath(n: number, width: number, marked: (i: number) => boolean): string {
  if (n <= 0) return "";
  const parts: string[] = [];
  const x = (i: number): number => (n === 1 ? width / 2 : (i / (n - 1)) * width);
  const minW = 2;
  let i = 0;
  while (i < n) {
    if (!marked(i)) {
      i++;
      continue;
    }
    let j = i;
    while (j + 1 < n && marked(j + 1)) j++;
    const x0 = x(i) - minW / 2;
    const w = Math.max(x(j) - x(i), 0) + minW;
    parts.push(
      `M${Math.round(x0 * 10) / 10} 0h${Math.round(w * 10) / 10}v1h${-Math.round(w * 10) / 10}z`,
    );
    i = j + 1;
  }
  return parts.join("");
}
