"""Issue 22, items 1-4: an output never reaches evidence, is never torn by a second writer,
and a full disk stops the scan cleanly (exit 3, whole rows, side-car "failed" and why)."""

from __future__ import annotations

import csv
import errno
import hashlib
import json
import os
from pathlib import Path

import pytest

from forensics_app.cli import EXIT_OK, EXIT_OUTPUT_FAILED, EXIT_USAGE, main
from forensics_app.core import outputs
from forensics_app.core.export import StreamedReport, sidecar_path
from forensics_app.core.outputs import (
    AppendOnlyOutput,
    OutputBusy,
    OutputLock,
    OutputWriteError,
    atomic_write,
    outputs_over_inputs,
)
from forensics_app.core.results import ScanResult, Verdict
from helpers import make_image

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX links and locks")


def run_cli(argv) -> int:
    try:
        return main([str(a) for a in argv])
    except SystemExit as exc:
        return int(exc.code)


def _evidence(folder: Path, name: str = "a.jpg", seed: int = 0) -> tuple[Path, str]:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    make_image((48, 48), seed).save(path, format="JPEG")
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------ 1. hard link to evidence
@posix_only
@pytest.mark.parametrize("option", ["--csv", "--jsonl"])
def test_report_hard_linked_to_evidence_is_refused(tmp_path, tiny_checkpoint, capsys, option):
    evidence, digest = _evidence(tmp_path / "ev")
    (tmp_path / "out").mkdir()
    report = tmp_path / "out" / "r.out"
    os.link(evidence, report)
    assert run_cli([tmp_path / "ev", "--model", tiny_checkpoint, option, report,
                    "--force-output"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "same file as the input" in err and "a.jpg" in err
    assert _digest(evidence) == digest and os.stat(evidence).st_nlink == 2


@posix_only
def test_sidecar_hard_linked_to_evidence_is_refused(tmp_path, tiny_checkpoint, capsys):
    evidence, digest = _evidence(tmp_path / "ev")
    (tmp_path / "out").mkdir()
    os.link(evidence, tmp_path / "out" / "r.csv.meta.json")
    assert run_cli([tmp_path / "ev", "--model", tiny_checkpoint,
                    "--csv", tmp_path / "out" / "r.csv"]) == EXIT_USAGE
    assert "side-car" in capsys.readouterr().err
    assert _digest(evidence) == digest


# ------------------------------------------------------------------ 2. target of a followed link
@posix_only
def test_report_at_the_target_of_a_scanned_symlink_is_refused(tmp_path, tiny_checkpoint, capsys):
    target, digest = _evidence(tmp_path / "data", "x.jpg")
    (tmp_path / "ev").mkdir()
    os.symlink(target, tmp_path / "ev" / "x.jpg")
    assert run_cli([tmp_path / "ev", "--model", tiny_checkpoint, "--csv", target]) == EXIT_USAGE
    assert "same file as the input" in capsys.readouterr().err
    assert _digest(target) == digest


def test_identity_check_compares_files_not_spellings(tmp_path):
    evidence, _ = _evidence(tmp_path / "ev")
    spelled = tmp_path / "ev" / ".." / "ev" / "a.jpg"
    assert outputs_over_inputs({"--csv": spelled}, [evidence])
    assert not outputs_over_inputs({"--csv": tmp_path / "new.csv"}, [evidence])


# ------------------------------------------------------------------ created, never truncated
@posix_only
def test_outputs_replace_a_name_and_never_write_into_the_old_file(tmp_path):
    """Even past the guard (a link made after the check), writing replaces the *name*: the
    file it was linked to keeps its bytes."""
    evidence, digest = _evidence(tmp_path / "ev")
    whole, streamed = tmp_path / "whole.csv", tmp_path / "streamed.csv"
    os.link(evidence, whole)
    os.link(evidence, streamed)
    atomic_write(whole, "report\n")
    out = AppendOnlyOutput(streamed)
    out.append(b"row\n")
    out.close()
    assert whole.read_text() == "report\n" and streamed.read_text() == "row\n"
    assert _digest(evidence) == digest and os.stat(evidence).st_nlink == 1
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


# ------------------------------------------------------------------ 3. two writers, one report
@posix_only
def test_a_second_writer_of_the_same_report_is_refused(tmp_path):
    rows = [ScanResult(path="a.png", prob_fake=0.9, verdict=Verdict.AI_GENERATED)]
    first = StreamedReport(tmp_path / "r.jsonl")
    with pytest.raises(OutputBusy, match="another scan"):
        StreamedReport(tmp_path / "r.jsonl")
    first.write(rows)
    first.close(completed=True)
    assert not (tmp_path / ".r.jsonl.lock").exists()
    second = StreamedReport(tmp_path / "r.jsonl")  # free again once the first is closed
    second.close(completed=True)


@posix_only
def test_cli_refuses_a_report_another_scan_is_writing(tmp_path, tiny_checkpoint, capsys):
    _evidence(tmp_path / "ev")
    report = tmp_path / "r.csv"
    report.write_text("the other scan's rows\n")
    with OutputLock(report):
        assert run_cli([tmp_path / "ev", "--model", tiny_checkpoint, "--csv", report]) \
            == EXIT_USAGE
    assert "being written by another scan" in capsys.readouterr().err
    assert report.read_text() == "the other scan's rows\n"
    assert not sidecar_path(report).exists()


# ------------------------------------------------------------------ 4. a full disk
def _fill_disk_after(monkeypatch, n_writes: int) -> None:
    """Simulate ENOSPC: the n-th and every later write of core.outputs fails."""
    real, count = outputs.write_all, {"n": 0}

    def write_all(fd, data):
        count["n"] += 1
        if count["n"] > n_writes:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd, data)

    monkeypatch.setattr(outputs, "write_all", write_all)


@pytest.mark.parametrize("writes_left", [4, 6])
def test_full_disk_stops_cleanly_with_whole_rows(tmp_path, tiny_checkpoint, capsys,
                                                 monkeypatch, writes_left):
    folder = tmp_path / "ev"
    for i in range(6):
        _evidence(folder, f"{i}.jpg", seed=i)
    csv_out, jsonl_out = tmp_path / "r.csv", tmp_path / "r.jsonl"
    # writes: csv header, csv side-car, jsonl side-car, then a row batch for each report...
    _fill_disk_after(monkeypatch, writes_left)
    code = run_cli([folder, "--model", tiny_checkpoint, "--csv", csv_out, "--jsonl", jsonl_out,
                    "--batch-size", "1", "--workers", "1", "-q"])
    err = capsys.readouterr().err
    assert code == EXIT_OUTPUT_FAILED, err
    assert "No space left on device (ENOSPC)" in err and "Traceback" not in err
    rows = list(csv.DictReader(csv_out.open(encoding="utf-8")))
    lines = [json.loads(line) for line in jsonl_out.read_text("utf-8").splitlines()]
    assert len(rows) < 6 and len(lines) < 6
    assert all(r["sha256"] and r["verdict"] for r in rows)
    for report in (csv_out, jsonl_out):
        meta = json.loads(sidecar_path(report).read_text())
        assert meta["status"] == "failed" and meta["completed"] is False
        assert "ENOSPC" in meta["failure"]


def test_a_failed_append_leaves_no_half_row(tmp_path, monkeypatch):
    out = AppendOnlyOutput(tmp_path / "r.jsonl")
    out.append(b'{"a": 1}\n')

    def half_then_full(fd, data):
        os.write(fd, data[:3])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(outputs, "write_all", half_then_full)
    with pytest.raises(OutputWriteError, match="ENOSPC"):
        out.append(b'{"b": 2}\n')
    out.close()
    assert (tmp_path / "r.jsonl").read_bytes() == b'{"a": 1}\n'


def test_successful_streamed_scan_still_completes(tmp_path, tiny_checkpoint):
    _evidence(tmp_path / "ev")
    out = tmp_path / "r.jsonl"
    assert run_cli([tmp_path / "ev", "--model", tiny_checkpoint, "--jsonl", out, "-q"]) \
        == EXIT_OK
    meta = json.loads(sidecar_path(out).read_text())
    assert meta["completed"] is True and meta["status"] == "finished"
    assert not (tmp_path / ".r.jsonl.lock").exists()
