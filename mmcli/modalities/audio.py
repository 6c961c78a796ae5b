"""Audio columns: clip paths (.wav .flac .ogg .mp3), decoded once with soundfile (libsndfile), resampled to 16 kHz
mono, cropped or padded to `data.audio_seconds`, and cached as log-mel features float16 `[N, 80, T]` (25 ms
windows, 10 ms hop; mmcli/modalities/audio_signal.py). Training batches (`train.augment`) get white noise at a random
SNR (half of the clips, 5..40 dB) and SpecAugment-style time and frequency masks."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from mmcli.modalities.base import Modality, register
from mmcli.modalities.image import looks_like_paths

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
SAMPLE_RATE = 16000
N_MELS = 80
FORMAT_VERSION = 1  # bump when decoding or the features change, so cached features are rebuilt
NOISE_P, NOISE_SNR_DB = 0.5, (5.0, 40.0)  # training noise: the share of clips, the SNR range (dB)


class Audio(Modality):
    kind = "audio"
    path_cells = True
    augments = True
    empty_what = "audio path"

    def detect(self, values: list[str], column: str) -> bool:
        return looks_like_paths(values, AUDIO_EXTENSIONS)

    def fingerprint(self, man, inp, dc) -> str:
        col = inp["name"]
        h = hashlib.sha256(f"v{FORMAT_VERSION}|{dc.audio_seconds}|{dc.max_audio_seconds}|{col}|{man.root.resolve()}"
                           .encode())
        for row in man.rows:
            cell = row.get(col, "")
            h.update(cell.encode() + b"\0")
            if cell:
                try:
                    st = man.resolve(cell).stat()
                    h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
                except OSError:
                    h.update(b"missing")
        return h.hexdigest()[:16]

    def features(self, source, dc) -> np.ndarray:
        """A clip (path or bytes) -> float32 log-mel `[N_MELS, T]`; raises AudioProblem."""
        from mmcli.modalities.audio_signal import load_audio, log_mel

        wave = load_audio(source, SAMPLE_RATE, seconds=dc.audio_seconds, max_seconds=dc.max_audio_seconds)
        return log_mel(wave, SAMPLE_RATE, n_mels=N_MELS)

    def frames(self, dc) -> int:
        from mmcli.modalities.audio_signal import frames_for

        return frames_for(dc.audio_seconds)

    def build(self, man, inp, state, dc, folder: Path, reuse):
        """Decode every clip into a float16 memmap; a clip that fails leaves zeros and a problem."""
        from mmcli.modalities.audio_signal import AudioProblem
        from mmcli.progress import make_progress

        if reuse is not None:
            return reuse, {}
        col, n = inp["name"], len(man.rows)
        target = folder / self.file_name(inp)
        tmp = target.with_name(f".{target.stem}.{os.getpid()}.tmp.npy")  # never a half-written array in place
        problems: dict[int, str] = {}
        try:
            arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(n, N_MELS, self.frames(dc)))
            with make_progress() as progress:
                task = progress.add_task(f"decode {col}", total=n)
                for i, row in enumerate(man.rows):
                    if row[col]:
                        try:
                            arr[i] = self.features(man.resolve(row[col]), dc)
                        except AudioProblem as exc:
                            problems[i] = str(exc)
                        except Exception as exc:  # noqa: BLE001 - a decoder crash is a bad row, not a failed run
                            problems[i] = f"cannot decode audio ({type(exc).__name__}: {exc})"
                    progress.advance(task)
            arr.flush()
            del arr
            tmp.replace(target)
        finally:
            tmp.unlink(missing_ok=True)
        return np.load(target, mmap_mode="r"), problems

    def batch(self, array, pos, spec, device, augment):
        """float16 rows -> float32 `[B, N_MELS, T]`; while training (`augment`) noised, then time and frequency
        masked."""
        import torch

        x = torch.from_numpy(np.ascontiguousarray(array[pos]).astype(np.float32)).to(device)
        if augment:
            from mmcli.models.audio import add_noise, spec_augment

            x = spec_augment(add_noise(x, _filterbank(), NOISE_SNR_DB, NOISE_P))
        return x

    def prepare(self, values, inp, state, dc, spec) -> np.ndarray:
        """A clip path (or its bytes) -> float32 log-mel `[1, N_MELS, T]`, rounded through float16 as the cache
        stores it."""
        from mmcli.errors import DataError
        from mmcli.modalities.audio_signal import AudioProblem

        value = values[inp["name"]]
        source = value if isinstance(value, (bytes, bytearray)) else Path(value)
        try:
            feats = self.features(source, dc)
        except AudioProblem as exc:
            raise DataError(f"{inp['name'] if isinstance(value, (bytes, bytearray)) else value}: {exc}") from None
        return feats[None].astype(np.float16).astype(np.float32)

    def empty(self, inp, state, dc) -> np.ndarray:
        return np.zeros((1, N_MELS, self.frames(dc)), dtype=np.float16)

    def encoder_args(self, inp, state, dc) -> dict:
        return {"n_mels": N_MELS, "frames": self.frames(dc)}

    def table_key(self, cache, inp) -> str:
        return cache.meta["fingerprints"][inp["name"]]


def _filterbank():
    """The log-mel features' mel filterbank as a float32 tensor `[N_MELS, 257]` (built once)."""
    global _FB
    if _FB is None:
        import torch

        from mmcli.modalities.audio_signal import mel_filterbank

        _FB = torch.from_numpy(mel_filterbank(N_MELS, 512, SAMPLE_RATE).astype(np.float32))
    return _FB


_FB = None
register(Audio(), order=1)
