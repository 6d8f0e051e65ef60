"""The progress table a user watches: rows that are never cut short, and a sign of life inside long trials."""

from __future__ import annotations

import io

from orchestrator.search.space import ComponentOptions, SearchSpace
from orchestrator.trial.progress import Progress, choices_width

NAMES = {
    "architecture": ["mlp", "transformer"],
    "activation": ["relu", "leaky_relu"],
    "loss": ["cross_entropy", "label_smoothing"],
    "optimizer": ["adamw", "rmsprop"],
    "schedule": ["constant", "one_cycle"],
}


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def space() -> SearchSpace:
    return SearchSpace({kind: ComponentOptions(kind, {name: {} for name in names}) for kind, names in NAMES.items()})


def test_the_choices_column_fits_the_longest_names_of_the_space():
    width = choices_width(space())
    assert width == len("transformer leaky_relu label_smoothing rmsprop one_cycle")
    out = io.StringIO()
    progress = Progress("val_accuracy", 10, out, width=width)
    progress.header("s", 2, "journal:x", None)
    config = {
        "architecture": "transformer",
        "activation": "leaky_relu",
        "loss": "label_smoothing",
        "optimizer": "rmsprop",
        "schedule": "one_cycle",
    }
    progress.trial_done(7, config, 10, 0.91, "COMPLETE", (7, 0.91))
    header, row = out.getvalue().splitlines()[-2:]
    assert "transformer leaky_relu label_smoothing rmsprop one_cycle " in row  # whole, not "rmsprop one_cyc"
    # the columns after it line up with the header's
    assert row.index("    10  ") == header.index("epochs")
    assert row.endswith("COMPLETE  0.9100 (#7)")


def test_a_long_trial_gives_a_plain_line_every_tick_when_the_output_is_not_a_terminal():
    out = io.StringIO()
    progress = Progress("val_accuracy", 40, out, tick_seconds=0.0)
    progress.trial_started(3)
    progress.epoch(0, {"val_accuracy": 0.5})
    progress.epoch(1, {"val_accuracy": 0.625})
    assert out.getvalue().splitlines() == [
        "    3  epoch 1/40  val_accuracy 0.5000  (running)",
        "    3  epoch 2/40  val_accuracy 0.6250  (running)",
    ]
    quiet = io.StringIO()
    progress = Progress("val_accuracy", 40, quiet, tag="cpu1")  # the default tick: 30 s of silence first
    progress.trial_started(4)
    progress.epoch(0, {"val_accuracy": 0.5})
    assert quiet.getvalue() == ""
    progress.last_line -= 31
    progress.epoch(1, {"val_accuracy": 0.5})
    assert quiet.getvalue() == "    4  epoch 2/40  val_accuracy 0.5000  (running)  [cpu1]\n"


def test_a_terminal_gets_one_live_line_that_the_row_replaces():
    out = Terminal()
    progress = Progress("val_accuracy", 5, out, width=20, tick_seconds=0.0)
    progress.trial_started(0)
    progress.epoch(0, {"val_accuracy": 0.25})
    assert out.getvalue() == "\r    0  epoch 1/5  val_accuracy 0.2500   "
    progress.trial_done(0, {"architecture": "mlp"}, 1, 0.25, "PRUNED", None)
    line, row = out.getvalue().split("\r\033[K")
    assert line == "\r    0  epoch 1/5  val_accuracy 0.2500   "  # the live line, cleared before the row
    assert row.startswith("    0  mlp ") and row.endswith("  0.2500  PRUNED    -\n") and "\r" not in row
