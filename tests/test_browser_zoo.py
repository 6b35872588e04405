"""Every model of the trace zoo drawn by the structure diagram in headless Chromium.

For each model: `nbviz.trace(...).to_wire()` is drawn on a static page that runs the widget's
diagram code (tests/static_page.py, js/tests/browser/zoo-page.ts); the test checks, against the
wire graph itself, that every top-level node is on screen (its own box, or inside a fold of
identical blocks whose members it names), that the root's edges are exactly the distinct pairs
of boxes the wire edges connect, that the trace's warnings and error are listed, that every
fold unfolds into its members and every top-level group opens on a click of its toggle, showing
each of its children, and closes again; with no page error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from playwright.sync_api import Page, expect
from static_page import static_page
from torch import nn
from trace_models import ZOO

import nbviz

pytestmark = pytest.mark.browser

Wire = dict[str, Any]


class ZooPage:
    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)

    def call(self, method: str, *args: object) -> Any:
        return self.page.evaluate("([m, args]) => window.nbvizZoo[m](...args)", [method, args])


@pytest.fixture(scope="module")
def zoo_page(chromium: Any) -> Iterator[ZooPage]:
    with static_page("js/tests/browser/zoo-page.ts") as url:
        context = chromium.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        zoo = ZooPage(page)
        page.goto(url)
        page.wait_for_function("window.nbvizZoo !== undefined")
        yield zoo
        context.close()


def traced(name: str) -> Wire:
    case = ZOO[name]()
    wire: Wire = json.loads(
        json.dumps(nbviz.trace(case.model, *case.args, **case.kwargs).to_wire())
    )
    return wire


def check_level(wire: Wire, parent: int, boxes: list[dict[str, Any]]) -> dict[int, str]:
    """Asserts that `boxes` show each child of `parent` exactly once; returns node -> box."""
    nodes = wire["nodes"]
    groups = {n["parent"] for n in nodes if n["parent"] >= 0}
    kids = [n for n in nodes if n["parent"] == parent]
    shown: dict[int, str] = {}
    for box in boxes:
        if box["box"].startswith("n"):
            node = nodes[int(box["box"][1:])]
            assert box["name"] == (node["name"] if node["kind"] == "module" else None)
            expected = ("group", "open") if node["id"] in groups else ("leaf",)
            assert box["kind"] in expected, (box, node)
            members = [node]
        else:
            # a fold: "Class ×n", named after its first member (key "name#call")
            assert box["kind"] == "fold", box
            cls, count = re.fullmatch(r"(.+) ×(\d+)", box["title"]).groups()  # type: ignore[union-attr]
            first_name, call = box["box"][2:].rsplit("#", 1)
            start = next(
                i for i, n in enumerate(kids) if n["name"] == first_name and n["call"] == int(call)
            )
            members = kids[start : start + int(count)]
            assert len(members) == int(count) >= 2
            assert {(n["kind"], n["cls"], n["sig"]) for n in members} == {
                ("module", cls, members[0]["sig"])
            }
        for node in members:
            assert node["id"] not in shown, f"{node['name']} drawn twice"
            shown[node["id"]] = box["box"]
    assert sorted(shown) == [n["id"] for n in kids], "children missing from the diagram"
    return shown


def root_edges(wire: Wire, shown: dict[int, str]) -> int:
    """Distinct pairs of root boxes that wire edges connect (edges inside one box dropped)."""
    parent = {n["id"]: n["parent"] for n in wire["nodes"]}

    def top(i: int) -> int:
        while parent[i] >= 0:
            i = parent[i]
        return i

    pairs = {(shown[top(e["src"])], shown[top(e["dst"])]) for e in wire["edges"]}
    return sum(1 for a, b in pairs if a != b)


def expected_notes(wire: Wire) -> list[str]:
    lines = [
        f"{w['module']}: {w['message']}" if w["module"] else w["message"] for w in wire["warnings"]
    ]
    return ([wire["error"]] if wire["error"] else []) + lines


def exercise(
    zoo: ZooPage, wire: Wire, parent: int, level: str, boxes: list[dict[str, Any]], nested: bool
) -> None:
    """Unfolds each fold of a level, then closes and opens (or opens and closes) each group.
    A group open from the start (a model wrapping everything) has its own groups exercised."""
    for fold in [b["box"] for b in boxes if b["kind"] == "fold"]:
        after = zoo.call("unfold", fold, level)
        shown = check_level(wire, parent, after["boxes"])
        assert fold not in shown.values()
        boxes = after["boxes"]
    for box in boxes:
        if box["kind"] not in ("group", "open"):
            continue
        group = int(box["box"][1:])
        if box["kind"] == "open" and nested:
            inside = zoo.call("level", box["box"])["boxes"]
            check_level(wire, group, inside)
            exercise(zoo, wire, group, box["box"], inside, nested=False)
        states = ["open", "group"] if box["kind"] == "group" else ["group", "open"]
        for state in states:
            toggled = zoo.call("toggle", box["box"])
            assert toggled["kind"] == state, (box, toggled["kind"])
            assert toggled["status"] == ""
            if state == "open":
                check_level(wire, group, toggled["boxes"])
            else:
                assert toggled["boxes"] == []


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_model_draws_and_opens(zoo_page: ZooPage, name: str) -> None:
    wire = traced(name)
    zoo_page.errors.clear()
    drawn = zoo_page.call("mount", wire)
    assert drawn["status"] == "", drawn["status"]
    shown = check_level(wire, -1, drawn["boxes"])
    assert drawn["notes"] == expected_notes(wire)
    assert drawn["notesHidden"] == (drawn["notes"] == [])
    if not any(b["kind"] == "open" for b in drawn["boxes"]):
        assert drawn["edges"] == root_edges(wire, shown)

    exercise(zoo_page, wire, -1, "root", drawn["boxes"], nested=True)
    assert zoo_page.errors == []


def test_keyboard_moves_opens_closes_and_selects(zoo_page: ZooPage) -> None:
    """Arrow keys move between boxes, selecting modules as a click would; Enter unfolds the
    blocks and opens one, Escape goes to its container, Enter closes it."""
    zoo_page.errors.clear()
    zoo_page.call("mount", traced("gpt"))
    page = zoo_page.page
    focused = page.locator(".nbviz-box.is-focused")

    def press(key: str) -> None:
        page.keyboard.press(key)
        zoo_page.call("idle")

    page.focus(".nbviz-graph-svg")
    press("ArrowDown")
    expect(focused).to_have_count(1)
    assert focused.get_attribute("data-box") == "n0"  # the input, first in the flow
    seen = []
    while focused.get_attribute("data-kind") != "fold":
        press("ArrowDown")
        seen.append(focused.get_attribute("data-name"))
        assert len(seen) < 10, f"no fold reached going down: {seen}"
    modules = [name for name in seen if name]
    assert "wte" in modules or "wpe" in modules, seen
    assert zoo_page.call("selected") == "blocks.0"  # a fold is named after its first block
    expect(focused).to_have_class(re.compile(r"\bis-selected\b"))

    press("Enter")  # unfold: the focus goes to the first block
    expect(focused).to_have_attribute("data-name", "blocks.0")
    press("ArrowDown")
    expect(focused).to_have_attribute("data-name", "blocks.1")
    assert zoo_page.call("selected") == "blocks.1"
    press("Enter")  # open: the focus goes inside
    expect(page.locator(".nbviz-box[data-name='blocks.1']")).to_have_attribute("data-kind", "open")
    expect(focused).to_have_attribute("data-name", re.compile(r"^blocks\.1\."))
    press("Escape")  # to the enclosing group, which Enter closes
    expect(focused).to_have_attribute("data-name", "blocks.1")
    press("Enter")
    expect(focused).to_have_attribute("data-kind", "group")
    press("ArrowUp")
    expect(focused).to_have_attribute("data-name", "blocks.0")
    assert zoo_page.errors == []


def test_a_group_of_1200_children_opens_a_page_at_a_time(zoo_page: ZooPage) -> None:
    """More than 1,000 children: pages of 1,000 that open (and close) one at a time."""
    layers: list[nn.Module] = [nn.Linear(4, 4) if i % 2 == 0 else nn.ReLU() for i in range(1200)]
    wire: Wire = json.loads(
        json.dumps(nbviz.trace(nn.Sequential(*layers), torch.randn(2, 4)).to_wire())
    )
    (seq,) = [n["id"] for n in wire["nodes"] if n["kind"] == "module" and n["name"] == ""]
    kids = [n["id"] for n in wire["nodes"] if n["parent"] == seq]
    assert len(kids) == 1200
    zoo_page.errors.clear()
    zoo_page.call("mount", wire)
    pages = zoo_page.call("level", f"n{seq}")["boxes"]
    assert [(b["kind"], b["title"]) for b in pages] == [
        ("page", "items 1\u20131000 of 1200"),
        ("page", "items 1001\u20131200 of 1200"),
    ]
    second = pages[1]["box"]
    opened = zoo_page.call("toggle", second)
    assert opened["kind"] == "open"
    assert [b["box"] for b in opened["boxes"]] == [f"n{i}" for i in kids[1000:]]
    assert zoo_page.call("level", pages[0]["box"])["boxes"] == []  # the first stays closed
    assert zoo_page.call("toggle", second)["kind"] == "page"
    assert zoo_page.errors == []
