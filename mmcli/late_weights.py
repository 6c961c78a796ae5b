"""Fit a late-fusion model's per-modality logit weights on held-out rows (stacked generalisation).

Trained jointly, the heads of a late-fusion model are not calibrated against each other: on small data a text head
can memorise near-unique training strings and then speak too loudly on new rows. One non-negative weight per
modality, fitted by minimising the log loss on the validation split, fixes the balance (and the overall
temperature) without touching anything else; with fewer parameters than modalities x 2 it cannot overfit much.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mmcli.models.fusion import LateFusion


@torch.no_grad()
def _collect(model, batches, cached=None) -> tuple:
    """-> per-modality logits `[N, M, C]`, presence `[N, M]`, labels `[N]` over `batches` (Nones when empty)."""
    model.eval()
    logits, present, labels = [], [], []
    for inputs, pres, y, pos in batches:
        embs = model.embed(inputs, pres, cached(pos) if cached else None)
        logits.append(model.fusion.head_logits(embs).float())
        present.append(pres)
        labels.append(y)
    if not labels:
        return None, None, None
    return torch.cat(logits), torch.cat(present), torch.cat(labels)


def tune_late_weights(model, batches, cached=None) -> list[float] | None:
    """Set `model.fusion.weights` to minimise the validation log loss; returns them, or None when the model is not a
    single-label late-fusion model over two or more modalities, or there are no rows to fit on."""
    fusion = model.fusion
    if not isinstance(fusion, LateFusion) or len(fusion.names) < 2 or getattr(model, "multi_label", False):
        return None
    logits, present, labels = _collect(model, batches, cached)
    if logits is None:
        return None
    log_w = torch.zeros(len(fusion.names), device=logits.device, requires_grad=True)
    opt = torch.optim.LBFGS([log_w], lr=0.5, max_iter=100, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        # a weak pull towards 1 keeps a perfectly separable validation split from sending the weights to infinity
        loss = F.cross_entropy(fusion.combine(logits, present, log_w.exp()), labels) + 1e-2 * log_w.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    weights = log_w.detach().exp()
    if not torch.isfinite(weights).all():  # a degenerate fit keeps the training-time weights
        return None
    fusion.weights.copy_(weights)
    return weights.tolist()
