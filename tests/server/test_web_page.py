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


def test_page_uploads_images_and_shows_verdicts_and_heatmap(served, tmp_path):
    url, service = served
    files = make_images(tmp_path / "upload", 3)
    errors: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("requestfailed", lambda r: errors.append(f"failed: {r.url}"))
            external = []
            page.on("request", lambda r: external.append(r.url)
                    if not r.url.startswith((url, "data:", "blob:")) else None)
            page.goto(url + "/")
            page.wait_for_selector("#model:has-text('Model')")
            page.set_input_files("#files", [str(f) for f in files])
            page.wait_for_selector("#reports:not([hidden])", timeout=120_000)
            verdicts = page.locator("#results tbody td.verdict").all_text_contents()
            assert len(verdicts) == 3
            assert set(verdicts) <= {"AI-generated", "Real", "Inconclusive"}
            names = page.locator("#results tbody td.name").all_text_contents()
            assert sorted(names) == sorted(f.name for f in files)
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
            page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
        finally:
            browser.close()
    assert external == [] and errors == []
    assert len(service.jobs) == 1
