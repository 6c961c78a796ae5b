"""Input kinds, one module each (image, audio, numeric, categorical, text); base.py holds the contract and the
registry. Importing this package registers the built-in kinds in their inference order. Nothing here imports torch
at import time: the torch-free bundle runtime prepares inputs with these same modules."""

from mmcli.modalities import audio, categorical, image, numeric, text  # noqa: F401  (registration)
from mmcli.modalities.base import KIND_ORDER, KINDS, Modality, columns, get, register, unregister

# Inference order, whatever order the modules were imported in: a path is an image or audio before it could be
# text, a column of numbers numeric before it could be categorical; text takes the string columns left.
BUILTIN_ORDER = ("image", "audio", "numeric", "categorical", "text")
KIND_ORDER.sort(key=lambda k: BUILTIN_ORDER.index(k) if k in BUILTIN_ORDER else len(BUILTIN_ORDER))

__all__ = ["BUILTIN_ORDER", "KINDS", "KIND_ORDER", "Modality", "columns", "get", "register", "unregister"]
