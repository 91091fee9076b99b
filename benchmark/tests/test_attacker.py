"""The adaptive attacker: trained on people the evaluation never sees, seeded, and able
to learn what it should (checked on data whose answer is known)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from benchmark.assets import load_manifest
from benchmark.attacker import (
    MIN_TRAIN_PAIRS,
    TRAIN_DATASET,
    MlpAdapter,
    RidgeAdapter,
    TrainingSet,
    WithinClassWhitening,
    augment,
    fit_attacks,
    rank1,
    training_sets,
)
from benchmark.errors import DmbenchError


def test_training_and_evaluation_identities_are_disjoint(lfw) -> None:
    """From the manifest and from the folders on disk: no lfw-train identity has a second
    LFW photo, so none can be drawn by an evaluation (which needs two), and none is in
    the LFW-dev folder the evaluation reads."""
    manifest = load_manifest()
    train = Counter(f.path.split("/")[1] for f in manifest[TRAIN_DATASET].files)
    every = Counter(f.path.split("/")[1] for f in manifest["lfw"].files)
    assert len(train) == 4069 and set(train.values()) == {1}
    assert all(every[name] == 1 for name in train)  # one photo in all of LFW
    evaluable = {name for name, count in every.items() if count >= 2}
    assert not set(train) & evaluable
    assert not set(train) & set(lfw.draw_order(42, min_sessions=2))  # what a draw can take
    assert {f.sha256 for f in manifest[TRAIN_DATASET].files} <= {
        f.sha256 for f in manifest["lfw"].files
    }


def test_training_refuses_an_evaluated_identity(store, lfw) -> None:
    from benchmark.datasets import resolve_dataset

    try:
        train = resolve_dataset(TRAIN_DATASET, store)
    except DmbenchError as exc:
        pytest.skip(f"lfw-train not available: {exc}")
    first = train.draw_order(42, min_sessions=1)[0]
    with pytest.raises(DmbenchError, match="must not train on them"):
        training_sets(None, store, None, 5, 42, {first, *lfw.identities()})


def _linear_pairs(n: int, seed: int, noise: float = 0.05):
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=(n, 32))
    mixing = rng.normal(size=(32, 32))
    anonymized = truth @ mixing + noise * rng.normal(size=(n, 32))
    return anonymized, truth


def test_ridge_learns_a_known_linear_map() -> None:
    x, y = _linear_pairs(400, 0)
    adapter = RidgeAdapter(1e-3).fit(x[:300], y[:300])
    assert rank1(x[300:], y[300:], "cosine") < 0.2  # the anonymized space is scrambled
    assert rank1(adapter(x[300:]), y[300:], "cosine") > 0.95
    assert np.abs(adapter(x[300:]) - y[300:]).mean() < 0.1  # y has unit variance


def test_the_mlp_learns_what_a_linear_map_cannot_and_is_seeded() -> None:
    rng = np.random.default_rng(1)
    y = rng.normal(size=(600, 16))
    x = np.concatenate([np.tanh(2 * y), y**2], axis=1)  # not linear in y
    ridge = RidgeAdapter(1e-2).fit(x[:500], y[:500])
    first = MlpAdapter(epochs=400, seed=3).fit(x[:500], y[:500])
    again = MlpAdapter(epochs=400, seed=3).fit(x[:500], y[:500])
    assert np.array_equal(first(x[500:]), again(x[500:]))
    ridge_error = np.square(ridge(x[500:]) - y[500:]).mean()
    mlp_error = np.square(first(x[500:]) - y[500:]).mean()
    assert mlp_error < 0.8 * ridge_error, (mlp_error, ridge_error)


def test_whitening_down_weights_what_changes_within_a_person() -> None:
    """Identity in 8 weak directions, a strong nuisance that differs between two samples
    of a person in 24 others: whitening by the within-person covariance recovers it."""
    rng = np.random.default_rng(2)
    people = 300
    identity = np.concatenate([rng.normal(size=(people, 8)), np.zeros((people, 24))], axis=1)

    def sample() -> np.ndarray:
        nuisance = np.concatenate([np.zeros((people, 8)), 5 * rng.normal(size=(people, 24))], 1)
        return identity + nuisance + 0.05 * rng.normal(size=(people, 32))

    a, b = sample(), sample()
    project = WithinClassWhitening(1e-3).fit(a[:200], b[:200])
    before = rank1(a[200:], b[200:], "cosine")
    after = rank1(project(a[200:]), project(b[200:]), "cosine")
    assert before < 0.3 and after > 0.9, (before, after)


def test_fit_attacks_chooses_on_held_out_people_and_says_when_it_cannot() -> None:
    x, y = _linear_pairs(200, 4)
    x2, y2 = _linear_pairs(200, 4, noise=0.2)
    data = TrainingSet(x, x2, y, y2, [f"p{i}" for i in range(200)])
    fitted = fit_attacks(data, "cosine", seed=42)
    held = fitted.record["held_out_rank1"]
    assert fitted.record["held_out_people"] == 40 and fitted.record["train_people"] == 200
    assert held["ridge"] > held["none_mask2face"] + 0.5  # the adapter undoes the scrambling
    assert set(fitted.attacks) == {"ridge", "mlp", "whitening"}
    again = fit_attacks(data, "cosine", seed=42)
    assert again.record == fitted.record  # seeded
    few = TrainingSet(x[:10], x2[:10], y[:10], y2[:10], [f"p{i}" for i in range(10)])
    assert fit_attacks(few, "cosine", 42) == (
        f"only 10 training people with every embedding (< {MIN_TRAIN_PAIRS})"
    )


def test_augment_is_seeded_and_changes_the_crop() -> None:
    crop = np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    one = augment(crop, np.random.default_rng(7))
    assert one.shape == crop.shape and one.dtype == np.uint8
    assert np.array_equal(one, augment(crop, np.random.default_rng(7)))
    assert not np.array_equal(one, crop) and not np.array_equal(one, crop[:, ::-1])


def test_fitted_attacks_are_cached_by_what_they_were_fitted_on(tmp_path) -> None:
    from benchmark.attacker import cached_fit
    from benchmark.cache import Cache

    x, y = _linear_pairs(150, 5)
    x2, y2 = _linear_pairs(150, 5, noise=0.2)
    data = TrainingSet(x, x2, y, y2, [f"p{i}" for i in range(150)])
    cache = Cache(tmp_path)
    first = cached_fit(data, "cosine", 42, cache)
    assert (cache.hits, cache.misses) == (0, 1)
    again = cached_fit(data, "cosine", 42, cache)
    assert (cache.hits, cache.misses) == (1, 1) and again.record == first.record
    for name, attack in first.attacks.items():  # the stored attack maps as the fitted one
        assert np.array_equal(again.attacks[name](x[:20]), attack(x[:20])), name
    cached_fit(data, "cosine", 7, cache)  # another seed: fitted again
    moved = TrainingSet(x + 1e-9, x2, y, y2, data.identities)
    cached_fit(moved, "cosine", 42, cache)  # other training vectors: fitted again
    assert cache.misses == 3
    few = TrainingSet(x[:5], x2[:5], y[:5], y2[:5], data.identities[:5])
    reason = cached_fit(few, "cosine", 42, cache)
    assert cached_fit(few, "cosine", 42, cache) == reason and reason.startswith("only 5")
