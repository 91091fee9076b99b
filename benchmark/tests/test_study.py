"""The whole pipeline (prep → mask → recognize → report) on ~30 real LFW-dev identities.

It asserts the structure of the results and of the claims, not the paper's numbers.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from benchmark.claims import evaluate
from benchmark.cli import main
from benchmark.specs import load_claims, load_profiles, load_scenarios
from benchmark.study import StudyOptions, load_results, run_study

pytestmark = pytest.mark.integration


def test_results_cover_every_scenario_and_source(small_study) -> None:
    results, out = small_study
    profile = load_profiles()["lfw"]
    sources = results.config["mask_sources"]
    assert len(sources) == len(profile.reconstruct) == 2
    for embedder in profile.embedders:
        for scenario in load_scenarios():
            for source in sources:
                row = results.find(scenario.name, embedder, source)
                assert 0 <= row["rank1"] <= 1 and row["pairs"] >= row["n"] >= 0
                lo, hi = row["rank1_ci"]
                assert lo <= row["rank1"] <= hi
                assert row["chance"] == pytest.approx(1 / row["gallery"])
                assert row["cmc"][0] == pytest.approx(row["rank1"])
            if scenario.family == "Mask2Mask":  # cross-mask: query and database masks differ
                row = results.find(scenario.name, embedder, sources[0], sources[1])
                assert row["cross_mask"] and row["query_source"] != row["database_source"]
    face = results.find("Face2Face", profile.embedders[0])
    assert face["rank1"] > 0.5, "the embedder works on faces of ~30 identities"
    saved = load_results(out / "results.json")
    assert saved.scenarios == json.loads(json.dumps(results.scenarios))
    # Every stage's files as verified in this run, not only prep's (two users can compare).
    assert {"yunet", "sfm", "sface", "dlib-face-recognition-models"} <= set(saved.config["assets"])
    assert saved.environment["packages"]["numpy"]


def test_identities_are_drawn_until_enough_are_valid(small_study, lfw) -> None:
    results, _ = small_study
    draw = results.counts["draw"]
    assert draw["target"] == 30 and draw["scored"] == 30 and draw["valid"] >= 30
    assert draw["drawn"] > 30  # LFW-dev loses identities at prep: more had to be drawn
    assert draw["outcome"].startswith("reached 30 valid identities after drawing")
    assert [p["drawn"] for p in draw["passes"]] == sorted(p["drawn"] for p in draw["passes"])
    lost = draw["lost"]
    accounted = (
        lost["prep_fewer_than_2_sessions"]
        + lost["no_face_embedding"]
        + lost["mask_failures"]
        + lost["overlay_without_face"]
    )
    assert accounted + draw["valid"] == draw["drawn"]  # every drawn identity has a fate
    # The drawn identities are a prefix of the seeded order: drawing more never changes them.
    order = lfw.draw_order(42, min_sessions=2)
    chosen = {identity for hits in results.hits.values() for identity in hits}
    assert chosen <= set(order[: draw["drawn"]])
    for row in results.scenarios:
        assert row["pairs"] == 30


def test_the_blank_control_is_scored_beside_every_mask(small_study) -> None:
    results, _ = small_study
    controls = results.config["control_sources"]
    assert controls == [f"blank+{load_profiles()['lfw'].cut}"]
    for embedder in load_profiles()["lfw"].embedders:
        for alignment in ("self", "photo"):
            row = results.find("Overlay2Overlay", embedder, controls[0], alignment=alignment)
            assert row["control"] == controls[0] and row["pairs"] == 30
        # Aligned on the photo, a grey face is embedded; on its own it mostly is not.
        photo = results.find("Overlay2Face", embedder, controls[0], alignment="photo")
        own = results.find("Overlay2Face", embedder, controls[0])
        assert photo["n"] > own["n"]
    compared = {
        (c["embedder"], c["mask"], c["scenario"], c["alignment"])
        for c in results.control_comparisons
    }
    for embedder in load_profiles()["lfw"].embedders:
        for source in results.config["mask_sources"]:
            for scenario in ("Overlay2Overlay", "MaskOnly2MaskOnly"):
                assert (embedder, source, scenario, "photo") in compared
    for c in results.control_comparisons:
        lo, hi = c["difference_ci"]
        assert lo <= c["difference"] <= hi and c["n"] == 30
        assert c["difference"] == pytest.approx(c["mask_rank1_all"] - c["control_rank1_all"])


def test_every_lfw_claim_evaluates(small_study) -> None:
    results, _ = small_study
    for claim in load_claims():
        if claim.profile == "lfw":
            for embedder in load_profiles()["lfw"].embedders:
                verdict = evaluate(claim, results, embedder)
                assert isinstance(verdict.holds, bool)
                assert "%" in verdict.measured or "points" in verdict.measured


def test_second_run_is_served_from_the_cache(small_study, store) -> None:
    results, out = small_study
    again = run_study(
        load_profiles()["lfw"], out, StudyOptions(identities=30, progress=False), store
    )
    assert again.scenarios == results.scenarios
    # Every prep frame and every mask came from the cache (asserted on the cache's own
    # record, not on timings, which a warm first run makes meaningless).
    frames = list(csv.DictReader((out / "prep" / "frames.csv").read_text().splitlines()))
    assert frames and all(row["cached"] == "True" for row in frames)
    for source in again.config["mask_sources"] + again.config["control_sources"]:
        record = json.loads((out / "prep" / "masks" / source / "run.json").read_text())
        assert record["cache"]["misses"] == 0 and record["cache"]["hits"] > 0


def test_cli_reproduce_writes_report_and_judges_claims(lfw, tmp_path: Path, capsys) -> None:
    assert main(["reproduce", "--identities", "12", "--out", str(tmp_path / "r"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "claims:" in out and "Face2Face" in out
    report = (tmp_path / "r" / "report.md").read_text()
    for needle in (
        "## Mask or surroundings?",
        "## Identities: drawn, valid, lost",
        "## Claims",
        "## Scenarios",
        "chance",
        "fig1_mask2face_vs_mask2mask.png",
        "cmc.png",
        "contact_sheet.png",
        "## Timings",
    ):
        assert needle in report
    assert (tmp_path / "r" / "fig1_mask2face_vs_mask2mask.png").stat().st_size > 5000


def test_paper_profile_names_every_missing_asset(capsys, monkeypatch) -> None:
    """Offline, every asset the profile's backends need and this machine lacks is named;
    online, the public downloads (pfld, dlib-81) are left to the run, which fetches them."""
    monkeypatch.setenv("DMBENCH_OFFLINE", "1")
    assert main(["reproduce", "--profile", "paper"]) == 3
    err = capsys.readouterr().err
    for name in ("youtube-faces", "pfld", "ringnet", "dlib-81", "insightface-buffalo-l"):
        assert name in err
    monkeypatch.setenv("DMBENCH_OFFLINE", "0")
    assert main(["reproduce", "--profile", "paper"]) == 3
    first_line = capsys.readouterr().err.splitlines()[0]
    assert "youtube-faces" in first_line and "pfld" not in first_line


def test_report_shows_a_companion_profiles_claims_beside_its_own(small_study, tmp_path) -> None:
    """paper and paper-fixed: each report shows the other's verdicts when both ran."""
    from benchmark.report import write_report

    results, _ = small_study
    report = write_report(results, tmp_path, companions=(results,)).read_text()
    assert "### Beside it: profile `lfw`" in report
    first_table = report.split("## Mask or surroundings?")[1].split("## Claims")[0]
    rows = [line for line in first_table.splitlines() if line.startswith("| ") and "`" in line]
    profile = load_profiles()["lfw"]
    assert len(rows) == 4 * len(profile.embedders) * len(profile.reconstruct)


