/// <reference types="vite/client" />
import { describe, expect, it } from "vitest";
import { PROTOCOL, STAT_INDEX } from "../src/protocol";

const sources = import.meta.glob("../src/**/*.ts", {
  query: "?raw",
  import: "default",
  eager: true,
}) as Record<string, string>;
const css = (
  import.meta.glob("../src/style.css", { query: "?raw", import: "default", eager: true }) as Record<
    string,
    string
  >
)["../src/style.css"];

describe("sources", () => {
  it("never build HTML from strings", () => {
    expect(Object.keys(sources).length).toBeGreaterThan(5);
    for (const [path, text] of Object.entries(sources)) {
      expect(text, path).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write/);
    }
  });

  it("scope every CSS rule under .nbviz", () => {
    expect(css).toBeDefined();
    const withoutComments = (css ?? "").replace(/\/\*[\s\S]*?\*\//g, "");
    const selectors = [...withoutComments.matchAll(/([^{}]+)\{/g)].flatMap((m) =>
      (m[1] ?? "").split(","),
    );
    expect(selectors.length).toBeGreaterThan(20);
    for (const selector of selectors) expect(selector.trim()).toMatch(/^\.nbviz(\s|\.|:|\[|$)/);
  });
});

describe("PROTOCOL", () => {
  it("is plain JSON", () => {
    expect(JSON.parse(JSON.stringify(PROTOCOL))).toEqual(PROTOCOL);
    expect(PROTOCOL.STAT_FIELDS).toHaveLength(10);
    expect(PROTOCOL.HIST_BINS).toBe(64);
  });

  it("indexes stat columns", () => {
    expect(STAT_INDEX.numel).toBe(0);
    expect(STAT_INDEX.neginf).toBe(9);
    expect(PROTOCOL.STAT_FIELDS.map((f) => STAT_INDEX[f])).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });
});
