"""Heatmap viewer: the scored image beside its Grad-CAM overlay, computed on demand.

:class:`HeatmapService` runs one :class:`~forensics_app.gui.workers.HeatmapWorker` at a time
(the latest request wins), keeps a private CPU model instance for Grad-CAM and caches maps
per (file SHA-256, model, preprocessing). :class:`HeatmapViewer` shows them with a linked
zoom/pan, an opacity slider, the per-tile score map where the engine scored tiles, and
"save overlay as PNG". The wording is deliberate: Grad-CAM shows the regions that most
raised the "generated" score, not a map of manipulated areas.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from html import escape as html_escape
from typing import Any

from PySide6.QtCore import QObject, QPointF, QRectF, Qt, QThread, QTimer, Signal, Slot
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFont,
    QImage,
    QLinearGradient,
    QPainter,
    QPen,
    QPixmap,
    QWheelEvent,
)
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFrame,
    QGraphicsItem,
    QGraphicsPixmapItem,
    QGraphicsRectItem,
    QGraphicsScene,
    QGraphicsSimpleTextItem,
    QGraphicsView,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSlider,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from forensics_app.core.results import ScanResult
from forensics_app.core.safetext import escape_text, isolate
from forensics_app.gui.branch_maps import CAM_CAPTION, BranchMapChoice, qimage_from_array
from forensics_app.gui.model_manager import ModelManager
from forensics_app.gui.overlay_export import threshold_words
from forensics_app.gui.plain_text import plain_label, plain_tooltip
from forensics_app.gui.records import HeatmapData
from forensics_app.gui.workers import HeatmapRequest, HeatmapWorker, release_thread, start_worker

CAM_DISCLAIMER = (
    "A map (Grad-CAM or occlusion) shows where a branch looked when it raised its score. It "
    "is not a map of edited or manipulated areas, and a bright region is not proof of "
    "generation."
)


def computed_text(data: HeatmapData, waited_s: float | None) -> str:
    """How long the map took, all of it (D18: the first map's model preparation was left
    out): from the analyst's request to the map on screen when that is known."""
    parts = []
    if data.prepare_s:
        parts.append(f"{data.prepare_s:.1f} s preparing Grad-CAM (its library and model)")
    parts.append(f"{max(0.0, data.elapsed_s - data.prepare_s):.1f} s computing the map")
    if waited_s is None or waited_s < data.elapsed_s:  # served from the cache
        return (f"From the cache; first computed in {data.elapsed_s:.1f} s "
                f"({', '.join(parts)}) on the CPU.")
    return f"Shown {waited_s:.1f} s after it was asked for ({', '.join(parts)}) on the CPU."



log = logging.getLogger(__name__)

