"""`dataset: text`, as a user meets it: a labelled CSV corpus (scripts/make_corpus.py), a study searching a GRU and a
Transformer on it, `automl run`, Optuna and MLflow read back, and the logged best model scoring raw strings with the
CSV's labels; the tokenizer (vocabulary from the training split only, unknown and padding ids, left padding, cutting,
words and characters); broken files refused by `automl validate` (exit 2, nothing created); the conformance kit."""

from __future__ import annotations

import csv
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import AUTOML, load_optuna, mlflow_runs

from automl_plugins.text_data import PADDING_TOKEN, UNKNOWN_TOKEN, TextTokenizer, build_text, text_splits, tokenize
from orchestrator.testing import DatasetConformance
from scripts.make_corpus import LABELS, write_corpus

STUDY = """
name: tiny
dataset: {name: text, path: corpus.csv, length: 24}
objective: {metric: val_accuracy, direction: maximize}
budget: {trials: 2, max_epochs: 8}
pruner: none
seed: 0
enqueue:
  - {architecture: gru, embedding_dim: 16}
  - {architecture: transformer, embedding_dim: 8}
search:
  architecture:
    gru: {hidden_size: 32, layers: 1, bidirectional: false, readout: last}
    transformer: {heads: 2, head_dim: 8, patch: 1, layers: 1, ff_width: 32, positional: sinusoidal}
  activation: relu
  loss: cross_entropy
  optimizer:
    adam: {lr: 0.01, beta1: 0.9, beta2: 0.999}
  embedding_dim: [8, 16]
  batch_size: 32
"""


def params(path: Path, **overrides) -> dict:
    """The data set's parameters at their defaults, for `path`."""
    return {
        "path": str(path),
        "text": "text",
        "label": "label",
        "delimiter": ",",
        "tokenizer": "words",
        "length": 24,
        "max_vocab": 20_000,
        "min_count": 1,
        "lowercase": True,
        "empty": "refuse",
        "test_fraction": 0.2,
        "val_fraction": 0.2,
        **overrides,
    }


def write_rows(path: Path, rows: list[tuple], header: tuple = ("text", "label")) -> Path:
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)
    return path


# ---------------------------------------------------------------------------------------------------------
# As a user: run a study, read it back, score raw text with the best model
# ---------------------------------------------------------------------------------------------------------


