"""Pictures a reviewer looks at: the contact sheet of crops and their masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from benchmark.pipeline.mask import VARIANTS, MaskRun


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
        rows.append((item.identity, [crop] + [item.result.image(v) for v in VARIANTS]))
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
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out


# -- the study report ------------------------------------------------------------------------
PAPER_VALUES = {"Mask2Face": 0.0052, "Mask2Mask": 0.521}  # Yang et al. ≤ 0.52 %; Meeus 52.1 %


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def bar_chart(results, out: Path) -> Path:
    """Fig. 1-style bars: Mask2Face vs Mask2Mask per recogniser, beside the paper's values."""
    plt = _plt()
    embedders = results.config["profile"]["embedders"]
    labels, values, errors, colours = [], [], [], []
    for family, scenario in (("Mask2Face", "Overlay2Face"), ("Mask2Mask", "Overlay2Overlay")):
        from benchmark.metrics import wilson_interval

        paper = PAPER_VALUES[family]
        lo, hi = wilson_interval(round(paper * 555), 555)
        labels.append(f"{family}\npaper (YTF,\noriginal models)")
        values.append(paper)
        errors.append((paper - lo, hi - paper))
        colours.append("#999999")
        for embedder in embedders:
            row = results.find(scenario, embedder)
            lo, hi = row["rank1_ci"]
            labels.append(f"{family}\n{embedder}")
            values.append(row["rank1"])
            errors.append((row["rank1"] - lo, hi - row["rank1"]))
            colours.append("#3b6ea8" if family == "Mask2Mask" else "#c44e52")
    fig, ax = plt.subplots(figsize=(1.6 * len(labels) + 1, 4))
    xs = range(len(labels))
    ax.bar(
        xs,
        [100 * v for v in values],
        color=colours,
        yerr=[[100 * e[0] for e in errors], [100 * e[1] for e in errors]],
        capsize=4,
    )
    ax.set_xticks(list(xs), labels, fontsize=8)
    ax.set_ylabel("rank-1 accuracy (%)")
    chance = max(r["chance"] for r in results.scenarios)
    ax.axhline(
        100 * chance,
        color="black",
        linestyle=":",
        linewidth=1,
        label=f"chance ({100 * chance:.2f} %)",
    )
    ax.set_title(
        f"profile {results.profile}: masks re-identified (95 % bootstrap intervals)", fontsize=9
    )
    ax.legend(fontsize=8)
    return _save(plt, fig, out)


def _save(plt, fig, out: Path) -> Path:
    """Every chart's last step: lay out, write the PNG, free the figure."""
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def cmc_chart(results, out: Path) -> Path:
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
    return _save(plt, fig, out)


def write_report(results, out_dir: Path) -> Path:
    """report.md with every scenario, intervals, chance, failures, timings and figures."""
    from benchmark.claims import evaluate
    from benchmark.specs import load_claims

    out_dir = Path(out_dir)
    bar = bar_chart(results, out_dir / "fig1_mask2face_vs_mask2mask.png")
    cmc = cmc_chart(results, out_dir / "cmc.png")
    profile = results.config["profile"]
    lines = [
        f"# dmbench report — profile `{results.profile}`",
        "",
        f"{profile['description']}",
        "",
        f"Data: `{results.config['data']}`, {results.config['dataset_identities']} identities "
        + (
            f"drawn (seed {profile['seed']})"
            if profile.get("identities")
            else f"(all; valid-identity rule `{profile.get('identity_rule', 'usable-sessions')}`)"
        )
        + f"; protocol **{profile['protocol']}**; detector "
        f"`{profile['detector']}`, pose `{profile['pose']}`, masks "
        + ", ".join(f"`{s}`" for s in results.config["mask_sources"])
        + "; recognisers "
        + ", ".join(f"`{e}`" for e in profile["embedders"])
        + ".",
        "",
        "## Claims",
        "",
        "| claim | recogniser | holds | measured |",
        "|---|---|---|---|",
    ]
    for claim in load_claims():
        if claim.profile != results.profile:
            continue
        for embedder in profile["embedders"]:
            verdict = evaluate(claim, results, embedder)
            lines.append(
                f"| {claim.statement} | {embedder} | "
                f"{'yes' if verdict.holds else '**no**'} | {verdict.measured} |"
            )
    lines += [
        "",
        f"![Mask2Face vs Mask2Mask]({bar.name})",
        "",
        f"![CMC]({cmc.name})",
        "",
        "## Scenarios",
        "",
        "rank-1 is over the queries scored (own embedding and true database entry "
        "present), with a 95 % bootstrap interval over identities; *rank-1 all* counts "
        "every detection failure as a miss. Mean rank is 0-based as the original.",
        "",
        "| recogniser | scenario | query masks → database masks | n | rank-1 % [95 % CI] "
        "| rank-1 all % | rank-5 % | rank-10 % | mean rank | chance % | no face q/db |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in results.scenarios:
        lo, hi = row["rank1_ci"]
        lines.append(
            f"| {row['embedder']} | {row['scenario']} | {row['query_source']} → "
            f"{row['database_source']} | {row['n']} | {_pct(row['rank1'])} "
            f"[{_pct(lo)}–{_pct(hi)}] | {_pct(row['rank1_all'])} | {_pct(row['rank5'])} | "
            f"{_pct(row['rank10'])} | {row['mean_rank0']:.1f} | {100 * row['chance']:.2f} | "
            f"{row['query_failures']}/{row['database_failures']} |"
        )
    lines += [
        "",
        "## Geometry-only leakage probe",
        "",
        "Nearest-neighbour re-identification on Procrustes-aligned mesh vertices alone.",
        "",
        "| reconstruction | n | rank-1 % [95 % CI] | chance % |",
        "|---|---|---|---|",
    ]
    for source, probe in results.leakage.items():
        lo, hi = probe["rank1_ci"]
        lines.append(
            f"| {source} | {probe['n']} | {_pct(probe['rank1'])} [{_pct(lo)}–"
            f"{_pct(hi)}] | {100 * probe['chance']:.2f} |"
        )
    lines += [
        "",
        "## Failures",
        "",
        f"- prep: {results.counts['prep']}; drop reasons: {results.counts['prep_drop_reasons']}",
    ]
    for source, info in results.counts["mask"].items():
        lines.append(f"- mask `{source}`: {info['counts']}; reasons: {info['reasons']}")
    for embedder, info in results.counts["recognize"].items():
        line = (
            f"- recognise `{embedder}`: no face found on {info['no_face']} of "
            f"{info['images']} images"
        )
        if "identities_lost_to_mask_failures" in info:
            line += (
                f"; valid identities {info['valid_identities']} (lost to failed masks "
                f"{info['identities_lost_to_mask_failures']}, to overlays without a face "
                f"{info['identities_lost_to_overlay_embeddings']}; "
                f"{info['valid_if_masks_failed_open']} had masks failed open as the "
                "original's did)"
            )
        lines.append(line)
    lines += ["", "## Contact sheets", ""]
    for source in results.config["mask_sources"]:
        lines.append(f"![{source}](prep/masks/{source}/contact_sheet.png)")
    lines += ["", "## Timings", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in results.timings.items()]
    env = results.environment
    lines += [
        "",
        f"dmbench {env['dmbench']}, Python {env['python']} on {env['machine']}, "
        f"device {env['device']}; packages: "
        + ", ".join(f"{k} {v}" for k, v in env["packages"].items()),
        "",
    ]
    report = out_dir / "report.md"
    report.write_text("\n".join(lines))
    return report
