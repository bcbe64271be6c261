"""Everything a command line can get wrong, checked before the model loads (a model takes
seconds to load; a typo in `--output` must not cost them, nor fail after the scoring).

Each problem is a :class:`UsageError`: one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import math
import re
import tempfile
from pathlib import Path
from typing import Optional

# A question is a sentence; a long rubric belongs in --instructions. 2,000 characters are about
# 500 tokens, a quarter of the smallest context we support.
MAX_QUESTION_CHARS = 2000
MIN_MAX_TOKENS = 64
MAX_DELIBERATE_TOKENS = 512  # reasoning a small model writes past this is rambling, and costs seconds a document
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


class UsageError(Exception):
    """Bad arguments or input the user must fix (exit status 2)."""


def check_question(question: str) -> str:
    """The question stripped, or a UsageError saying what is wrong with it."""
    text = question.strip()
    if not text:
        raise UsageError("--question must not be empty")
    if _SURROGATE.search(text):
        raise UsageError("--question is not valid UTF-8 text (check the terminal's encoding)")
    if _CONTROL.search(text):
        raise UsageError("--question contains control characters")
    if len(text) > MAX_QUESTION_CHARS:
        raise UsageError(
            f"--question is {len(text):,} characters; the limit is {MAX_QUESTION_CHARS:,} "
            "(put long guidance in --instructions)"
        )
    return text


def check_readable(path: str, what: str) -> None:
    """A file we are going to read: present, a file, readable."""
    if path == "-":
        return
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except IsADirectoryError:
        raise UsageError(f"{what} {path} is a folder, not a file") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None


def check_output(path: str) -> None:
    """An output file we are going to write: not a folder, in a folder that exists, writable.

    Checked by opening it for appending (so nothing is lost); a file created by the check alone
    is removed again."""
    target = Path(path)
    if target.is_dir():
        raise UsageError(f"--output {path} is a folder; give a file name")
    parent = target.parent
    if not parent.is_dir():
        raise UsageError(f"--output {path}: the folder {parent} does not exist")
    existed = target.exists()
    try:
        with open(target, "ab"):
            pass
    except OSError as exc:
        raise UsageError(f"cannot write --output {path}: {exc.strerror or exc}") from None
    if not existed:
        try:
            target.unlink()
        except OSError:
            pass


def check_writable_folder(folder: Path, what: str) -> None:
    """A folder we are going to save into: creatable and writable (tried, not guessed)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise UsageError(f"cannot save {what} in {folder}: {exc.strerror or exc} (set VERDICT_DATA_DIR)") from None


def check_number(value: Optional[float], name: str, low: float, high: float = math.inf) -> None:
    if value is not None and not (math.isfinite(value) and low <= value <= high):
        bound = f"at least {low:g}" if high == math.inf else f"between {low:g} and {high:g}"
        raise UsageError(f"{name} must be {bound}")


def check_classify_args(args: argparse.Namespace) -> None:
    """All of `verdict classify`'s arguments, files and folders, before any model is loaded;
    replaces ``args.question`` with the stripped questions."""
    if not args.paths and not args.jsonl_in and not getattr(args, "table_in", None):
        raise UsageError("nothing to classify: give PATHs, '-' for stdin, --jsonl-in FILE or --table-in FILE")
    args.question = [check_question(q) for q in args.question]
    if getattr(args, "wide", False) and args.format not in (None, "csv"):
        raise UsageError(f"--wide writes CSV; it can't be combined with --format {args.format}")
    if [args.jsonl_in, *args.paths].count("-") > 1:
        raise UsageError("standard input ('-') can be read only once")
    check_number(args.uncertain_band, "--uncertain-band", 0.0)
    check_number(args.mass_floor, "--mass-floor", 0.0, 1.0)
    check_number(getattr(args, "target_precision", None), "--target-precision", 0.51, 0.999)
    if args.uncertain_band is not None and getattr(args, "decisions", "row") == "batch":
        raise UsageError("--uncertain-band decides each row alone: give it with --decisions row (batch decisions "
                         "call what reaches --target-precision)")
    check_number(getattr(args, "suggest", None), "--suggest", 0, 1000)
    if getattr(args, "max_tokens", None) is not None and args.max_tokens < MIN_MAX_TOKENS:
        raise UsageError(f"--max-tokens must be at least {MIN_MAX_TOKENS}")
    if args.jsonl_in:
        check_readable(args.jsonl_in, "--jsonl-in")
        if args.jsonl_in != "-":
            _check_jsonl_head(args.jsonl_in)
    check_table_args(args)
    if args.labels:
        check_readable(args.labels, "--labels")
        from engine.folders import data_dir

        check_writable_folder(data_dir(), "calibrators")
    if getattr(args, "deliberate", 0):
        check_number(args.deliberate, "--deliberate", 0, MAX_DELIBERATE_TOKENS)
        if getattr(args, "backend", None):
            raise UsageError("--deliberate needs a model loaded here: an inference server (--backend) only scores")
    if getattr(args, "examples", None):
        check_readable(args.examples, "--examples")
    if args.instructions and args.instructions.startswith("@"):
        check_readable(args.instructions[1:], "--instructions")
    if args.output:
        check_output(args.output)
    if getattr(args, "resume", None):
        from engine.cli.resume import check_resume

        check_resume(args.resume, args.format, getattr(args, "wide", False), args.output)
        check_output(args.resume)
    if getattr(args, "backend", None):
        check_number(args.concurrency, "--concurrency", 1)
        check_number(args.timeout, "--timeout", 0.001)
        check_number(args.retries, "--retries", 0)
        check_number(args.backoff, "--backoff", 0.0)


def check_table_args(args: argparse.Namespace) -> None:
    """--table-in and its options: the table opened (``args.table``), its columns and sheet
    there; --wide with a table writes the table back, so the table is the only input."""
    args.table = None
    table_in = getattr(args, "table_in", None)
    if not table_in:
        for option in ("text_column", "id_column", "sheet"):
            if getattr(args, option, None):
                raise UsageError(f"--{option.replace('_', '-')} names a column or sheet of --table-in FILE; "
                                 "give --table-in too")
        if getattr(args, "wide", False) and (args.output or "").lower().endswith(".xlsx"):
            raise UsageError("--wide writes a workbook (.xlsx) only with --table-in; give --output FILE.csv")
        return
    if not args.text_column:
        raise UsageError(f"--table-in {table_in}: name the column that holds the text with --text-column NAME")
    from engine.intake.table import TableError, open_table

    try:
        args.table = open_table(table_in, sheet=args.sheet)
        for name in args.text_column:
            args.table.column(name, "--text-column")
        if args.id_column:
            args.table.column(args.id_column, "--id-column")
    except TableError as exc:
        raise UsageError(str(exc)) from None
    if getattr(args, "wide", False) and (args.paths or args.jsonl_in):
        raise UsageError("--wide with --table-in writes the table back with verdict columns: "
                         "give no other input (PATHs, --jsonl-in)")


def _check_jsonl_head(path: str) -> None:
    from engine.intake.jsonl import JsonlError, check_jsonl_head

    with open(path, "rb") as fh:
        head = fh.read(64 * 1024)
    try:
        check_jsonl_head(head)
    except JsonlError as exc:
        raise UsageError(f"--jsonl-in {path}: {exc}") from None


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit 2), as the contract says."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")
