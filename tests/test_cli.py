"""`nbviz demo`: trains, records and writes its outputs; bad arguments exit non-zero."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

import nbviz
from nbviz.__main__ import main


def test_demo_writes_run_structure_and_figures(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--out", str(tmp_path), "--steps", "12"]) == 0
    names = {"demo.nbviz", "structure.txt", "weights.png", "gradient_norms.png"}
    printed = capsys.readouterr().out
    for name in names:
        assert f"wrote {tmp_path / name}" in printed
    for figure in ("weights.png", "gradient_norms.png"):
        assert (tmp_path / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "head.fc1 (Linear)  own 131,200" in (tmp_path / "structure.txt").read_text()
    with nbviz.open(tmp_path / "demo.nbviz") as run:
        np.testing.assert_array_equal(run.steps, np.arange(12))
    # A second demo starts its run afresh instead of appending to the first.
    assert main(["demo", "--out", str(tmp_path), "--steps", "3"]) == 0
    with nbviz.open(tmp_path / "demo.nbviz") as run:
        np.testing.assert_array_equal(run.steps, np.arange(3))


def test_bad_arguments_exit_with_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["demo", "--steps", "0"])
    assert exit_.value.code == 2
    assert "--steps must be at least 1" in capsys.readouterr().err
