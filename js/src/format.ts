/** Number and shape formatting shared by the views. Deterministic (no locale). */

/** An integer with thousands separators: 1234567 -> "1,234,567". */
export function formatCount(n: number): string {
  if (Number.isNaN(n)) return "NaN";
  if (!Number.isFinite(n)) return n > 0 ? "∞" : "−∞";
  const rounded = Math.round(n);
  const digits = Math.abs(rounded).toFixed(0);
  const grouped = digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return rounded < 0 ? `-${grouped}` : grouped;
}

const UNITS: readonly [number, string][] = [
  [1e12, "T"],
  [1e9, "B"],
  [1e6, "M"],
];

/**
 * A parameter count for a narrow column: exact with separators below a million, compact above
 * ("1.2M", "23.5M", "138M", "1.5B"); `title` always has the exact value.
 */
export function formatParams(n: number): { text: string; title: string } {
  const exact = formatCount(n);
  const abs = Math.abs(n);
  if (!Number.isFinite(n) || abs < 1e6) return { text: exact, title: exact };
  let unitIndex = UNITS.findIndex(([size]) => abs >= size);
  for (;;) {
    const [size, suffix] = UNITS[unitIndex] ?? [1e6, "M"];
    const x = abs / size;
    const text = x < 99.95 ? x.toFixed(1).replace(/\.0$/, "") : x.toFixed(0);
    if (text === "1000" && unitIndex > 0) {
      unitIndex -= 1; // 999.96M rounds to 1000M: say 1B instead
      continue;
    }
    return { text: `${n < 0 ? "-" : ""}${text}${suffix}`, title: exact };
  }
}

function trimMantissa(s: string): string {
  return s.includes(".") ? s.replace(/0+$/, "").replace(/\.$/, "") : s;
}

/**
 * A float in at most 4 significant digits: 0.12345 -> "0.1235", 1234.5 -> "1235", 0.5 -> "0.5",
 * 123456 -> "1.235e5", 0.0000123 -> "1.23e-5". NaN and infinities are spelled out.
 */
export function formatValue(x: number): string {
  if (Number.isNaN(x)) return "NaN";
  if (x === Number.POSITIVE_INFINITY) return "+Inf";
  if (x === Number.NEGATIVE_INFINITY) return "−Inf";
  if (x === 0) return "0";
  const abs = Math.abs(x);
  if (abs >= 1e-3 && abs < 1e4) {
    const fixed = x.toPrecision(4);
    // toPrecision(4) of 9999.5 is "1.000e+4": fall through to the exponent form then.
    if (!fixed.includes("e")) return trimMantissa(fixed);
  }
  const [mantissa = "", exponent = "0"] = x.toExponential(3).split("e");
  return `${trimMantissa(mantissa)}e${Number(exponent)}`;
}

/** A tensor shape: [64, 3, 7, 7]; [] for a scalar. */
export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

/** Plural helper: plural(1, "layer") -> "1 layer", plural(2, "layer") -> "2 layers". */
export function plural(n: number, noun: string, nouns = `${noun}s`): string {
  return `${formatCount(n)} ${n === 1 ? noun : nouns}`;
}

/**
 * A layer's output shapes (one string per call) for a narrow cell: the first call, with the
 * number of calls when there were several; the title lists every call.
 */
export function formatOutputs(calls: readonly string[] | undefined): {
  text: string;
  title: string;
} {
  if (calls === undefined || calls.length === 0) return { text: "", title: "" };
  const first = calls[0] ?? "";
  if (calls.length === 1) return { text: first, title: `output: ${first}` };
  return {
    text: `${first} (${calls.length} calls)`,
    title: calls.map((shape, i) => `call ${i + 1}: ${shape}`).join("\n"),
  };
}
