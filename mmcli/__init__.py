"""mmcli: train, evaluate and serve multimodal classifiers from the command line."""

__version__ = "0.1.0"
