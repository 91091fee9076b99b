"""The leaderboard of an evaluation: every scored anonymizer × embedder × attacker, and
what each anonymizer keeps (utility) beside it.

Read from results.json only (``dmbench evaluate`` writes both). Each row is one attack on
one anonymizer: its rank-1 over every scored pair (a query the embedder finds no face on
is a miss, as in ``rank1_all``), a 95 % Wilson interval, chance (1 / gallery size) and n.
The attacks are the paper's:

* **Mask2Face** (``Overlay2Face``): the anonymized photo against the original photos;
* **Mask2Mask** (``Overlay2Overlay``): the attacker anonymizes the database too;

each with the embedder finding the face on the anonymized image itself (alignment
``self``) and, for embedders that can, with the face geometry of the photo it came from
(alignment ``photo``: an attacker who knows where the face is). ``Face2Face`` (no
anonymizer) is each embedder's own accuracy, the ceiling. The controls (the same region
filled with no reconstruction) are ranked beside the anonymizers, as the floor a mask's
render must beat before it can be said to leak identity.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from benchmark.imageio import write_bytes_atomic
from benchmark.report_html import md_code, md_text
from benchmark.stats import wilson

ATTACKS = {"Mask2Face": "Overlay2Face", "Mask2Mask": "Overlay2Overlay"}
# The adaptive attacker's rows (benchmark/attacker.py): its name in the table by attacker.
ADAPTIVE = {
    "ridge": "Mask2Face + ridge adapter",
    "mlp": "Mask2Face + MLP adapter",
    "whitening": "Mask2Mask + whitening",
}
COLUMNS = (
    "anonymizer",
    "kind",
    "embedder",
    "attack",
    "alignment",
    "rank1",
    "ci_low",
    "ci_high",
    "chance",
    "hits",
    "n",
    "rank1_detected",
    "n_detected",
)


def leaderboard(results: Any) -> list[dict[str, Any]]:
    """The rows, strongest attack on the best-protecting anonymizer last: sorted by each
    anonymizer's strongest attack (lower is better privacy), then as scored."""
    sources = results.config["mask_sources"]
    controls = results.config.get("control_sources", [])
    rows = []
    for embedder in results.config["profile"]["embedders"]:
        face = results.find("Face2Face", embedder)
        rows.append(_row("none (photos)", "ceiling", embedder, "Face2Face", face))
        for source in [*sources, *controls]:
            kind = "control" if source in controls else _kind(results, source)
            for attack, scenario in ATTACKS.items():
                for alignment in ("self", "photo"):
                    try:
                        row = results.find(scenario, embedder, source, alignment=alignment)
                    except KeyError:  # this embedder cannot align on the photo
                        continue
                    rows.append(_row(source, kind, embedder, attack, row))
            for row in getattr(results, "adaptive", []):
                if (row["query_source"], row["embedder"]) == (source, embedder):
                    rows.append(_row(source, kind, embedder, ADAPTIVE[row["attacker"]], row))
    worst = {}
    for row in rows:
        worst[row["anonymizer"]] = max(worst.get(row["anonymizer"], 0.0), row["rank1"])
    order = {name: i for i, name in enumerate(worst)}
    rows.sort(
        key=lambda r: (r["kind"] != "ceiling", -worst[r["anonymizer"]], order[r["anonymizer"]])
    )
    return rows


def _kind(results: Any, source: str) -> str:
    return results.config.get("anonymizers", {}).get(source, {}).get("kind", "reconstruction")


def _row(source: str, kind: str, embedder: str, attack: str, row: dict) -> dict[str, Any]:
    hits, n = round(row["rank1_all"] * row["pairs"]), row["pairs"]
    low, high = wilson(hits, n)
    rate = row["rank1_all"]
    low, high = min(low, rate), max(high, rate)  # no rounding error puts k/n outside it
    return {
        "anonymizer": source,
        "kind": kind,
        "embedder": embedder,
        "attack": attack,
        "alignment": row.get("alignment", "self"),
        "rank1": row["rank1_all"],
        "ci_low": low,
        "ci_high": high,
        "chance": row["chance"],
        "hits": hits,
        "n": n,
        "rank1_detected": row["rank1"],
        "n_detected": row["n"],
    }


