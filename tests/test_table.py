"""Tables as documents (engine.intake.table) and verdicts written back into them
(engine.table_out), on files written at run time by Python's csv module and openpyxl."""
from __future__ import annotations

import csv
import datetime
import io

import openpyxl
import pytest

from engine.rows import verdict_header
from engine.table_out import write_table_wide
from engine.intake import limits
from engine.intake.table import TableError, iter_table_documents, open_table
from engine.types import Verdict

ROWS = [
    ["7", "Oven broken; smoke, \"burning\" smell\nsecond line", "high", "=1+1"],
    ["8", "Café crème was cold", "low", "ok"],
    ["9", "Invoice | overdue", "", "-3"],
]
HEADER = ["ticket", "body", "priority", "note"]


def _write_csv(path, rows, encoding="utf-8", **dialect):
    with open(path, "w", encoding=encoding, newline="") as fh:
        csv.writer(fh, **dialect).writerows(rows)
    return path


@pytest.mark.parametrize("encoding, dialect", [
    ("utf-8", {}),
    ("utf-8-sig", {"delimiter": ";", "lineterminator": "\n"}),
    ("cp1252", {"delimiter": ";", "quoting": csv.QUOTE_ALL}),
    ("utf-16", {"delimiter": "\t"}),
    ("utf-8", {"delimiter": "|", "quotechar": "'"}),
])
def test_odd_dialects_and_encodings_give_the_rows_pythons_csv_reads(tmp_path, encoding, dialect):
    path = _write_csv(tmp_path / "tickets.csv", [HEADER] + ROWS, encoding, **dialect)
    table = open_table(path)
    assert table.header == HEADER
    fmt = table.csv_format
    assert fmt.delimiter == dialect.get("delimiter", ",") and fmt.quotechar == dialect.get("quotechar", '"')
    assert fmt.bom == (encoding in ("utf-8-sig", "utf-16"))
    assert fmt.lineterminator == dialect.get("lineterminator", "\r\n")
    assert fmt.quoting == dialect.get("quoting", csv.QUOTE_MINIMAL)
    docs = list(iter_table_documents(table, ["body"], "ticket"))
    assert [d.id for d in docs] == ["7", "8", "9"]
    assert [d.text for d in docs] == [r[1] for r in ROWS]  # the newline inside a quoted cell kept
    assert [d.meta["passthrough"] for d in docs] == [{"priority": r[2], "note": r[3]} for r in ROWS]
    assert all(d.error is None for d in docs)


def test_the_header_decides_the_delimiter_when_the_text_is_full_of_commas(tmp_path):
    path = _write_csv(tmp_path / "t.csv", [["id", "body"], ["1", "Lovely, thank you, really, great"],
                                           ["2", "Broken, late, cold, wrong"]], delimiter=";")
    table = open_table(path)
    assert table.header == ["id", "body"] and table.csv_format.delimiter == ";"
    assert [d.text for d in iter_table_documents(table, ["body"])] == ["Lovely, thank you, really, great",
                                                                       "Broken, late, cold, wrong"]


def test_ten_thousand_rows_in_order_with_pass_through_columns(tmp_path):
    rows = [[f"review {i}: {'great' if i % 3 else 'awful'} product", str(i), f"shop {i % 7}"] for i in range(10_000)]
    path = _write_csv(tmp_path / "reviews.csv", [["text", "stars", "shop"]] + rows)
    docs = list(iter_table_documents(open_table(path), ["text"]))
    assert len(docs) == 10_000
    assert [d.id for d in docs[:2]] == ["reviews.csv:row 2", "reviews.csv:row 3"]  # the header is row 1
    assert [d.text for d in docs] == [r[0] for r in rows]
    assert [d.meta["passthrough"] for d in docs] == [{"stars": r[1], "shop": r[2]} for r in rows]


