"""`--resume FILE`: the rows file as a log that a later run continues.

A row belongs to one document of the input and one question. Rows name their document by its
`id`, and rows are written in input order, so the k-th row with an id and a question belongs to
the k-th document with that id: two documents with the same id are told apart. A run scores only
the (document, question) pairs that have no row yet and appends their rows.

Nothing the user has is rewritten: rows of other questions, of other inputs, and lines that are
not rows stay as they are. The one exception is a last line cut off by a kill (no newline and
not a whole JSON object, wherever the cut fell, even inside a UTF-8 character): it is no row,
so it is cut away and its row redone. Only JSONL can be continued: a file that holds anything
else (a CSV, a table) is refused before anything is written.
"""
from __future__ import annotations

import json
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from engine.cli.checks import UsageError
from engine.types import Document

NOT_JSONL_SUFFIXES = (".csv", ".tsv")


def check_resume(path: str, fmt: Optional[str], wide: bool, output: Optional[str]) -> None:
    """Refuse (UsageError) a --resume that could not continue FILE as JSONL rows, before any
    model loads and before anything is written."""
    if (fmt or "jsonl") != "jsonl" or wide:
        raise UsageError("--resume continues JSONL rows: it can't be combined with --format csv, "
                         "--format table or --wide")
    if output and Path(output).resolve() != Path(path).resolve():
        raise UsageError("--resume FILE writes to FILE: drop --output or give the same file")
    if Path(path).suffix.lower() in NOT_JSONL_SUFFIXES:
        raise UsageError(f"--resume {path}: rows are continued as JSONL, and the name says "
                         f"{Path(path).suffix.lower()[1:].upper()}; give a .jsonl file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    start = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if start and not start.startswith(b"{"):
        raise UsageError(f"--resume {path}: it does not hold JSONL rows (its first line does not start "
                         "with '{'); --resume only continues what `verdict classify` wrote as JSONL")


@dataclass
class ResumePlan:
    """What a resumed run still has to do."""

    documents: list[Document]  # those with a row still missing, in input order
    questions: list[str]  # the questions missing for at least one of them, in the order given
    failed: bool = False  # a row already there for this input is an error
    present: Counter = field(default_factory=Counter)  # (index in `documents`, question) -> rows there

    def wanted(self, index: int, question: str) -> bool:
        """Whether a new row for `documents[index]` and `question` is to be written; False when
        the file has it already (each such call uses up one of those rows)."""
        key = (index, question)
        if self.present[key] > 0:
            self.present[key] -= 1
            return False
        return True


def plan_resume(path: str, docs: list[Document], questions: list[str]) -> ResumePlan:
    """Read the rows in `path` (dropping a cut-off last line) and match them to the input."""
    available: dict[tuple[str, Optional[str]], deque] = {}
    for doc_id, question, error in read_rows(Path(path)):
        available.setdefault((doc_id, question), deque()).append(error)
    wanted = Counter(questions)
    plan = ResumePlan([], [])
    missing: set[str] = set()
    for doc in docs:
        have: dict[str, int] = {}
        for question, n in wanted.items():
            queue = available.get((doc.id, question))
            have[question] = 0
            while queue and have[question] < n:
                plan.failed |= queue.popleft()
                have[question] += 1
        short = {q for q, n in wanted.items() if have[q] < n}
        if short:
            index = len(plan.documents)
            plan.documents.append(doc)
            plan.present.update({(index, q): k for q, k in have.items() if k})
            missing |= short
    plan.questions = [q for q in questions if q in missing]
    return plan


def read_rows(path: Path) -> list[tuple[str, Optional[str], bool]]:
    """(id, question, is an error) of every row in the file, in order. A last line without its
    newline is cut away unless it is a whole row (which then gets its newline)."""
    rows = []
    tail: Optional[tuple[int, bool]] = None  # (offset of a last line without newline, is a row)
    try:
        with open(path, "r+b") as fh:
            offset = 0
            for line in fh:
                row = _row(line)
                if row is not None:
                    rows.append(row)
                if not line.endswith(b"\n"):
                    tail = (offset, row is not None)
                offset += len(line)
            if tail is not None:
                if tail[1]:
                    fh.write(b"\n")
                else:
                    fh.truncate(tail[0])
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise UsageError(f"cannot continue {path}: {exc.strerror or exc}") from None
    return rows


def _row(line: bytes) -> Optional[tuple[str, Optional[str], bool]]:
    try:
        row = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(row, dict) or not isinstance(row.get("id"), str):
        return None
    question = row.get("question")
    return row["id"], question if isinstance(question, str) else None, bool(row.get("error"))
