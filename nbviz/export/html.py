"""The standalone HTML report: one file that shows a run offline, with the widget's own views.

The page replays the widget's wire protocol: it embeds the state model's traits (as ipywidgets
sends them) and the kernel's replies to the requests the views make, each computed by
`VizState.handle_request` as in the notebook, and a fake kernel in the page
(`js/src/standalone/kernel.ts`) answers from them. The views' code (`standalone.js`, both view
bundles in one module) and the stylesheet are inlined, so nothing is fetched.

Size: the code (about 1.6 MB, mostly the ELK layout engine) and the statistics are always
written; histograms are written per layer, and `budget` (bytes of the whole file) drops whole
layers' histograms by this rule: layers with a NaN/Inf anomaly are kept first, then the others
from the smallest to the largest (so as many layers as possible keep theirs). The page lists the
layers left without histograms.
"""

from __future__ import annotations

import base64
import html
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ipywidgets.widgets.widget import _remove_buffers

from ..live import STAT_ROW_BYTES, LiveFeed
from ..run import Run
from ..run_layers import run_hierarchy
from ..widgets import VizState
from ._paths import output_path

if TYPE_CHECKING:
    from ..dataflow import Graph
    from ..viz import Viz

_STATIC: Final = Path(__file__).resolve().parent.parent / "static"
BUNDLE: Final = _STATIC / "standalone.js"
STYLE: Final = _STATIC / "style.css"
REPORT_FORMAT: Final = 1
"""Version of the embedded data (`REPORT_FORMAT` in js/src/standalone/kernel.ts)."""
FORMATS: Final = ("html", "htm")
_MAX_LISTED: Final = 20
# Nothing leaves the page: no fetch, no frame, no form; the layout worker starts from a Blob.
_CSP: Final = (
    "default-src 'none'; script-src 'unsafe-inline' blob:; worker-src blob:; "
    "style-src 'unsafe-inline'; img-src blob: data:"
)


@dataclass(frozen=True)
class HtmlReport:
    """What `export_html` wrote."""

    path: Path
    size: int
    """Bytes of the file."""
    histogram_bytes: int
    """Bytes of the file that are histograms (the part a budget can drop)."""
    dropped: tuple[str, ...]
    """Layers whose histograms the budget left out (their statistics are in the file)."""
    budget: int | None

    def describe(self) -> str:
        """For the user: the path, the size, and what the budget left out."""
        text = (
            f"wrote {self.path} ({_mb(self.size)}, of which histograms {_mb(self.histogram_bytes)})"
        )
        if self.dropped:
            text += (
                f"\n  to fit the budget of {_mb(self.budget or 0)}, left out the histograms of"
                f" {len(self.dropped)} layers: {_names(self.dropped, _MAX_LISTED)}"
            )
        if self.budget is not None and self.size > self.budget:
            text += "\n  still over the budget: the code and the statistics alone take that much"
        return text


def write_html(
    source: Viz | Run,
    path: str | os.PathLike[str],
    *,
    graph: Graph | None = None,
    budget: int | None = None,
    selected: str | None = None,
) -> Path:
    """Write the standalone HTML report of `source` to `path` and print its size and what the
    budget left out (`Viz.export` and `Run.export` call this); see `export_html`."""
    report = export_html(source, path, graph=graph, budget=budget, selected=selected)
    print(report.describe())
    return report.path


def export_html(
    source: Viz | Run,
    path: str | os.PathLike[str],
    *,
    graph: Graph | None = None,
    budget: int | None = None,
    selected: str | None = None,
) -> HtmlReport:
    """Write one self-contained HTML file that shows `source` offline, from `file://`.

    `source` is what `nbviz.show` returned (its state as shown now, and its recorded run) or a
    `Run` (shown as `nbviz.show(run, selected=selected)` would; `graph`, from `nbviz.trace`,
    adds the dataflow diagram). The page has the layer picker, structure view, statistics, step
    slider and gradient flow, working from the data in the file. `budget` caps the file's bytes
    by leaving out histograms (never statistics; rule in the module docstring); the code and the
    statistics are always written, so a budget below them gives a file over it, without
    histograms. `selected` preselects a layer of a Run's report.
    """
    out, _ = output_path(path, FORMATS, "an HTML report")
    if budget is not None and (
        not isinstance(budget, int) or isinstance(budget, bool) or budget <= 0
    ):
        raise ValueError(f"budget must be a positive number of bytes, not {budget!r}")
    code, style = _read_static()
    with _Source(source, graph, selected) as src:
        state = src.values()
        replies = src.replies()
        title = src.title()
    drawn = any(r.data["request"]["type"] == "autograd_graph" for r in replies.fixed)
    needs = "exact histograms need" if drawn else "exact histograms and the autograd graph need"
    notes = [f"A static report: {needs} a running kernel."]
    # The page without histograms, its note naming every layer: the most the rest can take.
    every = [r.layer for r in replies.histograms]
    base = _page(title, [*notes, _dropped_note(every, budget)], state, replies.fixed, code, style)
    chosen, dropped = _fit(replies, len(base.encode()), budget)
    if dropped:
        notes.append(_dropped_note(dropped, budget))
    page = _page(title, notes, state, [*replies.fixed, *chosen], code, style).encode()
    out.write_bytes(page)
    return HtmlReport(
        path=out,
        size=len(page),
        histogram_bytes=sum(r.size for r in chosen),
        dropped=tuple(dropped),
        budget=budget,
    )


