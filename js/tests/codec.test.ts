import { describe, expect, it } from "vitest";
import { CodecError, decode, decodeBytes, decodeFloat64 } from "../src/codec";
import { viewAt } from "./fixtures";

describe("decode", () => {
  it("decodes float64 from a DataView at an aligned offset without copying", () => {
    const view = viewAt(new Float64Array([1.5, -2, 3.25, Number.NaN]), 16);
    const { data, shape, dtype } = decode({ view, dtype: "float64", shape: [2, 2] });
    expect(data).toBeInstanceOf(Float64Array);
    expect(Array.from(data)).toEqual([1.5, -2, 3.25, Number.NaN]);
    expect(shape).toEqual([2, 2]);
    expect(dtype).toBe("float64");
    expect(data.buffer).toBe(view.buffer); // a view, not a copy
    expect(data.byteOffset).toBe(16);
  });

  it("copies when the DataView's offset is not aligned to the element size", () => {
    const view = viewAt(new Float64Array([0.1, 1e300, -0]), 3);
    const { data } = decode({ view, dtype: "float64", shape: [3] });
    expect(Array.from(data)).toEqual([0.1, 1e300, -0]);
    expect(data.buffer).not.toBe(view.buffer);
  });

  it("ignores bytes outside the view", () => {
    const buffer = new ArrayBuffer(32);
    const all = new Float32Array(buffer);
    all.set([9, 1, 2, 9, 9, 9, 9, 9]);
    const view = new DataView(buffer, 4, 8);
    expect(Array.from(decode({ view, dtype: "float32", shape: [2] }).data)).toEqual([1, 2]);
  });

  it("decodes int64 (through BigInt) to numbers", () => {
    const big = new BigInt64Array([0n, -1n, 2n ** 40n, -(2n ** 50n)]);
    const { data } = decode({ view: viewAt(big, 8), dtype: "int64", shape: [4] });
    expect(data).toBeInstanceOf(Float64Array);
    expect(Array.from(data)).toEqual([0, -1, 2 ** 40, -(2 ** 50)]);
    // also unaligned
    const unaligned = decode({ view: viewAt(big, 5), dtype: "int64", shape: [2, 2] });
    expect(Array.from(unaligned.data)).toEqual([0, -1, 2 ** 40, -(2 ** 50)]);
  });

  it("decodes int32, uint32, uint8 and float32", () => {
    expect(
      Array.from(
        decode({ view: viewAt(new Int32Array([-5, 7]), 4), dtype: "int32", shape: [2] }).data,
      ),
    ).toEqual([-5, 7]);
    expect(
      Array.from(
        decode({ view: viewAt(new Uint32Array([4294967295, 1]), 2), dtype: "uint32", shape: [2] })
          .data,
      ),
    ).toEqual([4294967295, 1]);
    expect(
      Array.from(
        decode({ view: viewAt(new Uint8Array([0, 255, 7]), 1), dtype: "uint8", shape: [3] }).data,
      ),
    ).toEqual([0, 255, 7]);
    expect(
      Array.from(
        decode({ view: viewAt(new Float32Array([0.5, -0.25])), dtype: "float32", shape: [2] }).data,
      ),
    ).toEqual([0.5, -0.25]);
  });

  it("reads little-endian bytes", () => {
    const bytes = new Uint8Array([0x01, 0x02, 0x00, 0x00]);
    expect(
      Array.from(decode({ view: new DataView(bytes.buffer), dtype: "int32", shape: [1] }).data),
    ).toEqual([0x0201]);
  });

  it("accepts an ArrayBuffer or a typed array in place of a DataView", () => {
    const floats = new Float64Array([4, 5]);
    expect(Array.from(decode({ view: floats.buffer, dtype: "float64", shape: [2] }).data)).toEqual([
      4, 5,
    ]);
    expect(Array.from(decode({ view: floats, dtype: "float64", shape: [2] }).data)).toEqual([4, 5]);
  });

  it("resolves {buffer: i} references against a buffers list", () => {
    const buffers = [viewAt(new Float64Array([1])), viewAt(new Float64Array([7, 8, 9]), 8)];
    const { data } = decode({ buffer: 1, dtype: "float64", shape: [3] }, buffers);
    expect(Array.from(data)).toEqual([7, 8, 9]);
    expect(() => decode({ buffer: 2, dtype: "float64", shape: [3] }, buffers)).toThrow(
      /refers to buffer 2, but the message has 2 buffer\(s\)/,
    );
    expect(() => decode({ buffer: 0, dtype: "float64", shape: [1] })).toThrow(/has 0 buffer/);
  });

  it("rejects an unsupported dtype with a clear error", () => {
    const view = viewAt(new Float64Array([1, 2]));
    expect(() => decode({ view, dtype: "complex128", shape: [1] }, undefined, "stats")).toThrow(
      CodecError,
    );
    expect(() => decode({ view, dtype: "complex128", shape: [1] }, undefined, "stats")).toThrow(
      'stats: unsupported dtype "complex128"; supported: float64, float32, int64',
    );
    // not fooled by Object.prototype keys
    expect(() => decode({ view, dtype: "toString", shape: [1] })).toThrow(
      /unsupported dtype "toString"/,
    );
  });

  it("rejects a byte length that does not match the shape", () => {
    const view = viewAt(new Float64Array([1, 2, 3]));
    expect(() =>
      decode({ view, dtype: "float64", shape: [2, 2] }, undefined, "hist.counts"),
    ).toThrow(
      "hist.counts: 24 bytes do not hold a float64 array of shape [2, 2] (32 bytes expected)",
    );
  });

  it("rejects malformed wire objects", () => {
    expect(() => decode(null)).toThrow(/expected \{view\|buffer, dtype, shape\}, got null/);
    expect(() => decode({ dtype: "float64", shape: [0] })).toThrow(/neither "view" nor "buffer"/);
    expect(() => decode({ view: viewAt(new Float64Array(0)), dtype: 3, shape: [0] })).toThrow(
      /dtype must be a string/,
    );
    expect(() =>
      decode({ view: viewAt(new Float64Array(1)), dtype: "float64", shape: [-1] }),
    ).toThrow(/non-negative integers/);
    expect(() => decode({ view: [1, 2], dtype: "uint8", shape: [2] })).toThrow(
      /expected binary data/,
    );
  });

  it("treats an empty shape as a scalar and a zero dimension as empty", () => {
    expect(
      Array.from(
        decode({ view: viewAt(new Float64Array([42])), dtype: "float64", shape: [] }).data,
      ),
    ).toEqual([42]);
    expect(
      decode({ view: new DataView(new ArrayBuffer(0)), dtype: "float32", shape: [0, 5] }).data
        .length,
    ).toBe(0);
  });

  it("decodeFloat64 converts other dtypes to float64", () => {
    const { data } = decodeFloat64({
      view: viewAt(new Int32Array([3, -4])),
      dtype: "int32",
      shape: [2],
    });
    expect(data).toBeInstanceOf(Float64Array);
    expect(Array.from(data)).toEqual([3, -4]);
  });

  it("decodeBytes reads element by element when it cannot view the bytes", () => {
    const view = viewAt(new BigUint64Array([2n ** 53n, 5n]), 4);
    expect(Array.from(decodeBytes(view, "uint64", [2]).data)).toEqual([2 ** 53, 5]);
  });
});
