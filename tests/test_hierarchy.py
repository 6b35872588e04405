"""module_hierarchy on the zoo of awkward models; every expected count is worked out by hand."""

from __future__ import annotations

import dataclasses
import json
import time

import models
import pytest
import torch
from torch import nn

from nbviz._protocol import LAYER_FIELDS, TENSOR_FIELDS
from nbviz.hierarchy import Hierarchy, LayerInfo, ParamInfo, module_hierarchy


def rows(h: Hierarchy) -> dict[str, LayerInfo]:
    return {row.name: row for row in h.layers}


def params(h: Hierarchy) -> dict[str, ParamInfo]:
    return {p.name: p for p in h.params}


def test_dataclass_fields_are_the_wire_contract() -> None:
    assert [f.name for f in dataclasses.fields(LayerInfo)] == list(LAYER_FIELDS)
    names = [f.name for f in dataclasses.fields(ParamInfo)]
    assert names == [*TENSOR_FIELDS, "tensor"]


def test_tied_weights_are_counted_once() -> None:
    model = models.TiedLM()
    h = module_hierarchy(model)
    assert h.names() == ["", "embed", "body", "head"]
    r = rows(h)
    embed, body = 10 * 4, 4 * 4 + 4
    assert (r["embed"].own_params, r["embed"].total_params) == (embed, embed)
    assert (r["body"].own_params, r["body"].total_params) == (body, body)
    # The head holds the embedding's weight: its own count, but the root counts it once.
    assert (r["head"].own_params, r["head"].total_params) == (embed, embed)
    assert r[""].total_params == r[""].trainable == embed + body == 60
    assert r[""].own_params == 0
    assert r[""].total_params == sum(p.numel() for p in model.parameters())
    assert r["embed"].shared
    assert r["head"].shared
    assert not r["body"].shared
    p = params(h)
    assert list(p) == ["embed.weight", "body.weight", "body.bias"]
    assert p["embed.weight"].shared_with == ("head.weight",)
    assert p["body.weight"].shared_with == ()
    assert p["embed.weight"].layer == 1
    assert p["embed.weight"].param == "weight"
    assert p["embed.weight"].shape == (10, 4)
    assert p["embed.weight"].tensor is model.embed.weight
    assert r["head"].tensors == r["embed"].tensors == (0,)
    assert r["body"].tensors == (1, 2)


def test_same_parameter_twice_in_one_module() -> None:
    model = models.same_param_twice()
    h = module_hierarchy(model)
    root = h.layers[0]
    assert (root.own_params, root.total_params) == (5, 5)
    assert root.total_params == sum(p.numel() for p in model.parameters())
    assert root.tensors == (0,)
    assert root.shared
    assert [(p.name, p.shared_with) for p in h.params] == [("a", ("b",))]


def test_aliased_module_is_a_leaf_without_counts() -> None:
    model = models.aliased()
    h = module_hierarchy(model)
    assert h.names() == ["", "a", "a.0", "a.1", "b", "b.0", "b.1"]
    assert [row.parent for row in h.layers] == [-1, 0, 1, 1, 0, 4, 4]
    assert [row.depth for row in h.layers] == [0, 1, 2, 2, 1, 2, 2]
    r = rows(h)
    shared, other = 3 * 2 + 2, 2 * 2 + 2
    assert r["a.0"].alias_of is None
    assert r["b.1"].alias_of == "a.0"
    assert r["b.1"].cls == "Linear"
    assert (r["b.1"].own_params, r["b.1"].total_params, r["b.1"].tensors) == (0, 0, ())
    assert r["a"].total_params == shared
    assert r["b"].total_params == other
    assert r[""].total_params == shared + other == 14
    assert r[""].total_params == sum(p.numel() for p in model.parameters())
    assert [p.name for p in h.params] == ["a.0.weight", "a.0.bias", "b.0.weight", "b.0.bias"]


def test_cycles_end_in_alias_rows() -> None:
    model = models.cycle()
    h = module_hierarchy(model)
    assert h.names() == ["", "0", "inner", "inner.back", "self"]
    r = rows(h)
    assert r["self"].alias_of == ""
    assert r["inner.back"].alias_of == ""
    assert r["inner.back"].parent == h.index("inner")
    assert r["inner.back"].depth == 2
    assert r[""].total_params == 2 * 2 + 2
    assert r[""].total_params == sum(p.numel() for p in model.parameters())


def test_lazy_modules_count_nothing_and_never_raise() -> None:
    h = module_hierarchy(models.lazy())
    r = rows(h)
    assert [r[name].lazy for name in ("", "0", "1", "2", "3")] == [False, True, True, True, False]
    assert [r[name].own_params for name in ("0", "1", "2")] == [0, 0, 0]
    assert r["3"].own_params == r[""].total_params == 2 * 3 + 3
    # LazyBatchNorm1d: running stats uninitialized, num_batches_tracked a real int64 scalar.
    assert r["2"].buffers == ("running_mean", "running_var", "num_batches_tracked")
    assert r["2"].buffer_elements == 1
    assert r["2"].dtypes == ("float32", "int64")
    p = params(h)
    lazy = [name for name, info in p.items() if info.lazy]
    assert lazy == ["0.weight", "0.bias", "1.weight", "1.bias", "2.weight", "2.bias"]
    assert all(p[name].shape == () for name in lazy)
    assert p["3.weight"].shape == (3, 2)
    assert not p["3.weight"].lazy


