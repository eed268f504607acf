"""Case integrity (issue 21): every hostile input here is built by the test itself."""

from __future__ import annotations

import csv
import errno
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from forensics_app.cli import main
from forensics_app.core import export
from forensics_app.core.case import (
    ACTION_EVIDENCE_LINK_CHANGED,
    ACTION_EVIDENCE_MISSING,
    ACTION_EVIDENCE_MOVED,
    CASE_DB_NAME,
    SCHEMA_VERSION,
    Case,
    CaseRecorder,
    CaseStorageError,
    RecordingError,
)
from forensics_app.core.case_chain import anchor_path, read_anchor
from forensics_app.core.interrupts import request_stop
from forensics_app.core.report import build_report, render_html
from forensics_app.core.safetext import (
    escape_text,
    html_text,
    isolate,
    needs_escape,
    spreadsheet_safe,
    unescape_text,
)
from forensics_app.core.scan import discover_files
from helpers import make_image, make_images

REPO = Path(__file__).resolve().parents[2]
POSIX_BYTES = pytest.mark.skipif(sys.platform in ("win32", "darwin"),
                                 reason="needs byte file names")
UNSAFE = ("\x1b", "\x07", "\u202e", "\u2028", "\u2029", "\u2066")


def run_cli(argv) -> int:
    try:
        return main([os.fsdecode(a) if isinstance(a, bytes) else str(a) for a in argv])
    except SystemExit as exc:
        return int(exc.code)


def scan(images, case_dir, ckpt, *extra) -> int:
    return run_cli([images, "--model", ckpt, "--device", "cpu", "--case", case_dir, "-q",
                    *extra])


def sql(case_dir: Path, statement: str, args=()) -> list:
    conn = sqlite3.connect(case_dir / CASE_DB_NAME)
    try:
        rows = conn.execute(statement, args).fetchall()
        conn.commit()
        return rows
    finally:
        conn.close()


def verify(case_dir: Path, anchor: Path | None = None, capsys=None) -> tuple[int, str]:
    if capsys is not None:
        capsys.readouterr()
    argv = ["--case", case_dir, "--verify"] + (["--anchor", anchor] if anchor else [])
    rc = run_cli(argv)
    out = capsys.readouterr() if capsys is not None else None
    return rc, (out.out + out.err) if out is not None else ""


@pytest.fixture
def scanned(tmp_path, tiny_checkpoint, image_folder) -> Path:
    case_dir = tmp_path / "case"
    assert scan(image_folder, case_dir, tiny_checkpoint) == 0
    return case_dir


# ----------------------------------------------------------------------------- 1. non-UTF-8
@POSIX_BYTES
def test_non_utf8_name_is_stored_as_bytes_and_the_case_finishes(tmp_path, tiny_checkpoint,
                                                                capsys):
    images = tmp_path / "images"
    make_images(images, 3)
    raw = os.fsencode(images) + b"/caf\xe9 \xff.png"
    make_image((64, 64), 7).save(os.fsdecode(raw), format="PNG")
    # A valid name spelling the same escape: must stay a different key.
    shutil.copyfile(os.fsdecode(raw), images / "caf\\xe9 \\xff.png")
    case_dir, out = tmp_path / "case", tmp_path / "r.csv"
    assert scan(images, case_dir, tiny_checkpoint, "--csv", out) == 0
    with Case.open(case_dir, read_only=True) as case:
        rows = case.results()
        assert case.verify().ok
        assert [s.status for s in case.scans()] == ["finished"]
    assert len(rows) == 5
    assert raw in {os.fsencode(r.path) for r in rows}  # exact bytes back
    assert sql(case_dir, "SELECT COUNT(*) FROM results WHERE typeof(path) = 'blob'") == [(1,)]
    with open(out, encoding="utf-8", newline="") as fh:
        streamed = list(csv.DictReader(fh))
    assert len(streamed) == 5 and raw in {unescape_text(r["path"]) for r in streamed
                                          if export.ESCAPED_NAME_NOTE in r["notes"]}
    # Resuming neither crashes nor scores anything again.
    assert scan(images, case_dir, tiny_checkpoint) == 0
    assert "0 new rows stored, 5 files already scored" in capsys.readouterr().err
    assert verify(case_dir)[0] == 0


