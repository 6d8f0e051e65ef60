"""The `automl` command: run, validate, plugins, show, ui."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from orchestrator.errors import EXIT_ERROR, AutomlError, CliError

EXIT_OK, EXIT_INTERRUPTED = 0, 130


def _registry(plugin_dirs: Sequence[Path], warn: bool = True) -> Any:
    """Every plugin loaded; with `warn`, each plugin that failed to load is named on stderr."""
    from orchestrator.api.registry import load_registry

    registry = load_registry(plugin_dirs)
    for error in registry.errors if warn else ():
        print(f"warning: {error}", file=sys.stderr)
    return registry


def _load(path: str, extra_dirs: Sequence[str], warn: bool = True) -> tuple[Any, Any]:
    """Read, validate and resolve a study file (nothing is created)."""
    from orchestrator.study.studyfile import plugin_dirs_of, read_study_file, validate_study

    data = read_study_file(path)
    registry = _registry(plugin_dirs_of(path, data) + [Path(d).resolve() for d in extra_dirs], warn)
    return validate_study(path, data, registry), registry


def cmd_validate(args: argparse.Namespace) -> int:
    spec, _ = _load(args.study, args.plugins_dir)
    budget = spec.budget
    print(f"{spec.path}: OK")
    print(f"study      {spec.name}")
    print(f"dataset    {spec.dataset.spec.name} {dict(spec.dataset_params)} ({spec.input_kind} inputs)")
    print(f"task       {spec.task}")
    describe = spec.dataset.spec.describe
    if describe is not None:
        try:
            lines = describe(spec.dataset_params, spec.seed)
        except (OSError, ValueError) as exc:
            raise CliError(f"{spec.path}: dataset: {exc}") from None
        print("data:")
        for line in lines:
            print(f"  {line}")
    print(f"objective  {spec.direction} {spec.metric}")
    print(
        f"budget     {budget.trials} trials, max {budget.max_epochs} epochs"
        + (f", timeout {budget.timeout} s" if budget.timeout else "")
    )
    print(f"sampler    {spec.sampler[0]} {dict(spec.sampler[1]) or ''}".rstrip())
    print(f"pruner     {spec.pruner[0]} {dict(spec.pruner[1]) or ''}".rstrip())
    print(f"seed       {spec.seed}")
    saved = spec.checkpoints
    print(
        "checkpoint "
        + (
            f"every {saved.every_epochs} epoch(s), at most every {saved.min_seconds:g} s, in "
            f"{saved.dir or 'checkpoints/ beside the Optuna storage'}"
            f"{', kept after the trial' if saved.keep else ''}"
            if saved.every_epochs
            else "off"
        )
    )
    print("search space:")
    for line in spec.space.describe():
        print(f"  {line}")
    if spec.removed:
        print("removed as incompatible:")
        for line in spec.removed:
            print(f"  {line}")
    if spec.missing:
        print("missing (a plugin failed to load):")
        for line in spec.missing:
            print(f"  {line}")
    return EXIT_OK


def _storage_option(args: argparse.Namespace) -> str | None:
    """--storage, else the AUTOML_STORAGE environment variable (keeps a password off the process list)."""
    from orchestrator.env_vars import STORAGE_ENV

    return args.storage or os.environ.get(STORAGE_ENV) or None


def _tracking_option(args: argparse.Namespace) -> str | None:
    """--tracking-uri, else the AUTOML_TRACKING_URI environment variable."""
    from orchestrator.env_vars import TRACKING_ENV

    return args.tracking_uri or os.environ.get(TRACKING_ENV) or None


def _check_storage(spec: Any, url: str) -> None:
    from orchestrator.study.storage import storage_problem

    problem = storage_problem(url)
    if problem:
        raise CliError(f"{spec.path}: storage: {problem}")


def _cluster_supervisor(
    spec: Any,
    registry: Any,
    options: Any,
    storage_url: str,
    tracking_uri: str | None,
    plugin_dirs: list[Path],
    launcher: str,
) -> Any:
    """A supervisor whose workers a cluster's scheduler runs, once the study is known to be shareable by its
    nodes and the scheduler's commands are here (else exit 2, nothing created)."""
    import shutil

    from orchestrator.execution.launchers.cluster_run import ClusterSupervisor, launcher_for
    from orchestrator.execution.launchers.sharing import sharing_problems
    from orchestrator.execution.study_session import checkpoint_policy

    policy = checkpoint_policy(spec, storage_url)
    settings = spec.launcher.slurm if launcher == "slurm" else spec.launcher.ray
    problems = sharing_problems(
        launcher,
        storage_url,
        tracking_uri,
        policy.folder if policy.enabled else None,
        settings.shared,
        f"launcher.{launcher}",
    )
    if launcher == "slurm" and shutil.which("sbatch") is None:
        problems.append(
            "`sbatch` is not on PATH: run `automl run --launcher slurm` where SLURM's commands are (a login node)"
        )
    if launcher == "ray" and importlib.util.find_spec("ray") is None:
        problems.append("Ray is not installed: pip install 'automl-orchestrator[ray]' (or 'ray[default]')")
    if problems:
        raise CliError(f"{spec.path}: --launcher {launcher}:\n  " + "\n  ".join(problems))
    return ClusterSupervisor(
        spec, registry, options, storage_url, tracking_uri, plugin_dirs, launcher=launcher_for(spec, launcher)
    )


