"""The session controller: what the window shows and keeps, between the window and the worker.

:class:`SessionController` owns the question set and each question's options (app.options), the
documents' rows (through the :class:`ResultsModel`), the user's labels, the refits they trigger, the hidden states kept for
re-calibration, and the :class:`SessionStore` that writes all of it to disk as it changes. It
decides what to score (and what not to) and talks to the scoring thread only through the
:class:`ScoringController`. It opens no dialogs and knows no widgets: the window shows what it
announces (:attr:`message`, :attr:`detailChanged`, :attr:`rowsChanged`, :attr:`modelFailed`).
"""
from __future__ import annotations

import dataclasses
import math
import re
from typing import Callable, Iterable, Mapping, Optional, Sequence

from PySide6.QtCore import QObject, QTimer, Signal, Slot
from PySide6.QtGui import QUndoCommand, QUndoStack

from engine.confidence.calibrate import DEFAULT_MASS_FLOOR, text_key
from engine.confidence.decide import DecisionRule, decide, decide_verdicts, suggest, unseen_ranking
from engine.types import Document, Verdict

from app import calibration, options as question_options, passages
from app.documents import text_document
from app.options import EXAMPLES, THINK, QuestionOptions
from app.session_store import SessionStore
from app.status_area import rate_text
from app.table_model import DONE, ERROR, IDLE, QUEUED, SCORING, DocumentRow, ResultsModel
from app.worker import CANCELLED, FAILED, NO_MODEL, ScoringController

DECIDE_DELAY_MS = 150  # verdicts streaming in are decided over the batch at most this often
REFIT_DELAY_MS = 300  # labels settle this long before a question's calibrator is fitted again (a burst: one refit)
PASSAGE_DELAY_MS = 400  # a document is shown this long before its passages are scored (the labeling loop moves on)
MAX_STATE_BYTES = 512 * 2**20  # hidden states kept in memory for instant re-calibration
MODEL_MENU = "File ▸ Model"  # where the user picks another model (named in messages)


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'s' if n != 1 else ''}"


