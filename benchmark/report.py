"""Pictures a reviewer looks at: the contact sheet of crops and their masks."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from benchmark.claims import claim_records
from benchmark.errors import DmbenchError
from benchmark.imageio import write_bytes_atomic, write_files_atomic
from benchmark.pipeline.mask.stage import VARIANTS, MaskRun
from benchmark.report_html import html_report
from benchmark.report_html import md_code as _code
from benchmark.report_html import md_text as _text


def contact_sheet(
    run_dir: Path, mask_run: MaskRun, out: Path, identities: int = 6, tile: int = 160
) -> Path:
    """Rows of crop | overlay | mask_only | mask_only_black for the first masked identities."""
    from benchmark.imageio import load_image

    rows, seen = [], set()
    for item in mask_run.frames:
        if item.result.status != "masked" or item.identity in seen:
            continue
        seen.add(item.identity)
        crop = load_image(Path(run_dir) / item.crop).rgb
        outputs = [item.result.image(v) for v in VARIANTS]
        rows.append((item.identity, [outline_changed(crop, outputs[0]), *outputs]))
        if len(rows) == identities:
            break
    if not rows:
        raise ValueError("no masked crop to show")
    header, label_w = 40, 150
    sheet = Image.new("RGB", (label_w + 4 * tile, header + len(rows) * tile), "white")
    draw = ImageDraw.Draw(sheet)
    for line, text in enumerate(mask_run.backend.split("+")):
        draw.text((4, 3 + 12 * line), text, fill="gray")
    for col, title in enumerate(("crop", *VARIANTS)):
        draw.text((label_w + col * tile + 4, 3), title, fill="black")
    for r, (identity, images) in enumerate(rows):
        y = header + r * tile
        draw.text((4, y + tile // 2 - 6), identity[:22], fill="black")
        for col, image in enumerate(images):
            small = Image.fromarray(np.asarray(image)).resize((tile, tile), Image.BILINEAR)
            sheet.paste(small, (label_w + col * tile, y))
    out = Path(out)
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    write_bytes_atomic(out, buffer.getvalue())
    return out


def outline_changed(crop: np.ndarray, overlay: np.ndarray) -> np.ndarray:
    """The crop with the outline of the pixels its overlay changed (the face region) in red,
    so that a reviewer sees the region the mask covers."""
    import cv2

    changed = (crop != overlay).any(axis=-1).astype(np.uint8)
    closed = cv2.morphologyEx(changed, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    contours, _ = cv2.findContours(closed, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    out = np.ascontiguousarray(crop.copy())
    cv2.drawContours(out, contours, -1, (255, 0, 0), 2)
    return out


# -- the study report ------------------------------------------------------------------------
def paper_bars() -> dict[str, tuple[float, int]]:
    """The paper's bars, from the paper claims (one place for the numbers): Meeus et al.
    2023 Fig. 1 (Mask2Mask 289 of 555) and Yang et al.'s Mask2Face bound (≤ 0.52 %)."""
    from benchmark.specs import load_claims

    claims = {c.kind: c.params for c in load_claims() if c.profile == "paper"}
    published = claims["consistent_with_published"]
    n = published["paper_n"]
    return {
        "Mask2Mask": (published["paper_hits"] / n, n),
        "Mask2Face": (claims["compatible_with_at_most"]["max"], n),
    }


def _mean_rank(row: dict) -> str:
    return "—" if row["mean_rank0"] is None else f"{row['mean_rank0']:.1f}"


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def _ci(lo: float, hi: float) -> str:
    return f"[{_pct(lo)}–{_pct(hi)}]"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Labels hold names from the data: never read as mathtext (a "$" could not crash a chart).
    plt.rcParams["text.parse_math"] = False
    return plt


def _controls(results) -> list[str]:
    return list(results.config.get("control_sources", []))


