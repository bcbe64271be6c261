"""The one flow from questions and documents to final verdict rows: score -> calibrate.

`verdict classify`, the app's scoring thread and `Classifier.classify` are thin layers over
`Pipeline`, so the same inputs give the same rows everywhere. A row is final: calibrated by the
question's calibrator (fitted to labels, else the one saved for this model and question, else the
label-free defaults with the "uncertain" band), with the deciding window and any error.

The pipeline asks the scoring backend for exactly the hidden states its calibrators need (a
probe's layer) plus, on request, one more (`keep_layer`, which the app keeps to refit
calibrators later without scoring again), during the one prefill.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, Sequence, Union

from engine.confidence.calibrate import Calibrator, read_labels, text_key
from engine.confidence.decide import (DEFAULT_TARGET, GATES_BY_TARGET, DecisionRule, decide_verdicts, suggest,
                                      unseen_ranking)
from engine.gather import calibrator_for, refreshed
from engine.types import Document, Example, Verdict, as_document

DocumentLike = Union[str, Document]
DECISION_BLOCK = 512  # documents whose rows are decided and released together in a long run
DECISION_CONTEXT = 4096  # rows per question a later block is decided with


@dataclass
class Labels:
    """User labels: per question (None: every question) document id -> yes, and the text of
    labeled documents that are not among those being classified."""

    by_question: dict[Optional[str], dict[str, bool]] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)

    def for_question(self, question: str) -> dict[str, bool]:
        return {**self.by_question.get(None, {}), **self.by_question.get(question, {})}

    @classmethod
    def read(cls, path: Union[str, Path]) -> "Labels":
        """Labels from JSONL lines: `id`, `label` (true/false, yes/no), optional `question` and
        `text`. Raises OSError, or ValueError naming the line."""
        records: dict[Optional[str], list[dict]] = {}
        texts: dict[str, str] = {}
        for record in _label_records(path):
            records.setdefault(record.get("question"), []).append(record)
            if isinstance(record.get("text"), str):
                texts[str(record["id"])] = record["text"]
        try:
            return cls({q: read_labels(rs) for q, rs in records.items()}, texts)
        except (KeyError, ValueError) as exc:
            raise ValueError(f"{path}: {exc}") from exc


def read_examples(path: Union[str, Path]) -> list[Example]:
    """Worked examples from JSONL lines in the labels format with the document's `text`: `id`,
    `text`, `label` (yes/no, true/false), optional `question` (else: for every question).
    Raises OSError, or ValueError naming the line."""
    examples = []
    for number, record in enumerate(_label_records(path), 1):
        text = record.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{path}: example {number} ({record['id']!r}) has no 'text'")
        try:
            answer = read_labels([record])[str(record["id"])]
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from exc
        question = record.get("question")
        examples.append(Example(text=text, answer=answer, question=question if isinstance(question, str) else None,
                                id=str(record["id"])))
    if not examples:
        raise ValueError(f"{path}: no examples in it")
    return examples


def _label_records(path: Union[str, Path]) -> Iterator[dict]:
    """The JSON objects of a labels file, each with an `id`. Raises OSError, or ValueError naming the line."""
    number = 0
    try:
        with open(path, "rb") as fh:  # lines decoded one by one, so an error names its line
            for number, raw in enumerate(fh, 1):
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
                if line.strip():
                    record = json.loads(line)
                    if not isinstance(record, dict) or "id" not in record:
                        raise ValueError("not an object with an 'id'")
                    if record.get("question") is not None and not isinstance(record["question"], str):
                        raise ValueError("its 'question' is not text")
                    yield record
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: line {number} is not UTF-8 text ({exc.reason})") from exc
    except ValueError as exc:  # JSON errors too
        raise ValueError(f"{path}: line {number} is not a valid label ({exc})") from exc


class Pipeline:
    """Final verdicts for one classifier; keeps one calibrator per question.

    `settings` (band, mass_floor, shift_method, probe) override what saved calibrators say;
    `save` writes calibrators fitted to labels to the user's data folder for later runs.
    """

    def __init__(self, classifier, *, settings: Optional[Mapping[str, Any]] = None, save: bool = True,
                 folder: Optional[Path] = None) -> None:
        self.classifier = classifier
        self.settings = dict(settings or {})
        self.save = save
        self.folder = folder
        self.calibrators: dict[str, Calibrator] = {}
        self.rule = DecisionRule(target=float(self.settings.pop("target", DEFAULT_TARGET)))
        self._general_notes: list[str] = []
        self._batch_decided = False  # whether a run decided over the batch (what the notes explain)
        self.has_states = bool(getattr(getattr(classifier, "backend", None), "supports_states", True))
        if not self.has_states:
            # A probe reads hidden states; a backend without them (an inference server) gets the
            # best label-based method that needs none: Platt scaling on the margin.
            self.settings["probe"] = False

    # --- calibrators -----------------------------------------------------------------------------
    def calibrator(self, question: str) -> Calibrator:
        """The question's calibrator: fitted here, else saved for this model, else label-free.
        A saved one that can't be read is ignored, with a note."""
        cal = self.calibrators.get(question)
        if cal is None:
            try:
                cal = calibrator_for(self.classifier, question, folder=self.folder, **self.settings)
            except Exception as exc:  # a damaged saved calibrator must not stop scoring
                cal = calibrator_for(self.classifier, question, use_saved=False, folder=self.folder, **self.settings)
                cal.notes.append(f"the saved calibrator could not be read ({type(exc).__name__}: {exc})")
            if cal.probe is not None and not self.has_states:
                self._no_probe_note()
        self.calibrators[question] = cal = refreshed(cal, self.classifier)
        return cal

    def _no_probe_note(self) -> None:
        if not self._general_notes:
            self._general_notes.append(
                "this backend returns no hidden states, so no probe can be used: calibrating with "
                "Platt scaling on the margin from the labels instead")

    def fit(self, question: str, documents: Sequence[DocumentLike], labels: Mapping[str, bool],
            kept: Optional[Mapping[str, Verdict]] = None) -> Calibrator:
        """Fit the question's calibrator to `labels` (document id -> yes) of `documents` (only the
        labeled ones are scored, and only those without a `kept` raw verdict of this question that
        carries the hidden state the calibrator reads: `engine.gather.labeled_features`), save it
        when `save`, and use it from now on.

        A document the prompt shows as a worked example of this question is left out: scored with
        its own answer in front of it, it would make the calibrator overconfident. When that leaves
        no yes or no label, the calibrator stays label-free, with a note."""
        documents = [as_document(d, i) for i, d in enumerate(documents)]
        examples_for = getattr(self.classifier, "examples_for", None)
        shown = {e.text.strip() for e in examples_for(question)} if examples_for else set()
        if shown:
            not_shown = [d for d in documents if d.text.strip() not in shown]
            not_shown_ids = {d.id for d in not_shown}
            labels = {i: y for i, y in labels.items() if i in not_shown_ids}
            if len(set(labels.values())) < 2:
                cal = calibrator_for(self.classifier, question, use_saved=False, folder=self.folder, **self.settings)
                cal.notes.append("its labeled documents are all shown as worked examples: the calibrator stays "
                                 "label-free")
                self.calibrators[question] = cal
                return cal
            documents = not_shown
        cal = calibrator_for(self.classifier, question, list(documents), dict(labels), save=self.save,
                             folder=self.folder, kept=kept, **self.settings)
        self.calibrators[question] = cal
        if not self.has_states:
            self._no_probe_note()
        return cal

    def fit_labels(self, questions: Sequence[str], documents: Sequence[Document], labels: Labels) -> None:
        """Fit every question's calibrator to the labels given for it. A labeled id must be among
        `documents` (readable) or have its text in the labels. Raises ValueError saying what's missing."""
        known = {d.id: d for d in documents if not d.error}
        for question in dict.fromkeys(questions):
            given = labels.for_question(question)
            if not given:
                raise ValueError(f"no labels for the question {question!r}")
            usable = {i: y for i, y in given.items() if i in known or i in labels.texts}
            if len(set(usable.values())) < 2:
                raise ValueError(
                    f"labels for {question!r} need at least one yes and one no document among the documents "
                    "being classified, or with their 'text' in the labels file"
                )
            training = [known[i] if i in known else Document(id=i, text=labels.texts[i]) for i in usable]
            self.fit(question, training, usable)

    def notes(self) -> list[str]:
        """What the calibrators want the user to know (one line each, naming the question)."""
        reasons: dict[str, list[str]] = {}  # why nothing is called -> the questions it holds for
        for question, cal in self.calibrators.items() if self._batch_decided else ():
            k = min(cal.n_labels)
            decision = self.rule.decision_for(k, cal.platt_prior)
            start = self.rule.calls_from(k, cal.platt_prior)
            if decision == "none" and start is not None:
                given = f"{cal.n_labels[0]} yes and {cal.n_labels[1]} no labels" if sum(cal.n_labels) else "no labels"
                reason = (f"with {given}, "
                          f"nothing is called: no decision was right {self.rule.target:.0%} of the time with so few "
                          f"on questions the model was never tuned on (README, Decisions over the batch); calls "
                          f"start from {start} of each (--labels); the probability ranks the documents "
                          "(--suggest N names the ones to label first)")
            elif decision != "none" and self.rule.holds_back(k, ranked := unseen_ranking(
                    [s for s, _ in cal.anchors.values()], dict(enumerate(y for _, y in cal.anchors.values())),
                    cal.unseen_auc)):
                reason = (f"with {cal.n_labels[0]} yes and {cal.n_labels[1]} no labels, nothing is called: scored "
                          f"as unseen, the labels rank at AUC {ranked:.2f} and calls need "
                          f"{self.rule.unseen_auc_floor(k):.2f}, so the "
                          "ranking is not yet to be trusted for this question (README, Decisions over the batch); "
                          "more labels can lift it (--suggest N names the ones to label first)")
            elif decision == "none" or (decision == "mixture" and math.isinf(self.rule.gate)):
                reason = (f"no yes or no is called at --target-precision {self.rule.target:g}: no rule was measured "
                          "to make calls right that often (README, Decisions over the batch); the probability "
                          f"still ranks the documents, and --target-precision {GATES_BY_TARGET[-1][0]:g} calls "
                          "where the rule allows")
            else:
                continue
            reasons.setdefault(reason, []).append(question)
        waiting = [f"{', '.join(map(repr, questions))}: {reason}" for reason, questions in reasons.items()]
        return list(self._general_notes) + waiting + [f"{q!r}: {note}" for q, cal in self.calibrators.items()
                                                      for note in cal.notes]

    def suggestions(self, rows: Sequence[Verdict], count: int, documents: Sequence[Document]
                    ) -> dict[str, list[Verdict]]:
        """Per question, the rows (of one `run` over `documents`) whose documents' labels would
        bring the most calls, best first (`engine.confidence.decide.suggest`; the question's
        labeled documents count as labels and are never suggested)."""
        out: dict[str, list[Verdict]] = {}
        keys = {n: text_key(d.text) for n, d in enumerate(documents)}
        for question in dict.fromkeys(v.question for v in rows):
            cal = self.calibrators.get(question)
            known = cal.anchors if cal else {}
            batch = {v.document_index: v for v in rows if v.question == question and v.ok and math.isfinite(v.score)
                     and keys.get(v.document_index) not in known}
            members = list(batch.values())
            scores = [v.score for v in members] + ([a[0] for a in cal.anchors.values()] if cal else [])
            labels = {len(members) + n: a[1] for n, a in enumerate(cal.anchors.values())} if cal else {}
            picks = suggest(scores, labels, self.rule, count, prior=cal.platt_prior if cal else None) if members else []
            out[question] = [members[i] for i in picks if i < len(members)]
        return out

    def needs_whole_batch(self, questions: Union[str, Sequence[str]]) -> bool:
        """Whether `run` computes a statistic over all of its documents before its first row of
        these questions (a calibrator with the batch shift, the median margin of the run): such
        rows depend on every document of the run, so one batch split into several runs would get
        other rows."""
        listed = [questions] if isinstance(questions, str) else list(questions)
        return _batch_level(self.calibrator(q) for q in dict.fromkeys(listed))

    # --- the flow --------------------------------------------------------------------------------
    def run(
        self,
        questions: Union[str, Sequence[str]],
        documents: Iterable[DocumentLike],
        *,
        cancel: Optional[Callable[[], bool]] = None,
        ordered: bool = True,
        keep_layer: Optional[int] = None,
        aggregate: str = "max",
        progress: Optional[Callable[[int, int], None]] = None,
        window_progress: Optional[Callable[[int, int], None]] = None,
        deliberate: Union[int, Mapping[str, int]] = 0,
        decisions: str = "batch",
        block: int = DECISION_BLOCK,
        answer: bool = True,
    ) -> Iterator[Verdict]:
        """Final rows, one per document and listed question. `ordered`: in input order,
        text-major, each released as soon as it can be; else as batches finish (see
        `Verdict.document_index`). A question listed twice is scored once and reported twice.
        `keep_layer` puts the hidden state after that layer in each row's `hidden`. `cancel` is
        polled between batches; `progress(scored, taken)` gets the document tokens scored so far
        after each batch, `window_progress(scored, taken)` the windows (see
        `Classifier.score_iter`). `deliberate` N > 0: a row left uncertain
        is scored again after the model wrote up to N tokens of reasoning (`Classifier.deliberate`),
        calibrated by the same calibrator; its `reasoning` says what the model wrote. A mapping
        question -> N thinks only about those questions' rows (N each).

        `decisions`: "batch" (the default) decides rows over the batch of their question's scores
        (`engine.confidence.decide`: P(yes) and a call where the call reaches the target
        precision). Rows are held until `block` documents are scored (all of them in a smaller
        run), decided over every row so far, and released; each later block likewise, so a long
        run streams and an interrupted one (Ctrl-C) still gives the rows it scored. "row" decides
        each row alone (the calibrator's band) as soon as it is scored.

        `answer=False`: where every question's probability comes from a probe on a hidden layer
        (the general probe, refit or not, or the question's own), each prompt stops after the
        deepest layer read (`Classifier.score_iter(answer=False)`): the same rows with less work,
        but without the model's own answer (`raw_margin` and `label_mass` NaN). Where a question's
        probability needs the margin, every prompt goes through the whole model, with a note."""
        if decisions not in ("batch", "row"):
            raise ValueError("decisions must be 'batch' or 'row'")
        self._batch_decided |= decisions == "batch"
        listed = [questions] if isinstance(questions, str) else list(questions)
        unique = list(dict.fromkeys(listed))
        cals = {q: self.calibrator(q) for q in unique}
        layers = sorted(set(probe_layers(cals)) | ({keep_layer} if keep_layer else set()))
        if not answer and not stops_at_probes(cals, aggregate):
            if self._whole_model_note not in self._general_notes:
                self._general_notes.append(self._whole_model_note)
            answer = True
        think = None
        keys: dict[int, str] = {}
        if decisions == "batch":
            documents = _keyed(documents, keys)
        tokens = {q: deliberate if isinstance(deliberate, int) else int(deliberate.get(q, 0)) for q in unique}
        if any(n > 0 for n in tokens.values()):
            if getattr(self.classifier, "can_deliberate", False):
                texts: dict[int, list] = {}  # position -> [document, rows still to come]
                documents = _remembered(documents, texts, len(unique))
                think = _Thinker(self.classifier, texts, tokens, layers)
            elif self._no_thinking_note not in self._general_notes:
                self._general_notes.append(self._no_thinking_note)
        raw = self.classifier.score_iter(unique, documents, cancel=cancel, layers=layers, aggregate=aggregate,
                                         progress=progress, window_progress=window_progress,
                                         window_score=calibrated_windows(cals), answer=answer)
        if _batch_level(cals.values()):
            raw = list(raw)  # the batch shift is the median margin of the whole set
            cals = {q: cal.for_batch(raw) for q, cal in cals.items()}  # copies: the kept ones stay as they are
        positions = {q: [i for i, listed_q in enumerate(listed) if listed_q == q] for q in unique}
        rows = self._final(raw, cals, keep_layer, positions, think)
        if decisions == "batch":
            rows = _in_blocks(rows, cals, self.rule, keys, len(unique), block)
        yield from (v for _, v in (in_input_order(rows, len(listed)) if ordered else rows))

    _no_thinking_note = "this backend can't let the model write before answering: --deliberate was not used"
    _whole_model_note = ("the model's own answer decides here (no probe on a hidden layer reads every question, or "
                         "the windows' margins are averaged): every prompt went through the whole model")

    @staticmethod
    def _final(raw: Iterable[Verdict], cals: Mapping[str, Calibrator], keep_layer: Optional[int],
               positions: Mapping[str, list[int]], think: Optional["_Thinker"] = None) -> Iterator[tuple[int, Verdict]]:
        for v in raw:
            kept = v.states.get(keep_layer) if keep_layer and v.states else None
            final = cals[v.question].apply(v)
            if think is not None:
                final = think(v, final, cals[v.question])
            final.hidden = kept
            for n, position in enumerate(positions[v.question]):
                yield position, final if n == 0 else dataclasses.replace(final)


