"""Where a template's segment cuts lie, found once per tokenizer and template and kept in the
cache folder; a damaged or out-of-range entry is found again."""
import json

import pytest

from engine.model.prompt import DOCUMENT_FIRST, PromptEncoder, build_template


@pytest.fixture
def cache_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("VERDICT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _encoder(tokenizer, instructions=""):
    return PromptEncoder(build_template(DOCUMENT_FIRST, tokenizer, instructions), tokenizer)


def test_cuts_are_found_once_and_read_back(tiny_classifier, cache_folder):
    tokenizer = tiny_classifier.tokenizer
    first = _encoder(tokenizer)
    found = (first._head_cut, first._tail_cut)
    saved = json.loads((cache_folder / "prompt-cuts.json").read_text())
    assert list(saved.values()) == [list(found)]
    # The file is what the next encoder answers from: an entry written into it comes back.
    key = next(iter(saved))
    (cache_folder / "prompt-cuts.json").write_text(json.dumps({key: [0, 0]}))
    assert (lambda e: (e._head_cut, e._tail_cut))(_encoder(tokenizer)) == (0, 0)


def test_other_instructions_are_another_entry(tiny_classifier, cache_folder):
    tokenizer = tiny_classifier.tokenizer
    _encoder(tokenizer)
    _encoder(tokenizer, "Answer about software only.")
    assert len(json.loads((cache_folder / "prompt-cuts.json").read_text())) == 2


@pytest.mark.parametrize("damage", ["not json", "[1, 2]", "out of range", "not ints"])
def test_a_bad_entry_is_found_again(tiny_classifier, cache_folder, damage):
    tokenizer = tiny_classifier.tokenizer
    good = _encoder(tokenizer)
    path = cache_folder / "prompt-cuts.json"
    key = next(iter(json.loads(path.read_text())))
    path.write_text({"not json": "{", "[1, 2]": "[1, 2]", "out of range": json.dumps({key: [10**6, 0]}),
                     "not ints": json.dumps({key: ["1", 2.0]})}[damage])
    again = _encoder(tokenizer)
    assert (again._head_cut, again._tail_cut) == (good._head_cut, good._tail_cut)
    assert json.loads(path.read_text())[key] == [good._head_cut, good._tail_cut]
    doc = "A document.\n"
    assert again.encode("Is it?", doc).all == good.encode("Is it?", doc).all == again.whole_ids("Is it?", doc)
