"""Encoders, fusions and the classifier, each kind in a registry by short name.

Importing the package fills every registry (including the pretrained encoders, whose optional packages are imported
only when one is built), so `mmcli.models.registry.IMAGE_ENCODERS` is complete wherever it is reached from.
"""

from mmcli.models import audio, effnet, fusion, image, pretrained, tabular, text  # noqa: F401 - imported for their registrations
