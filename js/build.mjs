// Bundles the front end into the Python package: three ES modules and one stylesheet. anywidget
// loads one ESM file per view, so the structure view, whose diagram needs the layout worker
// (js/src/graph/layout.worker.ts with elkjs, ~1.5 MB), has a bundle of its own (structure.js);
// the other views load the small widget.js. standalone.js, for the offline HTML report, carries
// both views' render functions (ELK once). The worker is bundled first, in memory, and its
// text replaces js/src/graph/worker-source.ts: it is started from a Blob URL of that text.

import path from "node:path";
import * as esbuild from "esbuild";

const watch = process.argv.includes("--watch");
const minify = !watch;

export async function buildWorker() {
  const out = await esbuild.build({
    entryPoints: ["js/src/graph/layout.worker.ts"],
    bundle: true,
    format: "iife",
    target: "es2020",
    minify,
    write: false,
    logLevel: "warning",
  });
  return out.outputFiles[0].text;
}

/** Replaces worker-source.ts with the built worker's text (rebuilt on each build). */
export const inlineWorker = {
  name: "nbviz-inline-worker",
  setup(build) {
    build.onLoad({ filter: /[\\/]graph[\\/]worker-source\.ts$/ }, async () => ({
      contents: `export const WORKER_SOURCE = ${JSON.stringify(await buildWorker())};`,
      loader: "js",
      watchFiles: [path.resolve("js/src/graph/layout.worker.ts")],
    }));
  },
};

const options = {
  entryPoints: {
    widget: "js/src/widget.ts",
    structure: "js/src/structure.ts",
    // The offline HTML report: both view bundles' render functions in one module, so ELK is in
    // the page once (nbviz/export/html.py inlines it).
    standalone: "js/src/standalone.ts",
    style: "js/src/style.css",
  },
  outdir: "nbviz/static",
  bundle: true,
  format: "esm",
  target: "es2020",
  minify,
  sourcemap: watch ? "inline" : false,
  logLevel: "info",
  plugins: [inlineWorker],
};

if (process.argv[1] && import.meta.url.endsWith(path.basename(process.argv[1]))) {
  if (watch) {
    await (await esbuild.context(options)).watch();
  } else {
    await esbuild.build(options);
  }
}
