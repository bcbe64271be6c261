"""Scoring: the cached, batched, multi-question path equals scoring each full prompt alone."""
import numpy as np
import pytest

from engine import Classifier, Document
from engine.runtime.local import LocalBackend
from engine.model.prompt import DOCUMENT_FIRST, QUESTION_FIRST
from engine.scoring import Segment

SHORT = "Paris is the capital and largest city of France."
MEDIUM = "Dear customer, your invoice #4411 of $120 is overdue. Please pay within 7 days to avoid a late fee. " * 3
LONG = ("The committee met on Tuesday to review the budget. " * 25).strip()
QUESTIONS = ["Is this document about cooking?", "Does this ask the reader to pay money?"]


def whole_prompt_ids(clf: Classifier, question: str, text: str) -> list[int]:
    """The whole prompt rendered with the real texts in the messages and tokenized in one call."""
    layout, tok = clf.layout, clf.tokenizer
    user = layout.user.replace("{document}", text).replace("{question}", question)
    rendered = tok.render_chat([{"role": "system", "content": layout.system}, {"role": "user", "content": user}])
    ids = tok.backend.encode(rendered, add_special_tokens=False).ids
    return [tok.bos_id] + ids if tok.add_bos else ids


def reference_margin(clf: Classifier, question: str, text: str) -> float:
    """The margin of one full prompt scored alone, with no cache and no batch."""
    logits = clf.backend.logits_for_ids(whole_prompt_ids(clf, question, text))
    logp = logits - np.logaddexp.reduce(logits)
    return float(np.logaddexp.reduce(logp[clf.backend.yes_ids]) - np.logaddexp.reduce(logp[clf.backend.no_ids]))


@pytest.mark.parametrize("layout", [DOCUMENT_FIRST, QUESTION_FIRST], ids=lambda layout: layout.name)
def test_batched_multi_question_equals_each_prompt_alone_tiny(tiny_model_dir, layout):
    clf = Classifier.load(tiny_model_dir, layout=layout, batch_tokens=100_000, window_tokens=100_000)  # one window each
    texts = [SHORT, LONG, MEDIUM, "no", SHORT + " " + MEDIUM]
    verdicts = clf.score(QUESTIONS, texts)
    assert [(v.document_index, v.question) for v in verdicts] == [(d, q) for d in range(5) for q in QUESTIONS]
    for v in verdicts:
        assert abs(v.margin - reference_margin(clf, v.question, texts[v.document_index])) <= 1e-3
        assert v.tokens == len(whole_prompt_ids(clf, v.question, texts[v.document_index]))
        assert v.verdict == ("yes" if v.margin > 0 else "no")
        assert 0 < v.label_mass <= 1


def test_batched_multi_question_equals_each_prompt_alone_default_model(default_classifier):
    clf = default_classifier
    texts = [SHORT, LONG, MEDIUM]  # 10 to 250 tokens in one batch
    for v in clf.score(QUESTIONS, texts):
        assert abs(v.margin - reference_margin(clf, v.question, texts[v.document_index])) <= 1e-3


def test_several_questions_keep_single_question_callers_working(tiny_classifier):
    one = tiny_classifier.score(QUESTIONS[0], [SHORT, MEDIUM])
    both = tiny_classifier.score(QUESTIONS, [SHORT, MEDIUM])
    assert [v.document_index for v in one] == [0, 1]
    assert [v.margin for v in one] == pytest.approx([v.margin for v in both if v.question == QUESTIONS[0]], abs=1e-4)


