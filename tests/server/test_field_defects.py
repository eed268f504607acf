"""Issue 34, on the framework's test client: chunked bodies over the limit, a full data disk,
client names instead of server paths, cross-site requests, and the smaller API answers.
(The same defects against a real server process: test_served_process.py.)"""

from __future__ import annotations

import errno
import io
import json
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from forensics_app.core.case import Case
from helpers import make_image


def png_bytes(size=(96, 80), seed=0) -> bytes:
    buf = io.BytesIO()
    make_image(size, seed).save(buf, "PNG")
    return buf.getvalue()


def _wait(client, job_id, tries=1200):
    for _ in range(tries):
        s = client.get(f"/api/v1/scans/{job_id}").json()
        if s["status"] not in ("queued", "running"):
            return s
        time.sleep(0.05)
    raise AssertionError(f"scan still {s['status']}")


def _cases(service):
    return list(service.scans_dir.iterdir()) if service.scans_dir.exists() else []


def _uploads(n, names=None):
    return [("image", ((names or [f"photo {i}.png" for i in range(n)])[i],
                       png_bytes((64, 56), 10 + i), "image/png")) for i in range(n)]


def test_a_chunked_body_over_the_limit_is_413_json_and_nothing_is_stored(make_client):
    client, service = make_client(max_request_bytes=100_000)
    pulled = []

    def body():  # no Content-Length: the body arrives chunked
        yield (b'--xx\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
               b"Content-Type: image/png\r\n\r\n")
        for _ in range(50):
            pulled.append(1)
            yield b"a" * 10_000

    r = client.post("/api/v1/scans", content=body(),
                    headers={"content-type": "multipart/form-data; boundary=xx"})
    assert r.status_code == 413, r.text
    assert r.headers["content-type"] == "application/json"
    assert "100,000-byte limit" in r.json()["detail"]
    assert not _cases(service)  # no case was made


def _full(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_is_507_naming_the_disk_and_later_batches_work(make_client, monkeypatch):
    client, service = make_client()
    real_write = Path.write_bytes
    calls = []

    def write_then_fill(self, data):  # the third upload finds the disk full
        calls.append(self)
        if len(calls) == 3:
            _full()
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_then_fill)
    r = client.post("/api/v1/scans", files=_uploads(4))
    assert r.status_code == 507, r.text
    detail = r.json()["detail"]
    assert "no space left on the server's data disk" in detail and "mounted at" in detail
    assert str(service.data_dir) not in detail  # the disk, not the server's folder
    assert not _cases(service)  # the half-stored batch is gone
    monkeypatch.setattr(Path, "write_bytes", real_write)

    # Not enough room for the batch: refused before anything is written.
    usage = shutil.disk_usage(service.data_dir)
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: usage._replace(free=1000))
    r = client.post("/api/v1/scans", files=_uploads(2))
    assert r.status_code == 507 and "1,000" not in r.json()["detail"]
    assert not _cases(service)
    monkeypatch.undo()

    # Space is back: the next batch is stored and scored.
    r = client.post("/api/v1/scans", files=_uploads(2))
    assert r.status_code == 202, r.text
    assert _wait(client, r.json()["id"])["status"] == "finished"


def test_a_disk_that_fills_during_a_scan_fails_it_cleanly_and_it_resumes(make_client,
                                                                         monkeypatch):
    client, service = make_client()
    real_add = Case.add_results
    stored = []

    def add_then_fill(self, scan_id, results):
        results = list(results)
        if stored:  # the second batch: SQLite finds the disk full (the transaction rolls back)
            with self._write(f"store {len(results)} results"):
                raise sqlite3.OperationalError("database or disk is full")
        stored.append(len(results))
        return real_add(self, scan_id, results)

    monkeypatch.setattr(Case, "add_results", add_then_fill)
    r = client.post("/api/v1/scans", files=_uploads(10))
    assert r.status_code == 202
    job_id = r.json()["id"]
    s = _wait(client, job_id)
    assert s["status"] == "failed" and s["resumable"]
    assert "no space left on the server's data disk" in s["message"]
    assert str(service.data_dir) not in s["message"]
    folder = service.job(job_id).folder
    with Case.open(folder, read_only=True) as case:  # the rows stored before it are intact
        assert case.verify().ok and case.count_results() == stored[0] < 10
    assert json.loads((folder / "job.json").read_text())["status"] == "failed"
    monkeypatch.undo()

    r = client.post("/api/v1/scans", files=_uploads(2))  # later batches work
    assert r.status_code == 202 and _wait(client, r.json()["id"])["status"] == "finished"
    r = client.post(f"/api/v1/scans/{job_id}/resume")  # and the failed one completes
    assert r.status_code == 202 and _wait(client, job_id)["status"] == "finished"
    with Case.open(folder, read_only=True) as case:
        assert case.verify().ok and case.count_results() == 10


