"""The gradient-flow view and re-displayed widgets in a real JupyterLab, after a cell trained.

The flow view draws on canvas; it exposes the numbers it draws (a visually hidden table of the
bars, the hovered heatmap cell's layer, step and value), which are compared with the run's own
statistics read in the kernel. A second view of the widget, and the page reloaded (the widget
state comes back from the live kernel, the run data by a snapshot), must show the same state.
"""

from __future__ import annotations

import json
import math
import pathlib
import re
from typing import Any

import pytest
from conftest import EMPTY_NOTEBOOK
from jupyter_server import Server
from notebook_ui import CELL_TIMEOUT_MS, append_and_run, append_and_start, open_notebook
from playwright.sync_api import Locator, Page, Position, expect

pytestmark = pytest.mark.browser

STEPS = 30
STATS = "[data-nbviz-view='stats']"  # the view; its tables are .nbviz-stats too
SETUP = f"""\
import json, torch
import numpy as np
import nbviz
model = torch.nn.Sequential(
    torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8), torch.nn.Tanh(),
    torch.nn.Linear(8, 1),
)
opt = torch.optim.SGD(model.parameters(), lr=0.01)
viz = nbviz.show(model, every=1, histograms_every=1)
display(viz)
for _ in range({STEPS}):
    opt.zero_grad()
    model(torch.randn(16, 4)).pow(2).mean().backward()
    opt.step()


def grad_norms(step):
    # Per layer, the L2 norm of all its parameters' gradients at `step`, from the run itself.
    run, sums = viz.recorder.run, {{}}
    for key in run.series(kind="grad"):
        series = run.stats(key.layer, "grad", key.tensor)
        (at,) = np.flatnonzero(series.step_lo == step)
        sums[key.layer] = sums.get(key.layer, 0.0) + float(series.values["l2"][at]) ** 2
    return {{layer: total ** 0.5 for layer, total in sums.items()}}"""


def python_json(page: Page, expression: str) -> Any:
    return json.loads(append_and_run(page, f"print(json.dumps({expression}))"))


def shown_norms(table: Locator) -> dict[str, float]:
    rows = table.locator("tr[data-layer]")
    values = {}
    for i in range(rows.count()):
        row = rows.nth(i)
        value = row.locator("td").get_attribute("data-value") or ""
        if value:
            values[row.get_attribute("data-layer") or ""] = float(value)
    return values


def assert_close(shown: dict[str, float], expected: dict[str, float]) -> None:
    assert shown.keys() == expected.keys()
    for layer, value in expected.items():
        # float32 on the wire, combined over the layer's tensors in float64
        assert math.isclose(shown[layer], value, rel_tol=1e-6), (layer, shown[layer], value)


def trained(page: Page, lab: Server) -> None:
    open_notebook(page, lab.url, "lab", EMPTY_NOTEBOOK)
    append_and_start(page, SETUP)
    expect(page.locator(".nbviz-step-label").first).to_contain_text(
        f"of {STEPS}", timeout=CELL_TIMEOUT_MS
    )