def test_long_document_is_split_into_windows_and_the_deciding_one_is_named(tiny_model_dir):
    clf = Classifier.load(tiny_model_dir, max_context=400)
    text = " ".join(f"Sentence {i} talks about a different thing." for i in range(40))
    (v,) = clf.score(QUESTIONS[0], [text])
    assert v.windows > 2
    start, end = v.window_span
    assert 0 <= start < end <= len(text)
    # The deciding window, scored alone as a document, gives the aggregated margin.
    alone = Classifier(clf.backend).score(QUESTIONS[0], [Document("w", text[start:end])])[0]
    assert abs(alone.margin - v.margin) < 0.05
    # Each window scored alone from its ids (head + window + tail, no cache): max and mean of those.
    windows = clf._split(0, Document("w", text), clf._window_budget([QUESTIONS[0]]))
    assert len(windows) == v.windows
    head, tail = clf.encoder.head_ids(QUESTIONS[0]), clf.encoder.tail_ids(QUESTIONS[0])
    alone_margins = []
    for w in windows:
        logits = clf.backend.logits_for_ids(head + w.ids + tail)
        logp = logits - np.logaddexp.reduce(logits)
        alone_margins.append(float(np.logaddexp.reduce(logp[clf.backend.yes_ids]) - np.logaddexp.reduce(logp[clf.backend.no_ids])))
    assert v.margin == pytest.approx(max(alone_margins), abs=1e-3)
    assert v.window_index == int(np.argmax(alone_margins))
    mean = clf.score(QUESTIONS[0], [text], aggregate="mean")[0]
    assert mean.margin == pytest.approx(float(np.mean(alone_margins)), abs=1e-3)
    assert max(alone_margins) - min(alone_margins) > 1e-3  # so mean and max are told apart


def test_a_long_document_reports_progress_per_window_before_its_verdict(tiny_model_dir):
    """progress(scored, taken) comes after each batch: a long document's windows (one per batch
    here) are counted as they are scored, before its one verdict, and add up to its tokens."""
    clf = Classifier.load(tiny_model_dir, max_context=400, batch_tokens=400)
    text = " ".join(f"Sentence {i} talks about a different thing." for i in range(40))
    events = []
    stream = clf.pipeline.run(QUESTIONS[0], [text], progress=lambda scored, taken: events.append((scored, taken)))
    verdicts, reports_before = [], []
    for verdict in stream:
        verdicts.append(verdict)
        reports_before.append(len(events))
    (v,) = verdicts
    assert v.windows > 2 and reports_before == [v.windows] == [len(events)]  # one per window, all before the verdict
    scored = [s for s, _ in events]
    assert scored == sorted(set(scored)) and 0 < scored[0] < scored[-1]
    taken = {t for _, t in events}
    assert taken == {scored[-1]}  # everything taken was scored in the end
    # the reported tokens are the document's own: the verdict's tokens add the prompt per window
    prompt = len(clf.encoder.head_ids(QUESTIONS[0])) + len(clf.encoder.tail_ids(QUESTIONS[0]))
    assert v.tokens == scored[-1] + v.windows * prompt


def test_control_tokens_in_a_document_stay_text(tiny_classifier):
    ids = tiny_classifier.encoder.document_ids("hello <|im_end|> world")[0]
    assert 2 not in ids  # <|im_end|> is id 2 in the tiny vocabulary


def test_bad_documents_get_error_rows_and_the_rest_are_scored(tiny_classifier):
    docs = [Document("ok", SHORT), Document("empty", "   "), Document("broken", "", error="corrupt PDF: x")]
    verdicts = tiny_classifier.classify(QUESTIONS[0], docs)
    assert verdicts[0].ok and verdicts[0].verdict in ("yes", "no", "uncertain")
    assert verdicts[1].error == "document is empty" and verdicts[1].verdict == "error"
    assert verdicts[2].error == "corrupt PDF: x"


def test_stream_can_be_cancelled_between_batches(tiny_model_dir):
    clf = Classifier.load(tiny_model_dir, max_batch=2, chunk_documents=4)
    seen = []
    # rows one by one (a batch decision would hold them all until the end)
    for v in clf.classify_iter(QUESTIONS[0], [f"document number {i}" for i in range(40)], cancel=lambda: len(seen) >= 4,
                               decisions="row"):
        seen.append(v)
    assert 4 <= len(seen) < 40


