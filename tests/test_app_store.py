"""The session database and the settings wrapper, without a window."""
from __future__ import annotations

import dataclasses

import math
import sqlite3
import sys
from pathlib import Path

import pytest

from app.session_store import DB_FILE, SCHEMA_VERSION, SessionStore
from app.settings import MAX_RECENT_QUESTIONS, Settings
from engine.types import Document, Verdict


def verdict(doc_id: str, question: str, margin: float, **kw) -> Verdict:
    return Verdict(document_id=doc_id, question=question, verdict="yes" if margin > 0 else "no", margin=margin,
                   raw_margin=margin, probability=1 / (1 + math.exp(-margin)), label_mass=0.8, tokens=42,
                   seconds=0.01, **kw)


def test_round_trip_of_a_whole_session(tmp_path):
    path = tmp_path / DB_FILE
    store = SessionStore(path)
    assert store.notice is None
    keys = store.add_documents([
        ("a.txt", Document(id="/x/a.txt", text="Pay now", source="/x/a.txt", warnings=["truncated"], meta={"kind": "text"})),
        ("Pasted 1", Document(id="pasted-1", text="Hello")),
        ("bad.pdf", Document(id="/x/bad.pdf", text="", source="/x/bad.pdf", error="file is damaged")),
    ])
    store.set_questions(["Q1", "Q2"], 1)
    store.save_verdicts([(keys[0], verdict("/x/a.txt", "Q1", 1.5, windows=3, window_index=2, window_span=(10, 90))),
                         (keys[0], verdict("/x/a.txt", "Q2", -0.5)),
                         (keys[1], Verdict(document_id="pasted-1", question="Q1", verdict="error", error="empty"))])
    store.set_label(keys[0], "Q1", "yes")
    store.set_label(keys[1], "Q2", "no")
    store.close()

    session = SessionStore(path).load()
    assert session.questions == ["Q1", "Q2"] and session.active_question == 1
    a, pasted, bad = session.documents
    assert (a.key, a.name, a.document.text, a.document.source) == (keys[0], "a.txt", "Pay now", "/x/a.txt")
    assert a.document.warnings == ["truncated"] and a.document.meta == {"kind": "text"}
    v = a.verdicts["Q1"]
    assert (v.verdict, v.margin, v.windows, v.window_index, v.window_span) == ("yes", 1.5, 3, 2, (10, 90))
    assert a.labels == {"Q1": "yes"} and pasted.labels == {"Q2": "no"}
    assert math.isnan(pasted.verdicts["Q1"].margin) and pasted.verdicts["Q1"].error == "empty"
    assert bad.document.error == "file is damaged" and bad.verdicts == {}


def test_reasoning_and_question_options_are_kept_and_a_version_2_session_is_upgraded(tmp_path):
    path = tmp_path / DB_FILE
    with sqlite3.connect(path) as db:  # a session as Verdict wrote it before verdicts had reasoning
        db.executescript("""
            CREATE TABLE documents (key INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, doc_id TEXT NOT NULL,
                source TEXT, text TEXT NOT NULL, error TEXT, extra TEXT NOT NULL DEFAULT '{}');
            CREATE TABLE questions (position INTEGER PRIMARY KEY, text TEXT NOT NULL);
            CREATE TABLE verdicts (doc_key INTEGER NOT NULL REFERENCES documents(key) ON DELETE CASCADE,
                question TEXT NOT NULL, verdict TEXT NOT NULL, margin REAL, raw_margin REAL, probability REAL,
                label_mass REAL, tokens INTEGER NOT NULL DEFAULT 0, seconds REAL NOT NULL DEFAULT 0, error TEXT,
                windows INTEGER NOT NULL DEFAULT 1, window_index INTEGER NOT NULL DEFAULT 0, window_start INTEGER,
                window_end INTEGER, PRIMARY KEY (doc_key, question));
            CREATE TABLE labels (doc_key INTEGER NOT NULL, question TEXT NOT NULL, label TEXT NOT NULL,
                PRIMARY KEY (doc_key, question));
            CREATE TABLE state (name TEXT PRIMARY KEY, value TEXT);
            CREATE TABLE states (doc_key INTEGER NOT NULL, question TEXT NOT NULL, data BLOB NOT NULL,
                PRIMARY KEY (doc_key, question));
            INSERT INTO documents (name, doc_id, text) VALUES ('a', 'a', 'Pay now');
            INSERT INTO questions VALUES (0, 'Q1');
            INSERT INTO verdicts (doc_key, question, verdict, margin) VALUES (1, 'Q1', 'yes', 1.5);
            PRAGMA user_version = 2;
        """)
    store = SessionStore(path)
    assert store.notice is None  # upgraded in place, not set aside
    old = store.load().documents[0].verdicts["Q1"]
    assert (old.verdict, old.margin, old.reasoning) == ("yes", 1.5, None)
    key = store.add_documents([("b", Document(id="b", text="Soup"))])[0]
    store.save_verdicts([(key, dataclasses.replace(verdict("b", "Q1", -0.2, reasoning="The document describes soup."),
                                                   score=-0.7))])
    store.set_question_options({"Q1": {"examples": True}})
    store.close()
    session = SessionStore(path).load()
    assert session.documents[1].verdicts["Q1"].reasoning == "The document describes soup."
    assert session.documents[1].verdicts["Q1"].score == -0.7  # the score comes back, to decide over the batch
    assert session.documents[0].verdicts["Q1"].margin == 1.5
    assert math.isnan(session.documents[0].verdicts["Q1"].score)  # an old verdict has no score: not re-decided
    assert session.options == {"Q1": {"examples": True}}
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4


