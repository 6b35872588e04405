from __future__ import annotations

import os
import pathlib
import shutil
from collections.abc import Iterator

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


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


@pytest.fixture
def artifacts() -> pathlib.Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
