"""The drop zone: files, folders and text dropped on it become documents.

Large while the session is empty (it is the first thing a new user sees), a slim strip once
there are documents. The main window forwards drops anywhere else to the same handling.
"""
from __future__ import annotations

import sys

from PySide6.QtCore import QMimeData, Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDragLeaveEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

PASTE_KEY = "⇧⌘V" if sys.platform == "darwin" else "Ctrl+Shift+V"  # Paste as Document, wherever the focus is


def dropped_content(mime: QMimeData) -> tuple[list[str], str]:
    """(local file and folder paths, text) carried by a drag or the clipboard.

    Paths win: a file dragged from Finder also carries its path as text, which is not a document.
    """
    paths = [url.toLocalFile() for url in mime.urls() if url.isLocalFile() and url.toLocalFile()]
    if paths:
        return paths, ""
    return [], mime.text() if mime.hasText() else ""


def accepts(mime: QMimeData) -> bool:
    paths, text = dropped_content(mime)
    return bool(paths or text.strip())


class DropZone(QFrame):
    """Takes drops of files, folders (read recursively) and text; has an "Add Files…" button."""

    pathsDropped = Signal(list)
    textDropped = Signal(str)
    addFilesClicked = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("DropZone")
        self.setAcceptDrops(True)
        self.setProperty("dragging", False)

        self._title = QLabel("Drop documents or folders here")
        self._title.setObjectName("DropTitle")
        self._hint = QLabel(
            f"PDF, Word, HTML, e-mail, RTF, Markdown and text files, whole folders too — or paste text with {PASTE_KEY}"
        )
        self._hint.setObjectName("DropHint")
        self._hint.setWordWrap(True)
        self._hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._button = QPushButton("Add Files…")
        self._button.clicked.connect(self.addFilesClicked)

        self._compact_label = QLabel(f"Drop files or folders here, or paste text ({PASTE_KEY})")
        self._compact_label.setObjectName("DropHint")
        self._compact_label.setWordWrap(True)

        # Two faces, one button: the button moves between them.
        self._big = QWidget()
        big = QVBoxLayout(self._big)
        big.setContentsMargins(24, 24, 24, 24)
        big.setSpacing(8)
        big.addStretch(1)
        big.addWidget(self._title, 0, Qt.AlignmentFlag.AlignHCenter)
        big.addWidget(self._hint)  # full width, centred text: a centred wrapped label gets squeezed
        big.addSpacing(8)
        self._big_button_slot = QHBoxLayout()
        big.addLayout(self._big_button_slot)
        big.addStretch(1)
        self._small = QWidget()
        small = QHBoxLayout(self._small)
        small.setContentsMargins(12, 4, 6, 4)
        small.addWidget(self._compact_label, 1)
        self._small_button_slot = QHBoxLayout()
        small.addLayout(self._small_button_slot)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(0)
        outer.addWidget(self._big)
        outer.addWidget(self._small)
        self._compact: bool | None = None
        self.set_compact(False)

    @property
    def compact(self) -> bool:
        return bool(self._compact)

    def set_compact(self, compact: bool) -> None:
        """Slim strip (there are documents) or the large empty-session invitation."""
        if compact == self._compact:
            return
        self._compact = compact
        self._big.setVisible(not compact)
        self._small.setVisible(compact)
        slot = self._small_button_slot if compact else self._big_button_slot
        slot.addWidget(self._button, 0, Qt.AlignmentFlag.AlignCenter)
        self.setSizePolicy(QSizePolicy.Policy.Preferred,
                           QSizePolicy.Policy.Maximum if compact else QSizePolicy.Policy.Expanding)
        self.setProperty("compact", compact)
        self._restyle()

    def _set_dragging(self, dragging: bool) -> None:
        self.setProperty("dragging", dragging)
        self._restyle()

    def _restyle(self) -> None:
        self.style().unpolish(self)
        self.style().polish(self)

    # --- drag and drop ---------------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if accepts(event.mimeData()):
            event.acceptProposedAction()
            self._set_dragging(True)
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        if accepts(event.mimeData()):
            event.acceptProposedAction()

    def dragLeaveEvent(self, event: QDragLeaveEvent) -> None:
        self._set_dragging(False)

    def dropEvent(self, event: QDropEvent) -> None:
        self._set_dragging(False)
        paths, text = dropped_content(event.mimeData())
        if paths:
            event.acceptProposedAction()
            self.pathsDropped.emit(paths)
        elif text.strip():
            event.acceptProposedAction()
            self.textDropped.emit(text)
        else:
            event.ignore()
