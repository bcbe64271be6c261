"""One flow for every front end: the CLI, the Python API and the app's scoring thread give the
same final rows for the same inputs, through a calibrator fitted to labels (a probe on hidden
states, so the native capture is exercised too)."""
import json
import subprocess
import sys

import pytest

from engine import Classifier, Document
from engine.confidence.calibrate import text_key
from engine.confidence.decide import DecisionRule
from engine.pipeline import Labels, Pipeline, decided

QUESTIONS = ["Does it mention money?", "Is it about the weather?"]
TEXTS = [
    "Please pay the invoice of $120 by Friday.",
    "Rain and wind are expected all week.",
    "The meeting moved to room 4.",
    "Your refund of 30 euros was sent.",
    "Sunny skies and warm temperatures today.",
    "The library opens at nine.",
    "Tickets cost $15 at the door.",
    "Snow is falling in the mountains.",
]
DOCS = [Document(id=f"d{i}", text=t) for i, t in enumerate(TEXTS)]
LABELS = {"d0": True, "d3": True, "d6": True, "d1": False, "d2": False, "d5": False}


def _compare(a, b):
    assert [(v.document_id, v.question, v.verdict) for v in a] == [(v.document_id, v.question, v.verdict) for v in b]
    for x, y in zip(a, b):
        assert x.score == pytest.approx(y.score, abs=1e-3)
        # decided over the batch by an iterative fit: scores 1e-4 apart end a little further apart
        assert x.margin == pytest.approx(y.margin, abs=0.05)
        assert x.probability == pytest.approx(y.probability, abs=1e-2)
        assert x.raw_margin == pytest.approx(y.raw_margin, abs=1e-3)
        assert (x.windows, x.window_index, x.window_span) == (y.windows, y.window_index, y.window_span)


