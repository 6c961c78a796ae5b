"""Audio clips -> fixed-length 16 kHz waveforms -> log-mel spectrograms, in numpy only (no torch).

Training, `mm predict` and the torch-free runtime all call these functions, so their features agree by construction.

Decoding uses `soundfile`, the binding to libsndfile: a real decoder whose wheels bundle libsndfile 1.2.2, which reads
WAV, FLAC, OGG/Vorbis/Opus and MP3 (plus AIFF, AU, CAF, ...) without ffmpeg and without torch. torchaudio is no option:
the only builds on the mirror are for another torch, and installing one would replace it. Resampling is
`scipy.signal.resample_poly` with the exact rational factor (up, down = target / gcd, source / gcd).

Feature recipe (`log_mel`, defaults): 16 kHz mono; 25 ms Hann window (400 samples, periodic) centred in a 512-point
frame; 10 ms hop (160 samples); centre padding with n_fft // 2 zeros at each end, so a clip of N samples gives
T = 1 + N // hop frames (101 for one second); power spectrum |rfft|^2 [257 bins]; a Slaney-style mel filterbank (the
Auditory Toolbox mel scale: linear below 1 kHz, logarithmic above; triangles area-normalised, 0 Hz to Nyquist; the
same as librosa's default `htk=False, norm="slaney"`), 80 bands; natural log of (mel energy + 1e-6). Output float32
`[n_mels, T]`. Everything is computed in float64 and cast at the end, so repeated calls give identical bits.
"""

from __future__ import annotations

import io
import os
from functools import lru_cache
from math import gcd
from typing import BinaryIO

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

SAMPLE_RATE = 16000
DEFAULT_SECONDS = 1.0
DEFAULT_MAX_SECONDS = 60.0
MIN_RATE, MAX_RATE = 4000, 384000  # outside this a "sample rate" is a broken header, not a recording
MAX_CHANNELS = 8  # 7.1 surround; more is a multitrack or a corrupt header
LOG_FLOOR = 1e-6

AudioSource = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO

__all__ = ["AudioProblem", "frames_for", "load_audio", "log_mel", "mel_filterbank", "mel_frequencies"]


class AudioProblem(Exception):
    """What is wrong with one clip, worded for a bad-rows report (e.g. "empty file (0 bytes)")."""


