"""Tables as documents: one row of a CSV, TSV or .xlsx sheet is one document.

:func:`open_table` reads what a table is (its header, and for CSV the encoding, detected as for
text files, and the dialect, sniffed); :meth:`Table.records` streams its rows as they are in the
file, and :func:`iter_table_documents` turns them into documents: the text column(s) become the
text (several are joined, each under its header), the id column or ``name:row N`` the id (N is
the row a spreadsheet shows: the header is row 1), and every other column passes through to the
output, as ``--jsonl-in`` keys do.

One bad row costs one row (``error`` set), never the table: a row with more or fewer cells than
the header, or a field over ``limits.MAX_FIELD_CHARS``. A table that can't be read as a whole
(no header, a sheet or column that isn't there, a damaged workbook) raises :class:`TableError`
before any row, so the command line can refuse it with one line.
"""
from __future__ import annotations

import csv
import datetime
import io
import os
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional, Sequence, Union

from engine.intake import limits
from engine.intake.normalize import normalize_document
from engine.intake.result import tidy
from engine.intake.sniff import looks_binary, magic_kind
from engine.intake.text import detect_encoding
from engine.intake.zipcheck import ZipRefused, check_zip
from engine.types import Document

TABLE_SUFFIXES = (".csv", ".tsv", ".tab", ".xlsx", ".xlsm")
_SAMPLE_BYTES = 1 << 20  # what the encoding is detected from
_DIALECT_CHARS = 64 * 1024  # what the dialect is sniffed from
_DELIMITERS = ",;\t|"

Cell = Any  # str for CSV; str, int, float, bool, datetime or None for a sheet


class TableError(ValueError):
    """The table as a whole can't be read as asked; the message says why, in one line."""


@dataclass(frozen=True)
class CsvFormat:
    """How a CSV file is written, so that rows written back look like the user's."""

    encoding: str
    bom: bool
    delimiter: str
    quotechar: str
    doublequote: bool
    escapechar: Optional[str]
    lineterminator: str
    quoting: int
    warning: Optional[str] = None  # how the encoding was guessed, when it was

    def reader_options(self) -> dict[str, Any]:
        return {"delimiter": self.delimiter, "quotechar": self.quotechar, "doublequote": self.doublequote,
                "escapechar": self.escapechar, "strict": False}

    def writer_options(self) -> dict[str, Any]:
        return {"delimiter": self.delimiter, "quotechar": self.quotechar, "doublequote": self.doublequote,
                "escapechar": self.escapechar, "lineterminator": self.lineterminator, "quoting": self.quoting}


@dataclass
class Record:
    """One row of the table as it is in the file: its row number (header = 1) and its cells, or
    why it could not be read."""

    number: int
    cells: list[Cell] = field(default_factory=list)
    error: Optional[str] = None


@dataclass
class Table:
    """A table opened for reading: its header and, for CSV, its format; ``sheet`` for .xlsx."""

    path: str
    header: list[str]
    csv_format: Optional[CsvFormat] = None
    sheet: Optional[str] = None

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    @property
    def is_workbook(self) -> bool:
        return self.csv_format is None

    def records(self) -> Iterator[Record]:
        """The data rows in file order, read lazily (blank rows left out); a row the reader
        refuses comes with ``error``. Reading twice gives the same rows."""
        if self.csv_format is None:
            yield from _sheet_records(self.path, self.sheet, len(self.header))
        else:
            yield from _csv_records(self.path, self.csv_format, len(self.header))

    def column(self, name: str, option: str) -> int:
        """The position of the column named ``name``; TableError naming the columns there are."""
        if name in self.header:
            return self.header.index(name)
        folded = [h.casefold().strip() for h in self.header]
        if folded.count(name.casefold().strip()) == 1:
            return folded.index(name.casefold().strip())
        shown = ", ".join(repr(h) for h in self.header[:20]) + (" …" if len(self.header) > 20 else "")
        raise TableError(f"{option} {name!r}: {self.name} has no such column; its columns are {shown}")


def is_table_name(path: Union[str, os.PathLike]) -> bool:
    """Whether the name says table: .csv, .tsv, .tab, .xlsx or .xlsm."""
    return os.fspath(path).lower().endswith(TABLE_SUFFIXES)


