"""Live progress of a study: one table row per finished trial, a live epoch line on terminals."""

from __future__ import annotations

import sys
from typing import Any, Mapping, TextIO

from orchestrator.space import CHOSEN_KINDS


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


class Progress:
    """Prints a header, a row per trial (number, choices, epochs, value, state, best so far)."""

    def __init__(self, metric: str, max_epochs: int, out: TextIO | None = None, tag: str = "") -> None:
        self.metric = metric
        self.max_epochs = max_epochs
        self.out = out or sys.stdout
        self.live = self.out.isatty()
        self.tag = f"  [{tag}]" if tag else ""
        self.current: int | None = None

    def header(self, study: str, trials: int, storage: str, tracking: str | None, workers: str | None = None,
               finished: int = 0) -> None:
        resumed = f" ({finished} finished already)" if finished else ""
        print(f"Study {study}: budget of {trials} trial(s){resumed}", file=self.out)
        print(f"  storage  {storage}", file=self.out)
        print(f"  tracking {tracking or 'off'}", file=self.out)
        if workers:
            print(f"  workers  {workers}", file=self.out)
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
        print(f"{clear}{number:>5}  {choices:<40.40} {epochs:>6}  {_fmt(value):>12}  {state:<8}  {best_text}"
              f"{self.tag}", file=self.out, flush=True)
        if reason and (state == "FAIL" or reason.startswith("out of memory")):
            print(f"{'':>7}reason: {reason}", file=self.out, flush=True)

    def message(self, text: str) -> None:
        print(f"{text}{self.tag}", file=self.out, flush=True)