# ----------------------------------------------------------------------------- 2. bidi/control
def test_escaping_rule_is_visible_reversible_and_formula_safe():
    for name in ("plain ✓.png", "فوتو.png", "back\\slash.png"):
        assert escape_text(name) == name and not needs_escape(name)
    hostile = "a\u202egnp.exe\x1b[31m\x07\u2028\u2029\x85\u2066z\\x41"
    escaped = escape_text(hostile)
    assert not any(ch in escaped for ch in UNSAFE + ("\x85",))
    assert "\\u202e" in escaped and "\\x1b" in escaped and "\\\\x41" in escaped
    assert unescape_text(escaped) == hostile.encode("utf-8")
    assert "<span class='ctl'>\\u202e</span>" in html_text(hostile)
    for cell in ("=1+1", "\n=1+1", "  =1+1", "\u00a0+1", "\t@x", "\r-1"):
        assert spreadsheet_safe(cell).startswith("'")
    assert spreadsheet_safe("photo.png") == "photo.png"


BIDI_NAME = "invoice\u202egnp.exe"  # reads as "invoiceexe.png" when drawn


@pytest.fixture
def bidi_case(tmp_path, tiny_checkpoint) -> tuple[Path, Path]:
    images = tmp_path / "images"
    images.mkdir()
    for i, name in enumerate([BIDI_NAME, "esc\x1b[31mred\x07.png", "line\u2028sep.png",
                              "\n=cmd.png", "plain.png"]):
        make_image((64, 64), i).save(images / name, format="PNG")
    case_dir = tmp_path / "case"
    assert scan(images, case_dir, tiny_checkpoint, "--csv", tmp_path / "r.csv",
                "--jsonl", tmp_path / "r.jsonl") == 0
    return case_dir, images


