"""The built-in augmentations: what each does to a batch, how a study searches them, and what `automl` refuses.

The contract every augmentation keeps (shapes, dtypes, devices, no writes into the batch, reproducibility) is
checked for all of them by the conformance kit in tests/test_conformance.py."""

from __future__ import annotations

import os
import subprocess

import pytest
import torch
from conftest import AUTOML, load_optuna, mlflow_runs

from orchestrator import MixedTargets
from orchestrator.testing import default_params, make_context

NAMES = ("random_crop", "flip", "cutout", "shift", "noise", "time_mask", "mixup")


@pytest.fixture(scope="module")
def build(builtin_registry):
    """augmentation(name, input_kind="image", **params): the built augment, its other params at their defaults."""

    def make(name: str, input_kind: str = "image", task: str = "classification", **params):
        spec = builtin_registry.get("augmentation", name).spec
        return spec.build({**default_params(spec.params), **params}, make_context(input_kind, task))

    return make


def images(n: int = 16, c: int = 2, h: int = 6, w: int = 7) -> torch.Tensor:
    """Distinct, non-zero pixel values: every value tells where it came from."""
    return torch.arange(1, 1 + n * c * h * w, dtype=torch.float32).view(n, c, h, w)


def sequences(n: int = 16, length: int = 10, c: int = 2) -> torch.Tensor:
    return torch.arange(1, 1 + n * length * c, dtype=torch.float32).view(n, length, c)


def labels(n: int = 16) -> torch.Tensor:
    return torch.arange(n) % 10


# ---------------------------------------------------------------------------
# What each augmentation does
# ---------------------------------------------------------------------------


def test_flip_mirrors_left_right_per_sample(build):
    x, y = images(), labels()
    torch.manual_seed(0)
    assert torch.equal(build("flip", p=1.0)(x, y)[0], x.flip(-1))
    assert torch.equal(build("flip", p=0.0)(x, y)[0], x)
    out, same_y = build("flip", p=0.5)(torch.cat([x] * 4), labels(64))
    assert same_y is not None and torch.equal(same_y, labels(64))
    mirrored = [bool(torch.equal(o, i.flip(-1))) for o, i in zip(out, torch.cat([x] * 4))]
    kept = [bool(torch.equal(o, i)) for o, i in zip(out, torch.cat([x] * 4))]
    assert all(m != k for m, k in zip(mirrored, kept))  # each sample either mirrored or left as it was
    assert 10 < sum(mirrored) < 54  # about half of 64


