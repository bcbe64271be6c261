"""Robustness at intake: text normalised once, JSONL lines that cost one row, bounded sizes."""
from __future__ import annotations

import io
import json

import pytest

from engine.intake import limits
from engine.intake.jsonl import JsonlError, iter_jsonl_documents
from engine.intake.normalize import decode_utf8, normalize_document, normalize_text
from engine.types import Document


def _jsonl(lines: list[bytes]) -> io.BufferedReader:
    return io.BufferedReader(io.BytesIO(b"".join(lines)))


def test_lone_surrogates_become_replacement_characters_with_a_warning_once():
    text, warnings = normalize_text("x \ud800 y \udcff z")
    assert text == "x \ufffd y \ufffd z" and text.encode("utf-8")
    assert warnings == ["2 invalid characters (lone surrogates) replaced with U+FFFD"]
    doc = normalize_document(Document(id="a", text="x \ud800 y"))
    normalize_document(doc)  # a second pass adds nothing
    assert doc.text == "x \ufffd y" and len(doc.warnings) == 1
    assert normalize_text("a valid pair \U0001F600")[1] == []


def test_text_past_the_character_budget_is_cut_with_a_warning():
    text, warnings = normalize_text("abcdef" * 10, max_chars=25)
    assert text == ("abcdef" * 10)[:25] and warnings == ["text truncated (25 of 60 characters kept)"]


def test_undecodable_bytes_are_replaced_and_counted():
    assert decode_utf8("Café".encode()) == ("Café", None)
    text, warning = decode_utf8(b"Caf\xe9 and \xff\xfe")
    assert text.startswith("Caf\ufffd and") and warning == "3 invalid UTF-8 sequences replaced with U+FFFD"


def test_fifty_good_lines_and_a_lone_surrogate_give_fifty_one_documents():
    good = [json.dumps({"id": f"a{i}", "text": f"good {i}"}).encode() + b"\n" for i in range(50)]
    bad = b'{"id": "b", "text": "x \\ud800 y", "note": "\\udc80"}\n'
    docs = list(iter_jsonl_documents(_jsonl(good + [bad])))
    assert len(docs) == 51 and all(d.error is None for d in docs)
    assert docs[-1].text == "x \ufffd y" and "lone surrogates" in docs[-1].warnings[0]
    assert docs[-1].meta["passthrough"] == {"note": "\ufffd"}  # written out later: must encode


def test_a_byte_order_mark_keeps_line_one_and_bad_bytes_cost_a_warning_not_the_file():
    docs = list(iter_jsonl_documents(_jsonl([
        b'\xef\xbb\xbf{"id": "first", "text": "one"}\n',
        b"\n",
        b'{"id": "second", "text": "caf\xe9"}\n',
        b"not json\n",
    ])))
    assert [d.id for d in docs] == ["first", "second", "line 4"]
    assert docs[0].error is None and docs[1].text == "caf\ufffd"
    assert docs[1].warnings == ["line 3: 1 invalid UTF-8 sequence replaced with U+FFFD"]
    assert docs[2].error.startswith("invalid JSON on line 4")


def test_a_line_over_the_limit_is_skipped_unparsed_and_the_next_line_is_read(monkeypatch):
    monkeypatch.setattr(limits, "MAX_LINE_BYTES", 1000)
    huge = json.dumps({"id": "huge", "text": "x" * 5000}).encode() + b"\n"
    docs = list(iter_jsonl_documents(_jsonl([huge, b'{"id": "after", "text": "fine"}\n'])))
    assert [d.id for d in docs] == ["line 1", "after"]
    assert "larger than the 0 MB limit" in docs[0].error and docs[1].text == "fine"


@pytest.mark.parametrize(
    "data, message",
    [
        ('{"id": "a", "text": "b"}\n'.encode("utf-16"), "UTF-16"),
        ('{"id": "a", "text": "b"}\n'.encode("utf-16-le"), "looks like UTF-16"),
        (bytes(range(256)) * 4, "binary"),
    ],
)
def test_a_file_that_is_not_utf8_jsonl_is_refused_as_a_whole(data, message):
    with pytest.raises(JsonlError, match=message.replace("(", r"\(").replace(")", r"\)")):
        list(iter_jsonl_documents(_jsonl([data])))


