"""The best model: each trial that beats the study's best so far keeps its weights on its MLflow run; at the
end the supervisor rebuilds the best trial's network and logs it on the parent run twice, signature and input
example included: `best_model`, a pyfunc model that takes raw inputs and returns predictions as the data wrote
its targets (orchestrator.tracking.serving; the one registered, with the alias `best`, if asked), and `best_network`,
the plain `nn.Module` with `mlflow.pytorch` for PyTorch users (inputs as the network trained on them)."""

from __future__ import annotations

import contextlib
import logging
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
import torch
from torch import nn

from orchestrator.api.components import DataBundle
from orchestrator.api.registry import Registry
from orchestrator.records import (
    BEST_MODEL_TRIAL_TAG,
    BEST_MODEL_URI_TAG,
    BEST_NETWORK_URI_TAG,
    CONFIG_ATTR,
    leading_trial,
    trial_runs,
)
from orchestrator.training.assembly import assemble

WEIGHTS_FILE = "network_state.pt"
MODEL_NAME = "best_model"
NETWORK_NAME = "best_network"
BEST_ALIAS = "best"
NO_METRICS_STEP = -1  # the parent run's metrics are all at step 0 (update_summary)


def improves(study: optuna.Study, value: float) -> bool:
    """Whether `value` of the (first) objective beats every complete trial so far (its weights are worth
    keeping: the best model is among the trials that improved on the best when they finished)."""
    done = [t.values[0] for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))]
    if not done:
        return True
    maximize = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    return value > max(done) if maximize else value < min(done)


def weights_file(network: nn.Module) -> Path:
    """The network's state dict in a temporary file (the caller uploads and removes it)."""
    handle = tempfile.NamedTemporaryFile(prefix="automl-", suffix=".pt", delete=False)
    handle.close()
    torch.save({k: v.detach().cpu() for k, v in network.state_dict().items()}, handle.name)
    return Path(handle.name)


def rebuild_network(config: dict[str, Any], registry: Registry, data: DataBundle, weights: Path) -> nn.Module:
    """The trial's network with its trained weights, loaded with `weights_only=True`, in eval mode on CPU."""
    module = assemble(config, registry, data)
    module.network.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return module.network.cpu().eval()


@contextmanager
def _quiet_model_logging() -> Iterator[None]:
    """MLflow's advice while logging, which does not apply here: type hints on `predict` (they would become the
    schema), integer outputs (class indices), and pickle's risks (the network is saved as pickle on purpose: pt2
    graphs cannot `eval()` or take float64)."""
    loggers = [logging.getLogger(name) for name in ("mlflow.pyfunc", "mlflow.pytorch")]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)


def prepare_imports() -> None:
    """Import what logging the best model needs (MLflow's pyfunc and PyTorch flavours, GitPython for the run
    context), ahead of time, and build MLflow's map of installed packages (it checks the model's requirements
    against it: about 0.4 s)."""
    import importlib

    with _quiet_model_logging():
        for module in ("mlflow.pyfunc", "mlflow.pytorch", "mlflow.models", "orchestrator.tracking.serving", "git"):
            with contextlib.suppress(ImportError):  # GitPython is MLflow's optional extra
                importlib.import_module(module)
    from mlflow.utils import requirements_utils

    with contextlib.suppress(Exception):  # a private helper of MLflow's: only a head start if it is there
        requirements_utils._init_packages_to_modules_map()


def _left_out(data: DataBundle) -> tuple[str, ...]:
    """The raw columns the data's encoder does not read (a table's ignored or dropped columns), if it says."""
    left_out = getattr(data.encoder, "left_out", None)
    return tuple(left_out()) if callable(left_out) else ()


def _best_network(client: Any, parent: Any, best: Any, registry: Registry, data: DataBundle) -> Any:
    """The best trial's network, rebuilt from its configuration with the weights kept on its MLflow run."""
    runs = trial_runs(client, parent.info.experiment_id, parent.info.run_id, best.number)
    with tempfile.TemporaryDirectory(prefix="automl-best-") as folder:
        for run in runs:
            if WEIGHTS_FILE in [a.path for a in client.list_artifacts(run.info.run_id)]:
                weights = Path(client.download_artifacts(run.info.run_id, WEIGHTS_FILE, folder))
                break
        else:
            raise LookupError(
                f"trial {best.number}'s network weights ({WEIGHTS_FILE}) are not on its MLflow run "
                f"({len(runs)} run(s) found)"
            )
        return rebuild_network(dict(best.user_attrs[CONFIG_ATTR]), registry, data, weights)


