"""Audio encoders over cached log-mel features: float `[B, n_mels, T]` (from `mmcli.modalities.audio_signal.log_mel`)
-> `[B, out_dim]`, plus the training augmentations: white noise at a random SNR and SpecAugment masking.

Pretrained audio encoders on PyPI (checked with `pip download --no-deps`): panns-inference (8 KB), torchvggish (10 KB),
torch-vggish-yamnet (11 KB), torchopenl3 (18 KB) and hear21passt (34 KB) ship code only and download weights at run
time; openl3 downloads them while building its sdist; speechbrain and transformers models need the hub. Shipping weights
in the wheel: Resemblyzer 0.1.4 (16 MB, Apache-2.0; a GE2E speaker encoder, 3-layer LSTM-256 over 40 non-log mels,
loads with torch alone), torchcrepe (72 MB, pitch tracker, requires torchaudio), silero-vad (11 MB, voice activity).
None is a general audio embedding, so the encoders here train from scratch.
"""

from __future__ import annotations

import math
from itertools import pairwise

import torch
from torch import nn

from mmcli.models.encoder import Encoder
from mmcli.models.registry import AUDIO_ENCODERS

__all__ = ["AUDIO_ENCODERS", "AudioCNN", "add_noise", "build_audio_cnn", "normalise_utterance", "spec_augment"]


def normalise_utterance(x: torch.Tensor, min_std: float = 1e-2) -> torch.Tensor:
    """Per-utterance mean/std over all mel bins and frames: `[B, n_mels, T]` -> same shape.

    One mean and std per clip (not per band), so loudness and recording gain drop out while the spectral shape stays.
    The std is floored at `min_std` (log-mel units; real clips have 2..5) so that a constant clip (digital silence)
    stays near zero instead of its float rounding noise being blown up.
    """
    mean = x.mean(dim=(1, 2), keepdim=True)
    std = x.std(dim=(1, 2), keepdim=True, unbiased=False)
    return (x - mean) / std.clamp(min=min_std)


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    # ceil_mode: an odd or tiny T (a short clip) still pools to >= 1 frame instead of failing
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True), nn.MaxPool2d(2, ceil_mode=True))


