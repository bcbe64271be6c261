"""The default model against llama.cpp's outputs on the same file (shared/golden)."""
import json
from pathlib import Path

import numpy as np
import pytest

from engine.runtime.prompt import label_forms

GOLDEN = Path(__file__).resolve().parents[2] / "shared" / "golden" / "smollm2_llamacpp.json"
if not GOLDEN.exists():  # CI lays shared/ beside the clone; a checkout elsewhere may point to it
    import os

    GOLDEN = Path(os.environ.get("VERDICT_SHARED", "/work/shared")) / "golden" / "smollm2_llamacpp.json"


@pytest.fixture(scope="module")
def golden():
    return json.loads(GOLDEN.read_text(encoding="utf-8"))


def test_token_ids_equal_llama_cpp(default_classifier, golden):
    tok = default_classifier.tokenizer
    for case in golden["tokenization"]:
        assert tok.encode(case["text"]) == case["ids"], case["text"]
    for prompt in golden["prompts"]:
        assert tok.encode(prompt["prompt_text"]) == prompt["ids"]


def test_chat_template_renders_like_llama_cpp(default_classifier, golden):
    tok = default_classifier.tokenizer
    for prompt in golden["prompts"]:
        assert tok.render_chat(prompt["messages"]) == prompt["prompt_text"]


def test_label_forms_match_llama_cpp(default_classifier, golden):
    yes, no = label_forms(default_classifier.tokenizer)
    assert sorted(yes) == sorted(golden["yes_ids"])
    assert sorted(no) == sorted(golden["no_ids"])


def test_logits_and_margins_agree_with_llama_cpp(default_classifier, golden):
    clf = default_classifier
    for prompt in golden["prompts"]:
        logits = clf.backend.logits_for_ids(prompt["ids"])
        for token, reference in prompt["top10"]:
            assert abs(logits[token] - reference) <= 0.75, (prompt["document"], token)
        assert prompt["top10"][0][0] in np.argsort(-logits)[:3]
        logp = logits - np.logaddexp.reduce(logits)
        margin = np.logaddexp.reduce(logp[clf.backend.yes_ids]) - np.logaddexp.reduce(logp[clf.backend.no_ids])
        mass = np.exp(np.logaddexp.reduce(logp[clf.backend.yes_ids])) + np.exp(np.logaddexp.reduce(logp[clf.backend.no_ids]))
        assert np.sign(margin) == np.sign(prompt["margin_yes_minus_no"])
        assert abs(margin - prompt["margin_yes_minus_no"]) <= 0.5
        assert abs(mass - prompt["label_mass"]) <= 0.15


def test_classifier_with_the_golden_layout_reproduces_the_margins(default_classifier, golden):
    """The segment path (head / document / tail tokenized apart, cached head) on llama.cpp's prompts."""
    from engine import Classifier
    from engine.runtime.prompt import QUESTION_FIRST

    clf = Classifier(default_classifier.backend, layout=QUESTION_FIRST)
    for prompt in golden["prompts"]:
        ids = clf.encoder.encode(prompt["question"], prompt["document"]).all
        assert ids == prompt["ids"]
        (v,) = clf.score(prompt["question"], [prompt["document"]])
        assert abs(v.margin - prompt["margin_yes_minus_no"]) <= 0.5
        assert v.tokens == len(prompt["ids"])