@pytest.fixture
def labeled_run(tmp_path, monkeypatch, tiny_model_dir):
    """A data folder where `verdict classify --labels` has fitted and saved both calibrators."""
    monkeypatch.setenv("VERDICT_DATA_DIR", str(tmp_path / "data"))
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"id": d.id, "text": d.text}) + "\n" for d in DOCS), encoding="utf-8")
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps({"id": i, "label": y}) + "\n" for i, y in LABELS.items()), encoding="utf-8")
    args = ["classify", "--model", tiny_model_dir, "--jsonl-in", docs]
    for q in QUESTIONS:
        args += ["-q", q]
    fitted = subprocess.run([sys.executable, "-m", "engine.cli", *map(str, args), "--labels", str(labels)],
                            capture_output=True, text=True, timeout=300)
    assert fitted.returncode == 0, fitted.stderr
    again = subprocess.run([sys.executable, "-m", "engine.cli", *map(str, args)], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    return [json.loads(line) for line in fitted.stdout.splitlines()], [json.loads(line) for line in again.stdout.splitlines()]


def test_cli_api_and_app_worker_give_the_same_rows(labeled_run, tiny_model_dir, qtbot):
    from app.worker import ScoringController

    fitted_rows, cli_rows = labeled_run
    # the fitting run answers a labeled document with its label; the second run (no labels) used the
    # saved calibrators, its labeled documents joining the batch: the same scores, and the same rows
    # for the documents nobody labeled
    assert [(r["id"], r["verdict"]) for r in fitted_rows if r["id"] in LABELS] == \
        [(r["id"], "yes" if LABELS[r["id"]] else "no") for r in fitted_rows if r["id"] in LABELS]
    unlabeled = [n for n, r in enumerate(fitted_rows) if r["id"] not in LABELS]
    assert [(cli_rows[n]["id"], cli_rows[n]["question"], cli_rows[n]["verdict"]) for n in unlabeled] == \
        [(fitted_rows[n]["id"], fitted_rows[n]["question"], fitted_rows[n]["verdict"]) for n in unlabeled]
    assert [cli_rows[n]["probability"] for n in unlabeled] == pytest.approx(
        [fitted_rows[n]["probability"] for n in unlabeled], abs=1e-4)

    clf = Classifier.load(tiny_model_dir)
    api = clf.classify(QUESTIONS, DOCS)
    assert {clf.pipeline.calibrators[q].method for q in QUESTIONS} <= {"probe", "platt"}  # saved ones, not label-free
    assert [(r["id"], r["question"]) for r in cli_rows] == [(v.document_id, v.question) for v in api]
    for row, v in zip(cli_rows, api):
        assert row["verdict"] == v.verdict
        assert row["margin"] == pytest.approx(v.margin, abs=1e-3) and row["raw_margin"] == pytest.approx(v.raw_margin, abs=1e-3)

    controller = ScoringController(load=Classifier.load)
    arrived = []
    controller.verdictArrived.connect(lambda key, verdict: arrived.append((key, verdict)))
    with qtbot.waitSignal(controller.modelReady, timeout=180_000):
        controller.load_model(str(tiny_model_dir))
    with qtbot.waitSignal(controller.busyChanged, timeout=180_000, check_params_cb=lambda busy: not busy):
        controller.score(list(range(len(DOCS))), DOCS, QUESTIONS)
    controller.shutdown()
    order = {q: i for i, q in enumerate(QUESTIONS)}
    worker = [v for _, v in sorted(arrived, key=lambda kv: (kv[0], order[kv[1].question]))]
    # the worker decides each row alone; the window decides them over the batch, as the pipeline does
    keys = {n: text_key(d.text) for n, d in enumerate(DOCS)}
    decided_rows = decided([(order[v.question], v) for v in worker], controller.calibrators, DecisionRule(), keys)
    _compare(api, [v for _, v in decided_rows])
    assert all(v.hidden is not None and v.states is None for v in worker)  # the app keeps one state per verdict


def test_a_question_asked_twice_is_reported_twice(tiny_classifier):
    question = "Is it short?"
    rows = tiny_classifier.classify([question, "Is it long?", question], ["a", "b c"])
    assert [(v.document_index, v.question) for v in rows] == [
        (0, question), (0, "Is it long?"), (0, question), (1, question), (1, "Is it long?"), (1, question)]
    assert rows[0].margin == rows[2].margin and rows[0] is not rows[2]


def test_the_cli_reports_a_repeated_question_once_per_listing(tiny_model_dir):
    done = subprocess.run([sys.executable, "-m", "engine.cli", "classify", "--model", str(tiny_model_dir),
                           "-q", "X?", "-q", "X?", "-"], input="some text", capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["question"] for r in rows] == ["X?", "X?"] and rows[0]["margin"] == rows[1]["margin"]


def test_labels_file_errors_name_the_line(tmp_path):
    path = tmp_path / "labels.jsonl"
    path.write_text('{"id": "a", "label": true}\n{"id": "b", "label": "maybe"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="maybe"):
        Labels.read(path)
    path.write_text('{"id": "a", "label": true}\nnot json\n', encoding="utf-8")
    with pytest.raises(ValueError, match="line 2"):
        Labels.read(path)


def test_fit_labels_refuses_labels_of_one_class(tiny_classifier):
    pipeline = Pipeline(tiny_classifier, save=False)
    with pytest.raises(ValueError, match="at least one yes and one no"):
        pipeline.fit_labels(["Q?"], DOCS, Labels({None: {"d0": True, "d3": True}}))


def test_calibrators_belong_to_the_weights_not_the_file_name(tiny_gguf, tmp_path, monkeypatch):
    """Two different files with the same name must not share a calibrator; the same weights
    under another name do."""
    import shutil

    from tinymodels import write_gguf

    monkeypatch.setenv("VERDICT_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "other").mkdir()
    other, _ = write_gguf(tmp_path / "other" / tiny_gguf.name, "qwen2", quant="Q8_0", seed=7)
    renamed = tmp_path / "renamed.gguf"
    shutil.copy(tiny_gguf, renamed)
    first = Classifier.load(tiny_gguf)
    first.pipeline.fit("Is it?", DOCS, LABELS)
    assert Classifier.load(other).pipeline.calibrator("Is it?").method == "margin"  # same name, other weights
    assert Classifier.load(renamed).pipeline.calibrator("Is it?").method != "margin"  # same weights


def test_the_engine_never_edits_the_callers_documents(tiny_classifier):
    """The app's Documents live on the GUI thread: scoring them must leave them exactly as they
    were. What the engine notes while reading (normalised text, the token budget) is on the Verdict."""
    import copy

    long = Document(id="long", text="word " * 4000, warnings=["from the reader"])
    odd = Document(id="odd", text="Pay \ud800 now")
    before = copy.deepcopy([long, odd])
    old_budget, tiny_classifier.max_tokens = tiny_classifier.max_tokens, 200
    try:
        raw = tiny_classifier.score(QUESTIONS[0], [long, odd])
        final = Pipeline(tiny_classifier, save=False).run(QUESTIONS[0], [long, odd])
        final = list(final)
    finally:
        tiny_classifier.max_tokens = old_budget
    assert [long, odd] == before  # text, warnings, meta: all as given
    for rows in (raw, final):
        assert any("budget of 200 tokens" in w for w in rows[0].warnings)
        assert "from the reader" not in rows[0].warnings  # the caller's own warnings stay the caller's
        assert any("lone surrogates" in w for w in rows[1].warnings)
    from engine.rows import verdict_row

    row = verdict_row(long, final[0])  # the row contract shows the document's warnings, then the verdict's
    assert row["warnings"][0] == "from the reader" and "budget of 200 tokens" in row["warnings"][1]


def test_batch_calibration_shifts_each_run_by_its_own_median_and_keeps_the_calibrator(tiny_classifier):
    import numpy as np

    pipeline = Pipeline(tiny_classifier, settings={"shift_method": "batch", "probe": False}, save=False)
    kept = pipeline.calibrator(QUESTIONS[0])
    for docs in (DOCS, DOCS[:3]):
        rows = list(pipeline.run(QUESTIONS[0], docs, decisions="row"))
        median = float(np.median([v.raw_margin for v in rows]))
        assert [v.score for v in rows] == pytest.approx([v.raw_margin - median for v in rows], abs=1e-6)
    assert pipeline.calibrator(QUESTIONS[0]) is kept and kept.shift == 0.0


def test_the_worker_hands_the_gui_calibrators_it_never_touches_again(tiny_model_dir, tmp_path, monkeypatch, qtbot):
    """A calibrator reaches the GUI as a value: after a refit, new worked examples (the content-free
    state is computed again) and more scoring on the worker, what the GUI holds is byte for byte
    what it received, and the refreshed calibrator arrives as a new value."""
    import pickle

    import numpy as np

    from app.worker import ScoringController
    from engine.confidence.general import GeneralProbe, general_probe_key, save_general_probe
    from engine.model.fingerprint import model_fingerprint
    from engine.types import Example

    monkeypatch.setenv("VERDICT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VERDICT_GENERAL_PROBES", str(tmp_path / "probes"))
    d = len(Classifier.load(tiny_model_dir).score("Is it?", ["a text"], layers=[2])[0].states[2])
    save_general_probe(GeneralProbe(general_probe_key(model_fingerprint(tiny_model_dir)), 2, np.zeros(d), np.ones(d),
                                    np.linspace(-1, 1, d), 0.1, subtract_null=True, null_texts=("N/A",)),
                       tmp_path / "probes")
    question = QUESTIONS[0]
    controller = ScoringController(load=Classifier.load)
    received = []
    controller.calibratorChanged.connect(lambda q, cal: received.append(cal))
    try:
        with qtbot.waitSignal(controller.modelReady, timeout=180_000):
            controller.load_model(str(tiny_model_dir))
        with qtbot.waitSignal(controller.calibratorChanged, timeout=180_000):
            controller.resolve_calibrators([question])
        label_free = received[-1]
        assert label_free.general is not None and label_free.general_null is not None
        with qtbot.waitSignal(controller.refitFinished, timeout=180_000) as refit:
            controller.refit(question, DOCS, LABELS)
        fitted = refit.args[1]
        held = [(cal, pickle.dumps(cal)) for cal in (label_free, fitted)]
        controller.set_examples([Example(text="Pay $5 now.", answer=True, question=question)])
        with qtbot.waitSignal(controller.busyChanged, timeout=180_000, check_params_cb=lambda busy: not busy):
            controller.score(list(range(len(DOCS))), DOCS, [question])
    finally:
        controller.shutdown()
    assert all(pickle.dumps(cal) == before for cal, before in held)
    refreshed = received[-1]
    assert refreshed is not fitted and refreshed.general_prompt != fitted.general_prompt
    assert not np.array_equal(refreshed.general_null, fitted.general_null)