def test_a_text_study_runs_and_its_best_model_scores_raw_text_with_the_csv_labels(workdir, write_study):
    write_corpus(workdir / "corpus.csv", rows=800, seed=1)
    write_study(STUDY)
    run = subprocess.run(
        [AUTOML, "run", "study.yaml", "--threads", "1"], cwd=workdir, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "best model (trial" in run.stdout

    study = load_optuna(workdir)
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    assert [t.params["architecture"] for t in trials] == ["gru", "transformer"]
    assert [t.params["embedding_dim"] for t in trials] == [16, 8]
    assert study.best_value >= 0.75, [t.value for t in trials]  # chance is 0.5: word order is being learnt

    client, parents, children = mlflow_runs(workdir)
    assert len(children) == 2 and {r.data.params["embedding_dim"] for r in children} == {"8", "16"}
    uri = parents[0].data.tags["best_model.uri"]

    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model(uri)
    raw = pd.DataFrame({"text": ["The plot was not good, but the acting was superb.", "", "Zyxx qwerty!"]})
    assert set(model.predict(raw)) <= set(LABELS)  # labels as the CSV wrote them; empty and unknown text pass
    # the test split, raw, as the data set cut it: the served model's accuracy is the logged one
    data = text_splits(params(workdir / "corpus.csv"), seed=0)
    test = data.splits[2]
    predictions = model.predict(pd.DataFrame({"text": data.texts(2)}))
    accuracy = float(np.mean(np.array(predictions) == np.array(data.table.labels[test])))
    assert accuracy == pytest.approx(study.best_trial.user_attrs["test_metrics"]["test_accuracy"], abs=1e-6)


# ---------------------------------------------------------------------------------------------------------
# The tokenizer
# ---------------------------------------------------------------------------------------------------------


def test_words_and_characters():
    assert tokenize("The plot  wasn't GOOD!", "words", True) == ["the", "plot", "wasn't", "good", "!"]
    assert tokenize("The plot  wasn't GOOD!", "words", False) == ["The", "plot", "wasn't", "GOOD", "!"]
    assert tokenize(" Not  bad. ", "characters", True) == list("not bad.")  # runs of white space: one space


def test_ids_pad_on_the_left_cut_keeping_the_start_and_mark_unknown_tokens():
    tokenizer = TextTokenizer("text", "words", True, 5, ("a", "b", "c"))
    assert tokenizer.vocab_size == 5
    encoded = tokenizer.encode(["a b", "a b c a b c", "A zzz", "", None])
    assert encoded.dtype == np.int64 and encoded.shape == (5, 5)
    assert encoded.tolist() == [
        [0, 0, 0, 2, 3],  # padded on the left: the last step is the last word
        [2, 3, 4, 2, 3],  # cut: the start is kept
        [0, 0, 0, 2, UNKNOWN_TOKEN],
        [PADDING_TOKEN] * 5,
        [PADDING_TOKEN] * 5,
    ]  # empty or missing: all padding
    frame = pd.DataFrame({"text": ["c"], "other": [1]})
    assert tokenizer.transform(frame).tolist() == [[0, 0, 0, 0, 4]]  # other columns are ignored
    with pytest.raises(ValueError, match="the rows lack the text column 'text'; their columns: 'review'"):
        tokenizer.transform(pd.DataFrame({"review": ["a"]}))
    assert pickle.loads(pickle.dumps(tokenizer)).encode(["b a"]).tolist() == [[0, 0, 0, 3, 2]]


def test_the_vocabulary_is_ordered_by_frequency_and_capped():
    texts = ["b b b a a c", "c d"]
    assert TextTokenizer.fit(texts, "text", "words", True, 4, 100, 1).vocabulary == ("b", "a", "c", "d")  # ties: a-z
    assert TextTokenizer.fit(texts, "text", "words", True, 4, 100, 2).vocabulary == ("b", "a", "c")  # min_count
    assert TextTokenizer.fit(texts, "text", "words", True, 4, 4, 1).vocabulary == ("b", "a")  # 4 ids in all
    characters = TextTokenizer.fit(["abba"], "text", "characters", True, 4, 100, 1)
    assert characters.vocabulary == ("a", "b") and characters.encode(["bad"]).tolist() == [[0, 3, 2, 1]]


def test_the_vocabulary_comes_from_the_training_split_only(tmp_path):
    # every row holds a word of its own: those of validation and test rows must be unknown
    rows = [(f"common words own{i}", LABELS[i % 2]) for i in range(60)]
    path = write_rows(tmp_path / "own.csv", rows)
    data = text_splits(params(path, length=4), seed=0)
    train, val, test = data.splits
    assert set(data.tokenizer.vocabulary) == {"common", "words"} | {f"own{i}" for i in train}
    bundle = build_text(params(path, length=4), seed=0)
    assert bundle.input_kind == "tokens" and bundle.vocab_size == 2 + 2 + len(train)
    assert bundle.x_test.dtype.is_floating_point is False and bundle.x_test.shape == (len(test), 4)
    # "common words ownN": padded on the left; the own word unknown outside the training split
    assert (bundle.x_test[:, 0] == PADDING_TOKEN).all() and (bundle.x_test[:, 3] == UNKNOWN_TOKEN).all()
    assert (bundle.x_val[:, 3] == UNKNOWN_TOKEN).all() and (bundle.x_train[:, 3] > UNKNOWN_TOKEN).all()
    # stratified splits, and the labels as the CSV wrote them
    assert bundle.classes == LABELS and {int(bundle.y_test.sum())} <= {len(test) // 2, (len(test) + 1) // 2}
    example = bundle.encoder.example
    assert list(example.columns) == ["text"] and list(example["text"]) == [rows[i][0] for i in train[:5]]


def test_numeric_labels_stay_numbers_and_rows_without_a_label_are_dropped(tmp_path):
    rows = [(f"text {i}", i % 2) for i in range(40)] + [("no label", "")]
    data = build_text(params(write_rows(tmp_path / "numbers.csv", rows)), seed=0)
    assert data.classes == (0, 1) and all(type(c) is int for c in data.classes)
    assert len(data.x_train) + len(data.x_val) + len(data.x_test) == 40


# ---------------------------------------------------------------------------------------------------------
# Broken files: refused before anything is created
# ---------------------------------------------------------------------------------------------------------

ERROR_STUDY = """
name: tiny
dataset: {{name: text, path: {path}{extra}}}
budget: {{trials: 1, max_epochs: 1}}
search: {{architecture: gru, activation: relu, loss: cross_entropy, optimizer: adam}}
"""


@pytest.mark.parametrize(
    "case, extra, message",
    [
        (
            "column",
            ", text: review",
            "text column 'review' is not in {path} (did you mean 'review_text'?); its columns "
            "are: 'review_text', 'label'; set `text:` to one of them",
        ),
        (
            "column",
            ", text: review_text, label: labels",
            "label column 'labels' is not in {path} (did you mean 'label'?)",
        ),
        ("path", "", "no such file: {path}"),
        ("one class", "", "label column 'label' has a single value ('positive'): classification needs two classes"),
        (
            "empty",
            "",
            "1 row(s) of {path} have an empty text in column 'text': data row(s) 2 (counted from 1 after the "
            "header); fill them in, or leave them out with `empty: skip`",
        ),
        ("same", ", label: text", "`text` and `label` both name the column 'text'"),
    ],
)
def test_a_broken_file_is_refused_with_exit_2_and_nothing_created(case, extra, message, workdir, write_study, cli):
    path = workdir / "corpus.csv"
    if case == "column":
        write_rows(path, [("fine", "positive"), ("bad", "negative")], header=("review_text", "label"))
    elif case == "one class":
        write_rows(path, [("fine", "positive"), ("good", "positive")])
    elif case in ("empty", "same"):
        write_rows(path, [("fine", "positive"), ("  ", "negative"), ("bad", "negative")])
    study = write_study(ERROR_STUDY.format(path=path.name, extra=extra))
    result = cli("validate", str(study))
    assert result.code == 2, result.out
    assert message.format(path=path) in result.err
    assert not (workdir / "optuna.journal").exists() and not (workdir / "mlflow.db").exists()


def test_empty_texts_can_be_left_out_and_validate_shows_the_encoding(workdir, write_study, cli):
    rows = [(f"The plot was {'good' if i % 2 else 'bad'} {i}", LABELS[i % 2]) for i in range(30)] + [("", "positive")]
    write_rows(workdir / "corpus.csv", rows)
    result = cli("validate", str(write_study(ERROR_STUDY.format(path="corpus.csv", extra=", empty: skip"))))
    assert result.code == 0, result.err
    assert "(tokens inputs)" in result.out and "1 row(s) with an empty text left out (empty: skip)" in result.out
    assert "31 rows; label 'label' (2 classes: 'negative' 15, 'positive' 15)" in result.out
    assert "vocabulary from the training split:" in result.out and "padded on the left" in result.out
    assert "embedding_dim: one of [16, 32, 64, 128]" in result.out


def test_the_example_study_validates_on_the_corpus_the_script_writes(workdir, cli):
    repo = Path(__file__).resolve().parents[1]
    shutil.copy(repo / "studies" / "text.yaml", workdir / "text.yaml")
    done = subprocess.run(
        [
            sys.executable,
            str(repo / "scripts" / "make_corpus.py"),
            str(workdir / "text" / "corpus.csv"),
            "--rows",
            "200",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "wrote 200 reviews to" in done.stdout, done.stderr
    result = cli("validate", str(workdir / "text.yaml"))
    assert result.code == 0, result.err
    assert "architecture: gru | transformer | cnn" in result.out and "embedding_dim: one of [16, 32]" in result.out


def test_a_majority_corpus_labels_each_review_by_what_most_of_its_clauses_leave(tmp_path):
    from scripts.make_corpus import NEGATIVE, POSITIVE

    counts = write_corpus(tmp_path / "corpus.csv", rows=300, seed=3, clauses=3)
    assert min(counts.values()) > 100  # both labels, roughly balanced
    negations = ("not", "never", "hardly", "far from", "in no way")
    for row in csv.DictReader((tmp_path / "corpus.csv").open()):
        assert row["kind"] == "majority"
        words = row["text"].lower().replace(",", " ").replace(".", " ").replace(";", " ").replace("!", " ").split()
        votes, clause = [], []
        for word in words:  # a clause ends at its adjective; a negation before it in the clause turns it round
            clause.append(word)
            if word in POSITIVE or word in NEGATIVE:
                text = " " + " ".join(clause) + " "
                negated = any(f" {negation} " in text for negation in negations)
                votes.append((word in POSITIVE) != negated)
                clause = []
        assert len(votes) == 3, row["text"]
        assert row["label"] == LABELS[int(sum(votes) >= 2)], row["text"]
    with pytest.raises(ValueError, match="clauses must be 2 .* or an odd number from 3 to 20, not 4"):
        write_corpus(tmp_path / "other.csv", rows=10, clauses=4)


# ---------------------------------------------------------------------------------------------------------
# The conformance kit
# ---------------------------------------------------------------------------------------------------------


class TestTextConformance(DatasetConformance):
    @pytest.fixture
    def component(self):
        return "text"

    @pytest.fixture
    def dataset_params(self, tmp_path):
        write_corpus(tmp_path / "corpus.csv", rows=120, seed=0)
        return {"path": str(tmp_path / "corpus.csv"), "length": 16}
