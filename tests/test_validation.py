"""Study-file validation as a user meets it: `automl validate` and `automl run` on a bad study.

Every error case checks, for both commands where it applies:
  * exit code 2, nothing on stdout;
  * stderr names the file, the key path and the offending value, and says what is allowed;
  * `run` left no trace: no optuna.journal, no mlflow.db, no mlartifacts (nothing at all is added
    to the working directory), because everything is validated before any storage or MLflow run exists.

No test here trains: an autouse guard makes `StudyRunner` fail the test if a run ever gets past validation.

The component library keeps growing, so wherever a message lists registered or compatible component
names the expected list comes from the registry, and every misspelt name is checked to have exactly one
near registered name (see `assert_suggests`).
"""

from __future__ import annotations

import copy
import difflib
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

import orchestrator.execution.supervisor
from orchestrator.api.registry import Registry

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ("mlflow.db", "optuna.journal", "mlartifacts", "mlruns")
TOP_ALLOWED = (
    "budget, checkpoints, constraints, dataset, description, devices, enqueue, heartbeat_seconds, "
    "launcher, max_consecutive_failures, name, objective, plugins_dir, pruner, sampler, search, seed, "
    "stop_grace_seconds, storage, task, tracking_uri, trials_per_device, worker_memory_mb, workers"
)

# A valid, tiny study; every error case changes one thing in it (see `study_text`).
BASE: dict[str, Any] = {
    "name": "tiny",
    "dataset": "digits",
    "objective": {"metric": "val_accuracy", "direction": "maximize"},
    "budget": {"trials": 1, "max_epochs": 1},
    "seed": 0,
    "search": {
        "architecture": {"mlp": {"depth": 1, "width": [16, 32]}},
        "activation": ["relu", "sigmoid"],
        "loss": "cross_entropy",
        "optimizer": {"adam": {"lr": {"low": 0.001, "high": 0.01, "log": True}}},
        "batch_size": 64,
    },
}


def study_text(changes: dict[str, Any] | None = None, drop: Iterable[str] = ()) -> str:
    """BASE as YAML with `changes` set and `drop` removed, both given as dotted key paths."""
    data = copy.deepcopy(BASE)
    for dotted, value in (changes or {}).items():
        *parents, last = dotted.split(".")
        node = data
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    for dotted in drop:
        *parents, last = dotted.split(".")
        node = data
        for key in parents:
            node = node[key]
        del node[last]
    return yaml.safe_dump(data, sort_keys=False)


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture(scope="module")
def registry(builtin_registry: Registry) -> Registry:
    """The built-ins on their own (conftest's shared registry)."""
    return builtin_registry


def registered(registry: Registry, kind: str) -> str:
    """The registered names of a kind as messages list them: sorted, comma-separated."""
    return ", ".join(registry.names(kind))


def compatible(registry: Registry, kind: str, task: str, input_kind: str) -> str:
    """The registered names of a kind usable for `task` on `input_kind` inputs, as messages list them."""
    names = [
        name
        for name in registry.names(kind)
        if task in getattr(registry.get(kind, name).spec, "tasks", (task,))
        and input_kind in getattr(registry.get(kind, name).spec, "input_kinds", (input_kind,))
    ]
    return ", ".join(names)


def assert_suggests(registry: Registry, kind: str, typo: str, suggestion: str | None) -> None:
    """Guard on the test's own example: `typo` must be close to exactly `suggestion` among the registered
    names (or to none), so that the expected 'did you mean' stays unambiguous as components are added."""
    close = difflib.get_close_matches(typo, registry.names(kind), n=3, cutoff=0.5)
    assert close == ([suggestion] if suggestion else []), (
        f"pick another example: {typo!r} is now close to the registered {kind}s {close}"
    )


@pytest.fixture(autouse=True)
def no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run that gets past validation and storage checks is a failed test, never a training run."""

    class Refuse:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise AssertionError("`automl run` got past validation and would have started the study")

    monkeypatch.setattr(orchestrator.execution.supervisor, "Supervisor", Refuse)


def assert_rejected(
    cli: Callable[..., Any],
    workdir: Path,
    path: Path,
    expected: Iterable[str],
    *,
    commands: Iterable[str] = ("validate", "run"),
    problems: int | None = 1,
    args: Iterable[str] = (),
) -> dict[str, Any]:
    """Run each command on `path`, check exit 2, the message and that nothing was created."""
    expected = list(expected)
    results = {}
    for command in commands:
        before = listing(workdir)
        result = cli(command, path, *args)
        assert result.code == 2, f"`automl {command}` exited {result.code}\nstdout: {result.out}\nstderr: {result.err}"
        assert result.out == ""
        assert result.err.startswith(f"error: {path}: "), result.err
        for text in expected:
            assert text in result.err, f"`automl {command}`: {text!r} not in stderr:\n{result.err}"
        if problems is not None:
            assert result.err.count(f"{path}: ") == problems, result.err
        for name in ARTIFACTS:
            assert not (workdir / name).exists(), f"`automl {command}` created {name} for a rejected study"
        assert listing(workdir) == before, f"`automl {command}` created files for a rejected study"
        results[command] = result
    if "validate" in results and "run" in results:
        assert results["run"].err == results["validate"].err
    return results


def test_base_study_is_valid(write_study, cli, workdir):
    """The starting point of every error case validates, so each case's error comes from its own change."""
    path = write_study(study_text())
    result = cli("validate", path)
    assert result.code == 0, result.err
    assert result.err == ""
    assert f"{path}: OK" in result.out
    assert listing(workdir) == ["study.yaml"]


# ---------------------------------------------------------------------------------------------- top level


