"""The QApplication subclass: names, appearance, and files opened with the app.

On macOS, files dropped on the Dock icon or opened with Verdict from Finder arrive as
QFileOpenEvents on the application object, possibly before the window exists; they are kept
until a window is set, then handed to it in one batch.
"""
from __future__ import annotations

import sys
from typing import Optional, Sequence

from PySide6.QtCore import QEvent, QTimer
from PySide6.QtGui import QFileOpenEvent
from PySide6.QtWidgets import QApplication

APP_NAME = "Verdict"
# PySide6 6.12.0 drops a reference to None on every void call and to True on every emit() when
# Python is older than 3.12 (where those objects are not immortal): the app aborts with
# "Fatal Python error: bool_dealloc" after a few thousand calls. 6.11.3 is fine.
BROKEN_BINDINGS = {"6.12.0"}
ORGANIZATION = "Verdict"
DOMAIN = "verdict.app"


def binding_problem() -> Optional[str]:
    """Why this PySide6 can't run the app on this Python, or None when it can."""
    import PySide6

    if PySide6.__version__ in BROKEN_BINDINGS and sys.version_info < (3, 12):
        return (
            f"PySide6 {PySide6.__version__} has a reference-counting bug on Python "
            f"{sys.version_info.major}.{sys.version_info.minor} that crashes Verdict; "
            "install another version: pip install 'PySide6-Essentials>=6.6,!=6.12.0'"
        )
    return None


class VerdictApplication(QApplication):
    """Routes QFileOpenEvents to the main window's ``add_paths``."""

    def __init__(self, argv: Sequence[str]) -> None:
        super().__init__(list(argv))
        self.setApplicationName(APP_NAME)
        self.setApplicationDisplayName(APP_NAME)
        self.setOrganizationName(ORGANIZATION)
        self.setOrganizationDomain(DOMAIN)
        self._window = None
        self._pending: list[str] = []
        self._flush_timer = QTimer(self)
        self._flush_timer.setSingleShot(True)
        self._flush_timer.setInterval(0)  # several files opened at once arrive as several events
        self._flush_timer.timeout.connect(self._flush)

    def set_window(self, window: Optional[object]) -> None:
        """The window that receives opened files (anything with ``add_paths(list[str])``)."""
        self._window = window
        if self._pending:
            self._flush_timer.start()

    def open_paths(self, paths: Sequence[str]) -> None:
        self._pending += [p for p in paths if p]
        if self._window is not None:
            self._flush_timer.start()

    def _flush(self) -> None:
        if self._window is None or not self._pending:
            return
        paths, self._pending = self._pending, []
        self._window.add_paths(paths)

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.FileOpen and isinstance(event, QFileOpenEvent):
            path = event.file() or event.url().toLocalFile()
            if path:
                self.open_paths([path])
            return True
        return super().event(event)
