"""Cases: nothing lost (kill -9), resumable, tamper-evident, clear faults."""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from forensics_app.cli import main
from forensics_app.core.case import (
    ACTION_EVIDENCE_CHANGED,
    ACTION_EVIDENCE_MOVED,
    CASE_DB_NAME,
    SCHEMA_VERSION,
    Case,
    CaseLockedError,
    CaseReadOnlyError,
    CaseRecorder,
    CaseStorageError,
    CaseVersionError,
    NotACaseError,
    detector_facts,
    record_to_result,
    result_to_record,
)
from forensics_app.core.export import StreamedReport, sidecar_path
from forensics_app.core.scan import ScanOptions, discover_files, scan_files
from helpers import make_image, make_images

REPO = Path(__file__).resolve().parents[2]


def run_cli(argv) -> int:
    try:
        return main([str(a) for a in argv])
    except SystemExit as exc:
        return int(exc.code)


def scan_into(case: Case, detector, files, batch_size: int = 4):
    plan = case.plan_resume(files, detector.model_id)
    scan_id = case.begin_scan(detector_facts(detector), {"mode": "full"},
                              [str(f) for f in files], False, len(files), plan)
    rec = CaseRecorder(case, scan_id, batch_size=batch_size)
    scan_files(plan.todo, detector, ScanOptions(batch_size=batch_size), on_result=rec)
    rec.flush()
    case.finish_scan(scan_id)
    return plan


def db_rows(case_dir: Path, sql: str):
    conn = sqlite3.connect(case_dir / CASE_DB_NAME)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


# ----------------------------------------------------------------------------- basics
def test_new_case_records_schema_audit_and_results(tmp_path, tiny_detector, image_folder):
    files = discover_files([image_folder])
    with Case.create(tmp_path / "case", name="Op Test") as case:
        scan_into(case, tiny_detector, files)
        assert case.name == "Op Test" and len(case.case_id) == 36
        results = case.results()
        assert sorted(r.path for r in results) == sorted(map(str, files))
        assert [a.action for a in case.audit_entries()] == [
            "case created", "scan started", "scan finished"]
        report = case.verify()
        assert report.ok, report.problems
        assert report.n_results == len(files) and report.n_audit == 3
    assert db_rows(tmp_path / "case", "SELECT MAX(version) FROM schema_version") == [
        (SCHEMA_VERSION,)]
    assert db_rows(tmp_path / "case", "PRAGMA journal_mode") == [("wal",)]
    models = db_rows(tmp_path / "case", "SELECT model_id, sha256 FROM models")
    assert models == [(tiny_detector.model_id, tiny_detector.checkpoint.sha256)]
    entry = json.loads(db_rows(tmp_path / "case", "SELECT params_json FROM audit WHERE seq=2")[0][0])
    assert entry["settings"] == {"mode": "full"} and entry["model_sha256"]
    # Each audit entry links to the previous one.
    links = db_rows(tmp_path / "case", "SELECT prev_hash, entry_hash FROM audit ORDER BY seq")
    assert all(links[i][0] == links[i - 1][1] for i in range(1, len(links)))


def test_result_records_round_trip(tiny_detector, image_folder):
    r = scan_files(discover_files([image_folder])[:1], tiny_detector)[0]
    back = record_to_result(json.loads(json.dumps(result_to_record(r))))
    assert back == r


def test_recorder_commits_once_per_batch(tmp_path, tiny_detector, image_folder):
    with Case.create(tmp_path / "case") as case:
        scan_id = case.begin_scan(detector_facts(tiny_detector), {}, [], False)
        calls = []
        original = case.add_results
        case.add_results = lambda sid, rows: (calls.append(len(rows)), original(sid, rows))[1]
        rec = CaseRecorder(case, scan_id, batch_size=3, max_delay_s=1e9)
        scan_files(discover_files([image_folder]), tiny_detector, on_result=rec)
        rec.flush()
        assert calls == [3, 3, 2]


