"""Every dialog the window opens, and the hand-offs to the system (Finder, Quick Look, the
browser), as module-level functions tests can replace.

Errors about documents never open a dialog (they are red rows); the only error dialog is for
a model that could not be loaded, through :func:`show_error`.
"""
from __future__ import annotations

import os
import subprocess
import sys
from typing import Optional, Union

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices, QKeySequence, QShortcut
from PySide6.QtWidgets import QDialog, QFileDialog, QMessageBox, QPlainTextEdit, QVBoxLayout, QWidget

from app.export import with_extension

EXPORT_FILTERS = {  # format -> file dialog filter; the first is the default
    "wide": "CSV, one row per document (*.csv)",
    "csv": "CSV, one row per document and question (*.csv)",
    "jsonl": "JSON Lines, one line per document and question (*.jsonl)",
}


def show_error(parent: Optional[QWidget], title: str, text: str, details: str = "") -> None:
    """A modal error message. Tests replace this function to stay headless."""
    box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok, parent)
    if details:
        box.setInformativeText(details)
    box.exec()


def choose_files(parent: Optional[QWidget], directory: str) -> list[str]:
    """Files to add (empty when cancelled)."""
    paths, _ = QFileDialog.getOpenFileNames(
        parent,
        "Add Documents",
        directory,
        "Documents (*.pdf *.docx *.html *.htm *.eml *.rtf *.txt *.md *.markdown *.csv *.json *.xml *.log *.mbox *.zip *.tar *.tgz *.gz);;All files (*)",
    )
    return paths


def choose_table_columns(parent: Optional[QWidget], table) -> object:
    """Which column of a dropped ``table`` holds the text: a ``TableChoice``, ``WHOLE_FILE``
    (read it as one document), or None when cancelled."""
    from app.table_dialog import TableColumnsDialog

    dialog = TableColumnsDialog(table, parent)
    dialog.exec()
    return dialog.result_choice


def choose_folder(parent: Optional[QWidget], directory: str, title: str = "Add a Folder") -> str:
    """A folder (empty string when cancelled)."""
    return QFileDialog.getExistingDirectory(parent, title, directory)


def choose_model_file(parent: Optional[QWidget], directory: str) -> str:
    """A .gguf model file (empty string when cancelled)."""
    path, _ = QFileDialog.getOpenFileName(parent, "Open a GGUF Model", directory, "GGUF models (*.gguf);;All files (*)")
    return path


def choose_export_path(parent: Optional[QWidget], suggested: str) -> tuple[str, str]:
    """(path, format 'wide', 'csv' or 'jsonl'); the path is empty when cancelled. The path's
    extension follows the format chosen."""
    path, chosen = QFileDialog.getSaveFileName(parent, "Export Results", suggested, ";;".join(EXPORT_FILTERS.values()))
    fmt = next((f for f, text in EXPORT_FILTERS.items() if text == chosen), "wide")
    return (with_extension(path, fmt) if path else ""), fmt


def choose_source_table(parent: Optional[QWidget], names: list[str]) -> Optional[int]:
    """Which of several tables gets the verdict columns (its index), or None when cancelled."""
    from PySide6.QtWidgets import QInputDialog

    name, ok = QInputDialog.getItem(parent, "Add Verdict Columns", "Add the verdict columns to:", names, 0, False)
    return names.index(name) if ok and name in names else None


def choose_table_output(parent: Optional[QWidget], suggested: str) -> str:
    """Where the table with verdict columns goes (empty string when cancelled)."""
    workbook = suggested.lower().endswith(".xlsx")
    filters = "Excel workbook (*.xlsx);;CSV (*.csv)" if workbook else "Same as the original (*.csv *.tsv *.tab *.txt)"
    path, _ = QFileDialog.getSaveFileName(parent, "Add Verdict Columns to the Original", suggested,
                                          filters + ";;All files (*)")
    return path


def keep_duplicates(parent: Optional[QWidget], names: list[str]) -> bool:
    """Ask whether documents already in the session are added again (True) or skipped."""
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    box = QMessageBox(QMessageBox.Icon.Question, "Documents already here",
                      f"{len(names)} of the documents you added {'is' if len(names) == 1 else 'are'} already in "
                      f"this session: {shown}.", QMessageBox.StandardButton.NoButton, parent)
    skip = box.addButton("Skip Them", QMessageBox.ButtonRole.RejectRole)
    box.addButton("Add Again", QMessageBox.ButtonRole.AcceptRole)
    box.setDefaultButton(skip)
    box.exec()
    return box.clickedButton() is not skip


def open_url(url: QUrl) -> None:
    """Open a web page or file in the system's viewer (Help)."""
    QDesktopServices.openUrl(url)


def reveal(path: str) -> None:
    """Show ``path`` selected in Finder (macOS), Explorer (Windows) or its folder (elsewhere)."""
    if sys.platform == "darwin":
        subprocess.Popen(["open", "-R", path])
    elif sys.platform == "win32":
        subprocess.Popen(["explorer", "/select,", os.path.normpath(path)])
    else:
        QDesktopServices.openUrl(QUrl.fromLocalFile(os.path.dirname(path)))


class QuickLookProcess:
    """macOS Quick Look of a file (``qlmanage -p``), closed like a window."""

    def __init__(self, path: str) -> None:
        self._process = subprocess.Popen(["qlmanage", "-p", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def isVisible(self) -> bool:
        return self._process.poll() is None

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()


Preview = Union[QDialog, QuickLookProcess]


def quick_look(parent: Optional[QWidget], name: str, path: Optional[str], text: str) -> Preview:
    """Preview a document: Quick Look for a file on macOS, else its text in a window. Space closes
    the window as it does Quick Look; the caller closes either with ``close()``."""
    if sys.platform == "darwin" and path and os.path.exists(path):
        return QuickLookProcess(path)
    dialog = QDialog(parent)
    dialog.setObjectName("QuickLook")
    dialog.setWindowTitle(name)
    view = QPlainTextEdit(text)
    view.setReadOnly(True)
    QVBoxLayout(dialog).addWidget(view)
    QShortcut(QKeySequence(Qt.Key.Key_Space), dialog, dialog.close)
    dialog.resize(640, 480)
    dialog.show()
    return dialog
