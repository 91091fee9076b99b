"""Reading input photos safely: every failure is an ImageReadError naming the file.

Odd but usable formats (grayscale, RGBA, 16-bit, CMYK) are converted to 8-bit RGB,
and a photo with an EXIF orientation is turned upright as every image viewer shows it;
each is reported in a note, so the per-frame table says exactly what was done to each
input. Unusable files (empty, corrupt, truncated, tiny, huge) raise with a reason;
nothing is guessed.

Outputs are written atomically (a temporary file, renamed), and a disk that refuses
(full, read-only) raises ``OutputError`` naming the file, with nothing half-written.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, UnidentifiedImageError

from benchmark.errors import ImageReadError, OutputError

# How a file becomes pixels; part of the prep cache key, so a change of it recomputes.
DECODING = "rgb8+exif-orientation"
MIN_SIDE = 32
MAX_SIDE = 8000
_EXIF_ORIENTATION = 0x0112
# How to turn an image stored with each EXIF orientation upright (1 is upright).
_TURNS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# What each EXIF orientation value asks a viewer to do (1 is upright).
_ORIENTATION_WORDS = {
    2: "mirrored",
    3: "rotated 180°",
    4: "flipped vertically",
    5: "mirrored and rotated 90° clockwise",
    6: "rotated 90° clockwise",
    7: "mirrored and rotated 90° counter-clockwise",
    8: "rotated 90° counter-clockwise",
}


@dataclass(frozen=True)
class LoadedImage:
    rgb: np.ndarray  # H x W x 3 uint8
    note: str  # "" or what was converted, e.g. "converted from CMYK"


def _to_rgb8(image: Image.Image) -> tuple[np.ndarray, str]:
    mode = image.mode
    if mode == "RGB":
        return np.asarray(image, dtype=np.uint8).copy(), ""
    if mode in {"I;16", "I;16B", "I;16L", "I;16N", "I"}:
        data = np.asarray(image)
        scale = 257.0 if data.max(initial=0) <= 65535 and mode.startswith("I;16") else None
        if scale is None:  # 32-bit int: scale by the true range
            hi = max(int(data.max(initial=0)), 1)
            scale = hi / 255.0
        gray = np.clip(np.round(data.astype(np.float64) / scale), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2), f"converted from 16-bit grayscale ({mode})"
    if mode in {"RGBA", "LA", "PA"} or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        arr = np.asarray(rgba, dtype=np.float32)
        alpha = arr[..., 3:4] / 255.0
        # Composite on black: never invent a light background around a face.
        rgb = np.round(arr[..., :3] * alpha).astype(np.uint8)
        return rgb, f"converted from {mode} (alpha composited on black)"
    if mode == "RGB;16" or (mode.startswith("RGB") and mode != "RGB"):
        return np.asarray(image.convert("RGB"), dtype=np.uint8).copy(), f"converted from {mode}"
    note = {
        "L": "converted from grayscale",
        "1": "converted from 1-bit",
        "P": "converted from palette",
        "CMYK": "converted from CMYK",
        "YCbCr": "converted from YCbCr",
        "LAB": "converted from LAB",
        "HSV": "converted from HSV",
        "F": "converted from float grayscale",
    }.get(mode, f"converted from {mode}")
    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy(), note


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation (1 = upright) as stored, read before the pixels are loaded."""
    try:
        value = int(image.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # unreadable EXIF: the pixels as stored, as viewers do
        return 1
    return value if value in _TURNS else 1


def _upright(image: Image.Image, orientation: int) -> Image.Image:
    """The loaded image as a viewer shows it. A phone photo is stored sideways with
    orientation 6; analysed as stored, its face lies on its side and is dropped.

    Pillow already turns TIFFs while opening them (their tag is then gone), so only an
    image that still carries the tag is turned here."""
    still_tagged = _orientation(image) == orientation
    if orientation == 1 or not still_tagged:
        return image
    return image.transpose(_TURNS[orientation])


def _orientation_note(orientation: int) -> str:
    if orientation == 1:
        return ""
    return f"EXIF orientation {orientation}: turned upright ({_ORIENTATION_WORDS[orientation]})"


def _read_16bit_png(data: bytes) -> np.ndarray | None:
    """Pillow decodes 16-bit RGB PNGs to 8 bits inconsistently; OpenCV keeps 16 bits."""
    import cv2

    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.dtype != np.uint16:
        return None
    arr8 = np.round(arr.astype(np.float64) / 257.0).astype(np.uint8)
    if arr8.ndim == 2:
        return np.repeat(arr8[..., None], 3, axis=2)
    if arr8.shape[2] == 4:
        alpha = arr8[..., 3:4].astype(np.float32) / 255.0
        arr8 = np.round(arr8[..., :3].astype(np.float32) * alpha).astype(np.uint8)
    return arr8[..., ::-1].copy() if arr8.shape[2] == 3 else arr8


def decoder_version() -> str:
    """What decides the pixels ``load_image`` makes of a file's bytes (a memo of decoded
    digests is keyed by it): the decoding libraries and this module's own rules."""
    import PIL

    return f"load_image rules {LOAD_RULES}; pillow {PIL.__version__}; numpy {np.__version__}"


LOAD_RULES = 1  # raise when load_image's handling (orientation, bit depth, modes) changes


def load_image(path: Path | str, data: bytes | None = None) -> LoadedImage:
    """Decode ``path`` (or its already-read ``data``) to 8-bit RGB, or raise ImageReadError."""
    path = Path(path)
    if data is None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ImageReadError(path, f"unreadable file ({exc.strerror or exc})") from exc
    if len(data) == 0:
        raise ImageReadError(path, "empty file (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            width, height = probe.size
            fmt = probe.format
            mode = probe.mode
            orientation = _orientation(probe)
    except UnidentifiedImageError as exc:
        raise ImageReadError(path, "not a readable image (unknown or corrupt format)") from exc
    except Exception as exc:
        raise ImageReadError(path, f"corrupt image header ({exc})") from exc
    if max(width, height) > MAX_SIDE:
        raise ImageReadError(
            path, f"image too large ({width}x{height} px; the limit is {MAX_SIDE} px per side)"
        )
    if min(width, height) < MIN_SIDE:
        raise ImageReadError(
            path, f"image too small ({width}x{height} px; at least {MIN_SIDE} px per side)"
        )
    if fmt == "PNG" and mode in {"I;16", "I;16B", "I;16L", "I", "RGB", "RGBA"}:
        sixteen = _read_16bit_png(data)
        if sixteen is not None:
            if orientation != 1:
                sixteen = np.asarray(Image.fromarray(sixteen).transpose(_TURNS[orientation]))
            notes = ("converted from 16-bit PNG", _orientation_note(orientation))
            return LoadedImage(sixteen, "; ".join(n for n in notes if n))
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # raises on truncation (LOAD_TRUNCATED_IMAGES stays False)
            rgb, note = _to_rgb8(_upright(image, orientation))
            note = "; ".join(n for n in (note, _orientation_note(orientation)) if n)
    except OSError as exc:
        text = str(exc)
        reason = "truncated image" if "truncated" in text.lower() else f"corrupt image ({text})"
        raise ImageReadError(path, reason) from exc
    except Exception as exc:
        raise ImageReadError(path, f"corrupt image ({exc})") from exc
    if fmt == "JPEG" and not data.rstrip(b"\0").endswith(b"\xff\xd9"):
        raise ImageReadError(path, "truncated image (JPEG end marker missing)")
    return LoadedImage(rgb, note)


def write_png_atomic(
    path: Path,
    image: np.ndarray | bytes,
    same_as: Callable[[], Path | None] | None = None,
) -> None:
    """Write an RGB image (or its PNG bytes) so that readers never see a partial file. A
    regular file that already holds exactly these bytes is left alone: a warm run's
    crops and masks are the same files, and rewriting ~30,000 of them cost half a minute.

    ``same_as``: finds a file that may hold the same bytes (the cache's copy), asked only
    when ``path`` does not hold them already (a warm run asks nothing). Where it does, it
    is hard-linked into place instead of written: one copy on the disk, not two. Every
    write of ours replaces a file whole (a rename), so neither copy changes the other;
    one changed in place by someone else fails its cache entry's hash, which rebuilds it."""
    data = image if isinstance(image, bytes) else encode_png(image)
    path = Path(path)
    if _holds(path, data):
        return
    source = None if same_as is None else same_as()
    if source is not None and _holds(source, data) and _link_atomic(source, path):
        return
    write_bytes_atomic(path, data)


def _link_atomic(source: Path, path: Path) -> bool:
    """Hard-link ``source`` to ``path`` through a temporary name renamed into place;
    False where the disk cannot (another file system, no hard links, a refusal)."""
    tmp = path.parent / f".tmp-link-{os.getpid()}-{path.name}"
    try:
        _make_folder(path.parent, "folder")
        tmp.unlink(missing_ok=True)
        os.link(source, tmp)
        os.replace(tmp, path)
        return True
    except (OSError, OutputError):
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        return False


def _holds(path: Path, data: bytes) -> bool:
    """Whether ``path`` is a regular file (not a link) whose bytes are ``data``."""
    try:
        info = os.stat(path, follow_symlinks=False)
        if not stat.S_ISREG(info.st_mode) or info.st_size != len(data):
            return False
        with open(path, "rb") as handle:
            return handle.read() == data
    except OSError:
        return False


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write a file so that readers never see a partial one (a temporary file, renamed)."""
    with atomic_writer(path, "wb") as handle:
        handle.write(data)


@contextlib.contextmanager
def atomic_writer(path: Path, mode: str = "w", **kwargs) -> Iterator[IO]:
    """Open ``path`` for writing through a temporary file that replaces it on success.

    On any failure the temporary file is removed and the old ``path`` (if any) stays; a
    disk that refuses becomes ``OutputError`` naming ``path`` ("no space left on ...").
    """
    path = Path(path)
    tmp: str | None = None
    try:
        _make_folder(path.parent, "folder")  # no probe: mkstemp below finds out itself
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
        os.fchmod(fd, _FILE_MODE)  # mkstemp's 0600 would make every output private
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {_os_reason(exc)}") from exc
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def write_files_atomic(folder: Path, files: Mapping[str, bytes]) -> None:
    """Write several files of one folder as one step: every one goes to a temporary file
    first, and only when all are written are they renamed into place. A name that is a
    folder is refused before anything is written; a name that is a link is replaced by
    the file, never written through. On failure no file of ``files`` has changed, unless a
    rename itself fails (then the ones before it are new, each still whole)."""
    folder = Path(folder)
    _make_folder(folder, "folder")
    for name in files:
        target = folder / name
        if target.is_dir() and not target.is_symlink():
            raise OutputError(f"cannot write {target}: it is a folder, not a file")
    pending: list[tuple[str, Path]] = []
    target = folder
    try:
        for name, data in files.items():
            target = folder / name
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=target.suffix)
            pending.append((tmp, target))
            os.fchmod(fd, _FILE_MODE)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
        for tmp, target in list(pending):
            os.replace(tmp, target)
            pending.remove((tmp, target))
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {_os_reason(exc)}") from exc
    finally:
        for tmp, _ in pending:
            Path(tmp).unlink(missing_ok=True)


def _file_mode() -> int:
    """What ``open()`` would give a new file: 0666 less the process's umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _file_mode()


def ensure_folder(folder: Path, what: str = "folder") -> Path:
    """Create ``folder`` (and its parents) or raise one clear ``OutputError``.

    An existing file in its place, a parent that is a file, or a folder we may not write
    are named as such, instead of a FileExistsError / NotADirectoryError / PermissionError.
    """
    folder = _make_folder(Path(folder), what)
    try:  # find out now, not after an hour of models, that nothing can be written here
        with tempfile.TemporaryFile(dir=folder, prefix=".probe-"):
            pass
    except OSError as exc:
        raise OutputError(f"{what} {folder} is not writable: {_os_reason(exc)}") from exc
    return folder


def _make_folder(folder: Path, what: str) -> Path:
    """``mkdir -p`` whose failures name what is in the way (ensure_folder's first half,
    and all that every single atomic write needs)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise OutputError(f"{what} {folder} is a file, not a folder") from exc
    except NotADirectoryError as exc:
        raise OutputError(f"{what} {folder}: a part of the path is a file, not a folder") from exc
    except OSError as exc:
        raise OutputError(f"cannot create {what} {folder}: {_os_reason(exc)}") from exc
    if not folder.is_dir():  # a link to a file, or a race
        raise OutputError(f"{what} {folder} is not a folder")
    return folder


def _os_reason(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "no space left on the device"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.EROFS:
        return "read-only file system"
    return exc.strerror or str(exc)


def encode_png(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
