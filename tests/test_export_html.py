"""The standalone HTML report (`nbviz.export.html`): what the file holds, checked against the run
it was written from, and the page itself in headless Chromium from `file://`, offline."""

from __future__ import annotations

import base64
import html.parser
import json
import math
import os
import pathlib
import re
import shutil
import subprocess
import sys
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from export_run import histogram_of, stats_of

import nbviz
from nbviz.export.html import export_html, write_html
from nbviz.live import HIST_ROW_BYTES
from nbviz.records import RECORD_FIELDS, Anomaly, LayerMeta, SeriesKey, StatRecord, StepRecord
from nbviz.store import RunWriter

REPO = pathlib.Path(__file__).resolve().parent.parent
HOSTILE = "</script><img src=x onerror=alert(1)>"


def write_run(
    path: pathlib.Path, steps: int, tensors: dict[str, int], anomalous: str | None = None
) -> None:
    """A run with `tensors[layer]` weight series per layer, statistics and histograms each step,
    and a NaN anomaly in `anomalous` at the last step."""
    rng = np.random.default_rng(0)
    layers = [LayerMeta("", "Net", None)]
    layers += [LayerMeta(name, "Linear", "") for name in tensors]
    with RunWriter(path, layers=layers) as writer:
        for step in range(steps):
            records = []
            for layer, n in tensors.items():
                for t in range(n):
                    x = rng.normal(step / steps, 1.0, 50)
                    key = SeriesKey(layer, "weight", f"w{t}")
                    records.append(StatRecord(step, key, stats_of(x), histogram_of(x), "float32"))
            writer.add(records)
            if anomalous is not None and step == steps - 1:
                writer.add_anomaly(
                    Anomaly(step, "backward", SeriesKey(anomalous, "weight", "w0"), 1, 0, 0)
                )
            writer.end_step(StepRecord(step))


