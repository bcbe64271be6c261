"""The main window: questions on top, documents and verdicts in a table, the selected
document on the right, progress in the status bar.

The window is layout and wiring. What it shows is the :class:`ResultsModel`; what to score,
labels, refits, Undo and the saved session belong to the :class:`SessionController`, which
talks to the scoring thread through the :class:`ScoringController`. Document errors are red
rows; dialogs and hand-offs to the system are in :mod:`app.dialogs`, the menus in :mod:`app.menus`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

from PySide6.QtCore import QEvent, QModelIndex, QObject, QSize, Qt, QTimer, QUrl, Slot
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDragMoveEvent, QDropEvent, QGuiApplication, QResizeEvent
from PySide6.QtWidgets import QApplication, QHBoxLayout, QLabel, QMainWindow, QSplitter, QVBoxLayout, QWidget

from engine.rows import OutputError
from engine.confidence.decide import DecisionRule
from engine.types import Document

from app import dialogs, menus, theme
from app.detail_pane import DetailPane
from app.documents import TableChoice
from app.drop_zone import DropZone, accepts, dropped_content
from app.export import export_rows, format_for_path, tab_separated, with_extension
from app.file_loader import FileLoader
from app.filter_bar import FilterBar
from app.general_probe import GeneralProbeBar, GeneralProbeOffer
from app.model_box import ModelBox
from app.preferences import PreferencesDialog
from app.question_bar import QuestionBar
from app.results_table import ResultsTable
from app.session import MODEL_MENU, SessionController, plural
from app.session_store import SessionStore
from app.settings import Settings
from app.status_area import StatusArea
from app.table_dialog import WHOLE_FILE
from app.table_export import OriginalChanged, SourceTable, add_verdict_columns, source_tables
from app.table_model import IDLE, QUEUED, SCORING, ResultsFilter, ResultsModel, verdict_counts
from app.worker import ScoringController

FROM_SETTINGS = object()  # MainWindow(model=...) default: the model named in the settings
MINIMUM_SIZE = QSize(720, 480)
DETAIL_MIN_HEIGHT = 40  # below the table (a narrow window): its name at least; the pane scrolls and the handle drags
DETAIL_MIN_WIDTH = 290  # the pane's widest row, "Your answer: Yes No  Details", and a scroll bar
SIDE_BY_SIDE_WIDTH = 960  # the table area's minimum (the filter buttons, about 630 px) beside the pane's
HELP_URL = "https://github.com/verdict-app/verdict#the-desktop-app"  # when the README is not next to the app


class MainWindow(QMainWindow):
    """Verdict's window. ``model``: a path, None for the embedded default, or (default) the
    model last used according to ``settings``. ``load`` replaces ``Classifier.load`` (tests)."""

    def __init__(self, settings: Settings, store: SessionStore, *, model: object = FROM_SETTINGS,
                 load: Optional[Callable] = None, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.store = store
        self.store.on_error = self._on_store_error
        self.setWindowTitle("Verdict")
        self.setAcceptDrops(True)
        self.setMinimumSize(MINIMUM_SIZE)
        self._preview: Optional[dialogs.Preview] = None  # the Quick Look shown, which space closes

        self.controller = ScoringController(self, load=load)
        self.loader = FileLoader(self)
        self.results = ResultsModel(self)
        self.session = SessionController(store, self.results, self.controller, self)
        self.general = GeneralProbeOffer(self.controller, self.session.open_model, self)
        self.proxy = ResultsFilter(self)
        self.proxy.setSourceModel(self.results)

        self._build()
        self.session.visible_keys = self.table.visible_keys
        menus.build(self)
        self._connect()
        self.session.rule = DecisionRule(target=settings.target_precision)
        self.question_bar.set_questions(*self.session.restore())
        self._restore_geometry()
        self._restore_view()
        self._apply_style()

        path = settings.model_path if model is FROM_SETTINGS else model
        self.controller.set_probe_only(self.settings.probe_only)
        self.controller.load_model(str(path) if path else None)
        self.status.set_notice(store.notice)
        (self.table if self.results.rows else self.drop_zone).setFocus()  # not the question box: ⌘V pastes a document

    # ---------------------------------------------------------------------------------------- build
    def _build(self) -> None:
        self.question_bar = QuestionBar()
        self.question_bar.set_recent(self.settings.recent_questions)
        self.model_box = ModelBox(lambda: self.settings.last_directory)
        self.preferences = None  # the Preferences window, once opened
        self.model_label = self.model_box.label
        header = QWidget()
        header.setObjectName("Header")
        top = QHBoxLayout(header)
        top.setContentsMargins(14, 10, 14, 6)
        top.setSpacing(18)
        top.addWidget(self.question_bar, 1)
        top.addWidget(self.model_box, 0)

        self.drop_zone = DropZone()
        self.filter_bar = FilterBar()
        self.search = self.filter_bar.search
        self.filter_buttons = self.filter_bar.buttons
        self.table = ResultsTable(self.results, self.proxy)
        self.table_area = QWidget()
        left = QVBoxLayout(self.table_area)
        left.setContentsMargins(14, 6, 6, 8)
        left.setSpacing(8)
        # the offer to fit a general probe for a model without one, its progress and outcome
        self.general_bar = GeneralProbeBar()
        left.addWidget(self.general_bar)
        left.addWidget(self.drop_zone)
        left.addWidget(self.filter_bar)
        # how the active question's calls stand, and which documents to label next
        self.guide = QLabel()
        self.guide.setObjectName("LabelingGuide")
        self.guide.setWordWrap(True)
        self.guide.setVisible(False)
        left.addWidget(self.guide)
        left.addWidget(self.table, 1)

        self.detail = DetailPane()
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.table_area)
        self.splitter.addWidget(self.detail)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setChildrenCollapsible(False)
        self.detail.setMinimumWidth(DETAIL_MIN_WIDTH)  # else a narrow window leaves it a sliver
        self.detail.setMinimumHeight(DETAIL_MIN_HEIGHT)
        self.table_area.installEventFilter(self)  # its width sets the height of its wrapped bars

        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(header)
        layout.addWidget(self.splitter, 1)
        self.setCentralWidget(central)
        self.status = StatusArea()
        self.setStatusBar(self.status)
        self.cancel_button = self.status.cancel_button

    def _connect(self) -> None:
        qb = self.question_bar
        qb.questionsSubmitted.connect(self._on_questions_submitted)
        qb.questionRemoved.connect(self._on_question_removed)
        qb.activeChanged.connect(self._on_active_changed)
        qb.documentPasted.connect(self.add_text)
        qb.hint.connect(self.show_message)
        self.drop_zone.pathsDropped.connect(self.add_paths)
        self.drop_zone.textDropped.connect(self.add_text)
        self.drop_zone.addFilesClicked.connect(self.choose_files)
        self.loader.loaded.connect(self._on_files_loaded)
        self.loader.busyChanged.connect(lambda busy: busy and self.show_message("Reading files…", 0))
        self.filter_bar.searchChanged.connect(self._on_search)
        self.filter_bar.verdictFilterChosen.connect(self.set_verdict_filter)
        self.filter_bar.labelFilterChosen.connect(self.set_label_filter)
        self.table.selectionModel().currentRowChanged.connect(self._on_current_changed)
        self.detail.labelChosen.connect(self.session.set_label)
        self.status.cancelClicked.connect(self.cancel)
        self.model_box.modelChosen.connect(self.session.open_model)
        c = self.controller
        c.modelLoading.connect(self.model_box.show_loading)
        c.modelReady.connect(self._on_model_ready)
        c.progressChanged.connect(self.status.show_progress)
        c.documentParts.connect(lambda key, done, total: self.status.show_parts(done, total))
        c.busyChanged.connect(self._on_busy)
        s = self.session
        s.message.connect(self.show_message)
        s.detailChanged.connect(self._on_detail_changed)
        s.rowsChanged.connect(self._after_rows_changed)
        s.modelFailed.connect(self._on_model_failed)
        s.questionsChanged.connect(self._on_questions_changed)
        s.guideChanged.connect(self._on_guide_changed)
        self.general.changed.connect(self._on_general_changed)
        self.general.progressChanged.connect(self.general_bar.show_progress)
        self.general_bar.fitClicked.connect(self.fit_general_probe)
        self.general_bar.cancelClicked.connect(self.general.cancel)
        self.general_bar.dismissClicked.connect(self.general.dismiss)
        self._counts_timer = QTimer(self)
        self._counts_timer.setSingleShot(True)
        self._counts_timer.setInterval(120)
        self._counts_timer.timeout.connect(self._update_counts)
        for signal in (self.results.rowsInserted, self.results.rowsRemoved, self.results.dataChanged,
                       self.results.modelReset, self.proxy.layoutChanged, self.proxy.rowsInserted,
                       self.proxy.rowsRemoved):
            signal.connect(self._counts_timer.start)

    def _restore_geometry(self) -> None:
        geometry = self.settings.window_geometry
        if geometry.isEmpty() or not self.restoreGeometry(geometry):
            self.resize(1280, 800)
        state = self.settings.splitter_state
        if state.isEmpty() or not self.splitter.restoreState(state):
            self.splitter.setSizes([900, 420])

    def _restore_view(self) -> None:
        """The sort order and selection the window had when it closed (keys of removed documents are skipped)."""
        column, order = self.settings.table_sort
        if column < self.results.columnCount():
            self.table.sortByColumn(column, order)
        known = {r.key for r in self.results.rows}
        selected = [k for k in self.settings.selected_documents if k in known]
        if selected:
            self.select_keys(selected)

    # ---------------------------------------------------------------------------------------- documents
    @Slot(list)
    def add_paths(self, paths: Sequence[str | os.PathLike]) -> None:
        """Read files and folders (recursively) on the loader thread, then add and score them."""
        paths = [os.fspath(p) for p in paths if os.fspath(p)]
        if paths:
            self.settings.last_directory = str(Path(paths[0]).parent)
            work = [self._rows_or_file(p) for p in paths]
            self.loader.load([w for w in work if w is not None])

    def _rows_or_file(self, path: str) -> object:
        """A table named directly (not found in a folder) is read one document per row: the
        columns chosen for it before, else asked (None when the user cancels)."""
        from engine.intake.table import TableError, is_table_name, open_table

        if not (is_table_name(path) and os.path.isfile(path)):
            return path
        remembered = self.settings.table_columns(path)
        if remembered is not None and not remembered["text"]:
            return path  # chosen before: the whole file as one document
        if remembered is not None:
            try:
                header = open_table(path, sheet=remembered.get("sheet")).header
            except TableError:
                header = []
            if all(c in header for c in remembered["text"] + [remembered.get("id") or remembered["text"][0]]):
                return TableChoice(path, tuple(remembered["text"]), remembered.get("id"), remembered.get("sheet"))
        try:
            table = open_table(path)
        except TableError:
            return path  # read as a file: its row says what is wrong
        choice = dialogs.choose_table_columns(self, table)
        if choice is None:
            return None
        if choice == WHOLE_FILE:
            self.settings.set_table_columns(path, [], None, None)
            return path
        self.settings.set_table_columns(path, list(choice.text_columns), choice.id_column, choice.sheet)
        return choice

    @Slot(str)
    def add_text(self, text: str) -> Optional[int]:
        """Pasted or dropped text becomes a document; returns its key."""
        return self.session.add_text(text)

    def add_documents(self, items: Sequence[tuple[str, Document]]) -> list[int]:
        """Add (display name, document) pairs as rows, save them, and score them. Documents
        already in the session are skipped unless the user chooses to add them again."""
        twice = self.session.duplicates(items)
        if not twice or dialogs.keep_duplicates(self, [items[n][0] for n in twice]):
            return self.session.add_documents(items)
        keys = self.session.add_documents([item for n, item in enumerate(items) if n not in set(twice)])
        self.show_message(f"Skipped {plural(len(twice), 'document')} already in this session"
                          + (f"; added {plural(len(keys), 'document')}" if keys else ""))
        return keys

    @Slot(object)
    def _on_files_loaded(self, items: list) -> None:
        if items:
            self.add_documents(items)
        else:
            self.show_message("No documents found there (hidden, unsupported and system files are skipped)")

    def remove_selected(self) -> None:
        """Remove the selected documents from the session (Edit ▸ Undo brings them back)."""
        keys = self.selected_keys()
        if self.detail.key in keys:
            self.detail.show_row(None, [], 0)
        self.session.remove_documents(keys)

    def new_session(self) -> None:
        """File ▸ New Session: no documents, no questions; Edit ▸ Undo brings them back."""
        self.detail.show_row(None, [], 0)
        self.session.clear()
        self.question_bar.set_questions([], 0)
        self.question_bar.editor.setFocus()

    def paste(self) -> None:
        """The clipboard as a document (text), or the files it holds."""
        mime = QGuiApplication.clipboard().mimeData()
        paths, text = dropped_content(mime) if mime is not None else ([], "")
        if paths:
            self.add_paths(paths)
        elif text.strip():
            self.add_text(text)

    def _after_rows_changed(self) -> None:
        has_rows = bool(self.results.rows)
        self.drop_zone.set_compact(has_rows)
        self.table.setVisible(has_rows)
        self.filter_bar.setVisible(has_rows)
        self.add_columns_action.setEnabled(bool(source_tables(self.results.rows)))
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

    @Slot(list, int)
    def _on_questions_changed(self, questions: list[str], active: int) -> None:
        if questions != self.question_bar.questions or active != self.question_bar.active:
            self.question_bar.set_questions(questions, active)
        self.proxy.refresh()

    @Slot(int)
    def _on_active_changed(self, active: int) -> None:
        self.session.set_active(active)
        self.proxy.refresh()
        self._counts_timer.start()

    def select_question(self, index: int) -> None:
        """Make question ``index`` (0-based) the active one (⌘1–9)."""
        if 0 <= index < len(self.question_bar.questions):
            self.question_bar.tabs.setCurrentIndex(index)

    def step_question(self, step: int) -> None:
        """The previous (-1) or next (+1) question, wrapping around (⇧⌘[ and ⇧⌘])."""
        n = len(self.question_bar.questions)
        if n:
            self.select_question((min(self.question_bar.active, n - 1) + step) % n)

    # ---------------------------------------------------------------------------------------- scoring
    def rescore_all(self) -> None:
        """Score every readable document again, for every question."""
        self.session.rescore_all()

    def cancel(self) -> None:
        """Stop scoring; answers not replaced yet come back, documents not scored say so."""
        self.session.cancel()

    @Slot(bool)
    def _on_busy(self, busy: bool) -> None:
        self.status.show_busy(busy)
        if not busy:
            self.status.show_summary(self.session.summary(self.status.rate))

    # ---------------------------------------------------------------------------------------- model
    def open_model(self, path: Optional[str]) -> None:
        """Switch to another model (None: the embedded default); the documents are scored again."""
        self.session.open_model(path)

    @Slot(str, str)
    def _on_model_ready(self, name: str, path: str) -> None:
        self.model_box.show_model(name, path)
        self.settings.model_path = path or None

    def fit_general_probe(self) -> None:
        """Fit the model's general probe (the bar above the table shows progress and Cancel)."""
        self.general.start()

    @Slot(str, str)
    def _on_general_changed(self, state: str, text: str) -> None:
        self.general_bar.show_state(state, text)
        self._hold_wrapped_heights()
        self.fit_general_action.setEnabled(self.general.available)

    @Slot(str, str, str)
    def _on_model_failed(self, path: str, reason: str, still_in_use: str) -> None:
        self.model_box.show_model(still_in_use, self.controller.model_path if still_in_use else "")
        what = Path(path).name if path else "the default model"
        keeps = f"Verdict keeps using {still_in_use}." if still_in_use else "No model is loaded."
        dialogs.show_error(self, "Could not load the model", f"Verdict could not load {what}.",
                           f"{reason}\n\nChoose an MLX model folder (with config.json and .safetensors files) or a "
                           f".gguf file with {MODEL_MENU}. {keeps}")

    # ---------------------------------------------------------------------------------------- labels
    def set_label(self, key: int, question: str, label: Optional[str]) -> None:
        """Record the right answer to ``question`` for document ``key`` ('yes', 'no' or None)."""
        self.session.set_label(key, question, label)

    def refit_pending(self, question: str) -> bool:
        """True while a refit of ``question``'s calibrator waits for labels to settle or runs."""
        return self.session.refit_pending(question)

    def label_current(self, label: str) -> None:
        """Label the shown document's answer to the active question (again: clears the label),
        then show the next document to label."""
        key = self.detail.key
        if key is not None:
            row = self.results.row_for_key(key)
            question = self.session.active_question
            clearing = row is not None and question is not None and row.labels.get(question) == label
            self.session.toggle_label(key, label)
            if not clearing:
                self._advance(key)

    def skip_current(self) -> None:
        """Leave the shown document unlabeled, not to be suggested again, and show the next one."""
        key = self.detail.key
        if key is not None:
            self.session.skip(key)
            self._advance(key)

    def _advance(self, current: int) -> None:
        following = self.session.next_uncertain(self.table.shown_keys(), current)
        if following is not None:
            self.select_keys([following])

    def set_target_precision(self, target: float) -> None:
        """Call yes or no only where the call is right with at least this probability (remembered)."""
        self.settings.target_precision = target
        if target in self.target_actions:
            self.target_actions[target].setChecked(True)  # the menu says so too (Preferences may have set it)
        self.session.set_target(target)

    def set_probe_only(self, on: bool) -> None:
        """Score from now on without the model's own answer where a probe decides (remembered)."""
        self.settings.probe_only = on
        self.controller.set_probe_only(on)

    def show_preferences(self) -> None:
        """The Preferences window (one, modeless)."""
        if self.preferences is None:
            self.preferences = PreferencesDialog(self)
        self.preferences.show()
        self.preferences.raise_()
        self.preferences.activateWindow()

    @Slot(str)
    def _on_guide_changed(self, text: str) -> None:
        self.guide.setText(text)
        self.guide.setVisible(bool(text))
        self._hold_wrapped_heights()

    def next_uncertain(self) -> None:
        """Select the unlabeled document shown that the model is least sure about."""
        key = self.session.next_uncertain(self.table.shown_keys(), self.detail.key)
        if key is None:
            self.show_message("No unlabeled answers left to look at here")
        else:
            self.select_keys([key])
            self.table.setFocus()

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
        if keys:
            QGuiApplication.clipboard().setText(tab_separated(self.table.rows_as_text(keys)))
            self.show_message(f"Copied {plural(len(keys), 'row')}")

    def quick_look(self) -> None:
        """Preview the selected document (space); space again closes the preview."""
        if self._preview is not None and self._preview.isVisible():
            self._preview.close()
            return
        row = self.results.row_for_key(self.detail.key) if self.detail.key is not None else None
        if row is not None:
            self._preview = dialogs.quick_look(self, row.name, row.document.source, row.document.text)

    def reveal(self) -> None:
        """Show the selected document's file in Finder (or the platform's file manager)."""
        row = self.results.row_for_key(self.detail.key) if self.detail.key is not None else None
        if row is None or not row.document.source:
            self.show_message("Select a document read from a file to show it in its folder")
            return
        dialogs.reveal(row.document.source)

    def set_verdict_filter(self, verdict: str) -> None:
        """Show only rows whose active-question verdict is ``verdict`` ('all' shows everything)."""
        self.proxy.set_verdict_filter(verdict)
        self.filter_bar.set_verdict_filter(verdict)
        self._counts_timer.start()

    def set_label_filter(self, which: str) -> None:
        """'any', 'labeled' or 'unlabeled' rows (labels for the active question)."""
        self.proxy.set_label_filter(which)
        self.filter_bar.set_label_filter(which)
        self._counts_timer.start()

    @Slot(str)
    def _on_search(self, text: str) -> None:
        self.proxy.set_search_text(text)
        self._counts_timer.start()

    def focus_search(self) -> None:
        self.search.setFocus()
        self.search.selectAll()

    @Slot()
    def _update_counts(self) -> None:
        counts = verdict_counts(self.results.rows, self.session.active_question)
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
        passage = self.session.passage(row.key, self.session.active_question) if row is not None else None
        self.detail.show_row(row, self.results.questions, self.results.active_question, notes,
                             self.session.basis() if row is not None else {}, passage)

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
            self.export_results(with_extension(path, fmt), fmt)

    def export_results(self, path: str | os.PathLike, fmt: Optional[str] = None) -> int:
        """Write the results to ``path``: 'wide' CSV, or the CLI's long rows as 'csv' or 'jsonl'
        (by default from the suffix). Returns the number of rows of results written (0 on failure,
        with a status bar message)."""
        fmt = fmt or format_for_path(path)
        try:
            count = export_rows(path, self.results.rows, self.results.questions, fmt)
        except OSError as exc:
            self.show_message(f"Could not export to {path}: {exc.strerror or exc}", 0)
            return 0
        self.settings.last_directory = str(Path(path).parent)
        unscored = sum(1 for r in self.results.rows if r.status in (IDLE, QUEUED, SCORING))
        extra = f" ({unscored} documents not scored yet were left out)" if unscored and fmt != "wide" else ""
        self.show_message(f"Exported {count:,} {'documents' if fmt == 'wide' else 'results'} to "
                          f"{Path(path).name}{extra}")
        return count

    def choose_add_columns(self) -> None:
        """File ▸ Add Verdict Columns to the Original: which table (when there are several), then where."""
        tables = source_tables(self.results.rows)
        if not tables:
            return
        index = 0 if len(tables) == 1 else dialogs.choose_source_table(self, [t.path for t in tables])
        if index is None:
            return
        path = dialogs.choose_table_output(self, tables[index].suggested_output())
        if path:
            self.add_verdict_columns(tables[index], path)

    def add_verdict_columns(self, table: SourceTable, path: str | os.PathLike) -> int:
        """Write ``table`` back to ``path`` with the verdict and label columns of every question;
        returns the rows written (0, with a status bar message, when nothing was)."""
        path = os.fspath(path)
        try:
            written, answered = add_verdict_columns(table, self.results.rows, self.results.questions, path)
        except (OriginalChanged, OutputError) as exc:
            self.show_message(str(exc), 0)
            return 0
        self.settings.last_directory = str(Path(path).parent)
        self.show_message(f"Wrote {plural(written, 'row')} of {table.name} to {Path(path).name}, "
                          f"{answered:,} with verdicts or labels")
        return written

    # ---------------------------------------------------------------------------------------- misc
    def show_message(self, text: str, timeout_ms: int = 8000) -> None:
        self.status.show_message(text, timeout_ms)

    def _on_store_error(self, message: str) -> None:
        self.status.set_notice(message)

    def open_help(self) -> None:
        """Help ▸ Verdict Help: the README's section on the app."""
        readme = Path(__file__).resolve().parent.parent / "README.md"
        url = QUrl.fromLocalFile(str(readme)) if readme.exists() else QUrl(HELP_URL)
        if readme.exists():
            url.setFragment("the-desktop-app")
        dialogs.open_url(url)

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
        if event.source() is not self.table and accepts(event.mimeData()):  # rows dragged out are not added again
            event.acceptProposedAction()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        if event.source() is not self.table and accepts(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        if event.source() is self.table:
            return
        paths, text = dropped_content(event.mimeData())
        if paths:
            self.add_paths(paths)
        elif text.strip():
            self.add_text(text)
        event.acceptProposedAction()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.settings.window_geometry = self.saveGeometry()
        self.settings.splitter_state = self.splitter.saveState()
        header = self.table.horizontalHeader()
        self.settings.table_sort = (header.sortIndicatorSection(), header.sortIndicatorOrder())
        self.settings.selected_documents = self.selected_keys()
        if self._preview is not None:
            self._preview.close()
        self.settings.sync()
        self.controller.shutdown()
        self.loader.shutdown()
        self.store.close()
        super().closeEvent(event)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit_splitter()

    def _fit_splitter(self) -> None:
        """Detail pane beside the table where both fit at their minimum widths, else below it:
        squeezed side by side, either would cut its text at the edge."""
        wanted = Qt.Orientation.Horizontal if self.width() >= SIDE_BY_SIDE_WIDTH else Qt.Orientation.Vertical
        if self.splitter.orientation() != wanted:
            self.splitter.setOrientation(wanted)
            length = self.splitter.width() if wanted == Qt.Orientation.Horizontal else self.splitter.height()
            self.splitter.setSizes([length * 3 // 5, length * 2 // 5])

    def _hold_wrapped_heights(self) -> None:
        """The splitter sizes the table area by its minimum, blind to word wrap: give the wrapped
        bars above the table the height their text needs at the area's width."""
        room = self.table_area.width() - 20  # the area's side margins
        for wrapped in (self.general_bar, self.guide):
            wrapped.setMinimumHeight(max(0, wrapped.heightForWidth(room)) if wrapped.isVisible() else 0)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.table_area and event.type() == QEvent.Type.Resize:
            self._hold_wrapped_heights()
        return super().eventFilter(watched, event)

    def minimumSizeHint(self) -> QSize:
        return MINIMUM_SIZE  # narrower than side by side, the detail pane goes below the table

    def sizeHint(self) -> QSize:
        return QSize(1280, 800)
