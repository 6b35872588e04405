"""A training script writes a run in a subprocess; this process reads it while it is written.

The reader half of "script to notebook" (`nbviz.open`, `Run.refresh`, `Run.follow`); the live
widget over a run file belongs to the views issue.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import nbviz

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "notebooks" / "train_script.py"
STEPS = 10


def _wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_a_notebook_follows_a_script_while_it_trains(tmp_path: Path) -> None:
    path, hold = tmp_path / "runs" / "x.nbviz", tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, str(SCRIPT), str(path), str(STEPS), "0", str(hold)]
    script = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _wait_for(path)
        run = nbviz.open(path)
        seen = []
        for step in run.follow(poll=0.05, timeout=60):
            seen.append(step)
            if step == STEPS // 2 - 1:  # the last step before the script waits
                break
        assert seen[-1] == STEPS // 2 - 1
        time.sleep(0.3)
        assert not run.complete
        assert script.poll() is None  # still running: the file was read while being written
        mid = run.stats("0", "grad", "weight")
        assert mid.step_lo.tolist() == list(range(STEPS // 2))
        assert not run.refresh()  # nothing new while the script waits
        assert run.last_step == STEPS // 2 - 1
        hold.touch()
        rest = list(run.follow(poll=0.05, timeout=60))
        assert script.wait(timeout=60) == 0
        assert rest[-1] == STEPS - 1
        assert run.complete
        done = run.stats("0", "grad", "weight")
        assert done.step_lo.tolist() == list(range(STEPS))
        np.testing.assert_array_equal(done.values["l2"][: STEPS // 2], mid.values["l2"])
    finally:
        if script.poll() is None:
            script.kill()
        script.communicate()
