"""core/heap.py: glibc's mmap threshold is fixed once, never over the user's own setting."""

from __future__ import annotations

import subprocess
import sys

import pytest

CODE = ("import json; from forensics_app.core.heap import limit_heap_retention as f; "
        "print(json.dumps([f(), f()]))")


def run(env_extra: dict) -> list[dict]:
    import json
    import os

    env = {k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_THRESHOLD_"}
    env.update(env_extra)
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True,
                         check=True, env=env)
    return json.loads(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_threshold_is_fixed_once_and_recorded():
    first, second = run({})
    if "another C library" in first["why"]:
        pytest.skip("not glibc")
    assert first["applied"] and first["mmap_threshold"] == 8 * 1024 * 1024
    assert second == first


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_users_own_setting_wins():
    first, _ = run({"MALLOC_MMAP_THRESHOLD_": "131072"})
    assert not first["applied"] and "MALLOC_MMAP_THRESHOLD_" in first["why"]


def test_side_car_records_the_heap_setting(tiny_detector):
    from forensics_app.core.scan import ScanOptions
    from forensics_app.core.speed import engine_record

    rec = engine_record(tiny_detector, ScanOptions())
    assert set(rec["heap"]) == {"applied", "mmap_threshold", "why"}
