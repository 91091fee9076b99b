"""Recognize stage: embed every image variant, match queries to the database, score.

Images: ``face`` is the prep crop; ``overlay``, ``mask_only`` and ``mask_only_black``
come from a mask run (one per reconstruct backend, called the mask *source*). Each image
is embedded with the face detected on that very image, as the original does; an image on
which the embedder finds no face has no embedding and is counted per side.

Valid identities (the original's rule): both the database and the query frame have a
``face`` and an ``overlay`` embedding (for every mask source in play). The protocol then
draws one pair per valid identity, and every scenario is scored on those pairs.
"""

from __future__ import annotations

import functools
import hashlib
import io
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.assets import AssetStore
from benchmark.cache import Cache
from benchmark.device import DevicePlan
from benchmark.errors import DmbenchError, ImageReadError
from benchmark.imageio import load_image
from benchmark.metrics import bootstrap_interval, ranks_of_truth
from benchmark.pipeline.executor import Executor, Miss, SerialExecutor, run_through_cache
from benchmark.pipeline.recognize.pairing import Pair
from benchmark.pipeline.recognize.types import EMBEDDERS, Embedder, Embedding, similarity_matrix
from benchmark.pipeline.stage_base import Stage, create_backends
from benchmark.runfolder import RunPaths, read_table
from benchmark.specs import MASK_VARIANTS, Scenario

STAGE = "recognize"
CMC_DEPTH = 20


@dataclass(frozen=True)
class RecognizeParams:
    # The original turned every channel value 255 into 0 in EVERY image before embedding
    # (meant for black-background masks). Off by default.
    reference_quirks: bool = False
    batch_size: int = 32


def apply_quirks(image: np.ndarray, params: RecognizeParams) -> np.ndarray:
    if not params.reference_quirks:
        return image
    out = image.copy()
    out[out == 255] = 0
    return out


