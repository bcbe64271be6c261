"""The model chooser: models already on disk grouped by source (the one in use marked), and a
short Recommended list that downloads from the Hugging Face Hub, after asking, with progress and
Cancel; a download that can't reach the Hub says so in one plain sentence (the details in a tooltip).

Listing (GGUF headers, folder walks) and downloading run on a `Task` thread, never on the GUI
thread; neither touches MLX models, so the scoring thread stays the only one that does.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

from PySide6.QtCore import Qt, QThread, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QProgressBar,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
)

from engine.model import catalog
from engine.model.recommended import RECOMMENDED, Recommended

ENTRY_ROLE = Qt.ItemDataRole.UserRole
IN_USE = "✓ in use"
# What connection failures say (httpx, requests, the OS): no route to the Hub at all.
_OFFLINE_MARKS = ("ConnectError", "ConnectionError", "ConnectTimeout", "Name or service not known",
                  "Temporary failure in name resolution", "nodename nor servname", "getaddrinfo failed",
                  "Network is unreachable", "Connection refused", "timed out", "No route to host")


def plain_download_error(reason: str) -> str:
    """One sentence for a failed download: 'no network' in plain words, else the Hub's own reason."""
    if any(mark in reason for mark in _OFFLINE_MARKS):
        return ("Could not reach Hugging Face: this computer seems to be offline, or the site is blocked. "
                "The models already on this computer still work.")
    return f"Could not download: {reason}"


def _size(n: Optional[int]) -> str:
    if not n:
        return ""
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


class Task(QThread):
    """Runs ``fn(progress, cancelled)`` on its own thread; reports back through queued signals."""

    progressed = Signal(object, object)  # bytes done, bytes in all (None: unknown)
    succeeded = Signal(object)
    failed = Signal(str, bool)  # reason, cancelled

    def __init__(self, fn: Callable[[Callable, Callable[[], bool]], Any], parent=None) -> None:
        super().__init__(parent)
        self._fn = fn
        self._cancel = False

    def cancel(self) -> None:
        self._cancel = True

    def run(self) -> None:
        from engine.model.hub import DownloadCancelled

        try:
            result = self._fn(lambda done, total: self.progressed.emit(done, total), lambda: self._cancel)
        except DownloadCancelled:
            self.failed.emit("Download cancelled.", True)
        except Exception as exc:  # a HubError's message, or whatever went wrong: shown, never raised
            self.failed.emit(str(exc), False)
        else:
            self.succeeded.emit(result)


