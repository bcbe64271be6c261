"""The selected document: its text (deciding window highlighted), the numbers behind each
verdict, and buttons to label the right answer (kept in the session for calibration)."""
from __future__ import annotations

import html
import math
from typing import Mapping, Optional, Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from engine.types import Verdict

from app import theme
from app.table_model import ERROR, STATUS_TEXT, DocumentRow


def _num(x: float, fmt: str) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


class QuestionResult(QFrame):
    """One question's verdict for the shown document, its numbers, and the label buttons."""

    labelChosen = Signal(str, object)  # question, 'yes' / 'no' / None

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("QuestionResult")
        self.question = ""
        self.title = QLabel()
        self.title.setWordWrap(True)
        self.title.setObjectName("ResultQuestion")
        self.chip = QLabel()
        self.chip.setObjectName("Chip")
        self.chip.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.numbers = QLabel()
        self.numbers.setObjectName("ResultNumbers")
        self.numbers.setWordWrap(True)
        self.numbers.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.calibration = QLabel()
        self.calibration.setObjectName("Muted")
        self.calibration.setWordWrap(True)
        self.calibration.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.yes_button = QPushButton("Yes")
        self.no_button = QPushButton("No")
        for button, label in ((self.yes_button, "yes"), (self.no_button, "no")):
            button.setCheckable(True)
            button.setObjectName(f"Label{label.capitalize()}")
            button.setToolTip(f"The right answer is “{label}” (2+ yes and 2+ no labels calibrate this question)")
            button.clicked.connect(lambda checked, label=label: self._on_clicked(label, checked))
        label_row = QHBoxLayout()
        label_row.setSpacing(6)
        caption = QLabel("Right answer:")
        caption.setObjectName("Muted")
        label_row.addWidget(caption)
        label_row.addWidget(self.yes_button)
        label_row.addWidget(self.no_button)
        label_row.addStretch(1)
        head = QHBoxLayout()
        head.addWidget(self.title, 1)
        head.addWidget(self.chip, 0, Qt.AlignmentFlag.AlignTop)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 8, 10, 8)
        layout.setSpacing(4)
        layout.addLayout(head)
        layout.addWidget(self.numbers)
        layout.addWidget(self.calibration)
        layout.addLayout(label_row)

    def show_result(self, number: int, question: str, verdict: Optional[Verdict], label: Optional[str],
                    failed: Optional[str], active: bool, calibration: Sequence[str] = ()) -> None:
        """``calibration``: sentences on the calibrator behind this question's verdicts."""
        self.question = question
        self.setProperty("active", active)
        self.style().unpolish(self)
        self.style().polish(self)
        self.title.setText(f"<b>Q{number}</b>&nbsp; {html.escape(question)}")
        kind = "error" if failed or (verdict and verdict.error) else verdict.verdict if verdict else ""
        if kind:
            chip = theme.chip_colors(kind, self.palette())
            self.chip.setText(theme.VERDICT_TEXT.get(kind, kind))
            self.chip.setStyleSheet(
                f"background: {chip.background.name()}; color: {chip.foreground.name()};"
                "border-radius: 9px; padding: 2px 12px; font-weight: 600;"
            )
            self.chip.show()
        else:
            self.chip.hide()
        if failed or (verdict and verdict.error):
            self.numbers.setText(html.escape(failed or verdict.error or ""))
        elif verdict is None:
            self.numbers.setText("Not scored yet")
        else:
            calibrated = verdict.margin
            raw = verdict.raw_margin if not math.isnan(verdict.raw_margin) else calibrated
            self.numbers.setText(
                f"P(yes) <b>{_num(verdict.probability, '.3f')}</b> · log-odds {_num(calibrated, '+.2f')}"
                f" · raw margin {_num(raw, '+.3f')} · label mass {_num(verdict.label_mass, '.2f')}"
                f" · {verdict.tokens:,} tokens"
                + (f" · {verdict.windows} windows" if verdict.windows > 1 else "")
            )
        self.calibration.setText("<br>".join(html.escape(line) for line in calibration))
        self.calibration.setVisible(bool(calibration))
        self.yes_button.setChecked(label == "yes")
        self.no_button.setChecked(label == "no")

    def _on_clicked(self, label: str, checked: bool) -> None:
        chosen = label if checked else None
        self.yes_button.setChecked(chosen == "yes")
        self.no_button.setChecked(chosen == "no")
        self.labelChosen.emit(self.question, chosen)