def _read_static() -> tuple[str, str]:
    if not BUNDLE.is_file() or not STYLE.is_file():
        raise RuntimeError(
            f"The nbviz front end is not built: {BUNDLE} is missing. In a source checkout run"
            " `npm install && npm run build`, or reinstall nbviz with pip."
        )
    code = BUNDLE.read_text(encoding="utf-8")
    style = STYLE.read_text(encoding="utf-8")
    # Inline, these would end their element early (esbuild escapes them inside strings).
    for text, end in ((code, "</script"), (code, "<!--"), (style, "</style")):
        if end in text.lower():
            raise RuntimeError(f"the built front end contains {end!r}: it cannot be inlined")
    return code, style


@dataclass(frozen=True)
class _Reply:
    data: dict[str, Any]
    """`{"request", "reply"}` as `js/src/standalone/kernel.ts` reads it."""
    layer: str
    anomalous: bool
    size: int
    """Bytes it takes in the page."""


@dataclass(frozen=True)
class _Replies:
    fixed: list[_Reply]
    """Always written: the snapshot (statistics) and the autograd drawing."""
    histograms: list[_Reply]
    """One per layer with histograms, in model order."""


class _Source:
    """The state and the run of what is exported, with a feed of the run that answers requests
    as the notebook's does; restores a `Viz`'s own feed on exit."""

    def __init__(self, source: Viz | Run, graph: Graph | None, selected: str | None) -> None:
        from ..viz import Viz  # viz imports the widgets stack; this module is imported by run

        self._viz: Viz | None = None
        self._own_state = False
        self._own_run = False
        self._name = "run"
        if isinstance(source, Run):
            run: Run = source  # Viz derives from an untyped class: mypy would see both
            self.run: Run | None = run
            self.state = VizState(run_hierarchy(run.layers))
            self._own_state = True
            try:
                self.state.selected = selected  # an unknown name raises, with the closest names
            except ValueError:
                self.state.close()
                raise
            if graph is not None:
                self.state.graph = graph.to_wire()
            if run.path is not None:
                self._name = run.path.name
        elif isinstance(source, Viz):
            if graph is not None or selected is not None:
                raise TypeError("a Viz is written as shown: graph= and selected= go with a Run")
            self._viz = source
            self.state = source.state
            self.state.ensure_summaries()  # deferred by nbviz.show in a notebook cell
            self.run = self._viz_reader(source)
        else:
            raise TypeError(
                "an HTML report is made from a Viz (nbviz.show) or a Run,"
                f" not {type(source).__name__}"
            )
        self.feed = None if self.run is None else LiveFeed(self.state, self.run, bytes_per_s=None)

    def _viz_reader(self, viz: Viz) -> Run | None:
        """A reader of the Viz's run of its own: the Viz's feed keeps following its own."""
        if viz.feed is None:
            return None
        shown = viz.feed.run
        if shown.path is not None:
            self._name = shown.path.name
        writer = None if viz.recorder is None else viz.recorder.writer
        if writer is not None:
            if not writer.closed:
                writer.flush()  # what was recorded up to now, also what the browser lacks yet
            self._own_run = True
            return writer.open_run()
        if shown.path is not None:
            self._own_run = True
            return Run.open(shown.path)
        return shown

    def __enter__(self) -> _Source:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._viz is not None and self._viz.feed is not None:
            self.state.live_with(self._viz.feed)
        if self._own_run and self.run is not None:
            self.run.close()
        if self._own_state:
            self.state.close()

    def title(self) -> str:
        return f"nbviz report: {self._name}"

    def values(self) -> dict[str, Any]:
        """The state's traits as ipywidgets would send them: buffers lifted out, with paths."""
        values = self.state.get_state()
        steps = None if self.run is None else self.run.steps
        if steps is not None and len(steps):
            # The feed's first push would set these in the notebook: the run's last train step.
            values["num_steps"] = max(values["num_steps"], int(steps[-1]) + 1)
            if self._viz is None:
                values["step"] = values["num_steps"] - 1
        lifted, paths, buffers = _remove_buffers(values)
        return {"values": lifted, "buffer_paths": paths, "buffers": [_b64(b) for b in buffers]}

    def replies(self) -> _Replies:
        fixed: list[_Reply] = []
        hists: list[_Reply] = []
        if self.feed is not None:
            # Every statistic and no histogram: those come per layer, within the budget.
            self.feed.snapshot_budget = len(self.feed.run.stat_rows(None)[1]) * STAT_ROW_BYTES
            snapshot = self._answer({"type": "run_snapshot"})
            fixed.append(snapshot)
            content = snapshot.data["reply"]["content"]["result"]
            hists = self._histograms(content["series"], content["anomalies"])
        if self._viz is not None and self.state.graph is not None:
            # Drawn now if it can be (Graphviz installed): the tab shows the kernel's reason if not.
            autograd = self._try({"type": "autograd_graph"})
            if autograd is not None:
                fixed.append(autograd)
        return _Replies(fixed, hists)

    def _histograms(
        self, series: Sequence[dict[str, Any]], anomalies: Sequence[dict[str, Any]]
    ) -> list[_Reply]:
        by_layer: dict[str, list[int]] = {}
        for s in series:
            by_layer.setdefault(s["layer"], []).append(s["id"])
        layer_of = {s["id"]: s["layer"] for s in series}
        bad = {layer_of[a["series"]] for a in anomalies}
        found = []
        for layer, ids in by_layer.items():
            reply = self._answer({"type": "run_histograms", "series": ids}, layer, layer in bad)
            if reply.data["reply"]["content"]["result"]["hists"]["step"]["shape"][0] > 0:
                found.append(reply)
        return found

    def _answer(self, request: dict[str, Any], layer: str = "", anomalous: bool = False) -> _Reply:
        reply = self._try(request, layer, anomalous)
        if reply is None:
            error = self.state.handle_request({**request, "id": ""})[0]["error"]
            raise RuntimeError(f"the run could not be read for the report: {error}")
        return reply

    def _try(
        self, request: dict[str, Any], layer: str = "", anomalous: bool = False
    ) -> _Reply | None:
        """The kernel's reply to `request` (its id is the page's to fill in); None if it failed."""
        reply, buffers = self.state.handle_request({**request, "id": ""})
        if not reply["ok"]:
            return None
        data = {
            "request": request,
            "reply": {"content": reply, "buffers": [_b64(b) for b in buffers]},
        }
        return _Reply(data, layer, anomalous, len(_json(data).encode()) + 1)  # + a comma


