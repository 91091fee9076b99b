"""Mask stage: reconstruct the face in 3D, render it back in pose, cut it to the face.

For every prep crop it writes the original's three images — ``overlay`` (the crop with
the face region replaced by the render), ``mask_only`` (the render inside the face
region, white elsewhere) and ``mask_only_black`` (the same on black) — or, when any
step fails, nothing at all and a recorded reason. Privacy fails closed: pixels of the
face region that the mesh does not cover take the background colour, never the photo's,
and an output that would still show the photo inside the face region is refused.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.assets import AssetStore
from benchmark.cache import Cache
from benchmark.device import DevicePlan
from benchmark.errors import DmbenchError, ImageReadError
from benchmark.imageio import (
    atomic_writer,
    decode_png,
    decoder_version,
    encode_png,
    ensure_folder,
    load_image,
    write_png_atomic,
)
from benchmark.pipeline.executor import Executor, Miss, SerialExecutor, run_through_cache
from benchmark.pipeline.mask.anonymizers import (
    NEAR_COPY_PSNR_DB,
    Anonymized,
    Anonymizer,
    AnonymizerCrash,
    ControlFill,
    DigitalMask,
    FolderAnonymizer,
    PluginAnonymizer,
    paint_over,
)
from benchmark.pipeline.mask.types import CONTROLS, CUTS, RECONSTRUCTORS, RENDERERS, MaskFailure
from benchmark.pipeline.stage_base import RunOutcomes, Stage, create_backends, write_run_record
from benchmark.runfolder import RunPaths, check_names, read_table
from benchmark.specs import MASK_VARIANTS

STAGE = "mask"
VARIANTS = MASK_VARIANTS  # the three images of every crop (defined once, in specs)


@dataclass(frozen=True)
class MaskParams:
    """Guards that make the stage fail closed (see ``compose``)."""

    size: int = 224
    min_coverage: float = 0.25  # render must cover ≥ this share of the face region
    max_photo_share: float = 0.05  # at most this share of region pixels may equal the photo


@dataclass
class MaskResult:
    status: str  # masked | failed
    reason: str = ""
    images: dict[str, np.ndarray] | None = field(default=None, repr=False)
    vertices: np.ndarray | None = field(default=None, repr=False)
    info: dict = field(default_factory=dict)
    cached: bool = False
    encoded: dict[str, bytes] | None = field(default=None, repr=False)  # PNG of each variant
    crashed: bool = False  # the anonymizer raised: not the crop's verdict, never cached
    key: str = ""  # its cache key: where the cache keeps its images, for the run folder

    def image(self, variant: str) -> np.ndarray:
        """One output as pixels (decoded from the cache's PNG on demand)."""
        if self.images is not None:
            return self.images[variant]
        if self.encoded is None:
            raise ValueError(f"no {variant} image: the mask failed ({self.reason})")
        return decode_png(self.encoded[f"{variant}.png"])

    @property
    def masked(self) -> bool:
        return self.status == "masked"


def compose(
    crop: np.ndarray,
    rendering_rgb: np.ndarray,
    coverage: np.ndarray,
    region: np.ndarray,
    params: MaskParams,
) -> dict[str, np.ndarray]:
    """A render's three outputs over ``region``, or MaskFailure when they would not hide
    the face (``paint_over`` then ``check_output``)."""
    painted = paint_over(crop, rendering_rgb, coverage, region)
    return check_output(crop, Anonymized(painted, region, drawn=region & coverage), params)


def check_output(crop: np.ndarray, made: Anonymized, params: MaskParams) -> dict[str, np.ndarray]:
    """The three outputs of any anonymizer, or MaskFailure when its output cannot be
    trusted to hide the face: the wrong size or type, an empty region, content covering
    too little of it, more than ``max_photo_share`` of the region equal to the photo, or,
    for an output dmbench did not draw, a near-copy of the photo over the region widened
    to what it must change."""
    size = params.size
    image, region = made.image, made.region
    if not isinstance(image, np.ndarray) or image.shape != crop.shape or image.dtype != np.uint8:
        got = (
            f"{image.shape} {image.dtype}"
            if isinstance(image, np.ndarray)
            else type(image).__name__
        )
        raise MaskFailure(
            f"the anonymizer returned an image of {got}, not {size}x{size}x3 uint8 like its crop"
        )
    if not isinstance(region, np.ndarray) or region.shape != crop.shape[:2]:
        got = f"{region.shape}" if isinstance(region, np.ndarray) else type(region).__name__
        raise MaskFailure(f"the anonymizer returned a region of {got}, not {size}x{size}")
    region, covered = checked_region(made)
    if not region.any():
        raise MaskFailure("empty face region")
    share = covered.sum() / region.sum()
    if share < params.min_coverage:
        raise MaskFailure(
            f"render covers {share:.0%} of the face region (< {params.min_coverage:.0%})"
        )
    same = (image[region] == crop[region]).all(axis=-1).mean()
    if same > params.max_photo_share:
        raise MaskFailure(
            f"{same:.0%} of the face region would equal the photo "
            f"(> {params.max_photo_share:.0%}); refusing to write it"
        )
    if made.must_change is not None:  # an output dmbench did not draw: no near-copy either
        error = np.square(image[region].astype(np.float64) - crop[region]).mean()
        psnr = np.inf if error == 0 else 10 * np.log10(255.0**2 / error)
        if psnr > NEAR_COPY_PSNR_DB:
            raise MaskFailure(
                f"a near-copy of the photo (PSNR {psnr:.1f} dB over the face > "
                f"{NEAR_COPY_PSNR_DB:.0f} dB); refusing to write it"
            )
    mask_only = np.full_like(crop, 255)
    mask_only[covered] = image[covered]
    mask_only_black = np.zeros_like(crop)
    mask_only_black[covered] = image[covered]
    return {"overlay": image, "mask_only": mask_only, "mask_only_black": mask_only_black}


def checked_region(made: Anonymized) -> tuple[np.ndarray, np.ndarray]:
    """The region the stage checks (the declared one, and what the output must change)
    and the part of it the anonymizer drew."""
    region = made.region.astype(bool, copy=False)
    if made.must_change is not None:
        region = region | made.must_change
    return region, region if made.drawn is None else region & made.drawn


class MaskStage(Stage):
    """One anonymizer through the cache: a reconstruction (reconstruct + render + cut,
    named ``<reconstruct>+<render>+<cut>``), a control over a cut (``<control>+<cut>``), a
    plug-in (``<plug-in>+<cut>``) or a folder of images made elsewhere."""

    name = STAGE
    upstream = ("benchmark.pipeline.prep",)

    def __init__(
        self,
        anonymizer: Anonymizer,
        params: MaskParams | None = None,
        cache: Cache | None = None,
        store: AssetStore | None = None,
    ) -> None:
        self.anonymizer = anonymizer
        super().__init__(anonymizer.backends, params or MaskParams(), cache, store)
        # Stated constants of any role (a control's grey, a cut's geometry) key the cache.
        self._settings = {
            b.name: settings for b in self.backends.values() if (settings := b.settings())
        }

    @property
    def is_control(self) -> bool:
        return self.anonymizer.kind == "control"

    @classmethod
    def from_names(
        cls,
        reconstruct: str | None = None,
        render: str | None = None,
        cut: str | None = None,
        *,
        control: str | None = None,
        anonymizer: str | None = None,
        anonymized: str | Path | None = None,
        store: AssetStore | None = None,
        device: str | DevicePlan = "cpu",
        params: MaskParams | None = None,
        cache: Cache | None = None,
    ) -> MaskStage:
        """The stage from names: a reconstruction by default; ``control`` fills the cut's
        region instead; ``anonymizer`` is any anonymizer by name (a reconstruction, a
        control, an installed plug-in, ``module:callable``); ``anonymized`` is a folder."""
        store = store or AssetStore()
        if anonymizer is not None and anonymizer.startswith("folder:"):
            anonymized, anonymizer = anonymizer.removeprefix("folder:"), None
        if anonymizer in RECONSTRUCTORS.names():
            reconstruct, anonymizer = anonymizer, None
        elif anonymizer in CONTROLS.names():
            control, anonymizer = anonymizer, None

        def made(roles: dict[str, tuple[Any, str | None]]) -> dict[str, Any]:
            return create_backends(roles | {"cut": (CUTS, cut)}, store, device)

        chosen: Anonymizer
        if anonymized is not None:
            chosen = FolderAnonymizer(anonymized, made({})["cut"], store)
        elif anonymizer is not None:
            chosen = PluginAnonymizer(anonymizer, made({})["cut"], store)
        elif control:
            parts = made({"control": (CONTROLS, control)})
            chosen = ControlFill(parts["control"], parts["cut"])
        else:
            parts = made(
                {"reconstruct": (RECONSTRUCTORS, reconstruct), "render": (RENDERERS, render)}
            )
            chosen = DigitalMask(parts["reconstruct"], parts["render"], parts["cut"])
        stage = cls(chosen, params, cache, store)
        return stage.remember(store, device, names=chosen.recipe_names())

    @classmethod
    def for_control(cls, control: str, cut: str | None = None, **kwargs) -> MaskStage:
        """A control (``blank``, ``blur``, ...) over the same cut as the masks it controls."""
        return cls.from_names(cut=cut, control=control, **kwargs)

    def key_params(self) -> dict[str, Any]:
        return asdict(self.params) | ({"settings": self._settings} if self._settings else {})

    def run_crop(self, crop: np.ndarray) -> MaskResult:
        """Mask one 224×224 RGB uint8 crop (cached by its pixels' sha256)."""
        return self.run_crops([crop])[0]

    def run_crops(self, crops: list[np.ndarray]) -> list[MaskResult]:
        """Mask several crops: each from the cache, or computed (``compute_crops``)."""
        found = [self.look_up(crop) for crop in crops]
        todo = [i for i, result in enumerate(found) if isinstance(result, str)]
        computed = self.compute_crops([(crops[i], found[i]) for i in todo])  # type: ignore[misc]
        for i, result in zip(todo, computed, strict=True):
            found[i] = result
        return found  # type: ignore[return-value]

    def look_up(self, crop: np.ndarray) -> MaskResult | str:
        """The crop's result from the cache, or on a miss its cache key for
        ``compute_crops``. No model runs here."""
        return self.look_up_digest(pixels_sha256(crop))

    def look_up_digest(self, crop_sha256: str) -> MaskResult | str:
        """``look_up`` for a crop whose pixels' sha256 is known (nothing to decode)."""
        key = self.key(crop_sha256)
        cached = self._from_cache(key) if self.anonymizer.cacheable else None
        if cached is None:
            return key
        cached.key = key
        return cached

    def compute_crops(self, items: list[tuple]) -> list[MaskResult]:
        """Anonymize ``(crop, cache key[, path in the run folder])`` items the cache did not
        have, and store them (what an executor's worker runs). The crops go to the
        anonymizer together (RingNet: one network call for many crops)."""
        self.load_models()
        crops = [item[0] for item in items]
        names = [item[2] if len(item) > 2 else "" for item in items]
        todo = [i for i, crop in enumerate(crops) if self._well_formed(crop)]
        made: dict[int, Anonymized | MaskFailure] = {}
        if todo:
            batch = self.anonymizer.anonymize_batch
            try:
                made = dict(
                    zip(
                        todo, batch([crops[i] for i in todo], [names[i] for i in todo]), strict=True
                    )
                )
            except Exception:  # retry crop by crop: one bad crop must not sink the batch
                for i in todo:
                    try:
                        made[i] = batch([crops[i]], [names[i]])[0]
                    except Exception as exc:
                        label = self.anonymizer.crash_label
                        made[i] = AnonymizerCrash(f"{label} crashed: {type(exc).__name__}: {exc}")
                if len(todo) > 1 and all(isinstance(made[i], AnonymizerCrash) for i in todo):
                    raise DmbenchError(  # systemic (out of memory, a broken model): stop loudly
                        f"{self.anonymizer.name} failed on every crop of a batch of "
                        f"{len(todo)}: {made[todo[0]].reason}"
                    ) from None
        # A crash is not the crop's verdict: recorded, never cached (retried next run).
        crashed = {i for i, result in made.items() if isinstance(result, AnonymizerCrash)}
        results = []
        for i, (_, key, *_) in enumerate(items):
            results.append(self._finish(crops[i], made.get(i)))
            results[i].key = key
            self._store(key, results[i], save=i not in crashed and self.anonymizer.cacheable)
        return results

    def _from_cache(self, key: str) -> MaskResult | None:
        entry = self.cache.get(STAGE, key)
        if entry is None:
            return None
        record = entry.record
        result = MaskResult(record["status"], record["reason"], info=record["info"], cached=True)
        if result.status == "masked":
            result.encoded = {f"{v}.png": entry.files[f"{v}.png"] for v in VARIANTS}
            if "vertices.npy" in entry.files:  # controls have no geometry
                result.vertices = np.load(io.BytesIO(entry.files["vertices.npy"]))
        return result

    def _store(self, key: str, result: MaskResult, save: bool = True) -> None:
        """Encode the result's images (the outputs are written from them) and, with
        ``save``, put it in the cache."""
        files = {}
        if result.images is not None:
            files = {f"{v}.png": encode_png(result.images[v]) for v in VARIANTS}
            result.encoded = dict(files)
            if result.vertices is not None:
                buffer = io.BytesIO()
                np.save(buffer, result.vertices)
                files["vertices.npy"] = buffer.getvalue()
        if not save:
            return
        self.cache.put(
            STAGE,
            key,
            {"status": result.status, "reason": result.reason, "info": result.info},
            files,
            code=self.code,
        )

    def _well_formed(self, crop: np.ndarray) -> bool:
        size = self.params.size
        return crop.shape == (size, size, 3) and crop.dtype == np.uint8

    def _finish(self, crop: np.ndarray, made: Anonymized | MaskFailure | None) -> MaskResult:
        """The stage's verdict on one crop: its three outputs, or why there are none."""
        size = self.params.size
        if not self._well_formed(crop):
            return MaskResult(
                "failed", f"not a {size}x{size} RGB uint8 crop: {crop.shape} {crop.dtype}"
            )
        if made is None or isinstance(made, MaskFailure):
            crashed = isinstance(made, AnonymizerCrash)
            return MaskResult("failed", made.reason if made else "no result", crashed=crashed)
        try:
            images = check_output(crop, made, self.params)
        except MaskFailure as exc:
            return MaskResult("failed", exc.reason)
        region, covered = checked_region(made)
        info = {"region_px": int(region.sum()), "covered_px": int(covered.sum())}
        if made.vertices is None:
            return MaskResult("masked", images=images, info=info | {"settings": self._settings})
        return MaskResult("masked", images=images, vertices=made.vertices, info=info | made.info)


# -- a whole run ------------------------------------------------------------------------
@dataclass
class MaskedFrame:
    identity: str
    session: str
    frame: str  # frame uid
    crop: str  # path of the prep crop, relative to the run folder
    result: MaskResult


@dataclass
class MaskRun(RunOutcomes):
    out_dir: Path
    backend: str
    frames: list[MaskedFrame]
    seconds: float
    success = "masked"

    def outcomes(self) -> Iterable[tuple[str, str, str]]:
        return ((f.result.status, f.result.reason, f.identity) for f in self.frames)


def output_relpath(backend: str, variant: str, item: MaskedFrame) -> str:
    stem = Path(item.crop).stem.replace("_prep", "")
    return f"masks/{backend}/{variant}/{item.identity}/{item.session}/{stem}_{variant}.png"


def run_mask(
    run_dir: Path,
    stage: MaskStage,
    progress: bool = True,
    batch_size: int = 32,
    executor: Executor | None = None,
) -> MaskRun:
    """Mask every selected prep crop of ``run_dir``; write outputs and ``masks.csv``.

    Crops are read and looked up in the cache here; the misses go to ``executor`` (this
    process by default) in batches of ``batch_size``."""
    from tqdm import tqdm

    run_dir = Path(run_dir)
    table = run_dir / "frames.csv"
    if not table.exists():
        raise DmbenchError(
            f"{run_dir}: no frames.csv; run `dmbench prep DATASET --out {run_dir}` first"
        )
    rows = _selected_crops(run_dir, table)
    start = time.perf_counter()
    bar = tqdm(total=len(rows), desc=f"mask {stage.backend}", unit="crop", disable=not progress)

    decoder = decoder_version()

    def look_up(row: dict[str, str]) -> MaskResult | Miss:
        path = run_dir / row["crop"]  # contained: _selected_crops
        try:
            data = path.read_bytes()
        except OSError:
            data = None  # load_image says why, below
        known = None
        if data is not None:  # a crop decoded before: its key without decoding it again
            file_sha256 = hashlib.sha256(data).hexdigest()
            known = stage.cache.decoded_sha256(file_sha256, decoder)
            if known is not None and isinstance(found := stage.look_up_digest(known), MaskResult):
                return found
        try:
            crop = load_image(path, data).rgb
        except ImageReadError as exc:
            return MaskResult("failed", f"prep crop unreadable: {exc}")
        digest = pixels_sha256(crop)
        if data is not None and digest != known:
            stage.cache.remember_decoded(file_sha256, decoder, digest)
        found = stage.look_up_digest(digest) if digest != known else stage.key(digest)
        return Miss((crop, found, row["crop"])) if isinstance(found, str) else found

    results = run_through_cache(
        rows,
        look_up,
        executor or SerialExecutor(),
        stage,
        "compute_crops",
        chunk_size=batch_size,
        done=bar.update,
    )
    bar.close()
    if len(results) > 1 and all(result.crashed for result in results):
        raise DmbenchError(  # a broken plug-in: nothing to record, nothing written
            f"{stage.anonymizer.name} crashed on every crop ({len(results)}): {results[0].reason}"
        )
    frames = [
        MaskedFrame(
            row["identity"],
            row["session"],
            f"{row['identity']}/{row['session']}/{row['frame']}",
            row["crop"],
            result,
        )
        for row, result in zip(rows, results, strict=True)
    ]
    run = MaskRun(
        run_dir / "masks" / stage.backend, stage.backend, frames, time.perf_counter() - start
    )
    _write_outputs(run_dir, run, stage)
    return run


def _selected_crops(run_dir: Path, table: Path) -> list[dict[str, str]]:
    """The rows of ``frames.csv`` with a crop, every name and path checked first.

    The table is data anyone may have edited: an identity like ``../../escape`` or an
    absolute crop path is refused before any image is read, written or removed."""
    rows, run = [], RunPaths(run_dir)
    for line, row in enumerate(read_table(table, ("identity", "session", "frame", "crop")), 2):
        if row["crop"]:
            check_names(table, line, row["identity"], row["session"])
            run.contained(row["crop"], table, line)
            rows.append(row)
    return rows


def pixels_sha256(crop: np.ndarray) -> str:
    """What a crop is keyed by: the sha256 of its pixels (not of its file's bytes)."""
    return hashlib.sha256(np.ascontiguousarray(crop).tobytes()).hexdigest()


def _write_outputs(run_dir: Path, run: MaskRun, stage: MaskStage) -> None:
    paths = RunPaths(run_dir)
    paths.inside(str(run.out_dir.relative_to(run_dir)))  # not a link to elsewhere
    ensure_folder(run.out_dir, "mask output folder")
    columns = ["identity", "session", "frame", "crop", "status", "reason", *VARIANTS]
    with atomic_writer(run.out_dir / "masks.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for item in run.frames:
            row = {
                "identity": item.identity,
                "session": item.session,
                "frame": item.frame,
                "crop": item.crop,
                "status": item.result.status,
                "reason": item.result.reason,
            }
            for variant in VARIANTS:
                path = paths.inside(output_relpath(run.backend, variant, item))
                if item.result.encoded is not None:
                    name = f"{variant}.png"
                    cached = functools.partial(stage.cache.file_path, STAGE, item.result.key, name)
                    write_png_atomic(path, item.result.encoded[name], same_as=cached)
                    row[variant] = output_relpath(run.backend, variant, item)
                else:
                    path.unlink(missing_ok=True)  # a stale output of an earlier run must go
                    row[variant] = ""
            writer.writerow(row)
    write_run_record(
        run.out_dir / "run.json",
        stage,
        counts=run.counts(),
        reasons=run.reasons(),
        seconds=round(run.seconds, 3),
    )
