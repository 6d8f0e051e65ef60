"""Do the CNN's defaults learn on a small image folder (issue 24 item 9)? The default 2-D CNN against the default
MLP, side by side, on two PNG folders written here, trained by the orchestrator's own training loop.

Folders (`image_folder`, the default splits: 20% test, 20% of the rest validation):
- digits: scripts/make_digits.py: scikit-learn's 8x8 digits upscaled to 16x16 grey PNGs, 56 per class (358 training
  images: the case the issue reports, where the CNN reached 0.46 validation accuracy against 0.96 for the MLP);
- shapes: scripts/make_shapes.py's circles, squares and triangles (the folder the tests generate), 100 per class,
  24x24 RGB.

Two comparisons per folder, every network trained 10 epochs, batch 32, relu, cross entropy, constant schedule:
1. at the defaults: each architecture's declared defaults, Adam at its declared defaults; --seeds seeds
   (initialisation and batch order), mean and range of validation and test accuracy;
2. a small random search per architecture: --configs configurations drawn from the architecture's declared ranges
   and Adam's declared learning-rate range (seed 0): the best validation accuracy, the test accuracy of that
   configuration, and the median validation accuracy.
Target (the issue): the CNN at least as good as the MLP in both. Prints wall and CPU time; one thread.

    .venv/bin/python bench/cnn_defaults.py [--seeds 5] [--configs 12]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orchestrator.api.registry import load_registry  # noqa: E402
from orchestrator.quiet import quiet_libraries  # noqa: E402
from orchestrator.testing import default_params  # noqa: E402
from orchestrator.training.fit import train  # noqa: E402
from plugins.image_folder import build_image_folder  # noqa: E402
from scripts.make_digits import write_digits  # noqa: E402
from scripts.make_shapes import write_shapes  # noqa: E402

EPOCHS, BATCH = 10, 32
ARCHITECTURES = ("mlp", "cnn")


def folders(base: Path) -> dict[str, dict[str, Any]]:
    write_digits(base / "digits")
    write_shapes(base / "shapes", per_class=100, size=24)
    return {
        "digits": {"path": str(base / "digits"), "size": 16, "colour": "grey"},
        "shapes": {"path": str(base / "shapes"), "size": 24, "colour": "rgb"},
    }


def config(registry, architecture: str, params: dict[str, Any], lr: float | None = None) -> dict[str, Any]:
    adam = default_params(registry.get("optimizer", "adam").spec.params)
    if lr is not None:
        adam["lr"] = lr
    return {
        "architecture": architecture,
        "activation": "relu",
        "loss": "cross_entropy",
        "optimizer": "adam",
        "schedule": "constant",
        "batch_size": BATCH,
        **{f"optimizer.adam.{k}": v for k, v in adam.items()},
        **{f"architecture.{architecture}.{k}": v for k, v in params.items()},
    }


def accuracies(registry, cfg: dict[str, Any], data, seed: int) -> tuple[float, float]:
    result = train(cfg, registry, data, max_epochs=EPOCHS, seed=seed, monitor="val_accuracy", direction="maximize")
    return result.last("val_accuracy"), result.test_metrics["test_accuracy"]


def at_defaults(registry, data, seeds: int) -> None:
    for architecture in ARCHITECTURES:
        params = default_params(registry.get("architecture", architecture).spec.params)
        runs = [accuracies(registry, config(registry, architecture, params), data, seed) for seed in range(seeds)]
        val, test = [r[0] for r in runs], [r[1] for r in runs]
        print(
            f"  defaults  {architecture:<4} val {statistics.mean(val):.3f} [{min(val):.3f}-{max(val):.3f}]  "
            f"test {statistics.mean(test):.3f} [{min(test):.3f}-{max(test):.3f}]  ({seeds} seeds; {params})",
            flush=True,
        )


def random_search(registry, data, configs: int) -> None:
    lr_param = registry.get("optimizer", "adam").spec.params["lr"]
    for architecture in ARCHITECTURES:
        declared = registry.get("architecture", architecture).spec.params
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0), direction="maximize")
        results = []
        for _ in range(configs):
            trial = study.ask()
            params = {name: p.suggest(trial, name) for name, p in declared.items()}
            lr = lr_param.suggest(trial, "lr")
            val, test = accuracies(registry, config(registry, architecture, params, lr), data, seed=0)
            study.tell(trial, val)
            results.append((val, test, params, lr))
        best = max(results, key=lambda r: r[0])
        print(
            f"  search    {architecture:<4} best val {best[0]:.3f} (test {best[1]:.3f}; lr {best[3]:.2g}, "
            f"{best[2]})  median val {statistics.median(r[0] for r in results):.3f}  ({configs} configurations)",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--configs", type=int, default=12)
    args = parser.parse_args()
    quiet_libraries()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(1)
    wall, cpu = time.perf_counter(), time.process_time()
    registry = load_registry()
    with tempfile.TemporaryDirectory(prefix="automl-cnn-") as name:
        for label, params in folders(Path(name)).items():
            declared = registry.get("dataset", "image_folder").spec.params
            data = build_image_folder({**default_params(declared), **params}, seed=0)
            print(
                f"{label}: {len(data.x_train)} training, {len(data.x_val)} validation, {len(data.x_test)} test "
                f"images of {tuple(data.x_train.shape[1:])}, {data.output_size} classes; {EPOCHS} epochs, "
                f"batch {BATCH}",
                flush=True,
            )
            at_defaults(registry, data, args.seeds)
            random_search(registry, data, args.configs)
    print(f"wall {time.perf_counter() - wall:.0f} s, CPU {time.process_time() - cpu:.0f} s (one thread)")


if __name__ == "__main__":
    main()
