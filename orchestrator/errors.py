"""The errors the `automl` command reports: one family, each class with the exit code it ends the command with.

`AutomlError` is the base; `UserError` (exit 2) is something the user fixes in a study file, the data, a flag or a
plugin; `RunError` (exit 1) is a run that could not go on (workers dying, a scheduler refusing, a checkpoint that
cannot be used). The command catches the family in one place (`orchestrator.cli.app.main`) and prints
`error: <message>`. Flow-control signals (a trial paused or stopped on purpose) are not errors: they are
`orchestrator.flow`'s. A module without heavy imports, so that a command catches them without loading torch,
Lightning or MLflow. Class names are part of what a study stores (a failed trial's reason names its exception's
class): rename none.
"""

from __future__ import annotations

# the command's exit codes (a signal ends it with 128 + the signal's number)
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class AutomlError(Exception):
    """An error the command reports in one message and ends with `exit_code`; `about(source)` names where it
    comes from (a study file's path) in front of the message."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str = "", *, source: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.source = source

    def about(self, source: str) -> AutomlError:
        """This error, said of `source` (kept when one is already named)."""
        self.source = self.source or source
        return self

    def __str__(self) -> str:
        return f"{self.source}: {self.message}" if self.source else self.message


class UserError(AutomlError):
    """Something the user fixes (a study file, the data, a flag, a plugin): exit 2, nothing was started."""

    exit_code = EXIT_USAGE


class RunError(AutomlError):
    """A run that could not go on (workers keep dying, a scheduler refused): exit 1."""


class CliError(UserError):
    """A command-line problem found by the command itself (a flag's value, a storage that does not exist)."""


class StudyFileError(UserError):
    """One or more problems in a study file; each line names the file, the key path and the value."""

    def __init__(self, path: str, problems: list[str]) -> None:
        super().__init__("\n".join(f"{path}: {p}" for p in problems))
        self.path = path
        self.problems = problems


class DatasetError(UserError):
    """The study's data set could not be built (its message says why)."""


class StudyChangedError(UserError):
    """The study file changed what a stored study optimises; resuming would mix two studies."""
