"""Worked examples in the cached head (`--examples`) and think-then-answer (`--deliberate`).

References outside the engine: the chat template rendered with the real texts and tokenized in
one call (as llama.cpp and transformers do), and stock mlx-lm's model over each whole prompt,
with its own greedy choice of every token the model writes.
"""
import json
import subprocess
import sys
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

from engine import Classifier, Example, Pipeline
from engine.classifier import EXAMPLE_TOKENS, MAX_EXAMPLES
from engine.model.prompt import ANSWER_REQUEST, THINK_LEAD, THINK_REQUEST

ROOT = Path(__file__).resolve().parent.parent
QUESTION = "Is this about food?"
EXAMPLES = [Example("Soup and bread for lunch, then cake.", True),
            Example("Invoice 2231: please pay 45.00 EUR by Friday.", False),
            Example("A recipe: boil the pasta, add the sauce.", True)]
DOCS = ["Pizza with basil and tomato.", "The train leaves at 9 from platform 3.", "We ate sushi <|im_end|> twice."]


def _ids(tok, messages, lead: str = "") -> list[int]:
    ids = tok.backend.encode(tok.render_chat(messages) + lead, add_special_tokens=False).ids
    return [tok.bos_id] + ids if tok.add_bos else ids


def _user(clf, text: str, question: str = QUESTION, last_line: str = None) -> dict:
    user = clf.layout.user.replace("{document}", text).replace("{question}", question)
    if last_line is not None:
        user = user.rsplit("\n", 1)[0] + "\n" + last_line
    return {"role": "user", "content": user}


def _margin(clf, logits) -> float:
    logits = np.asarray(logits, dtype=np.float64)
    logp = logits - np.logaddexp.reduce(logits)
    return float(np.logaddexp.reduce(logp[clf.backend.yes_ids]) - np.logaddexp.reduce(logp[clf.backend.no_ids]))


@pytest.fixture(scope="module")
def stock(tiny_model_dir):
    from mlx_lm.utils import load_model as stock_load

    model, _ = stock_load(tiny_model_dir)
    return lambda ids: np.array(model(mx.array([ids]))[0, -1].astype(mx.float32))


@pytest.fixture(scope="module")
def clf(tiny_model_dir):
    return Classifier.load(tiny_model_dir)


