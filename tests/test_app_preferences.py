"""The Preferences window: opened by the platform's Preferences key, it shows and changes the
settings the window has (target precision, model, data folder), in step with the menus."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from app import dialogs
from app.preferences import PreferencesDialog
from app.settings import Settings
from layout_check import clipped_texts


def test_preferences_open_on_their_key_and_change_what_the_menus_change(qtbot, make_window, tmp_path, monkeypatch):
    window = make_window()
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_Comma, Qt.KeyboardModifier.ControlModifier)  # ⌘, (Ctrl+, here)
    dialog = window.preferences
    assert isinstance(dialog, PreferencesDialog) and dialog.isVisible()
    qtbot.waitExposed(dialog)

    # target precision: the menu's choice is shown; a choice here is the menu's too, remembered
    assert dialog.target.currentData() == 0.9 and window.target_actions[0.9].isChecked()
    index = dialog.target.findData(0.8)
    dialog.target.setCurrentIndex(index)
    dialog.target.activated.emit(index)  # what choosing an item with the mouse or keys sends
    assert window.session.rule.target == 0.8 and window.target_actions[0.8].isChecked()
    assert Settings(tmp_path / "settings.ini").target_precision == 0.8
    window.target_actions[0.95].trigger()  # and the other way: the menu, then the dialog shown again
    dialog.close()
    window.preferences_action.trigger()
    assert window.preferences is dialog and dialog.target.currentData() == 0.95

    # the model in use, and Choose… opens the chooser (its check of the Hub goes to a closed port)
    from test_app_models import _closed_port

    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    assert dialog.model.text() == window.model_box.label.text() and dialog.model.text() not in ("", "…")
    dialog.choose_model.click()
    assert window.model_box.chooser is not None and window.model_box.chooser.isVisible()
    window.model_box.chooser.reject()

    # the data folder holds the session; Show opens it
    revealed = []
    monkeypatch.setattr(dialogs, "reveal", lambda path: revealed.append(path))
    assert dialog.data_folder.text() == str(window.store.path.parent) == str(tmp_path / "data")
    dialog.show_folder.click()
    assert revealed == [str(window.store.path)]
    QApplication.processEvents()
    assert clipped_texts(dialog) == []  # no label or button cut
