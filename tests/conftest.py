from __future__ import annotations

import json
import os
import pathlib
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from jupyter_server import Server, jupyter_server
from static_page import CHROMIUM_ARGS

REPO = pathlib.Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--overwrite-golden",
        action="store_true",
        help="rewrite the golden files under tests/golden/ from the current output",
    )


def pytest_sessionstart(session: pytest.Session) -> None:
    for name in ("widget.js", "structure.js", "standalone.js"):
        bundle = REPO / "nbviz" / "static" / name
        if not bundle.is_file():
            raise pytest.UsageError(f"{bundle} is missing: run `npm run build` (./dev test does)")


@pytest.fixture(scope="session")
def chromium() -> Iterator[object]:
    """Debian's Chromium driven by Playwright; never a downloaded browser."""
    executable = shutil.which("chromium")
    if executable is None:
        # The opt-out is for local work only: in CI the browser tests are part of the guarantee.
        if os.environ.get("NBVIZ_SKIP_BROWSER") == "1" and os.environ.get("CI") != "true":
            pytest.skip("NBVIZ_SKIP_BROWSER=1 and no chromium on PATH")
        pytest.fail("chromium is not on PATH: `apt-get install -y chromium` (./dev test does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


EMPTY_NOTEBOOK = "empty.ipynb"
"""The one notebook in the `lab` fixture's root."""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A JupyterLab per test module over a fresh root (`Server.root`) holding `EMPTY_NOTEBOOK`.

    One notebook per server: the notebook helpers expect a single kernel on it.
    """
    root = tmp_path_factory.mktemp("lab-root")
    notebook = {
        "cells": [],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (root / EMPTY_NOTEBOOK).write_text(json.dumps(notebook))
    with jupyter_server("lab", root, tmp_path_factory.mktemp("lab-scratch")) as running:
        yield running


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    """A fresh browser page; the test fails if the page threw an uncaught error from nbviz."""
    context = chromium.new_context(viewport={"width": 1280, "height": 1100})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    # JupyterLab's own errors (extension manager, kernel restarts) are not ours to judge.
    assert not [e for e in errors if "nbviz" in e or "widget" in e.lower()], errors


@pytest.fixture
def artifacts() -> pathlib.Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
