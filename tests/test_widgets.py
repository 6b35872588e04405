"""Widget state and message handlers, called directly as the comm layer would."""

from __future__ import annotations

import gc
from typing import Any

import ipywidgets
import numpy as np
import pytest
import torch
from torch import nn

import nbviz
from nbviz import _protocol
from nbviz._serialization import array_from_wire
from nbviz.demo import demo_model
from nbviz.widgets import VizState

STAT = {name: i for i, name in enumerate(_protocol.STAT_FIELDS)}


def request(viz: nbviz.Viz, content: Any) -> tuple[dict[str, Any], list[bytes]]:
    """Sends `content` as the browser would, through a view's comm handler; returns the reply."""
    sent: list[tuple[dict[str, Any], list[bytes]]] = []
    view = viz.histograms
    view.send = lambda reply, buffers=None: sent.append((reply, list(buffers or [])))
    view._answer(view, content, [])
    assert len(sent) == 1
    return sent[0]


def test_show_assembles_linked_views_over_one_state() -> None:
    viz = nbviz.show(demo_model())
    parts = [viz.picker, viz.structure, viz.histograms, viz.slider, viz.flow]
    assert [p.view for p in parts] == ["picker", "structure", "histogram", "slider", "flow"]
    assert all(p.state is viz.state for p in parts)
    assert viz.layers[:3] == ["", "features", "features.conv1"]
    # Views compose with ordinary layouts and keep pointing at the same model.
    box = ipywidgets.HBox([nbviz.HistogramView(viz.state), nbviz.LayerPicker(viz.state)])
    refs = {child.get_state()["state"] for child in box.children}
    assert refs == {f"IPY_MODEL_{viz.state.model_id}"}


def test_selected_round_trips_and_rejects_unknown_names() -> None:
    viz = nbviz.show(demo_model(), selected="head.fc1")
    assert viz.selected == "head.fc1"
    viz.selected = "features.conv2"
    assert viz.state.selected == "features.conv2"
    # What the browser sends lands in the same trait.
    viz.state.set_state({"selected": "head"})
    assert viz.selected == "head"
    with pytest.raises(ValueError, match=r"No layer named 'features.conv3'.*'features.conv2'"):
        viz.selected = "features.conv3"
    assert viz.selected == "head", "a rejected name leaves the selection as it was"
    viz.selected = None
    assert viz.state.selected is None


def test_unknown_selection_is_also_a_trait_error() -> None:
    viz = nbviz.show(nn.Linear(2, 2))
    with pytest.raises(nbviz.UnknownLayerError):
        viz.state.selected = "nope"


def test_show_rejects_what_is_not_a_module() -> None:
    with pytest.raises(TypeError, match=r"torch\.nn\.Module, not list"):
        nbviz.show([nn.Linear(2, 2)])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        nbviz.show(nn.Linear(2, 2), colour="red")


def test_state_statistics_match_numpy() -> None:
    model = demo_model()
    state = VizState(nbviz.module_hierarchy(model))
    stats = array_from_wire(state.stats)
    params = dict(model.named_parameters())
    assert stats.shape == (len(params), len(_protocol.STAT_FIELDS))
    for row, tensor_row in zip(stats, state.tensors, strict=True):
        values = params[tensor_row["name"]].detach().numpy().astype(np.float64).ravel()
        assert row[STAT["numel"]] == values.size
        np.testing.assert_allclose(row[STAT["min"]], values.min())
        np.testing.assert_allclose(row[STAT["max"]], values.max())
        np.testing.assert_allclose(row[STAT["mean"]], values.mean(), rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(row[STAT["std"]], values.std(), rtol=1e-6)
        assert row[STAT["zeros"]] == np.count_nonzero(values == 0)


def test_exact_histogram_request_matches_numpy() -> None:
    model = nn.Linear(300, 400)  # 120,000 weights: more than the sample the view starts with
    viz = nbviz.show(model)
    index = [t["name"] for t in viz.state.tensors].index("weight")
    assert array_from_wire(viz.state.hist["sample"])[index] < 120_000
    reply, buffers = request(viz, {"type": "exact_histogram", "id": "r1", "tensor": index})
    assert reply["ok"] is True
    assert reply["id"] == "r1"
    assert reply["type"] == _protocol.RESPONSE_TYPE
    result = reply["result"]
    counts = np.frombuffer(buffers[result["counts"]["buffer"]], dtype="<f8")
    edges = result["lo"] + result["width"] * np.arange(_protocol.HIST_BINS + 1)
    expected, _ = np.histogram(model.weight.detach().numpy(), bins=edges)
    np.testing.assert_array_equal(counts, expected)
    assert result["sample"] == 120_000


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ({"type": "exact_histogram", "id": "a", "tensor": 99}, "no tensor with index 99"),
        ({"type": "exact_histogram", "id": "a", "tensor": "0"}, "must be an integer"),
        ({"type": "exact_histogram", "id": "a"}, "must be an integer"),
        ({"type": "launch", "id": "a"}, "unknown request type 'launch'"),
        ({"type": "exact_histogram", "tensor": 0}, "without a string 'id'"),
        ("not a dict", "without a string 'id'"),
    ],
)
def test_bad_requests_get_an_error_reply(content: Any, error: str) -> None:
    viz = nbviz.show(nn.Linear(2, 2))
    reply, buffers = request(viz, content)
    assert reply["ok"] is False
    assert error in reply["error"]
    assert buffers == []


