"""The quickstart notebook runs headless and stores the widget's state in the file."""

from __future__ import annotations

import pathlib

import nbclient
import nbformat
import pytest

NOTEBOOK = pathlib.Path(__file__).resolve().parent.parent / "notebooks" / "quickstart.ipynb"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


@pytest.mark.slow
def test_quickstart_runs_and_stores_widget_state() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)  # type: ignore[no-untyped-call]
    client = nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3", store_widget_state=True,
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )  # fmt: skip
    client.execute()

    views = [
        output["data"][WIDGET_VIEW]["model_id"]
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if WIDGET_VIEW in output.get("data", {})
    ]
    assert len(views) == 1, "the widget cell shows exactly one widget"
    models = notebook.metadata["widgets"][WIDGET_STATE]["state"]
    shown = models[views[0]]["state"]
    assert shown["_model_name"] == "VBoxModel"
    # The stored state holds the shared model with the hierarchy and the last selection.
    states = [m["state"] for m in models.values() if "layers" in m["state"]]
    assert len(states) == 1
    names = [row["name"] for row in states[0]["layers"]]
    assert names[:3] == ["", "features", "features.conv1"]
    assert states[0]["selected"] == "features.conv2"
    printed = "".join(
        output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
        for output in cell.outputs
    )  # fmt: skip
    assert "selected: features.conv2" in printed
    # Five views, each pointing at the shared model.
    views_of_state = [m for m in models.values() if m["state"].get("view")]
    assert sorted(m["state"]["view"] for m in views_of_state) == [
        "flow", "histogram", "picker", "slider", "structure",
    ]  # fmt: skip
