"""The "Model" dialog: what is loaded, its model card, and loading another checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from forensics_app.gui.markdown_view import set_markdown
from forensics_app.gui.records import EnvInfo, ModelInfo
from forensics_app.paths import bundled_model_path, model_card_path

# Metadata keys shown in the facts table rather than in the free-form section.
_FACT_KEYS = {"architecture", "threshold", "inconclusive_band", "calibration"}


def _meta_lines(value: Any, depth: int = 0) -> list[str]:
    pad = "  " * depth
    if isinstance(value, dict):
        lines = []
        for k, v in value.items():
            if isinstance(v, dict | list) and v and depth < 3:
                lines.append(f"{pad}- **{k}**")
                lines.extend(_meta_lines(v, depth + 1))
            else:
                lines.append(f"{pad}- **{k}**: {_short(v)}")
        return lines
    if isinstance(value, list):
        if all(not isinstance(v, dict | list) for v in value):
            return [f"{pad}- {_short(value)}"]
        return [line for v in value[:20] for line in _meta_lines(v, depth)]
    return [f"{pad}- {_short(value)}"]


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list) and len(v) > 16 and all(
            isinstance(x, int | float | list) for x in v[:16]):  # a head's weights: its shape
        inner = f" × {len(v[0])}" if isinstance(v[0], list) else ""
        return f"[{len(v)}{inner} numbers]"
    text = ", ".join(map(_short, v)) if isinstance(v, list) else str(v)
    return text if len(text) <= 200 else text[:200] + "…"


def describe_arch(arch: dict[str, Any]) -> str:
    parts = [str(arch.get("name", "?"))]
    stages = arch.get("stages", 4)
    if stages != 4:
        parts.append(f"first {stages} of 4 stages")
    if arch.get("input_transform", "none") != "none":
        parts.append(f"input transform {arch['input_transform']}")
    parts.append(f"{arch.get('num_outputs', 1)}-output head")
    return ", ".join(parts)


def model_markdown(info: ModelInfo | None, env: EnvInfo | None, error: str | None,
                   loading: bool) -> str:
    lines: list[str] = []
    if loading:
        lines += ["*Loading…*", ""]
    if error:
        lines += ["## The last model could not be loaded", "", error, ""]
    if info is None:
        bundled = bundled_model_path()
        lines += ["## No model loaded", ""]
        if not bundled.is_file():
            lines += [f"No model is bundled with this build yet (expected `{bundled}`).",
                      "Use **Load checkpoint…** to choose one, for example the official "
                      "CNNDetection weights (`blur_jpg_prob0.5.pth`).", ""]
    else:
        lines += [
            "## Loaded model", "",
            "| Property | Value |", "|---|---|",
            f"| File | {info.file_name}{' (bundled)' if info.bundled else ''} |",
            f"| Location | `{info.path}` |",
            f"| SHA-256 | `{info.sha256}` |",
            f"| Checkpoint format | {info.kind} |",
            f"| Network | {describe_arch(info.arch)} |",
            f"| Decision threshold | {info.threshold:.2f} (inconclusive ±{info.band:.2f}) |",
            f"| Device | {info.device} |",
        ]
        if info.kind == "two-class":
            lines.append(f"| Generated class index | {info.fake_index} |")
        lines.append("")
        extra = {k: v for k, v in info.meta.items() if k not in _FACT_KEYS}
        if extra:
            lines += ["### Checkpoint metadata", "", *_meta_lines(extra), ""]
    card = model_card_path()
    if (info is None or info.bundled) and card.is_file():
        lines += ["---", "", card.read_text(encoding="utf-8", errors="replace")]
    elif info is not None and not info.bundled:
        lines += ["*The model card describes the bundled model only; this checkpoint was "
                  "loaded by the analyst.*"]
    if env is not None:
        cuda = "available: " + env.cuda_reason if env.cuda_available else "unavailable (" + env.cuda_reason + ")"
        lines += ["", f"PyTorch {env.torch_version}; CUDA {cuda}."]
    return "\n".join(lines)


class ModelDialog(QDialog):
    load_requested = Signal(str, int)  # checkpoint path, generated-class index
    bundled_requested = Signal()

    def __init__(self, parent: QWidget | None = None, start_folder: str = ""):
        super().__init__(parent)
        self.setWindowTitle("Model")
        self.resize(760, 640)
        self.start_folder = start_folder
        self.text = QTextBrowser()
        self.text.setOpenExternalLinks(True)

        self.fake_index = QComboBox()
        self.fake_index.addItem("1 — classes ordered [real, generated] (ForenSynths)", 1)
        self.fake_index.addItem("0 — classes ordered [generated, real]", 0)
        self.fake_index.setToolTip("Only used for checkpoints with a two-output head")
        self.load_button = QPushButton("Load checkpoint…")
        self.load_button.clicked.connect(self._choose_file)
        self.bundled_button = QPushButton("Use bundled model")
        self.bundled_button.setEnabled(bundled_model_path().is_file())
        self.bundled_button.clicked.connect(self.bundled_requested)

        row = QHBoxLayout()
        row.addWidget(QLabel("Generated class (2-output checkpoints):"))
        row.addWidget(self.fake_index, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        buttons.addButton(self.load_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(self.bundled_button, QDialogButtonBox.ButtonRole.ActionRole)

        layout = QVBoxLayout(self)
        layout.addWidget(self.text, 1)
        layout.addLayout(row)
        layout.addWidget(buttons)

    def refresh(self, info: ModelInfo | None, env: EnvInfo | None, error: str | None,
                loading: bool) -> None:
        set_markdown(self.text, model_markdown(info, env, error, loading))  # D5: no raw HTML
        self.load_button.setEnabled(not loading)
        if info is not None and info.kind == "two-class":
            self.fake_index.setCurrentIndex(self.fake_index.findData(info.fake_index))

    def _choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Load detector checkpoint", self.start_folder,
            "PyTorch checkpoints (*.pt *.pth *.pth.tar *.ckpt *.bin);;All files (*)")
        if path:
            self.start_folder = str(Path(path).parent)
            self.load_requested.emit(path, int(self.fake_index.currentData()))
