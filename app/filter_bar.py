"""Search field, verdict filter (All / Yes / No / Uncertain / Errors, with counts), a labeled /
unlabeled filter, and the row count."""
from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QButtonGroup, QComboBox, QHBoxLayout, QLabel, QLineEdit, QToolButton, QWidget

from app.table_model import LABEL_FILTERS, VERDICT_FILTERS

FILTER_LABELS = {"all": "All", "yes": "Yes", "no": "No", "uncertain": "Uncertain", "error": "Errors"}


class FilterBar(QWidget):
    """Emits what the user asks for; the window applies it to the proxy model."""

    verdictFilterChosen = Signal(str)  # one of VERDICT_FILTERS
    labelFilterChosen = Signal(str)  # one of LABEL_FILTERS
    searchChanged = Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search names and text")
        self.search.setClearButtonEnabled(True)
        self.search.setMaximumWidth(280)
        self.search.setMinimumWidth(90)
        self.search.textChanged.connect(self.searchChanged)
        self.group = QButtonGroup(self)
        self.group.setExclusive(True)
        self.buttons: dict[str, QToolButton] = {}
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.search, 1)
        layout.addSpacing(6)
        for i, name in enumerate(VERDICT_FILTERS):
            button = QToolButton()
            button.setObjectName("FilterButton")
            button.setText(FILTER_LABELS[name])
            button.setCheckable(True)
            button.setChecked(name == "all")
            button.setToolTip(f"Show {FILTER_LABELS[name].lower()} (answers to the active question)")
            self.group.addButton(button, i)
            self.buttons[name] = button
            layout.addWidget(button)
        self.group.idClicked.connect(self._on_clicked)
        self.labels = QComboBox()
        self.labels.addItems(["Labeled or not", "Labeled", "Unlabeled"])
        self.labels.setToolTip("Rows you labeled for the active question, or those you did not")
        self.labels.currentIndexChanged.connect(lambda i: self.labelFilterChosen.emit(LABEL_FILTERS[i]))
        layout.addSpacing(6)
        layout.addWidget(self.labels)
        layout.addStretch(1)
        self.count_label = QLabel()
        self.count_label.setObjectName("Muted")
        layout.addWidget(self.count_label)

    def set_verdict_filter(self, verdict: str) -> None:
        """Check the button for ``verdict`` (without emitting)."""
        self.buttons[verdict].setChecked(True)

    def set_label_filter(self, which: str) -> None:
        """Show ``which`` of LABEL_FILTERS as chosen (without emitting)."""
        self.labels.blockSignals(True)
        self.labels.setCurrentIndex(LABEL_FILTERS.index(which))
        self.labels.blockSignals(False)

    def show_counts(self, counts: dict[str, int], shown: int, current: str) -> None:
        """Counts per filter; 'Uncertain' and 'Errors' only appear when there are some."""
        total = counts.get("all", 0)
        for name, button in self.buttons.items():
            button.setText(f"{FILTER_LABELS[name]} {counts.get(name, 0):,}" if total else FILTER_LABELS[name])
        for name in ("uncertain", "error"):
            self.buttons[name].setVisible(bool(counts.get(name)) or current == name)
        if not total:
            self.count_label.setText("")
        elif shown != total:
            self.count_label.setText(f"{shown:,} of {total:,} shown")
        else:
            self.count_label.setText(f"{total:,} document{'s' if total != 1 else ''}")

    def _on_clicked(self, index: int) -> None:
        self.verdictFilterChosen.emit(VERDICT_FILTERS[index])
