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

from dataclasses import dataclass, field
from typing import Any, Optional

from engine.runtime.tokenizer import Tokenizer

_DOC = "\x00VERDICT_DOCUMENT\x00"
_QUESTION = "\x00VERDICT_QUESTION\x00"


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

    def head(self, question: str) -> str:
        """The segment before the document (independent of the question when document-first)."""
        return self.before if self.document_first else self.before + question + self.between

    def tail(self, question: str) -> str:
        """The segment after the document, ending with the answer cue."""
        return self.between + question + self.after if self.document_first else self.after


def build_template(layout: Layout, tokenizer: Tokenizer, instructions: str = "") -> PromptTemplate:
    """Render `layout` with the model's chat template (or the plain one) and split it."""
    system = layout.system + ("\n\n" + instructions.strip() if instructions.strip() else "")
    user = layout.user.replace("{document}", _DOC).replace("{question}", _QUESTION)
    if tokenizer.chat_template:
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        text = tokenizer.render_chat(messages, **layout.template_kwargs)
    else:
        text = layout.plain.replace("{system}", system).replace("{user}", user)
    if text.count(_DOC) != 1 or text.count(_QUESTION) != 1:
        raise PromptError(f"layout {layout.name!r}: the chat template must keep each slot exactly once")
    d, q = text.index(_DOC), text.index(_QUESTION)
    first, second = (_DOC, _QUESTION) if d < q else (_QUESTION, _DOC)
    i, j = text.index(first), text.index(second)
    return PromptTemplate(
        document_first=d < q,
        before=text[:i],
        between=text[i + len(first) : j],
        after=text[j + len(second) :],
    )


@dataclass
class SegmentIds:
    """Token ids of a prompt's three segments."""

    head: list[int]
    document: list[int]
    tail: list[int]

    @property
    def all(self) -> list[int]:
        return self.head + self.document + self.tail


class PromptEncoder:
    """Tokenizes segments, memoising the head and tail of each question."""

    def __init__(self, template: PromptTemplate, tokenizer: Tokenizer) -> None:
        self.template = template
        self.tokenizer = tokenizer
        self._heads: dict[str, list[int]] = {}
        self._tails: dict[str, list[int]] = {}

    def head_ids(self, question: str) -> list[int]:
        key = question if not self.template.document_first else ""
        if key not in self._heads:
            ids = self.tokenizer.encode(self.template.head(question))
            bos = self.tokenizer.bos_id
            if self.tokenizer.add_bos and bos is not None and ids[:1] != [bos]:
                ids = [bos] + ids
            self._heads[key] = ids
        return self._heads[key]

    def tail_ids(self, question: str) -> list[int]:
        key = question if self.template.document_first else ""
        if key not in self._tails:
            self._tails[key] = self.tokenizer.encode(self.template.tail(question))
        return self._tails[key]

    def document_ids(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """Ids of a document (control-token text stays text) and each token's character span."""
        return self.tokenizer.encode_with_offsets(text, special=False)

    def encode(self, question: str, document: str) -> SegmentIds:
        return SegmentIds(self.head_ids(question), self.document_ids(document)[0], self.tail_ids(question))


def label_forms(tokenizer: Tokenizer, words: tuple[str, str] = ("Yes", "No")) -> tuple[list[int], list[int]]:
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