def test_hidden_state_on_request(tiny_classifier):
    (v,) = tiny_classifier.classify(QUESTIONS[0], [SHORT], keep_layer=-1 + tiny_classifier.n_layers + 1)
    assert v.hidden.shape == (64,) and np.isfinite(v.hidden).all()
    (w,) = tiny_classifier.classify(QUESTIONS[0], [SHORT])
    assert w.hidden is None and w.states is None
    (raw,) = tiny_classifier.score(QUESTIONS[0], [SHORT], layers=[1, -1])
    assert sorted(raw.states) == [1, tiny_classifier.n_layers]
    np.testing.assert_allclose(raw.states[tiny_classifier.n_layers], v.hidden, atol=1e-5)


def test_empty_question_is_refused(tiny_classifier):
    with pytest.raises(ValueError):
        tiny_classifier.classify("  ", [SHORT])


def test_chunked_prefill_equals_one_pass(tiny_model_dir):
    """Segments longer than the chunk go through in pieces; rows may end in any chunk."""
    whole = Classifier.load(tiny_model_dir, batch_tokens=100_000)
    chunked = Classifier(LocalBackend(whole.backend.lm, chunk=7), batch_tokens=100_000)
    texts = [SHORT, MEDIUM, "no", LONG[:300]]
    a = whole.score(QUESTIONS, texts, layers=[1, -1])
    b = chunked.score(QUESTIONS, texts, layers=[1, -1])
    assert [v.margin for v in a] == pytest.approx([v.margin for v in b], abs=1e-3)
    for x, y in zip(a, b):  # states are captured at each row's last token in whichever chunk it ends
        for layer in x.states:
            np.testing.assert_allclose(x.states[layer], y.states[layer], atol=1e-3)


@pytest.mark.parametrize("arch", ["llama", "qwen2", "qwen3"])
def test_batched_equals_each_prompt_alone_for_every_allowed_architecture(tmp_path, arch):
    """The architecture allow-list's bar: cached + batched == each prompt alone (here from a
    Q4_K GGUF; `tests/test_loading.py` checks the same models against stock mlx-lm)."""
    from tinymodels import write_gguf

    path, _ = write_gguf(tmp_path / f"{arch}.Q4_K.gguf", arch, quant="Q4_K", hidden=256, tie=arch != "qwen2")
    clf = Classifier.load(path, batch_tokens=100_000)
    texts = [SHORT, MEDIUM, "no"]
    for v in clf.score(QUESTIONS, texts):
        assert abs(v.margin - reference_margin(clf, v.question, texts[v.document_index])) <= 1e-3


def test_windows_are_capped_apart_from_the_context(tiny_classifier):
    from engine.classifier import DEFAULT_WINDOW_TOKENS

    assert tiny_classifier.window_tokens == DEFAULT_WINDOW_TOKENS
    clf = Classifier(tiny_classifier.backend, window_tokens=64)
    assert clf.context == tiny_classifier.context  # the context is only the upper bound
    windows = clf._split(0, Document("long", LONG), clf._window_budget([QUESTIONS[0]]))
    assert len(windows) > 2 and 48 <= max(len(w.ids) for w in windows) <= 64
    (v,) = clf.score(QUESTIONS[0], [LONG])
    assert v.windows == len(windows)
    for w in windows:  # each window is scored as its own text in the prompt, tokenized whole
        a, b = w.span
        head, tail = clf.encoder.head_ids(QUESTIONS[0]), clf.encoder.tail_ids(QUESTIONS[0])
        assert head + w.ids + tail == clf.encoder.whole_ids(QUESTIONS[0], LONG[a:b])


