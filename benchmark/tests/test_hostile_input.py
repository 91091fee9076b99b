"""Hostile input, one table: every bad input, fault and unsafe command a reviewer tried
against ``dmbench`` (issue 10), and what dmbench must do instead of a traceback, a silent
corruption or a deleted folder.

Three tables, each a list of rows checked by one test:

* ``IMAGE_CASES``: bad and odd photo files inside one dataset, prepped once; each row says
  what the frame's row in ``frames.csv`` must say.
* ``COMMAND_CASES``: a situation built in a fresh folder and cache, one ``dmbench`` command
  run in-process, its exit code, what it must print and what must hold afterwards.
* ``FAULTS``: a real ``dmbench`` process killed (SIGINT, SIGKILL) in each stage, or two
  processes on one cache; the finished run must equal an uninterrupted one.

Every row names the issue item it reproduces ("held" rows are strengths that must stay).
Photos are real LFW-dev photos. We run as root here, where ``chmod 000`` takes nothing
away, so "no permission" and "disk full" are also simulated by making the OS calls on that
path fail as they would (``World.deny``, ``World.fill_disk``); as another user the
``chmod`` alone does it.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmark.cli import main
from benchmark.datasets import Dataset

pytestmark = pytest.mark.integration

ROOT = os.geteuid() == 0
EXIF_ORIENTATION = 0x0112


# -- the world a case is built in ------------------------------------------------------
@dataclass
class Outcome:
    exit: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return f"{self.out}\n{self.err}"


class World:
    """A fresh folder and cache for one case, with real photos and a prepped run to copy."""

    def __init__(self, tmp: Path, monkeypatch, base: Base) -> None:
        self.tmp, self.patch, self.base = tmp, monkeypatch, base
        self.cache = tmp / "cache"
        monkeypatch.setenv("DMBENCH_CACHE_DIR", str(self.cache))
        self._modes: list[tuple[Path, int]] = []
        self.listing: list[str] = []  # a tree as it was before the command

    # data
    def people(self, name: str = "people") -> Path:
        """The three-identity LFW-layout dataset, copied."""
        target = self.tmp / name
        shutil.copytree(self.base.people, target, symlinks=True)
        return target

    def photo(self, index: int = 0) -> bytes:
        return self.base.photos[index].read_bytes()

    def run(self, with_masks: bool = False) -> Path:
        """A copy of the prepped run (crops, tables), optionally with its mask outputs."""
        target = self.tmp / "run"
        ignore = None if with_masks else shutil.ignore_patterns("masks")
        shutil.copytree(self.base.run, target, ignore=ignore)
        return target

    def warm_cache(self) -> Path:
        """A copy of the cache that the prepped (and masked) run filled."""
        shutil.copytree(self.base.cache, self.cache)
        return self.cache

    def entries(self, stage: str) -> list[Path]:
        return cache_entries(self.cache, stage)

    # faults
    def deny(self, path: Path, write_only: bool = False) -> None:
        """Take away access to ``path`` and everything below it."""
        path = Path(path)
        self._modes.append((path, path.stat().st_mode))
        os.chmod(path, 0o555 if write_only else 0o000)
        if not ROOT:
            return

        def under(target) -> bool:
            try:
                return Path(os.fspath(target)).absolute().is_relative_to(path.absolute())
            except TypeError:  # a file descriptor
                return False

        def refuse(target) -> None:
            raise PermissionError(errno.EACCES, "Permission denied", str(target))

        def guard(module, name: str, arg: str | int) -> None:
            real = getattr(module, name)

            def guarded(*args, **kwargs):
                target = kwargs.get(arg) if isinstance(arg, str) else args[arg]
                if target is not None and under(target):
                    refuse(target)
                return real(*args, **kwargs)

            self.patch.setattr(module, name, guarded)

        guard(os, "mkdir", 0)
        for name in ("mkstemp", "mkdtemp", "TemporaryFile", "NamedTemporaryFile"):
            guard(tempfile, name, "dir")
        if not write_only:
            guard(os, "scandir", 0)
            guard(os, "listdir", 0)

    def fill_disk(self, path: Path) -> None:
        """Writes of files under ``path`` fail with ENOSPC, as on a full disk."""
        path = Path(path).absolute()
        full_fds: set[int] = set()
        real_mkstemp, real_fdopen = tempfile.mkstemp, os.fdopen
        real_write_bytes, real_write_text = Path.write_bytes, Path.write_text

        def is_under(target) -> bool:
            return Path(target).absolute().is_relative_to(path)

        def no_space(target) -> OSError:
            return OSError(errno.ENOSPC, "No space left on device", str(target))

        def mkstemp(*args, **kwargs):
            fd, name = real_mkstemp(*args, **kwargs)
            if is_under(name):
                full_fds.add(fd)
            return fd, name

        class FullFile(io.RawIOBase):
            def __init__(self, fd: int) -> None:
                self.fd = fd

            def writable(self) -> bool:
                return True

            def write(self, data) -> int:
                raise no_space(path)

            def close(self) -> None:
                if not self.closed:
                    os.close(self.fd)
                super().close()

        def fdopen(fd, *args, **kwargs):
            return FullFile(fd) if fd in full_fds else real_fdopen(fd, *args, **kwargs)

        def write_bytes(self, data):
            if is_under(self):
                raise no_space(self)
            return real_write_bytes(self, data)

        def write_text(self, data, *args, **kwargs):
            if is_under(self):
                raise no_space(self)
            return real_write_text(self, data, *args, **kwargs)

        real_link = os.link

        def link(source, target, *args, **kwargs):  # a new name needs room too
            if is_under(target):
                raise no_space(target)
            return real_link(source, target, *args, **kwargs)

        self.patch.setattr(tempfile, "mkstemp", mkstemp)
        self.patch.setattr(os, "link", link)
        self.patch.setattr(os, "fdopen", fdopen)
        self.patch.setattr(Path, "write_bytes", write_bytes)
        self.patch.setattr(Path, "write_text", write_text)

    def restore(self) -> None:
        for path, mode in reversed(self._modes):
            os.chmod(path, mode)


@dataclass
class Base:
    """What every case may copy: real photos, a dataset, a prepped + masked run, its cache."""

    photos: list[Path]
    people: Path
    run: Path
    cache: Path
    frames_csv: str  # the run's frames.csv without the 'cached' column
    masks_csv: str


def dmbench(*argv: str | Path) -> Outcome:
    """``dmbench ARGV`` in this process; a traceback fails the test by itself.

    Warnings are shown as the command shows them (one line each on stderr), every time
    they are raised, so "warned once" means the code raised it once."""
    import contextlib
    import warnings

    out, err = io.StringIO(), io.StringIO()
    with (
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always")
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse: a usage error
            code = exc.code if isinstance(exc.code, int) else 2
    shown = "".join(f"dmbench: warning: {w.message}\n" for w in caught)
    return Outcome(code, out.getvalue(), shown + err.getvalue())


def cache_entries(cache: Path, stage: str) -> list[Path]:
    """The ``meta.json`` of every entry of a stage; a ``.tmp-`` folder that a killed process
    left behind is not an entry (it is never read)."""
    found = (cache / "intermediates" / stage).glob("*/*/meta.json")
    return sorted(m for m in found if not m.parent.name.startswith(".tmp-"))


def table_without_cached(path: Path) -> str:
    """A run table minus its 'cached' column (which differs between a cold and a warm run)."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return json.dumps([{k: v for k, v in r.items() if k != "cached"} for r in rows], indent=0)


