"""`python -m orchestrator` is the `automl` command."""

from orchestrator.cli import entry

entry()