def _batch_level(cals: Iterable[Calibrator]) -> bool:
    """Whether any of these calibrators takes a statistic of the whole batch (the batch shift)."""
    return any(cal.shift_method == "batch" for cal in cals)


def decided(rows: Sequence[tuple[int, Verdict]], cals: Mapping[str, Calibrator], rule: DecisionRule,
            keys: Mapping[int, str]) -> list[tuple[int, Verdict]]:
    """(position, verdict) rows with each question's rows decided over the batch
    (`engine.confidence.decide.decide_verdicts`). The calibrator's labeled documents (`anchors`)
    join the batch: a row whose document is one of them (`keys`: document index -> `text_key`) is
    held at its label, with the anchor's score; the others come in as extra points."""
    out = list(rows)
    by_question: dict[str, list[int]] = {}
    for n, (_, v) in enumerate(out):
        by_question.setdefault(v.question, []).append(n)
    for question, members in by_question.items():
        cal = cals[question]
        batch, pinned, pinned_scores, found = [], {}, {}, set()
        for n in members:
            v = out[n][1]
            key = keys.get(v.document_index)
            if key in cal.anchors:
                pinned_scores[v.document_index], pinned[v.document_index] = cal.anchors[key]
                found.add(key)
            batch.append(v)
        extra = [anchor for key, anchor in cal.anchors.items() if key not in found]
        verdicts = decide_verdicts(batch, rule, pinned=pinned, extra=extra, mass_floor=cal.mass_floor,
                                   prior=cal.platt_prior, pinned_scores=pinned_scores, unseen_auc=cal.unseen_auc)
        for n, v in zip(members, verdicts):
            out[n] = (out[n][0], v)
    return out


