"""One error family (orchestrator/errors.py): every exception the project defines is an AutomlError with the exit
code its kind ends the command with, or a flow-control signal (orchestrator/flow.py); `automl` turns the family
into `error: <message>` and that code in one place."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import signal

import pytest

import orchestrator
from orchestrator.cli import app as cli
from orchestrator.errors import AutomlError, CliError, RunError, StudyFileError, UserError
from orchestrator.flow import FlowSignal, Stopped
from orchestrator.testing import ConformanceError

# Outside both families on purpose: a plugin's conformance failure is a failed test (pytest reports it), and the
# supervisor's stop is a KeyboardInterrupt so that Lightning, Optuna and the interpreter unwind on it.
OUTSIDE = {ConformanceError, Stopped}
OPTIONAL = {"ray", "grpc"}  # extras a module may need; without them it cannot be imported to be checked


def defined_exceptions() -> list[type[BaseException]]:
    found = []
    for module_info in pkgutil.walk_packages(orchestrator.__path__, "orchestrator."):
        if module_info.name == "orchestrator.__main__":  # importing it runs the command
            continue
        try:
            module = importlib.import_module(module_info.name)
        except ImportError as exc:
            if (exc.name or "").split(".")[0] in OPTIONAL:
                continue
            raise
        found += [
            value
            for value in vars(module).values()
            if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == module.__name__
        ]
    return found


def test_every_exception_the_project_defines_is_an_error_of_the_family_or_a_flow_signal():
    exceptions = defined_exceptions()
    names = {e.__name__ for e in exceptions}
    assert {
        "StudyFileError",
        "DeviceError",
        "LaunchError",
        "WorkersFailedError",
        "RerunError",
        "ServeError",
        "TrialPaused",
        "TrialInterrupted",
        "CheckpointError",
        "PluginConflictError",
    } <= names, names
    stray = [e for e in exceptions if not issubclass(e, (AutomlError, FlowSignal)) and e not in OUTSIDE]
    assert not stray, f"exceptions outside the error family and the flow signals: {stray}"
    both = [e for e in exceptions if issubclass(e, AutomlError) and issubclass(e, FlowSignal)]
    assert not both
    assert all(e.exit_code in (1, 2) for e in exceptions if issubclass(e, AutomlError))


def test_user_errors_exit_2_and_run_errors_exit_1():
    from orchestrator.execution.supervisor import RepeatedFailureError, WorkersFailedError
    from orchestrator.study.launch_settings import LaunchError
    from orchestrator.training.devices import DeviceError

    for user in (CliError, StudyFileError, DeviceError):
        assert issubclass(user, UserError) and user.exit_code == 2
    for failed in (LaunchError, WorkersFailedError, RepeatedFailureError):
        assert issubclass(failed, RunError) and failed.exit_code == 1


def test_an_error_said_of_a_file_names_it_once():
    error = RunError("the scheduler refused").about("study.yaml")
    assert str(error) == "study.yaml: the scheduler refused"
    assert str(error.about("other.yaml")) == "study.yaml: the scheduler refused"
    assert str(CliError("--devices 'x': use auto")) == "--devices 'x': use auto"


@pytest.mark.parametrize(
    ("raised", "code", "said"),
    [
        (UserError("a flag is wrong", source="study.yaml"), 2, "error: study.yaml: a flag is wrong\n"),
        (RunError("workers keep dying"), 1, "error: workers keep dying\n"),
    ],
)
def test_the_command_turns_an_error_into_its_message_and_exit_code(monkeypatch, capsys, raised, code, said):
    def command(args):
        raise raised

    monkeypatch.setattr(cli, "cmd_validate", command)
    assert cli.main(["validate", "study.yaml"]) == code
    assert capsys.readouterr().err == said


def test_a_stopped_supervisor_exits_with_its_signal_and_says_what_became_of_each_trial(monkeypatch, capsys):
    def command(args):
        stopped = Stopped(signal.SIGTERM)
        stopped.outcomes = ["trial 3 checkpointed at epoch 2"]
        raise stopped

    monkeypatch.setattr(cli, "cmd_validate", command)
    assert cli.main(["validate", "study.yaml"]) == 128 + signal.SIGTERM
    assert capsys.readouterr().err == (
        "interrupted by SIGTERM: trial 3 checkpointed at epoch 2. Run the same command again to resume.\n"
    )
