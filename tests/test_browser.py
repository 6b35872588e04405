"""The quickstart notebook in a real JupyterLab 4 and Notebook 7, driven in headless Chromium."""

from __future__ import annotations

import pathlib
import shutil
from collections.abc import Iterator

import pytest
from jupyter_server import Server, jupyter_server
from notebook_ui import (
    CELL_TIMEOUT_MS,
    append_and_run,
    append_and_start,
    open_notebook,
    run_all_cells,
)
from playwright.sync_api import Page, expect

REPO = pathlib.Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.browser


@pytest.fixture(params=["lab", "notebook"], scope="module")
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Server]]:
    app: str = request.param
    root = tmp_path_factory.mktemp(f"{app}-root")
    shutil.copy(REPO / "notebooks" / "quickstart.ipynb", root / "quickstart.ipynb")
    with jupyter_server(app, root, tmp_path_factory.mktemp(f"{app}-scratch")) as running:
        yield app, running


def selected_rows(page: Page, view: str) -> list[str | None]:
    rows = page.locator(f".nbviz-{view} .is-selected[data-layer]")
    return [rows.nth(i).get_attribute("data-layer") for i in range(rows.count())]


def test_quickstart_selection_round_trips(
    server: tuple[str, Server], page: Page, artifacts: pathlib.Path
) -> None:
    app, running = server
    open_notebook(page, running.url, app, "quickstart.ipynb")
    run_all_cells(page)

    # The widget appears with the hierarchy, the picker and the histograms of the layer that the
    # last cell selected from Python.
    structure = page.locator(".nbviz-structure")
    expect(structure.locator("[data-layer='features.conv2'].is-selected")).to_be_visible(
        timeout=CELL_TIMEOUT_MS
    )
    assert selected_rows(page, "picker") == ["features.conv2"]
    cards = page.locator(".nbviz-histogram .nbviz-hist-card")
    expect(cards).to_have_count(2)
    expect(
        page.locator(".nbviz-histogram [data-tensor='features.conv2.weight'] rect.nbviz-bar").first
    ).to_be_visible()

    # Click a layer in the hierarchy: both views highlight it and the histograms redraw.
    structure.locator("[data-layer='head.fc1']").click()
    expect(page.locator(".nbviz-picker [data-layer='head.fc1'].is-selected")).to_be_visible()
    expect(page.locator(".nbviz-histogram [data-tensor='head.fc1.weight']")).to_be_visible()
    expect(page.locator(".nbviz-histogram [data-tensor='features.conv2.weight']")).to_have_count(0)
    assert selected_rows(page, "structure") == ["head.fc1"]
    widget = page.locator(".jp-OutputArea-output", has=page.locator(".nbviz-structure")).first
    widget.screenshot(path=str(artifacts / f"quickstart-{app}.png"))

    # 131,072 weights: histogrammed from a sample; "exact" asks the kernel for every element.
    weight = page.locator(".nbviz-histogram [data-tensor='head.fc1.weight']")
    expect(weight.locator(".nbviz-sampled")).to_contain_text("sampled: 16,384 of 131,072")
    weight.locator("button.nbviz-exact").click()
    expect(weight.locator(".nbviz-exact-note")).to_have_text("exact: all 131,072 elements")

    # Python sees the browser's pick.
    assert append_and_run(page, "print('selected:', viz.selected)").strip() == "selected: head.fc1"

    # Search the picker by class, pick from it: the hierarchy follows.
    search = page.locator(".nbviz-picker input[type='search']")
    search.fill("batchnorm")
    items = page.locator(".nbviz-picker .nbviz-item")
    expect(items).to_have_count(1)
    items.first.click()
    expect(structure.locator("[data-layer='features.bn1'].is-selected")).to_be_visible()

    # Python selects: the highlight moves in both views.
    assert append_and_run(page, "viz.selected = 'features.conv1'; print('set')").strip() == "set"
    expect(structure.locator("[data-layer='features.conv1'].is-selected")).to_be_visible()
    search.fill("")
    expect(page.locator(".nbviz-picker [data-layer='features.conv1'].is-selected")).to_be_visible()
    assert selected_rows(page, "structure") == ["features.conv1"]
    expect(page.locator(".nbviz-histogram [data-tensor='features.conv1.bias']")).to_be_visible()

    # While a cell keeps the kernel busy, picking still updates every view in the browser; the
    # kernel learns of it when the cell ends.
    busy = append_and_start(page, "import time; time.sleep(6); print('done')")
    expect(
        page.locator(".jp-Notebook-ExecutionIndicator[data-status='busy']").first
    ).to_be_attached()
    page.locator(".nbviz-picker [data-layer='head.fc2']").click()
    expect(structure.locator("[data-layer='head.fc2'].is-selected")).to_be_visible(timeout=1000)
    expect(page.locator(".nbviz-histogram [data-tensor='head.fc2.weight']")).to_be_visible(
        timeout=1000
    )
    expect(
        page.locator(".jp-Notebook-ExecutionIndicator[data-status='busy']").first
    ).to_be_attached()
    expect(busy.locator(".jp-OutputArea-output")).to_have_text("done", timeout=CELL_TIMEOUT_MS)
    assert append_and_run(page, "print(viz.selected)").strip() == "head.fc2"

    # A bad name from Python is a clear error that lists close matches.
    error = append_and_run(page, "viz.selected = 'features.conv9'")
    assert "No layer named 'features.conv9'" in error
    assert "features.conv1" in error

    # Names from the model are text, never markup, in every view.
    evil = "<img src=x onerror=self['pwned']=1><b>bold</b>"  # no dots: torch forbids them
    shown = append_and_run(
        page,
        "import torch\n"
        f"nbviz.show(torch.nn.ModuleDict({{{evil!r}: torch.nn.Linear(2, 2)}}), selected={evil!r})",
    )
    assert "Error" not in shown, shown
    for view in ("structure", "picker"):
        expect(page.locator(f".nbviz-{view} .is-selected[data-layer]").last).to_have_attribute(
            "data-layer", evil
        )
    expect(page.locator(".nbviz-hist-title").last).to_contain_text(evil)
    assert page.locator(".nbviz img, .nbviz b").count() == 0
    assert page.evaluate("self['pwned']") is None
