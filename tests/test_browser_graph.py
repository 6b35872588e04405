"""The structure diagram in a real JupyterLab: collapsed groups, folded blocks, search, selection
in both directions with Python, the trace's warnings and the autograd tab."""

from __future__ import annotations

import json
import pathlib
import urllib.request
from typing import Any

import pytest
from conftest import EMPTY_NOTEBOOK
from jupyter_server import Server
from notebook_ui import CELL_TIMEOUT_MS, append_and_run, append_and_start, open_notebook
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

LAYOUT_MS = 20_000  # the worker's first ELK call is slow on a cold, shared machine

SETUP = """\
import torch, nbviz
from torch import nn

class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.act = nn.ReLU()
    def forward(self, x):
        return self.act(self.fc(x)) + x

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Linear(4, 8)
        self.blocks = nn.Sequential(*[Block() for _ in range(6)])
        self.head = nn.Linear(8, 2)
        self.spare = nn.Linear(8, 8)  # registered, never called: the trace says so
    def forward(self, x):
        return self.head(self.blocks(self.stem(x)))

viz = nbviz.show(Net(), torch.randn(3, 4), record=False)
viz"""


def test_the_diagram_expands_folds_searches_and_selects(
    lab: Server, page: Page, artifacts: pathlib.Path
) -> None:
    open_notebook(page, lab.url, "lab", EMPTY_NOTEBOOK)
    append_and_start(page, SETUP)
    view = page.locator(".nbviz-structure")
    box = view.locator(".nbviz-box")

    # Collapsed to the top-level modules; the never-called module is listed, not dropped.
    expect(box.locator("xpath=self::*[@data-name='blocks']")).to_be_visible(timeout=CELL_TIMEOUT_MS)
    expect(view.locator("[data-name='stem']")).to_be_visible(timeout=LAYOUT_MS)
    expect(view.locator("[data-name='blocks.0']")).to_have_count(0)
    expect(view.locator(".nbviz-graph-notes")).to_contain_text("spare")

    # Open the group: its six identical blocks are one fold; unfold it; open one block.
    view.locator("[data-name='blocks'] [data-toggle]").click()
    fold = view.locator(".nbviz-box[data-kind='fold']")
    expect(fold).to_contain_text("Block ×6", timeout=LAYOUT_MS)
    fold.click()
    expect(view.locator(".nbviz-box[data-name='blocks.3']")).to_be_visible(timeout=LAYOUT_MS)

    # Python selects: the diagram brings the module into view and marks it.
    append_and_run(page, "viz.selected = 'blocks.3'; print('ok')")
    block = view.locator(".nbviz-box[data-name='blocks.3']")
    expect(block).to_have_class("nbviz-box nbviz-box-group nbviz-kind-module is-selected")

    # Open that block; clicking a box inside selects the layer everywhere, and Python sees it.
    block.locator("[data-toggle]").click()
    inner = view.locator(".nbviz-box[data-name='blocks.3.fc']")
    expect(inner).to_be_visible(timeout=LAYOUT_MS)
    view.locator(".nbviz-graph").screenshot(path=str(artifacts / "graph-expanded.png"))
    inner.click()
    expect(page.locator(".nbviz-picker [data-layer='blocks.3.fc'].is-selected")).to_be_visible()
    assert append_and_run(page, "print(viz.selected)").strip() == "blocks.3.fc"

    # Search by class: every ReLU is found.
    view.locator("input[type='search']").fill("relu")
    expect(view.locator(".nbviz-toolbar .nbviz-summary")).to_have_text("6 found", timeout=LAYOUT_MS)

    # The autograd tab draws torchviz's graph in the kernel and shows it as an image.
    view.locator(".nbviz-tab", has_text="Autograd").click()

    image = view.locator("img.nbviz-autograd-img")
    expect(image).to_be_visible(timeout=LAYOUT_MS)
    page.wait_for_function(
        "() => document.querySelector('img.nbviz-autograd-img')?.naturalWidth > 0"
    )
    view.locator(".nbviz-tab", has_text="Modules").click()
    expect(view.locator(".nbviz-row[data-layer='blocks.3.fc'].is-selected")).to_be_visible()


MOE = """\
import sys
sys.path.insert(0, {tests!r})
import nbviz
from trace_models import ZOO

case = ZOO["moe"]()
viz = nbviz.show(case.model, case.args[0], record=False)
viz"""


def end_sessions(base: str) -> None:
    """Shuts down every notebook session (and its kernel) of the server."""
    with urllib.request.urlopen(f"{base}/api/sessions", timeout=10) as response:
        sessions: list[dict[str, Any]] = json.load(response)
    for session in sessions:
        request = urllib.request.Request(f"{base}/api/sessions/{session['id']}", method="DELETE")
        urllib.request.urlopen(request, timeout=30).close()


def test_a_routed_mixture_of_experts_shows_what_ran(
    lab: Server, page: Page, artifacts: pathlib.Path
) -> None:
    """A second, awkward model: one module wrapping everything (open from the start),
    data-dependent routing, and an expert that never ran (listed, not drawn)."""
    notebook = {
        "cells": [],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (lab.root / "moe.ipynb").write_text(json.dumps(notebook))  # the other one is saved by now
    # One kernel (open_notebook waits for the only session to be idle), and a clean workspace:
    # the saved one reopens the first test's notebook, whose tab may end up in front.
    end_sessions(lab.url)
    page.goto(f"{lab.url}/lab?reset")
    page.locator(".jp-LauncherBody, .jp-Launcher").first.wait_for(timeout=60_000)
    open_notebook(page, lab.url, "lab", "moe.ipynb")
    append_and_start(page, MOE.format(tests=str(pathlib.Path(__file__).parent)))
    view = page.locator(".nbviz-structure")

    expect(view.locator(".nbviz-box[data-name='router']")).to_be_visible(timeout=CELL_TIMEOUT_MS)
    expect(view.locator(".nbviz-graph-notes")).to_contain_text("experts.3: Sequential never ran")
    expect(view.locator(".nbviz-box[data-name='experts.3']")).to_have_count(0)

    view.locator(".nbviz-box[data-name='experts.1'] [data-toggle]").click()
    expect(view.locator(".nbviz-box[data-name='experts.1.0']")).to_be_visible(timeout=LAYOUT_MS)
    view.locator(".nbviz-toolbar button", has_text="Fit").click()
    inner = view.locator(".nbviz-box[data-name='experts.1.2']")
    expect(inner).to_be_visible(timeout=LAYOUT_MS)
    view.locator(".nbviz-graph").screenshot(path=str(artifacts / "graph-moe.png"))
    inner.click()
    assert append_and_run(page, "print(viz.selected)").strip() == "experts.1.2"
