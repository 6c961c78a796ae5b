"""End to end through the real `mm` command line: Typer's CliRunner in-process, and one real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import TINY, dataset_rows, make_dataset, read_csv, write_csv
from typer.testing import CliRunner

from mmcli.cli import app

SETS = [arg for s in TINY for arg in ("--set", s)]


def mm(*args: str):
    """Run `mm ARGS` in-process; the result has exit_code, stdout, stderr and output (both)."""
    return CliRunner().invoke(app, [str(a) for a in args])


def assert_clean_failure(result, code: int, *needles: str) -> None:
    """A user error: the expected exit code, a one-line `error:` message, and no Python traceback."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    for needle in needles:
        assert needle in result.output, result.output


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny model trained on a 45-row dataset, shared by the read-only tests below. -> (csv, run folder)."""
    root = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MM_CACHE_DIR", str(root / "cache"))
        mp.setenv("MM_QUIET", "1")
        mp.setenv("HF_HUB_OFFLINE", "1")
        csv = make_dataset(root / "data")
        result = mm("train", csv, "-o", root / "run", *SETS)
        assert result.exit_code == 0, result.output
    return csv, root / "run"


# --- without torch ---------------------------------------------------------------------------------------------

def test_help_and_config_errors_do_not_import_torch():
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom mmcli.cli import app\n"
            "assert 'torch' not in sys.modules, 'import'\n"
            "r = CliRunner().invoke(app, ['--help'])\nassert r.exit_code == 0 and 'train' in r.output, r.output\n"
            "r = CliRunner().invoke(app, ['train', '--help'])\nassert r.exit_code == 0, r.output\n"
            "assert 'torch' not in sys.modules, 'help'\n"
            "r = CliRunner().invoke(app, ['train', 'x.csv', '--set', 'train.bogus=1'])\nassert r.exit_code == 2\n"
            "assert 'torch' not in sys.modules, 'config error'\nprint('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_config_command():
    result = mm("config", "--set", "train.lr=3e-4", "--set", "data.label=kind")
    assert result.exit_code == 0
    import yaml

    cfg = yaml.safe_load(result.stdout)
    assert cfg["train"]["lr"] == pytest.approx(3e-4) and cfg["data"]["label"] == "kind"
    keys = mm("config", "--keys")
    assert keys.exit_code == 0 and "train.lr" in keys.stdout and "data.max_image_pixels" in keys.stdout


@pytest.mark.parametrize(("args", "needles"), [
    (["config", "--set", "train.bogus=1"], ["train.bogus", "epochs"]),
    (["config", "--set", "data.tokenizer=spacy"], ["wordpiece", "bpe"]),
    (["config", "--set", "train.epochs=many"], ["train.epochs", "expected int"]),
    (["config", "--set", "no-equals-sign"], ["key=value"]),
    (["config", "--config", "missing.yaml"], ["config file not found"]),
])
def test_config_errors_exit_2(args, needles):
    assert_clean_failure(mm(*args), 2, "error:", *needles)


def test_typer_usage_errors_exit_2():
    assert mm("train", "--no-such-option").exit_code == 2
    assert mm("eval").exit_code == 2


# --- training and the run folder -------------------------------------------------------------------------------

@pytest.mark.slow
def test_train_writes_the_run_folder(trained):
    _, run = trained
    for name in ("config.yaml", "labels.json", "tokenizer/tokenizer.json", "model.safetensors", "history.csv",
                 "metrics.json", "report.md", "bad_rows.csv", "last/state.pt"):
        assert (run / name).exists(), name
    assert json.loads((run / "labels.json").read_text()) == ["blue", "green", "red"]
    history = read_csv(run / "history.csv")
    assert [int(h["epoch"]) for h in history] == [1, 2]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["val"]["n"] > 0 and 0.0 <= metrics["val"]["accuracy"] <= 1.0


@pytest.mark.slow
def test_same_seed_same_metrics(tmp_path, dataset):
    # separate caches, so each run trains its own tokenizer and decodes its own images from scratch
    a = mm("train", dataset, "-o", tmp_path / "a", "--cache-dir", tmp_path / "ca", *SETS)
    b = mm("train", dataset, "-o", tmp_path / "b", "--cache-dir", tmp_path / "cb", *SETS)
    assert a.exit_code == 0 and b.exit_code == 0, a.output + b.output
    assert (tmp_path / "a" / "metrics.json").read_text() == (tmp_path / "b" / "metrics.json").read_text()
    drop_time = [{k: v for k, v in h.items() if k not in ("seconds", "samples_per_s")}
                 for h in read_csv(tmp_path / "a" / "history.csv")]
    assert drop_time == [{k: v for k, v in h.items() if k not in ("seconds", "samples_per_s")}
                         for h in read_csv(tmp_path / "b" / "history.csv")]


@pytest.mark.slow
def test_train_into_an_existing_run_is_a_usage_error(trained, tmp_path):
    csv, run = trained
    assert_clean_failure(mm("train", csv, "-o", run, *SETS), 2, "already holds a run")


def test_train_missing_csv_exits_1(tmp_path):
    assert_clean_failure(mm("train", tmp_path / "nope.csv", *SETS), 1, "manifest not found")


def test_train_without_label_column_exits_2(tmp_path):
    csv = write_csv(tmp_path / "m.csv", ["image", "text"], [r[:2] for r in dataset_rows(tmp_path, 6)])
    assert_clean_failure(mm("train", csv, *SETS), 2, "no label column 'label'", "--label")


def test_train_one_class_exits_1(tmp_path):
    rows = [[r[0], r[1], "same"] for r in dataset_rows(tmp_path, 6)]
    csv = write_csv(tmp_path / "m.csv", ["image", "text", "label"], rows)
    assert_clean_failure(mm("train", csv, "-o", tmp_path / "run", *SETS), 1, "at least 2 classes")


def test_train_too_many_bad_rows_exits_1(tmp_path):
    rows = dataset_rows(tmp_path, 20)
    for r in rows[:5]:
        r[0] = "images/gone.png"
    csv = write_csv(tmp_path / "m.csv", ["image", "text", "label"], rows)
    assert_clean_failure(mm("train", csv, "-o", tmp_path / "run", *SETS), 1, "5 of 20 rows are bad",
                         "data.max_bad_fraction")
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_train_with_label_option(tmp_path):
    rows = dataset_rows(tmp_path, 12)
    csv = write_csv(tmp_path / "m.csv", ["image", "text", "kind"], rows)
    result = mm("train", csv, "--label", "kind", "-o", tmp_path / "run", *SETS, "--set", "train.epochs=1")
    assert result.exit_code == 0, result.output
    import yaml

    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["data"]["label"] == "kind"


# --- preprocess ------------------------------------------------------------------------------------------------

def test_preprocess_json(dataset, tmp_path):
    result = mm("preprocess", dataset, "-o", tmp_path / "c", "--json", "--set", "data.image_size=16")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["rows"] == 45 and summary["bad_rows"] == 0 and not summary["reused"]
    assert summary["labels"] == ["blue", "green", "red"]
    again = json.loads(mm("preprocess", dataset, "-o", tmp_path / "c", "--json", "--set",
                          "data.image_size=16").stdout)
    assert again["reused"]


def test_preprocess_bad_csv_exits_1(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes(b"image,text,label\na.png,caf\xe9,x\n")
    assert_clean_failure(mm("preprocess", path), 1, "line 2", "UTF-8")


# --- eval ------------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_eval_json(trained, tmp_path):
    csv, run = trained
    result = mm("eval", run, csv, "--json", "-o", tmp_path / "ev")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    for key in ("accuracy", "macro_f1", "loss", "per_class", "confusion_matrix"):
        assert key in metrics
    assert metrics["n"] == 45
    assert set(metrics["per_class"]) == {"blue", "green", "red"}
    assert sum(map(sum, metrics["confusion_matrix"])) == 45
    assert (tmp_path / "ev" / "metrics.json").exists() and (tmp_path / "ev" / "report.md").exists()


@pytest.mark.slow
def test_eval_table(trained, tmp_path):
    csv, run = trained
    result = mm("eval", run, csv, "-o", tmp_path / "ev")
    assert result.exit_code == 0 and "accuracy" in result.output


@pytest.mark.slow
def test_eval_unseen_label_is_reported(trained, tmp_path):
    _, run = trained
    rows = dataset_rows(tmp_path, 9)
    rows[0][2] = rows[1][2] = "purple"
    new = write_csv(tmp_path / "new.csv", ["image", "text", "label"], rows)
    result = mm("eval", run, new, "--json", "-o", tmp_path / "ev")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["unseen_label_rows"] == 2 and metrics["unseen_labels"] == ["purple"] and metrics["n"] == 7
    assert "never saw" in result.stderr


@pytest.mark.slow
def test_eval_errors(trained, tmp_path):
    csv, run = trained
    assert_clean_failure(mm("eval", run, csv, "--split", "holdout", "-o", tmp_path / "e"), 2, "--split")
    assert_clean_failure(mm("eval", tmp_path / "no-run", csv), 2, "not found")
    assert_clean_failure(mm("eval", run, tmp_path / "none.csv"), 1, "manifest not found")


# --- predict ---------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_predict_single_json(trained):
    csv, run = trained
    image = csv.parent / "images" / "000.png"
    result = mm("predict", run, image, "apple fire rose", "--json", "--top-k", "2")
    assert result.exit_code == 0, result.output
    preds = json.loads(result.stdout)["predictions"]
    assert len(preds) == 2 and {p["label"] for p in preds} <= {"blue", "green", "red"}
    assert preds[0]["probability"] >= preds[1]["probability"]
    everything = json.loads(mm("predict", run, image, "x", "--json").stdout)["predictions"]
    assert len(everything) == 3 and sum(p["probability"] for p in everything) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.slow
def test_predict_text_only_and_options(trained):
    _, run = trained
    result = mm("predict", run, "--text", "sea sky whale", "--json")
    assert result.exit_code == 0, result.output
    result = mm("predict", run, "--input", "text=sea sky", "--json")
    assert result.exit_code == 0, result.output


@pytest.mark.slow
def test_predict_single_errors(trained, tmp_path):
    _, run = trained
    (tmp_path / "t.jpg").write_text("not an image")
    assert_clean_failure(mm("predict", run, tmp_path / "t.jpg", "words"), 1, "cannot decode image")
    assert_clean_failure(mm("predict", run, "--input", "nope=1"), 2, "unknown input column")
    assert_clean_failure(mm("predict", run), 2, "nothing to predict")
    # a mistyped batch CSV is an error, not a text to classify
    assert_clean_failure(mm("predict", run, tmp_path / "typo.csv"), 1, "batch manifest not found")


@pytest.mark.slow
def test_predict_batch_csv_keeps_order_and_bad_rows(trained, tmp_path):
    _, run = trained
    rows = [r[:2] for r in dataset_rows(tmp_path, 30)]
    rows[7][0] = "images/missing.png"  # spreadsheet row 9
    batch = write_csv(tmp_path / "batch.csv", ["image", "text"], rows)
    out = tmp_path / "preds.csv"
    result = mm("predict", run, batch, "-o", out, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["predictions"] == str(out)
    preds = read_csv(out)
    assert [int(p["row"]) for p in preds] == list(range(2, 32))  # one row per input, in input order
    assert preds[7]["prediction"] == "" and "file not found" in preds[7]["error"]
    for p in preds[:7] + preds[8:]:
        assert p["prediction"] in {"blue", "green", "red"} and p["error"] == ""
        assert sum(float(p[f"p_{c}"]) for c in ("blue", "green", "red")) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.slow
def test_predict_batch_default_output_name(trained, tmp_path):
    _, run = trained
    batch = write_csv(tmp_path / "b.csv", ["image", "text"], [r[:2] for r in dataset_rows(tmp_path, 5)])
    result = mm("predict", run, batch)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "b.predictions.csv").exists()


# --- a real process --------------------------------------------------------------------------------------------

def _mm_command() -> list[str]:
    """The installed `mm` console script beside this interpreter, else `python -m mmcli`."""
    script = Path(sys.executable).with_name("mm")
    return [str(script)] if script.exists() else [sys.executable, "-m", "mmcli"]


def _run(cwd: Path, *args, code: int = 0, module: bool = False) -> subprocess.CompletedProcess:
    env = {**os.environ, "MM_QUIET": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "mmcli"] if module else _mm_command()
    out = subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd, timeout=180,
                         check=False)
    assert out.returncode == code, out.stderr
    assert "Traceback" not in out.stderr
    return out


@pytest.mark.slow
def test_real_process_train_then_eval_and_predict(tmp_path, dataset):
    # one real process (it pays the ~5 s torch import); eval and predict then read its run folder in-process
    trained = _run(tmp_path, "train", dataset, *SETS)
    run_dir = tmp_path / trained.stdout.strip().splitlines()[-1]
    assert run_dir.is_dir() and (tmp_path / "runs" / "latest").resolve() == run_dir.resolve()
    result = mm("eval", run_dir, dataset, "--json", "-o", tmp_path / "ev")
    assert result.exit_code == 0 and json.loads(result.stdout)["n"] == 45
    os.chdir(tmp_path)  # predict's default run is runs/latest under the working directory
    top = mm("predict", dataset.parent / "images" / "001.png", "leaf", "--json")
    assert top.exit_code == 0 and len(json.loads(top.stdout)["predictions"]) == 3


def test_real_process_usage_error_exits_2_without_traceback(tmp_path, dataset):
    failed = _run(tmp_path, "train", dataset, "--set", "train.lr=fast", code=2)
    assert "error:" in failed.stderr and "train.lr" in failed.stderr
    assert failed.stdout == ""
