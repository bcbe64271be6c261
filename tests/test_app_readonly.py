"""The app's session when its data folder can't be written, or another instance has it open."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from app.session_store import DB_FILE, SessionStore
from engine.types import Document
from readonly import read_only


def test_a_data_folder_that_cannot_be_created_gives_a_read_only_session(tmp_path):
    (tmp_path / "a-file").write_text("in the way")
    store = SessionStore.open_default(tmp_path / "a-file" / "data")
    assert store.read_only and "can't be written" in store.notice and "read-only" in store.notice
    (key,) = store.add_documents([("a.txt", Document(id="a", text="hello"))])  # works, in memory
    store.set_questions(["Q"], 0)
    session = store.load()
    assert [d.document.text for d in session.documents] == ["hello"] and session.questions == ["Q"]
    assert store.write_error is None
    store.close()


STORE_IN_READ_ONLY_FOLDER = """
import json, sys
from app.session_store import SessionStore
store = SessionStore(sys.argv[1])
session = store.load()
store.add_documents([("new.txt", __import__("engine.types").types.Document(id="new", text="new"))])
print(json.dumps({"read_only": store.read_only, "notice": store.notice,
                  "texts": [d.document.text for d in session.documents]}))
store.close()
"""


def _open_in_read_only_folder(folder: Path) -> dict:
    with read_only(folder) as wrap:
        done = subprocess.run(wrap([sys.executable, "-c", STORE_IN_READ_ONLY_FOLDER, str(folder / DB_FILE)]),
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_valid_session_in_a_read_only_folder_opens_read_only_with_its_documents(tmp_path):
    folder = tmp_path / "data"
    store = SessionStore(folder / DB_FILE)
    store.add_documents([("a.txt", Document(id="a", text="saved before"))])
    store.close()
    before = sorted(p.name for p in folder.iterdir())
    result = _open_in_read_only_folder(folder)
    assert result["read_only"] and "can't be written" in result["notice"]
    assert result["texts"] == ["saved before"]
    assert sorted(p.name for p in folder.iterdir()) == before  # nothing moved, nothing written
    again = SessionStore(folder / DB_FILE)  # writable again: the session is intact
    assert [d.document.text for d in again.load().documents] == ["saved before"] and not again.read_only
    again.close()


def test_a_damaged_session_in_a_read_only_folder_does_not_stop_the_app(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / DB_FILE).write_bytes(b"this is not a database" * 100)
    result = _open_in_read_only_folder(folder)
    assert result["read_only"] and result["texts"] == []
    assert (folder / DB_FILE).read_bytes().startswith(b"this is not")  # left where it was


def test_a_second_instance_on_the_same_session_is_warned_and_read_only(tmp_path):
    path = tmp_path / DB_FILE
    first = SessionStore(path)
    first.add_documents([("a.txt", Document(id="a", text="first's document"))])
    second = SessionStore(path)
    assert not first.read_only and second.read_only
    assert "Another Verdict window has this session open" in second.notice
    assert [d.document.text for d in second.load().documents] == ["first's document"]
    second.add_documents([("b.txt", Document(id="b", text="second's document"))])  # not written to disk
    second.close()
    first.close()
    third = SessionStore(path)  # the lock went with the first
    assert not third.read_only and [d.document.text for d in third.load().documents] == ["first's document"]
    third.close()


def test_the_window_starts_read_only_with_the_notice_shown(qtbot, tmp_path, tiny_model_dir):
    from app.settings import Settings
    from app.window import MainWindow

    (tmp_path / "a-file").write_text("in the way")
    store = SessionStore.open_default(tmp_path / "a-file" / "data")
    window = MainWindow(Settings(tmp_path / "settings.ini"), store, model=str(tiny_model_dir))
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: not window.controller.loading, timeout=180_000)
    qtbot.waitUntil(lambda: "read-only" in window.statusBar().currentMessage(), timeout=180_000)
    window.close()
