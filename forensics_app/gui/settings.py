"""Persistent user settings: a small JSON file in the platformdirs user config directory."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from forensics_app.core.bomb_guard import DEFAULT_MAX_COMPRESSION_RATIO, DEFAULT_MAX_PIXELS
from forensics_app.paths import user_config_dir

log = logging.getLogger(__name__)

SETTINGS_FILE = "settings.json"


def default_settings_path() -> Path:
    return user_config_dir() / SETTINGS_FILE


@dataclass
class AppSettings:
    geometry: str = ""  # base64 of QMainWindow.saveGeometry()
    window_state: str = ""  # base64 of QMainWindow.saveState() (docks, toolbar)
    last_folder: str = ""
    recursive: bool = True
    device: str = "auto"  # auto | cpu | cuda
    threshold: float | None = None  # None: the checkpoint's own
    band: float | None = None
    model_path: str = ""  # "": the bundled model
    fake_index: int = 1
    preprocess_mode: str = "full"
    heatmap_opacity: float = 0.5
    c2pa_trust_anchors: str = ""  # PEM file of C2PA trust anchors; "": none (untrusted)
    # The decompression-bomb guard (core.bomb_guard); raise for genuine very large images.
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_compression_ratio: float = DEFAULT_MAX_COMPRESSION_RATIO
    hidden_columns: list | None = None  # results-table column titles hidden (None: defaults)

    @classmethod
    def load(cls, path: Path) -> AppSettings:
        """Read settings; a missing, unreadable or partly invalid file falls back to defaults."""
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable settings %s: %s", path, exc)
            return cls()
        if not isinstance(raw, dict):
            return cls()
        settings = cls()
        for f in dataclasses.fields(cls):
            if f.name not in raw:
                continue
            value, default = raw[f.name], getattr(settings, f.name)
            if default is None or value is None or isinstance(value, type(default)) or (
                    isinstance(default, float) and isinstance(value, int)):
                setattr(settings, f.name, value)
        if settings.device not in ("auto", "cpu", "cuda"):
            settings.device = "auto"
        if not (isinstance(settings.max_pixels, int) and settings.max_pixels >= 1):
            settings.max_pixels = DEFAULT_MAX_PIXELS
        if not (isinstance(settings.max_compression_ratio, int | float)
                and settings.max_compression_ratio > 0):
            settings.max_compression_ratio = DEFAULT_MAX_COMPRESSION_RATIO
        for name in ("threshold", "band"):
            value = getattr(settings, name)
            if value is not None and not (isinstance(value, int | float) and 0 <= value <= 1):
                setattr(settings, name, None)
        return settings

    def save(self, path: Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".settings.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(dataclasses.asdict(self), fh, indent=2)
            os.replace(tmp, path)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            log.warning("could not save settings to %s: %s", path, exc)
