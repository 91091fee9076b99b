"""`dmbench evaluate`: any anonymizer through the study's attacks, on real LFW-dev photos,
with the same results.json and report as `reproduce`, and a leaderboard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.leaderboard import ATTACKS, adaptive_gains, strongest_attacks
from benchmark.specs import SPEC_DIR
from benchmark.study import load_results

pytestmark = pytest.mark.integration

N = 4
TRAIN = 100  # lfw-train identities for the adaptive attacker (enough to fit it, not to judge it)


@pytest.fixture(scope="module")
def evaluation(shared_plugins, tmp_path_factory, lfw) -> Path:
    from benchmark.assets import AssetStore
    from benchmark.attacker import training_data
    from benchmark.errors import DmbenchError

    try:
        training_data(AssetStore(), fetch=False)
    except DmbenchError as exc:
        pytest.skip(str(exc).splitlines()[0])
    plugins = shared_plugins
    out = tmp_path_factory.mktemp("evaluate")
    argv = [
        "evaluate",
        "--anonymizer",
        f"{plugins}:inverted_everywhere",
        "--anonymizer",
        f"{plugins}:refuses",
        "--anonymizer",
        "blur",
        "--identities",
        str(N),
        "--attacker-people",
        str(TRAIN),
        "--out",
        str(out),
        "--quiet",
    ]
    assert main(argv) == 0
    return out


def test_evaluate_writes_results_report_and_a_leaderboard(evaluation, shared_plugins) -> None:
    plugins = shared_plugins
    import jsonschema

    data = json.loads((evaluation / "results.json").read_text())
    schema = json.loads((SPEC_DIR / "results.schema.json").read_text())
    jsonschema.validate(data, schema, cls=jsonschema.Draft202012Validator)
    results = load_results(evaluation / "results.json")
    sources = [
        f"{plugins}.inverted_everywhere+mediapipe-forehead",
        f"{plugins}.refuses+mediapipe-forehead",
        "blur+mediapipe-forehead",
    ]
    assert results.config["mask_sources"] == sources
    assert results.config["control_sources"] == ["blank+mediapipe-forehead"]
    kinds = {name: record["kind"] for name, record in results.config["anonymizers"].items()}
    assert kinds == dict(zip(sources, ["plugin", "plugin", "control"], strict=True))
    assert results.claims == []  # the paper's claims are judged by reproduce, not here
    report = (evaluation / "report.md").read_text()
    assert "leaderboard.md" in report and all(f"`{s}`" in report for s in sources)

    rows = json.loads((evaluation / "leaderboard.json").read_text())["rows"]
    embedders = results.config["profile"]["embedders"]
    for source in [*sources, "blank+mediapipe-forehead"]:
        for embedder in embedders:
            for attack, scenario in ATTACKS.items():
                mine = [
                    r
                    for r in rows
                    if (r["anonymizer"], r["embedder"], r["attack"]) == (source, embedder, attack)
                ]
                assert mine, (source, embedder, attack)
                for row in mine:
                    scored = results.find(scenario, embedder, source, alignment=row["alignment"])
                    assert row["rank1"] == scored["rank1_all"] and row["n"] == N
                    assert row["chance"] == scored["chance"]
                    assert row["ci_low"] <= row["rank1"] <= row["ci_high"]
    ceilings = [r for r in rows if r["kind"] == "ceiling"]
    assert [r["embedder"] for r in ceilings] == embedders
    strongest = strongest_attacks(rows)
    assert {r["anonymizer"] for r in strongest} == {*sources, "blank+mediapipe-forehead"}
    table = (evaluation / "leaderboard.md").read_text()
    assert "## Strongest attack per anonymizer" in table
    table_rows = [line for line in table.splitlines() if line.startswith("| `")]
    # Strongest attacks, the adaptive gains, utility, then every row.
    gains = adaptive_gains(rows)
    assert len(table_rows) == 2 * len(strongest) + len(gains) + len(rows)
    csv_lines = (evaluation / "leaderboard.csv").read_text().splitlines()
    assert len(csv_lines) == len(rows) + 1


def test_an_anonymizer_that_publishes_nothing_is_scored_not_excused(
    evaluation, shared_plugins
) -> None:
    plugins = shared_plugins
    """Anonymizers under evaluation do not decide which identities are valid (the photos
    do): one that refuses every crop scores 0 % on every valid identity, a miss each,
    instead of shrinking the test to the identities it handled."""
    results = load_results(evaluation / "results.json")
    refuses = f"{plugins}.refuses+mediapipe-forehead"
    assert results.counts["mask"][refuses]["counts"].get("masked", 0) == 0
    rows = [r for r in results.scenarios if r["query_source"] == refuses]
    assert rows and all(r["rank1_all"] == 0.0 and r["pairs"] == N for r in rows)
    assert results.counts["draw"]["valid"] >= N


def test_evaluate_needs_an_anonymizer(tmp_path) -> None:
    assert main(["evaluate", "--out", str(tmp_path / "x")]) == 2
    assert main(["evaluate", "--anonymizer", "no_such_module_q:f", "--out", str(tmp_path)]) == 2


def test_evaluate_reports_utility_beside_privacy(evaluation, shared_plugins) -> None:
    plugins = shared_plugins
    results = load_results(evaluation / "results.json")
    inverted = f"{plugins}.inverted_everywhere+mediapipe-forehead"
    refuses = f"{plugins}.refuses+mediapipe-forehead"
    assert set(results.utility) == {*results.config["mask_sources"], "blank+mediapipe-forehead"}
    for source, kept in results.utility.items():
        assert kept["frames"] == 2 * N, source  # the scored frames: a query and a database
    assert results.utility[refuses]["anonymized_rate"] == 0.0
    assert (
        results.utility[refuses]["crops"] == 0
        and results.utility[refuses]["nme_dlib68_mean"] is None
    )
    blank = results.utility["blank+mediapipe-forehead"]
    assert blank["anonymized_rate"] == 1.0 and blank["detected_rate"] == 0.0
    assert blank["nme_mediapipe_n"] == 0  # no face left for MediaPipe to find
    assert results.utility[inverted]["crops"] == 2 * N
    table = (evaluation / "leaderboard.md").read_text()
    assert "## Privacy and utility" in table and (evaluation / "privacy_utility.png").stat().st_size
    stored = json.loads((evaluation / "leaderboard.json").read_text())["utility"]
    assert stored == results.utility


def test_the_adaptive_attacker_trains_on_other_people_and_is_scored(
    evaluation, shared_plugins, lfw
) -> None:
    from benchmark.attacker import ATTACKS as ADAPTIVE_ATTACKS
    from benchmark.leaderboard import ADAPTIVE

    plugins = shared_plugins
    results = load_results(evaluation / "results.json")
    trained = results.attacker
    assert trained["dataset"] == "lfw-train" and trained["drawn"] == TRAIN
    assert len(trained["identities"]) == TRAIN
    scored = {identity for hits in results.hits.values() for identity in hits}
    assert scored and not set(trained["identities"]) & scored
    assert not set(trained["identities"]) & set(lfw.identities())
    fitted = trained["fitted"]
    refuses = f"{plugins}.refuses+mediapipe-forehead"
    assert fitted[f"{refuses}|sface|self"]["not_fitted"].startswith("only 0 training people")
    done = [key for key, record in fitted.items() if "not_fitted" not in record]
    assert done, fitted
    for key in done:
        source, embedder, alignment = key.split("|")
        mine = [
            r
            for r in results.adaptive
            if (r["query_source"], r["embedder"], r["alignment"]) == (source, embedder, alignment)
        ]
        assert sorted(r["attacker"] for r in mine) == sorted(ADAPTIVE_ATTACKS), key
        for row in mine:
            assert row["pairs"] == N
            assert row["scenario"] == (
                "Overlay2Overlay" if row["attacker"] == "whitening" else "Overlay2Face"
            )
        held = fitted[key]["held_out_rank1"]
        assert fitted[key]["held_out_people"] == int(0.2 * fitted[key]["train_people"])
        assert all(0.0 <= value <= 1.0 for value in held.values())
    rows = json.loads((evaluation / "leaderboard.json").read_text())["rows"]
    assert {r["attack"] for r in rows} >= set(ADAPTIVE.values())
    assert "## What adapting to the anonymizer adds" in (evaluation / "leaderboard.md").read_text()
    for name, gain in adaptive_gains(rows).items():
        mine = [r for r in rows if r["anonymizer"] == name]
        fixed = max(r["rank1"] for r in mine if r["attack"] not in ADAPTIVE.values())
        adapted = max(r["rank1"] for r in mine if r["attack"] in ADAPTIVE.values())
        assert gain["gain"] == pytest.approx(adapted - fixed)
