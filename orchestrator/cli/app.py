"""The `automl` command: its parser, and the one place where an error becomes a message and an exit code."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from orchestrator.cli.inspecting import cmd_plugins, cmd_rerun, cmd_serve, cmd_show, cmd_ui, cmd_validate
from orchestrator.cli.running import cmd_run, cmd_worker
from orchestrator.cli.storage_proxy import cmd_storage_proxy
from orchestrator.errors import EXIT_INTERRUPTED, AutomlError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="automl",
        description="Run AutoML studies: Optuna search, Lightning training, MLflow tracking, every component a plugin.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def plugins_dir(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--plugins-dir",
            action="append",
            default=[],
            metavar="DIR",
            help="a folder of local plugin .py files (repeatable); ./plugins/ is always searched",
        )

    run = sub.add_parser("run", help="run (or resume) a study from its file")
    run.add_argument("study", help="study file (YAML)")
    run.add_argument(
        "--trials",
        type=int,
        help="the study's budget of trials (default: budget.trials); a rerun resumes and runs only what is missing",
    )
    run.add_argument("--timeout", type=float, help="seconds after which no new trial starts")
    run.add_argument("--storage", help="Optuna storage URL (default: journal file ./optuna.journal)")
    run.add_argument("--tracking-uri", help="MLflow tracking URI (default: sqlite:///mlflow.db)")
    run.add_argument("--no-tracking", action="store_true", help="do not record runs in MLflow")
    run.add_argument(
        "--threads",
        type=int,
        help="CPU threads per worker (default: the cores shared out, fewer "
        "where a short measurement before a trial finds fewer faster, as beside another busy job)",
    )
    run.add_argument("--workers", type=int, help="CPU worker processes (default: study key workers, else 1)")
    run.add_argument("--devices", help="auto (default: every visible GPU, else CPU), cpu, or GPU indices: 0,2")
    run.add_argument("--trials-per-device", type=int, help="workers sharing each GPU (default 1)")
    run.add_argument(
        "--launcher",
        help="where the workers run: local (this machine, the default), slurm (a SLURM job array), ray (a Ray "
        "cluster) or a launcher a plugin registers (settings: the study key launcher)",
    )
    run.add_argument(
        "--register",
        metavar="NAME",
        help="register the best model in MLflow's model registry under NAME, with the alias 'best'",
    )
    plugins_dir(run)
    run.set_defaults(func=cmd_run)

    worker = sub.add_parser("worker", help="join a running study as one worker (any machine)")
    worker.add_argument("study", help="study file (YAML), the same file the study was started with")
    worker.add_argument(
        "--storage", help="Optuna storage URL (or env AUTOML_STORAGE, which keeps a password off the process list)"
    )
    worker.add_argument("--tracking-uri", help="MLflow tracking URI (or env AUTOML_TRACKING_URI)")
    worker.add_argument("--no-tracking", action="store_true", help="do not record runs in MLflow")
    worker.add_argument("--trials", type=int, help="the study's budget of trials (default: budget.trials)")
    worker.add_argument("--timeout", type=float, help="seconds after which this worker starts no new trial")
    worker.add_argument(
        "--threads",
        type=int,
        help="CPU threads for training (default: measured before each trial, at most PyTorch's default)",
    )
    worker.add_argument(
        "--adapt-threads",
        action="store_true",
        help="with --threads N: the count measured fastest before each trial, at most N",
    )
    worker.add_argument(
        "--memory-mb",
        type=int,
        help="restart this worker between trials above this resident "
        "memory (default: study key worker_memory_mb, else no limit)",
    )
    worker.add_argument(
        "--seed-offset",
        type=int,
        help="added to the study's seed for this worker's sampler "
        "(default: the process id, so that workers propose different trials)",
    )
    worker.add_argument("--supervised", action="store_true", help=argparse.SUPPRESS)
    worker.add_argument("--launched", action="store_true", help=argparse.SUPPRESS)  # a SLURM task or Ray actor
    worker.add_argument("--worker-id", help=argparse.SUPPRESS)
    worker.add_argument("--slot", help=argparse.SUPPRESS)
    plugins_dir(worker)
    worker.set_defaults(func=cmd_worker)

    validate = sub.add_parser("validate", help="check a study file and show its resolved search space")
    validate.add_argument("study")
    plugins_dir(validate)
    validate.set_defaults(func=cmd_validate)

    plugins = sub.add_parser("plugins", help="list every registered component")
    plugins.add_argument("--json", action="store_true")
    plugins_dir(plugins)
    plugins.set_defaults(func=cmd_plugins)

    show = sub.add_parser("show", help="trial counts and the best trial of a study")
    show.add_argument("study", help="study name or study file")
    show.add_argument(
        "--storage",
        help="Optuna storage URL (or env AUTOML_STORAGE; default: the study file's "
        "storage, else journal file ./optuna.journal)",
    )
    show.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI where the best model was logged (or env "
        "AUTOML_TRACKING_URI; default: the study file's, else sqlite:///mlflow.db)",
    )
    show.add_argument(
        "--json",
        action="store_true",
        help="everything as JSON: a superset of the text (keys in orchestrator/cli/show.py and the README)",
    )
    show.set_defaults(func=cmd_show)

    serve_ = sub.add_parser("serve", help="serve a study's best model over HTTP on 127.0.0.1 (MLflow's scoring server)")
    serve_.add_argument("study", help="study name or study file")
    serve_.add_argument("--port", type=int, default=5001, help="port on 127.0.0.1 (default 5001)")
    serve_.add_argument(
        "--storage",
        help="Optuna storage URL (or env AUTOML_STORAGE; default: the study file's "
        "storage, else journal file ./optuna.journal)",
    )
    serve_.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI where the best model was logged (or env "
        "AUTOML_TRACKING_URI; default: the study file's, else sqlite:///mlflow.db)",
    )
    serve_.set_defaults(func=cmd_serve)

    rerun = sub.add_parser("rerun", help="retrain one trial's configuration from its logged parameters")
    rerun.add_argument("study", help="study file (YAML)")
    rerun.add_argument("trial", type=int, help="the trial number")
    rerun.add_argument("--storage", help="Optuna storage URL (or env AUTOML_STORAGE)")
    rerun.add_argument(
        "--threads",
        type=int,
        help="CPU threads to retrain with (default: those the trial recorded, so that the values match)",
    )
    plugins_dir(rerun)
    rerun.set_defaults(func=cmd_rerun)

    proxy = sub.add_parser(
        "storage-proxy",
        help="serve a study database to many workers through Optuna's gRPC "
        "proxy (workers then use storage: grpc://HOST:PORT)",
    )
    proxy.add_argument("--storage", help="the database URL (or env AUTOML_STORAGE)")
    proxy.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    proxy.add_argument("--port", type=int, default=13000, help="the proxy's port; the study locks use the next")
    proxy.set_defaults(func=cmd_storage_proxy)

    ui = sub.add_parser("ui", help="start the MLflow UI on 127.0.0.1")
    ui.add_argument("--port", type=int, default=5000)
    ui.add_argument(
        "--tracking-uri", help="MLflow tracking URI (or env AUTOML_TRACKING_URI; default: sqlite:///mlflow.db)"
    )
    ui.set_defaults(func=cmd_ui)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from orchestrator.flow import Stopped

    try:
        return args.func(args)
    except AutomlError as exc:  # the one place an error becomes a message and an exit code
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Stopped as exc:
        print(
            f"interrupted by {exc}: "
            + ("; ".join(exc.outcomes) if exc.outcomes else "no trial was running")
            + ". Run the same command again to resume.",
            file=sys.stderr,
        )
        return 128 + exc.signum
    except KeyboardInterrupt:
        print(
            "interrupted: a running trial was marked FAIL and its MLflow run KILLED; "
            "run the same command again to resume it",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED


def entry() -> None:
    """The `automl` command (and `python -m orchestrator`): `main`, then an exit that skips the interpreter's
    teardown of PyTorch, Lightning and MLflow (up to a second, and nothing left to write: every run, journal and
    file is closed by then)."""
    code = main()
    import logging

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said
            pass
    logging.shutdown()
    os._exit(code)
