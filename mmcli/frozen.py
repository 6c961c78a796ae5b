"""Frozen encoders' embeddings, and the outputs of partly frozen encoders' frozen first blocks: computed once per
(data, encoder weights) and kept in the cache folder."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np
import torch

from mmcli.data.dataset import Batches, input_specs
from mmcli.files import WriteFailed, save_npy
from mmcli.progress import info

# Largest table of a partly frozen encoder's prefix outputs kept (float32, in memory and in the cache folder).
PREFIX_TABLE_BYTES = 4 * 2**30


def _weights_digest(module: torch.nn.Module) -> str:
    """A digest of a module's class and every tensor of its state: what its outputs depend on besides the input."""
    h = hashlib.blake2b(type(module).__qualname__.encode(), digest_size=16)
    for key, t in module.state_dict().items():
        h.update(key.encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _key(cache, name: str, enc: torch.nn.Module, k: int = 0) -> str:
    """What a frozen encoder's table depends on: its input data (its kind's `table_key`: an image column's
    fingerprint, a hash of the token ids ...),
    which rows are valid, the encoder's own preprocessing and its weights (for a prefix table: k and the weights of
    the first k blocks only). Other settings (fusion, seed, learning rate, other columns) may change freely without
    invalidating it."""
    from mmcli import modalities

    inp = next(i for i in cache.inputs if i["name"] == name)
    data = modalities.get(inp["kind"]).table_key(cache, inp)
    valid = hashlib.blake2b(np.ascontiguousarray(cache.valid).tobytes(), digest_size=16).hexdigest()
    prep = [getattr(enc, a, None) for a in ("mean", "std", "image_size", "pooling")]
    weights = _weights_digest(torch.nn.ModuleList(enc.blocks()[:k])) if k else _weights_digest(enc)
    text = f"{name}|{data}|{valid}|{prep}|{k}|{type(enc).__qualname__}|{weights}"
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


@torch.inference_mode()
def frozen_embeddings(model, cache, names: list[str], batch_size: int, device: str,
                      prefixes: dict[str, int] | None = None, view: str | None = None) -> dict[str, torch.Tensor]:
    """Run each fully frozen encoder once over every valid row: {modality: float [N_cache, D]} (rows that are not
    valid stay zero). Later epochs then cost only the trainable parts. For a name in `prefixes` (modality -> k), the
    table holds instead the output of the encoder's frozen first k blocks, `[N_cache, *shape]`; it is left out
    (the encoder then runs whole every step) when it would exceed `PREFIX_TABLE_BYTES`.

    The table is kept in the cache folder, keyed by its input data and the encoder (`_key`), so the next
    run over the same data and encoder (another fusion, seed or learning rate) skips the encoder entirely.

    `view`: the same tables over each input re-rendered by its kind's `view(view, x)` (an image mirrored, or in
    grey), another view of every row for training (`train.views`); kept under its own file name."""
    from mmcli import modalities

    specs = input_specs(model)
    idx = cache.indices()
    prefixes = prefixes or {}
    out = {}
    for name in names:
        enc, k = model.encoders[name], prefixes.get(name, 0)
        enc.eval()
        stem = f"{'prefix' if k else 'embeddings'}{'_' + view if view else ''}"
        saved = cache.dir / f"{stem}_{name}_{_key(cache, name, enc, k)}.npy"
        if saved.exists():
            out[name] = torch.from_numpy(np.load(saved))
            continue
        run = (lambda x, enc=enc, k=k: enc.forward_until(x, k)) if k else enc
        table = None
        others = {i["name"] for i in cache.inputs} - {name}
        batches = Batches(cache, idx, batch_size, specs, device=device, skip=others)
        for inputs, _, _, pos in batches:
            x = modalities.get(model.kinds[name]).view(view, inputs[name]) if view else inputs[name]
            rows = run(x).float().cpu()
            if table is None:
                size = len(cache.rows) * rows[0].numel() * 4
                if k and size > PREFIX_TABLE_BYTES:
                    info(f"{name}: the frozen blocks' outputs would take {size / 2**30:.1f} GiB; they run every "
                         "step instead")
                    break
                table = torch.zeros(len(cache.rows), *rows.shape[1:])
            table[pos] = rows
        if table is None:
            continue
        try:
            save_npy(saved, table.numpy())
        except (OSError, WriteFailed):  # a read-only or full cache folder costs the reuse, not the run
            pass
        out[name] = table
    return out


def view_tables(model, cache, batch_size: int, device: str, table: dict[str, torch.Tensor],
                prefixes: dict[str, int], views: list[str]) -> Callable[[torch.Tensor], dict] | None:
    """`train.views`: the cached tables of the inputs whose kind has these views (images: flip, gray) over each
    view too, and a lookup for training steps, cache positions `[B]` -> {modality: rows of its table}, that gives
    each row one of its 1 + len(views) renderings at random (torch's seeded generator), so that the frozen blocks
    still run once per view. `table`: {modality: [N_cache, ...]} as `frozen_embeddings` returned it. -> that
    lookup, or None when no table is of such an input."""
    from mmcli import modalities

    names = [n for n in table if set(views) <= set(modalities.get(model.kinds[n]).views)]
    if not names:
        info(f"train.views: no cached table of an input with the views {', '.join(views)}; training on the inputs "
             "as they are")
        return None
    alt = [frozen_embeddings(model, cache, names, batch_size, device,
                             {n: prefixes[n] for n in names if n in prefixes}, view=v) for v in views]
    info(f"train.views: {', '.join(names)} also as {', '.join(views)}; one rendering per row at random")

    def lookup(pos: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {}
        for n, t in table.items():
            rows = t[pos]
            if n in names:
                pick = torch.randint(len(alt) + 1, (len(pos),))  # 0: as it is, i: view i
                for i, other in enumerate(alt, 1):
                    rows = torch.where((pick == i).view(-1, *([1] * (rows.dim() - 1))), other[n][pos], rows)
            out[n] = rows.to(device)
        return out

    return lookup