def cmd_run(args: argparse.Namespace) -> int:
    from orchestrator.execution.study_session import RunOptions, resolve_storage, resolve_tracking
    from orchestrator.execution.supervisor import Supervisor, plan_for

    spec, registry = _load(args.study, args.plugins_dir)
    for line in spec.missing:
        print(f"warning: {line}", file=sys.stderr)
    devices = args.devices
    if devices not in (None, "auto", "cpu"):
        try:
            devices = tuple(int(d) for d in devices.split(","))
        except ValueError:
            raise CliError(f"--devices {devices!r}: use auto, cpu or GPU indices such as 0,2") from None
    options = RunOptions(
        trials=args.trials,
        timeout=args.timeout,
        storage=_storage_option(args),
        tracking_uri=_tracking_option(args),
        tracking=not args.no_tracking,
        threads=args.threads,
        workers=args.workers,
        devices=devices,
        trials_per_device=args.trials_per_device,
        register=args.register,
    )
    slots = plan_for(spec, options)
    storage_url = resolve_storage(spec, options)
    _check_storage(spec, storage_url)
    tracking_uri = resolve_tracking(spec, options) if options.tracking else None
    plugin_dirs = [Path(d).resolve() for d in args.plugins_dir]
    launcher = args.launcher or spec.launcher.name
    if launcher == "local":
        supervisor = Supervisor(spec, registry, options, storage_url, tracking_uri, plugin_dirs, slots)
    else:
        supervisor = _cluster_supervisor(spec, registry, options, storage_url, tracking_uri, plugin_dirs, launcher)
    counts = supervisor.run()
    resumed = f" ({counts['RETRIED']} of them retried)" if counts.get("RETRIED") else ""
    if counts.get("PAUSED") or counts.get("PROMOTED"):
        resumed += (
            f"; {counts['PROMOTED']} promotion(s) by successive halving, {counts['PAUSED']} trial(s) paused "
            "at a rung (counted as pruned)"
        )
    print(
        f"Done: {counts['COMPLETE'] + counts['PRUNED'] + counts['FAIL']} trial(s) in the study: "
        f"{counts['COMPLETE']} complete, {counts['PRUNED']} pruned, {counts['FAIL']} failed{resumed}. "
        f"Review them with `automl show {args.study}` or `automl ui`."
    )
    return EXIT_OK


