"""Image encoders: float `[B, 3, H, W]` (normalised with the encoder's own mean/std) -> `[B, D]`.

Every encoder exposes `out_dim`, `mean`, `std` (tuples on the 0..1 pixel scale: x/255, then (x - mean) / std) and
`image_size`, so that the data pipeline can prepare its input. Pretrained encoders live in `pretrained.py`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from mmcli.errors import UsageError
from mmcli.models.encoder import Encoder, num_heads
from mmcli.models.registry import IMAGE_ENCODERS

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "IMAGE_ENCODERS", "ResNetEncoder", "SmallCNN", "ViTEncoder"]


class SmallCNN(Encoder):
    """Conv-BN-ReLU-MaxPool blocks, global average pool, linear projection to `out_dim`."""

    kind = "image"

    def __init__(self, out_dim: int = 128, widths: tuple[int, ...] = (8, 16, 32, 64), image_size: int = 64):
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

    def blocks(self) -> list[nn.Module]:
        # Flat `features` keeps the state-dict keys of saved runs; each conv block is 4 consecutive layers.
        return [self.features[i : i + 4] for i in range(0, len(self.features), 4)] + [self.proj]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`[B, 3, H, W]` -> `[B, out_dim]`."""
        return self.proj(self.features(x).mean(dim=(2, 3)))


@IMAGE_ENCODERS.register("cnn")
def build_cnn(embed_dim: int = 128, image_size: int = 64, cnn_widths: tuple[int, ...] = (8, 16, 32, 64),
              **_: object) -> SmallCNN:
    """Small CNN trained from scratch (fast on CPU); `model.cnn_widths` sets its blocks."""
    return SmallCNN(embed_dim, widths=tuple(int(w) for w in cnn_widths), image_size=image_size)


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """A local `.safetensors` or torch checkpoint -> state dict. `weights_only` so that loading runs no code."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UsageError(f"config key 'model.image_weights': weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise UsageError(f"config key 'model.image_weights': cannot read {path}: {exc}") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    return {k.removeprefix("module."): v for k, v in state.items()}


class ResNetEncoder(Encoder):
    """torchvision ResNet trunk (global-average-pooled features), optionally projected to `out_dim`.

    From scratch it projects to `embed_dim`; loaded from a weights file it exposes its native width (512 or 2048) so
    that, frozen, its features are fixed and cacheable.
    """

    kind = "image"

    def __init__(self, depth: int, out_dim: int | None, image_size: int, weights: str | None = None):
        super().__init__()
        import torchvision

        self.trunk = getattr(torchvision.models, f"resnet{depth}")(weights=None)
        width = self.trunk.fc.in_features
        self.trunk.fc = nn.Identity()  # the ImageNet classifier is not part of the encoder
        if weights:
            self._load(weights)
            self.pretrained = True
        self.proj = nn.Linear(width, out_dim) if out_dim else nn.Identity()
        self.out_dim = out_dim or width
        self.image_size, self.mean, self.std = image_size, IMAGENET_MEAN, IMAGENET_STD

    def _load(self, weights: str) -> None:
        state = {k: v for k, v in load_state_dict_file(weights).items() if not k.startswith("fc.")}
        try:
            missing, unexpected = self.trunk.load_state_dict(state, strict=False)
        except RuntimeError as exc:  # shape mismatches
            missing, unexpected = [str(exc).splitlines()[-1].strip()], []
        if missing or unexpected:
            raise UsageError(f"config key 'model.image_weights': {weights} does not fit this ResNet: "
                             f"missing {missing[:3]}, unexpected {unexpected[:3]}")

    def blocks(self) -> list[nn.Module]:
        t = self.trunk
        stem = nn.ModuleList([t.conv1, t.bn1])
        return [stem, *t.layer1, *t.layer2, *t.layer3, *t.layer4, self.proj]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`[B, 3, H, W]` -> `[B, out_dim]`. Any H, W >= 32 works (global average pool)."""
        return self.proj(self.trunk(x))


def _resnet(depth: int, embed_dim: int, image_size: int, weights: str | None) -> ResNetEncoder:
    return ResNetEncoder(depth, None if weights else embed_dim, image_size, weights)


@IMAGE_ENCODERS.register("resnet18")
def build_resnet18(embed_dim: int = 128, image_size: int = 64, image_weights: str | None = None,
                   **_: object) -> ResNetEncoder:
    """torchvision ResNet-18 (from scratch, or weights from model.image_weights)."""
    return _resnet(18, embed_dim, image_size, image_weights)


@IMAGE_ENCODERS.register("resnet34")
def build_resnet34(embed_dim: int = 128, image_size: int = 64, image_weights: str | None = None,
                   **_: object) -> ResNetEncoder:
    """torchvision ResNet-34 (from scratch, or weights from model.image_weights)."""
    return _resnet(34, embed_dim, image_size, image_weights)


@IMAGE_ENCODERS.register("resnet50")
def build_resnet50(embed_dim: int = 128, image_size: int = 64, image_weights: str | None = None,
                   **_: object) -> ResNetEncoder:
    """torchvision ResNet-50 (from scratch, or weights from model.image_weights)."""
    return _resnet(50, embed_dim, image_size, image_weights)


class ViTEncoder(Encoder):
    """A small torchvision VisionTransformer (Dosovitskiy et al. 2021); the class token, projected to `out_dim`.

    `image_size` is rounded down to a multiple of `patch_size`; the data pipeline resizes to it.
    """

    kind = "image"

    def __init__(self, out_dim: int = 128, image_size: int = 64, patch_size: int = 8, layers: int = 4,
                 hidden: int = 128, heads: int = 4, mlp: int = 256, dropout: float = 0.0):
        super().__init__()
        from torchvision.models import VisionTransformer

        patch_size = min(patch_size, image_size)
        self.image_size = image_size - image_size % patch_size
        self.vit = VisionTransformer(self.image_size, patch_size, layers, heads, hidden, mlp, dropout=dropout,
                                     num_classes=out_dim)
        # torchvision zero-initialises the head (right for a classifier, but here it is a projection: zero weights
        # would block every gradient into the transformer at the first step).
        self.vit.heads.head.reset_parameters()
        self.out_dim = out_dim
        self.mean, self.std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)

    def blocks(self) -> list[nn.Module]:
        return [self.vit.conv_proj, *self.vit.encoder.layers, self.vit.heads]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`[B, 3, S, S]` with S = `image_size` -> `[B, out_dim]`."""
        return self.vit(x)


@IMAGE_ENCODERS.register("vit")
def build_vit(embed_dim: int = 128, image_size: int = 64, vit_patch: int = 8, vit_layers: int = 4,
              vit_hidden: int = 128, **_: object) -> ViTEncoder:
    """Small Vision Transformer from scratch (patch 8, 4 layers, width 128)."""
    return ViTEncoder(embed_dim, image_size, patch_size=vit_patch, layers=vit_layers, hidden=vit_hidden,
                      heads=num_heads(vit_hidden), mlp=2 * vit_hidden)
