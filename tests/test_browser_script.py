"""Script to notebook in a real JupyterLab: a training script in another process writes a run file,
and a widget over that file (`nbviz.show(path)`) follows its steps while the script runs."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys
import time

import pytest
from conftest import EMPTY_NOTEBOOK
from jupyter_server import Server
from notebook_ui import CELL_TIMEOUT_MS, append_and_start, open_notebook
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

REPO = pathlib.Path(__file__).resolve().parent.parent
SCRIPT = REPO / "notebooks" / "train_script.py"
STEPS = 400


def step_count(page: Page) -> int:
    text = page.locator(".nbviz-step-label").first.text_content() or ""
    match = re.search(r"of ([\d,]+)", text)
    return int(match.group(1).replace(",", "")) if match else -1


def test_a_widget_follows_a_run_file_a_script_is_writing(lab: Server, page: Page) -> None:
    root = lab.root
    run = root / "runs" / "x.nbviz"
    hold = root / "go"  # the script waits here, half way, until the notebook has looked
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = [sys.executable, str(SCRIPT), str(run), str(STEPS), "0.02", str(hold)]
    script = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not run.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        open_notebook(page, lab.url, "lab", EMPTY_NOTEBOOK)
        append_and_start(page, "import nbviz\nviz = nbviz.show('runs/x.nbviz')\nviz")
        expect(page.locator(".nbviz-step-label").first).to_be_visible(timeout=CELL_TIMEOUT_MS)
        expect(page.locator(".nbviz-picker [data-layer='2']")).to_be_visible()

        # Held half way: the widget shows the steps written so far, and the script is alive.
        page.wait_for_function(
            "() => /of 200\\b/.test(document.querySelector('.nbviz-step-label')?.textContent)",
            timeout=60_000,
        )
        assert script.poll() is None
        hold.touch()

        # Released: the widget follows the new steps as they are written, to the end.
        seen = [step_count(page)]
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and seen[-1] < STEPS:
            page.wait_for_timeout(200)
            if step_count(page) != seen[-1]:
                seen.append(step_count(page))
        assert seen[-1] == STEPS, seen
        assert len(seen) >= 3, f"the step count jumped straight to the end: {seen}"
        out, _ = script.communicate(timeout=60)
        assert script.returncode == 0, out
    finally:
        hold.touch()
        if script.poll() is None:
            script.kill()
        script.communicate()  # reaps it and closes its pipe
