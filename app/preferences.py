"""The Preferences window (⌘, on macOS, Ctrl+, elsewhere): the settings the window already has, in
one place. How sure a call must be (as Questions ▸ Call Yes or No When Right), whether scoring
stops at the layer the probe reads (faster, without the model's own answer), the model in use
(Choose… opens the model chooser, as File ▸ Model ▸ Choose a Model…), and the data folder where
the session and the calibrators are kept (shown, with a button that opens it; it is chosen when
Verdict starts: ``$VERDICT_DATA_DIR`` or ``--data-dir``)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFormLayout, QHBoxLayout,
                               QLineEdit, QPushButton, QVBoxLayout, QWidget)

from app import dialogs
from app.settings import TARGET_PRECISIONS

if TYPE_CHECKING:
    from app.window import MainWindow


def _row(*widgets: QWidget) -> QWidget:
    holder = QWidget()
    layout = QHBoxLayout(holder)
    layout.setContentsMargins(0, 0, 0, 0)
    for n, widget in enumerate(widgets):
        layout.addWidget(widget, 1 if n == 0 else 0)
    return holder


def _read_only_field() -> QLineEdit:
    """A path or a model's name: one line that scrolls (a path has no spaces to wrap at), selectable."""
    field = QLineEdit()
    field.setReadOnly(True)
    field.setMinimumWidth(260)
    return field


class PreferencesDialog(QDialog):
    """Modeless; each change applies at once (there is nothing to confirm)."""

    def __init__(self, window: "MainWindow") -> None:
        super().__init__(window)
        self.setWindowTitle("Preferences")
        self._window = window
        self.target = QComboBox()
        for value in TARGET_PRECISIONS:
            self.target.addItem(f"at least {value:.0%} of the time", value)
        self.target.setToolTip("A verdict says yes or no only where it is that likely right; the rest stay "
                               "Uncertain (also Questions ▸ Call Yes or No When Right)")
        self.target.activated.connect(lambda index: window.set_target_precision(self.target.itemData(index)))
        self.probe_only = QCheckBox("Stop at the probe's layer (about 30% less time; no raw margin)")
        self.probe_only.setToolTip(
            "Where the model's general probe (or a probe fitted to your labels) gives every question's chance "
            "of yes, the model's layers above the one it reads are not run: the same chances and calls, without "
            "the model's own answer (its raw margin and label mass). Applies to documents scored from now on")
        self.probe_only.clicked.connect(window.set_probe_only)  # the user's click, not refresh()'s setChecked
        self.model = _read_only_field()
        self.choose_model = QPushButton("Choose…")
        self.choose_model.setToolTip("Open the model chooser: models on disk and recommended downloads")
        self.choose_model.clicked.connect(lambda: window.model_box.open_chooser())
        self.data_folder = _read_only_field()
        self.data_folder.setToolTip("Chosen when Verdict starts: $VERDICT_DATA_DIR, or --data-dir")
        self.show_folder = QPushButton("Show")
        self.show_folder.setToolTip("Open the data folder in the file manager")
        self.show_folder.clicked.connect(lambda: dialogs.reveal(str(window.store.path)))
        form = QFormLayout()
        form.addRow("Call yes or no when right", self.target)
        form.addRow("Faster scoring", self.probe_only)
        form.addRow("Model", _row(self.model, self.choose_model))
        form.addRow("Data folder (session and calibrators)", _row(self.data_folder, self.show_folder))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)
        window.controller.modelReady.connect(lambda *_: self.refresh())  # a model chosen meanwhile
        window.controller.modelLoading.connect(lambda *_: self.refresh())
        self.refresh()

    def refresh(self) -> None:
        """Show the settings as they are now (the menus may have changed them meanwhile)."""
        w = self._window
        self.target.setCurrentIndex(max(0, self.target.findData(w.settings.target_precision)))
        self.probe_only.setChecked(w.settings.probe_only)
        self.model.setText(w.model_box.label.text())
        self.model.setToolTip(w.model_box.label.toolTip())
        self.data_folder.setText(str(w.store.path.parent))
        for field in (self.model, self.data_folder):
            field.setCursorPosition(0)

    def showEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        self.refresh()
        super().showEvent(event)
