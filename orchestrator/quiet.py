"""Library chatter off: per-Trainer banners, Optuna's per-trial log lines, MLflow's set-up messages."""

from __future__ import annotations

import logging
import os
import warnings


def quiet_libraries() -> None:
    """Silence per-Trainer banners, Optuna's per-trial log lines and MLflow's set-up chatter."""
    import optuna

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # MLflow sets its loggers' level when imported
    for name in ("pytorch_lightning", "lightning_fabric", "mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING if name == "mlflow" else logging.ERROR)
    warnings.filterwarnings("ignore", module=r"pytorch_lightning\..*")
    warnings.filterwarnings("ignore", module=r"lightning_fabric\..*")
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # our workers record heartbeats themselves (ask/tell, not Study.optimize)
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
