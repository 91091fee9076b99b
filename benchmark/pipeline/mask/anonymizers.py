"""Anonymizers: whatever turns a prep crop into an image that should not show who it is.

Every image the mask stage writes comes from one ``Anonymizer``, and the stage checks each
anonymizer's output the same way (``benchmark.pipeline.mask.stage.check_output``):

* ``DigitalMask`` — a built-in reconstruction: reconstruct → render → cut (the paper's
  mask, our embedded defaults);
* ``ControlFill`` — a control (blank, blur, pixelate, blackout) over a cut's region;
* ``PluginAnonymizer`` — a user's callable, found by entry point (group
  ``dmbench.anonymizers``) or given as ``module:callable``;
* ``FolderAnonymizer`` — images made elsewhere (another environment, another machine),
  read from a folder that mirrors the run's ``crops/``.

**The plug-in protocol** (README, "Your own anonymizer")::

    def anonymize(crop: np.ndarray) -> np.ndarray | tuple[np.ndarray, np.ndarray | None]

``crop`` is a read-only 224×224×3 ``uint8`` RGB prep crop. The callable returns the
anonymized image (same shape and dtype) and, optionally, the boolean 224×224 region it
changed; without one, the region is dmbench's face cut of the crop (the stage's ``cut``),
the least a face anonymizer must change. To refuse a crop it raises
``benchmark.errors.MaskFailure(reason)``: that verdict is recorded and cached. Any other
exception is a crash: recorded, never cached, tried again on the next run; a plug-in that
crashes on every crop of a run stops it with its error. An entry point may name a class:
it is instantiated once per process, with no arguments (a model loads once).

An output dmbench did not draw (a plug-in's, a folder's) is checked over its region AND
the centre of the face (``FaceCentre``, ``Anonymized.must_change``), and refused as a
near-copy within ``NEAR_COPY_PSNR_DB`` of the photo there.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from benchmark.errors import ImageReadError, MaskFailure, UsageError
from benchmark.pipeline.backend import Backend
from benchmark.pipeline.mask.types import Control, FaceCut, FaceMesh, Reconstructor, Renderer

ENTRY_POINT_GROUP = "dmbench.anonymizers"
REGION_SUFFIX = ".region.png"  # folder mode: the optional region beside an image
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")  # folder mode: what an image may be


@dataclass
class Anonymized:
    """One anonymized crop, before the stage's checks."""

    image: np.ndarray  # H×W×3 uint8 RGB: the anonymized crop (the ``overlay`` output)
    region: np.ndarray  # H×W bool: the pixels the anonymizer replaced
    # Pixels carrying the anonymizer's own content (``mask_only`` shows them); None: the
    # region. A render covers less than its cut: the rest of the cut is background.
    drawn: np.ndarray | None = None
    vertices: np.ndarray | None = field(default=None, repr=False)  # a reconstruction's mesh
    info: dict = field(default_factory=dict)  # facts recorded with the result
    # An output dmbench did not draw: what it must change whatever region it declares (the
    # face's centre, ``FaceCentre``). The stage checks it with the region, and refuses a
    # near-copy of the photo there (``NEAR_COPY_PSNR_DB``).
    must_change: np.ndarray | None = field(default=None, repr=False)


class AnonymizerCrash(MaskFailure):
    """An exception that is not the crop's verdict (a bug, no memory): recorded for this
    run, never cached, so the next run tries the crop again."""


class Anonymizer(Protocol):
    """What the mask stage runs. ``backends`` name the stage and key its cache."""

    kind: ClassVar[str]  # "reconstruction" | "control" | "plugin" | "folder"
    crash_label: ClassVar[str]  # what crashed, in a crash's reason
    cacheable: ClassVar[bool] = True  # False: nothing to save (the folder is the result)
    backends: dict[str, Backend]  # role → backend

    @property
    def name(self) -> str:
        """The name of what anonymizes (the first backend)."""
        return next(iter(self.backends.values())).name

    def recipe_names(self) -> dict[str, str]:
        """The keywords ``MaskStage.from_names`` rebuilds this anonymizer from (a worker
        process builds its own)."""
        return {role: backend.name for role, backend in self.backends.items()}

    def anonymize_batch(
        self, crops: list[np.ndarray], names: list[str]
    ) -> list[Anonymized | MaskFailure]:
        """Each crop's result or its MaskFailure, in order; ``names`` are the crops' paths in
        the run folder ("" when unknown). An exception is a crash of the whole batch: the
        stage tries the crops one by one."""


