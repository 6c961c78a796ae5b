"""Interruption and resume: SIGKILL loses at most the work since the last checkpoint, Ctrl-C saves and exits 130,
and a resumed run ends with the same metrics.json as an uninterrupted one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import make_dataset

SETS = ["model.embed_dim=16", "model.hidden_dim=16", "data.image_size=16", "train.batch_size=8",
        "train.epochs=4", "train.patience=0", "train.checkpoint_every=3"]


def _mm(*args: str, **kw) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "mmcli", *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy(),
                            **kw)


def _train_args(csv: Path, run: Path) -> list[str]:
    return ["train", str(csv), "-o", str(run)] + [a for s in SETS for a in ("--set", s)]


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 300.0) -> None:
    end = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, f"training ended before {path} appeared: {proc.communicate()}"
        assert time.time() < end, f"{path} did not appear within {timeout}s"
        time.sleep(0.02)


@pytest.fixture
def data(tmp_path) -> Path:
    return make_dataset(tmp_path / "data", n=90)


@pytest.fixture
def reference(data, tmp_path) -> dict:
    proc = _mm(*_train_args(data, tmp_path / "ref"))
    _out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err
    return json.loads((tmp_path / "ref" / "metrics.json").read_text())


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted(data, tmp_path, reference):
    run = tmp_path / "killed"
    proc = _mm(*_train_args(data, run))
    _wait_for(run / "last" / "state.pt", proc)
    time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not (run / "metrics.json").exists(), "the run finished before it was killed; the test proves nothing"
    resumed = _mm("train", "--resume", str(run))
    _out, err = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, err
    assert json.loads((run / "metrics.json").read_text()) == reference


@pytest.mark.slow
def test_ctrl_c_saves_checkpoint_and_exits_130(data, tmp_path, reference):
    run = tmp_path / "interrupted"
    proc = _mm(*_train_args(data, run))
    _wait_for(run / "last" / "state.pt", proc)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "mm train --resume" in err and "Traceback" not in err
    assert not (run / "metrics.json").exists()
    resumed = _mm("train", "--resume", str(run))
    _, err = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, err
    assert json.loads((run / "metrics.json").read_text()) == reference


def test_resume_without_checkpoint_is_usage_error(tmp_path):
    proc = _mm("train", "--resume", str(tmp_path / "nothing"))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert "no checkpoint to resume from" in err


def test_truncated_checkpoint_gives_clear_error(data, tmp_path):
    run = tmp_path / "run"
    proc = _mm(*_train_args(data, run)[:4], "--set", "train.epochs=1", *[a for s in SETS[:4] for a in ("--set", s)])
    _, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err
    state = run / "last" / "state.pt"
    state.write_bytes(state.read_bytes()[:100])
    resumed = _mm("train", "--resume", str(run))
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 1
    assert "truncated or tampered" in err and "Traceback" not in err
