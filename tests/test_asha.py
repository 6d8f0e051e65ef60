"""Pause-and-resume successive halving end to end: `automl run` with the asha pruner, then what Optuna, MLflow,
the checkpoint folder and a log of every really trained epoch (tests/fixtures/epoch_log.py) hold."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

from conftest import AUTOML, load_optuna, mlflow_runs
from optuna.study import StudyDirection
from optuna.trial import TrialState

from orchestrator.records import (
    LINEAGE_ATTR,
    PAUSED_ATTR,
    PROMOTED_ATTR,
    RESUMED_ATTR,
    RETRY_OF_ATTR,
    RUNGS_ATTR,
    lineage,
)
from orchestrator.search.promotion import SuccessiveHalving, top_share

FIXTURES = Path(__file__).parent / "fixtures"
RUNGS = [1, 3, 9]  # max_epochs 9, eta 3
STUDY = """
name: asha
dataset: digits
objective: {objective}
budget: {{trials: {trials}, max_epochs: 9}}
sampler: {sampler}
pruner: {pruner}
seed: 3
checkpoints: {{min_seconds: 0}}
search:
  architecture: {{mlp: {{depth: [1, 2], width: {{low: 16, high: 64, log: true}}}}}}
  activation: [relu, tanh]
  loss: cross_entropy
  optimizer: {{adam: {{lr: {{low: 0.0001, high: 0.1, log: true}}}}}}
  batch_size: 64
