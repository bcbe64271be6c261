"""The results table view: rows by document key, the selection as keys, and column widths that
fit the window (Name first; number columns are optional and hidden until asked for)."""
from __future__ import annotations

from typing import Iterable, Optional

from PySide6.QtCore import QItemSelectionModel, QMimeData, QModelIndex, Qt, QTimer, QUrl
from PySide6.QtGui import QDrag, QFont, QFontMetrics, QResizeEvent
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView

from app.delegates import ResultsDelegate, VerdictChipDelegate
from app.export import tab_separated
from app.table_model import LabelRole, ResultsFilter, ResultsModel

OPTIONAL_COLUMNS = ("Confidence", "Margin", "Tokens", "Time")  # hidden until View ▸ Columns shows them
MIN_NAME_WIDTH = 140
MAX_NAME_WIDTH = 360
MIN_QUESTION_WIDTH = 96  # the chip of "Uncertain" or "Yes · 92%"
MAX_QUESTION_WIDTH = 240
HEADER_PADDING = 12 + 18  # the section's padding (style sheet) and the sort arrow


class ResultsTable(QTableView):
    """A sortable, multi-select view of :class:`ResultsFilter` over :class:`ResultsModel`."""

    def __init__(self, results: ResultsModel, proxy: ResultsFilter, parent=None) -> None:
        super().__init__(parent)
        self.results = results
        self.proxy = proxy
        self.shown_optional: set[str] = set()
        self.setObjectName("Results")
        self.setModel(proxy)
        self.setItemDelegate(ResultsDelegate(self))
        self.setSortingEnabled(True)
        self.sortByColumn(-1, Qt.SortOrder.AscendingOrder)  # added order until a header is clicked
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setAlternatingRowColors(True)
        self.setShowGrid(False)
        self.setWordWrap(False)
        self.setTabKeyNavigation(False)  # Tab leaves the table (to the detail pane's label buttons)
        self.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.verticalHeader().hide()
        self.verticalHeader().setDefaultSectionSize(30)
        header = self.horizontalHeader()
        header.setHighlightSections(False)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        header.setStretchLastSection(False)
        header.setTextElideMode(Qt.TextElideMode.ElideRight)
        header.setMinimumSectionSize(40)
        bold = QFont(header.font())
        bold.setWeight(QFont.Weight.DemiBold)
        header.setFont(bold)  # not in the style sheet: the header elides with its own font's metrics
        self.setAcceptDrops(False)  # drops fall through to the window
        self.setDragEnabled(True)  # rows drag out (to Finder, a mail, a chat) as their files
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self._fit_timer = QTimer(self)  # one fit for a burst of changes
        self._fit_timer.setSingleShot(True)
        self._fit_timer.setInterval(0)
        self._fit_timer.timeout.connect(self.fit_columns)
        results.modelReset.connect(self.fit_columns)
        for signal in (results.headerDataChanged, results.dataChanged, results.rowsInserted):
            signal.connect(self._fit_timer.start)

    # --- dragging rows out ---------------------------------------------------------------------------
    def drag_data(self, keys: list[int]) -> QMimeData:
        """What dragging these rows carries: the files of the rows read from files, as URLs, and
        every row as shown, as tab-separated text (pasted text has no file)."""
        mime = QMimeData()
        sources = [row.document.source for key in keys
                   if (row := self.results.row_for_key(key)) is not None and row.document.source]
        mime.setUrls([QUrl.fromLocalFile(path) for path in sources])
        if keys:
            mime.setText(tab_separated(self.rows_as_text(keys)))
        return mime

    def startDrag(self, supportedActions: Qt.DropAction) -> None:
        keys = self.selected_keys()
        if keys:
            drag = QDrag(self)
            drag.setMimeData(self.drag_data(keys))
            drag.exec(Qt.DropAction.CopyAction)

    # --- selection by key ---------------------------------------------------------------------------
    def key_at(self, proxy_row: int) -> int:
        return self.results.rows[self.proxy.mapToSource(self.proxy.index(proxy_row, 0)).row()].key

    def selected_keys(self) -> list[int]:
        """Keys of the selected rows, in the order shown."""
        rows = sorted({i.row() for i in self.selectionModel().selectedRows()})
        return [self.key_at(r) for r in rows]

    def shown_keys(self) -> list[int]:
        """Keys of the rows the filters let through, in the order shown."""
        return [self.key_at(r) for r in range(self.proxy.rowCount())]

    def visible_keys(self) -> list[int]:
        """Keys of the rows on screen now (scrolled into view), top to bottom."""
        count = self.proxy.rowCount()
        if not count or not self.isVisible():
            return []
        first = self.rowAt(0)
        last = self.rowAt(max(self.viewport().height() - 1, 0))
        first = 0 if first < 0 else first
        last = count - 1 if last < 0 else last
        return [self.key_at(r) for r in range(first, last + 1)]

    def select_keys(self, keys: Iterable[int]) -> None:
        """Select these documents' rows (the first becomes current and is shown in the detail pane)."""
        selection = self.selectionModel()
        selection.clearSelection()
        flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
        first = True
        for key in keys:
            n = self.results.row_number(key)
            index = self.proxy.mapFromSource(self.results.index(n, 0)) if n is not None else QModelIndex()
            if not index.isValid():
                continue
            if first:
                selection.setCurrentIndex(index, flags)
                self.scrollTo(index)
                first = False
            else:
                selection.select(index, flags)

    def rows_as_text(self, keys: list[int]) -> list[list[str]]:
        """A header line and one line per key, the cells as shown, then the user's label for each
        question (for the clipboard)."""
        columns = range(self.results.columnCount())
        nq = len(self.results.questions)
        questions = self.results.questions
        header = ["Name", *questions] + [
            str(self.results.headerData(c, Qt.Orientation.Horizontal)) for c in columns[1 + nq:]]
        lines = [header + [f"Your label: {q}" for q in questions]]
        for key in keys:
            n = self.results.row_number(key)
            labels = self.results.rows[n].labels
            lines.append([str(self.results.data(self.results.index(n, c)) or "") for c in columns]
                         + [labels.get(q, "") for q in questions])
        return lines

    # --- columns -------------------------------------------------------------------------------------
    def set_optional_column(self, name: str, shown: bool) -> None:
        """Show or hide one of :data:`OPTIONAL_COLUMNS`."""
        (self.shown_optional.add if shown else self.shown_optional.discard)(name)
        self.fit_columns()

    def header_metrics(self) -> QFontMetrics:
        """Metrics of the header's text as drawn (the style sheet makes it semi-bold)."""
        return QFontMetrics(self.horizontalHeader().font())

    def header_text_width(self, section: int) -> int:
        """Pixels the header's full text needs, padding and sort arrow included."""
        text = str(self.results.headerData(section, Qt.Orientation.Horizontal) or "")
        return self.header_metrics().horizontalAdvance(text) + HEADER_PADDING

    def fit_columns(self) -> None:
        """Widths that fit the viewport: fixed columns get their header's width, questions share
        what is left after the Name column's minimum, and Name takes the rest."""
        header = self.horizontalHeader()
        nq = len(self.results.questions)
        hidden = {self.results.column_of(name) for name in OPTIONAL_COLUMNS if name not in self.shown_optional}
        for c in range(self.results.columnCount()):  # columns move when questions come and go
            self.setColumnHidden(c, c in hidden)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        available = max(self.viewport().width(), 1)
        fixed = 0
        for c in range(1 + nq, self.results.columnCount()):
            if not self.isColumnHidden(c):
                width = max(self.header_text_width(c), 64 if self.results.headerData(
                    c, Qt.Orientation.Horizontal) != "Confidence" else 120)
                self.setColumnWidth(c, width)
                fixed += width
        if nq:
            least = [max(MIN_QUESTION_WIDTH, self.chip_width_needed(1 + i)) for i in range(nq)]
            wanted = [max(min(self.header_text_width(1 + i), MAX_QUESTION_WIDTH), least[i]) for i in range(nq)]
            room = max(available - fixed - self.name_width_wanted(), sum(least))
            scale = min(1.0, room / sum(wanted))
            for i, width in enumerate(wanted):
                self.setColumnWidth(1 + i, max(int(width * scale), least[i]))

    def chip_width_needed(self, column: int) -> int:
        """Width for the widest chip and label badge in ``column`` (of the first 500 rows)."""
        metrics = self.header_metrics()  # chips are semi-bold too
        return max((VerdictChipDelegate.needed_width(metrics, str(self.results.index(n, column).data() or ""),
                                                     self.results.index(n, column).data(LabelRole) or "")
                    for n in range(min(len(self.results.rows), 500))), default=0)

    def name_width_wanted(self) -> int:
        """Width for the longest name (of the first 500), within MIN_NAME_WIDTH..MAX_NAME_WIDTH."""
        metrics = self.fontMetrics()
        longest = max((metrics.horizontalAdvance(r.name) for r in self.results.rows[:500]), default=0)
        return min(max(longest + 2 * 6 + 8, MIN_NAME_WIDTH), MAX_NAME_WIDTH)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self.fit_columns()

    def current_key(self) -> Optional[int]:
        index = self.currentIndex()
        return self.key_at(index.row()) if index.isValid() else None
