"""The main window: questions on top, documents and verdicts in a table, the selected
document on the right, progress in the status bar.

The window is a view over three things it owns: the :class:`ResultsModel` (what is shown),
the :class:`SessionStore` (what survives a restart, written on every change) and the
:class:`ScoringController` (the scoring thread). Document errors are red rows; the only
dialog that can appear on its own is for a model that failed to load (:mod:`app.dialogs`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

from PySide6.QtCore import QEvent, QModelIndex, QSize, Qt, QTimer, Slot
from PySide6.QtGui import (
    QAction,
    QActionGroup,
    QCloseEvent,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QGuiApplication,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from engine.types import Document

from app import dialogs, theme
from app.detail_pane import DetailPane
from app.drop_zone import DropZone, accepts, dropped_content
from app.export import export_rows, format_for_path, tab_separated
from app.file_loader import FileLoader
from app.filter_bar import FilterBar
from app.model_box import ModelBox
from app.question_bar import QuestionBar
from app.results_table import ResultsTable
from app.session_store import SessionStore
from app.settings import Settings
from app.session import MODEL_MENU, SessionController
from app.table_model import IDLE, QUEUED, SCORING, ResultsFilter, ResultsModel, verdict_counts
from app.worker import ScoringController

FROM_SETTINGS = object()  # MainWindow(model=...) default: the model named in the settings


class MainWindow(QMainWindow):
    """Verdict's window. ``model``: a path, None for the embedded default, or (default) the
    model last used according to ``settings``. ``load`` replaces ``Classifier.load`` (tests)."""

    def __init__(
        self,
        settings: Settings,
        store: SessionStore,
        *,
        model: object = FROM_SETTINGS,
        load: Optional[Callable] = None,
        parent: Optional[QWidget] = None,
    ) -> None:
        super().__init__(parent)
        self.settings = settings
        self.store = store
        self.store.on_error = self._on_store_error
        self.setWindowTitle("Verdict")
        self.setAcceptDrops(True)
        self._rate = 0.0

        self.controller = ScoringController(self, load=load)
        self.loader = FileLoader(self)
        self.results = ResultsModel(self)
        self.session = SessionController(store, self.results, self.controller, self)
        self.proxy = ResultsFilter(self)
        self.proxy.setSourceModel(self.results)

        self._build_header()
        self._build_body()
        self._build_status_bar()
        self._build_actions()
        self._connect()
        self._restore_session()
        self._restore_geometry()
        self._apply_style()

        path = settings.model_path if model is FROM_SETTINGS else model
        self.controller.load_model(str(path) if path else None)
        self._notice = store.notice  # stays in the status bar, coming back after shorter messages
        self.statusBar().messageChanged.connect(self._on_status_message_changed)
        if self._notice:
            self.show_message(self._notice, 0)

    # ---------------------------------------------------------------------------------------- build
    def _build_header(self) -> None:
        self.question_bar = QuestionBar()
        self.question_bar.set_recent(self.settings.recent_questions)

        self.model_box = ModelBox(lambda: self.settings.last_directory)
        self.model_label = self.model_box.label

        header = QWidget()
        header.setObjectName("Header")
        layout = QHBoxLayout(header)
        layout.setContentsMargins(14, 10, 14, 6)
        layout.setSpacing(18)
        layout.addWidget(self.question_bar, 1)
        layout.addWidget(self.model_box, 0)
        self._header = header

    def _build_body(self) -> None:
        self.drop_zone = DropZone()

        self.filter_bar = FilterBar()
        self.search = self.filter_bar.search
        self.filter_buttons = self.filter_bar.buttons

        self.table = ResultsTable(self.results, self.proxy)

        self.table_area = QWidget()
        left = QVBoxLayout(self.table_area)
        left.setContentsMargins(14, 6, 6, 8)
        left.setSpacing(8)
        left.addWidget(self.drop_zone)
        left.addWidget(self.filter_bar)
        left.addWidget(self.table, 1)

        self.detail = DetailPane()
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.table_area)
        self.splitter.addWidget(self.detail)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setChildrenCollapsible(False)

        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self._header)
        layout.addWidget(self.splitter, 1)
        self.setCentralWidget(central)

    def _build_status_bar(self) -> None:
        status = self.statusBar()
        status.setSizeGripEnabled(False)
        self.progress = QProgressBar()
        self.progress.setFixedWidth(180)
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(10)
        self.progress_label = QLabel()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop scoring (Esc)")
        status.addPermanentWidget(self.progress_label)
        status.addPermanentWidget(self.progress)
        status.addPermanentWidget(self.cancel_button)
        self._show_busy(False)

    def _action(self, text: str, slot: Callable, shortcuts: Iterable = (), tip: str = "",
                context: Qt.ShortcutContext = Qt.ShortcutContext.WindowShortcut, widget: Optional[QWidget] = None) -> QAction:
        action = QAction(text, widget or self)
        keys: list[QKeySequence] = []
        for s in shortcuts:
            keys += QKeySequence.keyBindings(s) if isinstance(s, QKeySequence.StandardKey) else [QKeySequence(s)]
        action.setShortcuts(keys)
        action.setShortcutContext(context)
        if tip:
            action.setStatusTip(tip)
        action.triggered.connect(slot)
        (widget or self).addAction(action)
        return action

    def _build_actions(self) -> None:
        std = QKeySequence.StandardKey
        on_table = Qt.ShortcutContext.WidgetWithChildrenShortcut
        self.add_files_action = self._action("Add Files…", self.choose_files, [std.Open])
        self.add_folder_action = self._action("Add Folder…", self.choose_folder, ["Ctrl+Shift+O"])
        self.export_action = self._action("Export Results…", self.choose_export, [std.Save, "Ctrl+E"])
        self.close_action = self._action("Close Window", self.close, [std.Close])
        self.quit_action = self._action("Quit Verdict", QApplication.quit, [std.Quit])
        self.quit_action.setMenuRole(QAction.MenuRole.QuitRole)
        self.copy_action = self._action("Copy Rows", self.copy_selected, [std.Copy], context=on_table, widget=self.table)
        self.paste_action = self._action("Paste as Document", self.paste, [std.Paste])
        self.select_all_action = self._action("Select All", self.table.selectAll, [std.SelectAll], context=on_table,
                                              widget=self.table)
        delete_keys = [std.Delete, "Backspace", "Ctrl+Backspace"]
        self.remove_action = self._action("Remove Selected Documents", self.remove_selected, delete_keys,
                                          context=on_table, widget=self.table)
        self.find_action = self._action("Find", self._focus_search, [std.Find])
        self.rescore_action = self._action("Ask Again", self.question_bar.submit, ["Ctrl+R"],
                                           tip="Score every document for every question")
        self.add_question_action = self._action("Add Question", self.question_bar.add_question, ["Ctrl+Shift+N"])
        self.cancel_action = self._action("Cancel Scoring", self.cancel, [std.Cancel])
        self.label_yes_action = self._action("Label Yes", lambda: self._label_current("yes"), ["Ctrl+Y"],
                                             context=on_table, widget=self.table)
        self.label_no_action = self._action("Label No", lambda: self._label_current("no"), ["Ctrl+Shift+Y"],
                                            context=on_table, widget=self.table)

        menus = self.menuBar()
        file_menu = menus.addMenu("&File")
        for a in (self.add_files_action, self.add_folder_action, None, self.export_action, None):
            file_menu.addAction(a) if a else file_menu.addSeparator()
        file_menu.addMenu(self.model_box.menu)
        file_menu.addSeparator()
        file_menu.addAction(self.close_action)
        file_menu.addAction(self.quit_action)
        edit_menu = menus.addMenu("&Edit")
        for a in (self.copy_action, self.paste_action, self.select_all_action, None, self.remove_action, None,
                  self.find_action):
            edit_menu.addAction(a) if a else edit_menu.addSeparator()
        score_menu = menus.addMenu("&Scoring")
        for a in (self.rescore_action, self.add_question_action, self.cancel_action, None,
                  self.label_yes_action, self.label_no_action):
            score_menu.addAction(a) if a else score_menu.addSeparator()
        view_menu = menus.addMenu("&View")
        appearance = view_menu.addMenu("Appearance")
        self.scheme_group = QActionGroup(self)
        self.scheme_actions: dict[str, QAction] = {}
        for scheme, label in (("system", "Follow System"), ("light", "Light"), ("dark", "Dark")):
            action = QAction(label, self, checkable=True)
            action.setChecked(self.settings.color_scheme == scheme)
            action.triggered.connect(lambda checked, s=scheme: self.set_color_scheme(s))
            self.scheme_group.addAction(action)
            appearance.addAction(action)
            self.scheme_actions[scheme] = action

    def _connect(self) -> None:
        qb = self.question_bar
        qb.questionsSubmitted.connect(self._on_questions_submitted)
        qb.questionRemoved.connect(self._on_question_removed)
        qb.activeChanged.connect(self._on_active_changed)
        self.drop_zone.pathsDropped.connect(self.add_paths)
        self.drop_zone.textDropped.connect(self.add_text)
        self.drop_zone.addFilesClicked.connect(self.choose_files)
        self.loader.loaded.connect(self._on_files_loaded)
        self.loader.busyChanged.connect(self._on_loader_busy)
        self.filter_bar.searchChanged.connect(self._on_search)
        self.filter_bar.verdictFilterChosen.connect(self.set_verdict_filter)
        self.table.selectionModel().currentRowChanged.connect(self._on_current_changed)
        self.detail.labelChosen.connect(self.session.set_label)
        self.cancel_button.clicked.connect(self.cancel)
        self.model_box.modelChosen.connect(self.session.open_model)
        c = self.controller
        c.modelLoading.connect(self.model_box.show_loading)
        c.modelReady.connect(self._on_model_ready)
        c.progressChanged.connect(self._on_progress)
        c.busyChanged.connect(self._on_busy)
        s = self.session
        s.message.connect(self.show_message)
        s.detailChanged.connect(self._on_detail_changed)
        s.rowsChanged.connect(self._after_rows_changed)
        s.modelFailed.connect(self._on_model_failed)
        self._counts_timer = QTimer(self)
        self._counts_timer.setSingleShot(True)
        self._counts_timer.setInterval(120)
        self._counts_timer.timeout.connect(self._update_counts)
        for signal in (self.results.rowsInserted, self.results.rowsRemoved, self.results.dataChanged,
                       self.results.modelReset, self.proxy.layoutChanged, self.proxy.rowsInserted,
                       self.proxy.rowsRemoved):
            signal.connect(self._schedule_counts)

    # ---------------------------------------------------------------------------------------- session
    def _restore_session(self) -> None:
        self.question_bar.set_questions(*self.session.restore())

    def _restore_geometry(self) -> None:
        geometry = self.settings.window_geometry
        if geometry.isEmpty() or not self.restoreGeometry(geometry):
            self.resize(1280, 800)
        state = self.settings.splitter_state
        if state.isEmpty() or not self.splitter.restoreState(state):
            self.splitter.setSizes([900, 420])

    def _save_geometry(self) -> None:
        self.settings.window_geometry = self.saveGeometry()
        self.settings.splitter_state = self.splitter.saveState()
        self.settings.sync()

    # ---------------------------------------------------------------------------------------- documents
    @Slot(list)
    def add_paths(self, paths: Sequence[str | os.PathLike]) -> None:
        """Read files and folders (recursively) on the loader thread, then add and score them."""
        paths = [os.fspath(p) for p in paths if os.fspath(p)]
        if not paths:
            return
        self.settings.last_directory = str(Path(paths[0]).parent)
        self.loader.load(paths)

    @Slot(str)
    def add_text(self, text: str) -> Optional[int]:
        """Pasted or dropped text becomes a document; returns its key."""
        return self.session.add_text(text)

    def add_documents(self, items: Sequence[tuple[str, Document]]) -> list[int]:
        """Add (display name, document) pairs as rows, save them, and score them."""
        return self.session.add_documents(items)

    @Slot(object)
    def _on_files_loaded(self, items: list) -> None:
        if items:
            self.add_documents(items)
        else:
            self.show_message("No documents found there (hidden, unsupported and system files are skipped)")

    @Slot(bool)
    def _on_loader_busy(self, busy: bool) -> None:
        if busy:
            self.show_message("Reading files…", 0)

    def remove_selected(self) -> None:
        """Remove the selected documents from the session."""
        keys = self.selected_keys()
        if self.detail.key in keys:
            self.detail.show_row(None, [], 0)
        self.session.remove_documents(keys)

    def paste(self) -> None:
        """The clipboard as a document (text), or the files it holds."""
        mime = QGuiApplication.clipboard().mimeData()
        if mime is None:
            return
        paths, text = dropped_content(mime)
        if paths:
            self.add_paths(paths)
        elif text.strip():
            self.add_text(text)

    def _after_rows_changed(self) -> None:
        has_rows = bool(self.results.rows)
        self.drop_zone.set_compact(has_rows)
        self.table.setVisible(has_rows)
        self.filter_bar.setVisible(has_rows)
        self._counts_timer.start()

    # ---------------------------------------------------------------------------------------- questions
    @Slot(list, int)
    def _on_questions_submitted(self, questions: list[str], active: int) -> None:
        if questions:
            self.settings.add_recent_question(questions[active])
        self.question_bar.set_recent(self.settings.recent_questions)
        self.session.submit_questions(questions, active)
        self.proxy.refresh()

    @Slot(list, int)
    def _on_question_removed(self, questions: list[str], active: int) -> None:
        self.session.remove_question(questions, active)
        self.proxy.refresh()

    @Slot(int)
    def _on_active_changed(self, active: int) -> None:
        self.session.set_active(active)
        self.proxy.refresh()
        self._counts_timer.start()

    # ---------------------------------------------------------------------------------------- scoring
    def rescore_all(self) -> None:
        """Score every readable document again, for every question."""
        self.session.rescore_all()

    def cancel(self) -> None:
        """Stop scoring; documents not scored yet say so."""
        self.session.cancel()

    @Slot(int, int, float)
    def _on_progress(self, done: int, total: int, rate: float) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        speed = f" · {rate:.1f} documents/s" if rate > 0 else ""
        self.progress_label.setText(f"{done:,} of {total:,} scored{speed}")
        self._rate = rate

    @Slot(bool)
    def _on_busy(self, busy: bool) -> None:
        self._show_busy(busy)
        if not busy:
            self.show_message(self.session.summary(self._rate))

    def _show_busy(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        self.progress_label.setVisible(busy)
        self.cancel_button.setVisible(busy)

    # ---------------------------------------------------------------------------------------- model
    def open_model(self, path: Optional[str]) -> None:
        """Switch to another model (None: the embedded default); the documents are scored again."""
        self.session.open_model(path)

    @Slot(str, str)
    def _on_model_ready(self, name: str, path: str) -> None:
        self.model_box.show_model(name, path)
        self.settings.model_path = path or None

    @Slot(str, str, str)
    def _on_model_failed(self, path: str, reason: str, still_in_use: str) -> None:
        self.model_box.show_model(still_in_use, self.controller.model_path if still_in_use else "")
        what = Path(path).name if path else "the default model"
        keeps = f"Verdict keeps using {still_in_use}." if still_in_use else "No model is loaded."
        dialogs.show_error(
            self,
            "Could not load the model",
            f"Verdict could not load {what}.",
            f"{reason}\n\nChoose an MLX model folder (with config.json and .safetensors files) or a .gguf "
            f"file with {MODEL_MENU}. {keeps}",
        )

    # ---------------------------------------------------------------------------------------- labels
    def set_label(self, key: int, question: str, label: Optional[str]) -> None:
        """Record the right answer to ``question`` for document ``key`` ('yes', 'no' or None)."""
        self.session.set_label(key, question, label)

    def refit_pending(self, question: str) -> bool:
        """True while a refit of ``question``'s calibrator waits for labels to settle or runs."""
        return self.session.refit_pending(question)

    def _label_current(self, label: str) -> None:
        if self.detail.key is not None:
            self.session.toggle_label(self.detail.key, label)

    # ---------------------------------------------------------------------------------------- table
    def selected_keys(self) -> list[int]:
        """Keys of the selected rows, in the order shown."""
        return self.table.selected_keys()

    def select_keys(self, keys: Iterable[int]) -> None:
        """Select these documents' rows (the first becomes current and is shown in the detail pane)."""
        self.table.select_keys(keys)

    def copy_selected(self) -> None:
        """The selected rows, as shown, as tab-separated text (pastes into a spreadsheet)."""
        keys = self.selected_keys()
        if not keys:
            return
        QGuiApplication.clipboard().setText(tab_separated(self.table.rows_as_text(keys)))
        self.show_message(f"Copied {len(keys)} row{'s' if len(keys) != 1 else ''}")

    def set_verdict_filter(self, verdict: str) -> None:
        """Show only rows whose active-question verdict is ``verdict`` ('all' shows everything)."""
        self.proxy.set_verdict_filter(verdict)
        self.filter_bar.set_verdict_filter(verdict)
        self._counts_timer.start()

    @Slot(str)
    def _on_search(self, text: str) -> None:
        self.proxy.set_search_text(text)
        self._counts_timer.start()

    def _focus_search(self) -> None:
        self.search.setFocus()
        self.search.selectAll()

    def _schedule_counts(self, *args) -> None:
        """Recount the filter buttons soon (once for a burst of verdicts, not once per verdict)."""
        self._counts_timer.start()

    @Slot()
    def _update_counts(self) -> None:
        questions = self.results.questions
        active = questions[self.results.active_question] if questions else None
        counts = verdict_counts(self.results.rows, active)
        self.filter_bar.show_counts(counts, self.proxy.rowCount(), self.proxy.verdict_filter)

    @Slot(QModelIndex, QModelIndex)
    def _on_current_changed(self, current: QModelIndex, previous: QModelIndex) -> None:
        self._refresh_detail(current)

    def _refresh_detail(self, current: Optional[QModelIndex] = None) -> None:
        if current is None:
            row = self.results.row_for_key(self.detail.key) if self.detail.key is not None else None
        elif current.isValid():
            row = self.results.rows[self.proxy.mapToSource(current).row()]
        else:
            row = None
        notes = self.session.calibration_notes() if row is not None else {}
        self.detail.show_row(row, self.results.questions, self.results.active_question, notes)

    @Slot(object)
    def _on_detail_changed(self, key: Optional[int]) -> None:
        if key is None or key == self.detail.key:
            self._refresh_detail()

    # ---------------------------------------------------------------------------------------- files
    def choose_files(self) -> None:
        paths = dialogs.choose_files(self, self.settings.last_directory)
        if paths:
            self.add_paths(paths)

    def choose_folder(self) -> None:
        path = dialogs.choose_folder(self, self.settings.last_directory)
        if path:
            self.add_paths([path])

    def choose_export(self) -> None:
        suggested = str(Path(self.settings.last_directory or Path.home()) / "verdicts.csv")
        path, fmt = dialogs.choose_export_path(self, suggested)
        if path:
            self.export_results(path, fmt)

    def export_results(self, path: str | os.PathLike, fmt: Optional[str] = None) -> int:
        """Write the results (CLI fields) to ``path`` as CSV or JSONL (from the suffix by default).
        Returns the number of result rows written (0 on failure, with a status bar message)."""
        fmt = fmt or format_for_path(path)
        try:
            count = export_rows(path, self.results.rows, self.results.questions, fmt)
        except OSError as exc:
            self.show_message(f"Could not export to {path}: {exc.strerror or exc}", 0)
            return 0
        self.settings.last_directory = str(Path(path).parent)
        unscored = sum(1 for r in self.results.rows if r.status in (IDLE, QUEUED, SCORING))
        extra = f" ({unscored} documents not scored yet were left out)" if unscored else ""
        self.show_message(f"Exported {count:,} results to {Path(path).name}{extra}")
        return count

    # ---------------------------------------------------------------------------------------- misc
    def show_message(self, text: str, timeout_ms: int = 8000) -> None:
        self.statusBar().showMessage(text, timeout_ms)

    def _on_status_message_changed(self, text: str) -> None:
        if not text and self._notice:
            QTimer.singleShot(0, lambda: self.statusBar().currentMessage() or self.show_message(self._notice, 0))

    def _on_store_error(self, message: str) -> None:
        self._notice = message
        self.show_message(message, 0)

    def set_color_scheme(self, scheme: str) -> None:
        """'system', 'light' or 'dark'; remembered in the settings."""
        self.settings.color_scheme = scheme
        self.scheme_actions[scheme].setChecked(True)
        app = QApplication.instance()
        if isinstance(app, QGuiApplication):
            theme.apply_color_scheme(app, scheme)
        self._apply_style()

    def _apply_style(self) -> None:
        self.setStyleSheet(theme.stylesheet(QGuiApplication.palette()))
        self._refresh_detail()

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.ApplicationPaletteChange:
            QTimer.singleShot(0, self._apply_style)  # e.g. macOS switched to dark mode

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if accepts(event.mimeData()):
            event.acceptProposedAction()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        if accepts(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths, text = dropped_content(event.mimeData())
        if paths:
            self.add_paths(paths)
        elif text.strip():
            self.add_text(text)
        event.acceptProposedAction()

    def closeEvent(self, event: QCloseEvent) -> None:
        self._save_geometry()
        self.controller.shutdown()
        self.loader.shutdown()
        self.store.close()
        super().closeEvent(event)

    def sizeHint(self) -> QSize:
        return QSize(1280, 800)