@pytest.mark.parametrize(
    ("key", "value", "suggestion"),
    [
        ("budgets", {"trials": 3}, "budget"),
        ("serach", {"loss": "mse"}, "search"),
        ("tracking-uri", "sqlite:///x.db", "tracking_uri"),
    ],
)
def test_unknown_top_level_key_suggests_the_nearest(write_study, cli, workdir, key, value, suggestion):
    path = write_study(study_text({key: value}))
    assert_rejected(
        cli,
        workdir,
        path,
        [
            f"{path}: {key}: unknown key (did you mean '{suggestion}'?); allowed: {TOP_ALLOWED} (got '{key}')",
        ],
    )


def test_unknown_top_level_key_without_a_near_name_has_no_suggestion(write_study, cli, workdir):
    path = write_study(study_text({"zzzz": 1}))
    results = assert_rejected(cli, workdir, path, [f"zzzz: unknown key; allowed: {TOP_ALLOWED} (got 'zzzz')"])
    assert "did you mean" not in results["validate"].err


# ------------------------------------------------------------------------------------------- components


@pytest.mark.parametrize(
    ("changes", "kind", "typo", "suggestion", "key"),
    [
        ({"search.optimizer": {"rmsprp": {"lr": 0.01}}}, "optimizer", "rmsprp", "rmsprop", "search.optimizer.rmsprp"),
        ({"search.optimizer": ["sgd", "rmsporp"]}, "optimizer", "rmsporp", "rmsprop", "search.optimizer"),
        ({"search.activation": "sigmiod"}, "activation", "sigmiod", "sigmoid", "search.activation"),
        ({"search.schedule": "cosin"}, "schedule", "cosin", "cosine", "search.schedule"),
        ({"search.regularizers": ["droput"]}, "regularizer", "droput", "dropout", "search.regularizers.droput"),
        (
            {"search.regularizers": {"dropout": {}, "droput": {"p": 0.1}}},
            "regularizer",
            "droput",
            "dropout",
            "search.regularizers.droput",
        ),
        ({"search.architecture": "xgboost"}, "architecture", "xgboost", None, "search.architecture"),
    ],
    ids=[
        "optimizer-mapping",
        "optimizer-list",
        "activation",
        "schedule",
        "regularizer-list",
        "regularizer-mapping",
        "architecture-no-suggestion",
    ],
)
def test_unknown_component_name_suggests_the_nearest(
    write_study, cli, workdir, registry, changes, kind, typo, suggestion, key
):
    assert_suggests(registry, kind, typo, suggestion)
    path = write_study(study_text(changes))
    hint = f" (did you mean {suggestion!r}?)" if suggestion else ""
    results = assert_rejected(
        cli,
        workdir,
        path,
        [
            f"{path}: {key}: unknown {kind}{hint}; no installed or local plugin registers it; registered: "
            f"{registered(registry, kind)} (got {typo!r})\n"
        ],
    )
    if suggestion is None:
        assert "did you mean" not in results["validate"].err


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"search.optimizer.adam": {"lrr": 0.01}},
            "search.optimizer.adam.lrr: unknown parameter (did you mean 'lr'?); declared: lr, beta1, beta2 (got 'lrr')",
        ),
        (
            {"search.architecture.mlp": {"widht": 64}},
            "search.architecture.mlp.widht: unknown parameter (did you mean 'width'?); declared: depth, width "
            "(got 'widht')",
        ),
        (
            {"search.regularizers": {"dropout": {"rate": 0.1}}},
            "search.regularizers.dropout.rate: unknown parameter; declared: p (got 'rate')",
        ),
        (
            {"search.loss": {"cross_entropy": {"smoothing": 0.1}}},
            "search.loss.cross_entropy.smoothing: unknown parameter; declared: none (got 'smoothing')",
        ),
    ],
    ids=["optimizer", "architecture", "regularizer", "parameterless-loss"],
)
def test_unknown_parameter_of_a_component(write_study, cli, workdir, changes, expected):
    path = write_study(study_text(changes))
    assert_rejected(cli, workdir, path, [f"{path}: {expected}"])


# ------------------------------------------------------------------------------------------------ types


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"budget.trials": "ten"}, "budget.trials: must be an integer >= 1 (got 'ten')"),
        ({"budget.max_epochs": 0}, "budget.max_epochs: must be an integer >= 1 (got 0)"),
        ({"budget.timeout": -5}, "budget.timeout: must be a number of seconds > 0 (got -5)"),
        ({"seed": -1}, "seed: must be a non-negative integer (got -1)"),
        ({"seed": "7"}, "seed: must be a non-negative integer (got '7')"),
        ({"name": "my study"}, "name: required: a study name of letters, digits, '_', '.', '-' (got 'my study')"),
        ({"budget": [3, 2]}, "budget: must be a mapping (got [3, 2])"),
        ({"objective": "val_accuracy"}, "objective: must be a mapping (got 'val_accuracy')"),
        (
            {"objective": ["val_accuracy"]},
            "objective: a list needs at least two objectives (give one as a mapping) (got ['val_accuracy'])",
        ),
        ({"search": ["adam"]}, "search: must be a mapping (got ['adam'])"),
        (
            {"search.optimizer.adam": ["lr", 0.01]},
            "search.optimizer.adam: must be a mapping of parameter names to a value, a list or {low, high} "
            "(got ['lr', 0.01])",
        ),
        (
            {"search.optimizer.adam.lr": "fast"},
            "search.optimizer.adam.lr: value 'fast' is not a number in the declared range 1e-05..0.1; "
            "declared: 1e-05..0.1, log (default 0.001) (got 'fast')",
        ),
        (
            {"search.optimizer.adam.lr": {"low": "tiny", "high": 0.01}},
            "search.optimizer.adam.lr: low must be a number, got 'tiny'",
        ),
        (
            {"search.optimizer.adam.lr": {"min": 0.001, "max": 0.01}},
            "search.optimizer.adam.lr: unknown range keys ['max', 'min']; allowed: low, high, log, step",
        ),
        (
            {"search.architecture.mlp.width": {"low": 16.5, "high": 64}},
            "search.architecture.mlp.width: low must be an integer, got 16.5",
        ),
        ({"search.storage": 1}, "search.storage: unknown key"),
        ({"storage": 5}, "storage: must be a string URL (got 5)"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 40 else None,
)
def test_wrong_type(write_study, cli, workdir, changes, expected):
    path = write_study(study_text(changes))
    assert_rejected(cli, workdir, path, [f"{path}: {expected}"])


