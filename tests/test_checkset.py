"""The out-of-source check set (checkset/): every photo sources.json lists is there, a JPEG
within the size limit, nothing else is, the attribution and counts are what the table gives,
and none of the photos is one of the demo's examples (a photo a user or a test has seen)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
CHECKSET = REPO / "checkset"


@pytest.fixture(scope="module")
def build():
    spec = importlib.util.spec_from_file_location("checkset_build", CHECKSET / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_set_matches_its_table(build):
    assert build.check(CHECKSET) == []


def test_check_names_a_missing_and_a_stray_photo(build, tmp_path):
    copy = tmp_path / "checkset"
    shutil.copytree(CHECKSET, copy, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    first = build.PHOTOS[0].file
    (copy / first).unlink()
    Image.new("RGB", (8, 8)).save(copy / "photos" / "stray.jpg")
    problems = build.check(copy)
    assert f"missing {first}" in problems
    assert "photos/stray.jpg is not in the table" in problems


def test_no_check_set_photo_is_a_demo_example(build):
    """An example is on the demo's page and in tests: judging on it would not be judging on
    a photo from elsewhere. Near-copies count (re-encoded, resized): 256-bit difference
    hashes closer than 40 bits (the set's nearest training photo was 77+ bits away)."""
    examples = {p.name: build.difference_hash(p) for p in sorted((REPO / "examples").glob("*.jpg"))}
    assert examples
    for photo in build.PHOTOS:
        h = build.difference_hash(CHECKSET / photo.file)
        for name, e in examples.items():
            bits = sum(a != b for a, b in zip(h, e, strict=True))
            assert bits >= 40, f"{photo.file} is examples/{name} ({bits} bits apart)"