def cmd_worker(args: argparse.Namespace) -> int:
    import socket
    import time

    from orchestrator.execution.handshake import DEADLINE_ENV, EXIT_REPEATED_FAILURE, repeated_failure_message
    from orchestrator.execution.lifecycle import Role
    from orchestrator.execution.study_session import RunOptions, resolve_storage, resolve_tracking
    from orchestrator.execution.worker import Worker, WorkerOptions, recycle
    from orchestrator.preemption import STOP

    role = Role.of(supervised=args.supervised, launched=args.launched)
    supervised = role.reports_to_supervisor  # the supervisor checks, says and reports for it
    # a supervised worker's plugins are the supervisor's, which has named any that failed to load: once per run
    spec, registry = _load(args.study, args.plugins_dir, warn=not supervised)
    options = RunOptions(
        storage=_storage_option(args), tracking_uri=_tracking_option(args), tracking=not args.no_tracking
    )
    storage_url = resolve_storage(spec, options)
    if not supervised:
        _check_storage(spec, storage_url)
    deadline = float(os.environ[DEADLINE_ENV]) if supervised and os.environ.get(DEADLINE_ENV) else None
    if args.timeout:
        deadline = time.time() + args.timeout
    worker = Worker(
        spec,
        registry,
        WorkerOptions(
            storage_url=storage_url,
            tracking_uri=resolve_tracking(spec, options) if options.tracking else None,
            trials=args.trials or spec.budget.trials,
            worker_id=args.worker_id or f"{socket.gethostname()}:{os.getpid()}",
            deadline=deadline,
            threads=args.threads,
            adapt_threads=args.adapt_threads or args.threads is None,
            memory_mb=args.memory_mb or spec.execution.worker_memory_mb,
            role=role,
            slot=args.slot or "",
            seed_offset=args.seed_offset if args.seed_offset is not None else os.getpid(),
        ),
    )
    outcome = worker.run()
    if outcome == "recycle":
        recycle()
    name = args.slot or worker.options.worker_id
    code = EXIT_OK
    if outcome == "deadline":
        print(f"worker {name}: timeout reached; no new trials started")
    elif outcome == "stopped":
        if not supervised:
            print(
                f"worker {name}: stopped by {signal.Signals(STOP.signum or signal.SIGINT).name}; an interrupted "
                "trial resumes from its checkpoint when the study runs again",
                file=sys.stderr,
            )
        code = 128 + (STOP.signum or signal.SIGINT)
    elif outcome == "failing":
        code = EXIT_REPEATED_FAILURE if supervised else EXIT_ERROR
        if not supervised:  # (a supervisor reports it itself)
            print(
                f"error: {repeated_failure_message(spec.execution.max_consecutive_failures, worker.failure)}"
                "\nFix the cause, then run the study again.",
                file=sys.stderr,
            )
    if supervised:  # every write is done: skip the interpreter's slow teardown of torch and friends
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def cmd_plugins(args: argparse.Namespace) -> int:
    from orchestrator.api.registry import REGISTER_HOOKS, describe_params

    registry = _registry([Path(d).resolve() for d in args.plugins_dir])
    rows = []
    for entry in registry.all():
        spec = entry.spec
        row = {
            "kind": spec.kind,
            "name": spec.name,
            "plugin": entry.plugin,
            "description": spec.description,
            "params": describe_params(spec.params),
        }
        for attr in ("input_kinds", "tasks", "input_kind"):
            if hasattr(spec, attr):
                row[attr] = getattr(spec, attr)
        rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2, default=list))
        return EXIT_OK
    kind = None
    for entry, row in zip(registry.all(), rows):
        if row["kind"] != kind:
            kind = row["kind"]
            print(f"{REGISTER_HOOKS[kind].removeprefix('register_')}:")
        print(f"  {row['name']:<18} {row['description']}  [{row['plugin']}]")
        for pname, param in entry.spec.params.items():
            print(f"      {pname:<14} {param.describe()} {param.help}".rstrip())
    return EXIT_OK


def _study_name_and_storage(target: str, storage: str | None) -> tuple[str, str, str]:
    """The study's name, its Optuna storage and its MLflow tracking URI: from the study file (or the defaults)."""
    from orchestrator.study.storage import default_storage_url
    from orchestrator.tracking.tracker import default_tracking_uri

    path = Path(target)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        from orchestrator.study.studyfile import read_study_file

        data = read_study_file(path)
        return (
            str(data.get("name")),
            storage or data.get("storage") or default_storage_url(),
            data.get("tracking_uri") or default_tracking_uri(),
        )
    return target, storage or default_storage_url(), default_tracking_uri()


