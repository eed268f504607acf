"""What start-up leaves behind: no ``ldconfig -p`` (ctypes library lookups by name) when the
libtiff message handlers are installed, and nothing under ``~/.cache`` from ONNX Runtime when
the CLIP encoder's session is created. Each runs in a fresh interpreter: both are decided
once per process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    env = {**env, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=120, cwd=REPO)


@pytest.mark.skipif(sys.platform != "linux", reason="ldconfig is the Linux lookup")
def test_libtiff_handlers_install_without_a_library_lookup_by_name():
    proc = _run("""
        import ctypes.util
        calls = []
        ctypes.util.find_library = lambda name: calls.append(name)
        from forensics_app.core import libtiff_messages
        ok = libtiff_messages.install(lambda message: True)
        print(ok, libtiff_messages._vsnprintf() is not None, calls)
    """, dict(os.environ))
    assert proc.returncode == 0, proc.stderr
    installed, formatter, calls = proc.stdout.split(maxsplit=2)
    assert calls.strip() == "[]"  # no find_library, so no `ldconfig -p`
    assert formatter == "True"  # libc's vsnprintf found through dlopen(NULL)
    if installed != "True":
        pytest.skip("this Pillow's libtiff exports no message handlers")


def test_onnx_runtime_writes_nothing_under_home(tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["pixel_values"], ["image_embeds"])], "g",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("image_embeds", TensorProto.FLOAT, [1, 4])])
    model = tmp_path / "tiny.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), model)
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ORT_") and k != "XDG_CACHE_HOME"}
    env["HOME"] = str(home)
    proc = _run(f"""
        from forensics_app.core.semantic import ClipEncoder
        enc = ClipEncoder({str(model)!r}, threads=1)
        print(enc.runtime)
    """, env)
    assert proc.returncode == 0, proc.stderr
    assert "ONNX Runtime" in proc.stdout
    written = sorted(str(p.relative_to(home)) for p in home.rglob("*"))
    assert written == []