# ----------------------------------------------------------------------------- faults
def test_not_a_case_folder(tmp_path):
    (tmp_path / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(NotACaseError, match="not a case folder"):
        Case.open(tmp_path)
    with pytest.raises(NotACaseError, match="not empty"):
        Case.create(tmp_path)
    rc = run_cli(["--case", tmp_path, "--verify"])
    assert rc == 2
    other = tmp_path / "other"
    other.mkdir()
    sqlite3.connect(other / CASE_DB_NAME).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(NotACaseError, match="not a case"):
        Case.open(other)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / CASE_DB_NAME).write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(NotACaseError):
        Case.open(tmp_path / "junk")


def test_newer_schema_is_refused_untouched(tmp_path):
    Case.create(tmp_path / "case").close()
    db = tmp_path / "case" / CASE_DB_NAME
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO schema_version VALUES (?, 'later', '9.0')", (SCHEMA_VERSION + 1,))
    conn.commit()
    conn.close()
    before = db.read_bytes()
    for read_only in (False, True):
        with pytest.raises(CaseVersionError, match="newer version"):
            Case.open(tmp_path / "case", read_only=read_only)
    assert db.read_bytes() == before


def test_second_writer_is_refused_and_reader_still_works(tmp_path):
    with Case.create(tmp_path / "case") as case:
        with pytest.raises(CaseLockedError, match="open in another instance"):
            Case.open(tmp_path / "case")
        with Case.open(tmp_path / "case", read_only=True) as reader:
            assert reader.verify().ok
        case.audit("note", {"x": 1})
    with Case.open(tmp_path / "case") as again:  # lock released on close
        assert len(again.audit_entries()) == 2


def test_lock_from_another_process(tmp_path):
    Case.create(tmp_path / "case").close()
    code = ("import sys, time; from forensics_app.core.case import Case; "
            f"c = Case.open({str(tmp_path / 'case')!r}); print('open', flush=True); "
            "time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "open"
        with pytest.raises(CaseLockedError, match=r"pid \d+"):
            Case.open(tmp_path / "case")
    finally:
        proc.kill()
        proc.wait()
    Case.open(tmp_path / "case").close()  # the dead process's lock is gone


def test_read_only_case_can_be_verified_not_written(tmp_path, monkeypatch):
    Case.create(tmp_path / "case").close()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p).endswith(CASE_DB_NAME)
                        else real_access(p, mode))
    with pytest.raises(CaseReadOnlyError, match="read-only"):
        Case.open(tmp_path / "case")
    with Case.open(tmp_path / "case", read_only=True) as case:
        assert case.verify().ok
        with pytest.raises(CaseReadOnlyError):
            case.audit("x")


def test_disk_full_gives_clear_error_and_keeps_committed_rows(tmp_path, tiny_detector,
                                                              image_folder):
    files = discover_files([image_folder])
    results = scan_files(files, tiny_detector)
    with Case.create(tmp_path / "case") as case:
        scan_id = case.begin_scan(detector_facts(tiny_detector), {}, [], False, len(files))
        case.add_results(scan_id, results[:2])
        pages = case._conn.execute("PRAGMA page_count").fetchone()[0]
        case._conn.execute(f"PRAGMA max_page_count = {pages}")  # the disk is now "full"
        big = [r for r in results[2:]]
        for r in big:
            r.notes.append("x" * 20000)
        with pytest.raises(CaseStorageError, match="disk holding the case .* is full"):
            case.add_results(scan_id, big)
    with Case.open(tmp_path / "case") as case:
        assert len(case.results()) == 2
        assert case.verify().ok
        assert case.scans()[0].status == "interrupted"


# ----------------------------------------------------------------------------- resume
def test_resume_skips_unchanged_and_flags_changed_evidence(tmp_path, tiny_detector,
                                                           image_folder):
    files = discover_files([image_folder])
    with Case.create(tmp_path / "case") as case:
        scan_into(case, tiny_detector, files)
        first = case.count_results()
        plan = scan_into(case, tiny_detector, files)
        assert plan.todo == [] and len(plan.skipped) == len(files)
        assert case.count_results() == first
        # Same path, new bytes: scored again, flagged, the old row kept.
        make_image((96, 80), seed=999).save(files[0])
        plan = scan_into(case, tiny_detector, files)
        assert plan.todo == [files[0]] and str(files[0]) in plan.changed
        rows = [r for r in case.results() if r.path == str(files[0])]
        assert len(rows) == 2 and rows[0].sha256 != rows[1].sha256
        assert any("EVIDENCE CHANGED" in n for n in rows[1].notes)
        assert ACTION_EVIDENCE_CHANGED in [a.action for a in case.audit_entries()]
        assert case.verify().ok


