/**
 * The one place that turns binary arrays from the wire into typed arrays.
 *
 * Two shapes arrive: synced traits hold `{view: DataView, dtype, shape}` (ipywidgets lifts the
 * bytes into binary buffers and puts a DataView back), and custom messages hold
 * `{buffer: <index>, dtype, shape}` next to a list of buffers. Data is little-endian, C order.
 */

/** Numeric typed arrays a decoded array can be. int64/uint64 decode to float64 numbers. */
export type NumericArray =
  | Float64Array
  | Float32Array
  | Int32Array
  | Uint32Array
  | Int16Array
  | Uint16Array
  | Int8Array
  | Uint8Array;

export interface Decoded<T extends NumericArray = NumericArray> {
  data: T;
  dtype: string;
  shape: number[];
}

/** Raw bytes as any transport may hand them over. */
export type Bytes = DataView | ArrayBuffer | ArrayBufferView;

export class CodecError extends Error {
  override name = "CodecError";
}

interface DTypeInfo {
  size: number;
  /** Reads element i from little-endian bytes (for unaligned or big-endian-host input). */
  read(view: DataView, i: number): number;
  /** A typed array over aligned, host-endian (= little-endian) bytes, or null to read one by one. */
  view(buffer: ArrayBufferLike, byteOffset: number, length: number): NumericArray | null;
  /** An empty array of the decoded type, to copy into. */
  alloc(length: number): NumericArray;
}

const DTYPES: Readonly<Record<string, DTypeInfo>> = {
  float64: {
    size: 8,
    read: (v, i) => v.getFloat64(i * 8, true),
    view: (b, o, n) => new Float64Array(b, o, n),
    alloc: (n) => new Float64Array(n),
  },
  float32: {
    size: 4,
    read: (v, i) => v.getFloat32(i * 4, true),
    view: (b, o, n) => new Float32Array(b, o, n),
    alloc: (n) => new Float32Array(n),
  },
  int64: {
    size: 8,
    read: (v, i) => Number(v.getBigInt64(i * 8, true)),
    view: () => null,
    alloc: (n) => new Float64Array(n),
  },
  uint64: {
    size: 8,
    read: (v, i) => Number(v.getBigUint64(i * 8, true)),
    view: () => null,
    alloc: (n) => new Float64Array(n),
  },
  int32: {
    size: 4,
    read: (v, i) => v.getInt32(i * 4, true),
    view: (b, o, n) => new Int32Array(b, o, n),
    alloc: (n) => new Int32Array(n),
  },
  uint32: {
    size: 4,
    read: (v, i) => v.getUint32(i * 4, true),
    view: (b, o, n) => new Uint32Array(b, o, n),
    alloc: (n) => new Uint32Array(n),
  },
  int16: {
    size: 2,
    read: (v, i) => v.getInt16(i * 2, true),
    view: (b, o, n) => new Int16Array(b, o, n),
    alloc: (n) => new Int16Array(n),
  },
  uint16: {
    size: 2,
    read: (v, i) => v.getUint16(i * 2, true),
    view: (b, o, n) => new Uint16Array(b, o, n),
    alloc: (n) => new Uint16Array(n),
  },
  int8: {
    size: 1,
    read: (v, i) => v.getInt8(i),
    view: (b, o, n) => new Int8Array(b, o, n),
    alloc: (n) => new Int8Array(n),
  },
  uint8: {
    size: 1,
    read: (v, i) => v.getUint8(i),
    view: (b, o, n) => new Uint8Array(b, o, n),
    alloc: (n) => new Uint8Array(n),
  },
  bool: {
    size: 1,
    read: (v, i) => v.getUint8(i),
    view: (b, o, n) => new Uint8Array(b, o, n),
    alloc: (n) => new Uint8Array(n),
  },
};

/** dtypes `decode` understands, for error messages and tests. */
export const SUPPORTED_DTYPES: readonly string[] = Object.freeze(Object.keys(DTYPES));

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function toDataView(bytes: unknown, what: string): DataView {
  if (bytes instanceof DataView) return bytes;
  if (bytes instanceof ArrayBuffer) return new DataView(bytes);
  if (ArrayBuffer.isView(bytes))
    return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // SharedArrayBuffer and buffers from another realm (iframes, jsdom) fail `instanceof`.
  if (
    typeof bytes === "object" &&
    bytes !== null &&
    typeof (bytes as ArrayBuffer).byteLength === "number" &&
    typeof (bytes as ArrayBuffer).slice === "function"
  ) {
    return new DataView(bytes as ArrayBuffer);
  }
  throw new CodecError(
    `${what}: expected binary data (DataView or ArrayBuffer), got ${typeName(bytes)}`,
  );
}

