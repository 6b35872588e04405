/**
 * The layout worker's bundled source. Empty here: js/build.mjs replaces this module with the
 * text of the built layout.worker.ts, so the single widget.js carries its worker. Under vitest
 * it stays empty and the layout runs in process.
 */
export const WORKER_SOURCE: string = "";
