"""From-scratch encoders and fusions: shapes, missing modalities, overfitting a tiny batch, fine-tuning controls.

Tiny widths (16) and 16x16 images keep every model fast on CPU.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from mmcli.config import load_config
from mmcli.errors import UsageError
from mmcli.models.classifier import (  # noqa: F401
    MultimodalClassifier,
    build_encoder,
    build_model,
    encoder_settings,
    frozen_inputs,
    fusion_settings,
    param_groups,
)
from mmcli.models.fusion import FUSIONS, LowRankFusion
from mmcli.models.image import IMAGE_ENCODERS
from mmcli.models.text import TEXT_ENCODERS, pretrained_tokenizer_path

SCRATCH_IMAGE = ["cnn", "resnet18", "vit"]
SCRATCH_TEXT = ["bow", "lstm", "gru", "cnn", "transformer"]
ALL_FUSIONS = ["concat", "sum", "product", "gated", "attention", "lmf", "late"]
VOCAB, LENGTH, CLASSES = 30, 8, 4
INPUTS = [{"name": "img", "kind": "image"}, {"name": "title", "kind": "text"}, {"name": "tags", "kind": "text"}]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: these models are far too small to gain from more, and when other test processes share
    the cores, OpenMP threads waiting on each other make small steps many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_cfg(image: str = "cnn", text: str = "bow", fusion: str = "concat", **extra):
    cfg = load_config(overrides=["model.embed_dim=16", "model.hidden_dim=16", "model.dropout=0", "data.image_size=16",
                                 f"data.max_tokens={LENGTH}", f"model.image_encoder={image}",
                                 f"model.text_encoder={text}", f"model.fusion={fusion}"])
    for key, value in extra.items():  # keys config.py may not define yet; the builders read them with getattr
        setattr(cfg.model, key, value)
    return cfg


def fake_batch(model, batch: int = 8, inputs=INPUTS) -> dict[str, torch.Tensor]:
    """Random images at each encoder's size; token ids 1..VOCAB-1 with right padding (0) of varying length."""
    g = torch.Generator().manual_seed(0)
    out = {}
    for inp in inputs:
        enc = model.encoders[inp["name"]]
        if inp["kind"] == "image":
            out[inp["name"]] = torch.randn(batch, 3, enc.image_size, enc.image_size, generator=g)
        else:
            ids = torch.randint(1, VOCAB, (batch, LENGTH), generator=g)
            lengths = torch.arange(batch) % LENGTH + 1
            out[inp["name"]] = ids.masked_fill(torch.arange(LENGTH) >= lengths[:, None], 0)
    return out


def test_registries_list_the_new_names():
    assert set(SCRATCH_IMAGE + ["resnet34", "resnet50", "effnet_lite0", "effnet_lite1", "effnet_lite2", "hf"]) <= set(
        IMAGE_ENCODERS.names())
    assert set(SCRATCH_TEXT + ["hf", "minilm"]) <= set(TEXT_ENCODERS.names())
    assert set(ALL_FUSIONS) <= set(FUSIONS.names())
    for reg in (IMAGE_ENCODERS, TEXT_ENCODERS, FUSIONS):
        assert all(reg.doc(n) for n in reg.names()), "every builder needs a one-line docstring for `mm list`"
    with pytest.raises(UsageError, match="valid names: .*lmf"):
        FUSIONS.get("nope")


