import { afterEach, describe, expect, it, vi } from "vitest";
import { PROTOCOL } from "../src/protocol";
import { createRpc, RequestError } from "../src/rpc";
import { FakeModel, viewAt } from "./fixtures";

function channel() {
  const model = new FakeModel({});
  let n = 0;
  const rpc = createRpc(model, { newId: () => `req-${++n}` });
  return { model, rpc };
}

afterEach(() => {
  vi.useRealTimers();
});

describe("createRpc", () => {
  it("sends {type, id, ...payload} and resolves on the response with the same id", async () => {
    const { model, rpc } = channel();
    const reply = rpc.request("exact_histogram", { tensor: 3 });
    expect(model.sent).toEqual([{ type: "exact_histogram", id: "req-1", tensor: 3 }]);
    const buffers = [viewAt(new Float64Array([1, 2]))];
    model.emit(
      "msg:custom",
      { type: "response", id: "req-1", ok: true, result: { lo: 0 } },
      buffers,
    );
    await expect(reply).resolves.toEqual({ result: { lo: 0 }, buffers });
    expect(rpc.pending).toBe(0);
  });

  it("ignores responses with other ids and other messages", async () => {
    const { model, rpc } = channel();
    const first = rpc.request("exact_histogram", { tensor: 0 });
    const second = rpc.request("exact_histogram", { tensor: 1 });
    model.emit("msg:custom", { type: "response", id: "someone-else", ok: true, result: 0 }, []);
    model.emit("msg:custom", { type: "other", id: "req-1", ok: true, result: 0 }, []);
    model.emit("msg:custom", "not an object", []);
    expect(rpc.pending).toBe(2);
    model.emit("msg:custom", { type: "response", id: "req-2", ok: true, result: "two" }, []);
    await expect(second).resolves.toMatchObject({ result: "two" });
    model.emit("msg:custom", { type: "response", id: "req-1", ok: true, result: "one" }, []);
    await expect(first).resolves.toMatchObject({ result: "one" });
    // a late duplicate is ignored
    model.emit("msg:custom", { type: "response", id: "req-1", ok: true, result: "again" }, []);
  });

  it("rejects with the kernel's error on ok: false", async () => {
    const { model, rpc } = channel();
    const reply = rpc.request("exact_histogram", { tensor: 9 });
    model.emit(
      "msg:custom",
      { type: "response", id: "req-1", ok: false, error: "no tensor with index 9" },
      [],
    );
    await expect(reply).rejects.toThrow("exact_histogram failed: no tensor with index 9");
    await expect(reply).rejects.toBeInstanceOf(RequestError);
  });

  it("rejects after REQUEST_TIMEOUT_MS without an answer", async () => {
    vi.useFakeTimers();
    const { model, rpc } = channel();
    const reply = rpc.request("exact_histogram", { tensor: 0 });
    const settled = vi.fn();
    reply.catch(settled);
    await vi.advanceTimersByTimeAsync(PROTOCOL.REQUEST_TIMEOUT_MS - 1);
    expect(settled).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1);
    expect(settled).toHaveBeenCalledOnce();
    await expect(reply).rejects.toThrow(
      "exact_histogram timed out: no answer from the kernel after 15 s",
    );
    await expect(reply).rejects.toMatchObject({ reason: "timeout" });
    expect(rpc.pending).toBe(0);
    // an answer after the timeout changes nothing
    model.emit("msg:custom", { type: "response", id: "req-1", ok: true, result: 1 }, []);
  });

  it("rejects pending requests and stops listening on dispose", async () => {
    const { model, rpc } = channel();
    const reply = rpc.request("exact_histogram", { tensor: 0 });
    expect(model.listenerCount()).toBe(1);
    rpc.dispose();
    expect(model.listenerCount()).toBe(0);
    await expect(reply).rejects.toMatchObject({ reason: "cancelled" });
    await expect(rpc.request("exact_histogram")).rejects.toThrow(/cancelled/);
  });

  it("makes unique ids by default", () => {
    const model = new FakeModel({});
    const rpc = createRpc(model);
    rpc.request("exact_histogram").catch(() => {});
    rpc.request("exact_histogram").catch(() => {});
    const ids = model.sent.map((m) => (m as { id: string }).id);
    expect(new Set(ids).size).toBe(2);
    rpc.dispose();
  });
});
