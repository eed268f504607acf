"""forensics-scan --ray: a scan on Ray actors lands in the case as a local scan does.

One local Ray runtime for the module (2 CPUs, loopback, no dashboard); tiny random-weight
detector and generated images. Skipped, saying why, only where Ray cannot start.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from forensics_app.core.case import Case
from forensics_app.core.session import ScanSession, ScanSettings
from helpers import make_images, save_tiny_checkpoint

ray = pytest.importorskip("ray", reason="Ray is not installed (the `cluster` extra)")

from forensics_app.core.ray_scan import (  # noqa: E402
    ClusterError,
    RayOptions,
    RayScanSession,
    ScanWorker,
    start_runtime,
)

SETTINGS = ScanSettings(mode="sample", tile_size=64, sample_tiles=2, batch_size=2, workers=1)


@pytest.fixture(scope="module", autouse=True)
def ray_runtime():
    try:
        owned = start_runtime(RayOptions(workers=2, object_store_mb=80))
    except Exception as exc:  # noqa: BLE001 -- any failure to start is the skip reason
        pytest.skip(f"Ray cannot start here: {exc}")
    # The fault-injecting worker below is defined in this test module, which workers cannot
    # import: send it by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    if owned:
        ray.shutdown()


@pytest.fixture
def evidence(tmp_path) -> list[Path]:
    """Ten images, a corrupt PNG and an explicitly named file that does not exist."""
    folder = tmp_path / "seized"
    make_images(folder, 10)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    return [folder, folder / "missing.jpg"]


def _rows(case_dir: Path) -> dict[str, object]:
    with Case.open(case_dir, read_only=True) as case:
        assert case.verify().ok
        rows = case.results()
    by_path = {r.path: r for r in rows}
    assert len(by_path) == len(rows), "a file was stored twice"
    return by_path


def test_same_rows_as_a_local_scan(tiny_detector, tiny_checkpoint, evidence, tmp_path):
    local = ScanSession(tiny_detector, SETTINGS, evidence, case=tmp_path / "local").run()
    session = RayScanSession(tiny_detector, SETTINGS, evidence, case=tmp_path / "ray",
                             jsonl=tmp_path / "ray.jsonl",
                             ray_options=RayOptions(workers=2, inflight_per_worker=3,
                                                    batch_files=2))
    outcome = session.run()
    assert outcome.status == local.status == "finished"
    want, got = _rows(tmp_path / "local"), _rows(tmp_path / "ray")
    assert set(got) == set(want) and len(got) == 12
    for path, w in want.items():
        g = got[path]
        assert (g.sha256, g.verdict, g.error, g.model_id) == (w.sha256, w.verdict, w.error,
                                                               w.model_id)
        if w.prob_fake is None:
            assert g.prob_fake is None
        else:
            assert abs(g.prob_fake - w.prob_fake) < 1e-4
    assert sum(r.ok for r in got.values()) == 10  # the corrupt and the missing file: errors
    # every row scored on a worker says where
    assert all(any(n.startswith("scored on Ray node ") for n in r.notes)
               for r in got.values() if r.sha256)
    assert len((tmp_path / "ray.jsonl").read_text().splitlines()) == 12
    # the head never had more files out than the window allows
    assert 0 < session.stats.max_inflight_files <= 2 * 3
    assert session.stats.worker_deaths == 0 and not session.stats.refusals


class DyingWorker(ScanWorker):
    """Kills its own process the first time it is sent ``img_004.png`` (a marker file
    remembers, since a dead actor remembers nothing)."""

    marker = ""

    def score(self, items):
        if any(Path(k).name == "img_004.png" for k, _, _ in items) and not os.path.exists(
                self.marker):
            Path(self.marker).write_text(self.name)
            os._exit(1)
        return super().score(items)


class AlwaysDyingWorker(ScanWorker):
    def score(self, items):
        if any(Path(k).name == "img_004.png" for k, _, _ in items):
            os._exit(1)
        return super().score(items)


def test_a_killed_worker_s_files_are_scored_by_another(tiny_detector, evidence, tmp_path):
    DyingWorker.marker = str(tmp_path / "died")
    session = RayScanSession(tiny_detector, SETTINGS, evidence, case=tmp_path / "case",
                             ray_options=RayOptions(workers=2, inflight_per_worker=4,
                                                    batch_files=2),
                             worker_class=DyingWorker)
    outcome = session.run()
    assert outcome.status == "finished"
    assert Path(DyingWorker.marker).exists()
    assert session.stats.worker_deaths == 1 and session.stats.retried_files >= 1
    rows = _rows(tmp_path / "case")
    assert len(rows) == 12 and sum(r.ok for r in rows.values()) == 10
    (culprit,) = [r for p, r in rows.items() if p.endswith("img_004.png")]
    dead = Path(DyingWorker.marker).read_text()
    assert culprit.ok and not any(f"by worker {dead} (" in n for n in culprit.notes)


def test_a_file_that_kills_every_worker_gets_an_error_row(tiny_detector, evidence, tmp_path):
    session = RayScanSession(tiny_detector, SETTINGS, evidence[:1], case=tmp_path / "case",
                             ray_options=RayOptions(workers=2, inflight_per_worker=2,
                                                    batch_files=2, max_tries=2),
                             worker_class=AlwaysDyingWorker)
    outcome = session.run()
    assert outcome.status == "finished"
    rows = _rows(tmp_path / "case")
    assert len(rows) == 11
    (culprit,) = [r for p, r in rows.items() if p.endswith("img_004.png")]
    assert not culprit.ok and "failed 2 times" in culprit.error
    assert sum(r.ok for r in rows.values()) == 9  # the rest scored despite the deaths


def test_an_interrupted_head_resumes_without_scoring_twice(tiny_detector, evidence, tmp_path):
    case_dir = tmp_path / "case"
    seen = []

    def stop_after_four(row):
        seen.append(row)
        if len(seen) == 4:
            raise KeyboardInterrupt  # what Ctrl-C on the head raises

    options = RayOptions(workers=2, inflight_per_worker=2, batch_files=1)
    first = RayScanSession(tiny_detector, SETTINGS, evidence, case=case_dir,
                           ray_options=options, on_result=stop_after_four).run()
    assert first.status == "interrupted"
    held = len(_rows(case_dir))
    assert 0 < held < 12
    # resumed with the bytes sent by the head this time: the same rows either way
    second = RayScanSession(tiny_detector, SETTINGS, evidence, case=case_dir,
                            ray_options=RayOptions(workers=2, send_bytes=True)).run()
    assert second.status == "finished" and second.n_already == held
    rows = _rows(case_dir)
    assert len(rows) == 12 and sum(r.ok for r in rows.values()) == 10


def test_a_worker_whose_checkpoint_differs_refuses(tiny_detector, evidence, tmp_path):
    other = save_tiny_checkpoint(tmp_path / "tiny.pt", seed=1)  # same name, other weights
    session = RayScanSession(tiny_detector, SETTINGS, evidence, case=tmp_path / "case",
                             ray_options=RayOptions(workers=1, start_timeout_s=120),
                             model_path=other)
    with pytest.raises(ClusterError, match="SHA-256"):
        session.run()
    with Case.open(tmp_path / "case", read_only=True) as case:
        assert case.count_results() == 0
        assert [s.status for s in case.scans()] == ["failed"]
