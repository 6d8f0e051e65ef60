"""Optuna storage from a URL: a journal file by default (no server), or an RDB URL."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial

DEFAULT_JOURNAL = "optuna.journal"
JOURNAL_PREFIX = "journal:"
RDB_SCHEMES = ("sqlite", "postgresql", "mysql")
GRPC_PREFIX = "grpc://"  # Optuna's gRPC storage proxy (automl storage-proxy), for hundreds of workers

_PASSWORD = re.compile(r"(://[^:/@\s]+:)([^\s/]*)(@)")


def redact(text: str) -> str:
    """Hide passwords in any URL inside `text` (`user:secret@host` -> `user:***@host`)."""
    return _PASSWORD.sub(r"\1***\3", text)


def default_storage_url(cwd: Path | None = None) -> str:
    """A journal file in the working directory: safe for several processes, no server needed."""
    return f"{JOURNAL_PREFIX}{((cwd or Path.cwd()) / DEFAULT_JOURNAL).resolve()}"


def storage_file(url: str) -> Path | None:
    """The local file behind a journal or SQLite URL (None for a server)."""
    if url.startswith(JOURNAL_PREFIX):
        return Path(url.removeprefix(JOURNAL_PREFIX)).expanduser()
    if url.startswith("sqlite:"):
        return Path(url.split(":///", 1)[-1]).expanduser()
    return None


def grpc_address(url: str) -> tuple[str, int] | None:
    """(host, port) of Optuna's gRPC storage proxy for a `grpc://HOST:PORT` URL (None for any other URL); its
    study locks are served on the next port (`automl storage-proxy`)."""
    if not url.startswith(GRPC_PREFIX):
        return None
    host, _, port = url.removeprefix(GRPC_PREFIX).rstrip("/").rpartition(":")
    return (host or "localhost", int(port)) if port.isdigit() else None


def storage_problem(url: str) -> str | None:
    """Why `url` cannot be used as Optuna storage (checked before anything is created), or None."""
    if url.startswith(GRPC_PREFIX):
        return _proxy_problem(url)
    if url.startswith(JOURNAL_PREFIX):
        folder = storage_file(url).resolve().parent  # type: ignore[union-attr]
        return None if folder.is_dir() else f"the journal file's folder {folder} does not exist"
    scheme = url.split(":", 1)[0].split("+", 1)[0]
    if "://" not in url or scheme not in RDB_SCHEMES:
        return (
            f"unsupported storage URL {redact(url)!r}; use journal:PATH, sqlite:///PATH, "
            "postgresql://USER@HOST/DB, mysql://... or grpc://HOST:PORT (automl storage-proxy)"
        )
    if scheme == "sqlite":
        folder = storage_file(url).resolve().parent  # type: ignore[union-attr]
        return None if folder.is_dir() else f"the SQLite file's folder {folder} does not exist"
    try:
        import sqlalchemy

        engine = sqlalchemy.create_engine(url)
        with engine.connect():
            pass
        engine.dispose()
    except Exception as exc:
        return f"cannot connect to {redact(url)}: {redact(str(exc).splitlines()[0])}"
    return None


def open_storage(
    url: str, heartbeat_seconds: int | None = None, on_stale: Callable[[optuna.Study, FrozenTrial], None] | None = None
) -> optuna.storages.BaseStorage:
    """The Optuna storage for a URL (`journal:PATH` or an RDB URL).

    On a server-backed RDB storage, `heartbeat_seconds` turns on heartbeats: a trial whose worker has not
    beaten for two intervals is failed by the next worker that asks, which then calls `on_stale`.
    """
    if url.startswith(JOURNAL_PREFIX):
        return JournalStorage(JournalFileBackend(str(storage_file(url))))
    address = grpc_address(url)
    if address is not None:  # heartbeats do not pass the proxy: its own storage has none
        import warnings

        from optuna.storages import GrpcStorageProxy

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return GrpcStorageProxy(host=address[0], port=address[1])
    if heartbeat_seconds and not url.startswith("sqlite"):
        return RDBStorage(
            url,
            heartbeat_interval=heartbeat_seconds,
            grace_period=2 * heartbeat_seconds,
            heartbeat_stale_trial_callback=on_stale,
        )
    return RDBStorage(url)


def _proxy_problem(url: str) -> str | None:
    import importlib.util
    import socket

    if importlib.util.find_spec("grpc") is None:
        return "a grpc:// storage needs gRPC: pip install 'automl-orchestrator[grpc]'"
    address = grpc_address(url)
    if address is None:
        return f"a gRPC storage proxy URL is grpc://HOST:PORT (got {redact(url)!r})"
    host, port = address
    for what, number in (("the gRPC storage proxy", port), ("its lock server", port + 1)):
        try:
            socket.create_connection((host, number), timeout=5).close()
        except OSError as exc:
            return (
                f"cannot reach {what} at {host}:{number} ({exc.strerror or exc}); start it with "
                f"`automl storage-proxy --storage postgresql://... --port {port}`"
            )
    return None