def test_bidi_and_control_names_are_neutralised_in_every_output(bidi_case, tmp_path,
                                                                tiny_checkpoint, capsys):
    case_dir, images = bidi_case
    # terminal
    capsys.readouterr()
    assert run_cli([images, "--model", tiny_checkpoint, "--device", "cpu"]) == 0
    term = capsys.readouterr()
    assert not any(ch in term.out + term.err for ch in UNSAFE)
    assert "invoice\\u202egnp.exe" in term.out
    # CSV / JSONL: nothing raw, the formula cell guarded, the name recoverable
    text = (tmp_path / "r.csv").read_text(encoding="utf-8")
    assert not any(ch in text for ch in UNSAFE)
    with open(tmp_path / "r.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        assert not row["file_name"].lstrip().startswith(("=", "+", "-", "@"))
    names = {unescape_text(r["file_name"]).decode() for r in rows
             if export.ESCAPED_NAME_NOTE in r["notes"]}
    assert BIDI_NAME in names and "\n=cmd.png" in names
    jsonl = (tmp_path / "r.jsonl").read_text(encoding="utf-8")
    assert not any(ch in jsonl for ch in UNSAFE)
    # HTML: escaped visibly, isolated, verdict and hash never after a name on one line
    with Case.open(case_dir, read_only=True) as case:
        data = build_report(case, threshold=0.0, band=0.0, gradcam=False)
        html = render_html(data)
        qt_html = render_html(data, qt=True)
        bidi_sha = next(r.sha256 for r in case.results() if r.file_name == BIDI_NAME)
    assert not any(ch in html for ch in UNSAFE)
    assert "<bdi>invoice<span class='ctl'>\\u202e</span>gnp.exe</bdi>" in html
    page = html[html.index("<h3><bdi>invoice"):]
    heading = page[: page.index("</h3>")]
    assert "AI-generated" not in heading and bidi_sha not in heading
    assert f"SHA-256 <span class='hash'>{bidi_sha}</span>" in page
    # Qt (PDF) markup: the same escapes; right-to-left names in first-strong isolates
    assert "\u202e" not in qt_html and "invoice<span class='ctl'>\\u202e" in qt_html
    assert isolate("فوتو.png") == "\u2068فوتو.png\u2069" and isolate("a.png") == "a.png"


# ----------------------------------------------------------------------------- 3. facts
TAMPERS = {
    "model sha256": "UPDATE models SET sha256 = 'ab' || substr(sha256, 3)",
    "model path": "UPDATE models SET path = '/elsewhere/other.pt'",
    "model metadata": "UPDATE models SET meta_json = '{\"threshold\": 0.9}'",
    "scan status": "UPDATE scans SET status = 'cancelled'",
    "scan settings": "UPDATE scans SET settings_json = '{\"mode\": \"tiles\"}'",
    "scan sources": "UPDATE scans SET sources_json = '[\"/somewhere/else\"]'",
    "scan done count": "UPDATE scans SET n_done = n_done + 5",
    "case name": "UPDATE case_info SET value = 'Another case' WHERE key = 'name'",
    "case date": "UPDATE case_info SET value = '2001-01-01T00:00:00.000+00:00' "
                 "WHERE key = 'created_utc'",
    "inserted evidence": "INSERT INTO evidence (path, sha256, bytes, first_seen_utc, "
                         "last_seen_utc) VALUES ('/x/forged.png', 'ff', 1, 't', 't')",
    "inserted model": "INSERT INTO models VALUES ('forged', '/x.pt', 'aa', 'k', '{}', 't')",
}


@pytest.mark.parametrize("what", list(TAMPERS))
def test_every_printed_fact_is_covered_by_the_chain(scanned, what, capsys):
    assert verify(scanned)[0] == 0
    sql(scanned, TAMPERS[what])
    rc, out = verify(scanned, capsys=capsys)
    assert rc == 1 and "BROKEN" in out and "Traceback" not in out, out


# ----------------------------------------------------------------------------- 4. anchors
def test_report_writes_an_anchor_whose_heads_verify_prints(scanned, tmp_path, capsys):
    out = tmp_path / "report.html"
    assert run_cli(["--case", scanned, "--report", out]) == 0
    anchor = read_anchor(anchor_path(out))
    rc, text = verify(scanned, anchor_path(out), capsys)
    assert rc == 0 and "matches the anchor" in text
    assert f"audit head   #{anchor['audit']['seq']} {anchor['audit']['hash']}" in text
    assert f"results head #{anchor['results']['seq']} {anchor['results']['hash']}" in text
    html = out.read_text(encoding="utf-8")
    assert anchor["audit"]["hash"] in html and anchor["results"]["hash"] in html


def _truncate_consistently(case_dir: Path, keep_results: int) -> None:
    """The attack a same-file head cannot see: cut both chains' tails and fix every head
    and count by copying surviving values (no hash is computed)."""
    started = sql(case_dir, "SELECT MAX(seq) FROM audit WHERE action = 'scan started'")[0][0]
    sql(case_dir, f"DELETE FROM audit WHERE seq > {started}")
    sql(case_dir, f"DELETE FROM results WHERE seq > {keep_results}")
    sql(case_dir, "DELETE FROM evidence WHERE sha256 NOT IN (SELECT sha256 FROM results)")
    a_hash = sql(case_dir, f"SELECT entry_hash FROM audit WHERE seq = {started}")[0][0]
    r_hash = sql(case_dir, f"SELECT row_hash FROM results WHERE seq = {keep_results}")[0][0]
    sql(case_dir, "UPDATE case_info SET value = ? WHERE key = 'audit_head'",
        (f"{started}:{a_hash}",))
    sql(case_dir, "UPDATE case_info SET value = ? WHERE key = 'results_head'",
        (f"{keep_results}:{r_hash}",))
    sql(case_dir, f"UPDATE scans SET status = 'running', finished_utc = NULL, "
                  f"n_done = {keep_results}")


def test_tail_truncation_is_caught_with_an_anchor(scanned, tmp_path, capsys):
    out = tmp_path / "r.csv"
    assert run_cli(["--case", scanned, "--report", out]) == 0
    _truncate_consistently(scanned, keep_results=3)
    rc, text = verify(scanned, capsys=capsys)
    assert rc == 0  # documented limit: without an anchor this edit is invisible
    rc, text = verify(scanned, anchor_path(out), capsys)
    assert rc == 1 and "removed from the end" in text, text


def test_plain_tail_deletions_are_caught_without_an_anchor(scanned, capsys):
    # Deleting the last rows leaves the scan-end entry pinning a result that is gone.
    sql(scanned, "DELETE FROM results WHERE seq = (SELECT MAX(seq) FROM results)")
    n, digest = sql(scanned, "SELECT seq, row_hash FROM results ORDER BY seq DESC LIMIT 1")[0]
    sql(scanned, "UPDATE case_info SET value = ? WHERE key = 'results_head'", (f"{n}:{digest}",))
    rc, text = verify(scanned, capsys=capsys)
    assert rc == 1 and "pins result" in text
    # An emptied case is not "intact".
    sql(scanned, "DELETE FROM audit")
    sql(scanned, "DELETE FROM results")
    sql(scanned, "DELETE FROM case_info WHERE key IN ('audit_head', 'results_head')")
    rc, text = verify(scanned, capsys=capsys)
    assert rc == 1 and "audit log is empty" in text


def test_anchor_of_another_case_or_rewritten_chain_is_refused(scanned, tmp_path, capsys):
    out = tmp_path / "r.jsonl"
    assert run_cli(["--case", scanned, "--report", out]) == 0
    anchor = json.loads(anchor_path(out).read_text())
    anchor["audit"]["hash"] = "0" * 64
    forged = tmp_path / "forged.anchor.json"
    forged.write_text(json.dumps(anchor))
    rc, text = verify(scanned, forged, capsys)
    assert rc == 1 and "was rewritten" in text
    anchor["case_id"] = "someone-else"
    forged.write_text(json.dumps(anchor))
    assert verify(scanned, forged, capsys)[0] == 1
    forged.write_text("{not json")
    rc, text = verify(scanned, forged, capsys)
    assert rc == 2 and "cannot read the anchor" in text


# ----------------------------------------------------------------------------- 5. read-only
def _without_permission_override():
    """Root ignores file modes; drop the capabilities that let it (Linux), so 0444/0555
    mean read-only for the reader as they would for any user."""
    if os.geteuid() != 0:
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2, 3):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise PermissionError(ctypes.get_errno(), "cannot drop capabilities")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux file modes")
def test_read_only_case_verifies_and_reports_without_write_access(scanned, tmp_path):
    base = Path(os.environ.get("TMPDIR", "/tmp")) / f"ro-case-{os.getpid()}-{time.time_ns()}"
    try:
        base.mkdir(mode=0o755)
        ro, outdir = base / "case", base / "out"
        # A writer still open leaves rows in the WAL: the reader must see them too.
        with Case.open(scanned) as case:
            case.audit("note", {"only": "in the WAL"})
            shutil.copytree(scanned, ro)
        assert Path(f"{ro / CASE_DB_NAME}-wal").stat().st_size > 0
        (ro / "case.lock").unlink()
        outdir.mkdir(mode=0o777)
        outdir.chmod(0o777)
        for p in ro.iterdir():
            p.chmod(0o444)
        ro.chmod(0o555)
        env = dict(os.environ, PYTHONPATH=str(REPO), HOME=str(outdir),
                   QT_QPA_PLATFORM="offscreen")
        runs = {}
        for name, argv in (("verify", ["--case", str(ro), "--verify"]),
                           ("report", ["--case", str(ro), "--report", str(outdir / "r.html")])):
            try:
                runs[name] = subprocess.run(
                    [sys.executable, "-m", "forensics_app.cli", *argv], env=env, cwd=outdir,
                    capture_output=True, text=True, timeout=300, preexec_fn=_without_permission_override)
            except (PermissionError, subprocess.SubprocessError) as exc:
                pytest.skip(f"cannot run as an unprivileged user here: {exc}")
        assert runs["verify"].returncode == 0, runs["verify"].stdout + runs["verify"].stderr
        assert "intact (4 audit entries" in runs["verify"].stdout  # the WAL's entry counted
        assert runs["report"].returncode == 0, runs["report"].stderr
        assert "Integrity: intact" in (outdir / "r.html").read_text(encoding="utf-8")
        assert anchor_path(outdir / "r.html").is_file()
    finally:
        for p in base.rglob("*"):
            if p.is_dir():
                p.chmod(0o755)
        shutil.rmtree(base, ignore_errors=True)