# ------------------------------------------------------------------------------------------------ ranges


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"search.optimizer.adam.lr": {"low": 0.01, "high": 0.001}},
            "search.optimizer.adam.lr: low 0.01 is greater than high 0.001; declared: 1e-05..0.1, log (default 0.001) "
            "(got {'low': 0.01, 'high': 0.001})",
        ),
        (
            {"search.architecture.mlp.width": {"low": 64, "high": 32}},
            "search.architecture.mlp.width: low 64 is greater than high 32; declared: 16..1024, log (default 128) "
            "(got {'low': 64, 'high': 32})",
        ),
        (
            {"search.batch_size": {"low": 128, "high": 64}},
            "search.batch_size: low 128 is greater than high 64; declared: 1..8192, log (default 100)",
        ),
    ],
    ids=["float", "int", "shared-batch-size"],
)
def test_low_greater_than_high(write_study, cli, workdir, changes, expected):
    path = write_study(study_text(changes))
    assert_rejected(cli, workdir, path, [f"{path}: {expected}"])


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"search.regularizers": {"dropout": {"p": {"low": 0.0, "high": 0.5, "log": True}}}},
            "search.regularizers.dropout.p: log scale needs low > 0, got low 0.0; declared: 0.0..0.7 (default 0.2) "
            "(got {'low': 0.0, 'high': 0.5, 'log': True})",
        ),
        (
            {"search.optimizer.sgd": {"momentum": {"low": 0, "high": 0.9, "log": True}}},
            "search.optimizer.sgd.momentum: log scale needs low > 0, got low 0; declared: 0.0..0.99 (default 0.9)",
        ),
        (
            {"search.optimizer.adam.lr": {"low": -0.001, "high": 0.01}},
            "search.optimizer.adam.lr: log scale needs low > 0, got low -0.001; declared: 1e-05..0.1, log",
        ),
    ],
    ids=["dropout-zero", "momentum-zero", "declared-log-negative"],
)
def test_log_scale_needs_positive_low(write_study, cli, workdir, changes, expected):
    path = write_study(study_text(changes))
    assert_rejected(cli, workdir, path, [f"{path}: {expected}"])


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"search.optimizer.adam.lr": {"low": 1e-6, "high": 0.01}},
            "search.optimizer.adam.lr: range 1e-06..0.01 is outside the declared range 1e-05..0.1; "
            "declared: 1e-05..0.1, log (default 0.001)",
        ),
        (
            {"search.loss": {"label_smoothing": {"smoothing": {"high": 0.5}}}},
            "search.loss.label_smoothing.smoothing: range 0.0..0.5 is outside the declared range 0.0..0.3",
        ),
        (
            {"search.architecture.mlp.depth": 9},
            "search.architecture.mlp.depth: value 9 is not a number in the declared range 1..4; "
            "declared: 1..4 (default 2) (got 9)",
        ),
        (
            {"search.architecture.mlp.width": [8, 64]},
            "search.architecture.mlp.width: value 8 is not a number in the declared range 16..1024",
        ),
        ({"search.batch_size": 10000}, "search.batch_size: value 10000 is not a number in the declared range 1..8192"),
        (
            {"search.optimizer.sgd": {"nesterov": "maybe"}},
            "search.optimizer.sgd.nesterov: 'maybe' is not one of [True, False]; "
            "declared: one of [True, False] (default True) (got 'maybe')",
        ),
    ],
    ids=["float-range", "float-high", "int-fixed", "int-list", "batch-size", "categorical"],
)
def test_override_outside_the_declared_range(write_study, cli, workdir, changes, expected):
    path = write_study(study_text(changes))
    assert_rejected(cli, workdir, path, [f"{path}: {expected}"])


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"search.activation": []},
            "search.activation: an empty list; name at least one activation: {activation} (got [])",
        ),
        (
            {"search.optimizer": {}},
            "search.optimizer: an empty mapping; name at least one optimizer: {optimizer} (got {{}})",
        ),
        ({"search.schedule": []}, "search.schedule: an empty list; name at least one schedule: {schedule} (got [])"),
        (
            {"search.architecture.mlp.width": []},
            "search.architecture.mlp.width: an empty list of values; give at least one; declared: 16..1024",
        ),
    ],
    ids=["component-list", "component-mapping", "schedule-list", "parameter-list"],
)
def test_empty_choice(write_study, cli, workdir, registry, changes, expected):
    path = write_study(study_text(changes))
    names = {kind: registered(registry, kind) for kind in ("activation", "optimizer", "schedule")}
    assert_rejected(cli, workdir, path, [f"{path}: {expected.format(**names)}"])


# ------------------------------------------------------------------------------------ data set and task