def _in_blocks(rows: Iterable[tuple[int, Verdict]], cals: Mapping[str, Calibrator], rule: DecisionRule,
               keys: Mapping[int, str], questions: int, block: int) -> Iterator[tuple[int, Verdict]]:
    """Rows released a block of documents at a time, each block decided over every row so far
    (the most recent `DECISION_CONTEXT` per question, to bound the work). On KeyboardInterrupt the
    rows held are decided and released before it goes on up."""
    context: list[tuple[int, Verdict]] = []  # rows released so far (their decided copies' scores are the same)
    held: list[tuple[int, Verdict]] = []
    per_block = max(1, block) * max(1, questions)

    def release() -> list[tuple[int, Verdict]]:
        nonlocal context, held
        done = decided(context + held, cals, rule, keys)[len(context):]
        context = (context + held)[-DECISION_CONTEXT * max(1, questions):]
        held = []
        return done

    try:
        for row in rows:
            held.append(row)
            if len(held) >= per_block:
                yield from release()
    except KeyboardInterrupt:
        yield from release()
        raise
    yield from release()


def _keyed(documents: Iterable[DocumentLike], keys: dict[int, str]) -> Iterator[Document]:
    """`documents` as Documents, each one's `text_key` kept in `keys` by position."""
    for position, item in enumerate(documents):
        doc = as_document(item, position)
        keys[position] = text_key(doc.text)
        yield doc


