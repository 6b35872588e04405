"""A static page running the widget's real front-end code, for tests and benchmarks: bundle an
entry with esbuild (its layout worker inlined as js/build.mjs does), serve it on 127.0.0.1, and
launch Debian's chromium (never `playwright install`).

A page is much faster to drive than a JupyterLab cell and runs the same code. The tests use it
(tests/test_browser_zoo.py) and so do the benchmarks, which put tests/ on their path.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from playwright.sync_api import Browser, Playwright

ROOT = Path(__file__).resolve().parent.parent
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
_BUILD = """
import * as esbuild from "esbuild";
import { inlineWorker } from "./js/build.mjs";
const [outdir, entry] = process.argv.slice(1);
await esbuild.build({
  entryPoints: { page: entry, style: "js/src/style.css" },
  outdir, bundle: true, format: "esm", target: "es2020", minify: true, logLevel: "warning",
  plugins: [inlineWorker],
});
"""
# An empty icon: else Chromium asks for /favicon.ico, and its 404 reaches the console (as an
# error, in whichever test is looking then).
_PAGE = """<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,">
<link rel="stylesheet" href="style.css">
<style>body{{margin:0}} #host{{width:1200px}}{style}</style>
<div id="host"></div><script type="module" src="page.js"></script>"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def launch(playwright: Playwright) -> Browser:
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("chromium not found: apt-get install -y chromium")
    return playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)


@contextlib.contextmanager
def static_page(entry: str, *, files: Iterable[Path] = (), style: str = "") -> Iterator[str]:
    """Bundles `entry` (a path under js/, its layout worker inlined as js/build.mjs does) with
    the widget's stylesheet and `files` into a temporary folder with an index.html (`#host` to
    draw into, `style` added to its CSS), serves it on 127.0.0.1; yields the page's URL."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        subprocess.run(
            ["node", "--input-type=module", "-e", _BUILD, str(folder), entry], cwd=ROOT, check=True
        )
        for file in files:
            shutil.copy(file, folder)
        (folder / "index.html").write_text(_PAGE.format(style=style))
        handler = functools.partial(_QuietHandler, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
        finally:
            server.shutdown()
            server.server_close()
