"""The scoring thread and its controller.

MLX streams are thread-local, so exactly one :class:`ScoringWorker` (a QObject moved to one
QThread) loads the model and makes every MLX call. The GUI never calls it directly except
:meth:`ScoringWorker.cancel`, which only sets a flag; everything else goes through queued
signals. :class:`ScoringController` lives on the GUI thread, owns job ids, receives the
worker's signals in its slots (so they run on the GUI thread) and drops results of jobs
that were cancelled or replaced.

Every scoring run goes through `engine.pipeline.Pipeline`, as the CLI's runs do: verdicts arrive
final (calibrated per question, "uncertain" included), `raw_margin` stays the model's. The
pipeline also keeps each verdict's hidden state at the default probe layer (`keep_layer`), so
that when labels refit a question's calibrator (also here, on this thread) the GUI can re-apply
it to every verdict at once with numpy, without scoring anything again.

Per-question options (app.options) reach the engine here too: the worked examples are the
classifier's (`setExamples`, kept for the next model as well), and a job names the questions
whose uncertain rows the model thinks about (`deliberate`).

Fitting a general probe for a model that has none (`engine.general_fit`, as `verdict models
calibrate`) runs here as well, so scoring sent meanwhile waits behind it; its progress crosses as
counts, and Cancel stops it at the next question answered.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

from PySide6.QtCore import QObject, QThread, Qt, Signal, Slot

from engine.types import Document, Verdict

# Job outcomes (ScoringWorker.jobFinished)
DONE, CANCELLED, NO_MODEL, FAILED = "done", "cancelled", "no-model", "failed"

# Documents handed to the engine at a time ("Scoring…" marks exactly these): one first, so the
# first verdict comes after one document's prefill instead of a whole batch's, then growing chunks
# (verdicts stream as each of the engine's batches ends) up to CHUNK_DOCUMENTS. A job whose
# calibrators take a statistic of the whole batch (the batch shift) is one chunk instead, as the
# CLI's run is one batch: its verdicts come when all its documents are scored.
CHUNK_DOCUMENTS = 32
FIRST_CHUNKS = (1, 4, 12)


PROGRESS_STEPS = 10_000  # the unit chunkProgress reports a chunk's share scored in


def document_size(doc: Document) -> int:
    """A document's share of the work, for progress and time left: its characters (at least 1)."""
    return max(len(doc.text), 1)


class ChunkShare:
    """How much of a chunk the engine has scored. It reports document tokens scored of those of
    the documents taken so far, and takes a long chunk a part at a time, so that share is scaled
    by the characters taken of the chunk's (counted as `feed` hands the engine its documents)."""

    def __init__(self, documents: Sequence[Document]) -> None:
        self.documents = documents
        self.total = sum(document_size(d) for d in documents)
        self.taken = 0

    def feed(self):
        """The chunk's documents, counted as the engine takes them."""
        for doc in self.documents:
            self.taken += document_size(doc)
            yield doc

    def steps(self, scored: int, taken: int) -> int:
        """The chunk's share scored, in PROGRESS_STEPS, from the engine's `progress(scored, taken)`."""
        if taken <= 0 or self.total <= 0:
            return 0
        return int(PROGRESS_STEPS * min(scored / taken, 1.0) * self.taken / self.total)


def chunk_bounds(n: int) -> list[tuple[int, int]]:
    """(start, end) of each chunk of ``n`` documents: FIRST_CHUNKS, then CHUNK_DOCUMENTS each."""
    bounds, start = [], 0
    sizes = iter(FIRST_CHUNKS)
    while start < n:
        end = min(n, start + next(sizes, CHUNK_DOCUMENTS))
        bounds.append((start, end))
        start = end
    return bounds


