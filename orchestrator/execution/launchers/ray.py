"""A study's workers as actors on an existing Ray cluster: each actor holds `num_cpus` CPUs and `num_gpus` GPUs
and runs one `automl worker --launched` as its child process (which dies with it). An actor lost with its node
is replaced, and the trial its worker was running is failed and retried (from its checkpoint) at once, as a
dead local worker's is. Ray is an optional extra: `pip install 'automl-orchestrator[ray]'`."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from orchestrator.study.launch_settings import LaunchError, RaySettings

MAX_REPLACEMENTS_PER_WORKER = 2  # an actor lost more often than this (per worker slot) is not replaced again
OUTPUT_LINES = 30  # the end of a worker's output an actor hands back


class WorkerActor:
    """The body of a Ray actor: runs one worker process, and stops it on request."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None

    def run(self, command: Sequence[str], env: dict[str, str], workdir: str, worker_id: str) -> tuple[int, str, str]:
        """Run the worker to its end; returns its exit code, this node's name and the end of its output."""
        host = socket.gethostname()
        self.process = subprocess.Popen(
            [*command, "--worker-id", f"{worker_id}@{host}"],
            cwd=workdir,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        tail: deque[str] = deque(maxlen=OUTPUT_LINES)
        for line in self.process.stdout:  # type: ignore[union-attr]
            tail.append(line)
        return self.process.wait(), host, "".join(tail)

    def stop(self) -> None:
        """SIGTERM to the worker: it checkpoints its trial, marks it to resume and exits."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)


class RayActors:
    """One study's worker actors on a Ray cluster."""

    def __init__(self, settings: RaySettings, study_name: str) -> None:
        self.settings = settings
        self.name = study_name
        self.runs: dict[Any, tuple[Any, str]] = {}  # the run's object ref -> (its actor, its worker id)
        self.started = 0
        self.replaced = 0
        self.lost: list[str] = []  # worker ids of actors lost since take_lost() was last called
        self.failures: list[str] = []
        self.command: list[str] = []
        self.env: dict[str, str] = {}
        self.workdir = ""

    def submit(self, worker: Sequence[str], env: dict[str, str], workdir: Path) -> str:
        import ray

        try:
            ray.init(
                address=self.settings.address,
                namespace=f"automl-{self.name}",
                log_to_driver=False,
                logging_level=logging.WARNING,
                configure_logging=False,
            )
        except Exception as exc:
            raise LaunchError(f"cannot reach the Ray cluster at {self.settings.address!r}: {exc}") from exc
        self.command, self.env, self.workdir = list(worker), dict(env), str(workdir)
        for _ in range(self.settings.workers):
            self._start()
        return ray.get_runtime_context().get_job_id()

    def _start(self) -> None:
        import ray

        actor_class = ray.remote(  # type: ignore[call-overload]  # max_concurrency: an actor option
            num_cpus=self.settings.num_cpus, num_gpus=self.settings.num_gpus, max_restarts=0, max_concurrency=2
        )(WorkerActor)
        self.started += 1
        worker_id = f"ray-{self.started}"
        actor = actor_class.remote()
        self.runs[actor.run.remote(self.command, self.env, self.workdir, worker_id)] = (actor, worker_id)

    def active(self) -> int:
        """Collect the actors that ended; replace one lost with its node (its worker id goes to `lost`)."""
        import ray

        if not self.runs:
            return 0
        done, _ = ray.wait(list(self.runs), num_returns=len(self.runs), timeout=0)
        for ref in done:
            actor, worker_id = self.runs.pop(ref)
            try:
                code, host, output = ray.get(ref)
            except ray.exceptions.RayActorError as exc:
                self.lost.append(worker_id)
                if self.replaced < MAX_REPLACEMENTS_PER_WORKER * self.settings.workers:
                    self.replaced += 1
                    self._start()
                else:
                    self.failures.append(f"actor {worker_id} lost ({type(exc).__name__}); not replaced again")
                continue
            if code != 0 and code != 128 + signal.SIGTERM:
                self.failures.append(f"worker {worker_id}@{host} exited with code {code}:\n{output}")
        return len(self.runs)

    def take_lost(self) -> list[str]:
        lost, self.lost = self.lost, []
        return lost

    def cancel(self) -> None:
        import ray

        for actor, _ in list(self.runs.values()):
            try:
                actor.stop.remote()
            except ray.exceptions.RayActorError:
                pass

    def problems(self) -> list[str]:
        return list(self.failures)

    def close(self) -> None:
        """Kill the actors still there (their workers die with them) and leave the cluster."""
        import ray

        if not ray.is_initialized():
            return
        for actor, _ in list(self.runs.values()):
            ray.kill(actor)
        self.runs.clear()
        ray.shutdown()

    def log_files(self) -> list[Path]:
        return []

    def plan(self) -> str:
        each = f"{self.settings.num_cpus:g} CPU(s)" + (
            f" and {self.settings.num_gpus:g} GPU(s)" if self.settings.num_gpus else ""
        )
        return f"{self.settings.workers} Ray actor(s) at {self.settings.address}, {each} each"

    def describe(self) -> str:
        return f"{self.settings.workers} Ray actor(s) on the cluster at {self.settings.address}"


def for_study(settings: RaySettings, spec: Any) -> RayActors:
    """The `ray` launcher's factory (study/launch_settings.py registers it by this name)."""
    return RayActors(settings, spec.name)
