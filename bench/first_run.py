"""The times a new user waits (issue 24 item 10): the README's first command, `bash scripts/quickstart.sh`, on a
fresh clone of this commit with an empty pip cache, timed step by step. quickstart.sh is three steps, run here one
by one exactly as it runs them: `bash scripts/install.sh`, `automl run studies/quickstart.yaml`, `automl show
studies/quickstart.yaml`. Then the same command again in the same clone (installed, the study complete: what a
user waits for a second time). Each round clones afresh; prints wall and CPU time (the children's user + system)
for each step, and the install's share of the whole.

    .venv/bin/python bench/first_run.py [--rounds 2]

Keep the machine otherwise idle. Packages come from this machine's package index (PyPI or its mirror) and the CPU
torch wheel; nothing is downloaded at run time by the study itself.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import tempfile
from pathlib import Path

from cli import timed_run  # bench/cli.py: wall and CPU seconds of one command, and its output

ROOT = Path(__file__).resolve().parents[1]
STEPS = {
    "install": ["bash", "scripts/install.sh"],
    "study": [".venv/bin/automl", "run", "studies/quickstart.yaml"],
    "show": [".venv/bin/automl", "show", "studies/quickstart.yaml"],
}


def one_round(number: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="automl-first-") as name:
        base = Path(name)
        clone = base / "automl"
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "CI")}
        env["PIP_CACHE_DIR"] = str(base / "pip-cache")  # empty: nothing cached from an earlier install
        times: dict[str, float] = {}
        for step, command in STEPS.items():
            wall, cpu, out = timed_run(command, clone, env)
            times[step] = wall
            extra = ""
            if step == "show":
                best = re.search(r"best.*?(0\.\d+)", out)
                extra = f"  (best validation accuracy {best.group(1)})" if best else ""
            print(f"round {number}  {step:<8} wall {wall:6.1f} s  CPU {cpu:6.1f} s{extra}", flush=True)
        times["first"] = times["install"] + times["study"] + times["show"]
        wall, cpu, _ = timed_run(["bash", "scripts/quickstart.sh"], clone, env)
        times["again"] = wall
        print(
            f"round {number}  quickstart.sh again (installed, nothing left to run): wall {wall:.1f} s  CPU {cpu:.1f} s",
            flush=True,
        )
        print(
            f"round {number}  first quickstart.sh {times['first']:.1f} s: install {times['install']:.1f} s "
            f"({times['install'] / times['first']:.0%}), study {times['study']:.1f} s, show {times['show']:.1f} s",
            flush=True,
        )
        return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    print(
        f"first run of the README's quickstart on a fresh clone of {head.strip()}, {os.cpu_count()} cores", flush=True
    )
    rounds = [one_round(i + 1) for i in range(args.rounds)]
    for key in ("install", "study", "show", "first", "again"):
        values = [r[key] for r in rounds]
        print(
            f"{key:<8} median {statistics.median(values):6.1f} s  (rounds: "
            + ", ".join(f"{v:.1f}" for v in values)
            + ")"
        )


if __name__ == "__main__":
    main()