def log_best_model(
    study: optuna.Study,
    registry: Registry,
    load: Callable[[], DataBundle],
    tracking_uri: str,
    parent_run_id: str,
    register: str | None = None,
) -> str | None:
    """Log the best trial's network on the parent run; returns the model URI, or None when there is no best
    trial with kept weights, or when that trial's model is logged already. The data (for the network's shape,
    the encoder and the examples) comes from `load`, called only when there is a model to log. With `register`,
    the model is registered under that name with alias `best`."""
    import mlflow
    from mlflow.tracking import MlflowClient

    best = leading_trial(study)
    if best is None:
        return None
    client = MlflowClient(tracking_uri)
    parent = client.get_run(parent_run_id)
    if parent.data.tags.get(BEST_MODEL_TRIAL_TAG) == str(best.number):
        return None  # logged already: the best trial has not changed
    data = load()
    if data.task == "generative":
        return None  # a GAN's generator takes noise, not the data's inputs: nothing to predict with
    network = _best_network(client, parent, best, registry, data)
    model_uri = _log_models(network, data, tracking_uri, parent_run_id, best.number)
    if register:
        version = mlflow.register_model(model_uri, register)
        client.set_registered_model_alias(register, BEST_ALIAS, version.version)
    return model_uri


def _log_models(network: Any, data: DataBundle, tracking_uri: str, parent_run_id: str, trial: int) -> str:
    """The network on the parent run twice: as the pyfunc model that takes raw inputs (the one users serve) and
    as the bare torch network; the run's tags name both and the trial. Returns the pyfunc model's URI."""
    import mlflow

    from orchestrator import __version__

    with _quiet_model_logging():
        from orchestrator.tracking.serving import (  # mlflow.pyfunc
            FloatInputs,
            ServingModel,
            raw_example,
        )

    requirements = [f"torch=={torch.__version__.split('+')[0]}", f"automl-orchestrator=={__version__}"]
    serving = ServingModel(network, data)
    example = raw_example(data)
    plain = FloatInputs(network, data.input_kind == "tokens").eval()
    tensors = data.inputs("val", 5).detach().cpu().numpy()
    with torch.no_grad():
        outputs = plain(torch.as_tensor(tensors)).numpy()
    mlflow.set_tracking_uri(tracking_uri)
    with mlflow.start_run(run_id=parent_run_id), _quiet_model_logging():
        # `step=NO_METRICS_STEP`: MLflow links the parent run's metrics at that step to the model; the study's
        # counters are not the model's metrics (and copying their history cost about 0.25 s per model).
        info = _log_serving_model(serving, example, data, requirements)
        network_info = _log_network(plain, tensors, outputs, requirements)
        mlflow.set_tags(
            {
                BEST_MODEL_TRIAL_TAG: str(trial),
                BEST_MODEL_URI_TAG: info.model_uri,
                BEST_NETWORK_URI_TAG: network_info.model_uri,
            }
        )
    return info.model_uri


def _log_serving_model(serving: Any, example: Any, data: DataBundle, requirements: list[str]) -> Any:
    """The pyfunc model that takes raw inputs (`example` as its input example; the columns the data's encoder
    does not read are optional in its signature), on the active run; returns its model info."""
    import mlflow
    from mlflow.models import infer_signature

    from orchestrator.tracking.serving import lenient_signature

    return mlflow.pyfunc.log_model(
        name=MODEL_NAME,
        python_model=serving,
        signature=lenient_signature(infer_signature(example, serving.predict(None, example)), optional=_left_out(data)),
        input_example=example,
        pip_requirements=requirements,
        step=NO_METRICS_STEP,
    )


def _log_network(plain: nn.Module, tensors: Any, outputs: Any, requirements: list[str]) -> Any:
    """The bare network (inputs as it trained on them, `tensors` and its `outputs` as the example) with
    `mlflow.pytorch`, on the active run; returns its model info."""
    import mlflow
    from mlflow.models import infer_signature

    return mlflow.pytorch.log_model(
        plain,
        name=NETWORK_NAME,
        signature=infer_signature(tensors, outputs),
        input_example=tensors,
        serialization_format="pickle",
        pip_requirements=requirements,
        step=NO_METRICS_STEP,
    )