def _fit(replies: _Replies, base: int, budget: int | None) -> tuple[list[_Reply], list[str]]:
    """The histogram replies that fit in `budget` (all without one), in model order, and the
    layers left out."""
    if budget is None:
        return replies.histograms, []
    room = budget - base
    keep: set[int] = set()
    order = sorted(
        range(len(replies.histograms)),
        key=lambda i: (not replies.histograms[i].anomalous, replies.histograms[i].size, i),
    )
    for i in order:
        size = replies.histograms[i].size
        if size <= room:
            keep.add(i)
            room -= size
    chosen = [r for i, r in enumerate(replies.histograms) if i in keep]
    dropped = [r.layer for i, r in enumerate(replies.histograms) if i not in keep]
    return chosen, dropped


def _dropped_note(layers: Sequence[str], budget: int | None) -> str:
    return (
        f"Histograms of {len(layers)} layers were left out to fit a budget of {budget or 0:,}"
        f" bytes (their statistics are here): {_names(layers)}."
    )


def _names(layers: Sequence[str], limit: int | None = None) -> str:
    shown = [name or "(root)" for name in layers[:limit]]
    more = len(layers) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more else "")


def _mb(size: int) -> str:
    return f"{size / 1e6:.2f} MB"


def _b64(data: bytes | memoryview) -> str:
    return base64.b64encode(data).decode("ascii")


def _json(value: object) -> str:
    """JSON that stays text inside `<script type="application/json">`: `<`, `>` and `&` are
    escaped as JSON unicode escapes, so no module name can close the element."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _page(
    title: str,
    notes: list[str],
    state: dict[str, Any],
    replies: Sequence[_Reply],
    code: str,
    style: str,
) -> str:
    data = _json(
        {"format": REPORT_FORMAT, "title": title, "notes": notes, "state": state, "replies": []}
    )
    # The replies go in last, one by one: their sizes add up to what `_fit` counted.
    data = data[: -len("[]}")] + "[" + ",".join(_json(r.data) for r in replies) + "]}"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title>\n<style>{style}</style></head>\n"
        '<body><div id="nbviz-root" class="nbviz nbviz-report">'
        "<noscript>This nbviz report needs JavaScript.</noscript></div>\n"
        f'<script type="application/json" id="nbviz-report">{data}</script>\n'
        f'<script type="module">{code}</script>\n'
        "</body></html>\n"
    )