def shifted_image(image: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """The image's content moved by (-dy, -dx): out[i, j] = image[i + dy, j + dx], zero outside."""
    out = torch.zeros_like(image)
    h, w = image.shape[-2:]
    for i in range(h):
        for j in range(w):
            if 0 <= i + dy < h and 0 <= j + dx < w:
                out[..., i, j] = image[..., i + dy, j + dx]
    return out


def test_random_crop_keeps_the_size_and_moves_the_content(build):
    x, y = images(), labels()
    torch.manual_seed(0)
    out, out_y = build("random_crop", padding=2, mode="zero")(x, y)
    assert out.shape == x.shape and out_y is y
    offsets = []
    for sample, original in zip(out, x):
        found = [
            (dy, dx)
            for dy in range(-2, 3)
            for dx in range(-2, 3)
            if torch.equal(sample, shifted_image(original, dy, dx))
        ]
        assert found, "a crop is not the padded image at some offset within the padding"
        offsets.append(found[0])
    assert len(set(offsets)) > 3  # a random offset per sample, most of them moving the content
    # reflect and replicate fill the border from the image itself: no zeros, values from the same sample
    for mode in ("reflect", "replicate"):
        out, _ = build("random_crop", padding=3, mode=mode)(x, y)
        assert out.shape == x.shape and bool((out != 0).all())
        for sample, original in zip(out, x):
            assert set(sample.flatten().tolist()) <= set(original.flatten().tolist())
    # reflect mirrors without repeating the edge: content moved down one row has row 1 above it, not row 0
    many = images(n=64)
    out, _ = build("random_crop", padding=1, mode="reflect")(many, labels(64))
    assert any(torch.equal(o[:, 1:], i[:, :-1]) and torch.equal(o[:, 0], i[:, 1]) for o, i in zip(out, many))


def test_cutout_zeroes_one_square_of_the_given_side(build):
    x, y = images(h=8, w=10), labels()
    torch.manual_seed(0)
    out, _ = build("cutout", size=0.5, p=1.0)(x, y)  # side: half the shorter side, 4 pixels
    corners = set()
    for sample, original in zip(out, x):
        zero = sample == 0
        assert torch.equal(zero[0], zero[1]), "the square covers every channel"
        rows, cols = torch.nonzero(zero[0], as_tuple=True)
        assert len(rows) == 16
        assert int(rows.max() - rows.min()) == 3 and int(cols.max() - cols.min()) == 3
        assert torch.equal(sample[~zero], original[~zero])
        corners.add((int(rows.min()), int(cols.min())))
    assert len(corners) > 3  # a random position per sample
    none, _ = build("cutout", size=0.5, p=0.0)(x, y)
    assert torch.equal(none, x)
    out, _ = build("cutout", size=0.5, p=0.5)(torch.cat([x] * 4), labels(64))
    cut = int(((out == 0).flatten(1).any(1)).sum())
    assert 10 < cut < 54


def test_shift_moves_each_sequence_zero_filled_or_rolled(build):
    x, y = sequences(), labels()
    torch.manual_seed(0)
    for mode in ("zero", "roll"):
        out, out_y = build("shift", "sequence", max_shift=3, mode=mode)(x, y)
        assert out.shape == x.shape and out_y is y
        shifts = []
        for sample, original in zip(out, x):
            candidates = []
            for s in range(-3, 4):
                expected = torch.roll(original, s, dims=0)
                if mode == "zero" and s > 0:
                    expected[:s] = 0
                elif mode == "zero" and s < 0:
                    expected[s:] = 0
                if torch.equal(sample, expected):
                    candidates.append(s)
            assert candidates, f"{mode}: a sample is not its input shifted by -3..3 steps"
            shifts.append(candidates[0])
        assert len(set(shifts)) > 2 and any(shifts)


def test_time_mask_zeroes_one_span_of_sequences_and_tokens(build):
    x, y = sequences(length=20), labels()
    torch.manual_seed(0)
    out, _ = build("time_mask", "sequence", width=5)(x, y)
    widths = set()
    for sample, original in zip(out, x):
        masked = (sample == 0).all(dim=1)
        steps = torch.nonzero(masked).flatten().tolist()
        assert 1 <= len(steps) <= 5 and steps == list(range(steps[0], steps[0] + len(steps))), "one contiguous span"
        assert torch.equal(sample[~masked], original[~masked])
        widths.add(len(steps))
    assert len(widths) > 1
    tokens = torch.randint(1, 50, (16, 12))
    out, _ = build("time_mask", "tokens", width=3)(tokens, y)
    assert out.dtype == torch.int64
    masked = out == 0
    assert bool((masked.sum(1) >= 1).all() and (masked.sum(1) <= 3).all())
    assert torch.equal(out[~masked], tokens[~masked])  # the rest keeps its ids; the span is the padding id 0


def test_noise_adds_gaussian_noise_of_the_given_std(build):
    x = torch.zeros(4000, 5)
    torch.manual_seed(0)
    out, _ = build("noise", "vector", std=0.3)(x, labels(4000))
    assert out.dtype == x.dtype and bool((x == 0).all())
    assert float(out.mean()) == pytest.approx(0.0, abs=0.01)
    assert float(out.std()) == pytest.approx(0.3, rel=0.03)
    half = torch.zeros(8, 3, dtype=torch.float64)
    assert build("noise", "vector")(half, labels(8))[0].dtype == torch.float64


def test_mixup_mixes_inputs_and_targets_with_one_weight(build):
    x, y = images(), labels()
    torch.manual_seed(0)
    out, mixed = build("mixup", alpha=0.4)(x, y)
    assert isinstance(mixed, MixedTargets) and torch.equal(mixed.a, y)
    assert 0.0 <= mixed.weight <= 1.0
    # b holds the partners' targets: with distinct targets it gives the permutation
    targets = torch.arange(16)
    out, mixed = build("mixup", alpha=1.0)(x, targets)
    perm = mixed.b
    assert sorted(perm.tolist()) == list(range(16)) and torch.equal(mixed.a, targets)
    assert torch.allclose(out, mixed.weight * x + (1 - mixed.weight) * x[perm])
    # regression targets (N, outputs) are paired the same way
    values = torch.randn(16, 2)
    _, mixed = build("mixup", "vector", "regression", alpha=1.0)(torch.randn(16, 3), values)
    assert mixed.b.shape == (16, 2) and any(torch.equal(mixed.b[0], row) for row in values)
    # weight ~ Beta(alpha, alpha): uniform at alpha 1, mostly near 0 or 1 at alpha 0.1
    weights = {
        alpha: torch.tensor([build("mixup", alpha=alpha)(x, y)[1].weight for _ in range(400)]) for alpha in (1.0, 0.1)
    }
    assert float(weights[1.0].mean()) == pytest.approx(0.5, abs=0.06)
    near_edges = ((weights[0.1] < 0.1) | (weights[0.1] > 0.9)).float().mean()
    assert float(near_edges) > 0.6 > float(((weights[1.0] < 0.1) | (weights[1.0] > 0.9)).float().mean())


def test_augmentations_work_on_views_without_writing_into_them(build):
    """A batch cut from a data set held on the device may be a view of it: no augmentation changes it."""
    data = {"image": images(n=20), "sequence": sequences(n=20), "tokens": torch.randint(1, 9, (20, 10))}
    for name, kind in (
        ("random_crop", "image"),
        ("flip", "image"),
        ("cutout", "image"),
        ("noise", "image"),
        ("mixup", "image"),
        ("shift", "sequence"),
        ("time_mask", "sequence"),
        ("time_mask", "tokens"),
    ):
        kept = data[kind].clone()
        out, _ = build(name, kind)(data[kind][2:18], labels())
        assert torch.equal(data[kind], kept), name
        assert out.dtype == kept.dtype and out.shape == (16, *kept.shape[1:])


# ---------------------------------------------------------------------------
# Through the CLI: `automl plugins`, `automl validate`, `automl run`
# ---------------------------------------------------------------------------


def test_plugins_lists_the_augmentations(cli):
    result = cli("plugins")
    assert result.code == 0
    lines = result.out.splitlines()
    start = lines.index("augmentations:") + 1
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith(" ")), len(lines))
    section = lines[start:end]
    assert sorted(line.split()[0] for line in section if not line.startswith("   ")) == sorted(NAMES)
    assert any(line.split()[0] == "max_shift" for line in section)


