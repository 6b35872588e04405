"""nbviz.trace against independent references: the model's own output, per-module hooks on a
deep copy, the model's state before the trace, hand-written expectations and golden texts."""

from __future__ import annotations

import copy
import itertools
import json
import pathlib
import threading
import xml.etree.ElementTree as ET
from collections import defaultdict
from typing import Any

import models
import pytest
import torch
import trace_models
from torch import nn
from trace_models import ZOO, Case

import nbviz
from nbviz.dataflow import Graph, GraphvizMissingError, autograd_svg, trace, trace_call
from nbviz.dataflow.values import leaves, op_name

GOLDEN = pathlib.Path(__file__).parent / "golden" / "trace"
NODE_KEYS = {"id", "kind", "name", "cls", "parent", "call", "params", "shape", "dtype", "sig"}

# What each zoo model must warn about, and nothing else: (kind, module).
EXPECTED_WARNINGS: dict[str, set[tuple[str, str]]] = defaultdict(set) | {
    "moe": {("not_run", "experts.3")},
    "transformer_train": {
        ("bypassed_hooks", "layers.0.self_attn.out_proj"),
        ("bypassed_hooks", "layers.1.self_attn.out_proj"),
    },
    "transformer_eval": {
        ("bypassed_hooks", "layers.0.self_attn.out_proj"),
        ("bypassed_hooks", "layers.1.self_attn.out_proj"),
    },
    "multihead_attention": {("bypassed_hooks", "out_proj")},
    "dataclass_output": {("non_tensor_output", "")},
    "branchy": {("not_run", "negative")},
    "created_in_forward": {("unregistered", "<unregistered>.Linear#0")},
    "plain_list": {
        ("unregistered", "<unregistered>.Linear#0"),
        ("unregistered", "<unregistered>.Sequential#0"),
    },
    "direct_forward": {("bypassed_hooks", "block"), ("bypassed_hooks", "fc")},
    "tied_functional": {("bypassed_hooks", "wte")},
    "raising": {("error", "1"), ("not_run", "1.linear"), ("not_run", "2")},
}


def run(name: str) -> tuple[Case, Graph]:
    case = ZOO[name]()
    return case, trace_call(case.model, case.args, case.kwargs)


def reference_calls(case: Case) -> tuple[Any, dict[str, list[tuple[int, ...] | None]]]:
    """Runs a deep copy with per-module hooks: the output and each module's output shapes."""
    model = copy.deepcopy(case.model)
    calls: dict[str, list[tuple[int, ...] | None]] = defaultdict(list)
    handles = []
    for name, module in model.named_modules():

        def hook(_m: nn.Module, _a: Any, out: Any, name: str = name) -> None:
            first = next(
                (leaf for _, leaf in leaves(out, "") if isinstance(leaf, torch.Tensor)), None
            )
            calls[name].append(None if first is None else tuple(first.shape))

        handles.append(module.register_forward_hook(hook))
    torch.manual_seed(1)
    try:
        output = model(*copy.deepcopy(case.args), **copy.deepcopy(case.kwargs))
    except RuntimeError:
        output = None
    for handle in handles:
        handle.remove()
    return output, calls


@pytest.fixture
def overwrite_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--overwrite-golden"))


@pytest.mark.parametrize("name", sorted(ZOO))
def test_golden_text(name: str, overwrite_golden: bool) -> None:
    _, graph = run(name)
    text = graph.to_text()
    assert text == run(name)[1].to_text(), "to_text must be deterministic"
    path = GOLDEN / f"{name}.txt"
    if overwrite_golden:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"{path} is missing: run pytest with --overwrite-golden"
    assert text == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(ZOO))
def test_warnings_are_exactly_the_expected_ones(name: str) -> None:
    _, graph = run(name)
    assert {(w.kind, w.module) for w in graph.warnings} == EXPECTED_WARNINGS[name]


@pytest.mark.parametrize("name", sorted(set(ZOO) - {"compiled", "compiled_child", "raising"}))
def test_outputs_and_module_calls_match_an_independent_run(name: str) -> None:
    case = ZOO[name]()
    expected_output, expected_calls = reference_calls(case)
    graph = trace_call(case.model, case.args, case.kwargs)
    assert graph.error is None
    expected = [
        (path, tuple(t.shape), t.dtype)
        for path, t in leaves(expected_output, "out")
        if isinstance(t, torch.Tensor)
    ]
    outputs = [n for n in graph.nodes if n.kind == "output"]
    assert [(n.name, n.shape, n.dtype) for n in outputs] == [
        (path, shape, str(dtype).removeprefix("torch.")) for path, shape, dtype in expected
    ]
    got: dict[str, list[tuple[int, ...] | None]] = defaultdict(list)
    for node in graph.nodes:
        if node.kind == "module" and not node.name.startswith("<unregistered>"):
            got[node.name].append(node.shape)
    assert dict(got) == dict(expected_calls)


