"""AudioCNN over log-mel batches and SpecAugment masking."""

from __future__ import annotations

import pytest
import torch

from mmcli.models.audio import AudioCNN, build_audio_cnn, normalise_utterance, spec_augment
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
