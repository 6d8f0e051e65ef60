"""Live progress of a study: one table row per finished trial; inside a long trial, a live epoch line on a
terminal, or a plain line every `tick_seconds` otherwise (a worker under `automl run` writes to a pipe)."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

from orchestrator.search.space import CHOSEN_KINDS, SearchSpace

TICK_SECONDS = 30.0  # the longest silence inside a trial when the output is not a terminal


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def choices_width(space: SearchSpace) -> int:
    """The widest `choices` cell the search space gives: its longest component name of each kind, spaced."""
    names = [
        max((len(str(name)) for name in space.components[kind].options), default=0)
        for kind in CHOSEN_KINDS
        if kind in space.components
    ]
    return max(len("choices"), sum(names) + len(names) - 1)


class Progress:
    """Prints a header, a row per trial (number, choices, epochs, value, state, best so far)."""

    def __init__(
        self,
        metric: str,
        max_epochs: int,
        out: TextIO | None = None,
        tag: str = "",
        width: int = 40,
        tick_seconds: float = TICK_SECONDS,
    ) -> None:
        self.metric = metric
        self.max_epochs = max_epochs
        self.out = out or sys.stdout
        self.live = self.out.isatty()
        self.tag = f"  [{tag}]" if tag else ""
        self.width = width
        self.tick_seconds = tick_seconds
        self.current: int | None = None
        self.last_line = time.monotonic()

    def _print(self, text: str) -> None:
        print(text, file=self.out, flush=True)
        self.last_line = time.monotonic()

    def header(
        self, study: str, trials: int, storage: str, tracking: str | None, workers: str | None = None, finished: int = 0
    ) -> None:
        resumed = f" ({finished} finished already)" if finished else ""
        self._print(f"Study {study}: budget of {trials} trial(s){resumed}")
        self._print(f"  storage  {storage}")
        self._print(f"  tracking {tracking or 'off'}")
        if workers:
            self._print(f"  workers  {workers}")
        self._print(f"{'trial':>5}  {'choices':<{self.width}} {'epochs':>6}  {self.metric:>12}  {'state':<8}  best")

    def trial_started(self, number: int) -> None:
        self.current = number
        self.last_line = time.monotonic()

    def epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        text = f"{self.current:>5}  epoch {epoch + 1}/{self.max_epochs}  {self.metric} {_fmt(metrics.get(self.metric))}"
        if self.live:
            self.out.write(f"\r{text}   ")
            self.out.flush()
        elif time.monotonic() - self.last_line >= self.tick_seconds:
            self._print(f"{text}  (running){self.tag}")

    def trial_done(
        self,
        number: int,
        config: Mapping[str, Any],
        epochs: int,
        value: float | None,
        state: str,
        best: tuple[int, float] | None,
        reason: str | None = None,
        tag: str | None = None,
    ) -> None:
        """One row; `tag` names the worker that ran the trial when it is not this table's own."""
        choices = " ".join(str(config.get(kind, "")) for kind in CHOSEN_KINDS)
        best_text = f"{best[1]:.4f} (#{best[0]})" if best else "-"
        clear = "\r\033[K" if self.live else ""
        self._print(
            f"{clear}{number:>5}  {choices:<{self.width}} {epochs:>6}  {_fmt(value):>12}  {state:<8}  "
            f"{best_text}{f'  [{tag}]' if tag else self.tag}"
        )
        if reason and (state == "FAIL" or reason.startswith("out of memory")):
            self._print(f"{'':>7}reason: {reason}")

    def message(self, text: str) -> None:
        self._print(f"{text}{self.tag}")
