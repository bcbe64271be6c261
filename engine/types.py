"""Plain dataclasses that cross module borders: documents in, verdicts out."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional


@dataclass
class Document:
    """One document to judge.

    ``id`` is what rows are keyed by (a path relative to what the user named, or the
    ``id`` of a JSONL line). A document that could not be read carries ``error`` and
    empty ``text``; it still gets a row, so nothing is silently dropped.
    """

    id: str
    text: str
    source: Optional[str] = None
    error: Optional[str] = None
    warnings: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


def as_document(item: "Document | str", position: int) -> "Document":
    """`item` itself, or a text given directly as a Document whose id is its position."""
    return item if isinstance(item, Document) else Document(id=str(position), text=str(item))


@dataclass
class Example:
    """A worked example the prompt shows the model before each document: a document and its
    answer, for one question (``question``) or for every question asked (None)."""

    text: str
    answer: bool
    question: Optional[str] = None
    id: str = ""


@dataclass
class Verdict:
    """The answer to one question about one document.

    ``raw_margin`` is the model's own log P(yes forms) - log P(no forms) (natural-log
    odds); ``margin`` equals it on a raw verdict (`Classifier.score`) and is the calibrated
    log-odds, logit(``probability``), on a final one (`Pipeline.run`).
    ``label_mass`` is P(yes forms) + P(no forms) at the answer position. Both are NaN where the
    prompt stopped at a probe's layer without the model's answer (``answer=False``).
    """

    document_id: str
    question: str
    verdict: str  # "yes" | "no" | "uncertain" | "error"
    margin: float = float("nan")
    probability: float = float("nan")
    label_mass: float = float("nan")
    tokens: int = 0
    seconds: float = 0.0
    error: Optional[str] = None
    raw_margin: float = float("nan")
    score: float = float("nan")  # what ranks the documents for the question: the calibrator's log-odds before the batch decision
    windows: int = 1
    window_index: int = 0
    window_span: Optional[tuple[int, int]] = None
    hidden: Any = None  # numpy array (D,): the hidden state at the answer position after the layer asked for
    states: Any = None  # raw verdicts only: {layer: array (D,)} captured for calibration, on request
    document_index: int = -1  # position of the document in the input, for re-ordering streams
    reasoning: Optional[str] = None  # what the model wrote before answering (`--deliberate`), if it did
    # What the engine noted while reading the document for this verdict (its text normalised, cut
    # to the token budget): the caller's Document is never edited, so these travel here.
    # and the backend's caveats about this answer alone (an approximate margin)
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None
