"""How many CPU threads a trial trains with when the user did not say (`--threads`): measured, not assumed.

PyTorch's threads meet at a barrier after every parallel operation; where another job keeps one of the cores
busy, the thread that shares it arrives late each time while the others spin, and two threads train slower
than one. So before a trial, when the last measurement is older than `RECHECK_SECONDS` or chose fewer threads
than the share, a short workload of the kind training runs (a small convolution and a linear layer, forward and
backward) is timed at one thread and at the worker's share of the cores (and half of it, for shares above 2),
interleaved, best of `ROUNDS`; the trial
trains with the fewest threads within `TOLERANCE` of the fastest. The choice holds for the whole trial (its
numbers depend on it) and is recorded in its runtime, so `automl rerun` trains with the same count."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

ROUNDS = 3
ROUND_SECONDS = 0.03  # each timed round at each count; about 0.25 s in all for two counts
RECHECK_SECONDS = 30.0
TOLERANCE = 1.1  # more threads must be this much faster than fewer to be chosen


@dataclass(frozen=True)
class ThreadChoice:
    """The threads chosen and the workload's seconds per step at each count measured."""

    threads: int
    seconds_per_step: dict[int, float]

    def describe(self) -> str:
        fastest = min(self.seconds_per_step.values())
        timings = ", ".join(
            f"{count}: {seconds / fastest:.2f}x" for count, seconds in sorted(self.seconds_per_step.items())
        )
        return f"{self.threads} CPU thread(s) (measured, time per step against the fastest: {timings})"


def candidates(ceiling: int) -> list[int]:
    """The thread counts worth measuring under `ceiling`: one, half of it and all of it."""
    return sorted({1, max(1, ceiling // 2), ceiling})


def _workload() -> Callable[[], None]:
    generator = torch.Generator().manual_seed(0)
    conv = torch.nn.Conv2d(16, 32, 3, padding=1)  # large enough to scale with threads on idle cores
    linear = torch.nn.Linear(32 * 16 * 16, 64)
    batch = torch.randn(128, 16, 16, 16, generator=generator)

    def step() -> None:
        linear(torch.relu(conv(batch)).flatten(1)).sum().backward()

    return step


def _seconds_per_step(step: Callable[[], None], threads: int, steps: int) -> float:
    torch.set_num_threads(threads)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def measure(ceiling: int) -> ThreadChoice:
    """Time the workload at each candidate count under `ceiling` (above 1) and choose; PyTorch's threads are
    left at the choice."""
    counts = candidates(ceiling)
    step = _workload()
    with torch.enable_grad():
        step()  # first-call costs (allocation, kernel selection) out of the timing
        torch.set_num_threads(ceiling)
        steps = max(1, int(ROUND_SECONDS / max(_seconds_per_step(step, ceiling, 2), 1e-6)))
        best = {count: float("inf") for count in counts}
        for _ in range(ROUNDS):
            for count in counts:
                best[count] = min(best[count], _seconds_per_step(step, count, steps))
    threads = choose(best)
    torch.set_num_threads(threads)
    return ThreadChoice(threads, best)


def choose(seconds_per_step: dict[int, float]) -> int:
    """The fewest threads within `TOLERANCE` of the fastest count."""
    fastest = min(seconds_per_step.values())
    return min(count for count, seconds in seconds_per_step.items() if seconds <= fastest * TOLERANCE)


class AdaptiveThreads:
    """A worker's thread count under its share `ceiling` (above 1: with one thread there is nothing to choose),
    measured again before a trial once the last measurement is `recheck` s old, or at once after a choice of
    fewer threads than the share (the load that caused it may have been brief: another process starting, say)."""

    def __init__(
        self, ceiling: int, recheck: float = RECHECK_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ceiling = ceiling
        self.recheck = recheck
        self.clock = clock
        self.choice: ThreadChoice | None = None
        self.measured_at = float("-inf")

    def for_trial(self) -> tuple[ThreadChoice, bool]:
        """The choice for the next trial (PyTorch's threads set to it), and whether it differs from the last."""
        if (
            self.choice is not None
            and self.choice.threads == self.ceiling
            and self.clock() - self.measured_at < self.recheck
        ):
            torch.set_num_threads(self.choice.threads)
            return self.choice, False
        previous = self.choice
        self.choice = measure(self.ceiling)
        self.measured_at = self.clock()
        return self.choice, previous is None or previous.threads != self.choice.threads
