"""The multimodal classifier: one encoder per input column, a fusion, a head; `build_model` from config; and the
fine-tuning helpers the training loop uses (`param_groups`, `frozen_inputs`)."""

from __future__ import annotations

import torch
from torch import nn

from mmcli.models import image, text  # noqa: F401  (registers the image and text encoders)
from mmcli.models.encoder import apply_finetuning
from mmcli.models.fusion import FUSIONS


def mixed_presence(present: torch.Tensor, mix: tuple[torch.Tensor, float] | None) -> torch.Tensor:
    """Presence `[B, M]` of a mixed batch: a modality counts only where both rows of a pair have it."""
    return present if mix is None else present & present[mix[0]]


class MultimodalClassifier(nn.Module):
    """`inputs {name: tensor}` + presence `[B, M]` -> logits `[B, C]`.

    Each input is what its kind's batches make (mmcli/modalities/): image float `[B, 3, H, W]`, text int64 ids
    `[B, L]`, numeric float `[B, F]` (NaN missing), categorical int64 `[B]`, audio float `[B, n_mels, T]`. A modality that a row lacks (present
    False) is replaced by a learned "missing" embedding before fusion.
    """

    def __init__(self, encoders: dict[str, nn.Module], fusion: nn.Module, num_classes: int, hidden_dim: int = 256,
                 dropout: float = 0.2, aux_heads: bool = False, kinds: dict[str, str] | None = None,
                 multi_label: bool = False):
        super().__init__()
        self.names = list(encoders)
        # input kind per name: the data side asks each kind how to prepare the input (mmcli/modalities/)
        self.kinds = dict(kinds or {n: e.kind for n, e in encoders.items()})
        self.multi_label = multi_label  # sigmoid per label instead of a softmax (set from the data)
        self.encoders = nn.ModuleDict(encoders)
        self.missing = nn.ParameterDict({n: nn.Parameter(torch.zeros(e.out_dim)) for n, e in encoders.items()})
        self.fusion = fusion
        if getattr(fusion, "produces_logits", False):
            self.head: nn.Module = nn.Identity()
        elif hidden_dim > 0:
            self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(fusion.out_dim, hidden_dim), nn.ReLU(),
                                      nn.Dropout(dropout), nn.Linear(hidden_dim, num_classes))
        else:
            self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(fusion.out_dim, num_classes))
        self.num_classes = num_classes
        # One linear head per modality, trained beside the fused head (train.aux_weight): each encoder then has to
        # be discriminative on its own instead of leaning on the modality that is easiest to fit.
        self.aux = nn.ModuleDict({n: nn.Linear(e.out_dim, num_classes) for n, e in encoders.items()}) if aux_heads \
            else None

    def encode(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """One modality's input -> `[B, D]`. A fully frozen encoder runs without autograd: nothing in it trains,
        so recording its graph would only cost memory and time."""
        enc = self.encoders[name]
        if getattr(enc, "fully_frozen", False):
            with torch.no_grad():
                return enc(x)
        return enc(x)

    def _from_cache(self, name: str, table_rows: torch.Tensor) -> torch.Tensor:
        """Rows of a precomputed table -> `[B, D]`: the embedding itself, or, for an encoder whose frozen prefix
        was cached (`cached_prefix` = k), the output of its first k blocks, which its trainable rest then runs on."""
        enc = self.encoders[name]
        k = getattr(enc, "cached_prefix", 0)
        return enc.forward_from(table_rows, k) if k else table_rows

    def embed(self, inputs: dict[str, torch.Tensor], present: torch.Tensor,
              cached: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """`{name: input}` -> `{name: [B, D]}` with absent rows swapped for the missing embedding.

        `cached`: precomputed `{name: [B, D]}` encoder outputs (e.g. of frozen encoders) used instead of running
        the encoder, or outputs of a frozen prefix (see `_from_cache`); such names need not be in `inputs`.
        """
        return self.with_missing(self.encode_inputs(inputs, cached), present)

    def encode_inputs(self, inputs: dict[str, torch.Tensor],
                      cached: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """`{name: input}` -> every encoder's output `{name: [B, D]}`, presence not applied (see `embed`)."""
        cached = cached or {}
        return {name: self._from_cache(name, cached[name]) if name in cached else self.encode(name, inputs[name])
                for name in self.names}

    def with_missing(self, embs: dict[str, torch.Tensor], present: torch.Tensor) -> dict[str, torch.Tensor]:
        """Encoder outputs `{name: [B, D]}` with the rows absent in `present` `[B, M]` swapped for the learned
        missing embedding: what the fusion sees. Apart from `encode_inputs` so that several presence masks can
        share one encoder pass (`mmcli.ablation`)."""
        return {name: torch.where(present[:, j : j + 1], embs[name], self.missing[name].to(embs[name].dtype))
                for j, name in enumerate(self.names)}

    def _mix(self, embs: dict[str, torch.Tensor], present: torch.Tensor, mix: tuple[torch.Tensor, float]):
        """Manifold mixup of the embeddings: row i becomes lam * row i + (1 - lam) * row perm[i] of every
        modality; a modality absent from either row is absent from the mix. -> (embeddings, mask `[B, M]`)."""
        perm, lam = mix
        both = mixed_presence(present, mix)
        mixed = {name: lam * embs[name] + (1 - lam) * embs[name][perm] for name in self.names}
        return self.with_missing(mixed, both), both

    def forward(self, inputs: dict[str, torch.Tensor], present: torch.Tensor,
                cached: dict[str, torch.Tensor] | None = None, return_aux: bool = False,
                mix: tuple[torch.Tensor, float] | None = None):
        """-> logits `[B, num_classes]`; with `return_aux`, also `{modality: [B, num_classes]}` from the
        per-modality heads (a flag rather than a method, so that DistributedDataParallel sees one forward).
        `mix`: (permutation `[B]`, weight) for mixup of the rows' embeddings while training (`train.mixup`)."""
        embs = self.embed(inputs, present, cached)
        if mix is not None:
            embs, present = self._mix(embs, present, mix)
        return self.classify(embs, present, return_aux)

    def classify(self, embs: dict[str, torch.Tensor], present: torch.Tensor, return_aux: bool = False):
        """Embeddings `{name: [B, D]}` as `embed` gives them, presence `[B, M]` -> logits `[B, num_classes]` (with
        `return_aux`, also the per-modality logits, as `forward` describes)."""
        if getattr(self.fusion, "separate_heads", False):  # late fusion: its own per-modality heads are the aux ones
            per = self.fusion.head_logits(embs)
            logits = self.fusion.combine(per, present, self.fusion.weights)
            return (logits, {n: per[:, j] for j, n in enumerate(self.fusion.names)}) if return_aux else logits
        logits = self.head(self.fusion(embs, present))
        if not return_aux:
            return logits
        return logits, {n: head(embs[n]) for n, head in (self.aux or {}).items()}


# model settings every encoder builder may take by name (a builder ignores the ones it does not use)
ENCODER_SETTINGS = ("embed_dim", "cnn_widths", "vit_patch", "vit_layers", "vit_hidden", "image_weights",
                    "text_weights", "text_pooling", "text_layers")


def encoder_settings(cfg) -> dict:
    """The model settings encoder builders take by keyword, from a config."""
    return {k: getattr(cfg.model, k) for k in ENCODER_SETTINGS}


def fusion_settings(cfg) -> dict:
    """The model settings fusion builders take by keyword, from a config."""
    m = cfg.model
    return {"fusion_dim": m.fusion_dim, "embed_dim": m.embed_dim, "dropout": m.dropout, "lmf_rank": m.lmf_rank,
            "late_weighting": m.late_weighting, "late_hidden": m.late_hidden}


def build_encoder(kind: str, name: str, cfg, vocab_size: int | None = None, column: str | None = None,
                  inp: dict | None = None, state=None) -> nn.Module:
    """One encoder of input kind `kind` from config, with `model.freeze` / `model.unfreeze_last` applied. The
    builder gets explicit keyword arguments: the model settings and what the input's kind says it needs (vocabulary
    size, feature count ...; `inp`: the input with its fitted fields, `state`: its kind's fitted state)."""
    from mmcli import modalities
    from mmcli.models.registry import encoders_for

    inp = inp or {"name": column, "kind": kind, "columns": [column]}
    kwargs = encoder_settings(cfg)
    kwargs.update(modalities.get(kind).encoder_args(inp, state, cfg.data))
    if vocab_size is not None:
        kwargs["vocab_size"] = vocab_size
    enc = encoders_for(kind).build(name, **kwargs)
    apply_finetuning(enc, cfg, column, name, kind)
    return enc


def build_model(cfg, inputs: list[dict], num_classes: int, vocab_size: int | None = None,
                states: dict | None = None, multi_label: bool = False) -> MultimodalClassifier:
    """`inputs`: [{"name", "kind", "columns", ...fitted fields}] in the cache's order; `states` {kind: fitted
    state} (the tokenizer; `vocab_size` alone does for text)."""
    from mmcli import modalities
    from mmcli.errors import UsageError

    unknown = set(cfg.model.encoders) - {i["name"] for i in inputs}
    if unknown:
        raise UsageError(f"config key 'model.encoders' names unknown input(s): {', '.join(sorted(unknown))}; "
                         f"inputs are: {', '.join(i['name'] for i in inputs)}")
    encoders = {}
    for inp in inputs:
        name = cfg.model.encoders.get(inp["name"]) or modalities.get(inp["kind"]).default_encoder(cfg.model)
        encoders[inp["name"]] = build_encoder(inp["kind"], name, cfg, vocab_size, inp["name"], inp,
                                              (states or {}).get(inp["kind"]))
    dims = {n: e.out_dim for n, e in encoders.items()}
    fusion = FUSIONS.build(cfg.model.fusion, dims=dims, num_classes=num_classes, **fusion_settings(cfg))
    aux = (cfg.train.aux_weight > 0 and len(encoders) > 1
           and not getattr(fusion, "separate_heads", False))  # late fusion's own heads already train alone
    return MultimodalClassifier(encoders, fusion, num_classes, cfg.model.hidden_dim, cfg.model.dropout, aux,
                                kinds={i["name"]: i["kind"] for i in inputs}, multi_label=multi_label)


def _pretrained_rates(model: nn.Module, default: float, by: dict[str, float]) -> dict[int, float]:
    """{id(parameter): learning rate} over the pretrained encoders' parameters; `by` {column or kind: lr} overrides
    `default` for the encoders it names. Any input kind is a valid key, present or not (a preset's {image: ...}
    applies to data without images too); a key that is neither a kind nor a column is an error listing both."""
    from mmcli import modalities
    from mmcli.errors import UsageError

    encoders = getattr(model, "encoders", {})
    kinds = getattr(model, "kinds", {})
    valid = list(modalities.KIND_ORDER) + [n for n in encoders if n not in modalities.KIND_ORDER]
    unknown = sorted(set(by) - set(valid))
    if unknown:
        raise UsageError(f"config key 'train.pretrained_lrs' names {', '.join(unknown)}: neither an input kind nor a "
                         f"column; valid: {', '.join(valid)}")
    pre = {n: e for n, e in encoders.items() if getattr(e, "pretrained", False)}
    rates: dict[int, float] = {}
    for name, enc in pre.items():
        rate = float(by.get(name, by.get(kinds.get(name, name), default)))  # the column wins over the kind
        rates.update({id(p): rate for p in enc.parameters()})
    return rates


def frozen_inputs(model: MultimodalClassifier) -> list[str]:
    """Names of the modalities whose encoder is fully frozen: their embeddings never change during training, so
    the loop may compute them once and pass them as `cached` (valid while their inputs are not augmented)."""
    return [n for n in model.names if getattr(model.encoders[n], "fully_frozen", False)]


def param_groups(model: nn.Module, lr: float, pretrained_lr: float | None = None,
                 weight_decay: float | None = None, pretrained_lrs: dict[str, float] | None = None) -> list[dict]:
    """AdamW parameter groups: trainable parameters of pretrained encoders at `pretrained_lr` (default `lr`), or at
    `pretrained_lrs[selector]` where a selector names the encoder's column or kind; the rest at `lr`; frozen
    parameters are left out.

    With `weight_decay`, biases and norm weights (1-D tensors) get none (decay only shrinks weights usefully in
    matrices and convolutions), the rest get `weight_decay`; without it the optimiser's default applies.
    """
    rates = _pretrained_rates(model, lr if pretrained_lr is None else pretrained_lr, pretrained_lrs or {})
    groups: dict[tuple[float | None, bool], list[nn.Parameter]] = {}
    for p in model.parameters():
        if p.requires_grad:
            key = (rates.get(id(p)), weight_decay is not None and p.ndim < 2)
            groups.setdefault(key, []).append(p)
    out = []
    # Pretrained groups first, so that the last group always carries the main learning rate `lr`.
    for (rate, no_decay), params in sorted(groups.items(), key=lambda kv: (kv[0][0] is None, kv[0][0] or 0.0,
                                                                           kv[0][1])):
        group = {"params": params, "lr": lr if rate is None else rate, "pretrained": rate is not None}
        if weight_decay is not None:
            group["weight_decay"] = 0.0 if no_decay else weight_decay
        out.append(group)
    return out
