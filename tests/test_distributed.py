"""Distributed data parallel on CPU: two gloo processes launched by `mm train --nproc-per-node 2`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import make_dataset

# No augmentation or dropout, and a batch large enough that each rank's half batch gives stable batch-norm statistics:
# the two-process run then differs from the one-process run only through batch-norm
# statistics (per-rank half batches) and float summation order.
SETS = ["model.embed_dim=16", "model.hidden_dim=16", "data.image_size=16", "train.batch_size=48", "train.epochs=4",
        "train.patience=0", "train.augment=false", "model.dropout=0", "train.threads=1"]
TOLERANCE = 0.15  # validation loss, absolute


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mm(args: list[str], env: dict | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mmcli", *args], capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, **(env or {})})


def _train(csv: Path, run: Path, extra: list[str] = (), env: dict | None = None) -> subprocess.CompletedProcess:
    return _mm(["train", str(csv), "-o", str(run), *[a for s in SETS for a in ("--set", s)], *extra], env)


@pytest.fixture
def data(tmp_path) -> Path:
    return make_dataset(tmp_path / "data", n=96)


@pytest.mark.slow
def test_two_processes_match_one(data, tmp_path):
    single = _train(data, tmp_path / "one")
    assert single.returncode == 0, single.stderr
    double = _train(data, tmp_path / "two", ["--nproc-per-node", "2", "--master-port", str(_free_port())])
    assert double.returncode == 0, double.stderr
    one = json.loads((tmp_path / "one" / "metrics.json").read_text())
    two = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert abs(one["val"]["loss"] - two["val"]["loss"]) < TOLERANCE, (one["val"], two["val"])
    assert abs(one["val"]["accuracy"] - two["val"]["accuracy"]) <= 0.2
    # written once, by rank 0: one history row per epoch and a single run folder
    history = (tmp_path / "two" / "history.csv").read_text().strip().splitlines()
    assert len(history) == 1 + 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "one", "two"]
    assert double.stdout.strip().splitlines()[-1].endswith("two")


@pytest.mark.slow
def test_failing_rank_fails_the_command(data, tmp_path):
    hook = tmp_path / "hook"
    hook.mkdir()
    # Imported at start-up by every Python process: makes rank 1 raise inside training, nowhere else.
    (hook / "sitecustomize.py").write_text(
        "import os\n"
        "if os.environ.get('RANK') == '1':\n"
        "    import mmcli.fit as f\n"
        "    def boom(*a, **k):\n"
        "        raise RuntimeError('injected failure on rank 1')\n"
        "    f.fit = boom\n"
        "    import mmcli.train as t\n"
        "    t.fit = boom\n"
    )
    env = {"PYTHONPATH": os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")])}
    res = _train(data, tmp_path / "bad", ["--nproc-per-node", "2", "--master-port", str(_free_port())], env=env)
    assert res.returncode == 1, res.stderr
    assert "distributed training failed" in res.stderr and "rank 1" in res.stderr
    assert not (tmp_path / "bad" / "metrics.json").exists()