def rows_of(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def write_rows(path: Path, rows: list[dict[str, str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture(scope="module")
def base(lfw: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Base:
    """Three real LFW identities (three or four photos each) plus one photo with no face,
    prepped and masked with the default backends into a cache of their own."""
    root = tmp_path_factory.mktemp("hostile_base")
    people = root / "people"
    names = lfw.subset(3, seed=11, min_sessions=3).identities()
    photos = []
    for name in names:
        for frame in [f for f in lfw.frames if f.identity == name][:4]:
            target = people / "images" / name / frame.path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(frame.path, target)
            photos.append(target)
    grey = people / "images" / names[0] / f"{names[0]}_0099.jpg"
    Image.new("RGB", (250, 250), (128, 128, 128)).save(grey)  # a frame prep drops
    cache = root / "cache"
    saved = os.environ.get("DMBENCH_CACHE_DIR")
    os.environ["DMBENCH_CACHE_DIR"] = str(cache)
    try:
        run = root / "run"
        prepped = dmbench("prep", people, "--out", run, "--quiet")
        assert prepped.exit == 0, prepped.text
        masked = dmbench("mask", run, "--quiet")
        assert masked.exit == 0, masked.text
    finally:
        if saved is None:
            del os.environ["DMBENCH_CACHE_DIR"]
        else:
            os.environ["DMBENCH_CACHE_DIR"] = saved
    return Base(
        photos=photos,
        people=people,
        run=run,
        cache=cache,
        frames_csv=table_without_cached(run / "frames.csv"),
        masks_csv=table_without_cached(next((run / "masks").glob("*/masks.csv"))),
    )


@pytest.fixture()
def world(tmp_path: Path, monkeypatch, base: Base):
    made = World(tmp_path, monkeypatch, base)
    yield made
    monkeypatch.undo()
    made.restore()


# -- 1. bad and odd photo files ----------------------------------------------------------
def _jpeg(image: Image.Image, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95, **kwargs)
    return buffer.getvalue()


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _encoded(fmt: str) -> Callable[[Image.Image], bytes]:
    def encode(good: Image.Image) -> bytes:
        buffer = io.BytesIO()
        good.save(buffer, format=fmt)
        return buffer.getvalue()

    return encode


def _sideways(orientation: int | None) -> Callable[[Image.Image], bytes]:
    """The photo stored turned a quarter (as a phone stores it), with or without the EXIF
    orientation that tells a viewer to turn it back."""

    def make(good: Image.Image) -> bytes:
        stored = good.transpose(Image.Transpose.ROTATE_90)  # counter-clockwise
        exif = Image.Exif()
        if orientation is not None:
            exif[EXIF_ORIENTATION] = orientation
        return _jpeg(stored, exif=exif)

    return make


def _two_faces(good: Image.Image) -> bytes:
    pair = Image.new("RGB", (good.width * 2, good.height))
    pair.paste(good, (0, 0))
    pair.paste(good.transpose(Image.Transpose.FLIP_LEFT_RIGHT), (good.width, 0))
    return _jpeg(pair)


@dataclass(frozen=True)
class ImageCase:
    id: str
    item: str
    suffix: str
    make: Callable[[Image.Image], bytes]
    status: str  # error | dropped | kept | usable (reaches the detector and finds a face)
    says: str = ""  # in the row's reason or note


IMAGE_CASES = [
    ImageCase("empty", "held", ".jpg", lambda g: b"", "error", "empty file"),
    ImageCase(
        "truncated", "held", ".jpg", lambda g: _jpeg(g)[: len(_jpeg(g)) // 2], "error", "truncated"
    ),
    ImageCase(
        "text",
        "held",
        ".jpg",
        lambda g: b"not an image at all " * 20,
        "error",
        "not a readable image",
    ),
    ImageCase(
        "corrupt-header",
        "held",
        ".jpg",
        lambda g: _jpeg(g)[:2] + bytes(200) + _jpeg(g)[202:],
        "error",
        "",
    ),
    ImageCase("tiny", "held", ".jpg", lambda g: _jpeg(g.resize((24, 24))), "error", "too small"),
    ImageCase(
        "huge", "held", ".png", lambda g: _png(Image.new("RGB", (8100, 40))), "error", "too large"
    ),
    ImageCase("grayscale", "held", ".jpg", lambda g: _jpeg(g.convert("L")), "usable", "grayscale"),
    ImageCase("rgba", "held", ".png", lambda g: _png(g.convert("RGBA")), "usable", "RGBA"),
    ImageCase(
        "16-bit",
        "held",
        ".png",
        lambda g: _png(Image.fromarray(np.asarray(g.convert("L"), np.uint16) * 257)),
        "usable",
        "16-bit",
    ),
    ImageCase("cmyk", "held", ".jpg", lambda g: _jpeg(g.convert("CMYK")), "usable", "CMYK"),
    ImageCase("palette", "held", ".png", lambda g: _png(g.convert("P")), "usable", "palette"),
    ImageCase("webp", "held", ".webp", _encoded("WEBP"), "usable", ""),
    ImageCase("bmp", "held", ".bmp", _encoded("BMP"), "usable", ""),
    ImageCase("tiff", "held", ".tif", _encoded("TIFF"), "usable", ""),
    ImageCase("png-named-jpg", "held", ".jpg", _png, "usable", ""),
    ImageCase(
        "no-face",
        "held",
        ".jpg",
        lambda g: _jpeg(Image.new("RGB", (250, 250), (128, 128, 128))),
        "dropped",
        "no face",
    ),
    ImageCase("two-faces", "held", ".jpg", _two_faces, "dropped", "more than one face"),
    ImageCase("exif-orientation-6", "4", ".jpg", _sideways(6), "kept", "EXIF orientation 6"),
    ImageCase(
        "exif-orientation-8-mirror",
        "4",
        ".jpg",
        lambda g: _jpeg(g.transpose(Image.Transpose.ROTATE_270), exif=_exif(8)),
        "kept",
        "EXIF orientation 8",
    ),
    # The control for the two above: the same sideways pixels without the tag are not a
    # frontal face, so the EXIF rows pass only because the orientation was applied.
    ImageCase("sideways-without-exif", "4", ".jpg", _sideways(None), "dropped", ""),
]


def _exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    return exif


@pytest.fixture(scope="module")
def image_rows(base: Base, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """One LFW-layout identity holding every ``IMAGE_CASES`` file, prepped once by the CLI."""
    root = tmp_path_factory.mktemp("hostile_images")
    person = root / "data" / "images" / "Bad_Input"
    person.mkdir(parents=True)
    good = Image.open(base.photos[0]).convert("RGB")
    files = {}
    for number, case in enumerate(IMAGE_CASES, start=1):
        name = f"Bad_Input_{number:04d}{case.suffix}"
        (person / name).write_bytes(case.make(good))
        files[name] = case.id
    saved = os.environ.get("DMBENCH_CACHE_DIR")
    os.environ["DMBENCH_CACHE_DIR"] = str(root / "cache")
    try:
        outcome = dmbench("prep", root / "data", "--out", root / "run", "--quiet")
    finally:
        os.environ.pop("DMBENCH_CACHE_DIR")
        if saved is not None:
            os.environ["DMBENCH_CACHE_DIR"] = saved
    assert outcome.exit == 0, outcome.text
    rows = rows_of(root / "run" / "frames.csv")
    assert len(rows) == len(IMAGE_CASES), "the run went on past every bad file"
    return {files[Path(row["path"]).name]: row for row in rows}


@pytest.mark.parametrize("case", IMAGE_CASES, ids=[c.id for c in IMAGE_CASES])
def test_image_case(case: ImageCase, image_rows: dict[str, dict]) -> None:
    row = image_rows[case.id]
    text = f"{row['reason']} {row['note']}"
    if case.status == "usable":  # converted where needed, then a face is found
        assert row["status"] != "error" and int(row["n_faces"]) >= 1, text
    else:
        assert row["status"] == case.status, (row["status"], text)
    assert case.says.lower() in text.lower(), text
    if case.status == "error":
        assert Path(row["path"]).name in row["reason"], "an error names the file"


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "TIFF", "PNG16"])
def test_every_exif_orientation_is_shown_as_a_viewer_shows_it(fmt: str, orientation: int) -> None:
    """Item 4 for all eight orientations and the formats that carry the tag (Pillow turns
    TIFFs itself while opening them; 16-bit PNGs take their own decoding path)."""
    from PIL import ImageOps

    from benchmark.imageio import load_image

    pixels = np.random.default_rng(orientation).integers(0, 255, (40, 64, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    if fmt == "PNG16":
        image = Image.fromarray(pixels[..., 0].astype(np.uint16) * 257)
    buffer = io.BytesIO()
    image.save(
        buffer,
        format="PNG" if fmt == "PNG16" else fmt,
        exif=_exif(orientation),
        **({"quality": 100} if fmt == "JPEG" else {}),
    )
    loaded = load_image(f"photo.{fmt.lower()}", buffer.getvalue())
    with Image.open(io.BytesIO(buffer.getvalue())) as stored:
        viewer = ImageOps.exif_transpose(stored)
        expected = np.asarray(viewer.convert("RGB")) if fmt != "PNG16" else None
    if expected is None:  # 16 bits: compare the upright shape and the top-left corner
        upright = np.asarray(viewer, dtype=np.uint32) // 257
        expected = np.repeat(upright[..., None].astype(np.uint8), 3, axis=2)
    assert loaded.rgb.shape == expected.shape
    assert np.abs(loaded.rgb.astype(int) - expected).max() <= 1
    assert (f"EXIF orientation {orientation}" in loaded.note) == (orientation != 1)


# -- 2. commands on bad folders, tables, outputs, caches and assets ------------------------
@dataclass(frozen=True)
class CommandCase:
    id: str
    item: str
    arrange: Callable[[World], list]  # builds the situation; returns the command's argv
    exit: int
    says: tuple[str, ...] = ()  # printed (stdout or stderr), case-insensitive
    never_says: tuple[str, ...] = ()
    then: Callable[[World, Outcome], None] | None = None


# Datasets --------------------------------------------------------------------------------
def _unreadable_identity(w: World) -> list:
    people = w.people()
    w.deny(next((people / "images").iterdir()))
    return ["data", "info", people]


def _unreadable_root(w: World) -> list:
    people = w.people()
    w.deny(people / "images")
    w.deny(people)
    return ["data", "info", people]


def _dataset_is_a_file(w: World) -> list:
    (w.tmp / "x.jpg").write_bytes(w.photo())
    return ["data", "info", w.tmp / "x.jpg"]


def _photo_named_entry(kind: str) -> Callable[[World], list]:
    def arrange(w: World) -> list:
        people = w.people()
        identity = next((people / "images").iterdir())
        entry = identity / f"{identity.name}_0098.jpg"
        if kind == "folder":
            entry.mkdir()
        elif kind == "loop":
            entry.symlink_to(entry.name)
        elif kind == "broken":
            entry.symlink_to("nowhere.jpg")
        elif kind == "device":
            entry.symlink_to("/dev/zero")
        return ["prep", people, "--out", w.tmp / "out", "--quiet"]

    return arrange


def _reason_in_table(fragment: str) -> Callable[[World, Outcome], None]:
    def check(w: World, outcome: Outcome) -> None:
        reasons = [r["reason"] for r in rows_of(w.tmp / "out" / "frames.csv") if r["reason"]]
        assert any(fragment in r for r in reasons), reasons

    return check


def _own_photos(videos: bool) -> Callable[[World], list]:
    """``<identity>/photo1.jpg`` (or ``<identity>/<video>/<frame>.jpg``): any file names."""

    def arrange(w: World) -> list:
        root = w.tmp / "mine"
        for who, photos in (("Alice", (0, 1)), ("Bob", (4, 5))):
            for number, index in enumerate(photos):
                name = ("clip", f"frame{number}.jpg") if videos else (f"IMG_20{24 + number}.jpg",)
                target = root.joinpath(who, *name)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(w.photo(index))
        return ["data", "info", root]

    return arrange


def _info_counts(identities: int, frames: int) -> Callable[[World, Outcome], None]:
    def check(w: World, outcome: Outcome) -> None:
        info = json.loads(outcome.out)
        assert (info["identities"], info["frames"], info["layout_problems"]) == (
            identities,
            frames,
            0,
        ), info

    return check


def _nothing_usable(kind: str) -> Callable[[World], list]:
    def arrange(w: World) -> list:
        root = w.tmp / "nothing"
        root.mkdir()
        if kind == "notes":
            (root / "Alice").mkdir()
            (root / "Alice" / "notes.txt").write_text("no photos here")
        return ["prep", root, "--out", w.tmp / "out", "--quiet"]

    return arrange


def _bad_name(name: str, command: str) -> Callable[[World], list]:
    """An identity folder whose name would break the run's CSV tables."""

    def arrange(w: World) -> list:
        people = w.people()
        bad = people / "images" / name
        bad.mkdir()
        for i in range(2):
            (bad / f"{name}_{i + 1:04d}.jpg").write_bytes(w.photo(i))
        if command == "prep+mask":
            assert dmbench("prep", people, "--out", w.tmp / "run", "--quiet").exit == 0
            return ["mask", w.tmp / "run", "--quiet"]
        w.warm_cache()
        # Every identity is drawn (no --identities), so the bad name would be too.
        return ["reproduce", "--data", people, "--out", w.tmp / "out", "--quiet"]

    return arrange


def _all_crops_masked(w: World, outcome: Outcome) -> None:
    """Every crop of the run's frames.csv has its masks, as many as the base run kept."""
    prepped = [r for r in rows_of(w.tmp / "run" / "frames.csv") if r["crop"]]
    masked = rows_of(next((w.tmp / "run" / "masks").glob("*/masks.csv")))
    assert len(prepped) == len(masked) == w.base.frames_csv.count('"crop": "crops/'), (
        "no kept crop is lost"
    )


def _every_good_crop_masked(w: World, outcome: Outcome) -> None:
    _all_crops_masked(w, outcome)
    reasons = [r["reason"] for r in rows_of(w.tmp / "run" / "frames.csv")]
    assert any("control or line-separator" in r for r in reasons), reasons


def _single_photo_identities(w: World) -> list:
    root = w.tmp / "singles"
    for i, who in enumerate(("Alice", "Bob", "Carol")):
        (root / who).mkdir(parents=True)
        (root / who / "photo.jpg").write_bytes(w.photo(i * 4))
    return ["reproduce", "--data", root, "--identities", "2", "--out", w.tmp / "out", "--quiet"]


def _faceless_identities(w: World) -> list:
    root = w.tmp / "faceless"
    for who in ("Alice", "Bob"):
        for i in range(2):
            target = root / who / f"p{i}.jpg"
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (250, 250), (90 + 40 * i, 128, 128)).save(target)
    return ["reproduce", "--data", root, "--out", w.tmp / "out", "--quiet"]


def _misnamed_lfw_photo(w: World) -> list:
    people = w.people()
    identity = next((people / "images").iterdir())
    (identity / "holiday.jpg").write_bytes(w.photo(0))
    return ["prep", people, "--out", w.tmp / "out", "--quiet"]


# Run tables ------------------------------------------------------------------------------
def _tampered_frames(edit: Callable[[World, list[dict[str, str]]], None]) -> Callable:
    def arrange(w: World) -> list:
        run = w.run()
        rows = rows_of(run / "frames.csv")
        edit(w, rows)
        write_rows(run / "frames.csv", rows)
        return ["mask", run, "--quiet"]

    return arrange


def _first_crop(rows: list[dict[str, str]]) -> dict[str, str]:
    return next(r for r in rows if r["crop"])


def _escape_identity(w: World, rows) -> None:
    _first_crop(rows)["identity"] = "../../../../escape"


def _absolute_crop(w: World, rows) -> None:
    outside = w.tmp / "outside.png"
    outside.write_bytes((w.tmp / "run" / _first_crop(rows)["crop"]).read_bytes())
    _first_crop(rows)["crop"] = str(outside)


def _dotdot_crop(w: World, rows) -> None:
    _first_crop(rows)["crop"] = "crops/../../outside.png"


def _symlinked_crop(w: World, rows) -> None:
    crop = w.tmp / "run" / _first_crop(rows)["crop"]
    outside = w.tmp / "outside.png"
    outside.write_bytes(crop.read_bytes())
    crop.unlink()
    crop.symlink_to(outside)


def _nothing_written_outside(w: World, outcome: Outcome) -> None:
    assert not (w.tmp / "run" / "masks").exists(), "refused before writing anything"
    assert not list(w.tmp.parent.glob("escape*")) and not (w.tmp / "escape").exists()


def _outside_file_kept(w: World, outcome: Outcome) -> None:
    _nothing_written_outside(w, outcome)
    assert (w.tmp / "outside.png").is_file(), "a file outside the run is never removed"


def _nul_in_crop(w: World, rows) -> None:
    _first_crop(rows)["crop"] = "crops/a\x00b.png"


def _looping_crop(w: World, rows) -> None:
    (w.tmp / "run" / "l1").symlink_to(w.tmp / "run" / "l2")
    (w.tmp / "run" / "l2").symlink_to(w.tmp / "run" / "l1")
    _first_crop(rows)["crop"] = "l1/x.png"


def _mask_folder_links_outside(w: World) -> list:
    """``masks/<backend>`` replaced by a link to a folder elsewhere, holding a file where a
    failed mask's stale output would be removed."""
    run = w.run()
    victim = _victim(w)
    backend = next((w.base.run / "masks").iterdir()).name
    (run / "masks").mkdir()
    (run / "masks" / backend).symlink_to(victim)
    return ["mask", run, "--quiet"]


def _victim_untouched(w: World, outcome: Outcome) -> None:
    assert sorted(p.name for p in (w.tmp / "victim").iterdir()) == ["precious.txt"]


def _drop_column(w: World, rows) -> None:
    for row in rows:
        row.pop("crop")


def _short_row(w: World) -> list:
    run = w.run()
    with open(run / "frames.csv", "a", encoding="utf-8") as handle:
        handle.write("Someone,0001\n")
    return ["mask", run, "--quiet"]


def _no_table(w: World) -> list:
    run = w.run()
    (run / "frames.csv").unlink()
    return ["mask", run, "--quiet"]


def _missing_crop(w: World) -> list:
    run = w.run()
    crop = _first_crop(rows_of(run / "frames.csv"))["crop"]
    (run / crop).unlink()
    return ["mask", run, "--quiet"]


def _failed_row_recorded(w: World, outcome: Outcome) -> None:
    rows = rows_of(next((w.tmp / "run" / "masks").glob("*/masks.csv")))
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(failed) == 1 and "prep crop unreadable" in failed[0]["reason"], failed
    assert failed[0]["overlay"] == "", "no output image for a failed mask"


# Outputs ---------------------------------------------------------------------------------
def _out_is_file(command: str) -> Callable[[World], list]:
    def arrange(w: World) -> list:
        out = w.tmp / "taken"
        out.write_text("a file, not a folder")
        if command == "prep":
            return ["prep", w.people(), "--out", out, "--quiet"]
        return ["reproduce", "--data", w.people(), "--out", out, "--quiet"]

    return arrange


def _out_parent_is_file(w: World) -> list:
    (w.tmp / "taken").write_text("a file")
    return ["prep", w.people(), "--out", w.tmp / "taken" / "run", "--quiet"]


def _out_not_writable(w: World) -> list:
    out = w.tmp / "locked"
    out.mkdir()
    w.deny(out, write_only=True)
    return ["prep", w.people(), "--out", out, "--quiet"]


def _disk_full_for_crops(w: World) -> list:
    w.warm_cache()
    out = w.tmp / "out"
    out.mkdir()
    w.fill_disk(out)
    return ["prep", w.people(), "--out", out, "--quiet"]


def _no_partial_output_and_cache_still_good(w: World, outcome: Outcome) -> None:
    out = w.tmp / "out"
    assert not [p for p in out.rglob("*") if p.is_file()], "nothing half-written"
    w.patch.undo()
    w.patch.setenv("DMBENCH_CACHE_DIR", str(w.cache))
    again = dmbench("prep", w.tmp / "people", "--out", out, "--quiet")
    assert again.exit == 0, again.text
    assert table_without_cached(out / "frames.csv") == w.base.frames_csv


# Caches ----------------------------------------------------------------------------------
def _flip_record(stage: str, old: str, new: str) -> Callable[[World], list]:
    """One flipped byte inside a cache record that keeps its JSON valid."""

    def arrange(w: World) -> list:
        w.warm_cache()
        for meta in w.entries(stage):
            text = meta.read_text()
            if f'"{old}"' in text:
                meta.write_text(text.replace(f'"{old}"', f'"{new}"', 1))
                break
        else:
            pytest.fail(f"no {stage} record says {old!r}")
        return _rerun(w, stage)

    return arrange


def _rerun(w: World, stage: str) -> list:
    if stage == "prep":
        return ["prep", w.people(), "--out", w.tmp / "out", "--quiet"]
    return ["mask", w.run(), "--quiet"]


def _same_as_before(stage: str) -> Callable[[World, Outcome], None]:
    def check(w: World, outcome: Outcome) -> None:
        if stage == "prep":
            assert table_without_cached(w.tmp / "out" / "frames.csv") == w.base.frames_csv
        else:
            masks = next((w.tmp / "run" / "masks").glob("*/masks.csv"))
            assert table_without_cached(masks) == w.base.masks_csv
        for meta in w.entries(stage):  # the damaged entry was rebuilt, whole
            record = json.loads(meta.read_text())["record"]
            assert record.get("status", "ok") in {
                "kept",
                "dropped",
                "error",
                "masked",
                "failed",
                "ok",
            }, record

    return check


def _bad_files_beside_cached_work(w: World) -> list:
    w.warm_cache()
    people = w.people()
    identity = next((people / "images").iterdir())
    (identity / f"{identity.name}_0097.jpg").write_bytes(b"")
    (identity / f"{identity.name}_0096.jpg").write_bytes(w.photo()[:5000])
    return ["prep", people, "--out", w.tmp / "out", "--quiet"]


def _good_rows_unchanged_and_cached(w: World, outcome: Outcome) -> None:
    rows = rows_of(w.tmp / "out" / "frames.csv")
    good = [r for r in rows if "_009" not in r["path"] or r["path"].endswith("_0099.jpg")]
    assert [r["cached"] for r in good] == ["True"] * len(good), "cached work stays cached"
    kept = json.dumps([{k: v for k, v in r.items() if k != "cached"} for r in good], indent=0)
    assert kept == w.base.frames_csv
    bad = [r for r in rows if r not in good]
    assert len(bad) == 2 and all(r["status"] == "error" for r in bad), bad


def _random_damage(w: World) -> list:
    w.warm_cache()
    rng = random.Random(2023)
    files = sorted(p for p in (w.cache / "intermediates").rglob("*") if p.is_file())
    for path in rng.sample(files, 8):
        data = bytearray(path.read_bytes())
        for _ in range(3):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(data))
    return ["prep", w.people(), "--out", w.tmp / "out", "--quiet"]


def _prep_and_mask_same(w: World, outcome: Outcome) -> None:
    _same_as_before("prep")(w, outcome)
    masked = dmbench("mask", w.tmp / "out", "--quiet")
    assert masked.exit == 0, masked.text
    masks = next((w.tmp / "out" / "masks").glob("*/masks.csv"))
    assert table_without_cached(masks) == w.base.masks_csv


def _truncated_meta(w: World) -> list:
    w.warm_cache()
    meta = w.entries("prep")[0]
    meta.write_text(meta.read_text()[:40])
    return ["prep", w.people(), "--out", w.tmp / "out", "--quiet"]


def _read_only_cache(populated: bool) -> Callable[[World], list]:
    def arrange(w: World) -> list:
        if populated:
            w.warm_cache()
        else:
            w.cache.mkdir()
        w.deny(w.cache, write_only=True)
        return ["prep", w.people(), "--out", w.tmp / "out", "--quiet"]

    return arrange


def _warned_once(fragment: str, times: int = 1) -> Callable[[World, Outcome], None]:
    def check(w: World, outcome: Outcome) -> None:
        assert outcome.err.lower().count(fragment) == times, outcome.err
        assert table_without_cached(w.tmp / "out" / "frames.csv") == w.base.frames_csv

    return check


def _full_cache(w: World) -> list:
    w.cache.mkdir()
    w.fill_disk(w.cache)
    return ["prep", w.people(), "--out", w.tmp / "out", "--quiet"]


def _victim(w: World) -> Path:
    victim = w.tmp / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    return victim


def _clear_escaping(stage: str) -> Callable[[World], list]:
    def arrange(w: World) -> list:
        w.warm_cache()
        victim = _victim(w)
        return ["cache", "clear", "--stage", "../../victim" if stage == "relative" else victim]

    return arrange


def _victim_and_cache_intact(w: World, outcome: Outcome) -> None:
    assert (w.tmp / "victim" / "precious.txt").read_text() == "keep me"
    assert w.entries("prep") and w.entries("mask"), "the cache is untouched"


def _clear_all(confirm: bool) -> Callable[[World], list]:
    def arrange(w: World) -> list:
        w.warm_cache()
        return ["cache", "clear", *(["--yes"] if confirm else [])]

    return arrange


def _cache_intact(w: World, outcome: Outcome) -> None:
    assert len(w.entries("prep")) == len(cache_entries(w.base.cache, "prep"))


def _cache_empty(w: World, outcome: Outcome) -> None:
    assert not w.entries("prep") and not w.entries("mask")


def _clear_one_stage(w: World) -> list:
    w.warm_cache()
    return ["cache", "clear", "--stage", "mask"]


def _only_mask_cleared(w: World, outcome: Outcome) -> None:
    assert w.entries("prep") and not w.entries("mask")


# Assets ----------------------------------------------------------------------------------
def _local_model(w: World) -> Path:
    """A private copy of the Caffe RetinaFace files as the only asset folder."""
    from benchmark.assets import AssetStore

    source = AssetStore().directory("retinaface-caffe")
    folder = w.tmp / "assets" / "models" / "retinaface-caffe"
    shutil.copytree(source, folder)
    w.patch.setenv("DMBENCH_ASSET_PATH", str(w.tmp / "assets"))
    return folder / "Widerface-RetinaFace.caffemodel"


def _tamper_keep_mtime(path: Path) -> None:
    stat = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def _tampered_after_verify(name: str | None) -> Callable[[World], list]:
    def arrange(w: World) -> list:
        model = _local_model(w)
        assert dmbench("assets", "verify", "retinaface-caffe").exit == 0
        _tamper_keep_mtime(model)
        return ["assets", "verify", *([name] if name else [])]

    return arrange


def _tampered_while_online(w: World) -> list:
    """Online, a local copy that fails its sha256, then a download that fails too."""
    from benchmark.assets import AssetStore
    from benchmark.errors import AssetError

    _tamper_keep_mtime(_local_model(w))
    w.patch.setenv("DMBENCH_OFFLINE", "0")

    def no_network(self, asset, entry):
        raise AssetError(f"could not download '{asset.name}/{entry.path}': no network here")

    w.patch.setattr(AssetStore, "_download", no_network)
    return ["assets", "fetch", "retinaface-caffe"]


def _local_failure_said_first(w: World, outcome: Outcome) -> None:
    text = outcome.err
    assert text.index("local copy failed verification") < text.index("could not download")


def _junk_as(name: str, file_name: str) -> Callable[[World], list]:
    def arrange(w: World) -> list:
        junk = w.tmp / file_name
        junk.write_bytes(b"junk, not a model " * 64)
        return ["assets", "import", name, junk]

    return arrange


def _real_pfld_checkpoint(w: World) -> Path:
    torch = pytest.importorskip("torch", reason="builds a real PFLD-format checkpoint")
    from benchmark.pipeline.prep.pfld import CHECKPOINT_KEY, build_pfld_backbone

    checkpoint = w.tmp / "checkpoint.pth.tar"
    torch.manual_seed(0)  # untrained but always the same weights, so the same poses
    torch.save({CHECKPOINT_KEY: build_pfld_backbone().state_dict()}, checkpoint)
    return checkpoint


def _unpinned_asset_on_read_only_cache(w: World) -> list:
    """A model without a manifest sha256 seen for the first time, with a cache that cannot
    record it: trusted for this run, with a warning, instead of a crash."""
    folder = w.tmp / "assets" / "models" / "pfld"
    folder.mkdir(parents=True)
    shutil.move(_real_pfld_checkpoint(w), folder / "checkpoint.pth.tar")
    shared = os.environ.get("DMBENCH_ASSET_PATH", "")
    w.patch.setenv("DMBENCH_ASSET_PATH", f"{w.tmp / 'assets'}{os.pathsep}{shared}")
    w.cache.mkdir()
    w.deny(w.cache, write_only=True)
    # The stand-in checkpoint has untrained weights, so its head poses are noise: the pose
    # filter is opened wide, or no frame would be kept and the run would end "nothing
    # usable" (exit 3) for a reason this case is not about.
    wide = ["--max-yaw", "180", "--max-pitch", "180"]
    return ["prep", w.people(), "--out", w.tmp / "out", "--pose", "pfld", *wide, "--quiet"]


def _pfld_without_torch(w: World) -> list:
    checkpoint = _real_pfld_checkpoint(w)
    imported = dmbench("assets", "import", "pfld", checkpoint)
    assert imported.exit == 0, imported.text
    w.patch.setitem(sys.modules, "torch", None)  # as on a machine without torch
    return ["prep", w.people(), "--out", w.tmp / "out", "--pose", "pfld", "--quiet"]


def _odd_identity_entry(kind: str) -> Callable[[World], list]:
    """Beside the identity folders: an entry that is not one."""

    def arrange(w: World) -> list:
        images = w.people() / "images"
        if kind == "broken":
            (images / "Ghost").symlink_to("nowhere")
        elif kind == "loop":
            (images / "Loop").symlink_to("Loop")
        elif kind == "file":
            (images / "README.txt").write_text("not a person")
        elif kind == "dots":
            (images / "...").mkdir()
        return ["prep", images.parent, "--out", w.tmp / "out", "--quiet"]

    return arrange


def _problem_recorded(fragment: str) -> Callable[[World, Outcome], None]:
    def check(w: World, outcome: Outcome) -> None:
        _reason_in_table(fragment)(w, outcome)
        record = json.loads((w.tmp / "out" / "run.json").read_text())
        assert record["layout_problems"] >= 1, record

    return check


def _second_dataset_into_the_same_folder(w: World) -> list:
    run = w.run(with_masks=True)
    other = w.people("other")
    shutil.rmtree(next((other / "images").iterdir()))  # one identity fewer: another run
    return ["prep", other, "--out", run, "--quiet"]


def _one_run_in_the_folder(w: World, outcome: Outcome) -> None:
    run = w.tmp / "run"
    assert not (run / "masks").exists(), "the first run's masks stayed beside the second's crops"
    identities = {r["identity"] for r in rows_of(run / "frames.csv")}
    crops = {p.name for p in (run / "crops").iterdir()}
    assert crops <= identities, (crops, identities)
    assert "replaced whole" in outcome.text


def _run_json_of_another_shape(w: World) -> list:
    run = w.run()
    (run / "run.json").write_text('{"dataset": "not an object"}')
    return ["prep", w.base.people, "--out", run, "--quiet"]


def _same_run_again(w: World) -> list:
    w.run(with_masks=True)
    return ["prep", w.base.people, "--out", w.tmp / "run", "--quiet"]


def _masks_kept(w: World, outcome: Outcome) -> None:
    assert (w.tmp / "run" / "masks").is_dir(), "a rerun of the same run keeps its masks"
    assert "replaced" not in outcome.text


def _broken_prep_record(what: str) -> Callable[[World], list]:
    def arrange(w: World) -> list:
        run = w.run()
        if what == "no-run-json":
            (run / "run.json").unlink()
        else:
            (run / "selection.csv").write_text("garbage\x00,\n\n;;\n")
        return ["mask", run, "--quiet"]

    return arrange


def _no_mask_written(w: World, outcome: Outcome) -> None:
    assert not (w.tmp / "run" / "masks").exists(), "outputs were written before the refusal"


def _empty_photo_files(w: World) -> list:
    root = w.tmp / "empty"
    for who in ("Alice", "Bob"):
        for i in range(1, 101):
            target = root / who / f"{who}_{i:04d}.jpg"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.touch()
    return ["prep", root, "--out", w.tmp / "out", "--quiet"]


def _nothing_anonymized(w: World) -> list:
    run = w.run()
    (w.tmp / "elsewhere").mkdir()
    return ["mask", run, "--anonymized", w.tmp / "elsewhere", "--quiet"]


def _compare_broken(w: World) -> list:
    (w.tmp / "a.json").write_text('{"schema_version": 7}')
    return ["compare", w.tmp / "a.json", w.tmp / "a.json"]


def _prep_with(flag: str, value: str) -> Callable[[World], list]:
    return lambda w: ["prep", w.people(), "--out", w.tmp / "out", flag, value]


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _run_inside_the_data(command: str, where: str) -> Callable[[World], list]:
    """A run folder at ``where`` in the dataset (``{identity}``: its first identity's
    folder), which a later run would read back as data."""

    def arrange(w: World) -> list:
        people = w.people()
        w.listing = _tree(people)
        identity = sorted((people / "images").iterdir())[0].name
        out = people / where.format(identity=identity)
        if command == "prep":
            return ["prep", people, "--out", out]
        return ["reproduce", "--data", people, "--out", out, "--identities", "2"]

    return arrange


def _dataset_untouched(w: World, outcome: Outcome) -> None:
    assert _tree(w.tmp / "people") == w.listing, "a refused run wrote into the dataset"
    assert outcome.err.count("\n") == 1, outcome.err


def _no_run_folder(w: World, outcome: Outcome) -> None:
    assert not (w.tmp / "out").exists(), "a refused command left a run folder"
    assert outcome.err.count("\n") == 1, outcome.err


def _with_env(name: str, value: str) -> Callable[[World], list]:
    def arrange(w: World) -> list:
        w.patch.setenv(name, value)
        return ["prep", w.people(), "--out", w.tmp / "out"]

    return arrange


def _one_identity(w: World) -> list:
    people = w.people()
    for extra in sorted((people / "images").iterdir())[1:]:
        shutil.rmtree(extra)
    return ["reproduce", "--data", people, "--out", w.tmp / "out", "--quiet"]


def _results_fifo(w: World) -> list:
    os.mkfifo(w.tmp / "results.json")
    return ["report", w.tmp / "results.json"]


def _repeated_key(w: World) -> list:
    (w.tmp / "results.json").write_text('{"schema_version": 1, "schema_version": 1}')
    return ["report", w.tmp / "results.json"]


def _bom_table(w: World) -> list:
    run = w.run()
    table = run / "frames.csv"
    table.write_bytes(b"\xef\xbb\xbf" + table.read_bytes())  # as a spreadsheet saves it
    return ["mask", run, "--quiet"]


def _repeated_row(w: World, rows) -> None:
    rows.append(dict(_first_crop(rows)))


COMMAND_CASES = [
    # datasets
    CommandCase(
        "unreadable-identity-folder", "7", _unreadable_identity, 0, ("unreadable",), ("Traceback",)
    ),
    CommandCase("unreadable-dataset-root", "7", _unreadable_root, 3, ("unreadable",)),
    CommandCase(
        "dataset-path-missing",
        "13",
        lambda w: ["data", "info", w.tmp / "layouts" / "nonexistent"],
        3,
        ("does not exist",),
        ("unknown asset",),
    ),
    CommandCase(
        "dataset-is-a-file", "13", _dataset_is_a_file, 3, ("is a file",), ("does not exist",)
    ),
    CommandCase(
        "folder-named-like-a-photo",
        "14",
        _photo_named_entry("folder"),
        0,
        then=_reason_in_table("a folder, not a photo"),
    ),
    CommandCase(
        "symlink-loop-named-like-a-photo",
        "14",
        _photo_named_entry("loop"),
        0,
        then=_reason_in_table("loop"),
    ),
    CommandCase(
        "broken-symlink-named-like-a-photo",
        "14",
        _photo_named_entry("broken"),
        0,
        then=_reason_in_table("broken"),
    ),
    CommandCase(
        "own-photos-any-names",
        "19",
        _own_photos(videos=False),
        0,
        then=_info_counts(identities=2, frames=4),
    ),
    CommandCase(
        "own-videos-any-names",
        "19",
        _own_photos(videos=True),
        0,
        then=_info_counts(identities=2, frames=4),
    ),
    CommandCase("empty-dataset-folder", "19", _nothing_usable("empty"), 3, ("no usable",)),
    CommandCase("dataset-without-images", "19", _nothing_usable("notes"), 3, ("no usable",)),
    CommandCase(
        "misnamed-photo-in-lfw",
        "held (19: keep LFW's strict names)",
        _misnamed_lfw_photo,
        0,
        then=_reason_in_table("not a photo named"),
    ),
    CommandCase(
        "identity-name-with-CR",
        "5",
        _bad_name("Bad\rName", "prep+mask"),
        0,
        then=_every_good_crop_masked,
    ),
    CommandCase(
        "identity-name-with-U+2028-mask",
        "5",
        _bad_name("Bad\u2028Name", "prep+mask"),
        0,
        then=_every_good_crop_masked,
    ),
    CommandCase(
        "identity-name-with-U+2028-reproduce",
        "5",
        _bad_name("Bad\u2028Name", "reproduce"),
        1,  # no crash; claims judged on 3 identities of a full run fail (exit 1)
        ("data ran out: all 3 identities drawn",),
    ),
    CommandCase(
        "single-photo-identities", "18", _single_photo_identities, 3, ("nothing can be scored",)
    ),
    CommandCase("no-identity-valid", "18", _faceless_identities, 3, ("no identity can be scored",)),
    # run tables
    CommandCase(
        "identity-escapes-run-folder",
        "6",
        _tampered_frames(_escape_identity),
        3,
        ("frames.csv line", "refusing"),
        then=_nothing_written_outside,
    ),
    CommandCase(
        "absolute-crop-path",
        "6",
        _tampered_frames(_absolute_crop),
        3,
        ("not a relative path",),
        then=_outside_file_kept,
    ),
    CommandCase(
        "dotdot-crop-path",
        "6",
        _tampered_frames(_dotdot_crop),
        3,
        ("not a relative path",),
        then=_nothing_written_outside,
    ),
    CommandCase(
        "crop-symlink-leads-outside",
        "6",
        _tampered_frames(_symlinked_crop),
        3,
        ("leads outside",),
        then=_outside_file_kept,
    ),
    CommandCase(
        "NUL-in-crop-path",
        "6",
        _tampered_frames(_nul_in_crop),
        3,
        ("U+0000",),
        then=_nothing_written_outside,
    ),
    CommandCase(
        "crop-path-through-a-link-loop",
        "6",
        _tampered_frames(_looping_crop),
        3,
        ("cannot be resolved",),
        then=_nothing_written_outside,
    ),
    CommandCase(
        "mask-folder-links-outside",
        "6",
        _mask_folder_links_outside,
        3,
        ("leads outside",),
        then=_victim_untouched,
    ),
    CommandCase(
        "table-missing-a-column", "6", _tampered_frames(_drop_column), 3, ("missing columns",)
    ),
    CommandCase("table-row-too-short", "6", _short_row, 3, ("wrong number of fields",)),
    CommandCase("no-frames-table", "held", _no_table, 3, ("no frames.csv",)),
    CommandCase("prep-crop-deleted", "held", _missing_crop, 0, then=_failed_row_recorded),
    # outputs
    CommandCase("prep-out-is-a-file", "8", _out_is_file("prep"), 3, ("is a file",)),
    CommandCase("reproduce-out-is-a-file", "8", _out_is_file("reproduce"), 3, ("is a file",)),
    CommandCase("out-parent-is-a-file", "8", _out_parent_is_file, 3, ("is a file",)),
    CommandCase("out-not-writable", "8", _out_not_writable, 3, ("not writable",)),
    CommandCase(
        "disk-full-writing-crops",
        "10",
        _disk_full_for_crops,
        3,
        ("no space left",),
        then=_no_partial_output_and_cache_still_good,
    ),
    # caches
    CommandCase(
        "prep-record-kept-to-kepu",
        "1",
        _flip_record("prep", "kept", "kepu"),
        0,
        then=_same_as_before("prep"),
    ),
    CommandCase(
        "prep-record-dropped-to-drkpped",
        "1",
        _flip_record("prep", "dropped", "drkpped"),
        0,
        then=_same_as_before("prep"),
    ),
    CommandCase(
        "mask-record-masked-to-maskee",
        "1",
        _flip_record("mask", "masked", "maskee"),
        0,
        then=_same_as_before("mask"),
    ),
    CommandCase(
        "bad-files-beside-cached-work",
        "held",
        _bad_files_beside_cached_work,
        0,
        then=_good_rows_unchanged_and_cached,
    ),
    CommandCase("random-cache-damage", "held", _random_damage, 0, then=_prep_and_mask_same),
    CommandCase("truncated-cache-record", "held", _truncated_meta, 0, then=_same_as_before("prep")),
    CommandCase(
        "read-only-empty-cache",
        "9",
        _read_only_cache(populated=False),
        0,
        then=_warned_once("cannot be written"),
    ),
    CommandCase(
        "read-only-populated-cache",
        "held",
        _read_only_cache(populated=True),
        0,
        then=_warned_once("cannot be written", times=0),
    ),
    CommandCase("cache-on-full-disk", "10", _full_cache, 0, then=_warned_once("no space left")),
    CommandCase(
        "cache-clear-relative-escape",
        "3",
        _clear_escaping("relative"),
        2,
        ("invalid choice",),
        then=_victim_and_cache_intact,
    ),
    CommandCase(
        "cache-clear-absolute-path",
        "3",
        _clear_escaping("absolute"),
        2,
        ("invalid choice",),
        then=_victim_and_cache_intact,
    ),
    CommandCase(
        "cache-clear-unconfirmed", "3", _clear_all(confirm=False), 2, ("--yes",), then=_cache_intact
    ),
    CommandCase(
        "cache-clear-confirmed", "3", _clear_all(confirm=True), 0, ("removed",), then=_cache_empty
    ),
    CommandCase("cache-clear-one-stage", "held", _clear_one_stage, 0, then=_only_mask_cleared),
    # assets
    CommandCase(
        "assets-import-without-path", "11", lambda w: ["assets", "import", "pfld"], 2, ("PATH",)
    ),
    CommandCase("assets-fetch-without-name", "11", lambda w: ["assets", "fetch"], 2, ("NAME",)),
    CommandCase(
        "tampered-model-mtime-restored",
        "2",
        _tampered_after_verify("retinaface-caffe"),
        1,
        ("sha256",),
    ),
    CommandCase(
        "assets-verify-all-with-a-bad-one",
        "15",
        _tampered_after_verify(None),
        1,
        ("FAIL retinaface-caffe", "expected"),
    ),
    CommandCase(
        "tampered-local-copy-online",
        "16",
        _tampered_while_online,
        3,
        ("sha256 mismatch",),
        then=_local_failure_said_first,
    ),
    CommandCase(
        "junk-imported-as-pfld",
        "17",
        _junk_as("pfld", "checkpoint.pth.tar"),
        3,
        ("torch checkpoint",),
    ),
    CommandCase(
        "unpinned-asset-on-read-only-cache",
        "9",
        _unpinned_asset_on_read_only_cache,
        0,
        ("for this run only",),
    ),
    CommandCase("pfld-pose-without-torch", "12", _pfld_without_torch, 3, ("dmbench[pfld]",)),
    # options that refuse nonsense (issue 22): exit 2, one line, nothing written
    *(
        CommandCase(
            f"prep-{flag.strip('-')}-{value}",
            "22.3",
            _prep_with(flag, value),
            2,
            (flag, said),
            ("Traceback", "usage:"),
            _no_run_folder,
        )
        for flag, value, said in [
            ("--max-yaw", "nan", "finite number from 0 to 180"),
            ("--max-pitch", "inf", "finite number from 0 to 180"),
            ("--max-yaw", "-5", "finite number from 0 to 180"),
            ("--min-best-score", "1.5", "from 0 to 1"),
            ("--other-face-score", "nan", "from 0 to 1"),
            ("--identities", "-3", "at least 1"),
            ("--identities", "0", "at least 1"),
            ("--identities", "two", "not a whole number"),
            ("--seed", "-1", "at least 0"),
            ("--seed", str(2**40), "below 2**32"),
            ("--workers", "0", "at least 1"),
            ("--max-yaw", "1e309", "finite number from 0 to 180"),
            ("--identities", "1e3", "not a whole number"),
        ]
    ),
    # nothing skipped silently (issue 22)
    *(
        CommandCase(
            f"identity-entry-{kind}",
            "22.5",
            _odd_identity_entry(kind),
            0,
            then=_problem_recorded(said),
        )
        for kind, said in [
            ("broken", "a broken symbolic link, not an identity folder"),
            ("loop", "a symbolic link loop, not an identity folder"),
            ("file", "a file, not an identity folder"),
            ("dots", "a hidden entry"),
        ]
    ),
    CommandCase(
        "link-to-dev-zero-named-like-a-photo",
        "22",
        _photo_named_entry("device"),
        0,
        then=_reason_in_table("a link to a special file"),
    ),
    CommandCase(
        "two-datasets-one-folder",
        "22.5",
        _second_dataset_into_the_same_folder,
        0,
        ("replaced whole",),
        then=_one_run_in_the_folder,
    ),
    CommandCase("same-run-again-keeps-masks", "22.5", _same_run_again, 0, then=_masks_kept),
    CommandCase(
        "prep-over-a-run-json-of-another-shape",
        "22.5",
        _run_json_of_another_shape,
        0,
        ("replaced whole",),
        ("Traceback",),
    ),
    CommandCase(
        "mask-without-run-json",
        "22.5",
        _broken_prep_record("no-run-json"),
        3,
        ("not a prep run record",),
        then=_no_mask_written,
    ),
    CommandCase(
        "mask-with-garbage-selection",
        "22.5",
        _broken_prep_record("garbage"),
        3,
        ("selection.csv",),
        then=_no_mask_written,
    ),
    CommandCase(
        "only-empty-photo-files",
        "22.5",
        _empty_photo_files,
        3,
        ("nothing usable", "frames.csv"),
    ),
    CommandCase(
        "nothing-anonymized",
        "22.5",
        _nothing_anonymized,
        3,
        ("nothing usable", "masks.csv"),
    ),
    CommandCase(
        "workers-env-zero",
        "22.3",
        _with_env("DMBENCH_WORKERS", "0"),
        2,
        ("DMBENCH_WORKERS must be at least 1",),
        ("--workers must",),
    ),
    CommandCase(
        "fetch-zero-identities",
        "22.3",
        lambda w: ["data", "fetch", "lfw", "--identities", "0"],
        2,
        ("at least 1",),
        ("usage:",),
    ),
    CommandCase(
        "negative-attacker-people",
        "22.3",
        lambda w: ["evaluate", "--anonymizer", "blur", "--attacker-people", "-1"],
        2,
        ("at least 0",),
        ("usage:",),
    ),
    CommandCase(
        "compare-a-results-file-that-breaks-its-schema",
        "22.2",
        _compare_broken,
        3,
        ("schema_version 7",),
    ),
    # new cases of this round's own (issue 22, item 7)
    CommandCase(
        "one-valid-identity",
        "22.7",
        _one_identity,
        3,
        ("only 1 identity can be scored",),
        ("Traceback",),
    ),
    CommandCase(
        "study-of-one-identity",
        "22.7",
        lambda w: ["reproduce", "--identities", "1", "--out", w.tmp / "out"],
        2,
        ("at least 2",),
        ("usage:",),
    ),
    CommandCase(
        "results-is-a-pipe", "22.7", _results_fifo, 3, ("not a regular file",), ("no such",)
    ),
    CommandCase("results-with-a-repeated-key", "22.7", _repeated_key, 3, ("appears twice",)),
    *(
        CommandCase(
            f"{name.lower()}-{value}",
            "22.7",
            _with_env(name, value),
            2,
            (f"{name}='{value}' is neither yes",),
            then=_no_run_folder,
        )
        for name, value in [("DMBENCH_OFFLINE", "ture"), ("DMBENCH_PROGRESS", "garbage")]
    ),
    CommandCase("table-with-a-byte-order-mark", "22.7", _bom_table, 0, then=_all_crops_masked),
    CommandCase(
        "table-with-a-repeated-row",
        "22.7",
        _tampered_frames(_repeated_row),
        3,
        ("repeats line",),
        then=_no_mask_written,
    ),
    *(
        CommandCase(
            f"{command}-into-the-dataset-{label}",
            "22.7",
            _run_inside_the_data(command, where),
            2,
            ("the dataset", "a later run would read it as data"),
            then=_dataset_untouched,
        )
        for command, label, where in [
            ("prep", "root", "."),
            ("prep", "images-folder", "images/run"),
            ("prep", "identity-folder", "images/{identity}"),
            ("reproduce", "images-folder", "images/study"),
        ]
    ),
    CommandCase(
        "workers-far-above-the-cores",
        "22.7",
        lambda w: ["prep", w.people(), "--out", w.tmp / "out", "--workers", "100000"],
        2,
        ("--workers 100000 is more than 4 per core",),
        then=_no_run_folder,
    ),
    CommandCase(
        "workers-env-far-above-the-cores",
        "22.7",
        _with_env("DMBENCH_WORKERS", "100000"),
        2,
        ("DMBENCH_WORKERS 100000 is more than 4 per core",),
        then=_no_run_folder,
    ),
    CommandCase(
        "unknown-option-one-line",
        "22.3",
        lambda w: ["prep", w.people(), "--out", w.tmp / "out", "--frobnicate"],
        2,
        ("dmbench: error:", "--frobnicate"),
        ("usage:",),
    ),
    CommandCase(
        "missing-argument-one-line",
        "22.3",
        lambda w: ["mask"],
        2,
        ("dmbench: error: mask:", "run_dir"),
        ("usage:",),
    ),
]


@pytest.mark.parametrize("case", COMMAND_CASES, ids=[c.id for c in COMMAND_CASES])
def test_command_case(case: CommandCase, world: World) -> None:
    argv = case.arrange(world)
    outcome = dmbench(*argv)
    assert outcome.exit == case.exit, outcome.text
    for fragment in case.says:
        assert fragment.lower() in outcome.text.lower(), (fragment, outcome.text)
    for fragment in case.never_says:
        assert fragment.lower() not in outcome.text.lower(), (fragment, outcome.text)
    if case.exit in (2, 3):  # a usage error, or an asset / data / input error
        assert "dmbench: error:" in outcome.err or outcome.err.startswith("usage:"), outcome.err
    if case.then is not None:
        case.then(world, outcome)


# -- 3. processes killed mid-stage, and two processes on one cache ------------------------
@dataclass(frozen=True)
class Fault:
    id: str
    stage: str  # the stage whose cache entries are being written when the signal comes
    sig: signal.Signals | None  # None: two runs at once instead
    after: int  # entries of that stage written before the signal
    workers: int = 1  # --workers of the process (2: the signal reaches a pool's parent)


FAULTS = [
    Fault("sigint-in-prep", "prep", signal.SIGINT, 2),
    Fault("sigkill-in-prep", "prep", signal.SIGKILL, 2),
    Fault("sigint-in-mask", "mask", signal.SIGINT, 2),
    Fault("sigkill-in-mask", "mask", signal.SIGKILL, 2),
    Fault("sigint-in-recognize", "recognize", signal.SIGINT, 10),
    Fault("sigkill-in-recognize", "recognize", signal.SIGKILL, 10),
    Fault("two-prep-runs-one-cache", "prep", None, 0),
    Fault("sigint-in-prep-2-workers", "prep", signal.SIGINT, 2, workers=2),
    Fault("sigint-in-mask-2-workers", "mask", signal.SIGINT, 2, workers=2),
    Fault("sigint-in-recognize-2-workers", "recognize", signal.SIGINT, 10, workers=2),
]


def _process(args: list, cache: Path, workers: int = 1) -> subprocess.Popen:
    env = dict(
        os.environ,
        DMBENCH_CACHE_DIR=str(cache),
        DMBENCH_PROGRESS="0",
        DMBENCH_WORKERS=str(workers),
    )
    return subprocess.Popen(
        [sys.executable, "-m", "benchmark.cli", *map(str, args)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


class StageRun:
    """One stage's own command on the small data, and what its finished run must equal:
    prep and mask against the module's reference run, recognize (a study) against a
    study run once without faults."""

    def __init__(self, stage: str, base: Base, study: tuple[Path, dict] | None) -> None:
        self.stage, self.base, self.study = stage, base, study

    @property
    def reference_cache(self) -> Path:
        return self.study[0] if self.stage == "recognize" else self.base.cache

    def args(self, folder: Path, name: str = "out") -> list:
        out = folder / name
        if self.stage == "prep":
            return ["prep", self.base.people, "--out", out, "--quiet"]
        if self.stage == "mask":
            if not out.exists():
                shutil.copytree(self.base.run, out, ignore=shutil.ignore_patterns("masks"))
            return ["mask", out, "--quiet"]
        return [
            "reproduce",
            "--data",
            self.base.people,
            "--identities",
            "2",
            "--out",
            out,
            "--quiet",
        ]

    def finished(self, folder: Path, name: str = "out") -> bool:
        out = folder / name
        if self.stage == "prep":
            return (out / "frames.csv").exists()
        if self.stage == "mask":
            return any((out / "masks").glob("*/masks.csv"))
        return (out / "results.json").exists()

    def result(self, folder: Path, name: str = "out") -> object:
        out = folder / name
        if self.stage == "prep":
            return table_without_cached(out / "frames.csv"), (out / "selection.csv").read_text()
        if self.stage == "mask":
            return table_without_cached(next((out / "masks").glob("*/masks.csv")))
        data = json.loads((out / "results.json").read_text())
        return {k: data[k] for k in ("scenarios", "hits", "control_comparisons", "leakage")}

    def expected(self) -> object:
        if self.stage == "prep":
            return self.base.frames_csv, (self.base.run / "selection.csv").read_text()
        if self.stage == "mask":
            return self.base.masks_csv
        return self.study[1]


@pytest.fixture(scope="module")
def study_reference(base: Base, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The small study run once without faults, from the module's warm prep and masks."""
    root = tmp_path_factory.mktemp("hostile_study")
    cache = root / "cache"
    shutil.copytree(base.cache, cache)
    run = StageRun("recognize", base, None)
    done = _process(run.args(root), cache)
    log, _ = done.communicate(timeout=900)
    assert done.returncode == 0, log
    return cache, StageRun("recognize", base, (cache, {})).result(root)


@pytest.mark.parametrize("fault", FAULTS, ids=[f.id for f in FAULTS])
def test_fault(fault: Fault, base: Base, request, tmp_path: Path) -> None:
    study = request.getfixturevalue("study_reference") if fault.stage == "recognize" else None
    run = StageRun(fault.stage, base, study)
    cache = tmp_path / "cache"
    shutil.copytree(run.reference_cache, cache)
    # This stage starts cold; the others are served from the cache, so the run is quick.
    total = len(cache_entries(cache, fault.stage))
    shutil.rmtree(cache / "intermediates" / fault.stage)
    if fault.sig is None:
        both = [_process(run.args(tmp_path, f"out{i}"), cache) for i in (1, 2)]
        for i, process in enumerate(both, start=1):
            log, _ = process.communicate(timeout=900)
            assert process.returncode == 0, log
            assert run.result(tmp_path, f"out{i}") == run.expected()
        assert len(cache_entries(cache, fault.stage)) == total
        return

    process = _process(run.args(tmp_path), cache, fault.workers)
    deadline = time.monotonic() + 600
    while len(cache_entries(cache, fault.stage)) < fault.after and process.poll() is None:
        assert time.monotonic() < deadline, "the stage never started"
        time.sleep(0.01)
    process.send_signal(fault.sig)
    log, _ = process.communicate(timeout=120)
    assert process.returncode == (130 if fault.sig == signal.SIGINT else -signal.SIGKILL), log
    written = len(cache_entries(cache, fault.stage))
    assert fault.after <= written < total, "interrupted in the middle of the stage"
    assert not run.finished(tmp_path), "no result from a run that was stopped"
    for meta in cache_entries(cache, fault.stage):  # every entry on disk is whole
        entry = json.loads(meta.read_text())
        for name, digest in entry["files"].items():
            assert hashlib.sha256((meta.parent / name).read_bytes()).hexdigest() == digest

    again = _process(run.args(tmp_path), cache, fault.workers)
    log, _ = again.communicate(timeout=900)
    assert again.returncode == 0, log
    assert run.result(tmp_path) == run.expected()
    assert len(cache_entries(cache, fault.stage)) == total


# -- 4. `dmbench report` on hostile results, figures and folders (issue 22) -----------------
@pytest.fixture(scope="module")
def finished_study(base: Base, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small study, run once (in this process, from the module's warm prep and masks):
    a folder with results.json, report.md, report.html and the figures."""
    root = tmp_path_factory.mktemp("hostile_report")
    cache = root / "cache"
    shutil.copytree(base.cache, cache)
    saved = os.environ.get("DMBENCH_CACHE_DIR")
    os.environ["DMBENCH_CACHE_DIR"] = str(cache)
    try:
        out = root / "out"
        done = dmbench("reproduce", "--data", base.people, "--identities", "2", "--out", out)
        assert (out / "results.json").is_file(), done.text
    finally:
        if saved is None:
            del os.environ["DMBENCH_CACHE_DIR"]
        else:
            os.environ["DMBENCH_CACHE_DIR"] = saved
    shutil.rmtree(out / "prep")  # the report needs only results.json
    return out


@dataclass(frozen=True)
class ReportCase:
    id: str
    item: str
    # edits the copied run folder (its results.json, figures, folder); returns extra argv
    arrange: Callable[[World, Path], None]
    exit: int
    says: tuple[str, ...] = ()
    then: Callable[[World, Path, dict[str, str]], None] | None = None


def _edit_results(edit: Callable[[dict], object]) -> Callable[[World, Path], None]:
    def arrange(w: World, run: Path) -> None:
        data = json.loads((run / "results.json").read_text())
        data = edit(data) or data
        (run / "results.json").write_text(json.dumps(data))

    return arrange


def _set(path: str, value: object) -> Callable[[World, Path], None]:
    """results.json with the field at ``path`` ("a/0/b") set to ``value``."""

    def edit(data: dict) -> None:
        *parents, last = path.split("/")
        node = data
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[int(last) if isinstance(node, list) else last] = value

    return _edit_results(edit)


def _results_text(text: str) -> Callable[[World, Path], None]:
    def arrange(w: World, run: Path) -> None:
        (run / "results.json").write_text(text)

    return arrange


def _live_in_outputs(w: World, run: Path, before: dict[str, str]) -> None:
    from markdown_it import MarkdownIt

    from benchmark.tests.test_report_html import _live

    page = (run / "report.html").read_text(encoding="utf-8")
    assert not _live(page), _live(page)
    viewer = MarkdownIt("commonmark", {"html": True}).enable("table")  # as GitHub shows .md
    viewer.validateLink = lambda url: True
    shown = viewer.render((run / "report.md").read_text(encoding="utf-8"))
    assert not _live(shown), _live(shown)


def _nothing_rewritten(w: World, run: Path, before: dict[str, str]) -> None:
    assert _digests(run) == before, "a refused report rewrote a file"


def _figure_link_outside(w: World, run: Path) -> None:
    victim = _victim(w) / "precious.txt"
    (run / "cmc.png").unlink()
    (run / "cmc.png").symlink_to(victim)


def _link_replaced_victim_kept(w: World, run: Path, before: dict[str, str]) -> None:
    assert (w.tmp / "victim" / "precious.txt").read_text() == "keep me"
    figure = run / "cmc.png"
    assert figure.is_file() and not figure.is_symlink(), "the link is replaced by the figure"
    Image.open(figure).verify()


def _figure_is_a_folder(w: World, run: Path) -> None:
    (run / "cmc.png").unlink()
    (run / "cmc.png").mkdir()


def _read_only(w: World, run: Path) -> None:
    w.deny(run, write_only=True)


def _disk_full(w: World, run: Path) -> None:
    w.fill_disk(run)


def _extra_embedder(data: dict) -> None:
    data["config"]["profile"]["embedders"].append("no-such-embedder")


def _hostile_everywhere(payload: str) -> Callable[[World, Path], None]:
    from benchmark.tests.test_report_html import _hostile

    return _edit_results(lambda data: _hostile(data, payload))


def _page_link_outside(name: str) -> Callable[[World, Path], None]:
    def arrange(w: World, run: Path) -> None:
        victim = _victim(w) / "precious.txt"
        (run / name).unlink()
        (run / name).symlink_to(victim)

    return arrange


def _page_link_replaced(name: str) -> Callable[[World, Path, dict[str, str]], None]:
    def check(w: World, run: Path, before: dict[str, str]) -> None:
        assert (w.tmp / "victim" / "precious.txt").read_text() == "keep me"
        assert (run / name).is_file() and not (run / name).is_symlink()

    return check


def _results_bytes(data: bytes) -> Callable[[World, Path], None]:
    def arrange(w: World, run: Path) -> None:
        (run / "results.json").write_bytes(data)

    return arrange


REPORT_CASES = [
    ReportCase(
        "javascript-link-in-data-path",
        "22.1",
        _set("config/data", "/data/a`[x](javascript:alert(1))`"),
        0,
        then=_live_in_outputs,
    ),
    ReportCase(
        "quote-breaks-out-of-href",
        "22.1",
        _set("claims/0/statement", 'see https://x"onmouseover="alert(1) and [y](https://x"a=")'),
        0,
        then=_live_in_outputs,
    ),
    ReportCase(
        "raw-script-kept-in-report-md",
        "22.1",
        _set("claims/0/measured", "<script>alert(1)</script><img src=x onerror=alert(1)>"),
        0,
        then=_live_in_outputs,
    ),
    ReportCase(
        "hostile-string-in-every-field",
        "22.1",
        _hostile_everywhere("<svg onload=alert(1)>[x](javascript:alert(1))\"'`|$\\frac{$"),
        0,
        then=_live_in_outputs,
    ),
    ReportCase(
        "figure-is-a-link-outside",
        "22.1",
        _figure_link_outside,
        0,
        then=_link_replaced_victim_kept,
    ),
    ReportCase(
        "figure-is-a-folder",
        "22.1",
        _figure_is_a_folder,
        3,
        ("is a folder",),
        _nothing_rewritten,
    ),
    ReportCase(
        "report-into-read-only-folder",
        "22.1",
        _read_only,
        3,
        ("permission denied",),
        _nothing_rewritten,
    ),
    ReportCase("report-on-full-disk", "22.1", _disk_full, 3, ("no space",), _nothing_rewritten),
    ReportCase(
        "scenarios-not-a-list",
        "22.2",
        _set("scenarios", "oops"),
        3,
        ("scenarios: 'oops' is not of type 'array'",),
        _nothing_rewritten,
    ),
    ReportCase(
        "rank1-a-word",
        "22.2",
        _set("scenarios/0/rank1", "high"),
        3,
        ("scenarios/0/rank1",),
        _nothing_rewritten,
    ),
    ReportCase(
        "renamed-scenario",
        "22.2",
        _set("scenarios/3/scenario", "Mask2Nothing"),
        3,
        ("not a scenario of this dmbench",),
        _nothing_rewritten,
    ),
    ReportCase(
        "deep-nesting",
        "22.2",
        _results_text('{"a":' * 100_000 + "1" + "}" * 100_000),
        3,
        ("nested too deeply",),
        _nothing_rewritten,
    ),
    ReportCase(
        "schema-version-99",
        "22.2",
        _set("schema_version", 99),
        3,
        ("schema_version 99", "reads schema_version 1"),
        _nothing_rewritten,
    ),
    ReportCase(
        "nan-in-results",
        "22.2",
        _results_text('{"schema_version": 1, "rank1": NaN}'),
        3,
        ("NaN is not a number JSON allows",),
        _nothing_rewritten,
    ),
    ReportCase("results-empty", "22.2", _results_text(""), 3, ("not a readable",)),
    ReportCase(
        "results-a-list", "22.2", _results_text("[1, 2]"), 3, ("a JSON list, not an object",)
    ),
    *(
        ReportCase(
            f"{name.replace('.', '-')}-is-a-link-outside",
            "22.1",
            _page_link_outside(name),
            0,
            then=_page_link_replaced(name),
        )
        for name in ("report.html", "report.md")
    ),
    ReportCase(
        "results-not-utf8",
        "22.2",
        _results_bytes(b'{"schema_version": 1, "profile": "\xff\xfe"}'),
        3,
        ("not a readable results.json",),
        _nothing_rewritten,
    ),
    ReportCase(
        "infinity-in-results",
        "22.2",
        _results_text('{"schema_version": 1, "rank1": Infinity}'),
        3,
        ("Infinity is not a number JSON allows",),
        _nothing_rewritten,
    ),
    ReportCase(
        "a-claim-with-an-unknown-outcome",
        "22.2",
        _set("claims/0/outcome", "maybe"),
        3,
        ("claims/0/outcome",),
        _nothing_rewritten,
    ),
    ReportCase(
        "embedder-without-rows",
        "22.2",
        _edit_results(_extra_embedder),
        3,
        ("no report can be drawn", "no-such-embedder", "nothing was written"),
        _nothing_rewritten,
    ),
]


def _digests(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "folder"
        for p in sorted(folder.iterdir())
        if p.name != "results.json"
    }


@pytest.mark.parametrize("case", REPORT_CASES, ids=[c.id for c in REPORT_CASES])
def test_report_case(case: ReportCase, world: World, finished_study: Path) -> None:
    run = world.tmp / "run"
    shutil.copytree(finished_study, run, symlinks=True)
    case.arrange(world, run)
    before = _digests(run)
    outcome = dmbench("report", run / "results.json")
    assert outcome.exit == case.exit, outcome.text
    assert "Traceback" not in outcome.text
    for fragment in case.says:
        assert fragment.lower() in outcome.text.lower(), (fragment, outcome.text)
    if case.exit:
        assert outcome.err.startswith("dmbench: error:") and outcome.err.count("\n") == 1, (
            outcome.err
        )
    if case.then is not None:
        case.then(world, run, before)


def test_a_report_killed_at_any_moment_leaves_whole_files(finished_study: Path, tmp_path) -> None:
    """SIGKILL at spread moments of `dmbench report`: every file of the folder is the old
    one or the new one, never empty or cut (each is renamed into place whole)."""
    run = tmp_path / "run"
    shutil.copytree(finished_study, run)
    started = time.monotonic()
    whole = _process(["report", run / "results.json"], tmp_path / "cache")
    log, _ = whole.communicate(timeout=300)
    assert whole.returncode == 0, log
    took = time.monotonic() - started
    names = ("cmc.png", "fig1_mask2face_vs_mask2mask.png", "report.md", "report.html")
    written = {name: (run / name).read_bytes() for name in names}
    old = {name: (finished_study / name).read_bytes() for name in names}
    for step in range(8):
        process = _process(["report", run / "results.json"], tmp_path / "cache")
        time.sleep(took * (0.35 + 0.09 * step))  # around the moments the files are written
        process.kill()
        process.communicate(timeout=60)
        for name in names:
            assert (run / name).read_bytes() in (old[name], written[name]), (step, name)


def _children(pid: int) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if (
                proc.name.isdigit()
                and int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid
            ):
                found.append(int(proc.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_workers_die_with_a_killed_parent(base: Base, tmp_path: Path) -> None:
    """`kill -9` of `dmbench prep --workers 2`: its workers and the resource tracker end
    within seconds (each worker watches its parent), none is left holding memory."""
    process = _process(
        ["prep", base.people, "--out", tmp_path / "out", "--no-cache"],
        tmp_path / "cache",
        workers=2,
    )
    deadline = time.monotonic() + 300
    children: list[int] = []
    while len(children) < 3 and process.poll() is None:  # two workers and the tracker
        assert time.monotonic() < deadline, "the workers never started"
        time.sleep(0.05)
        children = _children(process.pid)
    assert process.poll() is None, "prep ended before it could be killed"
    process.kill()
    process.communicate(timeout=60)
    deadline = time.monotonic() + 15
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [pid for pid in children if _alive(pid)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"processes left behind by the killed parent: {left}"
