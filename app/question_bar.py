"""The question editor: one tab per question (each a verdict column), Return to score.

Return (without Shift) asks a new question. An edited question is asked again (a rename: its
labels stay) only when the user says so: Return first asks "Ask again?", a second Return or the
Ask button confirms. Return on an unchanged question points at Ask Again rather than rescoring.
Questions longer than the command line accepts are refused with a message; text pasted into
the editor that is clearly a document (several lines, or long) becomes a document instead.
"+" opens a new question; a question from the Recent menu is added as a new one (or shown, if
already asked). A tab's context menu holds the question's options (`set_question_actions`).
"""
from __future__ import annotations

from PySide6.QtCore import QMimeData, QSize, Qt, Signal
from PySide6.QtGui import QAction, QKeyEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QMenu,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QTabBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from engine.cli.checks import MAX_QUESTION_CHARS

PLACEHOLDER = "Ask a yes/no question about every document, e.g. “Does this ask the reader to pay money?” — then press Return"
NEW_PLACEHOLDER = "Ask another yes/no question; it gets a column of its own — press Return"
DOCUMENT_PASTE_CHARS = 400  # pasted text longer than this (or of several lines) is a document, not a question


def looks_like_document(text: str) -> bool:
    """Pasted ``text`` that is clearly a document: several lines, or longer than a question gets."""
    text = text.strip()
    return "\n" in text or len(text) > DOCUMENT_PASTE_CHARS


def question_too_long(text: str) -> str:
    """Why ``text`` can't be a question (longer than the command line accepts), or ''."""
    if len(text) <= MAX_QUESTION_CHARS:
        return ""
    return (f"This question is {len(text):,} characters; questions are limited to {MAX_QUESTION_CHARS:,} "
            "(as on the command line). Shorten it, or paste long text as a document.")


class QuestionEditor(QPlainTextEdit):
    """Multi-line editor where Return submits and Shift+Return starts a new line; pasted text that
    is clearly a document is handed on (``documentPasted``) instead of inserted."""

    submitted = Signal()
    documentPasted = Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setTabChangesFocus(True)
        self.setPlaceholderText(PLACEHOLDER)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.document().setDocumentMargin(6)
        lines = 2.4
        self.setFixedHeight(int(self.fontMetrics().lineSpacing() * lines + 2 * self.frameWidth() + 14))

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not (
            event.modifiers() & Qt.KeyboardModifier.ShiftModifier
        ):
            event.accept()
            self.submitted.emit()
            return
        super().keyPressEvent(event)

    def insertFromMimeData(self, source: QMimeData) -> None:
        if source.hasText() and not source.hasUrls() and looks_like_document(source.text()):
            self.documentPasted.emit(source.text())
            return
        super().insertFromMimeData(source)


