"""Audio columns end to end through the CLI, on WAV files made with numpy + soundfile (tones in noise): inference,
bad clips as bad rows with reasons, training, eval --ablate with a text column, predict --input, and the bundle."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import TINY, write_csv
from typer.testing import CliRunner

from mmcli.cli import app

sf = pytest.importorskip("soundfile")

SETS = [a for s in TINY + ["train.epochs=15", "data.audio_seconds=0.4", "data.max_bad_fraction=0.5"]
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


def audio_rows(root, n: int = 48) -> list[list[str]]:
    rows = []
    for i in range(n):
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
    root, csv, run = audio_run
    inputs = json.loads((run / "inputs.json").read_text())
    assert [(i["name"], i["kind"]) for i in inputs] == [("clip", "audio"), ("note", "text")]
    metrics = json.loads(mm("eval", run, csv, "--json", "--ablate").stdout)
    assert metrics["accuracy"] >= 0.8, metrics["accuracy"]  # two tones 3 octaves apart; the text says nothing about the label
    single = metrics["ablation"]["single"]
    assert single["clip"]["accuracy"] > single["note"]["accuracy"], single


def test_predict_takes_an_audio_input(audio_run, tmp_path):
    _, _, run = audio_run
    clip = write_tone(tmp_path / "probe.wav", 2400.0, seed=999)
    result = mm("predict", run, "--input", f"clip={clip}", "--json")
    assert result.exit_code == 0, result.output
    top = json.loads(result.stdout)["predictions"]
    assert {p["label"] for p in top} == {"low", "high"}
    missing = mm("predict", run, "--input", f"clip={tmp_path / 'nope.wav'}")
    assert missing.exit_code != 0 and "nope.wav" in missing.output


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
    summary = json.loads(result.stdout)
    assert summary["bad_rows"] == 4, summary
    report = open(summary["bad_rows_csv"]).read()
    for row in (26, 27, 28, 29):  # spreadsheet rows: the header is row 1
        assert f"\n{row},clip," in report, report


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