@pytest.mark.parametrize("image,text", list(itertools.product(SCRATCH_IMAGE, SCRATCH_TEXT)))
def test_every_combination_gives_finite_logits_with_missing_modalities(image, text):
    """All fusions x (image, text) pairs, three modalities; rows with one, two or no modalities missing."""
    present = torch.tensor([[1, 1, 1], [0, 1, 1], [1, 0, 0], [0, 0, 1], [0, 0, 0], [1, 1, 0]], dtype=torch.bool)
    torch.manual_seed(0)
    cfg = tiny_cfg(image, text)
    # The encoders are built once and shared by the seven models: building ResNet-18 dominates otherwise.
    encoders = {i["name"]: build_encoder(i["kind"], image if i["kind"] == "image" else text, cfg, VOCAB, i["name"])
                for i in INPUTS}
    dims = {n: e.out_dim for n, e in encoders.items()}
    for fusion in ALL_FUSIONS:
        fuse = FUSIONS.build(fusion, dims=dims, num_classes=CLASSES, embed_dim=cfg.model.embed_dim)
        model = MultimodalClassifier(encoders, fuse, CLASSES, hidden_dim=16, dropout=0.0)
        x = fake_batch(model, batch=len(present))
        for train in (True, False):
            model.train(train)
            logits = model(x, present)
            assert logits.shape == (len(present), CLASSES), fusion
            assert torch.isfinite(logits).all(), (fusion, train)
        model.zero_grad()
        logits.sum().backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads), fusion


