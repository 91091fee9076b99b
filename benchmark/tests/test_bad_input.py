"""Bad input: every kind gives a clear reason naming the file; the run goes on; the cache
keeps what it had. The bad files are generated here from a real LFW photo."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmark.datasets import open_dataset
from benchmark.errors import ImageReadError
from benchmark.imageio import load_image
from benchmark.pipeline.prep import run_prep


def _photo(sample_photo: Path) -> Image.Image:
    return Image.open(sample_photo).convert("RGB")


def _save(image: Image.Image, path: Path, **kwargs) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **kwargs)


def make_bad_files(folder: Path, sample_photo: Path) -> dict[str, tuple[str, str]]:
    """{file name: (expected status, expected reason fragment)} in one LFW-layout identity.

    "converted" means: not an error, a face is found, and the note says what was converted.
    """
    good = _photo(sample_photo)
    person = folder / "images" / "Bad_Input"
    person.mkdir(parents=True)
    n = iter(range(1, 100))

    def name() -> str:
        return f"Bad_Input_{next(n):04d}"

    expected = {}
    jpeg = io.BytesIO()
    good.save(jpeg, format="JPEG", quality=95)
    data = jpeg.getvalue()

    f = name() + ".jpg"
    (person / f).write_bytes(b"")
    expected[f] = ("error", "empty file")
    f = name() + ".jpg"
    (person / f).write_bytes(data[: len(data) // 2])
    expected[f] = ("error", "truncated")
    f = name() + ".jpg"
    (person / f).write_bytes(b"this is not an image at all" * 10)
    expected[f] = ("error", "not a readable image")
    f = name() + ".jpg"
    (person / f).write_bytes(data[:2] + bytes(200) + data[202:])
    expected[f] = ("error", "")  # corrupt header or data: any clear error
    f = name() + ".jpg"
    _save(good.resize((24, 24)), person / f)
    expected[f] = ("error", "too small")
    f = name() + ".png"
    _save(Image.new("RGB", (8100, 40)), person / f)
    expected[f] = ("error", "too large")
    f = name() + ".jpg"
    _save(good.convert("L"), person / f)
    expected[f] = ("converted", "grayscale")
    rgba = good.convert("RGBA")
    f = name() + ".png"
    _save(rgba, person / f)
    expected[f] = ("converted", "RGBA")
    sixteen = (np.asarray(good.convert("L"), np.uint16) * 257).astype(np.uint16)
    f = name() + ".png"
    _save(Image.fromarray(sixteen), person / f)
    expected[f] = ("converted", "16-bit")
    f = name() + ".jpg"
    _save(good.convert("CMYK"), person / f, format="JPEG")
    expected[f] = ("converted", "CMYK")
    f = name() + ".jpg"
    _save(Image.new("RGB", (250, 250), (128, 128, 128)), person / f)
    expected[f] = ("dropped", "no face")
    pair = Image.new("RGB", (500, 250))
    pair.paste(good, (0, 0))
    pair.paste(good.transpose(Image.Transpose.FLIP_LEFT_RIGHT), (250, 0))
    f = name() + ".jpg"
    _save(pair, person / f, quality=95)
    expected[f] = ("dropped", "more than one face")
    return expected


@pytest.fixture()
def bad_dataset(tmp_path: Path, sample_photo: Path):
    expected = make_bad_files(tmp_path / "bad", sample_photo)
    return open_dataset(tmp_path / "bad"), expected


def test_each_bad_kind_has_a_clear_reason(bad_dataset, default_prep, tmp_path: Path) -> None:
    dataset, expected = bad_dataset
    run = run_prep(dataset, tmp_path / "run", default_prep, progress=False)
    assert len(run.results) == len(expected), "the run went on past every bad file"
    for res in run.results:
        status, fragment = expected[res.frame.path.name]
        text = f"{res.reason} {res.note}"
        if status == "converted":  # usable after conversion: it reaches the detector
            assert res.status != "error" and res.n_faces >= 1, (res.frame.path.name, text)
        else:
            assert res.status == status, (res.frame.path.name, res.status, text)
        assert fragment.lower() in text.lower(), (res.frame.path.name, text)
        if status == "error":
            assert res.frame.path.name in res.reason, "an error names the file"
    table = (tmp_path / "run" / "frames.csv").read_text()
    assert table.count("Bad_Input_") >= len(expected)


def test_bad_files_do_not_disturb_cached_work(
    bad_dataset, lfw20, default_prep, tmp_path: Path
) -> None:
    good = lfw20.subset(2, seed=1)
    first = run_prep(good, tmp_path / "good1", default_prep, progress=False)
    dataset, _ = bad_dataset
    run_prep(dataset, tmp_path / "bad", default_prep, progress=False)
    hits_before = default_prep.cache.hits
    again = run_prep(good, tmp_path / "good2", default_prep, progress=False)
    assert default_prep.cache.hits - hits_before == len(good.frames)
    assert [r.record() for r in again.results] == [r.record() for r in first.results]


@pytest.mark.parametrize("payload,reason", [(b"", "empty"), (b"\x89PNG\r\n\x1a\n" + b"0" * 40, "")])
def test_load_image_names_the_file(tmp_path: Path, payload: bytes, reason: str) -> None:
    path = tmp_path / "x.png"
    path.write_bytes(payload)
    with pytest.raises(ImageReadError) as info:
        load_image(path)
    assert str(path) in str(info.value) and reason in str(info.value)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="unreadable"):
        load_image(tmp_path / "does-not-exist.jpg")
