"""Reading dropped files and folders off the GUI thread.

A folder of PDFs can take a while to read; a :class:`FileLoader` on its own QThread does it
(no MLX here, so this thread is not the scoring thread). Requests are answered in order.
"""
from __future__ import annotations

import os
from typing import Sequence

from PySide6.QtCore import QObject, QThread, Qt, Signal, Slot

import engine.intake  # noqa: F401  (here, on the GUI thread: see below)
from app.documents import TableChoice, load_paths

# engine.intake is imported above, before the reader and scoring threads start, because both need
# it (the reader to read, the classifier to normalise text) and two threads importing a package
# at once can see it half-initialised: the model failed to load with "KeyError: 'engine.intake'".


class _Reader(QObject):
    """Lives on the loader thread."""

    loaded = Signal(int, object)  # request, list[(display name, Document)]

    @Slot(int, object)
    def read(self, request: int, paths: list[str]) -> None:
        try:
            items = load_paths(paths)
        except Exception as exc:  # intake never raises for bad input; this is a last resort
            from engine.types import Document

            names = [p.path if isinstance(p, TableChoice) else p for p in paths]
            items = [(os.path.basename(p) or p, Document(id=p, text="", source=p, error=f"could not read: {exc}"))
                     for p in names]
        self.loaded.emit(request, items)


class FileLoader(QObject):
    """GUI-thread handle: :meth:`load` paths, get :attr:`loaded` with (name, Document) pairs."""

    loaded = Signal(object)  # list[(display name, Document)]
    busyChanged = Signal(bool)

    _readRequested = Signal(int, object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thread = QThread()
        self._thread.setObjectName("verdict-files")
        self._reader = _Reader()
        self._reader.moveToThread(self._thread)
        self._readRequested.connect(self._reader.read, Qt.ConnectionType.QueuedConnection)
        self._reader.loaded.connect(self._on_loaded, Qt.ConnectionType.QueuedConnection)
        self._thread.start()
        self._pending: set[int] = set()
        self._next = 0

    @property
    def busy(self) -> bool:
        return bool(self._pending)

    def load(self, paths: Sequence[str | os.PathLike | TableChoice]) -> None:
        """Read files, folders and tables (one document per row) in this order."""
        paths = [p if isinstance(p, TableChoice) else os.fspath(p) for p in paths]
        if not paths:
            return
        self._next += 1
        was_busy = self.busy
        self._pending.add(self._next)
        self._readRequested.emit(self._next, paths)
        if not was_busy:
            self.busyChanged.emit(True)

    @Slot(int, object)
    def _on_loaded(self, request: int, items: list) -> None:
        self._pending.discard(request)
        self.loaded.emit(items)
        if not self.busy:
            self.busyChanged.emit(False)

    def shutdown(self) -> None:
        self._pending.clear()
        if self._thread.isRunning():
            self._thread.quit()
            self._thread.wait()
