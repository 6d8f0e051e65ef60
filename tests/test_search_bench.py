"""The search benchmark's plumbing (bench/search_run.py, bench/search_strategies.py): incumbent curves in either
direction, the study a run writes, and strategies that differ from the default in one thing on seeds of their own."""

from __future__ import annotations

from pathlib import Path

import yaml

from bench.search_run import quality_curve, reached, write_study
from bench.search_strategies import ABLATIONS, PRIMARY, strategies
from orchestrator.study.studyfile import DEFAULT_PRUNER, DEFAULT_SAMPLER


def trial(seconds: float, value: float | None, quality: float | None, state: str = "COMPLETE") -> dict:
    return {"seconds": seconds, "value": value, "quality": quality, "state": state, "number": 0, "epochs": 1}


def test_the_incumbent_is_the_best_complete_trial_by_validation_and_its_quality_is_its_test_metric():
    trials = [
        trial(10, 0.5, 0.48),
        trial(20, 0.9, 0.85, "PRUNED"),
        trial(30, 0.7, 0.72),
        trial(40, 0.6, 0.99),
        trial(50, 0.8, 0.70),
    ]
    # the pruned trial and a worse validation value never become the incumbent, even with a better test metric
    assert quality_curve(trials, maximize=True) == [(10, 0.48), (30, 0.72), (50, 0.70)]
    assert quality_curve(trials, maximize=False) == [(10, 0.48)]
    assert reached([(10, 0.48), (30, 0.72)], 0.7, sign=1) and not reached([(10, 0.48)], 0.7, sign=1)
    assert reached([(10, 3.0), (30, 1.9)], 2.0, sign=-1)  # an error: lower is better


def test_a_run_writes_the_tasks_study_with_its_strategy_seed_and_data(tmp_path: Path):
    template = tmp_path / "task.yaml"
    template.write_text("name: t\ndataset: {name: npz, path: data.npz}\nbudget: {max_epochs: 7}\n")
    study = write_study(template, Path("/data/x.npz"), tmp_path, "random", {"name": "asha", "leader": False}, 1003, 300)
    data = yaml.safe_load(study.read_text())
    assert data["dataset"] == {"name": "npz", "path": "/data/x.npz"}
    assert (data["sampler"], data["pruner"], data["seed"]) == ("random", {"name": "asha", "leader": False}, 1003)
    assert data["budget"] == {"max_epochs": 7, "trials": 100000, "timeout": 600}


def test_each_ablation_differs_from_the_default_in_one_thing_and_no_two_strategies_share_seeds():
    every = strategies()
    assert set(every) == set(PRIMARY + ABLATIONS)
    default = every["default"]
    assert (default.sampler, default.pruner) == (DEFAULT_SAMPLER, DEFAULT_PRUNER)
    for key in ABLATIONS:
        changed = [every[key].sampler != default.sampler, every[key].pruner != default.pruner]
        assert sum(changed) == 1, key
    assert (every["control"].sampler, every["control"].pruner) == (every["baseline"].sampler, every["baseline"].pruner)
    seeds = [s.seed(i) for s in every.values() for i in range(100)]
    assert len(seeds) == len(set(seeds))
