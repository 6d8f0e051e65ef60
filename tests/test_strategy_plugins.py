"""Samplers and pruners are registered the way launchers are: a plugin adds one through the hooks
`register_samplers` and `register_pruners`, and a study file names it like a built-in one."""

from __future__ import annotations

import subprocess

from conftest import AUTOML, TINY_STUDY, load_optuna

from orchestrator.records import STRATEGY_ATTR

STRATEGY_PLUGIN = '''
import optuna

from orchestrator import hookimpl


class CountingSampler(optuna.samplers.RandomSampler):
    """Random search that says, in a file, how many parameters it sampled."""

    def sample_independent(self, study, trial, name, distribution):
        with open("sampled.log", "a") as out:
            out.write(name + "\\n")
        return super().sample_independent(study, trial, name, distribution)


@hookimpl
def register_samplers(register):
    register("counting", CountingSampler, seeded=True)


@hookimpl
def register_pruners(register):
    register("eager_median", optuna.pruners.MedianPruner, defaults={"n_startup_trials": 1, "n_warmup_steps": 0})
'''


def write(workdir, sampler: str, pruner: str) -> None:
    (workdir / "plugins").mkdir(exist_ok=True)
    (workdir / "plugins" / "strategies.py").write_text(STRATEGY_PLUGIN)
    study = TINY_STUDY.replace("pruner: median  #", f"pruner: {pruner}  #")
    (workdir / "study.yaml").write_text(study + f"sampler: {sampler}\n")


def test_a_plugins_sampler_and_pruner_run_a_study(workdir):
    write(workdir, "counting", "eager_median")
    run = subprocess.run(
        [AUTOML, "run", "study.yaml", "--no-tracking"], cwd=workdir, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stdout + run.stderr
    study = load_optuna(workdir, "tiny")
    assert len(study.trials) == 3
    assert study.user_attrs[STRATEGY_ATTR] == {
        "sampler": "counting",
        "pruner": "eager_median",
        "classes": ["CountingSampler", "MedianPruner"],
    }
    assert (workdir / "sampled.log").read_text().count("activation") == 3  # one choice per trial, by the plugin


def test_a_plugins_sampler_options_are_checked_and_the_names_listed(workdir):
    write(workdir, "{name: counting, colour: red}", "eager_median")
    run = subprocess.run([AUTOML, "validate", "study.yaml"], cwd=workdir, capture_output=True, text=True, timeout=300)
    assert run.returncode == 2
    assert "sampler.colour: unknown option of CountingSampler" in run.stderr
    write(workdir, "hillclimb", "eager_median")
    run = subprocess.run([AUTOML, "validate", "study.yaml"], cwd=workdir, capture_output=True, text=True, timeout=300)
    assert (
        run.returncode == 2 and "allowed: tpe, bohb, random, grid, qmc, gp, cmaes, nsga2, nsga3, counting" in run.stderr
    )
