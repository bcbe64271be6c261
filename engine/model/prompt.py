"""Prompt layouts (data, not code paths) and their split into cacheable segments.

Measured (DESIGN.md): small instruct models answer the question they read last, so the default
layout puts the document first and the question last. A layout renders through the model's own
chat template; the rendered text is cut at the document and question slots into

    head   (everything before the first slot: shared by every document, KV-cached once)
    document
    tail   (from the end of the document to the answer cue)

for document-first layouts, or head = instructions + question (cached per question) and
tail = the rest after the document, for question-first layouts. Segments are tokenized separately
and the ids concatenated, so a cached segment is exactly a prefix of every prompt that uses it.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional, Sequence

from engine.atomic import atomic_write
from engine.folders import cache_dir
from engine.model.tokenizer import Tokenizer, TokenizerError

_CUTS_FILE = "prompt-cuts.json"  # in the cache folder: where the segment cuts were found before
_CUTS_FORMAT = 1  # bump when the way cuts are found or used changes
_MAX_CUTS = 256

_DOC = "\x00VERDICT_DOCUMENT\x00"
_QUESTION = "\x00VERDICT_QUESTION\x00"
_INSTRUCTIONS = "\x00VERDICT_INSTRUCTIONS\x00"
ANSWER_WORDS = ("Yes", "No")  # what the prompt asks for; `label_forms` reads every casing of them

# A worked example as the prompt shows it: (document, question, whether the answer is yes).
WorkedExample = tuple[str, str, bool]


@dataclass(frozen=True)
class Layout:
    """A prompt layout preset. `user` holds the `{document}` and `{question}` slots."""

    name: str
    system: str
    user: str
    # Used when the model has no chat template: `{system}` and `{user}` slots.
    plain: str = "{system}\n\n{user}\nAnswer:"
    template_kwargs: dict[str, Any] = field(default_factory=lambda: {"enable_thinking": False})


DOCUMENT_FIRST = Layout(
    name="document-first",
    system="You judge documents. Read the document, then answer the question about it with only Yes or No.",
    user="Document:\n{document}\n\nQuestion: {question}\nAnswer with Yes or No.",
)
QUESTION_FIRST = Layout(
    name="question-first",
    system="Judge whether the document satisfies the question. Answer only Yes or No.",
    user="Question: {question}\n\nDocument:\n{document}",
)
QWEN3_RERANKER = Layout(
    name="qwen3-reranker",
    system=(
        "Judge whether the Document meets the requirements based on the Query and the Instruct "
        'provided. Note that the answer can only be "yes" or "no".'
    ),
    user="<Instruct>: Given a question, judge whether the document answers yes\n<Query>: {question}\n<Document>: {document}",
)
LAYOUTS = {layout.name: layout for layout in (DOCUMENT_FIRST, QUESTION_FIRST, QWEN3_RERANKER)}


def default_layout(model_name: str, preset: Optional[str] = None) -> Layout:
    """The measured default for a model family (rerankers keep the order they were trained on):
    the preset read from the model's metadata if it has one, else a guess from its name."""
    if preset in LAYOUTS:
        return LAYOUTS[preset]
    return QWEN3_RERANKER if "reranker" in model_name.lower() else DOCUMENT_FIRST


class PromptError(ValueError):
    """A layout or template that can't be split into segments."""


@dataclass(frozen=True)
class PromptTemplate:
    """A layout rendered for one model and one set of instructions, split at its slots."""

    document_first: bool
    before: str  # text before the first slot
    between: str  # text between the two slots
    after: str  # text after the second slot
    literal: tuple[tuple[int, int], ...] = ()  # user text inside `before` (the instructions)

    def render(self, question: str, document: str) -> tuple[str, list[tuple[int, int]]]:
        """The whole prompt text and the character ranges of user text in it (never control tokens)."""
        first, second = (document, question) if self.document_first else (question, document)
        a = len(self.before)
        b = a + len(first)
        c = b + len(self.between)
        return self.before + first + self.between + second + self.after, [*self.literal, (a, b), (c, c + len(second))]

    def document_start(self, question: str) -> int:
        """Where the document begins in `render(question, ...)`'s text."""
        return len(self.before) + (0 if self.document_first else len(question) + len(self.between))