@pytest.mark.parametrize(
    ("loss", "key"),
    [
        ("mse", "search.loss"),
        (["cross_entropy", "mse"], "search.loss"),
        ({"mse": {}}, "search.loss.mse"),
    ],
    ids=["name", "list", "mapping"],
)
def test_incompatible_choice_names_the_compatible_ones(write_study, cli, workdir, registry, loss, key):
    path = write_study(study_text({"dataset": "mnist1d", "search.loss": loss}))
    losses = compatible(registry, "loss", "classification", "sequence")
    assert {"cross_entropy", "label_smoothing"} <= set(losses.split(", ")) and "mse" not in losses.split(", ")
    assert_rejected(
        cli,
        workdir,
        path,
        [
            f"{path}: {key}: incompatible: loss 'mse' is for regression, this study's task is classification; "
            f"compatible: {losses} (got 'mse')\n",
        ],
    )


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"task": "regression"}, "task: data set 'digits' supports classification (got 'regression')"),
        (
            {"task": "clasification"},
            "task: unknown task (did you mean 'classification'?); allowed: classification, regression, generative "
            "(got 'clasification')",
        ),
    ],
    ids=["unsupported-by-dataset", "unknown"],
)
def test_bad_task(write_study, cli, workdir, changes, expected):
    path = write_study(study_text(changes))
    assert_rejected(cli, workdir, path, [f"{path}: {expected}"])


@pytest.mark.parametrize(
    ("dataset", "typo", "suggestion", "key"),
    [
        ("mnist_1d", "mnist_1d", "mnist1d", "dataset"),
        ({"name": "digitz"}, "digitz", "digits", "dataset.name"),
        ({"name": "sentinel2"}, "sentinel2", None, "dataset.name"),
    ],
    ids=["name", "mapping", "no-suggestion"],
)
def test_unknown_dataset(write_study, cli, workdir, registry, dataset, typo, suggestion, key):
    assert_suggests(registry, "dataset", typo, suggestion)
    path = write_study(study_text({"dataset": dataset}))
    hint = f" (did you mean {suggestion!r}?)" if suggestion else ""
    results = assert_rejected(
        cli,
        workdir,
        path,
        [
            f"{path}: {key}: unknown data set{hint}; no installed or local plugin registers it; registered: "
            f"{registered(registry, 'dataset')} (got {typo!r})\n"
        ],
    )
    if suggestion is None:
        assert "did you mean" not in results["validate"].err


def test_dataset_name_is_required(write_study, cli, workdir, registry):
    path = write_study(study_text({"dataset": {"test_fraction": 0.2}}))
    assert {"digits", "mnist1d"} <= set(registry.names("dataset"))
    assert_rejected(
        cli,
        workdir,
        path,
        [f"{path}: dataset.name: required: a data set name, one of {registry.names('dataset')} (got None)\n"],
    )


@pytest.mark.parametrize(
    ("dataset", "expected"),
    [
        ({"name": "digits", "test_fraction": 0.9}, "dataset.test_fraction: must be 0.1..0.5 (default 0.25) (got 0.9)"),
        (
            {"name": "digits", "val_fraction": "lots"},
            "dataset.val_fraction: must be 0.05..0.5 (default 0.15) (got 'lots')",
        ),
        ({"name": "mnist1d", "train_samples": 10}, "dataset.train_samples: must be 50..3800 (default 3800) (got 10)"),
        (
            {"name": "mnist1d", "train_sample": 100},
            "dataset.train_sample: unknown option of data set 'mnist1d' (did you mean 'train_samples'?); "
            "allowed: val_fraction, train_samples (got 'train_sample')",
        ),
    ],
    ids=["above-range", "not-a-number", "below-range", "unknown-option"],
)
def test_bad_dataset_option(write_study, cli, workdir, dataset, expected):
    path = write_study(study_text({"dataset": dataset}))
    assert_rejected(cli, workdir, path, [f"{path}: {expected}"])


@pytest.mark.parametrize(
    ("objective", "expected"),
    [
        (
            {"metric": "val_rmse"},
            ["objective.metric: not a classification metric", "; allowed: val_accuracy, val_loss (got 'val_rmse')"],
        ),
        (
            {"metric": "val_acc"},
            [
                "objective.metric: not a classification metric (did you mean 'val_accuracy'",
                "allowed: val_accuracy, val_loss (got 'val_acc')",
            ],
        ),
        (
            {"metric": "val_accuracy", "direction": "up"},
            ["objective.direction: must be maximize or minimize (got 'up')"],
        ),
        (
            {"metric": "val_accuracy", "goal": "max"},
            ["objective.goal: unknown key; allowed: direction, metric (got 'goal')"],
        ),
    ],
    ids=["regression-metric", "typo", "direction", "unknown-key"],
)
def test_bad_objective(write_study, cli, workdir, objective, expected):
    path = write_study(study_text({"objective": objective}))
    assert_rejected(cli, workdir, path, [f"{path}: {expected[0]}", *expected[1:]])


# ----------------------------------------------------------------------------------- sampler and pruner


@pytest.mark.parametrize(
    ("sampler", "expected"),
    [
        (
            "hillclimb",
            [
                "sampler: unknown sampler; allowed: tpe, bohb, random, grid, qmc, gp, cmaes, nsga2, nsga3 "
                "(got 'hillclimb')"
            ],
        ),
        (
            {"name": "rnadom"},
            [
                "sampler.name: unknown sampler (did you mean 'random'?); allowed: tpe, bohb, random, grid, qmc, gp, "
                "cmaes, nsga2, nsga3 (got 'rnadom')"
            ],
        ),
        (
            {"name": "tpe", "n_startup": 3},
            ["sampler.n_startup: unknown option of TPESampler; allowed: ", "n_startup_trials", "multivariate"],
        ),
        (
            {"name": "random", "multivariate": True},
            ["sampler.multivariate: unknown option of RandomSampler; allowed: "],
        ),
    ],
    ids=["unknown", "typo", "unknown-option", "option-of-another-sampler"],
)
def test_unknown_sampler_or_sampler_option(write_study, cli, workdir, sampler, expected):
    path = write_study(study_text({"sampler": sampler}))
    assert_rejected(cli, workdir, path, [f"{path}: {expected[0]}", *expected[1:]])