def paint_over(
    crop: np.ndarray, rgb: np.ndarray, coverage: np.ndarray, region: np.ndarray
) -> np.ndarray:
    """The crop with ``region`` replaced: by ``rgb`` (floats in [0, 1]) where ``coverage``
    says it is drawn, by white (the background, never the photo) where it is not."""
    drawn = np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)
    out = crop.copy()
    out[region] = 255
    covered = region & coverage
    out[covered] = drawn[covered]
    return out


def _verdict(make: Callable[[], Anonymized]) -> Anonymized | MaskFailure:
    """A built-in's step for one crop: its MaskFailure, or any exception as the crop's
    recorded reason (render and cut errors are properties of the crop)."""
    try:
        return make()
    except MaskFailure as exc:
        return exc
    except Exception as exc:
        return MaskFailure(f"{type(exc).__name__}: {exc}")


class DigitalMask(Anonymizer):
    """The digital mask: the face reconstructed in 3D, rendered grey in pose and cut to
    the face region; region pixels the render misses become background."""

    kind = "reconstruction"
    crash_label = "reconstruction"

    def __init__(self, reconstructor: Reconstructor, renderer: Renderer, cut: FaceCut) -> None:
        self.reconstructor, self.renderer, self.cut = reconstructor, renderer, cut
        self.backends = {"reconstruct": reconstructor, "render": renderer, "cut": cut}

    def anonymize_batch(
        self, crops: list[np.ndarray], names: list[str]
    ) -> list[Anonymized | MaskFailure]:
        meshes = self.reconstructor.reconstruct_batch(crops)  # RingNet: one network call
        return [
            mesh
            if isinstance(mesh, MaskFailure)
            else _verdict(lambda c=crop, m=mesh: self._one(c, m))
            for crop, mesh in zip(crops, meshes, strict=True)
        ]

    def _one(self, crop: np.ndarray, mesh: FaceMesh) -> Anonymized:
        size = crop.shape[0]
        mesh.validate(size)
        rendering = self.renderer.render(mesh, size)
        region = self.cut.region(crop, mesh)
        return Anonymized(
            paint_over(crop, rendering.image, rendering.coverage, region),
            region,
            drawn=region & rendering.coverage,
            vertices=mesh.vertices,
            info={
                "vertices": len(mesh.vertices),
                "triangles": len(mesh.triangles),
                "mesh": jsonable(mesh.info),
            },
        )


class ControlFill(Anonymizer):
    """A control: the cut's region filled with no reconstruction (``controls.py``)."""

    kind = "control"
    crash_label = "control"

    def __init__(self, control: Control, cut: FaceCut) -> None:
        self.control, self.cut = control, cut
        self.backends = {"control": control, "cut": cut}

    def anonymize_batch(
        self, crops: list[np.ndarray], names: list[str]
    ) -> list[Anonymized | MaskFailure]:
        return [_verdict(lambda c=crop: self._one(c)) for crop in crops]

    def _one(self, crop: np.ndarray) -> Anonymized:
        region = self.cut.region(crop, None)
        painted = self.control.paint(crop, region)
        return Anonymized(paint_over(crop, painted, np.ones_like(region), region), region)


# -- outputs dmbench did not draw: plug-ins and folders ----------------------------------
CENTRE_SCALE = 0.7  # the face's centre: MediaPipe's 468-point hull shrunk to 70 % about its mean
NEAR_COPY_PSNR_DB = 35.0  # an output this close to the photo over the checked region is a copy
UNTRUSTED_CHECKS = {"centre_scale": CENTRE_SCALE, "near_copy_psnr_db": NEAR_COPY_PSNR_DB}


class FaceCentre:
    """What an output that dmbench did not draw must change, whatever region it declares:
    the centre of the face (eyes, nose, mouth), found on the crop by MediaPipe's mesh. The
    stage checks it together with the declared region (``Anonymized.must_change``), so a
    plug-in cannot pass the photo off with a one-pixel region, nor a region file with its
    polarity inverted, nor as a near-copy (the photo plus 1, a JPEG re-encode)."""

    def __init__(self, store: Any) -> None:
        from benchmark.pipeline.common.mediapipe_mesh import MediaPipeFaceMesh

        self.mesh = MediaPipeFaceMesh(store, "cpu", max_faces=1)

    def region(self, crop: np.ndarray) -> np.ndarray:
        from benchmark.pipeline.mask.types import hull_region

        faces = self.mesh.faces(crop)
        if not faces:
            raise MaskFailure("no face found on the crop to check the anonymized image against")
        points = faces[0][:, :2]
        centre = points.mean(axis=0)
        return hull_region(centre + CENTRE_SCALE * (points - centre), crop.shape[:2])

    def untrusted(self, crop: np.ndarray, image: Any, region: Any) -> Anonymized:
        """An output dmbench did not draw, copied (a plug-in may reuse its buffer for the
        next crop), with the face's centre it must change."""
        copied = np.array(image, copy=True) if isinstance(image, np.ndarray) else image
        if isinstance(region, np.ndarray):
            region = np.array(region, copy=True)
        return Anonymized(copied, region, must_change=self.region(crop))