function typeName(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "object") return value.constructor?.name ?? "object";
  return typeof value;
}

function checkShape(shape: unknown, what: string): number[] {
  if (
    !Array.isArray(shape) ||
    !shape.every((d): d is number => typeof d === "number" && Number.isInteger(d) && d >= 0)
  ) {
    throw new CodecError(
      `${what}: shape must be a list of non-negative integers, got ${JSON.stringify(shape)}`,
    );
  }
  return [...shape];
}

/** Decodes `length` elements of `dtype` from little-endian `view` (aligned: no copy). */
export function decodeBytes(
  view: DataView,
  dtype: string,
  shape: readonly number[],
  what = "array",
): Decoded {
  const info = Object.hasOwn(DTYPES, dtype) ? DTYPES[dtype] : undefined;
  if (info === undefined) {
    throw new CodecError(
      `${what}: unsupported dtype ${JSON.stringify(dtype)}; supported: ${SUPPORTED_DTYPES.join(", ")}`,
    );
  }
  const shapeCopy = checkShape(shape, what);
  const length = shapeCopy.reduce((a, b) => a * b, 1);
  const expected = length * info.size;
  if (view.byteLength !== expected) {
    throw new CodecError(
      `${what}: ${view.byteLength} bytes do not hold a ${dtype} array of shape [${shapeCopy.join(", ")}] (${expected} bytes expected)`,
    );
  }
  if (LITTLE_ENDIAN_HOST) {
    if (view.byteOffset % info.size === 0) {
      const direct = info.view(view.buffer, view.byteOffset, length);
      if (direct !== null) return { data: direct, dtype, shape: shapeCopy };
    } else {
      // Unaligned: copy the bytes to a fresh (aligned) buffer, then view that.
      const copy = view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength);
      const direct = info.view(copy, 0, length);
      if (direct !== null) return { data: direct, dtype, shape: shapeCopy };
    }
  }
  const out = info.alloc(length);
  for (let i = 0; i < length; i++) out[i] = info.read(view, i);
  return { data: out, dtype, shape: shapeCopy };
}

function asRecord(wire: unknown, what: string): Record<string, unknown> {
  if (typeof wire !== "object" || wire === null || Array.isArray(wire)) {
    throw new CodecError(`${what}: expected {view|buffer, dtype, shape}, got ${typeName(wire)}`);
  }
  return wire as Record<string, unknown>;
}

/**
 * Decodes one wire array: `{view, dtype, shape}` from a synced trait, or `{buffer: i, dtype,
 * shape}` with the message's `buffers`. Throws a `CodecError` naming `what` on bad input.
 */
export function decode(wire: unknown, buffers?: readonly unknown[], what = "array"): Decoded {
  const record = asRecord(wire, what);
  const { dtype, shape } = record;
  if (typeof dtype !== "string") {
    throw new CodecError(`${what}: dtype must be a string, got ${typeName(dtype)}`);
  }
  let bytes: unknown;
  if ("view" in record) {
    bytes = record.view;
  } else if ("buffer" in record) {
    const index = record.buffer;
    if (typeof index !== "number" || !Number.isInteger(index)) {
      throw new CodecError(`${what}: buffer must be an integer index, got ${typeName(index)}`);
    }
    if (buffers === undefined || index < 0 || index >= buffers.length) {
      throw new CodecError(
        `${what}: refers to buffer ${index}, but the message has ${buffers?.length ?? 0} buffer(s)`,
      );
    }
    bytes = buffers[index];
  } else {
    throw new CodecError(`${what}: has neither "view" nor "buffer"`);
  }
  return decodeBytes(toDataView(bytes, what), dtype, checkShape(shape, what), what);
}

/** Like `decode`, but always float64 numbers (copying only when the dtype is not float64). */
export function decodeFloat64(
  wire: unknown,
  buffers?: readonly unknown[],
  what = "array",
): Decoded<Float64Array> {
  const decoded = decode(wire, buffers, what);
  const data =
    decoded.data instanceof Float64Array ? decoded.data : Float64Array.from(decoded.data);
  return { data, dtype: decoded.dtype, shape: decoded.shape };
}
