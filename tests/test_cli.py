"""The command line, run as a user runs it (a subprocess): demo, info, export, and bad input.

stdout carries only results; errors go to stderr with exit code 1 (a file or request the run
cannot serve) or 2 (bad arguments); no progress bar when stderr is not a terminal.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from export_run import STEPS, write_synthetic_run

import nbviz
from nbviz.cli import main
from nbviz.cli._common import progress
from nbviz.records import Anomaly, SeriesKey, StepRecord
from nbviz.store import RunWriter

REPO = pathlib.Path(__file__).resolve().parent.parent


def nbviz_cli(
    *args: str | pathlib.Path, cwd: pathlib.Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "nbviz", *map(str, args)],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=300,
    )  # fmt: skip


@pytest.fixture(scope="module")
def run_file(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    path = tmp_path_factory.mktemp("cli") / "synthetic.nbviz"
    write_synthetic_run(path)
    return path


def test_demo_finds_the_broken_layer_and_writes_figures(tmp_path: pathlib.Path) -> None:
    done = nbviz_cli("demo", "--out", tmp_path, "--steps", "12", "--dpi", "40")
    assert done.returncode == 0, done.stderr
    names = ["demo.nbviz", "structure.txt", "summary.png", "histogram.png", "distribution.png",
             "gradient_flow.png", "heatmap.png"]  # fmt: skip
    *figures, report = done.stdout.splitlines()
    assert figures == [f"wrote {tmp_path / name}" for name in names]
    size = (tmp_path / "report.html").stat().st_size
    assert report.startswith(f"wrote {tmp_path / 'report.html'} ({size / 1e6:.2f} MB, ")
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert '"selected":"head.fc1"' in page  # opens on the broken layer
    assert '"graph":{"version":1,"nodes":[{' in page  # with the traced dataflow graph
    assert done.stderr == ""  # not a terminal: no progress bars
    for name in names[2:]:
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "head.fc1 (Linear)  own 131,200" in (tmp_path / "structure.txt").read_text()
    with nbviz.open(tmp_path / "demo.nbviz") as run:
        np.testing.assert_array_equal(run.steps, np.arange(12))
        # The broken layer: half of head.fc1's units never fire, so its ReLU reads >= 50% dead.
        assert (run.stats("head.relu", "activation").values["dead"] >= 0.5).all()
        assert run.stats("features.relu2", "activation").values["dead"][0] < 0.5
    info = nbviz_cli("info", tmp_path / "demo.nbviz")
    assert info.returncode == 0, info.stderr
    assert "diagnostics:\n  head.relu: " in info.stdout
    assert "of channels dead (never positive)" in info.stdout
    # A second demo starts its run afresh instead of appending to the first.
    assert nbviz_cli("demo", "--out", tmp_path, "--steps", "3").returncode == 0
    with nbviz.open(tmp_path / "demo.nbviz") as run:
        np.testing.assert_array_equal(run.steps, np.arange(3))


def test_info_describes_steps_layers_anomalies_and_sizes(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "run.nbviz"
    write_synthetic_run(path)
    with RunWriter(path) as w:  # append a step with a NaN gradient
        w.add_anomaly(Anomaly(STEPS, "backward", SeriesKey("fc2", "grad", "weight"), 3, 1, 0))
        w.end_step(StepRecord(STEPS))
    done = nbviz_cli("info", path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"run: {path} (complete)"
    assert lines[1] == f"steps: {STEPS + 1} train steps, 0..{STEPS}"
    assert lines[2] == "layers: 4, 3 with records"
    assert lines[4].split() == ["fc1", "Linear", "weight,", "grad,", "activation"]
    assert lines[5].split() == ["relu", "ReLU", "activation"]
    assert "anomalies: 1 (NaN/Inf; the first is where to look)" in lines
    assert f"  step {STEPS} backward: fc2.weight grad: 3 NaN, 1 +Inf, 0 -Inf" in lines
    assert "  relu: 50% of channels dead (never positive) at step 38" in lines
    with nbviz.open(path) as run:
        sizes = run.sizes()
    assert lines[-1].startswith("size: ")
    assert lines[-1].endswith(
        f"{sizes['series']} series, {sizes['stats']:,} statistics rows, "
        f"{sizes['hists']:,} histograms"
    )
    # 8 weight and gradient series every 5 steps, 3 activations on the even ones of those
    assert sizes["hists"] == 8 * (STEPS // 5) + 3 * (STEPS // 10)


def test_export_writes_the_same_bytes_as_run_export(
    run_file: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    out = tmp_path / "cli.svg"
    args = ["--view", "distribution", "--layer", "fc2", "--kind", "grad", "--step", "22"]
    done = nbviz_cli("export", run_file, *args, "--tensor", "weight", "--out", out)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"wrote {out}\n"
    with nbviz.open(run_file) as run:
        api = run.export(tmp_path / "api.svg", view="distribution", layer="fc2", kind="grad",
                         step=22, tensor="weight")  # fmt: skip
        frame = run.to_pandas()
    assert out.read_bytes() == api.read_bytes()
    csv = tmp_path / "stats.csv"
    assert nbviz_cli("export", run_file, "--out", csv).returncode == 0
    pd = pytest.importorskip("pandas")
    read = pd.read_csv(csv)
    read["tensor"] = read["tensor"].fillna("")  # a layer's output has tensor "", CSV's empty
    pd.testing.assert_frame_equal(read, frame, check_dtype=False)
    logdir = tmp_path / "tb"
    done = nbviz_cli("export", run_file, "--tensorboard", logdir)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"wrote {logdir}\n"
    assert list(logdir.glob("events.out.tfevents.*"))


def test_bad_files_exit_1_with_the_reason(
    run_file: pathlib.Path, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    not_a_run = tmp_path / "notes.txt"
    not_a_run.write_text("hello\n" * 100)
    truncated = tmp_path / "truncated.nbviz"
    truncated.write_bytes(run_file.read_bytes()[:20_000])
    cases = {
        tmp_path / "missing.nbviz": "missing.nbviz: no nbviz run at this path",
        not_a_run: "is not an nbviz run: it is not an SQLite database",
        truncated: "truncated.nbviz is truncated: its header says",
        tmp_path: "an nbviz run is a file, not a directory",
    }
    # One case as a user meets it, in a subprocess; the others through the same main().
    done = nbviz_cli("info", truncated)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        f"nbviz info: error: {truncated} is truncated: its header says "
        f"{_header_size(run_file)} bytes, the file has 20000\n"
    )
    for path, message in cases.items():
        for args in (["info", path], ["export", path, "--out", tmp_path / "x.png"]):
            code = main([str(a) for a in args])
            out, err = capsys.readouterr()
            assert (code, out) == (1, ""), (args, err)
            assert err.startswith(f"nbviz {args[0]}: error: ")
            assert message in err
    assert not (tmp_path / "x.png").exists()


def _header_size(path: pathlib.Path) -> int:
    header = path.read_bytes()[:100]
    return int.from_bytes(header[16:18], "big") * int.from_bytes(header[28:32], "big")


def test_bad_requests_name_what_would_work(
    run_file: pathlib.Path, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.svg"
    # One of each exit code as a user meets it, in a subprocess; the rest through main().
    done = nbviz_cli("export", run_file, "--layer", "fc", "--out", out)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        f"nbviz export: error: no layer 'fc' was recorded in {run_file}; "
        "did you mean 'fc2', 'fc1'?\n"
    )
    done = nbviz_cli("export", run_file, "--out", tmp_path / "x.jpg")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.endswith("the extension must be one of .png, .svg, .pdf, .csv, .html\n")
    exit_1 = {
        ("--layer", "fc3"): "no layer 'fc3' was recorded in",
        ("--layer", "fc"): "did you mean 'fc2', 'fc1'",
        ("--layer", "relu", "--view", "histogram"): "'relu' has no 'weight' series",
        ("--step", "99"): "step 99 is outside the recorded steps 0..39",
        ("--layer", "fc1", "--tensor", "wieght"): "no 'weight' tensor 'wieght'; did you mean",
    }
    for args, message in exit_1.items():
        code = main(["export", str(run_file), *args, "--out", str(out)])
        stdout, err = capsys.readouterr()
        assert (code, stdout) == (1, ""), args
        assert message in err
    exit_2: dict[tuple[str | pathlib.Path, ...], str] = {
        ("--out", tmp_path / "x.jpg"): "the extension must be one of .png, .svg, .pdf, .csv, .html",
        ("--out", out, "--view", "pie"): "argument --view: invalid choice: 'pie'",
        ("--out", out, "--step", "last"): "argument --step: invalid int value: 'last'",
        ("--out", out, "--dpi", "0"): "--dpi must be positive",
        (): "one of the arguments --out --tensorboard is required",
    }
    for bad, message in exit_2.items():
        with pytest.raises(SystemExit) as exit_:
            main(["export", str(run_file), *map(str, bad)])
        stdout, err = capsys.readouterr()
        assert (exit_.value.code, stdout) == (2, ""), bad
        assert message in err
        assert "usage: nbviz export" in err
    with pytest.raises(SystemExit) as exit_:
        main(["demo", "--steps", "0"])
    assert exit_.value.code == 2
    assert "--steps must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main([])
    assert exit_.value.code == 2
    assert not out.exists()


def test_progress_bars_only_on_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with progress(3, "steps") as bar:
        bar.update(3)
    assert capsys.readouterr() == ("", "")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    with progress(3, "steps") as bar:
        bar.update(3)
    out, err = capsys.readouterr()
    assert out == ""
    assert "steps: 100%" in err