@pytest.mark.parametrize(
    ("pruner", "expected"),
    [
        (
            "xyz",
            [
                "pruner: unknown pruner; allowed: median, percentile, successive_halving, asha, hyperband, wilcoxon, "
                "none (got 'xyz')"
            ],
        ),
        (
            "medain",
            [
                "pruner: unknown pruner (did you mean 'median'?); allowed: median, percentile, successive_halving, "
                "asha, hyperband, wilcoxon, none (got 'medain')"
            ],
        ),
        (
            {"name": "median", "warmup_steps": 2},
            ["pruner.warmup_steps: unknown option of MedianPruner; allowed: ", "n_warmup_steps"],
        ),
    ],
    ids=["unknown", "typo", "unknown-option"],
)
def test_unknown_pruner_or_pruner_option(write_study, cli, workdir, pruner, expected):
    path = write_study(study_text({"pruner": pruner}))
    assert_rejected(cli, workdir, path, [f"{path}: {expected[0]}", *expected[1:]])


# ------------------------------------------------------------------------------------ reading the file


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda d: d / "missing.yaml", "file not found"),
        (lambda d: (d / "studies").mkdir() or d / "studies", "not a file"),
    ],
    ids=["missing", "directory"],
)
def test_missing_study_file(cli, workdir, make, problem):
    path = make(workdir)
    assert_rejected(cli, workdir, path, [f"error: {path}: {problem}\n"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "name: tiny\ndataset: digits\nbudget: {trials: 3, max_epochs: 2}}\nseed: 0\n",
            "YAML syntax error: line 3, column 35: expected <block end>, but found '}'",
        ),
        (
            "name: tiny\ndataset: digits\nseed: 0\nsearch:\n  activation: [relu, sigmoid\n  loss: mse\n",
            "YAML syntax error: line 6, column 7: expected ',' or ']', but got ':'",
        ),
        (
            "name: tiny\ndataset: digits\nseed: 0\nsearch:\n  activation: relu\n   loss: mse\n",
            "YAML syntax error: line 6, column 8: mapping values are not allowed here",
        ),
    ],
    ids=["extra-brace", "unclosed-list", "bad-indent"],
)
def test_yaml_syntax_error_gives_the_line(write_study, cli, workdir, text, expected):
    path = write_study(text)
    assert_rejected(cli, workdir, path, [f"{path}: {expected}"])


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("- name: tiny\n- dataset: digits\n", "list"),
        ("just a sentence\n", "str"),
        ("42\n", "int"),
        ("# only a comment\n", "NoneType"),
    ],
    ids=["list", "string", "number", "empty"],
)
def test_study_file_that_is_not_a_mapping(write_study, cli, workdir, text, kind):
    path = write_study(text)
    assert_rejected(
        cli, workdir, path, [f"{path}: a study file is a mapping of keys (name, dataset, search, ...), got {kind}"]
    )


# -------------------------------------------------------------------------------------------- storage


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "postgresql://postgres@127.0.0.1:1/nope",
            "storage: cannot connect to postgresql://postgres@127.0.0.1:1/nope: ",
        ),
        ("postgresql+psycopg://postgres@127.0.0.1:1/nope", "Connection refused"),
        (
            "journal:{workdir}/no/such/folder/optuna.journal",
            "storage: the journal file's folder {workdir}/no/such/folder does not exist",
        ),
        (
            "sqlite:///{workdir}/no/such/folder/optuna.db",
            "storage: the SQLite file's folder {workdir}/no/such/folder does not exist",
        ),
        ("redis://127.0.0.1:1/0", "storage: unsupported storage URL 'redis://127.0.0.1:1/0'; use journal:PATH"),
    ],
    ids=["postgresql", "postgresql-psycopg", "journal-folder", "sqlite-folder", "unsupported"],
)
@pytest.mark.parametrize("where", ["option", "study-file"])
def test_unusable_storage_fails_before_anything_is_created(write_study, cli, workdir, url, expected, where):
    url, expected = url.format(workdir=workdir), expected.format(workdir=workdir)
    if where == "option":
        path, args = write_study(study_text()), ["--storage", url]
    else:
        path, args = write_study(study_text({"storage": url})), []
    assert_rejected(cli, workdir, path, [f"{path}: storage: ", expected], commands=["run"], args=args)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://user:s3cret@127.0.0.1:1/db",
        "postgresql+psycopg://user:s3cret@127.0.0.1:1/db",
        "redis://user:s3cret@127.0.0.1:1/0",
    ],
)
@pytest.mark.parametrize("where", ["option", "study-file"])
def test_storage_password_is_never_printed(write_study, cli, workdir, url, where):
    if where == "option":
        path, args = write_study(study_text()), ["--storage", url]
    else:
        path, args = write_study(study_text({"storage": url})), []
        validated = cli("validate", path)
        assert validated.code == 0 and "s3cret" not in validated.out + validated.err
    result = assert_rejected(
        cli, workdir, path, [f"{path}: storage: ", "user:***@127.0.0.1:1/"], commands=["run"], args=args
    )["run"]
    assert "s3cret" not in result.out + result.err