def test_wal_mode_and_schema_version(tmp_path):
    store = SessionStore(tmp_path / DB_FILE)
    store.add_documents([("a", Document(id="a", text="x"))])
    with sqlite3.connect(tmp_path / DB_FILE) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    store.close()


def test_every_change_is_on_disk_at_once(tmp_path):
    """A second connection sees each write without the store being closed (a crash loses nothing)."""
    store = SessionStore(tmp_path / DB_FILE)
    (key,) = store.add_documents([("a", Document(id="a", text="x"))])
    store.set_questions(["Q"], 0)
    store.save_verdicts([(key, verdict("a", "Q", 2.0))])
    reader = sqlite3.connect(tmp_path / DB_FILE)  # not a SessionStore: a second one would be read-only (locked)
    assert reader.execute("SELECT margin FROM verdicts").fetchall() == [(2.0,)]
    store.remove_documents([key])
    assert reader.execute("SELECT count(*) FROM documents").fetchone() == (0,)
    store.close()
    reader.close()


def test_removed_questions_drop_their_verdicts_but_keep_labels(tmp_path):
    store = SessionStore(tmp_path / DB_FILE)
    (key,) = store.add_documents([("a", Document(id="a", text="x"))])
    store.set_questions(["Q1", "Q2"], 0)
    store.save_verdicts([(key, verdict("a", "Q1", 1.0)), (key, verdict("a", "Q2", 1.0))])
    store.set_label(key, "Q2", "yes")
    store.set_questions(["Q1"], 0)
    doc = store.load().documents[0]
    assert set(doc.verdicts) == {"Q1"}
    assert doc.labels == {"Q2": "yes"}  # the user's work survives; it shows again if Q2 is asked again
    store.set_label(key, "Q2", None)
    assert store.load().documents[0].labels == {}


def test_verdicts_for_removed_documents_are_skipped(tmp_path):
    store = SessionStore(tmp_path / DB_FILE)
    keys = store.add_documents([("a", Document(id="a", text="x")), ("b", Document(id="b", text="y"))])
    store.remove_documents([keys[0]])
    store.save_verdicts([(keys[0], verdict("a", "Q", 1.0)), (keys[1], verdict("b", "Q", -1.0))])
    assert store.write_error is None
    (b,) = store.load().documents
    assert b.key == keys[1] and set(b.verdicts) == {"Q"}


@pytest.mark.parametrize("content,kind", [
    (b"SQLite format 3\x00" + b"\xff" * 5000, "unreadable"),  # a damaged header
    (b"", None),  # an empty file is a fine new database
    (b"plain text, not a database at all" * 50, "unreadable"),
])
def test_unreadable_files_are_set_aside_not_overwritten(tmp_path, content, kind):
    path = tmp_path / DB_FILE
    path.write_bytes(content)
    store = SessionStore(path)
    aside = [p for p in tmp_path.iterdir() if p.name != DB_FILE and not p.name.endswith(("-wal", "-shm", ".lock"))]
    if kind is None:
        assert store.notice is None and aside == []
        return
    assert len(aside) == 1 and kind in aside[0].name and aside[0].read_bytes() == content
    assert store.set_aside_path == aside[0] and aside[0].name in store.notice
    assert store.load().documents == []
    store.add_documents([("a", Document(id="a", text="x"))])  # and the new one works


