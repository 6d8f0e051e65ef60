"""The study summary on the MLflow parent run: plots (PNG), a component-versus-component table and a report
(Markdown, and HTML with the plots embedded so that it renders inside MLflow's artifact viewer), all under the
run's `summary/` artifacts. Besides Optuna's plots it draws what MLflow cannot draw from child runs: the learning
curves of the top trials in one plot, and the objective by component choice."""

from __future__ import annotations

import base64
import html
import statistics
import tempfile
import warnings
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from orchestrator.records import (
    CONFIG_ATTR,
    FINGERPRINT_ATTR,
    FINISHED_STATES,
    TEST_METRICS_ATTR,
    leading_trial,
    pareto_front,
    trial_counts,
)
from orchestrator.search.space import CHOSEN_KINDS

SUMMARY_DIR = "summary"
TOP_CURVES = 5  # trials in the learning-curves plot


def objective_names(study: optuna.Study) -> list[str]:
    """The metric of each objective, as the study file named them (kept in the study's fingerprint)."""
    objective = study.user_attrs.get(FINGERPRINT_ATTR, {}).get("objective", {})
    entries = objective if isinstance(objective, list) else [objective]
    names = [str(e["metric"]) for e in entries if isinstance(e, dict) and e.get("metric")]
    return names if len(names) == len(study.directions) else [f"objective {i}" for i in range(len(study.directions))]


def component_table(study: optuna.Study, rows: str = "architecture", columns: str = "optimizer") -> list[dict]:
    """One row per (rows x columns) pair of components: trials, complete, mean and best first objective."""
    maximize = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    groups: dict[tuple[str, str], list[FrozenTrial]] = defaultdict(list)
    for trial in study.get_trials(deepcopy=False):
        config = trial.user_attrs.get(CONFIG_ATTR)
        if config and trial.state in FINISHED_STATES:
            groups[(str(config.get(rows)), str(config.get(columns)))].append(trial)
    table = []
    for (row, column), trials in sorted(groups.items()):
        values = [t.values[0] for t in trials if t.state == TrialState.COMPLETE]
        table.append(
            {
                rows: row,
                columns: column,
                "trials": len(trials),
                "complete": len(values),
                "mean": statistics.fmean(values) if values else None,
                "best": (max(values) if maximize else min(values)) if values else None,
            }
        )
    return table


def _plots(study: optuna.Study, names: list[str]) -> dict[str, Callable[[], Any]]:
    from optuna.visualization import matplotlib as plots

    first: dict[str, Any] = {"target": (lambda t: t.values[0]), "target_name": names[0]} if len(names) > 1 else {}
    chosen = {
        "optimization_history.png": lambda: plots.plot_optimization_history(study, **first),
        "param_importances.png": lambda: plots.plot_param_importances(study, **first),
        "parallel_coordinates.png": lambda: plots.plot_parallel_coordinate(study, params=_top_params(study), **first),
    }
    if len(names) in (2, 3):
        chosen["pareto_front.png"] = lambda: plots.plot_pareto_front(study, target_names=names)
    if len(names) == 1:  # Optuna keeps per-epoch values for one objective only
        chosen["learning_curves.png"] = lambda: plot_learning_curves(study, names[0])
    chosen["objective_by_component.png"] = lambda: plot_objective_by_component(study, names[0])
    return chosen


def _ranked_complete(study: optuna.Study) -> list[FrozenTrial]:
    """Complete trials, best first by the first objective."""
    maximize = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return sorted(complete, key=lambda t: -t.values[0] if maximize else t.values[0])