def embedded(path: pathlib.Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    match = re.search(
        r'<script type="application/json" id="nbviz-report">(.*?)</script>', text, re.S
    )
    assert match is not None
    data: dict[str, Any] = json.loads(match.group(1))
    return data


def decode(reply: dict[str, Any], ref: dict[str, Any]) -> np.ndarray[Any, Any]:
    """An array of a reply, by its `{buffer, dtype, shape}` reference (independently of nbviz)."""
    raw = base64.b64decode(reply["buffers"][ref["buffer"]])
    flat: np.ndarray[Any, Any] = np.frombuffer(raw, dtype=np.dtype(ref["dtype"]).newbyteorder("<"))
    shaped: np.ndarray[Any, Any] = flat.reshape(ref["shape"])
    return shaped


def results(data: dict[str, Any], kind: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [
        (r["reply"]["content"]["result"], r["reply"])
        for r in data["replies"]
        if r["request"]["type"] == kind
    ]


class Tags(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def test_report_is_self_contained_and_holds_the_run(tmp_path: pathlib.Path) -> None:
    run_file = tmp_path / "run.nbviz"
    write_run(run_file, 6, {"a": 1, "b": 2})
    with nbviz.open(run_file) as run:
        report = export_html(run, tmp_path / "r.html", selected="b")
        stat_rows = run.stat_rows(None)
        hist_b = run.histograms("b", "weight", "w1")
    assert report.size == (tmp_path / "r.html").stat().st_size
    parser = Tags()
    parser.feed((tmp_path / "r.html").read_text(encoding="utf-8"))
    names = [tag for tag, _ in parser.tags]
    # Nothing to fetch: no linked or sourced resource at all, and a policy that forbids it.
    assert not [t for t, a in parser.tags if "src" in a or "href" in a], parser.tags
    assert {"link", "img", "iframe"}.isdisjoint(names)
    assert names.count("script") == 2
    csp = next(
        a["content"] for t, a in parser.tags if a.get("http-equiv") == "Content-Security-Policy"
    )
    assert csp is not None
    assert "default-src 'none'" in csp
    assert "connect-src" not in csp

    data = embedded(tmp_path / "r.html")
    assert data["state"]["values"]["selected"] == "b"
    assert data["state"]["values"]["num_steps"] == 6
    assert [row["name"] for row in data["state"]["values"]["layers"]] == ["", "a", "b"]
    # Every statistic, as the run has it; the snapshot itself holds no histogram.
    ((snapshot, raw),) = results(data, "run_snapshot")
    values = decode(raw, snapshot["stats"]["values"])
    assert values.shape == (len(stat_rows[1]), len(RECORD_FIELDS))
    order = np.lexsort(
        (decode(raw, snapshot["stats"]["step"]), decode(raw, snapshot["stats"]["series"]))
    )
    expected = stat_rows[2][np.lexsort((stat_rows[1], stat_rows[0]))]
    np.testing.assert_allclose(values[order], expected.astype(np.float32))
    assert snapshot["hists"]["step"]["shape"] == [0]
    # Histograms per layer, as the run has them.
    by_layer = {r["request"]["series"][0]: r for r in data["replies"] if "series" in r["request"]}
    assert len(by_layer) == 2
    series = {s["id"]: s for s in snapshot["series"]}
    (b_reply,) = [r for r in by_layer.values() if series[r["request"]["series"][0]]["layer"] == "b"]
    hists = b_reply["reply"]["content"]["result"]["hists"]
    w1 = [s["id"] for s in snapshot["series"] if s["tensor"] == "w1"]
    rows = decode(b_reply["reply"], hists["series"]) == w1[0]
    counts = decode(b_reply["reply"], hists["counts"])[rows]
    steps = decode(b_reply["reply"], hists["step"])[rows]
    np.testing.assert_array_equal(counts[np.argsort(steps)], hist_b.counts)


def test_size_scales_with_the_recorded_steps(tmp_path: pathlib.Path) -> None:
    sizes = {}
    for steps in (10, 40):
        write_run(tmp_path / f"{steps}.nbviz", steps, {"a": 2, "b": 2})
        with nbviz.open(tmp_path / f"{steps}.nbviz") as run:
            sizes[steps] = export_html(run, tmp_path / f"{steps}.html")
    # 4 series of 64-bin float32 histograms a step, in base64 (4/3), plus their step, grid...
    grown = sizes[40].histogram_bytes - sizes[10].histogram_bytes
    assert grown == pytest.approx(30 * 4 * HIST_ROW_BYTES * 4 / 3, rel=0.1)
    assert sizes[40].size - sizes[10].size > grown  # the statistics grow too
    assert sizes[10].dropped == ()
    assert sizes[10].budget is None


def test_budget_drops_histograms_by_the_rule_and_keeps_every_statistic(
    tmp_path: pathlib.Path,
) -> None:
    run_file = tmp_path / "run.nbviz"
    tensors = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5}
    write_run(run_file, 8, tensors, anomalous="five")
    with nbviz.open(run_file) as run:
        full = export_html(run, tmp_path / "full.html")
        nothing = export_html(run, tmp_path / "tiny.html", budget=1000)
        per_series = full.histogram_bytes / sum(tensors.values())
        # Room for the anomalous layer (5 series) and the two smallest (1 + 2), not for four.
        budget = full.size - full.histogram_bytes + int(per_series * 9.5)
        fitted = export_html(run, tmp_path / "fit.html", budget=budget)
        stat_count = len(run.stat_rows(None)[1])
    assert fitted.size <= budget < full.size
    assert fitted.dropped == ("three", "four")  # largest first; the anomalous one is kept
    kept = {
        r["request"]["series"][0]
        for r in embedded(tmp_path / "fit.html")["replies"]
        if "series" in r["request"]
    }
    assert len(kept) == 3
    page = (tmp_path / "fit.html").read_text(encoding="utf-8")
    assert "Histograms of 2 layers were left out" in page
    assert "three, four." in page
    # Below the code and the statistics: over the budget, no histogram, every statistic.
    assert nothing.size > 1000
    assert nothing.histogram_bytes == 0
    assert set(nothing.dropped) == set(tensors)
    for name in ("fit.html", "tiny.html", "full.html"):
        ((snapshot, _),) = results(embedded(tmp_path / name), "run_snapshot")
        assert snapshot["stats"]["step"]["shape"] == [stat_count]
    assert "left out the histograms of 5 layers" in nothing.describe()
    assert "still over the budget" in nothing.describe()


def test_hostile_module_name_stays_text(tmp_path: pathlib.Path) -> None:
    write_run(tmp_path / "run.nbviz", 2, {HOSTILE: 1})
    with nbviz.open(tmp_path / "run.nbviz") as run:
        report = write_html(run, tmp_path / "x.html")
    text = report.read_text(encoding="utf-8")
    assert HOSTILE not in text
    assert "<img" not in text
    assert HOSTILE in [row["name"] for row in embedded(report)["state"]["values"]["layers"]]


def test_bad_arguments_say_what_is_wrong(tmp_path: pathlib.Path) -> None:
    write_run(tmp_path / "run.nbviz", 2, {"a": 1})
    with nbviz.open(tmp_path / "run.nbviz") as run:
        with pytest.raises(ValueError, match=r"extension must be one of \.html, \.htm"):
            export_html(run, tmp_path / "x.txt")
        with pytest.raises(FileNotFoundError, match="does not exist"):
            export_html(run, tmp_path / "missing" / "x.html")
        with pytest.raises(ValueError, match="positive number of bytes"):
            export_html(run, tmp_path / "x.html", budget=0)
        with pytest.raises(ValueError, match="No layer named 'b'"):
            export_html(run, tmp_path / "x.html", selected="b")
        with pytest.raises(TypeError, match="options of the HTML report"):
            run.export(tmp_path / "x.png", budget=10)
        with pytest.raises(TypeError, match="from a Viz"):
            export_html("run.nbviz", tmp_path / "x.html")  # type: ignore[arg-type]
        assert run.export(tmp_path / "y.html", layer="a") == tmp_path / "y.html"
    assert embedded(tmp_path / "y.html")["state"]["values"]["selected"] == "a"
    assert not (tmp_path / "x.html").exists()


def test_cli_prints_the_size_and_what_the_budget_dropped(tmp_path: pathlib.Path) -> None:
    write_run(tmp_path / "run.nbviz", 4, {"a": 1, "b": 3})
    out = tmp_path / "r.html"

    def cli(*args: str | pathlib.Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "nbviz", "export", *map(str, args)],
            capture_output=True, text=True, timeout=300,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )  # fmt: skip

    done = cli(tmp_path / "run.nbviz", "--out", out)
    assert done.returncode == 0, done.stderr
    size = out.stat().st_size
    assert re.fullmatch(
        rf"wrote {re.escape(str(out))} \({size / 1e6:.2f} MB, of which histograms 0\.0\d MB\)\n",
        done.stdout,
    ), done.stdout
    assert embedded(out)["state"]["values"]["selected"] is None
    done = cli(tmp_path / "run.nbviz", "--out", out, "--budget", str(size - 10), "--layer", "b")
    assert done.returncode == 0, done.stderr
    assert embedded(out)["state"]["values"]["selected"] == "b"
    assert done.stdout.splitlines()[1].endswith("left out the histograms of 1 layers: b")
    bad = cli(tmp_path / "run.nbviz", "--out", tmp_path / "r.png", "--budget", "100")
    assert bad.returncode == 2
    assert "--budget applies to an HTML report" in bad.stderr


def test_viz_report_leaves_the_live_widget_following_its_run(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    viz = nbviz.show(model, torch.randn(2, 4), optimizer=opt, every=1, histograms_every=1)
    feed, recorder = viz.feed, viz.recorder
    assert feed is not None
    assert recorder is not None
    try:
        feed.stop()  # pushes by hand: deterministic
        feed.push()

        def train(n: int) -> None:
            for _ in range(n):
                loss = model(torch.randn(8, 4)).pow(2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()

        train(3)
        path = viz.export(tmp_path / "viz.html")  # what a user calls: Viz.export -> write_html
        assert path == tmp_path / "viz.html"
        size_mb = path.stat().st_size / 1e6
        assert capsys.readouterr().out.startswith(f"wrote {path} ({size_mb:.2f} MB, of which")
        data = embedded(path)
        ((snapshot, _),) = results(data, "run_snapshot")
        assert [s["step"] for s in snapshot["steps"]] == [0, 1, 2]
        assert data["state"]["values"]["graph"]["nodes"]  # the traced example
        assert data["state"]["values"]["tensors"]  # the parameters' own histograms
        # The autograd drawing, made at export time where Graphviz can draw it.
        autograd = [result["svg"] for result, _ in results(data, "autograd_graph")]
        assert len(autograd) == (1 if shutil.which("dot") else 0)
        assert all("<svg" in svg for svg in autograd)
        # The widget's own feed still sends what it has not sent, and then what is new.
        sent = feed.push()
        assert sent is not None
        assert [s["step"] for s in sent[0]["steps"]] == [0, 1, 2]
        train(1)
        recorder.flush()
        sent = feed.push()
        assert sent is not None
        assert [s["step"] for s in sent[0]["steps"]] == [3]
        with pytest.raises(TypeError, match="written as shown"):
            write_html(viz, tmp_path / "v.html", selected="0")
    finally:
        viz.close()


# -- the page in a browser ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[pathlib.Path, pathlib.Path]:
    """A nested model trained 12 steps, recorded every step; its report with the traced graph."""
    tmp = tmp_path_factory.mktemp("report")
    torch.manual_seed(0)
    body = torch.nn.Sequential(OrderedDict(fc1=torch.nn.Linear(6, 8), relu=torch.nn.ReLU()))
    model = torch.nn.Sequential(OrderedDict(body=body, head=torch.nn.Linear(8, 2)))
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    with nbviz.watch(model, tmp / "run.nbviz", optimizer=opt, every=1, histograms_every=1,
                     activations_every=1, updates_every=1):  # fmt: skip
        for _ in range(12):
            loss = model(torch.randn(16, 6)).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    graph = nbviz.trace(model, torch.randn(2, 6))
    with nbviz.open(tmp / "run.nbviz") as run:
        return write_html(run, tmp / "report.html", graph=graph), tmp / "run.nbviz"


@pytest.fixture
def offline_page(chromium: Any) -> Iterator[tuple[Any, list[str], list[str]]]:
    """A page whose every request other than file:, blob: and data: is recorded and refused."""
    context = chromium.new_context(viewport={"width": 1300, "height": 1200})
    attempted: list[str] = []

    def refuse(route: Any) -> None:
        attempted.append(route.request.url)
        route.abort()

    context.route(lambda url: not url.startswith(("file:", "blob:", "data:")), refuse)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("dialog", lambda d: errors.append(f"dialog: {d.message}"))
    yield page, attempted, errors
    context.close()


def number(text: str | None) -> float:
    return float((text or "").replace("−", "-").replace(",", ""))


@pytest.mark.browser
def test_report_works_offline_from_a_file(
    trained_report: tuple[pathlib.Path, pathlib.Path],
    offline_page: tuple[Any, list[str], list[str]],
    artifacts: pathlib.Path,
) -> None:
    from playwright.sync_api import expect

    report, run_file = trained_report
    page, attempted, errors = offline_page
    page.goto(report.as_uri())
    view = page.locator(".nbviz-structure")
    # The diagram, collapsed to the top-level modules; opening "body" shows its layers.
    expect(view.locator(".nbviz-box[data-name='body']")).to_be_visible(timeout=20_000)
    expect(view.locator(".nbviz-box[data-name='body.fc1']")).to_have_count(0)
    view.locator("[data-name='body'] [data-toggle]").click()
    fc1 = view.locator(".nbviz-box[data-name='body.fc1']")
    expect(fc1).to_be_visible(timeout=20_000)
    # A click on a box selects the layer in the picker, and the statistics show it.
    fc1.click()
    expect(page.locator(".nbviz-picker [data-layer='body.fc1'].is-selected")).to_be_visible()
    stats = page.locator(".nbviz-stats")
    expect(stats.locator(".nbviz-hp-title .nbviz-name")).to_have_text("body.fc1")
    expect(stats.locator(".nbviz-hp-step")).to_have_text(re.compile(r"step 11$"))
    weight_max = stats.locator(".nbviz-hp-row[data-kind='weight'] td[data-stat='max']").first
    expect(weight_max).not_to_be_empty()
    bars = stats.locator(".nbviz-hp-row[data-kind='weight'] path.nbviz-bars").first
    drawn_last = bars.get_attribute("d")
    assert drawn_last
    # The overlay colours the boxes by the metric at the step.
    view.locator("select.nbviz-overlay-metric").select_option("grad_norm")
    rect = view.locator(".nbviz-box[data-name='body.fc1'] > rect.nbviz-box-rect")
    expect(rect).to_have_attribute("style", re.compile(r"fill"), timeout=10_000)
    fill_last = rect.get_attribute("style")
    max_last = weight_max.text_content()
    # The slider moves every view to step 0: the values are the run's, the drawing changes.
    page.locator(".nbviz-slider input.nbviz-range").fill("0")
    expect(stats.locator(".nbviz-hp-step")).to_have_text(re.compile(r"step 0$"))
    with nbviz.open(run_file) as run:
        w = run.stats("body.fc1", "weight", "weight").values["max"]
    expect(weight_max).not_to_have_text(max_last or "", timeout=5_000)
    assert number(weight_max.text_content()) == pytest.approx(w[0], rel=1e-3)
    assert not math.isclose(w[0], w[-1], rel_tol=1e-3)
    assert bars.get_attribute("d") != drawn_last
    expect(rect).not_to_have_attribute("style", fill_last or "")
    # The gradient flow view draws bars and a heatmap with their scale.
    flow = page.locator(".nbviz-flow")
    expect(flow.locator(".nbviz-gf-range")).to_have_text(re.compile(r"\d.*….*\d"))
    page.screenshot(path=str(artifacts / "html-report.png"), full_page=True)
    assert attempted == []
    assert errors == []


@pytest.mark.browser
def test_hostile_name_is_shown_as_text(
    tmp_path: pathlib.Path, offline_page: tuple[Any, list[str], list[str]]
) -> None:
    from playwright.sync_api import expect

    write_run(tmp_path / "run.nbviz", 2, {HOSTILE: 1})
    with nbviz.open(tmp_path / "run.nbviz") as run:
        report = write_html(run, tmp_path / "x.html", selected=HOSTILE)
    page, attempted, errors = offline_page
    page.goto(report.as_uri())
    expect(page.locator(".nbviz-picker")).to_contain_text(HOSTILE, timeout=20_000)
    expect(page.locator(".nbviz-stats .nbviz-hp-title .nbviz-name")).to_have_text(HOSTILE)
    assert page.locator("img").count() == 0
    assert attempted == []
    assert errors == []


@pytest.mark.browser
def test_viz_report_shows_parameters_and_autograd_and_says_what_needs_a_kernel(
    tmp_path: pathlib.Path, offline_page: tuple[Any, list[str], list[str]]
) -> None:
    from playwright.sync_api import expect

    torch.manual_seed(0)
    big = torch.nn.Linear(300, 300)  # 90,000 weights: histogrammed from a sample
    model = torch.nn.Sequential(big, torch.nn.ReLU(), torch.nn.Linear(300, 2))
    viz = nbviz.show(model, torch.randn(2, 300), record=False, selected="0")
    try:
        report = write_html(viz, tmp_path / "viz.html")
    finally:
        viz.close()
    page, attempted, errors = offline_page
    page.goto(report.as_uri())
    # No run: the selected layer's parameters as they were, sampled over 65,536 elements.
    card = page.locator(".nbviz-hist-card[data-tensor='0.weight']")
    expect(card).to_be_visible(timeout=20_000)
    expect(card.locator("td[data-stat='max']")).not_to_be_empty()
    top = big.weight.detach().max().item()
    assert number(card.locator("td[data-stat='max']").text_content()) == pytest.approx(
        top, rel=1e-3
    )
    card.locator("button.nbviz-exact").click()
    expect(card.locator(".nbviz-error")).to_contain_text("need a running kernel")
    view = page.locator(".nbviz-structure")
    if shutil.which("dot"):  # drawn at export time
        view.locator(".nbviz-tab", has_text="Autograd").click()
        expect(view.locator("img.nbviz-autograd-img")).to_be_visible(timeout=20_000)
        page.wait_for_function(
            "() => document.querySelector('img.nbviz-autograd-img')?.naturalWidth > 0"
        )
    assert attempted == []
    assert errors == []