def test_a_ragged_row_and_an_oversized_field_cost_one_row_each(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_FIELD_CHARS", 1000)
    path = tmp_path / "t.csv"
    path.write_text("id,text\n1,first\n2,stray,comma\n3," + "x" * 5000 + "\n\n4,last\n", encoding="utf-8")
    docs = list(iter_table_documents(open_table(path), ["text"]))
    assert [(d.id, d.text) for d in docs] == [("t.csv:row 2", "first"), ("t.csv:row 3", ""), ("t.csv:row 4", ""),
                                              ("t.csv:row 6", "last")]
    assert "row 3 has 3 cells but the header has 2" in docs[1].error
    assert "longer than the limit of 1,000 characters" in docs[2].error
    assert docs[0].error is None and docs[3].error is None


def test_several_text_columns_are_joined_under_their_headers(tmp_path):
    path = _write_csv(tmp_path / "t.csv", [["Subject", "Body", "Id"], ["Refund", "Please pay me back", "a"],
                                           ["", "No subject here", "b"], ["", "", "c"]])
    docs = list(iter_table_documents(open_table(path), ["Subject", "Body"], "Id"))
    assert docs[0].text == "Subject: Refund\n\nBody: Please pay me back"
    assert docs[1].text == "Body: No subject here"
    assert docs[2].error == "row 4: no text in 'Subject', 'Body'" and docs[2].id == "c"
    assert docs[0].meta["passthrough"] == {}


def test_a_cp1252_file_without_a_bom_is_detected_like_a_text_file(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes("text;n\nCafé crème brûlée;1\n".encode("cp1252"))
    table = open_table(path)
    assert table.csv_format.encoding == "cp1252" and "guessed" in table.csv_format.warning
    assert next(iter_table_documents(table, ["text"])).text == "Café crème brûlée"


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"\n\nid,text\n", "no header row"),
    (bytes(range(256)) * 8, "binary"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600, "legacy Excel"),
])
def test_files_that_are_no_table_are_refused_in_one_line(tmp_path, content, message):
    path = tmp_path / "t.csv"
    path.write_bytes(content)
    with pytest.raises(TableError, match=message) as caught:
        open_table(path)
    assert "\n" not in str(caught.value)


def test_a_missing_column_names_the_columns_there_are(tmp_path):
    table = open_table(_write_csv(tmp_path / "t.csv", [HEADER] + ROWS))
    with pytest.raises(TableError, match=r"--text-column 'text': t.csv has no such column; its columns are "
                                         r"'ticket', 'body', 'priority', 'note'"):
        list(iter_table_documents(table, ["text"]))
    assert next(iter_table_documents(table, ["BODY "])).text == ROWS[0][1]  # case and spaces forgiven


def _workbook(path, sheets):
    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
    book.save(path)
    return path


def test_an_xlsx_sheet_gives_one_document_per_row_with_typed_pass_through(tmp_path):
    when = datetime.datetime(2026, 3, 1, 9, 30)
    path = _workbook(tmp_path / "book.xlsx", {
        "Notes": [["nothing here"]],
        "Tickets": [["id", "text", "amount", "opened"], ["T1", "The printer is on fire", 12.5, when],
                    [None, None, None, None], ["T2", "Thanks for the quick fix", 3, None]],
    })
    with pytest.raises(TableError, match=r"--sheet 'Nope': book.xlsx has no such sheet; its sheets are "
                                         r"'Notes', 'Tickets'"):
        open_table(path, sheet="Nope")
    assert open_table(path).sheet == "Notes"  # the first sheet by default
    table = open_table(path, sheet="Tickets")
    docs = list(iter_table_documents(table, ["text"], "id"))
    assert [(d.id, d.text, d.meta["row"]) for d in docs] == [("T1", "The printer is on fire", 2),
                                                             ("T2", "Thanks for the quick fix", 4)]
    assert docs[0].meta["passthrough"] == {"amount": 12.5, "opened": "2026-03-01T09:30:00"}
    assert docs[1].meta["passthrough"] == {"amount": 3, "opened": None}


def test_a_damaged_or_bomb_workbook_is_refused_in_one_line(tmp_path):
    import fixtures_docs as fx

    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    with pytest.raises(TableError, match="broken.xlsx"):
        open_table(broken)
    bomb = tmp_path / "bomb.xlsx"
    bomb.write_bytes(fx.make_lying_docx(megabytes=64, declared=1000))
    with pytest.raises(TableError, match="zip bomb"):
        open_table(bomb)


def _verdicts(docs, questions):
    """Every document's verdicts as the pipeline yields them: in input order, a question at a time."""
    out = []
    for index, doc in enumerate(docs):
        for n, question in enumerate(questions):
            if doc.error:
                out.append(Verdict(doc.id, question, "error", error=doc.error, document_index=index))
            else:
                out.append(Verdict(doc.id, question, "yes" if index % 2 else "no", probability=(index % 10) / 10 + n / 100,
                                   document_index=index))
    return out


