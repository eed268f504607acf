"""Issue 34 against the real ``forensics-serve`` process (``python -m
forensics_app.server.cli``): SIGTERM, cross-site requests, a link out of the scan root, a
chunked body over the limit on a raw socket, and report downloads with a token in the browser.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from forensics_app.core.case import Case
from helpers import make_image, make_images

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(os.name != "posix", reason="signals and links: POSIX")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    def __init__(self, proc: subprocess.Popen, port: int, data: Path):
        self.proc, self.port, self.data = proc, port, data
        self.base = f"http://127.0.0.1:{port}"

    def cases(self) -> list[Path]:
        scans = self.data / "scans"
        return sorted(p for p in scans.iterdir() if p.is_dir()) if scans.is_dir() else []


@pytest.fixture
def serve(tmp_path, tiny_checkpoint):
    started: list[Served] = []

    def start(*extra: str) -> Served:
        port = _free_port()
        data = tmp_path / f"data{len(started)}"
        env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "config"),
                   PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
        proc = subprocess.Popen(
            [sys.executable, "-m", "forensics_app.server.cli", "--model", str(tiny_checkpoint),
             "--device", "cpu", "--port", str(port), "--data-dir", str(data), "--workers", "1",
             *extra], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        served = Served(proc, port, data)
        started.append(served)
        for _ in range(1200):
            if proc.poll() is not None:
                raise AssertionError(f"the server exited: {proc.communicate()[1][-2000:]}")
            try:
                if httpx.get(served.base + "/healthz", timeout=2).status_code == 200:
                    return served
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError("the server did not start")

    yield start
    for served in started:
        if served.proc.poll() is None:
            served.proc.kill()
            served.proc.wait(30)


def _wait(client: httpx.Client, job_id: str, tries: int = 1200) -> dict:
    for _ in range(tries):
        s = client.get(f"/api/v1/scans/{job_id}").json()
        if s["status"] not in ("queued", "running"):
            return s
        time.sleep(0.1)
    raise AssertionError(f"scan still {s['status']}")


def _files(tmp_path: Path, n: int, size=(160, 128)) -> list:
    out = []
    for i in range(n):
        path = tmp_path / f"u{i}.png"
        make_image(size, 100 + i).save(path)
        out.append(("image", (f"upload {i}.png", path.read_bytes(), "image/png")))
    return out


def test_sigterm_stops_the_server_as_ctrl_c_does(serve, tmp_path):
    served = serve("--batch-size", "1")
    with httpx.Client(base_url=served.base, timeout=30) as client:
        r = client.post("/api/v1/scans", files=_files(tmp_path, 40))
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        for _ in range(1200):
            s = client.get(f"/api/v1/scans/{job_id}").json()
            if s["status"] != "queued" and s["done"] >= 1:
                break
            time.sleep(0.05)
    served.proc.send_signal(signal.SIGTERM)
    _, err = served.proc.communicate(timeout=120)
    assert served.proc.returncode == 0, err[-2000:]
    assert "stopping" in err and "Traceback" not in err
    folder = served.data / "scans" / job_id
    record = json.loads((folder / "job.json").read_text())
    # Marked, not left "running": interrupted (resumable), or finished if it got there first.
    assert record["status"] in ("interrupted", "finished"), record["status"]
    with Case.open(folder, read_only=True) as case:  # closed cleanly, every row it holds kept
        assert case.verify().ok
        assert case.count_results() == record["done"] >= 1
        assert case.scans()[-1].status in ("cancelled", "finished")


def test_cross_site_posts_are_refused_by_the_running_server(serve, tmp_path):
    served = serve()  # loopback, no token
    files = _files(tmp_path, 1, (64, 64))
    with httpx.Client(base_url=served.base, timeout=30) as client:
        for headers in ({"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
                        {"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
            r = client.post("/api/v1/scans", files=files, headers=headers)
            assert r.status_code == 403 and "refused" in r.json()["detail"], headers
        assert served.cases() == []  # nothing planted, nothing queued
        r = client.post("/api/v1/scans", files=files,
                        headers={"Origin": served.base, "Sec-Fetch-Site": "same-origin"})
        assert r.status_code == 202, r.text
        assert len(served.cases()) == 1


def test_a_link_out_of_the_scan_root_is_an_error_row_and_never_read(serve, tmp_path):
    root = tmp_path / "evidence"
    make_images(root / "seized", 2)
    secret = tmp_path / "secret.png"  # an image outside the root: scored if it were read
    make_image((64, 64), 99).save(secret)
    secret_sha = hashlib.sha256(secret.read_bytes()).hexdigest()
    (root / "seized" / "passwd.png").symlink_to(secret)
    (root / "seized" / "inside.png").symlink_to(root / "seized" / "img_000.png")
    served = serve("--scan-root", str(root))
    with httpx.Client(base_url=served.base, timeout=60) as client:
        r = client.post("/api/v1/scans", json={"folder": "seized"})
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        assert _wait(client, job_id)["status"] == "finished"
        rows = {row["filename"]: row for row in
                client.get(f"/api/v1/scans/{job_id}/results").json()}
        out = rows["seized/passwd.png"]
        # the link rule of core.discovery (a link out of the scanned folder) or the server's
        # own root confinement: either way it is an error row and the target is never read
        assert out["error"].startswith(("outside the scan root",
                                        "link to a file outside the evidence folder"))
        assert not out["ok"]
        assert not out["sha256"]
        assert rows["seized/inside.png"]["ok"]  # a link that stays inside is read
        answers = [client.get(f"/api/v1/scans/{job_id}/results").text,
                   client.get(f"/api/v1/scans/{job_id}/results.jsonl").text,
                   client.get(f"/api/v1/scans/{job_id}/report.html").text]
    for text in answers:
        assert secret_sha not in text and str(tmp_path) not in text
    assert "seized/passwd.png" in answers[0]


def test_a_chunked_upload_over_the_limit_stops_at_the_limit(serve):
    served = serve("--max-request-mb", "1")
    head = (f"POST /api/v1/scans HTTP/1.1\r\nHost: 127.0.0.1:{served.port}\r\n"
            "Content-Type: multipart/form-data; boundary=xx\r\n"
            "Transfer-Encoding: chunked\r\n\r\n").encode()
    part = (b'--xx\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
            b"Content-Type: image/png\r\n\r\n")
    head += b"%x\r\n" % len(part) + part + b"\r\n"
    chunk = b"a" * 65536
    sent = 0
    answer = b""
    with socket.create_connection(("127.0.0.1", served.port), timeout=30) as sock:
        sock.sendall(head)
        try:
            while sent < 64 * 1024 * 1024:
                sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                sent += len(chunk)
                sock.setblocking(False)
                try:
                    answer += sock.recv(65536)
                except BlockingIOError:
                    pass
                sock.setblocking(True)
                if answer:
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass
        sock.settimeout(30)
        try:
            while not answer.endswith(b"}"):
                more = sock.recv(65536)
                if not more:
                    break
                answer += more
        except (ConnectionResetError, TimeoutError):
            pass
    status, _, rest = answer.partition(b"\r\n")
    assert status.startswith(b"HTTP/1.1 413"), answer[:300]
    assert b"application/json" in rest and b"1,048,576-byte limit" in rest
    assert sent < 32 * 1024 * 1024  # it stopped reading: not the 64 MB this client had
    assert served.cases() == []


def test_report_downloads_work_with_a_token_in_the_browser(serve, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token-" + "x" * 20)
    token_file.chmod(0o600)
    served = serve("--token-file", str(token_file))
    uploads = make_images(tmp_path / "upload", 2)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True,
                                     args=["--no-sandbox"])
        try:
            page = browser.new_page(accept_downloads=True)
            page.goto(served.base + "/")
            page.wait_for_selector("#token-box:not([hidden])")  # the API said 401
            page.fill("#token", token_file.read_text())
            page.dispatch_event("#token", "change")
            page.wait_for_selector("#model:has-text('Model')")
            page.set_input_files("#files", [str(f) for f in uploads])
            page.wait_for_selector("#reports:not([hidden])", timeout=120_000)
            with page.expect_download(timeout=180_000) as got:
                page.click("#r-html")
            html = Path(got.value.path()).read_text(encoding="utf-8")
            assert got.value.suggested_filename.endswith("-report.html")
            assert "Case report" in html and uploads[0].name in html
            assert str(served.data) not in html
            finished = page.locator("#scan-list tr.s-finished td.reports a", has_text="CSV")
            with page.expect_download(timeout=180_000) as got:
                finished.first.click()
            csv = Path(got.value.path()).read_text(encoding="utf-8")
            assert csv.startswith("path,") or "sha256" in csv.splitlines()[0]
            assert uploads[1].name in csv
        finally:
            browser.close()