@pytest.mark.parametrize("name", sorted(ZOO))
def test_model_is_left_as_it_was(name: str) -> None:
    case = ZOO[name]()
    if name == "lazy":
        pytest.skip("a forward materializes lazy modules: test_lazy_modules checks that")
    before = copy.deepcopy(case.model.state_dict())
    flags = [m.training for m in case.model.modules()]
    torch.manual_seed(7)
    rng = torch.get_rng_state()
    trace_call(case.model, case.args, case.kwargs)
    assert torch.equal(torch.get_rng_state(), rng)
    after = case.model.state_dict()
    assert before.keys() == after.keys()
    for key, value in before.items():
        assert torch.equal(value, after[key]), key
    assert [m.training for m in case.model.modules()] == flags
    assert not torch.nn.modules.module._global_forward_hooks
    assert not torch.nn.modules.module._global_forward_pre_hooks
    assert torch._C._len_torch_function_stack() == 0


@pytest.mark.parametrize("name", sorted(ZOO))
def test_wire_format(name: str) -> None:
    _, graph = run(name)
    wire = json.loads(json.dumps(graph.to_wire()))
    assert wire["version"] == 1
    nodes = wire["nodes"]
    assert [n["id"] for n in nodes] == list(range(len(nodes)))
    assert all(set(n) == NODE_KEYS for n in nodes)
    groups = {n["parent"] for n in nodes if n["parent"] >= 0}
    for node in nodes:
        assert node["parent"] < node["id"]
        assert node["parent"] == -1 or nodes[node["parent"]]["kind"] == "module"
        assert (node["sig"] != "") == (node["kind"] == "module")
    for edge in wire["edges"]:
        assert set(edge) == {"src", "dst", "shape", "dtype"}
        assert edge["src"] < edge["dst"], "ids are a topological order"
        assert edge["src"] not in groups
        assert edge["dst"] not in groups
    assert all(set(w) == {"kind", "module", "message"} for w in wire["warnings"])


def test_resnet18_structure() -> None:
    case, graph = run("resnet18")
    by_cls: dict[str, int] = defaultdict(int)
    for node in graph.nodes:
        by_cls[node.cls] += node.kind == "module"
    assert by_cls["Conv2d"] == 20
    assert by_cls["BatchNorm2d"] == 20
    assert by_cls["BasicBlock"] == 8
    assert [n.params for n in graph.find("")] == [sum(p.numel() for p in case.model.parameters())]
    # ReLU(inplace=True) is one module called three times per block: calls 0, 1, 2 ...
    assert [n.call for n in graph.find("layer1.0.relu")] == [0, 1]
    # `out += identity`: the in-place add takes bn2 and the block's input, then feeds relu@1.
    add = next(
        n for n in graph.nodes if n.name == "add_" and graph.nodes[n.parent].name == "layer1.0"
    )
    sources = {graph.nodes[e.src].name for e in graph.inputs_of(add.id)}
    assert sources == {"layer1.0.bn2", "maxpool"}
    relu1 = graph.find("layer1.0.relu")[1]
    assert [e.src for e in graph.inputs_of(relu1.id)] == [add.id]
    sig = {n.name: n.sig for n in graph.nodes if n.kind == "module"}
    assert sig["layer1.0"] == sig["layer1.1"]
    assert sig["layer2.0"] != sig["layer2.1"]  # the first block of a stage downsamples
    assert sig["layer2.1"] != sig["layer3.1"]  # other widths


def test_mlp_counts() -> None:
    layers = 50
    model = models.mlp(layers, width=8)
    graph = trace(model, torch.randn(4, 8))
    # input, the Sequential, one node per Linear, output; a chain of layers + 1 edges.
    assert len(graph.nodes) == layers + 3
    assert len(graph.edges) == layers + 1
    assert all(edge.shape == (4, 8) and edge.dtype == "float32" for edge in graph.edges)
    chain = [0, *range(2, layers + 3)]  # input, then the Linears (#1 is the Sequential), output
    assert [(e.src, e.dst) for e in graph.edges] == list(itertools.pairwise(chain))
    linears = [n for n in graph.nodes if n.cls == "Linear"]
    assert len({n.sig for n in linears}) == 1
    assert sum(n.params for n in linears) == graph.find("")[0].params == layers * (8 * 8 + 8)


