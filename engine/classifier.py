"""Prompts, windows and batches over a `ScoringBackend`: the public API's entry point.

`Classifier.load(...).classify(question, texts)` gives final verdicts (calibrated, "uncertain"
included) through `engine.pipeline`; `score` / `score_iter` give the raw model margins the
pipeline calibrates. Work per call, for a document-first layout:
  head (system + instructions)  -> prefilled once, KV cache reused by every document
  documents, batched by length  -> prefilled once per batch on top of the head
  each question + answer cue    -> prefilled on top of each batch's document cache
A document longer than a window (DEFAULT_WINDOW_TOKENS, at most the context) is cut into
overlapping windows; its verdict is the aggregate of theirs (max: "does any part say yes", or
mean), naming the deciding window.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Sequence, Union

import numpy as np

from engine.confidence.metrics import sigmoid
from engine.intake.normalize import normalize_document, normalize_text
from engine.model.prompt import (
    Layout,
    PromptEncoder,
    PromptError,
    build_template,
    THINK_LEAD,
    build_thinking_template,
    char_span,
    default_layout,
)
from engine.scoring import PromptScore, ScoringBackend, Segment
from engine.types import Document, Example, Verdict, as_document

DocumentLike = Union[str, Document]
# (question, margins of a document's windows (W,), their captured states) -> a score per window
WindowScore = Callable[[str, np.ndarray, list], np.ndarray]
# Document tokens per window. Attention and the KV cache grow with a window's length, so past
# this a long document runs faster as several windows; measured with `verdict bench` (README,
# Performance). The context length (131k for Llama 3.2 GGUFs) is only the upper bound.
DEFAULT_WINDOW_TOKENS = 1024
_SEAM_ROOM = 8  # tokens a window's own tokenization may take beyond its slice of the whole

# The per-document budget: only the first DEFAULT_MAX_TOKENS tokens of a document are scored
# (16 windows of DEFAULT_WINDOW_TOKENS), so one long document costs bounded time and
# memory; the rest is left out with a warning. Text is cut at MAX_CHARS_PER_TOKEN characters a
# token before it is tokenized, so a huge document is never tokenized whole.
DEFAULT_MAX_TOKENS = 16384
MAX_CHARS_PER_TOKEN = 16

# Worked examples go into the cached head, but every document's attention reads them: at most
# MAX_EXAMPLES per question (balanced yes/no), each cut to EXAMPLE_TOKENS tokens.
MAX_EXAMPLES = 8
EXAMPLE_TOKENS = 256


@dataclass
class _Window:
    """One row of a batch: a document (or a window of it)."""

    doc: int
    index: int
    ids: list[int]
    span: tuple[int, int]


@dataclass
class _RowResult:
    """One batch row's results: per-question margins, masses and captured states."""

    margins: np.ndarray
    masses: np.ndarray
    states: list  # per question: {layer: state} or None
    errors: list  # per question: why the backend could not score it, or None
    warnings: list  # per question: the backend's caveat about its score, or None
    tokens: int
    seconds: float


@dataclass
class _Pending:
    """Window results of one document, until all its windows are scored."""

    document: Document
    position: int
    windows: int
    margins: dict[int, np.ndarray] = field(default_factory=dict)  # window -> per-question margins
    masses: dict[int, np.ndarray] = field(default_factory=dict)
    states: dict[int, list] = field(default_factory=dict)  # window -> per-question {layer: state}
    spans: dict[int, tuple[int, int]] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)  # question -> the first backend error
    warnings: dict[int, list[str]] = field(default_factory=dict)  # question -> the backend's caveats, per window
    tokens: int = 0  # document tokens over all windows
    seconds: float = 0.0


