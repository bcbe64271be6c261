"""The session (questions, documents with their text, verdicts, labels) in SQLite.

Every change is written as it happens, so quitting, a crash or a power cut loses nothing
that was on screen. WAL mode keeps each write cheap. ``PRAGMA user_version`` holds the
schema version; a database that is damaged, or was written by a newer Verdict, is renamed
aside (never overwritten) and a fresh session starts, with :attr:`SessionStore.notice`
saying what happened. When the data folder can't be written, or another instance holds the
session's lock file, the session is opened read-only: an in-memory copy the window uses as
usual, nothing saved, and a notice that says so.
"""
from __future__ import annotations

import json
import math
import os
import sqlite3
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable, Iterable, Iterator, Optional

from engine.atomic import atomic_path
from engine.folders import data_dir
from engine.types import Document, Verdict

SCHEMA_VERSION = 4  # 2: the states table; 3: verdicts.reasoning; 4: verdicts.score
MAX_STATE_BYTES = 256 * 2**20  # hidden states kept on disk (float16): beyond this, new ones are not kept
DB_FILE = "session.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    key     INTEGER PRIMARY KEY AUTOINCREMENT,
    name    TEXT NOT NULL,
    doc_id  TEXT NOT NULL,
    source  TEXT,
    text    TEXT NOT NULL,
    error   TEXT,
    extra   TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS questions (
    position INTEGER PRIMARY KEY,
    text     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS verdicts (
    doc_key      INTEGER NOT NULL REFERENCES documents(key) ON DELETE CASCADE,
    question     TEXT NOT NULL,
    verdict      TEXT NOT NULL,
    margin       REAL,
    raw_margin   REAL,
    probability  REAL,
    label_mass   REAL,
    tokens       INTEGER NOT NULL DEFAULT 0,
    seconds      REAL NOT NULL DEFAULT 0,
    error        TEXT,
    windows      INTEGER NOT NULL DEFAULT 1,
    window_index INTEGER NOT NULL DEFAULT 0,
    window_start INTEGER,
    window_end   INTEGER,
    reasoning    TEXT,
    score        REAL,
    PRIMARY KEY (doc_key, question)
);
CREATE TABLE IF NOT EXISTS labels (
    doc_key  INTEGER NOT NULL REFERENCES documents(key) ON DELETE CASCADE,
    question TEXT NOT NULL,
    label    TEXT NOT NULL CHECK (label IN ('yes', 'no')),
    PRIMARY KEY (doc_key, question)
);
CREATE TABLE IF NOT EXISTS state (
    name  TEXT PRIMARY KEY,
    value TEXT
);
CREATE TABLE IF NOT EXISTS states (
    doc_key  INTEGER NOT NULL REFERENCES documents(key) ON DELETE CASCADE,
    question TEXT NOT NULL,
    data     BLOB NOT NULL,
    PRIMARY KEY (doc_key, question)
);
"""


def default_data_dir() -> Path:
    """The engine's data folder (`engine.folders.data_dir`): the session beside the calibrators."""
    return data_dir()


def earlier_data_dir() -> Optional[Path]:
    """Where Verdict's app kept its session before it used the engine's data folder: Qt's
    AppDataLocation (``<organization>/<application>`` under the platform's data folder); None
    without a running Qt application to name it."""
    from PySide6.QtCore import QCoreApplication, QStandardPaths

    if QCoreApplication.instance() is None or not QCoreApplication.applicationName():
        return None
    return Path(QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation))


def _copy_earlier_session(folder: Path) -> None:
    """Copy a session from the earlier folder into ``folder`` once, when ``folder`` has none
    (SQLite's backup: the write-ahead log comes along; the earlier file stays as it was)."""
    earlier = earlier_data_dir()
    if earlier is None or earlier == folder or (folder / DB_FILE).exists() or not (earlier / DB_FILE).is_file():
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / DB_FILE) as tmp:
            source = sqlite3.connect(f"file:{earlier / DB_FILE}?mode=ro", uri=True, timeout=5.0)
            target = sqlite3.connect(tmp)
            try:
                source.backup(target)
            finally:
                target.close()
                source.close()
    except (OSError, sqlite3.Error):
        pass  # it stays where it was; a new session starts here