def test_gpt_blocks_fold_and_weights_are_tied() -> None:
    case, graph = run("gpt")
    blocks = [n for n in graph.nodes if n.cls == "GPTBlock"]
    assert [n.name for n in blocks] == ["blocks.0", "blocks.1", "blocks.2"]
    assert len({n.sig for n in blocks}) == 1
    unique = {id(p): p.numel() for p in case.model.parameters()}
    assert graph.find("")[0].params == sum(unique.values())  # the tied weight counted once
    assert graph.find("head")[0].params == graph.find("wte")[0].params
    attn = graph.find("blocks.0.attn")[0]
    inside = [n.name for n in graph.nodes if n.parent == attn.id]
    assert inside[:3] == ["blocks.0.attn.qkv", "split", "view"]
    assert inside.count("matmul") == 2
    assert inside[-1] == "blocks.0.attn.proj"
    # The three views read the three outputs of one split.
    split = next(n for n in graph.nodes if n.parent == attn.id and n.name == "split")
    views = [n for n in graph.nodes if n.parent == attn.id and n.name == "view"]
    assert [[e.src for e in graph.inputs_of(v.id)] for v in views] == [[split.id]] * 3
    # The causal mask is a buffer: its slice has no producer in the graph.
    mask = next(n for n in graph.nodes if n.parent == attn.id and n.name == "getitem")
    assert graph.inputs_of(mask.id) == []
    assert mask.shape == (8, 8)
    assert mask.dtype == "bool"


def test_transformer_eval_traces_like_training() -> None:
    """Under a TorchFunctionMode, `has_torch_function` is true, so TransformerEncoderLayer never
    takes its eval fast path (`_transformer_encoder_layer_fwd`) during a trace: eval shows the
    same structure as training. Outside nbviz, eval + no_grad runs the fused kernel instead."""
    _, train = run("transformer_train")
    _, evaluation = run("transformer_eval")
    assert [(n.name, n.cls, n.shape) for n in train.nodes] == [
        (n.name, n.cls, n.shape) for n in evaluation.nodes
    ]
    layers = [n for n in train.nodes if n.cls == "TransformerEncoderLayer"]
    assert len(layers) == 2
    assert layers[0].sig == layers[1].sig
    assert any(n.name == "multi_head_attention_forward" for n in train.nodes)


def test_moe_records_the_experts_that_ran() -> None:
    case, graph = run("moe")
    assert isinstance(case.model, trace_models.MoE)
    choice = case.model.router(case.args[0]).argmax(-1)
    ran = sorted({f"experts.{int(i)}" for i in choice})
    assert ran == ["experts.0", "experts.1", "experts.2"]  # the seeded routing
    assert sorted(n.name for n in graph.nodes if n.cls == "Sequential") == ran
    counts = {f"experts.{i}": int((choice == i).sum()) for i in range(4)}
    for node in graph.nodes:
        if node.cls == "Sequential":
            assert node.shape == (counts[node.name], 8)


def test_in_place_ops_take_over_their_tensor() -> None:
    _, graph = run("in_place")
    names = [n.name for n in graph.nodes if n.kind == "op"]
    assert names == ["setitem", "relu_", "add_", "mul"]
    ids = {n.name: n.id for n in graph.nodes}
    assert [e.src for e in graph.inputs_of(ids["relu_"])] == [ids["setitem"]]
    assert [e.src for e in graph.inputs_of(ids["add_"])] == [ids["relu_"], ids["x"]]
    assert [e.src for e in graph.inputs_of(ids["mul"])] == [ids["add_"]]


def test_rows_and_in_place_views_keep_their_producers() -> None:
    _, graph = run("rows_and_views")
    ids = {n.name: n.id for n in graph.nodes}
    assert [n.name for n in graph.nodes if n.kind == "op"] == [
        "getitem",
        "zero_",
        "unbind",
        "mul",
        "mul",
        "stack",
    ]
    # zero_ changed y through a view: iterating y (Tensor.__iter__ unbinds) reads zero_'s result.
    assert [e.src for e in graph.inputs_of(ids["unbind"])] == [ids["zero_"]]
    muls = [n.id for n in graph.nodes if n.name == "mul"]
    assert [[e.src for e in graph.inputs_of(m)] for m in muls] == [[ids["unbind"]]] * 2
    assert [e.src for e in graph.inputs_of(ids["stack"])] == muls


