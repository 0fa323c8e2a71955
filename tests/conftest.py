"""Shared fixtures and helpers of the test suite (test modules import the plain helpers with
``from conftest import ...``; pytest puts tests/ on sys.path)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

# One small variant per family: fast enough for every test that builds or runs a model.
FAMILIES = ["cunet", "eccv16", "streetside", "colornet"]
TINY = [f"{f}_tiny" for f in FAMILIES]


REPO = Path(__file__).resolve().parents[1]


def colorizer_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``python -m colorizer -q ARGS`` in a subprocess, run in ``cwd`` (default: the repo), with
    the shipped weights looked up there too (``$COLORIZER_WEIGHTS_DIR``)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLORIZER_WEIGHTS_DIR": str(cwd or REPO)}
    return subprocess.run(
        [sys.executable, "-m", "colorizer", "-q", *args],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        env=env,
        timeout=120,
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for a test server)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sample_photos(folder: Path, n: int, size: int = 64, seed: int = 0) -> list[Path]:
    """Small synthetic "photos" (sky gradient over green ground) as PNGs in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    g = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        y = np.linspace(0, 1, size)[:, None, None]
        sky = np.array([0.35, 0.55, 0.95]) * (1 - 0.4 * y) + g.uniform(-0.05, 0.05, 3)
        ground = np.array([0.2, 0.55, 0.15]) + g.uniform(-0.1, 0.1, 3)
        horizon = int(size * g.uniform(0.4, 0.7))
        img = np.broadcast_to(sky, (size, size, 3)).copy()
        img[horizon:] = ground
        img += g.normal(0, 0.02, img.shape)
        arr = (np.clip(img, 0, 1) * 255).astype(np.uint8)
        p = folder / f"photo_{i:03d}.png"
        Image.fromarray(arr).save(p)
        paths.append(p)
    return paths


def pytest_collection_modifyitems(config, items):
    # CUDA tests run on a GPU machine and are skipped everywhere else.
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    # The tests run tiny models; on a 2-core box one thread avoids oversubscription with the
    # servers the tests start (measured: model + checkpoint tests 51 s -> 8 s).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
