"""Shared fixtures: an isolated environment (cache, offline, quiet, scratch cwd) and a tiny generated dataset."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from helpers import TINY, make_dataset

# Zero-config commands pick the pretrained preset when its weights are installed (they are, under `make test`);
# the suite's tiny models start from the scratch defaults instead. Tests of that choice unset this.
os.environ.setdefault("MM_PRESET", "fast")


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory, monkeypatch):
    """Every test gets its own cache folder, no network, no progress bars, and a scratch working directory (so a
    default `runs/` never lands in the repository)."""
    monkeypatch.setenv("MM_CACHE_DIR", str(tmp_path_factory.mktemp("mmcache")))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MM_QUIET", "1")
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture
def dataset(tmp_path) -> Path:
    """Path to a generated `data.csv` (45 rows: image,text,label; 3 classes; 16x16 PNGs beside it)."""
    return make_dataset(tmp_path / "data")


@pytest.fixture
def tiny_sets() -> list[str]:
    """`--set` overrides for a model that trains in well under a second."""
    return list(TINY)


@pytest.fixture
def tiny_args(tiny_sets) -> list[str]:
    """The same overrides as CLI arguments: ["--set", "model.embed_dim=16", ...]."""
    return [arg for s in tiny_sets for arg in ("--set", s)]


@pytest.fixture
def tiny_cfg(tiny_sets):
    from mmcli.config import load_config

    return load_config(None, tiny_sets)


def pytest_configure(config):
    # hypothesis keeps its caches outside the repository
    os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", os.path.join(tempfile.gettempdir(), "mmcli-hypothesis"))
    # torchvision 0.29 deprecates its image decoders in favour of TorchCodec; mmcli still uses them on purpose
    config.addinivalue_line("filterwarnings", "ignore:The image decoding and encoding:DeprecationWarning")
