"""The one place that resolves paths: bundled resources and per-user directories.

Bundled resources live in ``sys._MEIPASS`` when frozen by PyInstaller and next to the package
otherwise. Settings, logs and caches go to platformdirs locations, never next to the code.
"""

from __future__ import annotations

import sys
from pathlib import Path

import platformdirs

from forensics_app import APP_AUTHOR, APP_NAME

BUNDLED_MODEL_NAME = "detector.pt"


def is_frozen() -> bool:
    return bool(getattr(sys, "frozen", False)) and hasattr(sys, "_MEIPASS")


def resources_dir() -> Path:
    """Directory holding the bundled checkpoint, model card, icons and sample images."""
    if is_frozen():
        return Path(sys._MEIPASS) / "resources"  # type: ignore[attr-defined]
    return Path(__file__).resolve().parent.parent / "resources"


def bundled_model_path() -> Path:
    return resources_dir() / "models" / BUNDLED_MODEL_NAME


def model_card_path() -> Path:
    return resources_dir() / "models" / "MODEL_CARD.md"


def user_guide_path() -> Path:
    return resources_dir() / "USER_GUIDE.md"


def samples_dir() -> Path:
    return resources_dir() / "samples"


def icons_dir() -> Path:
    return resources_dir() / "icons"


def user_config_dir() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME, APP_AUTHOR, ensure_exists=True))


def user_log_dir() -> Path:
    return Path(platformdirs.user_log_dir(APP_NAME, APP_AUTHOR, ensure_exists=True))


def user_cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir(APP_NAME, APP_AUTHOR, ensure_exists=True))


def user_data_dir() -> Path:
    """Per-user data (the server's scan cases)."""
    return Path(platformdirs.user_data_dir(APP_NAME, APP_AUTHOR, ensure_exists=True))