class Classifier:
    """Yes/no verdicts for documents from one prefill pass per document."""

    def __init__(
        self,
        backend: ScoringBackend,
        *,
        layout: Optional[Layout] = None,
        instructions: str = "",
        batch_tokens: int = 2048,
        max_batch: int = 32,
        chunk_documents: int = 64,
        window_overlap: int = 64,
        max_context: Optional[int] = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        window_tokens: int = DEFAULT_WINDOW_TOKENS,
        examples: Sequence[Example] = (),
    ) -> None:
        self.backend = backend
        self.max_tokens = max_tokens
        self.tokenizer = backend.tokenizer
        self.layout = layout or default_layout(backend.name, getattr(backend, "preset", None))
        self.instructions = instructions
        self.batch_tokens = batch_tokens
        self.max_batch = max_batch
        self.chunk_documents = chunk_documents
        self.window_overlap = window_overlap
        self.context = min(backend.context_length, max_context or backend.context_length)
        self._pipeline = None
        self.window_tokens = window_tokens
        self.examples: list[Example] = []
        self._set_template()
        if examples:
            self.set_examples(examples)

    @classmethod
    def load(cls, model: Union[str, Path, None] = None, **options) -> "Classifier":
        """Load a model into this process: an MLX folder, a GGUF file, a name from `verdict models
        list`, a Hugging Face repo (`org/repo`, `org/repo:QUANT`; downloaded if need be), or None
        for the embedded default."""
        from engine.runtime.local import LocalBackend
        from engine.model.sources import resolve_model

        return cls(LocalBackend.load(resolve_model(str(model)) if model else None), **options)

    @property
    def model_name(self) -> str:
        return self.backend.name

    @property
    def fingerprint(self) -> str:
        """What calibrators and probes for this model are keyed by."""
        return self.backend.fingerprint

    @property
    def n_layers(self) -> int:
        """Hidden-state layers are numbered 1..n_layers (see `engine.scoring`)."""
        return self.backend.n_layers

    def _set_template(self) -> None:
        self.template = build_template(self.layout, self.tokenizer, self.instructions)
        self.encoder = PromptEncoder(self.template, self.tokenizer)
        self._encoders: dict[str, PromptEncoder] = {}  # per question (its own when it has worked examples)
        self._thinking: Optional[tuple[PromptEncoder, list[int]]] = None  # built on first `deliberate`

    def set_instructions(self, instructions: str) -> None:
        """Change the instructions part (its cache is rebuilt on next use)."""
        self.instructions = instructions
        self._set_template()

    def set_examples(self, examples: Sequence[Example]) -> None:
        """Worked examples shown before every document (`Example.question` None: for every
        question). Per question at most MAX_EXAMPLES are used, as many yes as no, alternating;
        each is cut to EXAMPLE_TOKENS tokens. Raises ValueError on an empty example text."""
        examples = [dataclasses.replace(e, text=normalize_text(e.text)[0]) if isinstance(e.text, str) else e
                    for e in examples]  # the intake's normalisation, as for documents
        if any(not isinstance(e.text, str) or not e.text.strip() for e in examples):
            raise ValueError("a worked example needs a text")
        self.examples = examples
        self._encoders = {}

    def examples_for(self, question: str) -> list[Example]:
        """The worked examples the prompt shows for `question`, in the order shown."""
        given = [e for e in self.examples if e.question in (None, question)]
        yes = [e for e in given if e.answer]
        no = [e for e in given if not e.answer]
        per_side = MAX_EXAMPLES // 2
        if len(yes) < per_side or len(no) < per_side:  # one side short: the other fills the rest
            n_yes = min(len(yes), MAX_EXAMPLES - min(len(no), per_side))
            yes, no = yes[:n_yes], no[: MAX_EXAMPLES - n_yes]
        else:
            yes, no = yes[:per_side], no[:per_side]
        shown: list[Example] = []
        for k in range(max(len(yes), len(no))):
            shown += [side[k] for side in (no, yes) if k < len(side)]  # the last one shown is a yes
        return shown

    def encoder_for(self, question: str) -> PromptEncoder:
        """The prompt encoder for `question`: the shared one, or one whose head holds the
        question's worked examples. Raises PromptError if that head would cut documents
        differently (documents are tokenized once, with the shared encoder)."""
        encoder = self._encoders.get(question)
        if encoder is None:
            shown = self.examples_for(question)
            encoder = self.encoder
            if shown:
                worked = [(self._cut_example(e.text), question, e.answer) for e in shown]
                encoder = PromptEncoder(build_template(self.layout, self.tokenizer, self.instructions, worked),
                                        self.tokenizer)
                for probe in ("x", "Word.", "x\n\n", " 12"):
                    if encoder.document_ids(probe) != self.encoder.document_ids(probe):
                        raise PromptError("the worked examples change how documents are tokenized")
            self._encoders[question] = encoder
        return encoder

    def _cut_example(self, text: str) -> str:
        text = text.strip()
        ids, spans = self.encoder.document_ids(text[: EXAMPLE_TOKENS * MAX_CHARS_PER_TOKEN])
        if len(ids) <= EXAMPLE_TOKENS and len(text) <= EXAMPLE_TOKENS * MAX_CHARS_PER_TOKEN:
            return text
        return text[: spans[EXAMPLE_TOKENS - 1][1]].rstrip() + " …"

    # --- public API ---------------------------------------------------------------------------
    @property
    def pipeline(self):
        """The pipeline `classify` runs through (calibrators per question, saved per model)."""
        if self._pipeline is None:
            from engine.pipeline import Pipeline

            self._pipeline = Pipeline(self)
        return self._pipeline

    def classify(self, question: Union[str, Sequence[str]], texts: Iterable[DocumentLike], **options) -> list[Verdict]:
        """Final verdicts in input order, calibrated ("yes", "no", "uncertain" or "error"): one
        per text and question, text-major (text 0's questions first). Options go to
        `Pipeline.run` (`cancel`, `keep_layer`, `aggregate`)."""
        questions = [question] if isinstance(question, str) else list(question)
        return list(self.pipeline.run(questions, texts, **options))

    def classify_iter(self, question: Union[str, Sequence[str]], texts: Iterable[DocumentLike], **options) -> Iterator[Verdict]:
        """`classify` as a stream, rows released in input order as soon as they can be."""
        questions = [question] if isinstance(question, str) else list(question)
        return self.pipeline.run(questions, texts, **options)

    def score(self, question: Union[str, Sequence[str]], texts: Iterable[DocumentLike], **options) -> list[Verdict]:
        """Raw model verdicts in input order, text-major: `margin` is the model's own Yes-No
        log-odds, `verdict` only its sign. With `layers`, each verdict's `states` holds the
        hidden states after those layers (layer -> array (D,)) at the deciding window."""
        questions = [question] if isinstance(question, str) else list(question)
        verdicts = list(self.score_iter(questions, texts, **options))
        order = {q: i for i, q in enumerate(questions)}
        verdicts.sort(key=lambda v: (v.document_index, order[v.question]))
        return verdicts

    def score_iter(
        self,
        questions: Union[str, Sequence[str]],
        texts: Iterable[DocumentLike],
        *,
        cancel: Optional[Callable[[], bool]] = None,
        layers: Sequence[int] = (),
        aggregate: str = "max",
        progress: Optional[Callable[[int, int], None]] = None,
        window_score: Optional[WindowScore] = None,
        window_progress: Optional[Callable[[int, int], None]] = None,
        answer: bool = True,
    ) -> Iterator[Verdict]:
        """Raw verdicts as batches finish (not in input order: see `Verdict.document_index`).

        `answer=False` asks only for the states after `layers` (at least one): each prompt may
        stop after the deepest of them, and the model's own answer (`margin`, `raw_margin`,
        `label_mass`) is NaN, the raw `verdict` "uncertain"; `window_score` is then required, as
        it picks a long document's window.

        A document of several windows is decided by the window with the highest margin, or with
        `window_score(question, margins, states)` by the one it scores highest (the pipeline
        passes the question's calibrated log-odds, so a probe picks the window it believes);
        `aggregate="mean"` averages the margins instead.

        `cancel` is polled between batches; when it returns True the generator stops.
        Memory stays bounded: documents are taken `chunk_documents` at a time.
        `progress(scored, taken)` is called after each batch with the document tokens scored so
        far and those of all windows of the documents taken so far: a long document's windows
        report progress before its verdict. `window_progress(scored, taken)` counts windows the
        same way, also once the documents of a chunk are cut (before the first batch).
        """
        questions = [questions] if isinstance(questions, str) else list(questions)
        if not questions or any(not q.strip() for q in questions):
            raise ValueError("a question must not be empty")
        if len(set(questions)) != len(questions):
            raise ValueError("each question may be asked once per call")
        if aggregate not in ("max", "mean"):
            raise ValueError("aggregate must be 'max' or 'mean'")
        layers = tuple(layers)
        if not answer and (not layers or window_score is None):
            raise ValueError("without the answer, scoring needs at least one layer's state and a window_score")
        if not answer and aggregate != "max":
            raise ValueError("averaging the windows' margins needs the answer")
        # document tokens scored, taken; the callback; windows scored, taken; their callback
        tally = [0, 0, progress, 0, 0, window_progress]
        chunk: list[Document] = []
        position = 0
        for item in texts:
            # Our own copy, normalised (the one intake normalisation, also for text given
            # directly): the caller's Document is never edited; what we note goes on the Verdict.
            doc = normalize_document(dataclasses.replace(as_document(item, position), warnings=[]))
            chunk.append(doc)
            position += 1
            if len(chunk) >= self.chunk_documents:
                yield from self._run_chunk(questions, chunk, position - len(chunk), cancel, layers, aggregate,
                                           window_score, tally, answer)
                chunk = []
                if cancel and cancel():
                    return
        if chunk:
            yield from self._run_chunk(questions, chunk, position - len(chunk), cancel, layers, aggregate,
                                       window_score, tally, answer)

    @property
    def can_deliberate(self) -> bool:
        """Whether the backend can let the model write before it answers (a local model can)."""
        return bool(getattr(self.backend, "supports_thinking", False))

    def deliberate(self, verdict: Verdict, text: str, max_new_tokens: int, layers: Sequence[int] = ()) -> Verdict:
        """Think, then answer: the raw verdict for `verdict`'s question and deciding window of
        `text` (the document's text) after the model wrote up to `max_new_tokens` tokens of
        reasoning, read at an answer cue that follows its turn. `states` holds the hidden states
        after `layers` at that answer; `reasoning` what it wrote. Worked examples are not shown
        (they answer in one word). Raises PromptError when the prompt can't be built."""
        if not self.can_deliberate:
            raise ValueError(f"{self.model_name}: this backend can't let the model write before answering")
        if self._thinking is None:
            template, cue = build_thinking_template(self.layout, self.tokenizer, self.instructions)
            self._thinking = (PromptEncoder(template, self.tokenizer), self.tokenizer.encode(cue))
        encoder, cue_ids = self._thinking
        start = time.perf_counter()
        a, b = verdict.window_span or (0, len(text))
        ids = self.encoder.document_ids(text[a:b])[0][: self._window_budget([verdict.question])]
        question = verdict.question
        prompt = [Segment(tuple(encoder.head_ids(question)), "thinking"), Segment(tuple(ids)),
                  Segment(tuple(encoder.tail_ids(question)))]
        score, written = self.backend.think_then_score(prompt, cue_ids, max_new_tokens, layers)
        return dataclasses.replace(
            verdict, verdict="yes" if score.margin > 0 else "no", margin=score.margin, raw_margin=score.margin,
            probability=float(sigmoid(score.margin)), label_mass=score.label_mass, states=score.states,
            reasoning=(THINK_LEAD + self.tokenizer.decode(written)).strip(),
            tokens=verdict.tokens + sum(map(len, prompt)) + len(written) + len(cue_ids),
            seconds=verdict.seconds + time.perf_counter() - start)

    # --- internals ----------------------------------------------------------------------------
    def _window_budget(self, questions: Sequence[str]) -> int:
        fixed = max(len(self.encoder_for(q).head_ids(q)) + len(self.encoder_for(q).tail_ids(q)) for q in questions)
        return min(self.context - fixed, self.window_tokens)

    def _budgeted_ids(self, doc: Document) -> tuple[list[int], list[tuple[int, int]], bool]:
        """The document's token ids and spans, at most `max_tokens` of them (with a warning),
        and whether it was cut."""
        text = doc.text
        max_chars = self.max_tokens * MAX_CHARS_PER_TOKEN
        ids, spans = self.encoder.document_ids(text[:max_chars])
        if len(ids) <= self.max_tokens and len(text) <= max_chars:
            return ids, spans, False
        ids, spans = ids[: self.max_tokens], spans[: self.max_tokens]
        kept = spans[-1][1] if spans else 0
        note = (
            f"document is longer than the budget of {self.max_tokens:,} tokens: only its first "
            f"{kept:,} of {len(text):,} characters were read"
        )
        if note not in doc.warnings:
            doc.warnings.append(note)
        return ids, spans, True

    def _split(self, doc_index: int, doc: Document, budget: int) -> list[_Window]:
        ids, spans, cut = self._budgeted_ids(doc)
        if len(ids) <= budget and not cut:
            return [_Window(doc_index, 0, ids, (0, len(doc.text)))]
        # A part of a document is scored as its own text in the prompt, tokenized whole (the
        # template's text after it may tokenize differently after a cut): a few tokens of room.
        budget = max(budget - _SEAM_ROOM, 1)
        overlap = min(self.window_overlap, budget // 4)
        step = budget - overlap
        windows = []
        for n, start in enumerate(range(0, max(len(ids) - overlap, 1), step)):
            end = min(start + budget, len(ids))
            a, b = char_span(spans, start, end)
            windows.append(_Window(doc_index, n, self.encoder.document_ids(doc.text[a:b])[0], (a, b)))
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
            Verdict(document_id=doc.id, question=q, verdict="error", error=reason, document_index=position,
                    warnings=tuple(doc.warnings))
            for q in questions
        ]

    def _run_chunk(self, questions, docs, first_position, cancel, layers, aggregate, window_score,
                   tally, answer: bool = True) -> Iterator[Verdict]:
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
            try:
                doc_windows = self._split(i, doc, budget)
            except PromptError as exc:  # this document can't be cut token-exactly: its row says so
                yield from self._error_verdicts(questions, doc, position, f"cannot build the prompt: {exc}")
                continue
            pending[i] = _Pending(doc, position, len(doc_windows))
            windows += doc_windows

        tally[1] += sum(len(w.ids) for w in windows)
        tally[4] += len(windows)
        if tally[5] is not None:
            tally[5](tally[3], tally[4])
        for batch in self._batches(windows):
            if cancel and cancel():
                return
            results = self._score_batch(questions, batch, layers, answer)
            tally[0] += sum(len(w.ids) for w in batch)
            tally[3] += len(batch)
            if tally[2] is not None:
                tally[2](tally[0], tally[1])
            if tally[5] is not None:
                tally[5](tally[3], tally[4])
            for w, result in zip(batch, results):
                p = pending[w.doc]
                p.margins[w.index], p.masses[w.index], p.spans[w.index] = result.margins, result.masses, w.span
                p.states[w.index] = result.states
                for qi, error in enumerate(result.errors):
                    if error:
                        p.errors.setdefault(qi, error)
                for qi, warning in enumerate(result.warnings):
                    if warning and warning not in p.warnings.setdefault(qi, []):
                        p.warnings[qi].append(warning)
                p.tokens += result.tokens
                p.seconds += result.seconds
                if len(p.margins) == p.windows:
                    yield from self._finish(questions, p, aggregate, window_score)
                    del pending[w.doc]

    def _score_batch(self, questions, batch: list[_Window], layers: Sequence[int], answer: bool = True
                     ) -> list[_RowResult]:
        """Every window of the batch with every question, in one call to the backend."""
        start = time.perf_counter()
        around = []  # per question: its (head, tail) segments, the same for every window
        for question in questions:
            encoder = self.encoder_for(question)
            shared = self.template.document_first and encoder is self.encoder
            key = "instructions" if shared else f"instructions+{question}"
            around.append((Segment(tuple(encoder.head_ids(question)), key), Segment(tuple(encoder.tail_ids(question)))))
        prompts = []
        for w in batch:
            document = Segment(tuple(w.ids))
            prompts += [[head, document, tail] for head, tail in around]
        # the keyword only when it says something, so a backend written before it still works
        scores: list[PromptScore] = (self.backend.score(prompts, layers) if answer
                                     else self.backend.score(prompts, layers, answer=False))
        seconds = time.perf_counter() - start
        tokens = np.array([len(w.ids) for w in batch])
        share = tokens / max(tokens.sum(), 1)
        q = len(questions)
        return [
            _RowResult(
                margins=np.array([s.margin for s in scores[r * q : (r + 1) * q]], dtype=np.float32),
                masses=np.array([s.label_mass for s in scores[r * q : (r + 1) * q]], dtype=np.float32),
                states=[s.states for s in scores[r * q : (r + 1) * q]],
                errors=[s.error for s in scores[r * q : (r + 1) * q]],
                warnings=[s.warning for s in scores[r * q : (r + 1) * q]],
                tokens=int(tokens[r]),
                seconds=float(seconds * share[r]),
            )
            for r in range(len(batch))
        ]

    def _finish(self, questions, p: _Pending, aggregate: str, window_score: Optional[WindowScore]) -> Iterator[Verdict]:
        order = sorted(p.margins)
        margins = np.stack([p.margins[w] for w in order])  # (windows, questions)
        masses = np.stack([p.masses[w] for w in order])
        for qi, question in enumerate(questions):
            if qi in p.errors:
                yield from self._error_verdicts([question], p.document, p.position, p.errors[qi])
                continue
            if window_score is not None and len(order) > 1:
                best = int(np.argmax(window_score(question, margins[:, qi], [p.states[w][qi] for w in order])))
            else:
                best = int(np.argmax(margins[:, qi]))
            margin = float(margins[best, qi] if aggregate == "max" else margins[:, qi].mean())
            mass = float(masses[best, qi])
            yield Verdict(
                document_id=p.document.id,
                question=question,
                verdict="uncertain" if math.isnan(margin) else "yes" if margin > 0 else "no",
                margin=margin,
                raw_margin=margin,
                probability=math.nan if math.isnan(margin) else float(sigmoid(margin)),
                label_mass=mass,
                tokens=p.tokens + p.windows * (len(self.encoder_for(question).head_ids(question))
                                               + len(self.encoder_for(question).tail_ids(question))),
                seconds=p.seconds / len(questions),
                windows=p.windows,
                window_index=order[best],
                window_span=p.spans[order[best]],
                states=p.states[order[best]][qi],
                document_index=p.position,
                warnings=tuple(p.document.warnings) + tuple(w for w in p.warnings.get(qi, ()) if w not in p.document.warnings),
            )