def test_unreachable_postgresql_is_reported_as_unreachable(write_study, cli, workdir):
    path = write_study(study_text())
    assert_rejected(
        cli,
        workdir,
        path,
        ["cannot connect to postgresql://postgres@127.0.0.1:1/nope", "refused"],
        commands=["run"],
        args=["--storage", "postgresql://postgres@127.0.0.1:1/nope"],
    )


# ------------------------------------------------------------------------------------ several at once


def test_several_problems_are_all_reported_in_one_run(write_study, cli, workdir, registry):
    assert_suggests(registry, "optimizer", "rmsprp", "rmsprop")
    path = write_study(
        study_text(
            {
                "budgets": {"trials": 3},
                "dataset": {"name": "mnist1d", "train_samples": 10},
                "budget.trials": "ten",
                "sampler": "hillclimb",
                "search.optimizer": {"rmsprp": {}, "adam": {"lr": {"low": 0.01, "high": 0.001}}},
                "search.activation": [],
                "search.loss": "mse",
                "search.schedule": {"step": {"gamma": 2.0}},
            }
        )
    )
    expected = [
        "budgets: unknown key (did you mean 'budget'?)",
        "dataset.train_samples: must be 50..3800 (default 3800) (got 10)",
        "budget.trials: must be an integer >= 1 (got 'ten')",
        "sampler: unknown sampler; allowed: tpe, bohb, random, grid, qmc, gp, cmaes, nsga2, nsga3 (got 'hillclimb')",
        f"search.activation: an empty list; name at least one activation: {registered(registry, 'activation')} "
        "(got [])",
        "search.loss: incompatible: loss 'mse' is for regression",
        "search.optimizer.rmsprp: unknown optimizer (did you mean 'rmsprop'?)",
        "search.optimizer.adam.lr: low 0.01 is greater than high 0.001",
        "search.schedule.step.gamma: value 2.0 is not a number in the declared range 0.05..0.9",
    ]
    results = assert_rejected(cli, workdir, path, [f"{path}: {e}" for e in expected], problems=len(expected))
    lines = results["validate"].err.removeprefix("error: ").splitlines()
    assert len(lines) == len(expected)
    assert all(line.startswith(f"{path}: ") for line in lines)


def test_without_a_data_set_the_search_is_still_checked(write_study, cli, workdir, registry):
    assert_suggests(registry, "architecture", "mlpp", "mlp")
    path = write_study(
        study_text(
            {"search.architecture": {"mlpp": {}}, "search.batch_sise": 3, "search.optimizer": {"adam": {"lrr": 0.1}}},
            drop=["dataset"],
        )
    )
    expected = [
        "dataset: required: a data set name",
        "search.batch_sise: unknown key (did you mean 'batch_size'?)",
        "search.architecture.mlpp: unknown architecture (did you mean 'mlp'?)",
        "search.optimizer.adam.lrr: unknown parameter (did you mean 'lr'?)",
    ]
    assert_rejected(cli, workdir, path, [f"{path}: {e}" for e in expected], problems=len(expected))


HALF_REGISTERED = """
from orchestrator import Activation, hookimpl


@hookimpl
def register_activations(register):
    register(Activation("swishy", "x * sigmoid(x)", build=lambda params: __import__("torch").nn.SiLU()))
    raise RuntimeError("half-registered")
"""


def test_a_component_of_a_broken_plugin_is_refused_and_all_says_what_is_missing(write_study, cli, workdir):
    (workdir / "plugins").mkdir()
    (workdir / "plugins" / "broken.py").write_text(HALF_REGISTERED)  # registers swishy, then fails
    (workdir / "plugins" / "absent.py").write_text("import not_a_module\n")  # registers nothing
    path = write_study(study_text({"search.activation": ["relu", "swishy"]}))
    for command in ("validate", "run"):
        result = cli(command, path)
        assert result.code == 2, result.out + result.err
        assert (
            f"{path}: search.activation: its plugin {workdir / 'plugins' / 'broken.py'} failed to load "
            "(register_activations failed: RuntimeError: half-registered"
        ) in result.err, result.err
        assert not (workdir / "optuna.journal").exists() and not (workdir / "mlflow.db").exists()
    result = cli("validate", write_study(study_text({"search.activation": "all"})))
    assert result.code == 0, result.out + result.err
    assert "search.activation: removed 'swishy': its plugin" in result.out
    missing = result.out.split("missing (a plugin failed to load):\n")[1].splitlines()
    assert any(
        line.startswith("  search.activation: `all` lacks whatever ")
        and "absent.py registers: it failed to load (ModuleNotFoundError: No module named 'not_a_module'" in line
        for line in missing
    ), missing


# ---------------------------------------------------------------------------------------- valid studies