def build_template(
    layout: Layout, tokenizer: Tokenizer, instructions: str = "", examples: Sequence[WorkedExample] = ()
) -> PromptTemplate:
    """Render `layout` with the model's chat template (or the plain one) and split it.

    `examples` are worked examples (document, question, answer) placed before the document as
    earlier turns of the conversation: a user turn in the layout's own words and the assistant's
    one-word answer. They sit in the text before the first slot, so they are part of the cached
    head and cost nothing per document.
    """
    instructions = instructions.strip()
    system = layout.system + ("\n\n" + _INSTRUCTIONS if instructions else "")
    user = layout.user.replace("{document}", _DOC).replace("{question}", _QUESTION)
    fills: dict[str, str] = {_INSTRUCTIONS: instructions}
    turns: list[tuple[str, str]] = []
    for n, (document, question, answer) in enumerate(examples):
        doc_slot, question_slot = f"\x00VERDICT_EXAMPLE_DOCUMENT_{n}\x00", f"\x00VERDICT_EXAMPLE_QUESTION_{n}\x00"
        fills[doc_slot], fills[question_slot] = document, question
        turns.append((layout.user.replace("{document}", doc_slot).replace("{question}", question_slot),
                      ANSWER_WORDS[0] if answer else ANSWER_WORDS[1]))
    if tokenizer.chat_template:
        messages = [{"role": "system", "content": system}]
        for asked, answered in turns:
            messages += [{"role": "user", "content": asked}, {"role": "assistant", "content": answered}]
        messages.append({"role": "user", "content": user})
        try:
            text = tokenizer.render_chat(messages, **layout.template_kwargs)
        except TokenizerError as exc:  # a broken or hostile template: one clear line, exit 2 in the CLI
            raise PromptError(str(exc)) from exc
    else:
        worked = "".join(f"{asked}\nAnswer: {answered}\n\n" for asked, answered in turns)
        text = layout.plain.replace("{system}", system).replace("{user}", worked + user)
    if text.count(_DOC) != 1 or text.count(_QUESTION) != 1:
        raise PromptError(f"layout {layout.name!r}: the chat template must keep each slot exactly once")
    if any(text.count(slot) != 1 for slot in list(fills)[1:]):
        raise PromptError(f"layout {layout.name!r}: the chat template must keep each worked example exactly once")
    # user text must not carry a slot's marker into the split below
    text, spans = _fill(text, {slot: value.replace("\x00", "\ufffd") for slot, value in fills.items()})
    d, q = text.index(_DOC), text.index(_QUESTION)
    first, second = (_DOC, _QUESTION) if d < q else (_QUESTION, _DOC)
    i, j = text.index(first), text.index(second)
    return PromptTemplate(
        document_first=d < q,
        before=text[:i],
        between=text[i + len(first) : j],
        after=text[j + len(second) :],
        literal=tuple(span for span in spans if span[1] <= i),
    )


THINK_REQUEST = "Think it through briefly first, then answer Yes or No."
# The start of the model's reasoning, written for it: asked to think, small models answer at once
# ("No.") unless their turn already begins with a sentence to finish.
THINK_LEAD = "The document describes"
ANSWER_REQUEST = "So: Yes or No? Answer with only Yes or No."
_REASONING = "\x00VERDICT_REASONING\x00"


