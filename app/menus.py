"""The window's actions, their shortcuts and the menu bar, in one place.

Shortcuts follow the macOS conventions (Qt's "Ctrl" is ⌘ there) and avoid the combinations the
system or its services take for themselves (:data:`RESERVED`, checked by the tests): Export is
⇧⌘E, questions switch with ⌘1–9 and ⇧⌘[ / ⇧⌘], a question is a tab (⌘T).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterable, Optional

from PySide6.QtCore import QPoint, Qt, QUrl
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QApplication, QMenu, QWidget

from app import dialogs
from app.options import EXAMPLES, THINK, THINK_TOKENS, THINK_UNAVAILABLE
from app.results_table import OPTIONAL_COLUMNS
from app.settings import TARGET_PRECISIONS

if TYPE_CHECKING:
    from app.window import MainWindow

# Taken system-wide on macOS (apps must not use them for something else), as Qt writes them:
# "Ctrl" is ⌘ and "Meta" is ⌃ there. From Apple's "Mac keyboard shortcuts" (support.apple.com/HT201236).
RESERVED = {
    "Ctrl+Space", "Ctrl+Tab", "Ctrl+H", "Ctrl+Alt+H", "Ctrl+M", "Ctrl+Alt+M", "Ctrl+`", "Ctrl+,",
    "Ctrl+Alt+D", "Ctrl+Meta+F", "Ctrl+Meta+Q", "Ctrl+Alt+Esc", "Ctrl+Shift+3", "Ctrl+Shift+4",
    "Ctrl+Shift+5", "Ctrl+Shift+Y", "Ctrl+Shift+L", "Ctrl+Shift+A", "Ctrl+Shift+/", "Ctrl+Shift+Q",
    "Ctrl+Meta+Space", "Meta+Space",
}

STD = QKeySequence.StandardKey
ON_TABLE = Qt.ShortcutContext.WidgetWithChildrenShortcut


def make_action(owner: QWidget, text: str, slot: Callable, shortcuts: Iterable = (), tip: str = "",
                context: Qt.ShortcutContext = Qt.ShortcutContext.WindowShortcut) -> QAction:
    """An action on ``owner`` with these shortcuts (strings or standard keys)."""
    action = QAction(text, owner)
    keys: list[QKeySequence] = []
    for s in shortcuts:
        keys += QKeySequence.keyBindings(s) if isinstance(s, QKeySequence.StandardKey) else [QKeySequence(s)]
    action.setShortcuts(keys)
    action.setShortcutContext(context)
    if tip:
        action.setStatusTip(tip)
        action.setToolTip(tip)
    action.triggered.connect(slot)
    owner.addAction(action)
    return action


def _fill(menu: QMenu, items: Iterable[Optional[QAction]]) -> None:
    for item in items:
        menu.addAction(item) if item else menu.addSeparator()


def build(w: "MainWindow") -> None:
    """Create the window's actions (as ``w.<name>_action``) and its menu bar."""
    t, qb = w.table, w.question_bar
    w.new_session_action = make_action(w, "New Session", w.new_session, [STD.New],
                                       tip="Start over: no documents, no questions (Undo brings them back)")
    w.add_files_action = make_action(w, "Add Files…", w.choose_files, [STD.Open])
    w.add_folder_action = make_action(w, "Add Folder…", w.choose_folder, ["Ctrl+Shift+O"])
    w.export_action = make_action(w, "Export Results…", w.choose_export, ["Ctrl+Shift+E"])
    w.add_columns_action = make_action(w, "Add Verdict Columns to the Original…", w.choose_add_columns,
                                       tip="Write the table the rows came from back, with each question's verdict, "
                                           "probability and label columns after its own")
    w.add_columns_action.setEnabled(False)
    w.close_action = make_action(w, "Close Window", w.close, [STD.Close])
    w.quit_action = make_action(w, "Quit Verdict", QApplication.quit, [STD.Quit])
    w.quit_action.setMenuRole(QAction.MenuRole.QuitRole)

    stack = w.session.undo_stack
    w.undo_action = stack.createUndoAction(w, "Undo")
    w.undo_action.setShortcuts(QKeySequence.keyBindings(STD.Undo))
    w.redo_action = stack.createRedoAction(w, "Redo")
    w.redo_action.setShortcuts(QKeySequence.keyBindings(STD.Redo))
    for action in (w.undo_action, w.redo_action):
        w.addAction(action)
    w.copy_action = make_action(t, "Copy Rows", w.copy_selected, [STD.Copy], context=ON_TABLE)
    w.paste_action = make_action(w, "Paste as Document", w.paste, [STD.Paste, "Ctrl+Shift+V"],
                                 tip="The clipboard's text (or files) as new documents")
    w.select_all_action = make_action(t, "Select All", t.selectAll, [STD.SelectAll], context=ON_TABLE)
    w.remove_action = make_action(t, "Remove Selected Documents", w.remove_selected,
                                  [STD.Delete, "Backspace", "Ctrl+Backspace"], context=ON_TABLE)
    w.find_action = make_action(w, "Find", w.focus_search, [STD.Find])

    w.rescore_action = make_action(w, "Ask Again", qb.submit, ["Ctrl+R"],
                                   tip="Score every document again for the questions (old answers stay until replaced)")
    w.add_question_action = make_action(w, "New Question", qb.add_question, ["Ctrl+T"])
    w.previous_question_action = make_action(w, "Previous Question", lambda: w.step_question(-1),
                                             ["Ctrl+Shift+[", "Ctrl+{"])
    w.next_question_action = make_action(w, "Next Question", lambda: w.step_question(1),
                                         ["Ctrl+Shift+]", "Ctrl+}"])
    w.question_actions = [make_action(w, f"Question {i}", lambda checked=False, i=i: w.select_question(i - 1),
                                      [f"Ctrl+{i}"]) for i in range(1, 10)]
    w.cancel_action = make_action(w, "Cancel Scoring", w.cancel, [STD.Cancel, "Ctrl+."])
    # The labeling loop: one key each, whatever has focus (a text field keeps its letters), then the
    # next document to label is shown.
    # (not ⌘Y: on Windows and Linux that is Ctrl+Y, Redo; a key two commands share fires neither)
    w.label_yes_action = make_action(w, "Label Yes", lambda: w.label_current("yes"), ["Y", "Ctrl+Alt+Y"])
    w.label_no_action = make_action(w, "Label No", lambda: w.label_current("no"), ["N", "Ctrl+Alt+N"])
    w.skip_action = make_action(w, "Skip", w.skip_current, ["S", "Ctrl+Alt+S"],
                                tip="Leave this document unlabeled and show the next one to label")
    w.next_uncertain_action = make_action(w, "Next to Label", w.next_uncertain, ["U", "Ctrl+J"],
                                          tip="The unlabeled document whose label would bring the most calls")
    w.quick_look_action = make_action(t, "Quick Look", w.quick_look, ["Space"], context=ON_TABLE)
    w.reveal_action = make_action(w, "Show in Finder" if _mac() else "Show in File Manager", w.reveal,
                                  ["Ctrl+Shift+R"])
    w.open_action = make_action(w, "Open", lambda: open_document(w),
                                tip="Open the document's file in its app (pasted text: a preview)")
    w.help_action = make_action(w, "Verdict Help", w.open_help, [STD.HelpContents])
    # ⌘, on macOS (the one use it is reserved for); Qt binds nothing to Preferences elsewhere
    w.preferences_action = make_action(w, "Preferences…", w.show_preferences,
                                       [STD.Preferences] if QKeySequence.keyBindings(STD.Preferences) else ["Ctrl+,"])
    w.preferences_action.setMenuRole(QAction.MenuRole.PreferencesRole)
    w.fit_general_action = make_action(w, "Fit General Probe for This Model", w.fit_general_probe,
                                       tip="Learn where this model's hidden state holds the answer, from the corpus "
                                           "that ships with Verdict (as `verdict models calibrate`)")
    w.fit_general_action.setEnabled(False)
    w.examples_action = _option_action(w, "Use Labeled Documents as Examples", EXAMPLES,
                                       "Show the model the documents you labeled for this question, with your "
                                       "answers, before each document (this question is scored again)")
    w.think_action = _option_action(w, "Think About the Uncertain Ones", THINK, _THINK_TIP)
    qb.set_question_actions([w.examples_action, w.think_action])
    w.session.optionsChanged.connect(lambda: sync_question_options(w))
    sync_question_options(w)

    menus = w.menuBar()
    file_menu = menus.addMenu("&File")
    _fill(file_menu, (w.new_session_action, None, w.add_files_action, w.add_folder_action, None, w.export_action,
                      w.add_columns_action, None))
    w.model_box.menu.addSeparator()
    w.model_box.menu.addAction(w.fit_general_action)
    file_menu.addMenu(w.model_box.menu)
    _fill(file_menu, (None, w.reveal_action, None, w.close_action, w.quit_action))
    _fill(menus.addMenu("&Edit"), (w.undo_action, w.redo_action, None, w.copy_action, w.paste_action,
                                   w.select_all_action, None, w.remove_action, None, w.find_action, None,
                                   w.preferences_action))  # macOS moves it to the application menu
    questions = menus.addMenu("&Questions")
    _fill(questions, (w.rescore_action, w.add_question_action, w.cancel_action, None, w.previous_question_action,
                      w.next_question_action))
    _fill(questions.addMenu("Go to Question"), w.question_actions)
    target = questions.addMenu("Call Yes or No When Right")
    target.setToolTipsVisible(True)
    w.target_group = QActionGroup(w)
    w.target_actions = {}
    for value in TARGET_PRECISIONS:
        action = QAction(f"at Least {value:.0%} of the Time", w, checkable=True)
        action.setChecked(w.settings.target_precision == value)
        action.setToolTip("A verdict says yes or no only where it is that likely right; the rest stay Uncertain")
        action.triggered.connect(lambda checked, v=value: w.set_target_precision(v))
        w.target_group.addAction(action)
        target.addAction(action)
        w.target_actions[value] = action
    _fill(questions, (None, w.label_yes_action, w.label_no_action, w.skip_action, w.next_uncertain_action, None,
                      w.examples_action, w.think_action))
    questions.setToolTipsVisible(True)
    view_menu = menus.addMenu("&View")
    _fill(view_menu, (w.quick_look_action, None))
    columns = view_menu.addMenu("Columns")
    w.column_actions = {}
    for name in OPTIONAL_COLUMNS:
        action = QAction(name, w, checkable=True)
        action.toggled.connect(lambda shown, n=name: t.set_optional_column(n, shown))
        columns.addAction(action)
        w.column_actions[name] = action
    appearance = view_menu.addMenu("Appearance")
    w.scheme_group = QActionGroup(w)
    w.scheme_actions = {}
    for scheme, label in (("system", "Follow System"), ("light", "Light"), ("dark", "Dark")):
        action = QAction(label, w, checkable=True)
        action.setChecked(w.settings.color_scheme == scheme)
        action.triggered.connect(lambda checked, s=scheme: w.set_color_scheme(s))
        w.scheme_group.addAction(action)
        appearance.addAction(action)
        w.scheme_actions[scheme] = action
    _fill(menus.addMenu("&Help"), (w.help_action,))
    t.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
    t.customContextMenuRequested.connect(lambda pos: _popup_row_menu(w, pos))