class AudioCNN(Encoder):
    """Conv-BN-ReLU-MaxPool blocks over the spectrogram as a 1-channel image, global average pool, linear projection.

    Input: log-mel `[B, n_mels, T]`, normalised inside (`normalise_utterance`). `n_mels` and `frames` record the
    feature shape the data pipeline must produce; global pooling makes the network itself accept any size.
    """

    supports_prefix = True

    def __init__(self, out_dim: int = 128, n_mels: int = 80, frames: int = 101,
                 widths: tuple[int, ...] = (16, 32, 64, 128)):
        super().__init__()
        chans = (1, *widths)
        self.convs = nn.ModuleList(_conv_block(a, b) for a, b in pairwise(chans))
        self.proj = nn.Linear(chans[-1], out_dim)
        self.out_dim, self.n_mels, self.frames = out_dim, n_mels, frames

    def blocks(self) -> list[nn.Module]:
        return [*self.convs, self.proj]

    def forward_until(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """`[B, n_mels, T]` -> the output of the first `k` blocks (`[B, C, F', T']` for k <= number of convs)."""
        h = normalise_utterance(x).unsqueeze(1)  # [B, 1, n_mels, T]
        for conv in self.convs[:k]:
            h = conv(h)
        return self.proj(h.mean(dim=(2, 3))) if k > len(self.convs) else h

    def forward_from(self, h: torch.Tensor, k: int) -> torch.Tensor:
        """`forward_until(x, k)` -> `[B, out_dim]`."""
        if k > len(self.convs):
            return h
        for conv in self.convs[k:]:
            h = conv(h)
        return self.proj(h.mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`[B, n_mels, T]` -> `[B, out_dim]`."""
        return self.forward_from(self.forward_until(x, 0), 0)


@AUDIO_ENCODERS.register("audio_cnn")
def build_audio_cnn(embed_dim: int = 128, n_mels: int = 80, frames: int = 101,
                    audio_widths: tuple[int, ...] = (16, 32, 64, 128), **_: object) -> AudioCNN:
    """Small 2-D CNN over log-mel spectrograms, trained from scratch (4 blocks, widths 16..128)."""
    return AudioCNN(embed_dim, n_mels=n_mels, frames=frames, widths=tuple(int(w) for w in audio_widths))


def _band_mask(batch: int, size: int, masks: int, width: int, generator: torch.Generator | None) -> torch.Tensor:
    """bool `[batch, size]`: `masks` bands per row, each of width U{0..w} at a uniform start, w capped so that the
    bands of one row can cover at most half of the axis."""
    w_max = min(width, size // (2 * masks)) if masks > 0 else 0
    if w_max <= 0:
        return torch.zeros(batch, size, dtype=torch.bool)
    device = generator.device if generator is not None else torch.device("cpu")
    widths = torch.randint(0, w_max + 1, (batch, masks, 1), generator=generator, device=device)
    starts = (torch.rand(batch, masks, 1, generator=generator, device=device) * (size - widths + 1)).long()
    pos = torch.arange(size, device=device)  # [size]
    return ((pos >= starts) & (pos < starts + widths)).any(dim=1).cpu()  # [batch, size]


def spec_augment(x: torch.Tensor, time_masks: int = 2, time_width: int = 12, freq_masks: int = 2,
                 freq_width: int = 10, generator: torch.Generator | None = None) -> torch.Tensor:
    """SpecAugment time and frequency masking (Park et al. 2019, without time warping) on log-mel `[B, n_mels, T]`.

    Each example gets its own random bands (vectorised, no Python loop over the batch); masked cells take that
    example's mean, which `normalise_utterance` maps to about 0. Returns a new tensor of the same shape (`x` is left
    unchanged). Call it on training batches only; pass a `generator` for reproducible masks.
    """
    b, n_mels, t = x.shape
    freq = _band_mask(b, n_mels, freq_masks, freq_width, generator).to(x.device)  # [B, n_mels]
    time = _band_mask(b, t, time_masks, time_width, generator).to(x.device)  # [B, T]
    mask = freq[:, :, None] | time[:, None, :]  # [B, n_mels, T]
    fill = x.mean(dim=(1, 2), keepdim=True)
    return torch.where(mask, fill, x)


def add_noise(x: torch.Tensor, filterbank: torch.Tensor, snr_db: tuple[float, float] = (5.0, 40.0), p: float = 0.5,
              floor: float = 1e-6, generator: torch.Generator | None = None) -> torch.Tensor:
    """White noise mixed into log-mel features `[B, n_mels, T]` at a random signal-to-noise ratio; same shape out.

    Works on cached features, so the clips are never decoded again: for white noise the power spectrum of each STFT
    bin is exponentially distributed with a flat mean, and mel energies add (signal and noise are uncorrelated), so
    `log(exp(x) - floor + s * filterbank @ Exp(1) + floor)` is the log-mel of the noisy clip up to the cross term.
    `filterbank`: float `[n_mels, n_bins]` (`audio_signal.mel_filterbank`). Each row is noised with probability `p`,
    at an SNR uniform in `snr_db` over the whole clip's power (estimated from the mel energies with band weights
    that undo the filters' area normalisation, so it is the waveform's SNR); digital silence stays silent.
    Why: log-mel features of clean recordings hold exact silence (`log(floor)`), which a model learns to rely on and
    which any microphone noise erases (trained on clean speech, 0.19 on the same words at 20 dB SNR without this;
    benchmarks/audio.py)."""
    b, _, t = x.shape
    device = generator.device if generator is not None else x.device

    def rand() -> torch.Tensor:  # [B] in [0, 1)
        return torch.rand(b, generator=generator, device=device).to(x.device)

    fb = filterbank.to(x.device, torch.float32)
    power = (x.float().exp() - floor).clamp(min=0)  # [B, n_mels, T]
    bins = torch.empty(b, fb.shape[1], t, device=device).exponential_(generator=generator).to(x.device)
    span = _recording_span(x, floor, rand(), rand())  # [B, T]
    noise = torch.einsum("mk,bkt->bmt", fb, bins) * span[:, None, :]  # [B, n_mels, T]: unit white noise
    low, high = snr_db
    snr = low + (high - low) * rand()
    keep = rand() >= p
    w = _band_weights(fb)
    # both powers per frame of the recording: the clip's energy over the span's length, the noise's mean
    span_len = span.sum(dim=1).clamp(min=1)
    clip = torch.einsum("m,bmt->b", w, power) / span_len
    unit = torch.einsum("m,bmt->b", w, noise) / span_len
    scale = clip / unit.clamp(min=1e-30) / 10 ** (snr / 10)
    scale = torch.where(keep, torch.zeros_like(scale), scale)
    return (power + scale[:, None, None] * noise + floor).log()


def _recording_span(x: torch.Tensor, floor: float, u_start: torch.Tensor, u_end: torch.Tensor) -> torch.Tensor:
    """bool `[B, T]`: the frames a noisy recording of `x` `[B, n_mels, T]` would cover. Clips shorter than
    `data.audio_seconds` are padded with digital silence, which stays silent in a noisy recording too; the cached
    features do not say where the recording ended, so the span runs from a uniform point before the first frame with
    sound to one after the last (`u_start`, `u_end` `[B]` in [0, 1): 0 is tight, near 1 the edge; all of a silent clip)."""
    t = x.shape[2]
    sound = (x > math.log(floor) + 1.0).any(dim=1)  # [B, T]
    first = sound.float().argmax(dim=1)  # 0 when silent
    last = torch.where(sound.any(dim=1), t - 1 - sound.flip(1).float().argmax(dim=1), torch.full_like(first, t - 1))
    start = first - (u_start * (first + 1)).long()  # first..0
    end = last + (u_end * (t - last)).long()  # last..T-1
    pos = torch.arange(t, device=x.device)
    return (pos >= start[:, None]) & (pos <= end[:, None])


def _band_weights(fb: torch.Tensor) -> torch.Tensor:
    """w `[n_mels]` with `w @ fb` ~ 1 on every frequency bin (least squares), so that `w @ mel energies` ~ the
    power summed over the bins (Parseval: the frame's power) whatever the filters' normalisation."""
    ones = torch.ones(fb.shape[1], 1, dtype=torch.float64, device=fb.device)
    return torch.linalg.lstsq(fb.T.double(), ones).solution[:, 0].float()
