import { describe, expect, it } from "vitest";
import {
  ANCHOR_IN,
  ANCHOR_OUT,
  ancestors,
  foldBox,
  indexGraph,
  levelAnchors,
  nodeBox,
  PAGE_SIZE,
  pageKey,
  pageOf,
  ROOT,
  ROOT_BOX,
  visibleGraph,
} from "../src/graph/model";
import { deepMlp, GraphBuilder, gpt, resnet } from "./fixtures/graphs";

const none = new Set<never>();

function sample() {
  // x -> enc(group: a -> b) -> head(leaf) -> out, plus x -> head (skip) and b -> b2 twice
  const g = new GraphBuilder();
  const x = g.node("input", "x", "Tensor", -1, [2, 4]);
  const enc = g.node("module", "enc", "Encoder", -1, [2, 4], { params: 20 });
  const a = g.leaf("enc.a", "Linear", enc, [2, 4], 10, x);
  const b = g.leaf("enc.b", "Linear", enc, [2, 4], 12, a); // other params: no fold
  const add = g.op("add", "Tensor.__add__", enc, [2, 4], b, b);
  const head = g.leaf("head", "Linear", -1, [2, 1], 5, add, x);
  const out = g.node("output", "out", "Tensor", -1, [2, 1]);
  g.edge(head, out);
  return { graph: g.graph, x, enc, a, b, add, head, out };
}

describe("indexGraph", () => {
  it("lists children per group in execution order and ancestors nearest first", () => {
    const s = sample();
    const index = indexGraph(s.graph);
    expect(index.children.get(ROOT)).toEqual([s.x, s.enc, s.head, s.out]);
    expect(index.children.get(s.enc)).toEqual([s.a, s.b, s.add]);
    expect(ancestors(index, s.add)).toEqual([s.enc]);
  });

  it("ignores parents that are missing, not modules, or cyclic", () => {
    const g = new GraphBuilder();
    const m = g.node("module", "m", "M", -1, null);
    const op = g.node("op", "relu", "F.relu", m, [1]);
    const bad = g.node("op", "add", "Tensor.add", op, [1]); // parent is an op
    const lost = g.node("op", "mul", "Tensor.mul", 99, [1]);
    const c1 = g.node("module", "c1", "C", -1, null);
    const c2 = g.node("module", "c2", "C", c1, null);
    const node = g.graph.nodes[c1];
    if (node) node.parent = c2; // c1 <-> c2
    const index = indexGraph(g.graph);
    expect(index.parent[op]).toBe(m);
    expect(index.parent[bad]).toBe(ROOT);
    expect(index.parent[lost]).toBe(ROOT);
    expect([index.parent[c1], index.parent[c2]]).toContain(ROOT);
  });
});

