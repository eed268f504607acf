"""core/heap.py: Pillow's block size is set once, never over the user's own setting."""

from __future__ import annotations

import json
import os
import subprocess
import sys

CODE = ("import json; from forensics_app.core.heap import limit_heap_retention as f; "
        "print(json.dumps([f(), f()]))")


def run(env_extra: dict) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if k != "PILLOW_BLOCK_SIZE"}
    env.update(env_extra)
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True,
                         check=True, env=env)
    return json.loads(out.stdout)


def test_block_size_is_set_once_and_recorded():
    first, second = run({})
    assert first["applied"] and first["pillow_block_bytes"] == 64 * 1024 * 1024
    assert second == first


def test_users_own_setting_wins():
    first, _ = run({"PILLOW_BLOCK_SIZE": "4m"})
    assert not first["applied"] and first["pillow_block_bytes"] == 4 * 1024 * 1024


def test_side_car_records_the_heap_setting(tiny_detector):
    from forensics_app.core.scan import ScanOptions
    from forensics_app.core.speed import engine_record

    rec = engine_record(tiny_detector, ScanOptions())
    assert set(rec["heap"]) == {"applied", "pillow_block_bytes", "why"}
