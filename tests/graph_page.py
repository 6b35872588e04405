"""A static page running the real structure diagram (js/src/graph, its ELK worker inlined as
js/build.mjs does for the widget), bundled with esbuild and served on 127.0.0.1.

Shared by benchmarks/bench_graph_view.py and tests/test_browser_zoo.py: a page is much faster
to drive than a JupyterLab cell, and runs the same code as the widget's diagram.
"""

from __future__ import annotations

import functools
import http.server
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Headless Chromium for the benchmarks (the tests' own come from conftest's fixture).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
BUILD = """
import * as esbuild from "esbuild";
import { inlineWorker } from "./js/build.mjs";
await esbuild.build({
  entryPoints: { page: process.argv[2], style: "js/src/style.css" },
  outdir: process.argv[1], bundle: true, format: "esm", target: "es2020", minify: true,
  logLevel: "warning", plugins: [inlineWorker],
});
"""
PAGE = """<!doctype html><meta charset="utf-8"><link rel="stylesheet" href="style.css">
<style>body{margin:0} #host{width:1200px}</style>
<div id="host"></div><script type="module" src="page.js"></script>"""


def build(out: Path, entry: str) -> None:
    """Bundles `entry` (a .ts file relative to the repository) into `out` with index.html."""
    subprocess.run(
        ["node", "--input-type=module", "-e", BUILD, str(out), entry], cwd=ROOT, check=True
    )
    (out / "index.html").write_text(PAGE)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serve(folder: Path) -> Iterator[str]:
    """Serves `folder` on a free local port; yields the page's URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
