import { describe, expect, it } from "vitest";
import {
  formatCount,
  formatOutputs,
  formatParams,
  formatShape,
  formatValue,
  plural,
} from "../src/format";

describe("formatCount", () => {
  it("groups thousands", () => {
    expect(formatCount(0)).toBe("0");
    expect(formatCount(999)).toBe("999");
    expect(formatCount(1234)).toBe("1,234");
    expect(formatCount(2359296)).toBe("2,359,296");
    expect(formatCount(-1234567)).toBe("-1,234,567");
    expect(formatCount(65536.4)).toBe("65,536");
  });
  it("spells out non-finite values", () => {
    expect(formatCount(Number.NaN)).toBe("NaN");
    expect(formatCount(Number.POSITIVE_INFINITY)).toBe("∞");
  });
});

describe("formatParams", () => {
  it("is exact below a million", () => {
    expect(formatParams(999_999)).toEqual({ text: "999,999", title: "999,999" });
  });
  it("is compact from a million, with the exact value as title", () => {
    expect(formatParams(1_234_567)).toEqual({ text: "1.2M", title: "1,234,567" });
    expect(formatParams(2_000_000)).toEqual({ text: "2M", title: "2,000,000" });
    expect(formatParams(23_456_789).text).toBe("23.5M");
    expect(formatParams(138_357_544).text).toBe("138M");
    expect(formatParams(1_500_000_000).text).toBe("1.5B");
    expect(formatParams(7e12).text).toBe("7T");
  });
  it("rolls over to the next unit instead of printing 1000M", () => {
    expect(formatParams(999_960_000).text).toBe("1B");
    expect(formatParams(99_960_000).text).toBe("100M");
  });
});

describe("formatValue", () => {
  it("keeps 4 significant digits and drops trailing zeros", () => {
    expect(formatValue(0.123456)).toBe("0.1235");
    expect(formatValue(1234.5)).toBe("1235");
    expect(formatValue(0.5)).toBe("0.5");
    expect(formatValue(-2)).toBe("-2");
    expect(formatValue(0.001)).toBe("0.001");
    expect(formatValue(0)).toBe("0");
    expect(formatValue(-0)).toBe("0");
  });
  it("uses exponents for very large and very small magnitudes", () => {
    expect(formatValue(123456)).toBe("1.235e5");
    expect(formatValue(0.0000123)).toBe("1.23e-5");
    expect(formatValue(-1e-9)).toBe("-1e-9");
    expect(formatValue(9999.5)).toBe("1e4");
  });
  it("names NaN and infinities", () => {
    expect(formatValue(Number.NaN)).toBe("NaN");
    expect(formatValue(Number.POSITIVE_INFINITY)).toBe("+Inf");
    expect(formatValue(Number.NEGATIVE_INFINITY)).toBe("−Inf");
  });
});

describe("formatShape and plural", () => {
  it("formats shapes like torch", () => {
    expect(formatShape([64, 3, 7, 7])).toBe("[64, 3, 7, 7]");
    expect(formatShape([])).toBe("[]");
  });
  it("pluralizes", () => {
    expect(plural(1, "layer")).toBe("1 layer");
    expect(plural(1200, "layer")).toBe("1,200 layers");
  });
});

describe("formatOutputs", () => {
  it("shows the first call and counts the others", () => {
    expect(formatOutputs(undefined)).toEqual({ text: "", title: "" });
    expect(formatOutputs([])).toEqual({ text: "", title: "" });
    expect(formatOutputs(["16×64×8×8"])).toEqual({ text: "16×64×8×8", title: "output: 16×64×8×8" });
    expect(formatOutputs(["2×3", "2×4"])).toEqual({
      text: "2×3 (2 calls)",
      title: "call 1: 2×3\ncall 2: 2×4",
    });
  });
});