# ----------------------------------------------------------------------------- 6. paths
def test_paths_are_absolute_so_cwd_does_not_matter(tmp_path, tiny_checkpoint, monkeypatch,
                                                   capsys):
    images = tmp_path / "work" / "images"
    make_images(images, 4)
    monkeypatch.chdir(tmp_path / "work")
    assert scan(Path("images"), Path("../case"), tiny_checkpoint) == 0
    case_dir = tmp_path / "case"
    monkeypatch.chdir(images)  # resume from elsewhere, naming the folder another way
    assert scan(Path("."), case_dir, tiny_checkpoint) == 0
    assert "0 new rows stored, 4 files already scored" in capsys.readouterr().err
    with Case.open(case_dir, read_only=True) as case:
        assert all(os.path.isabs(r.path) for r in case.results())
        assert [s.sources for s in case.scans()] == [[str(images)], [str(images)]]
        assert ACTION_EVIDENCE_MOVED not in [a.action for a in case.audit_entries()]
        monkeypatch.chdir(tmp_path)
        data = build_report(case, gradcam=False)
    assert len(data.thumbnails) == 4  # a report made elsewhere still finds the images


# ----------------------------------------------------------------------------- 7. creation
def test_empty_case_file_from_an_interrupted_creation_is_finished(tmp_path, tiny_checkpoint,
                                                                 image_folder, capsys):
    case_dir = tmp_path / "case"
    case_dir.mkdir()
    (case_dir / CASE_DB_NAME).write_bytes(b"")
    rc, text = verify(case_dir, capsys=capsys)
    assert rc == 2 and "creation was interrupted" in text
    assert scan(image_folder, case_dir, tiny_checkpoint) == 0
    with Case.open(case_dir, read_only=True) as case:
        assert case.verify().ok and case.count_results() == 8
        assert "interrupted creation" in case.audit_entries()[0].params["note"]


