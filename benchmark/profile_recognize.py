"""Where an embedder's time goes, per image: decoding, detection, landmarks / alignment, the
descriptor (issue 23, item 1). A measuring tool beside ``nox -s bench``, not a test.

    python -m benchmark.profile_recognize [--images N] [--embedders sface,dlib-resnet-onnx]

It embeds N real LFW-dev photos, cut to the prep stage's 224×224 frame and stored as PNG as
a run folder holds them, part by part through the embedders' own methods, and prints a
table of milliseconds per image and each part's share. Threads: ``$DMBENCH_THREADS`` for the
ONNX sessions (a worker of a pool of two gets one), dlib's own choice otherwise.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from benchmark.assets import AssetStore
from benchmark.imageio import encode_png, load_image

CROP = 224
PARTS = ("decode", "detect", "landmarks", "descriptor")


def sample_crops(store: AssetStore, count: int) -> list[bytes]:
    """PNG bytes of ``count`` LFW-dev photos cut to their centre 224×224 (the prep frame)."""
    from benchmark.datasets import resolve_dataset

    dataset = resolve_dataset("lfw", store)
    crops = []
    for path in [frame.path for frame in dataset.frames[:count]]:
        rgb = load_image(path).rgb
        top, left = (rgb.shape[0] - CROP) // 2, (rgb.shape[1] - CROP) // 2
        crops.append(encode_png(np.ascontiguousarray(rgb[top : top + CROP, left : left + CROP])))
    return crops


def _timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def profile(embedder, pngs: list[bytes]) -> dict[str, float]:
    """Seconds per part over ``pngs`` (each image through every part once)."""
    seconds = dict.fromkeys(PARTS, 0.0)
    took, images = _timed(lambda: [load_image("crop.png", data).rgb for data in pngs])
    seconds["decode"] = took
    if embedder.name == "sface":
        from benchmark.pipeline.recognize.sface import as_bgr

        bgrs = [as_bgr(image) for image in images]
        seconds["detect"], faces = _timed(lambda: [embedder.detect(b) for b in bgrs])
        found = [(b, f) for b, f in zip(bgrs, faces, strict=True) if f is not None]
        seconds["landmarks"], crops = _timed(lambda: [embedder.align(b, f) for b, f in found])
        seconds["descriptor"], _ = _timed(lambda: embedder.features(crops))
        return seconds
    # the dlib embedders (DlibFaces): HOG, the 5-point shape, the network
    seconds["detect"], faces = _timed(lambda: [embedder.best_face(image) for image in images])
    found = [(i, f[0]) for i, f in zip(images, faces, strict=True) if f is not None]
    seconds["landmarks"], shapes = _timed(lambda: [embedder.predictor(i, r) for i, r in found])
    batch = embedder.batch_size
    kept = [i for i, _ in found]

    def describe() -> None:
        for start in range(0, len(kept), batch):
            embedder.descriptors(kept[start : start + batch], shapes[start : start + batch])

    seconds["descriptor"], _ = _timed(describe)
    return seconds


def table(rows: dict[str, dict[str, float]], count: int) -> str:
    lines = [
        f"ms per image over {count} LFW-dev crops (224×224 PNG), and each part's share",
        "",
        "| embedder | " + " | ".join(PARTS) + " | total |",
        "|---|" + "---:|" * (len(PARTS) + 1),
    ]
    for name, seconds in rows.items():
        total = sum(seconds.values())
        cells = [
            f"{1000 * seconds[p] / count:.1f} ({100 * seconds[p] / total:.0f} %)" for p in PARTS
        ]
        lines.append(f"| `{name}` | " + " | ".join(cells) + f" | {1000 * total / count:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from benchmark.pipeline.recognize.types import EMBEDDERS

    parser = argparse.ArgumentParser(prog="python -m benchmark.profile_recognize")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--embedders", default="sface,dlib-resnet,dlib-resnet-onnx")
    args = parser.parse_args(argv)
    store = AssetStore()
    pngs = sample_crops(store, max(1, args.images))
    rows = {}
    for name in args.embedders.split(","):
        embedder = EMBEDDERS.create(name.strip(), store=store, device="cpu")
        profile(embedder, pngs[:2])  # warm-up: first-call allocations are not the model's
        rows[embedder.name] = profile(embedder, pngs)
    print(table(rows, len(pngs)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
