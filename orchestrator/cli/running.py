"""`automl run` (a supervisor of local workers, or of a cluster launcher's) and `automl worker`."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import Any

from orchestrator.cli.options import check_storage, load_spec, storage_option, tracking_option
from orchestrator.errors import EXIT_ERROR, EXIT_OK, CliError


def cluster_supervisor(
    spec: Any,
    registry: Any,
    options: Any,
    storage_url: str,
    tracking_uri: str | None,
    plugin_dirs: list[Path],
    kind: Any,
) -> Any:
    """A supervisor whose workers launcher `kind` (a LauncherKind) places, once the study is known to be
    shareable by its nodes and the launcher has what it needs here (else exit 2, nothing created)."""
    from orchestrator.execution.launchers.cluster_run import ClusterSupervisor, launcher_for
    from orchestrator.execution.launchers.sharing import sharing_problems
    from orchestrator.execution.study_session import checkpoint_policy

    policy = checkpoint_policy(spec, storage_url)
    # the study's settings for its own launcher; another one named by --launcher runs with its defaults
    settings = spec.launcher.settings() if spec.launcher.name == kind.name else kind.settings()
    problems = sharing_problems(
        kind.name,
        storage_url,
        tracking_uri,
        policy.folder if policy.enabled else None,
        getattr(settings, "shared", ()),
        f"launcher.{kind.name}",
    )
    need = kind.needs()
    if need:
        problems.append(need)
    if problems:
        raise CliError(f"{spec.path}: --launcher {kind.name}:\n  " + "\n  ".join(problems))
    return ClusterSupervisor(
        spec, registry, options, storage_url, tracking_uri, plugin_dirs, launcher=launcher_for(kind, settings, spec)
    )


def cmd_run(args: argparse.Namespace) -> int:
    """Run the study: a supervisor of workers here, or of those a cluster launcher places, then a summary."""
    from orchestrator.execution.study_session import RunOptions, resolve_storage, resolve_tracking
    from orchestrator.execution.supervisor import Supervisor, plan_for
    from orchestrator.study.launch_settings import launcher_kinds

    spec, registry = load_spec(args.study, args.plugins_dir)
    for line in spec.missing:
        print(f"warning: {line}", file=sys.stderr)
    devices = _devices(args.devices)
    options = RunOptions(
        trials=args.trials,
        timeout=args.timeout,
        storage=storage_option(args),
        tracking_uri=tracking_option(args),
        tracking=not args.no_tracking,
        threads=args.threads,
        workers=args.workers,
        devices=devices,
        trials_per_device=args.trials_per_device,
        register=args.register,
    )
    slots = plan_for(spec, options)
    storage_url = resolve_storage(spec, options)
    check_storage(spec, storage_url)
    tracking_uri = resolve_tracking(spec, options) if options.tracking else None
    plugin_dirs = [Path(d).resolve() for d in args.plugins_dir]
    kinds = launcher_kinds(registry.launchers)
    launcher = args.launcher or spec.launcher.name
    if launcher not in kinds:
        raise CliError(f"--launcher {launcher!r}: unknown launcher; choose one of {', '.join(kinds)}")
    if kinds[launcher].factory is None:  # the workers run here
        supervisor = Supervisor(spec, registry, options, storage_url, tracking_uri, plugin_dirs, slots=slots)
    else:
        supervisor = cluster_supervisor(
            spec, registry, options, storage_url, tracking_uri, plugin_dirs, kinds[launcher]
        )
    print(_run_summary(supervisor.run(), args.study))
    return EXIT_OK


def _devices(devices: str | None) -> str | tuple[int, ...] | None:
    """--devices as RunOptions takes it: None, "auto", "cpu" or a tuple of GPU indices."""
    if devices in (None, "auto", "cpu"):
        return devices
    try:
        return tuple(int(d) for d in devices.split(","))
    except ValueError:
        raise CliError(f"--devices {devices!r}: use auto, cpu or GPU indices such as 0,2") from None


def _run_summary(counts: dict[str, int], study: str) -> str:
    """What `automl run` says once its supervisor is done, from the supervisor's trial counts."""
    resumed = f" ({counts['RETRIED']} of them retried)" if counts.get("RETRIED") else ""
    if counts.get("PAUSED") or counts.get("PROMOTED"):
        resumed += (
            f"; {counts['PROMOTED']} promotion(s) by successive halving, {counts['PAUSED']} trial(s) paused "
            "at a rung (counted as pruned)"
        )
    return (
        f"Done: {counts['COMPLETE'] + counts['PRUNED'] + counts['FAIL']} trial(s) in the study: "
        f"{counts['COMPLETE']} complete, {counts['PRUNED']} pruned, {counts['FAIL']} failed{resumed}. "
        f"Review them with `automl show {study}` or `automl ui`."
    )


def cmd_worker(args: argparse.Namespace) -> int:
    from orchestrator.execution.lifecycle import Role
    from orchestrator.execution.worker import Worker, recycle

    role = Role.of(supervised=args.supervised, launched=args.launched)
    # a supervised worker's plugins are the supervisor's, which has named any that failed to load: once per run
    spec, registry = load_spec(args.study, args.plugins_dir, warn=not role.reports_to_supervisor)
    worker = Worker(spec, registry, _worker_options(args, spec, role))
    outcome = worker.run()
    if outcome == "recycle":
        recycle()
    code = _worker_exit(outcome, args.slot or worker.options.worker_id, spec, worker.failure, role)
    if role.reports_to_supervisor:  # every write is done: skip the interpreter's slow teardown of torch and friends
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _worker_options(args: argparse.Namespace, spec: Any, role: Any) -> Any:
    """The worker's settings from its command line, the study file and (supervised) its supervisor's deadline."""
    import socket
    import time

    from orchestrator.execution.handshake import DEADLINE_ENV
    from orchestrator.execution.study_session import RunOptions, resolve_storage, resolve_tracking
    from orchestrator.execution.worker import WorkerOptions

    supervised = role.reports_to_supervisor  # the supervisor checks the storage for it
    options = RunOptions(
        storage=storage_option(args), tracking_uri=tracking_option(args), tracking=not args.no_tracking
    )
    storage_url = resolve_storage(spec, options)
    if not supervised:
        check_storage(spec, storage_url)
    deadline = float(os.environ[DEADLINE_ENV]) if supervised and os.environ.get(DEADLINE_ENV) else None
    if args.timeout:
        deadline = time.time() + args.timeout
    return WorkerOptions(
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
    )


def _worker_exit(outcome: str, name: str, spec: Any, failure: Any, role: Any) -> int:
    """The worker's exit code for its outcome, and what it says of it (a supervisor says it for its workers)."""
    from orchestrator.execution.handshake import EXIT_REPEATED_FAILURE, repeated_failure_message
    from orchestrator.preemption import STOP

    supervised = role.reports_to_supervisor
    if outcome == "deadline":
        print(f"worker {name}: timeout reached; no new trials started")
    elif outcome == "stopped":
        if not supervised:
            print(
                f"worker {name}: stopped by {signal.Signals(STOP.signum or signal.SIGINT).name}; an interrupted "
                "trial resumes from its checkpoint when the study runs again",
                file=sys.stderr,
            )
        return 128 + (STOP.signum or signal.SIGINT)
    elif outcome == "failing":
        if not supervised:
            print(
                f"error: {repeated_failure_message(spec.execution.max_consecutive_failures, failure)}"
                "\nFix the cause, then run the study again.",
                file=sys.stderr,
            )
        return EXIT_REPEATED_FAILURE if supervised else EXIT_ERROR
    return EXIT_OK
