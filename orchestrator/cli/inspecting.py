"""The commands that read a study file or a stored study: validate, plugins, show, rerun, serve, ui."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from orchestrator.cli.options import check_storage, load_plugins, load_spec, open_study, storage_option, tracking_option
from orchestrator.errors import EXIT_OK, CliError


def cmd_validate(args: argparse.Namespace) -> int:
    spec, _ = load_spec(args.study, args.plugins_dir)
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


def cmd_plugins(args: argparse.Namespace) -> int:
    from orchestrator.api.registry import REGISTER_HOOKS, describe_params

    registry = load_plugins([Path(d).resolve() for d in args.plugins_dir])
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


def cmd_show(args: argparse.Namespace) -> int:
    from orchestrator.cli.show import collect, render

    study, url, tracking = open_study(args.study, storage_option(args))
    report = collect(study, url, tracking_option(args) or tracking)
    print(json.dumps(report, indent=2) if args.json else "\n".join(render(report)))
    return EXIT_OK


def cmd_rerun(args: argparse.Namespace) -> int:
    from orchestrator.execution.rerun import rerun_trial
    from orchestrator.execution.study_session import RunOptions, resolve_storage

    spec, registry = load_spec(args.study, args.plugins_dir)
    storage_url = resolve_storage(spec, RunOptions(storage=storage_option(args)))
    check_storage(spec, storage_url)
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


def cmd_serve(args: argparse.Namespace) -> int:
    from orchestrator.cli.serve import serve
    from orchestrator.cli.show import best_model_location

    study, _, tracking = open_study(args.study, storage_option(args))
    tracking = tracking_option(args) or tracking
    model, why = best_model_location(study, tracking)
    if model is None:
        raise CliError(f"study {study.study_name!r} has no model to serve: {why}")
    print(
        f"serving the best model of study {study.study_name} (trial {model['trial']}, {model['uri']}) on "
        f"http://127.0.0.1:{args.port}; starting MLflow's scoring server ...",
        flush=True,
    )
    return serve(model["uri"], tracking, args.port, lambda line: print(line, flush=True))


def cmd_ui(args: argparse.Namespace) -> int:
    from orchestrator.tracking.review_view import study_views
    from orchestrator.tracking.tracker import default_tracking_uri

    uri = tracking_option(args) or default_tracking_uri()
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
