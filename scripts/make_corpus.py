"""Write a small labelled text corpus for `dataset: text`: short film reviews whose sentiment depends on WORD ORDER.

    .venv/bin/python scripts/make_corpus.py studies/text/corpus.csv [--rows 4000] [--seed 0] [--flip 0.0]
                                            [--clauses 2]

Most reviews name a good and a bad quality and negate one of them ("the plot was not clever, and the acting was
dull"); the label is the sentiment that remains (here `negative`). Which adjective a negation belongs to is a matter
of order, so a bag of words (which sees the same words either way) cannot tell: that is the known weakness of
bag-of-words models, and the reason this corpus exists. The mix (deterministic for a seed):

- 50% contrast: one positive and one negative adjective, one of them negated (bag of words: chance);
- 25% single: one adjective, negated or not (a linear bag of words: at best about 75%, an XOR of two words);
- 25% agreeing: two adjectives of the same polarity, none negated (bag of words: easy).

The words vary: openers, nouns, intensifiers ("very", "remotely"), several negations ("not", "never", "hardly",
"far from", "in no way"), connectors and endings. The labels are exact (no noise): a model that reads the order can
reach 100%. With `--flip P` each label is flipped with probability P (a separate seeded stream: the texts stay those
of the same seed without it), so that the best possible accuracy is about 1 - P.

With `--clauses N` (an odd N >= 3) every review is N clauses instead, each of a random polarity and negated or not
at random; the label is the sentiment most clauses leave ("the plot was not dull, the music was bland, and the
ending was never clever": negative, two to one). A model must read each clause's negation and count: a harder task
that needs more data and more epochs (kind `majority`).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

POSITIVE = (
    "good",
    "great",
    "brilliant",
    "clever",
    "moving",
    "charming",
    "gripping",
    "funny",
    "beautiful",
    "superb",
    "delightful",
    "tense",
    "original",
    "witty",
    "memorable",
    "elegant",
    "powerful",
    "fresh",
    "warm",
    "sharp",
)
NEGATIVE = (
    "bad",
    "dull",
    "boring",
    "awful",
    "clumsy",
    "silly",
    "flat",
    "tedious",
    "weak",
    "lazy",
    "messy",
    "bland",
    "predictable",
    "painful",
    "forgettable",
    "shallow",
    "slow",
    "cheap",
    "stiff",
    "confused",
)
NOUNS = (
    "plot",
    "acting",
    "script",
    "music",
    "soundtrack",
    "ending",
    "camera work",
    "dialogue",
    "cast",
    "story",
    "pacing",
    "editing",
    "direction",
    "lead",
    "humour",
    "score",
    "set design",
    "first half",
    "finale",
    "casting",
)
OPENERS = (
    "",
    "honestly,",
    "overall",
    "in short,",
    "to be fair",
    "I thought",
    "frankly,",
    "all in all",
    "for me",
    "as far as I am concerned,",
    "well,",
)
COPULAS = ("was", "is", "felt", "seemed", "looked", "came across as")
NEGATIONS = ("not", "never", "hardly", "far from", "not at all", "in no way")
INTENSIFIERS = ("", "", "", "very", "really", "truly", "quite", "particularly")
NEGATED_INTENSIFIERS = INTENSIFIERS + ("that", "remotely", "even")  # "not remotely funny", never "remotely funny"
CONNECTORS = (", but", ", and", "; however,", ", while", ", although", ". Yet", ", whereas", ". On the other hand,")
AGREEING = (", and", "; also,", ". Besides,", ", and what is more,", ", and")
ENDINGS = (".", "!", ".", ".", " overall.", " in my opinion.", ", to be honest.", "...")
LABELS = ("negative", "positive")


def _pick(rng: np.random.Generator, words: tuple[str, ...]) -> str:
    return words[int(rng.integers(len(words)))]


def _clause(rng: np.random.Generator, noun: str, adjective: str, negated: bool) -> str:
    """`the NOUN COPULA [NEGATION] [INTENSIFIER] ADJECTIVE`."""
    words = ["the", noun, _pick(rng, COPULAS)]
    if negated:
        words.append(_pick(rng, NEGATIONS))
    words += [_pick(rng, NEGATED_INTENSIFIERS if negated else INTENSIFIERS), adjective]
    return " ".join(w for w in words if w)


def review(rng: np.random.Generator) -> tuple[str, str, str]:
    """One review, its label (`positive` or `negative`) and its kind (`contrast`, `single`, `agreeing`)."""
    draw = rng.random()
    nouns = rng.choice(len(NOUNS), size=2, replace=False)
    first, second = NOUNS[nouns[0]], NOUNS[nouns[1]]
    if draw < 0.5:  # contrast: a good and a bad quality, one negated; the other decides
        good, bad = _pick(rng, POSITIVE), _pick(rng, NEGATIVE)
        negate_good = bool(rng.random() < 0.5)
        clauses = [(good, negate_good), (bad, not negate_good)]
        if rng.random() < 0.5:
            clauses.reverse()
        body = _clause(rng, first, *clauses[0]) + _pick(rng, CONNECTORS) + " " + _clause(rng, second, *clauses[1])
        label, kind = LABELS[0] if negate_good else LABELS[1], "contrast"
    elif draw < 0.75:  # single: one adjective, negated or not
        positive, negated = bool(rng.random() < 0.5), bool(rng.random() < 0.5)
        body = _clause(rng, first, _pick(rng, POSITIVE if positive else NEGATIVE), negated)
        label, kind = LABELS[int(positive != negated)], "single"
    else:  # agreeing: two adjectives of one polarity
        positive = bool(rng.random() < 0.5)
        words = POSITIVE if positive else NEGATIVE
        body = (
            _clause(rng, first, _pick(rng, words), False)
            + _pick(rng, AGREEING)
            + " "
            + _clause(rng, second, _pick(rng, words), False)
        )
        label, kind = LABELS[int(positive)], "agreeing"
    opener = _pick(rng, OPENERS)
    text = (f"{opener} {body}" if opener else body) + _pick(rng, ENDINGS)
    return text[0].upper() + text[1:], label, kind


def majority_review(rng: np.random.Generator, clauses: int) -> tuple[str, str, str]:
    """One review of `clauses` clauses (odd), each of a random polarity, negated or not; labelled by the sentiment
    most of them leave. Its kind is `majority`."""
    nouns = rng.choice(len(NOUNS), size=clauses, replace=False)
    parts, votes = [], 0
    for i, noun in enumerate(nouns):
        positive, negated = bool(rng.random() < 0.5), bool(rng.random() < 0.5)
        clause = _clause(rng, NOUNS[noun], _pick(rng, POSITIVE if positive else NEGATIVE), negated)
        parts.append(clause if i == 0 else _pick(rng, CONNECTORS if i % 2 else AGREEING) + " " + clause)
        votes += 1 if positive != negated else -1
    opener = _pick(rng, OPENERS)
    body = "".join(parts)
    text = (f"{opener} {body}" if opener else body) + _pick(rng, ENDINGS)
    return text[0].upper() + text[1:], LABELS[int(votes > 0)], "majority"


def write_corpus(path: Path, rows: int = 4000, seed: int = 0, flip: float = 0.0, clauses: int = 2) -> dict[str, int]:
    """Write `rows` reviews to the CSV file `path` (columns `text`, `label`, and `kind`, which the data set ignores:
    benchmarks break accuracy down by it), each label flipped with probability `flip`; return the count of each
    label. `clauses` 2 is the mix above; an odd number >= 3 makes every review a majority of that many clauses."""
    if clauses != 2 and (clauses < 3 or clauses % 2 == 0 or clauses > len(NOUNS)):
        raise ValueError(f"clauses must be 2 (the mix) or an odd number from 3 to {len(NOUNS)}, not {clauses}")
    rng = np.random.default_rng(seed)
    flips = np.random.default_rng([seed, 1])  # its own stream: the texts do not depend on `flip`
    path.parent.mkdir(parents=True, exist_ok=True)
    counts = dict.fromkeys(LABELS, 0)
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["text", "label", "kind"])
        for _ in range(rows):
            text, label, kind = review(rng) if clauses == 2 else majority_review(rng, clauses)
            if flip > 0 and flips.random() < flip:
                label = LABELS[1 - LABELS.index(label)]
            writer.writerow([text, label, kind])
            counts[label] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=Path, help="the CSV file to write")
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--flip", type=float, default=0.0, help="probability that a label is flipped (label noise)")
    parser.add_argument(
        "--clauses",
        type=int,
        default=2,
        help="2: the mix above; an odd number >= 3: every review a majority of that many clauses",
    )
    args = parser.parse_args()
    if not 0.0 <= args.flip <= 1.0:
        parser.error(f"--flip must be between 0 and 1, not {args.flip}")
    try:
        counts = write_corpus(args.path, args.rows, args.seed, args.flip, args.clauses)
    except ValueError as error:
        parser.error(str(error))
    print(f"wrote {args.rows} reviews to {args.path}: " + ", ".join(f"{n} {label}" for label, n in counts.items()))


if __name__ == "__main__":
    main()
