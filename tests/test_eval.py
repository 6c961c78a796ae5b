"""End to end through the real CLI: `mm eval` (report files, --json, --ablate, --fail-under) and `mm compare`.

One tiny model is trained once for the module on generated data where the image colour gives the class and the
text is random words, so the ablation must find the text worth about nothing.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from mmcli.cli import app
from mmcli.config import Config

COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (40, 60, 220)}
NOISE_WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "omega"]
# threads=1: on a busy 2-core machine torch's default thread pool oversubscribes and runs ~100x slower
SETS = ["model.embed_dim=16", "model.hidden_dim=16", "data.image_size=16", "train.epochs=5", "train.threads=1",
        "train.modality_dropout=0.3", "train.batch_size=16", "data.allow_missing=true"]

runner = CliRunner()


def colour_csv(root: Path, n: int, seed: int, missing_text: int = 0) -> Path:
    """`root/data.csv` (image,text,label): the image colour encodes the class, the text is 3 random words (the
    first `missing_text` rows have none)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = list(COLOURS)[i % 3]
        pixels = np.clip(np.array(COLOURS[label]) + rng.integers(-25, 26, (16, 16, 3)), 0, 255).astype(np.uint8)
        path = root / "images" / f"{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels, "RGB").save(path)
        text = "" if i < missing_text else " ".join(rng.choice(NOISE_WORDS, 3))
        rows.append([path.relative_to(root).as_posix(), text, label])
    with open(root / "data.csv", "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([["image", "text", "label"], *rows])
    return root / "data.csv"


def mm(*args: object):
    """Invoke `mm` in-process with one torch thread (restored after: training sets it process-wide)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return runner.invoke(app, [str(a) for a in args])
    finally:
        torch.set_num_threads(threads)


def _train(out: Path, data: Path, *extra: str) -> Path:
    result = mm("train", data, "-o", out, *[a for s in [*SETS, *extra] for a in ("--set", s)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """A trained run, a second run with other settings, and a fresh labelled CSV (6 rows without text)."""
    root = tmp_path_factory.mktemp("evaldata")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in (("MM_CACHE_DIR", str(root / "cache")), ("MM_QUIET", "1"), ("HF_HUB_OFFLINE", "1")):
            mp.setenv(key, value)
        run = _train(root / "run", colour_csv(root / "train", 90, seed=1))
        other = _train(root / "other", root / "train" / "data.csv", "train.epochs=1", "model.fusion=sum")
    return {"run": run, "other": other, "test": colour_csv(root / "test", 45, seed=2, missing_text=6)}


@pytest.fixture(scope="module")
def ablated(trained, tmp_path_factory) -> tuple[dict, Path]:
    """`mm eval --ablate --json -o DIR` with gates that pass: (parsed JSON, DIR)."""
    out = tmp_path_factory.mktemp("evalout")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MM_CACHE_DIR", str(out / "cache"))
        mp.setenv("MM_QUIET", "1")
        result = mm("eval", trained["run"], trained["test"], "-o", out, "--ablate", "--json",
                    "--fail-under", "accuracy=0.5", "--fail-under", "macro_f1=0.5")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), out


def test_eval_writes_report_and_plots(ablated):
    metrics, out = ablated
    for name in ("metrics.json", "report.md", "confusion_matrix.png", "reliability.png", "training_curves.png"):
        assert (out / name).stat().st_size > 0, name
    assert json.loads((out / "metrics.json").read_text()) == metrics
    report = (out / "report.md").read_text()
    for heading in ("## Summary", "## Per class", "## Calibration", "## Training", "## Modality ablation",
                    "### Quality gates", "![confusion matrix](confusion_matrix.png)"):
        assert heading in report
    assert "| red |" in report and "| 15 |" in report  # per-class rows carry their support


def test_eval_json_keys_are_documented(ablated):
    metrics, _ = ablated
    doc = (Path(__file__).parents[1] / "docs" / "eval-json.md").read_text()
    keys = set(metrics) | set(metrics["ablation"]) | set(metrics["gates"][0]) | set(metrics["reliability"])
    missing = [k for k in keys if f"`{k}`" not in doc]
    assert not missing, f"docs/eval-json.md does not describe {missing}"
    assert [g["passed"] for g in metrics["gates"]] == [True, True]


def test_ablation_finds_the_noise_modality_worthless(ablated):
    ab = ablated[0]["ablation"]
    assert ab["modalities"] == ["image", "text"]
    assert ab["full"]["accuracy"] >= 0.9
    assert abs(ab["contribution"]["text"]) <= 0.1  # random words: hiding them changes next to nothing
    assert ab["contribution"]["image"] >= 0.4
    assert ab["single"]["text"]["accuracy"] <= 0.6  # about chance (1/3) without the colour
    assert ab["best_single"] == "image" and abs(ab["fusion_gain"]) <= 0.1
    assert ab["by_presence"]["image"]["n"] == 6 and ab["by_presence"]["image+text"]["n"] == 39


def test_missed_gates_exit_1_and_name_each_metric(trained, tmp_path):
    result = mm("eval", trained["run"], trained["test"], "-o", tmp_path, "--fail-under", "accuracy=1.01",
                "--fail-under", "macro_f1=1.5", "--fail-under", "weighted_f1=0.1")
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert re.search(r"accuracy = [01]\.\d{4} < 1\.01", text) and re.search(r"macro_f1 = [01]\.\d{4} < 1\.5", text)
    assert "weighted_f1 =" not in text


def test_unknown_gate_metric_is_a_usage_error(trained):
    result = mm("eval", trained["run"], trained["test"], "--fail-under", "precision=0.9")
    assert result.exit_code == 2
    assert "unknown metric 'precision'" in result.output and "macro_f1" in result.output


def test_eval_into_the_run_keeps_training_metrics(trained):
    assert mm("eval", trained["other"], trained["test"]).exit_code == 0
    saved = json.loads((trained["other"] / "metrics.json").read_text())
    assert "val" in saved and saved["eval"]["n"] == 45 and "best_epoch" in saved
    assert (trained["other"] / "confusion_matrix.png").exists()


def test_compare_side_by_side(trained):
    result = mm("compare", trained["run"], trained["other"], "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [r["name"] for r in data["runs"]] == ["run", "other"]
    assert data["runs"][0]["split"] == "val" and data["runs"][0]["metrics"]["accuracy"] is not None
    default = Config().model.fusion
    assert data["config_diff"] == {"model.fusion": [default, "sum"], "train.epochs": [5, 1]}
    table = mm("compare", trained["run"], trained["other"])
    assert table.exit_code == 0
    assert "model.fusion" in table.stdout and "macro_f1" in table.stdout and default in table.stdout


def test_compare_rejects_a_non_run(tmp_path):
    result = mm("compare", tmp_path)
    assert result.exit_code == 2 and "not a run folder" in result.output


def test_help_imports_no_plotting_or_sklearn():
    import subprocess
    import sys

    code = ("import sys; from typer.testing import CliRunner; from mmcli.cli import app; "
            "CliRunner().invoke(app, ['eval', '--help']); "
            "print([m for m in ('matplotlib', 'sklearn') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