"""
ONE = "{metric: val_accuracy, direction: maximize}"
PLAIN = "{name: asha, leader: false}"  # these tests follow plain asha's pausing and promotion step by step
TWO = "[{metric: val_accuracy, direction: maximize}, {metric: params, direction: minimize}]"


def run_study(
    workdir: Path,
    objective: str = ONE,
    trials: int = 12,
    sampler: str = "random",
    *args: str,
    pruner: str = PLAIN,
    extra: str = "",
) -> subprocess.CompletedProcess:
    (workdir / "plugins").mkdir(exist_ok=True)
    shutil.copy(FIXTURES / "epoch_log.py", workdir / "plugins" / "epoch_log.py")
    (workdir / "study.yaml").write_text(
        STUDY.format(objective=objective, trials=trials, sampler=sampler, pruner=pruner) + extra
    )
    result = subprocess.run(
        [AUTOML, "run", "study.yaml", "--threads", "1", *args], cwd=workdir, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def trained_epochs(workdir: Path) -> dict[str, list[int]]:
    epochs: dict[str, list[int]] = defaultdict(list)
    for line in (workdir / "epochs.log").read_text().splitlines():
        entry = json.loads(line)
        epochs[entry["config"]].append(entry["epoch"])
    return epochs


def test_two_workers_resume_paused_trials_from_their_checkpoints(workdir):
    result = run_study(workdir, ONE, 12, "random", "--workers", "2")
    study = load_optuna(workdir, "asha")
    trials = study.trials
    paused = [t for t in trials if PAUSED_ATTR in t.user_attrs]
    continuations = [t for t in trials if PROMOTED_ATTR in t.user_attrs]
    assert paused and continuations, result.stdout
    assert any(t.state == TrialState.COMPLETE for t in trials)
    assert "PAUSED" in result.stdout

    # every lineage's furthest rung: where its last trial paused, or the whole budget when it completed
    furthest: dict[int, int] = {}
    configs: dict[int, str] = {}
    for trial in trials:
        if trial.state == TrialState.COMPLETE:
            reached = len(trial.intermediate_values)
        elif PAUSED_ATTR in trial.user_attrs:
            reached = trial.user_attrs[PAUSED_ATTR]
        else:
            continue
        furthest[lineage(trial)] = max(furthest.get(lineage(trial), 0), reached)
        configs[lineage(trial)] = json.dumps(trial.user_attrs["config"], sort_keys=True, default=str)
    assert set(furthest.values()) <= set(RUNGS) and max(furthest.values()) == 9

    # never retrained: each lineage trained each of its epochs exactly once, up to its furthest rung
    epochs = trained_epochs(workdir)
    assert set(epochs) == set(configs.values())
    for number, reached in furthest.items():
        assert sorted(epochs[configs[number]]) == list(range(reached)), (number, epochs[configs[number]])
    assert sum(len(e) for e in epochs.values()) == sum(furthest.values())

    # a continuation resumed its lineage's checkpoint where the lineage paused
    for trial in continuations:
        origin = next(t for t in trials if t.number == trial.user_attrs[RETRY_OF_ATTR])
        assert trial.user_attrs[LINEAGE_ATTR] == lineage(origin)
        assert (
            trial.user_attrs[RESUMED_ATTR]["epoch"] == origin.user_attrs[PAUSED_ATTR] == trial.user_attrs[PROMOTED_ATTR]
        )
        assert trial.user_attrs[RESUMED_ATTR]["from_trial"] == origin.number

    # the checkpoints of lineages still paused are kept (a later run may promote them); the rest are gone
    folder = workdir / "checkpoints" / "asha"
    continued = {t.user_attrs[RETRY_OF_ATTR] for t in continuations}
    waiting = {lineage(t) for t in paused if t.number not in continued}
    assert {p.name for p in folder.glob("trial-*.pt")} == {f"trial-{n}.pt" for n in waiting}

    client, _, children = mlflow_runs(workdir, "asha")
    by_number = {int(r.data.tags["optuna.trial_number"]): r for r in children}
    assert all(by_number[t.number].data.tags["state"] == "PAUSED" for t in paused)


def test_a_promoted_trial_has_one_continuous_history(workdir):
    """One worker, three enqueued configurations, one clearly the best: it pauses at the rung of 1 epoch (alone
    there), is promoted once the other two arrive, pauses alone at 3 epochs, and, as no configuration is left to
    start, is promoted again and completes its 9 epochs."""
    good = "{architecture.mlp.depth: 1, architecture.mlp.width: 64, activation: relu, optimizer.adam.lr: 0.01}"
    poor = "{{architecture.mlp.depth: 1, architecture.mlp.width: {}, activation: tanh, optimizer.adam.lr: 0.0001}}"
    (workdir / "extra.yaml").write_text(f"enqueue:\n  - {good}\n  - {poor.format(16)}\n  - {poor.format(32)}\n")
    (workdir / "plugins").mkdir()
    shutil.copy(FIXTURES / "epoch_log.py", workdir / "plugins" / "epoch_log.py")
    (workdir / "study.yaml").write_text(
        STUDY.format(objective=ONE, trials=3, sampler="random", pruner=PLAIN) + (workdir / "extra.yaml").read_text()
    )
    result = subprocess.run(
        [AUTOML, "run", "study.yaml", "--threads", "1"], cwd=workdir, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr
    trials = load_optuna(workdir, "asha").trials
    assert [
        (t.number, t.state.name, t.user_attrs.get(PAUSED_ATTR), t.user_attrs.get(RETRY_OF_ATTR)) for t in trials
    ] == [
        (0, "PRUNED", 1, None),
        (1, "PRUNED", 1, None),
        (2, "PRUNED", 1, None),
        (3, "PRUNED", 3, 0),
        (4, "COMPLETE", None, 3),
    ], result.stdout
    assert "trial 3: continuing trial 0 at epoch 1 from its checkpoint" in result.stdout
    assert sorted(trained_epochs(workdir)[json.dumps(trials[0].user_attrs["config"], sort_keys=True)]) == list(
        range(9)
    )  # every epoch of the lineage trained once

    client, _, children = mlflow_runs(workdir, "asha")
    runs = {int(r.data.tags["optuna.trial_number"]): r for r in children}
    history = {m.step: m.value for m in client.get_metric_history(runs[4].info.run_id, "val_accuracy")}
    assert sorted(history) == list(range(9))  # the last trial's run holds the lineage's whole history ...
    first = {m.step: m.value for m in client.get_metric_history(runs[0].info.run_id, "val_accuracy")}
    assert first == {0: history[0]}  # ... the same values its earlier trials recorded
    assert runs[4].data.tags["resumed_from_trial"] == "3" and runs[4].data.tags["resumed_at_epoch"] == "3"
    assert runs[0].data.tags["state"] == "PAUSED" and runs[0].info.status == "FINISHED"
    assert trials[4].intermediate_values == {step: value for step, value in history.items()}

    shown = subprocess.run([AUTOML, "show", "study.yaml"], cwd=workdir, capture_output=True, text=True).stdout
    assert (
        "trained as: trial 0 (epochs 1-1, paused) -> trial 3 (epochs 2-3, paused) -> trial 4 (epochs 4-9, complete)"
    ) in shown, shown
    assert (
        "successive halving: configurations per rung: 1 epoch 3, 3 epochs 1, completed 1; 2 promotion(s), "
        "2 paused awaiting promotion" in shown
    )
    assert not (workdir / "checkpoints" / "asha" / "trial-0.pt").exists()  # the lineage ended: swept
    assert (workdir / "checkpoints" / "asha" / "trial-1.pt").exists()  # still paused: kept for a later run


def test_several_objectives_promote_by_non_dominated_rank(workdir):
    run_study(workdir, TWO, 12, "random", "--workers", "1")
    study = load_optuna(workdir, "asha")
    trials = sorted(study.trials, key=lambda t: t.number)
    assert any(PAUSED_ATTR in t.user_attrs for t in trials)
    promoted_or_continued = 0
    # one worker: when a trial decided at a rung, the results known were those of itself and earlier trials;
    # a continuation was promoted knowing every trial before it
    for rung in RUNGS[:-1]:
        for trial in trials:
            values = (trial.user_attrs.get(RUNGS_ATTR) or {}).get(str(rung))
            went_on = values is not None and (
                trial.state == TrialState.COMPLETE or any(int(k) > rung for k in trial.user_attrs.get(RUNGS_ATTR, {}))
            )
            promoted = trial.user_attrs.get(PROMOTED_ATTR) == rung
            if not went_on and not promoted:
                continue
            cutoff = trial.number + (1 if went_on else 0)
            known = {
                lineage(t): (t.user_attrs.get(RUNGS_ATTR) or {})[str(rung)]
                for t in trials
                if t.number < cutoff and str(rung) in (t.user_attrs.get(RUNGS_ATTR) or {})
            }
            assert lineage(trial) in top_share(known, study.directions, SuccessiveHalving().eta), (trial.number, rung)
            promoted_or_continued += 1
    assert promoted_or_continued >= 2
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert complete and all(len(t.values) == 2 for t in complete)


def test_the_leader_rule_completes_the_first_configuration_at_once(workdir):
    """asha with `leader: true`: the study's first configuration trains to max_epochs without pausing, so
    the user has a complete model after one trial; a later trial trains on past a rung only if it led the rung
    there or was in its top 1/eta, as the trials before it had recorded."""
    result = run_study(workdir, ONE, 12, "random", "--workers", "1", pruner="{name: asha, leader: true}")
    trials = sorted(load_optuna(workdir, "asha").trials, key=lambda t: t.number)
    first = trials[0]
    assert first.state == TrialState.COMPLETE and len(first.intermediate_values) == RUNGS[-1], result.stdout
    assert PAUSED_ATTR not in first.user_attrs and sorted(map(int, first.user_attrs[RUNGS_ATTR])) == RUNGS[:-1]
    assert any(PAUSED_ATTR in t.user_attrs for t in trials)  # the others still pause
    eta, leaders = SuccessiveHalving().eta, 0
    for rung in RUNGS[:-1]:
        for trial in trials:
            rungs = trial.user_attrs.get(RUNGS_ATTR) or {}
            if str(rung) not in rungs or not any(int(k) > rung for k in rungs) and trial.state != TrialState.COMPLETE:
                continue  # did not train on from this rung within this trial
            known = {
                lineage(t): (t.user_attrs.get(RUNGS_ATTR) or {})[str(rung)]
                for t in trials
                if t.number <= trial.number and str(rung) in (t.user_attrs.get(RUNGS_ATTR) or {})
            }
            led = max(known, key=lambda key: (known[key][0], -key)) == lineage(trial)
            assert led or lineage(trial) in top_share(known, [StudyDirection.MAXIMIZE], eta), (trial.number, rung)
            leaders += led and lineage(trial) not in top_share(known, [StudyDirection.MAXIMIZE], eta)
    assert leaders >= 2  # at least the first trial at each of its rungs went on as the leader alone


def test_default_asha_completes_the_first_configuration_then_promotes_as_plain_asha(workdir):
    """`leader: first` (asha's default): the first configuration trains to max_epochs without pausing; once the
    study has that complete trial, a trial trains on past a rung only from the rung's top 1/eta (leading it is not
    enough). The first two configurations are enqueued, a poor one then a good one, so that the case which tells
    `first` from `true` occurs: the good one leads the first rung where only two have arrived (no top 1/eta yet)."""
    poor = "{architecture.mlp.depth: 1, architecture.mlp.width: 16, activation: tanh, optimizer.adam.lr: 0.0001}"
    good = "{architecture.mlp.depth: 1, architecture.mlp.width: 64, activation: relu, optimizer.adam.lr: 0.01}"
    result = run_study(
        workdir, ONE, 12, "random", "--workers", "1", pruner="asha", extra=f"enqueue:\n  - {poor}\n  - {good}\n"
    )
    trials = sorted(load_optuna(workdir, "asha").trials, key=lambda t: t.number)
    first = trials[0]
    assert first.state == TrialState.COMPLETE and len(first.intermediate_values) == RUNGS[-1], result.stdout
    assert PAUSED_ATTR not in first.user_attrs
    assert sum(PAUSED_ATTR in t.user_attrs for t in trials) >= 6  # the others pause
    eta, went_on, held = SuccessiveHalving().eta, 0, 0
    for rung in RUNGS[:-1]:
        for trial in trials[1:]:
            rungs = trial.user_attrs.get(RUNGS_ATTR) or {}
            if str(rung) not in rungs:
                continue
            known = {
                lineage(t): (t.user_attrs.get(RUNGS_ATTR) or {})[str(rung)]
                for t in trials
                if t.number <= trial.number and str(rung) in (t.user_attrs.get(RUNGS_ATTR) or {})
            }
            top = top_share(known, [StudyDirection.MAXIMIZE], eta)
            if any(int(k) > rung for k in rungs) or trial.state == TrialState.COMPLETE:  # trained on from the rung
                assert lineage(trial) in top, (trial.number, rung)
                went_on += 1
            elif max(known, key=lambda key: (known[key][0], -key)) == lineage(trial) and lineage(trial) not in top:
                assert trial.user_attrs.get(PAUSED_ATTR) == rung, (trial.number, rung)
                held += 1  # led the rung outside its top 1/eta and paused: `leader: true` would have trained on
    assert went_on >= 1, result.stdout  # some later trial did train on past a rung, from the top 1/eta
    assert held >= 1, result.stdout  # and the case that tells `first` from `true` occurred: the test can fail
