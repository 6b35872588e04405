import { describe, expect, it } from "vitest";
import { decodeHist, decodeStats } from "../src/data";
import { createHistogram } from "../src/draw/histogram";
import { createPicker } from "../src/draw/picker";
import { createTree } from "../src/draw/tree";
import { histWire, layer, statsWire, tensor } from "./fixtures";

const EVIL = "<img src=x onerror=alert(1)>";
const EVIL_CLS = "<script>alert(2)</script>";

const layers = [
  layer({ name: "", cls: EVIL_CLS, module: EVIL, parent: -1, depth: 0, total_params: 4 }),
  layer({
    name: EVIL,
    cls: EVIL_CLS,
    parent: 0,
    depth: 1,
    own_params: 4,
    total_params: 4,
    tensors: [0],
    dtypes: [EVIL],
    devices: [EVIL],
    buffers: [EVIL],
    alias_of: EVIL,
  }),
];
const tensors = [
  tensor({
    name: `${EVIL}.weight`,
    layer: 1,
    param: EVIL,
    dtype: EVIL,
    device: EVIL,
    shared_with: [EVIL],
  }),
];

function expectInert(el: HTMLElement): void {
  expect(el.querySelector("img")).toBeNull();
  expect(el.querySelector("script")).toBeNull();
  expect(el.textContent).toContain(EVIL);
}

describe("user-controlled names render as text", () => {
  it("in the tree", () => {
    const tree = createTree({ layers, selected: EVIL, warnings: [EVIL] });
    expectInert(tree.el);
    const row = [...tree.el.querySelectorAll<HTMLElement>(".nbviz-row")].find(
      (r) => r.dataset.layer === EVIL,
    );
    expect(row?.querySelector(".nbviz-name")?.textContent).toBe(EVIL);
    expect(row?.querySelector(".nbviz-cls")?.textContent).toBe(EVIL_CLS);
    expect(row?.classList.contains("is-selected")).toBe(true);
    expect(tree.el.querySelector(".nbviz-warning")?.textContent).toBe(EVIL);
  });

  it("in the picker", () => {
    const picker = createPicker({ layers, selected: null });
    expectInert(picker.el);
    picker.setQuery("<IMG");
    const shown = [...picker.el.querySelectorAll<HTMLElement>(".nbviz-item")].filter(
      (i) => !i.hidden,
    );
    expect(shown.map((i) => i.dataset.layer)).toEqual([EVIL]);
    expect(shown[0]?.querySelector(".nbviz-name")?.textContent).toBe(EVIL);
  });

  it("in the histogram", () => {
    const view = createHistogram({
      layers,
      tensors,
      stats: decodeStats(
        statsWire([
          { numel: 4, min: 0, max: 1, mean: 0.5, std: 0.5, zeros: 1, nan: 0, posinf: 0, neginf: 0 },
        ]),
        1,
      ),
      hist: decodeHist(histWire([{ counts: [1, 3], lo: 0, width: 0.5, sample: 4 }]), 1),
      selected: EVIL,
      exact: new Map(),
    });
    expectInert(view.el);
    expect(view.el.querySelector(".nbviz-hist-title .nbviz-name")?.textContent).toBe(EVIL);
    expect(view.el.querySelector(".nbviz-hist-card")?.getAttribute("data-tensor")).toBe(
      `${EVIL}.weight`,
    );
    expect(view.el.querySelector(".nbviz-hist-name")?.textContent).toBe(EVIL);
    expect(view.el.querySelector(".nbviz-shared")?.textContent).toBe(`shared with ${EVIL}`);
  });
});
