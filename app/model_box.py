"""The model in use, and a menu to open another (the default, an MLX folder or a .gguf file)."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QHBoxLayout, QLabel, QMenu, QToolButton, QVBoxLayout, QWidget

from app import dialogs


class ModelBox(QWidget):
    """Shows the model's name; :attr:`modelChosen` carries the path picked (None: the default)."""

    modelChosen = Signal(object)  # str path, or None for the embedded default

    def __init__(self, directory: callable = lambda: "", parent=None) -> None:
        super().__init__(parent)
        self._directory = directory  # where the file dialogs start
        caption = QLabel("MODEL")
        caption.setObjectName("Caption")
        self.label = QLabel("…")
        self.label.setObjectName("ModelName")
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.menu = QMenu("Model", self)
        self.default_action = QAction("Default Model (SmolLM2-135M)", self)
        self.default_action.triggered.connect(lambda: self.modelChosen.emit(None))
        self.folder_action = QAction("MLX Model Folder…", self)
        self.folder_action.triggered.connect(self.choose_folder)
        self.file_action = QAction("GGUF Model File…", self)
        self.file_action.triggered.connect(self.choose_file)
        self.menu.addAction(self.default_action)
        self.menu.addSeparator()
        self.menu.addAction(self.folder_action)
        self.menu.addAction(self.file_action)
        self.button = QToolButton()
        self.button.setText("Change ▾")
        self.button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.button.setToolTip("Use another model: an MLX folder or a .gguf file")
        self.button.setMenu(self.menu)
        row = QHBoxLayout()
        row.setSpacing(6)
        row.addWidget(self.label)
        row.addWidget(self.button)
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(caption)
        layout.addLayout(row)
        layout.addStretch(1)

    def show_loading(self, path: str) -> None:
        self.label.setText(f"Loading {Path(path).name if path else 'the default model'}…")
        self.label.setToolTip(path)

    def show_model(self, name: str, path: str = "") -> None:
        """``name`` of the model in use ('' when none), ``path`` ('' for the default)."""
        self.label.setText(name or "No model")
        self.label.setToolTip(path or ("The embedded default model" if name else ""))

    def choose_folder(self) -> None:
        path = dialogs.choose_folder(self, self._directory(), "Open an MLX Model Folder")
        if path:
            self.modelChosen.emit(path)

    def choose_file(self) -> None:
        path = dialogs.choose_model_file(self, self._directory())
        if path:
            self.modelChosen.emit(path)