def test_binary_with_a_zero_in_every_other_byte_is_not_taken_for_utf16(tmp_path):
    from engine.intake import extract_file
    from engine.intake.sniff import utf16_without_bom

    text = "A real UTF-16 note, written by Notepad.\r\n" * 50
    assert utf16_without_bom(text.encode("utf-16-le")) == "utf-16-le"
    assert utf16_without_bom(text.encode("utf-16-be")) == "utf-16-be"
    samples = bytes(b for i in range(4096) for b in ((i * 37) % 256, 0))  # little-endian uint16 < 256
    assert utf16_without_bom(samples) is None
    (tmp_path / "samples.txt").write_bytes(samples)
    (tmp_path / "note.txt").write_bytes(text.encode("utf-16-le"))
    assert extract_file(tmp_path / "samples.txt").error == "not a text file: binary content in a .txt"
    note = extract_file(tmp_path / "note.txt")
    assert note.error is None and note.text.startswith("A real UTF-16 note")


def test_a_docx_that_understates_a_2_gb_member_is_refused_without_inflating_it(tmp_path):
    """Measured in a subprocess: reading the member the way zipfile does peaks at 2 GiB."""
    import subprocess
    import sys

    import fixtures_docs as fx

    path = tmp_path / "liar.docx"
    path.write_bytes(fx.make_lying_docx(megabytes=2048, declared=1000))
    assert path.stat().st_size < 3 * 2**20
    script = (
        "import json, sys\n"
        "from engine.intake import extract_file\n"
        "r = extract_file(sys.argv[1])\n"
        # VmHWM is this process's own peak; ru_maxrss would carry the parent's across exec
        "hwm = [int(line.split()[1]) for line in open('/proc/self/status') if line.startswith('VmHWM:')][0]\n"
        "print(json.dumps([r.error, hwm // 1024]))\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    error, peak_mib = json.loads(done.stdout)
    assert "inflates past its declared 1,000 bytes" in error and "zip bomb" in error
    assert peak_mib < 512


def test_a_honest_docx_still_reads_and_a_lying_small_one_is_refused_in_process():
    import fixtures_docs as fx

    from engine.intake import extract_bytes

    assert extract_bytes(fx.make_docx(), "a.docx").error is None
    refused = extract_bytes(fx.make_lying_docx(megabytes=3, declared=10), "b.docx")
    assert "zip bomb" in refused.error and refused.text == ""


def test_a_16_gb_sparse_file_gets_its_row_without_being_hashed(tmp_path):
    from engine.intake import load_documents

    for name in ("huge.txt", "huge.pdf"):
        with open(tmp_path / name, "wb") as fh:
            fh.truncate(16 * 2**30)  # sparse: no disk used
    text, pdf = load_documents([tmp_path / "huge.txt", tmp_path / "huge.pdf"])
    assert text.error == "not a text file: binary content in a .txt"
    assert pdf.error == "PDF is 16,384 MB, larger than the 256 MB limit; refusing"
    for doc in (text, pdf):
        assert "sha256" not in doc.meta and doc.meta["bytes"] == 16 * 2**30


def test_the_api_reads_only_the_budgeted_tokens_and_normalises_text_given_directly(tiny_model_dir):
    from engine import Classifier

    clf = Classifier.load(tiny_model_dir, max_tokens=64)
    long = Document(id="long", text="Invoices are due in thirty days. " * 100)
    (budgeted,) = clf.classify("Is it about money?", [long])
    assert budgeted.error is None and budgeted.windows >= 1
    kept = budgeted.window_span[1] if budgeted.windows == 1 else None
    assert "budget of 64 tokens" in budgeted.warnings[0] and long.warnings == []  # the note is the verdict's
    if kept is not None:  # the same verdict as the text the budget kept, given whole
        (prefix,) = Classifier.load(tiny_model_dir).classify("Is it about money?", [long.text[:kept]])
        assert abs(prefix.raw_margin - budgeted.raw_margin) < 1e-4
    (odd,) = clf.classify("Is it about money?", ["pay \ud800 now"])  # a lone surrogate, given directly
    assert odd.error is None and odd.verdict != "error"


@pytest.mark.parametrize("where", [0, 1, 2000])
def test_a_nul_byte_costs_its_line_wherever_it_is(where):
    """Line by line, not by the first 64 KB: the same bad line is one error row at any position."""
    lines = [json.dumps({"id": f"a{i}", "text": f"good {i}"}).encode() + b"\n" for i in range(2001)]
    lines[where] = b'{"id": "bad", "text": "x\x00y"}\n'
    docs = list(iter_jsonl_documents(_jsonl(lines)))
    assert len(docs) == 2001 and [d.id for d in docs if d.error] == [f"line {where + 1}"]
    assert "NUL" in docs[where].error
