"""Flow-control signals: exceptions that end a piece of work on purpose, not errors. A trial paused at a rung
(`TrialPaused`), a trial stopped because its worker was asked to stop (`TrialInterrupted`), a command told to stop
by SIGTERM, a supervisor stopped by a signal (`Stopped`). Nothing records them as failures and none reaches the
user as an error (`orchestrator.errors` is the errors' family). `Stopped` is a KeyboardInterrupt rather than a
`FlowSignal`: that is how Lightning, Optuna and the interpreter are told to unwind.
"""

from __future__ import annotations

import signal


class FlowSignal(Exception):
    """Work ended on purpose; whoever started it knows what to do next (record a pause, resume later, exit)."""


class Stopped(KeyboardInterrupt):
    """The supervisor was stopped by SIGINT or SIGTERM (`signum` says which); `outcomes` says, one line per
    trial that was running, what became of it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.outcomes: list[str] = []