STUDY = """
name: augmented
dataset: {dataset}
budget: {{trials: 3, max_epochs: 2}}
pruner: none
seed: 0
search:
  architecture:
    mlp: {{depth: 1, width: 32}}
  activation: relu
  loss: cross_entropy
  optimizer:
    adam: {{lr: 0.003, beta1: 0.9, beta2: 0.999}}
  augmentations: {augmentations}
  batch_size: 64
{extra}"""


@pytest.mark.parametrize("dataset, augmentation, kind", [("digits", "shift", "image"), ("mnist1d", "flip", "sequence")])
def test_validate_refuses_an_incompatible_augmentation(write_study, cli, dataset, augmentation, kind):
    study = write_study(STUDY.format(dataset=dataset, augmentations=f"[noise, {augmentation}]", extra=""))
    result = cli("validate", study)
    assert result.code == 2
    assert f"search.augmentations.{augmentation}: incompatible" in result.err
    assert f"gives {kind}" in result.err


def test_validate_names_the_nearest_augmentation(write_study, cli):
    study = write_study(STUDY.format(dataset="digits", augmentations="{cutuot: {p: 0.5}}", extra=""))
    result = cli("validate", study)
    assert result.code == 2
    assert "search.augmentations.cutuot: unknown augmentation (did you mean 'cutout'?)" in result.err
    study = write_study(STUDY.format(dataset="digits", augmentations="{cutout: {p: 1.5}}", extra=""))
    result = cli("validate", study)
    assert result.code == 2 and "search.augmentations.cutout.p" in result.err


def test_validate_shows_the_searched_augmentations(write_study, cli):
    study = write_study(
        STUDY.format(
            dataset="mnist1d", augmentations="{shift: {max_shift: [2, 4], optional: false}, time_mask: {}}", extra=""
        )
    )
    result = cli("validate", study)
    assert result.code == 0, result.err
    assert "augmentation.shift: always on" in result.out and "augmentation.time_mask: on or off" in result.out
    assert "augmentation.shift.max_shift: one of [2, 4]" in result.out


def test_a_study_searches_augmentations_and_records_them(write_study, workdir):
    """A user's study on digits: flip, cutout and mixup searched on/off (the first trial with all three on)."""
    study_file = write_study(
        STUDY.format(
            dataset="digits",
            augmentations="[flip, cutout, mixup]",
            extra="enqueue:\n  - {augmentation.flip: true, augmentation.cutout: true, augmentation.mixup: true}\n",
        )
    )
    proc = subprocess.run(
        [AUTOML, "run", study_file.name], cwd=workdir, capture_output=True, text=True, timeout=300, env={**os.environ}
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    trials = sorted(load_optuna(workdir, "augmented").get_trials(), key=lambda t: t.number)
    assert len(trials) == 3 and all(t.state.name == "COMPLETE" for t in trials)
    switches = ("augmentation.flip", "augmentation.cutout", "augmentation.mixup")
    for t in trials:
        config = t.user_attrs["config"]
        assert all(isinstance(config[key], bool) for key in switches)
        assert all(key in t.params for key in switches)  # searched on/off by Optuna
        for key, param in (("augmentation.flip", "p"), ("augmentation.mixup", "alpha")):
            assert (f"{key}.{param}" in config) == config[key]  # a parameter only when switched on
    first = trials[0].user_attrs["config"]
    assert all(first[key] for key in switches)
    assert 0 <= first["augmentation.cutout.size"] <= 1 and 0.05 <= first["augmentation.mixup.alpha"] <= 4
    assert trials[0].value > 0.3  # trained with all three on (mixup's mixed loss included): far above chance 0.1

    _, _, runs = mlflow_runs(workdir, "augmented")
    by_number = {int(r.data.tags["optuna.trial_number"]): r for r in runs}
    for t in trials:
        logged = by_number[t.number].data.params
        for key, value in t.user_attrs["config"].items():
            if key.startswith("augmentation."):
                assert logged[key] == str(value)
    assert by_number[0].data.params["augmentation.mixup"] == "True"