def row_menu(w: "MainWindow") -> QMenu:
    """The table rows' context menu: label, open, reveal, copy, remove (acting on the selection)."""
    menu = QMenu(w)
    yes = QAction("Label Yes", menu)
    yes.triggered.connect(lambda: _label_selected(w, "yes"))
    no = QAction("Label No", menu)
    no.triggered.connect(lambda: _label_selected(w, "no"))
    clear = QAction("Remove Label", menu)
    clear.triggered.connect(lambda: _label_selected(w, None))
    for action in (yes, no, clear):
        action.setEnabled(w.session.active_question is not None)
    _fill(menu, (yes, no, clear, None, w.open_action, w.quick_look_action, w.reveal_action, None, w.copy_action,
                 None, w.remove_action))
    return menu


def _popup_row_menu(w: "MainWindow", pos: QPoint) -> None:
    index = w.table.indexAt(pos)
    if not index.isValid():
        return
    if not w.table.selectionModel().isSelected(index):
        w.select_keys([w.table.key_at(index.row())])  # the row under the pointer, as Finder does
    row_menu(w).popup(w.table.viewport().mapToGlobal(pos))


def _label_selected(w: "MainWindow", label: Optional[str]) -> None:
    """Label every selected document's answer to the active question (one Undo step)."""
    question, keys = w.session.active_question, w.selected_keys()
    if question is None or not keys:
        return
    stack = w.session.undo_stack
    stack.beginMacro(f"Label {label.capitalize()}" if label else "Remove Label")
    for key in keys:
        w.set_label(key, question, label)
    stack.endMacro()