def test_a_calibrator_that_reads_states_picks_the_window_it_believes(tiny_model_dir):
    """With a probe calibrator, a long document is decided by the window whose state the probe
    scores highest (each window's state taken from the window scored alone, from its ids), not
    by the highest raw margin; the row's probability is that window's."""
    from engine.confidence.calibrate import Calibrator
    from engine.confidence.general import GeneralProbe
    from engine.pipeline import Pipeline

    clf = Classifier.load(tiny_model_dir, max_context=400)
    text = " ".join(f"Sentence {i} talks about a different thing." for i in range(40))
    question = QUESTIONS[0]
    windows = clf._split(0, Document("w", text), clf._window_budget([question]))
    head, tail = clf.encoder.head_ids(question), clf.encoder.tail_ids(question)
    layer = 1
    dim = clf.backend.score([[Segment(tuple(head)), Segment(tuple(windows[0].ids + tail))]], [layer])[0].states[layer].size
    states, margins = [], []
    for w in windows:
        s = clf.backend.score([[Segment(tuple(head + w.ids + tail))]], [layer])[0]
        states.append(s.states[layer])
        margins.append(s.margin)
    rng = np.random.default_rng(0)
    for _ in range(20):  # a probe direction that disagrees with the raw margin on the best window
        w = rng.normal(size=dim)
        probe = GeneralProbe("tiny", layer, np.zeros(dim), np.ones(dim), w, 0.0)
        z = [float(probe.decision(s)) for s in states]
        if int(np.argmax(z)) != int(np.argmax(margins)):
            break
    else:
        pytest.skip("no disagreeing direction found")
    pipeline = Pipeline(clf, save=False)
    pipeline.calibrators[question] = Calibrator(question, general=probe, use_general=True)
    (row,) = list(pipeline.run(question, [text]))
    assert row.window_index == int(np.argmax(z))
    assert row.probability == pytest.approx(1 / (1 + np.exp(-max(z))), abs=2e-3)
    (raw,) = clf.score(question, [text])
    assert raw.window_index == int(np.argmax(margins))


def test_window_progress_counts_a_long_documents_windows_from_the_cut_to_the_last(tiny_model_dir):
    """window_progress(scored, taken): once when the documents are cut (nothing scored yet), then
    after each batch, up to every window of every document; a short one adds one window."""
    clf = Classifier.load(tiny_model_dir, max_context=400, batch_tokens=400)
    long = " ".join(f"Sentence {i} talks about a different thing." for i in range(40))
    events = []
    verdicts = list(clf.pipeline.run(QUESTIONS[0], [long, "Pay $5."],
                                     window_progress=lambda scored, taken: events.append((scored, taken))))
    windows = sum(v.windows for v in verdicts)
    assert verdicts[0].windows > 2 and verdicts[1].windows == 1
    assert events[0] == (0, windows)  # reported before the first batch
    assert [s for s, _ in events] == sorted(s for s, _ in events) and events[-1] == (windows, windows)
    assert {t for _, t in events} == {windows}


class CountingBackend(LocalBackend):
    """The real backend, counting its forward passes by how many rows each one had."""

    def __init__(self, lm):
        super().__init__(lm)
        self.passes: list[int] = []

    def prefill(self, rows, cache, layers=()):
        self.passes.append(len(rows))
        return super().prefill(rows, cache, layers)


def test_every_question_of_a_batch_goes_in_one_pass_and_equals_each_prompt_alone(default_classifier):
    """Three documents asked three questions: one pass for the documents, then one for all nine
    tails (reading the documents' keys where they lie), and each margin as its prompt alone."""
    counting = CountingBackend(default_classifier.backend.lm)
    clf = Classifier(counting, batch_tokens=100_000)
    questions = QUESTIONS + ["Is this written in French?"]
    texts = [SHORT, MEDIUM, LONG]
    verdicts = clf.score(questions, texts)
    assert counting.passes[-2:] == [3, 9]
    for v in verdicts:
        assert abs(v.margin - reference_margin(clf, v.question, texts[v.document_index])) <= 1e-3


def test_with_stock_attention_the_tails_still_go_in_one_pass_on_joined_keys(tiny_model_dir, monkeypatch):
    """mlx-lm's own attention (as on a GPU) can't read a branch's parent keys in place: the branch
    hands it the parent's keys joined with the tails' own, and the margins are the same."""
    monkeypatch.setenv("VERDICT_CPU_KERNELS", "0")
    counting = CountingBackend(Classifier.load(tiny_model_dir).backend.lm)
    assert not counting._branches_in_place
    clf = Classifier(counting, batch_tokens=100_000)
    texts = [SHORT, MEDIUM, "no"]
    verdicts = clf.score(QUESTIONS, texts)
    assert counting.passes[-2:] == [3, 6]
    for v in verdicts:
        assert abs(v.margin - reference_margin(clf, v.question, texts[v.document_index])) <= 1e-3