def plot_learning_curves(study: optuna.Study, name: str, top: int = TOP_CURVES) -> Any:
    """The objective per epoch of the `top` best complete trials, in one plot (a promoted trial's curve includes
    the epochs its lineage trained before it was paused: they are replayed into its intermediate values)."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots()
    for trial in _ranked_complete(study)[:top]:
        steps = sorted(trial.intermediate_values)
        config = trial.user_attrs.get(CONFIG_ATTR, {})
        label = f"trial {trial.number}: " + " ".join(str(config.get(k, "")) for k in ("architecture", "optimizer"))
        axes.plot([s + 1 for s in steps], [trial.intermediate_values[s] for s in steps], marker=".", label=label)
    axes.set_xlabel("epoch")
    axes.set_ylabel(name)
    axes.set_title(f"Learning curves of the {top} best trials")
    axes.legend(loc="best", fontsize="small")
    return axes


def plot_objective_by_component(study: optuna.Study, name: str) -> Any:
    """One panel per component kind: the first objective of every complete trial, by the component it chose."""
    import matplotlib.pyplot as plt

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    kinds = [k for k in CHOSEN_KINDS if any(k in t.user_attrs.get(CONFIG_ATTR, {}) for t in complete)]
    figure, panels = plt.subplots(1, max(1, len(kinds)), squeeze=False, sharey=True)
    for panel, kind in zip(panels[0], kinds):
        groups: dict[str, list[float]] = defaultdict(list)
        for trial in complete:
            groups[str(trial.user_attrs.get(CONFIG_ATTR, {}).get(kind, "-"))].append(trial.values[0])
        labels = sorted(groups)
        for position, label in enumerate(labels):
            values = groups[label]
            panel.scatter([position] * len(values), values, alpha=0.6, s=14)
            panel.hlines(statistics.median(values), position - 0.3, position + 0.3, color="black")
        panel.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize="small")
        panel.set_title(kind)
    panels[0][0].set_ylabel(name)
    figure.suptitle(f"{name} by component (each dot a complete trial, the bar its median)")
    return panels


def _top_params(study: optuna.Study, count: int = 8) -> list[str]:
    """The parameters most trials set (a conditional space has many that few trials use)."""
    seen: dict[str, int] = defaultdict(int)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        for name in trial.params:
            seen[name] += 1
    return sorted(seen, key=lambda n: -seen[n])[:count]


def prepare_imports() -> None:
    """Import what drawing the summary needs (Matplotlib, Optuna's plots, MLflow's client), ahead of time."""
    import importlib

    import matplotlib

    matplotlib.use("Agg")
    # optuna.importance imports scikit-learn (about 0.4 s), for the importances plot
    for module in ("matplotlib.pyplot", "mlflow.tracking", "optuna.visualization.matplotlib", "optuna.importance"):
        importlib.import_module(module)


def write_summary(study: optuna.Study, folder: Path) -> list[str]:
    """Render the plots and the report into `folder`; returns the file names written (a plot Optuna cannot
    draw yet, e.g. importances before two complete trials, is left out and named in the report)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = objective_names(study)
    written, skipped = [], []
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    for file_name, draw in _plots(study, names).items():
        if len(complete) < 2:
            skipped.append(f"{file_name}: needs two complete trials")
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                axes = draw()
            figure = (axes.flat[0] if hasattr(axes, "flat") else axes).get_figure()
            figure.set_size_inches(10, 6)
            figure.tight_layout()
            figure.savefig(folder / file_name, dpi=100)
            written.append(file_name)
        except Exception as exc:  # a plot that cannot be drawn must not cost the others
            skipped.append(f"{file_name}: {type(exc).__name__}: {exc}")
        finally:
            plt.close("all")
    markdown, page = _report(study, names, component_table(study), written, skipped, folder)
    (folder / "report.md").write_text(markdown)
    (folder / "report.html").write_text(page)
    return written + ["report.md", "report.html"]


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _report(
    study: optuna.Study, names: list[str], table: list[dict], plots: list[str], skipped: list[str], folder: Path
) -> tuple[str, str]:
    """The report as Markdown and as a self-contained HTML page: the trial counts and objectives, the best trial,
    the Pareto front (several objectives), the architecture x optimizer table and the plots."""
    counts = trial_counts(study)
    best = leading_trial(study)
    lines = [
        f"# Study {study.study_name}",
        "",
        "Trials: " + ", ".join(f"{k.lower()} {v}" for k, v in counts.items() if v),
        "",
        "Objectives: " + ", ".join(f"{n} ({d.name.lower()})" for n, d in zip(names, study.directions)),
        "",
    ]
    if best is not None:
        lines += _best_trial_lines(best, names)
    if len(study.directions) > 1:
        lines += _pareto_lines(study, names)
    lines += _component_lines(table, names)
    lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    if skipped:
        lines += ["", "Not drawn: " + "; ".join(skipped)]
    markdown = "\n".join(lines) + "\n"
    page = (
        "<!doctype html><meta charset='utf-8'><title>" + html.escape(study.study_name) + "</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px}img{max-width:100%}</style>" + _html(markdown, folder)
    )
    return markdown, page


