"""Image encoders: float `[B, 3, H, W]` (normalised with the encoder's own mean/std) -> `[B, D]`.

Every encoder exposes `out_dim`, `mean`, `std` and `image_size` so that the data pipeline can prepare its input.
"""

from __future__ import annotations

import torch
from torch import nn

from mmcli.models.registry import Registry

IMAGE_ENCODERS = Registry("image encoder")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class SmallCNN(nn.Module):
    """Conv-BN-ReLU-MaxPool blocks, global average pool, linear projection to `out_dim`."""

    def __init__(self, out_dim: int = 128, widths: tuple[int, ...] = (32, 64, 128, 128), image_size: int = 64):
        super().__init__()
        layers, c_in = [], 3
        for c_out in widths:
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.proj = nn.Linear(c_in, out_dim)
        self.out_dim, self.image_size = out_dim, image_size
        self.mean, self.std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`[B, 3, H, W]` -> `[B, out_dim]`."""
        return self.proj(self.features(x).mean(dim=(2, 3)))


@IMAGE_ENCODERS.register("cnn")
def build_cnn(embed_dim: int = 128, image_size: int = 64, **_: object) -> SmallCNN:
    """Small 4-block CNN trained from scratch (fast on CPU)."""
    return SmallCNN(embed_dim, image_size=image_size)
