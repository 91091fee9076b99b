"""Scoring a scenario: one matrix product, checked against a brute-force loop."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark.metrics import paired_difference
from benchmark.pipeline.recognize.pairing import Pair
from benchmark.pipeline.recognize.stage import image_id, score_scenario
from benchmark.pipeline.recognize.types import Embedding, similarity_matrix
from benchmark.specs import load_scenarios
from benchmark.stats import binomial_tail

SCENARIOS = {s.name: s for s in load_scenarios()}


def _setup(n: int, seed: int, missing_q: set[int], missing_d: set[int]):
    rng = np.random.default_rng(seed)
    pairs = [Pair(f"id{i}", f"id{i}/a/0", f"id{i}/b/0") for i in range(n)]
    embeddings = {}
    for i, pair in enumerate(pairs):
        base = rng.normal(size=8)
        for variant in ("face", "overlay"):
            source = "prep" if variant == "face" else "m"
            noise = 0.3 if variant == "face" else 3.0
            q = (
                None
                if (i in missing_q and variant == "overlay")
                else base + noise * rng.normal(size=8)
            )
            d = (
                None
                if (i in missing_d and variant == "face")
                else base + noise * rng.normal(size=8)
            )
            embeddings[image_id(source, variant, pair.query)] = Embedding(
                q, "" if q is not None else "no face"
            )
            embeddings[image_id(source, variant, pair.database)] = Embedding(
                d, "" if d is not None else "no face"
            )
    return pairs, embeddings


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(2, 15),
    seed=st.integers(0, 999),
    missing_q=st.sets(st.integers(0, 14), max_size=4),
    missing_d=st.sets(st.integers(0, 14), max_size=4),
)
def test_overlay2face_matches_brute_force(n, seed, missing_q, missing_d) -> None:
    pairs, emb = _setup(n, seed, missing_q, missing_d)
    result = score_scenario(
        pairs,
        emb,
        SCENARIOS["Overlay2Face"],
        protocol="cross-session",
        embedder="toy",
        metric="cosine",
        query_source="m",
        database_source="m",
    )
    gallery = [p for p in pairs if emb[image_id("prep", "face", p.database)].vector is not None]
    hits, scored = 0, 0
    for p in pairs:
        q = emb[image_id("m", "overlay", p.query)].vector
        if q is None or p not in gallery:
            continue
        scored += 1
        sims = [
            float(
                np.dot(q, emb[image_id("prep", "face", g.database)].vector)
                / np.linalg.norm(q)
                / np.linalg.norm(emb[image_id("prep", "face", g.database)].vector)
            )
            for g in gallery
        ]
        true_k = gallery.index(p)
        hits += int(sims[true_k] >= max(sims) and sims.count(sims[true_k]) == 1)
    assert result.n == scored and result.gallery == len(gallery)
    assert result.query_failures == len([i for i in missing_q if i < n])
    assert result.database_failures == len([i for i in missing_d if i < n])
    assert result.rank1 * max(scored, 1) == pytest.approx(hits)
    assert result.rank1_all == pytest.approx(hits / n)
    assert result.cmc == sorted(result.cmc)
    if gallery:
        assert result.chance == pytest.approx(1 / len(gallery))


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 6), st.integers(1, 6), st.integers(0, 99))
def test_similarity_matrix_equals_loops(nq, ng, seed) -> None:
    rng = np.random.default_rng(seed)
    q, g = rng.normal(size=(nq, 5)), rng.normal(size=(ng, 5))
    cos = similarity_matrix(q, g, "cosine")
    euc = similarity_matrix(q, g, "euclidean")
    for i in range(nq):
        for j in range(ng):
            assert cos[i, j] == pytest.approx(
                q[i] @ g[j] / np.linalg.norm(q[i]) / np.linalg.norm(g[j])
            )
            assert euc[i, j] == pytest.approx(-np.linalg.norm(q[i] - g[j]), abs=1e-9)


def test_paired_difference() -> None:
    pairs, emb = _setup(40, 1, set(), set())
    face = score_scenario(
        pairs,
        emb,
        SCENARIOS["Face2Face"],
        protocol="p",
        embedder="t",
        metric="cosine",
        query_source="m",
        database_source="m",
    )
    masked = score_scenario(
        pairs,
        emb,
        SCENARIOS["Overlay2Face"],
        protocol="p",
        embedder="t",
        metric="cosine",
        query_source="m",
        database_source="m",
    )
    mean, lo, hi, n = paired_difference(face.hits, masked.hits)
    assert n == 40
    assert face.rank1 > masked.rank1 and lo <= mean <= hi and lo > 0


def test_binomial_tail_exact() -> None:
    from math import comb

    n, p = 20, 0.1
    for k in (0, 1, 3, 20):
        exact = sum(comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(k, n + 1))
        assert binomial_tail(k, n, p) == pytest.approx(exact, rel=1e-9)


def test_reference_quirk_turns_every_255_into_0_only_when_asked() -> None:
    from benchmark.pipeline.recognize.stage import RecognizeParams, apply_quirks

    image = np.array([[[255, 10, 255], [0, 255, 7]]], np.uint8)
    assert np.array_equal(apply_quirks(image, RecognizeParams()), image)
    quirked = apply_quirks(image, RecognizeParams(reference_quirks=True))
    assert quirked.tolist() == [[[0, 10, 0], [0, 0, 7]]]
    assert image[0, 0, 0] == 255, "the input is not modified in place"


def test_read_npy_is_np_load_and_refuses_objects_and_garbage() -> None:
    """The cache's vectors are read with each distinct header parsed once: the same arrays
    as ``np.load`` (dtype, shape, order, writable), and never Python objects."""
    import io

    from benchmark.pipeline.recognize.stage import read_npy

    def saved(array: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=True)
        return buffer.getvalue()

    for array in (
        np.arange(128, dtype=np.float32),
        np.zeros((3, 4)),
        np.asfortranarray(np.arange(12).reshape(3, 4)),
        np.array(2.5, dtype=np.float32),
    ):
        loaded = read_npy(saved(array))
        expected = np.load(io.BytesIO(saved(array)))
        assert loaded.dtype == expected.dtype and loaded.shape == expected.shape
        assert np.array_equal(loaded, expected) and loaded.flags.writeable
    with pytest.raises(ValueError, match="objects"):
        read_npy(saved(np.array([{"a": 1}], dtype=object)))
    with pytest.raises(ValueError):
        read_npy(b"not an npy file at all")
    with pytest.raises(ValueError):
        read_npy(saved(np.arange(128, dtype=np.float32))[:-8])  # cut short