def test_reuse_and_recursion_get_call_indices() -> None:
    _, reused = run("reused")
    assert [(n.name, n.call) for n in reused.nodes if n.kind == "module"] == [
        ("", 0),
        ("shared", 0),
        ("shared", 1),
        ("head", 0),
    ]
    shared = reused.find("shared")
    assert shared[0].sig == shared[1].sig  # the same layer on same-shaped inputs folds
    _, recursive = run("recursive")
    roots = recursive.find("")
    assert [n.call for n in roots] == [0, 1, 2]
    assert [n.parent for n in roots] == [-1, roots[0].id, roots[1].id]


def test_aliased_module_is_one_module_called_twice() -> None:
    _, graph = run("aliased")
    shared = graph.find("a.0")
    assert [n.call for n in shared] == [0, 1]
    assert [graph.nodes[n.parent].name for n in shared] == ["a", "b"]


def test_structured_and_keyword_inputs() -> None:
    _, graph = run("structured_input")
    assert [n.name for n in graph.nodes if n.kind == "input"] == [
        "pair[0]",
        "pair[1]",
        "extra.gain",
        "batch.image",
    ]
    _, kw = run("kwargs_only")
    assert [n.name for n in kw.nodes if n.kind == "input"] == ["kwargs.x", "kwargs.mask"]
    assert [n.name for n in kw.nodes if n.kind == "op"] == ["mul", "masked_fill", "amax"]


def test_forward_kwargs_named_mode_and_model_reach_the_forward() -> None:
    model = trace_models.KwargsOnly()
    x = torch.randn(2, 4)
    summed = trace(model, x=x, mode="sum", model=2)
    maxed = trace(model, x=x, mode="max")
    assert [n.name for n in summed.nodes if n.kind == "op"] == ["mul", "sum"]
    assert [n.name for n in maxed.nodes if n.kind == "op"] == ["mul", "amax"]


def test_structured_outputs() -> None:
    _, graph = run("structured_output")
    inner = {n.name: n.shape for n in graph.nodes if n.kind == "module"}
    assert inner["as_namedtuple"] == (2, 2)
    _, dc = run("dataclass_output")
    assert [n.name for n in dc.nodes if n.kind == "output"] == ["out.logits", "out.hidden"]
    assert "out.note (str)" in dc.warnings[0].message


def test_unregistered_modules_are_named_and_counted() -> None:
    case, graph = run("plain_list")
    names = [n.name for n in graph.nodes if n.kind == "module"]
    assert names == [
        "",
        "<unregistered>.Linear#0",
        "<unregistered>.Sequential#0",
        "<unregistered>.Sequential#0.0",
        "<unregistered>.Sequential#0.1",
        "out",
    ]
    assert graph.find("<unregistered>.Linear#0")[0].params == 12
    # Not registered means not counted in the model's own total.
    assert graph.find("")[0].params == sum(p.numel() for p in case.model.parameters()) == 4


def test_direct_forward_keeps_the_ops_and_warns() -> None:
    _, graph = run("direct_forward")
    names = [n.name for n in graph.nodes]
    assert "block.fc1" in names
    assert "block" not in names
    assert "fc" not in names
    assert "linear" in names  # fc.forward(x) runs F.linear at the top level