class SessionController(QObject):
    """Questions, documents, labels, refits and kept states of one session (GUI thread)."""

    message = Signal(str, int)  # status-bar text, timeout in ms (0: stays)
    detailChanged = Signal(object)  # what the detail pane shows may have changed: of this key (None: any)
    rowsChanged = Signal()  # documents were added or removed
    questionsChanged = Signal(list, int)  # the questions and the active one, changed by Undo (for the question bar)
    modelFailed = Signal(str, str, str)  # path, reason, name of the model still in use ('' = none)
    optionsChanged = Signal()  # the active question's options, or whether they can be used, may have changed
    guideChanged = Signal(str)  # what the main view says about labeling the active question ('' = nothing)

    def __init__(self, store: SessionStore, results: ResultsModel, scoring: ScoringController,
                 parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self.store = store
        self.results = results
        self.scoring = scoring
        self._rescore_when_ready = False
        self.undo_stack = QUndoStack(self)  # every change to documents, questions and labels
        self._moved: dict[int, int] = {}  # old key -> new key of documents brought back by Undo
        # (document key, question) -> hidden state at scoring.state_layer, (D,): a probe fitted to
        # new labels is re-applied to every verdict at once instead of scoring everything again.
        # Also in the session database (float16, bounded), so this holds after a relaunch. Beyond
        # MAX_STATE_BYTES (memory) or the store's bound (disk), a probe's verdicts are scored again.
        self.states: dict[tuple[int, str], object] = {}
        self._state_bytes = 0
        self._states_key = ""  # the model (weights and layer) the states come from
        # The keys on screen, top first (set by the window): they are scored first.
        self.visible_keys: Callable[[], list[int]] = list
        # (key, question) -> (the verdict margin it explains, (index, span, margin) or None, number
        # of passages); the
        # deciding passage of a one-window document (app.passages), computed when it is shown.
        self.passages: dict[tuple[int, str], tuple[float, Optional[tuple], int]] = {}
        self._passage_jobs: dict[int, tuple[int, str, float, list[tuple[int, int]]]] = {}
        self._passages_done: set[tuple[int, str]] = set()  # (key, question) whose passages are all scored
        self._passage_wanted: Optional[tuple[int, str]] = None  # the (key, question) shown, to explain
        self._passage_timer = QTimer(self)
        self._passage_timer.setSingleShot(True)
        self._passage_timer.setInterval(PASSAGE_DELAY_MS)
        self._passage_timer.timeout.connect(self._ask_for_passages)
        self.options: dict[str, QuestionOptions] = {}  # per question (kept for questions closed, like labels)
        self._examples_sent: list = []  # the worked examples the worker has (engine.types.Example)
        self._refit_dirty: set[str] = set()  # questions whose labels changed since their last refit
        self.refit_rescored = 0  # labeled documents sent to refits without a kept answer (scored again)
        self._refit_timer = QTimer(self)
        self._refit_timer.setSingleShot(True)
        self._refit_timer.setInterval(REFIT_DELAY_MS)
        self._refit_timer.timeout.connect(self._refit_labeled)
        self.rule = DecisionRule()  # the target precision of every call (Settings.target_precision)
        self._decide_dirty: set[str] = set()  # questions with verdicts not yet decided over the batch
        self._fitted_here: set[str] = set()  # questions whose calibrator was fitted to this table's labels
        self._skipped: dict[str, set[int]] = {}  # question -> keys the user skipped in the labeling loop
        self._decide_timer = QTimer(self)
        self._decide_timer.setSingleShot(True)
        self._decide_timer.setInterval(DECIDE_DELAY_MS)
        self._decide_timer.timeout.connect(self._redecide_dirty)
        s = scoring
        s.modelReady.connect(self._on_model_ready)
        s.modelFailed.connect(self._on_model_failed)
        s.verdictArrived.connect(self._on_verdict)
        s.rowsScoring.connect(self._on_rows_scoring)
        s.documentParts.connect(self._on_document_parts)
        s.rowsStopped.connect(self._on_rows_stopped)
        s.calibratorChanged.connect(self._on_calibrator_changed)
        s.refitFinished.connect(self._on_refit_finished)
        s.refitFailed.connect(self._on_refit_failed)
        s.passagesReady.connect(self._on_passages_ready)
        s.busyChanged.connect(self._on_busy_changed)

    # ---------------------------------------------------------------------------------------- state
    @property
    def questions(self) -> list[str]:
        return self.results.questions

    @property
    def active_question(self) -> Optional[str]:
        questions = self.results.questions
        return questions[self.results.active_question] if questions else None

    def restore(self) -> tuple[list[str], int]:
        """Fill the table from the store; returns (questions, active) for the question bar."""
        session = self.store.load()
        self.results.set_questions(session.questions, session.active_question)
        rows = []
        for stored in session.documents:
            row = DocumentRow(stored.key, stored.name, stored.document, verdicts=stored.verdicts, labels=stored.labels)
            row.settle(session.questions)
            rows.append(row)
            for question, state in stored.states.items():
                self._keep_state(stored.key, question, state)
        self._states_key = session.states_model
        self.results.add_rows(rows)
        self.options = {q: QuestionOptions.from_dict(saved) for q, saved in session.options.items()}
        self.redecide()
        self._send_examples()
        self.scoring.set_thinking(question_options.thinking(self.options))
        self.rowsChanged.emit()
        self.optionsChanged.emit()
        return session.questions, session.active_question

    # ---------------------------------------------------------------------------------------- documents
    def add_text(self, text: str) -> Optional[int]:
        """Pasted or dropped text becomes a document; returns its key."""
        if not text.strip():
            return None
        numbers = [int(m.group(1)) for r in self.results.rows if (m := re.fullmatch(r"pasted-(\d+)", r.document.id))]
        keys = self.add_documents([text_document(text, max(numbers, default=0) + 1)])
        return keys[0] if keys else None

    def add_documents(self, items: Sequence[tuple[str, Document]]) -> list[int]:
        """Add (display name, document) pairs as rows, save them, and score them."""
        if not items:
            return []
        keys = self.store.add_documents(items)
        rows = [DocumentRow(key, name, doc) for key, (name, doc) in zip(keys, items)]
        for row in rows:
            row.settle(self.results.questions)
        self.results.add_rows(rows)
        self._score([row for row in rows if row.status != ERROR])
        self.rowsChanged.emit()
        failed = sum(row.status == ERROR for row in rows)
        text = f"Added {plural(len(rows), 'document')}"
        self.message.emit(text + (f"; {failed} could not be read (red rows)" if failed else ""), 8000)
        return keys

    def duplicates(self, items: Sequence[tuple[str, Document]]) -> list[int]:
        """Positions in ``items`` of documents already in the session (or earlier in ``items``):
        the same file, or the same pasted text."""
        seen = {self._identity(r.document) for r in self.results.rows}
        found = []
        for n, (_, doc) in enumerate(items):
            identity = self._identity(doc)
            if identity in seen:
                found.append(n)
            seen.add(identity)
        return found

    @staticmethod
    def _identity(doc: Document) -> tuple:
        """A file's path; for an item in a file (a table's row, a message, an archive member)
        the file and the item's id (and row number: ids from a column may repeat)."""
        if not doc.source:
            return ("text", doc.text)
        return ("file", doc.source) if doc.id == doc.source else ("item", doc.source, doc.id, doc.meta.get("row"))

    def key(self, key: int) -> int:
        """The key a document has now (documents brought back by Undo get new keys)."""
        while key in self._moved:
            key = self._moved[key]
        return key

    def remove_documents(self, keys: Sequence[int]) -> None:
        """Remove these documents from the session (Undo brings them back)."""
        if keys:
            self.undo_stack.push(_RemoveDocuments(self, list(keys)))

    def _remove(self, keys: list[int]) -> list[tuple[int, DocumentRow]]:
        """Remove rows; returns (position, row) pairs, first to last, for Undo."""
        removed = sorted((self.results.row_number(k), self.results.row_for_key(k)) for k in keys
                         if self.results.row_for_key(k) is not None)
        self.scoring.forget_keys({row.key for _, row in removed})
        self._forget_states([row.key for _, row in removed])
        self.results.remove_keys([row.key for _, row in removed])
        self.store.remove_documents([row.key for _, row in removed])
        self.rowsChanged.emit()
        if any(row.labels for _, row in removed):
            self._refit_timer.start()  # labeled documents shown as examples may have gone
        return removed

    def _restore(self, removed: list[tuple[int, DocumentRow]]) -> None:
        """Put removed rows back where they were, with their verdicts and labels (new keys)."""
        keys = self.store.add_documents([(row.name, row.document) for _, row in removed])
        for (n, row), key in zip(removed, keys):
            self._moved[row.key] = key
            row.key = key
            row.stale.clear()
            self.store.save_verdicts([(key, v) for v in row.verdicts.values()])
            for question, label in row.labels.items():
                self.store.set_label(key, question, label)
            row.settle(self.results.questions)
            self.results.insert_row(n, row)
        self.rowsChanged.emit()
        if any(row.labels for _, row in removed):
            self._refit_timer.start()
        self.score_missing()

    # ---------------------------------------------------------------------------------------- questions
    def submit_questions(self, questions: list[str], active: int) -> None:
        """The question bar committed ``questions``. A new question is scored for itself only; an
        edited one is a rename (its labels and calibrator stay) scored again for itself; the
        same questions again score everything again. Old answers stay, dimmed, until replaced.
        Every change to the questions is one step on the undo stack."""
        old = self.results.questions
        if questions == old:
            if active != self.results.active_question:  # a question asked already is shown, not scored again
                self.set_active(active)
                return
            self.rescore_all()
            self.detailChanged.emit(None)
            return
        renamed = {}
        if len(questions) == len(old):
            renamed = {o: n for o, n in zip(old, questions) if o != n and n not in old}
        added = [q for q in questions if q not in old and q not in renamed.values()]
        text = "Edit Question" if renamed else "New Question" if added else "Close Question"
        self.undo_stack.push(_EditQuestions(self, (old, self.results.active_question), (questions, active),
                                            renamed, text))

    def _edit_questions(self, questions: list[str], active: int, renamed: dict[str, str]) -> None:
        """Show ``questions``: ``renamed`` (old -> new text) keep their labels and options and are
        scored again, questions not asked before are scored, the others keep their answers."""
        old = self.results.questions
        added = [q for q in questions if q not in old and q not in renamed.values()]
        for before, after in renamed.items():
            self.store.rename_question(before, after)
            self.results.rename_question(before, after)
            self._forget_states(questions=set(questions) - {after})
            if before in self.options:
                self.options[after] = self.options.pop(before)
        self.store.set_questions(questions, active)
        self.results.set_questions(questions, active)
        if renamed:
            self.store.set_question_options(self._saved_options())
            self._send_examples()  # the examples answer the question in its new words
            self.scoring.set_thinking(question_options.thinking(self.options))
        for question in renamed.values():
            self._refit_now(question)  # the labels came along: the calibrator comes from them again
        if renamed or added:
            self.score_questions([*renamed.values(), *added])
        self.questionsChanged.emit(questions, active)
        self.detailChanged.emit(None)
        self.optionsChanged.emit()

    def _unedit_questions(self, questions: list[str], active: int, renamed: dict[str, str],
                          verdicts: dict[str, dict[int, Verdict]], options: dict[str, QuestionOptions],
                          labels: dict[str, dict[int, Optional[str]]]) -> None:
        """Undo of :meth:`_edit_questions`: the old texts, their answers, labels and options, as before."""
        self.scoring.cancel_all("undone")  # answers to the edited questions would replace the old ones
        for before, after in renamed.items():
            self.store.rename_question(after, before)
            self.results.rename_question(after, before)
        for question, by_key in labels.items():
            for key, label in by_key.items():
                key = self.key(key)
                self.results.set_label(key, question, label)
                self.store.set_label(key, question, label)
        self.options = dict(options)
        self.store.set_question_options(self._saved_options())
        self._send_examples()
        self.scoring.set_thinking(question_options.thinking(self.options))
        self._set_questions(questions, active, verdicts)
        for question in renamed:
            self._refit_now(question)
        self.score_missing()

    def remove_question(self, questions: list[str], active: int) -> None:
        """A question was closed: its column goes; nothing is scored (Undo brings it back)."""
        self.undo_stack.push(_SetQuestions(self, (self.results.questions, self.results.active_question),
                                           (questions, active), "Close Question"))

    def clear(self) -> None:
        """A new session: no documents, no questions (one Undo brings both back)."""
        self.scoring.cancel_all("new session")
        self.undo_stack.beginMacro("New Session")
        self.remove_documents([r.key for r in self.results.rows])
        if self.results.questions:
            self.undo_stack.push(_SetQuestions(self, (self.results.questions, self.results.active_question),
                                               ([], 0), "Close Questions"))
        self.undo_stack.endMacro()

    def _set_questions(self, questions: list[str], active: int, verdicts: dict[str, dict[int, Verdict]]) -> None:
        """Show exactly ``questions``, with ``verdicts`` (question -> key -> verdict) put back."""
        live = self.scoring.live_keys()
        self.store.set_questions(questions, active)
        self.results.set_questions(questions, active)
        self._forget_states(questions=set(questions))
        back = []
        for question, by_key in verdicts.items():
            for key, verdict in by_key.items():
                row = self.results.row_for_key(self.key(key))
                if row is not None and question in questions:
                    row.verdicts[question] = verdict
                    row.stale.discard(question)
                    back.append((row.key, verdict))
        self.store.save_verdicts(back)
        for row in self.results.rows:
            if row.key not in live:
                row.settle(questions)
        self.results.replace_verdicts(back)  # repaints
        if not questions:
            self.scoring.cancel_all()
        self.questionsChanged.emit(questions, active)
        self.detailChanged.emit(None)
        self.optionsChanged.emit()

    def set_active(self, active: int) -> None:
        self.results.set_active_question(active)
        self.store.set_active_question(active)
        self.update_guide()
        self.detailChanged.emit(None)
        self.optionsChanged.emit()

    # ---------------------------------------------------------------------------------------- options
    def options_for(self, question: Optional[str]) -> QuestionOptions:
        """The options of ``question`` (all off for one never set, or None)."""
        return self.options.get(question, QuestionOptions()) if question else QuestionOptions()

    def set_option(self, question: Optional[str], name: str, on: bool) -> None:
        """Turn option ``name`` (app.options.EXAMPLES or THINK) of ``question`` on or off; saved
        with the session. Its column is scored again when that changes what the model is asked
        (with examples, after its calibrator is fitted again to read margins of the same prompt)."""
        if question not in self.results.questions or getattr(self.options_for(question), name) == on:
            return
        setattr(self.options.setdefault(question, QuestionOptions()), name, on)
        self.store.set_question_options(self._saved_options())
        self.optionsChanged.emit()
        self.scoring.set_thinking(question_options.thinking(self.options))
        if name == EXAMPLES and question in self._send_examples():
            self._refit_now(question)
            self.score_questions([question])
        elif name == THINK and self.scoring.can_think:
            self.score_questions([question])
        self.detailChanged.emit(None)

    def _saved_options(self) -> dict[str, dict]:
        return {q: saved for q, o in self.options.items() if (saved := o.to_dict())}

    def _send_examples(self) -> set[str]:
        """Give the worker the worked examples the options and labels call for now; returns the
        questions whose examples changed."""
        examples = question_options.worked_examples(self.results.rows, self.options)
        if examples == self._examples_sent:
            return set()
        old = self._examples_sent
        changed = {q for q in {e.question for e in examples + old}
                   if [e for e in examples if e.question == q] != [e for e in old if e.question == q]}
        self._examples_sent = examples
        self.scoring.set_examples(examples)
        return changed

    # ---------------------------------------------------------------------------------------- scoring
    def rescore_all(self) -> None:
        """Score every readable document again, for every question; the old answers stay (dimmed)
        until the new ones replace them, and come back if scoring is cancelled."""
        self.scoring.cancel_all("replaced by a new request")
        self.score_questions(self.results.questions)

    def score_questions(self, questions: list[str]) -> None:
        """Score every readable document for ``questions`` only (the other columns keep theirs)."""
        rows = [r for r in self.results.rows if not r.document.error]
        if not rows or not questions:
            return
        self.results.mark_stale([r.key for r in rows], questions)
        self._score(rows, questions)

    def score_missing(self) -> None:
        """Score each document not being scored for the questions it has no answer to."""
        live = self.scoring.live_keys()
        groups: dict[tuple[str, ...], list[DocumentRow]] = {}
        for row in self.results.rows:
            missing = tuple(q for q in self.results.questions if q not in row.verdicts)
            if row.status != ERROR and row.key not in live and (missing or row.status == IDLE):
                groups.setdefault(missing or tuple(self.results.questions), []).append(row)
        for questions, rows in groups.items():
            self._score(rows, list(questions))

    def _score(self, rows: list[DocumentRow], questions: Optional[list[str]] = None) -> None:
        questions = self.results.questions if questions is None else questions
        rows = [r for r in rows if not r.document.error]
        if not rows:
            return
        if not questions:
            self.results.set_status([r.key for r in rows], IDLE, "Ask a question to score this document")
            return
        rows = self._visible_first(rows)
        keys = [r.key for r in rows]
        self.results.set_status(keys, QUEUED)
        self.detailChanged.emit(None)  # the pane says "Queued" as the rows do, before progress is reported
        self.scoring.score(keys, [r.document for r in rows], questions)

    def _visible_first(self, rows: list[DocumentRow]) -> list[DocumentRow]:
        """``rows`` with those on screen first (top to bottom), then the others in table order."""
        rank = {key: n for n, key in enumerate(self.visible_keys())}
        return sorted(rows, key=lambda r: rank.get(r.key, len(rank)))  # stable: the rest keep their order

    def cancel(self) -> None:
        """Stop scoring; documents not scored yet say so."""
        if self.scoring.busy:
            self.scoring.cancel_all("cancelled")
            self.message.emit("Scoring cancelled", 8000)

    @Slot(int, object)
    def _on_verdict(self, key: int, verdict: Verdict) -> None:
        state, verdict.hidden = verdict.hidden, None  # the state is kept here and in its own table, not in the row
        row = self.results.set_verdict(key, verdict)
        if row is None:
            return
        self._keep_state(key, verdict.question, state)
        self.store.save_verdicts([(key, verdict)], {(key, verdict.question): state} if state is not None else None)
        self._decide_dirty.add(verdict.question)
        if not self._decide_timer.isActive():  # not restarted: calls follow a stream of verdicts
            self._decide_timer.start()
        self.detailChanged.emit(key)

    # ---------------------------------------------------------------------------------------- decisions
    def set_target(self, target: float) -> None:
        """Call a verdict only where it is right with at least this probability; decide again."""
        self.rule = DecisionRule(target=target)
        self.redecide()

    def redecide(self, questions: Optional[Sequence[str]] = None, guide: bool = True) -> None:
        """Decide each question's verdicts again over every document of the session (the same
        `decide_verdicts` as the CLI's and the API's batch decisions), with the labels given here
        held at their answers. Numpy only: nothing is scored."""
        wanted = [q for q in (questions if questions is not None else self.results.questions)
                  if q in self.results.questions]
        for question in wanted:
            self._decide_dirty.discard(question)
            rows = [r for r in self.results.rows if question in r.verdicts and question not in r.stale]
            batch = [dataclasses.replace(r.verdicts[question], document_index=r.key) for r in rows]
            pinned = {r.key: r.labels[question] == "yes" for r in rows if r.labels.get(question) in ("yes", "no")}
            cal = self.scoring.calibrators.get(question)
            pinned_scores, extra, unseen = self._anchored(question, rows, pinned)
            decided = decide_verdicts(batch, self.rule, pinned=pinned, extra=extra,
                                      mass_floor=cal.mass_floor if cal is not None else DEFAULT_MASS_FLOOR,
                                      prior=self._prior(question), pinned_scores=pinned_scores, unseen_auc=unseen)
            changed = []
            for row, new in zip(rows, decided):
                old = row.verdicts[question]
                same = new.verdict == old.verdict and (new.probability == old.probability or (
                    math.isnan(new.probability) and math.isnan(old.probability)))
                if not same:
                    changed.append((row.key, dataclasses.replace(new, document_index=old.document_index)))
            if changed:
                self.results.replace_verdicts(changed)
                self.store.save_verdicts(changed)
        if wanted:
            self.detailChanged.emit(None)
        if guide and self.active_question in wanted:
            self.update_guide()

    def _anchored(self, question: str, rows: Sequence, pinned: Mapping[int, bool]
                  ) -> tuple[dict[int, float], list[tuple[float, bool]], Optional[float]]:
        """What the question's calibrator says of its labeled documents, for deciding `rows` with
        the labels `pinned` (row key -> yes): the score each labeled row is decided by (the one its
        calibrator kept for it, as in the pipeline's decisions), its labeled documents outside the
        session (a calibrator fitted elsewhere, on a CLI run's labels, brings them along as the
        CLI's later runs use them; one fitted here has them in the table already), and how well
        scores that did not see the labels rank them (None while the labels differ from those it
        was fitted on: then the decision reads it off the labeled scores)."""
        cal = self.scoring.calibrators.get(question)
        if cal is None:
            return {}, [], None
        labeled_keys = {r.key: text_key(r.document.text) for r in rows if r.key in pinned}
        pinned_scores = {k: cal.anchors[key][0] for k, key in labeled_keys.items()
                         if key in cal.anchors and cal.anchors[key][1] == pinned[k]}
        extra = []
        if question not in self._fitted_here:
            here = {text_key(r.document.text) for r in rows}
            extra = [anchor for key, anchor in cal.anchors.items() if key not in here]
        current = len(pinned_scores) == len(pinned) and len(pinned) + len(extra) == len(cal.anchors)
        return pinned_scores, extra, cal.unseen_auc if current else None

    @Slot(bool)
    def _on_busy_changed(self, busy: bool) -> None:
        if not busy:
            self._decide_timer.stop()
            self.redecide(sorted(self._decide_dirty), guide=False)
            self.update_guide()

    @Slot()
    def _redecide_dirty(self) -> None:
        # while verdicts stream in, the labeling guide waits for the end of the job
        self.redecide(sorted(self._decide_dirty), guide=not self.scoring.busy)

    def _batch(self, question: str) -> tuple[list, list[float], dict[int, bool], Optional[float]]:
        """The question's scored rows, their scores (a labeled row's: the one its calibrator kept
        for it, as `redecide` decides it), their labels (index -> yes), and how well scores that did
        not see the labels rank them (None: read off the labeled scores)."""
        rows = [r for r in self.results.rows if question in r.verdicts and question not in r.stale
                and r.verdicts[question].ok and math.isfinite(r.verdicts[question].score)]
        labels = {i: r.labels[question] == "yes" for i, r in enumerate(rows) if r.labels.get(question) in ("yes", "no")}
        pinned_scores, _, unseen = self._anchored(question, rows, {rows[i].key: y for i, y in labels.items()})
        return rows, [pinned_scores.get(r.key, r.verdicts[question].score) for r in rows], labels, unseen

    def _prior(self, question: str):
        """The Platt prior of the question's score (`Calibrator.platt_prior`), for its decisions."""
        cal = self.scoring.calibrators.get(question)
        return cal.platt_prior if cal is not None else None

    def suggested(self, question: Optional[str] = None, count: int = 3, exclude: Iterable[int] = ()) -> list[int]:
        """Keys of the documents whose labels would bring the most calls for ``question`` (the
        active one by default), best first; skipped and ``exclude``d ones left out."""
        question = question or self.active_question
        if question is None:
            return []
        rows, scores, labels, unseen = self._batch(question)
        unwanted = self._skipped.get(question, set()) | set(exclude)
        picks = (suggest(scores, labels, self.rule, count + len(unwanted), prior=self._prior(question),
                         unseen_auc=unseen)
                 if len(rows) > len(labels) else [])
        return [rows[i].key for i in picks if rows[i].key not in unwanted][:count]

    def _first_calls(self, scores: list[float], labels: dict[int, bool], picks: list[int],
                     prior=None) -> Optional[int]:
        """About how many of the suggested documents (`picks`, best first), each answered as the
        model leans now, bring the first calls; None when more are needed. `prior`: the score's
        Platt prior (`Calibrator.platt_prior`)."""
        if not picks:
            return None
        now = decide(scores, labels, self.rule, prior)
        quick = dataclasses.replace(self.rule, refits=0)
        for m in range(1, len(picks) + 1):
            guess = {**labels, **{i: bool(now.probability[i] >= 0.5) for i in picks[:m]}}
            if decide(scores, guess, quick, prior).called > len(guess):
                return m
        return None

    def update_guide(self) -> None:
        """Say in the main view how the active question's calls stand, and mark the documents to
        label next."""
        question = self.active_question
        if question is None:
            self.results.set_suggested([])
            self.guideChanged.emit("")
            return
        rows, scores, labels, unseen = self._batch(question)
        if len(rows) < 2:
            self.results.set_suggested([])
            self.guideChanged.emit("")
            return
        skipped = self._skipped.get(question, set())
        # one search serves the stars and the count of labels to the first calls
        prior = self._prior(question)
        picks = (suggest(scores, labels, self.rule, 4 + len(skipped), prior=prior, unseen_auc=unseen)
                 if len(rows) > len(labels) else [])
        self.results.set_suggested([rows[i].key for i in picks if rows[i].key not in skipped][:3])
        free = [r for i, r in enumerate(rows) if i not in labels]
        called = sum(r.verdicts[question].verdict in ("yes", "no") for r in free)
        n_yes = sum(labels.values())
        n_no = len(labels) - n_yes
        decision = self.rule.decision_for(min(n_yes, n_no), prior)
        start = self.rule.calls_from(min(n_yes, n_no), prior)
        target = f"{self.rule.target:.0%}"
        keys_help = "Y yes · N no · S skip"
        if not free:
            text = f"Every document is labeled for this question ({len(rows)})."
        elif called == 0 and decision == "none" and start is not None:
            text = (f"No yes or no until {start} yes and {start} no labels (now {n_yes} and {n_no}): with fewer, "
                    f"none was right {target} of the time. Label the ★ documents ({keys_help}).")
        elif called == 0 and decision != "none" and self.rule.holds_back(
                min(n_yes, n_no), ranked := unseen_ranking(scores, labels, unseen)):
            text = (f"No yes or no yet: the labels disagree with the ranking (scored as unseen, they rank at AUC "
                    f"{ranked:.2f}; calls need {self.rule.unseen_auc_floor(min(n_yes, n_no)):.2f}). Label more ★ "
                    f"documents ({keys_help}).")
        elif called == 0 and decision == "mixture" and math.isinf(self.rule.gate):
            text = (f"No yes or no at {target}: no rule was measured to make calls right that often (see the "
                    f"README). P(yes) still ranks the documents; to see calls where they fall into two clear "
                    f"groups, choose a lower bar in Questions ▸ Call Yes or No When Right. "
                    f"Labels ({keys_help}) tune the ranking.")
        elif called == 0:
            needed = self._first_calls(scores, labels, picks[:4], prior)
            how = (f"about {plural(needed, 'label')} should bring the first calls" if needed
                   else "a few labels should bring the first calls")
            text = (f"No yes or no yet: none would be right {target} of the time. Label the ★ documents "
                    f"({keys_help}): {how}.")
        else:
            text = (f"{called:,} of {len(free):,} called (each right with probability ≥ {target}), "
                    f"{len(free) - called:,} uncertain. Label the ★ documents next ({keys_help}).")
        self.guideChanged.emit(text)

    def skip(self, key: int) -> None:
        """Leave ``key`` unlabeled for the active question and don't suggest it again."""
        question = self.active_question
        if question is not None:
            self._skipped.setdefault(question, set()).add(key)
            self.update_guide()

    @Slot(list)
    def _on_rows_scoring(self, keys: list[int]) -> None:
        self.results.set_status(keys, SCORING)
        for key in keys:
            self.detailChanged.emit(key)  # the pane says what the row says

    @Slot(int, int, int)
    def _on_document_parts(self, key: int, done: int, total: int) -> None:
        self.results.set_parts(key, done, total)
        self.detailChanged.emit(key)

    @Slot(list, str, str)
    def _on_rows_stopped(self, keys: list[int], outcome: str, reason: str) -> None:
        if outcome == FAILED:
            for key in keys:
                row = self.results.row_for_key(key)
                if row is None:
                    continue
                for q in self.results.questions:
                    if q not in row.verdicts:
                        v = Verdict(document_id=row.document.id, question=q, verdict="error",
                                    error=f"scoring failed: {reason}")
                        self.results.set_verdict(key, v)
                        self.store.save_verdicts([(key, v)])
            return
        note = {CANCELLED: "Cancelled — press Return in the question to score again",
                NO_MODEL: f"No model is loaded — choose one with {MODEL_MENU}"}.get(outcome, reason)
        self.results.stop(keys, note)
        self.detailChanged.emit(None)

    def summary(self, rate: float) -> str:
        """The status-bar line when scoring stops."""
        done = sum(r.status == DONE for r in self.results.rows)
        errors = sum(r.status == ERROR for r in self.results.rows)
        parts = [f"{done:,} of {plural(len(self.results.rows), 'document')} scored"]
        if errors:
            parts.append(f"{errors} failed")
        if rate > 0:
            parts.append(rate_text(rate))
        return " · ".join(parts)

    # ---------------------------------------------------------------------------------------- model
    def open_model(self, path: Optional[str]) -> None:
        """Switch to another model (None: the embedded default); the documents are scored again."""
        self.scoring.cancel_all("switching models")
        self._rescore_when_ready = True
        self.scoring.load_model(path)

    @Slot(str, str)
    def _on_model_ready(self, name: str, path: str) -> None:
        if self.scoring.states_key != self._states_key:  # the states belong to another model (or layer)
            self._forget_states()
            self._states_key = self.scoring.states_key
        self.store.set_states_model(self._states_key)
        self.optionsChanged.emit()  # whether this model can think
        self.scoring.resolve_calibrators(self.results.questions)
        if self._rescore_when_ready and self.results.questions:
            self._rescore_when_ready = False
            self.score_questions(self.results.questions)
        else:
            self._rescore_when_ready = False
            self.score_missing()

    @Slot(str, str, str)
    def _on_model_failed(self, path: str, reason: str, still_in_use: str) -> None:
        self._rescore_when_ready = False
        self.modelFailed.emit(path, reason, still_in_use)
        if still_in_use:
            self.score_missing()

    # ---------------------------------------------------------------------------------------- labels
    def set_label(self, key: int, question: str, label: Optional[str]) -> None:
        """Record the right answer to ``question`` for document ``key`` ('yes', 'no' or None).
        Nothing is scored: the question's calibrator is fitted again and re-applied (Undo-able)."""
        row = self.results.row_for_key(key)
        if row is not None and row.labels.get(question) != label:
            self.undo_stack.push(_SetLabel(self, key, question, row.labels.get(question), label))

    def _apply_label(self, key: int, question: str, label: Optional[str]) -> None:
        key = self.key(key)
        self.results.set_label(key, question, label)
        self.store.set_label(key, question, label)
        self.redecide([question])  # the label anchors the batch's decision now; a refit follows
        self._refit_dirty.add(question)
        self._refit_timer.start()  # restarts: one refit after the last of a burst of labels
        self.detailChanged.emit(None)  # the pane counts this question's labels, whichever document is shown

    def toggle_label(self, key: int, label: str) -> None:
        """Label ``key`` for the active question, or clear the label if it is already ``label``."""
        question = self.active_question
        row = self.results.row_for_key(key)
        if question is None or row is None:
            return
        self.set_label(key, question, None if row.labels.get(question) == label else label)

    def next_uncertain(self, keys: Sequence[int], current: Optional[int]) -> Optional[int]:
        """Of ``keys`` (the rows shown), the unlabeled one whose label would bring the most calls
        for the active question (the labeling loop's next document), other than ``current``."""
        shown = set(keys)
        for key in self.suggested(count=8, exclude=[current] if current is not None else []):
            if key in shown:
                return key
        question = self.active_question
        for key in keys:  # every suggestion is hidden by the filter: the first uncertain one shown
            row = self.results.row_for_key(key)
            verdict = row.verdicts.get(question) if row is not None and question else None
            if key != current and verdict is not None and verdict.verdict == "uncertain" and question not in row.labels:
                return key
        return None

    def _refit_now(self, question: str, prompt_changed: bool = False) -> None:
        """Fit ``question``'s calibrator to its labels on the worker, from the labeled documents'
        kept answers and states; only those without them (or all, when ``prompt_changed``) are
        scored again, and the status bar says so."""
        if not calibration.enough_labels(self.label_counts(question)):
            return
        documents, labels, kept = calibration.refit_request(
            self.results.rows, question, {} if prompt_changed else self.states, self.scoring.state_layer)
        self.scoring.refit(question, documents, labels, kept)
        again = len(documents) - len(kept)
        self.refit_rescored += again
        if again:
            self.message.emit(f"Recalibrating “{_short(question)}”: scoring {plural(again, 'labeled document')} "
                              "again (their kept answers are not at hand)…", 0)

    def label_counts(self, question: str) -> tuple[int, int]:
        return calibration.label_counts(self.results.rows, question)

    def refit_pending(self, question: str) -> bool:
        """True while a refit of ``question``'s calibrator waits for labels to settle or runs."""
        return self.scoring.refitting(question) or (question in self._refit_dirty and self._refit_timer.isActive())

    def calibration_notes(self) -> dict[str, list[str]]:
        """Per question, the sentences on its calibrator and options that the detail pane shows."""
        return {q: calibration.describe(self.scoring.calibrators.get(q), self.label_counts(q), self.refit_pending(q))
                + question_options.describe(self.options_for(q), self.label_counts(q), self.scoring.can_think)
                for q in self.results.questions}

    def basis(self) -> dict[str, str]:
        """Per question, what its verdicts rest on, in plain words."""
        return {q: calibration.basis(self.scoring.calibrators.get(q)) for q in self.results.questions}

    @Slot()
    def _refit_labeled(self) -> None:
        """Labels settled: fit each changed question with enough labels again (on the worker)."""
        dirty, self._refit_dirty = self._refit_dirty, set()
        shown = self._send_examples()  # before the refits: they score the labeled documents with them
        for question in self.results.questions:
            if question in dirty or question in shown:
                self._refit_now(question, prompt_changed=question in shown)
        self.score_questions([q for q in self.results.questions if q in shown])  # the prompt changed
        self.detailChanged.emit(None)

    @Slot(str, object)
    def _on_calibrator_changed(self, question: str, cal: object) -> None:
        """A question's calibrator became known (model loaded, question asked, relaunch). Labels
        that changed since it was fitted (the app closed before the refit) are fitted again."""
        counts = self.label_counts(question)
        fitted_on = tuple(cal.n_labels) if cal.method != "margin" else (0, 0)
        if calibration.enough_labels(counts) and counts != fitted_on and not self.refit_pending(question):
            self._refit_dirty.add(question)
            self._refit_timer.start()
        self.redecide([question])  # its mass floor and labeled documents may differ from what was assumed
        self.detailChanged.emit(None)

    @Slot(str, object)
    def _on_refit_finished(self, question: str, cal: object) -> None:
        """Re-apply the new calibrator to the question's verdicts from their raw margins (and kept
        states); documents whose state is not at hand are scored again for this question. When
        the question thinks about its uncertain ones, those (now uncertain, or thought about
        before) are scored again too: whether the model thinks depends on the calibrator."""
        if question not in self.results.questions:
            return
        self._fitted_here.add(question)
        # the kept state is after one layer: it serves only a calibrator that reads that layer
        layer_ok = not cal.layers or cal.layers[0] == self.scoring.state_layer
        thinks = self.options_for(question).think and self.scoring.can_think
        live = self.scoring.live_keys()
        changed, again, flipped = [], [], 0
        for row in self.results.rows:
            verdict = row.verdicts.get(question)
            if verdict is None or question in row.stale:  # a stale one is being replaced anyway
                continue
            state = self.states.get((row.key, question)) if layer_ok else None
            new = calibration.reapply(cal, verdict, state)
            if new is verdict:  # an error: nothing to calibrate
                continue
            if thinks and new is not None and (verdict.reasoning or new.verdict == "uncertain"):
                new = None
            if new is not None:
                changed.append((row.key, new))
                flipped += new.verdict != verdict.verdict and question not in row.labels
            elif row.key not in live:  # a live job brings a verdict from the new calibrator anyway
                again.append(row)
        self.results.replace_verdicts(changed)
        self.store.save_verdicts(changed)
        self.redecide([question])
        if again:
            keys = [r.key for r in again]
            self.results.set_status(keys, QUEUED, "Scored again for the new calibrator")
            self.scoring.score(keys, [r.document for r in again], [question])
        text = (f"Recalibrated “{_short(question)}” with {calibration.summary(cal)}: "
                f"{plural(flipped, 'unlabeled answer')} changed")
        if again:
            text += f", {plural(len(again), 'document')} being scored again"
        self.message.emit(text, 8000)
        self.detailChanged.emit(None)

    @Slot(str, str)
    def _on_refit_failed(self, question: str, reason: str) -> None:
        self.message.emit(f"Could not calibrate from the labels: {reason}", 8000)
        self.detailChanged.emit(None)

    # ---------------------------------------------------------------------------------------- passages
    def passage(self, key: int, question: Optional[str]) -> Optional[tuple]:
        """(passage number, passages, span, calibrated margin) of the deciding passage of
        document ``key``'s one-window answer to ``question``, once known; (None, passages, None,
        nan) when they are scored and none points to the answer (no single passage decides it);
        else None. Asks for it (scored in the background) once the document has been shown for
        PASSAGE_DELAY_MS, and again when the answer changed."""
        verdict = self._explainable(key, question)
        if verdict is None:
            return None
        known = self.passages.get((key, question))
        if known is not None and known[0] == verdict.margin:
            _, found, count = known
            if found is None:  # (count 0: not a candidate in it; else still being scored, or none decides)
                return (None, count, None, math.nan) if (key, question) in self._passages_done else None
            return found[0], count, found[1], found[2]
        # Passages are scored on the scoring thread, like refits: one asked for at every document
        # the labeling loop passes would queue refits behind explanations nobody reads.
        if self._passage_wanted != (key, question) or not self._passage_timer.isActive():
            self._passage_wanted = (key, question)
            self._passage_timer.start()
        return None

    def _explainable(self, key: int, question: Optional[str]) -> Optional[Verdict]:
        """Document ``key``'s answer to ``question`` when it is one whose passages can explain it."""
        row = self.results.row_for_key(key)
        verdict = row.verdicts.get(question) if row is not None and question else None
        if verdict is None or not verdict.ok or verdict.windows > 1 or question in row.stale:
            return None
        return verdict

    @Slot()
    def _ask_for_passages(self) -> None:
        """The document wanted has been shown long enough: score its passages (unless a refit of
        its question is pending: the refit changes the answer, and it goes first; the pane asks
        again after it)."""
        if self._passage_wanted is None:
            return
        key, question = self._passage_wanted
        verdict = self._explainable(key, question)
        known = self.passages.get((key, question))
        if verdict is None or self.refit_pending(question) or (known is not None and known[0] == verdict.margin):
            return
        for job, (other, *rest) in list(self._passage_jobs.items()):
            if other != key:  # a document no longer shown: its explanation would only delay what is
                self.scoring.cancel_passages(job)
                del self._passage_jobs[job]
                self.passages.pop((other, rest[0]), None)  # asked for again when it is shown again
        row = self.results.row_for_key(key)
        spans = passages.split_passages(row.document.text)
        self.passages[(key, question)] = (verdict.margin, None, len(spans))
        self._passages_done.discard((key, question))
        if spans:
            parts = [Document(id=f"{row.document.id}#{n + 1}", text=row.document.text[a:b]) for n, (a, b) in enumerate(spans)]
            job = self.scoring.score_passages(question, parts)
            self._passage_jobs[job] = (key, question, verdict.margin, spans)

    @Slot(int, str, object)
    def _on_passages_ready(self, job: int, question: str, margins: list) -> None:
        request = self._passage_jobs.pop(job, None)
        if request is None:
            return
        key, question, explained, spans = request
        if len(margins) == len(spans):
            self.passages[(key, question)] = (explained, passages.deciding_passage(explained, spans, margins), len(spans))
            self._passages_done.add((key, question))
            self.detailChanged.emit(key)

    # ---------------------------------------------------------------------------------------- states
    def _keep_state(self, key: int, question: str, state: object) -> None:
        old = self.states.pop((key, question), None)
        if old is not None:
            self._state_bytes -= old.nbytes
        if state is not None and self._state_bytes + state.nbytes <= MAX_STATE_BYTES:
            self.states[(key, question)] = state
            self._state_bytes += state.nbytes

    def _forget_states(self, keys: Optional[Iterable[int]] = None, questions: Optional[set[str]] = None) -> None:
        """Drop kept states: of ``keys`` (None: all), or those of questions not in ``questions``."""
        if keys is None and questions is None:
            self.states.clear()
            self._state_bytes = 0
            return
        keys = set(keys) if keys is not None else None
        for k in list(self.states):
            if (keys is not None and k[0] in keys) or (questions is not None and k[1] not in questions):
                self._state_bytes -= self.states.pop(k).nbytes


class _RemoveDocuments(QUndoCommand):
    def __init__(self, session: SessionController, keys: list[int]) -> None:
        super().__init__(f"Remove {plural(len(keys), 'Document')}")
        self.session, self.keys, self.removed = session, keys, []

    def redo(self) -> None:
        self.removed = self.session._remove([self.session.key(k) for k in self.keys])
        self.keys = [row.key for _, row in self.removed]
        self.session.message.emit(f"Removed {plural(len(self.removed), 'document')} (Undo brings them back)", 8000)

    def undo(self) -> None:
        self.session._restore(self.removed)
        self.keys = [row.key for _, row in self.removed]


class _SetQuestions(QUndoCommand):
    def __init__(self, session: SessionController, before: tuple[list[str], int], after: tuple[list[str], int],
                 text: str) -> None:
        super().__init__(text)
        self.session, self.before, self.after = session, before, after
        gone = set(before[0]) - set(after[0])
        # answers being replaced are kept too: they are what the user saw
        self.verdicts = {q: {r.key: r.verdicts[q] for r in session.results.rows if q in r.verdicts} for q in gone}

    def redo(self) -> None:
        self.session._set_questions(*self.after, {})

    def undo(self) -> None:
        self.session._set_questions(*self.before, self.verdicts)


class _EditQuestions(QUndoCommand):
    """Questions added, renamed (edited) or closed: undo brings back the texts, answers and options before."""

    def __init__(self, session: SessionController, before: tuple[list[str], int], after: tuple[list[str], int],
                 renamed: dict[str, str], text: str) -> None:
        super().__init__(text)
        self.session, self.before, self.after, self.renamed = session, before, after, dict(renamed)
        replaced = set(before[0]) - set(after[0])  # closed, or renamed: their answers go
        self.verdicts = {q: {r.key: r.verdicts[q] for r in session.results.rows if q in r.verdicts}
                         for q in replaced}
        self.options = dict(session.options)
        # a rename moves labels onto the new text, replacing those a closed question of that text left
        touched = {*renamed, *renamed.values()}
        self.labels = {q: {r.key: r.labels.get(q) for r in session.results.rows} for q in touched}

    def redo(self) -> None:
        self.session._edit_questions(*self.after, self.renamed)

    def undo(self) -> None:
        self.session._unedit_questions(*self.before, self.renamed, self.verdicts, self.options, self.labels)


class _SetLabel(QUndoCommand):
    def __init__(self, session: SessionController, key: int, question: str, before: Optional[str],
                 after: Optional[str]) -> None:
        super().__init__(f"Label {after.capitalize()}" if after else "Remove Label")
        self.session, self.key, self.question, self.before, self.after = session, key, question, before, after

    def redo(self) -> None:
        self.session._apply_label(self.key, self.question, self.after)

    def undo(self) -> None:
        self.session._apply_label(self.key, self.question, self.before)


def _short(question: str) -> str:
    """A question cut to 40 characters, for a status-bar message."""
    return question if len(question) <= 40 else question[:39].rstrip() + "…"
