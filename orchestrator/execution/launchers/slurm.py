"""A study's workers as one SLURM job array: the batch script, `sbatch`, `squeue` and `scancel`.

Each array task runs one `automl worker --launched` with its CPUs and GPUs. `--signal=B:USR1@S` has SLURM send
SIGUSR1 to the batch script S seconds before the time limit: the script passes SIGTERM on to the worker (its
trial checkpoints and is marked to resume) and requeues the task, whose next start resumes the trial. A
preempted task (PreemptMode=REQUEUE) gets SIGTERM from SLURM itself and is requeued by SLURM.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from orchestrator.study.launch_settings import LaunchError, SlurmSettings

ACTIVE_STATES = {
    "PENDING",
    "CONFIGURING",
    "RUNNING",
    "COMPLETING",
    "REQUEUED",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
    "RESIZING",
    "SUSPENDED",
    "STOPPED",
    "SIGNALING",
    "STAGE_OUT",
    "PREEMPTED",
}
COMMAND_SECONDS = 60.0


class SlurmError(LaunchError):
    """A SLURM command failed; the message is its own."""


def _run(command: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    if shutil.which(command[0]) is None:
        raise SlurmError(f"`{command[0]}` is not on PATH: run this where SLURM's commands are (a login node)")
    try:
        done = subprocess.run(
            list(command),
            capture_output=True,
            text=True,
            timeout=COMMAND_SECONDS,
            env=dict(env) if env is not None else None,
        )
    except subprocess.TimeoutExpired:
        raise SlurmError(f"`{' '.join(command[:2])}` did not answer within {COMMAND_SECONDS:.0f} s") from None
    if done.returncode != 0:
        raise SlurmError(f"`{' '.join(command[:2])}` failed: {(done.stderr or done.stdout).strip()}")
    return done.stdout


def batch_script(settings: SlurmSettings, name: str, worker: Sequence[str], workdir: Path, logs: Path) -> str:
    """The job array's batch script: one `automl worker` per task, SIGUSR1 before the time limit -> requeue."""
    options = [
        f"--job-name=automl-{name}",
        f"--array=0-{settings.tasks - 1}",
        f"--output={logs}/%x-%A_%a.out",
        "--open-mode=append",
        "--requeue",
        f"--signal=B:USR1@{settings.signal_seconds}",
        f"--chdir={workdir}",
        "--ntasks=1",
        f"--cpus-per-task={settings.cpus_per_task}",
    ]
    if settings.gpus_per_task:
        options.append(f"--gpus-per-task={settings.gpus_per_task}")
    for option, value in (
        ("partition", settings.partition),
        ("mem", settings.mem),
        ("time", settings.time),
        ("account", settings.account),
    ):
        if value:
            options.append(f"--{option}={value}")
    options += settings.sbatch
    task = "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"
    lines = [
        "#!/bin/bash",
        *(f"#SBATCH {option}" for option in options),
        "",
        'node="${SLURMD_NODENAME:-$(hostname)}"',
        f'echo "automl: task {task} on $node, start $((${{SLURM_RESTART_COUNT:-0}} + 1))"',
        "worker=",
        "requeue() {",
        '    echo "automl: SIGUSR1 (time limit near): the worker checkpoints, then the task is requeued"',
        '    kill -TERM "$worker" 2>/dev/null; wait "$worker"',
        f'    scontrol requeue "{task}"',
        "    exit 0",
        "}",
        'stop() { kill -TERM "$worker" 2>/dev/null; wait "$worker"; exit 143; }',
        "trap requeue USR1",
        "trap stop TERM INT",
        f'{shlex.join(worker)} --threads "${{SLURM_CPUS_PER_TASK:-1}}" '
        f'--worker-id "slurm-{task}.${{SLURM_RESTART_COUNT:-0}}@$node" &',
        "worker=$!",
        'wait "$worker"',
        "exit $?",
        "",
    ]
    return "\n".join(lines)


class SlurmArray:
    """One study's job array: submitted once, then watched and, on request, cancelled."""

    def __init__(self, settings: SlurmSettings, study_name: str, study_path: Path) -> None:
        self.settings = settings
        self.name = study_name
        self.logs = settings.logs or study_path.resolve().parent / "slurm"
        self.job_id: str | None = None

    def submit(self, worker: Sequence[str], env: Mapping[str, str], workdir: Path) -> str:
        """Write the batch script beside the logs and `sbatch` it; returns the job id. `env` (the storage and
        tracking addresses among it) reaches the tasks through sbatch's environment, not the script."""
        self.logs.mkdir(parents=True, exist_ok=True)
        script = self.logs / f"automl-{self.name}.sbatch"
        script.write_text(batch_script(self.settings, self.name, worker, workdir, self.logs))
        output = _run(["sbatch", "--parsable", str(script)], env={**os.environ, **env})
        self.job_id = output.strip().split(";")[0]
        return self.job_id

    def states(self) -> dict[str, str]:
        """Each task still known to the scheduler (pending, running, requeued ...) and its state."""
        assert self.job_id is not None
        output = _run(["squeue", "--noheader", "--array", "--jobs", self.job_id, "--format=%i %T"])
        states = {}
        for line in output.splitlines():
            parts = line.split()
            if len(parts) == 2:
                states[parts[0]] = parts[1]
        return states

    def active(self) -> int:
        return sum(1 for state in self.states().values() if state in ACTIVE_STATES)

    def cancel(self) -> None:
        """`scancel` every task: SLURM sends SIGTERM (the workers checkpoint and mark their trials to resume),
        then SIGKILL after its KillWait."""
        if self.job_id is not None:
            _run(["scancel", self.job_id])

    def log_files(self) -> list[Path]:
        return sorted(self.logs.glob(f"automl-{self.name}-{self.job_id}_*.out")) if self.job_id else []

    def plan(self) -> str:
        each = f"{self.settings.cpus_per_task} CPU(s)" + (
            f" and {self.settings.gpus_per_task} GPU(s)" if self.settings.gpus_per_task else ""
        )
        where = f" on partition {self.settings.partition}" if self.settings.partition else ""
        return f"a SLURM job array of {self.settings.tasks} task(s){where}, {each} each"

    def describe(self) -> str:
        return f"SLURM job {self.job_id}, {self.settings.tasks} task(s); their output in {self.logs}"

    def take_lost(self) -> list[str]:
        return []  # a task lost with its node is found by its missing heartbeats

    def problems(self) -> list[str]:
        return []  # the tasks' own output files say (log_files)

    def close(self) -> None:
        pass


def for_study(settings: SlurmSettings, spec: Any) -> SlurmArray:
    """The `slurm` launcher's factory (study/launch_settings.py registers it by this name)."""
    return SlurmArray(settings, spec.name, spec.path)
