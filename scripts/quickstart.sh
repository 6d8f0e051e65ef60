#!/usr/bin/env bash
# Installs the project, then runs the quickstart study on the embedded defaults
# (./mlflow.db for MLflow, ./optuna.journal for Optuna: no server needed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/automl run studies/quickstart.yaml
.venv/bin/automl show studies/quickstart.yaml
