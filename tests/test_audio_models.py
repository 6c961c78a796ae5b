"""AudioCNN over log-mel batches, SpecAugment masking and feature-domain noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmcli.modalities.audio_signal import log_mel, mel_filterbank
from mmcli.models.audio import AudioCNN, add_noise, build_audio_cnn, normalise_utterance, spec_augment
from mmcli.models.registry import AUDIO_ENCODERS


def batch(b: int = 4, n_mels: int = 40, t: int = 51, seed: int = 0) -> torch.Tensor:
    """Log-mel-like values `[b, n_mels, t]` (around log(1e-2), spread 3)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, n_mels, t, generator=g) * 3 - 4.6


def test_registered_and_shapes():
    enc = AUDIO_ENCODERS.build("audio_cnn", embed_dim=24, n_mels=40, frames=51, audio_widths=(4, 8, 8))
    assert isinstance(enc, AudioCNN) and enc.out_dim == 24 and (enc.n_mels, enc.frames) == (40, 51)
    assert len(enc.blocks()) == 4  # 3 conv blocks + projection
    assert enc(batch()).shape == (4, 24)
    assert enc(batch(2, 40, 7)).shape == (2, 24)  # a very short clip still pools to one cell
    assert AUDIO_ENCODERS.doc("audio_cnn").startswith("Small 2-D CNN")


def test_backward_reaches_every_parameter():
    enc = build_audio_cnn(embed_dim=8, n_mels=40, audio_widths=(4, 8))
    enc(batch()).pow(2).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.parameters())


def test_normalisation_removes_gain_and_survives_silence():
    enc = build_audio_cnn(embed_dim=8, n_mels=40, audio_widths=(4, 8)).eval()
    x = batch()
    # +5 in log-mel is a gain of e^5 on the power: per-utterance mean/std makes the encoder ignore it
    torch.testing.assert_close(enc(x), enc(x + 5.0), atol=1e-4, rtol=1e-4)
    silence = torch.full((2, 40, 51), -13.8)
    assert normalise_utterance(silence).abs().max() < 1e-3 and torch.isfinite(enc(silence)).all()


def test_prefix_split_matches_forward():
    enc = build_audio_cnn(embed_dim=8, n_mels=40, audio_widths=(4, 8, 8)).eval()
    x = batch()
    for k in range(len(enc.blocks()) + 1):
        torch.testing.assert_close(enc.forward_from(enc.forward_until(x, k), k), enc(x))
    enc.freeze(unfreeze_last=2)
    assert enc.cacheable_prefix() == 2


def test_spec_augment_masks_with_the_example_mean():
    x = batch(8, 40, 101)
    y = spec_augment(x, time_masks=2, time_width=10, freq_masks=2, freq_width=8,
                     generator=torch.Generator().manual_seed(1))
    assert y.shape == x.shape and not torch.equal(y, x)
    changed = y != x  # [B, n_mels, T]
    assert changed.any(dim=(1, 2)).sum() >= 6  # widths are U{0..w}: nearly every example gets some mask
    means = x.mean(dim=(1, 2), keepdim=True).expand_as(x)
    torch.testing.assert_close(y[changed], means[changed])
    # masks are whole bands: a masked frequency row or time column is masked entirely, per example
    rows, cols = changed.all(dim=2), changed.all(dim=1)
    assert torch.equal(changed, rows[:, :, None] | cols[:, None, :])
    assert rows.sum(dim=1).max() <= 16 and cols.sum(dim=1).max() <= 20
    assert not torch.equal(changed[0], changed[1])  # positions differ between examples
    torch.testing.assert_close(x, batch(8, 40, 101))  # input untouched


def test_spec_augment_seeded_and_batch_of_one():
    x = batch(3)
    a = spec_augment(x, generator=torch.Generator().manual_seed(7))
    b = spec_augment(x, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    one = batch(1, 40, 51)
    for seed in range(20):
        y = spec_augment(one, time_width=100, freq_width=100, generator=torch.Generator().manual_seed(seed))
        assert y.shape == one.shape and torch.isfinite(y).all()
        assert (y == one).float().mean() >= 0.25  # at most half of each axis masked: a quarter always survives
    assert torch.equal(spec_augment(one, time_masks=0, freq_masks=0), one)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_spec_augment_keeps_dtype(dtype):
    x = batch().to(dtype)
    assert spec_augment(x, generator=torch.Generator().manual_seed(0)).dtype == dtype


def _tone(seconds: float = 1.0, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(16000 * seconds)) / 16000
    return 0.5 * np.sin(2 * np.pi * hz * t)


def test_add_noise_matches_noise_added_to_the_waveform():
    wave, snr = _tone(), 10.0
    rng = np.random.default_rng(0)
    noisy = wave + rng.normal(0, np.sqrt(np.mean(wave**2) / 10 ** (snr / 10)), wave.shape)
    fb = torch.from_numpy(mel_filterbank(80, 512).astype(np.float32))
    clean = torch.from_numpy(log_mel(wave))[None]  # [1, 80, T]
    gen = torch.Generator().manual_seed(0)
    ours = add_noise(clean, fb, (snr, snr), p=1.0, generator=gen)[0].numpy()
    real = log_mel(noisy)
    # away from the tone, the band energies are the noise's: ours and the real one agree in their mean level
    quiet = np.ones(80, dtype=bool)
    quiet[8:20] = False  # the bands around 440 Hz
    assert abs(ours[quiet].mean() - real[quiet].mean()) < 0.3  # log units: within ~35 % of the energy
    assert abs(ours[quiet].std() - real[quiet].std()) < 0.3  # and the noise's spread is alike
    assert ours[quiet].mean() > clean[0].numpy()[quiet].mean() + 5  # far above the clean clip's near-silence


def test_add_noise_keeps_silence_and_skips_rows_by_p():
    fb = torch.from_numpy(mel_filterbank(80, 512).astype(np.float32))
    silent = torch.full((2, 80, 50), float(np.log(1e-6)))
    assert torch.allclose(add_noise(silent, fb, p=1.0), silent, atol=1e-5)  # nothing to measure an SNR against
    x = torch.randn(64, 80, 50)
    gen = torch.Generator().manual_seed(1)
    out = add_noise(x, fb, p=0.5, generator=gen)
    changed = (out - x).abs().amax(dim=(1, 2)) > 1e-4
    assert 16 < int(changed.sum()) < 48  # about half of the rows
    assert torch.equal(out, add_noise(x, fb, p=0.5, generator=torch.Generator().manual_seed(1)))  # seeded
    assert torch.equal(add_noise(x, fb, p=0.0), (x.exp() - 1e-6).clamp(min=0).add(1e-6).log())


def test_noise_spans_the_recording_not_the_padding():
    from mmcli.models.audio import _recording_span

    x = torch.full((2, 80, 40), float(np.log(1e-6)))
    x[:, :, 10:20] = 0.0  # sound in frames 10..19, digital silence (padding or a quiet start) around it
    x[1] = float(np.log(1e-6))  # a silent clip
    tight = _recording_span(x, 1e-6, torch.zeros(2), torch.zeros(2))
    assert tight[0].nonzero().flatten().tolist() == list(range(10, 20))
    assert tight[1].all()  # silence: nothing to locate (and no noise: its power is 0)
    wide = _recording_span(x, 1e-6, torch.full((2,), 0.999), torch.full((2,), 0.999))
    assert wide[0].all()  # up to every frame