def test_sigkill_during_creation_leaves_no_half_case(tmp_path):
    case_dir = tmp_path / "case"
    marker = tmp_path / "renaming"
    code = ("import os, time, pathlib; from forensics_app.core import case as c\n"
            "real = os.replace\n"
            "def slow(a, b):\n"
            f"    pathlib.Path({str(marker)!r}).write_text('x'); time.sleep(60)\n"
            "c.os.replace = slow\n"
            f"c.Case.create({str(case_dir)!r})\n")
    proc = subprocess.Popen([sys.executable, "-c", code], env=dict(os.environ,
                                                                  PYTHONPATH=str(REPO)))
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not (case_dir / CASE_DB_NAME).exists()  # the case was being built aside
    with Case.create(case_dir) as case:  # the leftovers do not block a new case
        assert case.verify().ok
    assert not list(case_dir.glob(".case-creating-*"))


# ----------------------------------------------------------------------------- 8. no tracebacks
def _corrupt_results_page(case_dir: Path) -> None:
    page_size = sql(case_dir, "PRAGMA page_size")[0][0]
    root = sql(case_dir, "SELECT rootpage FROM sqlite_master WHERE name = 'results'")[0][0]
    assert root > 1
    with open(case_dir / CASE_DB_NAME, "r+b") as fh:
        fh.seek((root - 1) * page_size)
        fh.write(os.urandom(page_size))


DAMAGE = {
    "non-JSON params": lambda d: sql(d, "UPDATE audit SET params_json = 'not json' WHERE seq = 2"),
    "non-integer pin": lambda d: sql(
        d, "UPDATE audit SET params_json = json_set(params_json, '$.results_head', 'x:y') "
           "WHERE action = 'scan finished'"),
    "non-integer head": lambda d: sql(d, "UPDATE case_info SET value = 'abc' "
                                         "WHERE key = 'results_head'"),
    "dropped models": lambda d: sql(d, "DROP TABLE models"),
    "dropped results": lambda d: sql(d, "DROP TABLE results"),
    "non-JSON record": lambda d: sql(d, "UPDATE results SET record_json = '{' WHERE seq = 1"),
    "wrong types": lambda d: sql(d, "UPDATE results SET mtime_ns = 'abc', scan_id = x'00ff' "
                                    "WHERE seq = 2"),
    "corrupt page": _corrupt_results_page,
}