class RecognizeStage(Stage):
    """One embedder over many images, through the cache, in batches."""

    name = STAGE
    upstream = ("benchmark.pipeline.prep", "benchmark.pipeline.mask")

    def __init__(
        self,
        embedder: Embedder,
        params: RecognizeParams | None = None,
        cache: Cache | None = None,
        store: AssetStore | None = None,
    ) -> None:
        super().__init__({"embedder": embedder}, params or RecognizeParams(), cache, store)
        self.embedder = embedder

    @classmethod
    def from_names(
        cls,
        embedder: str | None = None,
        *,
        store: AssetStore | None = None,
        device: str | DevicePlan = "cpu",
        params: RecognizeParams | None = None,
        cache: Cache | None = None,
    ) -> RecognizeStage:
        store = store or AssetStore()
        params = params or RecognizeParams()
        chosen = {"embedder": (EMBEDDERS, embedder)}
        made = create_backends(chosen, store, device, batch_size=params.batch_size)
        return cls(made["embedder"], params, cache, store).remember(store, device)

    def key_params(self) -> dict[str, Any]:
        return {"reference_quirks": self.params.reference_quirks}  # not the batch size

    def key(self, image_sha256: str, reference_sha256: str | None = None) -> str:
        if reference_sha256 is None:
            return super().key(image_sha256)
        # Aligned on the photo's face, not on its own.
        return super().key(image_sha256, aligned_on_photo=reference_sha256)

    @property
    def aligns_on_photo(self) -> bool:
        """Whether the embedder can embed an image with the face geometry of another."""
        return self.embedder.aligns_on_photo

    def embed(
        self,
        images: dict[str, np.ndarray | bytes],
        progress: bool = False,
        references: dict[str, bytes] | None = None,
        executor: Executor | None = None,
    ) -> dict[str, Embedding]:
        """Embeddings of ``{image id: RGB uint8 array, or the image file's bytes}``.

        Cached ones are not recomputed; file bytes are keyed by their sha256 and decoded
        only on a cache miss, so a warm run reads files but decodes nothing. The misses go
        to ``executor`` (this process by default) in batches.

        ``references`` (``{image id: the photo's file bytes}``): embed each image with the
        face found on its photo instead of on itself (``ALIGNMENTS``: "photo"). A mask or
        control covers the same 224×224 crop as its photo, so the geometry carries over.
        """
        from tqdm import tqdm

        if references is not None and not self.aligns_on_photo:
            raise DmbenchError(f"{self.embedder.name} cannot align on the photo")

        def look_up(key_id: str) -> Embedding | Miss:
            image = images[key_id]
            raw = image if isinstance(image, bytes) else np.ascontiguousarray(image).tobytes()
            reference = None if references is None else references[key_id]
            ref_sha = None if reference is None else hashlib.sha256(reference).hexdigest()
            key = self.key(hashlib.sha256(raw).hexdigest(), ref_sha)
            entry = self.cache.get(STAGE, key)
            if entry is None:
                return Miss((key_id, key, image, reference))
            vector = read_npy(entry.files["vector.npy"]) if "vector.npy" in entry.files else None
            return Embedding(vector, entry.record["reason"], entry.record["det_score"])

        ids = list(images)
        with tqdm(
            total=len(ids), desc=f"embed {self.embedder.name}", unit="img", disable=not progress
        ) as bar:
            found = run_through_cache(
                ids,
                look_up,
                executor or SerialExecutor(),
                self,
                "embed_batch",
                chunk_size=self.params.batch_size,
                done=bar.update,
            )
        return dict(zip(ids, found, strict=True))

    def embed_on_photos(
        self,
        paths: dict[str, Path],
        keys: Iterable[str],
        progress: bool = False,
        executor: Executor | None = None,
    ) -> dict[str, Embedding]:
        """Embeddings of the images ``keys`` (masks, controls) of a run's ``paths``
        (``collect_images``), each with the face found on the photo it was made from (the
        "photo" alignment). Grouped by frame, so that a batch holds every image made from
        one photo and the embedder finds that photo's face once; each photo is read once."""
        ordered = sorted(keys, key=lambda k: (k.split("|", 2)[2], k))
        photo_of = {k: paths[image_id("prep", "face", k.split("|", 2)[2])] for k in ordered}
        photos = {path: Path(path).read_bytes() for path in set(photo_of.values())}
        return self.embed(
            load_images({k: paths[k] for k in ordered}),
            progress=progress,
            references={k: photos[photo_of[k]] for k in ordered},
            executor=executor,
        )

    def embed_batch(
        self, chunk: list[tuple[str, str, np.ndarray | bytes, bytes | None]]
    ) -> list[Embedding]:
        """Embed images the cache did not have, and store them (what an executor's worker
        runs): ``(image id, cache key, pixels or file bytes, the photo's bytes or None)``."""
        self.load_models()
        inputs, photos, broken = [], [], {}
        for position, (key_id, _, image, reference) in enumerate(chunk):
            pixels = [image] if reference is None else [image, reference]
            for i, item in enumerate(pixels):
                if isinstance(item, bytes):
                    try:
                        pixels[i] = load_image(key_id, item).rgb
                    except ImageReadError as exc:
                        broken[position] = Embedding(None, f"unreadable image: {exc.reason}")
                        pixels[i] = np.zeros((32, 32, 3), np.uint8)
            inputs.append(apply_quirks(pixels[0], self.params))
            if reference is not None:
                photos.append(apply_quirks(pixels[1], self.params))
        try:
            if not photos:
                results = self.embedder.embed(inputs)
            else:
                results = self.embedder.embed_aligned(inputs, photos)
        except Exception as exc:  # a crashed batch fails its images, not the run
            results = [
                Embedding(None, f"embedder failed: {type(exc).__name__}: {exc}") for _ in chunk
            ]
        results = [broken.get(i, result) for i, result in enumerate(results)]
        for (_, key, _, _), result in zip(chunk, results, strict=True):
            files = {}
            if result.vector is not None:
                buffer = io.BytesIO()
                np.save(buffer, np.asarray(result.vector, dtype=np.float32))
                files["vector.npy"] = buffer.getvalue()
            if not result.reason.startswith("embedder failed"):
                self.cache.put(
                    STAGE,
                    key,
                    {"reason": result.reason, "det_score": result.det_score},
                    files,
                    code=self.code,
                )
        return results


