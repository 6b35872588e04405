import { describe, expect, it } from "vitest";
import type { Rect } from "../src/graph/cull";
import { nearestInDirection } from "../src/graph/keys";

const box = (x: number, y: number, w = 80, h = 30): Rect => ({
  x0: x,
  y0: y,
  x1: x + w,
  y1: y + h,
});

/**
 *        a
 *      /   \
 *     b     c        (c slightly lower than b)
 *      \   /
 *        d
 *                 e  (far down and right: only "down" reaches it, after d)
 * (a is 30 high; b starts at y 60; c at 66, overlapping b's row; d at 130)
 */
const rects = new Map<string, Rect>([
  ["a", box(100, 0)],
  ["b", box(0, 60)],
  ["c", box(200, 66)],
  ["d", box(100, 130)],
  ["e", box(600, 400)],
]);
const all = [...rects.keys()];
const go = (from: string, dir: "up" | "down" | "left" | "right") =>
  nearestInDirection(rects, from, dir, all);

describe("keyboard navigation", () => {
  it("follows the flow down and up, to the nearest box ahead", () => {
    expect(go("a", "down")).toBe("b"); // the next row, not d straight below it; b is nearer
    expect(go("b", "down")).toBe("d"); // c overlaps b's row: not below it
    expect(go("d", "up")).toBe("c"); // the row above d (c, nearer than b), not a
    expect(go("b", "up")).toBe("a");
    expect(go("d", "down")).toBe("e"); // far aside, but the only box below
    expect(go("a", "up")).toBeNull();
  });

  it("moves sideways between parallel branches, never down the flow", () => {
    expect(go("b", "right")).toBe("c");
    expect(go("c", "left")).toBe("b");
    expect(go("d", "right")).toBeNull(); // e is to the right, but not in d's row
    expect(go("a", "left")).toBeNull(); // b is left of a, but a row below
  });

  it("only moves to candidates, and not from an unknown box", () => {
    expect(nearestInDirection(rects, "a", "down", ["c", "e"])).toBe("c");
    expect(nearestInDirection(rects, "a", "down", ["a"])).toBeNull();
    expect(nearestInDirection(rects, "zz", "down", all)).toBeNull();
  });
});
