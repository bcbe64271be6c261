"""`verdict classify --table-in`: a spreadsheet's rows as documents, and its verdicts written back
into it, run end to end on the default model as a user runs it."""
from __future__ import annotations

import csv
import json

import openpyxl
import pytest

from test_cli import run_cli

QUESTION = "Is this a complaint?"
TICKETS = [
    ("A-1", "The oven arrived broken and nobody answers my emails. I want a refund now.", "high", "=2+2"),
    ("A-2", "Thank you for the lovely recipe book, my kids enjoyed baking from it.", "low", "fine"),
    ("A-3", "Please fix the leaking tap in room 12; it has been dripping for a week.", "mid", ""),
]


@pytest.fixture
def tickets_csv(tmp_path):
    """A semicolon-separated cp1252 export, as a European Excel writes it, with one ragged row."""
    path = tmp_path / "tickets.csv"
    with open(path, "w", encoding="cp1252", newline="") as fh:
        writer = csv.writer(fh, delimiter=";")
        writer.writerow(["ticket", "body", "priority", "note"])
        writer.writerows(TICKETS[:2])
        writer.writerow(["A-9", "a stray", "semicolon", "in", "this row"])
        writer.writerow(TICKETS[2])
        fh.write("Caf\u00e9 row is not a ticket\n")  # not valid UTF-8 once encoded: cp1252 is detected
    return path


def test_table_rows_are_scored_like_the_same_documents_given_as_jsonl(default_model_path, tickets_csv, tmp_path):
    table = run_cli("classify", "-q", QUESTION, "--table-in", tickets_csv, "--text-column", "body",
                    "--id-column", "ticket", "--model", default_model_path)
    assert table.returncode == 1, table.stderr  # the ragged rows are error rows
    assert "tickets.csv: not valid UTF-8; decoded as cp1252 (guessed)" in table.stderr
    rows = [json.loads(line) for line in table.stdout.splitlines()]
    assert [r["id"] for r in rows] == ["A-1", "A-2", "tickets.csv:row 4", "A-3", "tickets.csv:row 6"]
    assert [r["error"] is None for r in rows] == [True, True, False, True, False]
    assert "row 4 has 5 cells but the header has 4" in rows[2]["error"]
    assert [(r.get("priority"), r.get("note")) for r in rows if not r["error"]] == [(t[2], t[3]) for t in TICKETS]

    jsonl = tmp_path / "same.jsonl"
    lines = [{"id": t[0], "text": t[1]} for t in TICKETS[:2]] + [{"id": "x"}] + [{"id": TICKETS[2][0], "text": TICKETS[2][1]}]
    jsonl.write_text("".join(json.dumps(line) + "\n" for line in lines + [{"id": "y"}]), encoding="utf-8")
    reference = run_cli("classify", "-q", QUESTION, "--jsonl-in", jsonl, "--model", default_model_path)
    expected = [json.loads(line) for line in reference.stdout.splitlines()]
    for got, want in zip(rows, expected):
        if want["error"] is None:
            assert (got["margin"], got["probability"], got["verdict"], got["tokens"]) == (
                want["margin"], want["probability"], want["verdict"], want["tokens"])


def test_wide_writes_the_users_table_back_with_verdict_columns(default_model_path, tickets_csv, tmp_path):
    out = tmp_path / "tickets with verdicts.csv"
    common = ["classify", "-q", QUESTION, "--table-in", tickets_csv, "--text-column", "body", "--model",
              default_model_path]
    wide = run_cli(*common, "--wide", "--output", out)
    long = run_cli(*common)
    assert wide.returncode == long.returncode == 1, wide.stderr
    verdicts = [json.loads(line) for line in long.stdout.splitlines()]
    with open(out, encoding="cp1252", newline="") as fh:  # the input's own encoding and delimiter
        back = list(csv.reader(fh, delimiter=";"))
    with open(tickets_csv, encoding="cp1252", newline="") as fh:
        original = list(csv.reader(fh, delimiter=";"))
    assert back[0] == original[0] + [f"{QUESTION} — verdict", f"{QUESTION} — probability", f"{QUESTION} — label"]
    assert len(back) == len(original) == 6
    for mine, theirs, v in zip(back[1:], original[1:], verdicts):
        assert mine[:4] == (theirs + [""] * 4)[:4] and mine[7:] == theirs[4:]  # every cell kept, in order
        if v["error"]:
            assert mine[4:7] == ["error", "", ""]
        else:
            assert mine[4] == v["verdict"] and float(mine[5]) == pytest.approx(v["probability"], abs=5e-5)
    assert back[1][3] == "=2+2"  # the user's own cell is not escaped


def test_wide_with_an_xlsx_output_writes_a_workbook(default_model_path, tmp_path):
    source = tmp_path / "reviews.xlsx"
    book = openpyxl.Workbook()
    book.active.title = "Reviews"
    book.active.append(["id", "review", "stars"])
    for n, (text, stars) in enumerate([("Terrible service, the food was cold and late.", 1),
                                       ("Wonderful dinner, we will come back.", 5)]):
        book.active.append([f"r{n}", text, stars])
    book.save(source)
    out = tmp_path / "reviews-verdicts.xlsx"
    done = run_cli("classify", "-q", QUESTION, "--table-in", source, "--text-column", "review", "--id-column", "id",
                   "--sheet", "Reviews", "--wide", "--output", out, "--model", default_model_path)
    assert done.returncode == 0, done.stderr
    sheet = openpyxl.load_workbook(out)["Reviews"]
    cells = [[c.value for c in row] for row in sheet.iter_rows()]
    assert cells[0] == ["id", "review", "stars", f"{QUESTION} — verdict", f"{QUESTION} — probability",
                        f"{QUESTION} — label"]
    assert [row[:3] for row in cells[1:]] == [["r0", "Terrible service, the food was cold and late.", 1],
                                              ["r1", "Wonderful dinner, we will come back.", 5]]
    assert all(row[3] in ("yes", "no", "uncertain") and 0 < row[4] < 1 for row in cells[1:])


@pytest.mark.parametrize("extra, message", [
    (["--text-column", "text"], "--text-column 'text': tickets.csv has no such column; its columns are"),
    ([], "name the column that holds the text with --text-column NAME"),
    (["--text-column", "body", "--sheet", "S"], "tickets.csv is a CSV file, which has no sheets"),
    (["--text-column", "body", "--id-column", "nr"], "--id-column 'nr': tickets.csv has no such column"),
    (["--text-column", "body", "--wide", "-"], "give no other input"),
])
def test_bad_columns_and_sheets_exit_2_with_one_line_before_the_model_loads(tickets_csv, extra, message):
    done = run_cli("classify", "-q", QUESTION, "--table-in", tickets_csv, *extra)
    assert done.returncode == 2 and message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not done.stdout


def test_table_options_without_a_table_are_refused():
    done = run_cli("classify", "-q", QUESTION, "--text-column", "body", "-", stdin="text")
    assert done.returncode == 2 and "give --table-in too" in done.stderr