def probe_layers(cals: Mapping[str, Calibrator]) -> list[int]:
    """The hidden layers the calibrators' probes read, in order."""
    return sorted({n for cal in cals.values() for n in cal.layers})


def stops_at_probes(cals: Mapping[str, Calibrator], aggregate: str = "max") -> bool:
    """Whether prompts may stop at `probe_layers` without the model's own answer: every question's
    probability comes from a probe on a hidden layer, and a long document's windows are picked,
    not their margins averaged."""
    return aggregate == "max" and all(cal.layers for cal in cals.values())


def calibrated_windows(cals: Mapping[str, Calibrator]):
    """The window scorer for `Classifier.score_iter`: a long document is decided by the window
    its question's calibrator believes most (a probe reads each window's state), not the one with
    the highest raw margin. None when no calibrator reads states (its order is the margin's)."""
    if not any(cal.layers for cal in cals.values()):
        return None

    def score(question: str, margins, states) -> list[float]:
        cal = cals[question]
        if not cal.layers:
            return list(margins)
        return [cal.log_odds(float(m), (s or {}).get(cal.layers[0])) for m, s in zip(margins, states)]

    return score


class _Thinker:
    """Think-then-answer for the rows one pass left uncertain (`Pipeline.run(deliberate=N)`)."""

    def __init__(self, classifier, texts: dict[int, list], tokens: Mapping[str, int], layers: Sequence[int]) -> None:
        self.classifier, self.texts, self.tokens, self.layers = classifier, texts, tokens, layers

    def __call__(self, raw: Verdict, final: Verdict, cal: Calibrator) -> Verdict:
        entry = self.texts.get(raw.document_index)
        if entry is None:
            return final
        document, _ = entry
        entry[1] -= 1
        if entry[1] <= 0:
            del self.texts[raw.document_index]
        tokens = self.tokens.get(raw.question, 0)
        if final.verdict != "uncertain" or tokens <= 0:
            return final
        try:
            thought = self.classifier.deliberate(raw, document.text, tokens, self.layers)
        except ValueError:  # the thinking prompt can't be built for this document: keep one pass
            return final
        return cal.apply(thought)


def _remembered(documents: Iterable[DocumentLike], texts: dict[int, list], rows: int) -> Iterator[Document]:
    """`documents` as Documents, each kept in `texts` by position until its `rows` rows are final."""
    for position, item in enumerate(documents):
        doc = as_document(item, position)
        texts[position] = [doc, rows]
        yield doc


def in_input_order(rows: Iterable[tuple[int, Verdict]], n_questions: int) -> Iterator[tuple[int, Verdict]]:
    """Re-order (question position, verdict) pairs into input order (document, then question),
    releasing each as soon as every row before it has come."""
    waiting: dict[tuple[int, int], tuple[int, Verdict]] = {}
    next_key = (0, 0)
    for position, v in rows:
        waiting[(v.document_index, position)] = (position, v)
        while next_key in waiting:
            yield waiting.pop(next_key)
            d, q = next_key
            next_key = (d, q + 1) if q + 1 < n_questions else (d + 1, 0)
