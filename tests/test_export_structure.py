"""The structure diagram as a file: the browser's boxes, text and colours (checked against the
front end's own TypeScript, run in node), overlay values equal to the run's statistics, escaped
labels, golden SVGs, PNG/PDF files, a missing `dot`, and `Viz.export` of what the widget shows."""

from __future__ import annotations

import json
import math
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pytest
import torch
from export_run import STEPS, Truth, write_synthetic_run
from torch import nn

import nbviz
from nbviz.dataflow.diagram import (
    box_lines,
    box_text,
    edge_label,
    format_params,
    format_value,
    index_graph,
    node_color,
    visible_graph,
)
from nbviz.export._overlay import SCALE_TYPES, ColorScale, Overlay
from nbviz.export.structure import export_structure
from nbviz.records import SeriesKey
from nbviz.run import Run

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "tests" / "golden" / "structure"
SVG = "{http://www.w3.org/2000/svg}"
STEP = 22


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.act(self.fc(x)) + x
        return out


class Blocks(nn.Module):
    """Groups, a fold of six identical blocks, a merged edge (the residual), a lone op."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Linear(4, 8)
        self.blocks = nn.Sequential(*[Block() for _ in range(6)])
        self.head = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.blocks(self.stem(x)).flatten(1))
        return out


class Synthetic(nn.Module):
    """The layers of tests/export_run.py's synthetic run: fc1, relu, fc2."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(8, 16)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.fc2(self.relu(self.fc1(x)))
        return out


def blocks_graph() -> nbviz.Graph:
    torch.manual_seed(0)
    return nbviz.trace(Blocks(), torch.randn(3, 4))


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Run, Truth]]:
    path = tmp_path_factory.mktemp("structure") / "synthetic.nbviz"
    _, truth = write_synthetic_run(path)
    with nbviz.open(path) as run:
        yield run, truth


