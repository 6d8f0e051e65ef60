"""Live progress of a study: one table row per finished trial, a live epoch line on terminals."""

from __future__ import annotations

import sys
from typing import Any, Mapping, TextIO

from orchestrator.space import CHOSEN_KINDS


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


class Progress:
    """Prints a header, a row per trial (number, choices, epochs, value, state, best so far)."""

    def __init__(self, metric: str, max_epochs: int, out: TextIO | None = None) -> None:
        self.metric = metric
        self.max_epochs = max_epochs
        self.out = out or sys.stdout
        self.live = self.out.isatty()
        self.current: int | None = None

    def header(self, study: str, trials: int, storage: str, tracking: str | None) -> None:
        print(f"Study {study}: {trials} trial(s) to run", file=self.out)
        print(f"  storage  {storage}", file=self.out)
        print(f"  tracking {tracking or 'off'}", file=self.out)
        print(f"{'trial':>5}  {'choices':<40} {'epochs':>6}  {self.metric:>12}  {'state':<8}  best", file=self.out,
              flush=True)

    def trial_started(self, number: int) -> None:
        self.current = number

    def epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        if self.live:
            value = metrics.get(self.metric)
            self.out.write(f"\r{self.current:>5}  epoch {epoch + 1}/{self.max_epochs}  {self.metric} {_fmt(value)}   ")
            self.out.flush()

    def trial_done(self, number: int, config: Mapping[str, Any], epochs: int, value: float | None, state: str,
                   best: tuple[int, float] | None, reason: str | None = None) -> None:
        choices = " ".join(str(config.get(kind, "")) for kind in CHOSEN_KINDS)
        best_text = f"{best[1]:.4f} (#{best[0]})" if best else "-"
        clear = "\r\033[K" if self.live else ""
        print(f"{clear}{number:>5}  {choices:<40.40} {epochs:>6}  {_fmt(value):>12}  {state:<8}  {best_text}",
              file=self.out, flush=True)
        if reason and state == "FAIL":
            print(f"{'':>7}reason: {reason}", file=self.out, flush=True)

    def message(self, text: str) -> None:
        print(text, file=self.out, flush=True)