def overfit(cfg, steps: int = 30, lr: float = 1e-2) -> tuple[float, float]:
    """Adam on one fixed batch of 8 rows, 4 classes. -> (first loss, best of the last 5 losses)."""
    torch.manual_seed(0)
    inputs = INPUTS[:2]
    model = build_model(cfg, inputs, CLASSES, VOCAB)
    x, labels = fake_batch(model, inputs=inputs), torch.arange(8) % CLASSES
    present = torch.ones(8, 2, dtype=torch.bool)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        loss = nn.functional.cross_entropy(model(x, present), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses[0], min(losses[-5:])


# Each encoder with each fusion: image encoders beside bow, text encoders beside the small CNN. ResNet-18 (11 M
# parameters, ~0.1 s a step on one core) overfits once, briefly, here; with the other fusions its forward and backward pass
# is covered above, and what a fusion sees does not depend on which encoder made the [B, D] input.
OVERFIT = ([(i, "bow", f) for i in ("cnn", "vit") for f in ALL_FUSIONS]
           + [("cnn", t, f) for t in SCRATCH_TEXT if t != "bow" for f in ALL_FUSIONS] + [("resnet18", "bow", "concat")])


@pytest.mark.parametrize("image,text,fusion", OVERFIT)
def test_overfits_a_tiny_batch(image, text, fusion):
    first, last = overfit(tiny_cfg(image, text, fusion), steps=10 if image == "resnet18" else 30)
    assert first > 1.0  # chance level for 4 classes is ln 4 = 1.39
    assert last < 0.25 * first, f"{image}+{text}+{fusion}: loss {first:.3f} -> {last:.3f}"


@pytest.mark.parametrize("text", SCRATCH_TEXT)
def test_text_encoders_ignore_padding(text):
    """More trailing padding must not change a text's embedding; an all-padding text gives a finite one."""
    torch.manual_seed(0)
    enc = TEXT_ENCODERS.build(text, vocab_size=VOCAB, embed_dim=16, max_tokens=12).eval()
    ids = torch.tensor([[5, 6, 7, 0, 0, 0, 0, 0], [3, 0, 0, 0, 0, 0, 0, 0], [0] * 8])
    wider = torch.cat([ids, torch.zeros(3, 4, dtype=torch.long)], dim=1)
    with torch.no_grad():
        a, b = enc(ids), enc(wider)
    assert a.shape == (3, enc.out_dim) and torch.isfinite(a).all()
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("depth,width", [(34, 512), (50, 2048)])
def test_deeper_resnets_build_and_project(depth, width, tmp_path):
    enc = IMAGE_ENCODERS.build(f"resnet{depth}", embed_dim=16, image_size=32)
    assert enc.out_dim == 16 and not enc.pretrained and enc.mean == (0.485, 0.456, 0.406)
    assert enc(torch.randn(2, 3, 32, 32)).shape == (2, 16)


def test_resnet_loads_a_local_weights_file_at_native_width(tmp_path):
    import torchvision

    reference = torchvision.models.resnet18(weights=None)
    torch.save(reference.state_dict(), tmp_path / "r18.pth")
    enc = IMAGE_ENCODERS.build("resnet18", embed_dim=16, image_size=32,
                               image_weights=str(tmp_path / "r18.pth"))
    assert enc.pretrained and enc.out_dim == 512
    torch.testing.assert_close(enc.trunk.conv1.weight, reference.conv1.weight)
    with pytest.raises(UsageError, match="not found"):
        IMAGE_ENCODERS.build("resnet18", image_weights=str(tmp_path / "missing.pth"))
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(UsageError, match="does not fit"):
        IMAGE_ENCODERS.build("resnet18", image_weights=str(tmp_path / "bad.pth"))


def test_vit_rounds_its_input_size_to_whole_patches():
    enc = IMAGE_ENCODERS.build("vit", embed_dim=16, image_size=60, vit_hidden=32, vit_layers=1)
    assert enc.image_size == 56 and enc.out_dim == 16
    assert enc(torch.randn(2, 3, 56, 56)).shape == (2, 16)


def _embs(batch: int = 5) -> tuple[dict[str, int], dict[str, torch.Tensor]]:
    dims = {"a": 6, "b": 4, "c": 3}
    return dims, {n: torch.randn(batch, d) for n, d in dims.items()}


@pytest.mark.parametrize("fusion", ["gated", "attention", "late"])
def test_masking_fusions_ignore_absent_modalities(fusion):
    """Changing an absent modality's embedding must not change the output of a row that has other modalities."""
    torch.manual_seed(0)
    dims, embs = _embs()
    fuse = FUSIONS.build(fusion, dims=dims, num_classes=3, **fusion_settings(tiny_cfg())).eval()
    present = torch.tensor([[1, 0, 1]] * 5, dtype=torch.bool)
    other = dict(embs, b=torch.randn(5, 4) * 10)
    torch.testing.assert_close(fuse(embs, present), fuse(other, present))


def test_late_fusion_averages_present_heads():
    torch.manual_seed(0)
    dims, embs = _embs(2)
    fuse = FUSIONS.build("late", dims=dims, num_classes=3).eval()
    assert fuse.produces_logits and fuse.out_dim == 3
    heads = {n: fuse.heads[n](e) for n, e in embs.items()}
    present = torch.tensor([[1, 0, 1], [0, 0, 0]], dtype=torch.bool)
    out = fuse(embs, present)
    torch.testing.assert_close(out[0], (heads["a"][0] + heads["c"][0]) / 2)
    torch.testing.assert_close(out[1], sum(heads.values())[1] / 3)  # nothing present: all heads


def test_lmf_equals_the_full_outer_product_it_factorises():
    """Liu et al. 2018, eq. 6: W . (z_a (x) z_b) with W = sum_r w_r W_a^(r) (x) W_b^(r), z = [x; 1]."""
    torch.manual_seed(0)
    fuse = LowRankFusion({"a": 3, "b": 2}, width=4, rank=3)
    xa, xb = torch.randn(5, 3), torch.randn(5, 2)
    za, zb = (torch.cat([x, torch.ones(5, 1)], dim=1) for x in (xa, xb))
    weight = torch.einsum("r,raf,rbf->abf", fuse.rank_weights[0], fuse.factors["a"], fuse.factors["b"])
    expected = torch.einsum("na,nb,abf->nf", za, zb, weight) + fuse.bias
    torch.testing.assert_close(fuse({"a": xa, "b": xb}, torch.ones(5, 2, dtype=torch.bool)), expected)


def test_late_fusion_model_has_no_extra_head():
    model = build_model(tiny_cfg(fusion="late"), INPUTS, CLASSES, VOCAB)
    assert isinstance(model.head, nn.Identity)


def test_freeze_by_column_kind_or_encoder_name():
    for key in ("img", "image", "cnn"):
        model = build_model(tiny_cfg(freeze=[key]), INPUTS, CLASSES, VOCAB)
        assert frozen_inputs(model) == ["img"], key
        assert not model.encoders["img"].trainable_parameters()
    model = build_model(tiny_cfg(freeze=["text"]), INPUTS, CLASSES, VOCAB)
    assert frozen_inputs(model) == ["title", "tags"]
    assert frozen_inputs(build_model(tiny_cfg(), INPUTS, CLASSES, VOCAB)) == []


def test_frozen_encoder_stays_in_eval_mode_and_runs_without_autograd():
    model = build_model(tiny_cfg(freeze=["img"]), INPUTS, CLASSES, VOCAB).train()
    enc = model.encoders["img"]
    assert not enc.training and model.encoders["title"].training
    stats = enc.features[1].running_mean.clone()
    x = fake_batch(model)
    logits = model(x, torch.ones(8, 3, dtype=torch.bool))
    torch.testing.assert_close(enc.features[1].running_mean, stats)  # BatchNorm statistics did not move
    logits.sum().backward()
    assert all(p.grad is None for p in enc.parameters())
    # cached embeddings of a frozen encoder give the same logits as running it
    model.eval()
    with torch.no_grad():
        cached = {"img": enc(x["img"])}
        torch.testing.assert_close(model({k: v for k, v in x.items() if k != "img"}, torch.ones(8, 3).bool(), cached),
                                   model(x, torch.ones(8, 3).bool()))


def test_unfreeze_last_keeps_only_the_top_blocks_trainable():
    model = build_model(tiny_cfg(image="vit", freeze=["img"], unfreeze_last=2, vit_hidden=32), INPUTS, CLASSES,
                        VOCAB)
    vit = model.encoders["img"]
    blocks = vit.blocks()  # conv_proj, 4 transformer layers, heads
    assert not any(p.requires_grad for b in blocks[:-2] for p in b.parameters())
    assert all(p.requires_grad for b in blocks[-2:] for p in b.parameters())
    assert vit.vit.encoder.ln.weight.requires_grad  # the final norm follows the last layer, so it trains too
    assert not vit.vit.class_token.requires_grad and frozen_inputs(model) == []
    everything = build_model(tiny_cfg(freeze=["img"], unfreeze_last=99), INPUTS, CLASSES, VOCAB)
    assert all(p.requires_grad for p in everything.parameters())


def test_unfreeze_last_skips_blocks_without_parameters(tmp_path):
    """A ResNet loaded from weights has an Identity projection as its last block: "last 1" is then layer4's last."""
    import torchvision

    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "r18.pth")
    enc = IMAGE_ENCODERS.build("resnet18", image_size=32, image_weights=str(tmp_path / "r18.pth"))
    enc.freeze(unfreeze_last=1)
    trainable = {n for n, p in enc.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in enc.named_parameters() if n.startswith("trunk.layer4.1.")}


