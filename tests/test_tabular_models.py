"""Numeric and categorical encoders: shapes, missing values, unknown categories, gradients, freezing, registries,
and that each can learn a small separable problem."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mmcli.models.registry import CATEGORICAL_ENCODERS, NUMERIC_ENCODERS, encoders_for
from mmcli.models.tabular import CategoryEmbedding, NumericMLP, NumericTokens

NUMERIC = {"numeric_mlp": NumericMLP, "numeric_tokens": NumericTokens}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: these models are tiny, and with other processes on the cores OpenMP threads waiting on
    each other make each step many times slower (the learning tests went from ~1 s to ~40 s)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def numeric(name: str, features: int = 5, dim: int = 16) -> nn.Module:
    return NUMERIC_ENCODERS.build(name, embed_dim=dim, num_features=features, token_dim=8)


def test_registries_list_the_names():
    assert {"numeric_mlp", "numeric_tokens"} <= set(encoders_for("numeric").names())
    assert "embedding" in encoders_for("categorical").names()
    for reg, name in [(NUMERIC_ENCODERS, "numeric_mlp"), (NUMERIC_ENCODERS, "numeric_tokens"),
                      (CATEGORICAL_ENCODERS, "embedding")]:
        assert reg.doc(name)  # the one-line description `mm list` shows


@pytest.mark.parametrize("name", list(NUMERIC))
def test_numeric_shapes_and_type(name):
    torch.manual_seed(0)
    enc = numeric(name)
    assert isinstance(enc, NUMERIC[name]) and enc.out_dim == 16
    assert enc(torch.randn(7, 5)).shape == (7, 16)
    assert enc(torch.randn(1, 5)).shape == (1, 16)


def test_tokens_per_feature():
    enc = numeric("numeric_tokens", features=6)
    assert enc.tokens(torch.randn(3, 6)).shape == (3, 6, 8)


@pytest.mark.parametrize("name", list(NUMERIC))
def test_missing_values_are_finite_and_not_zero(name):
    torch.manual_seed(0)
    enc = numeric(name).eval()
    x = torch.randn(4, 5)
    x[0] = float("nan")  # a fully missing row
    x[1, 2] = float("nan")  # one missing cell
    x[2] = 0.0  # the median everywhere
    out = enc(x)
    assert torch.isfinite(out).all()
    assert not torch.allclose(out[0], out[2], atol=1e-5)  # missing is not "exactly the median"
    partial = x[1:2].clone()
    partial[0, 2] = 0.0
    assert not torch.allclose(enc(x[1:2]), enc(partial), atol=1e-5)


@pytest.mark.parametrize("name", list(NUMERIC))
def test_numeric_backward_finite(name):
    torch.manual_seed(0)
    enc = numeric(name)
    x = torch.randn(8, 5)
    x[torch.rand(8, 5) < 0.3] = float("nan")
    enc(x).pow(2).mean().backward()
    grads = [p.grad for p in enc.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_embedding_unknown_index_and_projection():
    enc = CATEGORICAL_ENCODERS.build("embedding", embed_dim=12, num_categories=4)
    assert isinstance(enc, CategoryEmbedding) and enc.out_dim == 12
    ids = torch.tensor([0, 1, 3, 0])
    out = enc(ids)
    assert out.shape == (4, 12) and torch.isfinite(out).all()
    assert torch.equal(out[0], torch.zeros(12))  # unknown starts neutral
    out.sum().backward()
    assert torch.isfinite(enc.embed.weight.grad).all()
    projected = CategoryEmbedding(4, out_dim=12, dim=3)
    assert projected(ids).shape == (4, 12) and len(projected.blocks()) == 2


@pytest.mark.parametrize("name", list(NUMERIC))
def test_freezing_keeps_the_last_block(name):
    enc = numeric(name)
    enc.freeze(1)
    assert enc.frozen_blocks() == len(enc.blocks()) - 1
    assert all(p.requires_grad for p in enc.blocks()[-1].parameters())
    assert not any(p.requires_grad for p in enc.blocks()[0].parameters())


def fit(enc: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = 200) -> float:
    """Full-batch Adam on encoder + linear head -> training accuracy."""
    model = nn.Sequential(enc, nn.Linear(enc.out_dim, int(y.max()) + 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


@pytest.mark.parametrize("name", list(NUMERIC))
def test_numeric_learns_separable_problem(name):
    torch.manual_seed(0)
    x = torch.randn(256, 4)
    y = (x[:, 0] - x[:, 1] > 0).long()
    x[torch.rand(256, 4) < 0.1] = float("nan")
    x[:, 2] = float("nan")  # a column that is always missing must not break training
    # where a deciding cell is missing the label is not recoverable; score only the rows where both are present
    known = ~torch.isnan(x[:, :2]).any(1)
    assert fit(numeric(name, features=4), x[known], y[known]) >= 0.95


def test_embedding_learns_category_labels():
    torch.manual_seed(0)
    ids = torch.randint(0, 9, (256,))
    y = (ids % 3).long()  # three classes, each a set of categories (0 = unknown is class 0)
    assert fit(CategoryEmbedding(9, out_dim=8), ids, y, steps=100) == 1.0
