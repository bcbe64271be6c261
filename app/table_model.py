"""The results table: a QAbstractTableModel over a plain list of :class:`DocumentRow`.

The list is the truth; the view only mirrors it. Columns: the document's name, one verdict
column per question, then confidence, margin, tokens, time and status. Confidence and margin
follow the *active* question (the one in the question editor).
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, QSortFilterProxyModel, Qt

from engine.types import Document, Verdict

from app import theme
from app.status_area import parts_text

# Row status
QUEUED, SCORING, DONE, ERROR, IDLE = "queued", "scoring", "done", "error", "idle"
STATUS_TEXT = {QUEUED: "Queued", SCORING: "Scoring…", DONE: "Done", ERROR: "Error", IDLE: "Not scored"}

def status_text(row: "DocumentRow") -> str:
    """The row's status in words: "Scoring… 3 of 7 parts read" while a long document is read."""
    text = STATUS_TEXT[row.status]
    parts = parts_text(*row.parts) if row.status == SCORING else ""
    return f"{text} {parts}" if parts else text


# Custom roles
VerdictRole = Qt.ItemDataRole.UserRole + 1  # 'yes' / 'no' / 'uncertain' / 'error' / '' (none yet)
ProbabilityRole = Qt.ItemDataRole.UserRole + 2  # P(yes) of the verdict shown (float, nan when none)
SortRole = Qt.ItemDataRole.UserRole + 3  # numbers sort as numbers
KeyRole = Qt.ItemDataRole.UserRole + 4  # the row's document key
StatusRole = Qt.ItemDataRole.UserRole + 5
ColumnKindRole = Qt.ItemDataRole.UserRole + 6  # 'name', 'verdict', 'confidence', 'margin', ... (for painting)
StaleRole = Qt.ItemDataRole.UserRole + 7  # True: an old answer shown (dimmed) until the new one arrives
LabelRole = Qt.ItemDataRole.UserRole + 8  # the user's label for this column's question: 'yes', 'no' or ''

LIKELY_BELOW = 0.8  # a yes or no less sure than this reads "Likely yes" / "Likely no"

FIXED_AFTER = ("Confidence", "Margin", "Tokens", "Time", "Status")

Index = QModelIndex | QPersistentModelIndex


@dataclass
class DocumentRow:
    """One document in the table, with its results per question and the user's labels."""

    key: int
    name: str
    document: Document
    status: str = IDLE
    note: str = ""  # why it is not scored, shown as a tooltip
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    stale: set[str] = field(default_factory=set)  # questions whose verdict is being replaced (shown dimmed)
    parts: tuple[int, int] = (0, 0)  # while a long document is scored alone: its parts read, of

    @property
    def error(self) -> Optional[str]:
        """Why this document failed (unreadable file, or the engine's reason), or None."""
        if self.document.error:
            return self.document.error
        return next((v.error for v in self.verdicts.values() if v.error), None)

    def settle(self, questions: list[str]) -> None:
        """Status from what is known: failed, done (a verdict for every question), or not scored."""
        if self.error:
            self.status = ERROR
        elif questions and all(q in self.verdicts for q in questions):
            self.status = DONE
        else:
            self.status = IDLE


def confidence(verdict: Optional[Verdict]) -> float:
    """The probability of the answer given (P(yes) for yes, P(no) for no). nan when the answer is
    "uncertain", an error, or missing: then no percentage is shown anywhere."""
    if verdict is None or verdict.error or verdict.verdict not in ("yes", "no") or math.isnan(verdict.probability):
        return float("nan")
    return verdict.probability if verdict.verdict == "yes" else 1.0 - verdict.probability


def plain_answer(verdict: Optional[Verdict]) -> str:
    """The verdict in words, as the table, the detail pane and the clipboard all show it:
    "Yes · 92%", "Likely no · 69%", "Uncertain", "Error" ('' when not scored yet)."""
    if verdict is None:
        return ""
    if verdict.error or verdict.verdict == "error":
        return "Error"
    if verdict.verdict not in ("yes", "no"):
        return "Uncertain"
    word = verdict.verdict.capitalize()
    sure = confidence(verdict)
    if math.isnan(sure):
        return word
    if sure < 0.5:  # a recall threshold made it a yes below even odds: no percentage that reads as a "no"
        return f"Likely {word.lower()}"
    return f"{word} · {sure:.0%}" if sure >= LIKELY_BELOW else f"Likely {word.lower()} · {sure:.0%}"


