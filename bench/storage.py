"""Coordination at scale (shared/BENCHMARKS.md, `storage`): W worker processes claim no-op trials of one study
until its budget is met, exactly as `automl worker` claims them (the study lock, then `claim_trial`, then the
trial is told complete at once), on PostgreSQL directly and through Optuna's gRPC storage proxy
(`automl storage-proxy`, its study locks beside it).

For each side it prints claims per second (the budget over the time from the moment every worker was ready to
the last claim), the p50 and p99 claim latency (taking the lock, counting the budget, asking for the trial) and
the budget overshoot (trials complete beyond the budget; target 0). Target: >= 200 claims/s at 32 workers.

    .venv/bin/python bench/storage.py [--workers 32] [--trials 2000] [--sides direct,proxy]
                                      [--storage postgresql://postgres@127.0.0.1:5432/test]

The workers are processes started before the clock starts (their imports are not measured); the database and
the proxy run on the same machine as the workers, so on 2 cores they share the CPU with them.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def worker(url: str, name: str, budget: int, ready: multiprocessing.Barrier, out: multiprocessing.Queue) -> None:
    import warnings

    import optuna

    from orchestrator.execution.coordination import DONE, WAIT, claim_trial, study_lock
    from orchestrator.study.storage import open_storage

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    study = optuna.load_study(study_name=name, storage=open_storage(url))
    latencies, ends = [], []
    ready.wait()
    while True:
        start = time.perf_counter()
        with study_lock(url, name):
            trial = claim_trial(study, budget)
        latencies.append(time.perf_counter() - start)
        if trial == DONE:
            break
        if trial == WAIT:
            time.sleep(0.005)
            continue
        study.tell(trial, 0.0)
        ends.append(time.time())
    out.put((latencies[:-1], ends))


def start_proxy(database: str) -> tuple[subprocess.Popen, str]:
    from orchestrator.execution.lock_server import free_port_pair

    port = free_port_pair()  # the lock server takes the next port
    automl = str(Path(sys.executable).with_name("automl"))
    proxy = subprocess.Popen(
        [automl, "storage-proxy", "--port", str(port)],
        env={**os.environ, "AUTOML_STORAGE": database},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    line = proxy.stdout.readline()  # type: ignore[union-attr]
    if "serving" not in line:
        raise SystemExit(f"the storage proxy did not start: {line}{proxy.stdout.read()}")  # type: ignore[union-attr]
    return proxy, f"grpc://127.0.0.1:{port}"


def run_side(side: str, database: str, workers: int, budget: int) -> dict[str, float]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = f"bench-storage-{uuid.uuid4().hex[:8]}"
    optuna.create_study(study_name=name, storage=database)
    proxy, url = start_proxy(database) if side == "proxy" else (None, database)
    context = multiprocessing.get_context("spawn")
    ready = context.Barrier(workers + 1)
    out = context.Queue()
    processes = [context.Process(target=worker, args=(url, name, budget, ready, out)) for _ in range(workers)]
    try:
        for process in processes:
            process.start()
        ready.wait()
        start = time.time()
        results = [out.get(timeout=1800) for _ in processes]
        for process in processes:
            process.join()
        study = optuna.load_study(study_name=name, storage=database)
        complete = sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    finally:
        if proxy is not None:
            proxy.terminate()
            proxy.wait(timeout=30)
        optuna.delete_study(study_name=name, storage=database)
    latencies = sorted(x for lat, _ in results for x in lat)
    last = max(end for _, ends in results for end in ends)
    return {
        "claims_per_s": budget / (last - start),
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(0.99 * (len(latencies) - 1))] * 1000,
        "overshoot": complete - budget,
        "seconds": last - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--sides", default="direct,proxy")
    parser.add_argument(
        "--storage", default=os.environ.get("AUTOML_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
    )
    args = parser.parse_args()
    for side in [s.strip() for s in args.sides.split(",") if s.strip()]:
        figures = run_side(side, args.storage, args.workers, args.trials)
        print(
            f"storage_claims_per_s {side} {figures['claims_per_s']:.0f} ({args.workers} workers, {args.trials} "
            f"no-op trials in {figures['seconds']:.1f} s; claim latency p50 {figures['p50_ms']:.1f} ms, p99 "
            f"{figures['p99_ms']:.1f} ms; overshoot {figures['overshoot']}; target >= 200 claims/s, overshoot 0)",
            flush=True,
        )


if __name__ == "__main__":
    main()