def test_reproduce_exits_1_when_a_claim_fails(lfw, tmp_path: Path, capsys, monkeypatch) -> None:
    """Exit codes: a failing claim (not a recorded finding) makes `reproduce` exit 1; a
    recorded finding ("xfail") or a claim not judged at this n does not."""
    import benchmark.claims
    from benchmark.claims import Judgement

    real = benchmark.claims.claim_judgements

    def one_fails(results):
        rows = list(real(results))
        claim, case, verdict, _ = rows[0]
        return [(claim, case, verdict, Judgement("fail", "made to fail")), *rows[1:]]

    monkeypatch.setattr(benchmark.claims, "claim_judgements", one_fails)
    argv = ["reproduce", "--identities", "12", "--out", str(tmp_path / "r"), "--quiet"]
    assert main(argv) == 1
    assert "claim(s) do not hold" in capsys.readouterr().err


def test_results_json_follows_its_schema(small_study) -> None:
    """results.json is described by benchmark/specs/results.schema.json: its version, when
    and from which commit and command it was made, every stage's asset hashes and the
    claims judged once by the study."""
    import jsonschema

    from benchmark.specs import SPEC_DIR
    from benchmark.study import RESULTS_SCHEMA

    schema = json.loads((SPEC_DIR / "results.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    _, out = small_study
    data = json.loads((out / "results.json").read_text())
    jsonschema.validate(data, schema, cls=jsonschema.Draft202012Validator)
    assert (
        data["schema_version"] == RESULTS_SCHEMA == schema["properties"]["schema_version"]["const"]
    )
    assert data["claims"] and {c["outcome"] for c in data["claims"]} <= {
        "pass",
        "fail",
        "skip",
        "xfail",
    }
    broken = dict(data, schema_version=RESULTS_SCHEMA + 1)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema, cls=jsonschema.Draft202012Validator)


def test_report_command_renders_a_finished_run_again(small_study, tmp_path: Path, capsys) -> None:
    import shutil

    _, out = small_study
    copy = tmp_path / "run"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("prep"))
    (copy / "report.md").unlink(missing_ok=True)
    assert main(["report", str(copy / "results.json")]) == 0
    report = (copy / "report.md").read_text()
    assert "## Claims" in report and "## Scenarios" in report
    assert str(copy / "report.md") in capsys.readouterr().out