def test_validate_quickstart_shows_the_whole_search_space(cli, workdir):
    path = workdir / "quickstart.yaml"
    shutil.copy(ROOT / "studies" / "quickstart.yaml", path)
    source = yaml.safe_load(path.read_text())
    result = cli("validate", path)
    assert result.code == 0, result.err
    assert result.err == ""
    out = result.out
    assert out.startswith(f"{path}: OK\n")
    assert f"dataset    {source['dataset']} " in out
    assert f"objective  {source['objective']['direction']} {source['objective']['metric']}" in out
    assert f"budget     {source['budget']['trials']} trials, max {source['budget']['max_epochs']} epochs" in out
    assert "checkpoint every 1 epoch(s), at most every 5 s, in checkpoints/ beside the Optuna storage" in out
    search = source["search"]
    # every kind, with exactly the components the file names
    for kind in ("architecture", "activation", "loss", "optimizer"):
        names = (
            search[kind]
            if isinstance(search[kind], list)
            else [search[kind]]
            if isinstance(search[kind], str)
            else list(search[kind])
        )
        assert f"  {kind}: {' | '.join(names)}\n" in out
    # the file names no schedule: a constant learning rate, not a search over the schedules
    assert "schedule" not in search
    assert "  schedule: constant\n" in out and "    schedule." not in out
    # every declared parameter of every chosen component, namespaced (including ones the file leaves alone)
    for key in (
        "architecture.mlp.depth",
        "architecture.mlp.width",
        "optimizer.adam.lr",
        "optimizer.adam.beta1",
        "optimizer.adam.beta2",
        "optimizer.sgd.lr",
        "optimizer.sgd.momentum",
        "optimizer.sgd.nesterov",
        "loss.label_smoothing.smoothing",
    ):
        assert f"    {key}: " in out, key
    for name in search.get("regularizers", {}):
        assert f"  regularizer.{name}: on or off" in out
    assert "    regularizer.dropout.p: " in out and "    regularizer.l2.weight: 1e-07..0.1, log" in out
    assert "    regularizer.l2.form: one of ['penalty', 'decay'] (default 'penalty')\n" in out
    # the file's narrowed ranges, not the declared ones
    lr = search["optimizer"]["adam"]["lr"]
    assert f"    optimizer.adam.lr: {lr['low']}..{lr['high']}, log (default " in out
    assert "    optimizer.adam.lr: 1e-05..0.1" not in out
    assert f"    optimizer.adam.beta1: fixed {search['optimizer']['adam']['beta1']}" in out
    assert "    optimizer.sgd.nesterov: one of [True, False] (default True)" in out
    assert f"  batch_size: one of {search['batch_size']}" in out
    assert "removed as incompatible" not in out
    assert listing(workdir) == ["quickstart.yaml"]


def test_a_narrowed_list_keeps_the_declared_default_when_it_lists_it(write_study, cli, workdir, registry):
    """mlp depth is declared 1..4 with default 2: the list [1, 2] keeps default 2; [1, 3] has no 2: its first."""
    assert registry.get("architecture", "mlp").spec.params["depth"].default == 2
    for depth, default in (([1, 2], 2), ([1, 3], 1)):
        result = cli("validate", write_study(study_text({"search.architecture.mlp.depth": depth})))
        assert result.code == 0, result.err
        assert f"    architecture.mlp.depth: one of {depth} (default {default})\n" in result.out, result.out
    assert "    architecture.mlp.width: one of [16, 32] (default 16)\n" in result.out  # declared default 128
    # the same for a declared categorical: sgd's nesterov is one of [True, False], default True
    result = cli("validate", write_study(study_text({"search.optimizer": {"sgd": {"nesterov": [False, True]}}})))
    assert result.code == 0, result.err
    assert "    optimizer.sgd.nesterov: one of [False, True] (default True)\n" in result.out, result.out


@pytest.mark.parametrize("loss", [None, "all"], ids=["omitted", "all"])
def test_validate_shows_incompatible_components_removed(write_study, cli, workdir, registry, loss):
    text = study_text(drop=["search.loss"]) if loss is None else study_text({"search.loss": loss})
    path = write_study(text)
    result = cli("validate", path)
    assert result.code == 0, result.err
    out = result.out
    usable = compatible(registry, "loss", "classification", "image").split(", ")
    unusable = [name for name in registry.names("loss") if name not in usable]
    assert {"cross_entropy", "label_smoothing"} <= set(usable) and "mse" in unusable
    space, removed = out.split("removed as incompatible:\n")
    assert f"  loss: {' | '.join(usable)}\n" in space
    assert "    loss.label_smoothing.smoothing: 0.0..0.3 (default 0.1)" in space
    assert not any(f"loss.{name}." in space for name in unusable)
    lines = [
        f"  search.loss: removed {name!r}: loss {name!r} is for "
        f"{'/'.join(registry.get('loss', name).spec.tasks)}, this study's task is classification"
        for name in unusable
    ]
    assert removed.splitlines() == lines
    assert "  search.loss: removed 'mse': loss 'mse' is for regression, this study's task is classification" in lines
    assert listing(workdir) == ["study.yaml"]


@pytest.mark.parametrize(
    "schedule", [None, "all", "cosine", ["constant", "step"]], ids=["omitted", "all", "one", "list"]
)
def test_validate_shows_the_searched_schedules(write_study, cli, workdir, registry, schedule):
    """A study that names no schedule keeps a constant learning rate; `all` searches every registered one."""
    assert "schedule" not in BASE["search"]
    path = write_study(study_text() if schedule is None else study_text({"search.schedule": schedule}))
    result = cli("validate", path)
    assert result.code == 0, result.err
    if schedule is None:
        expected = ["constant"]
    elif schedule == "all":
        expected = registry.names("schedule")
    else:
        expected = schedule if isinstance(schedule, list) else [schedule]
    assert f"  schedule: {' | '.join(expected)}\n" in result.out
    described = {line.split(".")[1] for line in result.out.splitlines() if line.startswith("      schedule.")}
    assert described == {name for name in expected if registry.get("schedule", name).spec.params}
    if schedule == "all":
        assert {"constant", "cosine", "step", "one_cycle"} <= set(expected)
        assert "    schedule.cosine.min_factor: 0.0..0.5 (default 0.0)" in result.out
    assert "removed as incompatible" not in result.out
    assert listing(workdir) == ["study.yaml"]


