"""`automl show`: what a study holds, gathered once as a plain dict (`--json` prints it whole) and rendered as text
from that dict, so the JSON is always a superset of the text.

The dict's keys: `study`, `storage` (credentials hidden), `direction`, `objectives`, `trials` (count per state),
`successive_halving` (`configurations_per_rung`, `promotions`, `paused`; null without rungs), `pareto_front`
(several objectives only: `number`, `values`, `config`), `best` (`number`, `value`, `test_metrics`, `params`,
`trained_as`: the trials of its lineage with their epochs and how each ended; null before a trial completes),
`model` (the best model logged to MLflow: `uri`, `network_uri`, `run_id`, `trial`, `tracking_uri`; null with
`model_note` saying why), `retries` (`trial`, `retry_of`, `reason`; promotions are counted under
`successive_halving`, not here) and `failed` (`number`, `reason`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import optuna

from orchestrator.records import (
    BEST_MODEL_TRIAL_TAG,
    BEST_MODEL_URI_TAG,
    BEST_NETWORK_URI_TAG,
    CONFIG_ATTR,
    PARENT_RUN_ATTR,
    PAUSED_ATTR,
    PROMOTED_ATTR,
    REASON_ATTR,
    RETRY_OF_ATTR,
    RETRY_REASON_ATTR,
    TEST_METRICS_ATTR,
    leading_trial,
    pareto_front,
    paused_trials,
    trial_counts,
)
from orchestrator.search.promotion import lineage_history, rung_counts
from orchestrator.study.storage import redact
from orchestrator.tracking.summary import objective_names

FAILED_SHOWN = 5  # the text shows the last few failures; the JSON has them all


def best_model_location(study: optuna.Study, tracking_uri: str) -> tuple[dict[str, Any] | None, str]:
    """The best model the study logged to MLflow (its parent run's tags), or None and why not. Reads only: a
    missing SQLite store is reported, never created."""
    parent = study.user_attrs.get(PARENT_RUN_ATTR)
    if not parent:
        return None, "the study has no MLflow run (it ran with --no-tracking)"
    if tracking_uri.startswith("sqlite:///") and not Path(tracking_uri.removeprefix("sqlite:///")).exists():
        return None, (
            f"no MLflow store at {redact(tracking_uri)}: give the study's --tracking-uri (or run show "
            "where the study ran)"
        )
    if tracking_uri.startswith(("http://", "https://")):  # answer now, not after minutes of retries
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        run = MlflowClient(tracking_uri).get_run(parent)
    except MlflowException as exc:
        return None, f"the study's MLflow run {parent} cannot be read from {redact(tracking_uri)}: {exc.message}"
    tags = run.data.tags
    if not tags.get(BEST_MODEL_URI_TAG):
        return None, f"no model logged on the study's MLflow run {parent} yet (it is logged as trials complete)"
    return {
        "uri": tags[BEST_MODEL_URI_TAG],
        "network_uri": tags.get(BEST_NETWORK_URI_TAG),
        "run_id": parent,
        "trial": int(tags[BEST_MODEL_TRIAL_TAG]) if tags.get(BEST_MODEL_TRIAL_TAG, "").isdigit() else None,
        "tracking_uri": redact(tracking_uri),
    }, ""


def collect(study: optuna.Study, storage_url: str, tracking_uri: str) -> dict[str, Any]:
    """Everything `automl show` reports of a study, as JSON-ready values."""
    trials = study.get_trials(deepcopy=False)
    metrics = objective_names(study)
    report: dict[str, Any] = {
        "study": study.study_name,
        "storage": redact(storage_url),
        "direction": ", ".join(d.name.lower() for d in study.directions),
        "objectives": metrics,
        "trials": {k: v for k, v in trial_counts(study).items() if v},
        "successive_halving": _halving_report(trials),
    }
    if len(study.directions) > 1:
        report["pareto_front"] = _pareto_report(study, metrics)
    leader = leading_trial(study)
    report["best"] = None if leader is None else _best_report(trials, leader)
    report["model"], report["model_note"] = (
        best_model_location(study, tracking_uri) if leader is not None else (None, "no trial has completed")
    )
    report["retries"] = [
        {"trial": t.number, "retry_of": t.user_attrs[RETRY_OF_ATTR], "reason": t.user_attrs.get(RETRY_REASON_ATTR)}
        for t in trials
        if RETRY_OF_ATTR in t.user_attrs and PROMOTED_ATTR not in t.user_attrs
    ]
    report["failed"] = [
        {"number": t.number, "reason": t.user_attrs[REASON_ATTR]}
        for t in trials
        if t.state == optuna.trial.TrialState.FAIL and REASON_ATTR in t.user_attrs
    ]
    return report


def _halving_report(trials: list[optuna.trial.FrozenTrial]) -> dict[str, Any] | None:
    """The rungs of successive halving, or None when no trial was ever paused at one."""
    if not any(PAUSED_ATTR in t.user_attrs for t in trials):
        return None
    return {
        "configurations_per_rung": rung_counts(trials),
        "promotions": sum(PROMOTED_ATTR in t.user_attrs for t in trials),
        "paused": len(paused_trials(trials)),
    }


def _pareto_report(study: optuna.Study, metrics: list[str]) -> list[dict[str, Any]]:
    """The trials of a multi-objective study's Pareto front, with their values by objective and their config."""
    return [
        {
            "number": t.number,
            "values": dict(zip(metrics, t.values)),
            "config": t.user_attrs.get(CONFIG_ATTR, t.params),
        }
        for t in pareto_front(study)
    ]


def _best_report(trials: list[optuna.trial.FrozenTrial], leader: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """The leading trial: its value, test metrics, config and the trials of its lineage."""
    return {
        "number": leader.number,
        "value": leader.values[0],
        "test_metrics": dict(leader.user_attrs.get(TEST_METRICS_ATTR) or {}),
        "params": leader.user_attrs.get(CONFIG_ATTR, leader.params),
        "trained_as": [
            {"trial": n, "first_epoch": a, "last_epoch": b, "ended": how}
            for n, a, b, how in lineage_history(trials, leader)
        ],
    }


def render(report: dict[str, Any]) -> list[str]:
    """The text of `automl show`, from `collect`'s dict."""
    lines = [
        f"study {report['study']} ({report['direction']}) in {report['storage']}",
        "trials: " + (", ".join(f"{k.lower()} {v}" for k, v in report["trials"].items()) or "none"),
    ]
    front = report.get("pareto_front") or []
    if front:
        lines += _pareto_lines(front, report["objectives"])
    halving = report["successive_halving"]
    if halving:
        lines.append(
            "successive halving: configurations per rung: "
            + ", ".join(f"{rung} {count}" for rung, count in halving["configurations_per_rung"].items())
            + f"; {halving['promotions']} promotion(s), {halving['paused']} paused awaiting promotion"
        )
    if report["retries"]:
        lines.append(
            "retries: " + ", ".join(f"trial {r['trial']} of {r['retry_of']} ({r['reason']})" for r in report["retries"])
        )
    best = report["best"]
    if best:
        label = f"best by {report['objectives'][0]}" if front else "best"
        lines += _best_lines(best, label)
    model = report["model"]
    if model:
        lines += _model_lines(model, best)
    elif best:
        lines.append(f"best model: none ({report['model_note']})")
    for failure in report["failed"][-FAILED_SHOWN:]:
        lines.append(f"failed trial {failure['number']}: {failure['reason']}")
    return lines


def _pareto_lines(front: list[dict[str, Any]], objectives: list[str]) -> list[str]:
    """The Pareto front as a table: trial, one column per objective, then the chosen components."""
    from orchestrator.search.space import CHOSEN_KINDS

    lines = [
        f"Pareto front ({len(front)} trial(s), feasible only):",
        f"  {'trial':>5}  " + "  ".join(f"{m:>12}" for m in objectives) + "  choices",
    ]
    for entry in front:
        choices = " ".join(str(entry["config"].get(kind, "")) for kind in CHOSEN_KINDS)
        lines.append(
            f"  {entry['number']:>5}  " + "  ".join(f"{v:>12.6g}" for v in entry["values"].values()) + f"  {choices}"
        )
    return lines


def _best_lines(best: dict[str, Any], label: str) -> list[str]:
    """The best trial: its value, test metrics, lineage (when it was trained in several trials) and config."""
    lines = [f"{label}: trial {best['number']}, value {best['value']:.6g}"]
    if best["test_metrics"]:
        lines.append(
            "  on the held-out test split (never used to choose): "
            + ", ".join(f"{k} {v:.6g}" for k, v in sorted(best["test_metrics"].items()))
        )
    if len(best["trained_as"]) > 1:
        lines.append(
            "  trained as: "
            + " -> ".join(
                f"trial {h['trial']} (epochs {h['first_epoch']}-{h['last_epoch']}, {h['ended']})"
                for h in best["trained_as"]
            )
        )
    for key, value in best["params"].items():
        lines.append(f"  {key}: {value}")
    return lines


def _model_lines(model: dict[str, Any], best: dict[str, Any] | None) -> list[str]:
    """Where the best model is logged and how to load it, noting when it was logged for another trial."""
    stale = (
        f"; logged for trial {model['trial']}, the best when the study last ran"
        if best and model["trial"] is not None and model["trial"] != best["number"]
        else ""
    )
    return [
        f"best model: {model['uri']} (MLflow run {model['run_id']} in {model['tracking_uri']}{stale})",
        f"  load it: mlflow.pyfunc.load_model({model['uri']!r})",
    ]
