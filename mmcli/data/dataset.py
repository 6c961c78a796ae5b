"""Batches over the cache: index the memory-mapped arrays a whole batch at a time (no per-row Python work
except augmentation), then normalise for each image encoder."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from mmcli.vision import normalize


@dataclass
class ImageSpec:
    """What an image encoder wants: its input size and normalisation."""

    size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


def image_specs(model) -> dict[str, ImageSpec]:
    return {n: ImageSpec(e.image_size, tuple(e.mean), tuple(e.std)) for n, e in model.encoders.items()
            if hasattr(e, "image_size")}


def random_zoom_shift_flip(x: torch.Tensor, min_scale: float = 0.8) -> torch.Tensor:
    """Per-image random zoom-in (crop of side `min_scale`..1), shift and horizontal flip, for a whole batch in one
    `grid_sample` call (a per-image transforms.v2 loop costs ~10x more). float `[B, C, H, W]` -> same shape."""
    b = x.shape[0]
    scale = torch.empty(b, device=x.device).uniform_(min_scale, 1.0)
    shift = (torch.rand(b, 2, device=x.device) * 2 - 1) * (1 - scale).unsqueeze(1)
    flip = torch.where(torch.rand(b, device=x.device) < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 1, 1] = scale * flip, scale
    theta[:, :, 2] = shift
    grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    return torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class Batches:
    """Iterate `(inputs {name: tensor}, present bool [B, M], labels int64 [B] (multi-label: float [B, C]),
    positions int64 [B])`.

    `positions` are indices into the cache's arrays; shuffling is seeded by (seed, epoch).

    Distributed (`world` > 1): every rank walks the same global permutation in global batches of `batch_size`
    and takes its share `batch[rank::world]`, so the ranks together see exactly the batches of a single-process
    run (what torch's DistributedSampler does per epoch, but aligned to global batches).
    """

    def __init__(self, cache, indices: np.ndarray, batch_size: int, specs: dict[str, ImageSpec],
                 shuffle: bool = False, augment: bool = False, seed: int = 0, device: str = "cpu",
                 rank: int = 0, world: int = 1, skip: set[str] | None = None, balanced: bool = False) -> None:
        self.cache, self.indices, self.batch_size = cache, np.asarray(indices), batch_size
        self.specs, self.shuffle, self.augment, self.seed, self.device = specs, shuffle, augment, seed, device
        self.rank, self.world, self.balanced = rank, world, balanced
        self.skip = skip or set()  # inputs not to load (their embeddings come from elsewhere, e.g. frozen encoders)
        self.pin = str(device).startswith("cuda")
        self.epoch = 0

    def __len__(self) -> int:
        if self.world > 1:  # a last global batch too small to give every rank a row is dropped
            full, rest = divmod(len(self.indices), self.batch_size)
            return full + (rest >= self.world)
        return (len(self.indices) + self.batch_size - 1) // self.batch_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _order(self) -> np.ndarray:
        if not self.shuffle:
            return self.indices
        rng = np.random.default_rng([self.seed, self.epoch])
        if self.balanced:  # each class equally likely per draw: rare classes repeat, frequent ones are subsampled
            labels = self.cache.labels[self.indices]
            counts = np.bincount(labels, minlength=labels.max() + 1)
            p = 1.0 / counts[labels]
            return rng.choice(self.indices, size=len(self.indices), replace=True, p=p / p.sum())
        return self.indices[rng.permutation(len(self.indices))]

    def _images(self, name: str, pos: np.ndarray) -> torch.Tensor:
        spec = self.specs[name]
        x = torch.from_numpy(np.ascontiguousarray(self.cache.images[name][pos]))
        if self.pin:  # page-locked memory lets the copy to the GPU run asynchronously
            x = x.pin_memory()
        if x.shape[-1] != spec.size:
            from torchvision.transforms.v2 import functional as F

            x = F.resize(x, [spec.size, spec.size], antialias=True)
        x = normalize(x.to(self.device, non_blocking=True), spec.mean, spec.std)
        if self.augment:
            x = random_zoom_shift_flip(x)
        return x.contiguous(memory_format=torch.channels_last)

    def batch(self, pos: np.ndarray) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor]:
        """The batch for cache positions `pos` (sorted: memory-mapped reads are faster in file order)."""
        pos = np.sort(pos)
        inputs = {}
        for inp in self.cache.inputs:
            name = inp["name"]
            if name in self.skip:
                continue
            if inp["kind"] == "image":
                inputs[name] = self._images(name, pos)
            else:
                inputs[name] = torch.from_numpy(self.cache.tokens[name][pos].astype(np.int64)).to(self.device)
        present = torch.from_numpy(self.cache.present[pos]).to(self.device)
        if self.cache.targets is not None:  # multi-label: float multi-hot [B, C] for BCE
            labels = torch.from_numpy(self.cache.targets[pos].astype(np.float32)).to(self.device)
        else:
            labels = torch.from_numpy(self.cache.labels[pos]).to(self.device)
        return inputs, present, labels, torch.from_numpy(pos)

    def iterate(self, start_batch: int = 0) -> Iterator:
        """Batches from number `start_batch` on (a resumed epoch skips the ones it already trained on)."""
        order = self._order()
        for k in range(start_batch, len(self)):
            chunk = order[k * self.batch_size : (k + 1) * self.batch_size]
            yield self.batch(chunk[self.rank :: self.world] if self.world > 1 else chunk)

    def __iter__(self) -> Iterator:
        return self.iterate()