class ScoringWorker(QObject):
    """Owns the Classifier. Its slots run on the scoring thread, one request at a time."""

    # request, model name, path ('' = default), state layer, fingerprint, whether it can think first,
    # whether it has no general probe that one could be fitted for
    modelLoaded = Signal(int, str, str, int, str, bool, bool)
    modelFailed = Signal(int, str, str, str)  # request, path, reason, name of the model still in use
    chunkStarted = Signal(int, int, int)  # job, first document, end (exclusive)
    chunkProgress = Signal(int, int, int)  # job, share of the chunk scored so far: steps of PROGRESS_STEPS, PROGRESS_STEPS
    chunkWindows = Signal(int, int, int)  # job, windows of the chunk scored so far, of those cut so far
    verdictReady = Signal(int, object)  # job, Verdict (document_index into the job's documents)
    jobFinished = Signal(int, str, str)  # job, outcome, reason
    # Calibrators cross to the GUI as copies of their own: the worker never touches what the GUI reads.
    calibratorReady = Signal(str, object)  # question, Calibrator (resolved for the current model)
    refitDone = Signal(int, str, object)  # refit job, question, Calibrator fitted to the labels
    refitFailed = Signal(int, str, str)  # refit job, question, reason
    passagesScored = Signal(int, str, object)  # passages job, question, final margins (list; NaN: failed)
    generalProgress = Signal(int, int)  # fit job, questions of the corpus answered so far
    # fit job, outcome, reason, held-out AUC, the raw margin's, whether it ranks before labels (beats the margin)
    generalFitted = Signal(int, str, str, float, float, bool)

    def __init__(self, load: Optional[Callable[[Optional[str]], Any]] = None) -> None:
        super().__init__()
        self._load = load  # Classifier.load unless a test replaces it
        self._classifier: Any = None  # created and used on the scoring thread only
        self._pipeline: Any = None  # engine.pipeline.Pipeline over it: one calibrator per question
        self._state_layer = 0  # the layer whose state each verdict carries (the probes' default)
        self._examples: list = []  # worked examples (engine.types.Example), for this model and the next
        self._lock = threading.Lock()
        self._cancelled: set[int] = set()

    def cancel(self, job: int) -> None:
        """Ask a job to stop at the next batch boundary. Thread-safe; called from the GUI thread."""
        with self._lock:
            self._cancelled.add(job)

    def _is_cancelled(self, job: int) -> bool:
        with self._lock:
            return job in self._cancelled

    @Slot(int, object)
    def loadModel(self, request: int, path: Optional[str]) -> None:
        """Load a model (None: the embedded default) here, on the scoring thread."""
        from engine.model.sources import ModelError

        try:
            load = self._load
            if load is None:
                from engine import Classifier

                load = Classifier.load
            classifier = load(path)
        except ModelError as exc:
            self.modelFailed.emit(request, path or "", str(exc), self._name())
            return
        except Exception as exc:  # an unexpected failure in a loader is still a failed load, not a crash
            self.modelFailed.emit(request, path or "", f"{type(exc).__name__}: {exc}", self._name())
            return
        from engine.confidence.probe import default_layer
        from engine.gather import general_probe, probe_fingerprint
        from engine.pipeline import Pipeline

        general = general_probe(classifier)
        # One state per verdict is kept: the layer the general probe reads when there is one, and
        # a question's own probe is fitted on that layer too, so every refit can be re-applied.
        self._state_layer = general.layer if general is not None else default_layer(classifier)
        self._classifier = classifier
        self._pipeline = Pipeline(classifier, settings={"probe_layer": self._state_layer})
        self._show_examples()
        self.modelLoaded.emit(request, classifier.model_name, path or "", self._state_layer, classifier.fingerprint,
                              bool(getattr(classifier, "can_deliberate", False)),
                              general is None and probe_fingerprint(classifier) is not None)

    @Slot(object)
    def setExamples(self, examples: Sequence[Any]) -> None:
        """The worked examples every later job, refit and explanation shows (`Example`s)."""
        self._examples = list(examples)
        self._show_examples()

    def _show_examples(self) -> None:
        if self._classifier is not None:
            try:
                self._classifier.set_examples(self._examples)
            except ValueError:  # an example without text: show the others
                self._classifier.set_examples([e for e in self._examples if e.text.strip()])

    def _name(self) -> str:
        return self._classifier.model_name if self._classifier is not None else ""

    @Slot(int, object, object, object, bool)
    def score(self, job: int, questions: Sequence[str], documents: Sequence[Document],
              deliberate: Optional[dict] = None, answer: bool = True) -> None:
        """Score ``documents`` for all ``questions`` in one pass, emitting verdicts as batches end.
        ``deliberate``: question -> tokens the model may write before answering an uncertain row;
        ``answer`` False: without the model's own answer where a probe decides (`Pipeline.run`)."""
        try:
            outcome, reason = self._score(job, list(questions), list(documents), dict(deliberate or {}), answer)
        except Exception as exc:  # MLX or engine failure: the job's unfinished documents show why
            outcome, reason = FAILED, f"{type(exc).__name__}: {exc}"
        with self._lock:
            self._cancelled.discard(job)
        self.jobFinished.emit(job, outcome, reason)

    def _score(self, job: int, questions: list[str], documents: list[Document],
               deliberate: dict[str, int], answer: bool = True) -> tuple[str, str]:
        def cancel() -> bool:
            return self._is_cancelled(job)

        if cancel():
            return CANCELLED, ""
        if self._classifier is None:
            return NO_MODEL, "no model is loaded"
        for question in questions:
            self._calibrator(question)  # announces each calibrator before its verdicts
        whole = self._pipeline.needs_whole_batch(questions)
        for start, end in [(0, len(documents))] if whole else chunk_bounds(len(documents)):
            if cancel():
                return CANCELLED, ""
            chunk = documents[start:end]
            self.chunkStarted.emit(job, start, end)
            # Each row decided alone here: the window decides over all its rows (SessionController.redecide).
            share = ChunkShare(chunk)
            rows = self._pipeline.run(questions, share.feed(), cancel=cancel, ordered=False,
                                      keep_layer=self._state_layer,
                                      progress=lambda scored, taken, share=share: self.chunkProgress.emit(
                                          job, share.steps(scored, taken), PROGRESS_STEPS),
                                      window_progress=lambda scored, taken: self.chunkWindows.emit(job, scored, taken),
                                      deliberate=deliberate, decisions="row", answer=answer)
            for verdict in rows:
                verdict.document_index += start
                self.verdictReady.emit(job, verdict)
        return (CANCELLED, "") if cancel() else (DONE, "")

    def _calibrator(self, question: str) -> Any:
        """This question's calibrator (fitted or saved for this model, else label-free); when it is
        new (the first time, or refreshed for new worked examples), a copy is announced to the GUI."""
        before = self._pipeline.calibrators.get(question)
        cal = self._pipeline.calibrator(question)
        if cal is not before:
            self.calibratorReady.emit(question, cal.copy())
        return cal

    @Slot(object)
    def resolveCalibrators(self, questions: Sequence[str]) -> None:
        """Announce the calibrator of each question (loaded when not known yet)."""
        if self._classifier is None:
            return
        for question in questions:
            if question in self._pipeline.calibrators:
                self.calibratorReady.emit(question, self._pipeline.calibrators[question].copy())
            else:
                self._calibrator(question)  # announces it

    @Slot(int, str, object, object, object)
    def refit(self, job: int, question: str, documents: Sequence[Document], labels: dict, kept: dict) -> None:
        """Fit `question`'s calibrator to `labels` (document id -> yes) of `documents` and save it
        for this model and question; the engine scores the labeled documents that have no `kept`
        raw verdict with its state (`Pipeline.fit`)."""
        if self._classifier is None:
            self.refitFailed.emit(job, question, "no model is loaded")
            return
        try:
            cal = self._pipeline.fit(question, list(documents), dict(labels), kept=dict(kept))
        except Exception as exc:
            self.refitFailed.emit(job, question, f"{type(exc).__name__}: {exc}")
            return
        self.refitDone.emit(job, question, cal.copy())

    @Slot(int, str, object)
    def scorePassages(self, job: int, question: str, passages: Sequence[Document]) -> None:
        """Score each passage of a document as a document of its own, through the question's
        calibrator: which part, read alone, points most to the answer."""
        margins: list[float] = []
        # a batch-shifted calibrator would take its shift from these passages: no explanation then
        if (self._classifier is not None and not self._is_cancelled(job)
                and not self._pipeline.needs_whole_batch(question)):
            try:
                rows = self._pipeline.run([question], list(passages), cancel=lambda: self._is_cancelled(job),
                                          decisions="row")
                margins = [v.score if v.ok else float("nan") for v in rows]
            except Exception:  # a failed explanation only means no passage is highlighted
                margins = []
        with self._lock:
            self._cancelled.discard(job)
        self.passagesScored.emit(job, question, margins)

    @Slot(int, int)
    def fitGeneral(self, job: int, max_docs: int) -> None:
        """Fit the loaded model's general probe from the shipped corpus (`max_docs` per genre, 0:
        all) and save it in the user's data folder. Each genre is cached as it finishes, so after
        a cancel or a failure the next run goes on from there."""
        from engine.general_fit import calibrate_model

        answered = 0

        def step(count: int) -> None:
            nonlocal answered
            if self._is_cancelled(job):
                raise _Stopped
            answered += count
            self.generalProgress.emit(job, answered)

        outcome, reason, auc, auc_margin, used = DONE, "", math.nan, math.nan, False
        if self._is_cancelled(job):
            outcome = CANCELLED
        elif self._classifier is None:
            outcome, reason = NO_MODEL, "no model is loaded"
        else:
            self._classifier.set_examples([])  # the corpus is asked plainly, as the probe will read it
            try:
                probe, _ = calibrate_model(self._classifier, max_docs=max_docs, step=step)
                auc, auc_margin, used = probe.heldout_auc, probe.heldout_auc_margin, probe.beats_margin
            except _Stopped:
                outcome = CANCELLED
            except Exception as exc:  # a failed fit leaves the model as it was
                outcome, reason = FAILED, str(exc) or type(exc).__name__
            finally:
                self._show_examples()
        with self._lock:
            self._cancelled.discard(job)
        self.generalFitted.emit(job, outcome, reason, auc, auc_margin, used)

    @Slot()
    def release(self) -> None:
        """Drop the model (on this thread, where its arrays were made)."""
        self._classifier = None
        self._pipeline = None


