"""The review flow in a real browser: run a study, start `automl ui`, and look at what the MLflow UI shows.

A user runs `automl run study.yaml`, then `automl ui`, and reviews the study in the MLflow UI: the
experiment, its parent run (the study) and one child run per trial. This test does the same with
Debian's headless Chromium (`apt-get install chromium`), reads the rendered DOM and keeps
screenshots as CI artifacts (folder `$AUTOML_TEST_ARTIFACTS`, default `test-artifacts/` at the
repository root). Without Chromium it skips locally and fails under CI (env var CI set).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import AUTOML, TINY_STUDY, free_port, stop_group

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS_ENV = "AUTOML_TEST_ARTIFACTS"
REPO_ROOT = Path(__file__).resolve().parents[1]
TRIALS = 3

# Headless, and quiet on a closed network: without the background-networking flags Chromium keeps
# trying to reach Google's services. --no-sandbox because CI runs as root.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--window-size=1600,1000",
]


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _require_chromium() -> str:
    """Chromium's path; without it the test skips, or fails under CI (which must really run it)."""
    if os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    reason = (
        f"{CHROMIUM} is missing: install Debian's Chromium with "
        "`apt-get install -y --no-install-recommends chromium` (scripts/test.sh does this as root)"
    )
    if _in_ci():
        pytest.fail(f"CI must run the browser test, but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Path:
    """Where screenshots and DOM dumps go; a relative $AUTOML_TEST_ARTIFACTS is taken from where pytest started."""
    folder = Path(os.environ.get(ARTIFACTS_ENV) or REPO_ROOT / "test-artifacts")
    if not folder.is_absolute():
        folder = Path(request.config.invocation_params.dir) / folder
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _api(base: str, path: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


class _Page(HTMLParser):
    """The links (href, text) and the visible text of a dumped DOM."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.dom = html
        self.links: list[tuple[str, str]] = []
        self._href: str | None = None
        self._link_text: list[str] = []
        self._text: list[str] = []
        self._skip = 0
        self.feed(html)
        self.close()
        self.text = re.sub(r"\s+", " ", " ".join(self._text))

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._skip += 1
        elif tag == "a":
            self._href, self._link_text = dict(attrs).get("href") or "", []

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)
        elif tag == "a" and self._href is not None:
            self.links.append((self._href, " ".join("".join(self._link_text).split())))
            self._href = None

    def handle_data(self, data):
        if self._skip:
            return
        self._text.append(data)
        if self._href is not None:
            self._link_text.append(data)


def _browse(chromium: str, url: str, profile: Path, screenshot: Path, budget_ms: int) -> str:
    """Load `url` in a fresh headless Chromium, save a PNG of the page, and return the rendered DOM."""
    screenshot.unlink(missing_ok=True)
    command = [
        chromium,
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        f"--virtual-time-budget={budget_ms}",
        f"--screenshot={screenshot}",
        "--dump-dom",
        url,
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"Chromium did not finish loading {url} within 60 s")
    finally:
        try:  # no helper process outlives the browser
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    noise = ("dbus", "unexpected operator", "bytes written to file")
    errors = "\n".join(line for line in err.splitlines() if not any(n in line for n in noise))
    assert proc.returncode == 0, f"Chromium exited {proc.returncode} on {url}:\n{errors[-3000:]}"
    return out


def _show(chromium: str, url: str, tmp_path: Path, artifacts: Path, name: str, ready) -> _Page:
    """Render `url` (retrying with more virtual time while `ready(page)` is false); keep the PNG and the DOM."""
    page = None
    for attempt, budget_ms in enumerate((10_000, 20_000, 40_000)):
        dom = _browse(chromium, url, tmp_path / f"chromium-{name}-{attempt}", artifacts / f"{name}.png", budget_ms)
        (artifacts / f"{name}.html").write_text(dom)
        page = _Page(dom)
        if ready(page):
            break
    return page


def _child_run_links(page: _Page) -> set[tuple[str, str]]:
    """The links in the "Child runs" field of a run's page (MLflow renders it as data-testid="key-value-Child runs")."""
    field = re.search(r'data-testid="key-value-Child runs"(.*?)(?:data-testid="key-value-|$)', page.dom, re.S)
    return set(_Page(field.group(1)).links) if field else set()


def _assert_png(path: Path) -> None:
    assert path.is_file(), f"no screenshot at {path}"
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n"), f"{path} is not a PNG"
    assert len(data) > 10_000, f"{path} is only {len(data)} bytes: a blank page?"


def test_the_mlflow_ui_shows_the_study_its_parent_run_and_every_trial(workdir, artifacts, tmp_path):
    chromium = _require_chromium()
    # 1. run a study as a user would
    (workdir / "study.yaml").write_text(TINY_STUDY)
    run = subprocess.run(
        [AUTOML, "run", "study.yaml", "--trials", str(TRIALS)], cwd=workdir, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stdout + run.stderr

    # 2. start `automl ui` (it execs `mlflow ui`, which starts a server and job runners: one process group)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # MLflow's job runner (GenAI jobs: scorers, issue detection) starts seven processes that play no part in
    # reviewing runs; switched off, the UI answers ~8 s sooner on two cores.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log = (tmp_path / "ui.log").open("w")
    ui = subprocess.Popen(
        [AUTOML, "ui", "--port", str(port)],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        experiment = None
        deadline = time.monotonic() + 90
        while experiment is None and time.monotonic() < deadline:
            assert ui.poll() is None, f"`automl ui` exited {ui.returncode}:\n{(tmp_path / 'ui.log').read_text()}"
            try:
                experiment = _api(base, "/api/2.0/mlflow/experiments/get-by-name?experiment_name=tiny")["experiment"]
            except (OSError, urllib.error.HTTPError):
                time.sleep(0.5)
        assert experiment is not None, f"the MLflow UI did not answer:\n{(tmp_path / 'ui.log').read_text()}"
        exp_id = experiment["experiment_id"]

        # 3. the REST API behind the UI: one parent run (the study) and one child run per trial under it
        runs = _api(base, "/api/2.0/mlflow/runs/search", {"experiment_ids": [exp_id], "max_results": 100})["runs"]

        def tags(r):
            return {t["key"]: t["value"] for t in r["data"].get("tags", [])}

        parents = [r for r in runs if tags(r).get("automl.role") == "study"]
        children = [r for r in runs if tags(r).get("automl.role") == "trial"]
        assert len(parents) == 1 and len(children) == TRIALS and len(runs) == TRIALS + 1, runs
        parent = parents[0]["info"]
        assert all(tags(c)["mlflow.parentRunId"] == parent["run_id"] for c in children)
        child_names = {c["info"]["run_id"]: c["info"]["run_name"] for c in children}
        assert parent["run_name"] and all(child_names.values()) and len(set(child_names.values())) == TRIALS

        # 4. the study's view that `automl ui` prints: the experiment's runs page in MLflow's model-training view
        #    (not GenAI's overview, traces and issue detection), on the saved view the study put on its experiment:
        #    every run listed flat, sorted by the objective, best first, with the objective, the objective's metric
        #    and the searched parameters as columns. (In MLflow's default order child runs are nested under their
        #    parent, collapsed behind an expander.)
        run_link = f"#/experiments/{exp_id}/runs/"
        all_runs = {parent["run_id"]: parent["run_name"], **child_names}
        expected = {(run_link + run_id, name) for run_id, name in all_runs.items()}
        printed = re.search(r"study tiny, every trial by its objective: (\S+)", (tmp_path / "ui.log").read_text())
        assert printed, (tmp_path / "ui.log").read_text()
        assert printed.group(1) == (
            f"{base}/#/experiments/{exp_id}/runs?viewStateShareKey=automl-trials&workflowType=machine_learning"
        )
        page = _show(
            chromium, printed.group(1), tmp_path, artifacts, "mlflow-ui-experiment", lambda p: expected <= set(p.links)
        )
        assert (f"#/experiments/{exp_id}", "tiny") in page.links, "the experiment 'tiny' is not shown"
        missing = expected - set(page.links)
        assert not missing, f"runs not shown in the runs table: {sorted(missing)}; page text: {page.text[:2000]}"
        assert f"{len(all_runs)} matching runs" in page.text, page.text[:2000]
        for shown in ("automl: every trial by its objective", "Sort: objective"):
            assert shown in page.text, f"{shown!r} is not on the page: {page.text[:2000]}"
        columns = set(re.findall(r'col-id="((?:metrics|params)\.`[^`]+`)"', page.dom))  # the grid's column headers
        assert {
            "metrics.`objective`",
            "metrics.`val_accuracy`",
            "metrics.`test_accuracy`",
            "params.`activation`",
        } <= columns, columns
        for genai in ("Detect issues", "Traces logged", "No traces"):
            assert genai not in page.text, f"the GenAI view's {genai!r} is on the page: {page.text[:2000]}"
        shown_runs = [href.removeprefix(run_link) for href, _ in page.links if href.startswith(run_link)]
        objective = {
            c["info"]["run_id"]: m["value"]
            for c in children
            for m in c["data"].get("metrics", [])
            if m["key"] == "objective"
        }
        assert shown_runs and objective.get(shown_runs[0]) == max(objective.values()), (shown_runs, objective)
        _assert_png(artifacts / "mlflow-ui-experiment.png")

        # 5. the parent run's page: its "Child runs" field links every trial's run
        expected_children = {(run_link + run_id, name) for run_id, name in child_names.items()}
        page = _show(
            chromium,
            f"{base}/#/experiments/{exp_id}/runs/{parent['run_id']}",
            tmp_path,
            artifacts,
            "mlflow-ui-parent-run",
            lambda p: _child_run_links(p) >= expected_children,
        )
        assert parent["run_id"] in page.text and parent["run_name"] in page.text, page.text[:2000]
        shown = _child_run_links(page)
        assert shown == expected_children, (
            f"the parent run's page shows child runs {sorted(shown)}, "
            f"expected {sorted(expected_children)}; page text: {page.text[:2000]}"
        )
        _assert_png(artifacts / "mlflow-ui-parent-run.png")

        # 6. the report, as MLflow serves the artifact: every image in it loads on its own (embedded), checked by
        #    the browser itself (natural width > 0), and the artifact viewer's page is kept for a look
        query = urllib.parse.urlencode({"path": "summary/report.html", "run_uuid": parent["run_id"]})
        with urllib.request.urlopen(f"{base}/get-artifact?{query}", timeout=10) as response:
            report = response.read().decode()
        images = report.count("<img ")
        assert images >= 3, report[:2000]
        probe = (
            "<script>window.addEventListener('load', () => { document.body.setAttribute('data-widths', "
            "[...document.images].map(i => i.naturalWidth).join(',')); });</script>"
        )
        (tmp_path / "report.html").write_text(report.replace("</title>", "</title>" + probe, 1))
        page = _show(
            chromium,
            (tmp_path / "report.html").as_uri(),
            tmp_path,
            artifacts,
            "report",
            lambda p: "data-widths=" in p.dom,
        )
        widths = re.search(r'data-widths="([0-9,]*)"', page.dom)
        assert widths, page.dom[:2000]
        loaded = [int(w) for w in widths.group(1).split(",") if w]
        assert len(loaded) == images and all(w > 0 for w in loaded), f"natural widths of the report's images: {loaded}"
        _show(
            chromium,
            f"{base}/#/experiments/{exp_id}/runs/{parent['run_id']}/artifacts/summary/report.html"
            "?workflowType=machine_learning",
            tmp_path,
            artifacts,
            "mlflow-ui-report",
            lambda p: "report.html" in p.text,
        )
        _assert_png(artifacts / "mlflow-ui-report.png")
    finally:
        stop_group(ui, grace=5)
        log.close()
