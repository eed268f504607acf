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
import os
import re
import subprocess
import sys
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
    optional = set(spec_list("OPTIONAL_EXCLUDES"))  # imported behind an ImportError guard
    assert optional <= set(excludes)
    clash = sorted(m for m in used for ex in excludes if (m == ex or m.startswith(ex + "."))
                   and ex not in optional)
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
    assert (REPO / "dist" / "ForensicsApp" / "forensics-serve").is_file()
    assert re.search(r"^server: healthz .*\"ok\"", proc.stdout, re.M), log[-6000:]


# ------------------------------------------------------------------ forensics-serve (issue 24)
def _spec_tree() -> ast.Module:
    return ast.parse(SPEC.read_text(encoding="utf-8"))


def _spec_calls(func: str) -> list[ast.Call]:
    return [n for n in ast.walk(_spec_tree()) if isinstance(n, ast.Call)
            and getattr(n.func, "id", "") == func]


def _spec_entry_files() -> dict[str, Path]:
    """``ENTRY_*`` constants of the spec -> the script each names (``str(ROOT / ... / f)``)."""
    found = {}
    for node in _spec_tree().body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and getattr(node.targets[0], "id", "").startswith("ENTRY_")):
            parts = [c.value for c in sorted(
                (c for c in ast.walk(node.value)
                 if isinstance(c, ast.Constant) and isinstance(c.value, str)),
                key=lambda c: (c.lineno, c.col_offset))]
            found[node.targets[0].id] = REPO.joinpath(*parts)
    return found


def _spec_function(name: str, **namespace):
    """Run one top-level function of the spec, with the names it needs supplied."""
    tree = _spec_tree()
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)
    exec(compile(ast.Module([fn], type_ignores=[]), str(SPEC), "exec"), namespace)
    return namespace[name]()


def test_spec_builds_the_server_executable_beside_the_app_and_the_scanner():
    import tomllib

    entries = _spec_entry_files()
    (analysis,) = _spec_calls("Analysis")
    analysed = [n.id for n in analysis.args[0].elts]
    assert analysed == ["ENTRY_APP", "ENTRY_SCAN", "ENTRY_SERVE"]
    assert all(entries[e].is_file() for e in analysed), entries
    # Every console script pyproject installs has a frozen twin calling the same function.
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    serve_module = scripts["forensics-serve"].split(":")[0]
    assert serve_module in imported_modules(entries["ENTRY_SERVE"])
    assert scripts["forensics-scan"].split(":")[0] in imported_modules(entries["ENTRY_SCAN"])
    exes = {}
    for call in _spec_calls("EXE"):
        kw = {k.arg: k.value for k in call.keywords}
        name = kw["name"].value if isinstance(kw["name"], ast.Constant) else kw["name"].id
        exes[name] = (kw["console"].value, ast.unparse(call.args[1]))
    assert exes == {"APP_NAME": (False, "scripts_for(ENTRY_APP)"),
                    "forensics-scan": (True, "scripts_for(ENTRY_SCAN)"),
                    "forensics-serve": (True, "scripts_for(ENTRY_SERVE)")}
    (collect,) = _spec_calls("COLLECT")
    collected = [ast.unparse(a) for a in collect.args]
    assert {"exe_app", "exe_scan", "exe_serve"} <= set(collected)
    assert "server_page_toc()" in collected[-1]


def test_spec_hidden_imports_cover_what_uvicorn_imports_by_name():
    """uvicorn loads its loop, protocol, lifespan and formatter from strings the import
    analysis cannot follow: each one ``uvicorn.run`` picks with our defaults is listed, and
    every listed module exists."""
    import importlib
    import importlib.util

    import uvicorn.config as config

    hidden = set(spec_list("SERVER_HIDDEN_IMPORTS"))
    loops = getattr(config, "LOOP_FACTORIES", None) or config.LOOP_SETUPS
    by_name = [loops["auto"], config.HTTP_PROTOCOLS["auto"], config.WS_PROTOCOLS["auto"],
               config.LIFESPAN["auto"]]
    # dictConfig's "()": a dotted path to the class itself
    by_name += [f["()"].rsplit(".", 1)[0] for f in config.LOGGING_CONFIG["formatters"].values()]
    needed = {target.split(":")[0] for target in by_name}
    # What the "auto" modules resolve to in this environment.
    http_auto = importlib.import_module("uvicorn.protocols.http.auto").AutoHTTPProtocol
    needed.add(http_auto.__module__)
    if importlib.util.find_spec("uvloop") is None:
        needed.add("uvicorn.loops.asyncio")
    assert needed <= hidden, sorted(needed - hidden)
    missing = [m for m in hidden if importlib.util.find_spec(m) is None]
    assert missing == [], missing


def test_spec_bundles_the_web_page_where_the_server_reads_it():
    from importlib import resources

    from forensics_app.server.api import PAGE_FILES

    toc = _spec_function("server_page_toc", ROOT=REPO, os=os)
    dests = {Path(dest).as_posix(): Path(src) for dest, src, kind in toc}
    assert all(kind == "DATA" for _d, _s, kind in toc)
    served = set(PAGE_FILES) | {"index.html"}
    for name in served:
        dest = f"forensics_app/server/page/{name}"
        assert dest in dests, (dest, sorted(dests))
        packaged = resources.files("forensics_app.server").joinpath("page", name)
        assert dests[dest].read_bytes() == packaged.read_bytes()


def test_server_entry_point_runs():
    proc = subprocess.run([sys.executable, str(REPO / "installer" / "entry_serve.py"),
                           "--version"], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("forensics-serve ")