def open_table(path: Union[str, os.PathLike], sheet: Optional[str] = None) -> Table:
    """Open a CSV/TSV file or an .xlsx workbook (by its content, else its name) and read its
    header; TableError when it can't be read as a table."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            sample = fh.read(_SAMPLE_BYTES)
    except IsADirectoryError:
        raise TableError(f"{path} is a folder, not a table") from None
    except OSError as exc:
        raise TableError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not sample:
        raise TableError(f"{path} is empty: a table needs a header row")
    if magic_kind(sample) == "zip":
        return _open_workbook(path, sheet)
    if path.lower().endswith((".xlsx", ".xlsm")):
        raise TableError(f"{path} is not an .xlsx workbook (its content is not a zip archive)")
    if magic_kind(sample) == "ole":
        raise TableError(f"{path} is a legacy Excel (.xls) or other OLE file; save it as .xlsx or CSV")
    if sheet is not None:
        raise TableError(f"--sheet {sheet!r}: {os.path.basename(path)} is a CSV file, which has no sheets")
    return _open_csv(path, sample)


def iter_table_documents(
    table: Table,
    text_columns: Sequence[str],
    id_column: Optional[str] = None,
    *,
    max_chars: Optional[int] = None,
) -> Iterator[Document]:
    """One document per data row, in order (see the module's docstring). The columns are checked
    first: TableError if one isn't there."""
    if not text_columns:
        raise TableError("name the column that holds the text (--text-column)")
    text_at = [table.column(name, "--text-column") for name in text_columns]
    id_at = table.column(id_column, "--id-column") if id_column else None
    passing = [(i, h) for i, h in enumerate(table.header) if i not in text_at and i != id_at]
    for record in table.records():
        default_id = f"{table.name}:row {record.number}"
        if record.error is not None:
            yield Document(id=default_id, text="", source=table.path, error=record.error, meta={"row": record.number})
            continue
        cells = record.cells
        given_id = _as_text(cells[id_at]).strip() if id_at is not None else ""
        meta = {"passthrough": {h: _passable(cells[i]) for i, h in passing}, "row": record.number}
        if len(text_at) == 1:
            text = tidy(_as_text(cells[text_at[0]]))
        else:
            text = "\n\n".join(f"{table.header[i]}: {tidy(_as_text(cells[i]))}" for i in text_at
                               if _as_text(cells[i]).strip())
        doc = Document(id=given_id or default_id, text=text, source=table.path, meta=meta)
        if not text.strip():
            doc.error = f"row {record.number}: no text in {', '.join(repr(c) for c in text_columns)}"
            doc.text = ""
            yield doc
            continue
        yield normalize_document(doc, max_chars=max_chars)


# --- CSV ---------------------------------------------------------------------------------------
def _open_csv(path: str, sample: bytes) -> Table:
    if looks_binary(sample[:limits.SNIFF_BYTES]):
        raise TableError(f"{path} is binary, not a CSV or TSV table")
    encoding, skip, warning = detect_encoding(sample, complete=len(sample) < _SAMPLE_BYTES)
    text = sample[skip:].decode(encoding, errors="replace")
    if len(sample) == _SAMPLE_BYTES:  # the sample may end inside a row: sniff whole lines only
        text = text[: text.rfind("\n") + 1] or text
    fmt = _sniff_format(text[:_DIALECT_CHARS], path, encoding, bool(skip), warning)
    with _open_text(path, fmt) as fh:
        try:
            header = next(csv.reader(fh, **fmt.reader_options()), None)
        except csv.Error as exc:
            raise TableError(f"{path}: the header row can't be read ({exc})") from None
    if not header or not any(cell.strip() for cell in header):
        raise TableError(f"{path} has no header row (its first row is blank)")
    return Table(path=path, header=[cell.strip() for cell in header], csv_format=fmt)


def _sniff_format(text: str, path: str, encoding: str, bom: bool, warning: Optional[str]) -> CsvFormat:
    lines = text.splitlines(keepends=True)
    first = lines[0] if lines else ""
    terminator = "\r\n" if first.endswith("\r\n") else "\r" if first.endswith("\r") else "\n"
    fallback = "\t" if path.lower().endswith((".tsv", ".tab")) else ","
    try:
        dialect = csv.Sniffer().sniff(text, delimiters=_DELIMITERS)
        delimiter, quotechar = dialect.delimiter, dialect.quotechar or '"'
    except csv.Error:  # one column, or too little to tell
        delimiter, quotechar = fallback, '"'
    # The sniffer says "no doubled quotes" when its sample has none; later rows may, and every
    # spreadsheet writes a quote inside a quoted cell doubled.
    doublequote, escapechar = True, None
    if delimiter not in first:  # the sniffer went by a character of the data rows (a comma in the text)
        counts = {d: first.count(d) for d in _DELIMITERS}
        best = max(_DELIMITERS, key=counts.__getitem__)
        delimiter = best if counts[best] else fallback
    cells = first.rstrip("\r\n").split(delimiter)
    quote_all = len(cells) > 1 and all(c.startswith(quotechar) and c.endswith(quotechar) for c in cells)
    return CsvFormat(encoding=encoding, bom=bom, delimiter=delimiter, quotechar=quotechar, doublequote=doublequote,
                     escapechar=escapechar, lineterminator=terminator,
                     quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL, warning=warning)


def _open_text(path: str, fmt: CsvFormat) -> io.TextIOWrapper:
    raw = open(path, "rb")
    if fmt.bom:
        raw.read(len("\ufeff".encode(fmt.encoding)))
    return io.TextIOWrapper(raw, encoding=fmt.encoding, errors="replace", newline="")


def _csv_records(path: str, fmt: CsvFormat, width: int) -> Iterator[Record]:
    previous = csv.field_size_limit(limits.MAX_FIELD_CHARS)
    try:
        with _open_text(path, fmt) as fh:
            reader = csv.reader(fh, **fmt.reader_options())
            number = 1
            try:
                next(reader)  # the header
            except (StopIteration, csv.Error):
                return
            while True:
                number += 1
                try:
                    cells = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    reason = str(exc)
                    if "field limit" in reason:
                        reason = f"a field is longer than the limit of {limits.MAX_FIELD_CHARS:,} characters"
                    yield Record(number, error=f"row {number} can't be read: {reason}; skipped")
                    continue
                if not cells or (len(cells) == 1 and not cells[0].strip() and width > 1):
                    continue  # a blank line is no row
                if len(cells) != width:
                    yield Record(number, cells, error=f"row {number} has {len(cells)} cell{'s' * (len(cells) != 1)} but the header has "
                                                      f"{width} (a stray delimiter or quote?)")
                    continue
                yield Record(number, cells)
    finally:
        csv.field_size_limit(previous)


# --- .xlsx -------------------------------------------------------------------------------------
def _open_workbook(path: str, sheet: Optional[str]) -> Table:
    workbook = _load_workbook(path)
    try:
        names = workbook.sheetnames
        if sheet is None:
            if not names:
                raise TableError(f"{path} has no sheets")
            sheet = names[0]
        elif sheet not in names:
            raise TableError(f"--sheet {sheet!r}: {os.path.basename(path)} has no such sheet; "
                             f"its sheets are {', '.join(repr(n) for n in names)}")
        rows = workbook[sheet].iter_rows(values_only=True)
        header = next(rows, None)
    except TableError:
        raise
    except Exception as exc:  # a damaged part of the workbook
        raise TableError(f"{path}: the sheet can't be read ({str(exc)[:160]})") from None
    finally:
        workbook.close()
    if header is None or not any(_as_text(c).strip() for c in header):
        raise TableError(f"{path} sheet {sheet!r} has no header row (its first row is blank)")
    header = list(header)
    while header and not _as_text(header[-1]).strip():
        header.pop()  # formatting can stretch a sheet's width past its last column
    return Table(path=path, header=[_as_text(c).strip() for c in header], sheet=sheet)


def _load_workbook(path: str, checked: bool = False):
    try:
        import openpyxl
    except ImportError:
        raise TableError("reading .xlsx needs openpyxl (pip install openpyxl)") from None
    try:
        size = os.path.getsize(path)
        if size > limits.MAX_FILE_BYTES:
            raise TableError(f"{path} is {size / 2**20:,.0f} MB, larger than the "
                             f"{limits.MAX_FILE_BYTES // 2**20} MB limit for a workbook")
        if not checked:  # a sheet's XML compresses far better than prose: the total is the cap
            with open(path, "rb") as fh:
                check_zip(fh.read(), what="xlsx", max_total=limits.XLSX_MAX_UNCOMPRESSED,
                          max_members=limits.DOCX_MAX_PARTS)
        return openpyxl.load_workbook(path, read_only=True, data_only=True)
    except TableError:
        raise
    except ZipRefused as exc:
        raise TableError(f"{path}: {exc}") from None
    except OSError as exc:
        raise TableError(f"cannot read {path}: {exc.strerror or exc}") from None
    except Exception as exc:
        raise TableError(f"{path} is not a readable .xlsx workbook ({str(exc)[:160]})") from None


def _sheet_records(path: str, sheet: Optional[str], width: int) -> Iterator[Record]:
    """A sheet's rows padded to the header's width; cells past it are kept only when not empty
    (a note beside the table), so they are written back too."""
    workbook = _load_workbook(path, checked=True)
    number = 1
    try:
        rows = workbook[sheet].iter_rows(values_only=True)
        next(rows, None)
        for number, row in enumerate(rows, start=2):
            cells = list(row)
            if not any(_as_text(c).strip() for c in cells):
                continue
            while len(cells) > width and not _as_text(cells[-1]).strip():
                cells.pop()
            yield Record(number, cells + [None] * (width - len(cells)))
    except Exception as exc:
        yield Record(number + 1, error=f"the sheet can't be read past row {number}: {str(exc)[:160]}")
    finally:
        workbook.close()


# --- cells -------------------------------------------------------------------------------------
def _as_text(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    return str(value)


def _passable(value: Cell) -> Any:
    """A cell as a JSON value: numbers and text as they are, dates as ISO text."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return _as_text(value)
