"""The main window: folder browser, drop target, results table, queue, model controls.

It wires the pieces together and holds no detection logic: files go to the
:class:`~forensics_app.gui.scan_queue.ScanQueue`, records come back into the
:class:`~forensics_app.gui.table_model.ResultsTableModel`, reports go through the core
exporter. torch is imported by the model worker only after the window is first exposed.
"""

from __future__ import annotations

import logging
import platform
from html import escape as html_escape
from pathlib import Path

from PySide6 import __version__ as PYSIDE_VERSION
from PySide6.QtCore import QByteArray, QEvent, QModelIndex, QObject, QSize, Qt, QTimer, QUrl, Slot
from PySide6.QtGui import (
    QAction,
    QActionGroup,
    QCloseEvent,
    QDesktopServices,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QGuiApplication,
    QIcon,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDockWidget,
    QDoubleSpinBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMenu,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from forensics_app import __version__
from forensics_app.core.branch_explain import branch_context
from forensics_app.core.export import COLUMNS as EXPORT_COLUMNS
from forensics_app.core.export import result_to_row
from forensics_app.core.results import ScanResult, Verdict
from forensics_app.gui.case_controller import CaseController
from forensics_app.gui.close_guard import CloseGuard
from forensics_app.gui.column_chooser import ColumnChooser
from forensics_app.gui.drops import accept_without_move
from forensics_app.gui.folder_browser import FolderBrowser
from forensics_app.gui.guard_rails import GuardRails
from forensics_app.gui.heatmap_view import HeatmapService, HeatmapViewer
from forensics_app.gui.model_dialog import ModelDialog
from forensics_app.gui.model_manager import LoadRequest, ModelManager
from forensics_app.gui.output_folders import (
    note_output,
    output_folder,
    refuse_over_evidence,
)
from forensics_app.gui.provenance_panel import ProvenancePanel
from forensics_app.gui.queue_view import QueueView
from forensics_app.gui.records import (
    PREPROCESS_CHOICES,
    EnvInfo,
    JobStatus,
    ModelInfo,
    PathRegistry,
    ScanJob,
    ScanSettings,
)
from forensics_app.gui.report_worker import ReportJobs
from forensics_app.gui.review_panel import ReviewController
from forensics_app.gui.scan_progress import finished_text, running_text
from forensics_app.gui.scan_queue import CANCELLING_MESSAGE, ScanQueue
from forensics_app.gui.settings import AppSettings
from forensics_app.gui.start_page import StartPage
from forensics_app.gui.table_model import (
    COLUMNS,
    REVIEW_FILTERS,
    Column,
    ProbabilityDelegate,
    ResultsFilterProxy,
    ResultsTableModel,
    ReviewStatusDelegate,
)
from forensics_app.gui.thumbnails import ThumbnailCache
from forensics_app.gui.witness_panel import WitnessController
from forensics_app.gui.workers import HeatmapRequest
from forensics_app.paths import bundled_model_path, icons_dir, user_config_dir, user_log_dir

log = logging.getLogger(__name__)

VERDICT_FILTERS: list[tuple[str, frozenset[Verdict] | None]] = [
    ("All verdicts", None),
    ("AI-generated", frozenset({Verdict.AI_GENERATED})),
    ("Real", frozenset({Verdict.REAL})),
    ("Inconclusive", frozenset({Verdict.INCONCLUSIVE})),
    ("AI-generated or inconclusive", frozenset({Verdict.AI_GENERATED, Verdict.INCONCLUSIVE})),
    ("Errors", frozenset({Verdict.ERROR})),
]
PROVENANCE_FILTERS: list[tuple[str, str | None]] = [
    ("Any provenance", None),
    ("Declared generated", "declared"),
    ("Metadata disagrees with detector", "disagree"),
]
THUMB_SIZE = 36


class _ExposeWatcher(QObject):
    """Calls back once when the window is first exposed (really visible)."""

    def __init__(self, callback):
        super().__init__()
        self.callback = callback

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Expose and obj.isExposed():
            obj.removeEventFilter(self)
            QTimer.singleShot(0, self, self.callback)
        return False


class _ShrinkableCombo(QComboBox):
    """A combo box whose minimum size is its minimum width, not its longest entry."""

    def minimumSizeHint(self) -> QSize:  # noqa: N802 -- Qt's name
        hint = super().minimumSizeHint()
        hint.setWidth(self.minimumWidth() or hint.width())
        return hint


class MainWindow(QMainWindow):
    def __init__(self, settings: AppSettings | None = None, settings_path: Path | None = None,
                 model_path: str | None = None, device: str | None = None,
                 threads: int | None = None):
        """``settings_path=None`` keeps settings in memory only (tests, benchmarks).

        ``model_path`` overrides the saved/bundled checkpoint for this session.
        """
        super().__init__()
        self.settings = settings or AppSettings()
        self.settings_path = settings_path
        if device:
            self.settings.device = device
        self._model_override = model_path
        self._model_note = ""  # why the model in use is not the one asked for (D3)
        self._fallback_from: str | None = None
        self.threshold_differs = False
        self._started = False
        self._threshold_from_user = self.settings.threshold is not None
        self._updating_threshold = False
        self._dialog: ModelDialog | None = None
        self.heatmap_viewer: HeatmapViewer | None = None

        self.setWindowTitle("Forensics App")
        self.setWindowIcon(QIcon(str(icons_dir() / "app.png")))  # D22
        self.setAcceptDrops(True)
        self.resize(1360, 820)

        self.models = ModelManager(threads=threads, parent=self)
        self.registry = PathRegistry()
        self.queue = ScanQueue(self.models, self.registry, parent=self)
        self.own_outputs = self.queue.own_outputs  # H1: what the window wrote is not evidence
        self.results = ResultsTableModel(self, self.settings.threshold or 0.5,
                                         self.settings.band if self.settings.band is not None else 0.05)
        self.proxy = ResultsFilterProxy(self)
        self.proxy.setSourceModel(self.results)
        self.thumbnails = ThumbnailCache(THUMB_SIZE, parent=self)
        self.results.thumbnails = self.thumbnails
        self.heatmaps = HeatmapService(self.models, parent=self)
        self.queue.threshold, self.queue.band = self.results.threshold, self.results.band

        self._build_actions()
        self._build_central()
        self._build_docks()
        self._build_toolbar()
        self._build_menus()
        self._build_statusbar()
        self._connect()
        self._restore_window()
        self._refresh_model_state()
        self._update_actions()
        recent = (settings_path.parent if settings_path else None)
        self.close_guard = CloseGuard(self, self.choose_export_path,
                                      lambda: self.cases.case is not None)
        self.cases = CaseController(self, recent / "recent_cases.json" if recent else None)
        self.reviews = ReviewController(self)
        self._build_review_dock()
        self.witnesses = WitnessController(self)  # gui.witness_panel: on-demand analyses
        self.guards = GuardRails(self)
        self.report_jobs = ReportJobs(self)
        self.cases.act_report.triggered.disconnect()  # reports run in a worker (D1)
        self.cases.act_report.triggered.connect(self.report_jobs.choose_case_report)
        self.cases.act_new.triggered.disconnect()  # D23: the case dialog
        self.cases.act_new.triggered.connect(self.choose_new_case)
        self.empty_hint.scan_folder.connect(self.choose_folder_to_scan)
        self.empty_hint.new_case.connect(self.choose_new_case)
        self.empty_hint.open_case.connect(self.cases.choose_case_to_open)
        self.empty_hint.open_recent.connect(self.cases.open_case)
        self.empty_hint.refresh()

    # ------------------------------------------------------------------ construction
    def _build_actions(self) -> None:
        def action(text: str, slot, shortcut=None, tip: str = "") -> QAction:
            a = QAction(text, self)
            a.triggered.connect(slot)
            if shortcut is not None:
                a.setShortcut(shortcut)
            if tip:
                a.setStatusTip(tip)
                a.setToolTip(tip)
            return a

        self.act_scan_folder = action("Scan folder…", self.choose_folder_to_scan,
                                      QKeySequence.StandardKey.Open, "Choose a folder to scan")
        self.act_scan_files = action("Scan files…", self.choose_files_to_scan, "Ctrl+Shift+O",
                                     "Choose image files to scan")
        self.act_export = action("Export report…", self.choose_export_path, "Ctrl+E",
                                 "CSV, JSON Lines, HTML or PDF report of every row or of "
                                 "the rows the filter shows")
        self.act_quit = action("Quit", self.close, QKeySequence.StandardKey.Quit)
        self.act_find = action("Find…", self.focus_filter, QKeySequence.StandardKey.Find,
                               "Type in the filter box (file name, path, SHA-256, note, tag)")
        self.act_copy = action("Copy rows", self.copy_selected_rows, QKeySequence.StandardKey.Copy,
                               "Copy the selected rows (all report columns) as tab-separated text")
        self.act_copy_sha = action("Copy SHA-256", self.copy_selected_hashes, "Ctrl+Shift+C")
        self.act_open_folder = action("Open containing folder", self.open_containing_folder)
        self.act_heatmap = action("Show heatmap", self.show_heatmap, "Ctrl+H",
                                  "Grad-CAM of the selected row, in the heatmap viewer")
        # Esc works from the table and the queue only, never from a text field (D2)
        self.act_cancel = action("Cancel running scan… (Esc in the table)",
                                 lambda: self.guards.cancel_scan())
        self.act_cancel_pending = action("Cancel pending jobs", self.queue.cancel_pending)
        self.act_clear_jobs = action("Clear finished jobs", self.queue.clear_finished)
        self.act_clear_results = action("Clear results", self.clear_results_asked)
        self.act_model = action("Model…", self.show_model_dialog,
                                tip="The loaded model, its model card, and loading another checkpoint")
        self.act_load_model = action("Load checkpoint…", self.choose_checkpoint)
        self.act_about = action("About", self.show_about)
        self.act_guide = action("User guide", lambda: self.show_markdown("user guide"),
                                QKeySequence.StandardKey.HelpContents,
                                "What the score means, what it cannot see, provenance, "
                                "evidence rules")
        self.act_card = action("Model card", lambda: self.show_markdown("model card"))
        self.act_logs = action("Open log folder", lambda: QDesktopServices.openUrl(
            QUrl.fromLocalFile(str(user_log_dir()))))
        self.act_trust_anchors = action(
            "C2PA trust anchors…", self.choose_trust_anchors,
            tip="PEM root certificates that Content Credentials signers must chain to; "
                "without them every C2PA signature reads as untrusted")
        self.act_recursive = QAction("Include sub-folders", self, checkable=True)
        self.act_recursive.setChecked(self.settings.recursive)
        self.preprocess_group = QActionGroup(self)
        for mode, text in PREPROCESS_CHOICES.items():
            a = QAction(text, self.preprocess_group, checkable=True)
            a.setData(mode)
            a.setChecked(mode == self.settings.preprocess_mode)
        self.preprocess_group.triggered.connect(self._on_mode_chosen)
        self.act_rescan_full = action(
            "Re-scan triage rows in full", self.rescan_triage_in_full,
            tip="Score the rows scanned in triage mode again on the whole image (D10)")

    def _build_central(self) -> None:
        self.banner = QFrame()
        self.banner.setObjectName("banner")
        self.banner.setStyleSheet(
            "#banner { background: #fff4d6; border: 1px solid #e8c766; border-radius: 4px; }")
        self.banner_text = QLabel()
        self.banner_text.setWordWrap(True)
        self.banner_text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.banner_button = QPushButton("Load model…")
        self.banner_button.clicked.connect(self.choose_checkpoint)
        bl = QHBoxLayout(self.banner)
        bl.addWidget(self.banner_text, 1)
        bl.addWidget(self.banner_button)

        self.verdict_filter = _ShrinkableCombo()
        for text, verdicts in VERDICT_FILTERS:
            self.verdict_filter.addItem(text, verdicts)
        self.text_filter = QLineEdit()
        self.text_filter.setPlaceholderText("Filter by file name, path, SHA-256 or error…")
        self.text_filter.setClearButtonEnabled(True)
        self.text_filter.setMinimumWidth(160)  # D8: never squeezed to a sliver at 1024×700
        self.summary = QLabel()
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        filters = QHBoxLayout()
        filters.addWidget(QLabel("Show"))
        filters.addWidget(self.verdict_filter)
        self.provenance_filter = _ShrinkableCombo()
        for text, which in PROVENANCE_FILTERS:
            self.provenance_filter.addItem(text, which)
        self.provenance_filter.setToolTip("Filter by what the files' own metadata says")
        filters.addWidget(self.provenance_filter)
        self.review_filter = _ShrinkableCombo()
        for text, which in REVIEW_FILTERS:
            self.review_filter.addItem(text, which)
        self.review_filter.setToolTip("Filter by the examiner's conclusions (a case must be open)")
        filters.addWidget(self.review_filter)
        for combo in (self.verdict_filter, self.provenance_filter, self.review_filter):
            # D6: a combo as wide as its longest entry made the window wider than a screen;
            # it takes its full width when there is room and shrinks to this when not
            combo.setMinimumWidth(112)
        # the counts never widen the window either: clipped when narrow, full in the tooltip
        self.summary.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.summary.setMinimumWidth(0)
        filters.addWidget(self.text_filter, 1)

        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setItemDelegateForColumn(Column.PROB, ProbabilityDelegate(self.table))
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(-1, Qt.SortOrder.AscendingOrder)  # scan order until asked
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        # only the Examiner column is editable (double-click or F2); Enter still opens Grad-CAM
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked
                                   | QAbstractItemView.EditTrigger.EditKeyPressed)
        self.table.setItemDelegateForColumn(Column.REVIEW, ReviewStatusDelegate(self.table))
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.setWordWrap(False)
        self.table.setIconSize(QSize(THUMB_SIZE, THUMB_SIZE))
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(THUMB_SIZE + 8)
        header = self.table.horizontalHeader()
        header.setHighlightSections(False)
        header.setStretchLastSection(True)
        for col, spec in COLUMNS.items():
            self.table.setColumnWidth(col, spec.width)
        header.setSectionResizeMode(Column.THUMBNAIL, QHeaderView.ResizeMode.Fixed)
        # the detector's P(generated), then the examiner's conclusion, beside the verdict
        # (M6: P(generated) no longer falls off a 1366-pixel screen behind the Review column)
        header.moveSection(header.visualIndex(Column.REVIEW),
                           header.visualIndex(Column.VERDICT) + 1)
        header.moveSection(header.visualIndex(Column.PROB), header.visualIndex(Column.VERDICT) + 1)
        header.moveSection(header.visualIndex(Column.FOLDER), header.visualIndex(Column.FILE) + 1)
        self.columns = ColumnChooser(header, self.settings)  # D20: right-click the header
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._table_menu)
        self.table.activated.connect(lambda _i: self.show_heatmap())  # double-click or Enter
        self.table.setDragEnabled(False)
        self.table.setTabKeyNavigation(False)  # D12: Tab leaves the table (arrows move in it)

        # D26: the empty window is a start page (scan a folder, new/open case, recent cases)
        self.empty_hint = StartPage(lambda: self.cases.recent_cases()
                                    if hasattr(self, "cases") else [])

        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(6, 6, 6, 0)
        layout.addWidget(self.banner)
        layout.addLayout(filters)
        layout.addWidget(self.summary)  # its own line: the filter row stays narrow (D6/D8)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.empty_hint)
        self.setCentralWidget(central)

    def _build_docks(self) -> None:
        self.browser = FolderBrowser(self.settings.recursive)
        self.browser_dock = QDockWidget("Folders", self)
        self.browser_dock.setObjectName("folders")
        self.browser_dock.setWidget(self.browser)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.browser_dock)

        self.queue_view = QueueView(self.queue)
        self.queue_dock = QDockWidget("Queue", self)
        self.queue_dock.setObjectName("queue")
        self.queue_dock.setWidget(self.queue_view)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.queue_dock)
        self.resizeDocks([self.browser_dock], [250], Qt.Orientation.Horizontal)
        self.resizeDocks([self.queue_dock], [110], Qt.Orientation.Vertical)

        self.provenance_panel = ProvenancePanel()
        self.provenance_panel.setMinimumWidth(240)  # D9
        self.provenance_dock = QDockWidget("Provenance", self)
        self.provenance_dock.setObjectName("provenance")
        self.provenance_dock.setWidget(self.provenance_panel)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.provenance_dock)
        self.resizeDocks([self.provenance_dock], [340], Qt.Orientation.Horizontal)

    def _build_review_dock(self) -> None:
        self.review_dock = QDockWidget("Review", self)
        self.review_dock.setObjectName("review")
        self.review_dock.setWidget(self.reviews.panel)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.review_dock)
        self.tabifyDockWidget(self.provenance_dock, self.review_dock)
        self.provenance_dock.raise_()
        from forensics_app.gui.compact_layout import apply_compact_layout

        if apply_compact_layout(self):  # M6: a small or scaled screen
            self.fit_to_screen()
        from forensics_app.gui.keyboard_nav import install_keyboard_navigation

        install_keyboard_navigation(self)  # M7
        self.view_menu.addAction(self.review_dock.toggleViewAction())
        self.review_filter.currentIndexChanged.connect(
            lambda _i: self.proxy.set_review(self.review_filter.currentData()))
        self.table.selectionModel().currentRowChanged.connect(
            lambda *_: self.reviews.panel.show_record(self.reviews.window_record()))
        if self.settings.window_state:  # the dock is new: place it as it was saved
            self.restoreState(QByteArray.fromBase64(self.settings.window_state.encode()))

    def _build_toolbar(self) -> None:
        tb = self.addToolBar("Main")
        tb.setObjectName("main-toolbar")
        tb.setMovable(False)
        tb.addAction(self.act_scan_folder)
        tb.addAction(self.act_export)
        tb.addSeparator()
        tb.addAction(self.act_model)

        self.device_combo = QComboBox()
        for text, value in (("Auto", "auto"), ("CPU", "cpu"), ("CUDA", "cuda")):
            self.device_combo.addItem(text, value)
        self.device_combo.setToolTip("Where the detector runs; Auto uses CUDA when available")
        self._set_cuda_item(False, "checking… (PyTorch is still loading)")
        self.device_combo.setCurrentIndex(max(0, self.device_combo.findData(self.settings.device)))

        self.threshold_spin = QDoubleSpinBox()
        self.threshold_spin.setRange(0.0, 1.0)
        self.threshold_spin.setSingleStep(0.01)
        self.threshold_spin.setDecimals(2)
        self.threshold_spin.setValue(self.results.threshold)
        self.threshold_spin.setToolTip("P(generated) at or above threshold + band is "
                                       "'AI-generated'; below threshold − band is 'Real'")
        self.band_spin = QDoubleSpinBox()
        self.band_spin.setRange(0.0, 0.5)
        self.band_spin.setSingleStep(0.01)
        self.band_spin.setDecimals(2)
        self.band_spin.setValue(self.results.band)
        self.band_spin.setToolTip("Half-width of the 'Inconclusive' band around the threshold "
                                  "(0 disables it)")
        self.reset_threshold = QToolButton()
        self.reset_threshold.setText("Model default")
        self.reset_threshold.setToolTip("Use the threshold and band stored in the checkpoint")
        self.reset_threshold.clicked.connect(self._reset_threshold)

        tb.addSeparator()
        tb.addWidget(QLabel(" Device "))
        tb.addWidget(self.device_combo)
        tb.addSeparator()
        tb.addWidget(QLabel(" Threshold "))
        tb.addWidget(self.threshold_spin)
        tb.addWidget(QLabel(" ± "))
        tb.addWidget(self.band_spin)
        tb.addWidget(self.reset_threshold)

    def _build_menus(self) -> None:
        mb = self.menuBar()
        m = self.file_menu = mb.addMenu("&File")
        for a in (self.act_scan_folder, self.act_scan_files, None, self.act_export, None,
                  self.act_quit):
            m.addSeparator() if a is None else m.addAction(a)
        m = mb.addMenu("&Edit")
        for a in (self.act_copy, self.act_copy_sha, self.act_open_folder, None, self.act_find):
            m.addSeparator() if a is None else m.addAction(a)
        m = mb.addMenu("&Scan")
        m.addAction(self.act_recursive)
        m.addAction(self.act_trust_anchors)
        pm = m.addMenu("Preprocessing")
        pm.addActions(self.preprocess_group.actions())
        m.addSeparator()
        for a in (self.act_rescan_full, None, self.act_cancel, self.act_cancel_pending,
                  self.act_clear_jobs, None, self.act_clear_results):
            m.addSeparator() if a is None else m.addAction(a)
        m = self.view_menu = mb.addMenu("&View")
        m.addAction(self.act_heatmap)
        m.addAction(self.browser_dock.toggleViewAction())
        m.addAction(self.queue_dock.toggleViewAction())
        m.addAction(self.provenance_dock.toggleViewAction())
        m = mb.addMenu("&Model")
        m.addAction(self.act_model)
        m.addAction(self.act_load_model)
        m = mb.addMenu("&Help")
        m.addAction(self.act_guide)
        m.addAction(self.act_card)
        m.addSeparator()
        m.addAction(self.act_about)
        m.addAction(self.act_logs)

    def _on_mode_chosen(self, a: QAction) -> None:
        self.settings.preprocess_mode = a.data()
        self._show_mode()

    def _show_mode(self) -> None:
        """The scan mode, always visible: triage is not a full scan (D10)."""
        mode = self.settings.preprocess_mode
        triage = mode == "sample"
        self.mode_label.setText("Mode: TRIAGE (sample of tiles)" if triage else
                                f"Mode: {PREPROCESS_CHOICES.get(mode, mode).split(',')[0]}")
        self.mode_label.setStyleSheet("color: #7a5600; font-weight: 600;" if triage else "")
        self.mode_label.setToolTip(PREPROCESS_CHOICES.get(mode, mode)
                                   + "\nScan → Preprocessing changes it for new scans")

    def rescan_triage_in_full(self) -> ScanJob | None:
        """Queue the triage rows' files again in full mode (their triage rows make way)."""
        from forensics_app.gui.table_model import is_triage

        rows = [i for i, r in enumerate(self.results.records()) if is_triage(r)]
        if not rows:
            self._flash("No triage rows to re-scan")
            return None
        if self.cases.case is not None:
            self.guards.warn("Not re-scanned", "With a case open, the case keeps one result "
                             "per file, model and bytes, so a full re-scan would be skipped. "
                             "Close the case, or scan the files into a new case in full mode.")
            return None
        removed = self.results.remove_rows(rows)
        self.registry.release(r.path for r in removed)
        self.close_guard.unexported = max(0, self.close_guard.unexported - len(removed))
        settings = self.scan_settings()
        from dataclasses import replace

        job = self.queue.enqueue([r.path for r in removed], False,
                                 replace(settings, mode="full"))
        if job is not None:
            self._flash(f"Re-scanning {len(removed)} triage row(s) in full")
        self._update_actions()
        return job

    def _build_statusbar(self) -> None:
        sb = self.statusBar()
        self.mode_label = QLabel()
        sb.addPermanentWidget(self.mode_label)
        self._show_mode()
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(220)
        self.progress.setTextVisible(True)
        self.progress.hide()
        self.progress_label = QLabel()
        self.model_label = QLabel()
        self.model_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # permanent, so a flashed message (left) never hides what the scan is doing
        sb.addPermanentWidget(self.progress_label)
        sb.addPermanentWidget(self.progress)
        sb.addPermanentWidget(self.model_label)

    def _connect(self) -> None:
        self.models.loading.connect(self._on_model_loading)
        self.models.model_ready.connect(self._on_model_ready)
        self.models.model_failed.connect(self._on_model_failed)
        self.models.environment_ready.connect(self._on_environment)
        self.models.load_finished.connect(self._refresh_model_state)
        self.queue.rows_ready.connect(self._on_rows)
        self.queue.job_updated.connect(self._on_job_updated)
        self.queue.job_finished.connect(self._on_job_finished)
        self.queue.message.connect(self._flash)
        self.queue.model.rowsInserted.connect(lambda *_: self._update_actions())
        self.results.counts_changed.connect(self._update_summary)
        self.thumbnails.ready.connect(self.results.thumbnail_ready)
        self.heatmaps.ready.connect(self._on_heatmap_ready)
        self.heatmaps.failed.connect(self._on_heatmap_failed)
        self.browser.scan_requested.connect(self.scan_paths)
        self.browser.folder_changed.connect(lambda f: setattr(self.settings, "last_folder", f))
        self.browser.recursive.toggled.connect(self.act_recursive.setChecked)
        self.act_recursive.toggled.connect(self.browser.recursive.setChecked)
        self.act_recursive.toggled.connect(lambda on: setattr(self.settings, "recursive", on))
        self.verdict_filter.currentIndexChanged.connect(
            lambda _i: self.proxy.set_verdicts(self.verdict_filter.currentData()))
        self.provenance_filter.currentIndexChanged.connect(
            lambda _i: self.proxy.set_provenance(self.provenance_filter.currentData()))
        self.text_filter.textChanged.connect(self.proxy.set_text)
        for signal in (self.proxy.rowsInserted, self.proxy.rowsRemoved, self.proxy.modelReset,
                       self.proxy.layoutChanged):
            signal.connect(lambda *_: self._update_summary())  # "showing N of M" follows the filter
        self.table.selectionModel().selectionChanged.connect(self._on_selection)
        self.threshold_spin.valueChanged.connect(self._on_threshold_edited)
        self.band_spin.valueChanged.connect(self._on_threshold_edited)
        self.device_combo.currentIndexChanged.connect(self._on_device_changed)

    def _restore_window(self) -> None:
        if self.settings.geometry:
            self.restoreGeometry(QByteArray.fromBase64(self.settings.geometry.encode()))
        self.fit_to_screen()
        if self.settings.window_state:
            self.restoreState(QByteArray.fromBase64(self.settings.window_state.encode()))
        self.browser.set_folder(self.settings.last_folder)

    def fit_to_screen(self) -> None:
        """Never larger than the available screen, never off it (D6)."""
        screen = self.screen() or QGuiApplication.primaryScreen()
        if screen is None:
            return
        avail = screen.availableGeometry()
        frame = self.frameGeometry()
        extra_w = max(0, frame.width() - self.width())
        extra_h = max(0, frame.height() - self.height())
        w = min(self.width(), avail.width() - extra_w)
        h = min(self.height(), avail.height() - extra_h)
        if (w, h) != (self.width(), self.height()):
            self.resize(w, h)
        x = min(max(self.x(), avail.left()), avail.right() - w - extra_w + 1)
        y = min(max(self.y(), avail.top()), avail.bottom() - h - extra_h + 1)
        if (x, y) != (self.x(), self.y()):
            self.move(x, y)

    # ------------------------------------------------------------------ start-up
    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self._started and self.windowHandle() is not None:
            self._expose_watcher = _ExposeWatcher(self.start)
            self.windowHandle().installEventFilter(self._expose_watcher)
            QTimer.singleShot(1000, self, self.start)  # in case no expose event ever comes

    @Slot()
    def start(self) -> None:
        """Load torch and the model in the background; called once the window is visible."""
        if self._started:
            return
        self._started = True
        self.models.load(self._initial_load_request())

    def _initial_load_request(self) -> LoadRequest:
        device = self.settings.device
        path = self._model_override or self.settings.model_path
        if path and Path(path).is_file():
            return LoadRequest(path, device, self.settings.fake_index, bundled=False)
        if path:
            self._flash(f"The checkpoint {path} is gone; using the bundled model instead.")
        bundled = bundled_model_path()
        if bundled.is_file():
            return LoadRequest(str(bundled), device, 1, bundled=True)
        return LoadRequest(None, device)  # no model yet: still import torch and probe devices

    # ------------------------------------------------------------------ scanning
    def scan_paths(self, paths: list[str], recursive: bool | None = None) -> ScanJob | None:
        """Queue files and folders (what a drop, the browser and the menus all do)."""
        if recursive is None:
            recursive = self.act_recursive.isChecked()
        problem = self.guards.case_inside_evidence(paths)
        if problem:  # D4: the CLI's rule (core.output_guard) for --case
            self.guards.warn("Not scanned", problem)
            return None
        settings = self.scan_settings()
        job = self.queue.enqueue([str(p) for p in paths], recursive, settings)
        if job is not None:
            first = Path(paths[0])
            self.settings.last_folder = str(first if first.is_dir() else first.parent)
            self._flash(f"Queued {job.title}")
        self._update_actions()
        return job

    def scan_settings(self) -> ScanSettings:
        """What a new job asks the engine for, from the user's settings."""
        from forensics_app.core.speed import choose_threads

        return ScanSettings(mode=self.settings.preprocess_mode,
                            c2pa_trust_anchors=self.settings.c2pa_trust_anchors,
                            max_pixels=self.settings.max_pixels,
                            max_compression_ratio=self.settings.max_compression_ratio,
                            workers=choose_threads(gui=True).intake_workers)

    def choose_new_case(self) -> None:
        from forensics_app.gui.case_dialog import choose_new_case

        choose_new_case(self)

    def choose_folder_to_scan(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Scan folder", self.settings.last_folder)
        if folder:
            self.scan_paths([folder])

    def choose_files_to_scan(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Scan files", self.settings.last_folder,
                                                "Images (*.jpg *.jpeg *.png *.webp *.bmp *.tif "
                                                "*.tiff *.gif);;All files (*)")
        if paths:
            self.scan_paths(paths, recursive=False)

    def focus_filter(self) -> None:
        """Ctrl+F (D12)."""
        self.text_filter.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.text_filter.selectAll()

    def clear_results_asked(self) -> None:
        """Scan → Clear results: asks before discarding rows that exist nowhere else (D7)."""
        if self.guards.may_clear():
            self.clear_results()

    def clear_results(self) -> None:
        removed = self.results.clear()
        self.show_provenance()  # D13: no details of a row that is gone
        self.close_guard.cleared()
        self.registry.release(r.path for r in removed)
        self.thumbnails.forget(r.path for r in removed)
        self._update_actions()

    # drag and drop: anywhere on the window
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            accept_without_move(event)
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        if event.mimeData().hasUrls():
            accept_without_move(event)

    def dropEvent(self, event: QDropEvent) -> None:
        urls = event.mimeData().urls()
        local = [u.toLocalFile() for u in urls if u.isLocalFile()]
        if len(local) < len(urls):
            self._flash("Only local files and folders can be scanned; web links were ignored.")
        if local and accept_without_move(event):
            self.scan_paths(local)
        else:
            event.ignore()

    # ------------------------------------------------------------------ queue and model events
    @Slot(object, object)
    def _on_rows(self, rows: list[ScanResult], settings: ScanSettings) -> None:
        self.results.add_results(rows, settings)
        self.close_guard.added(len(rows))

    @Slot(object)
    def _on_job_updated(self, job: ScanJob) -> None:
        if job.status is not JobStatus.RUNNING:
            return
        self.progress.show()
        if job.total:
            self.progress.setRange(0, job.total)
            self.progress.setValue(job.done)
        else:
            self.progress.setRange(0, 0)  # busy until the files are counted
        self.progress_label.setText(running_text(job))
        self._update_actions()

    @Slot(object)
    def _on_job_finished(self, job: ScanJob) -> None:
        if self.statusBar().currentMessage() == CANCELLING_MESSAGE:
            self.statusBar().clearMessage()  # the cancel is done: "Cancelling…" is stale
        if self.queue.running_thread is None and not self.queue.pending():
            self.progress.hide()
            self.progress_label.setText(finished_text(job))
            if self.models.info is not None:  # the analyst looks at maps next (D18)
                self.heatmaps.prewarm(self.models.info.model_id)
        self._update_actions()

    @Slot(str)
    def _on_model_loading(self, path: str) -> None:
        what = Path(path).name if path else "PyTorch"
        self.model_label.setText(f"Loading {what}…")
        self._refresh_model_state()

    @Slot(object)
    def _on_model_ready(self, info: ModelInfo) -> None:
        if info.bundled:
            self.settings.model_path = ""
        elif info.path != self._fallback_from:
            self.settings.model_path, self.settings.fake_index = info.path, info.fake_index
            self._model_note = ""
        if not self._threshold_from_user:
            self._set_threshold_widgets(info.threshold, info.band)
        self._show_threshold_origin()
        self._flash(f"Model {info.file_name} ready on {info.device}")
        self._refresh_model_state()
        self.queue._dispatch()

    @Slot(str)
    def _on_model_failed(self, message: str) -> None:
        """A checkpoint that fails is never saved as the model; with nothing loaded, fall
        back to the bundled one and say so (D3)."""
        self._flash("The model could not be loaded")
        bundled = bundled_model_path()
        failed = self.models._request
        if (self.models.info is None and failed is not None and not failed.bundled
                and failed.path and bundled.is_file()):
            self._model_note = (f"{Path(failed.path).name} could not be loaded ({message}); "
                                "the bundled model is used instead.")
            if self.settings.model_path == failed.path:
                self.settings.model_path = ""
            self._fallback_from = failed.path
            self.use_bundled_model()
        self._refresh_model_state()

    @Slot(object)
    def _on_environment(self, env: EnvInfo) -> None:
        self._set_cuda_item(env.cuda_available, env.cuda_reason)
        if not env.cuda_available and self.device_combo.currentData() == "cuda":
            self._flash(f"CUDA is not available ({env.cuda_reason}); using the CPU")
            self.device_combo.blockSignals(True)
            self.device_combo.setCurrentIndex(self.device_combo.findData("auto"))
            self.device_combo.blockSignals(False)
            self.settings.device = "auto"
        self._refresh_model_state()

    def _refresh_model_state(self) -> None:
        info, loading = self.models.info, self.models.is_loading
        if info is not None:
            self.model_label.setText(
                f"Model: {info.file_name} · {info.sha256[:10]}… · {info.device}")
            self.model_label.setToolTip(f"{info.path}\nSHA-256 {info.sha256}")
        elif loading:
            self.model_label.setText("Loading PyTorch and the model…")
        else:
            self.model_label.setText("No model loaded")
        problem = None
        in_use = (f" Still in use: <b>{html_escape(info.file_name)}</b> "
                  f"({info.sha256[:10]}…)." if info is not None else
                  " No model is loaded: files you queue wait until one is.")
        if self.models.last_error:
            problem = (f"<b>The model could not be loaded.</b> "
                       f"{html_escape(self.models.last_error)}{in_use}")  # D25
        elif self._model_note:
            problem = f"<b>Model fallback.</b> {html_escape(self._model_note)}{in_use}"
        elif info is None and self._started and not loading:
            problem = (f"<b>No detector model is available.</b> None is bundled with this build "
                       f"yet (expected <code>{bundled_model_path()}</code>). Load a checkpoint "
                       "(for example the official CNNDetection weights); files you queue now "
                       "are scanned once a model is loaded.")
        self.banner_text.setText(problem or "")
        self.banner.setVisible(problem is not None)
        if self._dialog is not None:
            self._dialog.refresh(info, self.models.env, self.models.last_error, loading)

    def _set_cuda_item(self, available: bool, reason: str) -> None:
        idx = self.device_combo.findData("cuda")
        item = self.device_combo.model().item(idx)
        item.setEnabled(available)
        tip = f"CUDA: {reason}" if available else f"CUDA unavailable: {reason}"
        self.device_combo.setItemData(idx, tip, Qt.ItemDataRole.ToolTipRole)
        self.device_combo.setItemText(idx, "CUDA" if available else "CUDA (unavailable)")

    def _on_device_changed(self, _index: int) -> None:
        self.settings.device = self.device_combo.currentData()
        if self.models.info is not None:
            self.models.reload_on(self.settings.device)

    # ------------------------------------------------------------------ threshold
    def _set_threshold_widgets(self, threshold: float, band: float) -> None:
        self._updating_threshold = True
        try:
            self.threshold_spin.setValue(threshold)
            self.band_spin.setValue(band)
        finally:
            self._updating_threshold = False
        self._apply_threshold()

    def _on_threshold_edited(self, _value: float) -> None:
        if not self._updating_threshold:
            self._threshold_from_user = True
            self.settings.threshold = self.threshold_spin.value()
            self.settings.band = self.band_spin.value()
        self._apply_threshold()

    def _show_threshold_origin(self) -> None:
        """The toolbar says when the threshold is not the model's own (D11)."""
        info = self.models.info
        t, b = self.threshold_spin.value(), self.band_spin.value()
        differs = info is not None and (abs(t - info.threshold) > 1e-9
                                        or abs(b - info.band) > 1e-9)
        self.reset_threshold.setText(f"≠ model {info.threshold:.2f} ± {info.band:.2f} — reset"
                                     if differs else "Model default")
        self.reset_threshold.setStyleSheet("color: #7a5600; font-weight: 600;" if differs else "")
        self.reset_threshold.setEnabled(differs)
        self.threshold_differs = differs

    def _apply_threshold(self) -> None:
        self._show_threshold_origin()
        t, b = self.threshold_spin.value(), self.band_spin.value()
        self.results.set_threshold(t, b)
        self.queue.threshold, self.queue.band = t, b
        self.show_provenance()  # a re-judged verdict may now disagree with the metadata
        if self.heatmap_viewer is not None and self.heatmap_viewer.isVisible():
            self.show_heatmap()

    def set_threshold(self, threshold: float, band: float | None = None) -> None:
        """As if the analyst typed the values in the toolbar."""
        if band is not None:
            self.band_spin.setValue(band)
        self.threshold_spin.setValue(threshold)

    def _reset_threshold(self) -> None:
        self._threshold_from_user = False
        self.settings.threshold = self.settings.band = None
        info = self.models.info
        if info is not None:
            self._set_threshold_widgets(info.threshold, info.band)

    # ------------------------------------------------------------------ table
    def selected_rows(self) -> list[int]:
        """Source-model rows of the selection, in the order the view shows them."""
        rows = self.table.selectionModel().selectedRows()
        return [self.proxy.mapToSource(i).row() for i in sorted(rows, key=QModelIndex.row)]

    def current_row(self) -> int | None:
        idx = self.table.currentIndex()
        if not idx.isValid():
            rows = self.selected_rows()
            return rows[0] if rows else None
        return self.proxy.mapToSource(idx).row()

    def selected_records(self) -> list[ScanResult]:
        return [self.results.record(r) for r in self.selected_rows()]

    def select_source_row(self, row: int) -> None:
        idx = self.proxy.mapFromSource(self.results.index(row, Column.FILE))
        self.table.setCurrentIndex(idx)
        self.table.selectRow(idx.row())
        self.table.scrollTo(idx)

    def copy_selected_rows(self) -> None:
        records = self.selected_records()
        if not records:
            return
        lines = ["\t".join(EXPORT_COLUMNS)]
        for r in records:
            row = result_to_row(r)
            lines.append("\t".join(str(row[c]).replace("\t", " ").replace("\n", " ")
                                   for c in EXPORT_COLUMNS))
        QGuiApplication.clipboard().setText("\n".join(lines) + "\n")
        self._flash(f"Copied {len(records)} row(s)")

    def copy_selected_hashes(self) -> None:
        hashes = [r.sha256 for r in self.selected_records() if r.sha256]
        if hashes:
            QGuiApplication.clipboard().setText("\n".join(hashes) + "\n")
            self._flash(f"Copied {len(hashes)} SHA-256 hash(es)")

    def open_containing_folder(self) -> None:
        for folder in dict.fromkeys(str(Path(r.path).parent) for r in self.selected_records()):
            QDesktopServices.openUrl(QUrl.fromLocalFile(folder))

    def _table_menu(self, pos) -> None:
        menu = QMenu(self)
        for a in (self.act_heatmap, None, self.act_copy, self.act_copy_sha, self.act_open_folder):
            menu.addSeparator() if a is None else menu.addAction(a)
        menu.exec(self.table.viewport().mapToGlobal(pos))

    def _on_selection(self, *_args) -> None:
        self._update_actions()
        self.show_provenance()
        if self.heatmap_viewer is not None and self.heatmap_viewer.isVisible():
            self.show_heatmap()

    def show_provenance(self) -> None:
        """The details panel follows the current row (metadata beside the verdict)."""
        row = self.current_row() if self.results.rowCount() else None
        self.provenance_panel.show_record(None if row is None else self.results.record(row))

    def choose_trust_anchors(self) -> None:
        """Settings: the PEM file of C2PA trust anchors (used by scans queued from now on)."""
        from forensics_app.core.provenance import ProvenanceConfigError, load_trust_anchors

        start = self.settings.c2pa_trust_anchors or self.settings.last_folder
        path, _ = QFileDialog.getOpenFileName(
            self, "C2PA trust anchors (PEM); cancel to keep, or choose none to clear", start,
            "PEM certificates (*.pem *.crt *.cer);;All files (*)")
        if not path:
            if self.settings.c2pa_trust_anchors and QMessageBox.question(
                    self, "C2PA trust anchors",
                    f"Stop using {self.settings.c2pa_trust_anchors}?") == \
                    QMessageBox.StandardButton.Yes:
                self.set_trust_anchors("")
            return
        try:
            load_trust_anchors(path)
        except ProvenanceConfigError as exc:
            QMessageBox.warning(self, "C2PA trust anchors", str(exc))
            return
        self.set_trust_anchors(path)

    def set_trust_anchors(self, path: str) -> None:
        self.settings.c2pa_trust_anchors = path
        self.act_trust_anchors.setToolTip(path or "none: C2PA signatures read as untrusted")
        self._flash(f"C2PA trust anchors: {path}" if path else
                    "No C2PA trust anchors: signatures read as untrusted")

    def _update_summary(self) -> None:
        counts = self.results.counts()
        n = sum(counts.values())
        if not n:
            self.summary.setText("")
        else:
            shown = self.proxy.rowCount()
            parts = [f"showing <b>{shown}</b> of {n} files" if shown != n else f"<b>{n}</b> files"]
            for v, colour in ((Verdict.AI_GENERATED, "#a3261b"), (Verdict.REAL, "#1e6b2b"),
                              (Verdict.INCONCLUSIVE, "#7a5600"), (Verdict.ERROR, "#555")):
                if counts.get(v):
                    parts.append(f"<span style='color:{colour}'>{counts[v]} {v.value}</span>")
            self.summary.setText(" · ".join(parts))
            self.summary.setToolTip(self.summary.text())
        self._update_actions()

    def _update_actions(self) -> None:
        has_rows = self.results.rowCount() > 0
        self.table.setVisible(has_rows)
        self.empty_hint.setVisible(not has_rows)
        selected = bool(self.table.selectionModel().selectedRows()) if has_rows else False
        for a in (self.act_copy, self.act_copy_sha, self.act_open_folder, self.act_heatmap):
            a.setEnabled(selected)
        self.act_export.setEnabled(has_rows)
        self.act_clear_results.setEnabled(has_rows)
        self.act_cancel.setEnabled(self.queue.running_thread is not None)
        self.act_cancel_pending.setEnabled(bool(self.queue.pending()))

    # ------------------------------------------------------------------ heatmap
    def heatmap_request(self, row: int) -> HeatmapRequest | None:
        r = self.results.record(row)
        if not r.ok or not r.sha256:
            return None
        return HeatmapRequest(r.path, r.sha256, r.model_id, r.preprocessing,
                              self.results.settings_for(row),
                              tuple(tuple(b) for b in r.tile_boxes), tuple(r.tile_probs),
                              *branch_context(self.models.detector, r.model_id))  # H3

    def show_heatmap(self) -> None:
        row = self.current_row()
        if row is None:
            return
        if self.heatmap_viewer is None:
            self.heatmap_viewer = HeatmapViewer(self, self.settings.heatmap_opacity)
            self.heatmap_viewer.opacity_changed.connect(
                lambda v: setattr(self.settings, "heatmap_opacity", v))
        viewer = self.heatmap_viewer
        viewer.last_folder = str(output_folder(self))
        viewer.refuse_over_evidence = lambda out: refuse_over_evidence(self, {"overlay": out})
        viewer.on_saved = lambda out: note_output(self, out, "overlay PNG")
        if not viewer.isVisible():
            viewer.show()
        record = self.results.record(row)
        req = self.heatmap_request(row)
        viewer.show_pending(record, req.key if req else None,
                            req is not None and self.heatmaps.needs_model(req.model_id))
        if req is not None:
            self.heatmaps.request(req)

    @Slot(object)
    def _on_heatmap_ready(self, data) -> None:
        if self.heatmap_viewer is not None:
            self.heatmap_viewer.show_heatmap(data)

    @Slot(object, str)
    def _on_heatmap_failed(self, req: HeatmapRequest, message: str) -> None:
        viewer = self.heatmap_viewer
        if viewer is not None and req is not None and viewer.expected_key == req.key:
            viewer.show_error(message)

    # ------------------------------------------------------------------ export
    def export_report(self, path: str | Path, filtered: bool = False) -> Path:
        """Write every row (scan order, current threshold) through the core exporter;
        ``filtered``: only the rows the table shows (D27)."""
        from forensics_app.core.export import write_csv, write_jsonl

        path = Path(path)
        refuse_over_evidence(self, {"report": path})  # OutputOverEvidence is an OSError
        records = self.proxy.visible_records() if filtered else self.results.records()
        complete = len(records) == self.results.rowCount()
        extra = {
            "command": "forensics-app",
            "threshold": self.results.threshold,
            "inconclusive_band": self.results.band,
        }
        if self.models.detector is not None:  # the levers and limits new scans use
            from forensics_app.core.speed import engine_record

            extra["engine"] = engine_record(self.models.detector,
                                            self.scan_settings().scan_options())
        if not complete:
            extra["filtered"] = f"{len(records)} of {self.results.rowCount()} rows (active filter)"
        reviews = self.reviews.book.all() if self.reviews.book is not None else None
        writer = write_jsonl if path.suffix.lower() in (".jsonl", ".json") else write_csv
        writer(path, records, extra, reviews=reviews)
        note_output(self, path, "table export")
        if complete:  # a filtered export leaves rows that exist nowhere else
            self.close_guard.exported()
        log.info("exported %d rows to %s", len(records), path)
        self._flash(f"Exported {len(records)} rows to {path}")
        return path

    def choose_export_path(self) -> None:
        """Export… : CSV, JSON Lines, HTML or PDF; all rows or the active filter's (D27)."""
        from forensics_app.gui.results_export import choose_results_export

        choose_results_export(self)

    # ------------------------------------------------------------------ model dialog, about
    def show_model_dialog(self) -> ModelDialog:
        if self._dialog is None:
            self._dialog = ModelDialog(self, self.settings.last_folder)
            self._dialog.load_requested.connect(self.load_checkpoint)
            self._dialog.bundled_requested.connect(self.use_bundled_model)
        self._refresh_model_state()
        self._dialog.show()
        self._dialog.raise_()
        return self._dialog

    def choose_checkpoint(self) -> None:
        self.show_model_dialog()._choose_file()

    def load_checkpoint(self, path: str, fake_index: int = 1) -> None:
        """Load another checkpoint; it becomes the saved model only once it has loaded (D3)."""
        self.models.load(LoadRequest(path, self.settings.device, fake_index, bundled=False))

    def use_bundled_model(self) -> None:
        self.settings.model_path = ""
        self.models.load(LoadRequest(str(bundled_model_path()), self.settings.device, 1,
                                     bundled=True))

    def show_markdown(self, which: str):
        """Help → User guide / Model card, rendered without raw HTML (D5)."""
        from forensics_app.gui.markdown_view import MarkdownDialog, read_markdown
        from forensics_app.paths import model_card_path, user_guide_path

        path = user_guide_path() if which == "user guide" else model_card_path()
        dialog = MarkdownDialog(self, which.capitalize(),
                                read_markdown(path, f"No {which} is bundled with this build."))
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog

    def show_about(self) -> None:
        env = self.models.env
        torch_line = (f"PyTorch {env.torch_version}; CUDA "
                      + ("available: " + env.cuda_reason if env.cuda_available
                         else "unavailable (" + env.cuda_reason + ")")
                      if env else "PyTorch not loaded yet")
        info = self.models.info
        QMessageBox.about(self, "About Forensics App", (
            f"<h3>Forensics App {__version__}</h3>"
            "<p>Scores images for being AI-generated. The bundled detector's verdict comes "
            "from its semantic branch (a frozen CLIP ViT-B/16, the CLS token of every block, "
            "over the centre 224² crop and the whole image resized to 224); its trace branch "
            "(a full-resolution CNN in the style of Wang et al., CVPR 2020) is shown beside it "
            "with its Grad-CAM but does not move the verdict. Images outside the domains the "
            "detector was validated on are Inconclusive. Scores are evidence to weigh, not "
            "proof.</p>"
            f"<p>{torch_line}<br>Qt {PYSIDE_VERSION} (PySide6)<br>"
            f"Python {platform.python_version()} on {platform.system()}<br>"
            f"Model: {info.model_id if info else 'none loaded'}</p>"
            f"<p>Settings: {self.settings_path or user_config_dir()}<br>"
            f"Logs: {user_log_dir()}</p>"))

    # ------------------------------------------------------------------ misc
    def _flash(self, message: str) -> None:
        self.statusBar().showMessage(message, 6000)

    def closeEvent(self, event: QCloseEvent) -> None:
        if not getattr(self, "_shut_down", False) and not (
                self.guards.may_close_now() and self.close_guard.may_close()):
            event.ignore()
            return
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Save settings and stop every worker thread (waits for them to end)."""
        if getattr(self, "_shut_down", False):
            return
        self._shut_down = True
        self.settings.geometry = bytes(self.saveGeometry().toBase64()).decode()
        self.settings.window_state = bytes(self.saveState().toBase64()).decode()
        if self.settings_path is not None:
            self.settings.save(self.settings_path)
        self.queue.shutdown()
        self.report_jobs.shutdown()
        self.cases.shutdown()
        self.heatmaps.shutdown()
        self.witnesses.shutdown()
        self.thumbnails.shutdown()
        self.models.shutdown()
        if self.heatmap_viewer is not None:
            self.heatmap_viewer.close()
        if self._dialog is not None:
            self._dialog.close()
        log.info("main window closed")
