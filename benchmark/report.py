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
        rows.append((item.identity, [crop] + [item.result.images[v] for v in VARIANTS]))
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