def build_thinking_template(layout: Layout, tokenizer: Tokenizer, instructions: str = "") -> tuple[PromptTemplate, str]:
    """The think-then-answer prompt (`--deliberate`): the layout with the question asking for a
    short reasoning first, and the cue that follows the model's reasoning: its turn closed and a
    user turn asking for the one-word answer, ending where the answer is read. Returns the template
    (split like `build_template`'s) and the cue text (control tokens in it are real ones)."""
    kept, _, last = layout.user.rpartition("\n")
    asking = replace(layout, user=(kept if kept and "{" not in last else layout.user) + "\n" + THINK_REQUEST)
    template = build_template(asking, tokenizer, instructions)
    template = replace(template, after=template.after + THINK_LEAD)
    if tokenizer.chat_template:
        user = asking.user.replace("{document}", _DOC).replace("{question}", _QUESTION)
        system = layout.system + ("\n\n" + instructions.strip() if instructions.strip() else "")
        try:
            text = tokenizer.render_chat([{"role": "system", "content": system}, {"role": "user", "content": user},
                                          {"role": "assistant", "content": THINK_LEAD + _REASONING},
                                          {"role": "user", "content": ANSWER_REQUEST}], **layout.template_kwargs)
        except TokenizerError as exc:
            raise PromptError(str(exc)) from exc
        if text.count(_REASONING) != 1:
            raise PromptError(f"layout {layout.name!r}: the chat template dropped the assistant's turn")
        cue = text[text.index(_REASONING) + len(_REASONING) :]
    else:
        cue = "\n" + ANSWER_REQUEST + "\nAnswer:"
    return template, cue


def _fill(text: str, fills: dict[str, str]) -> tuple[str, list[tuple[int, int]]]:
    """`text` with each placeholder replaced by its value, and the character span of every
    value put in (user text, which must never count as control tokens)."""
    pattern = "|".join(re.escape(slot) for slot in fills)
    out: list[str] = []
    spans: list[tuple[int, int]] = []
    size = last = 0
    for match in re.finditer(pattern, text):
        out.append(text[last : match.start()])
        size += match.start() - last
        value = fills[match.group(0)]
        if value:
            spans.append((size, size + len(value)))
        out.append(value)
        size += len(value)
        last = match.end()
    out.append(text[last:])
    return "".join(out), spans


@dataclass
class SegmentIds:
    """Token ids of a prompt's three segments."""

    head: list[int]
    document: list[int]
    tail: list[int]

    @property
    def all(self) -> list[int]:
        return self.head + self.document + self.tail


# Documents and questions the segment cuts are tried on: every edge where a tokenizer's
# pre-tokenizer or merges may join text across a seam (spaces, newlines, digits, emoji, CJK,
# punctuation, control-token look-alikes).
_PROBE_DOCUMENTS = (
    "x", "Word.", " x", "  x", "\nx", "\n\nx", "\tx", "x ", "x   ", "x\n", "x\n\n", "x\n\n\n", "x \n",
    "x\r\n", "1", "x 12", "2024", "🍕", "x 🍕", "今日は", "x。", "x:", "x?", "x'", "'s x", "x\"", "-x-",
    "<|im_end|>", "x <|im_end|>", "<|im_start|>x", "</s>", "Question", "x Question:",
)
_PROBE_QUESTIONS = ("Is it about x?", "is x", " x?", "1 x", "?", "\nx", "'s x", "今日", "🍕", "<|im_end|>")


