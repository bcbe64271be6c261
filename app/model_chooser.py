"""The model chooser: models already on disk grouped by source (the one in use marked), and a
short Recommended list that downloads from the Hugging Face Hub, after asking, with progress and
Cancel. Whether the Hub answers is checked when the chooser opens (a few seconds at most): where it
doesn't, the downloads are not offered and the chooser says why in one plain sentence, as a
download that loses the network does (the details in a tooltip).

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


OFFLINE_SENTENCE = ("Could not reach Hugging Face: this computer seems to be offline, or the site is blocked. "
                    "The models already on this computer still work.")
DOWNLOADS_OFF_SENTENCE = ("Downloads are turned off (HF_HUB_OFFLINE is set). "
                          "The models already on this computer still work.")
DEFAULT_STATUS = "Models on this computer, and models to download."
REACH_TIMEOUT_S = 3.0  # how long the chooser waits for the Hub to answer before it calls it unreachable


def plain_download_error(reason: str) -> str:
    """One sentence for a failed download: 'no network' in plain words, else the Hub's own reason."""
    if any(mark in reason for mark in _OFFLINE_MARKS):
        return OFFLINE_SENTENCE
    return f"Could not download: {reason}"


def hub_unreachable(timeout: float = REACH_TIMEOUT_S) -> str:
    """'' when the Hub (``HF_ENDPOINT``) answers at all (any HTTP status), else why not, technically
    ("HF_HUB_OFFLINE is set" when downloads are turned off)."""
    import urllib.error
    import urllib.request

    from engine.model import hub

    if hub.is_offline():
        return "HF_HUB_OFFLINE is set"
    try:
        urllib.request.urlopen(urllib.request.Request(hub.endpoint() + "/api/models?limit=1", method="HEAD"),
                               timeout=timeout).close()
    except urllib.error.HTTPError:
        return ""  # it answered, if only to refuse: the Hub is there
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc  # URLError wraps the OS's error
        return f"{type(reason).__name__ if isinstance(reason, BaseException) else type(exc).__name__}: {reason}"
    return ""


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
    reached = Signal()  # whether the Hub answers is known (see `unreachable`)

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
        self.unreachable: Optional[str] = None  # why the Hub does not answer ('': it does; None: not known yet)
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
        self._reach_task = Task(lambda _p, _c: hub_unreachable(), self)
        self._reach_task.succeeded.connect(self._on_reach)
        self._reach_task.start()
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
        self._offer_downloads()
        if problem:
            self.status.setText(problem)
        self._update_buttons()
        self.listed.emit()

    def _on_reach(self, reason: str) -> None:
        self.unreachable = reason
        self._offer_downloads()
        self._update_buttons()
        self.reached.emit()

    def _offer_downloads(self) -> None:
        """Recommended models not downloaded yet are offered only while the Hub answers; the status
        line says why they are not (the technical reason in its tooltip)."""
        offline = bool(self.unreachable)
        for item in self.items():
            if isinstance(item.data(0, ENTRY_ROLE), Recommended):
                rec = item.data(0, ENTRY_ROLE)
                flags = item.flags() | Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
                item.setFlags(flags & ~(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable) if offline else flags)
                size = _size(rec.size_bytes) or "from Hugging Face"
                item.setText(1, f"{'needs a connection to Hugging Face' if offline else f'download {size}'} · {rec.note}")
        if self._confirming is None and self.download_task is None:
            self.status.setText(self._default_status())
            self.status.setToolTip(self.unreachable or "")

    def _default_status(self) -> str:
        if self.unreachable == "HF_HUB_OFFLINE is set":
            return DOWNLOADS_OFF_SENTENCE
        return OFFLINE_SENTENCE if self.unreachable else DEFAULT_STATUS

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
            self.status.setText(self._default_status())
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
        self._reach_task.wait()  # at most REACH_TIMEOUT_S
        super().done(result)
