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


GROUP_BATCHES = 8  # sampler "length": rows are sorted by length within runs of this many shuffled batches


def text_lengths(cache) -> np.ndarray | None:
    """Tokens per row `[N]`, summed over the cache's text columns (padding not counted); None without text."""
    from mmcli.text import pad_id

    names = [i["name"] for i in cache.inputs if i["kind"] == "text"]
    if not names:
        return None
    tok = cache.state("text")
    pad = pad_id(tok) if tok is not None else 0
    return sum((np.asarray(cache.arrays[n]) != pad).sum(1) for n in names)


def length_grouped(order: np.ndarray, lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> np.ndarray:
    """A shuffled `order` regrouped so that rows of similar length share a batch: each run of GROUP_BATCHES
    batches is sorted by length and cut into batches, and the full batches are then shuffled (the short last one
    stays last, so batch boundaries stay at multiples of `batch_size`). Runs of a few batches, rather than one
    sort of the whole split, keep the batches' make-up changing from epoch to epoch."""
    span = batch_size * GROUP_BATCHES
    runs = [order[i : i + span] for i in range(0, len(order), span)]
    grouped = np.concatenate([r[np.argsort(lengths[r], kind="stable")] for r in runs])
    full = len(grouped) // batch_size
    batches = [grouped[k * batch_size : (k + 1) * batch_size] for k in range(full)]
    tail = grouped[full * batch_size :]
    return np.concatenate([*(batches[k] for k in rng.permutation(full)), tail])


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
                 rank: int = 0, world: int = 1, skip: set[str] | None = None, balanced: bool = False,
                 lengths: np.ndarray | None = None) -> None:
        self.cache, self.indices, self.batch_size = cache, np.asarray(indices), batch_size
        self.specs, self.shuffle, self.augment, self.seed, self.device = specs, shuffle, augment, seed, device
        self.rank, self.world, self.balanced = rank, world, balanced
        self.lengths = lengths  # per cache position: shuffled batches group rows of similar length (length_grouped)
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
        order = self.indices[rng.permutation(len(self.indices))]
        return order if self.lengths is None else length_grouped(order, self.lengths, self.batch_size, rng)

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
