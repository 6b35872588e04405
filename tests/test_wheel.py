"""The wheel is built from a clean copy of the sources, carries the bundle, and imports cleanly."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys
import zipfile

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent

SMOKE = """
import pathlib, torch, nbviz
viz = nbviz.show(torch.nn.Sequential(torch.nn.Linear(3, 2)), selected="0")
static = pathlib.Path(nbviz.__file__).parent / "static"
assert (static / "widget.js").stat().st_size > 1000
assert (static / "structure.js").stat().st_size > 100_000  # with the layout worker
assert (static / "standalone.js").stat().st_size > 100_000  # the HTML report's, likewise
print("ok", viz.selected, nbviz.__file__)
"""


def tracked_copy(destination: pathlib.Path) -> None:
    """The files a fresh clone would have: no bundle, no node_modules, no venv."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, check=True, capture_output=True, text=True,
    ).stdout.split("\0")  # fmt: skip
    for name in filter(None, files):
        source = REPO / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)


@pytest.mark.slow
def test_wheel_builds_bundle_and_imports_in_clean_venv(tmp_path: pathlib.Path) -> None:
    source = tmp_path / "src"
    tracked_copy(source)
    assert not (source / "nbviz" / "static" / "widget.js").exists()
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path / "dist"), str(source)],
        check=True, capture_output=True,
    )  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("nbviz-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    bundles = {
        "nbviz/static/widget.js",
        "nbviz/static/structure.js",
        "nbviz/static/standalone.js",
        "nbviz/static/style.css",
    }
    assert {*bundles, "nbviz/_protocol.py"} <= names
    assert not [n for n in names if "node_modules" in n or n.endswith(".ts") or "tests/" in n]

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    # torch pinned: an unpinned resolve would fetch a multi-GB CUDA build.
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(wheel), "torch==2.13.0"],
        check=True, capture_output=True,
    )  # fmt: skip
    out = subprocess.run(
        [str(python), "-c", SMOKE], check=True, capture_output=True, text=True, cwd=tmp_path
    ).stdout
    assert out.startswith("ok 0 ")
    assert str(venv) in out, "imported from the clean venv, not the checkout"
