"""Every sampler and pruner runs a small study (in this process, as one `automl worker`), and their options
are validated like every other study-file key."""

from __future__ import annotations

import math

import optuna
import pytest
from conftest import TINY_STUDY, load_optuna
from optuna.trial import TrialState

from orchestrator.api.params import Choice, Float, Int
from orchestrator.records import lineage
from orchestrator.search.samplers import PRUNERS, SAMPLERS
from orchestrator.search.space import _grid_values
from orchestrator.study.studyfile import load_study

SEARCH = TINY_STUDY.replace("trials: 3", "trials: 4")


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_each_sampler_runs_a_small_study(write_study, workdir, cli, sampler):
    write_study(SEARCH + f"sampler: {sampler}\npruner: none\n")
    result = cli("worker", "study.yaml", "--no-tracking")
    assert result.code == 0, result.err
    study = load_optuna(workdir)
    # the sampler the worker really used, not only the name it was given
    assert study.user_attrs["strategy"] == {
        "sampler": sampler,
        "pruner": "none",
        "classes": [SAMPLERS[sampler].cls.__name__, "NopPruner"],
    }
    assert len(study.trials) == 4 and all(t.state == TrialState.COMPLETE for t in study.trials)
    assert all(0.0 < t.value <= 1.0 for t in study.trials)


@pytest.mark.parametrize("pruner", sorted(PRUNERS))
def test_each_pruner_runs_a_small_study(write_study, workdir, cli, pruner):
    write_study(SEARCH.replace("max_epochs: 2", "max_epochs: 4") + f"sampler: random\npruner: {pruner}\n")
    result = cli("worker", "study.yaml", "--no-tracking")
    assert result.code == 0, result.err
    study = load_optuna(workdir)
    assert study.user_attrs["strategy"] == {
        "sampler": "random",
        "pruner": pruner,
        "classes": ["RandomSampler", PRUNERS[pruner].cls.__name__],
    }
    configurations = {lineage(t) for t in study.trials}  # asha continues paused ones in new trials
    assert len(configurations) == 4 and (pruner == "asha" or len(study.trials) == 4)
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials)
    assert all(len(t.intermediate_values) >= 1 for t in study.trials)  # pruning had values to judge


def test_grid_sampler_walks_the_grid_made_from_the_space(write_study, workdir, cli):
    # mlp width 16|32, activation relu|sigmoid, lr low..high (betas fixed): with 2 points per range 8 cells
    text = SEARCH.replace("trials: 4", "trials: 8").replace("log: true}}", "log: true}, beta1: 0.9, beta2: 0.999}")
    write_study(text + "sampler: {name: grid, points: 2}\npruner: none\n")
    assert cli("worker", "study.yaml", "--no-tracking").code == 0
    cells = {
        (t.params["architecture.mlp.width"], t.params["activation"], round(t.params["optimizer.adam.lr"], 6))
        for t in load_optuna(workdir).trials
    }
    assert cells == {(w, a, lr) for w in (16, 32) for a in ("relu", "sigmoid") for lr in (0.001, 0.01)}


def test_grid_values_follow_each_kind_of_range():
    assert _grid_values(Choice(("a", "b")), 3) == ["a", "b"]
    assert _grid_values(Float(0.0, 1.0, default=0.5), 3) == [0.0, 0.5, 1.0]
    assert _grid_values(Float(1e-4, 1e-2, default=1e-3, log=True), 3) == pytest.approx([1e-4, 1e-3, 1e-2])
    assert _grid_values(Int(1, 9, default=1), 3) == [1, 5, 9]
    assert _grid_values(Int(1, 2, default=1), 5) == [1, 2]  # no repeats when the range is smaller than the points
    assert _grid_values(Float(0.0, 1.0, default=0.0, step=0.25), 3) == [0.0, 0.5, 1.0]


