"""The study as the MLflow UI first shows it: a saved view of every trial by its objective, and its address.

MLflow 3 has a global "GenAI / Machine learning" switch (the `workflowType` URL parameter, else the browser's
last choice, GenAI at first) that decides an experiment's first view over its `mlflow.experimentKind` tag, so
every address we print carries `workflowType=machine_learning`. MLflow nests child runs collapsed under their
parent in its default order; the saved view sorts by the objective instead (every trial listed flat, best
first) and shows the objective, the component choices and the main hyperparameters as columns.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from orchestrator.records import OBJECTIVE_METRIC

if TYPE_CHECKING:
    from orchestrator.study.studyfile import StudySpec

# MLflow 3 opens an experiment without this tag in its GenAI view (traces, evaluations); a study is model training
EXPERIMENT_KIND_TAG, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"
VIEW_KEY = "automl-trials"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"  # MLflow's saved views live in experiment tags of this prefix
VIEW_NAME = "automl: every trial by its objective"
MAX_PARAM_COLUMNS = 8
WORKFLOW = {"workflowType": "machine_learning"}


def _column(group: str, key: str) -> str:
    return f"{group}.`{key}`"  # MLflow's canonical column key


def objective_metric(spec: StudySpec) -> str:
    """The run metric a study's trials are ranked by (the first objective's, for several)."""
    return f"{OBJECTIVE_METRIC}_0" if spec.multi_objective else OBJECTIVE_METRIC


def view_columns(spec: StudySpec) -> list[str]:
    """The objective, the objective metrics and their test counterparts, then the searched parameters
    (component choices first)."""
    metrics = [objective_metric(spec)]
    for metric, _ in spec.objectives or ((spec.metric, spec.direction),):
        metrics.append(metric)
        if metric.startswith("val_"):
            metrics.append("test_" + metric.removeprefix("val_"))
    params = list(spec.space.params())
    params.sort(key=lambda key: "." in key)  # choices (`architecture`) before their parameters (stable)
    columns = [_column("metrics", m) for m in dict.fromkeys(metrics)]
    return columns + [_column("params", p) for p in params[:MAX_PARAM_COLUMNS]]


def view_tags(spec: StudySpec, now_ms: int | None = None) -> dict[str, str]:
    """Experiment tags that make the study's experiment model training with the saved view of its trials."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    state = {
        "orderByKey": _column("metrics", objective_metric(spec)),
        "orderByAsc": spec.directions[0] == "minimize",
        "selectedColumns": view_columns(spec),
    }
    envelope = {"name": VIEW_NAME, "createdAt": now_ms, "updatedAt": now_ms, "state": json.dumps(state)}
    return {EXPERIMENT_KIND_TAG: MODEL_TRAINING, VIEW_TAG: json.dumps(envelope)}


def experiment_address(base_url: str, experiment_id: str, has_view: bool, ascending: bool = False) -> str:
    """The experiment's runs page in the model-training view: the saved view when the experiment has it, else
    (an experiment of an earlier version) the runs sorted by the objective."""
    query: dict[str, str] = (
        {"viewStateShareKey": VIEW_KEY}
        if has_view
        else {"orderByKey": _column("metrics", OBJECTIVE_METRIC), "orderByAsc": str(ascending).lower()}
    )
    return f"{base_url}/#/experiments/{experiment_id}/runs?{urlencode({**query, **WORKFLOW})}"


def study_views(tracking_uri: str, base_url: str) -> list[tuple[str, str]]:
    """(study, address) of each study in the tracking store."""
    from mlflow.tracking import MlflowClient

    from orchestrator.records import DIRECTION_TAG, ROLE_TAG, STUDY_ROLE
    from orchestrator.study.storage import storage_file

    local = storage_file(tracking_uri)
    if local is not None and not local.exists():
        return []  # nothing tracked yet (and MLflow would create the file)
    client = MlflowClient(tracking_uri=tracking_uri)
    views = []
    for experiment in client.search_experiments():
        parents = client.search_runs([experiment.experiment_id], f"tags.`{ROLE_TAG}` = '{STUDY_ROLE}'", max_results=1)
        if not parents:
            continue
        ascending = parents[0].data.tags.get(DIRECTION_TAG) == "minimize"
        views.append(
            (
                experiment.name,
                experiment_address(base_url, experiment.experiment_id, VIEW_TAG in experiment.tags, ascending),
            )
        )
    return views