class HeatmapService(QObject):
    ready = Signal(object)  # HeatmapData
    failed = Signal(object, str)  # HeatmapRequest, message
    computing = Signal(object)  # HeatmapRequest

    def __init__(self, models: ModelManager, capacity: int = 16,
                 budget_bytes: int = 768 * 2**20, parent: QObject | None = None):
        """Keep at most ``capacity`` maps and about ``budget_bytes`` of pixels (big images)."""
        super().__init__(parent)
        self.models, self.capacity, self.budget_bytes = models, capacity, budget_bytes
        self._cache: OrderedDict[tuple[str, str, str], HeatmapData] = OrderedDict()
        self._cam_model: tuple[str, Any] | None = None  # (model_id, model instance)
        self._worker: HeatmapWorker | None = None
        self._thread: QThread | None = None
        self._running: HeatmapRequest | None = None
        self._pending: HeatmapRequest | None = None
        self._warming: str | None = None  # model id being prepared ahead of any request
        self.prewarm_enabled = True
        self.computed = 0  # how many maps were computed (not served from the cache)

    @property
    def busy(self) -> bool:
        return self._thread is not None

    def needs_model(self, model_id: str) -> bool:
        """Whether a map for ``model_id`` must first load a private model copy (seconds)."""
        return self._cam_model is None or self._cam_model[0] != model_id

    def cache_bytes(self) -> int:
        return sum(d.image.nbytes + d.heat.nbytes + d.heat_rgba.nbytes
                   for d in self._cache.values())

    def cached(self, key: tuple[str, str, str]) -> HeatmapData | None:
        return self._cache.get(key)

    def request(self, req: HeatmapRequest) -> None:
        hit = self._cache.get(req.key)
        if hit is not None:
            self._cache.move_to_end(req.key)
            self._pending = None
            self.ready.emit(hit)
            return
        if self._thread is not None:
            if self._running is None or self._running.key != req.key:
                self._pending = req
            return
        self._start(req)

    def prewarm(self, model_id: str) -> bool:
        """Prepare Grad-CAM for ``model_id`` in the background (its library takes seconds to
        import, the model copy to load: D18) so the analyst's first map starts at once. Does
        nothing while a map is being made or when that model is ready; a request arriving
        meanwhile waits for the preparation and then reuses it."""
        known = self.models.known_models.get(model_id)
        if (not self.prewarm_enabled or self._thread is not None or known is None
                or not self.needs_model(model_id)):
            return False
        self._warming = model_id
        self._worker = HeatmapWorker(None, known[0], known[1], None)
        self._worker.result.connect(self._on_result)
        self._worker.error.connect(self._on_error)
        self._worker.finished.connect(self._on_finished)
        self._thread = start_worker(self._worker, "gradcam-prepare")
        return True

    def _start(self, req: HeatmapRequest) -> None:
        known = self.models.known_models.get(req.model_id)
        if known is None:
            self.failed.emit(req, "The model that scored this file is no longer available; "
                                  "scan the file again to see its heatmap.")
            return
        path, fake_index = known
        cam_model = self._cam_model[1] if self._cam_model and self._cam_model[0] == req.model_id else None
        self._running = req
        self._worker = HeatmapWorker(req, path, fake_index, cam_model)
        self._worker.result.connect(self._on_result)
        self._worker.error.connect(self._on_error)
        self._worker.finished.connect(self._on_finished)
        self.computing.emit(req)
        self._thread = start_worker(self._worker, "gradcam")

    @Slot(object)
    def _on_result(self, value: tuple[HeatmapData | None, Any]) -> None:
        data, model = value
        if data is None:  # prepared ahead of any request
            self._cam_model = (self._warming, model)
            return
        self.computed += 1
        self._cam_model = (self._running.model_id, model)
        self._cache[data.key] = data
        while len(self._cache) > 1 and (len(self._cache) > self.capacity
                                        or self.cache_bytes() > self.budget_bytes):
            self._cache.popitem(last=False)
        self.ready.emit(data)

    @Slot(str)
    def _on_error(self, message: str) -> None:
        if self._running is None:  # a failed preparation: the first request will say why
            log.info("Grad-CAM preparation failed: %s", message)
            return
        self.failed.emit(self._running, message)

    @Slot()
    def _on_finished(self) -> None:
        if self._thread is not None:
            release_thread(self._thread)
        self._thread, self._worker, self._running = None, None, None
        self._warming = None
        pending, self._pending = self._pending, None
        if pending is not None:
            self.request(pending)

    def shutdown(self) -> None:
        self._pending = None
        if self._worker is not None:
            self._worker.cancel()
        if self._thread is not None:
            release_thread(self._thread, 60_000)
            self._thread, self._worker = None, None


class ImageView(QGraphicsView):
    """Wheel to zoom about the cursor, drag to pan."""

    zoomed = Signal(float)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._scene = QGraphicsScene(self)
        self.setScene(self._scene)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        self.setBackgroundBrush(QColor("#2b2b2b"))
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setMinimumSize(240, 240)

    def wheelEvent(self, event: QWheelEvent) -> None:
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.zoom_by(1.25 ** steps)
        event.accept()

    def zoom_by(self, factor: float) -> None:
        scale = self.transform().m11() * factor
        if 0.02 <= scale <= 40:
            self.scale(factor, factor)
            self.zoomed.emit(self.transform().m11())


class ViewLinker:
    """Keeps two views on the same zoom and scroll position."""

    def __init__(self, *views: ImageView):
        self.views = views
        self._busy = False
        for v in views:
            v.zoomed.connect(lambda _s, src=v: self._sync_from(src))
            v.horizontalScrollBar().valueChanged.connect(lambda _x, src=v: self._sync_from(src))
            v.verticalScrollBar().valueChanged.connect(lambda _y, src=v: self._sync_from(src))

    def _sync_from(self, src: ImageView) -> None:
        if self._busy:
            return
        self._busy = True
        try:
            for v in self.views:
                if v is not src:
                    v.setTransform(src.transform())
                    v.horizontalScrollBar().setValue(src.horizontalScrollBar().value())
                    v.verticalScrollBar().setValue(src.verticalScrollBar().value())
        finally:
            self._busy = False

    def fit(self) -> None:
        for v in self.views:
            rect = v.scene().itemsBoundingRect()
            if not rect.isEmpty():
                v.fitInView(rect, Qt.AspectRatioMode.KeepAspectRatio)
        if self.views:
            self._sync_from(self.views[0])

    def actual_size(self) -> None:
        for v in self.views:
            v.resetTransform()
        if self.views:
            self._sync_from(self.views[0])


