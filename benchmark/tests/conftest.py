"""Fixtures of the tests: plug-in anonymizers written to a module of their own, loaded by
import the way a user's are (also by spawned workers, through ``sys.path``)."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PLUGINS = """
import numpy as np
from benchmark.errors import MaskFailure

calls = []


def inverted(crop):
    calls.append(int(crop.sum()))
    return 255 - crop  # no region: dmbench's face cut


def inverted_everywhere(crop):
    return 255 - crop, np.ones(crop.shape[:2], bool)


def unchanged(crop):
    return crop


def unchanged_copy_with_region(crop):
    return crop.copy(), np.ones(crop.shape[:2], bool)


def raises(crop):
    raise ValueError("model not loaded")


def raises_on_odd(crop):
    calls.append(int(crop.sum()))
    if int(crop.sum()) % 2:
        raise ValueError("odd crop")
    return 255 - crop, None


def refuses(crop):
    raise MaskFailure("no face I can use")


def wrong_size(crop):
    return np.zeros((200, 200, 3), np.uint8)


def floats(crop):
    return (255 - crop).astype(np.float32) / 255


def wrong_region(crop):
    return 255 - crop, np.ones((10, 10), bool)


def three_things(crop):
    return 255 - crop, None, None


def paints_the_photo(crop):
    crop[:] = 0
    return crop


def one_pixel(crop):
    out = crop.copy()
    out[0, 0] = 255 - out[0, 0]
    region = np.zeros(crop.shape[:2], bool)
    region[0, 0] = True
    return out, region


def plus_one(crop):
    return np.clip(crop.astype(int) + 1, 0, 255).astype(np.uint8), np.ones(crop.shape[:2], bool)


_buffer = np.zeros((224, 224, 3), np.uint8)


def reuses_its_buffer(crop):
    _buffer[:] = 255 - crop
    return _buffer, np.ones(crop.shape[:2], bool)


class Counted:
    made = 0

    def __init__(self):
        Counted.made += 1

    def __call__(self, crop):
        return 255 - crop, np.ones(crop.shape[:2], bool)
"""


def write_plugins(folder: Path) -> str:
    """A fresh module of the plug-ins above in ``folder``; its importable name."""
    name = f"dmbench_test_plugins_{uuid.uuid4().hex[:8]}"
    (folder / f"{name}.py").write_text(PLUGINS)
    return name


@pytest.fixture()
def plugins(tmp_path: Path, monkeypatch) -> str:
    """A fresh module of plug-ins for one test (a test may edit it)."""
    monkeypatch.syspath_prepend(str(tmp_path))
    return write_plugins(tmp_path)


@pytest.fixture(scope="module")
def shared_plugins(tmp_path_factory) -> Iterator[str]:
    """A module of plug-ins for every test of a module (none may edit it)."""
    folder = tmp_path_factory.mktemp("plugins")
    sys.path.insert(0, str(folder))
    try:
        yield write_plugins(folder)
    finally:
        sys.path.remove(str(folder))