def open_document(w: "MainWindow") -> None:
    """Open the shown document's file in the system's app for it; pasted text gets a preview."""
    row = w.results.row_for_key(w.detail.key) if w.detail.key is not None else None
    if row is None:
        return
    if row.document.source:
        dialogs.open_url(QUrl.fromLocalFile(row.document.source))
    else:
        w.quick_look()


_THINK_TIP = (f"For the documents it is uncertain about, let the model write up to {THINK_TOKENS} tokens of "
              "reasoning before it answers (slower; this question is scored again)")


def _option_action(w: "MainWindow", text: str, name: str, tip: str) -> QAction:
    """A checkable action that sets option ``name`` of the active question."""
    action = make_action(w, text, lambda on: w.session.set_option(w.session.active_question, name, on), tip=tip)
    action.setCheckable(True)
    return action


def sync_question_options(w: "MainWindow") -> None:
    """Show the active question's options in their actions; thinking is disabled, saying why,
    when the model in use can't write before it answers."""
    question = w.session.active_question
    options = w.session.options_for(question)
    can_think = w.controller.can_think
    w.examples_action.setEnabled(question is not None)
    w.examples_action.setChecked(options.examples)
    w.think_action.setEnabled(question is not None and can_think)
    w.think_action.setChecked(options.think and can_think)
    tip = _THINK_TIP if can_think else THINK_UNAVAILABLE
    w.think_action.setToolTip(tip)
    w.think_action.setStatusTip(tip)


def _mac() -> bool:
    import sys

    return sys.platform == "darwin"
