import { describe, expect, it } from "vitest";
import { storeFor } from "../src/live/attach";
import { PROTOCOL } from "../src/protocol";
import { createRpc, RequestError } from "../src/rpc";
import {
  base64ToBytes,
  createKernel,
  type EmbeddedReply,
  NEEDS_KERNEL,
  stateValues,
} from "../src/standalone/kernel";
import { LocalManager, LocalModel } from "../src/standalone/model";

/** base64 of bytes by the platform's encoder, not the code under test. */
function b64(bytes: Uint8Array): string {
  return btoa(Array.from(bytes, (b) => String.fromCharCode(b)).join(""));
}

function reply(type: string, result: unknown, series?: number[], buffers: string[] = []) {
  const request = series === undefined ? { type } : { type, series };
  return {
    request,
    reply: { content: { type: "response", id: "", ok: true, result }, buffers },
  } satisfies EmbeddedReply;
}

describe("base64ToBytes", () => {
  it("decodes what the platform's encoder wrote, every byte value and padding", () => {
    expect(Array.from(base64ToBytes("AP8Q"))).toEqual([0, 255, 16]); // worked by hand
    for (const length of [0, 1, 2, 3, 256, 1001]) {
      const bytes = Uint8Array.from({ length }, (_, i) => (i * 7 + 3) % 256);
      expect(Array.from(base64ToBytes(b64(bytes)))).toEqual(Array.from(bytes));
    }
  });

  it("rejects text that is not base64", () => {
    expect(() => base64ToBytes("not base64!")).toThrow();
  });
});

describe("stateValues", () => {
  it("puts each buffer back at its path as a DataView", () => {
    const stats = new Float64Array([1.5, -2, Number.NaN]);
    const values = stateValues({
      values: { stats: { dtype: "float64", shape: [3] }, hist: { counts: { dtype: "x" } }, n: 1 },
      buffer_paths: [
        ["stats", "view"],
        ["hist", "counts", "view"],
      ],
      buffers: [b64(new Uint8Array(stats.buffer)), b64(new Uint8Array([9]))],
    });
    const view = (values.stats as { view: DataView }).view;
    expect(view).toBeInstanceOf(DataView);
    expect(Array.from(new Float64Array(view.buffer, view.byteOffset, 3))).toEqual(
      Array.from(stats),
    );
    const counts = (values.hist as { counts: { view: DataView } }).counts.view;
    expect(counts.getUint8(0)).toBe(9);
    expect(values.n).toBe(1);
  });

  it("refuses buffers that do not match their paths", () => {
    expect(() => stateValues({ values: {}, buffer_paths: [["a"]], buffers: [] })).toThrow(
      /0 buffers for 1 paths/,
    );
  });
});

describe("createKernel", () => {
  const layerA = reply(
    "run_histograms",
    { type: "run_append", layer: "a" },
    [0, 1],
    [b64(new Uint8Array([1, 2]))],
  );
  const layerB = reply("run_histograms", { type: "run_append", layer: "b" }, [2]);
  const snapshot = reply("run_snapshot", { type: "run_append", complete: false });
  const kernel = createKernel([snapshot, layerA, layerB]);

  it("answers a request with the embedded reply under the request's id", () => {
    const [answer, ...rest] = kernel.answer({ type: "run_snapshot", id: "r1" });
    expect(rest).toEqual([]);
    expect(answer?.[0]).toEqual({
      type: "response",
      id: "r1",
      ok: true,
      result: { type: "run_append", complete: false },
    });
  });

  it("answers histograms with every layer reply holding an asked series, buffers decoded", () => {
    const answers = kernel.answer({ type: "run_histograms", id: "h", series: [1, 2] });
    expect(answers.map(([content]) => (content.result as { layer: string }).layer)).toEqual([
      "a",
      "b",
    ]);
    expect(answers.every(([content]) => content.id === "h")).toBe(true);
    const [view] = answers[0]?.[1] ?? [];
    expect([view?.getUint8(0), view?.getUint8(1), view?.byteLength]).toEqual([1, 2, 2]);
    expect(kernel.answer({ type: "run_histograms", id: "h2", series: [0] })).toHaveLength(1);
  });

  it("says why for what the report does not hold, and ignores what is not a request", () => {
    const failed = (request: object) => kernel.answer(request).map(([content]) => content);
    expect(failed({ type: "run_histograms", id: "x", series: [7] })).toEqual([
      { type: "response", id: "x", ok: false, error: NEEDS_KERNEL.run_histograms },
    ]);
    expect(failed({ type: "exact_histogram", id: "e", tensor: 0 })[0]?.error).toBe(
      NEEDS_KERNEL.exact_histogram,
    );
    expect(failed({ type: "autograd_graph", id: "g" })[0]?.error).toMatch(/running kernel/);
    expect(failed({ type: "nonsense", id: "n" })[0]?.error).toMatch(/unknown request type/);
    expect(kernel.answer("not an object")).toEqual([]);
    expect(kernel.answer({ type: "run_snapshot" })).toEqual([]);
  });
});

describe("LocalModel", () => {
  const manager = new LocalManager();

  it("answers sends later, on msg:custom, so an rpc client gets its reply", async () => {
    const kernel = createKernel([reply("autograd_graph", { svg: "<svg/>" })]);
    const model = new LocalModel({}, kernel, manager);
    const rpc = createRpc(model);
    await expect(rpc.request("autograd_graph")).resolves.toEqual({
      result: { svg: "<svg/>" },
      buffers: [],
    });
    await expect(rpc.request("exact_histogram", { tensor: 0 })).rejects.toBeInstanceOf(
      RequestError,
    );
  });

  it("fires change events on set, only for a new value, and forgets handlers on off", () => {
    const model = new LocalModel({ selected: null }, createKernel([]), manager);
    const seen: unknown[] = [];
    const handler = () => seen.push(model.get("selected"));
    model.on("change:selected", handler);
    model.set("selected", "fc1");
    model.set("selected", "fc1");
    model.off("change:selected", handler);
    model.set("selected", "fc2");
    expect(seen).toEqual(["fc1"]);
    expect(model.listeners("change:selected")).toBe(0);
  });

  it("feeds a run store from the embedded snapshot, as the kernel's would", async () => {
    const append = {
      type: PROTOCOL.RUN_APPEND_TYPE,
      revision: 1,
      series: [
        { id: 0, layer: "fc", kind: "weight", tensor: "w", call: 0, mode: "train", dtype: "f" },
      ],
      steps: [{ step: 3, mode: "train", skipped: false, reason: "", wall_time: 0 }],
      anomalies: [],
      complete: true,
    };
    const model = new LocalModel({}, createKernel([reply("run_snapshot", append)]), manager);
    const store = storeFor(model);
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(store.series.map((s) => s.layer)).toEqual(["fc"]);
    expect(store.lastStep()).toBe(3);
  });

  it("resolves models by id for the views' state references", async () => {
    const state = new LocalModel({}, createKernel([]), manager);
    manager.models.set("s", state);
    await expect(manager.get_model("s")).resolves.toBe(state);
    await expect(manager.get_model("t")).rejects.toThrow(/no model with id t/);
  });
});