class ModelChooser(QDialog):
    """Pick a model; :attr:`modelChosen` carries a local path (None: the embedded default)."""

    modelChosen = Signal(object)
    listed = Signal()

    def __init__(self, parent=None, current: Optional[str] = None) -> None:
        """``current``: the path of the model in use ('' for the embedded default, None: unknown)."""
        super().__init__(parent)
        self.current = current
        self._confirming: Optional[Recommended] = None  # asked "Download …?"; Use Model again confirms
        self.setWindowTitle("Choose a Model")
        self.resize(640, 460)
        self.tree = QTreeWidget()
        self.tree.setColumnCount(2)
        self.tree.setHeaderLabels(["Model", "Details"])
        self.tree.setColumnWidth(0, 320)
        self.tree.itemDoubleClicked.connect(lambda item, _col: self.use(item))
        self.tree.currentItemChanged.connect(lambda *_: self._on_current_changed())
        self.status = QLabel("Looking for models…")
        self.status.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.buttons = QDialogButtonBox()
        self.use_button = QPushButton("Use Model")
        self.use_button.setDefault(True)
        self.use_button.clicked.connect(lambda: self.use(self.tree.currentItem()))
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.buttons.addButton(self.use_button, QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.addButton(self.cancel_button, QDialogButtonBox.ButtonRole.RejectRole)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.status)
        layout.addWidget(self.progress)
        layout.addWidget(self.buttons)
        self.entries: list[catalog.ModelEntry] = []
        self.download_task: Optional[Task] = None
        self._list_task = Task(lambda _p, _c: catalog.list_models(), self)
        self._list_task.succeeded.connect(self._show_entries)
        self._list_task.failed.connect(lambda reason, _c: self._show_entries([], reason))
        self._list_task.start()
        self._update_buttons()

    # --- the list -----------------------------------------------------------------------------
    def _show_entries(self, entries: list, problem: str = "") -> None:
        self.entries = list(entries)
        self.tree.clear()
        cached = {e.name: e for e in self.entries if e.source == "hf" and e.format == "mlx" and e.supported}
        group = self._group("Recommended")
        for rec in RECOMMENDED:
            local = cached.get(rec.repo)
            details = "downloaded" if local else f"download {_size(rec.size_bytes) or 'from Hugging Face'}"
            item = QTreeWidgetItem(group, [rec.title, f"{details} · {rec.note}"])
            item.setData(0, ENTRY_ROLE, local or rec)
            item.setToolTip(0, rec.repo)
            self._mark_in_use(item, local)
        for source in catalog.SOURCES:
            mine = [e for e in self.entries if e.source == source]
            if not mine:
                continue
            group = self._group(catalog.SOURCE_TITLES[source])
            for entry in mine:
                facts = " · ".join(x for x in (entry.format.upper(), entry.architecture, entry.quant,
                                               _size(entry.size_bytes)) if x)
                item = QTreeWidgetItem(group, [entry.name, facts if entry.supported else f"{facts} — {entry.reason}"])
                item.setData(0, ENTRY_ROLE, entry)
                item.setToolTip(0, entry.path or "")
                self._mark_in_use(item, entry)
                if not entry.supported:  # greyed, with the reason beside it and in the tooltip
                    item.setFlags(item.flags() & ~(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable))
                    item.setToolTip(1, entry.reason or "")
        self.tree.expandAll()
        self.status.setText(problem or "Models on this computer, and models to download.")
        self._update_buttons()
        self.listed.emit()

    def _mark_in_use(self, item: QTreeWidgetItem, entry: Optional[catalog.ModelEntry]) -> None:
        if entry is None or self.current is None:
            return
        in_use = entry.source == "default" if not self.current else (
            entry.path is not None and Path(entry.path).resolve() == Path(self.current).resolve())
        if in_use:
            item.setText(1, f"{IN_USE} · {item.text(1)}")
            font = item.font(0)
            font.setBold(True)
            item.setFont(0, font)

    def _group(self, title: str) -> QTreeWidgetItem:
        group = QTreeWidgetItem(self.tree, [title])
        group.setFlags(Qt.ItemFlag.ItemIsEnabled)
        font = group.font(0)
        font.setBold(True)
        group.setFont(0, font)
        return group

    def items(self) -> list[QTreeWidgetItem]:
        """Every model row (not the group headers), in display order."""
        rows = []
        for g in range(self.tree.topLevelItemCount()):
            group = self.tree.topLevelItem(g)
            rows += [group.child(i) for i in range(group.childCount())]
        return rows

    def item_named(self, text: str) -> Optional[QTreeWidgetItem]:
        return next((item for item in self.items() if item.text(0) == text), None)

    def _update_buttons(self) -> None:
        item = self.tree.currentItem()
        choosable = item is not None and item.data(0, ENTRY_ROLE) is not None and bool(
            item.flags() & Qt.ItemFlag.ItemIsEnabled)
        self.use_button.setEnabled(choosable and self.download_task is None)

    def _on_current_changed(self) -> None:
        if self._confirming is not None:  # another row: the question asked no longer stands
            self._confirming = None
            self.use_button.setText("Use Model")
            self.status.setText("Models on this computer, and models to download.")
        self._update_buttons()

    # --- choosing -----------------------------------------------------------------------------
    def use(self, item: Optional[QTreeWidgetItem]) -> None:
        """Use the model of `item`: at once if it is on disk, after its download if recommended."""
        if item is None or self.download_task is not None or not (item.flags() & Qt.ItemFlag.ItemIsEnabled):
            return
        data = item.data(0, ENTRY_ROLE)
        if isinstance(data, Recommended) and self._confirming != data:
            self._confirming = data  # ask first: a download is large and needs the network
            size = _size(data.size_bytes)
            self.status.setText(f"Download {data.title}{f' ({size})' if size else ''} from Hugging Face? "
                                "Click Download to start; Cancel stops it at any time.")
            self.use_button.setText("Download")
        elif isinstance(data, Recommended):
            self._confirming = None
            self.use_button.setText("Use Model")
            self.download(data)
        elif isinstance(data, catalog.ModelEntry):
            self._choose(None if data.source == "default" else data.path)

    def _choose(self, path: Optional[str]) -> None:
        self.modelChosen.emit(path)
        self.accept()

    def download(self, rec: Recommended) -> None:
        """Download a recommended model with progress; Cancel stops it and keeps the dialog open."""
        from engine.model import hub

        self.status.setText(f"Downloading {rec.title} from Hugging Face…")
        self.progress.setRange(0, 0)
        self.progress.setVisible(True)
        self.download_task = Task(lambda progress, cancelled: hub.download(rec.repo, progress=progress,
                                                                           cancel=cancelled), self)
        self.download_task.progressed.connect(self._on_progress)
        self.download_task.succeeded.connect(lambda path: self._downloaded(rec, path))
        self.download_task.failed.connect(self._download_failed)
        self._update_buttons()
        self.download_task.start()

    def _on_progress(self, done: int, total: Optional[int]) -> None:
        if total:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(1000 * done / total))
            self.status.setText(f"Downloading… {_size(done) or '0 MB'} of {_size(total)}")

    def _downloaded(self, rec: Recommended, path: Path) -> None:
        self._finish_task()
        self.status.setText(f"Downloaded {rec.title}.")
        self._choose(str(path))

    def _download_failed(self, reason: str, cancelled: bool) -> None:
        self._finish_task()
        self.status.setText(reason if cancelled else plain_download_error(reason))
        self.status.setToolTip("" if cancelled else reason)

    def _finish_task(self) -> None:
        if self.download_task is not None:
            self.download_task.wait()
            self.download_task = None
        self.progress.setVisible(False)
        self._update_buttons()

    def cancel(self) -> None:
        """Cancel the download in progress, or close the dialog when there is none."""
        if self.download_task is not None:
            self.status.setText("Cancelling…")
            self.download_task.cancel()
        else:
            self.reject()

    def done(self, result: int) -> None:  # closing the window also stops a download and the listing
        if self.download_task is not None:
            self.download_task.cancel()
            self.download_task.wait()
        self._list_task.wait()
        super().done(result)
