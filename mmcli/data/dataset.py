"""Batches over the cache: index the arrays a whole batch at a time (no per-row Python work), each input through
its kind's `batch` (mmcli/modalities/): normalisation, augmentation."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch


def input_specs(model) -> dict:
    """{input: what its kind's batches need from the model's encoder} (an image encoder's size and normalisation;
    None for most kinds)."""
    from mmcli import modalities

    return {n: modalities.get(k).spec(model.encoders[n]) for n, k in model.kinds.items()}


class Batches:
    """Iterate `(inputs {name: tensor}, present bool [B, M], labels int64 [B] (multi-label: float [B, C]),
    positions int64 [B])`.

    `positions` are indices into the cache's arrays; shuffling is seeded by (seed, epoch).

    Distributed (`world` > 1): every rank walks the same global permutation in global batches of `batch_size`
    and takes its share `batch[rank::world]`, so the ranks together see exactly the batches of a single-process
    run (what torch's DistributedSampler does per epoch, but aligned to global batches).
    """

    def __init__(self, cache, indices: np.ndarray, batch_size: int, specs: dict,
                 shuffle: bool = False, augment: bool = False, seed: int = 0, device: str = "cpu",
                 rank: int = 0, world: int = 1, skip: set[str] | None = None, balanced: bool = False) -> None:
        self.cache, self.indices, self.batch_size = cache, np.asarray(indices), batch_size
        self.specs, self.shuffle, self.augment, self.seed, self.device = specs, shuffle, augment, seed, device
        self.rank, self.world, self.balanced = rank, world, balanced
        self.skip = skip or set()  # inputs not to load (their embeddings come from elsewhere, e.g. frozen encoders)
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

    def batch(self, pos: np.ndarray) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor]:
        """The batch for cache positions `pos` (sorted: memory-mapped reads are faster in file order)."""
        from mmcli import modalities

        pos = np.sort(pos)
        inputs = {}
        for inp in self.cache.inputs:
            name = inp["name"]
            if name not in self.skip:
                inputs[name] = modalities.get(inp["kind"]).batch(self.cache.arrays[name], pos, self.specs.get(name),
                                                                 self.device, self.augment)
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
