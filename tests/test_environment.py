"""Environment faults: disk full, an output folder that can't be written, a cache from another version, two
trainings into one folder, damaged weights. Each gives a clear message and exit code, and leaves no run folder
that looks finished."""

from __future__ import annotations

import errno
import json
import os

import pytest
from typer.testing import CliRunner

from mmcli.cli import app
from mmcli.config import load_config
from mmcli.data.cache import build_cache
from mmcli.data.manifest import read_manifest
from mmcli.errors import UsageError
from mmcli.runs import resolve_run


def mm(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_disk_full_while_saving_weights(dataset, tiny_args, tmp_path, monkeypatch):
    import safetensors.torch

    def full(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    result = mm("train", dataset, "-o", tmp_path / "run", *tiny_args)
    assert result.exit_code == 1, result.output
    assert "disk full" in result.output and "Traceback" not in result.output
    assert not list((tmp_path / "run").rglob("*.tmp")), "temporary files must be cleaned up"
    with pytest.raises(UsageError, match="not a finished run folder"):
        resolve_run(tmp_path / "run")


def test_output_folder_not_writable(dataset, tiny_args, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = mm("train", dataset, "-o", blocker / "run", *tiny_args)
    assert result.exit_code == 1, result.output
    assert "cannot write the run folder" in result.output and "Traceback" not in result.output


def test_cache_from_another_version_is_rebuilt(dataset, tiny_cfg):
    man = read_manifest(dataset, tiny_cfg.data)
    cache, _, reused = build_cache(man, tiny_cfg)
    meta_path = cache.dir / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta.update(version=999, fingerprint="written-by-another-version")
    meta_path.write_text(json.dumps(meta))
    again, _, reused = build_cache(read_manifest(dataset, tiny_cfg.data), tiny_cfg)
    assert not reused and json.loads(meta_path.read_text())["version"] != 999
    assert again.valid.sum() == cache.valid.sum()


def test_two_trainings_cannot_share_a_folder(dataset, tiny_args, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").write_text(str(os.getpid()))  # a live process holds it
    result = mm("train", dataset, "-o", run, *tiny_args)
    assert result.exit_code == 2, result.output
    assert "in use by another mm process" in result.output


def test_damaged_weights_give_a_clear_error(dataset, tiny_sets, tmp_path):
    from mmcli.train import train

    run = train(dataset, load_config(None, tiny_sets), output=tmp_path / "run")
    weights = run / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:64])
    image = dataset.parent / "images" / "000.png"
    result = mm("predict", run, image, "apple", "--json")
    assert result.exit_code == 1, result.output
    assert "cannot read weights" in result.output and "Traceback" not in result.output