# --- worked examples ---------------------------------------------------------------------------
def test_examples_are_earlier_turns_and_margins_equal_stock_mlx_lm(clf, stock):
    clf.set_examples(EXAMPLES)
    try:
        shown = clf.examples_for(QUESTION)
        messages = [{"role": "system", "content": clf.layout.system}]
        for e in shown:
            messages += [_user(clf, e.text), {"role": "assistant", "content": "Yes" if e.answer else "No"}]
        for v, text in zip(clf.score([QUESTION, "Is it late?"], DOCS[:2]), [d for d in DOCS[:2] for _ in (0, 1)]):
            if v.question == QUESTION:
                reference = stock(_ids(clf.tokenizer, messages + [_user(clf, text)]))
            else:  # examples without a question are shown for every question, in its words
                reference = stock(_ids(clf.tokenizer, [messages[0]] + [
                    m if m["role"] == "assistant" else _user(clf, shown[i // 2].text, "Is it late?")
                    for i, m in enumerate(messages[1:])] + [_user(clf, text, "Is it late?")]))
            assert v.raw_margin == pytest.approx(_margin(clf, reference), abs=2e-3), (v.question, text)
    finally:
        clf.set_examples([])


def test_examples_change_the_verdict_and_only_their_question(clf):
    before = clf.score(["Is this about food?", "Is it late?"], DOCS[:2])
    clf.set_examples([Example(e.text, e.answer, question="Is this about food?") for e in EXAMPLES])
    try:
        after = clf.score(["Is this about food?", "Is it late?"], DOCS[:2])
        head = clf.encoder_for("Is this about food?").head_ids("Is this about food?")
        assert len(head) > len(clf.encoder.head_ids("Is it late?")) + 20
    finally:
        clf.set_examples([])
    for b, a in zip(before, after):
        if b.question == "Is it late?":
            assert a.raw_margin == pytest.approx(b.raw_margin, abs=1e-5)
        else:
            assert abs(a.raw_margin - b.raw_margin) > 1e-3


def test_examples_are_balanced_alternating_and_cut(clf):
    many = [Example(f"yes {i}", True) for i in range(7)] + [Example("no 0", False)]
    clf.set_examples(many)
    shown = clf.examples_for(QUESTION)
    assert len(shown) == MAX_EXAMPLES and sum(not e.answer for e in shown) == 1
    assert not shown[0].answer and shown[-1].answer
    clf.set_examples([Example(f"yes {i}", True) for i in range(6)] + [Example(f"no {i}", False) for i in range(6)])
    shown = clf.examples_for(QUESTION)
    assert [e.answer for e in shown] == [False, True] * (MAX_EXAMPLES // 2)
    heads = []
    for text in ("word", "word " * (EXAMPLE_TOKENS * 3)):
        clf.set_examples([Example(text, True)])
        heads.append(len(clf.encoder_for(QUESTION).head_ids(QUESTION)))
    assert EXAMPLE_TOKENS - 4 <= heads[1] - heads[0] <= EXAMPLE_TOKENS + 4  # cut, with a " …" after it
    clf.set_examples([])
    with pytest.raises(ValueError):
        clf.set_examples([Example("  ", True)])


# --- think, then answer ------------------------------------------------------------------------
def test_thinking_writes_what_stock_greedy_decoding_writes_and_answers_after_the_cue(clf, stock):
    tok = clf.tokenizer
    stop = tok.special_ids()
    for text in DOCS[:2]:
        v = clf.score(QUESTION, [text])[0]
        thought = clf.deliberate(v, text, 6, layers=[-1])
        system = {"role": "system", "content": clf.layout.system}
        ids = _ids(tok, [system, _user(clf, text, last_line=THINK_REQUEST)], THINK_LEAD)
        written: list[int] = []
        while len(written) < 6:
            token = int(np.argmax(stock(ids + written)))
            if token in stop:
                break
            written.append(token)
        assert thought.reasoning == (THINK_LEAD + tok.decode(written)).strip()
        full = tok.render_chat([system, _user(clf, text, last_line=THINK_REQUEST),
                                {"role": "assistant", "content": THINK_LEAD + "\x00"},
                                {"role": "user", "content": ANSWER_REQUEST}])
        cue = tok.backend.encode(full[full.index("\x00") + 1:], add_special_tokens=False).ids
        assert thought.raw_margin == pytest.approx(_margin(clf, stock(ids + written + cue)), abs=2e-3)
        assert thought.states and -1 not in thought.states and len(thought.states) == 1
        assert thought.tokens > v.tokens


def test_pipeline_thinks_only_about_the_uncertain_rows(clf):
    # which rows think is decided row by row, by the calibrator's band (--decisions row)
    wide = Pipeline(clf, settings={"band": 1000.0}, save=False)
    rows = list(wide.run(QUESTION, DOCS, deliberate=4, decisions="row"))
    assert len(rows) == 3 and all(r.reasoning and r.reasoning.startswith(THINK_LEAD) for r in rows)
    plain = list(Pipeline(clf, settings={"band": 1000.0}, save=False).run(QUESTION, DOCS, decisions="row"))
    assert all(r.reasoning is None for r in plain)
    assert any(abs(a.raw_margin - b.raw_margin) > 1e-4 for a, b in zip(rows, plain))
    narrow = list(Pipeline(clf, settings={"band": 0.0, "mass_floor": 0.0}, save=False).run(
        QUESTION, DOCS, deliberate=4, decisions="row"))
    assert all(r.reasoning is None and r.verdict in ("yes", "no") for r in narrow)


def test_pipeline_thinks_only_about_the_questions_a_mapping_names(clf):
    other = "Is it late?"
    settings = {"band": 1000.0}
    rows = list(Pipeline(clf, settings=settings, save=False).run([QUESTION, other], DOCS[:2],
                                                                   deliberate={QUESTION: 4, other: 0}))
    whole = list(Pipeline(clf, settings=settings, save=False).run([QUESTION, other], DOCS[:2], deliberate=4))
    plain = list(Pipeline(clf, settings=settings, save=False).run([QUESTION, other], DOCS[:2]))
    assert [r.question for r in rows] == [QUESTION, other] * 2
    for r, w, p in zip(rows, whole, plain):
        if r.question == QUESTION:  # thought about, as the int form does it
            assert r.reasoning == w.reasoning and r.reasoning.startswith(THINK_LEAD)
            assert r.raw_margin == pytest.approx(w.raw_margin, abs=1e-5)
        else:  # left as one pass
            assert r.reasoning is None and w.reasoning is not None
            assert r.raw_margin == pytest.approx(p.raw_margin, abs=1e-5)


# --- the CLI -----------------------------------------------------------------------------------
def _cli(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})


def test_cli_examples_and_deliberate(tmp_path, tiny_model_dir):
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"id": str(i), "text": t}) + "\n" for i, t in enumerate(DOCS)))
    examples = tmp_path / "examples.jsonl"
    examples.write_text("".join(json.dumps({"id": f"e{i}", "text": e.text, "label": "yes" if e.answer else "no"}) + "\n"
                                for i, e in enumerate(EXAMPLES)))
    base = ["classify", "-q", QUESTION, "-m", str(tiny_model_dir), "--jsonl-in", str(docs)]
    plain = _cli(*base, cwd=tmp_path)
    shown = _cli(*base, "--examples", str(examples), "--uncertain-band", "1000", "--decisions", "row", "--deliberate", "3", cwd=tmp_path)
    assert plain.returncode == shown.returncode == 0, shown.stderr
    plain_rows = [json.loads(line) for line in plain.stdout.splitlines()]
    rows = [json.loads(line) for line in shown.stdout.splitlines()]
    assert [r["id"] for r in rows] == ["0", "1", "2"]
    assert all(r["reasoning"].startswith(THINK_LEAD) for r in rows)
    assert all(r["tokens"] > p["tokens"] for r, p in zip(rows, plain_rows))


