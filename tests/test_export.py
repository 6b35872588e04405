"""Static figures of a run: what they draw equals the run's numbers, SVGs hold their golden bytes.

The run is synthetic and deterministic (tests/export_run.py): its statistics and histograms are
computed there with numpy, so every figure is checked against numbers nbviz did not compute.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import matplotlib
import matplotlib.style
import numpy as np
import pytest
from export_run import SHAPES, STEPS, Truth, write_synthetic_run
from matplotlib.collections import PolyCollection, QuadMesh
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle, StepPatch

import nbviz
from nbviz.export import VIEWS, save
from nbviz.export._data import BAND_PERCENTILES
from nbviz.records import RECORD_FIELDS, SeriesKey
from nbviz.run import Run, SeriesNotFoundError

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "tests" / "golden" / "export"
ARTIFACTS = REPO / "test-artifacts"
STEP = 22  # between histograms (taken every 5 steps): figures say which one they show
FIELD = {name: i for i, name in enumerate(RECORD_FIELDS)}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Run, Truth]]:
    path = tmp_path_factory.mktemp("export") / "synthetic.nbviz"
    _, truth = write_synthetic_run(path)
    with nbviz.open(path) as run:
        yield run, truth


def texts(fig: Figure) -> str:
    """Every string drawn on the figure, subfigures included."""
    found = [t.get_text() for t in fig.findobj(matplotlib.text.Text)]
    return "\n".join(found)


# ---------------------------------------------------------------------------------------------
# What the views draw


def test_histogram_bars_are_the_runs_counts(synthetic: tuple[Run, Truth]) -> None:
    run, truth = synthetic
    fig = run.figure("histogram", layer="fc1", kind="weight", step=STEP)
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == [
        "fc1.weight\nstep 20 (nearest histogram to 22)",
        "fc1.bias\nstep 20 (nearest histogram to 22)",
    ]
    for ax, tensor in zip(axes, ("weight", "bias"), strict=True):
        expected = truth.hists[SeriesKey("fc1", "weight", tensor)][20]
        (bars,) = [p for p in ax.patches if isinstance(p, StepPatch)]
        values, edges, _ = bars.get_data()
        occupied = np.flatnonzero(expected.counts)
        first, last = occupied[0], occupied[-1]
        np.testing.assert_array_equal(values, expected.counts[first : last + 1])
        np.testing.assert_allclose(edges[0], expected.lo + first * expected.width)
        np.testing.assert_allclose(np.diff(edges), expected.width)
        assert values.sum() == np.prod(SHAPES[f"fc1.{tensor}"])
        assert ax.get_xlabel() == "weight value"
        assert ax.get_ylabel() == "count (elements per bin)"
    mean = truth.stats[SeriesKey("fc1", "weight", "weight")][20][FIELD["mean"]]
    assert f"mean {mean:.3g}" in texts(fig)
    assert "fc1: weight histograms at step 22" in texts(fig)


def _percentiles_by_interpolation(counts: np.ndarray, lo: float, width: float) -> np.ndarray:
    """The reference: numpy's interpolation along the CDF through the occupied bins' edges."""
    occupied = np.flatnonzero(counts)
    cdf = np.concatenate(([0.0], np.cumsum(counts[occupied])))
    # Each occupied bin contributes its left edge at the count before it and its right edge at
    # the count after it; gaps of empty bins are jumps at a constant cumulative count.
    xp = np.repeat(cdf, 2)[1:-1]
    fp = np.column_stack([lo + occupied * width, lo + (occupied + 1) * width]).ravel()
    out = []
    for t in np.array(BAND_PERCENTILES) / 100 * counts.sum():
        # The least value whose CDF reaches t: at a jump, the end of the bin before the gap.
        i = int(np.searchsorted(xp, t, side="left"))
        if xp[i] == t:
            out.append(fp[i])
        else:
            out.append(fp[i - 1] + (fp[i] - fp[i - 1]) * (t - xp[i - 1]) / (xp[i] - xp[i - 1]))
    return np.array(out)


def test_distribution_bands_are_percentiles_of_the_histograms(
    synthetic: tuple[Run, Truth],
) -> None:
    run, truth = synthetic
    key = SeriesKey("fc2", "grad", "weight")
    fig = run.figure("distribution", layer="fc2", kind="grad", tensor="weight", step=STEP)
    bands_ax, ridge_ax = fig.axes
    steps = sorted(truth.hists[key])
    expected = np.array(
        [
            _percentiles_by_interpolation(h.counts, h.lo, h.width)
            for h in (truth.hists[key][s] for s in steps)
        ]
    )
    bands = [c for c in bands_ax.collections if isinstance(c, PolyCollection)]
    n = len(BAND_PERCENTILES)
    assert len(bands) == n // 2
    for j, band in enumerate(bands):  # the outermost first
        vertices = np.asarray(band.get_paths()[0].vertices)
        for k, step in enumerate(steps):
            ys = vertices[vertices[:, 0] == step, 1]
            np.testing.assert_allclose(
                [ys.min(), ys.max()], [expected[k, j], expected[k, n - 1 - j]], rtol=1e-12
            )
    median = next(line for line in bands_ax.lines if line.get_label() == "median")
    np.testing.assert_array_equal(median.get_xdata(), steps)
    np.testing.assert_allclose(median.get_ydata(), expected[:, n // 2], rtol=1e-12)
    marker = next(line for line in bands_ax.lines if line.get_label() == f"step {STEP}")
    assert list(marker.get_xdata()) == [STEP, STEP]
    # The ridgeline draws every histogram (fewer than its limit), the selected one highlighted.
    ridges = [p for p in ridge_ax.patches if isinstance(p, StepPatch)]
    assert len(ridges) == len(steps)
    highlighted = [r for r in ridges if r.get_facecolor() != ridges[0].get_facecolor()]
    assert len(highlighted) == 1
    values, _, baseline = highlighted[0].get_data()
    np.testing.assert_allclose(values.max() - baseline, 1.6)  # scaled to its own peak
    labels = {t.get_position()[1]: t.get_text() for t in ridge_ax.get_yticklabels()}
    assert labels == {len(steps) - 1 - k: str(s) for k, s in enumerate(steps)}  # oldest on top
    assert bands_ax.get_xlabel() == "step"
    assert "gradient value" in bands_ax.get_ylabel()


def test_gradient_flow_bars_are_the_gradient_norms(synthetic: tuple[Run, Truth]) -> None:
    run, truth = synthetic
    fig = run.figure("gradient_flow", layer="fc2", step=STEP)
    (ax,) = fig.axes
    names = [t.get_text() for t in ax.get_yticklabels()]
    assert names == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]  # model order
    bars = [p for p in ax.patches if isinstance(p, Rectangle)]
    keys = [SeriesKey(name.split(".")[0], "grad", name.split(".")[1]) for name in names]
    expected = [truth.stats[key][STEP][FIELD["l2"]] for key in keys]
    np.testing.assert_allclose([b.get_width() for b in bars], expected, rtol=1e-6)
    colors = {name: b.get_facecolor() for name, b in zip(names, bars, strict=True)}
    assert colors["fc2.weight"] == colors["fc2.bias"] != colors["fc1.weight"]  # fc2 highlighted
    # A layer of the model without gradients (relu, the model itself) is no error: the view is
    # of the whole model and has nothing to highlight.
    for layer in ("relu", ""):
        plain = run.figure("gradient_flow", layer=layer, step=STEP).axes[0]
        assert len({tuple(p.get_facecolor()) for p in plain.patches}) == 1
    assert ax.get_xscale() == "log"
    assert "gradient L2 norm" in ax.get_xlabel()
    assert f"Gradient flow at step {STEP}" in texts(fig)


@pytest.mark.parametrize(("kind", "period"), [("grad", 1), ("activation", 2)])
def test_heatmap_cells_are_the_runs_values(
    synthetic: tuple[Run, Truth], kind: str, period: int
) -> None:
    run, truth = synthetic
    fig = run.figure("heatmap", kind=kind, metric="std", step=STEP)
    mesh = next(c for c in fig.axes[0].collections if isinstance(c, QuadMesh))
    keys = [k for k in truth.stats if k.kind == kind]
    layer_order = {"fc1": 0, "relu": 1, "fc2": 2}
    keys.sort(key=lambda k: (layer_order[k.layer], k.tensor != "weight"))
    steps = list(range(0, STEPS, period))
    expected = np.array([[truth.stats[k][s][FIELD["std"]] for s in steps] for k in keys])
    cells = np.asarray(mesh.get_array()).reshape(len(keys), len(steps))
    np.testing.assert_allclose(cells, expected, rtol=1e-6)  # float32 in the run
    xs = np.asarray(mesh.get_coordinates())[0, :, 0]
    np.testing.assert_array_equal(xs, [*steps, STEPS])  # the last values hold to the end
    colorbar = fig.axes[1]
    assert colorbar.get_ylabel() == f"std of {kind} (log scale)"


def test_every_view_labels_its_axes_and_names_the_step(synthetic: tuple[Run, Truth]) -> None:
    run, _ = synthetic
    for view in VIEWS:
        fig = run.figure(view, layer="fc1", kind="grad", step=STEP)
        assert f"step {STEP}" in texts(fig), view
        for ax in fig.axes:
            is_colorbar = ax.get_label() == "<colorbar>"
            assert is_colorbar or ax.get_xlabel(), f"{view}: {ax.get_title()} has no x label"
            assert ax.get_ylabel() or ax.get_yticklabels(), f"{view}: no y label"


def test_defaults_are_the_first_layer_and_the_last_step(synthetic: tuple[Run, Truth]) -> None:
    run, _ = synthetic
    fig = run.figure("histogram")
    assert f"fc1: weight histograms at step {STEPS - 1}" in texts(fig)


# ---------------------------------------------------------------------------------------------
# Files: formats, determinism, golden SVGs, rcParams


@pytest.fixture
def overwrite_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--overwrite-golden"))


@pytest.mark.parametrize("view", list(VIEWS))
def test_golden_svg(
    synthetic: tuple[Run, Truth], view: str, tmp_path: Path, overwrite_golden: bool
) -> None:
    run, _ = synthetic
    out = tmp_path / f"{view}.svg"
    # Matplotlib's default style, with text as <text>: the goldens do not depend on a user's
    # matplotlibrc nor on glyph outlines of the installed DejaVu fonts.
    with matplotlib.style.context("default"), matplotlib.rc_context({"svg.fonttype": "none"}):
        run.export(out, view=view, layer="fc2", kind="grad", step=STEP)
    golden = GOLDEN / f"{view}.svg"
    if overwrite_golden:
        GOLDEN.mkdir(parents=True, exist_ok=True)
        golden.write_bytes(out.read_bytes())
    assert golden.is_file(), f"{golden} is missing: run pytest with --overwrite-golden"
    assert out.read_bytes() == golden.read_bytes(), (
        f"{view}.svg differs from {golden}; if the change is intended, rerun with "
        "--overwrite-golden and review the diff"
    )


def test_svg_and_pdf_are_deterministic(tmp_path: Path) -> None:
    """Two runs written independently from the same data give the same bytes, with no date."""
    svgs, pdfs = [], []
    for attempt in range(2):
        path = tmp_path / f"run{attempt}.nbviz"
        write_synthetic_run(path)
        with nbviz.open(path) as run:
            # Twice from one run too: layout noise differs between calls in one process.
            for again in range(2):
                out = tmp_path / f"{attempt}{again}.svg"
                svgs.append(run.export(out, view="summary", layer="relu", kind="activation"))
            pdfs.append(run.export(tmp_path / f"{attempt}.pdf", view="heatmap", kind="grad"))
    contents = {p.read_bytes() for p in svgs}, {p.read_bytes() for p in pdfs}
    if len(contents[0]) > 1 or len(contents[1]) > 1:  # keep them for the diff
        ARTIFACTS.mkdir(exist_ok=True)
        for p in svgs + pdfs:
            (ARTIFACTS / f"deterministic-{p.name}").write_bytes(p.read_bytes())
    assert len(contents[0]) == 1, f"SVGs differ: see {ARTIFACTS}/deterministic-*.svg"
    assert len(contents[1]) == 1, f"PDFs differ: see {ARTIFACTS}/deterministic-*.pdf"
    svg_text = svgs[0].read_text()
    assert "<dc:date>" not in svg_text
    assert not re.search(r"20\d\d-\d\d-\d\d", svg_text)
    pdf = pdfs[0].read_bytes()
    assert pdf.startswith(b"%PDF")
    assert b"/CreationDate" not in pdf
    assert matplotlib.rcParams["svg.hashsalt"] is None  # the salt was set for the save only


def test_svg_ids_do_not_depend_on_layout_noise() -> None:
    """Matplotlib hashes full-precision coordinates into ids: renamed by first appearance."""
    from nbviz.export._svg import stable_ids

    svg = (
        '<g clip-path="url(#pa918410890)"><path style="fill: #1f77b4"/>'
        '<use xlink:href="#m0123456789" x="1"/></g>'
        '<clipPath id="pa918410890"><rect/></clipPath><path id="m0123456789"/>'
    )
    noisy = svg.replace("a918410890", "3ba615d92a").replace("0123456789", "abcdefabcd")
    stable = stable_ids(svg, "nbviz")
    assert stable == stable_ids(noisy, "nbviz")
    ids = re.findall(r'id="([^"]+)"', stable)
    assert re.fullmatch(r"p[0-9a-f]{8}-0", ids[0])
    assert ids[1] == "m" + ids[0][1:-1] + "1"
    assert f"url(#{ids[0]})" in stable
    assert f'href="#{ids[1]}"' in stable
    assert "#1f77b4" in stable  # colours are not ids
    assert stable_ids(svg, "other") != stable  # the salt still separates figures


def test_png_dpi_sets_the_pixel_size(synthetic: tuple[Run, Truth], tmp_path: Path) -> None:
    run, _ = synthetic
    fig = run.figure("gradient_flow")
    width_in, height_in = fig.get_size_inches()
    for dpi in (50, 120):
        out = save(fig, tmp_path / f"flow{dpi}.png", dpi=dpi)
        data = out.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        assert (width, height) == (round(width_in * dpi), round(height_in * dpi))


def test_figures_follow_the_users_rcparams(synthetic: tuple[Run, Truth]) -> None:
    run, _ = synthetic
    with matplotlib.rc_context({"axes.facecolor": "#102030", "font.size": 7.5}):
        fig = run.figure("histogram", layer="fc2", kind="weight")
    ax = fig.axes[0]
    assert matplotlib.colors.to_hex(ax.get_facecolor()) == "#102030"
    assert ax.xaxis.label.get_fontsize() == 7.5


def test_a_plain_script_exports_without_pyplot(tmp_path: Path) -> None:
    path = tmp_path / "run.nbviz"
    write_synthetic_run(path)
    script = textwrap.dedent(
        f"""
        import sys
        import matplotlib
        import nbviz
        backend = matplotlib.get_backend()
        with nbviz.open({str(path)!r}) as run:
            for view in ("histogram", "distribution", "gradient_flow", "heatmap", "summary"):
                for ext in ("png", "svg", "pdf"):
                    run.export({str(tmp_path)!r} + f"/{{view}}.{{ext}}", view=view, kind="grad")
        assert "matplotlib.pyplot" not in sys.modules, "pyplot was imported"
        assert matplotlib.get_backend() == backend
        print("ok")
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "module://no.such.backend"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=240
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ok\n"
    assert len(list(tmp_path.glob("*.svg"))) == 5


