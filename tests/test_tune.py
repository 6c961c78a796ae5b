"""`mm tune` end to end on generated data: a tiny search, real per-epoch pruning, a failing trial, an unknown key,
a tune killed with SIGKILL then resumed to exactly the asked number of finished trials, and parallel workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers import make_dataset, read_csv
from test_cli import assert_clean_failure, mm

pytest.importorskip("optuna")  # the [tune] extra

TINY = ["model.embed_dim=16", "model.hidden_dim=16", "data.image_size=16", "train.batch_size=16", "train.epochs=3",
        "train.patience=0"]
SETS = [a for s in TINY for a in ("--set", s)]


def _space(tmp_path: Path, space: dict) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    return path


def _tune(csv: Path, space: Path, out: Path, *args: str):
    return mm("tune", csv, "--space", space, "-o", out, *SETS, *args)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("tune") / "data", n=60)


def test_tiny_search_writes_every_output(data, tmp_path):
    space = _space(tmp_path, {"train.lr": {"space": "loguniform", "lower": 1e-3, "upper": 1e-2},
                              "model.fusion": {"space": "choice", "categories": ["concat", "late"]}})
    out = tmp_path / "tune"
    result = _tune(data, space, out, "--trials", "3", "--pruner", "none", "--keep", "1")
    assert result.exit_code == 0, result.output
    rows = read_csv(out / "trials.csv")
    assert [r["state"] for r in rows] == ["complete"] * 3
    assert rows[0]["base"] == "True" and float(rows[0]["train.lr"]) == 3e-3 and rows[0]["model.fusion"] == "late"
    assert all(1e-3 <= float(r["train.lr"]) <= 1e-2 for r in rows[1:])
    assert all(int(r["epochs"]) == 3 and float(r["seconds"]) > 0 for r in rows)
    best = max(rows, key=lambda r: (float(r["val_accuracy"]), -int(r["trial"])))
    # only the best trial's run folder is kept
    assert [p.name for p in (out / "trials").iterdir()] == [f"{int(best['trial']):04d}"]
    assert (out / "report.md").read_text().count("history.png") == 1 and (out / "history.png").stat().st_size > 0
    # best.yaml is a config mm train takes as it is, holding the best trial's values
    cfg = yaml.safe_load((out / "best.yaml").read_text())
    assert cfg["model"]["fusion"] == best["model.fusion"]
    assert cfg["train"]["lr"] == pytest.approx(float(best["train.lr"]))
    trained = mm("train", data, "--config", out / "best.yaml", "-o", tmp_path / "run")
    assert trained.exit_code == 0, trained.output


def test_hopeless_learning_rate_is_pruned_before_its_last_epoch(data, tmp_path):
    # Trial 0 is the base config (lr 3e-3, all 3 epochs); every later trial draws lr >= 30, whose validation loss
    # after one epoch is far above the base's, so the median pruner (1 startup trial, no warm-up) stops it there.
    space = _space(tmp_path, {"train.lr": {"space": "loguniform", "lower": 30.0, "upper": 100.0}})
    out = tmp_path / "tune"
    result = _tune(data, space, out, "--trials", "2", "--metric", "val_loss", "--startup-trials", "1",
                   "--warmup-epochs", "0")
    assert result.exit_code == 0, result.output
    rows = read_csv(out / "trials.csv")
    assert [r["state"] for r in rows] == ["complete", "pruned"]
    assert int(rows[0]["epochs"]) == 3 and int(rows[1]["epochs"]) < 3
    assert not (out / "trials" / "0001").exists()  # a pruned trial's run folder is not kept


def test_failing_trial_is_recorded_and_the_study_goes_on(data, tmp_path):
    import optuna

    space = _space(tmp_path, {"model.dropout": {"space": "uniform", "lower": 0.0, "upper": 0.5}})
    out = tmp_path / "tune"
    assert _tune(data, space, out, "--trials", "1").exit_code == 0
    # Queue a trial whose config is invalid (dropout must be below 1) through Optuna's own API on the journal
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(out / "journal.log")))
    study = optuna.load_study(study_name="mm-tune", storage=storage)
    study.enqueue_trial({"model.dropout": 1.5})
    result = mm("tune", "--resume", out, "--trials", "2")
    assert result.exit_code == 0, result.output
    rows = read_csv(out / "trials.csv")
    assert rows[1]["state"] == "failed" and "model.dropout" in rows[1]["error"]
    assert rows[0]["state"] == "complete" and len(rows) >= 3  # the tune went on until 2 trials finished
    assert sum(r["state"] in ("complete", "pruned") for r in rows) == 2


def test_unknown_key_exits_2_naming_it(data, tmp_path):
    space = _space(tmp_path, {"train.lr": {"space": "uniform", "lower": 1e-3, "upper": 1e-2},
                              "train.learning_rate": {"space": "uniform", "lower": 1e-3, "upper": 1e-2}})
    result = _tune(data, space, tmp_path / "tune")
    assert_clean_failure(result, 2, "train.learning_rate")
    assert not (tmp_path / "tune").exists()


def test_space_errors_answer_before_optuna_and_torch_load(data, tmp_path):
    space = _space(tmp_path, {"model.nope": {"space": "int", "lower": 1, "upper": 2}})
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom mmcli.cli import app\n"
            f"r = CliRunner().invoke(app, ['tune', {str(data)!r}, '--space', {str(space)!r}])\n"
            "assert r.exit_code == 2 and 'model.nope' in r.output, r.output\n"
            "assert 'torch' not in sys.modules and 'optuna' not in sys.modules\nprint('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


@pytest.mark.parametrize("entry, needle", [
    ({"space": "uniform", "lower": 8, "upper": 64}, "use space: int"),
    ({"space": "int", "lower": 64, "upper": 8}, "must be below"),
    ({"space": "choice", "categories": [1, "x"]}, "expected int"),
    ({"space": "normal", "lower": 8, "upper": 64}, "not one of"),
])
def test_bad_space_entries_exit_2(data, tmp_path, entry, needle):
    result = _tune(data, _space(tmp_path, {"model.hidden_dim": entry}), tmp_path / "tune")
    assert_clean_failure(result, 2, "model.hidden_dim", needle)


def test_resume_refuses_new_settings_and_missing_folder(tmp_path):
    assert_clean_failure(mm("tune", "--resume", tmp_path / "none"), 2, "no tune.yaml")
    assert_clean_failure(mm("tune", "--resume", tmp_path, "--sampler", "random"), 2, "--sampler")


def _wait_for_complete(path: Path, proc: subprocess.Popen, timeout: float = 300.0) -> int:
    end = time.time() + timeout
    while True:
        if path.exists():
            done = sum(r["state"] == "complete" for r in read_csv(path))
            if done:
                return done
        assert proc.poll() is None, f"the tune ended before a trial completed: {proc.communicate()}"
        assert time.time() < end, f"no trial completed within {timeout}s"
        time.sleep(0.02)


@pytest.mark.slow
def test_sigkill_then_resume_ends_with_exactly_n_completed(data, tmp_path):
    space = _space(tmp_path, {"train.lr": {"space": "loguniform", "lower": 1e-3, "upper": 1e-2}})
    out = tmp_path / "tune"
    args = ["tune", str(data), "--space", str(space), "-o", str(out), "--trials", "3", "--pruner", "none", *SETS]
    proc = subprocess.Popen([sys.executable, "-m", "mmcli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=os.environ.copy())
    at_kill = _wait_for_complete(out / "trials.csv", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert at_kill < 3, "the tune finished before it was killed; the test proves nothing"
    resumed = subprocess.run([sys.executable, "-m", "mmcli", "tune", "--resume", str(out)], capture_output=True,
                             text=True, timeout=600, env=os.environ.copy(), check=False)
    assert resumed.returncode == 0, resumed.stderr
    rows = read_csv(out / "trials.csv")
    assert sum(r["state"] == "complete" for r in rows) == 3
    # a trial cut off by the kill is failed and its parameters run again; the kill may also land before the next
    # trial sampled anything (no parameters to repeat: a fresh trial of the same kind runs instead)
    for r in rows:
        if r["state"] == "failed":
            assert "killed" in r["error"]
            if r["train.lr"]:
                assert any(o["state"] == "complete" and o["train.lr"] == r["train.lr"] for o in rows)


@pytest.mark.slow
def test_parallel_workers_run_exactly_n_trials(data, tmp_path):
    space = _space(tmp_path, {"train.lr": {"space": "loguniform", "lower": 1e-3, "upper": 1e-2}})
    out = tmp_path / "tune"
    result = _tune(data, space, out, "--trials", "4", "--jobs", "2", "--pruner", "none")
    assert result.exit_code == 0, result.output
    rows = read_csv(out / "trials.csv")
    assert [r["state"] for r in rows] == ["complete"] * 4
    # trial 0 ran alone in this process; the others in the two workers, whose pids the trials record
    import optuna

    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(out / "journal.log")))
    pids = [t.user_attrs["pid"] for t in optuna.load_study(study_name="mm-tune", storage=storage).trials]
    assert pids[0] == os.getpid() and os.getpid() not in pids[1:] and len(set(pids[1:])) >= 1