@pytest.mark.parametrize("content, extra, message", [
    ('{"id": "a", "label": "yes"}\n', [], "has no 'text'"),
    ('{"id": "a", "text": "t", "label": "maybe"}\n', [], "is not yes/no"),
    ("not json\n", [], "line 1"),
    ("", [], "no examples"),
    ('{"id": "a", "text": "t", "label": "yes"}\n', ["--deliberate", "-1"], "--deliberate must be"),
    ('{"id": "a", "text": "t", "label": "yes"}\n', ["--deliberate", "2", "--backend", "http://127.0.0.1:9/v1"],
     "--deliberate needs a model"),
])
def test_cli_refuses_bad_examples_and_deliberate_in_one_line(tmp_path, content, extra, message):
    examples = tmp_path / "examples.jsonl"
    examples.write_text(content)
    (tmp_path / "d.txt").write_text("text")
    result = _cli("classify", "-q", "Is it?", "--examples", str(examples), *extra, str(tmp_path / "d.txt"), cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, result.stderr


def test_a_calibrator_is_not_fitted_on_documents_shown_as_examples(clf):
    """Scored with its own answer in the prompt, a labeled document would flatter the calibrator:
    the fit leaves the shown examples out, and with nothing else left it stays label-free."""
    labeled = [("a", "Soup and bread for lunch, then cake.", True), ("b", "Invoice 2231: pay 45 EUR.", False),
               ("c", "Pasta with tomato sauce.", True), ("d", "The train leaves at 9.", False)]
    docs = [__import__("engine").Document(id=i, text=t) for i, t, _ in labeled]
    labels = {i: y for i, _, y in labeled}
    pipeline = Pipeline(clf, settings={"probe": False}, save=False)
    clf.set_examples([Example(t, y) for _, t, y in labeled])
    try:
        cal = pipeline.fit(QUESTION, docs, labels)
        assert cal.n_labels == (0, 0) and any("worked examples" in n for n in cal.notes)
        clf.set_examples([Example(t, y) for _, t, y in labeled[:2]])
        cal = pipeline.fit(QUESTION, docs, labels)
        assert cal.n_labels == (1, 1)  # only c and d: a and b are in the prompt
    finally:
        clf.set_examples([])
    assert pipeline.fit(QUESTION, docs, labels).n_labels == (2, 2)


def test_example_text_is_normalised_and_cannot_move_the_slots(clf):
    """A lone surrogate (from JSON) becomes U+FFFD as in documents; a slot marker in user text
    stays text, so the prompt is still cut at the real document."""
    clf.set_examples([Example("bad \ud800 text", True), Example("x \x00VERDICT_DOCUMENT\x00 y", False)])
    try:
        assert "\ufffd" in clf.examples[0].text
        encoder = clf.encoder_for(QUESTION)
        assert encoder.encode(QUESTION, DOCS[0]).document == clf.encoder.document_ids(DOCS[0])[0]
        assert all(v.ok for v in clf.score(QUESTION, DOCS[:1]))
    finally:
        clf.set_examples([])


def test_a_question_that_is_not_text_is_refused_in_labels_and_examples(tmp_path):
    from engine.pipeline import Labels, read_examples

    path = tmp_path / "l.jsonl"
    path.write_text('{"id": "a", "text": "t", "label": "yes", "question": 5}\n')
    for reader in (Labels.read, read_examples):
        with pytest.raises(ValueError, match="line 1 .*'question' is not text"):
            reader(path)
    path.write_bytes(b'{"id": "a", "text": "t", "label": "yes"}\n\xff\xfe\n')
    with pytest.raises(ValueError, match="line 2 is not UTF-8"):
        read_examples(path)
