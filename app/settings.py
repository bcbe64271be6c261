"""Preferences and window geometry in QSettings, behind a small typed class.

Tests pass an ini path so they never touch the user's real preferences.
"""
from __future__ import annotations

import json
import os
from typing import Optional

from PySide6.QtCore import QByteArray, QSettings, Qt

SETTINGS_ENV = "VERDICT_SETTINGS"  # an ini file to use instead of the platform's store
MAX_RECENT_QUESTIONS = 12
MAX_REMEMBERED_TABLES = 200  # tables whose text column is remembered
TARGET_PRECISIONS = (0.8, 0.85, 0.9, 0.95)  # the choices the Questions menu offers


class Settings:
    """Typed access to the app's QSettings.

    ``path``: an ini file (tests, the self-test); None uses ``$VERDICT_SETTINGS`` when set,
    else the platform's native store for the application's organization/name.
    """

    def __init__(self, path: Optional[str | os.PathLike] = None) -> None:
        path = path if path is not None else os.environ.get(SETTINGS_ENV) or None
        if path is None:
            self._qs = QSettings()
        else:
            self._qs = QSettings(os.fspath(path), QSettings.Format.IniFormat)

    @property
    def file_name(self) -> str:
        return self._qs.fileName()

    def sync(self) -> None:
        self._qs.sync()

    # --- helpers: lists as JSON, since QSettings returns a str for a one-element list in ini files
    def _get_str(self, key: str, default: str = "") -> str:
        value = self._qs.value(key, default)
        return value if isinstance(value, str) else default

    def _get_list(self, key: str) -> list[str]:
        try:
            value = json.loads(self._get_str(key, "[]"))
        except ValueError:
            return []
        return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []

    def _get_bytes(self, key: str) -> QByteArray:
        value = self._qs.value(key)
        return value if isinstance(value, QByteArray) else QByteArray()

    # --- questions ----------------------------------------------------------------------------
    @property
    def recent_questions(self) -> list[str]:
        """Most recent first."""
        return self._get_list("questions/recent")

    def add_recent_question(self, question: str) -> None:
        question = question.strip()
        if not question:
            return
        recent = [question] + [q for q in self.recent_questions if q != question]
        self._qs.setValue("questions/recent", json.dumps(recent[:MAX_RECENT_QUESTIONS]))

    def clear_recent_questions(self) -> None:
        self._qs.remove("questions/recent")

    # --- model --------------------------------------------------------------------------------
    @property
    def model_path(self) -> Optional[str]:
        """The model last opened (MLX folder or .gguf); None means the embedded default."""
        return self._get_str("model/path") or None

    @model_path.setter
    def model_path(self, value: Optional[str]) -> None:
        self._qs.setValue("model/path", value or "")

    @property
    def recommended_offered(self) -> bool:
        """Whether the recommended model was offered (on a Mac's first launch, once)."""
        return self._get_str("model/recommendedOffered") == "1"

    @recommended_offered.setter
    def recommended_offered(self, value: bool) -> None:
        self._qs.setValue("model/recommendedOffered", "1" if value else "")

    # --- files --------------------------------------------------------------------------------
    @property
    def last_directory(self) -> str:
        return self._get_str("files/lastDirectory")

    @last_directory.setter
    def last_directory(self, value: str) -> None:
        self._qs.setValue("files/lastDirectory", value)

    def table_columns(self, path: str) -> Optional[dict]:
        """The columns chosen for the table at ``path`` (``text``: names, ``id``: a name or None,
        ``sheet``), or None when it was never asked."""
        try:
            remembered = json.loads(self._get_str("files/tableColumns", "{}"))
        except ValueError:
            return None
        choice = remembered.get(os.path.abspath(path)) if isinstance(remembered, dict) else None
        if not isinstance(choice, dict) or not isinstance(choice.get("text"), list):
            return None
        return choice

    def set_table_columns(self, path: str, text: list[str], id_column: Optional[str], sheet: Optional[str]) -> None:
        try:
            remembered = json.loads(self._get_str("files/tableColumns", "{}"))
        except ValueError:
            remembered = {}
        if not isinstance(remembered, dict):
            remembered = {}
        remembered.pop(os.path.abspath(path), None)
        remembered[os.path.abspath(path)] = {"text": list(text), "id": id_column, "sheet": sheet}
        kept = dict(list(remembered.items())[-MAX_REMEMBERED_TABLES:])  # the latest choices
        self._qs.setValue("files/tableColumns", json.dumps(kept))

    # --- appearance ---------------------------------------------------------------------------
    @property
    def color_scheme(self) -> str:
        """'system', 'light' or 'dark'."""
        value = self._get_str("view/colorScheme", "system")
        return value if value in ("system", "light", "dark") else "system"

    @color_scheme.setter
    def color_scheme(self, value: str) -> None:
        self._qs.setValue("view/colorScheme", value)

    # --- decisions ----------------------------------------------------------------------------
    @property
    def target_precision(self) -> float:
        """How often a yes or no call must be right (one of TARGET_PRECISIONS; default 0.9)."""
        try:
            value = float(self._get_str("decisions/targetPrecision", "0.9"))
        except ValueError:
            return 0.9
        return value if value in TARGET_PRECISIONS else 0.9

    @target_precision.setter
    def target_precision(self, value: float) -> None:
        self._qs.setValue("decisions/targetPrecision", str(float(value)))

    # --- scoring ------------------------------------------------------------------------------
    @property
    def probe_only(self) -> bool:
        """Whether scoring stops at the probe's layer, without the model's own answer (default off)."""
        return self._get_str("scoring/probeOnly", "false") == "true"

    @probe_only.setter
    def probe_only(self, value: bool) -> None:
        self._qs.setValue("scoring/probeOnly", "true" if value else "false")

    # --- window -------------------------------------------------------------------------------
    @property
    def window_geometry(self) -> QByteArray:
        return self._get_bytes("window/geometry")

    @window_geometry.setter
    def window_geometry(self, value: QByteArray) -> None:
        self._qs.setValue("window/geometry", value)

    @property
    def window_state(self) -> QByteArray:
        return self._get_bytes("window/state")

    @window_state.setter
    def window_state(self, value: QByteArray) -> None:
        self._qs.setValue("window/state", value)

    @property
    def splitter_state(self) -> QByteArray:
        return self._get_bytes("window/splitter")

    @splitter_state.setter
    def splitter_state(self, value: QByteArray) -> None:
        self._qs.setValue("window/splitter", value)

    @property
    def table_sort(self) -> tuple[int, Qt.SortOrder]:
        """The results table's sort column (-1: the order documents were added) and order."""
        try:
            column, descending = json.loads(self._get_str("window/sort", "[-1, false]"))
            return int(column), Qt.SortOrder.DescendingOrder if descending else Qt.SortOrder.AscendingOrder
        except (ValueError, TypeError):
            return -1, Qt.SortOrder.AscendingOrder

    @table_sort.setter
    def table_sort(self, value: tuple[int, Qt.SortOrder]) -> None:
        self._qs.setValue("window/sort", json.dumps([int(value[0]), value[1] == Qt.SortOrder.DescendingOrder]))

    @property
    def selected_documents(self) -> list[int]:
        """Row keys of the documents selected when the window closed."""
        try:
            keys = json.loads(self._get_str("window/selection", "[]"))
        except ValueError:
            return []
        return [k for k in keys if isinstance(k, int)] if isinstance(keys, list) else []

    @selected_documents.setter
    def selected_documents(self, keys: list[int]) -> None:
        self._qs.setValue("window/selection", json.dumps([int(k) for k in keys]))