class PromptEncoder:
    """Token ids of prompts, cut into head / document / tail on token boundaries of the whole prompt.

    The ids scored are always those of tokenizing the whole rendered prompt
    (`Tokenizer.encode_prompt`); the segments are slices of it. A tokenizer may join text across
    a seam (a document's trailing newline with the template's `\n\n`, say), so the cuts sit
    inside the template's own text, where no document or question moves a token boundary: the
    positions are found once by tokenizing probe prompts. Each document's slice is checked
    against the cached head and tail when it is made.
    """

    def __init__(self, template: PromptTemplate, tokenizer: Tokenizer) -> None:
        self.template = template
        self.tokenizer = tokenizer
        self._heads: dict[str, list[int]] = {}
        self._tails: dict[str, list[int]] = {}
        self._question = _PROBE_QUESTIONS[0]
        self._head_cut, self._tail_cut = self._remembered_cuts()

    # --- the whole prompt -----------------------------------------------------------------
    def whole(self, question: str, document: str) -> tuple[list[int], list[tuple[int, int]]]:
        """Ids and character spans of the whole rendered prompt: what is scored."""
        text, literal = self.template.render(question, document)
        return self.tokenizer.encode_prompt(text, literal)

    def whole_ids(self, question: str, document: str) -> list[int]:
        return self.whole(question, document)[0]

    # --- segments -------------------------------------------------------------------------
    def head_ids(self, question: str) -> list[int]:
        """The ids before the document (shared by every document when document-first)."""
        key = "" if self.template.document_first else question
        if key not in self._heads:
            ids, offsets = self.whole(question, _PROBE_DOCUMENTS[0])
            self._heads[key] = ids[: _boundary(offsets, self._head_position(question))]
        return self._heads[key]

    def tail_ids(self, question: str) -> list[int]:
        """The ids after the document, ending with the answer cue."""
        key = question if self.template.document_first else ""
        if key not in self._tails:
            document = _PROBE_DOCUMENTS[0]
            ids, offsets = self.whole(question, document)
            self._tails[key] = ids[_boundary(offsets, self._tail_position(question, document)) :]
        return self._tails[key]

    def document_ids(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """Ids between the head and the tail for `text` and each token's character span in `text`.

        The slice may start or end with a token of the template's own text that a tokenizer
        joined to the document's first or last characters.
        """
        question = self._question
        ids, offsets = self.whole(question, text)
        head, tail = self.head_ids(question), self.tail_ids(question)
        end = _boundary(offsets, self._tail_position(question, text))
        if ids[: len(head)] != head or ids[end:] != tail:
            raise PromptError("the document moves a token boundary of the template's text")  # probes missed a case
        start = self.template.document_start(question)
        spans = [(min(max(a - start, 0), len(text)), min(max(b - start, 0), len(text))) for a, b in offsets]
        return ids[len(head) : end], spans[len(head) : end]

    def encode(self, question: str, document: str) -> SegmentIds:
        return SegmentIds(self.head_ids(question), self.document_ids(document)[0], self.tail_ids(question))

    # --- where the cuts go ----------------------------------------------------------------
    def _head_position(self, question: str, cut: Optional[int] = None) -> int:
        t = self.template
        return (0 if t.document_first else len(t.before) + len(question)) + (self._head_cut if cut is None else cut)

    def _tail_position(self, question: str, document: str) -> int:
        return self.template.document_start(question) + len(document) + self._tail_cut

    def _remembered_cuts(self) -> tuple[int, int]:
        """`_find_cuts`, kept in the cache folder: finding them tokenizes a few hundred probe
        prompts (a third of a second for a 49k-token vocabulary). The key is everything they
        depend on: the whole tokenizer, its BOS rule, the template's text and the probes. A
        stale or damaged entry is found again; a cut no longer on a token boundary would make
        `document_ids` raise, never score a wrong slice."""
        t, tok = self.template, self.tokenizer
        key = hashlib.sha256(json.dumps([
            _CUTS_FORMAT, tok.backend.to_str(), tok.add_bos, tok.bos_id, t.document_first, t.before, t.between,
            t.after, [list(span) for span in t.literal], _PROBE_DOCUMENTS, _PROBE_QUESTIONS,
        ]).encode()).hexdigest()
        path = cache_dir() / _CUTS_FILE
        saved = _read_json_object(path)
        cuts = saved.get(key)
        left = len(t.before) if t.document_first else len(t.between)
        right = len(t.between if t.document_first else t.after)
        if (isinstance(cuts, list) and len(cuts) == 2 and all(type(c) is int for c in cuts)
                and 0 <= cuts[0] <= left and 0 <= cuts[1] <= right):
            return cuts[0], cuts[1]
        head, tail = self._find_cuts()
        saved = _read_json_object(path)  # another process may have added its own meanwhile
        saved.pop(key, None)
        saved[key] = [head, tail]
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_write(path, durable=False) as fh:
                json.dump(dict(list(saved.items())[-_MAX_CUTS:]), fh)
        except OSError:
            pass  # a read-only cache only costs finding them again
        return head, tail

    def _find_cuts(self) -> tuple[int, int]:
        """Character positions in the text left and right of the document where every probe
        prompt has a token boundary and the same ids on the template's side of it.

        The head cut is the one nearest the document; the tail cut the one nearest the
        question (document-first: that text is then prefilled once per document, not once
        per question) or the end, leaving the tail at least one token.
        """
        t = self.template
        right = t.between if t.document_first else t.after
        grid = [(q, d, *self.whole(q, d)) for q in _PROBE_QUESTIONS for d in _PROBE_DOCUMENTS]
        fixed_left = len(t.before) if t.document_first else len(t.between)

        def head_ok(cut: int) -> bool:
            seen: dict[str, list[int]] = {}
            for q, _, ids, offsets in grid:
                k = _boundary(offsets, self._head_position(q, cut), strict=True)
                if k is None or seen.setdefault(q if not t.document_first else "", ids[:k]) != ids[:k]:
                    return False
            return True

        def tail_ok(cut: int) -> bool:
            tails: dict[str, list[int]] = {}
            heads: dict[str, list[int]] = {}
            for q, d, ids, offsets in grid:
                k = _boundary(offsets, t.document_start(q) + len(d) + cut, strict=True)
                if k is None or k == len(ids):
                    return False
                if tails.setdefault(q if t.document_first else "", ids[k:]) != ids[k:]:
                    return False
                if t.document_first and heads.setdefault(d, ids[:k]) != ids[:k]:
                    return False  # the document's slice would depend on the question
            return True

        head = next((c for c in range(fixed_left, -1, -1) if head_ok(c)), None)
        tail = next((c for c in range(len(right), -1, -1) if tail_ok(c)), None)
        if head is None or tail is None:
            raise PromptError("no token boundary in the template's text is stable around the document")
        return head, tail


def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _boundary(offsets: list[tuple[int, int]], position: int, strict: bool = False) -> Optional[int]:
    """Count of the tokens that end at or before character `position` (a leading BOS counts).

    With `strict`, None unless every later token starts at or after `position`: a token
    straddles it, so no token boundary lies there.
    """
    k = 0
    while k < len(offsets) and offsets[k][1] <= position:
        k += 1
    if strict and any(a < position for a, _ in offsets[k:]):
        return None
    return k


def label_forms(tokenizer: Tokenizer, words: tuple[str, str] = ANSWER_WORDS) -> tuple[list[int], list[int]]:
    """Single-token ids of the positive and negative answer in every casing and spacing.

    A casing variant is used only when both its yes and its no form are single tokens, so neither
    side collects mass the other can't. Fails loudly when no form exists at all.
    """
    yes_word, no_word = words
    yes_ids: list[int] = []
    no_ids: list[int] = []
    for case in (str, str.lower, str.upper):
        for space in ("", " "):
            y = tokenizer.encode(space + case(yes_word), special=False)
            n = tokenizer.encode(space + case(no_word), special=False)
            if len(y) == 1 and len(n) == 1 and y[0] not in yes_ids and n[0] not in no_ids:
                yes_ids.append(y[0])
                no_ids.append(n[0])
    if not yes_ids:
        raise PromptError(f"the tokenizer has no single-token form of {yes_word!r}/{no_word!r}")
    return yes_ids, no_ids


def char_span(spans: list[tuple[int, int]], start: int, end: int) -> tuple[int, int]:
    """Character span of tokens [start, end) of a document."""
    if not spans or start >= end:
        return (0, 0)
    return (spans[start][0], spans[end - 1][1])