class _Stopped(Exception):
    """Raised from a general-probe fit's progress callback when the fit was cancelled."""


@dataclass
class _Job:
    id: int
    keys: list[int]  # document keys, in the order sent
    questions: list[str]
    expected: list[int] = field(default_factory=list)  # verdicts still to come, per document
    sizes: list[int] = field(default_factory=list)  # characters per document: the unit of work for time left
    done: int = 0  # documents with every verdict in
    chunk: tuple[int, int] = (0, 0)  # the documents being scored now
    chunk_fraction: float = 0.0  # of the chunk's document tokens, the share scored so far

    def in_flight(self) -> float:
        """Characters of the running chunk's unfinished documents, estimated done by its tokens."""
        start, end = self.chunk
        unfinished = sum(self.sizes[n] for n in range(start, end) if self.expected[n] > 0)
        finished = sum(self.sizes[n] for n in range(start, end) if self.expected[n] <= 0)
        return max(0.0, self.chunk_fraction * (unfinished + finished) - finished)


class ScoringController(QObject):
    """GUI-thread side of scoring: job ids, stale-result dropping, progress.

    Results are reported by document *key* (the table's row id), never by position.
    """

    modelLoading = Signal(str)  # path ('' = default)
    modelReady = Signal(str, str)  # name, path
    modelFailed = Signal(str, str, str)  # path, reason, name of the model still in use ('' = none)
    verdictArrived = Signal(int, object)  # document key, Verdict
    rowsScoring = Signal(list)  # keys now being scored
    rowsStopped = Signal(list, str, str)  # keys left unscored, outcome, reason
    progressChanged = Signal(int, int, float, float)  # documents done, total, documents/s, seconds left (-1: unknown)
    # a document scored alone in several parts (windows): its key, parts read, of (0, 0: none any more)
    documentParts = Signal(int, int, int)
    busyChanged = Signal(bool)
    calibratorChanged = Signal(str, object)  # question, the Calibrator scoring now uses for it
    refitFinished = Signal(str, object)  # question, Calibrator newly fitted to the labels
    refitFailed = Signal(str, str)  # question, reason
    passagesReady = Signal(int, str, object)  # passages job, question, final margins per passage
    generalProgress = Signal(int, int, float, float)  # questions answered, of, per second, seconds left (-1: unknown)
    # outcome, reason, held-out AUC of the probe, of the raw margin, whether it ranks before labels
    generalFinished = Signal(str, str, float, float, bool)

    _loadRequested = Signal(int, object)
    _scoreRequested = Signal(int, object, object, object, bool)
    _examplesRequested = Signal(object)
    _releaseRequested = Signal()
    _resolveRequested = Signal(object)
    _refitRequested = Signal(int, str, object, object, object)
    _passagesRequested = Signal(int, str, object)
    _generalRequested = Signal(int, int)

    def __init__(self, parent: Optional[QObject] = None, load: Optional[Callable[[Optional[str]], Any]] = None) -> None:
        super().__init__(parent)
        self._thread = QThread()
        self._thread.setObjectName("verdict-scoring")
        self._worker = ScoringWorker(load)
        self._worker.moveToThread(self._thread)
        queued = Qt.ConnectionType.QueuedConnection
        self._loadRequested.connect(self._worker.loadModel, queued)
        self._scoreRequested.connect(self._worker.score, queued)
        self._examplesRequested.connect(self._worker.setExamples, queued)
        self._releaseRequested.connect(self._worker.release, queued)
        self._resolveRequested.connect(self._worker.resolveCalibrators, queued)
        self._refitRequested.connect(self._worker.refit, queued)
        self._passagesRequested.connect(self._worker.scorePassages, queued)
        self._worker.passagesScored.connect(self.passagesReady, queued)
        self._generalRequested.connect(self._worker.fitGeneral, queued)
        self._worker.generalProgress.connect(self._on_general_progress, queued)
        self._worker.generalFitted.connect(self._on_general_fitted, queued)
        self._worker.calibratorReady.connect(self._on_calibrator_ready, queued)
        self._worker.refitDone.connect(self._on_refit_done, queued)
        self._worker.refitFailed.connect(self._on_refit_failed, queued)
        self._worker.modelLoaded.connect(self._on_model_loaded, queued)
        self._worker.modelFailed.connect(self._on_model_failed, queued)
        self._worker.chunkStarted.connect(self._on_chunk_started, queued)
        self._worker.chunkProgress.connect(self._on_chunk_progress, queued)
        self._worker.chunkWindows.connect(self._on_chunk_windows, queued)
        self._worker.verdictReady.connect(self._on_verdict, queued)
        self._worker.jobFinished.connect(self._on_job_finished, queued)
        self._thread.start()
        self._next_id = 0
        self._load_request = 0  # the latest model request; older answers are ignored
        self._loading = False
        self._jobs: dict[int, _Job] = {}
        self._parts_key: Optional[int] = None  # the long document whose parts are being reported
        self._busy_reported = False
        self._run_total = 0
        self._run_done = 0
        self._run_work = 0  # characters of the run's documents (what time left is estimated from)
        self._run_work_done = 0  # of those, in documents finished
        self._run_clock: Optional[float] = None
        self._model_name = ""
        self._model_path = ""
        self._state_layer = 0
        self._can_think = False
        self._needs_general = False
        self.characters_rate = 0.0  # characters of text per second in the model's latest scoring run (0: none yet)
        self._general_job: Optional[int] = None  # the general-probe fit queued or running
        self._general_total = 0
        self._general_start: Optional[tuple[float, int]] = None  # (clock, answered) at its first progress
        self._thinking: dict[str, int] = {}  # question -> tokens to think first (set_thinking)
        self._answer = True  # whether jobs ask for the model's own answer (set_probe_only)
        self._states_key = ""
        self.calibrators: dict[str, Any] = {}  # question -> Calibrator in use (read-only copies' owner: the worker)
        self._refit_latest: dict[str, int] = {}  # question -> newest refit job not answered yet
        self._refit_pending: dict[str, tuple[int, list[Document], dict[str, bool]]] = {}
        self._refit_running: Optional[int] = None

    # --- state ------------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """True while any job is live (queued or running)."""
        return bool(self._jobs)

    @property
    def loading(self) -> bool:
        return self._loading

    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def model_path(self) -> str:
        return self._model_path

    @property
    def thread(self) -> QThread:
        return self._thread

    @property
    def state_layer(self) -> int:
        """The layer whose hidden state each verdict carries (`Verdict.hidden`, shape (D,))."""
        return self._state_layer

    @property
    def can_think(self) -> bool:
        """Whether the model in use can write before it answers (`Classifier.can_deliberate`)."""
        return self._can_think

    @property
    def needs_general(self) -> bool:
        """Whether the model in use has no general probe, and one can be fitted for it."""
        return self._needs_general

    @property
    def fitting_general(self) -> bool:
        """True while a general-probe fit is queued or running."""
        return self._general_job is not None

    @property
    def states_key(self) -> str:
        """What the verdicts' hidden states belong to: the loaded weights and the state layer."""
        return self._states_key

    def refitting(self, question: str) -> bool:
        """True while a refit of ``question``'s calibrator is queued or running."""
        return question in self._refit_latest

    def live_keys(self) -> set[int]:
        """Keys of documents in live jobs."""
        return {k for job in self._jobs.values() for k in job.keys}

    # --- requests -----------------------------------------------------------------------------------
    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def load_model(self, path: Optional[str]) -> None:
        """Load a model on the scoring thread (None: the embedded default). Jobs sent later wait for it."""
        self._load_request = self._new_id()
        self._loading = True
        self._refit_latest.clear()  # calibrators are per model: refits for the old one are stale
        self._refit_pending.clear()
        self.modelLoading.emit(path or "")
        self._loadRequested.emit(self._load_request, path or None)

    def score(self, keys: list[int], documents: list[Document], questions: list[str]) -> Optional[int]:
        """Start a job; returns its id (None when there is nothing to do). Its questions think
        about their uncertain rows as `set_thinking` said when it was sent."""
        if not keys or not questions:
            return None
        was_busy = self.busy
        sizes = [document_size(d) for d in documents]
        job = _Job(self._new_id(), list(keys), list(questions), [len(questions)] * len(keys), sizes)
        self._jobs[job.id] = job
        if not was_busy:
            self._run_total, self._run_done, self._run_clock = 0, 0, None
            self._run_work, self._run_work_done = 0, 0
        self._run_total += len(keys)
        self._run_work += sum(sizes)
        deliberate = {q: n for q, n in self._thinking.items() if q in job.questions}
        self._scoreRequested.emit(job.id, list(questions), list(documents), deliberate, self._answer)
        self._emit_progress()
        self._report_busy()
        return job.id

    def set_probe_only(self, on: bool) -> None:
        """For the jobs sent after this: where a probe on a hidden layer decides every question,
        stop each prompt at its layer and leave out the model's own answer (`Pipeline.run(answer=False)`)."""
        self._answer = not on

    def set_thinking(self, tokens: dict[str, int]) -> None:
        """Question -> tokens the model may write before answering a row one pass leaves
        uncertain, for the jobs sent after this (questions not named answer in one pass)."""
        self._thinking = {q: n for q, n in tokens.items() if n > 0}

    def set_examples(self, examples: list) -> None:
        """Worked examples (`Example`s) for the jobs, refits and explanations sent after this."""
        self._examplesRequested.emit(list(examples))

    def score_passages(self, question: str, passages: list[Document]) -> int:
        """Score ``passages`` (parts of one document) for ``question`` on the worker, after the
        jobs already sent; the margins come back in passagesReady with the returned job id."""
        job = self._new_id()
        self._passagesRequested.emit(job, question, list(passages))
        return job

    def cancel_passages(self, job: int) -> None:
        """Skip a passages job not started yet (or stop it at its next batch): its answer comes
        back empty."""
        self._worker.cancel(job)

    def resolve_calibrators(self, questions: list[str]) -> None:
        """Have the worker announce each question's calibrator (calibratorChanged), loading the
        saved ones for this model: what a relaunched session shows before anything is scored."""
        if questions:
            self._resolveRequested.emit(list(questions))

    def refit(self, question: str, documents: list[Document], labels: dict[str, bool],
              kept: Optional[dict[str, Any]] = None) -> int:
        """Fit ``question``'s calibrator to ``labels`` (document id -> yes) on the worker, from
        the ``kept`` raw verdicts (document id -> Verdict with its state) where given, else by
        scoring the document. One refit runs at a time; a newer request for a question replaces
        one still waiting, and the answer to an older one is dropped. Returns the job id."""
        job = self._new_id()
        self._refit_latest[question] = job
        self._refit_pending.pop(question, None)
        self._refit_pending[question] = (job, list(documents), dict(labels), dict(kept or {}))
        self._send_refit()
        return job

    def _send_refit(self) -> None:
        if self._refit_running is not None or not self._refit_pending:
            return
        question = next(iter(self._refit_pending))
        job, documents, labels, kept = self._refit_pending.pop(question)
        self._refit_running = job
        self._refitRequested.emit(job, question, documents, labels, kept)

    def fit_general(self, max_docs: int = 0) -> None:
        """Fit the model's general probe on the worker, after the jobs already sent (jobs sent
        later wait for it); `max_docs` per genre of the corpus (0: all). Progress comes in
        generalProgress, the end in generalFinished."""
        from engine.general_fit import corpus_size

        if self._general_job is not None:
            return
        self._general_job = self._new_id()
        self._general_total = corpus_size(max_docs)
        self._general_start = None
        self._generalRequested.emit(self._general_job, max_docs)
        self.generalProgress.emit(0, self._general_total, 0.0, -1.0)

    def cancel_general(self) -> None:
        """Stop the general-probe fit at the next question it answers (generalFinished says so)."""
        if self._general_job is not None:
            self._worker.cancel(self._general_job)

    def cancel_all(self, reason: str = "cancelled") -> list[int]:
        """Stop every live job now: its late results are dropped. Returns the keys left unscored."""
        unscored: list[int] = []
        for job in list(self._jobs.values()):
            self._worker.cancel(job.id)
            unscored += self._drop(job)
        if unscored:
            self.rowsStopped.emit(unscored, CANCELLED, reason)
        self._after_change()
        return unscored

    def forget_keys(self, keys: set[int]) -> None:
        """Documents removed from the table: stop counting them (their results will be dropped)."""
        for job in self._jobs.values():
            for n, key in enumerate(job.keys):
                if key in keys and job.expected[n] > 0:
                    job.expected[n] = 0
                    self._run_total -= 1
                    self._run_work -= job.sizes[n]
        self._emit_progress()

    def shutdown(self) -> None:
        """Cancel everything, free the model on its thread, and stop the thread (waits)."""
        for job in list(self._jobs.values()):
            self._worker.cancel(job.id)
        self._jobs.clear()
        self.cancel_general()  # else closing the window would wait for the whole fit
        if self._thread.isRunning():
            self._releaseRequested.emit()
            self._thread.quit()
            self._thread.wait()

    # --- worker answers (GUI thread) ------------------------------------------------------------------
    @Slot(int, str, str, int, str, bool, bool)
    def _on_model_loaded(self, request: int, name: str, path: str, state_layer: int, fingerprint: str,
                         can_think: bool, needs_general: bool) -> None:
        self._model_name, self._model_path, self._state_layer = name, path, state_layer
        self._can_think, self._needs_general, self.characters_rate = can_think, needs_general, 0.0
        self._states_key = f"{fingerprint} layer {state_layer}"
        self.calibrators.clear()
        if request == self._load_request:
            self._loading = False
            self.modelReady.emit(name, path)

    @Slot(str, object)
    def _on_calibrator_ready(self, question: str, cal: Any) -> None:
        self.calibrators[question] = cal
        self.calibratorChanged.emit(question, cal)

    @Slot(int, str, object)
    def _on_refit_done(self, job: int, question: str, cal: Any) -> None:
        if job == self._refit_running:
            self._refit_running = None
        if self._refit_latest.get(question) == job:
            del self._refit_latest[question]
            self.calibrators[question] = cal
            self.refitFinished.emit(question, cal)
        self._send_refit()

    @Slot(int, str, str)
    def _on_refit_failed(self, job: int, question: str, reason: str) -> None:
        if job == self._refit_running:
            self._refit_running = None
        if self._refit_latest.get(question) == job:
            del self._refit_latest[question]
            self.refitFailed.emit(question, reason)
            self.resolve_calibrators([question])  # show what the worker really uses
        self._send_refit()

    @Slot(int, int)
    def _on_general_progress(self, job: int, answered: int) -> None:
        if job != self._general_job:
            return
        now = time.perf_counter()
        if self._general_start is None:  # from the first answer on: genres kept from before arrive at once
            self._general_start = (now, answered)
        since, before = self._general_start
        rate = (answered - before) / (now - since) if now > since else 0.0
        left = (self._general_total - answered) / rate if rate > 0 else -1.0
        self.generalProgress.emit(answered, self._general_total, rate, left)

    @Slot(int, str, str, float, float, bool)
    def _on_general_fitted(self, job: int, outcome: str, reason: str, auc: float, auc_margin: float,
                           used: bool) -> None:
        if job == self._general_job:
            self._general_job = None
            self.generalFinished.emit(outcome, reason, auc, auc_margin, used)

    @Slot(int, str, str, str)
    def _on_model_failed(self, request: int, path: str, reason: str, still_in_use: str) -> None:
        if request == self._load_request:
            self._loading = False
            self.modelFailed.emit(path, reason, still_in_use)

    @Slot(int, int, int)
    def _on_chunk_started(self, job_id: int, start: int, end: int) -> None:
        job = self._jobs.get(job_id)
        if job is None:
            return
        if self._run_clock is None:
            self._run_clock = time.perf_counter()
        job.chunk, job.chunk_fraction = (start, end), 0.0
        self.rowsScoring.emit([k for n, k in enumerate(job.keys[start:end], start) if job.expected[n] > 0])

    @Slot(int, int, int)
    def _on_chunk_progress(self, job_id: int, done: int, steps: int) -> None:
        job = self._jobs.get(job_id)
        if job is not None and steps > 0:
            job.chunk_fraction = min(done / steps, 1.0)
            self._emit_progress()

    @Slot(int, int, int)
    def _on_chunk_windows(self, job_id: int, done: int, total: int) -> None:
        job = self._jobs.get(job_id)
        if job is None or job.chunk is None or total <= 1:
            return
        start, end = job.chunk
        if end - start == 1 and job.expected[start] > 0:  # one long document: how far into it
            self._parts_key = job.keys[start]
            self.documentParts.emit(self._parts_key, done, total)

    def _end_parts(self, keys) -> None:
        if self._parts_key is not None and self._parts_key in keys:
            key, self._parts_key = self._parts_key, None
            self.documentParts.emit(key, 0, 0)

    @Slot(int, object)
    def _on_verdict(self, job_id: int, verdict: Verdict) -> None:
        job = self._jobs.get(job_id)
        if job is None or not 0 <= verdict.document_index < len(job.keys):
            return  # stale: the job was cancelled or replaced
        n = verdict.document_index
        if job.expected[n] <= 0:
            return  # the document was removed meanwhile
        job.expected[n] -= 1
        if job.expected[n] == 0:
            job.done += 1
            self._run_done += 1
            self._run_work_done += job.sizes[n]
            self._end_parts([job.keys[n]])
        self.verdictArrived.emit(job.keys[n], verdict)
        self._emit_progress()

    @Slot(int, str, str)
    def _on_job_finished(self, job_id: int, outcome: str, reason: str) -> None:
        job = self._jobs.get(job_id)
        if job is None:
            return
        unscored = self._drop(job)
        if unscored:
            self.rowsStopped.emit(unscored, outcome, reason)
        self._after_change()

    # --- bookkeeping -----------------------------------------------------------------------------------
    def _drop(self, job: _Job) -> list[int]:
        del self._jobs[job.id]
        self._end_parts(job.keys)
        unscored = [k for n, k in enumerate(job.keys) if job.expected[n] > 0]
        self._run_total -= len(unscored)
        self._run_work -= sum(job.sizes[n] for n in range(len(job.keys)) if job.expected[n] > 0)
        return unscored

    def _after_change(self) -> None:
        self._emit_progress()
        self._report_busy()

    def _report_busy(self) -> None:
        if self.busy != self._busy_reported:
            self._busy_reported = self.busy
            self.busyChanged.emit(self.busy)

    def _emit_progress(self) -> None:
        """Documents done and per second since scoring began; time left from the characters still
        to score at the rate characters were scored (a long document counts by its windows)."""
        elapsed = time.perf_counter() - self._run_clock if self._run_clock else 0.0
        rate = self._run_done / elapsed if elapsed > 0 else 0.0
        work_done = self._run_work_done + sum(job.in_flight() for job in self._jobs.values())
        if work_done > 0 and elapsed > 0:
            self.characters_rate = work_done / elapsed
        left = (self._run_work - work_done) * elapsed / work_done if work_done > 0 and elapsed > 0 else -1.0
        self.progressChanged.emit(self._run_done, max(self._run_total, self._run_done), rate, max(left, -1.0))
