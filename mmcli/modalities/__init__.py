"""Input kinds, one module each (image, text, numeric, categorical, audio); base.py holds the contract and the
registry. Importing this package registers the built-in kinds in their inference order."""

from mmcli.modalities import image, numeric, categorical, text  # noqa: F401  (registration, in KIND_ORDER)
from mmcli.modalities.base import KIND_ORDER, KINDS, Modality, columns, get, register, unregister

__all__ = ["KINDS", "KIND_ORDER", "Modality", "columns", "get", "register", "unregister"]