def test_defaults_are_the_measured_strategy_and_practical_batch_sizes(write_study, workdir, cli):
    """One objective: BOHB + asha (bench/search.py chose them); several: TPE, no pruning. A study that leaves
    batch_size out searches 32..256, not the declared 1..8192."""
    from orchestrator.api.registry import load_registry

    registry = load_registry()
    defaults = SEARCH.replace("  batch_size: 64\n", "").replace("pruner: median", "")  # the fixture pins one
    spec = load_study(write_study(defaults), registry)
    assert (spec.sampler[0], spec.pruner[0]) == ("tpe", "asha")
    assert spec.space.shared["batch_size"] == Choice((32, 64, 128, 256), default=128, help="mini-batch size")
    several = defaults.replace(
        "objective: {metric: val_accuracy, direction: maximize}",
        "objective: [{metric: val_accuracy, direction: maximize}, {metric: params, direction: minimize}]",
    )
    spec = load_study(write_study(several), registry)
    assert (spec.sampler[0], spec.pruner[0]) == ("tpe", "none")


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        ("sampler: {name: grid, points: 1}", "sampler.points", "points must be an integer >= 2"),
        ("sampler: {name: qmc, qmc_type: fancy}", "sampler.qmc_type", "rejected by QMCSampler"),
        ("sampler: {name: cmaes, n_startup: 3}", "sampler.n_startup", "unknown option of CmaEsSampler"),
        ("sampler: {name: nsga2, population_size: 1}", "sampler.population_size", "rejected by NSGAIISampler"),
        ("sampler: {name: gp, n_startup: 3}", "sampler.n_startup", "unknown option of GPSampler"),
        ("pruner: {name: hyperband, max_resources: 9}", "pruner.max_resources", "unknown option of HyperbandPruner"),
        (
            "pruner: {name: successive_halving, min_resource: 0}",
            "pruner.min_resource",
            "rejected by SuccessiveHalvingPruner",
        ),
        ("pruner: {name: wilcoxon, p_threshold: 2}", "pruner.p_threshold", "rejected by WilcoxonPruner"),
        ("sampler: nsga4", "sampler", "unknown sampler (did you mean 'nsga3' or 'nsga2'?)"),
        ("pruner: {name: asha, eta: 1}", "pruner.eta", "rejected by SuccessiveHalving: eta must be an integer >= 2"),
        ("pruner: {name: asha, min_epochs: 0}", "pruner.min_epochs", "min_epochs must be an integer >= 1"),
        (
            "pruner: {name: asha, reduction_factor: 3}",
            "pruner.reduction_factor",
            "unknown option of SuccessiveHalving; allowed: eta, min_epochs",
        ),
        ("sampler: {name: bohb, min_points: 1}", "sampler.min_points", "min_points must be an integer >= 2"),
        (
            "pruner: asha\ncheckpoints: {every_epochs: 0}",
            "checkpoints.every_epochs",
            "the asha pruner pauses trials at rungs and resumes them from their checkpoints: checkpoints must be on",
        ),
    ],
    ids=[
        "grid-points",
        "qmc-type",
        "cmaes",
        "nsga2-population",
        "gp-unknown",
        "hyperband",
        "sh-min-resource",
        "wilcoxon",
        "typo",
        "asha-eta",
        "asha-min-epochs",
        "asha-unknown",
        "bohb-min-points",
        "asha-no-checkpoints",
    ],
)
def test_invalid_strategy_options_are_study_file_errors(write_study, workdir, cli, text, key, message):
    path = write_study(SEARCH + text + "\n")
    result = cli("validate", path)
    assert result.code == 2
    assert f"{path}: {key}" in result.err and message in result.err, result.err


# -- the samplers' models, past their start-up phase -----------------------------------------------------------
# A cheap stand-in for training: a known optimum (adam, lr 0.003, width 128, tanh) scored from the configuration
# the study's space samples, so that many trials run in a second and a sampler's model can be told from chance.

