"""A question's content-free margin and states, kept in the cache folder for a local model: read
back on the next run, keyed by everything they depend on, scored again when the file is bad."""
import numpy as np
import pytest

from engine.classifier import Classifier
from engine.gather import _content_free_file, content_free

QUESTION = "Is the document yes or no?"


@pytest.fixture
def cache_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("VERDICT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_a_second_run_reads_what_the_first_scored(tiny_classifier, cache_folder):
    first = content_free(tiny_classifier, QUESTION, [1, 2])
    path = _content_free_file(tiny_classifier, QUESTION, [1, 2], ("N/A", "[MASK]", "None"))
    assert path.is_file() and path.parent.parent == cache_folder
    # The file is what the next call answers from: a margin written into it comes back.
    with np.load(path) as saved:
        states = {k: saved[k] for k in saved.files if k != "margin"}
    np.savez(path, margin=123.5, **states)
    again = content_free(tiny_classifier, QUESTION, [1, 2])
    assert again[0] == 123.5
    for layer in (1, 2):
        np.testing.assert_array_equal(again[1][layer], first[1][layer])


def test_whatever_changes_the_prompts_changes_the_key(tiny_classifier, tiny_model_dir, cache_folder):
    nulls = ("N/A", "[MASK]", "None")
    base = _content_free_file(tiny_classifier, QUESTION, [1], nulls)
    assert _content_free_file(tiny_classifier, "Is it about cats?", [1], nulls) != base
    assert _content_free_file(tiny_classifier, QUESTION, [2], nulls) != base
    assert _content_free_file(tiny_classifier, QUESTION, [1], ("N/A",)) != base
    other = Classifier(tiny_classifier.backend, instructions="Answer about software only.")
    assert _content_free_file(other, QUESTION, [1], nulls) != base
    assert _content_free_file(Classifier(tiny_classifier.backend), QUESTION, [1], nulls) == base


@pytest.mark.parametrize("damage", [b"", b"not an npz file", b"PK\x03\x04 truncated zip"])
def test_a_damaged_file_is_scored_again_and_replaced(tiny_classifier, cache_folder, damage):
    fresh = content_free(tiny_classifier, QUESTION, [1])
    path = _content_free_file(tiny_classifier, QUESTION, [1], ("N/A", "[MASK]", "None"))
    path.write_bytes(damage)
    again = content_free(tiny_classifier, QUESTION, [1])
    assert again[0] == fresh[0]
    np.testing.assert_array_equal(again[1][1], fresh[1][1])
    with np.load(path) as saved:
        assert float(saved["margin"]) == fresh[0]


def test_an_inference_server_is_never_remembered(cache_folder):
    class NoModelHere:  # what the pipeline sees of a remote backend: no `lm`
        fingerprint = "sha256:" + "0" * 64

    class Clf:
        backend = NoModelHere()

        def encoder_for(self, question):
            raise AssertionError("not asked")

    assert _content_free_file(Clf(), QUESTION, [], ("N/A",)) is None