def test_containers_none_children_and_html_names() -> None:
    model = models.containers()
    h = module_hierarchy(model)
    names = ["", "blocks", "blocks.0", "blocks.1", "heads", "heads.cls", "heads.<b>x</b>"]
    assert h.names() == names
    r = rows(h)
    assert r["blocks"].cls == "ModuleList"
    assert r["heads"].cls == "ModuleDict"
    assert r["blocks.0"].own_params == 2 * 3 + 3
    assert r["blocks.1"].own_params == 3 * 1  # no bias
    assert len(r["blocks.1"].tensors) == 1
    assert r["blocks"].total_params == 9 + 3
    assert r["heads"].total_params == (1 * 2 + 2) + (1 * 1 + 1)
    assert r[""].total_params == 12 + 6 == sum(p.numel() for p in model.parameters())
    assert h.layer("heads.<b>x</b>").depth == 2
    assert "heads.<b>x</b>.weight" in params(h)


def test_frozen_and_partly_frozen() -> None:
    h = module_hierarchy(models.frozen())
    r = rows(h)
    first, weight, bias = 4 * 3 + 3, 3 * 2, 2
    assert (r["0"].trainable, r["0"].frozen) == (0, first)
    assert (r["1"].trainable, r["1"].frozen) == (weight, bias)
    assert (r[""].trainable, r[""].frozen) == (weight, first + bias)
    assert r[""].total_params == 23
    p = params(h)
    assert not p["0.weight"].requires_grad
    assert p["1.weight"].requires_grad
    text = h.to_text().splitlines()
    assert "[frozen]" in text[1]
    assert "[partly frozen]" in text[2]
    assert "[partly frozen]" in text[0]


def test_buffers() -> None:
    h = module_hierarchy(models.buffers())
    r = rows(h)
    assert r["0"].own_params == 2 * 1 * 3 * 3 + 2
    assert r["1"].own_params == 2 + 2
    assert r["1"].buffers == ("running_mean", "running_var", "num_batches_tracked")
    assert r["1"].buffer_elements == 2 + 2 + 1
    assert r["1"].dtypes == ("float32", "int64")
    assert r["1"].devices == ("cpu",)
    assert r[""].buffers == ()
    assert r[""].dtypes == ()
    assert r[""].total_params == 20 + 4
    assert "buffers: running_mean, running_var, num_batches_tracked (5)" in h.to_text()


def test_complex_and_bf16_dtypes() -> None:
    h = module_hierarchy(models.complex_valued())
    root = h.layers[0]
    assert root.own_params == 3 + 2
    assert root.dtypes == ("complex64", "float32")
    p = params(h)
    assert p["weight"].complex
    assert p["weight"].dtype == "complex64"
    assert not p["scale"].complex
    h = module_hierarchy(models.bf16())
    r = rows(h)
    assert r["0"].dtypes == ("bfloat16",)
    assert r["1"].dtypes == ("float32",)
    assert params(h)["0.weight"].dtype == "bfloat16"
    assert params(h)["0.weight"].device == "cpu"
    assert r[""].total_params == (4 * 4 + 4) + (4 * 2 + 2)


def test_nested_order_parents_and_totals() -> None:
    h = module_hierarchy(models.nested(10))
    assert len(h.layers) == 10 + 10  # ten Sequentials, ten Linears
    assert h.names()[:6] == ["", "0", "1", "1.0", "1.1", "1.1.0"]
    deepest = ".".join(["1"] * 9 + ["0"])
    assert h.layer(deepest).depth == 10
    assert h.layers[-1].name == deepest
    per_linear = 2 * 2 + 2
    assert h.layers[0].total_params == 10 * per_linear
    assert h.layer("1").total_params == 9 * per_linear
    assert h.layer(".".join(["1"] * 9)).total_params == per_linear


def test_deeper_than_the_recursion_limit() -> None:
    depth = 3000
    h = module_hierarchy(models.nested(depth))
    assert len(h.layers) == 2 * depth
    assert h.layers[0].total_params == depth * (2 * 2 + 2)


def test_mlp_of_500_layers() -> None:
    model = models.mlp(500, 64)
    start = time.perf_counter()
    h = module_hierarchy(model)
    elapsed = time.perf_counter() - start
    assert len(h.layers) == 501
    assert h.layers[0].total_params == 500 * (64 * 64 + 64) == 2_080_000
    assert h.layers[0].total_params == sum(p.numel() for p in model.parameters())
    assert all(row.total_params == 4160 and row.parent == 0 for row in h.layers[1:])
    assert len(h.params) == 1000
    assert elapsed < 0.5  # a smoke guard; it takes a few milliseconds


