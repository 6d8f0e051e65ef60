"""A plugin's trial sink (hook `trial_sinks`) receives every trial's record, in every worker, the way the built-in
sinks do: here a JSON-lines log beside a two-worker study with pause-and-resume successive halving, compared with
what Optuna holds."""

from __future__ import annotations

import json

from conftest import load_optuna
from test_asha import ONE, run_study

from orchestrator.records import PAUSED_ATTR

SINK_PLUGIN = """
import json
import os

from orchestrator import hookimpl


class JsonLines:
    def __init__(self, path):
        self.path = path

    def record(self, trial):
        line = {{"study": trial.study_name, "number": trial.number, "state": trial.state, "value": trial.value,
                "epochs": trial.epochs, "reason": trial.reason, "pid": os.getpid()}}
        with open(self.path, "a") as out:
            out.write(json.dumps(line) + "\\n")


@hookimpl
def trial_sinks(study_name):
    return [JsonLines({path!r})]
"""


def test_a_plugins_sink_sees_every_trial_of_every_worker_as_optuna_records_it(workdir):
    log = workdir / "trials.jsonl"
    (workdir / "plugins").mkdir()
    (workdir / "plugins" / "sink_log.py").write_text(SINK_PLUGIN.format(path=str(log)))
    run_study(workdir, ONE, 12, "random", "--workers", "2")

    records = [json.loads(line) for line in log.read_text().splitlines()]
    trials = load_optuna(workdir, "asha").trials
    assert sorted(r["number"] for r in records) == [t.number for t in trials]  # each trial once
    assert {r["study"] for r in records} == {"asha"}
    assert len({r["pid"] for r in records}) == 2, "both workers' trials"
    by_number = {r["number"]: r for r in records}
    for trial in trials:
        record = by_number[trial.number]
        if PAUSED_ATTR in trial.user_attrs:
            assert trial.state.name == "PRUNED" and record["state"] == "PAUSED"
            assert record["epochs"] == trial.user_attrs[PAUSED_ATTR] and record["reason"].startswith("paused at")
        else:
            assert record["state"] == trial.state.name, (record, trial.state)
        if trial.state.name == "COMPLETE":
            assert record["value"] == trial.value and record["epochs"] == 9
    states = {r["state"] for r in records}
    assert {"COMPLETE", "PAUSED"} <= states, states
