"""The web page in a real headless browser (Debian's chromium, driven by Playwright).

Skips where either is absent; nothing here downloads a browser.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time

import pytest

from helpers import make_images

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
sync_api = pytest.importorskip("playwright.sync_api")
if not shutil.which("chromium"):
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)",
                allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


HOSTILE = "<img src=x onerror=alert(1)>.png"


@pytest.fixture
def interrupted_job(make_service, tmp_path):
    """A scan a stopped server left queued: the next server on the data folder lists it as
    interrupted (requested before ``served``, so that server finds it)."""
    from helpers import make_image

    stopped = make_service(start=False)
    uploads = []
    for i in range(2):
        path = tmp_path / f"left{i}.png"
        make_image((64, 56), 40 + i).save(path)
        uploads.append((f"left behind {i}.png", path.read_bytes()))
    job = stopped.submit_scan(uploads)
    stopped.stop()
    return job.id


@pytest.fixture
def served(make_service):
    import uvicorn

    from forensics_app.server.api import create_app

    service = make_service()
    port = _free_port()
    app = create_app(service, allowed_hosts=["127.0.0.1"])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    for _ in range(400):
        if server.started:
            break
        time.sleep(0.025)
    yield f"http://127.0.0.1:{port}", service
    server.should_exit = True
    thread.join(30)
    assert not thread.is_alive()


def test_page_uploads_images_and_shows_verdicts_and_heatmap(interrupted_job, served, tmp_path):
    url, service = served
    files = make_images(tmp_path / "upload", 3)
    hostile = files[0].rename(files[0].with_name(HOSTILE))  # first: the job's title too
    files = [hostile, *files[1:]]
    errors: list[str] = []
    dialogs: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("requestfailed", lambda r: errors.append(f"failed: {r.url}"))
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            external = []
            page.on("request", lambda r: external.append(r.url)
                    if not r.url.startswith((url, "data:", "blob:")) else None)
            page.goto(url + "/")
            page.wait_for_selector("#model:has-text('Model')")
            # The scan list shows the job the stopped server left, with a Resume button.
            left = page.locator(f"#scan-list tr[data-id='{interrupted_job}']")
            left.locator("td.status:has-text('interrupted')").wait_for()
            assert left.locator("td.title").text_content() == "left behind 0.png and 1 more"
            page.set_input_files("#files", [str(f) for f in files])
            page.wait_for_selector("#reports:not([hidden])", timeout=120_000)
            verdicts = page.locator("#results tbody td.verdict").all_text_contents()
            assert len(verdicts) == 3
            assert set(verdicts) <= {"AI-generated", "Real", "Inconclusive"}
            names = page.locator("#results tbody td.name").all_text_contents()
            assert sorted(names) == sorted(f.name for f in files) and HOSTILE in names
            # The hostile name is text: no element was made from it, no script ran.
            assert page.locator("img[src='x']").count() == 0
            assert page.locator("#results tbody td.name img").count() == 0
            row_class = page.locator("#results tbody tr").first.get_attribute("class")
            assert row_class in ("v-fake", "v-real", "v-inconclusive")
            assert "finished" in page.locator("#status").text_content()
            page.locator("#results tbody tr").first.click()
            # (the page's CSP forbids eval, so no string predicates: selectors and a function)
            page.wait_for_selector("#heatmap-img[src^='blob:']", timeout=120_000)
            heat = page.locator("#heatmap-img")
            for _ in range(200):
                if heat.evaluate("img => img.complete && img.naturalWidth") > 0:
                    break
                page.wait_for_timeout(50)
            assert heat.evaluate("img => img.naturalWidth") > 0
            href = page.locator("#r-html").get_attribute("href")
            assert href.endswith("/report.html")

            # The job list: the upload finished (with its report links), titled by the
            # hostile name as text; the interrupted job resumes from its button.
            done = page.locator("#scan-list tr.s-finished td.title").first
            done.wait_for(timeout=120_000)
            assert done.text_content() == HOSTILE + " and 2 more"
            assert page.locator("#scan-list td.title img").count() == 0
            finished = page.locator("#scan-list tr.s-finished")
            assert finished.count() == 1 and page.locator("#scan-list tbody tr").count() == 2
            assert finished.locator("td.progress").text_content().strip() == "3 of 3"
            assert finished.locator("progress").evaluate("bar => bar.value") == 3
            hrefs = finished.locator("td.reports a").evaluate_all(
                "links => links.map(a => a.getAttribute('href'))")
            assert [h.rsplit(".", 1)[1] for h in hrefs] == ["html", "pdf", "csv", "jsonl"]
            left.locator("button.resume").click()
            page.wait_for_selector(f"#scan-list tr.s-finished[data-id='{interrupted_job}']",
                                   timeout=120_000)
            assert page.locator("#scan-list button.resume").count() == 0
            assert page.locator("#scan-list tr.s-finished").count() == 2
            page.wait_for_selector("#status:has-text('finished — 2 image(s)')")
            names = page.locator("#results tbody td.name").all_text_contents()
            assert names == ["left behind 0.png", "left behind 1.png"]
            page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
        finally:
            browser.close()
    assert external == [] and errors == [] and dialogs == []
    assert len(service.jobs) == 2