def test_a_newer_schema_is_set_aside_with_its_wal(tmp_path):
    path = tmp_path / DB_FILE
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.execute("CREATE TABLE documents (key INTEGER PRIMARY KEY, what_the_future_holds TEXT)")
    db.commit()
    store = SessionStore(path)
    assert "newer version of Verdict" in store.notice
    assert store.set_aside_path.name.startswith(f"{DB_FILE}.newer-")
    with sqlite3.connect(store.set_aside_path) as old:
        assert old.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
    db.close()


def test_failed_writes_are_reported_once_and_never_raise(tmp_path):
    errors = []
    store = SessionStore(tmp_path / DB_FILE, on_error=errors.append)
    store.close()  # every write now fails
    keys = store.add_documents([("a", Document(id="a", text="x")), ("b", Document(id="b", text="y"))])
    assert len(set(keys)) == 2  # still unique, so the window keeps working
    store.set_label(keys[0], "Q", "yes")
    store.save_verdicts([(keys[0], verdict("a", "Q", 1.0))])
    assert len(errors) == 1 and "could not be saved" in errors[0]


def test_settings_are_typed_and_kept_in_the_given_ini(tmp_path):
    ini = tmp_path / "prefs.ini"
    settings = Settings(ini)
    assert settings.recent_questions == [] and settings.model_path is None and settings.color_scheme == "system"
    for i in range(MAX_RECENT_QUESTIONS + 3):
        settings.add_recent_question(f"Question {i}?")
    settings.add_recent_question("Question 5?")  # asked again: moves to the top
    settings.model_path = "/models/qwen3.gguf"
    settings.color_scheme = "dark"
    settings.sync()
    assert ini.exists()
    again = Settings(ini)
    recent = again.recent_questions
    assert recent[0] == "Question 5?" and len(recent) == MAX_RECENT_QUESTIONS and len(set(recent)) == len(recent)
    assert again.model_path == "/models/qwen3.gguf" and again.color_scheme == "dark"
    again.add_recent_question("One?")
    assert Settings(ini).recent_questions[0] == "One?"  # a one-element write/read stays a list


@pytest.fixture
def named_app(qapp, tmp_path, monkeypatch):
    """The running Qt application named as Verdict names it, HOME and XDG folders in tmp_path."""
    from app.application import APP_NAME, ORGANIZATION

    monkeypatch.delenv("VERDICT_DATA_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    before = qapp.applicationName(), qapp.organizationName()
    qapp.setApplicationName(APP_NAME)
    qapp.setOrganizationName(ORGANIZATION)
    yield qapp
    qapp.setApplicationName(before[0])
    qapp.setOrganizationName(before[1])


def test_the_app_keeps_its_session_in_the_engines_data_folder(named_app, tmp_path):
    """One data folder: the session sits beside the calibrators and general probes the CLI saves."""
    from app.session_store import default_data_dir
    from engine.confidence.general import fitted_probes_dir
    from engine.confidence.store import calibrator_path
    from engine.folders import data_dir

    expected = tmp_path / "xdg" / "verdict" if sys.platform != "darwin" else \
        tmp_path / "home" / "Library" / "Application Support" / "Verdict"
    assert data_dir() == expected
    store = SessionStore.open_default()
    try:
        assert store.path == expected / DB_FILE and store.path.is_file()
    finally:
        store.close()
    assert default_data_dir() == data_dir()
    assert calibrator_path("model", "Q?").parent.parent == expected / "probes"
    assert fitted_probes_dir() == expected / "general_probes"


def test_a_session_in_the_earlier_qt_folder_is_copied_over_once(named_app):
    from app.session_store import earlier_data_dir
    from engine.folders import data_dir

    earlier = earlier_data_dir()
    assert earlier is not None and earlier != data_dir()
    old = SessionStore(Path(earlier) / DB_FILE)
    old.add_documents([("a.txt", Document(id="/x/a.txt", text="Pay now"))])
    old.set_questions(["Q1"], 0)
    old.close()

    moved = SessionStore.open_default()
    try:
        session = moved.load()
        assert moved.path.parent == data_dir()
        assert [d.document.text for d in session.documents] == ["Pay now"] and session.questions == ["Q1"]
        moved.set_questions(["Q2"], 0)
    finally:
        moved.close()
    assert (earlier / DB_FILE).is_file()  # left as it was
    again = SessionStore.open_default()  # the copy is made once: the new folder's session wins
    try:
        assert again.load().questions == ["Q2"]
    finally:
        again.close()
