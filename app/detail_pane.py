"""The selected document: per question a sentence saying the answer, how sure it is and what it
rests on (and, when the model thought before answering, what it wrote), a Yes/No control to label the right answer (kept for calibration), the numbers under a
collapsed Details; then the text with the deciding passage highlighted. The pane scrolls."""
from __future__ import annotations

import html
import math
from typing import Mapping, Optional, Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (
    QButtonGroup,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QTextEdit,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from engine.confidence.calibrate import DEFAULT_BAND
from engine.types import Verdict

from app import theme
from app.table_model import ERROR, DocumentRow, confidence, plain_answer, status_text


def lead_sentence(verdict: Optional[Verdict], basis: str) -> str:
    """The answer in one sentence: what it is, how sure, and what it rests on."""
    if verdict is None or not verdict.ok:
        return ""
    sure = confidence(verdict)
    where = " The highlighted passage decided it." if verdict.windows > 1 and verdict.window_span else ""
    if math.isnan(sure):
        p = verdict.probability
        # Outside the usual band only when a wider one applies: the general probe before labels.
        lean = ("could go either way" if not math.isfinite(verdict.margin) or abs(verdict.margin) < DEFAULT_BAND
                else f"leans {'yes' if p > 0.5 else 'no'}, but not reliably enough to call without labels")
        return (f"Uncertain: this {lean} (a {p:.0%} chance of yes), going by {basis}. "
                f"Your label here teaches it the most.{where}")
    how = "Sure" if sure >= 0.9 else "Fairly sure" if sure >= 0.8 else "Leaning that way" if sure >= 0.5 else "Unsure"
    return f"{plain_answer(verdict)}. {how}, going by {basis}.{where}"


def _num(x: float, fmt: str) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


class QuestionResult(QFrame):
    """One question's verdict for the shown document, its numbers, and the label buttons."""

    labelChosen = Signal(str, object)  # question, 'yes' / 'no' / None

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("QuestionResult")
        self.question = ""
        # Every label says whether it holds markup: Qt guesses from the text otherwise, and a name
        # such as "Sam's invoice.txt", escaped for markup, would show as "Sam&#x27;s invoice.txt".
        self.title = QLabel()
        self.title.setTextFormat(Qt.TextFormat.RichText)
        self.title.setWordWrap(True)
        self.title.setObjectName("ResultQuestion")
        self.chip = QLabel()
        self.chip.setTextFormat(Qt.TextFormat.PlainText)
        self.chip.setObjectName("Chip")
        self.chip.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.sentence = QLabel()
        self.sentence.setTextFormat(Qt.TextFormat.PlainText)
        self.sentence.setWordWrap(True)
        self.sentence.setObjectName("ResultSentence")
        self.reasoning = QLabel()  # what the model wrote before answering (Verdict.reasoning)
        self.reasoning.setTextFormat(Qt.TextFormat.RichText)
        self.reasoning.setObjectName("Muted")
        self.reasoning.setWordWrap(True)
        self.reasoning.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details_button = QToolButton()
        self.details_button.setObjectName("DetailsToggle")
        self.details_button.setText("Details")
        self.details_button.setCheckable(True)
        self.details_button.setArrowType(Qt.ArrowType.RightArrow)
        self.details_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.details_button.setAutoRaise(True)
        self.details_button.toggled.connect(self._show_details)
        self.numbers = QLabel()
        self.numbers.setTextFormat(Qt.TextFormat.RichText)
        self.numbers.setObjectName("ResultNumbers")
        self.numbers.setWordWrap(True)
        self.numbers.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.calibration = QLabel()
        self.calibration.setTextFormat(Qt.TextFormat.RichText)
        self.calibration.setObjectName("Muted")
        self.calibration.setWordWrap(True)
        self.calibration.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # a segmented control: two halves of one button, the chosen one filled and ticked
        self.yes_button = QPushButton("Yes")
        self.no_button = QPushButton("No")
        self._segments = QButtonGroup(self)
        self._segments.setExclusive(False)  # clicking the chosen half again clears the label
        for button, label in ((self.yes_button, "yes"), (self.no_button, "no")):
            button.setCheckable(True)
            button.setObjectName(f"Label{label.capitalize()}")
            button.setToolTip(f"Your answer: “{label}” (Y / N). 2+ yes and 2+ no labels calibrate this question")
            button.clicked.connect(lambda checked, label=label: self._on_clicked(label, checked))
            self._segments.addButton(button)
        label_row = QHBoxLayout()
        label_row.setSpacing(0)
        caption = QLabel("Your answer:")
        caption.setObjectName("Muted")
        label_row.addWidget(caption)
        label_row.addSpacing(8)
        label_row.addWidget(self.yes_button)
        label_row.addWidget(self.no_button)
        label_row.addStretch(1)
        label_row.addWidget(self.details_button)
        head = QHBoxLayout()
        head.addWidget(self.title, 1)
        head.addWidget(self.chip, 0, Qt.AlignmentFlag.AlignTop)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 8, 10, 8)
        layout.setSpacing(4)
        layout.addLayout(head)
        layout.addWidget(self.sentence)
        layout.addWidget(self.reasoning)
        layout.addLayout(label_row)
        layout.addWidget(self.numbers)
        layout.addWidget(self.calibration)
        self._show_details(False)

    def show_result(self, number: int, question: str, verdict: Optional[Verdict], label: Optional[str],
                    failed: Optional[str], active: bool, calibration: Sequence[str] = (), basis: str = "",
                    stale: bool = False) -> None:
        """``calibration``: sentences on the calibrator behind this question's verdicts; ``basis``:
        what they rest on, in words; ``stale``: the verdict is an old one being replaced."""
        self.question = question
        self.setProperty("active", active)
        self.style().unpolish(self)
        self.style().polish(self)
        self.title.setText(f"<b>Q{number}</b>&nbsp; {html.escape(question)}")
        kind = "error" if failed or (verdict and verdict.error) else verdict.verdict if verdict else ""
        if kind:
            chip = theme.chip_colors(kind, self.palette())
            self.chip.setText("Error" if kind == "error" else plain_answer(verdict))
            self.chip.setStyleSheet(
                f"background: {chip.background.name()}; color: {chip.foreground.name()};"
                "border-radius: 9px; padding: 2px 12px; font-weight: 600;"
            )
            self.chip.show()
        else:
            self.chip.hide()
        sentence = lead_sentence(verdict, basis or "the model alone") if not failed else ""
        if stale and sentence:
            sentence = "Being asked again; this is the earlier answer. " + sentence
        if failed or (verdict and verdict.error):
            sentence = failed or verdict.error or ""
            self.numbers.setText("")
        elif verdict is None:
            sentence = "Not scored yet"
            self.numbers.setText("")
        else:
            calibrated = verdict.margin
            raw = verdict.raw_margin  # NaN: scored without the model's own answer (shown as –)
            windows = f" · {verdict.windows} windows" if verdict.windows > 1 else ""
            self.numbers.setText(  # plain words first; the technical terms and exact numbers in the tooltip
                f"Chance of yes <b>{_num(verdict.probability, '.0%')}</b> · leans {_num(calibrated, '+.2f')}"
                f" (the model alone {_num(raw, '+.2f')}) · it answered yes or no with "
                f"{_num(verdict.label_mass, '.0%')} of its weight · {verdict.tokens:,} tokens read{windows}"
            )
            self.numbers.setToolTip(
                f"P(yes) {_num(verdict.probability, '.3f')} · log-odds {_num(calibrated, '+.3f')} · "
                f"raw margin {_num(raw, '+.3f')} · label mass {_num(verdict.label_mass, '.3f')}\n"
                "Chance of yes: P(yes), calibrated. Leans: its log-odds (0 is even). The model alone: the "
                "raw margin, log P(yes) − log P(no) of the answer's first token, before calibration. "
                "Yes or no with … of its weight: the label mass, P(yes forms) + P(no forms); low means "
                "the model wanted to say something else."
            )
        self.sentence.setText(sentence)
        thought = verdict.reasoning if verdict is not None and verdict.ok and not failed else None
        self.reasoning.setText(f"The model thought it over first: <i>“{html.escape(thought)}”</i>" if thought else "")
        self.reasoning.setVisible(bool(thought))
        self.calibration.setText("<br>".join(html.escape(line) for line in calibration))
        self._show_details(self.details_button.isChecked())
        self._show_label(label)

    def _show_details(self, shown: bool) -> None:
        self.details_button.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)
        self.numbers.setVisible(shown and bool(self.numbers.text()))
        self.calibration.setVisible(shown and bool(self.calibration.text()))

    def _show_label(self, label: Optional[str]) -> None:
        for button, value in ((self.yes_button, "yes"), (self.no_button, "no")):
            button.setChecked(label == value)
            button.setText(("✓ " if label == value else "") + value.capitalize())

    def _on_clicked(self, label: str, checked: bool) -> None:
        chosen = label if checked else None
        self._show_label(chosen)
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
        self.name.setTextFormat(Qt.TextFormat.RichText)
        self.name.setObjectName("DetailName")
        self.name.setWordWrap(True)
        self.name.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.source = QLabel()
        self.source.setTextFormat(Qt.TextFormat.PlainText)
        self.source.setObjectName("Muted")
        self.source.setWordWrap(True)
        self.source.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status = QLabel()
        self.status.setTextFormat(Qt.TextFormat.PlainText)
        self.status.setObjectName("Muted")
        self.status.setWordWrap(True)

        self._results_box = QWidget()
        self._results_layout = QVBoxLayout(self._results_box)
        self._results_layout.setContentsMargins(0, 0, 0, 0)
        self._results_layout.setSpacing(6)
        self._results: list[QuestionResult] = []

        self.window_note = QLabel()
        self.window_note.setObjectName("Muted")
        self.window_note.setWordWrap(True)
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
        self._results_box.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        self.scroll = QScrollArea()  # the answers scroll when the pane is short; the text has its own scrollbar
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll.setWidget(self._content)
        self.text.setMinimumHeight(120)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 10)
        layout.addWidget(self.empty, 1)
        layout.addWidget(self.scroll, 1)
        self.show_row(None, [], 0)

    @property
    def key(self) -> Optional[int]:
        """The document shown, by key (None when nothing is shown)."""
        return self._key

    def results(self) -> list[QuestionResult]:
        """The per-question blocks shown for the current document."""
        return self._results[: self._shown]

    def show_row(self, row: Optional[DocumentRow], questions: list[str], active: int,
                 calibration: Optional[Mapping[str, Sequence[str]]] = None,
                 basis: Optional[Mapping[str, str]] = None, passage: Optional[tuple] = None) -> None:
        """Show ``row`` (None: nothing selected). Cheap to call again for the same row.
        ``calibration``: per question, sentences on the calibrator in use (see app.calibration);
        ``basis``: per question, what its verdicts rest on in plain words; ``passage``: for a
        one-window answer to the active question, (number, passages, span, margin) of the
        paragraph that read alone points most to the answer, or (None, passages, None, nan) when
        none does (see app.passages)."""
        if row is None:
            self._key = None
            self.empty.show()
            self.scroll.hide()
            self.text.setPlainText("")
            return
        self.empty.hide()
        self.scroll.show()
        if row.key != self._key:
            self._key = row.key
            self.text.setPlainText(row.document.text)
        self.name.setText(f"<b>{html.escape(row.name)}</b>")
        self.source.setText(row.document.source or "Pasted text")
        notes = [status_text(row)]
        if row.status == ERROR and row.error:
            notes = [f"Error: {row.error}"]
        elif row.note:
            notes.append(row.note)
        notes += row.document.warnings
        shown = row.verdicts.get(questions[active]) if questions else None
        notes += [w for w in (shown.warnings if shown else ()) if w not in row.document.warnings]
        text_length = len(row.document.text)
        if text_length:
            notes.append(f"{text_length:,} characters")
        self.status.setText(" · ".join(notes))
        self._show_results(row, questions, active, calibration or {}, basis or {})
        self._highlight(row, questions[active] if questions else None, passage)

    def _show_results(self, row: DocumentRow, questions: list[str], active: int,
                      calibration: Mapping[str, Sequence[str]], basis: Mapping[str, str]) -> None:
        while len(self._results) < len(questions):
            result = QuestionResult()
            result.labelChosen.connect(self._on_label)
            self._results_layout.addWidget(result)
            self._results.append(result)
        for i, result in enumerate(self._results):
            if i < len(questions):
                q = questions[i]
                result.show_result(i + 1, q, row.verdicts.get(q), row.labels.get(q), row.document.error, i == active,
                                   calibration.get(q, ()), basis.get(q, ""), q in row.stale)
                result.show()
            else:
                result.hide()
        self._shown = len(questions)

    def _highlight(self, row: DocumentRow, question: Optional[str], passage: Optional[tuple] = None) -> None:
        verdict = row.verdicts.get(question) if question else None
        if verdict is not None and verdict.windows <= 1 and passage is not None and passage[0] is None:
            self.text.setExtraSelections([])
            side = "yes" if verdict.margin > 0 else "no"
            self.window_note.setText(f"No single paragraph decides it: read on its own, none of the {passage[1]} "
                                     f"points to “{side}” (headers and set phrases left out); the answer comes "
                                     "from the text as a whole")
            self.window_note.show()
            return
        if verdict is not None and verdict.windows <= 1 and passage is not None:
            number, count, (start, end), margin = passage
            side = "yes" if margin > 0 else "no"
            note = (f"Highlighted: read on its own, paragraph {number + 1} of {count} points most to “{side}” "
                    f"({1 / (1 + math.exp(-margin)):.0%} chance of yes by itself; headers and set phrases left "
                    "out); the answer is the whole text's")
        elif verdict is None or verdict.windows <= 1 or not verdict.window_span:
            self.text.setExtraSelections([])
            self.window_note.hide()
            return
        else:
            start, end = verdict.window_span
            note = (f"Highlighted: the part that decided the verdict — window {verdict.window_index + 1} of "
                    f"{verdict.windows}, characters {max(start, 0):,}–{min(end, len(row.document.text)):,}")
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
        self.window_note.setText(note)
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