def test_param_groups_give_pretrained_encoders_their_own_lr(tmp_path):
    import torchvision

    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "r18.pth")
    cfg = tiny_cfg(image="resnet18", image_weights=str(tmp_path / "r18.pth"), freeze=["title"])
    model = build_model(cfg, INPUTS, CLASSES, VOCAB)
    groups = param_groups(model, lr=1e-3, pretrained_lr=1e-5)
    by_lr = {g["lr"]: {id(p) for p in g["params"]} for g in groups}
    assert by_lr[1e-5] == {id(p) for p in model.encoders["img"].parameters()}
    grouped = set().union(*by_lr.values())
    assert not grouped & {id(p) for p in model.encoders["title"].parameters()}  # frozen: left out
    assert grouped == {id(p) for p in model.parameters() if p.requires_grad}
    assert groups[-1]["lr"] == 1e-3  # the main learning rate is always the last group's
    decayed = param_groups(model, lr=1e-3, pretrained_lr=1e-5, weight_decay=0.1)
    assert {(g["lr"], g["weight_decay"]) for g in decayed} == {(1e-3, 0.1), (1e-3, 0.0), (1e-5, 0.1), (1e-5, 0.0)}
    assert all(p.ndim < 2 for g in decayed if g["weight_decay"] == 0.0 for p in g["params"])
    torch.optim.AdamW(decayed, lr=1e-3).step()  # the groups are valid AdamW input