@pytest.mark.parametrize("regularizers", [None, "all", ["dropout"]], ids=["omitted", "all", "list"])
def test_validate_shows_the_searched_regularizers(write_study, cli, workdir, registry, regularizers):
    """Regularizers left out: none; `all`: every registered one that fits the task, each searched on/off."""
    assert "regularizers" not in BASE["search"]
    changes = {} if regularizers is None else {"search.regularizers": regularizers}
    result = cli("validate", write_study(study_text(changes)))
    assert result.code == 0, result.err
    shown = [
        line.split(": ")[0].strip().removeprefix("regularizer.")
        for line in result.out.splitlines()
        if line.startswith("    regularizer.") and line.count(".") == 1
    ]
    expected = {None: [], "all": registry.names("regularizer"), "list": ["dropout"]}[
        regularizers if not isinstance(regularizers, list) else "list"
    ]
    assert shown == expected, result.out
    assert ("  regularizers:\n" in result.out) == bool(expected)
    if regularizers == "all":
        assert {"dropout", "l2", "batchnorm", "grad_clip"} <= set(shown)
        assert all(f"    regularizer.{name}: on or off" in result.out for name in shown)
    assert listing(workdir) == ["study.yaml"]


# ------------------------------------------------------------------ names, options and numbers


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"sampler": ["tpe"]}, "sampler"),
        ({"pruner": {"name": ["median"]}}, "pruner.name"),
        ({"objective.metric": ["val_accuracy"]}, "objective.metric"),
    ],
)
def test_list_where_a_name_is_expected(write_study, cli, workdir, changes, key):
    path = write_study(study_text(changes))
    assert_rejected(cli, workdir, path, [f"{path}: {key}: "])


def test_rejected_pruner_option_is_reported_under_its_own_key(write_study, cli, workdir):
    path = write_study(study_text({"pruner": {"name": "percentile", "n_startup_trials": 3, "percentile": 150}}))
    assert_rejected(cli, workdir, path, [f"{path}: pruner.percentile: rejected by PercentilePruner", "(got 150)"])


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"search.optimizer.adam.lr": {"low": float("nan"), "high": 0.01}}, "search.optimizer.adam.lr"),
        ({"search.optimizer.adam.lr": {"low": 0.001, "high": float("nan")}}, "search.optimizer.adam.lr"),
        (
            {"search.regularizers": {"dropout": {"p": {"low": 0.0, "high": 0.5, "step": -0.1}}}},
            "search.regularizers.dropout.p",
        ),
        (
            {"search.regularizers": {"dropout": {"p": {"low": 0.0, "high": 0.5, "step": 0}}}},
            "search.regularizers.dropout.p",
        ),
        ({"budget.timeout": float("nan")}, "budget.timeout"),
    ],
    ids=["nan-low", "nan-high", "negative-step", "zero-step", "nan-timeout"],
)
def test_nonsense_numbers_are_rejected(write_study, cli, workdir, changes, key):
    path = write_study(study_text(changes))
    assert_rejected(cli, workdir, path, [f"{path}: {key}: "], commands=["validate"])


@pytest.mark.parametrize(
    ("changes", "key", "message"),
    [
        ({"workers": 0}, "workers", "must be an integer >= 1"),
        ({"workers": "two"}, "workers", "must be an integer >= 1"),
        ({"trials_per_device": 0}, "trials_per_device", "must be an integer >= 1"),
        ({"worker_memory_mb": -5}, "worker_memory_mb", "must be an integer >= 1"),
        ({"heartbeat_seconds": 0.5}, "heartbeat_seconds", "must be an integer >= 1"),
        ({"devices": "gpu"}, "devices", "must be auto, cpu, or a list of distinct GPU indices"),
        ({"devices": [0, 0]}, "devices", "must be auto, cpu, or a list of distinct GPU indices"),
        ({"devices": [-1]}, "devices", "must be auto, cpu, or a list of distinct GPU indices"),
        ({"stop_grace_seconds": 0}, "stop_grace_seconds", "must be a number of seconds > 0"),
        ({"max_consecutive_failures": -1}, "max_consecutive_failures", "must be an integer >= 0"),
        (
            {"checkpoints": {"every_epochs": -1}},
            "checkpoints.every_epochs",
            "must be an integer >= 0 (0 turns checkpoints off)",
        ),
        ({"checkpoints": {"min_seconds": "often"}}, "checkpoints.min_seconds", "must be a number of seconds >= 0"),
        ({"checkpoints": {"keep": "yes"}}, "checkpoints.keep", "must be true or false"),
        ({"checkpoints": {"dir": 3}}, "checkpoints.dir", "must be a folder path (relative to the study file)"),
        ({"checkpoints": {"every": 2}}, "checkpoints.every", "unknown key (did you mean 'every_epochs'?)"),
    ],
    ids=[
        "workers-zero",
        "workers-text",
        "per-device-zero",
        "memory-negative",
        "heartbeat-fraction",
        "devices-word",
        "devices-repeated",
        "devices-negative",
        "grace-zero",
        "failures-negative",
        "checkpoint-every-negative",
        "checkpoint-seconds-word",
        "checkpoint-keep-word",
        "checkpoint-dir-number",
        "checkpoint-unknown-key",
    ],
)
def test_bad_execution_settings_are_rejected(write_study, cli, workdir, changes, key, message):
    path = write_study(study_text(changes))
    assert_rejected(cli, workdir, path, [f"{path}: {key}: {message}"])


def test_gpus_that_do_not_exist_are_refused_before_anything_is_created(write_study, cli, workdir):
    path = write_study(study_text({"devices": [0, 2]}))
    before = listing(workdir)
    result = cli("run", path)
    assert result.code == 2
    assert result.err == (f"error: {path}: devices: GPU 0, 2 requested, but this machine has 0 visible GPU(s)\n")
    assert listing(workdir) == before
