"""A Transformer and a GRU against a bag-of-words logistic regression, on the same split of the same text corpus.

    .venv/bin/python bench/text_vs_bow.py [--rows 4000] [--seed 0] [--epochs 30] [--corpus PATH] [--threads N]

The corpus is scripts/make_corpus.py's (written to a temporary folder unless `--corpus` names a CSV): film reviews
whose label depends on which adjective a negation belongs to, the known blind spot of bag-of-words models. Both sides
read the split of `dataset: text` (its own `text_splits`, same file, same seed):

- bag of words: scikit-learn's CountVectorizer over the data set's own word tokens (unigrams; also unigrams and
  bigrams, for reference) and LogisticRegression, C chosen on the validation split from a small grid;
- networks: a fixed GRU and a fixed Transformer, each trained by the project's own path
  (`orchestrator.training.fit.train`, the configuration resolved from a study file with every choice fixed), the epoch
  with the best validation accuracy restored (early stopping).

Test accuracy of each, also per kind of review (contrast: a good and a bad adjective, one negated; single; agreeing).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

COMPONENTS = {  # every choice fixed: the configuration the study resolves is the one trained
    "gru": {"gru": {"hidden_size": 64, "layers": 1, "bidirectional": False, "readout": "last"}},
    "transformer": {
        "transformer": {
            "heads": 4,
            "head_dim": 16,
            "patch": 1,
            "layers": 2,
            "ff_width": 128,
            "positional": "sinusoidal",
        }
    },
    "cnn": {"cnn": {"channels": 32, "growth": 1.0, "kernel_size": 5, "depth": 2, "pooling": "none"}},  # for reference
}
GRID_C = (0.01, 0.1, 1.0, 10.0, 100.0)


def study(corpus: Path, architecture: str, epochs: int, seed: int, length: int) -> dict[str, Any]:
    return {
        "name": f"bench-text-{architecture}",
        "dataset": {"name": "text", "path": str(corpus), "length": length},
        "objective": {"metric": "val_accuracy", "direction": "maximize"},
        "budget": {"trials": 1, "max_epochs": epochs},
        "seed": seed,
        "search": {
            "architecture": COMPONENTS[architecture],
            "activation": "relu",
            "loss": "cross_entropy",
            "schedule": "constant",
            "optimizer": {"adam": {"lr": 0.003, "beta1": 0.9, "beta2": 0.999}},
            "regularizers": {"early_stopping": {"optional": False, "patience": 8}},
            "batch_size": 64,
            "embedding_dim": 32,
        },
    }


def by_kind(correct: np.ndarray, kinds: np.ndarray) -> str:
    return ", ".join(
        f"{kind} {correct[kinds == kind].mean():.3f}"
        for kind in ("contrast", "single", "agreeing")
        if (kinds == kind).any()
    )


def bag_of_words(splits: Any, ngrams: tuple[int, int], kinds: np.ndarray) -> tuple[str, float]:
    """Logistic regression on token counts, C picked by validation accuracy: its line of the report, its test
    accuracy."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    from automl_plugins.text_data import tokenize

    vectorizer = CountVectorizer(
        tokenizer=lambda text: tokenize(text, "words", True), lowercase=False, token_pattern=None, ngram_range=ngrams
    )
    x = [vectorizer.fit_transform(splits.texts(0))] + [vectorizer.transform(splits.texts(i)) for i in (1, 2)]
    y = [splits.targets[idx] for idx in splits.splits]
    best = None
    for c in GRID_C:
        model = LogisticRegression(C=c, max_iter=5000).fit(x[0], y[0])
        val = model.score(x[1], y[1])
        if best is None or val > best[0]:
            best = (val, c, model)
    val, c, model = best
    correct = model.predict(x[2]) == y[2]
    name = "bow_logreg" + ("" if ngrams == (1, 1) else f"_{ngrams[0]}-{ngrams[1]}gram")
    return (
        f"{name:<22} C={c:<6g} features {x[0].shape[1]:>5}  val_accuracy {val:.4f}  test_accuracy "
        f"{correct.mean():.4f}  ({by_kind(correct, kinds)})"
    ), float(correct.mean())


