"""`train.precision`: what each setting autocasts to on a device, and `auto`'s choice by hardware."""

from __future__ import annotations

import pytest
import torch

from mmcli import loop
from mmcli.config import load_config
from mmcli.errors import UsageError
from tests.helpers import TINY, make_dataset


@pytest.mark.parametrize(("bf16_cpu", "want"), [(True, torch.bfloat16), (False, None)])
def test_auto_is_bf16_only_where_the_cpu_computes_it(monkeypatch, bf16_cpu, want):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: bf16_cpu)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert loop.amp_dtype("auto", "cpu") is want


def test_fixed_settings_do_not_depend_on_the_hardware(monkeypatch):
    monkeypatch.setattr(loop, "native_bf16", lambda device: pytest.fail("asked the hardware"))
    assert loop.amp_dtype("32", "cpu") is None
    assert loop.amp_dtype("bf16", "cpu") is torch.bfloat16
    assert loop.amp_dtype("fp16", "cpu") is torch.bfloat16  # CPU autocast has no fp16 kernels worth using
    assert loop.amp_dtype("fp16", "cuda") is torch.float16


def test_an_unknown_precision_lists_the_valid_ones():
    with pytest.raises(UsageError, match=r"train.precision.*auto"):
        load_config(None, ["train.precision=fp8"])


def test_a_run_with_auto_precision_trains_and_records_the_setting(tmp_path, monkeypatch):
    from mmcli import fit
    from mmcli.train import train

    monkeypatch.setattr(loop, "native_bf16", lambda device: True)
    seen, real = [], fit._tools
    monkeypatch.setattr(fit, "_tools", lambda *a: seen.append(real(*a)) or seen[-1])
    csv = make_dataset(tmp_path / "data")
    run = train(csv, load_config(None, [*TINY, "train.precision=auto", "train.refit=false"]), output=tmp_path / "run")
    assert (run / "model.safetensors").exists()
    assert "precision: auto" in (run / "config.yaml").read_text()
    assert seen and seen[0].amp_dtype is torch.bfloat16  # the steps ran under bf16 autocast
