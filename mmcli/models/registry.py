"""Registries by short name (one dict per kind); an unknown name lists the valid ones."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mmcli.errors import UsageError


class Registry:
    """name -> builder. `@REG.register("cnn")` on a builder; `REG.build("cnn", **kwargs)`."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._builders: dict[str, Callable[..., Any]] = {}

    def register(self, name: str) -> Callable:
        def wrap(fn: Callable) -> Callable:
            self._builders[name] = fn
            return fn

        return wrap

    def names(self) -> list[str]:
        return sorted(self._builders)

    def get(self, name: str) -> Callable:
        if name not in self._builders:
            raise UsageError(f"unknown {self.kind} '{name}'; valid names: {', '.join(self.names())}")
        return self._builders[name]

    def build(self, name: str, **kwargs: Any) -> Any:
        return self.get(name)(**kwargs)

    def doc(self, name: str) -> str:
        return ((self._builders[name].__doc__ or "").strip().splitlines() or [""])[0]


# One registry per kind. They live here (not in image.py / text.py / fusion.py) so that every module that registers
# builders, including the optional pretrained ones, can import them without import cycles.
IMAGE_ENCODERS = Registry("image encoder")
TEXT_ENCODERS = Registry("text encoder")
NUMERIC_ENCODERS = Registry("numeric encoder")
CATEGORICAL_ENCODERS = Registry("categorical encoder")
AUDIO_ENCODERS = Registry("audio encoder")
FUSIONS = Registry("fusion")

# input kind -> its encoders (mmcli/modalities/ names the kinds; a kind added there registers its own here)
ENCODERS: dict[str, Registry] = {"image": IMAGE_ENCODERS, "text": TEXT_ENCODERS, "numeric": NUMERIC_ENCODERS,
                                 "categorical": CATEGORICAL_ENCODERS, "audio": AUDIO_ENCODERS}


def add_kind(kind: str) -> Registry:
    """The encoder registry of a new input kind (created once; a kind module calls this for its encoders)."""
    return ENCODERS.setdefault(kind, Registry(f"{kind} encoder"))


def encoders_for(kind: str) -> Registry:
    """The encoder registry of an input kind; an unknown kind is a UsageError listing the known ones."""
    if kind not in ENCODERS:
        raise UsageError(f"no encoders for input kind '{kind}'; kinds with encoders: {', '.join(sorted(ENCODERS))}")
    return ENCODERS[kind]
