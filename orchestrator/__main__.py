"""`python -m orchestrator` is the `automl` command."""

from orchestrator.cli.main import entry

entry()
