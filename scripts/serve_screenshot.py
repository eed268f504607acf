"""Screenshot of the ``forensics-serve`` page in headless chromium (the README's picture).

    .venv/bin/python scripts/serve_screenshot.py [--out docs/screenshots/serve_page.png]

Starts the server on a free loopback port with the bundled detector, drops the self-test
samples on the page through its file input, opens the first row's Grad-CAM and saves the
page. Needs Debian's chromium (``apt-get install chromium``) and ``pip install playwright``;
no browser is downloaded.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    from playwright.sync_api import sync_playwright

    p = argparse.ArgumentParser()
    p.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots" / "serve_page.png")
    args = p.parse_args()
    samples = sorted(f for f in (REPO / "resources" / "samples").iterdir()
                     if f.suffix in (".png", ".jpg", ".webp", ".gif"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        server = subprocess.Popen(
            [sys.executable, "-m", "forensics_app.server.cli", "--port", str(port),
             "--data-dir", tmp], env=dict(os.environ, PYTHONPATH=str(REPO)))
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(600):
                try:
                    if urllib.request.urlopen(url + "/healthz", timeout=1).status == 200:
                        break
                except OSError:
                    time.sleep(0.1)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path="/usr/bin/chromium",
                                             args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1200, "height": 900})
                page.goto(url + "/")
                page.set_input_files("#files", [str(f) for f in samples])
                page.wait_for_selector("#reports:not([hidden])", timeout=300_000)
                page.locator("#results tbody tr").first.click()
                page.wait_for_selector("#heatmap-img[src^='blob:']", timeout=300_000)
                page.wait_for_timeout(500)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.out), full_page=True)
                browser.close()
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(30)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
