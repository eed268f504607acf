"""The installer: what the spec leaves out, and (``--run-installer``) a real build + self-test.

The build test runs ``scripts/build_installer.sh`` exactly as documented in the README and
asserts that the frozen app's ``--self-test --gui`` passed. It bundles the real checkpoint
when ``resources/models/detector.pt`` and the samples' ``expected_scores.json`` exist, else a
tiny random one (``--fixture``), so the packaging is tested either way. Run it with
``pytest --run-installer tests/test_installer.py``: about 4 minutes on 2 free cores from a
fresh checkout (2 with PyInstaller's cache in build/), and 5 GB of disk for dist/.
"""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest

import forensics_app

REPO = Path(__file__).resolve().parent.parent
SPEC = REPO / "build_installer.spec"
PACKAGE = Path(forensics_app.__file__).parent


def spec_list(name: str) -> list[str]:
    """Evaluate a list constant (``EXCLUDES``, ``CUDA_ON_DEMAND``) of the spec."""
    tree = ast.parse(SPEC.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == name
                                                for t in node.targets):
            return list(eval(compile(ast.Expression(node.value), str(SPEC), "eval")))
    raise AssertionError(f"{name} not in {SPEC.name}")


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def test_spec_excludes_nothing_the_app_imports():
    excludes = spec_list("EXCLUDES")
    assert {"PySide6.QtWebEngineCore", "PySide6.QtQml", "triton", "model_training",
            "tensorboard", "tests"} <= set(excludes)
    used = set()
    for f in list(PACKAGE.rglob("*.py")) + list((REPO / "installer").glob("*.py")):
        used |= imported_modules(f)
    clash = sorted(m for m in used for ex in excludes if m == ex or m.startswith(ex + "."))
    assert clash == [], f"build_installer.spec excludes modules the app imports: {clash}"


def test_spec_build_settings():
    text = SPEC.read_text(encoding="utf-8")
    assert "upx=False" in text and "upx=True" not in text
    assert re.search(r"console=False", text) and re.search(r"console=True", text)
    assert "BUNDLE(" in text  # macOS .app
    assert "COLLECT(" in text  # one folder: a one-file build has no COLLECT step
    for script in ("entry_app.py", "entry_scan.py", "pyi_rth_forensics.py", "pyi_rth_cpu_only.py"):
        assert (REPO / "installer" / script).is_file()


def test_cuda_trim_never_drops_a_library_torch_links_against():
    from fnmatch import fnmatch

    patterns = spec_list("CUDA_ON_DEMAND")
    needed = ["libcudart.so.13", "libcublas.so.13", "libcublasLt.so.13", "libcudnn.so.9",
              "libnccl.so.2", "libcufft.so.12", "libcusparse.so.12", "libnvrtc.so.13",
              "libtorch_cuda.so", "libc10_cuda.so", "libtorch_cpu.so", "libnvshmem_host.so.3"]
    assert not [n for n in needed if any(fnmatch(n, p) for p in patterns)]
    assert any(fnmatch("libcudnn_engines_precompiled.so.9", p) for p in patterns)


@pytest.mark.installer
def test_build_and_frozen_self_test():
    args = ["bash", "scripts/build_installer.sh"]
    resources = REPO / "resources"
    if not ((resources / "models" / "detector.pt").is_file()
            and (resources / "samples" / "expected_scores.json").is_file()):
        args.append("--fixture")  # no bundled model (or its samples) yet: package a tiny one
    proc = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=4 * 3600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    assert re.search(r"^self-test PASS .*window ok on offscreen", proc.stdout, re.M), log[-6000:]
    internal = REPO / "dist" / "ForensicsApp" / "_internal" / "resources"
    assert (internal / "models" / "detector.pt").is_file()
    assert (internal / "samples" / "expected_scores.json").is_file()
    assert "torch imported before the window was visible: no" in proc.stdout
