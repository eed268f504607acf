"""Heatmap viewer, model handling, table models, settings and the folder browser."""

from __future__ import annotations

import json
import shutil

import pytest
from gui_helpers import drop, wait_idle
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QLabel

from forensics_app.core.results import Verdict
from forensics_app.core.scan import scan_paths
from forensics_app.gui import main_window as main_window_module
from forensics_app.gui import model_dialog as model_dialog_module
from forensics_app.gui.records import JobStatus, ScanSettings
from forensics_app.gui.settings import AppSettings
from forensics_app.gui.table_model import ResultsFilterProxy, ResultsTableModel
from helpers import make_images, save_tiny_checkpoint

HEATMAP_TIMEOUT_MS = 60_000


@pytest.fixture
def scanned(make_window, qtbot, tmp_path):
    folder = tmp_path / "imgs"
    make_images(folder, 4, seed=11)
    (folder / "zz_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    window = make_window()
    drop(window, [folder])
    wait_idle(qtbot, window)
    return window


def test_heatmap_for_selected_row(scanned, qtbot, tmp_path):
    window = scanned
    row = next(i for i, r in enumerate(window.results.records()) if r.ok)
    record = window.results.record(row)
    window.select_source_row(row)
    with qtbot.waitSignal(window.heatmaps.ready, timeout=HEATMAP_TIMEOUT_MS) as blocker:
        window.act_heatmap.trigger()
    data = blocker.args[0]
    viewer = window.heatmap_viewer
    assert viewer.isVisible() and viewer.data is data
    assert data.key == (record.sha256, record.model_id, record.preprocessing)
    assert data.image.shape == (record.height, record.width, 3)
    assert data.heat.shape == (record.height, record.width)
    assert 0.0 <= data.heat.min() and data.heat.max() <= 1.0
    labels = [label.text() for label in viewer.findChildren(QLabel)]
    assert any("regions that most raised" in t for t in labels)  # honest wording
    assert "not a map of edited or manipulated areas" in viewer.disclaimer.text()
    assert window.heatmaps.computed == 1

    viewer.opacity.setValue(80)
    assert viewer.heat_item.opacity() == pytest.approx(0.8)
    out = tmp_path / "overlay.png"
    assert viewer.save_overlay(str(out))
    saved = QImage(str(out))
    # Full resolution, plus a caption strip; the facts also travel as PNG text chunks.
    assert saved.width() == record.width and saved.height() > record.height
    assert saved.text("SHA-256") == record.sha256 and saved.text("Model") == record.model_id

    # Another row, then back: the first map comes from the cache (per file hash).
    other = next(i for i, r in enumerate(window.results.records()) if r.ok and i != row)
    with qtbot.waitSignal(window.heatmaps.ready, timeout=HEATMAP_TIMEOUT_MS):
        window.select_source_row(other)
    with qtbot.waitSignal(window.heatmaps.ready, timeout=5_000):
        window.select_source_row(row)
    assert window.heatmaps.computed == 2 and viewer.data.key == data.key

    # An error row has no heatmap, and says so.
    bad = next(i for i, r in enumerate(window.results.records()) if not r.ok)
    window.select_source_row(bad)
    assert viewer.data is None and "could not be scored" in viewer.status.text()
    assert not viewer.save_button.isEnabled()


def test_heatmap_offers_tile_scores(make_window, qtbot, tmp_path):
    folder = tmp_path / "big"
    make_images(folder, 1, size=(300, 200), seed=5)
    window = make_window()
    settings = ScanSettings(mode="tiles", tile_size=128)
    window.queue.enqueue([str(folder)], False, settings)
    wait_idle(qtbot, window)
    record = window.results.record(0)
    assert window.results.settings_for(0) == settings
    assert record.ok and len(record.tile_probs) == 6  # 3 x 2 tiles of 128 px
    window.select_source_row(0)
    with qtbot.waitSignal(window.heatmaps.ready, timeout=HEATMAP_TIMEOUT_MS) as blocker:
        window.show_heatmap()
    data = blocker.args[0]
    viewer = window.heatmap_viewer
    assert data.heat.shape == (200, 300) and data.tile_probs == record.tile_probs
    assert viewer.tiles_box.isEnabled() and len(viewer.tile_items) == 12  # box + label each
    assert not any(item.isVisible() for item in viewer.tile_items)
    viewer.tiles_box.setChecked(True)
    assert all(item.isVisible() for item in viewer.tile_items)
    assert not viewer.overlay_image().isNull()


def test_heatmap_on_npr_two_stage_model_and_odd_size(make_window, qtbot, tmp_path):
    """The bundled model's layout (NPR input, two stages); odd sizes lose a row in NPR."""
    arch = {"name": "resnet50", "num_outputs": 1, "input_transform": "npr", "stages": 2}
    ckpt = save_tiny_checkpoint(tmp_path / "npr.pt", arch=arch)
    folder = tmp_path / "odd"
    make_images(folder, 1, size=(101, 77))
    window = make_window(model_path=ckpt)
    window.scan_paths([str(folder)])
    wait_idle(qtbot, window)
    window.select_source_row(0)
    with qtbot.waitSignal(window.heatmaps.ready, timeout=HEATMAP_TIMEOUT_MS) as blocker:
        window.show_heatmap()
    assert blocker.args[0].heat.shape == (77, 101)
    assert "input transform npr" in window.show_model_dialog().text.toPlainText()


def test_missing_bundled_model_is_explained_and_load_model_works(
        make_window, qtbot, tmp_path, tiny_checkpoint, monkeypatch):
    missing = tmp_path / "resources" / "models" / "detector.pt"
    monkeypatch.setattr(main_window_module, "bundled_model_path", lambda: missing)
    monkeypatch.setattr(model_dialog_module, "bundled_model_path", lambda: missing)
    window = make_window(model_path=None)
    qtbot.waitUntil(lambda: window.models.env is not None and not window.models.is_loading,
                    timeout=60_000)
    assert window.banner.isVisible()
    assert "No detector model" in window.banner_text.text() and str(missing) in window.banner_text.text()
    assert window.models.info is None

    folder = tmp_path / "imgs"
    make_images(folder, 3)
    drop(window, [folder])
    qtbot.wait(200)
    assert window.queue.jobs[0].status is JobStatus.PENDING  # waits for a model

    dialog = window.show_model_dialog()
    assert "No model loaded" in dialog.text.toPlainText()
    assert not dialog.bundled_button.isEnabled()
    with qtbot.waitSignal(window.models.model_ready, timeout=60_000):
        dialog.load_requested.emit(str(tiny_checkpoint), 1)
    jobs = wait_idle(qtbot, window)
    assert jobs[0].status is JobStatus.DONE and window.results.rowCount() == 3
    assert not window.banner.isVisible()
    text = dialog.text.toPlainText()
    assert window.models.info.sha256 in text and "tiny.pt" in text
    assert window.settings.model_path == str(tiny_checkpoint)


def test_bundled_model_and_card_used_when_present(make_window, qtbot, tmp_path, tiny_checkpoint,
                                                  monkeypatch):
    models = tmp_path / "resources" / "models"
    models.mkdir(parents=True)
    bundled = models / "detector.pt"
    shutil.copyfile(tiny_checkpoint, bundled)
    card = models / "MODEL_CARD.md"
    card.write_text("# Detector model card\n\nTrained on ProGAN (test card).\n\n"
                    "| test set | AP |\n|---|---|\n| dev | 0.99 |\n")
    for module in (main_window_module, model_dialog_module):
        monkeypatch.setattr(module, "bundled_model_path", lambda: bundled)
    monkeypatch.setattr(model_dialog_module, "model_card_path", lambda: card)
    window = make_window(model_path=None)
    qtbot.waitUntil(lambda: window.models.info is not None, timeout=60_000)
    assert window.models.info.bundled and window.models.info.path == str(bundled)
    assert not window.banner.isVisible()
    dialog = window.show_model_dialog()
    text = dialog.text.toPlainText()
    assert "Trained on ProGAN (test card)" in text and window.models.info.sha256 in text
    assert dialog.bundled_button.isEnabled()


def test_unusable_checkpoint_reports_error(make_window, qtbot, tmp_path):
    bogus = tmp_path / "bogus.pt"
    bogus.write_bytes(b"definitely not a checkpoint")
    window = make_window(model_path=bogus, wait_model=False)
    with qtbot.waitSignal(window.models.model_failed, timeout=60_000) as blocker:
        pass
    assert "bogus.pt" in blocker.args[0]
    assert window.banner.isVisible() and "could not be loaded" in window.banner_text.text()


def test_device_choice_reflects_cuda_availability(make_window, qtbot):
    window = make_window()
    qtbot.waitUntil(lambda: window.models.env is not None, timeout=60_000)
    env = window.models.env
    idx = window.device_combo.findData("cuda")
    item = window.device_combo.model().item(idx)
    assert item.isEnabled() == env.cuda_available
    if not env.cuda_available:
        assert env.cuda_reason in window.device_combo.itemData(idx, 3)  # ToolTipRole
    window.device_combo.setCurrentIndex(window.device_combo.findData("cpu"))
    qtbot.waitUntil(lambda: not window.models.is_loading, timeout=60_000)
    assert window.settings.device == "cpu" and window.models.info.device.startswith("cpu")


def test_results_model_passes_qtmodeltester(qtmodeltester, tiny_detector, tmp_path):
    folder = tmp_path / "imgs"
    make_images(folder, 6)
    (folder / "bad.png").write_bytes(b"")
    results = scan_paths([folder], tiny_detector)
    model = ResultsTableModel(threshold=0.5, band=0.05)
    qtmodeltester.check(model)
    model.add_results(results[:3], ScanSettings())
    model.add_results(results[3:], ScanSettings())
    qtmodeltester.check(model)
    proxy = ResultsFilterProxy()
    proxy.setSourceModel(model)
    proxy.sort(2)
    proxy.set_verdicts({Verdict.ERROR, Verdict.REAL})
    qtmodeltester.check(proxy)
    model.set_threshold(0.3, 0.0)
    model.remove_rows([0, 2])
    qtmodeltester.check(model)
    assert model.rowCount() == 5


def test_queue_model_passes_qtmodeltester(make_window, qtbot, qtmodeltester, tmp_path):
    folder = tmp_path / "imgs"
    make_images(folder, 3)
    window = make_window()
    window.scan_paths([str(folder)])
    wait_idle(qtbot, window)
    qtmodeltester.check(window.queue.model)


def test_settings_persist_and_tolerate_garbage(make_window, qtbot, tmp_path):
    window = make_window()
    window.set_threshold(0.7, 0.1)
    window.act_recursive.setChecked(False)
    window.close()
    saved = json.loads((tmp_path / "settings.json").read_text())
    assert saved["threshold"] == 0.7 and saved["band"] == 0.1 and saved["recursive"] is False
    assert saved["geometry"]
    settings = AppSettings.load(tmp_path / "settings.json")
    assert settings.threshold == 0.7

    (tmp_path / "bad.json").write_text('{"threshold": "high", "device": "tpu", "recursive": 3')
    assert AppSettings.load(tmp_path / "bad.json") == AppSettings()
    (tmp_path / "odd.json").write_text('{"threshold": 7, "device": "tpu", "unknown": 1}')
    odd = AppSettings.load(tmp_path / "odd.json")
    assert odd.threshold is None and odd.device == "auto"


def test_folder_browser_scans_folder_and_single_image(make_window, qtbot, tmp_path):
    folder = tmp_path / "browse"
    paths = make_images(folder, 3)
    window = make_window()
    window.browser.set_folder(str(folder))
    qtbot.waitUntil(lambda: window.browser.current_folder() == str(folder), timeout=10_000)
    window.browser.scan_folder_button.click()
    wait_idle(qtbot, window)
    assert window.results.rowCount() == 3
    window.clear_results()
    assert window.results.rowCount() == 0
    idx = window.browser.model.index(str(paths[1]))
    window.browser.tree.doubleClicked.emit(idx)
    jobs = wait_idle(qtbot, window)
    assert jobs[-1].sources == [str(paths[1])], jobs
    assert window.results.rowCount() == 1, [(j.sources, j.done, j.duplicates, j.total) for j in jobs]


def test_second_checkpoint_kind_two_class(make_window, qtbot, tmp_path):
    """A two-class checkpoint is loaded with the chosen generated-class index."""
    import torch

    from forensics_app.core.architectures import build_model

    arch = {"name": "resnet50", "num_outputs": 2, "input_transform": "none", "stages": 1}
    path = tmp_path / "two_class.pth"
    torch.save({"model_state_dict": build_model(arch).state_dict()}, path)
    window = make_window(model_path=save_tiny_checkpoint(tmp_path / "a.pt"))
    with qtbot.waitSignal(window.models.model_ready, timeout=60_000):
        window.load_checkpoint(str(path), fake_index=0)
    assert window.models.info.kind == "two-class" and window.models.info.fake_index == 0