class _NoProgress:
    def step(self):
        pass


def test_ten_thousand_rows_written_back_in_the_tables_own_dialect_and_encoding(tmp_path):
    rows = [[str(i), f"note {i}; \"quoted\"" if i % 2 else f"=cmd|{i}", "Zoë"] for i in range(10_000)]
    rows[17] = ["17", "a ragged", "row", "with an extra cell"]
    path = _write_csv(tmp_path / "in.csv", [["n", "text", "who"]] + rows, "utf-8-sig", delimiter=";",
                      lineterminator="\n")
    table = open_table(path)
    docs = list(iter_table_documents(table, ["text"]))
    questions = ["Is it a note?", "=SUM(A1)?"]
    out = tmp_path / "out.csv"
    failed = write_table_wide(table, str(out), iter(_verdicts(docs, questions)), docs, questions,
                              lambda doc: {"Is it a note?": "yes"} if doc.id.endswith("row 5") else {}, _NoProgress())
    assert failed  # the ragged row
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" not in raw
    with open(out, encoding="utf-8-sig", newline="") as fh:
        back = list(csv.reader(fh, delimiter=";"))
    assert back[0] == ["n", "text", "who", "Is it a note? — verdict", "Is it a note? — probability",
                       "Is it a note? — label", "'=SUM(A1)? — verdict", "'=SUM(A1)? — probability",
                       "'=SUM(A1)? — label"]
    assert len(back) == 10_001
    for i, line in enumerate(back[1:]):
        if i == 17:  # the user's extra cell stays, after the new columns
            assert line == ["17", "a ragged", "row"] + ["error", "", ""] * 2 + ["with an extra cell"]
            continue
        assert line[:3] == rows[i]  # the user's cells as they were, "=cmd|…" included
        expected = ["yes" if i % 2 else "no", str((i % 10) / 10), "yes" if i == 3 else "",
                    "yes" if i % 2 else "no", str(round((i % 10) / 10 + 0.01, 4)), ""]
        assert line[3:] == expected


def test_a_sheet_written_back_as_a_workbook_keeps_its_values_and_text(tmp_path):
    path = _workbook(tmp_path / "in.xlsx", {"Reviews": [
        ["text", "stars", "formula-like"], ["Loved it", 5, "text"], ["Hated it", 1, "plain"]]})
    book = openpyxl.load_workbook(path)
    book["Reviews"]["C2"].value = "=HYPERLINK(\"x\")"
    book["Reviews"]["C2"].data_type = "s"  # text the user typed with a leading apostrophe
    book.save(path)
    table = open_table(path)
    docs = list(iter_table_documents(table, ["text"]))
    out = tmp_path / "out.xlsx"
    write_table_wide(table, str(out), iter(_verdicts(docs, ["=Positive?"])), docs, ["=Positive?"], lambda d: {},
                     _NoProgress())
    book = openpyxl.load_workbook(out)
    assert book.sheetnames == ["Reviews"]
    cells = [[c.value for c in row] for row in book["Reviews"].iter_rows()]
    assert cells[0] == ["text", "stars", "formula-like"] + verdict_header(["=Positive?"])
    assert cells[1] == ["Loved it", 5, "=HYPERLINK(\"x\")", "no", 0, None]
    assert cells[2] == ["Hated it", 1, "plain", "yes", 0.1, None]
    assert book["Reviews"]["C2"].data_type == "s"  # the user's text stays text, not a formula


def test_a_workbook_written_back_as_csv_to_a_stream_is_utf8(tmp_path, capfdbinary):
    path = _workbook(tmp_path / "in.xlsx", {"S": [["text"], ["Grüße"]]})
    table = open_table(path)
    docs = list(iter_table_documents(table, ["text"]))
    write_table_wide(table, None, iter(_verdicts(docs, ["q"])), docs, ["q"], lambda d: {}, _NoProgress())
    written = capfdbinary.readouterr().out.decode("utf-8")
    assert list(csv.reader(io.StringIO(written))) == [["text", "q — verdict", "q — probability", "q — label"],
                                                      ["Grüße", "no", "0.0", ""]]
