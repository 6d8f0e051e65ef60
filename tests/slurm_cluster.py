"""A real single-node SLURM cluster for the tests: munged, slurmctld and slurmd (Debian's slurm-wlm and munge,
which `scripts/test.sh` installs as root), configured in a temporary folder on 127.0.0.1 with free ports.
Started once per test session; where SLURM is missing the tests skip, and under CI they fail instead."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import free_port

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "scontrol")
SBIN = ("/usr/sbin", "/usr/bin")


def _find(name: str) -> str | None:
    return shutil.which(name) or next((f"{d}/{name}" for d in SBIN if os.access(f"{d}/{name}", os.X_OK)), None)


def missing_reason() -> str | None:
    absent = [name for name in DAEMONS if _find(name) is None]
    if absent:
        return f"SLURM is not installed ({', '.join(absent)} missing): `bash scripts/slurm.sh` as root installs it"
    if os.geteuid() != 0:
        return "the test SLURM cluster's slurmd must run as root"
    return None


def require_slurm() -> None:
    reason = missing_reason()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this fails instead of skipping)", pytrace=False)
    pytest.skip(reason)


CONF = """ClusterName=automltest
SlurmctldHost={host}({controller})
AuthType=auth/munge
CredType=cred/munge
AuthInfo=cred_expire=10
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool-%n
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd-%n.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd-%n.log
ReturnToService=2
KillWait=10
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SlurmUser=root
SlurmdUser=root
{nodes}
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


@dataclass(frozen=True)
class Node:
    """A slurmd: its node name, the address the others reach it at, and the network namespace it runs in (None:
    this machine's own network)."""

    name: str
    address: str = "127.0.0.1"
    netns: str | None = None
    cpus: int = max(2, os.cpu_count() or 2)


class SlurmCluster:
    """The running cluster: its configuration file (SLURM_CONF) and daemons."""

    def __init__(self, root: Path, nodes: list[Node] | None = None, controller: str = "127.0.0.1") -> None:
        self.root = root
        self.nodes = nodes or [Node(socket.gethostname())]
        self.controller = controller
        self.conf = root / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self.daemons: list[subprocess.Popen] = []

    def start(self) -> None:
        for folder in ("state", *(f"spool-{n.name}" for n in self.nodes)):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        nodes = "\n".join(
            f"NodeName={n.name} NodeAddr={n.address} CPUs={n.cpus} RealMemory=4000 State=UNKNOWN" for n in self.nodes
        )
        self.conf.write_text(
            CONF.format(
                host=socket.gethostname(),
                controller=self.controller,
                root=self.root,
                ctld_port=free_port(),
                slurmd_port=free_port(),
                nodes=nodes,
            )
        )
        self._munge()
        self.daemons.append(
            subprocess.Popen(
                [_find("slurmctld"), "-D", "-f", str(self.conf)],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        for node in self.nodes:
            command = [_find("slurmd"), "-D", "-f", str(self.conf), "-N", node.name]
            if node.netns:  # nsenter, not `ip netns exec`: that remounts /sys, hiding the cgroups slurmd reads
                command = ["nsenter", f"--net=/var/run/netns/{node.netns}", *command]
            self.daemons.append(
                subprocess.Popen(command, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            out = subprocess.run(
                ["sinfo", "--noheader", "--Node", "--format=%t"], env=self.env, capture_output=True, text=True
            )
            states = out.stdout.split()
            if (
                out.returncode == 0
                and len(states) == len(self.nodes)
                and all(state in ("idle", "mix", "alloc") for state in states)
            ):
                return
            time.sleep(0.5)
        raise RuntimeError(f"the test SLURM cluster did not come up: {self.log_tail()}")

    @staticmethod
    def _munge() -> None:
        """munged, as the `munge` user with Debian's key, unless one answers already."""
        if subprocess.run(["munge", "-n"], capture_output=True).returncode == 0:
            return
        Path("/run/munge").mkdir(parents=True, exist_ok=True)
        for folder in (Path("/run/munge"), Path("/var/log/munge"), Path("/var/lib/munge"), Path("/etc/munge")):
            for path in (folder, *folder.rglob("*")) if folder.exists() else ():
                shutil.chown(path, "munge", "munge")  # munged refuses files it does not own
        subprocess.run(["su", "-s", "/bin/sh", "munge", "-c", f"{_find('munged')} --num-threads=10"], check=True)
        for _ in range(50):
            if subprocess.run(["munge", "-n"], capture_output=True).returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError("munged did not start")

    def run(self, *command: str) -> str:
        return subprocess.run(list(command), env=self.env, capture_output=True, text=True, check=True).stdout

    def jobs(self) -> list[str]:
        return self.run("squeue", "--noheader", "--array", "--format=%i %T").splitlines()

    def log_tail(self) -> str:
        return "\n".join(log.read_text()[-1500:] for log in sorted(self.root.glob("*.log")))

    def stop(self) -> None:
        subprocess.run(["scancel", "--user", "root"], env=self.env, capture_output=True)
        for daemon in self.daemons:
            daemon.terminate()
        for daemon in self.daemons:
            try:
                daemon.wait(timeout=20)
            except subprocess.TimeoutExpired:
                daemon.kill()
