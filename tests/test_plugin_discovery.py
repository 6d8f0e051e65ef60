"""Plugin discovery as a user meets it: built-ins, local plugin folders, third-party packages,
broken and conflicting plugins, and the lifecycle hooks.

Subprocess runs are slow (~8-13 s of imports each), so each one checks as much as it can.

The built-in library keeps growing: `REQUIRED_BUILTINS` are the components it must have (the ones its
issues asked for), and the exact set of built-ins expected next to other plugins is whatever the
built-ins register on their own (the `builtins` fixture).
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import TINY_STUDY

import orchestrator
from orchestrator.api import hookspecs
from orchestrator.api.components import KINDS
from orchestrator.api.registry import (
    DISABLE_AUTOLOAD_ENV,
    LOAD_ONLY_ENV,
    PluginConflictError,
    Registry,
    describe_params,
    load_registry,
)

REPO = Path(orchestrator.__file__).resolve().parent.parent
AUTOML = Path(sys.executable).parent / "automl"
BUILTIN_DIST = "automl-orchestrator"

# The built-ins the library's issues asked for: the first twelve, then the component library's additions.
REQUIRED_BUILTINS = {
    ("architecture", "mlp"),
    ("activation", "relu"),
    ("activation", "sigmoid"),
    ("loss", "cross_entropy"),
    ("loss", "label_smoothing"),
    ("loss", "mse"),
    ("optimizer", "sgd"),
    ("optimizer", "adam"),
    ("regularizer", "dropout"),
    ("regularizer", "l2"),
    ("dataset", "mnist1d"),
    ("dataset", "digits"),
    # learning-rate schedules (a new kind), optimizers and regularizers
    ("schedule", "constant"),
    ("schedule", "cosine"),
    ("schedule", "step"),
    ("schedule", "one_cycle"),
    ("optimizer", "adamw"),
    ("optimizer", "rmsprop"),
    ("regularizer", "l1"),
    ("regularizer", "batchnorm"),
    ("regularizer", "layernorm"),
    ("regularizer", "early_stopping"),
    ("regularizer", "grad_clip"),
    # architectures, activations and losses
    ("architecture", "cnn"),
    ("architecture", "rnn"),
    ("architecture", "lstm"),
    ("architecture", "gru"),
    ("architecture", "transformer"),
    ("activation", "tanh"),
    ("activation", "gelu"),
    ("activation", "leaky_relu"),
    ("activation", "silu"),
    ("activation", "elu"),
    ("loss", "nll"),
    ("loss", "mae"),
    ("loss", "huber"),
    # data sets
    ("dataset", "diabetes"),
    ("dataset", "csv"),
    ("dataset", "npz"),
}

SWISH = """
import torch
from torch import nn

from orchestrator import Activation, Float, hookimpl


class Swish(nn.Module):
    def __init__(self, beta):
        super().__init__()
        self.beta = beta

    def forward(self, x):
        return x * torch.sigmoid(self.beta * x)


@hookimpl
def register_activations(register):
    register(Activation("swish", "x * sigmoid(beta * x)",
                        params={"beta": Float(0.5, 2.0, default=1.0, help="slope")},
                        build=lambda params: Swish(params["beta"])))
"""

SWISH_STUDY = """
name: swishy
dataset: digits
budget: {trials: 1, max_epochs: 1}
search:
  architecture: {mlp: {depth: 1, width: 16}}
  activation: swish
  loss: cross_entropy
  optimizer: adam
"""


@pytest.fixture(autouse=True)
def _no_plugin_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The plugin env vars of the developer's shell must not leak into these tests."""
    monkeypatch.delenv(DISABLE_AUTOLOAD_ENV, raising=False)
    monkeypatch.delenv(LOAD_ONLY_ENV, raising=False)


