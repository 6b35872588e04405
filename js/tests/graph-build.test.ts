// @vitest-environment node
import * as esbuild from "esbuild";
import { describe, expect, it } from "vitest";
// @ts-expect-error: a plain ES module without types
import { buildWorker, inlineWorker } from "../build.mjs";

describe("the layout worker in the bundle", () => {
  it("is bundled as one classic script with ELK, answering on self.onmessage", async () => {
    const source: string = await buildWorker();
    expect(source.length).toBeGreaterThan(1_000_000); // ELK is in it
    expect(source).not.toMatch(/^\s*import\s/m); // no module syntax: a Blob URL worker
    expect(source).toContain("onmessage");
  });

  it("replaces worker-source.ts with the worker's text", async () => {
    const out = await esbuild.build({
      stdin: {
        contents:
          'import { WORKER_SOURCE } from "./js/src/graph/worker-source"; console.log(WORKER_SOURCE.length);',
        resolveDir: new URL("../..", import.meta.url).pathname,
        loader: "ts",
      },
      bundle: true,
      format: "esm",
      write: false,
      minify: true,
      plugins: [inlineWorker],
    });
    const text = out.outputFiles[0]?.text ?? "";
    expect(text.length).toBeGreaterThan(1_000_000);
  }, 60_000);
});
