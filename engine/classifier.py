"""The public API: `Classifier.load(...).classify(question, texts)`.

Work per call, for a document-first layout:
  head (system + instructions)  -> prefilled once, KV cache reused by every document
  documents, batched by length  -> prefilled once per batch on top of the head
  each question + answer cue    -> prefilled on top of each batch's document cache
A document longer than the context is cut into overlapping windows; its verdict is the
aggregate of theirs (max: "does any part say yes", or mean), naming the deciding window.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Sequence, Union

import numpy as np

from engine.confidence.metrics import sigmoid
from engine.runtime.loading import LoadedModel, load_model
from engine.runtime.prompt import Layout, PromptEncoder, build_template, char_span, default_layout, label_forms
from engine.runtime.local import Scorer
from engine.types import Document, Verdict

DocumentLike = Union[str, Document]


@dataclass
class _Window:
    """One row of a batch: a document (or a window of it)."""

    doc: int
    index: int
    ids: list[int]
    span: tuple[int, int]


@dataclass
class _Pending:
    """Window results of one document, until all its windows are scored."""

    document: Document
    position: int
    windows: int
    margins: dict[int, np.ndarray] = field(default_factory=dict)  # window -> per-question margins
    masses: dict[int, np.ndarray] = field(default_factory=dict)
    hidden: dict[int, list] = field(default_factory=dict)
    spans: dict[int, tuple[int, int]] = field(default_factory=dict)
    tokens: int = 0  # document tokens over all windows
    seconds: float = 0.0


class Classifier:
    """Yes/no verdicts for documents from one prefill pass per document."""

    def __init__(
        self,
        lm: LoadedModel,
        *,
        layout: Optional[Layout] = None,
        instructions: str = "",
        batch_tokens: int = 2048,
        max_batch: int = 32,
        chunk_documents: int = 64,
        window_overlap: int = 64,
        max_context: Optional[int] = None,
    ) -> None:
        self.lm = lm
        self.layout = layout or default_layout(lm.name)
        self.instructions = instructions
        self.batch_tokens = batch_tokens
        self.max_batch = max_batch
        self.chunk_documents = chunk_documents
        self.window_overlap = window_overlap
        self.context = min(lm.context_length, max_context or lm.context_length)
        self.yes_ids, self.no_ids = label_forms(lm.tokenizer)
        self.scorer = Scorer(lm, self.yes_ids, self.no_ids)
        self._set_template()

    @classmethod
    def load(cls, model: Union[str, Path, None] = None, **options) -> "Classifier":
        """Load a model (MLX folder, .gguf file, or None for the embedded default)."""
        return cls(load_model(model), **options)

    @property
    def model_name(self) -> str:
        return self.lm.name

    def _set_template(self) -> None:
        self.template = build_template(self.layout, self.lm.tokenizer, self.instructions)
        self.encoder = PromptEncoder(self.template, self.lm.tokenizer)
        self._head_caches: dict[tuple[int, ...], list] = {}

    def set_instructions(self, instructions: str) -> None:
        """Change the instructions part (its cache is rebuilt on next use)."""
        self.instructions = instructions
        self._set_template()

    # --- public API ---------------------------------------------------------------------------
    def classify(
        self, question: Union[str, Sequence[str]], texts: Iterable[DocumentLike], **options
    ) -> list[Verdict]:
        """Verdicts in input order. One question: one verdict per text. Several questions:
        one verdict per text and question, text-major (text 0's questions first)."""
        questions = [question] if isinstance(question, str) else list(question)
        verdicts = list(self.classify_iter(questions, texts, **options))
        order = {q: i for i, q in enumerate(questions)}
        verdicts.sort(key=lambda v: (v.document_index, order[v.question]))
        return verdicts

    def classify_iter(
        self,
        questions: Union[str, Sequence[str]],
        texts: Iterable[DocumentLike],
        *,
        cancel: Optional[Callable[[], bool]] = None,
        keep_hidden: bool = False,
        aggregate: str = "max",
    ) -> Iterator[Verdict]:
        """Yield verdicts as batches finish (not in input order: see `Verdict.document_index`).

        `cancel` is polled between batches; when it returns True the generator stops.
        Memory stays bounded: documents are taken `chunk_documents` at a time.
        """
        questions = [questions] if isinstance(questions, str) else list(questions)
        if not questions or any(not q.strip() for q in questions):
            raise ValueError("a question must not be empty")
        if aggregate not in ("max", "mean"):
            raise ValueError("aggregate must be 'max' or 'mean'")
        chunk: list[Document] = []
        position = 0
        for item in texts:
            doc = item if isinstance(item, Document) else Document(id=str(position), text=str(item))
            chunk.append(doc)
            position += 1
            if len(chunk) >= self.chunk_documents:
                yield from self._run_chunk(questions, chunk, position - len(chunk), cancel, keep_hidden, aggregate)
                chunk = []
                if cancel and cancel():
                    return
        if chunk:
            yield from self._run_chunk(questions, chunk, position - len(chunk), cancel, keep_hidden, aggregate)

    # --- internals ----------------------------------------------------------------------------
    def _head_cache(self, question: str) -> list:
        ids = self.encoder.head_ids(question)
        key = tuple(ids)
        if key not in self._head_caches:
            cache = self.scorer.new_cache()
            if ids:
                self.scorer.prefill([ids], cache)
            if len(self._head_caches) > 16:
                self._head_caches.clear()
            self._head_caches[key] = cache
        return self._head_caches[key]

    def _window_budget(self, questions: Sequence[str]) -> int:
        fixed = max(len(self.encoder.head_ids(q)) + len(self.encoder.tail_ids(q)) for q in questions)
        return self.context - fixed

    def _split(self, doc_index: int, text: str, budget: int) -> list[_Window]:
        ids, spans = self.encoder.document_ids(text)
        if len(ids) <= budget:
            return [_Window(doc_index, 0, ids, (0, len(text)))]
        overlap = min(self.window_overlap, budget // 4)
        step = budget - overlap
        windows = []
        for n, start in enumerate(range(0, max(len(ids) - overlap, 1), step)):
            end = min(start + budget, len(ids))
            windows.append(_Window(doc_index, n, ids[start:end], char_span(spans, start, end)))
            if end == len(ids):
                break
        return windows

    def _batches(self, windows: list[_Window]) -> Iterator[list[_Window]]:
        """Group windows of similar length so little work goes to padding."""
        batch: list[_Window] = []
        for w in sorted(windows, key=lambda w: len(w.ids)):
            if batch and (len(batch) + 1) * len(w.ids) > self.batch_tokens or len(batch) >= self.max_batch:
                yield batch
                batch = []
            batch.append(w)
        if batch:
            yield batch

    def _error_verdicts(self, questions, doc: Document, position: int, reason: str) -> list[Verdict]:
        return [
            Verdict(document_id=doc.id, question=q, verdict="error", error=reason, document_index=position)
            for q in questions
        ]

    def _run_chunk(self, questions, docs, first_position, cancel, keep_hidden, aggregate) -> Iterator[Verdict]:
        budget = self._window_budget(questions)
        pending: dict[int, _Pending] = {}
        windows: list[_Window] = []
        for i, doc in enumerate(docs):
            position = first_position + i
            if doc.error:
                yield from self._error_verdicts(questions, doc, position, doc.error)
                continue
            if not doc.text.strip():
                yield from self._error_verdicts(questions, doc, position, "document is empty")
                continue
            if budget < 32:
                yield from self._error_verdicts(
                    questions, doc, position, "the question and instructions leave no room in the context"
                )
                continue
            doc_windows = self._split(i, doc.text, budget)
            pending[i] = _Pending(doc, position, len(doc_windows))
            windows += doc_windows

        for batch in self._batches(windows):
            if cancel and cancel():
                return
            results = self._score_batch(questions, batch, keep_hidden)
            for row, (w, (margins, masses, hidden, tokens, seconds)) in enumerate(zip(batch, results)):
                p = pending[w.doc]
                p.margins[w.index], p.masses[w.index], p.spans[w.index] = margins, masses, w.span
                p.hidden[w.index] = hidden
                p.tokens += tokens
                p.seconds += seconds
                if len(p.margins) == p.windows:
                    yield from self._finish(questions, p, aggregate)
                    del pending[w.doc]

    def _score_batch(self, questions, batch: list[_Window], keep_hidden: bool):
        """Per row: margins and masses per question, hidden states, tokens, seconds."""
        start = time.perf_counter()
        rows = [w.ids for w in batch]
        n = len(batch)
        margins = np.zeros((n, len(questions)), dtype=np.float32)
        masses = np.zeros_like(margins)
        hidden: list[list] = [[None] * len(questions) for _ in range(n)]
        tokens = np.array([len(r) for r in rows])
        doc_cache = None
        for qi, question in enumerate(questions):
            if doc_cache is None or not self.template.document_first:
                doc_cache = self.scorer.fork(self._head_cache(question), n)
                self.scorer.prefill(rows, doc_cache)
            tail = self.encoder.tail_ids(question)
            last = self.scorer.prefill([tail] * n, self.scorer.fork(doc_cache))
            scores = self.scorer.verdict_scores(last, keep_hidden)
            margins[:, qi], masses[:, qi] = scores.margin, scores.label_mass
            if keep_hidden:
                for r in range(n):
                    hidden[r][qi] = scores.hidden[r]
        seconds = time.perf_counter() - start
        share = tokens / max(tokens.sum(), 1)
        return [
            (margins[r], masses[r], hidden[r], int(tokens[r]), float(seconds * share[r])) for r in range(n)
        ]

    def _finish(self, questions, p: _Pending, aggregate: str) -> Iterator[Verdict]:
        order = sorted(p.margins)
        margins = np.stack([p.margins[w] for w in order])  # (windows, questions)
        masses = np.stack([p.masses[w] for w in order])
        for qi, question in enumerate(questions):
            best = int(np.argmax(margins[:, qi]))
            margin = float(margins[best, qi] if aggregate == "max" else margins[:, qi].mean())
            mass = float(masses[best, qi])
            yield Verdict(
                document_id=p.document.id,
                question=question,
                verdict="yes" if margin > 0 else "no",
                margin=margin,
                raw_margin=margin,
                probability=float(sigmoid(margin)),
                label_mass=mass,
                tokens=p.tokens + p.windows * (len(self.encoder.head_ids(question)) + len(self.encoder.tail_ids(question))),
                seconds=p.seconds / len(questions),
                windows=p.windows,
                window_index=order[best],
                window_span=p.spans[order[best]],
                hidden=p.hidden[order[best]][qi],
                document_index=p.position,
            )