describe("visibleGraph", () => {
  it("collapses to the top level and reroutes edges to the collapsed group", () => {
    const s = sample();
    const vg = visibleGraph(indexGraph(s.graph), none, none);
    expect(vg.levels.get(ROOT_BOX)?.children).toEqual([s.x, s.enc, s.head, s.out].map(nodeBox));
    expect(vg.boxes.get(nodeBox(s.enc))?.kind).toBe("group");
    expect(vg.boxOf[s.a]).toBe(nodeBox(s.enc));
    // a->b, b->add (x2) are internal to enc and dropped; x->a becomes x->enc
    expect(vg.edges.map((e) => [e.src, e.dst, e.count])).toEqual([
      [nodeBox(s.x), nodeBox(s.enc), 1],
      [nodeBox(s.enc), nodeBox(s.head), 1],
      [nodeBox(s.x), nodeBox(s.head), 1],
      [nodeBox(s.head), nodeBox(s.out), 1],
    ]);
    expect(vg.edges[1]?.shape).toEqual([2, 4]);
  });

  it("draws an expanded group's children, merges duplicate edges and lifts edges per level", () => {
    const s = sample();
    const vg = visibleGraph(indexGraph(s.graph), new Set([s.enc]), none);
    expect(vg.boxes.get(nodeBox(s.enc))?.kind).toBe("open");
    expect(vg.levels.get(nodeBox(s.enc))?.children).toEqual([s.a, s.b, s.add].map(nodeBox));
    const dup = vg.edges.find((e) => e.src === nodeBox(s.b) && e.dst === nodeBox(s.add));
    expect(dup?.count).toBe(2);
    expect(vg.edges.find((e) => e.src === nodeBox(s.x))?.dst).toBe(nodeBox(s.a));
    // the root level sees x -> enc and enc -> head; enc's level sees its internal edges
    const root = vg.levels.get(ROOT_BOX)?.edges.map((e) => `${e.src}>${e.dst}`);
    expect(root).toContain(`${nodeBox(s.x)}>${nodeBox(s.enc)}`);
    expect(root).toContain(`${nodeBox(s.enc)}>${nodeBox(s.head)}`);
    const inner = vg.levels.get(nodeBox(s.enc))?.edges.map((e) => `${e.src}>${e.dst}:${e.count}`);
    // edges crossing the group's border run from its input anchor and to its output anchor
    expect(inner).toEqual([
      `${ANCHOR_IN}>${nodeBox(s.a)}:1`,
      `${nodeBox(s.a)}>${nodeBox(s.b)}:1`,
      `${nodeBox(s.b)}>${nodeBox(s.add)}:2`,
      `${nodeBox(s.add)}>${ANCHOR_OUT}:1`,
    ]);
    const level = vg.levels.get(nodeBox(s.enc));
    expect(level && levelAnchors(level)).toEqual([ANCHOR_IN, ANCHOR_OUT]);
  });

  it("routes an edge into nested open groups through each group's input anchor", () => {
    const index = indexGraph(resnet());
    const id = (name: string) => index.nodes.findIndex((n) => n?.name === name);
    const open = new Set([id("layer1"), id("layer1.0")]);
    const vg = visibleGraph(index, open, new Set(["layer1.0#0"]));
    const edges = (level: string) =>
      vg.levels.get(level)?.edges.map((e) => `${e.src}>${e.dst}`) ?? [];
    const relu = nodeBox(id("relu"));
    expect(edges(ROOT_BOX)).toContain(`${relu}>${nodeBox(id("layer1"))}`);
    expect(edges(nodeBox(id("layer1")))).toContain(`${ANCHOR_IN}>${nodeBox(id("layer1.0"))}`);
    const inBlock = edges(nodeBox(id("layer1.0")));
    expect(inBlock).toContain(`${ANCHOR_IN}>${nodeBox(id("layer1.0.conv1"))}`);
    // the skip connection enters the block too, to the in-place add
    const add = index.children.get(id("layer1.0"))?.find((c) => index.nodes[c]?.name === "add_");
    expect(inBlock).toContain(`${ANCHOR_IN}>${nodeBox(add ?? -1)}`);
  });

  it("ignores an expanded group inside a collapsed one", () => {
    const g = new GraphBuilder();
    const outer = g.node("module", "o", "O", -1, null);
    const inner = g.node("module", "o.i", "I", outer, null);
    g.leaf("o.i.l", "Linear", inner, [1], 1);
    const vg = visibleGraph(indexGraph(g.graph), new Set([inner]), none);
    expect([...vg.boxes.keys()]).toEqual([nodeBox(outer)]);
  });
});

describe("folding", () => {
  it("folds a chain of identical blocks into one box until unfolded", () => {
    const graph = gpt(4);
    const index = indexGraph(graph);
    expect(index.folds).toHaveLength(1);
    const fold = index.folds[0];
    expect(fold?.key).toBe("blocks.0#0");
    expect(fold?.members.map((m) => index.nodes[m]?.name)).toEqual([
      "blocks.0",
      "blocks.1",
      "blocks.2",
      "blocks.3",
    ]);
    const vg = visibleGraph(index, none, none);
    const names = vg.levels.get(ROOT_BOX)?.children;
    expect(names).toContain(foldBox("blocks.0#0"));
    expect(names?.filter((b) => vg.boxes.get(b)?.kind === "group")).toEqual([]);
    // edges into and out of the fold survive, the ones between blocks are internal
    const fb = foldBox("blocks.0#0");
    expect(vg.edges.filter((e) => e.dst === fb)).toHaveLength(1);
    expect(vg.edges.filter((e) => e.src === fb)).toHaveLength(1);

    const open = visibleGraph(index, none, new Set(["blocks.0#0"]));
    expect(open.boxes.has(fb)).toBe(false);
    expect(
      open.levels.get(ROOT_BOX)?.children.filter((b) => open.boxes.get(b)?.kind === "group"),
    ).toHaveLength(4);
  });

  it("does not fold identical siblings that do not feed each other", () => {
    const g = new GraphBuilder();
    const x = g.node("input", "x", "Tensor", -1, [1]);
    const h1 = g.leaf("head1", "Linear", -1, [1], 2, x);
    const h2 = g.leaf("head2", "Linear", -1, [1], 2, x);
    g.op("add", "Tensor.add", -1, [1], h1, h2);
    expect(indexGraph(g.graph).folds).toEqual([]);
  });

  it("does not fold across a different signature or an op in between", () => {
    const index = indexGraph(resnet());
    // layer1.0 and layer1.1 fold; layer2.0 (downsample) and layer2.1 differ
    expect(index.folds.map((f) => f.key)).toEqual(["layer1.0#0"]);
    const mlp = indexGraph(deepMlp(6));
    expect(mlp.folds.map((f) => f.members.length)).toEqual([4]);
  });

  it("folds a 48-block GPT to a handful of top-level boxes", () => {
    const vg = visibleGraph(indexGraph(gpt(48)), none, none);
    expect(vg.levels.get(ROOT_BOX)?.children.length).toBeLessThan(12);
  });
});

