"""D5 Markdown rendered safely, D10 triage labelled with a permanent mode and a full re-scan."""

from __future__ import annotations

from gui_helpers import wait_idle

from forensics_app.gui.markdown_view import MarkdownDialog
from forensics_app.gui.table_model import Column
from helpers import make_images

CARD = ("## Data\n\n| split | source |\n|---|---|\n| train | LAION \"<artist>\" tiles |\n"
        "| test | <script>alert(1)</script> |\n")


def test_markdown_with_raw_html_keeps_its_table_and_text(qtbot):
    dialog = MarkdownDialog(None, "Model card", CARD)
    qtbot.addWidget(dialog)
    text = dialog.view.toPlainText()
    assert "<artist>" in text and "<script>alert(1)</script>" in text
    assert "train" in text and "test" in text  # the table was not swallowed


def test_help_shows_the_guide_and_the_model_dialog_renders_safely(make_window):
    window = make_window()
    guide = window.show_markdown("user guide")
    assert "What the score means" in guide.view.toPlainText()
    guide.close()
    card = window.show_markdown("model card")
    assert card.view.toPlainText().strip()
    card.close()
    dialog = window.show_model_dialog()
    assert "<artist>" not in dialog.text.toHtml() or "&lt;artist&gt;" in dialog.text.toHtml()
    dialog.close()


def test_triage_rows_are_labelled_and_rescanned_in_full(make_window, qtbot, tmp_path):
    window = make_window()
    triage = next(a for a in window.preprocess_group.actions() if a.data() == "sample")
    triage.trigger()
    assert "TRIAGE" in window.mode_label.text()
    window.scan_paths(make_images(tmp_path / "imgs", 2, size=(1600, 1600)))  # 16 tiles > 8
    wait_idle(qtbot, window)
    assert all(window.results.index(i, Column.VERDICT).data().endswith("· triage")
               for i in range(2))
    job = window.rescan_triage_in_full()
    assert job is not None and job.settings.mode == "full"
    wait_idle(qtbot, window)
    assert window.results.rowCount() == 2
    assert not any(window.results.index(i, Column.VERDICT).data().endswith("triage")
                   for i in range(2))
    assert "TRIAGE" in window.mode_label.text()  # new scans still use the chosen mode


def test_column_chooser_hides_columns_and_remembers(make_window):
    from forensics_app.gui.settings import AppSettings

    window = make_window()
    header = window.table.horizontalHeader()
    assert header.isSectionHidden(Column.FOLDER)  # hidden until asked for
    assert header.visualIndex(Column.FOLDER) == header.visualIndex(Column.FILE) + 1
    menu = window.columns.menu()
    folder = next(a for a in menu.actions() if a.text() == "Folder")
    folder.setChecked(True)
    assert not header.isSectionHidden(Column.FOLDER)
    window.columns.set_visible(Column.SHA256, False)
    window.columns.set_visible(Column.FILE, False)  # never hidden
    assert header.isSectionHidden(Column.SHA256) and not header.isSectionHidden(Column.FILE)
    window.settings.save(window.settings_path)
    assert AppSettings.load(window.settings_path).hidden_columns == ["Scan time", "SHA-256"]
