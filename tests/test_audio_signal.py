"""Audio decoding and log-mel features (numpy only): formats, resampling, lengths, every AudioProblem, determinism."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mmcli.modalities import audio_signal
from mmcli.modalities.audio_signal import (
    AudioProblem,
    frames_for,
    load_audio,
    log_mel,
    mel_filterbank,
    mel_frequencies,
)


def tone(freq: float, rate: int, seconds: float, channels: int = 1) -> np.ndarray:
    """A sine `[N]` (or `[N, channels]`, channel c scaled by 1/(c+1)) at amplitude 0.5."""
    t = np.arange(int(rate * seconds)) / rate
    x = 0.5 * np.sin(2 * np.pi * freq * t)
    return x if channels == 1 else np.stack([x / (c + 1) for c in range(channels)], axis=1)


def peak_hz(wave: np.ndarray, rate: int = 16000) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.fft.rfftfreq(len(wave), 1 / rate)[spectrum.argmax()])


@pytest.mark.parametrize(("rate", "fmt", "channels"), [(8000, "WAV", 1), (22050, "FLAC", 1), (44100, "OGG", 2),
                                                      (16000, "WAV", 2), (44100, "MP3", 1)])
def test_formats_resample_to_16k_mono(tmp_path, rate, fmt, channels):
    path = tmp_path / f"a.{fmt.lower()}"
    sf.write(path, tone(1000, rate, 1.0, channels), rate, format=fmt)
    wave = load_audio(path, seconds=1.0)
    assert wave.shape == (16000,) and wave.dtype == np.float32
    assert abs(peak_hz(wave) - 1000) <= 2  # 1 Hz bins: a wrong resampling ratio would move the tone
    # stereo is averaged: (1 + 1/2) / 2 of the left channel's amplitude 0.5
    expected = 0.5 * (1 + 0.5) / 2 if channels == 2 else 0.5
    assert abs(np.abs(wave[2000:14000]).max() - expected) < 0.05


@pytest.mark.parametrize("rate", [8000, 22050, 44100])
def test_tone_lands_in_its_mel_band(tmp_path, rate):
    for freq in (1000, 3000):
        sf.write(tmp_path / "t.wav", tone(freq, rate, 1.0), rate)
        spec = log_mel(load_audio(tmp_path / "t.wav"))
        band = int(spec[:, 10:-10].mean(axis=1).argmax())
        assert abs(band - int(np.abs(mel_frequencies() - freq).argmin())) <= 1


def test_bytes_and_file_objects(tmp_path):
    sf.write(tmp_path / "a.flac", tone(440, 22050, 0.5), 22050)
    data = (tmp_path / "a.flac").read_bytes()
    a = load_audio(tmp_path / "a.flac")
    np.testing.assert_array_equal(a, load_audio(data))
    with open(tmp_path / "a.flac", "rb") as f:
        np.testing.assert_array_equal(a, load_audio(f))


def test_centre_crop_and_pad(tmp_path):
    ramp = np.linspace(-0.9, 0.9, 3200)  # 0.2 s at 16 kHz, distinct values to locate the crop
    sf.write(tmp_path / "r.wav", ramp, 16000, subtype="FLOAT")
    padded = load_audio(tmp_path / "r.wav", seconds=1.0)
    assert padded.shape == (16000,)
    assert not padded[:6400].any() and not padded[9600:].any()  # (16000 - 3200) / 2 zeros on each side
    np.testing.assert_allclose(padded[6400:9600], ramp, atol=1e-6)
    cropped = load_audio(tmp_path / "r.wav", seconds=0.1)
    np.testing.assert_allclose(cropped, ramp[800:2400], atol=1e-6)
    assert load_audio(tmp_path / "r.wav", seconds=None).shape == (3200,)
    assert load_audio(tmp_path / "r.wav", seconds=2.5).shape == (40000,)


def test_log_mel_shape_and_frames():
    for seconds in (1.0, 0.5, 2.37):
        wave = np.zeros(round(16000 * seconds), np.float32)
        spec = log_mel(wave)
        assert spec.shape == (80, frames_for(seconds)) and spec.dtype == np.float32
    assert frames_for(1.0) == 101 and frames_for(1.0, hop_ms=20) == 51
    assert log_mel(np.zeros(10, np.float32), n_mels=40).shape == (40, 1)  # shorter than one window still works
    assert np.allclose(log_mel(np.zeros(1600, np.float32)), np.log(1e-6))  # silence -> the log floor
    with pytest.raises(ValueError, match="mono"):
        log_mel(np.zeros((2, 100), np.float32))


def test_filterbank_is_slaney_normalised():
    fb = mel_filterbank(80, 512, 16000)
    assert fb.shape == (80, 257) and (fb.sum(axis=1) > 0).all()  # no empty band at 512-point resolution
    assert not fb.flags.writeable
    # area normalisation (peak 2 / bandwidth): on a fine frequency grid every triangle integrates to 1
    fine = mel_filterbank(80, 16384, 16000)
    np.testing.assert_allclose(fine.sum(axis=1) * (8000 / 8192), 1.0, rtol=0.01)
    # Slaney's scale is linear below 1 kHz: equal spacing of the low centres (37.2 Hz apart for 80 bands)
    low = mel_frequencies(80)[:20]
    np.testing.assert_allclose(np.diff(low), low[0], rtol=1e-9)


def test_deterministic(tmp_path):
    rng = np.random.default_rng(0)
    sf.write(tmp_path / "n.ogg", rng.uniform(-0.5, 0.5, (33075, 2)), 44100)
    a, b = load_audio(tmp_path / "n.ogg"), load_audio(tmp_path / "n.ogg")
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(log_mel(a), log_mel(b))


def test_no_torch_import():
    # the torch-free runtime reuses this module: importing and using it must not load torch
    code = ("import sys, numpy as np; from mmcli.modalities.audio_signal import load_audio, log_mel; "
            "log_mel(np.zeros(160, np.float32)); print('torch' in sys.modules)")
    root = str(Path(audio_signal.__file__).resolve().parents[2])  # this checkout, not an installed copy
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "False"


def wav_header(rate: int, channels: int, frames: int) -> bytes:
    """A 16-bit PCM WAV with arbitrary header fields (silence), for rates and channel counts writers refuse."""
    data = bytes(2 * channels * frames)
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * channels * 2, channels * 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def empty_file(path):
    path.write_bytes(b"")
    return path


@pytest.mark.parametrize(("make", "reason"), [
    (lambda p: p / "missing.wav", "file not found"),
    (lambda p: empty_file(p / "e.wav"), "empty file"),
    (lambda p: p, "folder"),
    (lambda p: b"", "empty upload"),
    (lambda p: b"\x00garbage bytes, not audio" * 40, "not decodable audio: not a known audio format"),
    (lambda p: b"this is not audio", "not decodable audio: a text file, not audio \\(it begins 'this is not audi'"),
    (lambda p: b"\x89PNG\r\n\x1a\n" + bytes(200), "PNG image"),
    (lambda p: bytes(4) + b"ftypM4A " + bytes(200), "MP4/M4A"),
    (lambda p: wav_header(1, 1, 100), "sample rate 1 Hz"),
    (lambda p: wav_header(500000, 1, 100), "sample rate 500000 Hz"),
    (lambda p: wav_header(16000, 12, 100), "channel count 12"),
    (lambda p: wav_header(16000, 1, 0), "no audio frames"),
    (lambda p: wav_header(8000, 1, 8000 * 3), r"3\.0 s long, more than max_seconds=2"),
])
def test_problems(tmp_path, make, reason):
    with pytest.raises(AudioProblem, match=reason):
        load_audio(make(tmp_path), max_seconds=2)


def test_nan_samples(tmp_path):
    x = tone(440, 16000, 0.5)
    x[100:103] = [np.nan, np.inf, -np.inf]
    sf.write(tmp_path / "nan.wav", x, 16000, subtype="FLOAT")
    with pytest.raises(AudioProblem, match="3 of 8000 samples are NaN or infinite"):
        load_audio(tmp_path / "nan.wav")


def test_too_long_is_refused_before_decoding(monkeypatch):
    clip = wav_header(16000, 1, 16000 * 3)
    assert load_audio(clip, max_seconds=None).shape == (16000,)

    def no_read(*args, **kwargs):
        raise AssertionError("decoded a clip that the header already showed to be too long")

    monkeypatch.setattr(sf.SoundFile, "read", no_read)
    with pytest.raises(AudioProblem, match=r"3\.0 s long"):
        load_audio(clip, max_seconds=2.5)