@pytest.fixture(scope="module")
def builtins(builtin_registry: Registry) -> set[tuple[str, str]]:
    """Every (kind, name) the built-in library registers now: at least the required ones, all its own."""
    assert {entry.plugin for entry in builtin_registry.all()} == {f"{BUILTIN_DIST} {orchestrator.__version__}"}
    return {(entry.spec.kind, entry.spec.name) for entry in builtin_registry.all()}


def write_plugin(folder: Path, name: str, source: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(source))
    return path


def rows_by_key(out: str) -> dict[tuple[str, str], dict]:
    rows = json.loads(out)
    keyed = {(row["kind"], row["name"]): row for row in rows}
    assert len(keyed) == len(rows), "a component is listed twice"
    return keyed


def assert_builtins(rows: dict[tuple[str, str], dict], builtins: set[tuple[str, str]]) -> None:
    """Exactly the built-ins, attributed to the built-in distribution, and every row well-formed."""
    builtin = {key for key, row in rows.items() if row["plugin"] == f"{BUILTIN_DIST} {orchestrator.__version__}"}
    assert builtin == builtins
    assert REQUIRED_BUILTINS <= builtin
    for (kind, name), row in rows.items():
        assert kind in KINDS and name.isidentifier(), row
        assert row["plugin"] and isinstance(row["params"], dict), row
        for pname, param in row["params"].items():
            assert pname.isidentifier() and "type" in param and "default" in param, (kind, name, pname, param)


def subprocess_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOML_") and k != "PYTHONPATH"}
    env.update(extra)
    return env


