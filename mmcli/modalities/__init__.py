"""Input kinds, one module each (image, audio, numeric, categorical, text); base.py holds the contract and the
registry. Importing this package registers the built-in kinds in their inference order. Nothing here imports torch
at import time: the torch-free bundle runtime prepares inputs with these same modules."""

from mmcli.modalities import image, numeric, categorical, text, audio  # noqa: F401  (registration)
from mmcli.modalities.base import KIND_ORDER, KINDS, Modality, columns, get, register, unregister

__all__ = ["KINDS", "KIND_ORDER", "Modality", "columns", "get", "register", "unregister"]
