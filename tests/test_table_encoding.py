"""How the `csv` data set encodes real tables: a table with every kind of column (numbers, dates, date-times,
constant and empty columns, free text, identifiers, categories with few and many levels), what `automl validate`
says of each, and `encode`/`max_categories` changing the guess."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
import pytest

from automl_plugins.table_encoding import OTHER, TableEncoder, column_kinds, date_format

ROWS = 200
WORDS = (
    "the",
    "delivery",
    "was",
    "late",
    "again",
    "and",
    "support",
    "never",
    "answered",
    "great",
    "service",
    "friendly",
    "staff",
    "would",
    "buy",
    "again",
    "box",
    "damaged",
)
STUDY = """
name: table
dataset: {{name: csv, path: table.csv, target: y{extra}}}
budget: {{trials: 1, max_epochs: 1}}
search:
  architecture: {{mlp: {{depth: 1, width: 16}}}}
  activation: relu
  loss: cross_entropy
  optimizer: {{adam: {{lr: 0.01}}}}
  batch_size: 32
"""


def messy_table(rows: int = ROWS) -> pd.DataFrame:
    """One column of each kind, and a class target."""
    rng = np.random.default_rng(0)
    days = pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 900, rows), unit="D")
    stamps = days + pd.to_timedelta(rng.integers(0, 24 * 60, rows), unit="min")
    return pd.DataFrame(
        {
            "amount": rng.normal(50, 10, rows).round(2),
            "signup": days.strftime("%Y-%m-%d"),
            "last_seen": stamps.strftime("%d/%m/%Y %H:%M"),
            "version": [3] * rows,
            "country": ["NL"] * rows,
            "notes": [None] * rows,
            "comment": [" ".join(rng.choice(WORDS, size=int(rng.integers(4, 12)))) for _ in range(rows)],
            "ticket": [f"T-{i:05d}" for i in rng.permutation(rows)],
            "city": [f"city{int(v)}" for v in rng.zipf(1.6, rows) % 60],
            "plan": rng.choice(["free", "pro", "team"], rows),
            "y": rng.choice(["stay", "churn"], rows),
        }
    )


def fitted(frame: pd.DataFrame, **options) -> TableEncoder:
    return TableEncoder.fit(frame.drop(columns=["y"]), np.arange(len(frame) * 3 // 5), **options)


def by_name(encoder: TableEncoder) -> dict:
    return {c.name: c for c in encoder.columns}


def test_every_kind_of_column_is_encoded_or_left_out_with_its_reason():
    frame = messy_table()
    encoder = fitted(frame)
    columns = by_name(encoder)
    assert columns["amount"].kind == "number"
    assert (columns["signup"].kind, columns["signup"].date_format) == ("date", "%Y-%m-%d")
    assert columns["signup"].parts == ("days since 1970", "year", "month", "day of week")
    assert (columns["last_seen"].kind, columns["last_seen"].date_format) == ("date", "%d/%m/%Y %H:%M")
    assert columns["last_seen"].parts[-1] == "hour"
    assert columns["version"].kind == "left out" and columns["version"].why.startswith("constant")
    assert columns["country"].kind == "left out" and "'NL'" in columns["country"].why
    assert columns["notes"].kind == "left out" and columns["notes"].why.startswith("empty")
    assert columns["comment"].kind == "left out" and "`text` data set (text: comment)" in columns["comment"].why
    assert columns["ticket"].kind == "left out" and "identifier" in columns["ticket"].why
    assert columns["plan"].kind == "category" and columns["plan"].categories == ("free", "pro", "team")
    city = columns["city"]
    assert city.kind == "category" and city.other and len(city.categories) == 19 and city.other_levels > 0
    assert encoder.width() == 1 + 4 + 5 + 20 + 3
    shown = encoder.describe()
    assert shown[1] == "'signup': date (%Y-%m-%d) as 4 numbers: days since 1970, year, month, day of week"
    assert f"share one {OTHER!r} column" in shown[8]
    assert shown[-1] == (
        "inputs: 33 (1 number column(s), 23 one-hot column(s) from 2 text column(s), 9 from 2 date "
        "column(s); 5 column(s) left out)"
    )


def test_dates_become_their_parts_standardised_on_the_training_rows_and_raw_rows_encode_alike():
    frame = messy_table()
    encoder = fitted(frame)
    x = encoder.transform(frame)
    signup = pd.to_datetime(frame["signup"])
    block = x[:, 1:5].astype(np.float64)  # amount, then signup's parts
    train = np.arange(ROWS * 3 // 5)
    for j, raw in enumerate([(signup - pd.Timestamp(0)).dt.days, signup.dt.year, signup.dt.month, signup.dt.dayofweek]):
        raw = raw.to_numpy(dtype=np.float64)
        expected = (raw - raw[train].mean()) / (raw[train].std() if raw[train].std() > 1e-12 else 1.0)
        assert np.allclose(block[:, j], expected, atol=1e-4), j
    one_row = frame.drop(columns=["y"]).iloc[[7]].reset_index(drop=True)
    assert np.allclose(encoder.transform(one_row), x[[7]])  # a served row: the format is the training one
    odd = one_row.assign(signup=["not a date"], last_seen=[None])
    assert np.allclose(encoder.transform(odd)[0, 1:10], 0.0)  # unreadable or missing: the training mean


def test_a_capped_category_sends_rare_and_unseen_levels_to_other():
    frame = messy_table()
    encoder = fitted(frame, max_categories=5)
    city = by_name(encoder)["city"]
    assert len(city.categories) == 4 and city.other
    counts = frame["city"].iloc[: ROWS * 3 // 5].value_counts()
    assert set(city.categories) == set(counts.sort_index().sort_values(ascending=False, kind="stable").index[:4])
    block = city.encode(pd.Series([city.categories[0], "never-seen", None]))
    assert block.tolist() == [[1, 0, 0, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]]


def test_encode_overrides_the_guess_and_refuses_what_it_cannot_do():
    frame = messy_table()
    names = [c for c in frame.columns if c != "y"]
    kinds = column_kinds("version=category, signup=category, amount=number", names)
    columns = by_name(fitted(frame, kinds=kinds))
    assert columns["version"].kind == "category" and columns["version"].chosen  # constant, but asked for
    assert columns["signup"].kind == "category" and columns["signup"].other  # its days as levels, capped
    assert "(set by `encode`)" in columns["amount"].describe()
    with pytest.raises(ValueError, match="`encode` takes column=kind pairs.*not 'amount=text'"):
        column_kinds("amount=text", names)
    with pytest.raises(ValueError, match="`encode` names no feature column 'amout'"):
        column_kinds("amout=number", names)
    with pytest.raises(ValueError, match="`encode` sets column 'ticket', which `ignore` leaves out"):
        column_kinds("ticket=category", names, ("ticket",))
    with pytest.raises(ValueError, match="column 'plan' has no number in its training rows"):
        fitted(frame, kinds={"plan": "number"})
    with pytest.raises(ValueError, match="column 'city' does not read as dates"):
        fitted(frame, kinds={"city": "date"})


@pytest.mark.parametrize(
    "value, fmt",
    [
        ("2024-01-15", "%Y-%m-%d"),
        ("15.01.2024 13:45", "%d.%m.%Y %H:%M"),
        ("March", ""),
        ("2024", ""),
        ("pro", ""),
        ("12/2024", ""),
    ],
)
def test_only_values_with_year_month_and_day_read_as_dates(value, fmt):
    assert date_format(value) == fmt


def test_validate_prints_every_decision_and_encode_changes_them(workdir, cli):
    messy_table().to_csv(workdir / "table.csv", index=False)
    (workdir / "study.yaml").write_text(textwrap.dedent(STUDY.format(extra="")))
    result = cli("validate", "study.yaml")
    assert result.code == 0, result.out + result.err
    for line in (
        "'signup': date (%Y-%m-%d) as 4 numbers",
        "'last_seen': date (%d/%m/%Y %H:%M) as 5 numbers",
        "'version': left out: constant",
        "'notes': left out: empty",
        "'comment': left out: looks like free text",
        "'ticket': left out: looks like an identifier",
        "'city': one-hot, 19 categories",
    ):
        assert line in result.out, (line, result.out)
    (workdir / "study.yaml").write_text(
        textwrap.dedent(STUDY.format(extra=", encode: 'version=category', max_categories: 100, ignore: ticket"))
    )
    result = cli("validate", "study.yaml")
    assert result.code == 0, result.out + result.err
    assert "'version': one-hot (set by `encode`), 1 categories" in result.out
    assert "'ticket': left out: named in `ignore`" in result.out and "share one" not in result.out
    (workdir / "study.yaml").write_text(textwrap.dedent(STUDY.format(extra=", encode: 'plan=colour'")))
    result = cli("validate", "study.yaml")
    assert result.code == 2 and "`encode` takes column=kind pairs" in result.out + result.err
