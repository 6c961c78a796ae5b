"""Batches over the cache: index the memory-mapped arrays a whole batch at a time (no per-row Python work
except augmentation), then normalise for each image encoder."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from mmcli.vision import normalize, train_augment


@dataclass
class ImageSpec:
    """What an image encoder wants: its input size and normalisation."""

    size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


def image_specs(model) -> dict[str, ImageSpec]:
    return {n: ImageSpec(e.image_size, tuple(e.mean), tuple(e.std)) for n, e in model.encoders.items()
            if hasattr(e, "image_size")}


class Batches:
    """Iterate `(inputs {name: tensor}, present bool [B, M], labels int64 [B], positions int64 [B])`.

    `positions` are indices into the cache's arrays; shuffling is seeded by (seed, epoch).
    """

    def __init__(self, cache, indices: np.ndarray, batch_size: int, specs: dict[str, ImageSpec],
                 shuffle: bool = False, augment: bool = False, seed: int = 0, device: str = "cpu") -> None:
        self.cache, self.indices, self.batch_size = cache, np.asarray(indices), batch_size
        self.specs, self.shuffle, self.augment, self.seed, self.device = specs, shuffle, augment, seed, device
        self.epoch = 0
        self._aug = {n: train_augment(s.size) for n, s in specs.items()}

    def __len__(self) -> int:
        return (len(self.indices) + self.batch_size - 1) // self.batch_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _order(self) -> np.ndarray:
        if not self.shuffle:
            return self.indices
        rng = np.random.default_rng([self.seed, self.epoch])
        return self.indices[rng.permutation(len(self.indices))]

    def _images(self, name: str, pos: np.ndarray) -> torch.Tensor:
        spec = self.specs[name]
        x = torch.from_numpy(np.ascontiguousarray(self.cache.images[name][pos]))
        if self.augment:
            x = torch.stack([self._aug[name](img) for img in x])
        elif x.shape[-1] != spec.size:
            from torchvision.transforms.v2 import functional as F

            x = F.resize(x, [spec.size, spec.size], antialias=True)
        return normalize(x.to(self.device, non_blocking=True), spec.mean, spec.std)

    def batch(self, pos: np.ndarray) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor]:
        """The batch for cache positions `pos` (sorted: memory-mapped reads are faster in file order)."""
        pos = np.sort(pos)
        inputs = {}
        for inp in self.cache.inputs:
            name = inp["name"]
            if inp["kind"] == "image":
                inputs[name] = self._images(name, pos)
            else:
                inputs[name] = torch.from_numpy(self.cache.tokens[name][pos].astype(np.int64)).to(self.device)
        present = torch.from_numpy(self.cache.present[pos]).to(self.device)
        labels = torch.from_numpy(self.cache.labels[pos]).to(self.device)
        return inputs, present, labels, torch.from_numpy(pos)

    def __iter__(self) -> Iterator:
        order = self._order()
        for start in range(0, len(order), self.batch_size):
            yield self.batch(order[start : start + self.batch_size])