# -- images of a run ---------------------------------------------------------------------
def image_id(source: str, variant: str, uid: str) -> str:
    return f"{source}|{variant}|{uid}"


def read_npy(data: bytes) -> np.ndarray:
    """``np.load`` of an ``.npy`` file's bytes, with its header parsed once per distinct
    header: a warm study reads ~58,000 vectors of one shape, and parsing each header cost
    more than reading the vector."""
    version = 1 if data[6:7] == b"\x01" else 2
    width = 2 if version == 1 else 4
    if data[:6] != b"\x93NUMPY" or len(data) < 8 + width:
        raise ValueError("not an .npy file")
    start = 8 + width + int.from_bytes(data[8 : 8 + width], "little")
    shape, fortran, dtype = _npy_header(data[:start])
    count = int(np.prod(shape)) if shape else 1
    flat = np.frombuffer(data, dtype=dtype, count=count, offset=start)
    return flat.reshape(shape, order="F" if fortran else "C").copy()


@functools.lru_cache(maxsize=64)
def _npy_header(header: bytes) -> tuple[tuple[int, ...], bool, np.dtype]:
    handle = io.BytesIO(header)
    major, _ = np.lib.format.read_magic(handle)
    fmt = np.lib.format
    read = fmt.read_array_header_1_0 if major == 1 else fmt.read_array_header_2_0
    shape, fortran, dtype = read(handle)
    if dtype.hasobject:
        raise ValueError("an .npy of Python objects is never read")
    return shape, fortran, dtype


def collect_images(prep_dir: Path, mask_sources: list[str]) -> dict[str, Path]:
    """Every image of a prep run and its mask runs: ``{image id: path}``."""
    prep_dir = Path(prep_dir)
    paths: dict[str, Path] = {}
    run = RunPaths(prep_dir)
    table = prep_dir / "frames.csv"
    if not table.exists():
        raise DmbenchError(f"{prep_dir}: no frames.csv; run `dmbench prep` first")
    for line, row in enumerate(read_table(table, ("identity", "session", "frame", "crop")), 2):
        if row["crop"]:
            uid = f"{row['identity']}/{row['session']}/{row['frame']}"
            paths[image_id("prep", "face", uid)] = run.contained(row["crop"], table, line)
    for source in mask_sources:
        masks = prep_dir / "masks" / source / "masks.csv"
        if not masks.exists():
            raise DmbenchError(f"{prep_dir}: no mask run '{source}'; run `dmbench mask` first")
        variants = MASK_VARIANTS
        for line, row in enumerate(read_table(masks, ("frame", *variants)), 2):
            for variant in variants:
                if row[variant]:
                    path = run.contained(row[variant], masks, line)
                    paths[image_id(source, variant, row["frame"])] = path
    return paths


def load_images(paths: dict[str, Path]) -> dict[str, bytes]:
    """The files' bytes (decoded only when an embedding is not cached)."""
    images = {}
    for key, path in paths.items():
        try:
            images[key] = Path(path).read_bytes()
        except OSError:
            continue  # a missing image is a missing embedding, counted downstream
    return images


def valid_uids(embeddings: dict[str, Embedding], mask_sources: list[str]) -> set[str]:
    """Frames with a face and an overlay embedding for every mask source (original's rule)."""

    def has(key: str) -> bool:
        return key in embeddings and embeddings[key].vector is not None

    uids = {k.split("|", 2)[2] for k in embeddings if k.startswith("prep|face|")}
    return {
        u
        for u in uids
        if has(image_id("prep", "face", u))
        and all(has(image_id(s, "overlay", u)) for s in mask_sources)
    }


