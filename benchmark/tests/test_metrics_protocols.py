"""Ranks, intervals, protocols and the Procrustes probe against brute-force references."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from benchmark.leakage import procrustes_similarity
from benchmark.metrics import bootstrap_interval, ranks_of_truth, summarize
from benchmark.pipeline.prep.types import Selection
from benchmark.pipeline.recognize.pairing import pair_frames
from benchmark.stats import wilson as wilson_interval


@given(
    arrays(
        np.float64,
        st.tuples(st.integers(1, 12), st.integers(1, 12)),
        elements=st.integers(-3, 3).map(float),
    ),
    st.data(),
)
def test_ranks_match_brute_force(similarity, data) -> None:
    nq, ng = similarity.shape
    truth = np.array(data.draw(st.lists(st.integers(0, ng - 1), min_size=nq, max_size=nq)))
    expected = []
    for q in range(nq):
        true_score = similarity[q, truth[q]]
        others = [similarity[q, g] for g in range(ng) if g != truth[q]]
        expected.append(sum(s >= true_score for s in others))  # ties count against truth
    assert list(ranks_of_truth(similarity, truth)) == expected


def test_summary_and_chance() -> None:
    similarity = np.eye(4) + 0.1
    summary = summarize(similarity, np.arange(4))
    assert summary.rank1 == 1.0 and summary.chance == 0.25 and summary.mean_rank0 == 0
    assert "chance 25.00 %" in summary.describe()


def test_wilson_matches_the_reference_numbers() -> None:
    lo, hi = wilson_interval(289, 555)  # the paper's 52.1 %: REFERENCE.md says about ±4.2
    assert (hi - lo) / 2 == pytest.approx(0.042, abs=0.001)
    assert (hi + lo) / 2 == pytest.approx(289 / 555, abs=0.002)
    assert wilson_interval(0, 555)[0] == 0.0 and wilson_interval(0, 555)[1] < 0.01


def test_bootstrap_is_seeded_and_brackets_the_mean() -> None:
    hits = np.array([1] * 30 + [0] * 70)
    assert bootstrap_interval(hits, seed=1) == bootstrap_interval(hits, seed=1)
    lo, hi = bootstrap_interval(hits)
    assert lo < 0.3 < hi and hi - lo < 0.25


def _selections(sessions_per_identity: dict[str, int], lfw: bool) -> list[Selection]:
    out = []
    for identity, count in sessions_per_identity.items():
        for s in range(count):
            db = f"{identity}/{s}/0"
            out.append(Selection(identity, str(s), db, db if lfw else f"{identity}/{s}/1"))
    return out


def test_cross_session_pairs_two_different_sessions() -> None:
    pairs = pair_frames(_selections({"A": 3, "B": 1, "C": 2}, lfw=True), "cross-session")
    assert [p.identity for p in pairs] == ["A", "C"]  # B has one session only
    for pair in pairs:
        assert pair.database.split("/")[1] != pair.query.split("/")[1]


def test_same_session_pairs_two_frames_of_one_video() -> None:
    pairs = pair_frames(_selections({"A": 3, "B": 1, "C": 2}, lfw=False), "same-session", seed=3)
    assert [p.identity for p in pairs] == ["A", "C"]  # B has one video: not a valid identity
    for pair in pairs:
        assert pair.database.split("/")[:2] == pair.query.split("/")[:2]
        assert pair.database != pair.query
    assert pair_frames(_selections({"A": 3}, lfw=True), "same-session") == []
    with pytest.raises(ValueError):
        pair_frames([], "sideways")
    with pytest.raises(ValueError):
        pair_frames([], "same-session", rule="lenient")


def test_usable_restricts_before_the_draw() -> None:
    selections = _selections({"A": 2}, lfw=True)
    assert pair_frames(selections, "cross-session", usable={"A/0/0"}) == []


@pytest.mark.parametrize("protocol", ["same-session", "cross-session"])
def test_the_originals_rule_drops_an_identity_with_any_unusable_video(protocol) -> None:
    selections = _selections({"A": 3, "B": 3}, lfw=False)
    usable = {u for s in selections for u in (s.database, s.query)} - {"A/2/1"}
    lenient = pair_frames(selections, protocol, usable=usable)
    strict = pair_frames(selections, protocol, usable=usable, rule="all-sessions")
    assert [p.identity for p in lenient] == ["A", "B"]
    assert [p.identity for p in strict] == ["B"]
    assert all("A/2/" not in p.database + p.query for p in lenient)


# YouTube Faces: how many people have 1, 2, ... 6 videos (Wolf et al. 2011).
YTF_VIDEOS_PER_PERSON = {1: 591, 2: 471, 3: 307, 4: 167, 5: 51, 6: 8}


def _ytf_selections() -> list[Selection]:
    counts = {}
    for videos, people in YTF_VIDEOS_PER_PERSON.items():
        for k in range(people):
            counts[f"P{videos}_{k:03d}"] = videos
    return _selections(counts, lfw=False)


@pytest.mark.parametrize("protocol", ["same-session", "cross-session"])
def test_valid_identity_rule_at_youtube_faces_scale(protocol) -> None:
    """1,595 people, 3,425 videos: the rule counted against a direct count of its text."""
    selections = _ytf_selections()
    assert len({s.identity for s in selections}) == 1595 and len(selections) == 3425
    everyone = pair_frames(selections, protocol)
    assert len(everyone) == 1595 - 591  # all with >= 2 videos
    frames = sorted({u for s in selections for u in (s.database, s.query)})
    rng = np.random.default_rng(7)
    usable = {u for u in frames if rng.random() > 0.08}  # e.g. no face found on 8 %
    ok = {(s.identity, s.session) for s in selections if {s.database, s.query} <= usable}
    videos: dict[str, int] = {}
    for s in selections:
        videos[s.identity] = videos.get(s.identity, 0) + 1
    usable_videos = {i: sum((i, s) in ok for s in map(str, range(n))) for i, n in videos.items()}
    expected_lenient = sorted(i for i, n in usable_videos.items() if n >= 2)
    expected_strict = sorted(i for i, n in usable_videos.items() if n >= 2 and n == videos[i])
    lenient = pair_frames(selections, protocol, usable=usable)
    strict = pair_frames(selections, protocol, usable=usable, rule="all-sessions")
    assert sorted(p.identity for p in lenient) == expected_lenient
    assert sorted(p.identity for p in strict) == expected_strict
    assert len(expected_strict) < len(expected_lenient) < 1004
    for pair in lenient + strict:
        assert pair.database in usable and pair.query in usable
        same = pair.database.split("/")[1] == pair.query.split("/")[1]
        assert same == (protocol == "same-session")
    # deterministic: the same seed draws the same videos
    assert pair_frames(selections, protocol, usable=usable) == lenient


def _rotation(seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q @ np.diag(np.sign(np.diag(r)))
    return q if np.linalg.det(q) > 0 else -q


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.floats(0.1, 10), shift=st.floats(-50, 50))
def test_procrustes_ignores_similarity_transforms(seed, scale, shift) -> None:
    rng = np.random.default_rng(seed)
    shape = rng.normal(size=(40, 3))
    other = rng.normal(size=(40, 3))
    moved = scale * shape @ _rotation(seed).T + shift
    sim = procrustes_similarity(np.stack([moved]), np.stack([shape, other]))
    assert sim[0, 0] == pytest.approx(1.0, abs=1e-9)
    assert sim[0, 1] < 0.9


def test_procrustes_does_not_allow_reflections() -> None:
    shape = np.random.default_rng(0).normal(size=(30, 3))
    mirrored = shape * np.array([-1.0, 1.0, 1.0])
    assert procrustes_similarity(mirrored[None], shape[None])[0, 0] < 0.99


@pytest.mark.parametrize("protocol", ["cross-session", "same-session"])
def test_a_persons_pair_does_not_depend_on_who_else_was_drawn(protocol) -> None:
    """The study draws more identities until enough are valid: that must not re-pair anyone."""
    lfw = protocol == "cross-session"
    few = pair_frames(_selections({"B": 5, "D": 4}, lfw=lfw), protocol, seed=7)
    more = pair_frames(_selections({"A": 6, "B": 5, "C": 3, "D": 4}, lfw=lfw), protocol, seed=7)
    assert [p for p in more if p.identity in ("B", "D")] == few
