"""``forensics_app.paths``: bundled resources frozen vs not; user data never next to the code."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import forensics_app
from forensics_app import paths

PACKAGE_DIR = Path(forensics_app.__file__).resolve().parent


@pytest.fixture
def frozen(tmp_path, monkeypatch) -> Path:
    bundle = tmp_path / "bundle"
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(bundle), raising=False)
    return bundle


@pytest.fixture
def user_dirs(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    for var, sub in (("HOME", ""), ("XDG_CONFIG_HOME", ".config"), ("XDG_CACHE_HOME", ".cache"),
                     ("XDG_STATE_HOME", ".local/state"), ("XDG_DATA_HOME", ".local/share")):
        monkeypatch.setenv(var, str(home / sub))
    return home


def test_unfrozen_resources_sit_beside_the_package(monkeypatch):
    monkeypatch.delattr(sys, "frozen", raising=False)
    monkeypatch.delattr(sys, "_MEIPASS", raising=False)
    assert not paths.is_frozen()
    assert paths.resources_dir() == PACKAGE_DIR.parent / "resources"
    assert paths.bundled_model_path() == PACKAGE_DIR.parent / "resources" / "models" / "detector.pt"


def test_frozen_resources_come_from_meipass(frozen):
    assert paths.is_frozen()
    assert paths.resources_dir() == frozen / "resources"
    assert paths.bundled_model_path() == frozen / "resources" / "models" / paths.BUNDLED_MODEL_NAME
    assert paths.model_card_path() == frozen / "resources" / "models" / "MODEL_CARD.md"
    assert paths.samples_dir() == frozen / "resources" / "samples"
    assert paths.icons_dir() == frozen / "resources" / "icons"


def test_frozen_flag_without_meipass_is_not_frozen(monkeypatch):
    """Other freezers set sys.frozen but not _MEIPASS: fall back to the package layout."""
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.delattr(sys, "_MEIPASS", raising=False)
    assert not paths.is_frozen()
    assert paths.resources_dir() == PACKAGE_DIR.parent / "resources"


@pytest.mark.skipif(sys.platform != "linux", reason="XDG variables are Linux-only")
def test_user_dirs_follow_platformdirs_and_exist(user_dirs):
    config, logs, cache = paths.user_config_dir(), paths.user_log_dir(), paths.user_cache_dir()
    for d in (config, logs, cache):
        assert d.is_dir()
        assert user_dirs in d.parents
        assert PACKAGE_DIR.parent not in d.parents and PACKAGE_DIR not in d.parents
        assert forensics_app.APP_NAME in d.parts
    assert config.is_relative_to(user_dirs / ".config")
    assert cache.is_relative_to(user_dirs / ".cache")


def test_user_dirs_do_not_depend_on_freezing(frozen, user_dirs):
    assert frozen not in paths.user_config_dir().parents
