"""The self-test (``--self-test``) on a tiny random checkpoint and images the tests make."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from forensics_app.selftest import (
    EXPECTED_FILE,
    run_self_test,
    scores_agree,
    write_expected_scores,
)
from helpers import make_image, make_images, save_tiny_checkpoint

REPO = Path(__file__).resolve().parent.parent


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def samples(tmp_path, tiny_checkpoint) -> Path:
    """Three small images with expected scores written by the tiny checkpoint."""
    folder = tmp_path / "samples"
    make_images(folder, 3)
    write_expected_scores(tiny_checkpoint, folder)
    return folder


def run(capsys, *args) -> tuple[int, dict]:
    rc = run_self_test(["--self-test", "--json", *map(str, args)])
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    return rc, report


def edit_expected(folder: Path, change) -> None:
    path = folder / EXPECTED_FILE
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_expected_scores_record_model_and_samples(samples, tiny_checkpoint):
    data = json.loads((samples / EXPECTED_FILE).read_text())
    from forensics_app.core.detector import file_sha256

    assert data["model_sha256"] == file_sha256(tiny_checkpoint)
    assert [s["file"] for s in data["samples"]] == ["img_000.png", "img_001.jpg", "img_002.png"]
    assert all(0.0 <= s["prob_fake"] <= 1.0 and len(s["sha256"]) == 64 for s in data["samples"])


def test_passes_on_matching_scores(capsys, samples, tiny_checkpoint):
    rc, report = run(capsys, "--model", tiny_checkpoint, "--samples", samples)
    assert rc == 0, report["line"]
    assert report["ok"] and report["line"].startswith("self-test PASS")
    assert "3/3 sample scores match" in report["line"]
    assert all(s["problem"] is None for s in report["samples"])


def test_one_line_text_report(capsys, samples, tiny_checkpoint):
    assert run_self_test(["--model", str(tiny_checkpoint), "--samples", str(samples)]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("self-test PASS")


@pytest.mark.parametrize(("actual", "expected", "agree"), [
    (0.5009, 0.5, True), (0.5011, 0.5, False),          # absolute tolerance 1e-3
    (2.08e-5, 2e-5, True), (4e-5, 2e-5, False),         # a saturated score that doubled
    (1 - 4e-5, 1 - 2e-5, False), (0.99999994, 1.0, True),  # same near 1; float32 step ok
])
def test_scores_agree_absolutely_and_in_the_tails(actual, expected, agree):
    assert scores_agree(actual, expected) is agree


def test_drift_within_tolerance_passes(capsys, samples, tiny_checkpoint):
    def drift(data):
        s = data["samples"][0]
        s["prob_fake"] += min(4e-4, 0.02 * min(s["prob_fake"], 1 - s["prob_fake"]))

    edit_expected(samples, drift)
    rc, report = run(capsys, "--model", tiny_checkpoint, "--samples", samples)
    assert rc == 0, report["line"]


def test_fails_on_changed_score(capsys, samples, tiny_checkpoint):
    edit_expected(samples, lambda d: d["samples"][1].update(
        prob_fake=d["samples"][1]["prob_fake"] + 0.01))
    rc, report = run(capsys, "--model", tiny_checkpoint, "--samples", samples)
    assert rc == 1
    assert report["line"].startswith("self-test FAIL: 1/3 samples differ: img_001.jpg scored")
    assert "2/3 sample scores match" in report["line"]


def test_fails_on_another_model(capsys, samples, tmp_path):
    other = save_tiny_checkpoint(tmp_path / "other.pt", seed=1)
    rc, report = run(capsys, "--model", other, "--samples", samples)
    assert rc == 1 and "model SHA-256" in report["line"]


def test_fails_on_missing_model(capsys, samples, tmp_path):
    rc, report = run(capsys, "--model", tmp_path / "absent.pt", "--samples", samples)
    assert rc == 1 and "no model at" in report["line"]


def test_fails_on_missing_sample(capsys, samples, tiny_checkpoint):
    (samples / "img_002.png").unlink()
    rc, report = run(capsys, "--model", tiny_checkpoint, "--samples", samples)
    assert rc == 1 and "img_002.png missing" in report["line"]


def test_fails_on_missing_expected_scores(capsys, samples, tiny_checkpoint):
    (samples / EXPECTED_FILE).unlink()
    rc, report = run(capsys, "--model", tiny_checkpoint, "--samples", samples)
    assert rc == 1 and "no expected scores" in report["line"]


def test_fails_on_missing_sample_folder(capsys, tiny_checkpoint, tmp_path):
    rc, report = run(capsys, "--model", tiny_checkpoint, "--samples", tmp_path / "nowhere")
    assert rc == 1 and "no expected scores" in report["line"]


def test_fails_on_sample_changed_on_disk(capsys, samples, tiny_checkpoint):
    make_image((96, 80), seed=99).save(samples / "img_000.png")
    rc, report = run(capsys, "--model", tiny_checkpoint, "--samples", samples)
    assert rc == 1 and "img_000.png changed on disk" in report["line"]


def test_fails_on_corrupt_expected_file(capsys, samples, tiny_checkpoint):
    (samples / EXPECTED_FILE).write_text("{not json")
    rc, report = run(capsys, "--model", tiny_checkpoint, "--samples", samples)
    assert rc == 1 and "unreadable" in report["line"]


def test_sample_script_makes_every_sample_and_scores(tmp_path, tiny_checkpoint, capsys):
    script = _load_script("make_selftest_samples")
    out = tmp_path / "samples"
    assert script.main(["--model", str(tiny_checkpoint), "--out", str(out)]) == 0
    data = json.loads((out / EXPECTED_FILE).read_text())
    assert sorted(s["file"] for s in data["samples"]) == sorted(script.SAMPLES)
    modes = {s["file"]: s["mode"] for s in data["samples"]}
    assert modes["chirp_gray.png"] == "L" and modes["blobs_alpha.png"] == "RGBA"
    assert modes["stripes_palette.gif"] == "P"
    # The images are generated deterministically: a second run writes the same bytes.
    again = script.make_sample_images(tmp_path / "again")
    assert all(p.read_bytes() == (out / p.name).read_bytes() for p in again)
    capsys.readouterr()
    assert run_self_test(["--model", str(tiny_checkpoint), "--samples", str(out)]) == 0


def test_icon_script_writes_png_ico_icns(tmp_path):
    from PIL import Image

    paths = _load_script("make_icon").write_icons(tmp_path)
    assert [p.name for p in paths] == ["app.png", "app.ico", "app.icns"]
    with Image.open(paths[1]) as ico:
        assert (256, 256) in ico.info["sizes"] and (16, 16) in ico.info["sizes"]
    with Image.open(paths[0]) as png:
        assert png.size == (512, 512) and png.mode == "RGBA"


def _child_env(tmp_path: Path) -> dict:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    for var in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        env[var] = str(tmp_path / var.lower())
    return env


def test_scan_self_test_through_main_loads_no_qt(samples, tiny_checkpoint, tmp_path):
    code = (
        "import sys\n"
        "from forensics_app.__main__ import main\n"
        f"rc = main(['--self-test', '--model', {str(tiny_checkpoint)!r}, "
        f"'--samples', {str(samples)!r}])\n"
        "print('QT', sorted(m for m in sys.modules if m.startswith(('PySide6', 'shiboken6'))))\n"
        "sys.exit(rc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=600, cwd=REPO, env=_child_env(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line, qt = proc.stdout.strip().splitlines()
    assert line.startswith("self-test PASS")
    assert qt == "QT []"


def test_gui_self_test_opens_and_closes_the_window(samples, tiny_checkpoint, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "forensics_app", "--self-test", "--gui", "--json",
         "--model", str(tiny_checkpoint), "--samples", str(samples)],
        capture_output=True, text=True, timeout=600, cwd=REPO, env=_child_env(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    window = report["window"]
    assert window["ok"] and window["platform"] == "offscreen"
    assert window["model"].startswith(tiny_checkpoint.name)
    assert 0 < window["exposed_s"] <= window["model_ready_s"]
    assert "window ok on offscreen" in report["line"]
    assert not list((tmp_path / "xdg_config_home").rglob("settings.json"))  # nothing saved


def test_gui_self_test_names_missing_xcb_libraries_and_their_packages(
        capsys, samples, tiny_checkpoint, monkeypatch):
    """Issue 11 item 20: a desktop without libxcb-icccm4 / libxcb-keysyms1 is told so."""
    import ctypes.util

    import forensics_app.selftest as selftest

    absent = {"xcb-icccm", "xcb-keysyms"}
    real = ctypes.util.find_library
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")  # a desktop session: the plugin is needed
    monkeypatch.setattr(ctypes.util, "find_library",
                        lambda name: None if name in absent else real(name) or f"lib{name}.so")
    opened = []
    monkeypatch.setattr(selftest, "check_window", lambda *a: opened.append(a) or {
        "ok": True, "platform": "offscreen", "exposed_s": 0.1, "model_ready_s": 0.2})
    rc, report = run(capsys, "--gui", "--model", tiny_checkpoint, "--samples", samples)
    assert rc == 1 and not report["ok"]
    line = report["line"]
    assert "libxcb-icccm.so (package libxcb-icccm4)" in line
    assert "libxcb-keysyms.so (package libxcb-keysyms1)" in line
    assert "sudo apt-get install libxcb-icccm4 libxcb-keysyms1" in line
    assert "cursor" not in line and opened  # only what is missing; the window still checked

    # headless (offscreen) checks do not load the xcb plugin: a warning, not a failure
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    rc, report = run(capsys, "--gui", "--model", tiny_checkpoint, "--samples", samples)
    assert rc == 0 and "warning: missing system libraries" in report["line"]
    assert "package libxcb-icccm4" in report["line"]

    # all present: no complaint; without --gui the libraries are not checked at all
    absent.clear()
    rc, report = run(capsys, "--gui", "--model", tiny_checkpoint, "--samples", samples)
    assert rc == 0, report["line"]
    absent.update(selftest.XCB_LIBRARIES)
    rc, report = run(capsys, "--model", tiny_checkpoint, "--samples", samples)
    assert rc == 0, report["line"]
