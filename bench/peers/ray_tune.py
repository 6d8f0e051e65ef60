"""Ray Tune on the overhead workload, written as its documentation shows it: a function trainable (the bare loop's
PyTorch training) that reports the validation accuracy after every epoch with `tune.report`, the data handed to
the trials through `tune.with_parameters` (Ray's object store), the 10 configurations as a `tune.grid_search` over
their index (trial i seeded with i),
one CPU per trial and `--concurrent` trials at a time (1 by default), results under ./ray_results (Tune's own
records: result.json, progress.csv, TensorBoard). The window starts before `ray.init` (the cluster's start is
the study's set-up). Ray is not a dependency of the project: `pip install "ray[tune]"` to run this peer.
One whole process: python bench/peers/ray_tune.py [--epochs 15] [--concurrent 1]"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

import ray
import torch
from ray import tune

sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parent)]
import bare_loop  # noqa: E402
from workload import CONFIGS, EPOCHS, mnist1d, report  # noqa: E402


def train_mlp(config: dict, data=None) -> None:
    """The bare loop's trial, reporting after every epoch."""
    torch.set_num_threads(1)
    width, lr = CONFIGS[config["index"]]
    bare_loop.train(
        data,
        width,
        lr,
        config["index"],
        config["epochs"],
        on_epoch=lambda accuracy: tune.report({"val_accuracy": accuracy}),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--concurrent", type=int, default=1, help="trials at a time")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = mnist1d()
    start = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level=logging.WARNING)
    trainable = tune.with_resources(tune.with_parameters(train_mlp, data=data), {"cpu": 1})
    tuner = tune.Tuner(
        trainable,
        param_space={"index": tune.grid_search(list(range(len(CONFIGS)))), "epochs": args.epochs},
        tune_config=tune.TuneConfig(metric="val_accuracy", mode="max", max_concurrent_trials=args.concurrent),
        run_config=tune.RunConfig(storage_path=str(Path.cwd() / "ray_results"), name="overhead", verbose=0),
    )
    results = tuner.fit()
    by_seed = {r.config["index"]: r for r in results}
    assert len(by_seed) == len(CONFIGS) and all(r.error is None for r in results), "a Ray Tune trial failed"
    accuracies = [by_seed[i].metrics["val_accuracy"] for i in range(len(CONFIGS))]
    epochs = [by_seed[i].metrics["training_iteration"] for i in range(len(CONFIGS))]
    report(start, accuracies, epochs=epochs)
    ray.shutdown()


if __name__ == "__main__":
    main()