/** x -> net(n chained Linear leaves) -> out; `same`: identical leaves (they fold). */
function longChain(n: number, same: boolean) {
  const g = new GraphBuilder();
  let prev = g.node("input", "x", "Tensor", -1, [2, 4]);
  const net = g.node("module", "net", "Sequential", -1, [2, 4]);
  const leaves: number[] = [];
  for (let i = 0; i < n; i++) {
    prev = g.leaf(`net.${i}`, "Linear", net, [2, 4], same ? 20 : 20 + (i % 2), prev);
    leaves.push(prev);
  }
  g.edge(prev, g.node("output", "out", "Tensor", -1, [2, 4]));
  return { index: indexGraph(g.graph), net, leaves };
}

describe("pages of a group with more than PAGE_SIZE children", () => {
  it("shows pages that open one at a time, edges lifted to them", () => {
    const { index, net, leaves } = longChain(2500, false);
    const pages = [0, 1, 2].map((k) => pageKey(net, k));
    const closed = visibleGraph(index, new Set([net]), none);
    expect(closed.levels.get(nodeBox(net))?.children).toEqual(pages);
    const described = pages.map((p) => {
      const box = closed.boxes.get(p);
      return [box?.kind, box?.page?.first, box?.page?.count, box?.page?.of];
    });
    expect(described).toEqual([
      ["page", 0, 1000, 2500],
      ["page", 1000, 1000, 2500],
      ["page", 2000, 500, 2500],
    ]);
    expect(closed.boxOf[leaves[1500] ?? -1]).toBe(pages[1]);
    const edges = closed.levels.get(nodeBox(net))?.edges.map((e) => `${e.src}>${e.dst}`);
    expect(edges?.sort()).toEqual(
      [
        `${ANCHOR_IN}>${pages[0]}`,
        `${pages[0]}>${pages[1]}`,
        `${pages[1]}>${pages[2]}`,
        `${pages[2]}>${ANCHOR_OUT}`,
      ].sort(),
    );

    const open = visibleGraph(index, new Set([net]), new Set([pages[1] ?? ""]));
    expect(open.boxes.get(pages[1] ?? "")?.kind).toBe("open");
    const inside = open.levels.get(pages[1] ?? "");
    expect(inside?.children).toEqual(leaves.slice(1000, 2000).map(nodeBox));
    expect(open.boxOf[leaves[999] ?? -1]).toBe(pages[0]); // the other pages stay closed
    expect(inside?.edges.filter((e) => e.src === ANCHOR_IN).map((e) => e.dst)).toEqual([
      nodeBox(leaves[1000] ?? -1),
    ]);
  });

  it("knows the page of a node, and keeps folds inside one page", () => {
    const { index, net, leaves } = longChain(PAGE_SIZE + 200, true);
    expect(pageOf(index, leaves[PAGE_SIZE + 5] ?? -1)).toBe(pageKey(net, 1));
    expect(pageOf(index, leaves[3] ?? -1)).toBe(pageKey(net, 0));
    expect(pageOf(index, net)).toBeUndefined(); // the top level has three children
    expect(index.folds.map((f) => f.members.length)).toEqual([PAGE_SIZE, 200]);
  });
});