def test_lazy_and_deleted_tensors_get_an_error_reply() -> None:
    viz = nbviz.show(nn.Sequential(nn.LazyLinear(4)))
    reply, _ = request(viz, {"type": "exact_histogram", "id": "x", "tensor": 0})
    assert "lazy" in reply["error"]

    model = nn.Linear(3, 3)
    viz = nbviz.show(model, record=False)  # a recorder would keep the model alive
    del model
    gc.collect()
    reply, _ = request(viz, {"type": "exact_histogram", "id": "y", "tensor": 0})
    assert reply == {"type": "response", "id": "y", "ok": False,
                     "error": "weight no longer exists: the model was deleted"}  # fmt: skip


def test_step_is_validated() -> None:
    viz = nbviz.show(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="out of range"):
        viz.state.step = 3


def test_show_does_not_change_the_model() -> None:
    model = demo_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    model.eval()
    nbviz.show(model)
    assert not model.training
    assert torch.equal(rng, torch.get_rng_state())
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])


def test_example_input_adds_output_shapes() -> None:
    viz = nbviz.show(demo_model(), torch.randn(2, 1, 16, 16))
    assert viz.state.outputs["head.fc1"] == ["2×128"]
    assert nbviz.show(demo_model()).state.outputs == {}
    with pytest.raises(TypeError, match="needs an example_input"):
        nbviz.show(demo_model(), forward_kwargs={"mode": "x"})


def test_example_input_adds_the_dataflow_graph_from_one_forward() -> None:
    model = demo_model()
    calls: list[int] = []
    model.register_forward_pre_hook(lambda _m, _a: calls.append(1))
    viz = nbviz.show(model, torch.randn(2, 1, 16, 16), record=False)
    assert len(calls) == 1  # the graph and the output shapes come from the same forward
    wire = viz.state.graph
    assert wire == nbviz.trace(demo_model(), torch.randn(2, 1, 16, 16)).to_wire()
    fc1 = next(n for n in wire["nodes"] if n["name"] == "head.fc1")
    assert fc1["shape"] == [2, 128]
    assert viz.state.outputs["head.fc1"] == ["2×128"]
    assert nbviz.show(demo_model(), record=False).state.graph is None


def test_a_failing_example_shows_the_partial_graph_and_the_error() -> None:
    model = demo_model()
    viz = nbviz.show(model, torch.randn(2, 3, 16, 16), record=False)  # conv1 takes 1 channel
    assert viz.state.graph["error"].startswith("RuntimeError")
    assert any(n["name"] == "features.conv1" for n in viz.state.graph["nodes"])
    (warning,) = viz.state.warnings
    assert "in (root) > features > features.conv1: RuntimeError" in warning


def test_the_autograd_graph_is_drawn_on_request() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    before = [p.detach().clone() for p in model.parameters()]
    viz = nbviz.show(model, torch.randn(5, 3), record=False)
    reply, buffers = request(viz, {"type": "autograd_graph", "id": "a"})
    assert reply["ok"], reply
    svg = reply["result"]["svg"]
    assert svg.lstrip().startswith(("<?xml", "<svg", "<!--"))
    assert "0.weight" in svg
    assert "2.bias" in svg
    assert buffers == []
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    reply, _ = request(nbviz.show(model, record=False), {"type": "autograd_graph", "id": "b"})
    assert reply["ok"] is False
    assert "no example input" in reply["error"]


def test_in_a_notebook_cell_the_statistics_come_once_the_cell_has_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    callbacks: list[Any] = []

    class Shell:
        class events:  # noqa: N801 (IPython's attribute)
            register = staticmethod(lambda event, f: callbacks.append((event, f)))
            unregister = staticmethod(lambda event, f: callbacks.remove((event, f)))

        class kernel:  # noqa: N801
            get_parent = staticmethod(lambda: {"header": {"msg_type": "execute_request"}})

    monkeypatch.setattr("IPython.get_ipython", lambda: Shell)
    viz = nbviz.show(demo_model(), record=False)
    assert viz.state.stats == {}  # not on the way to the first paint
    [(event, after)] = callbacks
    assert event == "post_run_cell"
    after(None)
    assert callbacks == []
    stats = array_from_wire(viz.state.stats)
    assert stats.shape == (len(viz.state.tensors), len(_protocol.STAT_FIELDS))
    computed = viz.state.stats
    viz.state.ensure_summaries()  # once only
    assert viz.state.stats is computed
