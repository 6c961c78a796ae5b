"""Frozen encoders' embeddings, and the outputs of partly frozen encoders' frozen first blocks: computed once per
(data, encoder weights) and kept in the cache folder."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

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


def _path(cache, name: str, enc: torch.nn.Module, k: int, view: str | None) -> Path:
    """Where the table of `name`'s encoder (its first `k` blocks, or all of it for k = 0) over `view` is kept."""
    stem = f"{'prefix' if k else 'embeddings'}{'_' + view if view else ''}"
    return cache.dir / f"{stem}_{name}_{_key(cache, name, enc, k)}.npy"


def _save(path: Path, table: torch.Tensor) -> None:
    try:
        save_npy(path, table.numpy())
    except (OSError, WriteFailed):  # a read-only or full cache folder costs the reuse, not the run
        pass


@torch.inference_mode()
def frozen_embeddings(model, cache, names: list[str], batch_size: int, device: str,
                      prefixes: dict[str, int] | None = None, view: str | None = None) -> dict[str, torch.Tensor]:
    """Run each fully frozen encoder once over every valid row: {modality: float [N_cache, D]} (rows that are not
    valid stay zero). Later epochs then cost only the trainable parts. For a name in `prefixes` (modality -> k), the
    table holds instead the output of the encoder's frozen first k blocks, `[N_cache, *shape]`; it is left out
    (the encoder then runs whole every step) when it would exceed `PREFIX_TABLE_BYTES`.

    The table is kept in the cache folder, keyed by its input data and the encoder (`_key`), so the next
    run over the same data and encoder (another fusion, seed or learning rate) skips the encoder entirely. A
    prefix pass also runs the rest of the (still untrained) encoder over each batch and keeps the whole encoder's
    embeddings too, when they are not kept yet: the later blocks cost a fraction of the pass, and a frozen-encoder
    run over the same data (the zero-config preset after `best`, or LP-FT's probe) then needs no pass of its own.

    `view`: the same tables over each input re-rendered by its kind's `view(view, x)` (an image mirrored, or in
    grey), another view of every row for training (`train.views`); kept under its own file name."""
    prefixes = prefixes or {}
    out = {}
    for name in names:
        enc, k = model.encoders[name], prefixes.get(name, 0)
        enc.eval()
        saved = _path(cache, name, enc, k, view)
        if saved.exists():
            out[name] = torch.from_numpy(np.load(saved))
            continue
        full = _path(cache, name, enc, 0, view) if k else None
        tables = _run_encoder(model, cache, name, k, batch_size, device, view, whole=full is not None
                              and not full.exists())
        if tables is None:
            continue
        out[name], whole = tables
        _save(saved, out[name])
        if whole is not None:
            _save(full, whole)
    return out


def _run_encoder(model, cache, name: str, k: int, batch_size: int, device: str, view: str | None,
                 whole: bool) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """One pass of `name`'s encoder (its first `k` blocks for k > 0) over every valid row -> (table
    `[N_cache, ...]`, and with `whole` the full encoder's embeddings `[N_cache, D]` from the same pass, else None),
    or None when a prefix table would exceed `PREFIX_TABLE_BYTES`."""
    from mmcli import modalities

    enc = model.encoders[name]
    others = {i["name"] for i in cache.inputs} - {name}
    batches = Batches(cache, cache.indices(), batch_size, input_specs(model), device=device, skip=others)
    table = embedded = None
    for inputs, _, _, pos in batches:
        x = modalities.get(model.kinds[name]).view(view, inputs[name]) if view else inputs[name]
        h = enc.forward_until(x, k) if k else enc(x)
        rows = h.float().cpu()
        emb = enc.forward_from(h, k).float().cpu() if k and whole else None
        if table is None:
            size = len(cache.rows) * rows[0].numel() * 4
            if k and size > PREFIX_TABLE_BYTES:
                info(f"{name}: the frozen blocks' outputs would take {size / 2**30:.1f} GiB; they run every "
                     "step instead")
                return None
            table = torch.zeros(len(cache.rows), *rows.shape[1:])
            embedded = torch.zeros(len(cache.rows), emb.shape[1]) if emb is not None else None
        table[pos] = rows
        if emb is not None:
            embedded[pos] = emb
    return None if table is None else (table, embedded)


def kept_tables(model, cache, device: str) -> tuple[Callable[[torch.Tensor], dict] | None, set[str]]:
    """Scoring a trained run over a file that training (or another run) already cached: the tables kept in the
    cache folder for this model's frozen encoders (embeddings) and partly frozen ones (their frozen blocks' outputs,
    `cached_prefix` then set so that only the rest runs), found by the same keys, never computed here. A trained
    encoder's frozen blocks still hold their pretrained weights, so the key of the table training used still
    matches. -> (lookup cache positions `[B]` -> {input: rows of its table} as `predict_probs` takes it, or None;
    the inputs it covers, which need not be loaded)."""
    tables = {}
    for name in model.names:
        enc = model.encoders[name]
        frozen = getattr(enc, "fully_frozen", False)
        k = 0 if frozen else getattr(enc, "cacheable_prefix", lambda: 0)()
        if not (frozen or k):
            continue
        path = _path(cache, name, enc, k, None)
        if path.exists():
            # memory-mapped: scoring a split reads its rows only, not a prefix table of up to PREFIX_TABLE_BYTES
            tables[name] = np.load(path, mmap_mode="r")
            enc.cached_prefix = k
    if not tables:
        return None, set()

    def lookup(pos: torch.Tensor) -> dict[str, torch.Tensor]:
        return {n: torch.from_numpy(t[np.asarray(pos)]).to(device) for n, t in tables.items()}

    return lookup, set(tables)


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
