"""Issue 16 through the real command line: one bad document never costs the batch, and every
bad argument is refused in one line (exit 2) before the model loads."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest


def run_cli(*args, stdin: bytes = b"", env=None, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", *map(str, args)], input=stdin, capture_output=True, timeout=300,
        env=env, **kwargs,
    )


def rows_of(done) -> list[dict]:
    return [json.loads(line) for line in done.stdout.decode("utf-8").splitlines()]


def test_fifty_good_lines_and_a_lone_surrogate_give_fifty_one_rows(tiny_model_dir, tmp_path):
    path = tmp_path / "docs.jsonl"
    good = "".join(json.dumps({"id": f"a{i}", "text": f"Good line number {i}."}) + "\n" for i in range(50))
    path.write_text(good + '{"id": "b", "text": "x \\ud800 y"}\n', encoding="utf-8")
    done = run_cli("classify", "-q", "Is it fine?", "--model", tiny_model_dir, "--jsonl-in", path)
    assert done.returncode == 0, done.stderr
    rows = rows_of(done)
    assert len(rows) == 51 and all(r["error"] is None for r in rows)
    assert rows[-1]["id"] == "b" and "lone surrogates" in rows[-1]["warnings"][0]


def test_stdin_that_is_not_utf8_is_decoded_with_a_warning(tiny_model_dir):
    done = run_cli("classify", "-q", "Is it fine?", "--model", tiny_model_dir, "-", stdin=b"Caf\xe9\n")
    assert done.returncode == 0, done.stderr
    (row,) = rows_of(done)
    assert row["error"] is None and row["window_end"] == 4  # "Café": one character for \xe9
    assert row["warnings"] == ["not valid UTF-8; decoded as cp1252 (guessed)"]


def test_a_jsonl_byte_order_mark_keeps_line_one(tiny_model_dir, tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"id": "first", "text": "one"}\n{"id": "second", "text": "two"}\n')
    done = run_cli("classify", "-q", "Is it fine?", "--model", tiny_model_dir, "--jsonl-in", path)
    assert done.returncode == 0, done.stderr
    assert [r["id"] for r in rows_of(done)] == ["first", "second"]
