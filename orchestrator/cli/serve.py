"""`automl serve STUDY`: the study's best model behind MLflow's scoring server on loopback, started with this
installation's environment (the server starts `uvicorn` by name: the venv's bin folder goes on PATH, so no
activated venv is needed). Every check that can fail fast runs first (the model, uvicorn, the port), and the
command says when the server answers, or why it stopped with the end of its output."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from pathlib import Path

from orchestrator.errors import UserError
from orchestrator.flow import FlowSignal

READY_SECONDS = 180.0  # the server imports MLflow, torch and the model before it answers /ping
POLL_SECONDS = 0.5
TAIL_LINES = 20


class ServeError(UserError):
    """The model cannot be served; the message says why and what to do."""


def check_port(port: int) -> None:
    """Raise ServeError unless `port` on 127.0.0.1 is free."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise ServeError(
                f"port {port} on 127.0.0.1 is taken ({exc.strerror}): choose another with --port"
            ) from None


def server_command(model_uri: str, port: int) -> list[str]:
    """MLflow's scoring server for `model_uri`, on 127.0.0.1 only, in this Python environment."""
    return [
        sys.executable,
        "-m",
        "mlflow",
        "models",
        "serve",
        "-m",
        model_uri,
        "--env-manager",
        "local",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]


def server_environment(tracking_uri: str) -> dict[str, str]:
    """This environment with the interpreter's bin folder first on PATH and the study's MLflow store."""
    bin_dir = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        "MLFLOW_TRACKING_URI": tracking_uri,
    }


def answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def serve(
    model_uri: str, tracking_uri: str, port: int, say: Callable[[str], None], ready_seconds: float = READY_SECONDS
) -> int:
    """Start the server, say when it answers, and wait for it (Ctrl-C stops it); its exit code. Raises
    ServeError when it cannot start or stops before it answers."""
    if importlib.util.find_spec("uvicorn") is None:
        raise ServeError(
            "uvicorn is not installed in this environment (MLflow's scoring server needs it): "
            "reinstall the project (bash scripts/install.sh)"
        )
    check_port(port)
    restore = _stop_on_sigterm()
    process = subprocess.Popen(
        server_command(model_uri, port),
        env=server_environment(tracking_uri),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    try:
        os.set_blocking(process.stdout.fileno(), False)  # type: ignore[union-attr]
        deadline = time.monotonic() + ready_seconds
        while not answers(port):
            _drain(process, tail)
            if process.poll() is not None:
                raise ServeError(
                    f"the scoring server stopped (exit {process.returncode}) before it answered; its "
                    "output ends:\n" + "\n".join(tail)
                )
            if time.monotonic() > deadline:
                raise ServeError(
                    f"the scoring server did not answer within {ready_seconds:.0f} s; its output "
                    "ends:\n" + "\n".join(tail)
                )
            time.sleep(POLL_SECONDS)
        say(f"ready: POST rows to http://127.0.0.1:{port}/invocations (Ctrl-C stops the server)")
        os.set_blocking(process.stdout.fileno(), True)  # type: ignore[union-attr]
        for line in process.stdout:  # type: ignore[union-attr]
            say(line.rstrip())
        return process.wait()
    except _Terminated:
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        return 130
    finally:
        _stop(process)
        restore()


class _Terminated(FlowSignal):
    """SIGTERM arrived: the server is stopped and the command exits 143, as every command does."""


def _stop_on_sigterm() -> Callable[[], None]:
    """SIGTERM (a service manager, `kill`) stops the server too: it runs in a session of its own, so a signal to
    this process alone would leave it serving. Returns what restores the previous handler."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def stop(signum: int, frame: object) -> None:
        raise _Terminated

    previous = signal.signal(signal.SIGTERM, stop)

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous)

    return restore


def _drain(process: subprocess.Popen, tail: deque[str]) -> None:
    try:
        text = process.stdout.read()  # type: ignore[union-attr]
    except (BlockingIOError, TypeError):
        return
    if text:
        tail.extend(text.splitlines())


def _stop(process: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the scoring server's process group and wait until all of it has gone (MLflow's command exits before
    the uvicorn it started has let go of the port), SIGKILL what is left after `grace` s: once `automl serve`
    returns, nothing of it answers."""
    _signal_group(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _group_alive(process.pid):
        if time.monotonic() > deadline:
            _signal_group(process.pid, signal.SIGKILL)
            break
        process.poll()  # reap the leader, so that a finished group reads as gone
        time.sleep(POLL_SECONDS)
    process.wait()


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