def test_resume_after_moving_a_file(tmp_path, tiny_detector, image_folder):
    files = discover_files([image_folder])
    with Case.create(tmp_path / "case") as case:
        # First run scores half the files, as an interrupted scan would.
        scan_into(case, tiny_detector, files[:4])
        moved_from = files[1]
        moved_to = image_folder / "renamed_evidence.png"
        os.replace(moved_from, moved_to)
        now = discover_files([image_folder])
        plan = scan_into(case, tiny_detector, now)
        assert plan.moved == {str(moved_to): str(moved_from)}
        assert sorted(map(str, plan.todo)) == sorted(map(str, files[4:]))
        results = case.results()
        shas = [r.sha256 for r in results]
        assert len(shas) == len(set(shas)) == len(files)  # one row per file, none doubled
        row = next(r for r in results if r.path == str(moved_from))
        assert any(str(moved_to) in n for n in row.notes)
        assert ACTION_EVIDENCE_MOVED in [a.action for a in case.audit_entries()]
        assert case.verify().ok


def _wait_for_rows(case_dir: Path, n: int, proc: subprocess.Popen, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the scan ended before it could be killed"
        if (case_dir / CASE_DB_NAME).is_file():
            try:
                with Case.open(case_dir, read_only=True) as c:
                    if c.count_results() >= n:
                        return
            except Exception:  # noqa: BLE001 -- mid-creation; try again
                pass
        time.sleep(0.05)
    raise AssertionError("no rows committed in time")


def test_kill_9_mid_scan_then_resume(tmp_path, tiny_checkpoint):
    images = tmp_path / "images"
    files = make_images(images, 80, size=(160, 160))
    case_dir, csv_out = tmp_path / "case", tmp_path / "report.csv"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-m", "forensics_app.cli", str(images), "--model", str(tiny_checkpoint),
         "--device", "cpu", "--case", str(case_dir), "--csv", str(csv_out), "--batch-size", "2",
         "--workers", "1", "-q"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_rows(case_dir, 4, proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    with Case.open(case_dir, read_only=True) as case:
        committed = {r.path for r in case.results()}
    assert 4 <= len(committed) < len(files)
    # The streamed CSV is well formed and holds only committed rows: the case commits a batch
    # first and then hands it to the CSV, so a SIGKILL between the two can leave at most that
    # one batch (``--batch-size 2``) in the case and not yet in the CSV -- never the reverse.
    with open(csv_out, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    streamed = {r["path"] for r in rows}
    assert len(streamed) == len(rows)  # no row streamed twice
    assert streamed <= committed
    assert len(committed - streamed) <= 2
    assert all(r["verdict"] and r["sha256"] for r in rows)
    assert json.loads(sidecar_path(csv_out).read_text())["completed"] is False

    csv2 = tmp_path / "resumed.csv"
    assert run_cli([images, "--model", tiny_checkpoint, "--device", "cpu", "--case", case_dir,
                    "--csv", csv2, "-q"]) == 0
    with Case.open(case_dir, read_only=True) as case:
        paths = [r.path for r in case.results()]
        statuses = [s.status for s in case.scans()]
        assert case.verify().ok
    assert sorted(paths) == sorted(map(str, files))  # one row per file: none lost or doubled
    assert statuses == ["interrupted", "finished"]
    with open(csv2, encoding="utf-8", newline="") as fh:
        assert sorted(r["path"] for r in csv.DictReader(fh)) == sorted(map(str, files))
    side = json.loads(sidecar_path(csv2).read_text())
    assert side["completed"] is True and side["n_files"] == len(files)


def test_sigterm_ends_the_scan_cleanly(tmp_path, tiny_checkpoint):
    images = tmp_path / "images"
    make_images(images, 80, size=(160, 160))
    case_dir, csv_out = tmp_path / "case", tmp_path / "r.csv"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-m", "forensics_app.cli", str(images), "--model", str(tiny_checkpoint),
         "--device", "cpu", "--case", str(case_dir), "--csv", str(csv_out), "--batch-size", "2",
         "--workers", "1", "-q"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True)
    try:
        _wait_for_rows(case_dir, 2, proc)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 1, err
    side = json.loads(sidecar_path(csv_out).read_text())
    assert side["completed"] is False and side["status"] == "interrupted"
    with Case.open(case_dir, read_only=True) as case:
        assert case.scans()[0].status == "interrupted"
        assert case.audit_entries()[-1].action == "scan interrupted"


# ----------------------------------------------------------------------------- tampering
@pytest.fixture
def scanned_case(tmp_path, tiny_checkpoint, image_folder) -> Path:
    case_dir = tmp_path / "case"
    assert run_cli([image_folder, "--model", tiny_checkpoint, "--device", "cpu", "--case",
                    case_dir, "-q"]) == 0
    assert run_cli(["--case", case_dir, "--verify"]) == 0
    return case_dir


def _tamper(case_dir: Path, sql: str) -> None:
    conn = sqlite3.connect(case_dir / CASE_DB_NAME)
    conn.execute(sql)
    conn.commit()
    conn.close()


def test_edited_result_row_fails_verify(scanned_case, capsys):
    rec = json.loads(db_rows(scanned_case, "SELECT record_json FROM results WHERE seq=3")[0][0])
    rec["prob_fake"] = 0.01
    rec["verdict"] = "Real"
    _tamper(scanned_case, "UPDATE results SET record_json = '"
            + json.dumps(rec).replace("'", "''") + "' WHERE seq = 3")
    capsys.readouterr()
    assert run_cli(["--case", scanned_case, "--verify"]) == 1
    out = capsys.readouterr().out
    assert "BROKEN" in out and "first broken entry: result #3" in out and "edited" in out


def test_deleted_audit_entry_fails_verify(scanned_case, capsys):
    _tamper(scanned_case, "DELETE FROM audit WHERE seq = 2")
    capsys.readouterr()
    assert run_cli(["--case", scanned_case, "--verify"]) == 1
    out = capsys.readouterr().out
    assert "first broken entry: audit entry #2 is missing" in out


def test_deleted_result_and_truncated_log_fail_verify(scanned_case):
    _tamper(scanned_case, "DELETE FROM results WHERE seq = (SELECT MAX(seq) FROM results)")
    with Case.open(scanned_case, read_only=True) as case:
        report = case.verify()
    assert not report.ok and "results removed from the end" in report.first_problem
    _tamper(scanned_case, "DELETE FROM audit WHERE seq = (SELECT MAX(seq) FROM audit)")
    with Case.open(scanned_case, read_only=True) as case:
        assert any("entries removed from the end" in p for p in case.verify().problems)


# ----------------------------------------------------------------------------- streamed reports
def test_streamed_report_sidecar_says_completed(tmp_path, tiny_detector, image_folder):
    results = scan_files(discover_files([image_folder]), tiny_detector)
    for kind in ("csv", "jsonl"):
        out = tmp_path / f"r.{kind}"
        stream = StreamedReport(out, kind, {"command": "test"})
        assert json.loads(sidecar_path(out).read_text())["completed"] is False
        stream.write(results[:3])
        # Readable mid-scan: every row written so far is complete.
        text = out.read_text(encoding="utf-8")
        n = (len(list(csv.DictReader(text.splitlines()))) if kind == "csv"
             else len([json.loads(line) for line in text.splitlines()]))
        assert n == 3
        stream.write(results[3:])
        stream.close(completed=True)
        side = json.loads(sidecar_path(out).read_text())
        assert side["completed"] is True and side["n_files"] == len(results)
        assert side["status"] == "completed"
