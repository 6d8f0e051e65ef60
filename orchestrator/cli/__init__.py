"""The `automl` command: its parser, its commands and its one place where errors become exit codes (app), the
`show` report (show) and `serve` (serve).

The top layer, beside the conformance kit (orchestrator.testing): it may import everything.
"""

from orchestrator.cli.app import entry, main

__all__ = ["entry", "main"]
