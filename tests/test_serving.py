"""Taking the best model away: a CSV study's best model served over HTTP by `mlflow models serve` scores raw rows
(the CSV's columns without the target: text, categories, missing values) and answers with the CSV's own labels."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import AUTOML, free_port, load_optuna, mlflow_runs, stop_group

LABELS = ("benign", "malignant")

STUDY = """
name: tumours
dataset: {name: csv, path: tumours.csv, target: diagnosis, ignore: row}
objective: {metric: val_accuracy, direction: maximize}
budget: {trials: 2, max_epochs: 8}
pruner: none
seed: 0
search:
  architecture:
    mlp: {depth: 1, width: 32}
  activation: relu
  loss: cross_entropy
  optimizer:
    adam: {lr: 0.01}
  batch_size: 32
"""


def tumour_table(n: int = 300) -> pd.DataFrame:
    """A breast-cancer-like table: an ID, a row number, numbers with '?' for missing, a text category, missing
    values, string labels (and a few rows without one)."""
    rng = np.random.default_rng(3)
    size = rng.integers(1, 11, n)
    shape = rng.integers(1, 11, n)
    site = rng.choice(["left", "right", "both"], n)
    malignant = (size + shape + (site == "both") * 3 + rng.normal(0, 2, n)) > 12
    frame = pd.DataFrame(
        {
            "row": np.arange(n),
            "sample_code": [f"S-{code}" for code in rng.permutation(100_000)[:n]],
            "size": size.astype(object),
            "shape": shape.astype(float),
            "site": site.astype(object),
            "diagnosis": np.where(malignant, LABELS[1], LABELS[0]).astype(object),
        }
    )
    frame.loc[::17, "size"] = "?"
    frame.loc[5::23, "shape"] = np.nan
    frame.loc[7::29, "site"] = None
    frame.loc[[11, 12], "diagnosis"] = None
    return frame


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def test_the_best_model_of_a_csv_study_serves_raw_rows_over_http_with_the_csv_labels(workdir, tmp_path):
    table = tumour_table()
    table.to_csv(workdir / "tumours.csv", index=False)
    (workdir / "study.yaml").write_text(textwrap.dedent(STUDY))

    shown = subprocess.run([AUTOML, "validate", "study.yaml"], cwd=workdir, capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr
    assert "2 row(s) without a value in 'diagnosis' dropped" in shown.stdout
    assert "'sample_code': left out: looks like an identifier" in shown.stdout
    assert "'row': left out: named in `ignore`" in shown.stdout
    assert "'size': number; the token(s) '?'" in shown.stdout
    assert "'site': one-hot, 3 categories ('both', 'left', 'right')" in shown.stdout

    run = subprocess.run([AUTOML, "run", "study.yaml"], cwd=workdir, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    best = load_optuna(workdir, "tumours").best_trial
    _, parents, _ = mlflow_runs(workdir, "tumours")
    uri = parents[0].data.tags["best_model.uri"]

    # the test rows, raw, as the data set split them (same file, same seed)
    from automl_plugins.user_files import _csv_table

    params = {
        "path": str(workdir / "tumours.csv"),
        "target": "diagnosis",
        "task": "auto",
        "delimiter": ",",
        "ignore": "row",
        "test_fraction": 0.2,
        "val_fraction": 0.2,
    }
    frame, _, _, _, _, (_, _, test), _, _ = _csv_table(params, 0)
    rows = frame.loc[test].reset_index(drop=True)
    features = rows.drop(columns=["diagnosis"])
    body = {"dataframe_split": json.loads(features.to_json(orient="split", index=False))}

    port = free_port()
    # as the README says it: `automl serve`, from a shell whose PATH lacks the venv (no activated venv)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "MLFLOW_TRACKING_URI")}
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if Path(p).resolve() != Path(sys.executable).parent.resolve()
    )
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [AUTOML, "serve", "study.yaml", "--port", str(port)],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    blank = features.astype(object).where(features.notna(), "")  # JSON rows copying the CSV's empty cells
    blank_body = {"dataframe_split": json.loads(blank.to_json(orient="split", index=False))}
    used = features.drop(columns=["row", "sample_code"])  # only the columns the model reads (README's curl)
    used_body = {"dataframe_split": json.loads(used.to_json(orient="split", index=False))}
    try:
        deadline = time.monotonic() + 180
        while "ready: POST rows to" not in (tmp_path / "serve.log").read_text() and time.monotonic() < deadline:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            time.sleep(1)
        shown = (tmp_path / "serve.log").read_text()
        assert f"ready: POST rows to http://127.0.0.1:{port}/invocations" in shown, shown[-3000:]
        assert f"serving the best model of study tumours (trial {best.number}, {uri})" in shown
        try:
            answer = _post(f"http://127.0.0.1:{port}/invocations", body)
            blank_answer = _post(f"http://127.0.0.1:{port}/invocations", blank_body)
            used_answer = _post(f"http://127.0.0.1:{port}/invocations", used_body)
        except urllib.error.HTTPError as exc:
            pytest.fail(f"the scoring server refused the rows: {exc.code} {exc.read().decode()[:2000]}")
        taken = subprocess.run(
            [AUTOML, "serve", "study.yaml", "--port", str(port)],
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert taken.returncode == 2 and f"port {port} on 127.0.0.1 is taken" in taken.stderr, taken.stderr
        server.send_signal(signal.SIGTERM)  # as a service manager stops it: the server goes with it, exit 143
        assert server.wait(timeout=30) == 143, (tmp_path / "serve.log").read_text()[-3000:]
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, "the scoring server still answers"
    finally:
        stop_group(server, grace=10)
        log.close()
    assert blank_answer == answer  # "" in a JSON row is a missing value, as an empty CSV cell is
    assert used_answer == answer  # the columns the encoding leaves out (ignored, identifiers) may be omitted
    predictions = answer["predictions"]
    assert len(predictions) == len(rows) and set(predictions) <= set(LABELS), predictions[:10]
    accuracy = float(np.mean(np.array(predictions) == rows["diagnosis"].to_numpy()))
    assert accuracy == pytest.approx(best.user_attrs["test_metrics"]["test_accuracy"], abs=1e-6)  # (logged as float32)
    assert accuracy > 0.7  # the labels are learnable: a real model, not a constant


def test_serve_refuses_at_once_a_study_without_a_model(workdir):
    (workdir / "study.yaml").write_text(textwrap.dedent(STUDY.replace("max_epochs: 8", "max_epochs: 1")))
    tumour_table(60).to_csv(workdir / "tumours.csv", index=False)
    missing = subprocess.run([AUTOML, "serve", "study.yaml"], cwd=workdir, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "no study storage at" in missing.stderr, missing.stderr
    run = subprocess.run(
        [AUTOML, "run", "study.yaml", "--no-tracking"], cwd=workdir, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    started = time.monotonic()
    refused = subprocess.run([AUTOML, "serve", "study.yaml"], cwd=workdir, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert (
        "study 'tumours' has no model to serve: the study has no MLflow run (it ran with --no-tracking)"
        in refused.stderr
    )
    assert time.monotonic() - started < 30 and not (workdir / "mlflow.db").exists()


def test_the_served_network_names_the_input_shape_it_needs():
    import torch
    from torch import nn

    from orchestrator.api.components import DataBundle
    from orchestrator.tracking.serving import ServingModel

    x, y = torch.zeros(4, 1, 8), torch.zeros(4, dtype=torch.int64)
    data = DataBundle(
        x, y, x, y, x, y, input_kind="sequence", task="classification", output_size=2, classes=("no", "yes")
    )
    model = ServingModel(nn.Sequential(nn.Flatten(), nn.Linear(8, 2)), data)
    assert model.predict(None, np.zeros((3, 8), dtype=np.float64)) in (["no"] * 3, ["yes"] * 3)  # float64, flat
    with pytest.raises(
        ValueError,
        match=r"inputs of shape \(3, 5\) do not split into samples of shape \(1, 8\) "
        r"\(8 values each\): pass an array of shape \(n, 1, 8\) or \(n, 8\)",
    ):
        model.predict(None, np.zeros((3, 5)))
    with pytest.raises(ValueError, match=r"inputs of shape \(\) do not split"):
        model.predict(None, 1.0)
