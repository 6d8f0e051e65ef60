"""The `automl` command: its parser and the one place where errors become exit codes (app), the commands that run
a study (running) and that read one (inspecting), the storage proxy (storage_proxy), what they share (options),
the `show` report (show) and serving the best model (serve).

The top layer, beside the conformance kit (orchestrator.testing): it may import everything.
"""

from orchestrator.cli.app import entry, main

__all__ = ["entry", "main"]
