"""What several commands share: loading a study file with its plugins, the storage and tracking options
(flags, else environment variables), opening a stored study by file or name."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from orchestrator.errors import CliError


def load_plugins(plugin_dirs: Sequence[Path], warn: bool = True) -> Any:
    """Every plugin loaded; with `warn`, each plugin that failed to load is named on stderr."""
    from orchestrator.api.registry import load_registry

    registry = load_registry(plugin_dirs)
    for error in registry.errors if warn else ():
        print(f"warning: {error}", file=sys.stderr)
    return registry


def load_spec(path: str, extra_dirs: Sequence[str], warn: bool = True) -> tuple[Any, Any]:
    """Read, validate and resolve a study file (nothing is created)."""
    from orchestrator.study.studyfile import plugin_dirs_of, read_study_file, validate_study

    data = read_study_file(path)
    registry = load_plugins(plugin_dirs_of(path, data) + [Path(d).resolve() for d in extra_dirs], warn)
    return validate_study(path, data, registry), registry


def storage_option(args: argparse.Namespace) -> str | None:
    """--storage, else the AUTOML_STORAGE environment variable (keeps a password off the process list)."""
    from orchestrator.env_vars import STORAGE_ENV

    return args.storage or os.environ.get(STORAGE_ENV) or None


def tracking_option(args: argparse.Namespace) -> str | None:
    """--tracking-uri, else the AUTOML_TRACKING_URI environment variable."""
    from orchestrator.env_vars import TRACKING_ENV

    return args.tracking_uri or os.environ.get(TRACKING_ENV) or None


def check_storage(spec: Any, url: str) -> None:
    from orchestrator.study.storage import storage_problem

    problem = storage_problem(url)
    if problem:
        raise CliError(f"{spec.path}: storage: {problem}")


def study_name_and_storage(target: str, storage: str | None) -> tuple[str, str, str]:
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


def open_study(target: str, storage_option: str | None) -> tuple[Any, str, str]:
    """The study a STUDY argument names (a study file or a study name), its storage URL and tracking URI."""
    import optuna

    from orchestrator.study.storage import JOURNAL_PREFIX, open_storage, redact, storage_file, storage_problem

    name, url, tracking = study_name_and_storage(target, storage_option)
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
