"""The row contract, shared by the command line and the app: the fields of one verdict row
(`verdict_row`), the wide layout of one row per document (`wide_row`, `verdict_cells`), the
writer of JSONL, CSV and an aligned table (`RowWriter`), and spreadsheet escaping of cells
(`spreadsheet_safe`), so a file written by `verdict classify` and one exported from the window
share fields, rounding and escaping."""
from __future__ import annotations

import csv
import json
import math
import unicodedata
from typing import Any, Iterable, Iterator, Optional, Sequence, TextIO

from engine.types import Document, Verdict

ROW_FIELDS = ["id", "path", "question", "verdict", "margin", "probability", "label_mass", "tokens", "seconds", "error"]
EXTRA_FIELDS = ["raw_margin", "score", "windows", "window_index", "window_start", "window_end"]


# --- one row ------------------------------------------------------------------------------------
def verdict_row(doc: Document, v: Verdict) -> dict[str, Any]:
    """One output row: the contract fields, extra detail, then pass-through keys of the input."""

    def num(x: float) -> Optional[float]:
        return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), 6)

    row: dict[str, Any] = {
        "id": doc.id,
        "path": doc.source,
        "question": v.question,
        "verdict": v.verdict,
        "margin": num(v.margin),
        "probability": num(v.probability),
        "label_mass": num(v.label_mass),
        "tokens": v.tokens,
        "seconds": round(v.seconds, 4),
        "error": v.error,
        "raw_margin": num(v.raw_margin),
        "score": num(v.score),
        "windows": v.windows,
        "window_index": v.window_index,
        "window_start": v.window_span[0] if v.window_span else None,
        "window_end": v.window_span[1] if v.window_span else None,
    }
    if v.reasoning is not None:
        row["reasoning"] = v.reasoning
    warnings = list(doc.warnings) + [w for w in v.warnings if w not in doc.warnings]
    if warnings:
        row["warnings"] = warnings
    for key, value in doc.meta.get("passthrough", {}).items():
        row.setdefault(key, value)
    return row


# A spreadsheet runs a cell that starts with one of these as a formula (OWASP, CSV injection).
FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """`value` as a spreadsheet shows it, never runs it: a text cell that starts like a formula
    gets a leading apostrophe (OWASP's CSV-injection advice). Numbers stay numbers, and so does
    a lone "-" (standard input's id): one character is no formula."""
    if isinstance(value, str) and len(value) > 1 and value.startswith(FORMULA_LEADS):
        return "'" + value
    return value


# --- the wide layout: one row per document --------------------------------------------------
def wide_header(questions: list[str]) -> list[str]:
    """The wide layout's header: name, path, then per question its verdict, probability and label."""
    return [spreadsheet_safe(h) for h in ["name", "path"]] + verdict_header(questions)


def verdict_header(questions: list[str]) -> list[str]:
    """Per question the names of its verdict, probability and label columns, spreadsheet-safe."""
    header = []
    for question in questions:
        header += [f"{question} — verdict", f"{question} — probability", f"{question} — label"]
    return [spreadsheet_safe(h) for h in header]


def wide_row(name: str, path: Optional[str], questions: list[str], verdicts: dict[str, Verdict],
             labels: dict[str, str], error: Optional[str] = None) -> list[Any]:
    """One document in the wide layout: its name and path, then its :func:`verdict_cells`."""
    return [spreadsheet_safe(name), spreadsheet_safe(path or "")] + verdict_cells(questions, verdicts, labels, error)


def verdict_cells(questions: list[str], verdicts: dict[str, Verdict], labels: dict[str, str],
                  error: Optional[str] = None) -> list[Any]:
    """Per question the verdict ('error' when the document or the verdict failed, '' when there
    is none yet), P(yes) rounded to 4 places, and the user's label ('yes', 'no' or '')."""
    line: list[Any] = []
    for question in questions:
        v = verdicts.get(question)
        kind = "error" if error or (v and v.error) else v.verdict if v else ""
        p = v.probability if v and not v.error else math.nan
        line += [kind, "" if math.isnan(p) else round(p, 4), labels.get(question, "")]
    return line


class RowWriter:
    """Writes rows as JSONL, CSV or an aligned table. CSV text cells are `spreadsheet_safe`;
    `more_fields` are CSV columns after the contract's (the app's export adds the user's label)."""

    def __init__(self, out: TextIO, fmt: str, more_fields: Sequence[str] = ()) -> None:
        self.out, self.fmt = out, fmt
        self._csv: Optional[csv.DictWriter] = None
        self._table: Optional[list[dict[str, Any]]] = []
        if fmt == "csv":  # the header even when no row follows
            self._csv = csv.DictWriter(out, fieldnames=[*ROW_FIELDS, *EXTRA_FIELDS, *more_fields], extrasaction="ignore")
            self._csv.writeheader()

    def write(self, row: dict[str, Any]) -> None:
        if self.fmt == "jsonl":
            self.out.write(json.dumps(row, ensure_ascii=False) + "\n")
            self.out.flush()
        elif self._csv is not None:
            self._csv.writerow({key: spreadsheet_safe(value) for key, value in row.items()})
            self.out.flush()
        else:
            self._table.append(row)

    def close(self) -> None:
        """Write what is held back (the table); a second call writes nothing."""
        if self.fmt == "table" and self._table is not None:
            rows, self._table = self._table, None
            self.out.write(format_table(rows))
            self.out.flush()


def format_table(rows: list[dict[str, Any]]) -> str:
    """Rows as an aligned text table for people."""
    cols = ["id", "question", "verdict", "probability", "margin", "tokens", "seconds", "error"]
    if len({r["question"] for r in rows}) <= 1:
        cols.remove("question")
    cells = [[_cell(r.get(c), c) for c in cols] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines) + "\n"


# Characters that must not reach a terminal raw from a file name, question or reason: controls
# (an ESC starts an escape sequence), format characters (bidi controls such as U+061C and
# U+202E, zero-width ones) and line and paragraph separators (U+2028, U+2029 break a row).
ESCAPED_CATEGORIES = frozenset(("Cc", "Cf", "Zl", "Zp"))


def printable(text: str) -> str:
    """``text`` with every character of Unicode categories Cc, Cf, Zl and Zp written as its
    escape (``\\x1b``, ``\\u2028``)."""
    if text.isprintable():  # fast path: no character of those categories (nor others) in it
        return text
    return "".join(
        ch.encode("unicode_escape").decode("ascii") if unicodedata.category(ch) in ESCAPED_CATEGORIES else ch
        for ch in text
    )


def _cell(value: Any, column: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        value = printable(value)
    if column in ("id", "question", "error"):
        text = str(value)
        if len(text) <= 60:
            return text
        return "…" + text[-59:] if column == "id" else text[:59] + "…"  # a path's end names it
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


class OutputError(Exception):
    """Rows could not be written (disk full, permission lost, the reader went away); the message
    names the file and the reason."""


def verdicts_by_document(rows: Iterable[Verdict], progress: Optional[Any] = None
                         ) -> Iterator[tuple[int, dict[str, Verdict]]]:
    """Rows in input order, a document at a time: (document index, its verdicts by question);
    each row is a `progress` step."""
    current: list[Verdict] = []
    for v in rows:
        if current and v.document_index != current[0].document_index:
            yield current[0].document_index, {c.question: c for c in current}
            current = []
        current.append(v)
        if progress is not None:
            progress.step()
    if current:
        yield current[0].document_index, {c.question: c for c in current}