class DetailPane(QWidget):
    """Shows one :class:`DocumentRow` (or a hint when nothing is selected)."""

    labelChosen = Signal(int, str, object)  # document key, question, 'yes' / 'no' / None

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("DetailPane")
        self._key: Optional[int] = None
        self._shown = 0
        self.name = QLabel()
        self.name.setObjectName("DetailName")
        self.name.setWordWrap(True)
        self.name.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.source = QLabel()
        self.source.setObjectName("Muted")
        self.source.setWordWrap(True)
        self.source.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status = QLabel()
        self.status.setObjectName("Muted")
        self.status.setWordWrap(True)

        self._results_box = QWidget()
        self._results_layout = QVBoxLayout(self._results_box)
        self._results_layout.setContentsMargins(0, 0, 0, 0)
        self._results_layout.setSpacing(6)
        self._results: list[QuestionResult] = []

        self.window_note = QLabel()
        self.window_note.setObjectName("Muted")
        self.text = QPlainTextEdit()
        self.text.setObjectName("DocumentText")
        self.text.setReadOnly(True)
        self.text.setAcceptDrops(False)
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)

        self.empty = QLabel("Select a document to see its text, the numbers behind each verdict, and to label it.")
        self.empty.setObjectName("Muted")
        self.empty.setWordWrap(True)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)

        self._content = QWidget()
        content = QVBoxLayout(self._content)
        content.setContentsMargins(0, 0, 0, 0)
        content.setSpacing(6)
        content.addWidget(self.name)
        content.addWidget(self.source)
        content.addWidget(self.status)
        content.addWidget(self._results_box)
        content.addWidget(self.window_note)
        content.addWidget(self.text, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 10)
        layout.addWidget(self.empty, 1)
        layout.addWidget(self._content, 1)
        self.show_row(None, [], 0)

    @property
    def key(self) -> Optional[int]:
        """The document shown, by key (None when nothing is shown)."""
        return self._key

    def results(self) -> list[QuestionResult]:
        """The per-question blocks shown for the current document."""
        return self._results[: self._shown]

    def show_row(self, row: Optional[DocumentRow], questions: list[str], active: int,
                 calibration: Optional[Mapping[str, Sequence[str]]] = None) -> None:
        """Show ``row`` (None: nothing selected). Cheap to call again for the same row.
        ``calibration``: per question, sentences on the calibrator in use (see app.calibration)."""
        if row is None:
            self._key = None
            self.empty.show()
            self._content.hide()
            self.text.setPlainText("")
            return
        self.empty.hide()
        self._content.show()
        if row.key != self._key:
            self._key = row.key
            self.text.setPlainText(row.document.text)
        self.name.setText(f"<b>{html.escape(row.name)}</b>")
        self.source.setText(html.escape(row.document.source or "Pasted text"))
        notes = [STATUS_TEXT[row.status]]
        if row.status == ERROR and row.error:
            notes = [f"Error: {row.error}"]
        elif row.note:
            notes.append(row.note)
        notes += row.document.warnings
        text_length = len(row.document.text)
        if text_length:
            notes.append(f"{text_length:,} characters")
        self.status.setText(" · ".join(html.escape(n) for n in notes))
        self._show_results(row, questions, active, calibration or {})
        self._highlight(row, questions[active] if questions else None)

    def _show_results(self, row: DocumentRow, questions: list[str], active: int,
                      calibration: Mapping[str, Sequence[str]]) -> None:
        while len(self._results) < len(questions):
            result = QuestionResult()
            result.labelChosen.connect(self._on_label)
            self._results_layout.addWidget(result)
            self._results.append(result)
        for i, result in enumerate(self._results):
            if i < len(questions):
                q = questions[i]
                result.show_result(i + 1, q, row.verdicts.get(q), row.labels.get(q), row.document.error, i == active,
                                   calibration.get(q, ()))
                result.show()
            else:
                result.hide()
        self._shown = len(questions)

    def _highlight(self, row: DocumentRow, question: Optional[str]) -> None:
        verdict = row.verdicts.get(question) if question else None
        if verdict is None or verdict.windows <= 1 or not verdict.window_span:
            self.text.setExtraSelections([])
            self.window_note.hide()
            return
        start, end = verdict.window_span
        length = len(row.document.text)
        start, end = max(0, min(start, length)), max(0, min(end, length))
        selection = QTextEdit.ExtraSelection()
        fmt = QTextCharFormat()
        fmt.setBackground(theme.highlight_color(self.palette()))
        selection.format = fmt
        cursor = QTextCursor(self.text.document())
        cursor.setPosition(start)
        cursor.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
        selection.cursor = cursor
        self.text.setExtraSelections([selection])
        self.window_note.setText(
            f"Highlighted: the part that decided the verdict — window {verdict.window_index + 1} of "
            f"{verdict.windows}, characters {start:,}–{end:,}"
        )
        self.window_note.show()
        view_cursor = QTextCursor(self.text.document())
        view_cursor.setPosition(start)
        self.text.setTextCursor(view_cursor)
        self.text.centerCursor()

    def highlighted_span(self) -> Optional[tuple[int, int]]:
        """The highlighted character range, or None (for tests and accessibility)."""
        selections = self.text.extraSelections()
        if not selections:
            return None
        cursor = selections[0].cursor
        return cursor.selectionStart(), cursor.selectionEnd()

    def _on_label(self, question: str, label: Optional[str]) -> None:
        if self._key is not None:
            self.labelChosen.emit(self._key, question, label)
