"""Encoders, fusions and the classifier, each kind in a registry by short name."""
