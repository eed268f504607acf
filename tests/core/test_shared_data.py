"""Real-world files from ../shared/data go through the engine (skipped when it is absent)."""

from __future__ import annotations

import hashlib

import pytest

from forensics_app.core.scan import discover_files, scan_files

pytestmark = pytest.mark.shared_data


def test_dev_test_sample_scans_cleanly(shared_data, tiny_detector):
    dev = shared_data / "dev_test"
    if not dev.is_dir():
        pytest.skip("../shared/data/dev_test is absent")
    files = []
    for label_dir in sorted(dev.glob("*/[01]_*")):
        files += discover_files([label_dir])[:1]  # one real and one fake per set
    assert files, "dev_test holds no images"
    results = scan_files(files, tiny_detector)
    assert [r.error for r in results] == [None] * len(files)
    for r in results:
        assert 0.0 <= r.prob_fake <= 1.0 and r.width and r.height
        with open(r.path, "rb") as fh:
            assert r.sha256 == hashlib.sha256(fh.read()).hexdigest()
