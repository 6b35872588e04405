"""Live updates in a real JupyterLab: the widget learns of new steps while a training cell runs.

The statistics views are not wired to the run store yet, so this watches what the same pushes
keep current: the step slider's step count (`num_steps`), set by the live feed's thread in the
kernel while the main thread is busy in the cell.
"""

from __future__ import annotations

import json
import pathlib
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from jupyter_server import Server, jupyter_server
from notebook_ui import CELL_TIMEOUT_MS, append_and_run, append_and_start, open_notebook
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

SETUP = """\
import time, torch
import nbviz
model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.01)
viz = nbviz.show(model, every=1, histograms_every=1)
viz"""

TRAIN = """\
for step in range(40):
    opt.zero_grad()
    model(torch.randn(3, 4)).sum().backward()
    opt.step()
    time.sleep(0.25)
print("trained")"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("live-root")
    notebook = {
        "cells": [],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (root / "live.ipynb").write_text(json.dumps(notebook))
    with jupyter_server("lab", root, tmp_path_factory.mktemp("live-scratch")) as running:
        yield running


@pytest.fixture
def page(chromium: Any) -> Iterator[Page]:
    context = chromium.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    yield page
    context.close()


def step_count(page: Page) -> int:
    text = page.locator(".nbviz-step-label").first.text_content() or ""
    match = re.search(r"of ([\d,]+)", text)
    return int(match.group(1).replace(",", "")) if match else -1


def test_steps_reach_the_browser_while_the_cell_trains(
    server: Server, page: Page, artifacts: pathlib.Path
) -> None:
    open_notebook(page, server.url, "lab", "live.ipynb")
    append_and_start(page, SETUP)
    expect(page.locator(".nbviz-step-label").first).to_be_visible(timeout=CELL_TIMEOUT_MS)
    assert step_count(page) == 1
    busy_indicator = page.locator(".jp-Notebook-ExecutionIndicator[data-status='busy']").first
    cell = append_and_start(page, TRAIN)
    expect(busy_indicator).to_be_attached()
    seen: list[int] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(set(seen)) < 3:
        count = step_count(page)
        if not seen or count != seen[-1]:
            seen.append(count)
            # Still inside the cell: the kernel's main thread is busy training.
            assert cell.locator(".jp-OutputArea-output").count() == 0, "the cell already ended"
        page.wait_for_timeout(100)
    assert len(set(seen)) >= 3, f"the step count only took the values {seen} during the cell"
    assert seen == sorted(seen)
    page.locator(".jp-OutputArea-output", has=page.locator(".nbviz-slider")).first.screenshot(
        path=str(artifacts / "live-training.png")
    )
    expect(cell.locator(".jp-OutputArea-output")).to_have_text("trained", timeout=CELL_TIMEOUT_MS)
    expect(page.locator(".nbviz-step-label").first).to_contain_text("of 40", timeout=5000)
    assert append_and_run(page, "print(viz.num_steps)").strip() == "40"