def test_pretrained_lrs_set_one_encoders_rate_by_kind_or_column(tmp_path):
    import torchvision

    from mmcli.errors import UsageError

    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "r18.pth")
    cfg = tiny_cfg(image="resnet18", image_weights=str(tmp_path / "r18.pth"), freeze=["title"])
    model = build_model(cfg, INPUTS, CLASSES, VOCAB)
    image = {id(p) for p in model.encoders["img"].parameters()}
    for by in ({"image": 3e-4}, {"img": 3e-4}, {"image": 1e-2, "img": 3e-4}):  # the column wins over the kind
        groups = param_groups(model, lr=1e-3, pretrained_lr=1e-5, pretrained_lrs=by)
        assert {id(p) for g in groups if g["lr"] == 3e-4 for p in g["params"]} == image
        assert groups[-1]["lr"] == 1e-3 and not any(g["lr"] == 1e-5 for g in groups)
    # a kind without a pretrained encoder is accepted and changes nothing (a preset applies to any data)
    same = param_groups(model, lr=1e-3, pretrained_lr=1e-5, pretrained_lrs={"text": 3e-4, "audio": 1.0})
    assert [(g["lr"], len(g["params"])) for g in same] == [(g["lr"], len(g["params"]))
                                                           for g in param_groups(model, lr=1e-3, pretrained_lr=1e-5)]
    with pytest.raises(UsageError, match="valid: image, .*text, img"):
        param_groups(model, lr=1e-3, pretrained_lrs={"imgs": 3e-4})  # a typo


@pytest.mark.parametrize("image", SCRATCH_IMAGE)
def test_state_dict_saves_as_safetensors(image, tmp_path):
    """Run folders store weights with safetensors, which refuses tensors that share memory."""
    from safetensors.torch import load_file, save_file

    model = build_model(tiny_cfg(image=image, fusion="attention"), INPUTS, CLASSES, VOCAB)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp_path / "m.safetensors"))
    assert load_file(str(tmp_path / "m.safetensors")).keys() == state.keys()


def test_scratch_text_encoders_need_no_pretrained_tokenizer():
    assert pretrained_tokenizer_path(tiny_cfg(text="transformer")) is None


def test_cnn_widths_set_the_conv_blocks():
    cfg = load_config(None, ["model.cnn_widths=[4,8]", "model.embed_dim=16"])
    enc = build_encoder("image", "cnn", cfg, None)
    convs = [m for m in enc.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [4, 8]
    assert enc(torch.rand(2, 3, 32, 32)).shape == (2, 16)


@pytest.mark.parametrize("fusion", ["concat", "attention", "late"])
def test_ablation_with_one_encoder_pass_matches_the_model_per_mask(fusion):
    """`predict_with_masks` runs each encoder once per batch and re-masks its output: the probabilities must be
    those of the model called with each presence mask, for rows missing an input too."""
    import numpy as np

    from mmcli.ablation import predict_with_masks

    torch.manual_seed(0)
    model = build_model(tiny_cfg(fusion=fusion), INPUTS, CLASSES, VOCAB).eval()
    with torch.no_grad():  # a trained model's missing embeddings are not zero: make sure they are used
        for p in model.missing.values():
            p.normal_()
    present = torch.tensor([[1, 1, 1], [0, 1, 1], [1, 0, 1], [1, 1, 0], [1, 0, 0], [0, 1, 1]], dtype=torch.bool)
    x = fake_batch(model, batch=len(present))
    batches = [(x, present, torch.arange(len(present)) % CLASSES, torch.arange(len(present)))]
    masks = [np.array(m, dtype=bool) for m in ([1, 1, 1], [1, 0, 0], [0, 1, 1], [0, 0, 1])]
    probs, labels, positions = predict_with_masks(model, batches, masks)
    for keep, got in zip(masks, probs):
        with torch.no_grad():
            want = torch.softmax(model(x, present & torch.as_tensor(keep)[None, :]), dim=1).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert labels.tolist() == [0, 1, 2, 3, 0, 1] and positions.tolist() == list(range(6))