# -- scoring -----------------------------------------------------------------------------
@dataclass
class ScenarioResult:
    scenario: str
    family: str
    protocol: str
    embedder: str
    query_source: str
    database_source: str
    pairs: int  # identities the protocol paired
    n: int  # queries scored (own embedding and true database entry present)
    gallery: int
    query_failures: int  # no face found by the embedder on the query image
    database_failures: int
    rank1: float
    rank1_ci: tuple[float, float]
    rank1_all: float  # failures counted as misses, over all pairs
    rank5: float
    rank10: float
    cmc: list[float]
    mean_rank0: float | None  # None when nobody was scored (JSON has no NaN)
    mean_rank1: float | None
    chance: float
    hits: dict[str, int]  # identity → 1 if identified at rank 1 (for paired comparisons)

    def row(self) -> dict:
        data = asdict(self)
        data.pop("hits")
        return data


def score_scenario(
    pairs: list[Pair],
    embeddings: dict[str, Embedding],
    scenario: Scenario,
    *,
    protocol: str,
    embedder: str,
    metric: str,
    query_source: str,
    database_source: str,
    reference_quirks: bool = False,
    seed: int = 42,
) -> ScenarioResult:
    """Match every query against the whole database in one matrix product."""
    q_variant, d_variant = scenario.variants(reference_quirks)
    q_src = "prep" if q_variant == "face" else query_source
    d_src = "prep" if d_variant == "face" else database_source

    def vector(source: str, variant: str, uid: str) -> np.ndarray | None:
        found = embeddings.get(image_id(source, variant, uid))
        return None if found is None else found.vector

    gallery_ids, gallery_vecs = [], []
    for pair in pairs:
        vec = vector(d_src, d_variant, pair.database)
        if vec is not None:
            gallery_ids.append(pair.identity)
            gallery_vecs.append(vec)
    position = {identity: i for i, identity in enumerate(gallery_ids)}
    query_ids, query_vecs, query_failures = [], [], 0
    for pair in pairs:
        vec = vector(q_src, q_variant, pair.query)
        if vec is None:
            query_failures += 1
        elif pair.identity in position:
            query_ids.append(pair.identity)
            query_vecs.append(vec)
    n, ranks = len(query_ids), np.zeros(0, dtype=int)
    if n and gallery_vecs:
        sim = similarity_matrix(np.stack(query_vecs), np.stack(gallery_vecs), metric)
        ranks = ranks_of_truth(sim, np.array([position[i] for i in query_ids]))
    hits = (ranks == 0).astype(int)
    cmc = [float((ranks < k).mean()) if n else 0.0 for k in range(1, CMC_DEPTH + 1)]
    return ScenarioResult(
        scenario=scenario.name,
        family=scenario.family,
        protocol=protocol,
        embedder=embedder,
        query_source=q_src,
        database_source=d_src,
        pairs=len(pairs),
        n=n,
        gallery=len(gallery_ids),
        query_failures=query_failures,
        database_failures=len(pairs) - len(gallery_ids),
        rank1=float(hits.mean()) if n else 0.0,
        rank1_ci=bootstrap_interval(hits, seed=seed) if n else (0.0, 1.0),
        rank1_all=float(hits.sum() / len(pairs)) if pairs else 0.0,
        rank5=cmc[4],
        rank10=cmc[9],
        cmc=cmc,
        mean_rank0=float(ranks.mean()) if n else None,
        mean_rank1=float(ranks.mean() + 1) if n else None,
        chance=1.0 / len(gallery_ids) if gallery_ids else 0.0,
        hits=dict(zip(query_ids, hits.tolist(), strict=True)),
    )
