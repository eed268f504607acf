"""``forensics-scan``: exit codes 0 (all scored), 1 (some failed), 2 (usage error)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from forensics_app import cli
from forensics_app.cli import EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, main
from helpers import make_images

SCRIPT = Path(sys.executable).parent / "forensics-scan"


def run_cli(argv: list[str]) -> int:
    """main() returns its code; argparse errors raise SystemExit -- both end as the exit code."""
    try:
        return main([str(a) for a in argv])
    except SystemExit as exc:
        return int(exc.code)


@pytest.fixture
def no_bundled_model(tmp_path, monkeypatch):
    import forensics_app.paths

    missing = tmp_path / "resources" / "models" / "detector.pt"
    monkeypatch.setattr(forensics_app.paths, "bundled_model_path", lambda: missing)
    return missing


def test_all_scored_exits_0_and_writes_reports(tmp_path, tiny_checkpoint, image_folder, capsys):
    csv_out, jsonl_out = tmp_path / "r.csv", tmp_path / "r.jsonl"
    code = run_cli([image_folder, "--model", tiny_checkpoint, "--device", "cpu",
                    "--csv", csv_out, "--jsonl", jsonl_out, "--batch-size", "3"])
    assert code == EXIT_OK
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 8  # one line per file
    assert "scanned 8 files" in err and "images/s" in err and "tiny.pt@" in err
    with open(csv_out, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 8 and all(r["error"] == "" for r in rows)
    assert len(jsonl_out.read_text().splitlines()) == 8
    side = json.loads((tmp_path / "r.csv.meta.json").read_text())
    assert side["command"] == "forensics-scan" and side["preprocessing"] == "full"


def test_some_failed_exits_1(tmp_path, tiny_checkpoint, image_folder, capsys):
    (image_folder / "broken.jpg").write_text("not an image")
    code = run_cli([image_folder, tmp_path / "missing.png", "--model", tiny_checkpoint, "-q",
                    "--csv", tmp_path / "r.csv"])
    assert code == EXIT_SOME_FAILED
    err = capsys.readouterr().err
    assert "Error: 2" in err and "Traceback" not in err
    with open(tmp_path / "r.csv", encoding="utf-8", newline="") as fh:
        assert sum(1 for r in csv.DictReader(fh) if r["error"]) == 2


def test_options_are_applied(tmp_path, tiny_checkpoint, image_folder):
    out = tmp_path / "r.jsonl"
    code = run_cli([image_folder, "--model", tiny_checkpoint, "-q", "--mode", "tiles",
                    "--tile-size", "64", "--threshold", "0", "--band", "0", "--jsonl", out])
    assert code == EXIT_OK
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["preprocessing"] for r in rows} == {"tiles-64"}
    assert {r["verdict"] for r in rows} == {"AI-generated"} and {r["threshold"] for r in rows} == {0}


@pytest.mark.parametrize(
    "argv",
    [
        [],                                        # no paths
        ["{img}", "--batch-size", "0"],
        ["{img}", "--threshold", "1.5"],
        ["{img}", "--band", "-0.1"],
        ["{img}", "--mode", "resize"],
        ["{img}", "--device", "tpu"],
        ["{img}", "--fake-index", "2"],
        ["{img}", "--no-such-option"],
    ],
    ids=["no-paths", "batch-0", "threshold", "band", "mode", "device", "fake-index", "unknown"],
)
def test_bad_arguments_exit_2(argv, image_folder, tiny_checkpoint, capsys):
    argv = [a.replace("{img}", str(image_folder)) for a in argv]
    if argv:
        argv += ["--model", str(tiny_checkpoint)]
    assert run_cli(argv) == EXIT_USAGE
    assert "usage:" in capsys.readouterr().err


def test_missing_model_exits_2(tmp_path, image_folder, capsys):
    assert run_cli([image_folder, "--model", tmp_path / "nope.pt"]) == EXIT_USAGE
    assert "checkpoint file not found" in capsys.readouterr().err


def test_bad_checkpoint_exits_2(tmp_path, image_folder, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_text("definitely not weights")
    assert run_cli([image_folder, "--model", bad]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert str(bad) in err and "Traceback" not in err


def test_no_bundled_model_says_so(image_folder, no_bundled_model, capsys):
    assert run_cli([image_folder]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "no model bundled" in err and "--model" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_cuda_without_cuda_exits_2(image_folder, tiny_checkpoint, capsys):
    assert run_cli([image_folder, "--model", tiny_checkpoint, "--device", "cuda"]) == EXIT_USAGE
    assert "CUDA" in capsys.readouterr().err


def test_folder_without_images_exits_2(tmp_path, tiny_checkpoint, capsys):
    (tmp_path / "empty").mkdir()
    assert run_cli([tmp_path / "empty", "--model", tiny_checkpoint]) == EXIT_USAGE
    assert "no image files" in capsys.readouterr().err


def test_ctrl_c_keeps_finished_rows(tmp_path, tiny_checkpoint, image_folder, monkeypatch):
    import forensics_app.core.scan as scan_module

    real_scan_files = scan_module.scan_files

    def interrupted_scan(files, detector, options, progress=None, should_cancel=None,
                         on_result=None, **kwargs):
        def stop_after_three(result):
            on_result(result)
            if result.index == 2:
                raise KeyboardInterrupt

        return real_scan_files(files, detector, options, progress, should_cancel,
                               stop_after_three, **kwargs)

    monkeypatch.setattr(scan_module, "scan_files", interrupted_scan)
    out = tmp_path / "partial.csv"
    code = run_cli([image_folder, "--model", tiny_checkpoint, "-q", "--batch-size", "1",
                    "--workers", "1", "--csv", out])
    assert code == EXIT_SOME_FAILED
    with open(out, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [Path(r["path"]).name for r in rows] == ["img_000.png", "img_001.jpg", "img_002.png"]


def test_version_and_help_exit_0(capsys):
    assert run_cli(["--version"]) == 0
    assert cli.__version__ in capsys.readouterr().out
    assert run_cli(["--help"]) == 0


@pytest.mark.skipif(not SCRIPT.exists(), reason="package not installed into this environment")
def test_console_entry_point(tmp_path, tiny_checkpoint):
    folder = tmp_path / "imgs"
    make_images(folder, 3)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    ok = subprocess.run([str(SCRIPT), str(folder / "img_000.png"), str(folder / "img_001.jpg"),
                         "--model", str(tiny_checkpoint), "--csv", str(tmp_path / "r.csv")],
                        capture_output=True, text=True, env=env, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "scanned 2 files" in ok.stderr and (tmp_path / "r.csv").is_file()

    some = subprocess.run([str(SCRIPT), str(folder), "-q", "--model", str(tiny_checkpoint)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert some.returncode == 1, some.stderr

    usage = subprocess.run([str(SCRIPT), str(folder), "--threshold", "2"],
                           capture_output=True, text=True, env=env, timeout=120)
    assert usage.returncode == 2
    assert "--threshold must be between 0 and 1" in usage.stderr
