"""Robustness through the real command line: one bad document never costs the batch, and every
bad argument is refused in one line (exit 2) before the model loads."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest


def run_cli(*args, stdin: bytes = b"", env=None, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", *(a if isinstance(a, bytes) else str(a) for a in args)], input=stdin, capture_output=True, timeout=300,
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


@pytest.fixture
def broken_model(tmp_path):
    """A model file that fails to load: a check that ran after loading would report it instead."""
    path = tmp_path / "broken.gguf"
    path.write_bytes(b"GGUF" + b"\0" * 60)
    return path


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--output", "{tmp}/no/such/folder/out.jsonl", "-"], "does not exist"),
        (["--output", "{tmp}", "-"], "is a folder; give a file name"),
        (["--jsonl-in", "{utf16}"], "looks like UTF-16"),
        (["-q", "x" * 100_000, "-"], "--question is 100,000 characters; the limit is 2,000"),
        (["-q", b"\xff", "-"], "--question is not valid UTF-8"),
        (["-q", "a\x1b[2Jb", "-"], "--question contains control characters"),
        (["--max-tokens", "0", "-"], "--max-tokens must be at least 64"),
        (["--uncertain-band", "nan", "-"], "--uncertain-band must be at least 0"),
        (["--mass-floor", "2", "-"], "--mass-floor must be between 0 and 1"),
        (["--labels", "{tmp}/missing.jsonl", "-"], "cannot read {tmp}/missing.jsonl"),
        (["--instructions", "@{tmp}", "-"], "is a folder, not a file"),
        (["--no-such-option", "-"], "unrecognized arguments: --no-such-option"),
        (["-", "-"], "standard input ('-') can be read only once"),
    ],
)
def test_each_bad_argument_is_one_line_and_exit_2_before_the_model_loads(extra, message, tmp_path, broken_model):
    utf16 = tmp_path / "docs.jsonl"
    utf16.write_bytes('{"id": "a", "text": "b"}\n'.encode("utf-16-le"))

    def fill(arg):
        return arg.format(tmp=tmp_path, utf16=utf16) if isinstance(arg, str) else arg

    args = ["classify", "-q", "Is it fine?", "--model", broken_model, *map(fill, extra)]
    done = run_cli(*args, stdin=b"some text")
    stderr = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 2, stderr
    assert fill(message) in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert done.stdout == b""


def test_an_output_in_a_read_only_folder_is_refused_before_the_model_loads(tmp_path, broken_model):
    from readonly import read_only

    folder = tmp_path / "results"
    folder.mkdir()
    with read_only(folder) as wrap:
        argv = [sys.executable, "-m", "engine.cli", "classify", "-q", "Is it fine?", "--model", broken_model,
                "--output", folder / "out.jsonl", "-"]
        done = subprocess.run(wrap(argv), input=b"text", capture_output=True, timeout=300)
    stderr = done.stderr.decode()
    assert done.returncode == 2 and "cannot write --output" in stderr, stderr
    assert len(stderr.strip().splitlines()) == 1 and not (folder / "out.jsonl").exists()


def test_labels_with_a_data_folder_that_cannot_be_created_are_refused(tmp_path, broken_model):
    import os

    (tmp_path / "a-file").write_text("not a folder")
    labels = tmp_path / "labels.jsonl"
    labels.write_text('{"id": "a", "label": "yes"}\n')
    env = {**os.environ, "VERDICT_DATA_DIR": str(tmp_path / "a-file" / "data")}
    done = run_cli("classify", "-q", "Is it fine?", "--model", broken_model, "--labels", labels, "-", stdin=b"x", env=env)
    stderr = done.stderr.decode()
    assert done.returncode == 2 and "cannot save calibrators in" in stderr and len(stderr.strip().splitlines()) == 1


def test_table_output_escapes_terminal_control_sequences_in_names(tiny_model_dir, tmp_path):
    folder = tmp_path / "inbox"
    folder.mkdir()
    (folder / "evil\x1b]0;owned\x07\x1b[2J.txt").write_text("A plain document.")
    done = run_cli("classify", "-q", "Is it fine?", "--model", tiny_model_dir, "--format", "table", folder)
    out = done.stdout.decode()
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in out and "\x07" not in out
    assert "evil\\x1b]0;owned\\x07\\x1b[2J.txt" in out


def test_ctrl_c_prints_the_table_rows_done_so_far(tiny_model_dir, tmp_path):
    """The progress bar (on a terminal) says when rows exist; SIGINT then must not lose them."""
    import os
    import pty
    import re
    import signal
    import threading

    n = 3000
    path = tmp_path / "many.jsonl"
    path.write_text("".join(json.dumps({"id": f"d{i}", "text": f"Document {i}. " * 40}) + "\n" for i in range(n)))
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "classify", "-q", "Is it fine?", "--model", str(tiny_model_dir),
         "--format", "table", "--jsonl-in", str(path)],
        stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL,
        # A suite started in the background (`make test &`) ignores SIGINT, and a Python child
        # that starts with it ignored never turns it into KeyboardInterrupt: give it the default.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    os.close(slave)
    seen = b""
    try:
        while not re.search(rb"[ |][1-9]\d*/%d \[" % n, seen):  # the first row is out (tqdm: "| 12/3000 [")
            chunk = os.read(master, 4096)
            assert chunk, "the CLI ended before its first row"
            seen += chunk
        done_before = int(re.findall(rb"[ |](\d+)/%d \[" % n, seen)[-1])
        # Keep reading the terminal while the CLI winds down: a full terminal buffer would block
        # its last progress line and message, and with them the exit communicate() waits for.
        rest: list[bytes] = []

        def drain() -> None:
            while True:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the CLI closed its end
                    return
                if not chunk:
                    return
                rest.append(chunk)

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=300)
        reader.join(timeout=60)
        seen += b"".join(rest)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    assert proc.returncode == 130 and b"verdict: interrupted" in seen, (proc.returncode, seen[-300:], len(out))
    header, *lines = out.decode().splitlines()
    assert header.split()[:2] == ["id", "verdict"]
    assert done_before <= len(lines) < n and lines[0].split()[0] == "d0"


PEAK_RSS = """
import json, resource, subprocess, sys
done = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
print(json.dumps({"rc": done.returncode, "stdout": done.stdout.decode(), "stderr": done.stderr.decode()[-2000:],
                  "peak_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024}))
"""


def run_measured(*args) -> dict:
    """Run the CLI as the only child of a fresh process, which reports the child's peak RSS."""
    cmd = [sys.executable, "-c", PEAK_RSS, sys.executable, "-m", "engine.cli", *map(str, args)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_50_mb_jsonl_line_stays_under_2_gib_and_gives_its_row(tiny_model_dir, tmp_path):
    path = tmp_path / "huge.jsonl"
    words = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * (50 * 2**20 // 57)
    path.write_text(json.dumps({"id": "small", "text": "fine"}) + "\n"
                    + json.dumps({"id": "huge", "text": words}) + "\n", encoding="utf-8")
    assert path.stat().st_size > 50 * 2**20
    del words
    result = run_measured("classify", "-q", "Is it fine?", "--model", tiny_model_dir, "--jsonl-in", path)
    assert result["rc"] == 0, result["stderr"]
    small, huge = map(json.loads, result["stdout"].splitlines())
    assert huge["id"] == "huge" and huge["error"] is None and huge["verdict"] in ("yes", "no", "uncertain")
    assert any("text truncated" in w for w in huge["warnings"])
    assert any("budget of 16,384 tokens" in w for w in huge["warnings"])
    assert result["peak_mib"] < 2048, result["peak_mib"]


def test_max_tokens_reads_a_long_document_up_to_the_budget_with_a_warning(tiny_model_dir, tmp_path):
    path = tmp_path / "long.txt"
    path.write_text("The quarterly report says revenue grew. " * 200)
    done = run_cli("classify", "-q", "Is it fine?", "--model", tiny_model_dir, "--max-tokens", "100", path)
    assert done.returncode == 0, done.stderr
    (row,) = rows_of(done)
    assert row["error"] is None and row["window_end"] < 8000
    assert row["warnings"] == [f"document is longer than the budget of 100 tokens: only its first "
                               f"{row['window_end']:,} of 8,000 characters were read"]


# --- output errors, JSONL lines judged one by one, escapes ---------------------------------------------
def test_a_full_disk_on_output_is_one_line_naming_the_file_and_exit_2(tiny_model_dir, tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps({"id": f"d{i}", "text": f"Document {i}."}) + "\n" for i in range(3)))
    done = run_cli("classify", "-q", "Is it fine?", "--model", tiny_model_dir, "--jsonl-in", path,
                   "--output", "/dev/full")
    stderr = done.stderr.decode()
    assert done.returncode == 2, stderr
    assert stderr.strip().splitlines() == ["verdict: error: cannot write /dev/full: No space left on device"]


def test_a_closed_pipe_on_standard_output_is_one_line_and_exit_2(tiny_model_dir, tmp_path):
    import os

    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps({"id": f"d{i}", "text": f"Document {i}."}) + "\n" for i in range(3)))
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody will read: the first write fails
    try:
        done = subprocess.run([sys.executable, "-m", "engine.cli", "classify", "-q", "Is it fine?", "--model",
                               str(tiny_model_dir), "--jsonl-in", str(path)],
                              stdout=write_end, stderr=subprocess.PIPE, timeout=300)
    finally:
        os.close(write_end)
    stderr = done.stderr.decode()
    assert done.returncode == 2, stderr
    assert stderr.strip().splitlines() == ["verdict: error: cannot write standard output: Broken pipe"]


def test_a_nul_byte_on_line_2_is_one_error_row(tiny_model_dir, tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_bytes(b'{"id": "a", "text": "one"}\n{"id": "b", "text": "t\x00wo"}\n{"id": "c", "text": "three"}\n')
    done = run_cli("classify", "-q", "Is it fine?", "--model", tiny_model_dir, "--jsonl-in", path)
    assert done.returncode == 1, done.stderr
    rows = rows_of(done)
    assert [r["id"] for r in rows] == ["a", "line 2", "c"]
    assert rows[0]["error"] is None and rows[2]["error"] is None
    assert rows[1]["verdict"] == "error" and "NUL" in rows[1]["error"]


def test_table_output_escapes_format_and_separator_characters(tiny_model_dir, tmp_path):
    path = tmp_path / "docs.jsonl"
    names = ["arabic\u061cmark", "line\u2028sep", "para\u2029sep", "rtl\u202eoverride", "zero\u200bwidth"]
    path.write_text("".join(json.dumps({"id": n, "text": "A plain document."}) + "\n" for n in names))
    done = run_cli("classify", "-q", "Is it fine\u2066?", "-q", "Second?", "--model", tiny_model_dir,
                   "--format", "table", "--jsonl-in", path)
    out = done.stdout.decode()
    assert done.returncode == 0, done.stderr
    assert not any(ch in out for ch in "\u061c\u2028\u2029\u202e\u200b\u2066")
    for escaped in ("arabic\\u061cmark", "line\\u2028sep", "para\\u2029sep", "rtl\\u202eoverride",
                    "zero\\u200bwidth", "Is it fine\\u2066?"):
        assert escaped in out
    assert len(out.splitlines()) == 1 + 2 * len(names)  # no row broken over lines