def test_module_calls_from_other_threads_are_not_recorded() -> None:
    other = nn.Linear(3, 3)

    class StartsAThread(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            worker = threading.Thread(target=lambda: other(torch.ones(3)))
            worker.start()
            worker.join()
            result: torch.Tensor = self.fc(x)
            return result

    graph = trace(StartsAThread(), torch.zeros(2, 3))
    assert [n.name for n in graph.nodes if n.kind == "module"] == ["", "fc"]
    assert graph.warnings == []


def test_compiled_models_are_unwrapped_without_compiling() -> None:
    _case, graph = run("compiled")
    assert [n.name for n in graph.nodes if n.kind == "module"] == ["", "0", "1"]
    assert not any("_orig_mod" in n.name for n in graph.nodes)
    _, child = run("compiled_child")
    assert [n.name for n in child.nodes if n.kind == "module"] == [
        "",
        "block",
        "block.fc1",
        "block.fc2",
        "fc",
    ]


def test_checkpointed_blocks_are_seen() -> None:
    _, graph = run("checkpointed")
    assert [n.name for n in graph.nodes if n.kind == "module"] == [
        "",
        "first",
        "first.fc1",
        "first.fc2",
        "second",
        "second.fc1",
        "second.fc2",
    ]


def test_lazy_modules() -> None:
    case, graph = run("lazy")
    assert [(n.name, n.cls, n.shape, n.params) for n in graph.nodes if n.kind == "module"] == [
        ("", "Sequential", (2, 2), 6 * 5 + 6 + 2 * 6 + 2),
        ("0", "Linear", (2, 6), 36),
        ("1", "ReLU", (2, 6), 0),
        ("2", "Linear", (2, 2), 14),
    ]
    first = next(iter(case.model.children()))
    assert isinstance(first, nn.Linear)
    assert first.in_features == 5


def test_failing_forward_gives_the_partial_graph() -> None:
    _, graph = run("raising")
    assert graph.error == "RuntimeError: boom"
    assert [n.name for n in graph.nodes if n.kind == "module"] == ["", "0", "1"]
    assert not [n for n in graph.nodes if n.kind == "output"]
    error = next(w for w in graph.warnings if w.kind == "error")
    assert "(root) > 1" in error.message
    assert "error: RuntimeError: boom" in graph.to_text()


def test_module_call_is_never_patched() -> None:
    call, impl = nn.Module.__call__, nn.Module._call_impl
    seen: list[bool] = []

    class Spy(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(nn.Module.__call__ is call and nn.Module._call_impl is impl)
            return x + 1

    trace(Spy(), torch.zeros(1))
    assert seen == [True]
    assert nn.Module.__call__ is call


@pytest.mark.parametrize(
    ("func", "name", "cls", "inplace"),
    [
        (torch.cat, "cat", "torch.cat", False),
        (torch.einsum, "einsum", "torch.einsum", False),
        (nn.functional.relu, "relu", "F.relu", False),
        (nn.functional.linear, "linear", "F.linear", False),
        (torch.Tensor.view, "view", "Tensor.view", False),
        (torch.Tensor.add_, "add_", "Tensor.add_", True),
        (torch.Tensor.__iadd__, "add_", "Tensor.__iadd__", True),
        (torch.Tensor.__radd__, "add", "Tensor.__radd__", False),
        (torch.Tensor.__getitem__, "getitem", "Tensor.__getitem__", False),
        (torch.Tensor.__setitem__, "setitem", "Tensor.__setitem__", True),
        (torch.Tensor.T.__get__, "T", "Tensor.T", False),  # type: ignore[attr-defined]
    ],
)
def test_op_names(func: Any, name: str, cls: str, inplace: bool) -> None:
    assert op_name(func) == (name, cls, inplace)


def test_only_modules_are_traced() -> None:
    with pytest.raises(TypeError, match=r"nn\.Module"):
        trace(torch.relu, torch.zeros(1))  # type: ignore[arg-type]


def test_public_api() -> None:
    assert nbviz.trace is trace
    assert nbviz.Graph is Graph
    assert nbviz.autograd_svg is autograd_svg


# The autograd graph


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result: torch.Tensor = self.fc(torch.relu(x))
        return result


def test_autograd_svg_names_the_parameters() -> None:
    model = Net()
    loss = model(torch.randn(4, 3)).sum()
    svg = autograd_svg(loss, model)
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    assert "fc.weight" in svg
    assert "fc.bias" in svg


def test_autograd_svg_hides_the_compile_prefix() -> None:
    compiled: Any = torch.compile(Net())
    loss = compiled._orig_mod(torch.randn(4, 3)).sum()  # the graph, without compiling
    svg = autograd_svg(loss, compiled)
    assert "fc.weight" in svg
    assert "_orig_mod" not in svg


def test_autograd_svg_explains_a_missing_dot(monkeypatch: pytest.MonkeyPatch) -> None:
    model = Net()
    loss = model(torch.randn(4, 3)).sum()
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(GraphvizMissingError, match="apt-get install -y graphviz"):
        autograd_svg(loss, model)
    # `which` fooled, graphviz's own ExecutableNotFound becomes the same error.
    monkeypatch.setattr("nbviz.dataflow.autograd.shutil.which", lambda _name: "/usr/bin/dot")
    with pytest.raises(GraphvizMissingError, match="apt-get install -y graphviz"):
        autograd_svg(loss, model)


def test_autograd_svg_needs_a_graph() -> None:
    model = Net()
    with torch.no_grad():
        out = model(torch.randn(4, 3))
    with pytest.raises(ValueError, match="gradients enabled"):
        autograd_svg(out, model)


def test_tracing_a_watched_model_records_nothing_and_draws_no_nbviz_op() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    x = torch.randn(3, 4)
    alone = nbviz.trace(model, x).to_text()
    with nbviz.watch(model, every=1, activations_every=1, histograms_every=1) as recorder:
        watched = nbviz.trace(model, x).to_text()
        recorder.flush()
        assert recorder.run.steps.size == 0
        assert recorder.run.series() == []
    assert watched == alone