def test_names_index_layer() -> None:
    h = module_hierarchy(models.tied())
    assert h.index("") == 0
    assert h.index("head") == 3
    assert h.layer("body").cls == "Linear"
    assert h.layer("body").module == "torch.nn.modules.linear"
    with pytest.raises(KeyError, match="nope"):
        h.index("nope")
    with pytest.raises(KeyError):
        h.layer("embed.weight")  # a parameter, not a layer


@pytest.mark.parametrize("name", sorted(models.ZOO))
def test_wire_dicts_are_the_protocol_and_json(name: str) -> None:
    h = module_hierarchy(models.ZOO[name]())
    layers, tensors = h.wire_layers(), h.wire_tensors()
    assert len(layers) == len(h.layers)
    assert len(tensors) == len(h.params)
    assert all(list(row) == list(LAYER_FIELDS) for row in layers)
    assert all(list(row) == list(TENSOR_FIELDS) for row in tensors)
    assert json.loads(json.dumps(layers)) == layers
    assert json.loads(json.dumps(tensors)) == tensors


def test_wire_values() -> None:
    h = module_hierarchy(models.tied())
    assert h.wire_layers()[3] == {
        "name": "head",
        "parent": 0,
        "depth": 1,
        "cls": "Linear",
        "module": "torch.nn.modules.linear",
        "own_params": 40,
        "total_params": 40,
        "trainable": 40,
        "frozen": 0,
        "buffers": [],
        "buffer_elements": 0,
        "dtypes": ["float32"],
        "devices": ["cpu"],
        "lazy": False,
        "shared": True,
        "alias_of": None,
        "tensors": [0],
    }
    assert h.wire_tensors()[0] == {
        "name": "embed.weight",
        "layer": 1,
        "param": "weight",
        "shape": [10, 4],
        "dtype": "float32",
        "device": "cpu",
        "requires_grad": True,
        "lazy": False,
        "complex": False,
        "shared_with": ["head.weight"],
    }


def test_to_text_exactly() -> None:
    assert module_hierarchy(models.tied()).to_text() == (
        "(root) (TiedLM)  own 0  total 60\n"
        "  embed (Embedding)  own 40  total 40  [shared]\n"
        "  body (Linear)  own 20  total 20\n"
        "  head (Linear)  own 40  total 40  [shared]"
    )


@pytest.mark.parametrize("name", sorted(models.ZOO))
def test_to_text_is_deterministic(name: str) -> None:
    model = models.ZOO[name]()
    text = module_hierarchy(model).to_text()
    assert text == module_hierarchy(model).to_text()
    assert len(text.splitlines()) == len(module_hierarchy(model).layers)


def test_to_text_flags() -> None:
    assert "a.0 (Linear)  [alias of a.0]" not in module_hierarchy(models.aliased()).to_text()
    assert "    b.1 (Linear)  [alias of a.0]" in module_hierarchy(models.aliased()).to_text()
    assert "  self (Sequential)  [alias of (root)]" in module_hierarchy(models.cycle()).to_text()
    assert "  0 (LazyLinear)  own 0  total 0  [lazy]" in module_hierarchy(models.lazy()).to_text()
    assert "2,080,000" in module_hierarchy(models.mlp()).to_text().splitlines()[0]


def brute_force_total(h: Hierarchy, row: int) -> int:
    """Unique parameters over the subtree's non-alias rows, by identity: an independent oracle."""
    prefix = h.layers[row].name
    seen: dict[int, int] = {}
    for other, info in enumerate(h.layers):
        inside = other == row or prefix == "" or info.name.startswith(prefix + ".")
        if inside and info.alias_of is None:
            for index in info.tensors:
                p = h.params[index]
                seen[id(p.tensor)] = 0 if p.lazy else p.tensor.numel()
    return sum(seen.values())


@pytest.mark.parametrize("name", sorted(set(models.ZOO) - {"mlp"}))
def test_zoo_invariants(name: str) -> None:
    model = models.ZOO[name]()
    h = module_hierarchy(model)
    for i, row in enumerate(h.layers):
        assert row.total_params == row.trainable + row.frozen
        assert row.total_params == brute_force_total(h, i)
        if i:
            parent = h.layers[row.parent]
            assert row.parent < i
            assert parent.depth == row.depth - 1
            assert row.name.startswith(parent.name + "." if parent.name else "")
            assert parent.alias_of is None
    for k, p in enumerate(h.params):
        assert k in h.layers[p.layer].tensors
        assert p.name == f"{h.layers[p.layer].name}.{p.param}".lstrip(".")
    if name != "lazy":
        assert h.layers[0].total_params == sum(p.numel() for p in model.parameters())


def test_every_parameter_appears_once() -> None:
    model = models.tied()
    h = module_hierarchy(model)
    assert {id(p.tensor) for p in h.params} == {id(p) for p in model.parameters()}
    assert len(h.params) == len(list(model.parameters()))


def test_device_strings() -> None:
    layer = nn.Linear(2, 2)
    h = module_hierarchy(layer)
    assert h.layers[0].devices == ("cpu",)
    if torch.cuda.is_available():
        h = module_hierarchy(layer.cuda())
        assert h.layers[0].devices == ("cuda:0",)
        assert h.params[0].device == "cuda:0"
