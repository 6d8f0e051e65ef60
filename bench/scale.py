"""Scale benchmark (shared/BENCHMARKS.md): what storage and sampler cost per trial when a study is large.

A worker's per-trial bookkeeping, without training: under the study lock, claim a trial (`claim_trial`: the
budget count and Optuna's `ask`), sample the configuration from the study's space (the sampler's work), and
`tell` a value. On the space and strategy of studies/mnist1d_search.yaml (TPE, asha), journal storage (the
default) in a fresh folder, until --trials (1000). Prints the median cost per trial around n = 100 and
n = 1000 (trials n-20..n), split into claim + sampling and tell, their ratio (target <= 10x), and the sampler's
share of a median trial of the overhead workload (--median-trial-s, target < 5%).

    .venv/bin/python bench/scale.py [--trials 1000] [--storage journal|sqlite] [--median-trial-s 0.9]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from orchestrator.api.registry import load_registry  # noqa: E402
from orchestrator.execution.coordination import claim_trial, study_lock  # noqa: E402
from orchestrator.execution.study_session import open_study  # noqa: E402
from orchestrator.quiet import quiet_libraries  # noqa: E402
from orchestrator.study.studyfile import load_study  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--storage", choices=("journal", "sqlite"), default="journal")
    parser.add_argument(
        "--median-trial-s",
        type=float,
        default=0.9,
        help="a median trial's seconds to compare the sampler with (the overhead workload's)",
    )
    args = parser.parse_args()
    quiet_libraries()
    spec = load_study(REPO / "studies" / "mnist1d_search.yaml", load_registry())
    rng = random.Random(0)
    with tempfile.TemporaryDirectory(prefix="automl-scale-") as tmp:
        url = f"journal:{tmp}/optuna.journal" if args.storage == "journal" else f"sqlite:///{tmp}/optuna.db"
        study = open_study(spec, url)
        claims, samples, tells = [], [], []
        for n in range(1, args.trials + 1):
            start = time.perf_counter()
            with study_lock(url, spec.name):
                trial = claim_trial(study, args.trials)
            claimed = time.perf_counter()
            spec.space.sample(trial)
            sampled = time.perf_counter()
            study.tell(trial, rng.uniform(0.1, 1.0))
            claims.append(sampled - start)
            samples.append(sampled - claimed)
            tells.append(time.perf_counter() - sampled)
            if n % 100 == 0:
                print(
                    f"n={n}: claim and sample {claims[-1] * 1000:.1f} ms (sampling {samples[-1] * 1000:.1f}), "
                    f"tell {tells[-1] * 1000:.1f} ms",
                    flush=True,
                )

    def around(values: list[float], n: int) -> float:
        return statistics.median(values[max(0, n - 20) : n]) * 1000

    small, large = min(100, args.trials), args.trials
    cost_small = around(claims, small) + around(tells, small)
    cost_large = around(claims, large) + around(tells, large)
    print(
        f"per-trial cost at n={small}: {cost_small:.1f} ms (claim and sample {around(claims, small):.1f}, of which "
        f"sampling {around(samples, small):.1f}, "
        f"tell {around(tells, small):.1f}); at n={large}: {cost_large:.1f} ms (claim and sample "
        f"{around(claims, large):.1f}, of which sampling {around(samples, large):.1f}, tell "
        f"{around(tells, large):.1f}); {args.storage} storage, "
        f"sampler {spec.sampler[0]}"
    )
    print(
        f"scale_ratio mnist1d-search {cost_large / cost_small:.1f} (per-trial storage and sampler cost at "
        f"n={large} / n={small}; target <= 10)"
    )
    print(
        f"sampler_share mnist1d-search {around(claims, large) / 1000 / args.median_trial_s * 100:.1f}% "
        f"(claim and sample at n={large} / a median trial of {args.median_trial_s:.2f} s; target < 5%)"
    )


if __name__ == "__main__":
    main()