def network(
    corpus: Path, architecture: str, epochs: int, seed: int, length: int, splits: Any, kinds: np.ndarray
) -> tuple[str, float]:
    """Train the fixed configuration through `orchestrator.training.fit.train`: its lines of the report, its test
    accuracy."""
    import optuna
    import torch

    from orchestrator.api.registry import load_registry
    from orchestrator.execution.study_session import load_data
    from orchestrator.study.studyfile import validate_study
    from orchestrator.training.batches import predict
    from orchestrator.training.fit import train

    registry = load_registry()
    spec = validate_study(corpus.parent / "bench.yaml", study(corpus, architecture, epochs, seed, length), registry)
    config = spec.space.sample(optuna.trial.FixedTrial({}))
    data = load_data(spec)
    assert torch.equal(data.y_test.cpu(), torch.as_tensor(splits.targets[splits.splits[2]])), "the splits differ"
    started = time.perf_counter()
    result = train(config, registry, data, max_epochs=epochs, seed=seed, monitor=spec.metric, direction=spec.direction)
    seconds = time.perf_counter() - started
    outputs = predict(result.model.network.eval(), data.x_test)
    correct = (outputs.argmax(1) == data.y_test).cpu().numpy()
    test = result.test_metrics["test_accuracy"]
    assert abs(correct.mean() - test) < 1e-6, (correct.mean(), test)
    best = result.best_epoch if result.best_epoch is not None else result.epochs - 1
    params = sum(p.numel() for p in result.model.network.parameters())
    curve = " ".join(f"{h['val_accuracy']:.2f}" for h in result.history)
    return (
        f"{architecture:<22} params {params:>6}  epochs {result.epochs:>2} (best {best + 1:>2})  val_accuracy "
        f"{result.final('val_accuracy'):.4f}  test_accuracy {test:.4f}  ({by_kind(correct, kinds)})  "
        f"{seconds:.1f} s\n{'':<22} val_accuracy by epoch: {curve}"
    ), test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--length", type=int, default=32)
    parser.add_argument("--corpus", type=Path, help="a CSV written by scripts/make_corpus.py (default: write one)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (small models: more only contend)")
    args = parser.parse_args()

    import pandas as pd
    import torch

    from automl_plugins.text_data import text_splits
    from orchestrator.quiet import quiet_libraries
    from scripts.make_corpus import write_corpus

    quiet_libraries()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="text-vs-bow-") as folder:
        corpus = args.corpus.resolve() if args.corpus else Path(folder) / "corpus.csv"
        if not args.corpus:
            write_corpus(corpus, args.rows, args.seed)
        params = {
            "path": str(corpus),
            "text": "text",
            "label": "label",
            "delimiter": ",",
            "tokenizer": "words",
            "length": args.length,
            "max_vocab": 20_000,
            "min_count": 1,
            "lowercase": True,
            "empty": "refuse",
            "test_fraction": 0.2,
            "val_fraction": 0.2,
        }
        splits = text_splits(params, args.seed)
        kinds = pd.read_csv(corpus)["kind"].to_numpy()[splits.splits[2]]
        counts = {k: int((kinds == k).sum()) for k in ("contrast", "single", "agreeing")}
        print(
            f"corpus: {len(splits.table.texts)} reviews (make_corpus seed {args.seed}); split seed {args.seed}: "
            f"train {len(splits.splits[0])}, val {len(splits.splits[1])}, test {len(splits.splits[2])} "
            f"({', '.join(f'{n} {k}' for k, n in counts.items())}); words, length {args.length}, vocabulary "
            f"{splits.tokenizer.vocab_size}; torch threads {args.threads}"
        )
        scores = {}
        for ngrams in ((1, 1), (1, 2)):
            line, scores[ngrams] = bag_of_words(splits, ngrams, kinds)
            print(line, flush=True)
        for architecture in COMPONENTS:
            line, scores[architecture] = network(
                corpus, architecture, args.epochs, args.seed, args.length, splits, kinds
            )
            print(line, flush=True)
        bow = scores[(1, 1)]
        for architecture in ("gru", "transformer"):
            verdict = "beats" if scores[architecture] > bow else "does NOT beat"
            print(
                f"text_vs_bow {architecture} {verdict} bow_logreg: test_accuracy {scores[architecture]:.4f} vs "
                f"{bow:.4f} ({scores[architecture] - bow:+.4f}; the 1-2-gram bag of words: {scores[(1, 2)]:.4f})"
            )


if __name__ == "__main__":
    main()
