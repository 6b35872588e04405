"""Live updates in a real JupyterLab: the widget learns of new steps while a training cell runs.

The first test watches the step slider's step count, kept current by the live feed's pushes
while the kernel's main thread is busy in the cell; the second, the statistics panels, the
slider, the graph overlay and the anomaly banner fed by the same pushes.
"""

from __future__ import annotations

import pathlib
import re
import time

import pytest
from conftest import EMPTY_NOTEBOOK
from jupyter_server import Server
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


def step_count(page: Page) -> int:
    text = page.locator(".nbviz-step-label").first.text_content() or ""
    match = re.search(r"of ([\d,]+)", text)
    return int(match.group(1).replace(",", "")) if match else -1


def test_steps_reach_the_browser_while_the_cell_trains(
    lab: Server, page: Page, artifacts: pathlib.Path
) -> None:
    open_notebook(page, lab.url, "lab", EMPTY_NOTEBOOK)
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


WIRED_SETUP = """\
import time, torch
import nbviz
FIRE = [-1]  # the training step at which module "2" produces NaN


class Boom(torch.nn.Module):
    # Its gain's gradient turns NaN at step 12 (then its gain, and every output after).
    def __init__(self):
        super().__init__()
        self.gain = torch.nn.Parameter(torch.ones(1))
        self.gain.register_hook(lambda g: g * float("nan") if FIRE[0] == 12 else g)

    def forward(self, x):
        return x * self.gain


net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), Boom(), torch.nn.Linear(8, 1))
net_opt = torch.optim.SGD(net.parameters(), lr=0.01)
wired = nbviz.show(net, torch.randn(3, 4), every=1, histograms_every=1)
wired"""

WIRED_TRAIN = """\
for step in range(40):
    FIRE[0] = step
    net_opt.zero_grad()
    net(torch.randn(3, 4)).sum().backward()
    net_opt.step()
    time.sleep(0.25)
print("trained")"""


def test_panels_slider_overlay_and_anomaly_follow_training(
    lab: Server, page: Page, artifacts: pathlib.Path
) -> None:
    # The same notebook (and kernel) as above: the helpers expect one kernel on the server.
    open_notebook(page, lab.url, "lab", EMPTY_NOTEBOOK)
    append_and_start(page, WIRED_SETUP)
    graph = page.locator(".nbviz-structure").first
    stats = page.locator(".nbviz-stats").first
    expect(graph.locator(".nbviz-box[data-name='0']")).to_be_visible(timeout=CELL_TIMEOUT_MS)
    # Nothing recorded yet: the selected layer's parameters, as before training.
    graph.locator(".nbviz-box[data-name='0']").click()
    expect(stats).to_have_attribute("data-source", "parameters")
    expect(stats.locator(".nbviz-hist-card").first).to_be_visible()

    cell = append_and_start(page, WIRED_TRAIN)
    # While the cell trains, pushes fill the panels and the view follows the latest step.
    expect(stats).to_have_attribute("data-source", "run", timeout=30_000)
    expect(stats.locator(".nbviz-hp-row[data-kind='weight'] .nbviz-hp-cell").first).to_be_visible()
    step_text = stats.locator(".nbviz-hp-step")
    first = step_text.text_content()
    expect(step_text).not_to_have_text(first or "", timeout=10_000)
    assert cell.locator(".jp-OutputArea-output").count() == 0, "the cell already ended"
    # Clicking another node changes the panels, during the cell too.
    graph.locator(".nbviz-box[data-name='3']").click()
    expect(stats.locator(".nbviz-hp-title .nbviz-name")).to_have_text("3")
    # The overlay colours the boxes, and recolours as steps arrive.
    graph.locator("select.nbviz-overlay-metric").select_option("grad_norm")
    rect = graph.locator(".nbviz-box[data-name='3'] > rect.nbviz-box-rect")
    expect(rect).to_have_attribute("style", re.compile(r"fill"), timeout=10_000)
    expect(graph.locator(".nbviz-overlay-legend .nbviz-legend")).to_be_visible()
    # The NaN at step 12 in module "2": the banner names it.
    banner = stats.locator(".nbviz-anomaly")
    expect(banner).to_be_visible(timeout=30_000)
    expect(banner.locator(".nbviz-anomaly-go")).to_have_attribute("data-layer", "2")
    expect(banner.locator(".nbviz-anomaly-go")).to_have_attribute("data-step", "12")
    page.locator(".jp-OutputArea-output", has=stats).first.screenshot(
        path=str(artifacts / "wired-training.png")
    )
    expect(cell.locator(".jp-OutputArea-output")).to_have_text("trained", timeout=CELL_TIMEOUT_MS)

    # Scrubbing redraws the panels from the browser's data.
    graph.locator(".nbviz-box[data-name='0']").click()
    expect(stats.locator(".nbviz-hp-title .nbviz-name")).to_have_text("0")
    slider = page.locator(".nbviz-slider").first
    before = stats.locator(".nbviz-hp-row[data-kind='weight'] td[data-stat='max']").first
    at_last = before.text_content()
    fill_before = rect.get_attribute("style")
    slider.locator("input.nbviz-range").fill("0")
    expect(stats.locator(".nbviz-hp-step")).to_have_text(re.compile(r"step 0$"))
    expect(before).not_to_have_text(at_last or "")
    assert rect.get_attribute("style") != fill_before
    # The banner selects the layer and step of the first NaN, in Python too.
    banner.locator(".nbviz-anomaly-go").click()
    expect(stats.locator(".nbviz-hp-title .nbviz-name")).to_have_text("2")
    assert append_and_run(page, "print(wired.selected, wired.step)").strip() == "2 12"