def test_in_memory_run_exports(tmp_path: Path) -> None:
    writer, _ = write_synthetic_run(None)
    with writer.open_run() as run:
        out = run.export(tmp_path / "flow.svg", view="gradient_flow")
    writer.close()
    assert out.read_bytes().startswith(b"<?xml")


# ---------------------------------------------------------------------------------------------
# Bad requests


def test_bad_requests_say_what_would_work(synthetic: tuple[Run, Truth], tmp_path: Path) -> None:
    run, _ = synthetic
    with pytest.raises(SeriesNotFoundError, match=r"no layer 'fc3'.*did you mean 'fc2', 'fc1'"):
        run.export(tmp_path / "x.svg", view="histogram", layer="fc3")
    with pytest.raises(SeriesNotFoundError, match=r"'relu' has no 'weight' series"):
        run.export(tmp_path / "x.svg", view="histogram", layer="relu")
    with pytest.raises(ValueError, match=r"unknown view 'histo'.*histogram, distribution"):
        run.export(tmp_path / "x.svg", view="histo")
    with pytest.raises(ValueError, match=r"unknown kind 'grads'; did you mean 'grad'"):
        run.export(tmp_path / "x.svg", kind="grads")
    with pytest.raises(ValueError, match=r"step 400 is outside the recorded steps 0\.\.39"):
        run.export(tmp_path / "x.svg", step=400)
    with pytest.raises(ValueError, match=r"extension must be one of \.png, \.svg, \.pdf"):
        run.export(tmp_path / "x.jpg")
    with pytest.raises(FileNotFoundError, match=r"directory .*missing does not exist"):
        run.export(tmp_path / "missing" / "x.svg")
    assert not list(tmp_path.iterdir())


def test_a_large_heatmap_is_an_image_inside_the_svg(tmp_path: Path) -> None:
    """1,000 steps × 24 series: vector cells would make a multi-megabyte SVG."""
    from nbviz.records import StatRecord, StepRecord
    from nbviz.store import RunWriter

    path = tmp_path / "long.nbviz"
    rng = np.random.default_rng(0)
    with RunWriter(path) as writer:
        for step in range(1000):
            stats = np.abs(rng.normal(size=(24, len(RECORD_FIELDS)))) + 0.1
            writer.add([StatRecord(step, SeriesKey(f"l{i}", "grad", "weight"), stats[i])
                        for i in range(24)])  # fmt: skip
            writer.end_step(StepRecord(step))
    with nbviz.open(path) as run:
        out = run.export(tmp_path / "long.svg", view="heatmap", kind="grad")
    svg = out.read_bytes()
    assert len(svg) < 2_000_000
    assert b"<image" in svg
