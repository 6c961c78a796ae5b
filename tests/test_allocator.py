"""mmcli.allocator: freed blocks stay with the process, so a second batch of the same size maps no new pages."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")

# Allocate, fill and free a 64 MiB array 8 times; count the page faults of the last 7 (the first maps the block).
PROBE = """
import json, resource, sys
import numpy as np
from mmcli.allocator import keep_freed_memory
applied = keep_freed_memory()
def cycle():
    a = np.ones(16 << 20, dtype=np.float32)
    s = float(a[::4096].sum())
    del a
    return s
cycle()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(7):
    cycle()
print(json.dumps({"applied": applied, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""


def _probe(**env: str) -> dict:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("MM_SYSTEM_MALLOC", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


def test_freed_blocks_are_reused_instead_of_mapped_again():
    kept, system = _probe(), _probe(MM_SYSTEM_MALLOC="1")
    if not kept["applied"]:
        pytest.skip("not glibc: nothing to tune")
    assert system["applied"] is False
    # glibc's default maps each 64 MiB block afresh: thousands of faults (16,384 a block with 4 KiB pages; fewer
    # with huge pages). Kept, the block is the same memory every time.
    assert system["faults"] > 4 * kept["faults"] + 50
    assert kept["faults"] < 1000


@pytest.mark.parametrize("env", [{"MM_SYSTEM_MALLOC": "1"}, {"MALLOC_MMAP_THRESHOLD_": "65536"},
                                 {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=65536"},
                                 {"LD_PRELOAD": "/nonexistent/libjemalloc.so.2"}])
def test_a_users_own_malloc_settings_are_left_alone(env):
    assert _probe(**env)["applied"] is False


def test_the_cli_entry_point_applies_it(monkeypatch):
    from mmcli import allocator, cli

    calls = []
    monkeypatch.setattr(allocator, "keep_freed_memory", lambda: calls.append(1) or True)
    monkeypatch.setattr(sys, "argv", ["mm", "--help"])
    with pytest.raises(SystemExit) as done:
        cli.main()
    assert done.value.code == 0 and calls == [1]
