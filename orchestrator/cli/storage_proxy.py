"""`automl storage-proxy`: Optuna's gRPC storage proxy for an RDB storage, with the study locks beside it."""

from __future__ import annotations

import argparse
import importlib.util

from orchestrator.cli.options import storage_option
from orchestrator.errors import EXIT_OK, CliError


def cmd_storage_proxy(args: argparse.Namespace) -> int:
    """Serve an RDB storage to workers through Optuna's gRPC proxy, with the study locks beside it."""
    import socket
    import threading
    import time
    import warnings

    import optuna

    from orchestrator.execution.lock_server import LockServer
    from orchestrator.study.storage import RDB_SCHEMES, redact, storage_problem

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
    try:
        locks = LockServer(args.host, args.port + 1)
    except OSError as exc:
        raise CliError(f"storage-proxy: cannot listen on {args.host}:{args.port + 1}: {exc.strerror}") from None
    locks.start()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    server = threading.Thread(
        target=optuna.storages.run_grpc_proxy_server,
        args=(optuna.storages.RDBStorage(url),),
        kwargs={"host": args.host, "port": args.port},
        daemon=True,
        name="grpc-proxy",
    )
    server.start()
    deadline = time.monotonic() + 30
    while server.is_alive() and time.monotonic() < deadline:  # say so once it accepts connections
        try:
            socket.create_connection((args.host, args.port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    if not server.is_alive() or time.monotonic() >= deadline:
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