def typescript(request: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """`reference(request)` of js/tests/diagram-reference.ts: the front end's code, in node."""
    esbuild = REPO / "node_modules" / ".bin" / "esbuild"
    node = shutil.which("node")
    assert esbuild.exists(), "node_modules missing: run `npm ci`"
    assert node is not None
    bundle = tmp_path / "reference.cjs"
    subprocess.run(
        [str(esbuild), "js/tests/diagram-reference.ts", "--bundle", "--format=cjs",
         "--platform=node", f"--outfile={bundle}", "--log-level=warning"],
        cwd=REPO, check=True,
    )  # fmt: skip
    (tmp_path / "request.json").write_text(json.dumps(request))
    script = (
        f"const r = require({str(bundle)!r}).reference("
        f"JSON.parse(require('fs').readFileSync({str(tmp_path / 'request.json')!r}, 'utf8')));"
        "console.log(JSON.stringify(r))"
    )
    out = subprocess.run([node, "-e", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def svg_boxes(path: Path) -> dict[str, dict[str, Any]]:
    """Graphviz SVG nodes by their first text line: every line and the box's fill."""
    root = ET.parse(path).getroot()
    boxes: dict[str, dict[str, Any]] = {}
    for g in root.iter(f"{SVG}g"):
        if g.get("class") != "node":
            continue
        lines = [t.text or "" for t in g.iter(f"{SVG}text")]
        fills = [p.get("fill") for p in g.iter(f"{SVG}path")] + [
            p.get("fill") for p in g.iter(f"{SVG}polygon")
        ]
        if lines:
            boxes[lines[0]] = {"lines": lines, "fill": next((f for f in fills if f), None)}
    return boxes


def svg_text(path: Path) -> list[str]:
    return [t.text or "" for t in ET.parse(path).getroot().iter(f"{SVG}text")]


# -- the browser's boxes, text and colours --------------------------------------------------------

EXPANSIONS: list[dict[str, list[str]]] = [
    {"expanded": [], "unfolded": []},
    {"expanded": ["#0"], "unfolded": []},
    {"expanded": ["#0", "blocks#0"], "unfolded": []},
    {"expanded": ["#0", "blocks#0", "blocks.2#0"], "unfolded": ["blocks.0#0"]},
    {"expanded": ["blocks#0", "blocks.2#0"], "unfolded": ["blocks.0#0"]},  # root closed
]


def test_boxes_text_and_fills_are_the_browsers(tmp_path: Path) -> None:
    wire = blocks_graph().to_wire()
    reference = typescript({"graph": wire, "expansions": EXPANSIONS}, tmp_path)["diagrams"]
    index = index_graph(wire)
    keys = index.group_keys()
    for expansion, expected in zip(EXPANSIONS, reference, strict=True):
        opened = {keys[k] for k in expansion["expanded"]}
        vg = visible_graph(index, opened, set(expansion["unfolded"]))
        boxes = []
        for box in vg.boxes.values():
            node = index.nodes[box.node]
            assert node is not None
            boxes.append(
                {
                    "id": box.id,
                    "kind": box.kind,
                    "parent": box.parent,
                    "lines": box_lines(box_text(index, box)),
                    "fill": node_color(node["kind"], node["cls"]),
                }
            )
        assert boxes == expected["boxes"], expansion
        edges = [[e.src, e.dst, edge_label(e.shape, e.dtype, e.count)] for e in vg.edges]
        assert edges == expected["edges"], expansion
    # The cases differ: the fold, the unfolded blocks and an open block all show.
    kinds = [{b["kind"] for b in d["boxes"]} for d in reference]
    assert "fold" in kinds[2]
    assert "open" in kinds[3]
    assert kinds[4] == {"leaf", "group"}


CLASSES = ["Linear", "Conv2d", "ReLU", "Block", "", "Sequential", "GPT2Attention", "Ünïcödé",
           "名前", "😀Emoji", "x" * 300, "MultiheadAttention", "LayerNorm", "Dropout"]  # fmt: skip


def test_colours_and_number_formats_are_the_browsers(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    scales: list[dict[str, Any]] = []
    for metric, kind in SCALE_TYPES.items():
        lo, hi = (1e-4, 3.0) if kind == "log" else (0.0, 1.0 if kind == "linear" else 40.0)
        edges = [lo, hi, lo / 2, hi * 2, 0.0, -1.0, 1e300]
        values = [*edges, *np.exp(rng.uniform(math.log(lo or 1e-3), math.log(hi), 200))]
        values += [*rng.uniform(lo, hi, 200)]
        scales.append({"metric": metric, "domain": [lo, hi], "values": [*values, None]})
    numbers = [0.5, 1234.5, 0.12345, 123456.0, 1.23e-5, 9999.5, 0.0009995, -2.5e-7, 1e4, 0.001]
    numbers += [*(10.0 ** rng.uniform(-8, 8, 300) * rng.choice([-1, 1], 300))]
    params = [0, 7, 999_999, 1_000_000, 1_250_000, 23_456_789, 138_000_000, 999_960_000]
    params += [1_500_000_000, 2_000_000_000_000, *rng.integers(0, 10**10, 200).tolist()]
    request = {"classes": CLASSES, "scales": scales, "values": numbers, "params": params}
    reference = typescript(request, tmp_path)

    assert [node_color("module", cls) for cls in CLASSES] == reference["colors"]
    assert len(set(reference["colors"])) > 4  # the classes spread over the palette
    for spec, expected in zip(scales, reference["scales"], strict=True):
        lo, hi = spec["domain"]
        scale = ColorScale(spec["metric"], (lo, hi))
        got = [list(scale.rgb(math.nan if v is None else v)) for v in spec["values"]]
        assert got == expected, spec["metric"]
    assert [format_value(x) for x in numbers] == reference["values"]
    assert [format_params(n) for n in params] == reference["params"]


# -- the overlay: the run's statistics, on the run's scale ---------------------------------------


def test_overlay_values_are_the_runs_statistics_at_the_step(synthetic: tuple[Run, Truth]) -> None:
    run, truth = synthetic
    stats = truth.stats
    l2, std, _dead = 5, 4, 10  # RECORD_FIELDS columns

    def at(key: SeriesKey, step: int, field: int) -> float:
        """The latest row at or before `step`, through float32 as the browser holds it."""
        held = max(s for s in stats[key] if s <= step)
        return float(np.float32(stats[key][held][field]))

    for step in (STEP, STEP + 1, STEPS - 1):  # activations every 2 steps: 23 reads step 22
        grad = Overlay.of_run(run, "grad_norm", step).values
        for layer in ("fc1", "fc2"):
            parts = [at(SeriesKey(layer, "grad", p), step, l2) for p in ("weight", "bias")]
            assert grad[layer] == pytest.approx(math.hypot(*parts), rel=1e-12)
        assert "relu" not in grad  # no parameters, no gradient: drawn as "no data"
        act = Overlay.of_run(run, "activation_std", step).values
        for layer in ("fc1", "relu", "fc2"):
            assert act[layer] == at(SeriesKey(layer, "activation", ""), step, std)
        assert Overlay.of_run(run, "dead_fraction", step).values == {"relu": 0.5}

    # The scale spans every step's values: fc2's gradient grows 100x over the run.
    norms = [
        math.hypot(*(at(SeriesKey(layer, "grad", p), s, l2) for p in ("weight", "bias")))
        for layer in ("fc1", "fc2")
        for s in range(STEPS)
    ]
    scale = Overlay.of_run(run, "grad_norm", STEP).scale
    assert scale.domain == pytest.approx((min(norms), max(norms)), rel=1e-12)
    assert Overlay.of_run(run, "dead_fraction").step == STEPS - 1


def test_overlay_colours_the_boxes_as_the_browser_would(
    synthetic: tuple[Run, Truth], tmp_path: Path
) -> None:
    run, _ = synthetic
    graph = nbviz.trace(Synthetic(), torch.randn(2, 8))
    out = export_structure(graph, tmp_path / "o.svg", overlay="grad_norm", run=run, step=STEP)
    overlay = Overlay.of_run(run, "grad_norm", STEP)
    spec = {
        "metric": "grad_norm",
        "domain": list(overlay.scale.domain),
        "values": [overlay.values.get(layer) for layer in ("fc1", "relu", "fc2")],
    }
    reference = typescript({"scales": [spec]}, tmp_path)["scales"][0]
    boxes = svg_boxes(out)
    for layer, rgb in zip(("fc1", "relu", "fc2"), reference, strict=True):
        assert boxes[layer]["fill"] == "#{:02x}{:02x}{:02x}".format(*rgb), layer
    assert boxes["relu"]["fill"] == "#c8c8c8"  # no data
    texts = svg_text(out)
    assert f"gradient norm at step {STEP} (log scale)" in texts
    assert format_value(overlay.scale.domain[0]) in texts
    assert "no data" in texts


# -- files ----------------------------------------------------------------------------------------


@pytest.fixture
def overwrite_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--overwrite-golden"))


def test_golden_svgs(synthetic: tuple[Run, Truth], tmp_path: Path, overwrite_golden: bool) -> None:
    run, _ = synthetic
    torch.manual_seed(0)
    outputs = {
        "blocks.svg": export_structure(
            blocks_graph(), tmp_path / "blocks.svg", expanded=["blocks.2"], unfolded=["blocks.0#0"]
        ),
        "overlay.svg": export_structure(
            nbviz.trace(Synthetic(), torch.randn(2, 8)),
            tmp_path / "overlay.svg",
            overlay="activation_std",
            run=run,
            step=STEP,
        ),
    }
    version = subprocess.run(["dot", "-V"], capture_output=True, text=True).stderr.strip()
    for name, out in outputs.items():
        golden = GOLDEN / name
        if overwrite_golden:
            GOLDEN.mkdir(parents=True, exist_ok=True)
            golden.write_bytes(out.read_bytes())
        assert golden.is_file(), f"{golden} is missing: run pytest with --overwrite-golden"
        assert out.read_bytes() == golden.read_bytes(), (
            f"{name} differs from {golden} (made with Graphviz 2.43.0; this is {version}); if the"
            " change is intended, rerun with --overwrite-golden and review the diff"
        )


def test_blocks_diagram_shows_the_expansion(tmp_path: Path) -> None:
    graph = blocks_graph()
    shut = svg_text(graph.export(tmp_path / "shut.svg"))
    assert "stem" in shut
    assert "blocks" in shut
    assert "fc" not in shut
    opened = svg_text(graph.export(tmp_path / "open.svg", expanded=["blocks"]))
    assert "Block ×6" in opened
    assert "blocks.0\u20135" in opened
    assert "stem" in opened
    unfolded = graph.export(tmp_path / "u.svg", expanded=["blocks.2"], unfolded=["blocks.0"])
    texts = svg_text(unfolded)
    assert "Block ×6" not in texts
    assert {"0", "1", "3", "4", "5", "fc", "act"} <= set(texts)
    assert "blocks · Sequential" in texts
    assert "2 · Block" in texts
    assert "[3, 8] · 40 params" in texts
    assert "[3, 8] ×2" in texts


def test_labels_are_escaped_text(tmp_path: Path) -> None:
    hostile = type('Evil"<i>&amp;', (nn.Module,), {"forward": lambda self, x: x * 2})
    model = nn.Sequential()
    model.add_module("<b>x</b>", nn.Linear(2, 2))
    model.add_module('"quote\\N', hostile())
    out = nbviz.trace(model, torch.randn(1, 2)).export(tmp_path / "e.svg", expanded=[""])
    texts = svg_text(out)  # parses: nothing broke the XML
    assert "<b>x</b>" in texts
    assert '"quote\\N' in texts
    assert 'Evil"<i>&amp;' in texts
    root = ET.parse(out).getroot()
    assert not [el for el in root.iter() if el.tag in ("b", "i", f"{SVG}b", f"{SVG}i")]


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_png_and_pdf(tmp_path: Path) -> None:
    graph = blocks_graph()
    small = png_size(graph.export(tmp_path / "a.png", expanded=["blocks"]).read_bytes())
    large = png_size(graph.export(tmp_path / "b.png", expanded=["blocks"], dpi=192).read_bytes())
    assert small[0] > 100
    assert small[1] > 200
    assert large[0] == pytest.approx(2 * small[0], abs=4)
    assert large[1] == pytest.approx(2 * small[1], abs=4)
    pdf = graph.export(tmp_path / "c.pdf").read_bytes()
    assert pdf.startswith(b"%PDF-")
    assert len(pdf) > 1000
    assert b"%%EOF" in pdf[-32:]


def test_bad_arguments_say_what_is_wrong(synthetic: tuple[Run, Truth], tmp_path: Path) -> None:
    graph = blocks_graph()
    with pytest.raises(ValueError, match=r"\.svg, \.png, \.pdf"):
        graph.export(tmp_path / "g.jpg")
    with pytest.raises(ValueError, match=r"dpi applies to .png"):
        graph.export(tmp_path / "g.svg", dpi=200)
    with pytest.raises(ValueError, match=r"no group 'nope'"):
        graph.export(tmp_path / "g.svg", expanded=["nope"])
    with pytest.raises(ValueError, match=r"no fold 'blocks#0'.*'blocks.0#0'"):
        graph.export(tmp_path / "g.svg", unfolded=["blocks#0"])
    with pytest.raises(ValueError, match=r"needs the run"):
        graph.export(tmp_path / "g.svg", overlay="grad_norm")
    with pytest.raises(ValueError, match=r"unknown overlay 'grads'"):
        graph.export(tmp_path / "g.svg", overlay="grads", run=synthetic[0])
    with pytest.raises(FileNotFoundError, match=r"does not exist"):
        graph.export(tmp_path / "missing" / "g.svg")


def test_missing_dot_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    graph = blocks_graph()
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` there
    with pytest.raises(nbviz.GraphvizMissingError, match=r"apt-get install -y graphviz"):
        graph.export(tmp_path / "g.svg")
    assert not (tmp_path / "g.svg").exists()


# -- Viz.export: what the widget shows -------------------------------------------------------------


@pytest.fixture
def viz() -> Iterator[nbviz.Viz]:
    torch.manual_seed(0)
    model = Blocks()
    shown = nbviz.show(model, torch.randn(3, 4), every=1, activations_every=1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(4):
        loss = model(torch.randn(3, 4)).pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    yield shown
    shown.close()


def test_viz_exports_the_diagram_as_shown(viz: nbviz.Viz, tmp_path: Path) -> None:
    assert viz.expanded == ["#0"]  # the browser's default: the single top-level module open
    before = svg_text(viz.export(tmp_path / "a.svg", view="structure"))
    assert "Block ×6" not in before
    assert "blocks" in before
    viz.expanded = ["blocks.3"]  # from Python: opens the groups around it too
    assert viz.expanded == ["#0", "blocks#0", "blocks.3#0"]
    viz.state.unfolded = ["blocks.0#0"]
    viz.overlay = "grad_norm"
    viz.state.num_steps = 4
    viz.step = 2
    out = viz.export(tmp_path / "b.svg", view="structure")
    boxes = svg_boxes(out)
    assert {"fc", "act", "0", "5"} <= set(boxes)
    assert viz.recorder is not None
    overlay = Overlay.of_run(viz.recorder.run, "grad_norm", 2)
    assert boxes["stem"]["fill"] == overlay.color("stem") != node_color("module", "Linear")
    assert boxes["fc"]["fill"] == overlay.color("blocks.3.fc")
    assert "gradient norm at step 2 (log scale)" in svg_text(out)


def test_viz_exports_the_selected_layer_kind_and_step(viz: nbviz.Viz, tmp_path: Path) -> None:
    viz.state.num_steps = 4
    viz.step = 2
    assert "blocks" in svg_text(viz.export(tmp_path / "default.svg"))  # nothing selected
    viz.selected = "blocks.1.fc"
    viz.state.kind = "grad"
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # text as <text>, to read it
        summary = " ".join(svg_text(viz.export(tmp_path / "s.svg")))
        assert "blocks.1.fc" in summary
        assert "step 2" in summary
        assert "gradient" in summary
        viz.selected = "blocks.1.act"  # no weights: the first kind it has, as the browser picks
        hist = " ".join(svg_text(viz.export(tmp_path / "h.svg", view="histogram")))
    assert "blocks.1.act" in hist
    assert "activation" in hist
    with pytest.raises(ValueError, match=r"unknown view 'bogus'.*structure"):
        viz.export(tmp_path / "x.svg", view="bogus")
    with pytest.raises(ValueError, match=r"budget= applies to .html"):
        viz.export(tmp_path / "x.svg", budget=10)


def test_viz_without_a_trace_or_run_says_so(tmp_path: Path) -> None:
    bare = nbviz.show(Blocks(), record=False)
    try:
        with pytest.raises(ValueError, match=r"no structure diagram.*example input"):
            bare.export(tmp_path / "x.svg", view="structure")
        with pytest.raises(ValueError, match=r"records none"):
            bare.export(tmp_path / "x.svg", view="summary")
        with pytest.raises(ValueError, match=r"nothing to export"):
            bare.export(tmp_path / "x.svg")
        with pytest.raises(ValueError, match=r"no group 'x'.*no dataflow graph"):
            bare.expanded = ["x"]
    finally:
        bare.close()


def test_state_checks_what_is_set_from_python(viz: nbviz.Viz) -> None:
    with pytest.raises(ValueError, match=r"no group 'blokcs'.*'blocks#0'"):
        viz.expanded = ["blokcs"]
    with pytest.raises(ValueError, match=r"no fold 'blocks.1#0'"):
        viz.state.unfolded = ["blocks.1#0"]
    with pytest.raises(ValueError, match=r"unknown overlay"):
        viz.overlay = "norm"
    with pytest.raises(ValueError, match=r"unknown kind"):
        viz.state.kind = "gradient"
    viz.state.expanded = ["blocks"]  # a bare name: every call of it, nothing around it
    assert viz.state.expanded == ["blocks#0"]


def test_kind_and_overlay_default_as_in_the_browser() -> None:
    shown = nbviz.show(Blocks(), record=False)
    try:
        assert shown.state.kind == "weight"
        assert shown.overlay is None
        assert shown.expanded == []
    finally:
        shown.close()