def _best_trial_lines(best: FrozenTrial, names: list[str]) -> list[str]:
    """The report's section on the best trial: its objective values, its test metrics, its configuration."""
    lines = [
        f"## Best trial: {best.number}",
        "",
        ", ".join(f"{n} = {v:.6g}" for n, v in zip(names, best.values)),
        "",
    ]
    tested = best.user_attrs.get(TEST_METRICS_ATTR) or {}
    if tested:
        lines += [
            "On the held-out test split (never used to choose): "
            + ", ".join(f"{k} = {v:.6g}" for k, v in sorted(tested.items())),
            "",
        ]
    lines += ["| parameter | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in best.user_attrs.get(CONFIG_ATTR, best.params).items()]
    lines.append("")
    return lines


def _pareto_lines(study: optuna.Study, names: list[str]) -> list[str]:
    """The report's table of the Pareto front's feasible trials (a study with several objectives)."""
    lines = [
        "## Pareto front (feasible trials)",
        "",
        "| trial | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    lines += [f"| {t.number} | " + " | ".join(f"{v:.6g}" for v in t.values) + " |" for t in pareto_front(study)]
    lines.append("")
    return lines


def _component_lines(table: list[dict], names: list[str]) -> list[str]:
    """The report's architecture x optimizer table (`component_table`'s rows), on the first objective."""
    lines = [
        f"## Architecture x optimizer ({names[0]})",
        "",
        "| architecture | optimizer | trials | complete | mean | best |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['architecture']} | {r['optimizer']} | {r['trials']} | {r['complete']} | {_fmt(r['mean'])} | "
        f"{_fmt(r['best'])} |"
        for r in table
    ]
    return lines


def _html(markdown: str, folder: Path) -> str:
    """The report's small Markdown subset (headings, tables, images, paragraphs) as HTML; the images (files in
    `folder`) are embedded as data URIs: MLflow's artifact viewer shows the page without its neighbours."""
    out: list[str] = []
    rows: list[list[str]] = []

    def flush_table() -> None:
        if rows:
            head, *body = rows
            out.append(
                "<table><tr>"
                + "".join(f"<th>{html.escape(c)}</th>" for c in head)
                + "</tr>"
                + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in body)
                + "</table>"
            )
            rows.clear()

    for line in markdown.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not all(set(c) <= {"-"} for c in cells):
                rows.append(cells)
            continue
        flush_table()
        if line.startswith("## "):
            out.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("# "):
            out.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.startswith("!["):
            source = line[line.index("(") + 1 : -1]
            data = base64.b64encode((folder / source).read_bytes()).decode("ascii")
            out.append(f"<p><img src='data:image/png;base64,{data}' alt='{html.escape(source)}'></p>")
        elif line:
            out.append(f"<p>{html.escape(line)}</p>")
    flush_table()
    return "\n".join(out)


def log_summary(study: optuna.Study, tracking_uri: str, parent_run_id: str) -> list[str]:
    """Write the summary and upload it under the parent run's `summary/` artifacts (replacing the last)."""
    from mlflow.tracking import MlflowClient

    with tempfile.TemporaryDirectory(prefix="automl-summary-") as folder:
        written = write_summary(study, Path(folder))
        MlflowClient(tracking_uri).log_artifacts(parent_run_id, folder, SUMMARY_DIR)
    return written