def test_rows_and_reports_show_uploaded_names_and_no_server_path(make_client):
    client, service = make_client()
    names = ["holiday <b>beach</b>.png", "Zeugnis-Ärger.png"]
    r = client.post("/api/v1/scans", files=_uploads(2, names))
    job_id = r.json()["id"]
    assert _wait(client, job_id)["status"] == "finished"
    server_path = str(service.data_dir)
    rows = client.get(f"/api/v1/scans/{job_id}/results")
    assert server_path not in rows.text
    assert [(row["filename"], row["file_name"], row["path"]) for row in rows.json()] == [
        (names[0], names[0], "evidence/00000.png"), (names[1], names[1], "evidence/00001.png")]
    for fmt in ("html", "csv", "jsonl"):
        report = client.get(f"/api/v1/scans/{job_id}/report.{fmt}")
        assert report.status_code == 200, report.text
        text = report.text
        assert server_path not in text and str(Path.home()) + "/" not in text, fmt
        assert "evidence/00001.png" in text, fmt
        if fmt == "html":  # escaped: no element made from a name
            assert "holiday &lt;b&gt;beach&lt;/b&gt;.png" in text and "<b>beach" not in text
            assert "Zeugnis-Ärger.png" in text
        else:
            assert names[1] in text, fmt
    with Case.open(service.job(job_id).folder, read_only=True) as case:  # the case unchanged
        assert case.verify().ok
        assert {Path(r.path).name for r in case.results()} == {"00000.png", "00001.png"}


@pytest.mark.skipif(shutil.which("pdftotext") is None,
                    reason="pdftotext (poppler-utils) is not installed")
def test_the_pdf_report_shows_uploaded_names_and_no_server_path(make_client):
    client, service = make_client()
    r = client.post("/api/v1/scans", files=_uploads(2, ["holiday one.png", "second.png"]))
    job_id = r.json()["id"]
    assert _wait(client, job_id)["status"] == "finished"
    pdf = client.get(f"/api/v1/scans/{job_id}/report.pdf")
    assert pdf.status_code == 200 and pdf.content[:5] == b"%PDF-"
    text = subprocess.run(["pdftotext", "-layout", "-", "-"], input=pdf.content,
                          capture_output=True, check=True, timeout=60).stdout.decode()
    assert "holiday one.png" in text and "second.png" in text
    assert str(service.data_dir) not in text.replace("\n", "")


def test_cross_site_requests_are_refused_without_a_token_too(make_client):
    client, service = make_client()
    files = _uploads(1)
    for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"},
                    {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
                    {"Origin": "http://testserver.evil.example"}):
        r = client.post("/api/v1/scans", files=files, headers=headers)
        assert r.status_code == 403, headers
        assert "refused" in r.json()["detail"]
    assert not _cases(service)  # nothing stored, nothing queued
    job = client.post("/api/v1/scans", files=files,
                      headers={"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"})
    assert job.status_code == 202  # this server's own page
    job_id = job.json()["id"]
    assert client.delete(f"/api/v1/scans/{job_id}",
                         headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert client.post(f"/api/v1/scans/{job_id}/resume",
                       headers={"Origin": "https://evil.example"}).status_code == 403
    assert client.get(f"/api/v1/scans/{job_id}",  # reading is not refused (no CORS header)
                      headers={"Origin": "https://evil.example"}).status_code == 200
    assert client.post("/api/v1/scans", files=files).status_code == 202  # curl, scripts


def test_smaller_answers_of_issue_34(make_client, tmp_path, capsys):
    client, _ = make_client(token="t" * 24, scan_root=tmp_path)
    auth = {"Authorization": "Bearer " + "t" * 24}
    (tmp_path / "sub").mkdir()
    for body, code in ((b'{"folder": "sub", "recursive": "no"}', 422),
                       (b'{"folder": "su\\u0000b"}', 422), (b'{"folder": {"a": [1]}}', 422),
                       (b"[" * 100_000 + b"]" * 100_000, 400), (b'"sub"', 400),
                       (b'{"folder": "sub", "recursive": false}', 202)):
        r = client.post("/api/v1/scans", content=body,
                        headers=auth | {"content-type": "application/json"})
        assert r.status_code == code, (body[:40], r.text)
        assert r.headers["content-type"] == "application/json"
    assert client.get("/openapi.json").status_code == 401  # the schema needs the token too
    schema = client.get("/openapi.json", headers=auth).json()
    answers = schema["paths"]["/api/v1/scans"]["post"]["responses"]
    assert {"400", "401", "403", "409", "413", "429", "507"} <= set(answers)
    assert "ResNet" not in schema["info"]["description"]
    assert "percent" in schema["info"]["description"]
    assert client.get("/healthz").json() == {"status": "ok"}  # no counters without the token

    from fastapi.testclient import TestClient

    from forensics_app.server.api import create_app

    guarded = TestClient(create_app(client.app.state.service, allowed_hosts=["127.0.0.1"]))
    r = guarded.get("/", headers={"Host": "rebound.example"})
    assert r.status_code == 400 and "Host header" in r.json()["detail"]

    from forensics_app.server import cli

    folder = tmp_path / "a folder"
    folder.mkdir(mode=0o700)
    assert cli.main(["--token-file", str(folder), "--model", str(tmp_path / "x.pt")]) == 2
    assert "is not a file" in capsys.readouterr().err