@pytest.mark.parametrize("what", list(DAMAGE))
def test_verify_names_damage_and_never_tracebacks(scanned, what, capsys):
    DAMAGE[what](scanned)
    rc, text = verify(scanned, capsys=capsys)
    assert rc == 1 and "BROKEN" in text and "Traceback" not in text, text


# ----------------------------------------------------------------------------- 9. full disk
def test_full_disk_during_streamed_csv_stops_cleanly(tmp_path, tiny_checkpoint, monkeypatch,
                                                     capsys):
    images = tmp_path / "images"
    make_images(images, 12, size=(48, 48))
    out = tmp_path / "r.csv"

    from forensics_app.core import outputs

    real_write, written = outputs.write_all, {"n": 0}

    def full_disk(fd, data):  # the report's file system fills up after 2,500 bytes
        if os.readlink(f"/proc/self/fd/{fd}") == str(out):
            written["n"] += len(data)
            if written["n"] > 2500:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_write(fd, data)

    monkeypatch.setattr(outputs, "write_all", full_disk)
    case_dir = tmp_path / "case"
    rc = scan(images, case_dir, tiny_checkpoint, "--csv", out, "--batch-size", "2")
    err = capsys.readouterr().err
    # issue 22: a report that cannot be written has its own exit code (3)
    assert rc == 3 and "No space left on device" in err and "Traceback" not in err
    with Case.open(case_dir, read_only=True) as case:
        (s,) = case.scans()
        stored = {r.path for r in case.results()}
        assert case.verify().ok
        assert s.status == "failed"
        end = case.audit_entries()[-1]
        assert end.action == "scan failed" and "No space left" in end.params["message"]
    with open(out, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and all(r["verdict"] and len(r["sha256"]) == 64 for r in rows)  # no torn row
    assert {r["path"] for r in rows} <= stored and len(stored) < 12
    side = json.loads(export.sidecar_path(out).read_text())
    assert side["status"] == "failed" and side["n_files"] == len(rows)
    assert "No space left" in side["failure"]


def test_summary_counts_only_rows_the_case_stored(tmp_path, tiny_checkpoint, monkeypatch,
                                                  capsys):
    images = tmp_path / "images"
    make_images(images, 6, size=(48, 48))
    real = Case.add_results
    calls = []

    def add_then_fill(self, scan_id, rows):
        calls.append(len(rows))
        if len(calls) > 1:
            raise CaseStorageError("disk full (simulated)")
        return real(self, scan_id, rows)

    monkeypatch.setattr(Case, "add_results", add_then_fill)
    rc = scan(images, tmp_path / "case", tiny_checkpoint, "--batch-size", "2", "--workers", "1")
    err = capsys.readouterr().err
    assert rc == 3  # README: an output (the case) could not be written
    assert "2 new rows stored" in err and "scored rows were not stored" in err


# ----------------------------------------------------------------------------- 10. smaller
def test_stop_during_flush_waits_until_every_report_has_the_batch(tmp_path, tiny_detector,
                                                                  image_folder):
    from forensics_app.core.scan import scan_files

    results = scan_files(discover_files([image_folder])[:3], tiny_detector)
    got_a, got_b = [], []

    def sink_a(rows):  # SIGTERM arrives while the first report is being written
        got_a.extend(rows)
        request_stop()

    with Case.create(tmp_path / "case") as case:
        scan_id = case.begin_scan({"model_id": "m"}, {}, [], False)
        rec = CaseRecorder(case, scan_id, batch_size=100, sinks=[sink_a, got_b.extend])
        for r in results:
            rec(r)
        with pytest.raises(KeyboardInterrupt):
            rec.flush()
        assert len(got_a) == len(got_b) == case.count_results() == 3


def test_failing_sink_raises_recording_error_and_is_dropped(tmp_path):
    from forensics_app.core.results import ScanResult

    def broken(_rows):
        raise OSError(errno.ENOSPC, "No space left on device")

    rec = CaseRecorder(None, None, sinks=[broken])
    rec(ScanResult(path=str(tmp_path / "a.png")))
    with pytest.raises(RecordingError, match="No space left"):
        rec.flush()
    assert rec.sinks == []


def test_streamed_sidecar_counts_rows_before_close(tmp_path, tiny_detector, image_folder):
    from forensics_app.core.scan import scan_files

    results = scan_files(discover_files([image_folder])[:3], tiny_detector)
    stream = export.StreamedReport(tmp_path / "r.jsonl")
    stream.write(results)  # a SIGKILL now leaves this side-car
    side = json.loads(export.sidecar_path(tmp_path / "r.jsonl").read_text())
    assert side["n_files"] == 3 and side["completed"] is False


def test_moves_deletions_and_link_swaps_are_logged_once(tmp_path, tiny_checkpoint):
    images = tmp_path / "images"
    files = make_images(images, 4)
    case_dir = tmp_path / "case"
    assert scan(images, case_dir, tiny_checkpoint) == 0
    os.replace(files[0], images / "renamed.png")  # moved
    files[1].unlink()  # deleted
    keep = tmp_path / "elsewhere.png"
    shutil.copyfile(files[2], keep)
    files[2].unlink()
    files[2].symlink_to(keep)  # swapped for a link to the same bytes (outside the folder)
    for _ in range(2):
        assert scan(images, case_dir, tiny_checkpoint, "--follow-links-outside") == 0
    with Case.open(case_dir, read_only=True) as case:
        actions = [a.action for a in case.audit_entries()]
        row = next(r for r in case.results() if r.path == str(files[0]))
        assert case.verify().ok
    assert actions.count(ACTION_EVIDENCE_MOVED) == 1
    assert actions.count(ACTION_EVIDENCE_MISSING) == 1
    assert actions.count(ACTION_EVIDENCE_LINK_CHANGED) == 1
    assert sum("renamed.png" in n for n in row.notes) == 1


def test_report_marks_tampered_rows_and_describes_the_model_used(scanned, image_folder):
    rec = json.loads(sql(scanned, "SELECT record_json FROM results WHERE seq = 2")[0][0])
    rec["prob_fake"] = 0.001
    sql(scanned, "UPDATE results SET record_json = ? WHERE seq = 2", (json.dumps(rec),))
    with Case.open(scanned, read_only=True) as case:
        data = build_report(case, gradcam=False, thumbnails=False)
    html = render_html(data)
    marked = [chunk for chunk in html.split("<tr")[1:] if "TAMPERED" in chunk]
    assert len(marked) == 1 and Path(rec["path"]).name in marked[0]
    assert "Integrity: BROKEN" in html
    arch = data.models[0].meta["architecture"]
    assert "ResNet-50-family" not in html
    assert f"ResNet-{arch['name'].removeprefix('resnet')}" in html


def test_superseded_rows_are_not_counted(scanned, image_folder, tiny_checkpoint):
    target = sorted(image_folder.iterdir())[0]
    make_image((80, 80), seed=4242).save(target, format=target.suffix.lstrip(".").upper()
                                         .replace("JPG", "JPEG"))
    assert scan(image_folder, scanned, tiny_checkpoint) == 0
    with Case.open(scanned, read_only=True) as case:
        data = build_report(case, gradcam=False, thumbnails=False)
    assert len(data.rows) == 9 and len(data.current_rows) == 8
    assert sum(data.counts.values()) == 8
    assert "<b>8</b> files" in render_html(data)


# ----------------------------------------------------------------------------- schema upgrade
def test_schema_1_case_is_read_then_upgraded_and_pinned(scanned, capsys):
    # Make the case look as schema 1 left it.
    sql(scanned, "ALTER TABLE evidence DROP COLUMN link_target")
    sql(scanned, "DROP TABLE reviews")  # schema 3 (issue 25)
    sql(scanned, "DELETE FROM schema_version WHERE version >= 2")
    with Case.open(scanned, read_only=True) as case:  # readable as it is, read-only
        assert case.verify().ok and case.count_results() == 8
    with Case.open(scanned) as case:
        assert case.audit_entries()[-1].action == "case upgraded"
        assert case.verify().ok
    assert sql(scanned, "SELECT MAX(version) FROM schema_version") == [(SCHEMA_VERSION,)]
    sql(scanned, "UPDATE scans SET status = 'cancelled'")
    rc, text = verify(scanned, capsys=capsys)
    assert rc == 1 and "scan #1" in text