def bar_chart(results) -> bytes:
    """Fig. 1-style bars: Mask2Face vs Mask2Mask per embedder, the paper's values, and the
    blank control's bars (scored with the photo's face geometry) beside the mask's."""
    from benchmark.stats import wilson

    plt = _plt()
    embedders = results.config["profile"]["embedders"]
    labels, values, errors, colours = [], [], [], []

    def bar(label: str, row: dict, colour: str) -> None:
        lo, hi = row["rank1_ci"]
        labels.append(label)
        values.append(row["rank1"])
        errors.append((row["rank1"] - lo, hi - row["rank1"]))
        colours.append(colour)

    for family, scenario in (("Mask2Face", "Overlay2Face"), ("Mask2Mask", "Overlay2Overlay")):
        paper, n = paper_bars()[family]
        lo, hi = wilson(round(paper * n), n)
        labels.append(f"{family}\npaper (YTF,\noriginal models)")
        values.append(paper)
        errors.append((paper - lo, hi - paper))
        colours.append("#999999")
        for embedder in embedders:
            colour = "#3b6ea8" if family == "Mask2Mask" else "#c44e52"
            bar(f"{family}\n{embedder}\nmask", results.find(scenario, embedder), colour)
            if _controls(results):  # the mask scored as its control is, for a fair pair
                try:
                    row = results.find(scenario, embedder, alignment="photo")
                    bar(f"{family}\n{embedder}\nmask*", row, colour)
                except KeyError:
                    pass
            for control in _controls(results):
                try:
                    row = results.find(scenario, embedder, control, alignment="photo")
                except KeyError:
                    continue
                name = control.split("+")[0]
                bar(f"{family}\n{embedder}\n{name} control*", row, "#e0b040")
    fig, ax = plt.subplots(figsize=(1.3 * len(labels) + 1, 4.2))
    xs = range(len(labels))
    ax.bar(
        xs,
        [100 * v for v in values],
        color=colours,
        yerr=[[100 * e[0] for e in errors], [100 * e[1] for e in errors]],
        capsize=4,
    )
    ax.set_xticks(list(xs), labels, fontsize=7)
    ax.set_ylabel("rank-1 accuracy (%)")
    # Chance of the masks' own rows (a control scored the original's way has a tiny gallery).
    chance = results.find("Overlay2Overlay", embedders[0])["chance"]
    ax.axhline(
        100 * chance,
        color="black",
        linestyle=":",
        linewidth=1,
        label=f"chance ({100 * chance:.2f} %)",
    )
    ax.set_title(
        f"profile {results.profile}: masks re-identified (95 % intervals); "
        "*aligned on the photo's face; control: the region without a reconstruction",
        fontsize=8,
    )
    ax.legend(fontsize=8)
    return _png(plt, fig)


def _png(plt, fig) -> bytes:
    """Every chart's last step: lay out, draw the PNG in memory, free the figure (written
    by ``write_report`` with the rest, so a chart is never half a file, nor written
    through a link)."""
    buffer = io.BytesIO()
    try:
        fig.tight_layout()
        fig.savefig(buffer, format="png", dpi=110)
    finally:
        plt.close(fig)
    return buffer.getvalue()


def cmc_chart(results) -> bytes:
    plt = _plt()
    embedders = results.config["profile"]["embedders"]
    fig, axes = plt.subplots(1, len(embedders), figsize=(5 * len(embedders), 3.6), squeeze=False)
    for ax, embedder in zip(axes[0], embedders, strict=True):
        for scenario in (
            "Face2Face",
            "Overlay2Face",
            "Overlay2Overlay",
            "MaskOnly2MaskOnly",
            "MaskOnlyBlack2MaskOnlyBlack",
        ):
            row = results.find(scenario, embedder)
            ax.plot(
                range(1, len(row["cmc"]) + 1),
                [100 * c for c in row["cmc"]],
                marker=".",
                label=scenario,
            )
        ax.set_title(f"CMC, {embedder}", fontsize=9)
        ax.set_xlabel("rank")
        ax.set_ylabel("identified (%)")
        ax.set_ylim(0, 100)
        ax.legend(fontsize=7)
    return _png(plt, fig)


def stored_claims(results) -> list[dict[str, Any]]:
    """The claim verdicts the study stored in results.json (judged there, once); a file
    written before they were stored is judged now, the same way."""
    return results.claims or claim_records(results)


OUTCOME_WORDS = {
    "pass": "holds",
    "fail": "**does not hold**",
    "xfail": "**does not hold** (recorded finding)",
    "skip": "not judged",
}


_PLAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9+._-]*$")


def _codes(values) -> str:
    return ", ".join(_code(v) for v in values)


