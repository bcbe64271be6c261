"""`--resume FILE` through the real command line: the file is a log of rows keyed by (position in
the input, question) that a run only ever appends to. Scored on the tests' own server
(`fakeserver`), whose answers are fixed by the prompt, so a resumed file can be compared with an
uninterrupted run row by row.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from fakeserver import FakeServer
from test_remote import QUESTIONS, run_cli
from tinymodels import vocab_size


@pytest.fixture(scope="module")
def server():
    with FakeServer("vllm", vocab_size()) as running:
        yield running


def write_inputs(path: Path, ids: list[str]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for n, doc_id in enumerate(ids):
            fh.write(json.dumps({"id": doc_id, "text": f"Document {n} says café, 日本語 and Yes or No."},
                                ensure_ascii=False) + "\n")


def classify(server, model, docs: Path, questions: list[str], *extra):
    args = ["classify", "--jsonl-in", docs, "--backend", server.url, "--model", model, *extra]
    for question in questions:
        args += ["-q", question]
    return run_cli(*args, timeout=300)


def keys(path: Path) -> list[tuple]:
    return [(r["id"], r["question"], r["raw_margin"]) for r in map(json.loads, path.read_text("utf-8").splitlines())]


def test_another_question_is_added_and_the_first_questions_rows_stay(server, tiny_model_dir, tmp_path):
    docs, out = tmp_path / "docs.jsonl", tmp_path / "rows.jsonl"
    write_inputs(docs, [f"d{i}" for i in range(10)])
    first = classify(server, tiny_model_dir, docs, [QUESTIONS[0]], "--resume", out)
    assert first.returncode == 0, first.stderr[-2000:]
    before = out.read_bytes()
    second = classify(server, tiny_model_dir, docs, [QUESTIONS[1]], "--resume", out)
    assert second.returncode == 0, second.stderr[-2000:]
    assert out.read_bytes().startswith(before)
    got = [(doc_id, question) for doc_id, question, _ in keys(out)]
    assert got == [(f"d{i}", QUESTIONS[0]) for i in range(10)] + [(f"d{i}", QUESTIONS[1]) for i in range(10)]
    both = out.read_bytes()
    third = classify(server, tiny_model_dir, docs, QUESTIONS, "--resume", out)
    assert third.returncode == 0 and out.read_bytes() == both  # nothing left to do


def test_duplicate_ids_are_kept_apart_across_a_cut(server, tiny_model_dir, tmp_path):
    docs, reference, out = tmp_path / "docs.jsonl", tmp_path / "reference.jsonl", tmp_path / "rows.jsonl"
    write_inputs(docs, [f"dup-{i % 150}" for i in range(300)])  # every id twice, 150 documents apart
    whole = classify(server, tiny_model_dir, docs, [QUESTIONS[0]], "-o", reference)
    assert whole.returncode == 0, whole.stderr[-2000:]
    lines = reference.read_text("utf-8").splitlines(keepends=True)
    out.write_text("".join(lines[:150]), encoding="utf-8")  # killed after 150 rows
    resumed = classify(server, tiny_model_dir, docs, [QUESTIONS[0]], "--resume", out)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert keys(out) == keys(reference) and len(keys(out)) == 300


@pytest.mark.parametrize("cut", ["inside a character", "mid-line", "before the newline"])
def test_a_last_line_cut_anywhere_is_dropped_and_redone(cut, server, tiny_model_dir, tmp_path):
    docs, reference, out = tmp_path / "docs.jsonl", tmp_path / "reference.jsonl", tmp_path / "rows.jsonl"
    write_inputs(docs, [f"café-{i}" for i in range(12)])
    whole = classify(server, tiny_model_dir, docs, QUESTIONS, "-o", reference)
    assert whole.returncode == 0, whole.stderr[-2000:]
    lines = reference.read_bytes().splitlines(keepends=True)
    last = lines[7]
    if cut == "inside a character":
        at = last.index("é".encode()) + 1  # between the two bytes of "é"
    elif cut == "mid-line":
        at = len(last) // 2
    else:
        at = len(last) - 1  # a whole row without its newline
    out.write_bytes(b"".join(lines[:7]) + last[:at])
    resumed = classify(server, tiny_model_dir, docs, QUESTIONS, "--resume", out)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert keys(out) == keys(reference)


def test_lines_that_are_not_rows_of_this_run_are_never_removed(server, tiny_model_dir, tmp_path):
    docs, out = tmp_path / "docs.jsonl", tmp_path / "rows.jsonl"
    write_inputs(docs, ["a", "b", "c"])
    mine = ('{"id": "elsewhere", "question": "Another run?", "verdict": "yes", "error": null}\n'
            "a note the user wrote\n"
            '{"id": "a", "question": "%s", "verdict": "error", "raw_margin": null, "error": "earlier"}\n' % QUESTIONS[0])
    out.write_text(mine, encoding="utf-8")
    resumed = classify(server, tiny_model_dir, docs, [QUESTIONS[0]], "--resume", out)
    text = out.read_text("utf-8")
    assert resumed.returncode == 1, resumed.stderr[-2000:]  # the error row already there counts
    assert text.startswith(mine)
    assert [json.loads(line)["id"] for line in text.splitlines()[3:]] == ["b", "c"]


@pytest.mark.parametrize("name, content, extra", [
    ("rows.csv", "id,path,question,verdict\na,,Q,yes\n", []),
    ("rows.jsonl", "id,path,question,verdict\na,,Q,yes\n", []),
    ("new.csv", None, []),
    ("rows.jsonl", None, ["--format", "csv"]),
    ("rows.jsonl", None, ["--format", "table"]),
])
def test_a_file_that_is_not_jsonl_rows_is_refused_before_anything_is_written(name, content, extra, tiny_model_dir,
                                                                            tmp_path):
    docs, out = tmp_path / "docs.jsonl", tmp_path / name
    write_inputs(docs, ["a"])
    if content is not None:
        out.write_text(content, encoding="utf-8")
    done = run_cli("classify", "-q", QUESTIONS[0], "--jsonl-in", docs, "--model", tiny_model_dir,
                   "--resume", out, *extra)
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and "--resume" in done.stderr, done.stderr
    if content is None:
        assert not out.exists()
    else:
        assert out.read_text(encoding="utf-8") == content
