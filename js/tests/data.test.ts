import { describe, expect, it } from "vitest";
import { CodecError } from "../src/codec";
import { decodeExactHistogram, decodeHist, decodeStats, histogramOf, stat } from "../src/data";
import { histWire, statsWire, viewAt, wire } from "./fixtures";

describe("decodeStats", () => {
  it("reads each statistic by name", () => {
    const table = decodeStats(
      statsWire([
        { numel: 4, min: -1 },
        { numel: 9, nan: 2 },
      ]),
      2,
    );
    expect(stat(table, 0, "numel")).toBe(4);
    expect(stat(table, 0, "min")).toBe(-1);
    expect(stat(table, 1, "nan")).toBe(2);
    expect(stat(table, 1, "max")).toBeNaN();
    expect(stat(table, 2, "numel")).toBeNaN();
  });
  it("treats an empty trait as all NaN", () => {
    expect(stat(decodeStats({}, 3), 2, "mean")).toBeNaN();
  });
  it("rejects a shape that does not fit the tensors", () => {
    expect(() => decodeStats(statsWire([{ numel: 1 }]), 2)).toThrow(
      "stats: shape [1, 10] where [2, 10] was expected",
    );
  });
});

describe("decodeHist", () => {
  it("slices one tensor's bins without copying", () => {
    const table = decodeHist(
      histWire([{ counts: [1] }, { counts: [0, 2], lo: -3, width: 0.5, sample: 2 }]),
      2,
    );
    const h = histogramOf(table, 1);
    expect(h?.counts.length).toBe(64);
    expect(Array.from(h?.counts.slice(0, 3) ?? [])).toEqual([0, 2, 0]);
    expect([h?.lo, h?.width, h?.sample]).toEqual([-3, 0.5, 2]);
    expect(h?.counts.buffer).toBe(table.counts.buffer);
    expect(histogramOf(table, 2)).toBeNull();
  });
  it("checks every field's shape", () => {
    const bad = { ...histWire([{}]), lo: wire(new Float64Array([0, 1]), [2]) };
    expect(() => decodeHist(bad, 1)).toThrow("hist.lo: shape [2] where [1] was expected");
  });
});

describe("decodeExactHistogram", () => {
  it("reads the counts from the message buffers", () => {
    const counts = new Float64Array(64);
    counts[3] = 11;
    const h = decodeExactHistogram(
      { lo: -1, width: 0.25, sample: 11, counts: { buffer: 0, dtype: "float64", shape: [64] } },
      [viewAt(counts, 8)],
    );
    expect(h.counts[3]).toBe(11);
    expect([h.lo, h.width, h.sample]).toEqual([-1, 0.25, 11]);
  });
  it("rejects malformed results", () => {
    expect(() => decodeExactHistogram(null, [])).toThrow(CodecError);
    expect(() =>
      decodeExactHistogram(
        { lo: "x", width: 1, sample: 1, counts: { buffer: 0, dtype: "float64", shape: [64] } },
        [viewAt(new Float64Array(64))],
      ),
    ).toThrow(/lo must be a number/);
    expect(() =>
      decodeExactHistogram(
        { lo: 0, width: 1, sample: 1, counts: { buffer: 0, dtype: "float64", shape: [2] } },
        [viewAt(new Float64Array(2))],
      ),
    ).toThrow(/shape \[2\] where \[64\]/);
  });
});
