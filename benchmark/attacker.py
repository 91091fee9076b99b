"""An attacker that adapts to the anonymizer (Hanisch et al., "A False Sense of Privacy",
2023: an honest evaluation assumes the adversary knows the anonymization and trains on it).

Trained only on ``lfw-train`` (LFW identities with exactly one photo, none of them in
LFW-dev, the evaluation set; ``test_attacker.py`` checks it): the training photos go
through the same prep, the same anonymizer and the same embedder as the evaluation, and
three attacks are fitted per anonymizer × embedder × alignment:

* **Mask2Face adapters** map the embedding of an anonymized photo to the embedding of the
  photo itself, so an anonymized query can be matched against original photos: a ridge
  regression (``ridge``) and a small multilayer perceptron with one hidden layer
  (``mlp``). Training pairs: each photo and an augmented copy of it (anonymized,
  original).
* **Mask2Mask metric** (``whitening``): within-class covariance normalisation learned on
  anonymized embeddings. With one photo per person, the second sample of each person is
  an augmentation of the photo (``augment``: mirrored, slightly rotated, scaled, shifted
  and relit), anonymized; the within-class covariance is that of (anonymized photo −
  anonymized augmented copy), and whitening it down-weights what changes within a person.
  Queries and database are both projected.

Every hyper-parameter (ridge's α, the MLP's stopping epoch, the whitening's shrinkage) is
chosen on a held-out fifth of the training identities by rank-1 there, then the attack is
fitted again on all of them. Everything is seeded, and cached like every stage: the
training crops, masks and embeddings through their stages, the fitted attacks by the
vectors they were fitted on (``cached_fit``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.pipeline.recognize.types import similarity_matrix

TRAIN_DATASET = "lfw-train"
STAGE = "attacker"  # the cache folder of fitted attacks
ATTACKS = ("ridge", "mlp", "whitening")
RIDGE_ALPHAS = (1e-3, 1e-2, 1e-1, 1.0, 10.0)  # × the mean eigenvalue of XᵀX / n
WHITENING_SHRINK = (1e-3, 1e-2, 1e-1, 1.0)  # × the mean within-class variance
MIN_TRAIN_PAIRS = 40  # fewer pairs with a face found: no attack is fitted (and the run says so)
HELD_OUT = 0.2
FOLDER_NOT_TRAINED = "images made elsewhere (a folder): no anonymized training photos to train on"
AUGMENTATION = (
    "each photo's second sample: mirrored, rotated ±8°, scaled ±6 %, shifted ±6 px, "
    "brightness ±20, contrast ±15 % (uniform, seeded per photo)"
)


def rank1(queries: np.ndarray, gallery: np.ndarray, metric: str) -> float:
    """Rank-1 of query i against gallery row i (one true match each)."""
    sim = similarity_matrix(queries, gallery, metric)
    return float((sim.argmax(axis=1) == np.arange(len(queries))).mean())


def _normalised(x: np.ndarray, metric: str) -> np.ndarray:
    if metric != "cosine":
        return x
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class RidgeAdapter:
    """ŷ = (x − μx) W + μy, W = (XᵀX + αI)⁻¹ XᵀY on centred training pairs."""

    name = "ridge"

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = alpha

    def fit(self, x: np.ndarray, y: np.ndarray) -> RidgeAdapter:
        self.mx, self.my = x.mean(axis=0), y.mean(axis=0)
        xc, yc = x - self.mx, y - self.my
        gram = xc.T @ xc
        scale = np.trace(gram) / len(gram)
        self.w = np.linalg.solve(gram + self.alpha * scale * np.eye(len(gram)), xc.T @ yc)
        return self

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mx) @ self.w + self.my

    def record(self) -> dict[str, Any]:
        return {"alpha": self.alpha}

    def state(self) -> dict[str, np.ndarray]:
        return {"mx": self.mx, "my": self.my, "w": self.w, "alpha": np.array(self.alpha)}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> RidgeAdapter:
        made = cls(float(state["alpha"]))
        made.mx, made.my, made.w = state["mx"], state["my"], state["w"]
        return made


class MlpAdapter:
    """ŷ = ridge(x) + relu(x W₁ + b₁) W₂: one hidden layer learns what the linear map
    misses. Full-batch Adam on the squared error, seeded; ``epochs`` from the held-out
    fifth."""

    name = "mlp"

    def __init__(self, hidden: int = 256, epochs: int = 300, seed: int = 42, lr: float = 1e-2):
        self.hidden, self.epochs, self.seed, self.lr = hidden, epochs, seed, lr

    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        watch: tuple[np.ndarray, np.ndarray, str] | None = None,
    ) -> MlpAdapter:
        """Train; with ``watch`` (held-out x, y, metric), remember the held-out rank-1 after
        each of 10 checkpoints (``self.curve``) to choose the epochs."""
        self.linear = RidgeAdapter(1.0).fit(x, y)
        rng = np.random.default_rng(self.seed)
        self.sx = x.std(axis=0) + 1e-8
        xs = (x - self.linear.mx) / self.sx
        residual = y - self.linear(x)
        d_in, d_out = x.shape[1], y.shape[1]
        params = {
            "w1": rng.normal(0, np.sqrt(2.0 / d_in), (d_in, self.hidden)),
            "b1": np.zeros(self.hidden),
            "w2": np.zeros((self.hidden, d_out)),
        }
        moments = {k: (np.zeros_like(v), np.zeros_like(v)) for k, v in params.items()}
        self.params, self.curve = params, []
        every = max(1, self.epochs // 10)
        for step in range(1, self.epochs + 1):
            hidden = np.maximum(xs @ params["w1"] + params["b1"], 0.0)
            error = hidden @ params["w2"] - residual
            grad_out = 2.0 * error / len(x)
            grads = {"w2": hidden.T @ grad_out}
            grad_hidden = (grad_out @ params["w2"].T) * (hidden > 0)
            grads["w1"], grads["b1"] = xs.T @ grad_hidden, grad_hidden.sum(axis=0)
            for key, grad in grads.items():
                m, v = moments[key]
                m[:] = 0.9 * m + 0.1 * grad
                v[:] = 0.999 * v + 0.001 * grad**2
                m_hat, v_hat = m / (1 - 0.9**step), v / (1 - 0.999**step)
                params[key] -= self.lr * m_hat / (np.sqrt(v_hat) + 1e-8)
            if watch is not None and step % every == 0:
                self.curve.append((step, rank1(self(watch[0]), watch[1], watch[2])))
        return self

    def __call__(self, x: np.ndarray) -> np.ndarray:
        xs = (x - self.linear.mx) / self.sx
        hidden = np.maximum(xs @ self.params["w1"] + self.params["b1"], 0.0)
        return self.linear(x) + hidden @ self.params["w2"]

    def record(self) -> dict[str, Any]:
        return {"hidden": self.hidden, "epochs": self.epochs, "lr": self.lr}

    def state(self) -> dict[str, np.ndarray]:
        linear = {f"linear.{k}": v for k, v in self.linear.state().items()}
        settings = np.array([self.hidden, self.epochs, self.seed, self.lr])
        return linear | {"sx": self.sx, "settings": settings} | self.params

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> MlpAdapter:
        hidden, epochs, seed, lr = state["settings"].tolist()
        made = cls(int(hidden), int(epochs), int(seed), float(lr))
        made.linear = RidgeAdapter.from_state(
            {k.removeprefix("linear."): v for k, v in state.items() if k.startswith("linear.")}
        )
        made.sx, made.curve = state["sx"], []
        made.params = {k: state[k] for k in ("w1", "b1", "w2")}
        return made


class WithinClassWhitening:
    """x' = (x − μ) P, P = (S_w + λ·mean variance·I)^(−1/2): S_w from the differences of
    two anonymized views of each training person (the photo and its augmented copy)."""

    name = "whitening"

    def __init__(self, shrink: float = 0.1) -> None:
        self.shrink = shrink

    def fit(self, a: np.ndarray, b: np.ndarray) -> WithinClassWhitening:
        self.mean = np.concatenate([a, b]).mean(axis=0)
        diff = a - b
        within = diff.T @ diff / (2 * len(diff))
        scale = np.trace(within) / len(within)
        values, vectors = np.linalg.eigh(within + self.shrink * scale * np.eye(len(within)))
        self.p = vectors @ np.diag(values**-0.5) @ vectors.T
        return self

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) @ self.p

    def record(self) -> dict[str, Any]:
        return {"shrink": self.shrink}

    def state(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean, "p": self.p, "shrink": np.array(self.shrink)}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> WithinClassWhitening:
        made = cls(float(state["shrink"]))
        made.mean, made.p = state["mean"], state["p"]
        return made


@dataclass
class TrainingSet:
    """One anonymizer × embedder × alignment's training vectors, row i = person i."""

    anonymized: np.ndarray  # the anonymized photo's embedding
    anonymized_augmented: np.ndarray  # the anonymized augmented photo's embedding
    original: np.ndarray  # the photo's embedding
    original_augmented: np.ndarray  # the augmented photo's embedding
    identities: list[str] = field(default_factory=list)


