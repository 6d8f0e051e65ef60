"""`automl storage-proxy`: Optuna's gRPC storage proxy for an RDB storage, with the study locks beside it."""

from __future__ import annotations

import argparse
import importlib.util
import threading

from orchestrator.cli.options import storage_option
from orchestrator.errors import EXIT_OK, CliError

PROXY_START_SECONDS = 30  # how long the proxy may take to accept connections


def cmd_storage_proxy(args: argparse.Namespace) -> int:
    """Serve an RDB storage to workers through Optuna's gRPC proxy, with the study locks beside it."""
    from orchestrator.execution.lock_server import LockServer
    from orchestrator.study.storage import redact

    url = _proxied_storage(args)
    try:
        locks = LockServer(args.host, args.port + 1)
    except OSError as exc:
        raise CliError(f"storage-proxy: cannot listen on {args.host}:{args.port + 1}: {exc.strerror}") from None
    locks.start()
    server = _start_proxy(url, args.host, args.port)
    if not _accepts_connections(server, args.host, args.port):
        locks.shutdown()
        raise CliError(f"storage-proxy: the gRPC proxy did not start on {args.host}:{args.port}")
    print(
        f"serving {redact(url)} as storage: grpc://{args.host}:{args.port} (study locks on port {args.port + 1});"
        " Ctrl-C stops",
        flush=True,
    )
    try:
        while server.is_alive():
            server.join(timeout=1)
    except KeyboardInterrupt:
        pass
    finally:
        locks.shutdown()
    return EXIT_OK


def _proxied_storage(args: argparse.Namespace) -> str:
    """The RDB storage URL to serve (--storage or AUTOML_STORAGE), once it is known usable and gRPC is installed."""
    from orchestrator.study.storage import RDB_SCHEMES, storage_problem

    url = storage_option(args)
    if not url or url.split(":", 1)[0].split("+", 1)[0] not in RDB_SCHEMES:
        raise CliError(
            "storage-proxy: --storage (or AUTOML_STORAGE) must be a database URL such as postgresql://USER@HOST/DB"
        )
    problem = storage_problem(url)
    if problem:
        raise CliError(f"storage-proxy: {problem}")
    if importlib.util.find_spec("grpc") is None:
        raise CliError("storage-proxy: needs gRPC: pip install 'automl-orchestrator[grpc]'")
    return url


def _start_proxy(url: str, host: str, port: int) -> threading.Thread:
    """Optuna's gRPC proxy for the storage at `url`, serving on host:port in a daemon thread (quiet but for
    warnings)."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    server = threading.Thread(
        target=optuna.storages.run_grpc_proxy_server,
        args=(optuna.storages.RDBStorage(url),),
        kwargs={"host": host, "port": port},
        daemon=True,
        name="grpc-proxy",
    )
    server.start()
    return server


def _accepts_connections(server: threading.Thread, host: str, port: int) -> bool:
    """Whether the proxy accepts connections on host:port within PROXY_START_SECONDS, while its thread lives."""
    import socket
    import time

    deadline = time.monotonic() + PROXY_START_SECONDS
    while server.is_alive() and time.monotonic() < deadline:
        try:
            socket.create_connection((host, port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    return server.is_alive() and time.monotonic() < deadline
