import { describe, expect, it } from "vitest";
import {
  boxText,
  clip,
  edgeLabel,
  hashString,
  measureBox,
  nameRange,
  nodeColor,
  PALETTE,
} from "../src/graph/labels";
import { foldBox, indexGraph, nodeBox, visibleGraph } from "../src/graph/model";
import { findModule, neighbours, search, subtree } from "../src/graph/query";
import { GraphBuilder, gpt, resnet } from "./fixtures/graphs";

const none = new Set<never>();

describe("search", () => {
  it("matches names and classes case-insensitively and says how to reveal them", () => {
    const index = indexGraph(gpt(3));
    const byName = search(index, "C_FC");
    expect(byName.matches.map((m) => index.nodes[m]?.name)).toEqual([
      "blocks.0.mlp.c_fc",
      "blocks.1.mlp.c_fc",
      "blocks.2.mlp.c_fc",
    ]);
    const names = (ids: number[]) => ids.map((m) => index.nodes[m]?.name);
    expect(names(byName.expand)).toEqual([
      "blocks.0",
      "blocks.0.mlp",
      "blocks.1",
      "blocks.1.mlp",
      "blocks.2",
      "blocks.2.mlp",
    ]);
    expect(byName.unfold).toEqual(["blocks.0#0"]);
    // expanding and unfolding as told shows every match as its own box
    const vg = visibleGraph(index, new Set(byName.expand), new Set(byName.unfold));
    for (const m of byName.matches) expect(vg.boxOf[m]).toBe(nodeBox(m));

    const byClass = search(index, "layernorm");
    expect(byClass.matches).toHaveLength(3 * 2 + 1);
    expect(search(index, "  ").matches).toEqual([]);
    expect(search(index, "no such thing").matches).toEqual([]);
  });

  it("matches ops by name or qualified callable", () => {
    const index = indexGraph(resnet());
    expect(search(index, "torch.flatten").matches.map((m) => index.nodes[m]?.name)).toEqual([
      "flatten",
    ]);
    expect(search(index, "add_").expand.map((m) => index.nodes[m]?.name)).toEqual([
      "layer1",
      "layer1.0",
      "layer1.1",
      "layer2",
      "layer2.0",
      "layer2.1",
    ]);
  });
});

describe("neighbours", () => {
  it("lists a leaf's inputs and outputs", () => {
    const index = indexGraph(resnet());
    const bn1 = findModule(index, "bn1");
    const nb = neighbours(index, bn1);
    expect(nb.inputs.map((m) => index.nodes[m]?.name)).toEqual(["conv1"]);
    expect(nb.outputs.map((m) => index.nodes[m]?.name)).toEqual(["relu"]);
  });

  it("lists the edges crossing a group's boundary, skip connection included", () => {
    const index = indexGraph(resnet());
    const block = findModule(index, "layer1.1");
    const nb = neighbours(index, block);
    // the block's input (layer1.0's final relu) feeds conv1 and the skip add
    expect(nb.inputs.map((m) => index.nodes[m]?.name)).toEqual(["relu"]);
    expect(nb.inputs[0]).toBeLessThan(block);
    expect(nb.outputs.map((m) => index.nodes[m]?.name)).toEqual([
      "layer2.0.conv1",
      "layer2.0.downsample.0",
    ]);
    expect(subtree(index, block).size).toBe(8);
  });

  it("finds a module by name (first call), -1 when missing", () => {
    const g = new GraphBuilder();
    const a = g.leaf("shared", "Linear", -1, [1], 2);
    g.node("module", "shared", "Linear", -1, [1], { call: 1 });
    const index = indexGraph(g.graph);
    expect(findModule(index, "shared")).toBe(a);
    expect(findModule(index, "nope")).toBe(-1);
  });
});

describe("labels", () => {
  it("colours by class deterministically, ops and I/O apart", () => {
    expect(hashString("Linear")).toBe(hashString("Linear"));
    expect(hashString("")).toBe(0x811c9dc5);
    const linear = nodeColor({ kind: "module", cls: "Linear" });
    expect(PALETTE).toContain(linear);
    expect(nodeColor({ kind: "module", cls: "Linear" })).toBe(linear);
    // pinned: the same class keeps its colour between runs and releases
    expect(linear).toBe(PALETTE[hashString("Linear") % PALETTE.length]);
    const colours = new Set(
      ["Linear", "Conv2d", "LayerNorm", "Embedding", "Dropout", "ReLU", "MLP"].map((cls) =>
        nodeColor({ kind: "module", cls }),
      ),
    );
    expect(colours.size).toBeGreaterThan(3);
    expect(nodeColor({ kind: "op", cls: "Linear" })).not.toBe(linear);
  });

  it("names fold ranges", () => {
    expect(nameRange("blocks.0", "blocks.47")).toBe("blocks.0–47");
    expect(nameRange("h.3", "h.10")).toBe("h.3–10");
    expect(nameRange("a.b.0", "a.c.1")).toBe("a.b.0–a.c.1");
    expect(nameRange("first", "last")).toBe("first–last");
  });

  it("formats edge labels, box text and sizes", () => {
    expect(edgeLabel([1, 128, 768], "float32", 1)).toBe("[1, 128, 768]");
    expect(edgeLabel([1, 128], "int64", 3)).toBe("[1, 128] int64 ×3");
    const index = indexGraph(gpt(4));
    const vg = visibleGraph(index, none, none);
    const fold = vg.boxes.get(foldBox("blocks.0#0"));
    if (fold === undefined) throw new Error("no fold");
    const text = boxText(index, fold);
    expect(text.title).toBe("TransformerBlock ×4");
    expect(text.subtitle).toBe("blocks.0–3");
    expect(text.detail).toBe("[1, 128, 768] · 28.4M params");
    expect(text.tooltip).toContain("28,351,488 parameters");
    const lmHead = vg.boxes.get(nodeBox(findModule(index, "lm_head")));
    if (lmHead === undefined) throw new Error("no lm_head");
    expect(boxText(index, lmHead)).toMatchObject({ title: "lm_head", subtitle: "Linear" });
    const size = measureBox(text, false);
    expect(size.h).toBe(8 + 3 * 14);
    expect(size.w).toBeGreaterThan(100);
    const long = measureBox({ ...text, title: "x".repeat(500) }, true).w;
    expect(long).toBeLessThanOrEqual(280);
    expect(long).toBeGreaterThan(260);
    expect(clip("abcdef", 4)).toBe("abc…");
    expect(clip("abc", 4)).toBe("abc");
  });

  it("names children relative to their group", () => {
    const index = indexGraph(resnet());
    const vg = visibleGraph(index, new Set([findModule(index, "layer2")]), none);
    const conv = vg.boxes.get(nodeBox(findModule(index, "layer2.0")));
    if (conv === undefined) throw new Error("no box");
    expect(boxText(index, conv).title).toBe("0");
  });
});
