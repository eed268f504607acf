"""The engine imports no Qt: checked at runtime in a fresh interpreter and statically."""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import forensics_app.core

CORE_DIR = Path(forensics_app.core.__file__).parent
QT_MODULES = ("PySide6", "PySide2", "PyQt5", "PyQt6", "shiboken6", "shiboken2", "qtpy", "pyqtgraph")
ENGINE_MODULES = ["forensics_app.cli", "forensics_app.paths"] + [
    f"forensics_app.core.{m.name}" for m in pkgutil.iter_modules([str(CORE_DIR)])
]


def test_engine_modules_are_all_listed():
    assert {"forensics_app.core.scan", "forensics_app.core.gradcam",
            "forensics_app.core.detector"} <= set(ENGINE_MODULES)


def test_importing_the_engine_loads_no_qt():
    code = (
        "import importlib, json, sys\n"
        f"for name in {ENGINE_MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        f"qt = sorted(m for m in sys.modules if m.split('.')[0] in {QT_MODULES!r})\n"
        "print(json.dumps({'qt': qt, 'n': len(sys.modules)}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["n"] > 100  # the imports really happened (torch etc.)
    assert report["qt"] == [], f"the engine pulled in Qt: {report['qt']}"


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
            "import_module", "__import__"
        ) and node.args and isinstance(node.args[0], ast.Constant):
            roots.add(str(node.args[0].value).split(".")[0])
    return roots


def test_no_core_source_file_imports_qt():
    files = sorted(CORE_DIR.rglob("*.py"))
    assert len(files) >= 8
    offenders = {str(f.relative_to(CORE_DIR)): sorted(_imported_roots(f) & set(QT_MODULES))
                 for f in files}
    assert {k: v for k, v in offenders.items() if v} == {}
    # No textual back door either (string imports, plugins named in config).
    for f in files:
        text = f.read_text(encoding="utf-8")
        assert "PySide" not in text and "PyQt" not in text, f


def test_the_checker_would_catch_an_import(tmp_path):
    sample = tmp_path / "bad.py"
    sample.write_text("import os\nfrom PySide6.QtCore import QObject\n")
    assert "PySide6" in _imported_roots(sample)


def test_core_never_imports_the_gui_or_training_packages():
    for f in CORE_DIR.rglob("*.py"):
        text = f.read_text(encoding="utf-8")
        assert "forensics_app.gui" not in text and "model_training" not in text, f