# -- plug-ins ---------------------------------------------------------------------------
_NAME = re.compile(r"[A-Za-z0-9_.-]+")


class PluginBackend(Backend):
    """A plug-in as the stage records it: its name, and what identifies its code (the
    sha256 of the module file it lives in, its distribution's version), which keys the
    cache: an edited plug-in is run again, not read from an old cache entry."""

    def __init__(self, name: str, target: Callable[..., Any], spec: str) -> None:
        self.name = name  # type: ignore[misc]
        self.spec = spec
        self.target = target
        self._settings = plugin_identity(target)

    def settings(self) -> dict[str, Any]:
        return self._settings | {"checks": UNTRUSTED_CHECKS}


def plugin_identity(target: Any) -> dict[str, Any]:
    """``{"callable", "source_sha256", "version"}`` of a plug-in (what keys its results)."""
    while isinstance(target, functools.partial):  # the code is the wrapped function's
        target = target.func
    code = target if inspect.isfunction(target) or inspect.isclass(target) else type(target)
    module = inspect.getmodule(code)
    facts: dict[str, Any] = {"callable": f"{code.__module__}:{code.__qualname__}"}
    sources = _source_files(module)
    if sources:
        digest = hashlib.sha256()
        for path in sources:
            digest.update(f"{path.name}\0".encode() + path.read_bytes())
        facts["source_sha256"] = digest.hexdigest()
        facts["source_files"] = len(sources)
    top = (getattr(module, "__name__", "") or "").split(".")[0]
    for dist in metadata.packages_distributions().get(top, []):
        facts["version"] = metadata.version(dist)
        break
    for owner in (target, module):  # a plug-in's own statement of its version
        if hasattr(owner, "version"):
            facts["plugin_version"] = str(owner.version)
            break
    return facts


def _source_files(module: Any) -> list[Path]:
    """The plug-in's code: every ``.py`` file of its top-level package (helpers included),
    or its one module file; not its model weights (a plug-in states those by ``version``)."""
    source = getattr(module, "__file__", None)
    if not source or not Path(source).is_file():
        return []
    top = sys.modules.get((module.__name__ or "").split(".")[0])
    folder = getattr(top, "__path__", None)
    if folder:
        files = sorted(p for p in Path(next(iter(folder))).rglob("*.py") if p.is_file())
        return files[:2000]
    return [Path(source)]


def entry_points() -> dict[str, metadata.EntryPoint]:
    """Installed plug-ins: the entry points of the group ``dmbench.anonymizers``."""
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def load_plugin(spec: str) -> tuple[str, Callable[[np.ndarray], Any]]:
    """``(name, callable)`` of a plug-in given as an entry point's name, ``module:attr`` or
    ``module.attr``; a class is instantiated once, with no arguments."""
    found = entry_points().get(spec)
    if found is not None:
        name, target = spec, _load(spec, found.load)
    else:
        module, sep, attr = spec.partition(":")
        if not sep:
            module, _, attr = spec.rpartition(".")
        if not module or not attr:
            raise UsageError(
                f"unknown anonymizer '{spec}': not a built-in, not an installed plug-in "
                f"(entry points of '{ENTRY_POINT_GROUP}': {', '.join(entry_points()) or 'none'}), "
                "not module:callable"
            )

        def from_module() -> Any:
            value: Any = importlib.import_module(module)
            for part in attr.split("."):
                value = getattr(value, part)
            return value

        name, target = f"{module}.{attr}", _load(spec, from_module)
    if not _NAME.fullmatch(name):
        raise UsageError(f"anonymizer '{spec}': its name {name!r} cannot name a folder")
    if isinstance(target, type):
        try:
            target = target()
        except Exception as exc:
            raise UsageError(
                f"anonymizer '{spec}': {target.__qualname__}() failed: {type(exc).__name__}: {exc}"
            ) from exc
    if not callable(target):
        raise UsageError(f"anonymizer '{spec}' is a {type(target).__name__}, not a callable")
    return name, target


def _load(spec: str, load: Callable[[], Any]) -> Any:
    try:
        return load()
    except (ImportError, AttributeError) as exc:
        raise UsageError(
            f"anonymizer '{spec}' cannot be loaded: {type(exc).__name__}: {exc}"
        ) from exc


