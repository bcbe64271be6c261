"""Every dialog the window opens, as module-level functions tests can replace.

Errors about documents never open a dialog (they are red rows); the only error dialog is for
a model that could not be loaded, through :func:`show_error`.
"""
from __future__ import annotations

from typing import Optional

from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

EXPORT_FILTERS = "CSV (*.csv);;JSON Lines (*.jsonl)"


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
        "Documents (*.pdf *.docx *.html *.htm *.eml *.rtf *.txt *.md *.markdown *.csv *.json *.xml *.log);;All files (*)",
    )
    return paths


def choose_folder(parent: Optional[QWidget], directory: str, title: str = "Add a Folder") -> str:
    """A folder (empty string when cancelled)."""
    return QFileDialog.getExistingDirectory(parent, title, directory)


def choose_model_file(parent: Optional[QWidget], directory: str) -> str:
    """A .gguf model file (empty string when cancelled)."""
    path, _ = QFileDialog.getOpenFileName(parent, "Open a GGUF Model", directory, "GGUF models (*.gguf);;All files (*)")
    return path


def choose_export_path(parent: Optional[QWidget], suggested: str) -> tuple[str, str]:
    """(path, format 'csv' or 'jsonl'); the path is empty when cancelled."""
    path, chosen = QFileDialog.getSaveFileName(parent, "Export Results", suggested, EXPORT_FILTERS)
    return path, "jsonl" if "jsonl" in chosen.lower() else "csv"
