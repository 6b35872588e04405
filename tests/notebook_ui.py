"""Driving a notebook in JupyterLab 4 or Notebook 7 through Playwright, as a user would."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from typing import Any

from playwright.sync_api import Locator, Page, expect

KERNEL_START_S = 120
CELL_TIMEOUT_MS = 180_000  # the first `import torch` is slow on a cold machine


def notebook_url(base: str, app: str, name: str) -> str:
    return f"{base}/lab/tree/{name}" if app == "lab" else f"{base}/notebooks/{name}"


def _kernel_states(base: str) -> list[str]:
    with urllib.request.urlopen(f"{base}/api/sessions", timeout=5) as response:
        sessions: list[dict[str, Any]] = json.load(response)
    return [s["kernel"]["execution_state"] for s in sessions if s.get("kernel")]


def open_notebook(page: Page, base: str, app: str, name: str) -> None:
    """Opens the notebook and waits until its kernel is up and the page is connected to it."""
    page.goto(notebook_url(base, app, name))
    page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
    deadline = time.monotonic() + KERNEL_START_S
    while _kernel_states(base) != ["idle"]:
        if time.monotonic() > deadline:
            raise TimeoutError(f"kernel not idle after {KERNEL_START_S} s: {_kernel_states(base)}")
        time.sleep(0.5)
    # The page's own kernel status: idle only once its connection to the kernel is up.
    expect(
        page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first
    ).to_be_attached(timeout=60_000)


def run_all_cells(page: Page) -> None:
    page.locator(".lm-MenuBar-item", has_text="Run").first.click()
    page.locator(".lm-Menu-item:visible", has_text="Run All Cells").first.click()


def append_and_start(page: Page, code: str) -> Locator:
    """Adds a code cell at the end and starts it; returns the cell without waiting for it."""
    cells = page.locator(".jp-Notebook .jp-Cell")
    count = cells.count()
    cells.nth(count - 1).locator(".jp-InputPrompt").click()
    page.keyboard.press("Escape")
    page.keyboard.press("b")
    new_cell = cells.nth(count)
    new_cell.wait_for()
    new_cell.locator(".cm-content").click()
    page.keyboard.insert_text(code)
    page.keyboard.press("Shift+Enter")
    return new_cell


def append_and_run(page: Page, code: str) -> str:
    """Adds a code cell at the end, runs it, and returns the text of its output."""
    output = append_and_start(page, code).locator(".jp-OutputArea-output")
    # The output's box can be attached a moment before its text is rendered into it. Its text
    # content, not innerText: JupyterLab stops rendering cells scrolled out of view, and a tall
    # widget above pushes the new cell there (innerText of an unrendered element is "").
    expect(output.first).to_have_text(re.compile(r"\S"), timeout=CELL_TIMEOUT_MS)
    return output.first.text_content() or ""