class PluginAnonymizer(Anonymizer):
    """A user's callable (the protocol above); a region it does not give is the cut's."""

    kind = "plugin"
    crash_label = "anonymizer"

    def __init__(self, spec: str, cut: FaceCut, store: Any) -> None:
        name, target = load_plugin(spec)
        self.plugin = PluginBackend(name, target, spec)
        self.cut = cut
        self.centre = FaceCentre(store)
        self.backends = {"anonymizer": self.plugin, "cut": cut}

    def recipe_names(self) -> dict[str, str]:
        return {"anonymizer": self.plugin.spec, "cut": self.cut.name}

    def anonymize_batch(
        self, crops: list[np.ndarray], names: list[str]
    ) -> list[Anonymized | MaskFailure]:
        return [self._one(crop) for crop in crops]

    def _one(self, crop: np.ndarray) -> Anonymized | MaskFailure:
        photo = crop.copy()
        photo.flags.writeable = False  # the plug-in must not paint the photo it compares with
        try:
            returned = self.plugin.target(photo)
        except MaskFailure as exc:
            return MaskFailure(f"{self.plugin.name} refused: {exc.reason}")
        except Exception as exc:
            return AnonymizerCrash(f"anonymizer crashed: {type(exc).__name__}: {exc}")
        if isinstance(returned, tuple):
            if len(returned) != 2:
                return MaskFailure(
                    f"{self.plugin.name} returned a tuple of {len(returned)}, not (image, region)"
                )
            image, region = returned
        else:
            image, region = returned, None
        return _verdict(
            lambda: self.centre.untrusted(
                crop, image, self.cut.region(crop, None) if region is None else region
            )
        )


class FolderAnonymizer(Anonymizer):
    """Anonymized images made elsewhere: ``DIR/<identity>/<session>/<frame>_prep.png``
    mirrors the run's ``crops/`` (``.jpg``, ``.jpeg`` or ``.webp`` also read). A region file
    ``<same stem>.region.png`` beside one (non-zero = changed) gives its region; without
    it, the region is the cut's. A missing or unreadable file is that crop's failure.
    Nothing is cached: the folder is the result, and it may change between runs."""

    kind = "folder"
    cacheable = False
    crash_label = "anonymized folder"

    def __init__(self, folder: str | Path, cut: FaceCut, store: Any) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise UsageError(f"--anonymized {self.folder}: not a folder")
        resolved = str(self.folder.resolve())
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", self.folder.resolve().name).strip("-.")
        tag = hashlib.sha256(resolved.encode()).hexdigest()[:6]  # two folders named alike
        self.source = _FolderBackend(f"folder-{slug or 'anonymized'}-{tag}", self.folder)
        self.cut = cut
        self.centre = FaceCentre(store)
        self.backends = {"anonymized": self.source, "cut": cut}

    def recipe_names(self) -> dict[str, str]:
        return {"anonymized": str(self.folder), "cut": self.cut.name}

    def anonymize_batch(
        self, crops: list[np.ndarray], names: list[str]
    ) -> list[Anonymized | MaskFailure]:
        return [
            _verdict(lambda c=crop, n=name: self._one(c, n))
            for crop, name in zip(crops, names, strict=True)
        ]

    def _one(self, crop: np.ndarray, name: str) -> Anonymized:
        from benchmark.imageio import load_image
        from benchmark.runfolder import inside

        if not name:
            raise MaskFailure("folder mode needs the crop's path in the run folder")
        rel = Path(name)
        rel = rel.relative_to("crops") if rel.parts[:1] == ("crops",) else rel
        stem = inside(self.folder, str(rel.with_suffix("")), f"{self.folder}: {rel}")
        found = [p for s in IMAGE_SUFFIXES if (p := stem.with_suffix(s)).is_file()]
        if not found:
            raise MaskFailure(f"{stem.with_suffix('.png')}: anonymized image missing")
        try:
            image = load_image(found[0]).rgb
            region_file = stem.parent / (stem.name + REGION_SUFFIX)
            region = (
                load_image(region_file).rgb.any(axis=-1)
                if region_file.is_file()
                else self.cut.region(crop, None)
            )
        except ImageReadError as exc:
            raise MaskFailure(str(exc)) from None
        made = self.centre.untrusted(crop, image, region)
        made.info = {"file": str(found[0])}
        return made


class _FolderBackend(Backend):
    def __init__(self, name: str, folder: Path) -> None:
        self.name = name  # type: ignore[misc]
        self.folder = folder

    def settings(self) -> dict[str, Any]:
        return {"folder": str(self.folder.resolve())}


def jsonable(info: dict) -> dict:
    """The facts that can go into a JSON record (arrays become lists; the rest is dropped)."""
    import json

    out = {}
    for key, value in info.items():
        if isinstance(value, np.ndarray):
            value = value.tolist()
        try:
            json.dumps(value)
        except TypeError:
            continue
        out[key] = value
    return out
