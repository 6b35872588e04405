"""`viz.export` writes what the widget shows, in a real JupyterLab: the user opens a group,
unfolds repeated blocks and picks an overlay metric in the browser; the next cell exports the
structure diagram with exactly those boxes and the browser's own fill colours, and the kernel's
state says the same. Set from Python, the expansion shows in the browser."""

from __future__ import annotations

import pathlib
import re
import xml.etree.ElementTree as ET

import pytest
from conftest import EMPTY_NOTEBOOK
from jupyter_server import Server
from notebook_ui import CELL_TIMEOUT_MS, append_and_run, append_and_start, open_notebook
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

LAYOUT_MS = 20_000  # the worker's first ELK call is slow on a cold, shared machine
SVG = "{http://www.w3.org/2000/svg}"

SETUP = """\
import torch, nbviz
from torch import nn
torch.manual_seed(0)

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
        self.blocks = nn.Sequential(*[Block() for _ in range(4)])
        self.head = nn.Linear(8, 2)
    def forward(self, x):
        return self.head(self.blocks(self.stem(x)))

model = Net()
viz = nbviz.show(model, torch.randn(3, 4), every=1)
opt = torch.optim.SGD(model.parameters(), lr=0.01)
for _ in range(3):
    opt.zero_grad(); model(torch.randn(3, 4)).pow(2).sum().backward(); opt.step()
viz"""


def rgb_hex(css: str) -> str:
    """'rgb(1, 2, 3)' -> '#010203'."""
    r, g, b = (int(x) for x in re.findall(r"\d+", css)[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


def exported_boxes(path: pathlib.Path) -> dict[str, str | None]:
    """First text line of each Graphviz node -> its fill."""
    boxes: dict[str, str | None] = {}
    for g in ET.parse(path).getroot().iter(f"{SVG}g"):
        texts = [t.text or "" for t in g.iter(f"{SVG}text")]
        if g.get("class") == "node" and texts:
            shapes = [*g.iter(f"{SVG}path"), *g.iter(f"{SVG}polygon")]
            boxes[texts[0]] = next((s.get("fill") for s in shapes if s.get("fill")), None)
    return boxes


def test_export_writes_the_diagram_the_browser_shows(
    lab: Server, page: Page, artifacts: pathlib.Path
) -> None:
    open_notebook(page, lab.url, "lab", EMPTY_NOTEBOOK)
    append_and_start(page, SETUP)
    view = page.locator(".nbviz-structure")
    expect(view.locator(".nbviz-box[data-name='blocks']")).to_be_visible(timeout=CELL_TIMEOUT_MS)

    # The user opens `blocks`, unfolds its four identical blocks and colours by gradient norm.
    view.locator("[data-name='blocks'] [data-toggle]").click()
    fold = view.locator(".nbviz-box[data-kind='fold']")
    expect(fold).to_contain_text("Block ×4", timeout=LAYOUT_MS)
    fold.click()
    expect(view.locator(".nbviz-box[data-name='blocks.2']")).to_be_visible(timeout=LAYOUT_MS)
    view.locator("select.nbviz-overlay-metric").select_option("grad_norm")
    expect(view.locator(".nbviz-overlay-legend .nbviz-legend")).to_be_visible(timeout=LAYOUT_MS)
    view.locator(".nbviz-toolbar button", has_text="Fit").click()  # boxes are drawn when in view
    expect(view.locator(".nbviz-box[data-name='head']")).to_be_visible(timeout=LAYOUT_MS)
    stem = view.locator(".nbviz-box[data-name='stem'] > .nbviz-box-rect")
    expect(stem).to_have_attribute("style", re.compile(r"fill: rgb"), timeout=LAYOUT_MS)
    # Grey until the run's data reaches the browser (the writer commits every half second).
    no_data = re.compile(r"fill: rgb\(200, 200, 200\)")
    expect(stem).not_to_have_attribute("style", no_data, timeout=CELL_TIMEOUT_MS)
    browser_fills = {
        name: rgb_hex(
            view.locator(f".nbviz-box[data-name='{name}'] > .nbviz-box-rect").evaluate(
                "el => getComputedStyle(el).fill"
            )
        )
        for name in ("stem", "head")
    }
    view.locator(".nbviz-graph").screenshot(path=str(artifacts / "export-browser.png"))

    # The kernel's state says what the browser shows, and the export draws it.
    state = append_and_run(
        page,
        'out = viz.export("shown.svg", view="structure")\n'
        "print(viz.expanded, viz.state.unfolded, viz.overlay, out.name)",
    ).strip()
    assert state == "['#0', 'blocks#0'] ['blocks.0#0'] grad_norm shown.svg"
    exported = exported_boxes(lab.root / "shown.svg")
    assert {"0", "1", "2", "3", "stem", "head"} <= set(exported)  # the open group's children
    assert "Block ×4" not in exported
    for name, fill in browser_fills.items():
        assert exported[name] == fill, name  # the overlay colour the browser painted
    assert browser_fills["stem"] != browser_fills["head"]
    texts = [t.text or "" for t in ET.parse(lab.root / "shown.svg").getroot().iter(f"{SVG}text")]
    assert any(t.startswith("gradient norm at step") for t in texts)
    assert "blocks · Sequential" in texts

    # Set from Python: the browser opens the block and its children show.
    append_and_run(page, 'viz.expanded = ["blocks.1"]; viz.overlay = None; print("ok")')
    expect(view.locator(".nbviz-box[data-name='blocks.1.fc']")).to_be_visible(timeout=LAYOUT_MS)
    expect(view.locator(".nbviz-overlay-legend .nbviz-legend")).to_have_count(0)
    expect(view.locator("select.nbviz-overlay-metric")).to_have_value("")