def strongest_attacks(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per anonymizer, the attack that re-identified most (its privacy, as measured here)."""
    best: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["kind"] != "ceiling" and row["rank1"] > best.get(row["anonymizer"], {}).get(
            "rank1", -1.0
        ):
            best[row["anonymizer"]] = row
    return list(best.values())


def adaptive_gains(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per anonymizer: its strongest fixed attack, its strongest adaptive one, and the gain
    (adaptive − fixed rank-1, over every embedder and alignment); only where adapted."""
    fixed: dict[str, dict] = {}
    adapted: dict[str, dict] = {}
    for row in rows:
        if row["kind"] == "ceiling":
            continue
        into = adapted if row["attack"] in ADAPTIVE.values() else fixed
        if row["rank1"] > into.get(row["anonymizer"], {}).get("rank1", -1.0):
            into[row["anonymizer"]] = row
    return {
        name: {"fixed": fixed[name], "adaptive": best, "gain": best["rank1"] - fixed[name]["rank1"]}
        for name, best in adapted.items()
        if name in fixed
    }


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def utility_lines(rows: list[dict[str, Any]], utility: dict[str, dict[str, Any]]) -> list[str]:
    """The privacy–utility table: each anonymizer's strongest attack beside what it keeps."""
    lines = [
        "## Privacy and utility",
        "",
        "Utility of each anonymized image against its photo (`benchmark/pipeline/mask/"
        "utility.py`): the share of crops anonymized at all, the share on which the prep "
        "detector still finds a face, landmark error (NME: mean distance over the photo's "
        "outer-eye-corner distance; MediaPipe's mesh, which can lose the face, and dlib's "
        "68 points placed in the photo's face box, which always answer — on a blank region "
        "they give their mean shape, the no-information level the `blank` control shows), "
        "and the head-pose difference. Each landmark model favours the reconstruction "
        "fitted to it (`mediapipe-mesh`, `sfm-eos`).",
        "",
        "| anonymizer | strongest rank-1 | anonymized | face detected | NME MediaPipe "
        "(median, n) | NME dlib-68 (median) | mean abs. Δyaw / Δpitch / Δroll (°, n) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in strongest_attacks(rows):
        kept = utility.get(row["anonymizer"])
        if kept is None:
            continue
        lines.append(
            f"| {md_code(row['anonymizer'])} | {_pct(row['rank1'])} | "
            f"{_pct(kept['anonymized_rate'])} | "
            f"{_pct(kept['detected_rate'])} | {_num(kept['nme_mediapipe_median'])} "
            f"({kept['nme_mediapipe_n']}) | {_num(kept['nme_dlib68_median'])} | "
            f"{_num(kept['yaw_diff_mean'], 1)} / {_num(kept['pitch_diff_mean'], 1)} / "
            f"{_num(kept['roll_diff_mean'], 1)} ({kept['pose_n']}) |"
        )
    return [*lines, ""]


def scatter(rows: list[dict[str, Any]], utility: dict[str, dict[str, Any]], out: Path) -> Path:
    """Privacy (strongest attack's rank-1) against utility (dlib-68 landmark error: always
    measurable), one point per anonymizer and control, with its interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for row in strongest_attacks(rows):
        kept = utility.get(row["anonymizer"], {})
        nme = kept.get("nme_dlib68_median")
        if nme is None:
            continue
        ax.errorbar(
            nme,
            100 * row["rank1"],
            yerr=[[100 * (row["rank1"] - row["ci_low"])], [100 * (row["ci_high"] - row["rank1"])]],
            fmt="o" if row["kind"] != "control" else "s",
            capsize=3,
        )
        ax.annotate(
            row["anonymizer"].split("+")[0],
            (nme, 100 * row["rank1"]),
            fontsize=8,
            xytext=(4, 4),
            textcoords="offset points",
        )
    chance = max((r["chance"] for r in rows if r["kind"] == "ceiling"), default=0.0)
    ax.axhline(100 * chance, color="grey", linestyle=":", label="chance (1 / gallery)")
    ax.set_xlabel("landmark error (NME, dlib 68 points, median) — lower keeps more geometry")
    ax.set_ylabel("strongest attack, rank-1 (%) — lower protects more")
    ax.set_title("Privacy and utility per anonymizer (squares: controls)")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def markdown(rows: list[dict[str, Any]], utility: dict[str, dict[str, Any]] | None = None) -> str:
    lines = [
        "# Leaderboard",
        "",
        "Rank-1 over every scored pair (a query with no face found is a miss), 95 % Wilson "
        "interval, chance = 1 / gallery. Lower is better privacy. `photo` alignment: the "
        "embedder uses the face geometry of the original photo (an attacker who knows where "
        "the face is). Controls fill the same region with no reconstruction. Each row's "
        "interval holds for that row; an anonymizer's *strongest* attack is the highest of "
        "its rows, so that number leans high and its interval is the row's, not one "
        "corrected for the choice. The adaptive gain is a difference of two such maxima, "
        "with no interval of its own.",
        "",
        "## Strongest attack per anonymizer",
        "",
        "| anonymizer | kind | rank-1 [95 % CI] | chance | attack | embedder | n |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in strongest_attacks(rows):
        lines.append(
            f"| {md_code(row['anonymizer'])} | {md_text(row['kind'])} | {_pct(row['rank1'])} "
            f"[{_pct(row['ci_low'])}, {_pct(row['ci_high'])}] | {_pct(row['chance'])} | "
            f"{md_text(row['attack'])} ({md_text(row['alignment'])}) | "
            f"{md_code(row['embedder'])} | {row['n']} |"
        )
    gains = adaptive_gains(rows)
    if gains:
        lines += [
            "",
            "## What adapting to the anonymizer adds",
            "",
            "The attacker trained on `lfw-train` (one photo per person, none of them evaluated) "
            "against each anonymizer: its strongest attack beside the strongest fixed one.",
            "",
            "| anonymizer | fixed: rank-1 (attack, embedder) | adaptive: rank-1 [95 % CI] "
            "(attack, embedder) | gain |",
            "|---|---|---|---|",
        ]
        for name, gain in gains.items():
            fixed, best = gain["fixed"], gain["adaptive"]
            lines.append(
                f"| {md_code(name)} | {_pct(fixed['rank1'])} ({md_text(fixed['attack'])}, "
                f"{md_text(fixed['alignment'])}, "
                f"{md_code(fixed['embedder'])}) | {_pct(best['rank1'])} [{_pct(best['ci_low'])}, "
                f"{_pct(best['ci_high'])}] ({md_text(best['attack'])}, "
                f"{md_text(best['alignment'])}, "
                f"{md_code(best['embedder'])}) | {100 * gain['gain']:+.1f} points |"
            )
    if utility:
        lines += ["", *utility_lines(rows, utility), "![privacy and utility](privacy_utility.png)"]
    lines += [
        "",
        "## Every attack",
        "",
        "| anonymizer | kind | embedder | attack | alignment | rank-1 [95 % CI] | chance | n |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {md_code(row['anonymizer'])} | {md_text(row['kind'])} | "
            f"{md_code(row['embedder'])} | {md_text(row['attack'])} | "
            f"{md_text(row['alignment'])} | {_pct(row['rank1'])} [{_pct(row['ci_low'])}, "
            f"{_pct(row['ci_high'])}] | {_pct(row['chance'])} | {row['n']} |"
        )
    return "\n".join(lines) + "\n"


def write_leaderboard(results: Any, out_dir: Path) -> dict[str, Path]:
    """leaderboard.json, .csv and .md beside results.json (each written atomically)."""
    rows = leaderboard(results)
    out_dir = Path(out_dir)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    utility = getattr(results, "utility", {}) or {}
    files = {
        "json": (
            json.dumps({"rows": rows, "utility": utility}, indent=1, allow_nan=False),
            out_dir / "leaderboard.json",
        ),
        "csv": (text.getvalue(), out_dir / "leaderboard.csv"),
        "md": (markdown(rows, utility), out_dir / "leaderboard.md"),
    }
    for content, path in files.values():
        write_bytes_atomic(path, content.encode())
    made = {kind: path for kind, (_, path) in files.items()}
    if utility:
        made["png"] = scatter(rows, utility, out_dir / "privacy_utility.png")
    return made