def cmd_rerun(args: argparse.Namespace) -> int:
    from orchestrator.execution.rerun import rerun_trial
    from orchestrator.execution.study_session import RunOptions, resolve_storage

    spec, registry = _load(args.study, args.plugins_dir)
    storage_url = resolve_storage(spec, RunOptions(storage=_storage_option(args)))
    _check_storage(spec, storage_url)
    rerun = rerun_trial(spec, registry, storage_url, args.trial, args.threads)
    value = "-" if rerun.value is None else f"{rerun.value:.6g}"
    logged = "none" if rerun.logged is None else f"{rerun.logged:.6g}"
    print(
        f"trial {rerun.number} retrained ({rerun.epochs} epochs, {rerun.threads} CPU thread(s)): {spec.metric} "
        f"{value} (logged: {logged}, {rerun.state})"
    )
    if rerun.state == "PRUNED":
        print("  the trial was pruned; the re-run trains its whole budget, so the values differ")
    if rerun.recorded_threads is None:
        print(
            "  the trial recorded no thread count (an older version): the values may differ; pass --threads with "
            "the run's (its --threads, or the cores per worker)"
        )
    elif rerun.threads != rerun.recorded_threads:
        print(
            f"  the trial trained with {rerun.recorded_threads} CPU thread(s), not {rerun.threads}: the values "
            "may differ"
        )
    for difference in rerun.unmatched:
        print(f"  cannot match the trial's runtime, so the values may differ: {difference}")
    for key, metric in sorted(rerun.test_metrics.items()):
        print(f"  {key}: {metric:.6g}")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from orchestrator.cli.show import collect, render

    study, url, tracking = _open_study(args.study, _storage_option(args))
    report = collect(study, url, _tracking_option(args) or tracking)
    print(json.dumps(report, indent=2) if args.json else "\n".join(render(report)))
    return EXIT_OK


def _open_study(target: str, storage_option: str | None) -> tuple[Any, str, str]:
    """The study a STUDY argument names (a study file or a study name), its storage URL and tracking URI."""
    import optuna

    from orchestrator.study.storage import JOURNAL_PREFIX, open_storage, redact, storage_file, storage_problem

    name, url, tracking = _study_name_and_storage(target, storage_option)
    problem = storage_problem(url)
    if problem:
        raise CliError(f"storage: {problem}")
    if url.startswith(JOURNAL_PREFIX) and not storage_file(url).exists():  # type: ignore[union-attr]
        raise CliError(f"no study storage at {url}: run `automl run STUDY.yaml` first")
    storage = open_storage(url)
    names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    if name not in names:
        raise CliError(f"no study named {name!r} in {redact(url)}; studies there: {', '.join(names) or 'none'}")
    return optuna.load_study(study_name=name, storage=storage), url, tracking


def cmd_serve(args: argparse.Namespace) -> int:
    from orchestrator.cli.serve import serve
    from orchestrator.cli.show import best_model_location

    study, _, tracking = _open_study(args.study, _storage_option(args))
    tracking = _tracking_option(args) or tracking
    model, why = best_model_location(study, tracking)
    if model is None:
        raise CliError(f"study {study.study_name!r} has no model to serve: {why}")
    print(
        f"serving the best model of study {study.study_name} (trial {model['trial']}, {model['uri']}) on "
        f"http://127.0.0.1:{args.port}; starting MLflow's scoring server ...",
        flush=True,
    )
    return serve(model["uri"], tracking, args.port, lambda line: print(line, flush=True))


def cmd_storage_proxy(args: argparse.Namespace) -> int:
    """Serve an RDB storage to workers through Optuna's gRPC proxy, with the study locks beside it."""
    import socket
    import threading
    import time
    import warnings

    import optuna

    from orchestrator.execution.lock_server import LockServer
    from orchestrator.study.storage import RDB_SCHEMES, redact, storage_problem

    url = _storage_option(args)
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


def cmd_ui(args: argparse.Namespace) -> int:
    from orchestrator.tracking.review_view import study_views
    from orchestrator.tracking.tracker import default_tracking_uri

    uri = _tracking_option(args) or default_tracking_uri()
    base = f"http://127.0.0.1:{args.port}"
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        uri,
        "--host",
        "127.0.0.1",
        "--port",
        str(args.port),
    ]
    print(f"MLflow UI on {base} (Ctrl-C stops it)")
    views = study_views(uri, base)
    for study, address in views:
        print(f"  study {study}, every trial by its objective: {address}")
    if views:
        print(
            "  (these open MLflow's Model training view; a new browser starts on GenAI, which shows experiments "
            "as traces: the switch at the top left of every page)"
        )
    sys.stdout.flush()
    os.execv(sys.executable, command)
    return EXIT_OK  # not reached


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
        choices=("local", "slurm", "ray"),
        help="where the workers run: this machine "
        "(default), a SLURM job array or a Ray cluster (settings: the study key launcher)",
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


if __name__ == "__main__":
    entry()
