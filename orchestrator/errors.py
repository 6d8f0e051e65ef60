"""The user errors the `automl` command reports in one message with exit code 2 (a module without heavy imports,
so that a command catches them without loading torch, Lightning or MLflow)."""

from __future__ import annotations


class StudyFileError(Exception):
    """One or more problems in a study file; each line names the file, the key path and the value."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__("\n".join(f"{path}: {p}" for p in problems))


class DatasetError(Exception):
    """The study's data set could not be built (its message says why)."""


class StudyChangedError(Exception):
    """The study file changed what a stored study optimises; resuming would mix two studies."""
