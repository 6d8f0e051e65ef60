"""Every sampler and pruner runs a small study (in this process, as one `automl worker`), and their options
are validated like every other study-file key."""

from __future__ import annotations

import pytest
from optuna.trial import TrialState

from conftest import TINY_STUDY, load_optuna
from orchestrator.params import Choice, Float, Int
from orchestrator.samplers import PRUNERS, SAMPLERS
from orchestrator.space import _grid_values

SEARCH = TINY_STUDY.replace("trials: 3", "trials: 4")


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_each_sampler_runs_a_small_study(write_study, workdir, cli, sampler):
    write_study(SEARCH + f"sampler: {sampler}\npruner: none\n")
    result = cli("worker", "study.yaml", "--no-tracking")
    assert result.code == 0, result.err
    study = load_optuna(workdir)
    # the sampler the worker really used, not only the name it was given
    assert study.user_attrs["strategy"] == {"sampler": sampler, "pruner": "none",
                                            "classes": [SAMPLERS[sampler].cls.__name__, "NopPruner"]}
    assert len(study.trials) == 4 and all(t.state == TrialState.COMPLETE for t in study.trials)
    assert all(0.0 < t.value <= 1.0 for t in study.trials)


@pytest.mark.parametrize("pruner", sorted(PRUNERS))
def test_each_pruner_runs_a_small_study(write_study, workdir, cli, pruner):
    write_study(SEARCH.replace("max_epochs: 2", "max_epochs: 4") + f"sampler: random\npruner: {pruner}\n")
    result = cli("worker", "study.yaml", "--no-tracking")
    assert result.code == 0, result.err
    study = load_optuna(workdir)
    assert study.user_attrs["strategy"] == {"sampler": "random", "pruner": pruner,
                                            "classes": ["RandomSampler", PRUNERS[pruner].cls.__name__]}
    assert len(study.trials) == 4
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials)
    assert all(len(t.intermediate_values) >= 1 for t in study.trials)  # pruning had values to judge


def test_grid_sampler_walks_the_grid_made_from_the_space(write_study, workdir, cli):
    # mlp width 16|32, activation relu|sigmoid, lr low..high (betas fixed): with 2 points per range 8 cells
    text = SEARCH.replace("trials: 4", "trials: 8").replace("log: true}}", "log: true}, beta1: 0.9, beta2: 0.999}")
    write_study(text + "sampler: {name: grid, points: 2}\npruner: none\n")
    assert cli("worker", "study.yaml", "--no-tracking").code == 0
    cells = {(t.params["architecture.mlp.width"], t.params["activation"], round(t.params["optimizer.adam.lr"], 6))
             for t in load_optuna(workdir).trials}
    assert cells == {(w, a, lr) for w in (16, 32) for a in ("relu", "sigmoid") for lr in (0.001, 0.01)}


def test_grid_values_follow_each_kind_of_range():
    assert _grid_values(Choice(("a", "b")), 3) == ["a", "b"]
    assert _grid_values(Float(0.0, 1.0, default=0.5), 3) == [0.0, 0.5, 1.0]
    assert _grid_values(Float(1e-4, 1e-2, default=1e-3, log=True), 3) == pytest.approx([1e-4, 1e-3, 1e-2])
    assert _grid_values(Int(1, 9, default=1), 3) == [1, 5, 9]
    assert _grid_values(Int(1, 2, default=1), 5) == [1, 2]  # no repeats when the range is smaller than the points
    assert _grid_values(Float(0.0, 1.0, default=0.0, step=0.25), 3) == [0.0, 0.5, 1.0]


@pytest.mark.parametrize(("text", "key", "message"), [
    ("sampler: {name: grid, points: 1}", "sampler.points", "points must be an integer >= 2"),
    ("sampler: {name: qmc, qmc_type: fancy}", "sampler.qmc_type", "rejected by QMCSampler"),
    ("sampler: {name: cmaes, n_startup: 3}", "sampler.n_startup", "unknown option of CmaEsSampler"),
    ("sampler: {name: nsga2, population_size: 1}", "sampler.population_size", "rejected by NSGAIISampler"),
    ("sampler: {name: gp, n_startup: 3}", "sampler.n_startup", "unknown option of GPSampler"),
    ("pruner: {name: hyperband, max_resources: 9}", "pruner.max_resources", "unknown option of HyperbandPruner"),
    ("pruner: {name: successive_halving, min_resource: 0}", "pruner.min_resource",
     "rejected by SuccessiveHalvingPruner"),
    ("pruner: {name: wilcoxon, p_threshold: 2}", "pruner.p_threshold", "rejected by WilcoxonPruner"),
    ("sampler: nsga4", "sampler", "unknown sampler (did you mean 'nsga3' or 'nsga2'?)"),
], ids=["grid-points", "qmc-type", "cmaes", "nsga2-population", "gp-unknown", "hyperband", "asha", "wilcoxon",
        "typo"])
def test_invalid_strategy_options_are_study_file_errors(write_study, workdir, cli, text, key, message):
    path = write_study(SEARCH + text + "\n")
    result = cli("validate", path)
    assert result.code == 2
    assert f"{path}: {key}" in result.err and message in result.err, result.err