def _fmt_seconds(seconds: float) -> str:
    if seconds <= 0:
        return ""
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _sortable(value: float) -> float:
    return -math.inf if value is None or math.isnan(value) else value


class ResultsModel(QAbstractTableModel):
    """Documents as rows; a verdict column per question. Edit only through the methods here."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._rows: list[DocumentRow] = []
        self._row_of: dict[int, int] = {}  # key -> row number
        self._questions: list[str] = []
        self._active = 0
        self.suggested: set[int] = set()  # keys of the documents to label next (marked in the name column)

    # --- structure ------------------------------------------------------------------------------
    @property
    def rows(self) -> list[DocumentRow]:
        """The rows, in order (do not modify the list; use the methods)."""
        return self._rows

    @property
    def questions(self) -> list[str]:
        return list(self._questions)

    @property
    def active_question(self) -> int:
        return self._active

    def question_column(self, i: int) -> int:
        return 1 + i

    def column_of(self, name: str) -> int:
        """The column of a fixed column by its header ('Name', 'Confidence', 'Status', ...)."""
        if name == "Name":
            return 0
        return 1 + len(self._questions) + FIXED_AFTER.index(name)

    def row_for_key(self, key: int) -> Optional[DocumentRow]:
        n = self._row_of.get(key)
        return None if n is None else self._rows[n]

    def row_number(self, key: int) -> Optional[int]:
        return self._row_of.get(key)

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 (Qt's signature)
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else 1 + len(self._questions) + len(FIXED_AFTER)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < self.columnCount():
            return None
        q = section - 1
        if role == Qt.ItemDataRole.DisplayRole:
            if section == 0:
                return "Name"
            if q < len(self._questions):
                text = self._questions[q]
                short = text if len(text) <= 28 else text[:27].rstrip() + "…"
                return f"Q{q + 1} · {short}" if len(self._questions) > 1 else short
            return FIXED_AFTER[q - len(self._questions)]
        if role == Qt.ItemDataRole.ToolTipRole:
            if 0 <= q < len(self._questions):
                return self._questions[q]
            if section >= 1 + len(self._questions) and self._questions:
                name = FIXED_AFTER[q - len(self._questions)]
                if name in ("Confidence", "Margin"):
                    return f"{name} of the answer to: {self._questions[self._active]}"
        return None

    # --- data -----------------------------------------------------------------------------------
    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        row = self._rows[index.row()]
        col = index.column()
        nq = len(self._questions)
        if role == KeyRole:
            return row.key
        if role == StatusRole:
            return row.status
        if role == ColumnKindRole:
            return "name" if col == 0 else "verdict" if col <= nq else FIXED_AFTER[col - 1 - nq].lower()
        failed = row.status == ERROR
        if role in (Qt.ItemDataRole.BackgroundRole, Qt.ItemDataRole.ForegroundRole) and failed:
            colors = theme.error_row_colors()
            return colors.background if role == Qt.ItemDataRole.BackgroundRole else colors.foreground
        if col == 0:
            return self._name_data(row, role)
        if 1 <= col <= nq:
            return self._verdict_data(row, self._questions[col - 1], role)
        active = row.verdicts.get(self._questions[self._active]) if self._questions else None
        name = FIXED_AFTER[col - 1 - nq]
        if name == "Confidence":
            value = confidence(active)
            if role == ProbabilityRole:
                return value
            if role == VerdictRole:
                return active.verdict if active else ""
            if role == SortRole:
                return _sortable(value)
            if role == Qt.ItemDataRole.DisplayRole:
                return "" if math.isnan(value) else f"{value:.0%}"
            if role == Qt.ItemDataRole.ToolTipRole and active:
                return plain_answer(active)
        elif name == "Margin":
            value = active.margin if active and not active.error else float("nan")
            if role == SortRole:
                return _sortable(value)
            if role == Qt.ItemDataRole.DisplayRole:
                return "" if math.isnan(value) else f"{value:+.2f}"
            if role == Qt.ItemDataRole.TextAlignmentRole:
                return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        elif name == "Tokens":
            value = active.tokens if active and active.tokens else 0
            if role == SortRole:
                return value
            if role == Qt.ItemDataRole.DisplayRole:
                return f"{value:,}" if value else ""
            if role == Qt.ItemDataRole.TextAlignmentRole:
                return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        elif name == "Time":
            seconds = sum(v.seconds for v in row.verdicts.values() if v.question in self._questions)
            if role == SortRole:
                return seconds
            if role == Qt.ItemDataRole.DisplayRole:
                return _fmt_seconds(seconds)
            if role == Qt.ItemDataRole.TextAlignmentRole:
                return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        elif name == "Status":
            if role in (Qt.ItemDataRole.DisplayRole, SortRole):
                return status_text(row)
            if role == Qt.ItemDataRole.ToolTipRole:
                return row.error if failed else (row.note or None)
        return None

    def set_suggested(self, keys: Iterable[int]) -> None:
        """Mark these documents as the ones to label next (a star before the name)."""
        keys = set(keys)
        if keys != self.suggested:
            changed = keys ^ self.suggested
            self.suggested = keys
            for key in changed:
                if key in self._row_of:
                    self._row_changed(key)

    def _name_data(self, row: DocumentRow, role: int) -> Any:
        if role == Qt.ItemDataRole.DisplayRole:
            return f"★ {row.name}" if row.key in self.suggested else row.name
        if role == SortRole:
            return row.name
        if role == Qt.ItemDataRole.ToolTipRole:
            where = row.document.source or row.name
            return f"{where}\n{row.error}" if row.status == ERROR else where
        return None

    def _verdict_data(self, row: DocumentRow, question: str, role: int) -> Any:
        verdict = row.verdicts.get(question)
        if verdict is None and row.document.error:
            kind = "error"
        else:
            kind = verdict.verdict if verdict else ""
        if role == VerdictRole:
            return kind
        if role == Qt.ItemDataRole.DisplayRole:
            if verdict is None and row.status == SCORING:
                return parts_text(*row.parts)
            return "Error" if kind == "error" else plain_answer(verdict)
        if role == StaleRole:
            return question in row.stale
        if role == LabelRole:
            return row.labels.get(question, "")
        if role == ProbabilityRole:
            return confidence(verdict)
        if role == SortRole:
            # yes before no, each by margin; errors and unscored last
            if verdict is None or verdict.error:
                return -math.inf
            return _sortable(verdict.margin)
        if role == Qt.ItemDataRole.ToolTipRole:
            parts = [question]
            if verdict is not None and verdict.error:
                parts.append(f"Error: {verdict.error}")
            elif verdict is not None:
                parts.append(plain_answer(verdict) + (" (the earlier answer: a new one is on its way)"
                                                      if question in row.stale else ""))
            elif row.document.error:
                parts.append(f"Error: {row.document.error}")
            label = row.labels.get(question)
            if label:
                parts.append(f"Your label: {label.capitalize()}")
            return "\n".join(parts)
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return (Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemNeverHasChildren
                | Qt.ItemFlag.ItemIsDragEnabled)  # rows drag out as file references (the table's drag_data)

    # --- changes ----------------------------------------------------------------------------------
    def set_questions(self, questions: list[str], active: int = 0) -> None:
        """New question columns. Verdicts for questions no longer asked are dropped."""
        self.beginResetModel()
        self._questions = list(questions)
        self._active = min(max(active, 0), max(len(questions) - 1, 0))
        for row in self._rows:
            row.verdicts = {q: v for q, v in row.verdicts.items() if q in self._questions}
            row.stale &= set(self._questions)
        self.endResetModel()

    def rename_question(self, old: str, new: str) -> None:
        """``old`` is now called ``new``: its column, verdicts (kept as stale answers until the new
        text is scored) and labels move over."""
        self.beginResetModel()
        self._questions = [new if q == old else q for q in self._questions]
        for row in self._rows:
            if old in row.verdicts:
                row.verdicts[new] = dataclasses.replace(row.verdicts.pop(old), question=new)
                row.stale.add(new)
            row.stale.discard(old)
            row.labels.pop(new, None)  # labels left from a closed question of the new text go, as in the store
            if old in row.labels:
                row.labels[new] = row.labels.pop(old)
        self.endResetModel()

    def set_active_question(self, active: int) -> None:
        """Which question the confidence and margin columns follow."""
        active = min(max(active, 0), max(len(self._questions) - 1, 0))
        if active == self._active:
            return
        self._active = active
        first = 1 + len(self._questions)
        self.headerDataChanged.emit(Qt.Orientation.Horizontal, first, first + 1)
        self._columns_changed(first, self.columnCount() - 1)

    def add_rows(self, rows: Iterable[DocumentRow]) -> None:
        rows = list(rows)
        if not rows:
            return
        first = len(self._rows)
        self.beginInsertRows(QModelIndex(), first, first + len(rows) - 1)
        for n, row in enumerate(rows, first):
            self._rows.append(row)
            self._row_of[row.key] = n
        self.endInsertRows()

    def insert_row(self, n: int, row: DocumentRow) -> None:
        """Put ``row`` back at position ``n`` (undo of a removal)."""
        n = min(max(n, 0), len(self._rows))
        self.beginInsertRows(QModelIndex(), n, n)
        self._rows.insert(n, row)
        self._row_of = {r.key: i for i, r in enumerate(self._rows)}
        self.endInsertRows()

    def remove_keys(self, keys: Iterable[int]) -> list[DocumentRow]:
        """Remove rows by key, one contiguous block at a time; return the rows removed."""
        numbers = sorted({self._row_of[k] for k in keys if k in self._row_of}, reverse=True)
        removed: list[DocumentRow] = []
        while numbers:
            last = first = numbers.pop(0)
            while numbers and numbers[0] == first - 1:
                first = numbers.pop(0)
            self.beginRemoveRows(QModelIndex(), first, last)
            removed[:0] = self._rows[first : last + 1]
            del self._rows[first : last + 1]
            self._row_of = {row.key: n for n, row in enumerate(self._rows)}
            self.endRemoveRows()
        return removed

    def clear(self) -> None:
        self.beginResetModel()
        self._rows.clear()
        self._row_of.clear()
        self.endResetModel()

    def set_verdict(self, key: int, verdict: Verdict) -> Optional[DocumentRow]:
        """Record a verdict; the row is done once every question has one. None if the row is gone
        or the question is no longer asked (a stale result)."""
        row = self.row_for_key(key)
        if row is None or verdict.question not in self._questions:
            return None
        row.verdicts[verdict.question] = verdict
        row.stale.discard(verdict.question)
        if row.error:
            row.status = ERROR
        elif all(q in row.verdicts for q in self._questions):
            row.status = DONE
        self._row_changed(key)
        return row

    def replace_verdicts(self, items: Iterable[tuple[int, Verdict]]) -> None:
        """Put new versions of existing verdicts (re-calibrated) in place: one change signal for
        the lot, statuses unchanged. Rows gone or questions no longer asked are skipped."""
        touched = False
        for key, verdict in items:
            row = self.row_for_key(key)
            if row is not None and verdict.question in self._questions:
                row.verdicts[verdict.question] = verdict
                touched = True
        if touched:
            self._columns_changed(0, self.columnCount() - 1)

    def set_parts(self, key: int, done: int, total: int) -> None:
        """Row ``key``, a long document scored alone, has ``done`` of ``total`` parts read (0, 0: no more)."""
        row = self.row_for_key(key)
        if row is not None and row.parts != (done, total):
            row.parts = (done, total)
            self._row_changed(key)

    def set_status(self, keys: Iterable[int], status: str, note: str = "") -> None:
        for key in keys:
            row = self.row_for_key(key)
            if row is not None and row.status != ERROR:
                row.status, row.note = status, note
                self._row_changed(key)

    def mark_stale(self, keys: Iterable[int], questions: Iterable[str]) -> None:
        """These rows' answers to ``questions`` are being replaced: shown dimmed until they are."""
        questions = set(questions)
        for key in keys:
            row = self.row_for_key(key)
            if row is not None and row.status != ERROR:
                row.stale |= questions & set(row.verdicts)
                row.status = QUEUED
                self._row_changed(key)

    def stop(self, keys: Iterable[int], note: str) -> None:
        """Scoring of these rows stopped: earlier answers come back (no longer dimmed); rows that
        still miss an answer say why in ``note``."""
        for key in keys:
            row = self.row_for_key(key)
            if row is None:
                continue
            row.stale.clear()
            row.settle(self._questions)
            row.note = "" if row.status == DONE else note
            self._row_changed(key)

    def clear_verdicts(self, keys: Iterable[int]) -> None:
        for key in keys:
            row = self.row_for_key(key)
            if row is not None:
                row.verdicts.clear()
                row.status = ERROR if row.document.error else IDLE
                self._row_changed(key)

    def set_label(self, key: int, question: str, label: Optional[str]) -> None:
        row = self.row_for_key(key)
        if row is None:
            return
        if label is None:
            row.labels.pop(question, None)
        else:
            row.labels[question] = label
        self._row_changed(key)

    def _row_changed(self, key: int) -> None:
        n = self._row_of[key]
        self.dataChanged.emit(self.index(n, 0), self.index(n, self.columnCount() - 1))

    def _columns_changed(self, first: int, last: int) -> None:
        if self._rows:
            self.dataChanged.emit(self.index(0, first), self.index(len(self._rows) - 1, last))


