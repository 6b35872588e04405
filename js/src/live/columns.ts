/**
 * Rows of one series kept sorted by step in typed arrays that grow by doubling: appends (the
 * common case while training) are amortised O(1), lookups at a step are binary searches, and
 * reading a row allocates nothing.
 */

/** Index of the last element of `steps[0..n)` that is <= `step`, or -1. */
export function lastAtOrBefore(steps: Int32Array, n: number, step: number): number {
  let lo = 0;
  let hi = n; // invariant: steps[< lo] <= step < steps[>= hi]
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((steps[mid] as number) <= step) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

type FloatArray = Float32Array | Float64Array;

interface FloatColumn {
  name: string;
  width: number;
  make: (length: number) => FloatArray;
}

/** Step-sorted rows with float columns of fixed widths (e.g. values [n * F], lo [n]). */
export class StepColumns {
  step: Int32Array;
  readonly columns: Record<string, FloatArray> = {};
  length = 0;

  constructor(
    private readonly specs: readonly FloatColumn[],
    capacity = 8,
  ) {
    this.step = new Int32Array(capacity);
    for (const spec of specs) this.columns[spec.name] = spec.make(capacity * spec.width);
  }

  get capacity(): number {
    return this.step.length;
  }

  /** Index of the row at `step`, or where it would go (negative: -(insertion point) - 1). */
  find(step: number): number {
    const at = lastAtOrBefore(this.step, this.length, step);
    return at >= 0 && this.step[at] === step ? at : -(at + 1) - 1;
  }

  /**
   * Writes a row at `step` (replacing the one held there): `source[name]` holds the column's
   * values at offset `row * width`.
   */
  put(step: number, source: Readonly<Record<string, ArrayLike<number>>>, row: number): void {
    let at = this.find(step);
    if (at < 0) {
      at = -at - 1;
      this.insertGap(at);
      this.step[at] = step;
    }
    for (const spec of this.specs) {
      const target = this.columns[spec.name] as FloatArray;
      const from = source[spec.name] as ArrayLike<number>;
      const w = spec.width;
      for (let k = 0; k < w; k++) target[at * w + k] = from[row * w + k] as number;
    }
  }

  /** Removes the rows at steps up to `through` (a prefix: rows are step-sorted). */
  dropThrough(through: number): void {
    const k = lastAtOrBefore(this.step, this.length, through) + 1;
    if (k === 0) return;
    this.step.copyWithin(0, k, this.length);
    for (const spec of this.specs) {
      const w = spec.width;
      (this.columns[spec.name] as FloatArray).copyWithin(0, k * w, this.length * w);
    }
    this.length -= k;
  }

  /** Views of the first `length` rows (no copy). */
  view(name: string): FloatArray {
    const spec = this.specs.find((s) => s.name === name);
    const width = spec?.width ?? 1;
    return (this.columns[name] as FloatArray).subarray(0, this.length * width);
  }

  steps(): Int32Array {
    return this.step.subarray(0, this.length);
  }

  private insertGap(at: number): void {
    if (this.length === this.capacity) this.grow();
    if (at < this.length) {
      this.step.copyWithin(at + 1, at, this.length);
      for (const spec of this.specs) {
        const w = spec.width;
        (this.columns[spec.name] as FloatArray).copyWithin((at + 1) * w, at * w, this.length * w);
      }
    }
    this.length += 1;
  }

  private grow(): void {
    const capacity = Math.max(8, this.capacity * 2);
    const step = new Int32Array(capacity);
    step.set(this.step);
    this.step = step;
    for (const spec of this.specs) {
      const bigger = spec.make(capacity * spec.width);
      bigger.set(this.columns[spec.name] as FloatArray);
      this.columns[spec.name] = bigger;
    }
  }
}

export const f32 = (n: number): Float32Array => new Float32Array(n);
export const f64 = (n: number): Float64Array => new Float64Array(n);
