"""The wire contract: Python and TypeScript sides agree, and arrays survive the trip."""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
from typing import Any

import ipywidgets
import numpy as np
import pytest
from ipywidgets.widgets.widget import _remove_buffers

from nbviz import _protocol
from nbviz._serialization import array_from_wire, array_to_wire

REPO = pathlib.Path(__file__).resolve().parent.parent


def python_contract() -> dict[str, Any]:
    constants = {k: v for k, v in vars(_protocol).items() if k.isupper()}
    contract: dict[str, Any] = json.loads(json.dumps(constants))
    return contract


def typescript_contract(tmp_path: pathlib.Path) -> dict[str, Any]:
    """Bundles js/src/protocol.ts with the project's esbuild and prints its PROTOCOL in node."""
    esbuild = REPO / "node_modules" / ".bin" / "esbuild"
    node = shutil.which("node")
    assert esbuild.exists(), "node_modules missing: run `npm ci`"
    assert node is not None
    bundle = tmp_path / "protocol.cjs"
    subprocess.run(
        [str(esbuild), "js/src/protocol.ts", "--bundle", "--format=cjs", "--platform=node",
         f"--outfile={bundle}", "--log-level=warning"],
        cwd=REPO, check=True,
    )  # fmt: skip
    script = f"console.log(JSON.stringify(require({str(bundle)!r}).PROTOCOL))"
    out = subprocess.run([node, "-e", script], check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def test_typescript_mirrors_python(tmp_path: pathlib.Path) -> None:
    python, typescript = python_contract(), typescript_contract(tmp_path)
    assert sorted(typescript) == sorted(python), "constants missing on one side"
    for name, value in python.items():
        assert typescript[name] == value, f"{name} differs between _protocol.py and protocol.ts"


def test_contract_is_consistent() -> None:
    assert len(set(_protocol.STAT_FIELDS)) == len(_protocol.STAT_FIELDS)
    assert len(set(_protocol.LAYER_FIELDS)) == len(_protocol.LAYER_FIELDS)
    assert _protocol.RESPONSE_TYPE not in _protocol.REQUEST_TYPES


@pytest.mark.parametrize("dtype", ["float64", "float32", "int64", "uint32", "int32", "uint8"])
def test_array_round_trip_through_widget_buffers(dtype: str) -> None:
    """An array goes out as one binary buffer, not JSON numbers, and comes back identical."""
    rng = np.random.default_rng(0)
    array = (rng.normal(size=(7, 5)) * 100).astype(dtype)
    state = {"stats": array_to_wire(array[:, 1:])}  # a non-contiguous slice
    clean, paths, buffers = _remove_buffers(state)
    assert paths == [["stats", "view"]]
    assert "view" not in clean["stats"]
    assert json.loads(json.dumps(clean))["stats"]["shape"] == [7, 4]
    received = {"view": memoryview(buffers[0]), **clean["stats"]}
    np.testing.assert_array_equal(array_from_wire(received), array[:, 1:])


def test_big_endian_input_goes_out_little_endian() -> None:
    array = np.arange(6, dtype=">f8")
    wire = array_to_wire(array)
    assert wire["dtype"] == "float64"
    assert np.frombuffer(wire["view"], dtype="<f8").tolist() == [0, 1, 2, 3, 4, 5]


def test_widget_serialization_sends_buffers() -> None:
    import torch

    from nbviz.hierarchy import module_hierarchy
    from nbviz.widgets import VizState

    state = VizState(module_hierarchy(torch.nn.Linear(3, 2)))
    _, _, buffers = _remove_buffers(state.get_state())
    # stats + four histogram arrays
    assert len(buffers) == 1 + len(_protocol.HIST_FIELDS)
    assert isinstance(state, ipywidgets.Widget)