def test_flow_view_draws_the_runs_gradient_norms(
    lab: Server, page: Page, artifacts: pathlib.Path
) -> None:
    trained(page, lab)
    flow = page.locator(".nbviz-gradflow").first
    table = flow.locator("table.nbviz-gf-table")
    expect(table).to_have_attribute("data-step", str(STEPS - 1))
    assert_close(shown_norms(table), python_json(page, f"grad_norms({STEPS - 1})"))
    flow.screenshot(path=str(artifacts / "gradient-flow.png"))

    # The slider moves the bars and the heatmap's step marker.
    marker = flow.locator(".nbviz-gf-step-marker")
    marker_before = marker.get_attribute("style")
    page.locator(".nbviz-slider input.nbviz-range").first.fill("5")
    expect(table).to_have_attribute("data-step", "5")
    assert_close(shown_norms(table), python_json(page, "grad_norms(5)"))
    assert marker.get_attribute("style") != marker_before
    # The arrow keys scrub too (JupyterLab's notebook must not take them).
    page.locator(".nbviz-slider input.nbviz-range").first.press("ArrowRight")
    expect(table).to_have_attribute("data-step", "6")

    # Hovering a heatmap cell names its layer, step and value; clicking it selects both.
    layers = table.locator("tr[data-layer]").evaluate_all("rows => rows.map(r => r.dataset.layer)")
    heat = flow.locator("canvas.nbviz-gf-heat")
    box = heat.bounding_box()
    assert box is not None
    row, step = layers.index("2"), 17
    plot_x, plot_w = 8, box["width"] - 16  # the plot's inset (gradflow.ts LEFT)
    cell: Position = {
        "x": plot_x + (step + 0.5) / STEPS * plot_w,
        "y": (row + 0.5) / len(layers) * box["height"],
    }
    heat.hover(position=cell)
    hover = flow.locator(".nbviz-gf-hover")
    expect(hover).to_have_attribute("data-layer", "2")
    expect(hover).to_have_attribute("data-step", str(step))
    expected = python_json(page, f"grad_norms({step})['2']")
    assert math.isclose(float(hover.get_attribute("data-value") or "nan"), expected, rel_tol=1e-6)
    heat.click(position=cell)
    expect(table).to_have_attribute("data-step", str(step))
    assert python_json(page, "[viz.selected, viz.step]") == ["2", step]

    # Clicking a bar selects its layer.
    bars = flow.locator("canvas.nbviz-gf-bars")
    bars_box = bars.bounding_box()
    assert bars_box is not None
    last = len(layers) - 1
    bars.click(
        position={"x": plot_x + (last + 0.5) / len(layers) * plot_w, "y": bars_box["height"] / 2}
    )
    assert python_json(page, "viz.selected") == layers[last]


def view_state(page: Page, index: int) -> dict[str, str]:
    """What one view of the widget shows: step count, selected layer, step, a histogram."""
    stats = page.locator(STATS).nth(index)
    weights = stats.locator(".nbviz-hp-row[data-kind='weight'] .nbviz-hp-cell").first
    expect(weights.locator("path.nbviz-bars")).to_have_attribute("d", re.compile(r"\S"))
    return {
        "steps": page.locator(".nbviz-step-label").nth(index).text_content() or "",
        "layer": stats.locator(".nbviz-hp-title .nbviz-name").text_content() or "",
        "step": stats.locator(".nbviz-hp-step").text_content() or "",
        "bars": weights.locator("path.nbviz-bars").get_attribute("d") or "",
        "max": weights.locator("td[data-stat='max']").text_content() or "",
        "flow_step": page.locator("table.nbviz-gf-table").nth(index).get_attribute("data-step")
        or "",
    }


def test_a_second_view_and_a_reloaded_page_show_the_same_state(lab: Server, page: Page) -> None:
    trained(page, lab)  # trains afresh in the same kernel
    append_and_run(page, "viz.selected = '2'; viz.step = 11; print('set')")
    append_and_start(page, "viz")
    expect(page.locator(STATS)).to_have_count(2, timeout=CELL_TIMEOUT_MS)
    expected = {
        "steps": f"of {STEPS}",
        "layer": "2",
        "step": "step 11",
        "flow_step": "11",
    }
    # The flow view's hidden table follows the step once it rests (gradflow.ts): wait for it.
    for i in range(2):
        expect(page.locator("table.nbviz-gf-table").nth(i)).to_have_attribute("data-step", "11")
    views = [view_state(page, i) for i in range(2)]
    assert views[0] == views[1]
    for key, value in expected.items():
        assert value in views[0][key], (key, views[0])
    max_weight = python_json(
        page, "float(viz.recorder.run.stats('2', 'weight', 'weight').values['max'][11])"
    )
    assert views[0]["max"], views[0]
    assert math.isclose(float(views[0]["max"].replace("−", "-")), max_weight, rel_tol=1e-3)

    # Reloaded: the models come back from the kernel, the run data by a snapshot request.
    page.keyboard.press("Control+s")
    expect(page.locator(".jp-mod-dirty")).to_have_count(0)
    page.reload()
    expect(page.locator(STATS)).to_have_count(2, timeout=60_000)
    for i in range(2):
        expect(page.locator(".nbviz-step-label").nth(i)).to_contain_text(f"of {STEPS}")
        expect(page.locator(STATS).nth(i).locator(".nbviz-hp-step")).to_have_text("step 11")
        expect(page.locator("table.nbviz-gf-table").nth(i)).to_have_attribute("data-step", "11")
    assert [view_state(page, i) for i in range(2)] == views