# Leading bytes of formats people upload as "audio" that libsndfile cannot read, to say what the file really is.
_SIGNATURES = [
    (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"), (b"%PDF", "a PDF"),
    (b"PK\x03\x04", "a ZIP archive"), (b"\x1a\x45\xdf\xa3", "a WebM/Matroska file (not readable by libsndfile)"),
    (b"<", "text (HTML/XML?)"), (b"{", "text (JSON?)"),
]


def _sniff(head: bytes) -> str:
    """A guess at what a non-audio byte string is, from its first bytes."""
    for magic, what in _SIGNATURES:
        if head.startswith(magic):
            return what
    if head[4:8] == b"ftyp":
        return "an MP4/M4A container (AAC is not readable by libsndfile: convert to WAV, FLAC, OGG or MP3)"
    if head[:4] == b"RIFF" and head[8:12] != b"WAVE":
        return f"a RIFF file of type {head[8:12]!r}, not WAVE"
    if head and all(32 <= c < 127 or c in b"\t\r\n" for c in head):
        return f"a text file, not audio (it begins {head.decode('ascii')!r})"
    return "not a known audio format"


def _open_source(source: AudioSource) -> BinaryIO:
    """A seekable binary stream over a path, bytes or file object; AudioProblem for a missing or empty input."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise AudioProblem("empty upload (0 bytes)")
        return io.BytesIO(bytes(source))
    if hasattr(source, "read"):
        return source  # type: ignore[return-value]
    path = os.fspath(source)
    if not os.path.exists(path):
        raise AudioProblem(f"file not found: {path}")
    if os.path.isdir(path):
        raise AudioProblem(f"is a folder, not an audio file: {path}")
    if os.path.getsize(path) == 0:
        raise AudioProblem("empty file (0 bytes)")
    return open(path, "rb")  # closed by load_audio


def _check_header(f: sf.SoundFile, max_seconds: float | None) -> int:
    """Refuse odd rates, channel counts, empty or over-long clips from the header alone -> frames to read."""
    if not MIN_RATE <= f.samplerate <= MAX_RATE:
        raise AudioProblem(f"unusable sample rate {f.samplerate} Hz (expected {MIN_RATE}..{MAX_RATE} Hz)")
    if not 1 <= f.channels <= MAX_CHANNELS:
        raise AudioProblem(f"unusable channel count {f.channels} (expected 1..{MAX_CHANNELS})")
    if f.frames == 0:
        raise AudioProblem(f"no audio frames (zero-length {f.format} file)")
    if max_seconds is None:
        return -1
    limit = int(max_seconds * f.samplerate)
    if f.frames > limit and f.frames < 2**62:  # some streams report an "unknown" huge count: checked after reading
        raise AudioProblem(f"clip is {f.frames / f.samplerate:.1f} s long, more than max_seconds={max_seconds:g}")
    return limit + 1  # one frame past the limit is enough to tell "too long" after decoding


def _decode(stream: BinaryIO, max_seconds: float | None) -> tuple[np.ndarray, int]:
    """Decode at most max_seconds (+1 frame) -> float32 `[N, channels]` and the source sample rate."""
    head = stream.read(16)
    stream.seek(0)
    try:
        f = sf.SoundFile(stream)
    except (sf.SoundFileError, RuntimeError, TypeError) as exc:
        raise AudioProblem(f"not decodable audio: {_sniff(head)} ({_reason(exc)})") from None
    with f:
        n = _check_header(f, max_seconds)
        try:
            data = f.read(frames=n, dtype="float32", always_2d=True)
        except (sf.SoundFileError, RuntimeError) as exc:
            raise AudioProblem(f"cannot decode this {f.format} ({f.subtype}) file: {_reason(exc)}") from None
        rate = f.samplerate
    if data.shape[0] == 0:
        raise AudioProblem("no audio frames could be decoded (truncated file?)")
    if max_seconds is not None and data.shape[0] > max_seconds * rate:
        raise AudioProblem(f"clip is longer than max_seconds={max_seconds:g}")
    return data, rate


def _reason(exc: Exception) -> str:
    """libsndfile's own words, without the "Error opening <object at 0x...>:" prefix."""
    text = str(exc)
    return text.rsplit(": ", 1)[-1].strip() or type(exc).__name__


def _resample(x: np.ndarray, rate: int, target: int) -> np.ndarray:
    """`[N]` at `rate` -> `[N * target / rate]` at `target`, polyphase with the exact rational factor."""
    if rate == target:
        return x
    g = gcd(rate, target)
    return resample_poly(x, target // g, rate // g)


def _fit_length(x: np.ndarray, n: int) -> np.ndarray:
    """Centre-crop or symmetrically zero-pad `[N]` to `[n]` (centred, so a short word stays mid-clip)."""
    if len(x) >= n:
        start = (len(x) - n) // 2
        return x[start : start + n]
    left = (n - len(x)) // 2
    return np.pad(x, (left, n - len(x) - left))


def load_audio(path_or_bytes: AudioSource, sample_rate: int = SAMPLE_RATE, seconds: float | None = DEFAULT_SECONDS,
               max_seconds: float | None = DEFAULT_MAX_SECONDS) -> np.ndarray:
    """A clip (path, bytes or binary file object) -> float32 mono `[round(sample_rate * seconds)]` in -1..1.

    Downmixes by averaging channels, resamples to `sample_rate`, centre-crops or zero-pads to `seconds` (None keeps
    the clip's own length). Raises AudioProblem naming what is wrong: missing or empty file, data that is not
    decodable audio, an odd sample rate or channel count, no frames, longer than `max_seconds` (None: no limit;
    refused from the header before decoding where the format states its length), NaN or infinite samples.
    """
    stream = _open_source(path_or_bytes)
    try:
        data, rate = _decode(stream, max_seconds)
    finally:
        if stream is not path_or_bytes:
            stream.close()
    bad = int(np.count_nonzero(~np.isfinite(data)))
    if bad:
        raise AudioProblem(f"{bad} of {data.size} samples are NaN or infinite")
    mono = data.astype(np.float64).mean(axis=1)
    wave = _resample(mono, rate, sample_rate)
    if seconds is not None:
        wave = _fit_length(wave, round(sample_rate * seconds))
    return np.ascontiguousarray(wave, dtype=np.float32)


def frames_for(seconds: float, hop_ms: float = 10, sample_rate: int = SAMPLE_RATE) -> int:
    """T, the number of `log_mel` frames for a clip of `seconds` (as `load_audio` crops it): 1 + N // hop."""
    return 1 + round(sample_rate * seconds) // _ms(hop_ms, sample_rate)


def _ms(ms: float, sample_rate: int) -> int:
    return round(sample_rate * ms / 1000)


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: 3 mels per 200 Hz up to 1 kHz, then logarithmic (27 mels per factor 6.4)."""
    f = np.asarray(f, dtype=np.float64)
    log_step = np.log(6.4) / 27.0
    return np.where(f < 1000.0, f * 3.0 / 200.0, 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / log_step)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    log_step = np.log(6.4) / 27.0
    return np.where(m < 15.0, m * 200.0 / 3.0, 1000.0 * np.exp(log_step * (m - 15.0)))


def mel_frequencies(n_mels: int = 80, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Centre frequencies in Hz of the `n_mels` bands `[n_mels]` (0 Hz to Nyquist, equally spaced in mels)."""
    edges = _mel_to_hz(np.linspace(0.0, _hz_to_mel(sample_rate / 2.0), n_mels + 2))
    return edges[1:-1]


@lru_cache(maxsize=16)
def mel_filterbank(n_mels: int = 80, n_fft: int = 512, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Slaney-style triangular filters, area-normalised (2 / bandwidth) -> float64 `[n_mels, n_fft // 2 + 1]`.

    Cached and read-only: the same array is shared by every call.
    """
    edges = _mel_to_hz(np.linspace(0.0, _hz_to_mel(sample_rate / 2.0), n_mels + 2))  # [n_mels + 2]
    bins = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)  # [F]
    ramps = edges[:, None] - bins[None, :]  # [n_mels + 2, F]
    width = np.diff(edges)  # [n_mels + 1]
    rising = -ramps[:-2] / width[:-1, None]
    falling = ramps[2:] / width[1:, None]
    fb = np.maximum(0.0, np.minimum(rising, falling)) * (2.0 / (edges[2:] - edges[:-2]))[:, None]
    fb.setflags(write=False)
    return fb


@lru_cache(maxsize=16)
def _window(win: int, n_fft: int) -> np.ndarray:
    """Periodic Hann of `win` samples, zero-padded on both sides to `[n_fft]` (as torch.stft places it)."""
    hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(win) / win)
    left = (n_fft - win) // 2
    w = np.pad(hann, (left, n_fft - win - left))
    w.setflags(write=False)
    return w


def log_mel(wave: np.ndarray, sample_rate: int = SAMPLE_RATE, n_mels: int = 80, win_ms: float = 25,
            hop_ms: float = 10, n_fft: int = 512) -> np.ndarray:
    """Mono waveform `[N]` -> float32 log-mel spectrogram `[n_mels, 1 + N // hop]` (recipe in the module docstring)."""
    x = np.asarray(wave, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"log_mel expects a mono waveform [N], got shape {x.shape}")
    win, hop = _ms(win_ms, sample_rate), _ms(hop_ms, sample_rate)
    if not 0 < win <= n_fft or hop <= 0:
        raise ValueError(f"need 0 < window ({win}) <= n_fft ({n_fft}) and hop ({hop}) > 0")
    padded = np.pad(x, (n_fft // 2, n_fft // 2))  # zeros, not reflection: defined for any length, even N < n_fft
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]  # [T, n_fft], a view (no copy)
    power = np.abs(np.fft.rfft(frames * _window(win, n_fft), axis=1)) ** 2  # [T, n_fft // 2 + 1]
    mel = mel_filterbank(n_mels, n_fft, sample_rate) @ power.T  # [n_mels, T]
    return np.log(mel + LOG_FLOOR).astype(np.float32)