class QuestionBar(QWidget):
    """Questions as tabs over one editor. The committed list only changes on submit or remove."""

    questionsSubmitted = Signal(list, int)  # all questions, active: score everything again
    questionRemoved = Signal(list, int)  # remaining questions, active: a column goes, nothing to score
    activeChanged = Signal(int)
    documentPasted = Signal(str)  # text pasted into the editor that is a document, not a question
    hint = Signal(str)  # a sentence for the status bar (why Return did not ask, or what a paste did)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._questions: list[str] = []
        self._active = 0
        self._draft = False  # the last tab is a new question not asked yet
        self._updating = False
        self._confirming = False  # Return on an edited question asked "Ask again?"; a second Return confirms

        self.tabs = QTabBar()
        self.tabs.setObjectName("QuestionTabs")
        self.tabs.setTabsClosable(True)
        self.tabs.setExpanding(False)
        self.tabs.setDrawBase(False)
        self.tabs.setElideMode(Qt.TextElideMode.ElideRight)
        self.tabs.setUsesScrollButtons(True)
        self.tabs.currentChanged.connect(self._on_tab_changed)
        self.tabs.tabCloseRequested.connect(self._on_tab_close)
        self.tabs.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.tabs.customContextMenuRequested.connect(self._on_tab_menu)
        self.tab_menu = QMenu(self)
        self.tab_menu.setToolTipsVisible(True)

        self.add_button = QToolButton()
        self.add_button.setText("+ Question")
        self.add_button.setObjectName("AddQuestion")
        self.add_button.setToolTip("Ask another question about the same documents (its own column)")
        self.add_button.setAutoRaise(True)
        self.add_button.clicked.connect(self.add_question)

        self.recent_button = QToolButton()
        self.recent_button.setText("Recent ▾")
        self.recent_button.setToolTip("Questions you asked before: one click adds it as a new question")
        self.recent_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.recent_button.setAutoRaise(True)
        self.recent_menu = QMenu(self)
        self.recent_button.setMenu(self.recent_menu)

        self.editor = QuestionEditor()
        self.editor.submitted.connect(self._on_return)
        self.editor.textChanged.connect(self._on_text_changed)
        self.editor.documentPasted.connect(self._on_document_pasted)

        self.ask_button = QPushButton("Ask")
        self.ask_button.setObjectName("AskButton")
        self.ask_button.setDefault(True)
        self.ask_button.setToolTip("Ask this question about every document (Return); earlier answers stay until replaced")
        self.ask_button.clicked.connect(self.submit)
        self.ask_button.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.ask_button.setMinimumWidth(84)

        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.setSpacing(4)
        top.addWidget(self.tabs, 0, Qt.AlignmentFlag.AlignBottom)
        top.addWidget(self.add_button, 0, Qt.AlignmentFlag.AlignVCenter)
        top.addStretch(1)
        top.addWidget(self.recent_button)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(8)
        row.addWidget(self.editor, 1)
        row.addWidget(self.ask_button, 0, Qt.AlignmentFlag.AlignVCenter)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addLayout(top)
        layout.addLayout(row)
        self._rebuild_tabs()
        self.set_recent([])

    # --- state ------------------------------------------------------------------------------------
    @property
    def questions(self) -> list[str]:
        """The questions asked (each has a column)."""
        return list(self._questions)

    @property
    def active(self) -> int:
        """Index of the question in the editor (== len(questions) while a new one is drafted)."""
        return self._active

    def set_questions(self, questions: list[str], active: int = 0) -> None:
        """Show these questions (e.g. a restored session) without emitting anything."""
        self._questions = [q for q in questions if q.strip()]
        self._active = min(max(active, 0), max(len(self._questions) - 1, 0))
        self._draft = False
        self._rebuild_tabs()

    def set_recent(self, recent: list[str]) -> None:
        """Fill the Recent menu (most recent first)."""
        for old in self.recent_menu.actions():  # later: this may run inside one of them being triggered
            self.recent_menu.removeAction(old)
            old.deleteLater()
        for question in recent:
            label = question if len(question) <= 80 else question[:79] + "…"
            action = QAction(label, self.recent_menu)
            action.setToolTip(question)
            action.setData(question)
            action.triggered.connect(self._on_recent)
            self.recent_menu.addAction(action)
        self.recent_button.setEnabled(bool(recent))

    def set_question_actions(self, actions: list[QAction]) -> None:
        """The actions a question tab's context menu offers (they act on the active question)."""
        self.tab_menu.clear()
        self.tab_menu.addActions(actions)

    # --- actions ------------------------------------------------------------------------------------
    def submit(self) -> None:
        """Commit the editor's text as the active question and ask for scoring."""
        text = self.editor.toPlainText().strip()
        if not text:
            return
        if too_long := question_too_long(text):
            self.hint.emit(too_long)
            return
        self._on_text_changed()  # a confirmation asked for is answered
        if self._draft or not self._questions:
            if text in self._questions:  # asking the same question twice adds nothing
                self._draft = False
                self._active = self._questions.index(text)
            else:
                self._questions.append(text)
                self._active = len(self._questions) - 1
            self._draft = False
        else:
            if text in self._questions and self._questions.index(text) != self._active:
                del self._questions[self._active]
                self._active = self._questions.index(text)
            else:
                self._questions[self._active] = text
        self._rebuild_tabs()
        self.questionsSubmitted.emit(self.questions, self._active)

    def ask(self, question: str) -> None:
        """Put ``question`` in the editor (in the active tab) and submit it."""
        self.editor.setPlainText(question)
        self.submit()

    def add_question(self) -> None:
        """Open a new, empty question tab."""
        if not self._questions:
            self.editor.setFocus()
            return
        if not self._draft:
            self._draft = True
            self._active = len(self._questions)
            self._rebuild_tabs()
        self.editor.setFocus()

    def remove_question(self, index: int) -> None:
        if self._draft and index == len(self._questions):
            self._draft = False
            self._active = max(len(self._questions) - 1, 0)
            self._rebuild_tabs()
            return
        if not 0 <= index < len(self._questions):
            return
        del self._questions[index]
        self._draft = False
        if self._active >= index and self._active > 0:
            self._active -= 1
        self._active = min(self._active, max(len(self._questions) - 1, 0))
        self._rebuild_tabs()
        self.questionRemoved.emit(self.questions, self._active)

    # --- internals ------------------------------------------------------------------------------------
    def _on_return(self) -> None:
        text = self.editor.toPlainText().strip()
        if self._draft or not self._questions or self._confirming or not text:
            self.submit()
        elif text == self._questions[self._active]:
            self.hint.emit("Nothing changed in this question. To score every document again, use Ask Again (⌘R).")
        else:
            self._confirming = True
            self.ask_button.setText("Ask Again?")
            self.hint.emit(f"Ask Q{self._active + 1} again in its new words? Its answers are replaced (labels stay). "
                           "Press Return again or click Ask Again?; Undo puts the old question back.")

    def _on_text_changed(self) -> None:
        if self._confirming:
            self._confirming = False
            self.ask_button.setText("Ask")

    def _on_document_pasted(self, text: str) -> None:
        self.documentPasted.emit(text)
        lines = len(text.strip().splitlines())
        self.hint.emit(f"Pasted as a new document ({lines:,} lines, {len(text):,} characters), not into the "
                       "question: a question is a sentence.")

    def _on_recent(self) -> None:
        action = self.sender()
        if isinstance(action, QAction):
            self.add_recent(str(action.data()))

    def add_recent(self, question: str) -> None:
        """Add ``question`` as a new question and ask it; if it is asked already, show its tab."""
        if question in self._questions:
            self.tabs.setCurrentIndex(self._questions.index(question))
            return
        if self._questions:
            self.add_question()
        self.ask(question)

    def _rebuild_tabs(self) -> None:
        self._updating = True
        while self.tabs.count():
            self.tabs.removeTab(0)
        for i, question in enumerate(self._questions):
            short = question if len(question) <= 40 else question[:39].rstrip() + "…"
            self.tabs.addTab(f"Q{i + 1}  {short}")
            self.tabs.setTabToolTip(i, question)
        if self._draft:
            self.tabs.addTab("New question")
        self.tabs.setVisible(self.tabs.count() > 0)
        self.add_button.setVisible(bool(self._questions))
        if self.tabs.count():
            self.tabs.setCurrentIndex(min(self._active, self.tabs.count() - 1))
        self._show_active()
        self._updating = False

    def _show_active(self) -> None:
        self._on_text_changed()
        if self._active < len(self._questions):
            self.editor.setPlaceholderText(PLACEHOLDER)
            self.editor.setPlainText(self._questions[self._active])
        else:
            self.editor.setPlaceholderText(NEW_PLACEHOLDER if self._questions else PLACEHOLDER)
            self.editor.setPlainText("")
        cursor = self.editor.textCursor()
        cursor.movePosition(cursor.MoveOperation.End)
        self.editor.setTextCursor(cursor)

    def _on_tab_changed(self, index: int) -> None:
        if self._updating or index < 0:
            return
        if self._draft and index < len(self._questions):
            self._draft = False  # leaving an empty new question discards it
            self._active = index
            self._rebuild_tabs()
        else:
            self._active = index
            self._show_active()
        if index < len(self._questions):
            self.activeChanged.emit(index)

    def _on_tab_menu(self, pos) -> None:
        index = self.tabs.tabAt(pos)
        if 0 <= index < len(self._questions) and self.tab_menu.actions():
            self.tabs.setCurrentIndex(index)  # the menu's actions act on the active question
            self.tab_menu.popup(self.tabs.mapToGlobal(pos))

    def _on_tab_close(self, index: int) -> None:
        self.remove_question(index)

    def sizeHint(self) -> QSize:
        hint = super().sizeHint()
        return QSize(max(hint.width(), 360), hint.height())
