"""Audio columns end to end through the CLI, on WAV files made with numpy + soundfile (tones in noise): inference,
bad clips as bad rows with reasons, training, eval on fresh clips and --ablate with a text column, predict --input
(an over-long clip refused), and the bundle. Every clip and the training are seeded, so the scores are fixed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import TINY, read_csv, write_csv
from typer.testing import CliRunner

from mmcli.cli import app

sf = pytest.importorskip("soundfile")

SETS = [a for s in TINY + ["train.epochs=15", "train.refit=false", "data.audio_seconds=0.4",
                           "data.max_audio_seconds=2", "data.max_bad_fraction=0.5"]
        for a in ("--set", s)]
TONES = {"low": 300.0, "high": 2400.0}


def mm(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def write_tone(path, hz: float, seed: int, seconds: float = 0.3, rate: int = 22050):
    """A sine at `hz` with random phase and amplitude plus white noise (SNR about 10 dB), 16-bit PCM."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    wave = rng.uniform(0.3, 0.8) * np.sin(2 * np.pi * hz * t + rng.uniform(0, 2 * np.pi))
    wave += rng.normal(0, 0.1, size=t.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(wave, -1, 1).astype(np.float32), rate, subtype="PCM_16")
    return path


def audio_rows(root, n: int = 48, first: int = 0) -> list[list[str]]:
    """`n` rows [clip, note, label], alternating low / high, clips `first`.. (each index its own noise and phase)."""
    rows = []
    for i in range(first, first + n):
        label = "low" if i % 2 == 0 else "high"
        clip = write_tone(root / "clips" / f"{i}.wav", TONES[label] * (1 + 0.05 * (i % 3)), seed=i)
        rows.append([clip.relative_to(root).as_posix(), f"recording number {i} of the day", label])
    return rows


@pytest.fixture(scope="module")
def audio_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("audio")
    csv = write_csv(root / "a.csv", ["clip", "note", "label"], audio_rows(root))
    run = root / "run"
    result = mm("train", csv, "-o", run, "--preset", "fast", *SETS)
    assert result.exit_code == 0, result.output
    return root, csv, run


def test_audio_is_inferred_trained_and_ablated(audio_run):
    root, _, run = audio_run
    inputs = json.loads((run / "inputs.json").read_text())
    assert [(i["name"], i["kind"]) for i in inputs] == [("clip", "audio"), ("note", "text")]
    saved = yaml.safe_load((run / "config.yaml").read_text())["data"]
    assert saved["audio_seconds"] == 0.4 and saved["inputs"] == {"clip": "audio", "note": "text"}, saved
    fresh = write_csv(root / "fresh.csv", ["clip", "note", "label"], audio_rows(root, n=32, first=1000))
    result = mm("eval", run, fresh, "--json", "--ablate")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["n"] == 32
    # clips never seen in training; two tones 3 octaves apart, chance is 0.5; the text says nothing about the label
    assert metrics["accuracy"] >= 0.8, metrics["accuracy"]
    single = metrics["ablation"]["single"]
    assert single["clip"]["accuracy"] >= 0.8 and single["clip"]["accuracy"] > single["note"]["accuracy"], single


def test_predict_takes_an_audio_input(audio_run, tmp_path):
    _, _, run = audio_run
    for label, hz in TONES.items():
        clip = write_tone(tmp_path / f"probe_{label}.wav", hz, seed=999)
        result = mm("predict", run, "--input", f"clip={clip}", "--input", "note=recording number 5", "--json")
        assert result.exit_code == 0, result.output
        top = json.loads(result.stdout)["predictions"]
        assert {p["label"] for p in top} == {"low", "high"}
        assert top[0]["label"] == label and top[0]["probability"] > 0.5, top
        assert sum(p["probability"] for p in top) == pytest.approx(1.0, abs=1e-4)
    missing = mm("predict", run, "--input", f"clip={tmp_path / 'nope.wav'}")
    assert missing.exit_code != 0 and "nope.wav" in missing.output


def test_predict_refuses_a_clip_longer_than_max_audio_seconds(audio_run, tmp_path):
    _, _, run = audio_run  # trained with data.max_audio_seconds=2
    long = write_tone(tmp_path / "long.wav", 300.0, seed=5, seconds=3.0)
    result = mm("predict", run, "--input", f"clip={long}")
    assert result.exit_code != 0
    assert "long.wav" in result.output and "max_seconds=2" in result.output, result.output
    ok = write_tone(tmp_path / "ok.wav", 300.0, seed=5, seconds=1.5)  # longer than audio_seconds: cropped, fine
    assert mm("predict", run, "--input", f"clip={ok}", "--json").exit_code == 0


def test_bad_clips_are_bad_rows_with_reasons(tmp_path):
    rows = audio_rows(tmp_path, n=24)
    (tmp_path / "clips" / "empty.wav").write_bytes(b"")
    (tmp_path / "clips" / "text.wav").write_text("this is not audio")
    write_tone(tmp_path / "clips" / "long.wav", 440.0, seed=1, seconds=3.0)
    rows += [["clips/empty.wav", "x", "low"], ["clips/text.wav", "y", "high"], ["clips/gone.wav", "z", "low"],
             ["clips/long.wav", "w", "high"]]
    csv = write_csv(tmp_path / "bad.csv", ["clip", "note", "label"], rows)
    result = mm("preprocess", csv, "--json", "--set", "data.max_bad_fraction=0.5", "--set",
                "data.max_audio_seconds=2", "--set", "data.audio_seconds=0.4")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["rows"] == 28 and summary["bad_rows"] == 4, summary
    assert [(i["name"], i["kind"]) for i in summary["inputs"]] == [("clip", "audio"), ("note", "text")]
    report = read_csv(Path(summary["bad_rows_csv"]))
    reasons = {int(r["row"]): (r["column"], r["reason"]) for r in report}
    assert sorted(reasons) == [26, 27, 28, 29], report  # spreadsheet rows: the header is row 1
    assert {col for col, _ in reasons.values()} == {"clip"}
    assert "empty file" in reasons[26][1]
    assert reasons[27][1].startswith("not decodable audio: a text file"), reasons[27]
    assert "not found" in reasons[28][1] and "gone.wav" in reasons[28][1], reasons[28]
    assert "max_seconds=2" in reasons[29][1], reasons[29]


def test_audio_bundle_matches_the_run(audio_run, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    root, _, run = audio_run
    bundle = tmp_path / "bundle"
    assert mm("export", run, "-o", bundle).exit_code == 0
    clip = root / "clips" / "3.wav"
    a = json.loads(mm("predict", run, "--input", f"clip={clip}", "--json").stdout)["predictions"]
    b = json.loads(mm("predict", bundle, "--input", f"clip={clip}", "--json").stdout)["predictions"]
    assert [p["label"] for p in a] == [p["label"] for p in b]
    assert max(abs(x["probability"] - y["probability"]) for x, y in zip(a, b)) <= 1e-4
