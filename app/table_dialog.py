"""The question a dropped table asks once: which column holds the text (and, if any, which one
names the rows), with the first rows shown so the user can see which is which."""
from __future__ import annotations

from itertools import islice
from typing import Optional

from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QFormLayout, QLabel, QPushButton,
                               QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from engine.intake.table import Record, Table

from app.documents import TableChoice

PREVIEW_ROWS = 5
ROW_NUMBERS = "Row numbers"  # the id choice that names rows `file:row N`
WHOLE_FILE = "whole file"  # the result that reads the table as one document, as before


class TableColumnsDialog(QDialog):
    """Asks for the text column (and the id column) of ``table``. After ``exec()``, ``result_choice``
    is a :class:`TableChoice`, :data:`WHOLE_FILE`, or None when cancelled."""

    def __init__(self, table: Table, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.table = table
        self.result_choice: object = None
        self.setWindowTitle(f"Rows of {table.name}")
        preview = _preview(table)

        self.preview = QTableWidget(len(preview), len(table.header), self)
        self.preview.setHorizontalHeaderLabels(table.header)
        self.preview.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        for r, record in enumerate(preview):
            for c, value in enumerate(record.cells[: len(table.header)]):
                self.preview.setItem(r, c, QTableWidgetItem("" if value is None else str(value)[:200]))
        self.preview.setVerticalHeaderLabels([str(record.number) for record in preview])

        self.text_column = QComboBox(self)
        self.text_column.addItems(table.header)
        self.text_column.setCurrentIndex(_longest_column(table, preview))
        self.id_column = QComboBox(self)
        self.id_column.addItems([ROW_NUMBERS] + table.header)

        form = QFormLayout()
        form.addRow("Text is in:", self.text_column)
        form.addRow("Rows are named by:", self.id_column)

        self.read_button = QPushButton("Read Each Row", self)
        self.whole_button = QPushButton("One Document", self)
        self.whole_button.setToolTip("Read the whole file as one document, as a text file")
        self.whole_button.setVisible(not table.is_workbook)  # a workbook is no text file
        buttons = QDialogButtonBox(self)
        buttons.addButton(self.read_button, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.addButton(self.whole_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.read_button.setDefault(True)
        self.read_button.clicked.connect(self._read_rows)
        self.whole_button.clicked.connect(self._whole_file)
        buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(f"Each row of {table.name} can be one document. The first rows:"))
        layout.addWidget(self.preview)
        layout.addLayout(form)
        layout.addWidget(buttons)
        self.resize(720, 360)

    def _read_rows(self) -> None:
        id_column = self.id_column.currentText()
        self.result_choice = TableChoice(self.table.path, (self.text_column.currentText(),),
                                         None if self.id_column.currentIndex() == 0 else id_column, self.table.sheet)
        self.accept()

    def _whole_file(self) -> None:
        self.result_choice = WHOLE_FILE
        self.accept()


def _preview(table: Table) -> list[Record]:
    return [r for r in islice(table.records(), PREVIEW_ROWS * 2) if r.error is None][:PREVIEW_ROWS]


def _longest_column(table: Table, preview: list[Record]) -> int:
    """The column with the most text in the first rows: most often the one that holds it."""
    if not preview:
        return 0
    totals = [sum(len(str(r.cells[c] or "")) for r in preview if c < len(r.cells)) for c in range(len(table.header))]
    return max(range(len(totals)), key=totals.__getitem__)