def _surroundings_table(results) -> list[str]:
    """The report's first table: mask vs the control over the same region."""
    comparisons = [
        c for c in getattr(results, "control_comparisons", []) or [] if c["alignment"] == "photo"
    ]
    if not comparisons:
        return ["No control ran with this profile, so the mask's share cannot be separated.", ""]
    lines = [
        "How much re-identification comes from the mask, and how much from what it leaves "
        "visible? The **control** fills the same face region with flat grey (no "
        "reconstruction). Both are embedded with the face geometry found on the photo (the "
        "attacker knows where the face is in a prep crop), so the control is scored even "
        "though a grey face is rarely detected. *mask − control* is the paired difference "
        "over the same identities (a query not scored counts as a miss), with its 95 % "
        "bootstrap interval: only that excess can be credited to the render.",
        "",
        "| embedder | mask | scenario | mask rank-1 % (own detection, original protocol) "
        "| mask rank-1 % (photo geometry) | control rank-1 % (photo geometry) "
        "| mask − control, points [95 % CI] | n | chance % |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in comparisons:
        own = results.find(c["scenario"], c["embedder"], c["mask"])
        lo, hi = c["difference_ci"]
        lines.append(
            f"| {_text(c['embedder'])} | {_code(c['mask'].split('+')[0])} | "
            f"{_text(c['scenario'])} | "
            f"{_pct(own['rank1_all'])} | {_pct(c['mask_rank1_all'])} | "
            f"{_pct(c['control_rank1_all'])} | {100 * c['difference']:+.1f} "
            f"[{100 * lo:+.1f}, {100 * hi:+.1f}] | {c['n']:d} | {100 * c['chance']:.2f} |"
        )
    lines += [
        "",
        "Rank-1 here counts every query (a query on which no face was found is a miss). "
        "With the original protocol (each image's own face detection) the control is "
        "scored in the Scenarios table too: there a grey face is mostly not detected at all.",
        "",
    ]
    return lines


def _draw_lines(results) -> list[str]:
    draw = results.counts.get("draw")
    if not draw:
        return []
    lost = draw["lost"]
    reasons = list(lost["prep_frame_reasons_of_those"].items())[:6]
    target = draw["target"] if draw["target"] is not None else "all"
    lines = [
        "## Identities: drawn, valid, lost",
        "",
        f"- {_text(draw['outcome'])}; scored: **{_text(draw['scored'])}** (target: "
        f"{_text(target)}; passes: "
        + ", ".join(
            f"{_text(p['drawn'])} drawn → {_text(p['valid'])} valid" for p in draw["passes"]
        )
        + ").",
        f"- lost at prep (fewer than 2 sessions kept): "
        f"{_text(lost['prep_fewer_than_2_sessions'])}; their frames' reasons: "
        + ("; ".join(f"{_text(n)} × {_text(r)}" for r, n in reasons) or "none"),
        "- lost because an embedder found no face on the photo: "
        f"{_text(lost['no_face_embedding'])}",
        f"- lost to failed masks (privacy fails closed): {_text(lost['mask_failures'])} "
        f"({_text(lost['valid_if_masks_failed_open'])} would be valid had masks failed open "
        "as the original's did)",
        "- lost because an embedder found no face on an overlay: "
        f"{_text(lost['overlay_without_face'])}",
        "- valid per embedder alone: "
        + ", ".join(f"{_code(k)} {_text(v)}" for k, v in lost["valid_per_embedder"].items())
        + " (the study scores the identities valid for every embedder and every mask)",
        "",
    ]
    return lines


def _lock_lines(env: dict[str, Any]) -> list[str]:
    """The install's lock (digest, or how the install differs from it) and the CPU class:
    what the run's exact digests hold for (benchmark/reproduction.py)."""
    lock, cpu = env.get("lock") or {}, env.get("cpu") or {}
    if lock.get("sha256") and not lock.get("differ"):
        said = (
            f"installed from lock {_code(lock['lock'])} (sha256 {_code(lock['sha256'])}, "
            f"{_text(lock['pins'])} pins)"
        )
    elif lock.get("sha256"):
        differ = ", ".join(
            f"{k} {v['installed']} (locked {v['locked']})" for k, v in lock["differ"].items()
        )
        said = f"NOT as lock {_code(lock['lock'])} ({_code(lock['sha256'])}): {_code(differ)}"
    else:
        said = f"unlocked install: {_code(lock.get('why', 'no lock recorded'))}"
    name = cpu.get("model_name") or cpu.get("machine", "?")
    return [f"Environment: {said}.", "", f"CPU: {_code(name)}, class {_code(cpu.get('class'))}."]


BAR_FIGURE = "fig1_mask2face_vs_mask2mask.png"
CMC_FIGURE = "cmc.png"


def _header(results, claims_from: str) -> list[str]:
    profile = results.config["profile"]
    return [
        f"# dmbench report — profile {_code(results.profile)}",
        "",
        _text(profile["description"]),
        "",
        f"Data: {_code(results.config['data'])} ({_text(results.config['dataset_identities'])} "
        f"identities); protocol **{_text(profile['protocol'])}**; detector "
        f"{_code(profile['detector'])}, pose {_code(profile['pose'])}, masks "
        + _codes(results.config["mask_sources"])
        + "; controls "
        + (_codes(_controls(results)) or "none")
        + "; embedders "
        + _codes(profile["embedders"])
        + f"; valid-identity rule {_code(profile.get('identity_rule', 'usable-sessions'))}"
        + f"; reference quirks {'on' if profile.get('reference_quirks') else 'off'}.",
        "",
        "## Mask or surroundings?",
        "",
        *_surroundings_table(results),
        "## Claims",
        "",
        (
            "An evaluation (`dmbench evaluate`): the paper's claims are about its digital "
            "mask and are judged by `dmbench reproduce`; this run is read on "
            "`leaderboard.md`, beside this report."
            if results.config.get("anonymizers")
            else "Each claim is judged only where it has 80 % power (its minimum n); see "
            "`benchmark/specs/claims.toml` for the reasoning."
        )
        + (
            f" This profile has no claims of its own: it is read against the claims of "
            f"{_code(claims_from)}, for comparison."
            if claims_from != results.profile
            else ""
        ),
        "",
    ]


def _claims_lines(results, companions: tuple) -> list[str]:
    lines = ["| claim | case | min n | verdict | measured |", "|---|---|---|---|---|"]
    for record in stored_claims(results):
        lines.append(
            f"| {_text(record['statement'])} | {_text(record['case'])} | "
            f"{_text(record.get('min_n', ''))} | {OUTCOME_WORDS[record['outcome']]} | "
            f"{_text(record['measured'])} |"
        )
    for other in companions:
        lines += ["", f"### Beside it: profile {_code(other.profile)}", ""]
        lines += ["| claim | case | verdict | measured |", "|---|---|---|---|"]
        for record in stored_claims(other):
            lines.append(
                f"| {_text(record['statement'])} | {_text(record['case'])} | "
                f"{OUTCOME_WORDS[record['outcome']]} | {_text(record['measured'])} |"
            )
    return lines


def _scenario_lines(results) -> list[str]:
    lines = [
        "## Scenarios",
        "",
        "rank-1 is over the queries scored (own embedding and true database entry "
        "present), with a 95 % bootstrap interval over identities; *rank-1 all* counts "
        "every detection failure as a miss. Mean rank is 0-based as the original. "
        "*control* gives each control's rank-1 all in the same scenario and alignment. "
        "Alignment *own*: each image's own face detection (the original's); *photo*: the "
        "face geometry found on the photo.",
        "",
        "| embedder | scenario | query masks → database masks | alignment | n "
        "| rank-1 % [95 % CI] | rank-1 all % | control rank-1 all % | rank-5 % | rank-10 % "
        "| mean rank | chance % | no face q/db |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in results.scenarios:
        alignment = row.get("alignment", "self")
        cells = []
        if not row.get("control") and row["family"] != "Face2Face" and not row["cross_mask"]:
            for control in _controls(results):
                try:
                    other = results.find(row["scenario"], row["embedder"], control, None, alignment)
                except KeyError:
                    continue
                cells.append(f"{_text(control.split('+')[0])} {_pct(other['rank1_all'])}")
        lines.append(
            f"| {_text(row['embedder'])} | {_text(row['scenario'])} | "
            f"{_text(row['query_source'])} → {_text(row['database_source'])} | "
            f"{'own' if alignment == 'self' else 'photo'} | {row['n']:d} | "
            f"{_pct(row['rank1'])} {_ci(*row['rank1_ci'])} | {_pct(row['rank1_all'])} | "
            f"{', '.join(cells)} | {_pct(row['rank5'])} | {_pct(row['rank10'])} | "
            f"{_mean_rank(row)} | {100 * row['chance']:.2f} | "
            f"{row['query_failures']:d}/{row['database_failures']:d} |"
        )
    return lines


def _closing_lines(results) -> list[str]:
    lines = [
        "",
        "## Geometry-only leakage probe",
        "",
        "Nearest-neighbour re-identification on Procrustes-aligned mesh vertices alone.",
        "",
        "| reconstruction | n | rank-1 % [95 % CI] | chance % |",
        "|---|---|---|---|",
    ]
    for source, probe in results.leakage.items():
        lines.append(
            f"| {_text(source)} | {probe['n']:d} | {_pct(probe['rank1'])} "
            f"{_ci(*probe['rank1_ci'])} | {100 * probe['chance']:.2f} |"
        )
    lines += [
        "",
        "## Failures",
        "",
        f"- prep: {_text(results.counts['prep'])}; drop reasons: "
        f"{_text(results.counts['prep_drop_reasons'])}",
    ]
    for source, info in results.counts["mask"].items():
        lines.append(
            f"- mask {_code(source)}: {_text(info['counts'])}; reasons: {_text(info['reasons'])}"
        )
    for embedder, info in results.counts["recognize"].items():
        lines.append(
            f"- recognize {_code(embedder)}: no face found on {_text(info['no_face'])} of "
            f"{_text(info['images'])} images"
        )
    lines += [
        "",
        "## Contact sheets",
        "",
        "The crop column outlines, in red, the pixels the mask changed (the face region).",
        "",
    ]
    for source in [*results.config["mask_sources"], *_controls(results)]:
        if _PLAIN_NAME.match(str(source)):  # a backend's name: safe inside a path
            lines.append(f"![{_text(source)}](prep/masks/{source}/contact_sheet.png)")
        else:
            lines.append(f"- {_code(source)}: not shown (its name is not a backend's)")
    lines += ["", "## Timings", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {_text(k)} | {v:.1f} |" for k, v in results.timings.items()]
    env = results.environment
    lines += [
        "",
        f"dmbench {_text(env['dmbench'])}, Python {_text(env['python'])} on "
        f"{_text(env['machine'])}, device {_text(env['device'])}; packages: "
        + ", ".join(f"{_text(k)} {_text(v)}" for k, v in env["packages"].items()),
        "",
        *_lock_lines(env),
        "",
    ]
    return lines


def report_markdown(results, companions: tuple = ()) -> str:
    """report.md's text: the mask-vs-surroundings table first, then claims, identities,
    every scenario with intervals, chance and the control beside it, failures, timings,
    figures. Every string from the data is escaped (``_text``, ``_code``)."""
    from benchmark.specs import load_profiles

    profiles = load_profiles()
    profile = profiles.get(results.profile)
    claims_from = profile.extra.get("claims_from", results.profile) if profile else results.profile
    lines = [
        *_header(results, claims_from),
        *_claims_lines(results, companions),
        "",
        f"![Mask2Face vs Mask2Mask]({BAR_FIGURE})",
        "",
        f"![CMC]({CMC_FIGURE})",
        "",
        *_draw_lines(results),
        *_scenario_lines(results),
        *_closing_lines(results),
    ]
    return "\n".join(lines)


def write_report(results, out_dir: Path, companions: tuple = ()) -> Path:
    """report.md, its figures and report.html (the same, self-contained) in ``out_dir``.

    ``companions``: results of sibling profiles (``paper`` and ``paper-fixed``) shown
    beside this one when both ran. Everything is drawn in memory first and written
    together (each file atomically, a link replaced and never followed), so a results
    file the report cannot be drawn from leaves the folder as it was.
    """
    out_dir = Path(out_dir)
    try:
        figures = {BAR_FIGURE: bar_chart(results), CMC_FIGURE: cmc_chart(results)}
        text = report_markdown(results, companions)
        page = html_report(text, out_dir, figures)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise DmbenchError(
            f"{out_dir / 'results.json'}: no report can be drawn from these results "
            f"({type(exc).__name__}: {exc}); nothing was written"
        ) from exc
    report = out_dir / "report.md"
    write_files_atomic(
        out_dir, {**figures, report.name: text.encode(), "report.html": page.encode()}
    )
    return report
