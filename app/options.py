"""Per-question options: labeled documents as worked examples, and thinking about the uncertain ones.

Both change what the model is asked, not how its answer is calibrated. "Use labeled documents as
examples" shows the documents the user labeled for a question, with their answers, before every
document (`Classifier.set_examples`, in the cached head: it costs nothing per document).
"Think about the uncertain ones" lets the model write up to THINK_TOKENS tokens before it answers
the documents one pass leaves uncertain (`Pipeline.run(deliberate=...)`), where the backend can.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable, Mapping

from engine.types import Example

THINK_TOKENS = 48  # what the model may write before answering an uncertain document
EXAMPLES, THINK = "examples", "think"  # the option names (as saved with the session)

THINK_UNAVAILABLE = ("The model in use can't write before it answers (a model on an inference server gives "
                     "only its answer's probabilities): load a local model to use this")


@dataclass
class QuestionOptions:
    """What one question asks of the model beyond the one-pass answer."""

    examples: bool = False  # the labeled documents are shown as worked examples
    think: bool = False  # uncertain documents are answered after the model wrote its reasoning

    def to_dict(self) -> dict[str, bool]:
        return {k: v for k, v in asdict(self).items() if v}

    @classmethod
    def from_dict(cls, data: object) -> "QuestionOptions":
        """From a saved dict; anything unknown or malformed is ignored."""
        data = data if isinstance(data, dict) else {}
        return cls(examples=data.get(EXAMPLES) is True, think=data.get(THINK) is True)


def worked_examples(rows: Iterable, options: Mapping[str, QuestionOptions]) -> list[Example]:
    """The labeled, readable documents of the questions whose examples option is on, as
    examples for those questions (in table order; the classifier shows a balanced few)."""
    examples = []
    for row in rows:
        if row.document.error or not row.document.text.strip():
            continue
        for question, label in row.labels.items():
            if label in ("yes", "no") and options.get(question, QuestionOptions()).examples:
                examples.append(Example(row.document.text, label == "yes", question=question, id=str(row.key)))
    return examples


def thinking(options: Mapping[str, QuestionOptions]) -> dict[str, int]:
    """Question -> tokens the model may write before it answers an uncertain document, for
    the questions whose think option is on."""
    return {q: THINK_TOKENS for q, o in options.items() if o.think}


def describe(options: QuestionOptions, counts: tuple[int, int], can_think: bool) -> list[str]:
    """Sentences for the detail pane on what a question's options do now; ``counts``: its (yes, no) labels."""
    lines = []
    if options.examples:
        if sum(counts):
            lines.append(f"Your labeled documents ({counts[0]} yes, {counts[1]} no) are shown to the model as "
                         "worked examples before each document (at most 4 of each)")
        else:
            lines.append("Label documents Yes or No for this question: they will be shown to the model as examples")
    if options.think:
        lines.append(f"For the uncertain ones, the model writes up to {THINK_TOKENS} tokens of reasoning before it "
                     "answers" if can_think else f"Thinking about the uncertain ones is not used: {THINK_UNAVAILABLE}")
    return lines
