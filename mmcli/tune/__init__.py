"""`mm tune`: hyperparameter search over mmcli configs with Optuna (search space, study, pruning, outputs).

The package root imports nothing heavy: `mmcli.tune.space` is read by the CLI before optuna or torch load.
"""