def start_cmd(args: list[object], cwd: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(a) for a in args],
        cwd=cwd,
        env=subprocess_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    try:
        out, err = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def run_cmd(args: list[object], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return finish(start_cmd(args, cwd, **env))


# ---------------------------------------------------------------------------
# Built-ins
# ---------------------------------------------------------------------------


def test_plugins_json_lists_every_builtin_with_origin_and_ranges(workdir, cli, builtin_registry, builtins):
    result = cli("plugins", "--json")
    assert result.code == 0, result.err
    assert "warning" not in result.err
    rows = rows_by_key(result.out)
    assert_builtins(rows, builtins)
    assert set(rows) == builtins
    for (kind, name), row in rows.items():
        assert (row["kind"], row["name"]) == (kind, name)
        assert row["plugin"] == f"{BUILTIN_DIST} {orchestrator.__version__}"
        assert row["description"]
        # every declared parameter with its range, as the registry holds it
        declared = builtin_registry.get(kind, name).spec.params
        assert row["params"] == json.loads(json.dumps(describe_params(declared), default=list)), (kind, name)
    lr = rows[("optimizer", "adam")]["params"]["lr"]
    assert (lr["type"], lr["low"], lr["high"], lr["log"], lr["default"]) == ("float", 1e-5, 1e-1, True, 1e-3)
    assert set(rows[("optimizer", "adam")]["params"]) == {"lr", "beta1", "beta2"}
    assert set(rows[("optimizer", "sgd")]["params"]) == {"lr", "momentum", "nesterov"}
    assert rows[("optimizer", "sgd")]["params"]["nesterov"]["choices"] == [True, False]
    depth = rows[("architecture", "mlp")]["params"]["depth"]
    assert (depth["type"], depth["low"], depth["high"], depth["default"]) == ("int", 1, 4, 2)
    assert rows[("regularizer", "dropout")]["params"]["p"]["default"] == 0.2
    assert rows[("activation", "relu")]["params"] == {}
    assert rows[("dataset", "mnist1d")]["input_kind"] == "sequence"
    assert rows[("dataset", "digits")]["input_kind"] == "image"
    assert rows[("loss", "mse")]["tasks"] == ["regression"]
    # l2: a wider weight range, and where it acts (the loss, as before, or the optimizer's weight decay)
    weight = rows[("regularizer", "l2")]["params"]["weight"]
    assert (weight["type"], weight["low"], weight["high"], weight["log"]) == ("float", 1e-7, 1e-1, True)
    form = rows[("regularizer", "l2")]["params"]["form"]
    assert (form["type"], form["choices"], form["default"]) == ("categorical", ["penalty", "decay"], "penalty")
    assert set(rows[("regularizer", "early_stopping")]["params"]) == {"patience"}
    assert rows[("schedule", "constant")]["params"] == {}
    for name in ("constant", "cosine", "step", "one_cycle"):
        assert rows[("schedule", name)]["kind"] == "schedule"

    text = cli("plugins")
    assert text.code == 0
    assert "mlp" in text.out and "activations:" in text.out and f"[{BUILTIN_DIST} " in text.out
    for kind, name in builtins:
        assert f"\n  {name} " in text.out, (kind, name)


def test_plugins_text_heads_each_kind_with_its_plural(workdir, cli):
    text = cli("plugins")
    assert text.code == 0, text.err
    headings = [line for line in text.out.splitlines() if line and not line.startswith(" ")]
    assert headings == [
        "architectures:",
        "activations:",
        "losses:",
        "optimizers:",
        "schedules:",
        "regularizers:",
        "augmentations:",
        "datasets:",
    ]


# ---------------------------------------------------------------------------
# Local plugin folders
# ---------------------------------------------------------------------------


def test_local_plugins_folder_is_discovered_and_usable(workdir, cli, write_study, builtins):
    path = write_plugin(workdir / "plugins", "swish.py", SWISH)
    study = write_study(SWISH_STUDY)

    result = cli("plugins", "--json")
    assert result.code == 0, result.err
    rows = rows_by_key(result.out)
    assert_builtins(rows, builtins)
    swish = rows[("activation", "swish")]
    assert swish["plugin"] == str(path.resolve())
    assert swish["params"]["beta"]["low"] == 0.5 and swish["params"]["beta"]["default"] == 1.0

    validated = cli("validate", study)
    assert validated.code == 0, validated.err
    assert "activation: swish" in validated.out
    assert "activation.swish.beta: 0.5..2.0" in validated.out


def test_plugins_dir_option_adds_another_folder(workdir, cli, write_study, tmp_path_factory, builtins):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    path = write_plugin(elsewhere, "swish.py", SWISH)
    study = write_study(SWISH_STUDY)

    # Without the option the component is unknown, so the study does not validate.
    missing = cli("validate", study)
    assert missing.code == 2
    assert "swish" in missing.err and "unknown activation" in missing.err
    assert ("activation", "swish") not in rows_by_key(cli("plugins", "--json").out)

    result = cli("plugins", "--json", "--plugins-dir", elsewhere)
    assert result.code == 0, result.err
    rows = rows_by_key(result.out)
    assert_builtins(rows, builtins)
    assert rows[("activation", "swish")]["plugin"] == str(path.resolve())

    validated = cli("validate", study, "--plugins-dir", elsewhere)
    assert validated.code == 0, validated.err
    assert "activation: swish" in validated.out


def test_missing_plugins_dir_is_reported(workdir, cli, builtins):
    result = cli("plugins", "--json", "--plugins-dir", workdir / "nope")
    assert result.code == 0
    assert f'warning: Error loading plugin "{workdir.resolve() / "nope"}": plugin folder does not exist' in result.err
    assert_builtins(rows_by_key(result.out), builtins)


def test_users_plugins_package_never_shadows_the_builtins(tmp_path, builtins):
    project = tmp_path / "project"
    user = project / "plugins"
    write_plugin(user, "__init__.py", 'raise ImportError("the user\'s plugins package was imported as a module")\n')
    arch = write_plugin(
        user,
        "architectures.py",
        """
        from torch import nn
        from orchestrator import Architecture, hookimpl

        @hookimpl
        def register_architectures(register):
            register(Architecture("user_net", "a user's network",
                                  build=lambda params, ctx: nn.LazyLinear(ctx.output_size)))
    """,
    )
    data = write_plugin(
        user,
        "datasets.py",
        """
        from orchestrator import Dataset, hookimpl

        @hookimpl
        def register_datasets(register):
            register(Dataset("user_data", "a user's data set", build=lambda params, seed: None))
    """,
    )
    expected_users = {("architecture", "user_net"): str(arch.resolve()), ("dataset", "user_data"): str(data.resolve())}

    # The console script, with the user's folder on PYTHONPATH; and `python -m`, which puts cwd first on
    # sys.path. Both at once: they spend most of their time importing.
    started = {
        "automl with PYTHONPATH": start_cmd([AUTOML, "plugins", "--json"], project, PYTHONPATH=str(project)),
        "python -m orchestrator": start_cmd([sys.executable, "-m", "orchestrator", "plugins", "--json"], project),
    }
    for label, running in started.items():
        proc = finish(running)
        assert proc.returncode == 0, (label, proc.stderr)
        assert "warning" not in proc.stderr, (label, proc.stderr)
        rows = rows_by_key(proc.stdout)
        assert_builtins(rows, builtins)
        assert {key: rows[key]["plugin"] for key in expected_users if key in rows} == expected_users, label
        assert len(rows) == len(builtins) + len(expected_users), label

    where = run_cmd(
        [
            sys.executable,
            "-c",
            "import automl_plugins, importlib.util; print(automl_plugins.__file__); "
            "print(importlib.util.find_spec('automl_plugins.architectures').origin)",
        ],
        project,
        PYTHONPATH=str(project),
    )
    assert where.returncode == 0, where.stderr
    package, module = where.stdout.split()
    assert Path(package).resolve() == REPO / "plugins" / "__init__.py"
    assert Path(module).resolve() == REPO / "plugins" / "architectures.py"


# ---------------------------------------------------------------------------
# Broken and conflicting plugins
# ---------------------------------------------------------------------------


def test_broken_plugins_are_reported_and_the_others_still_load(workdir, cli, builtins):
    folder = workdir / "plugins"
    raises = write_plugin(folder, "raises_at_import.py", 'raise RuntimeError("boom at import")\n')
    syntax = write_plugin(folder, "bad_syntax.py", "def oops(:\n    pass\n")
    hook = write_plugin(
        folder,
        "bad_hook.py",
        """
        from orchestrator import hookimpl

        @hookimpl
        def register_losses(register):
            raise ValueError("cannot register")
    """,
    )
    good = write_plugin(folder, "swish.py", SWISH)

    result = cli("plugins", "--json")
    assert result.code == 0, result.err
    warnings = [line for line in result.err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 3, result.err
    assert f'warning: Error loading plugin "{raises.resolve()}": RuntimeError: boom at import' in result.err
    assert f'warning: Error loading plugin "{syntax.resolve()}": SyntaxError' in result.err
    assert (
        f'warning: Error loading plugin "{hook.resolve()}": register_losses failed: ValueError: cannot register'
        in result.err
    )
    rows = rows_by_key(result.out)
    assert_builtins(rows, builtins)
    assert rows[("activation", "swish")]["plugin"] == str(good.resolve())

    registry = load_registry()
    assert sorted(e.plugin for e in registry.errors) == sorted(str(p.resolve()) for p in (raises, syntax, hook))


def test_a_study_naming_a_component_of_a_broken_plugin_is_told_which_plugin_failed(workdir, cli):
    """The component's plugin failed to import: the error names that plugin and its error, not just a typo hint;
    without any broken plugin it says that no plugin registers the name."""
    study = workdir / "study.yaml"
    study.write_text(TINY_STUDY.replace("activation: [relu, sigmoid]", "activation: [relu, swish]"))
    result = cli("validate", study)
    assert result.code == 2
    assert (
        "search.activation: unknown activation; no installed or local plugin registers it; registered: " in result.err
    ), result.err
    broken = write_plugin(workdir / "plugins", "swish.py", "import not_installed_dependency\n" + SWISH)
    result = cli("validate", study)
    assert result.code == 2
    assert (
        f"search.activation: unknown activation; it may come from a plugin that failed to load (Error loading "
        f"plugin \"{broken.resolve()}\": ModuleNotFoundError: No module named 'not_installed_dependency' "
        f"(swish.py:1)); registered: "
    ) in result.err, result.err
    assert result.err.count("Error loading plugin") == 2  # the warning, and the reason in the error


def test_a_broken_plugin_is_named_once_per_run_not_once_per_worker(workdir):
    write_plugin(workdir / "plugins", "raises_at_import.py", 'raise RuntimeError("boom at import")\n')
    (workdir / "study.yaml").write_text(TINY_STUDY.replace("trials: 3, max_epochs: 2", "trials: 2, max_epochs: 1"))
    run = subprocess.run(
        [str(Path(sys.executable).with_name("automl")), "run", "study.yaml", "--workers", "2", "--no-tracking"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    output = run.stdout + run.stderr
    # (before, each of the two workers repeated the supervisor's warning, since their output is passed on)
    assert output.count('Error loading plugin "') == 1, output
    # the workers' own output is still passed on: each says it is ready
    assert "worker cpu0 ready after" in output and "worker cpu1 ready after" in output, output


SWISH_AGAIN = SWISH.replace("x * sigmoid(beta * x)", "another swish")
RELU_AGAIN = """
from torch import nn
from orchestrator import Activation, hookimpl

@hookimpl
def register_activations(register):
    register(Activation("relu", "my own relu", build=lambda params: nn.ReLU()))
"""


@pytest.mark.parametrize(
    "files, component",
    [
        ({"a_swish.py": SWISH, "b_swish.py": SWISH_AGAIN}, "swish"),
        ({"my_relu.py": RELU_AGAIN}, "relu"),
    ],
    ids=["two-local-plugins", "local-redefines-builtin"],
)
def test_duplicate_component_names_are_an_error_naming_both_plugins(workdir, cli, files, component):
    paths = [str(write_plugin(workdir / "plugins", name, source).resolve()) for name, source in files.items()]
    owners = paths if len(paths) == 2 else [f"{BUILTIN_DIST} {orchestrator.__version__}", *paths]

    result = cli("plugins", "--json")
    assert result.code == 2
    assert result.out == ""
    assert f"activation {component!r} is registered twice" in result.err
    for owner in owners:
        assert owner in result.err

    with pytest.raises(PluginConflictError) as excinfo:
        load_registry()
    for owner in owners:
        assert owner in str(excinfo.value)


# ---------------------------------------------------------------------------
# Third-party packages (the `automl` entry-point group)
# ---------------------------------------------------------------------------


@pytest.fixture
def third_party_site(tmp_path: Path) -> Iterator[Path]:
    """A site folder holding an installed distribution `myplug 0.1` with an `automl` entry point."""
    site = tmp_path / "site"
    write_plugin(
        site,
        "myplug.py",
        """
        from torch import nn
        from orchestrator import Activation, hookimpl

        @hookimpl
        def register_activations(register):
            register(Activation("my_tanh", "tanh from a third-party package", build=lambda params: nn.Tanh()))
    """,
    )
    info = site / "myplug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: myplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[automl]\nmyplug = myplug\n")
    yield site
    sys.modules.pop("myplug", None)  # when imported in-process: the next test's site must import afresh


def test_third_party_package_is_discovered_through_its_entry_point(third_party_site, workdir, builtins):
    proc = run_cmd([AUTOML, "plugins", "--json"], workdir, PYTHONPATH=str(third_party_site))
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr
    rows = rows_by_key(proc.stdout)
    assert_builtins(rows, builtins)
    assert rows[("activation", "my_tanh")]["plugin"] == "myplug 0.1"


@pytest.mark.parametrize(
    "env, listed",
    [
        ({}, True),
        ({DISABLE_AUTOLOAD_ENV: "1"}, False),
        ({LOAD_ONLY_ENV: "other"}, False),
        ({LOAD_ONLY_ENV: "myplug"}, True),
        ({LOAD_ONLY_ENV: "other, myplug"}, True),
    ],
)
def test_plugin_env_vars_select_third_party_packages(
    third_party_site, workdir, cli, monkeypatch, builtins, env, listed
):
    # The same discovery in-process (the subprocess test above covers the real command line).
    monkeypatch.syspath_prepend(str(third_party_site))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    result = cli("plugins", "--json")
    assert result.code == 0, result.err
    rows = rows_by_key(result.out)
    assert_builtins(rows, builtins)
    assert (("activation", "my_tanh") in rows) is listed
    if listed:
        assert rows[("activation", "my_tanh")]["plugin"] == "myplug 0.1"


# ---------------------------------------------------------------------------
# Lifecycle hooks
# ---------------------------------------------------------------------------


RECORDER = """
import pytorch_lightning as pl

from orchestrator import hookimpl

LOG = {log!r}


def note(line):
    with open(LOG, "a") as f:
        f.write(line + "\\n")


class EpochRecorder(pl.Callback):
    def on_train_epoch_end(self, trainer, pl_module):
        note(f"epoch {{trainer.current_epoch}}")


@hookimpl
def before_study(study, spec):
    note(f"before_study {{study.study_name}} {{spec.name}} trials={{len(study.trials)}}")


@hookimpl
def before_trial(trial, config):
    note(f"before_trial {{trial.number}} width={{config['architecture.mlp.width']}}")


@hookimpl
def trial_callbacks(config):
    note(f"trial_callbacks width={{config['architecture.mlp.width']}}")
    return [EpochRecorder()]


@hookimpl
def after_trial(trial, config, state, value, metrics):
    note(f"after_trial {{trial.number}} {{state}} value_ok={{value is not None and 0 <= value <= 1}} "
         f"test_metrics={{sorted(metrics)}}")


@hookimpl
def after_study(study, spec):
    note(f"after_study {{study.study_name}} trials={{len(study.trials)}}")
"""


def test_lifecycle_hooks_are_called_in_order(workdir, cli, write_study):
    log = workdir / "hooks.log"
    write_plugin(workdir / "plugins", "recorder.py", RECORDER.format(log=str(log)))
    result = cli("run", write_study(), "--no-tracking")
    assert result.code == 0, result.err
    lines = log.read_text().splitlines()

    assert lines[0] == "before_study tiny tiny trials=0"
    assert lines[-1] == "after_study tiny trials=3"
    trials = lines[1:-1]
    assert len(trials) == 3 * 5, lines
    for number in range(3):
        before, callbacks, epoch0, epoch1, after = trials[5 * number : 5 * number + 5]
        width = before.rsplit("=", 1)[1]
        assert before == f"before_trial {number} width={width}" and width in ("16", "32")
        assert callbacks == f"trial_callbacks width={width}"
        assert (epoch0, epoch1) == ("epoch 0", "epoch 1")
        assert after == f"after_trial {number} COMPLETE value_ok=True test_metrics=['test_accuracy', 'test_loss']"


def test_every_hookspec_is_documented():
    specs = {
        name: func
        for name, func in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(func, f"{hookspecs.PROJECT}_spec")
    }
    assert set(specs) >= {
        "register_architectures",
        "register_activations",
        "register_losses",
        "register_optimizers",
        "register_schedules",
        "register_regularizers",
        "register_datasets",
        "before_study",
        "before_trial",
        "after_trial",
        "after_study",
        "trial_callbacks",
    }
    undocumented = [name for name, func in specs.items() if not (func.__doc__ or "").strip()]
    assert not undocumented