TOY_SPACE = """
name: toy
dataset: digits
objective: {metric: val_accuracy, direction: maximize}
budget: {trials: 10, max_epochs: 2}
search:
  architecture: {mlp: {depth: [1, 2], width: {low: 16, high: 1024, log: true}}}
  activation: [relu, tanh, sigmoid]
  loss: cross_entropy
  optimizer:
    adam: {lr: {low: 0.0001, high: 0.1, log: true}, beta1: 0.9, beta2: 0.999}
    sgd: {lr: {low: 0.001, high: 1.0, log: true}, momentum: 0.9}
  batch_size: 64
"""
NUMERIC_SPACE = (
    TOY_SPACE.replace("activation: [relu, tanh, sigmoid]", "activation: tanh")
    .replace("depth: [1, 2]", "depth: 2")
    .replace("    sgd: {lr: {low: 0.001, high: 1.0, log: true}, momentum: 0.9}\n", "")
)


def _toy_score(config) -> float:
    optimizer = config["optimizer"]
    lr = config[f"optimizer.{optimizer}.lr"]
    best_lr = {"adam": 0.003, "sgd": 0.1}[optimizer]
    score = -((math.log10(lr) - math.log10(best_lr)) ** 2) - (math.log2(config["architecture.mlp.width"]) - 7) ** 2 / 4
    return score - 0.5 * (config["activation"] != "tanh") - 1.0 * (optimizer != "adam")


def _toy_search(sampler: str, text: str, trials: int, registry, tmp_path, seed: int = 0) -> list[float]:
    path = tmp_path / "toy.yaml"
    path.write_text(text)
    spec = load_study(path, registry)
    study = optuna.create_study(direction="maximize", sampler=SAMPLERS[sampler].build({}, seed=seed, space=spec.space))
    for _ in range(trials):
        trial = study.ask()
        study.tell(trial, _toy_score(spec.space.sample(trial)))
    return [t.value for t in study.trials]


def _late_mean(values: list[float], count: int = 15) -> float:
    return sum(values[-count:]) / count


def test_model_based_samplers_have_the_options_the_readme_promises():
    for name in ("tpe", "bohb"):
        sampler = SAMPLERS[name].build({}, seed=0)
        assert sampler._multivariate is True and sampler._group is True, name  # models the conditional space
        assert sampler._n_startup_trials == 5, name
    assert SAMPLERS["bohb"].build({}, seed=0).min_points == 5
    assert SAMPLERS["gp"].build({}, seed=0)._n_startup_trials == 5
    assert SAMPLERS["cmaes"].build({}, seed=0)._n_startup_trials == 5
    assert SAMPLERS["nsga2"].build({}, seed=0)._population_size == 20


@pytest.mark.parametrize("sampler", ["tpe", "bohb"])
def test_tpe_models_the_conditional_space(sampler, builtin_registry, tmp_path):
    """35 trials past the 5 random start-up ones: the last 15 score far better than random search's last 15."""
    for seed in (0, 1):
        modelled = _late_mean(_toy_search(sampler, TOY_SPACE, 40, builtin_registry, tmp_path, seed))
        chance = _late_mean(_toy_search("random", TOY_SPACE, 40, builtin_registry, tmp_path, seed))
        assert modelled > chance + 0.8, (seed, modelled, chance)


@pytest.mark.parametrize(
    ("sampler", "trials"), [("tpe", 40), ("gp", 25), ("cmaes", 40), ("nsga2", 120), ("nsga3", 120)]
)
def test_each_model_beats_random_search_on_a_numeric_space(sampler, trials, builtin_registry, tmp_path):
    """GP, CMA-ES and NSGA-II/III fall back to random sampling for the parameters of a conditional space (Optuna's
    'dynamic search space is not supported'); on a fixed numeric space each models it, past its start-up phase
    (5 trials; NSGA: a population of 20, here 6 generations)."""
    last = 20 if sampler.startswith("nsga") else 10  # a generation's mean, or the last 10 proposals
    modelled = _late_mean(_toy_search(sampler, NUMERIC_SPACE, trials, builtin_registry, tmp_path), last)
    chance = _late_mean(_toy_search("random", NUMERIC_SPACE, trials, builtin_registry, tmp_path), last)
    assert modelled > chance + 0.4, (modelled, chance)
