"""The recognize profile (``python -m benchmark.profile_recognize``) measures every part of
each embedder on real crops; no timing is asserted, only that each part was measured."""

from __future__ import annotations

from benchmark import profile_recognize
from benchmark.pipeline.recognize.types import EMBEDDERS


def test_every_part_is_measured_on_real_crops(store) -> None:
    pngs = profile_recognize.sample_crops(store, 4)
    assert len(pngs) == 4 and all(p.startswith(b"\x89PNG") for p in pngs)
    rows = {
        name: profile_recognize.profile(EMBEDDERS.create(name, store=store), pngs)
        for name in ("sface", "dlib-resnet-onnx")
    }
    for name, seconds in rows.items():
        assert set(seconds) == set(profile_recognize.PARTS), name
        assert seconds["decode"] > 0 and seconds["detect"] > 0, name
        assert seconds["descriptor"] > 0, f"{name}: no face found on 4 LFW photos"
    text = profile_recognize.table(rows, len(pngs))
    assert "`sface`" in text and "`dlib-resnet-onnx`" in text and "decode" in text


def test_the_command_prints_the_table(capsys) -> None:
    assert profile_recognize.main(["--images", "2", "--embedders", "sface"]) == 0
    out = capsys.readouterr().out
    assert "| `sface` |" in out and "ms per image over 2" in out
