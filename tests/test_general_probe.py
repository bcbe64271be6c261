"""The general answer probe: its file format, the model fingerprint it is tied to, and what it
does on real held-out text with the default model."""
from __future__ import annotations

import hashlib
import json
import subprocess

import numpy as np
import pytest

from engine.confidence.general import GeneralProbe, general_probe_key, load_general_probe, save_general_probe
from engine.gather import probe_fingerprint
from engine.model.fingerprint import model_fingerprint
from engine.confidence.calibrate import Calibrator
from engine.gather import general_probe as general_probe_for
from engine.types import Document

# The default model's GGUF, as published (shared/MODELS.md): the shipped probe is tied to it.
DEFAULT_GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


def _general_key(path):
    """The key gather looks a general probe up by, for a backend that did not hash its model."""
    class Backend:
        supports_states = True
        fingerprint = ""
        lm = type("LM", (), {"path": path})

    return probe_fingerprint(Backend())


def test_a_model_files_general_probe_key_is_its_sha256_as_coreutils_computes_it(tmp_path, monkeypatch):
    monkeypatch.setenv("VERDICT_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "weights.gguf"
    path.write_bytes(bytes(range(256)) * 5000 + b"tail")
    expected = subprocess.run(["sha256sum", str(path)], capture_output=True, text=True, check=True).stdout.split()[0]
    assert model_fingerprint(path) == "sha256:" + expected
    assert _general_key(path) == general_probe_key(model_fingerprint(path)) == expected
    path.write_bytes(b"other content")  # a changed file is hashed again, not remembered by name
    assert _general_key(path) == hashlib.sha256(b"other content").hexdigest()


def test_a_folders_general_probe_key_comes_from_the_runtimes_one_fingerprint(tmp_path, monkeypatch):
    """One fingerprint: the runtime's covers a folder's files by name and content; the probe's
    file name is derived from it, so renaming or changing a weight file changes the key."""
    monkeypatch.setenv("VERDICT_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "a.safetensors").write_bytes(b"first")
    (folder / "config.json").write_text("{}")
    listing = "".join(f"{name}\0{hashlib.sha256(data).hexdigest()}\n"
                      for name, data in (("a.safetensors", b"first"), ("config.json", b"{}")))
    fingerprint = "dir-sha256:" + hashlib.sha256(listing.encode()).hexdigest()
    assert model_fingerprint(folder) == fingerprint
    assert _general_key(folder) == hashlib.sha256(fingerprint.encode()).hexdigest()
    (folder / "a.safetensors").write_bytes(b"changed")
    assert _general_key(folder) != hashlib.sha256(fingerprint.encode()).hexdigest()


def test_save_and_load_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    probe = GeneralProbe("ab" * 32, 18, rng.normal(size=8), rng.uniform(0.5, 2, size=8), rng.normal(size=8), -0.25,
                         0.71, 0.43, {"questions": 3})
    save_general_probe(probe, tmp_path)
    back = load_general_probe("ab" * 32, tmp_path)
    h = rng.normal(size=(5, 8))
    np.testing.assert_allclose(back.decision(h), probe.decision(h), rtol=1e-5)
    assert back.layer == 18 and back.beats_margin and back.info == {"questions": 3}
    assert load_general_probe("cd" * 32, tmp_path) is None


def test_a_difference_probe_and_its_label_free_band_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    probe = GeneralProbe("ab" * 32, 4, np.zeros(6), np.ones(6), rng.normal(size=6), 0.1, 0.8, 0.5,
                         subtract_null=True, null_texts=("N/A", "None"), label_free_band=float("inf"))
    path = save_general_probe(probe, tmp_path)
    meta = json.loads(path.read_text())
    assert meta["input"] == "state minus content-free state" and meta["label_free_band"] is None  # JSON has no inf
    back = load_general_probe("ab" * 32, tmp_path)
    assert back.subtract_null and back.null_texts == ("N/A", "None") and back.label_free_band == float("inf")
    h, null = rng.normal(size=(3, 6)), rng.normal(size=6)
    np.testing.assert_allclose(back.decision(h, null), (h - null) @ probe.w + 0.1, rtol=1e-5)
    with pytest.raises(ValueError, match="content-free"):
        back.decision(h)
    path.write_text(json.dumps({**meta, "null_texts": []}))  # a difference with nothing to subtract
    assert load_general_probe("ab" * 32, tmp_path) is None


def test_damaged_or_mismatched_files_are_ignored(tmp_path):
    probe = GeneralProbe("ef" * 32, 3, np.zeros(4), np.ones(4), np.ones(4), 0.0, 0.5, 0.6)
    assert not probe.beats_margin
    path = save_general_probe(probe, tmp_path)
    meta = json.loads(path.read_text())
    path.write_text(json.dumps({**meta, "fingerprint": "00" * 32}))
    assert load_general_probe("ef" * 32, tmp_path) is None
    path.write_text("{not json")
    assert load_general_probe("ef" * 32, tmp_path) is None


def test_default_model_fingerprint_matches_the_published_hash(default_model_path):
    assert model_fingerprint(default_model_path) == "sha256:" + DEFAULT_GGUF_SHA256


def test_no_general_probe_for_a_model_without_one(tiny_gguf):
    from engine.classifier import Classifier

    assert general_probe_for(Classifier.load(tiny_gguf)) is None


# --- the calibrator with a general probe (tiny model, probe files written here) ---------------
def _ship(clf, folder, monkeypatch, *, layer=2, heldout=(0.8, 0.4), seed=0, **options) -> GeneralProbe:
    state = clf.score("Is it a test?", ["some text"], layers=[layer])[0].states[layer]
    rng = np.random.default_rng(seed)
    d = len(state)
    probe = GeneralProbe(general_probe_key(model_fingerprint(clf.backend.lm.path)), layer, rng.normal(size=d) * 0.1,
                         rng.uniform(0.5, 2.0, size=d), rng.normal(size=d), 0.3, *heldout, **options)
    save_general_probe(probe, folder)
    monkeypatch.setenv("VERDICT_GENERAL_PROBES", str(folder))
    return probe


def test_label_free_verdicts_come_from_the_general_probe_when_it_beat_the_margin(tiny_classifier, tmp_path, monkeypatch):
    from engine.gather import calibrator_for
    from engine.pipeline import Pipeline

    probe = _ship(tiny_classifier, tmp_path, monkeypatch)
    assert general_probe_for(tiny_classifier) is not None
    cal = calibrator_for(tiny_classifier, "Is it a test?", use_saved=False)
    assert cal.method == "general" and cal.layers == [probe.layer]
    texts = ["first document", "a second, longer document about tests", "yes no yes"]
    raw = tiny_classifier.score("Is it a test?", texts, layers=[probe.layer])
    expected = [float(((v.states[probe.layer] - probe.mean) / probe.scale) @ probe.w + probe.b) for v in raw]
    rows = list(Pipeline(tiny_classifier, save=False, folder=tmp_path).run("Is it a test?", texts, decisions="row"))
    assert [v.margin for v in rows] == pytest.approx(expected, abs=1e-3)
    assert [v.raw_margin for v in rows] == pytest.approx([v.raw_margin for v in raw], abs=1e-5)
    for v in rows:
        unsure = abs(v.margin) < cal.band or v.label_mass < cal.mass_floor
        assert v.verdict == ("uncertain" if unsure else "yes" if v.margin > 0 else "no")


def test_a_difference_probe_subtracts_the_questions_content_free_state(tiny_classifier, tmp_path, monkeypatch):
    """The state it reads is the document's minus the mean of the content-free documents' states
    for the same question, each content-free document scored as a document of its own."""
    from engine.gather import calibrator_for
    from engine.pipeline import Pipeline

    nulls = ("N/A", "None")
    probe = _ship(tiny_classifier, tmp_path, monkeypatch, subtract_null=True, null_texts=nulls)
    question, texts = "Is it a test?", ["first document", "yes no yes", "a third one"]
    null_states = [tiny_classifier.score(question, [t], layers=[2])[0].states[2] for t in nulls]
    null = np.mean(null_states, axis=0)
    assert not np.allclose(null_states[0], null_states[1])  # the mean is over two different states
    raw = tiny_classifier.score(question, texts, layers=[2])
    expected = [float(((v.states[2] - null - probe.mean) / probe.scale) @ probe.w + probe.b) for v in raw]
    plain = [float(((v.states[2] - probe.mean) / probe.scale) @ probe.w + probe.b) for v in raw]
    assert not np.allclose(expected, plain, atol=1e-2)  # subtracting makes a difference
    rows = list(Pipeline(tiny_classifier, save=False, folder=tmp_path).run(question, texts))
    assert [v.score for v in rows] == pytest.approx(expected, abs=1e-3)
    assert calibrator_for(tiny_classifier, question, use_saved=False).general_null == pytest.approx(null, abs=1e-5)


def test_a_difference_probe_whose_content_free_documents_cannot_be_scored_is_not_used(tiny_classifier, tmp_path,
                                                                                        monkeypatch):
    from engine.pipeline import Pipeline

    _ship(tiny_classifier, tmp_path, monkeypatch, subtract_null=True, null_texts=("", " "))  # empty: error rows
    pipeline = Pipeline(tiny_classifier, save=False, folder=tmp_path)
    rows = list(pipeline.run("Is it a test?", ["first document", "yes no yes"]))
    assert all(v.ok for v in rows) and pipeline.calibrators["Is it a test?"].method == "margin"
    assert [v.score for v in rows] == pytest.approx([v.raw_margin for v in rows])
    assert any("general probe is not used" in note for note in pipeline.notes())


def test_a_difference_probe_follows_the_prompt_when_worked_examples_change(tiny_classifier, tmp_path, monkeypatch):
    """The content-free state is the same prompt around a content-free document: new worked
    examples in the prompt give a new one, also for a pipeline that already scored."""
    from engine.pipeline import Pipeline
    from engine.types import Example

    probe = _ship(tiny_classifier, tmp_path, monkeypatch, subtract_null=True, null_texts=("N/A", "None"))
    question, texts = "Is it a test?", ["first document", "yes no yes"]
    pipeline = Pipeline(tiny_classifier, save=False, folder=tmp_path)
    try:
        before = [v.score for v in pipeline.run(question, texts)]
        tiny_classifier.set_examples([Example("a test of things", True), Example("a poem", False)])
        null = np.mean([tiny_classifier.score(question, [t], layers=[2])[0].states[2] for t in ("N/A", "None")], axis=0)
        raw = tiny_classifier.score(question, texts, layers=[2])
        expected = [float(((v.states[2] - null - probe.mean) / probe.scale) @ probe.w + probe.b) for v in raw]
        after = [v.score for v in pipeline.run(question, texts)]
    finally:
        tiny_classifier.set_examples([])
    assert after == pytest.approx(expected, abs=1e-3) and after != pytest.approx(before, abs=1e-3)


def test_an_infinite_label_free_band_leaves_every_verdict_uncertain_until_labels(tiny_classifier, tmp_path, monkeypatch):
    from engine.gather import fit_calibrator
    from engine.pipeline import Pipeline

    _ship(tiny_classifier, tmp_path, monkeypatch, label_free_band=float("inf"))
    question = "Is it a test?"
    docs = [Document(id=f"d{i}", text=f"document {i} " + "word " * (i % 5)) for i in range(12)]
    cal = fit_calibrator(tiny_classifier, question, docs, None)
    assert cal.method == "general" and cal.effective_band == float("inf")
    rows = [cal.apply(v) for v in tiny_classifier.score(question, docs, layers=cal.layers)]
    assert {v.verdict for v in rows} == {"uncertain"} and len({round(v.probability, 6) for v in rows}) > 1
    for target in (0.97, 0.9):  # without labels nothing is called at any target
        pipeline = Pipeline(tiny_classifier, save=False, folder=tmp_path, settings={"target": target})
        assert {v.verdict for v in pipeline.run([question, "Is it long?"], docs[:3])} == {"uncertain"}
        said = [note for note in pipeline.notes() if "with no labels, nothing is called" in note]
        assert len(said) == 1 and repr(question) in said[0] and "'Is it long?'" in said[0]  # one line for both
        # this probe ships no prior on its calibration: calls start where the mixture decides (v11)
        assert "calls start from 4 of each" in said[0] and f"right {target:.0%} of the time" in said[0]
    methods = set()
    for seed in range(6):  # labels bring Platt (on the general probe or the margin), and the usual band
        labels = {d.id: (i + seed) % 3 == 0 for i, d in enumerate(docs)}
        labeled = fit_calibrator(tiny_classifier, question, docs, labels, probe=False)
        methods.add(labeled.method)
        assert labeled.effective_band == labeled.band == 1.0
    assert methods & {"general", "anchored"}  # the general probe, refit to the labels or Platt-scaled


def test_a_general_probe_that_lost_to_the_margin_is_not_used(tiny_classifier, tmp_path, monkeypatch):
    from engine.gather import calibrator_for

    _ship(tiny_classifier, tmp_path, monkeypatch, heldout=(0.55, 0.6))
    assert calibrator_for(tiny_classifier, "Is it a test?", use_saved=False).method == "margin"
    _ship(tiny_classifier, tmp_path, monkeypatch)
    assert calibrator_for(tiny_classifier, "Is it a test?", use_saved=False, general=False).method == "margin"


def test_with_a_general_probe_labels_refit_it_and_nothing_else_is_chosen(tiny_classifier, tmp_path, monkeypatch):
    from engine.confidence import metrics
    from engine.gather import fit_calibrator

    docs = [Document(id=f"d{i}", text=f"document {i} " + "word " * (i % 5)) for i in range(12)]
    labels = {d.id: i % 3 == 0 for i, d in enumerate(docs)}
    for seed in range(3):
        probe = _ship(tiny_classifier, tmp_path, monkeypatch, seed=seed)
        cal = fit_calibrator(tiny_classifier, "Is it a test?", docs, labels)
        assert cal.method == "anchored" and not cal.use_probe and cal.layers == [probe.layer]
        raw = tiny_classifier.score("Is it a test?", docs, layers=[probe.layer])
        y = np.array([labels[v.document_id] for v in raw])
        states = np.stack([v.states[probe.layer] for v in raw])
        # the refit moves toward the labels from the shipped weights: on them it ranks at least as well
        assert metrics.auc(y, cal.general_decision(states)) >= metrics.auc(y, probe.decision(states)) - 1e-9
        again = Calibrator.from_dict(cal.to_dict())  # saved and read back: the same refit
        again.set_general(probe, None, None)
        assert again.general_decision(states) == pytest.approx(cal.general_decision(states), abs=1e-6)


def test_a_saved_platt_on_the_general_probe_is_dropped_when_another_probe_ships(tiny_classifier, tmp_path, monkeypatch):
    """Labels fitted a Platt on one general probe's log-odds; after an update ships another probe
    for the same weights, the saved calibrator must not apply that Platt to the new log-odds."""
    from engine.gather import calibrator_for

    question = "Is it a test?"
    docs = [Document(id=f"d{i}", text=f"document {i} " + "word " * (i % 5)) for i in range(12)]
    data = tmp_path / "data"
    first = _ship(tiny_classifier, tmp_path / "probes", monkeypatch, seed=0)
    z = first.decision(np.stack([v.states[2] for v in tiny_classifier.score(question, docs, layers=[2])]))
    labels = {d.id: bool(score > np.median(z)) for d, score in zip(docs, z)}  # labels the probe ranks perfectly
    fitted = calibrator_for(tiny_classifier, question, docs, labels, folder=data, probe=False)
    assert fitted.use_general and fitted.general_platt_for == first.identity
    again = calibrator_for(tiny_classifier, question, folder=data)
    assert again.method == "anchored" and again.anchored is not None  # same probe: the refit is kept
    second = _ship(tiny_classifier, tmp_path / "probes", monkeypatch, seed=1)
    assert second.identity != first.identity
    updated = calibrator_for(tiny_classifier, question, folder=data)
    assert updated.anchored is None and updated.method == "platt"
    assert any("general probe changed" in note for note in updated.notes)


def test_shipped_probe_beats_the_raw_margin_on_held_out_debian_descriptions(default_model_path):
    """The shipped probe never saw Debian descriptions; on 20 + 20 of them (labeled by archive
    section) it must rank better than the model's own answer, and `evaluate` reports it."""
    import json as _json
    from pathlib import Path

    from engine.classifier import Classifier
    from engine.gather import evaluate

    clf = Classifier.load(default_model_path)
    probe = general_probe_for(clf)
    assert probe is not None and probe.beats_margin and probe.layer == 21 and probe.subtract_null

    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    from engine.confidence.general import probes_dir

    _json.loads((probes_dir() / f"{probe.fingerprint}.json").read_text(), parse_constant=refuse)  # strict JSON
    text = (Path(__file__).parent.parent / "resources/labeled/debian_science.jsonl").read_text()
    rows = [_json.loads(line) for line in text.splitlines()]
    sample = [r for r in rows if r["label"]][:20] + [r for r in rows if not r["label"]][:20]
    result = evaluate(clf, "Is this software for scientific research?", sample, k=3, curve_sizes=(), repeats=1)
    general, raw = result["methods"]["general"], result["methods"]["raw"]
    assert set(general) >= {"auc", "accuracy", "brier", "ece"}
    assert general["auc"] > raw["auc"] + 0.1
    calibrated = result["methods"]["calibrated"]  # the label-free default is the general probe
    assert result["calibrated_is"] == "general"
    assert [calibrated[k] for k in ("auc", "brier", "ece")] == [general[k] for k in ("auc", "brier", "ece")]


# What the samples in resources/samples ask for, where the answer is plain (a phishing mail asking
# for card details and an auto-renewal notice are left out: either answer can be argued).
SAMPLE_ANSWERS = {
    "Does this ask the reader to pay money?": {
        "overdue-invoice.txt": True, "bug-report.md": False, "job-offer.txt": False,
        "lemon-tart-recipe.md": False, "quarterly-rates.txt": False, "team-offsite.txt": False},
    "Is this about food or cooking?": {
        "lemon-tart-recipe.md": True, "overdue-invoice.txt": False, "bug-report.md": False,
        "job-offer.txt": False, "quarterly-rates.txt": False, "account-suspended.eml.txt": False,
        "gym-membership-renewal.txt": False, "team-offsite.txt": False},
}


def test_make_demo_shows_no_confident_wrong_verdict_on_the_samples(default_classifier, tmp_path):
    """The bar for the label-free path: what `make demo` prints for the samples may be
    uncertain, but never confidently wrong."""
    from pathlib import Path

    from engine.intake import load_documents
    from engine.pipeline import Pipeline

    samples = load_documents([Path(__file__).parent.parent / "resources/samples"])
    pipeline = Pipeline(default_classifier, save=False, folder=tmp_path)
    for question, answers in SAMPLE_ANSWERS.items():
        rows = {Path(v.document_id).name: v for v in pipeline.run(question, samples)}
        assert set(answers) <= set(rows)
        wrong = [name for name, yes in answers.items() if rows[name].verdict == ("no" if yes else "yes")]
        assert not wrong, (question, wrong)