@dataclass
class FittedAttacks:
    """The attacks fitted on one training set, and what they scored on its held-out part."""

    attacks: dict[str, Any]  # name → callable on an embedding matrix
    record: dict[str, Any]


def fit_attacks(data: TrainingSet, metric: str, seed: int) -> FittedAttacks | str:
    """Each attack, its hyper-parameter chosen on a held-out fifth of the identities; or
    why none can be fitted (too few training pairs with a face found)."""
    n = len(data.identities)
    if n < MIN_TRAIN_PAIRS:
        return f"only {n} training people with every embedding (< {MIN_TRAIN_PAIRS})"
    order = np.random.default_rng(seed).permutation(n)
    held, kept = order[: max(2, int(HELD_OUT * n))], order[max(2, int(HELD_OUT * n)) :]

    def pairs(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # (x, y), augmented included
        x = np.concatenate([data.anonymized[rows], data.anonymized_augmented[rows]])
        y = np.concatenate([data.original[rows], data.original_augmented[rows]])
        return x, y

    x_fit, y_fit = pairs(kept)
    x_all, y_all = pairs(order)
    held_query, held_gallery = data.anonymized[held], data.original[held]
    # Mask2Face: ridge's α, then the MLP's epochs, by held-out rank-1.
    ridge_scores = {
        alpha: rank1(RidgeAdapter(alpha).fit(x_fit, y_fit)(held_query), held_gallery, metric)
        for alpha in RIDGE_ALPHAS
    }
    alpha = max(RIDGE_ALPHAS, key=lambda a: (ridge_scores[a], a))  # ties: the stronger prior
    probe = MlpAdapter(seed=seed).fit(x_fit, y_fit, watch=(held_query, held_gallery, metric))
    epochs, mlp_held = max(probe.curve, key=lambda c: (c[1], -c[0]))
    # Mask2Mask: the whitening's shrinkage, anonymized augmented (query) → anonymized photo.
    a_fit, b_fit = data.anonymized[kept], data.anonymized_augmented[kept]
    shrink_scores = {}
    for shrink in WHITENING_SHRINK:
        project = WithinClassWhitening(shrink).fit(a_fit, b_fit)
        shrink_scores[shrink] = rank1(
            project(data.anonymized_augmented[held]), project(data.anonymized[held]), metric
        )
    shrink = max(WHITENING_SHRINK, key=lambda s: (shrink_scores[s], s))
    attacks = {
        "ridge": RidgeAdapter(alpha).fit(x_all, y_all),
        "mlp": MlpAdapter(epochs=epochs, seed=seed).fit(x_all, y_all),
        "whitening": WithinClassWhitening(shrink).fit(
            data.anonymized[order], data.anonymized_augmented[order]
        ),
    }
    baseline = rank1(held_query, held_gallery, metric)
    augmented_baseline = rank1(data.anonymized_augmented[held], data.anonymized[held], metric)
    record = {
        "train_people": n,
        "held_out_people": len(held),
        "held_out_rank1": {
            "none_mask2face": baseline,
            "ridge": ridge_scores[alpha],
            "mlp": mlp_held,
            "none_mask2mask": augmented_baseline,
            "whitening": shrink_scores[shrink],
        },
        "chosen": {name: attack.record() for name, attack in attacks.items()},
    }
    return FittedAttacks(attacks, record)


ATTACK_CLASSES = {"ridge": RidgeAdapter, "mlp": MlpAdapter, "whitening": WithinClassWhitening}
ATTACKER_VERSION = 1  # of the attacks' definitions and grids: part of the cache key


def cached_fit(data: TrainingSet, metric: str, seed: int, cache: Any) -> FittedAttacks | str:
    """``fit_attacks`` through the cache, keyed by the training vectors themselves (their
    bytes and people), the metric, the seed and the attacks' definitions: a warm run
    refits nothing, and any change of what was trained on fits again."""
    import io
    import json

    from benchmark.cache import cache_key
    from benchmark.provenance import CodeStamp

    # The attacker's code, and the stages whose embeddings it is fitted on.
    code = CodeStamp.of([__name__], ["benchmark.pipeline"])

    digest = hashlib.sha256()
    for array in (
        data.anonymized,
        data.anonymized_augmented,
        data.original,
        data.original_augmented,
    ):
        digest.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
    digest.update(json.dumps(data.identities).encode())
    key = cache_key(
        stage=STAGE,
        backend="+".join(ATTACKS),
        input_sha256=digest.hexdigest(),
        params={
            "metric": metric,
            "seed": seed,
            "version": ATTACKER_VERSION,
            "ridge_alphas": RIDGE_ALPHAS,
            "whitening_shrink": WHITENING_SHRINK,
            "held_out": HELD_OUT,
            "min_train_pairs": MIN_TRAIN_PAIRS,
        },
        asset_sha256={},
        code=code.digest,
    )
    entry = cache.get(STAGE, key)
    if entry is not None:
        if "not_fitted" in entry.record:
            return entry.record["not_fitted"]
        with np.load(io.BytesIO(entry.files["attacks.npz"])) as stored:
            state = {name: stored[name] for name in stored.files}
        attacks = {
            name: made.from_state(
                {k.split("/", 1)[1]: v for k, v in state.items() if k.startswith(f"{name}/")}
            )
            for name, made in ATTACK_CLASSES.items()
        }
        return FittedAttacks(attacks, entry.record)
    fitted = fit_attacks(data, metric, seed)
    if isinstance(fitted, str):
        cache.put(STAGE, key, {"not_fitted": fitted}, code=code)
        return fitted
    buffer = io.BytesIO()
    np.savez(
        buffer,
        **{f"{name}/{k}": v for name, a in fitted.attacks.items() for k, v in a.state().items()},
    )
    cache.put(STAGE, key, fitted.record, {"attacks.npz": buffer.getvalue()}, code=code)
    return fitted


def transformed(
    vectors: dict[str, Any], attack: Any, keys: list[str], metric: str
) -> dict[str, Any]:
    """``vectors`` with the embeddings under ``keys`` mapped by ``attack`` (a missing
    vector stays missing: the attacker has nothing to map)."""
    from benchmark.pipeline.recognize.types import Embedding

    present = [k for k in keys if k in vectors and vectors[k].vector is not None]
    if not present:
        return dict(vectors)
    mapped = attack(np.stack([vectors[k].vector for k in present]).astype(np.float64))
    mapped = _normalised(mapped, metric).astype(np.float32)
    return vectors | {k: Embedding(v) for k, v in zip(present, mapped, strict=True)}


def augment(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A second photo of the same person, made from the one there is: mirrored left–right,
    rotated by up to ±8°, scaled by ±6 %, shifted by up to ±6 px, with brightness ±20 and
    contrast ±15 % (edges reflected). What changes within a person between two photos is
    more than this; it is what one photo can give."""
    import cv2

    size = crop.shape[0]
    angle, scale = rng.uniform(-8, 8), rng.uniform(0.94, 1.06)
    matrix = cv2.getRotationMatrix2D((size / 2, size / 2), angle, scale)
    matrix[:, 2] += rng.uniform(-6, 6, 2)
    moved = cv2.warpAffine(
        np.ascontiguousarray(crop[:, ::-1]), matrix, (size, size), borderMode=cv2.BORDER_REFLECT
    )
    jittered = moved.astype(np.float32) * rng.uniform(0.85, 1.15) + rng.uniform(-20, 20)
    return np.clip(np.round(jittered), 0, 255).astype(np.uint8)


def augmented_run(prep_dir: Path, out_dir: Path, seed: int) -> Path:
    """A copy of a prep run whose every crop is ``augment``-ed (seeded per frame), with
    the same ``frames.csv``: the mask stage and the embedders read it like any run."""
    import hashlib
    import shutil

    from benchmark.imageio import encode_png, ensure_folder, load_image, write_png_atomic
    from benchmark.runfolder import contained, read_table

    prep_dir, out_dir = Path(prep_dir), Path(out_dir)
    ensure_folder(out_dir, "augmented training run")
    table = prep_dir / "frames.csv"
    for line, row in enumerate(read_table(table, ("identity", "session", "frame", "crop")), 2):
        if row["crop"]:
            crop = load_image(contained(prep_dir, row["crop"], table, line)).rgb
            salt = hashlib.sha256(f"{seed}|{row['crop']}".encode()).digest()
            rng = np.random.default_rng(int.from_bytes(salt[:8], "little"))
            target = out_dir / row["crop"]
            target.parent.mkdir(parents=True, exist_ok=True)
            write_png_atomic(target, encode_png(augment(crop, rng)))
    shutil.copyfile(table, out_dir / "frames.csv")
    return out_dir


def training_data(store: Any, fetch: bool = True) -> Any:
    """``lfw-train`` from the asset folders; fetched (its 4,069 files, each verified) when
    it is not here and the network may be used, else one error that says how to get it."""
    from benchmark.datasets import fetch_dataset, resolve_dataset
    from benchmark.errors import DmbenchError
    from benchmark.settings import offline

    try:
        return resolve_dataset(TRAIN_DATASET, store)
    except DmbenchError as exc:
        if not fetch or offline():
            raise DmbenchError(
                f"the adaptive attacker trains on '{TRAIN_DATASET}', which is not here: "
                f"{str(exc).splitlines()[0]}\nGet it with `dmbench data fetch {TRAIN_DATASET}` "
                "(online), or run without the attacker: --attacker-people 0"
            ) from exc
    fetch_dataset(store, TRAIN_DATASET, None)
    return resolve_dataset(TRAIN_DATASET, store)


def training_sets(
    pipeline: Any,
    store: Any,
    train_dir: Path,
    people: int,
    seed: int,
    evaluated: set[str],
    progress: bool = False,
) -> tuple[dict[tuple[str, str, str], TrainingSet], dict[str, Any]]:
    """The training vectors of every scored anonymizer (and control) × embedder ×
    alignment, from ``people`` identities of ``lfw-train`` drawn with ``seed``; and what
    was trained on. ``evaluated``: the evaluation's identities, which no training identity
    may be (checked here, at run time, not only by a test)."""
    from benchmark.errors import DmbenchError
    from benchmark.pipeline.mask.stage import run_mask
    from benchmark.pipeline.prep.stage import run_prep
    from benchmark.pipeline.recognize.stage import collect_images, image_id, load_images

    dataset = training_data(store)
    chosen = dataset.draw_order(seed, min_sessions=1)[:people]
    overlap = set(chosen) & evaluated
    if overlap:
        raise DmbenchError(
            f"{TRAIN_DATASET} shares {len(overlap)} identities with the evaluation "
            f"({', '.join(sorted(overlap)[:3])}, ...): the attacker must not train on them"
        )
    views = {"photo": Path(train_dir) / "prep", "augmented": Path(train_dir) / "augmented"}
    run_prep(
        dataset.restrict(chosen),
        views["photo"],
        pipeline.prep,
        progress=progress,
        executor=pipeline.executor,
    )
    augmented_run(views["photo"], views["augmented"], seed)
    trainable = [m for m in pipeline.masks if m.anonymizer.kind != "folder"]
    sources = [m.backend for m in trainable]
    vectors: dict[tuple[str, str, str], dict[str, Any]] = {}  # (view, embedder, alignment)
    for view, folder in views.items():
        for stage in trainable:
            run_mask(folder, stage, progress=progress, executor=pipeline.executor)
        paths = {
            k: p
            for k, p in collect_images(folder, sources).items()
            if k.startswith("prep|face|") or k.split("|")[1] == "overlay"
        }
        for name, stage in pipeline.embedders.items():
            embedded = stage.embed(
                load_images(paths), progress=progress, executor=pipeline.executor
            )
            vectors[(view, name, "self")] = embedded
            if stage.aligns_on_photo:
                aligned = stage.embed_on_photos(
                    paths,
                    (k for k in paths if not k.startswith("prep|")),
                    progress=progress,
                    executor=pipeline.executor,
                )
                faces = {k: e for k, e in embedded.items() if k.startswith("prep|")}
                vectors[(view, name, "photo")] = faces | aligned
    sets = {}
    for (view, name, alignment), photo_vectors in vectors.items():
        if view != "photo":
            continue
        augmented_vectors = vectors[("augmented", name, alignment)]

        def vector(found: dict[str, Any], key: str) -> np.ndarray | None:
            return found[key].vector if key in found else None

        uids = sorted({k.split("|", 2)[2] for k in photo_vectors if k.startswith("prep|face|")})
        for source in sources:
            rows: dict[str, list] = {"a": [], "am": [], "o": [], "om": [], "who": []}
            for uid in uids:
                got = (
                    vector(photo_vectors, image_id(source, "overlay", uid)),
                    vector(augmented_vectors, image_id(source, "overlay", uid)),
                    vector(photo_vectors, image_id("prep", "face", uid)),
                    vector(augmented_vectors, image_id("prep", "face", uid)),
                )
                if all(v is not None for v in got):
                    for key, value in zip(("a", "am", "o", "om"), got, strict=True):
                        rows[key].append(value)
                    rows["who"].append(uid.split("/")[0])
            stack = {k: np.array(v, dtype=np.float64) for k, v in rows.items() if k != "who"}
            sets[(source, name, alignment)] = TrainingSet(
                stack["a"], stack["am"], stack["o"], stack["om"], rows["who"]
            )
    record = {
        "dataset": TRAIN_DATASET,
        "drawn": len(chosen),
        "seed": seed,
        "identities": chosen,
        "augmentation": AUGMENTATION,
    }
    return sets, record


def adaptive_rows(
    pairs: list,
    vectors: dict[str, Any],
    fitted: FittedAttacks,
    *,
    source: str,
    embedder: str,
    metric: str,
    alignment: str,
    protocol: str,
    seed: int,
    control: str | None,
) -> list[dict[str, Any]]:
    """The evaluation's rows of each fitted attack on one anonymizer: the Mask2Face
    adapters on the anonymized queries (the database keeps the original photos), the
    Mask2Mask whitening on both sides; scored as every scenario row is."""
    from benchmark.pipeline.recognize.stage import image_id, score_scenario
    from benchmark.specs import load_scenarios

    scenarios = {s.name: s for s in load_scenarios()}
    keys = [image_id(source, "overlay", uid) for p in pairs for uid in (p.query, p.database)]
    plan = [("Overlay2Face", "ridge"), ("Overlay2Face", "mlp"), ("Overlay2Overlay", "whitening")]
    rows = []
    for scenario, attack in plan:
        scored = score_scenario(
            pairs,
            transformed(vectors, fitted.attacks[attack], keys, metric),
            scenarios[scenario],
            protocol=protocol,
            embedder=embedder,
            metric=metric,
            query_source=source,
            database_source=source,
            seed=seed,
        )
        rows.append(
            scored.row()
            | {"cross_mask": False, "control": control, "alignment": alignment, "attacker": attack}
        )
    return rows
