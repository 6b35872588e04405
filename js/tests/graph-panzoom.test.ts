import { describe, expect, it } from "vitest";
import {
  attachPanZoom,
  MAX_ZOOM,
  type Transform,
  wheelFactor,
  zoomAt,
} from "../src/graph/pan-zoom";

describe("zoomAt", () => {
  it("keeps the point under the cursor in place", () => {
    const t = { k: 1, x: 10, y: 20 };
    const z = zoomAt(t, 100, 50, 2);
    expect(z.k).toBe(2);
    // content point under (100, 50) before: ((100-10)/1, (50-20)/1) = (90, 30)
    expect(z.x + 90 * z.k).toBeCloseTo(100);
    expect(z.y + 30 * z.k).toBeCloseTo(50);
    expect(zoomAt(t, 0, 0, 1e6).k).toBe(MAX_ZOOM);
    expect(wheelFactor(-100, 0)).toBeGreaterThan(1);
    expect(wheelFactor(100, 0)).toBeLessThan(1);
    expect(wheelFactor(3, 1)).toBeCloseTo(wheelFactor(100, 0), 1);
  });
});

describe("attachPanZoom", () => {
  it("pans by dragging, zooms with the wheel, hides text while zooming", async () => {
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    document.body.append(svg);
    let t: Transform = { k: 1, x: 0, y: 0 };
    const pz = attachPanZoom(
      svg,
      () => t,
      (next) => {
        t = next;
      },
    );
    const pointer = (type: string, x: number) =>
      svg.dispatchEvent(new MouseEvent(type, { clientX: x, clientY: 0, button: 0, bubbles: true }));
    pointer("pointerdown", 0);
    pointer("pointermove", 2); // below the drag threshold: still a click
    expect(pz.dragging()).toBe(false);
    pointer("pointermove", 30);
    expect(t.x).toBe(30);
    expect(pz.dragging()).toBe(true);
    pointer("pointerup", 30);
    await new Promise((r) => setTimeout(r, 0));
    expect(pz.dragging()).toBe(false);
    svg.dispatchEvent(new WheelEvent("wheel", { deltaY: -200, bubbles: true, cancelable: true }));
    expect(t.k).toBeGreaterThan(1);
    expect(svg.classList.contains("is-zooming")).toBe(true);
    await new Promise((r) => setTimeout(r, 200));
    expect(svg.classList.contains("is-zooming")).toBe(false);
    pz.dispose();
  });
});