class ColourScale(QWidget):
    """The Grad-CAM colour map (OpenCV's JET, as the overlay uses), low to high."""

    STOPS = ((0.0, "#00007f"), (0.125, "#0000ff"), (0.375, "#00ffff"), (0.625, "#ffff00"),
             (0.875, "#ff0000"), (1.0, "#7f0000"))

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setFixedSize(110, 14)
        self.setToolTip("Grad-CAM colour scale: blue = little influence, red = most raised "
                        "the score (relative within this image)")

    def paintEvent(self, _event) -> None:
        painter = QPainter(self)
        grad = QLinearGradient(0, 0, self.width(), 0)
        for pos, colour in self.STOPS:
            grad.setColorAt(pos, QColor(colour))
        painter.fillRect(self.rect(), grad)
        painter.end()


def tile_colour(prob: float) -> QColor:
    """Green (low P(generated)) through yellow to red (high)."""
    return QColor.fromHsvF(max(0.0, min(1.0, 1.0 - prob)) / 3.0, 0.85, 0.95, 0.45)


class HeatmapViewer(QWidget):
    """A separate window that follows the selected row of the results table."""

    opacity_changed = Signal(float)

    def __init__(self, parent: QWidget | None = None, opacity: float = 0.5):
        super().__init__(parent, Qt.WindowType.Window)
        self.setWindowTitle("Heatmap viewer")
        self.resize(1120, 640)
        self.data: HeatmapData | None = None
        self.record: ScanResult | None = None
        self.expected_key: tuple[str, str, str] | None = None
        self.last_folder = ""
        # Set by the window: raises (an OSError) when a path is one of the scanned files.
        self.refuse_over_evidence: Any = None
        self.on_saved: Any = None  # (path) -> None, set by the window: an output it wrote

        self.title = plain_label(QLabel())  # M4: a file name is text, not markup
        f = QFont(self.title.font())
        f.setPointSizeF(f.pointSizeF() * 1.25)
        f.setBold(True)
        self.title.setFont(f)
        self.subtitle = QLabel()
        self.subtitle.setTextFormat(Qt.TextFormat.RichText)

        self.image_view, self.cam_view = ImageView(), ImageView()
        self.linker = ViewLinker(self.image_view, self.cam_view)
        self._image_items = [QGraphicsPixmapItem() for _ in range(2)]
        self.image_view.scene().addItem(self._image_items[0])
        self.cam_view.scene().addItem(self._image_items[1])
        self.heat_item = QGraphicsPixmapItem()
        self.cam_view.scene().addItem(self.heat_item)
        self.tile_items: list[QGraphicsItem] = []

        panes = QHBoxLayout()
        for caption, view in (("Image as scored", self.image_view), (CAM_CAPTION, self.cam_view)):
            col = QVBoxLayout()
            label = QLabel(caption)
            label.setStyleSheet("font-weight: 600;")
            label.setWordWrap(True)
            self.cam_caption = label  # the last: the map's pane, named for its branch (H3)
            col.addWidget(label)
            col.addWidget(view, 1)
            panes.addLayout(col, 1)

        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(round(opacity * 100))
        self.opacity.setFixedWidth(180)
        self.opacity_label = QLabel()
        self.opacity.valueChanged.connect(self._on_opacity)
        self.tiles_box = QCheckBox("Per-tile scores")
        self.tiles_box.setToolTip("Colour each tile the engine scored by its own P(generated)")
        self.tiles_box.toggled.connect(self._update_tiles_visibility)
        self.save_button = QPushButton("Save overlay as PNG…")
        self.save_button.clicked.connect(self._ask_save)

        controls = QHBoxLayout()
        controls.addWidget(QLabel("Overlay opacity"))
        controls.addWidget(self.opacity)
        controls.addWidget(self.opacity_label)
        controls.addSpacing(12)
        controls.addWidget(QLabel("low"))
        controls.addWidget(ColourScale())
        controls.addWidget(QLabel("high"))
        controls.addSpacing(16)
        controls.addWidget(QLabel("Zoom"))
        for text, tip, slot in (("−", "Zoom out (or mouse wheel)", lambda: self.cam_view.zoom_by(0.8)),
                                ("Fit", "Fit the image in the window", self.linker.fit),
                                ("1:1", "One image pixel per screen pixel", self.linker.actual_size),
                                ("+", "Zoom in (or mouse wheel)", lambda: self.cam_view.zoom_by(1.25))):
            b = QToolButton()
            b.setText(text)
            b.setToolTip(tip)
            b.clicked.connect(slot)
            controls.addWidget(b)
        controls.addSpacing(16)
        controls.addWidget(self.tiles_box)
        controls.addStretch(1)
        controls.addWidget(self.save_button)

        self.status = QLabel()
        self.status.setTextFormat(Qt.TextFormat.PlainText)  # it names files
        self.status.setWordWrap(True)
        # D18: the first map takes seconds (a private model copy is loaded first); the
        # window says so at once and counts, instead of showing two blank panes
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)
        self.busy.setTextVisible(False)
        self.busy.setMaximumWidth(160)
        self.busy.hide()
        self.clock = time.monotonic
        self._asked_at: float | None = None
        self._preparing = False
        self._tick = QTimer(self)
        self._tick.setInterval(1000)
        self._tick.timeout.connect(self._show_computing)
        self.disclaimer = QLabel(CAM_DISCLAIMER)
        self.disclaimer.setWordWrap(True)
        self.disclaimer.setStyleSheet("color: #666;")
        self.status.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)

        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.subtitle)
        self.branch_choice = BranchMapChoice(self)  # H3: each branch's map, by weight
        layout.addLayout(self.branch_choice.row)
        layout.addWidget(self.branch_choice.sees)
        layout.addLayout(panes, 1)
        layout.addLayout(controls)
        status_row = QHBoxLayout()
        status_row.addWidget(self.busy)
        status_row.addWidget(self.status, 1)
        layout.addLayout(status_row)
        layout.addWidget(self.disclaimer)
        self._on_opacity(self.opacity.value())
        self._set_enabled(False)

    # -- what the window shows
    def show_pending(self, record: ScanResult, key: tuple[str, str, str] | None,
                     preparing: bool = False) -> None:
        """A new row was selected; its map is on the way (or cannot exist).

        ``preparing``: the map must first load its model copy (the first map: seconds)."""
        self.record, self.expected_key = record, key
        self.title.setText(isolate(escape_text(record.file_name)))
        self.title.setToolTip(plain_tooltip(isolate(escape_text(record.path))))
        if record.ok:
            tiles = f" · mean of {len(record.tile_probs)} tiles" if record.tile_probs else ""
            self.subtitle.setText(
                f"<b>{record.verdict.value}</b> · P(generated) = {record.prob_fake:.3f}"
                f"{tiles} · {html_escape(threshold_words(record))} · model "
                f"{html_escape(escape_text(record.model_id))}")
        else:
            self.subtitle.setText(f"<b>Error</b> · {record.error or 'not scored'}")
        if self.data is None or self.data.key != key:
            self._clear()
        if key is None:
            self._stop_computing()
            self.status.setText("No heatmap: this file could not be scored.")
        elif self.data is None:
            self._asked_at, self._preparing = self.clock(), preparing
            self.busy.show()
            self._tick.start()
            self._show_computing()

    def _show_computing(self) -> None:
        waited = self.clock() - (self._asked_at or self.clock())
        what = ("preparing Grad-CAM (its library and model: first map only, several seconds), "
                "then computing the map"
                if self._preparing else "computing the map")
        self.status.setText(f"Computing Grad-CAM… {what}; {waited:.0f} s so far.")

    def _stop_computing(self) -> None:
        self._tick.stop()
        self.busy.hide()

    def show_heatmap(self, data: HeatmapData) -> bool:
        if data.key != self.expected_key:
            return False
        first = self.data is None or self.data.image.shape != data.image.shape
        self.data = data
        base = QPixmap.fromImage(qimage_from_array(data.image))
        for item in self._image_items:
            item.setPixmap(base)
        self.heat_item.setPixmap(QPixmap.fromImage(qimage_from_array(data.heat_rgba)))
        self.branch_choice.refresh(data)
        self._build_tiles(data)
        for view in (self.image_view, self.cam_view):
            view.setSceneRect(QRectF(base.rect()))
        self._set_enabled(True)
        if first:
            self.linker.fit()
        notes = list(data.notes) + [n for ns in data.branch_notes.values() for n in ns]
        notes.append(computed_text(data, None if self._asked_at is None
                                   else self.clock() - self._asked_at))
        self._asked_at = None
        self._stop_computing()
        self.status.setText(" ".join(notes))
        return True

    def show_error(self, message: str) -> None:
        self._clear()
        self._asked_at = None
        self._stop_computing()
        self.status.setText(f"No heatmap: {message}")

    def _clear(self) -> None:
        self.data = None
        for item in (*self._image_items, self.heat_item):
            item.setPixmap(QPixmap())
        self._build_tiles(None)
        self._set_enabled(False)

    def _set_enabled(self, on: bool) -> None:
        self.save_button.setEnabled(on)
        tiled = on and bool(self.data and self.data.tile_probs)
        self.tiles_box.setEnabled(tiled)
        self.tiles_box.setToolTip(
            "Colour each tile the engine scored by its own P(generated)" if tiled else
            "This image was scored whole, not in tiles (see Scan → Preprocessing)")

    def _build_tiles(self, data: HeatmapData | None) -> None:
        scene = self.cam_view.scene()
        for item in self.tile_items:
            scene.removeItem(item)
        self.tile_items = []
        if data is None or not data.tile_probs:
            return
        pen = QPen(QColor(255, 255, 255, 200))
        pen.setCosmetic(True)
        for i, ((x, y, w, h), p) in enumerate(zip(data.tile_boxes, data.tile_probs,
                                                  strict=False)):
            rect = QGraphicsRectItem(x, y, w, h)
            rect.setPen(pen)
            rect.setBrush(QBrush(tile_colour(p)))
            rect.setZValue(2)
            # Which tile a heat region belongs to: its number (scan order) and its own score.
            k = data.display_scale or 1.0
            rect.setToolTip(f"tile #{i + 1} at ({round(x / k)}, {round(y / k)}), "
                            f"P(generated) {p:.3f}")
            label = QGraphicsSimpleTextItem(f"#{i + 1} {p:.2f}")
            label.setBrush(QColor("white"))
            label.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations, True)
            label.setPos(QPointF(x + 4, y + 4))
            label.setZValue(3)
            for item in (rect, label):
                scene.addItem(item)
                self.tile_items.append(item)
        self._update_tiles_visibility()

    def _update_tiles_visibility(self) -> None:
        show = self.tiles_box.isChecked()
        for item in self.tile_items:
            item.setVisible(show)

    def _on_opacity(self, value: int) -> None:
        self.heat_item.setOpacity(value / 100.0)
        self.opacity_label.setText(f"{value}%")
        self.opacity_changed.emit(value / 100.0)

    # -- saving
    def overlay_image(self) -> QImage:
        """Exactly what the right-hand pane shows (opacity, tile map), at full resolution."""
        if self.data is None:
            return QImage()
        h, w = self.data.image.shape[:2]
        image = QImage(w, h, QImage.Format.Format_RGB32)
        image.fill(QColor("black"))
        painter = QPainter(image)
        self.cam_view.scene().render(painter, QRectF(0, 0, w, h), QRectF(0, 0, w, h))
        painter.end()
        return image

    def save_overlay(self, path: str) -> bool:
        image = self.overlay_image()
        if self.record is not None:  # file name, SHA-256, model, score: chunks and a caption
            from forensics_app.gui.overlay_export import captioned_overlay

            role = self.branch_choice.current()
            image = captioned_overlay(image, self.record, role.label if role else "")
        from PySide6.QtCore import QBuffer, QByteArray, QIODevice

        from forensics_app.core.outputs import atomic_write, refuse_outputs_over_inputs
        from forensics_app.core.safetext import escape_text

        try:
            # The CLI's rule, files not spellings: never over the image shown (or any other
            # scanned file), and never by truncating what the name points to.
            if self.record is not None:
                refuse_outputs_over_inputs({"overlay": path}, [self.record.path])
            if self.refuse_over_evidence is not None:
                self.refuse_over_evidence(path)
            png = QByteArray()
            buffer = QBuffer(png)
            buffer.open(QIODevice.OpenModeFlag.WriteOnly)
            ok = image.save(buffer, "PNG")
            buffer.close()
            if not ok:
                raise OSError("the overlay could not be encoded as PNG")
            atomic_write(path, bytes(png.data()))
        except OSError as exc:
            self.status.setText(escape_text(f"Could not write {path}: {exc}"))
            return False
        self.status.setText(escape_text(f"Saved overlay to {path}"))
        if self.on_saved is not None:
            self.on_saved(path)
        return True

    def _ask_save(self) -> None:
        if self.record is None:
            return
        from pathlib import Path

        # last_folder is set by the window to a folder that holds no evidence
        start = Path(self.last_folder or Path.home()) / (Path(self.record.path).stem
                                                         + "_gradcam.png")
        path, _ = QFileDialog.getSaveFileName(self, "Save overlay as PNG", str(start),
                                              "PNG image (*.png)")
        if path:
            if not path.lower().endswith(".png"):
                path += ".png"
            self.save_overlay(path)
