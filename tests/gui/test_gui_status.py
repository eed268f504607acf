"""Issue 11 item 19: thumbnails of 16-bit greyscale, and what the status bar and queue say."""

from __future__ import annotations

import numpy as np
from gui_helpers import wait_idle
from PIL import Image

from forensics_app.gui.close_guard import CloseChoice
from forensics_app.gui.records import JobStatus, ScanJob
from forensics_app.gui.scan_queue import CANCELLING_MESSAGE, JobColumn, JobListModel
from forensics_app.gui.workers import ThumbnailWorker
from helpers import make_images


def test_16_bit_greyscale_png_gets_a_scaled_thumbnail(qapp, tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (64, 1))
    path = tmp_path / "grey16.png"
    Image.fromarray(ramp).save(path)
    with Image.open(path) as im:
        assert im.mode.startswith("I")
    got = {}
    worker = ThumbnailWorker([str(path)], 32)
    worker.thumbnail.connect(lambda p, img: got.setdefault(p, img))
    worker.work()
    img = got[str(path)]
    assert not img.isNull()
    left, right = img.pixelColor(0, 16), img.pixelColor(img.width() - 1, 16)
    assert left.red() < 20 and right.red() > 235  # a ramp, not all white or all black
    assert 90 < img.pixelColor(img.width() // 2, 16).red() < 165


def test_flash_does_not_hide_progress_and_cancelling_is_cleared(make_window, qtbot, tmp_path):
    window = make_window()
    window.progress_label.setText("Scanning “x”: 1/2")
    window._flash("Copied 3 row(s)")
    assert not window.progress_label.isHidden()
    window.scan_paths(make_images(tmp_path / "imgs", 2))
    window._flash(CANCELLING_MESSAGE)  # as if the user cancelled near the end
    wait_idle(qtbot, window)
    assert window.statusBar().currentMessage() != CANCELLING_MESSAGE
    assert not window.progress_label.isHidden()


def test_sub_folders_never_on_single_file_jobs(qapp, tmp_path):
    (tmp_path / "d").mkdir()
    f = tmp_path / "a.png"
    f.write_bytes(b"")
    model = JobListModel()
    model.add(ScanJob([str(f)], recursive=True))
    model.add(ScanJob([str(tmp_path / "d")], recursive=True))
    source = [model.data(model.index(r, JobColumn.SOURCE)) for r in range(2)]
    assert source == ["a.png", "d (with sub-folders)"]


def test_one_thread_is_singular(monkeypatch):
    import torch

    from forensics_app.core.detector import describe_device

    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert describe_device(torch.device("cpu")) == "cpu (1 thread)"
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    assert describe_device(torch.device("cpu")) == "cpu (4 threads)"


def test_summary_says_showing_n_of_m_under_a_filter(make_window, qtbot, tmp_path):
    window = make_window()
    window.close_guard.ask = lambda *_: CloseChoice.DISCARD
    window.scan_paths(make_images(tmp_path / "imgs", 3))
    assert all(j.status is JobStatus.DONE for j in wait_idle(qtbot, window))
    assert "showing" not in window.summary.text() and "<b>3</b> files" in window.summary.text()
    window.text_filter.setText("img_001")
    assert "showing <b>1</b> of 3 files" in window.summary.text()
    window.text_filter.setText("")
    assert "showing" not in window.summary.text()


def test_worker_threads_run_nicer_than_the_gui_thread():
    import os
    import sys
    import threading

    from forensics_app.gui.workers import WORKER_NICE, lower_thread_priority

    if not sys.platform.startswith("linux"):
        assert lower_thread_priority() is None
        return
    main_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    seen = {}

    def body():
        seen["nice"] = lower_thread_priority()

    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert seen["nice"] == min(19, main_nice + WORKER_NICE)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main_nice