VERDICT_FILTERS = ("all", "yes", "no", "uncertain", "error")
LABEL_FILTERS = ("any", "labeled", "unlabeled")


def verdict_counts(rows: Iterable[DocumentRow], question: Optional[str]) -> dict[str, int]:
    """How many rows each verdict filter would show for ``question``."""
    counts = dict.fromkeys(VERDICT_FILTERS, 0)
    for row in rows:
        counts["all"] += 1
        if row.status == ERROR:
            counts["error"] += 1
            continue
        verdict = row.verdicts.get(question) if question else None
        if verdict is not None and verdict.verdict in ("yes", "no", "uncertain"):
            counts[verdict.verdict] += 1
    return counts


class ResultsFilter(QSortFilterProxyModel):
    """Sorting (numbers as numbers), a verdict filter on the active question, and search."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._verdict = "all"
        self._labels = "any"
        self._search = ""
        self._pattern: Optional[re.Pattern] = None
        self.setSortRole(SortRole)
        self.setDynamicSortFilter(True)
        self.setSortCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)

    @property
    def verdict_filter(self) -> str:
        return self._verdict

    def set_verdict_filter(self, verdict: str) -> None:
        """'all', 'yes', 'no', 'uncertain' or 'error' (for the active question)."""
        if verdict not in VERDICT_FILTERS:
            raise ValueError(verdict)
        self.beginFilterChange()
        self._verdict = verdict
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    @property
    def label_filter(self) -> str:
        return self._labels

    def set_label_filter(self, which: str) -> None:
        """'any', 'labeled' or 'unlabeled' (for the active question)."""
        if which not in LABEL_FILTERS:
            raise ValueError(which)
        self.beginFilterChange()
        self._labels = which
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    @property
    def search_text(self) -> str:
        return self._search

    def set_search_text(self, text: str) -> None:
        """Rows whose name or text contains ``text`` (case-insensitive)."""
        self.beginFilterChange()
        self._search = text.strip()
        # a pattern, not casefold(): no lowered copy of every document per keystroke
        self._pattern = re.compile(re.escape(self._search), re.IGNORECASE) if self._search else None
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def refresh(self) -> None:
        """Filter again (the active question changed, so the verdict filter means something else)."""
        self.beginFilterChange()
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:
        model = self.sourceModel()
        if not isinstance(model, ResultsModel) or source_row >= len(model.rows):
            return True
        row = model.rows[source_row]
        if self._verdict != "all":
            if self._verdict == "error":
                if row.status != ERROR:
                    return False
            else:
                questions = model.questions
                verdict = row.verdicts.get(questions[model.active_question]) if questions else None
                if verdict is None or verdict.verdict != self._verdict:
                    return False
        if self._labels != "any":
            questions = model.questions
            labeled = bool(questions) and questions[model.active_question] in row.labels
            if labeled != (self._labels == "labeled"):
                return False
        if self._pattern is not None:
            if not self._pattern.search(row.name) and not self._pattern.search(row.document.text):
                return False
        return True