@dataclass
class StoredDocument:
    """One document of the session, as restored: its row key, display name and results."""

    key: int
    name: str
    document: Document
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    states: dict[str, object] = field(default_factory=dict)  # question -> hidden state, numpy float16 (D,)


@dataclass
class Session:
    """Everything a window needs to come back as it was."""

    questions: list[str] = field(default_factory=list)
    active_question: int = 0
    documents: list[StoredDocument] = field(default_factory=list)
    states_model: str = ""  # the model (fingerprint and layer) the stored states belong to
    options: dict[str, dict] = field(default_factory=dict)  # question -> its options (app.options), as saved


class SessionStore:
    """One session database. Use from one thread (the GUI thread).

    Writes never raise: a failing write (disk full, folder removed) is reported once through
    ``on_error`` and kept in :attr:`write_error`.
    """

    def __init__(self, path: str | os.PathLike, on_error: Optional[Callable[[str], None]] = None) -> None:
        self.path = Path(path)
        self.notice: Optional[str] = None  # set when an unreadable database was set aside
        self.set_aside_path: Optional[Path] = None
        self.write_error: Optional[str] = None
        self.on_error = on_error
        self._state_bytes: Optional[int] = None  # bytes of stored states (read on first save)
        self.read_only = False  # True: the session lives in memory and nothing is saved (see notice)
        self._lock: Optional[IO] = None
        unwritable = _unwritable_folder(self.path.parent)
        if unwritable:
            self._open_read_only(f"The data folder {self.path.parent} can't be written ({unwritable}): "
                                 "this session is read-only and its changes are not saved.")
            return
        if not self._take_lock():
            self._open_read_only("Another Verdict window has this session open: this window is read-only "
                                 "and its changes are not saved.")
            return
        problem = self._problem() if self.path.exists() else None
        if problem:
            try:
                self._set_aside(problem)
            except OSError as exc:
                self._open_read_only(
                    f"The saved session could not be restored: {problem}, and it could not be moved aside "
                    f"({exc.strerror or exc}). This session is read-only and its changes are not saved.",
                    copy=False,
                )
                return
        self._conn = self._connect()

    @classmethod
    def open_default(cls, data_dir: Optional[str | os.PathLike] = None) -> "SessionStore":
        """The session in ``data_dir`` (default: :func:`default_data_dir`)."""
        if data_dir:
            return cls(Path(data_dir) / DB_FILE)
        folder = default_data_dir()
        _copy_earlier_session(folder)
        return cls(folder / DB_FILE)

    # --- opening --------------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=5.0)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # durable across app crashes; WAL keeps it consistent
        conn.execute("PRAGMA foreign_keys=ON")
        _upgrade(conn)
        return conn

    def _problem(self) -> Optional[str]:
        """Why the existing file can't be used as our session, or None when it can."""
        try:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5.0)
        except sqlite3.Error as exc:
            return f"it could not be opened ({exc})"
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                return f"it was saved by a newer version of Verdict (session format {version})"
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                return f"it is damaged ({check})"
            if version == SCHEMA_VERSION:
                for table in ("documents", "questions", "verdicts", "labels", "state", "states"):
                    conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc):
                raise  # another Verdict is using it: not damage, and not ours to move
            return f"it is not a readable session ({exc})"
        except sqlite3.DatabaseError as exc:
            return f"it is not a readable session ({exc})"
        finally:
            conn.close()
        return None

    def _set_aside(self, problem: str) -> None:
        kind = "newer" if "newer version" in problem else "unreadable"
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = self.path.with_name(f"{self.path.name}.{kind}-{stamp}")
        n = 1
        while aside.exists():
            n += 1
            aside = self.path.with_name(f"{self.path.name}.{kind}-{stamp}-{n}")
        os.replace(self.path, aside)
        for suffix in ("-wal", "-shm"):
            companion = Path(str(self.path) + suffix)
            if companion.exists():
                os.replace(companion, Path(str(aside) + suffix))
        self.set_aside_path = aside
        self.notice = f"The saved session could not be restored: {problem}. It was kept as {aside.name}; a new session started."

    def _take_lock(self) -> bool:
        """Hold ``.<session>.lock`` while open; False when another instance holds it. Where there
        is no flock (Windows), or the lock file can't be made, nothing is locked."""
        try:
            import fcntl
        except ImportError:
            return True
        try:
            handle = open(self.path.with_name(f".{self.path.name}.lock"), "a+")
        except OSError:
            return True
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._lock = handle
        return True

    def _open_read_only(self, notice: str, copy: bool = True) -> None:
        """Work on an in-memory copy of the saved session (or a new one): the window behaves as
        usual and nothing is written."""
        self.read_only, self.notice = True, notice
        conn = sqlite3.connect(":memory:", isolation_level=None)
        if copy and self.path.exists():
            for uri in (f"file:{self.path}?mode=ro", f"file:{self.path}?immutable=1"):
                try:
                    source = sqlite3.connect(uri, uri=True, timeout=5.0)
                    try:
                        source.backup(conn)
                        if source.execute("PRAGMA user_version").fetchone()[0] > SCHEMA_VERSION:
                            raise sqlite3.DatabaseError("saved by a newer version of Verdict")
                    finally:
                        source.close()
                    break
                except sqlite3.Error:
                    conn.close()
                    conn = sqlite3.connect(":memory:", isolation_level=None)
        conn.execute("PRAGMA foreign_keys=ON")
        _upgrade(conn)
        self._conn = conn

    def close(self) -> None:
        try:
            self._conn.close()
        except sqlite3.Error:
            pass
        if self._lock is not None:
            self._lock.close()  # releases the lock; the file stays (removing it would race)
            self._lock = None

    # --- writing --------------------------------------------------------------------------------
    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _failed(self, exc: sqlite3.Error) -> None:
        first = self.write_error is None
        self.write_error = f"The session could not be saved to {self.path}: {exc}"
        if first and self.on_error:
            self.on_error(self.write_error)

    def add_documents(self, documents: Iterable[tuple[str, Document]]) -> list[int]:
        """Store (display name, document) pairs; return their keys (row ids), in order.

        When the write fails the keys are still unique (negative), so the window keeps working.
        """
        documents = list(documents)
        try:
            with self._transaction() as conn:
                keys = []
                for name, doc in documents:
                    extra = json.dumps({"warnings": doc.warnings, "meta": doc.meta}, default=str)
                    cur = conn.execute(
                        "INSERT INTO documents (name, doc_id, source, text, error, extra) VALUES (?, ?, ?, ?, ?, ?)",
                        (name, doc.id, doc.source, doc.text, doc.error, extra),
                    )
                    keys.append(int(cur.lastrowid))
                return keys
        except sqlite3.Error as exc:
            self._failed(exc)
            self._fallback_key = getattr(self, "_fallback_key", 0) - len(documents)
            return list(range(self._fallback_key, self._fallback_key + len(documents)))

    def remove_documents(self, keys: Iterable[int]) -> None:
        try:
            with self._transaction() as conn:
                conn.executemany("DELETE FROM documents WHERE key = ?", [(k,) for k in keys])
        except sqlite3.Error as exc:
            self._failed(exc)

    def set_questions(self, questions: list[str], active: int) -> None:
        """Replace the question list; verdicts for questions no longer asked are dropped
        (labels are kept: they are the user's work and answer a question, not a column)."""
        try:
            with self._transaction() as conn:
                conn.execute("DELETE FROM questions")
                conn.executemany("INSERT INTO questions (position, text) VALUES (?, ?)", list(enumerate(questions)))
                marks = ",".join("?" * len(questions))
                conn.execute(f"DELETE FROM verdicts WHERE question NOT IN ({marks})", questions)
                conn.execute(f"DELETE FROM states WHERE question NOT IN ({marks})", questions)
                conn.execute("INSERT OR REPLACE INTO state (name, value) VALUES ('active_question', ?)", (str(active),))
        except sqlite3.Error as exc:
            self._failed(exc)

    def set_active_question(self, active: int) -> None:
        try:
            self._conn.execute("INSERT OR REPLACE INTO state (name, value) VALUES ('active_question', ?)", (str(active),))
        except sqlite3.Error as exc:
            self._failed(exc)

    def save_verdicts(self, results: Iterable[tuple[int, Verdict]], states: Optional[dict] = None) -> None:
        """Insert or replace the verdicts of (document key, verdict) pairs, and with them the
        hidden states in ``states`` ((key, question) -> array (D,), stored as float16) while the
        states on disk stay under MAX_STATE_BYTES."""
        rows = [
            (
                key, v.question, v.verdict, _real(v.margin), _real(v.raw_margin), _real(v.probability),
                _real(v.label_mass), v.tokens, v.seconds, v.error, v.windows, v.window_index,
                v.window_span[0] if v.window_span else None, v.window_span[1] if v.window_span else None,
                v.reasoning, _real(v.score),
            )
            for key, v in results
        ]
        try:
            with self._transaction() as conn:
                # ?1 is the document key again: a verdict for a document removed meanwhile is skipped.
                conn.executemany(
                    "INSERT OR REPLACE INTO verdicts (doc_key, question, verdict, margin, raw_margin, probability,"
                    " label_mass, tokens, seconds, error, windows, window_index, window_start, window_end, reasoning, score)"
                    " SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?"
                    " WHERE EXISTS (SELECT 1 FROM documents WHERE key = ?1)",
                    rows,
                )
                if states:
                    self._save_states(conn, states)
        except sqlite3.Error as exc:
            self._failed(exc)

    def _save_states(self, conn: sqlite3.Connection, states: dict) -> None:
        import numpy as np

        if self._state_bytes is None:
            self._state_bytes = conn.execute("SELECT coalesce(sum(length(data)), 0) FROM states").fetchone()[0]
        rows = []
        for (key, question), state in states.items():
            data = np.asarray(state, dtype="<f2").tobytes()
            if self._state_bytes + len(data) > MAX_STATE_BYTES:
                break
            self._state_bytes += len(data)  # a replaced state is counted twice until the next open: a safe bound
            rows.append((key, question, data))
        conn.executemany("INSERT OR REPLACE INTO states (doc_key, question, data)"
                         " SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM documents WHERE key = ?1)", rows)

    def set_states_model(self, model: str) -> None:
        """The model the stored states come from; a different one drops them (they are its own)."""
        try:
            with self._transaction() as conn:
                row = conn.execute("SELECT value FROM state WHERE name = 'states_model'").fetchone()
                if row is None or row[0] != model:
                    conn.execute("DELETE FROM states")
                    self._state_bytes = 0
                    conn.execute("INSERT OR REPLACE INTO state (name, value) VALUES ('states_model', ?)", (model,))
        except sqlite3.Error as exc:
            self._failed(exc)

    def clear_verdicts(self, keys: Optional[Iterable[int]] = None) -> None:
        """Forget verdicts (of the given documents, or all) before they are computed again."""
        try:
            with self._transaction() as conn:
                if keys is None:
                    conn.execute("DELETE FROM verdicts")
                    conn.execute("DELETE FROM states")
                else:
                    conn.executemany("DELETE FROM verdicts WHERE doc_key = ?", [(k,) for k in keys])
                    conn.executemany("DELETE FROM states WHERE doc_key = ?", [(k,) for k in keys])
        except sqlite3.Error as exc:
            self._failed(exc)

    def rename_question(self, old: str, new: str) -> None:
        """Move ``old``'s labels and verdicts to ``new`` (a question's text was edited); its
        hidden states are dropped."""
        try:
            with self._transaction() as conn:
                for table in ("labels", "verdicts"):
                    conn.execute(f"DELETE FROM {table} WHERE question = ?", (new,))
                    conn.execute(f"UPDATE {table} SET question = ? WHERE question = ?", (new, old))
                # a state is the prompt's, question included: the new text's come when it is scored
                conn.execute("DELETE FROM states WHERE question IN (?, ?)", (old, new))
        except sqlite3.Error as exc:
            self._failed(exc)

    def set_question_options(self, options: dict[str, dict]) -> None:
        """Replace the per-question options (question -> JSON-able dict)."""
        try:
            self._conn.execute("INSERT OR REPLACE INTO state (name, value) VALUES ('question_options', ?)",
                               (json.dumps(options),))
        except sqlite3.Error as exc:
            self._failed(exc)

    def set_label(self, key: int, question: str, label: Optional[str]) -> None:
        """Label a document's answer to a question 'yes' or 'no'; None removes the label."""
        try:
            if label is None:
                self._conn.execute("DELETE FROM labels WHERE doc_key = ? AND question = ?", (key, question))
            else:
                self._conn.execute(
                    "INSERT OR REPLACE INTO labels (doc_key, question, label) VALUES (?, ?, ?)", (key, question, label)
                )
        except sqlite3.Error as exc:
            self._failed(exc)

    # --- reading --------------------------------------------------------------------------------
    def load(self) -> Session:
        """The whole session, documents in the order they were added."""
        conn = self._conn
        questions = [t for (t,) in conn.execute("SELECT text FROM questions ORDER BY position")]
        row = conn.execute("SELECT value FROM state WHERE name = 'active_question'").fetchone()
        active = int(row[0]) if row and str(row[0]).isdigit() else 0
        active = min(active, max(len(questions) - 1, 0))
        docs: dict[int, StoredDocument] = {}
        for key, name, doc_id, source, text, error, extra in conn.execute(
            "SELECT key, name, doc_id, source, text, error, extra FROM documents ORDER BY key"
        ):
            try:
                more = json.loads(extra or "{}")
            except ValueError:
                more = {}
            doc = Document(
                id=doc_id, text=text, source=source, error=error,
                warnings=list(more.get("warnings") or []), meta=dict(more.get("meta") or {}),
            )
            docs[key] = StoredDocument(key=key, name=name, document=doc)
        for (key, question, verdict, margin, raw_margin, probability, label_mass, tokens, seconds, error,
             windows, window_index, start, end, reasoning, score) in conn.execute(
            "SELECT doc_key, question, verdict, margin, raw_margin, probability, label_mass, tokens, seconds,"
            " error, windows, window_index, window_start, window_end, reasoning, score FROM verdicts"
        ):
            if key in docs:
                docs[key].verdicts[question] = Verdict(
                    document_id=docs[key].document.id, question=question, verdict=verdict,
                    margin=_float(margin), raw_margin=_float(raw_margin), probability=_float(probability),
                    label_mass=_float(label_mass), tokens=tokens, seconds=seconds, error=error,
                    windows=windows, window_index=window_index,
                    window_span=(start, end) if start is not None and end is not None else None,
                    reasoning=reasoning, score=_float(score),
                )
        for key, question, label in conn.execute("SELECT doc_key, question, label FROM labels"):
            if key in docs:
                docs[key].labels[question] = label
        options = _json_dict(conn.execute("SELECT value FROM state WHERE name = 'question_options'").fetchone())
        model = conn.execute("SELECT value FROM state WHERE name = 'states_model'").fetchone()
        if model:
            import numpy as np

            for key, question, data in conn.execute("SELECT doc_key, question, data FROM states"):
                if key in docs and question in docs[key].verdicts:
                    docs[key].states[question] = np.frombuffer(data, dtype="<f2")
        return Session(questions=questions, active_question=active, documents=list(docs.values()),
                       states_model=model[0] if model else "", options=options)


def _upgrade(conn: sqlite3.Connection) -> None:
    """Bring a session written by an older Verdict (or a new one) to SCHEMA_VERSION."""
    if conn.execute("PRAGMA user_version").fetchone()[0] >= SCHEMA_VERSION:
        return
    conn.executescript(_SCHEMA)
    if "reasoning" not in {row[1] for row in conn.execute("PRAGMA table_info(verdicts)")}:
        conn.execute("ALTER TABLE verdicts ADD COLUMN reasoning TEXT")
    if "score" not in {row[1] for row in conn.execute("PRAGMA table_info(verdicts)")}:
        conn.execute("ALTER TABLE verdicts ADD COLUMN score REAL")
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


def _unwritable_folder(folder: Path) -> Optional[str]:
    """Why files can't be created in ``folder`` (created if missing), or None. Tried, not
    guessed from permission bits."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def _json_dict(row: Optional[tuple]) -> dict:
    """The JSON object saved in a `state` row; {} when missing or not an object."""
    try:
        value = json.loads(row[0]) if row and row[0] else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _real(x: float) -> Optional[float]:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _float(x: Optional[float]) -> float:
    return float("nan") if x is None else float(x)
