"""Starts a real JupyterLab or Notebook 7 server on 127.0.0.1 for the browser tests."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

REPO = pathlib.Path(__file__).resolve().parent.parent


def kernel_pythonpath() -> str:
    """PYTHONPATH for the server and its kernels: this checkout first, every entry absolute.

    A kernel runs in the notebook's folder, so a relative entry (PYTHONPATH=. from the
    repository) resolves there, and the kernel imported the installed nbviz instead (an editable
    install of another checkout, its bundles included) while the harness imported this one."""
    entries = [str(REPO)]
    for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep):
        if entry:
            entries.append(str(pathlib.Path(entry).resolve()))
    return os.pathsep.join(dict.fromkeys(entries))


@dataclass(frozen=True)
class Server:
    url: str
    root: pathlib.Path
    log: pathlib.Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _quiet_settings(settings: pathlib.Path) -> None:
    # The news pop-up and update check would cover the notebook and try the network.
    notification = (
        settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    )
    notification.parent.mkdir(parents=True)
    notification.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log: pathlib.Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"jupyter exited with {process.returncode}:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(f"{url}/api/status", timeout=2):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.3)
    raise RuntimeError(f"jupyter did not answer on {url} within 90 s:\n{_tail(log)}")


def _tail(log: pathlib.Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


@contextlib.contextmanager
def jupyter_server(
    app: str, root: pathlib.Path, scratch: pathlib.Path, options: Sequence[str] = ()
) -> Iterator[Server]:
    """Runs `jupyter <app>` (lab or notebook) serving `root`, with extra command-line `options`;
    stops it by PID on exit."""
    port = free_port()
    settings = scratch / "settings"
    _quiet_settings(settings)
    env = {
        **os.environ,
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(scratch / "workspaces"),
        "JUPYTER_RUNTIME_DIR": str(scratch / "runtime"),
        "PYTHONPATH": kernel_pythonpath(),
    }
    log = scratch / f"{app}.log"
    command = [
        sys.executable, "-m", "jupyter", app,
        "--no-browser",
        f"--port={port}",
        "--ServerApp.ip=127.0.0.1",
        "--ServerApp.port_retries=0",
        "--IdentityProvider.token=",
        "--ServerApp.password=",
        "--ServerApp.disable_check_xsrf=True",
        f"--ServerApp.root_dir={root}",
    ]  # fmt: skip
    command += options
    if os.geteuid() == 0:  # CI and these machines run as root
        command.append("--allow-root")
    if app == "lab":
        command += [
            "--LabApp.news_url=",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, process, log)
        yield Server(url=url, root=root, log=log)
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group (it owns the kernels), SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)
