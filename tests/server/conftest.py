"""Server tests: one tiny random-weight detector behind the app, cases in tmp_path."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("fastapi")
pytest.importorskip("httpx")


@pytest.fixture(autouse=True)
def _one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def make_service(tiny_detector, tmp_path):
    from forensics_app.core.session import ScanSettings
    from forensics_app.server.service import ServeLimits, ServeService

    made = []

    def make(start: bool = True, scan_root=None, **limits):
        service = ServeService(tiny_detector, ScanSettings(workers=1, batch_size=4),
                               tmp_path / "data", ServeLimits(**limits), scan_root=scan_root)
        if start:
            service.start()
        made.append(service)
        return service

    yield make
    for service in made:
        service.stop()


@pytest.fixture
def make_client(make_service):
    from fastapi.testclient import TestClient

    from forensics_app.server.api import create_app

    def make(start: bool = True, token: str | None = None, scan_root=None, **limits):
        service = make_service(start, scan_root=scan_root, **limits)
        return TestClient(create_app(service, token=token)), service

    return make
