"""The `verdict` command line, run as users and scripts run it."""
import csv
import io
import json
import subprocess
import sys

import pytest

CONTRACT = ["id", "path", "question", "verdict", "margin", "probability", "label_mass", "tokens", "seconds", "error"]


def run_cli(*args, stdin: str = ""):
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", *map(str, args)], input=stdin, capture_output=True, text=True, timeout=300
    )


@pytest.fixture
def docs_jsonl(tmp_path):
    path = tmp_path / "docs.jsonl"
    lines = [
        {"id": "recipe", "text": "Preheat the oven to 200 degrees and bake the cookies for 12 minutes.", "source": "web"},
        {"id": "invoice", "text": "Your invoice #4411 of $120 is overdue. Please pay within 7 days."},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def test_jsonl_rows_follow_the_contract_with_the_default_model(docs_jsonl):
    done = run_cli("classify", "--question", "Is this document about cooking?", "--jsonl-in", docs_jsonl)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["id"] for r in rows] == ["recipe", "invoice"]
    for row in rows:
        assert list(row)[: len(CONTRACT)] == CONTRACT
        assert row["verdict"] in ("yes", "no", "uncertain") and row["error"] is None
        assert 0 < row["probability"] < 1 and 0 < row["label_mass"] <= 1 and row["tokens"] > 20
    assert rows[0]["source"] == "web"  # other keys pass through


def test_qwen2_gguf_with_q8_0_tensors(tiny_gguf, docs_jsonl):
    done = run_cli("classify", "-q", "Is it about money?", "-q", "Is it food?", "--model", tiny_gguf,
                   "--jsonl-in", docs_jsonl)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(r["id"], r["question"]) for r in rows] == [
        ("recipe", "Is it about money?"), ("recipe", "Is it food?"),
        ("invoice", "Is it about money?"), ("invoice", "Is it food?"),
    ]


def test_failed_documents_get_rows_and_exit_status_1(tiny_model_dir, tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text('{"id": "a", "text": "fine text"}\nnot json\n{"id": "b"}\n{"id": "c", "text": ""}\n')
    done = run_cli("classify", "-q", "Is it fine?", "--model", tiny_model_dir, "--jsonl-in", path)
    assert done.returncode == 1
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["error"] is None for r in rows] == [True, False, False, False]
    assert "invalid JSON on line 2" in rows[1]["error"] and "no 'text'" in rows[2]["error"]
    assert "Traceback" not in done.stderr


def test_stdin_csv_and_output_file(tiny_model_dir, tmp_path):
    out = tmp_path / "out.csv"
    done = run_cli("classify", "-q", "Is it fine?", "--model", tiny_model_dir, "--format", "csv", "--output", out, "-",
                   stdin="A document from standard input.")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 1 and rows[0]["id"] == "-" and rows[0]["verdict"] in ("yes", "no", "uncertain")


def test_csv_cells_that_start_like_formulas_stay_text(tiny_model_dir, tmp_path):
    """OWASP CSV injection: = + - @ tab CR at a text cell's start get an apostrophe; numbers don't."""
    path = tmp_path / "hostile.jsonl"
    ids = ["=HYPERLINK(\"http://x\")", "+1+1", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd", "plain"]
    path.write_text("".join(json.dumps({"id": i, "text": "Pay 5 EUR."}) + "\n" for i in ids), encoding="utf-8")
    out = tmp_path / "out.csv"
    done = run_cli("classify", "-q", "=1+1", "--model", tiny_model_dir, "--format", "csv", "--jsonl-in", path,
                   "--output", out)
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(out.open(newline="", encoding="utf-8")))
    assert [r["id"] for r in rows] == ["'" + i for i in ids[:-1]] + ["plain"]
    assert {r["question"] for r in rows} == {"'=1+1"}


def test_csv_writer_keeps_negative_numbers_numeric():
    from engine.rows import RowWriter

    out = io.StringIO()
    writer = RowWriter(out, "csv")
    writer.write({"id": "-a", "margin": -0.25, "tokens": -1, "error": "@x"})
    (row,) = csv.DictReader(io.StringIO(out.getvalue()))
    assert (row["id"], row["margin"], row["tokens"], row["error"]) == ("'-a", "-0.25", "-1", "'@x")


def test_table_for_people(tiny_model_dir, docs_jsonl):
    done = run_cli("classify", "-q", "Is it fine?", "--model", tiny_model_dir, "--format", "table", "--jsonl-in", docs_jsonl)
    assert done.returncode == 0
    header, *lines = done.stdout.splitlines()
    assert header.split()[:3] == ["id", "verdict", "probability"] and len(lines) == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["classify", "-q", "x", "--model", "/no/such/model.gguf", "-"], "model not found"),
        (["classify", "-q", "x"], "nothing to classify"),
        (["classify", "-q", " ", "-"], "must not be empty"),
        (["classify", "-q", "x", "--jsonl-in", "/no/such.jsonl"], "cannot read /no/such.jsonl"),
    ],
)
def test_usage_and_model_errors_exit_2_with_one_line(args, message):
    done = run_cli(*args, stdin="text")
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr


def _labeled(tmp_path, n_per_class=8):
    """A small labeled set cut from the shipped Debian descriptions."""
    from pathlib import Path

    source = Path(__file__).resolve().parents[1] / "resources" / "labeled" / "debian_games.jsonl"
    records = [json.loads(line) for line in source.read_text().splitlines()]
    chosen = [r for r in records if r["label"]][:n_per_class] + [r for r in records if not r["label"]][:n_per_class]
    docs = tmp_path / "labeled.jsonl"
    docs.write_text("".join(json.dumps({"id": r["id"], "text": r["text"], "label": r["label"]}) + "\n" for r in chosen))
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps({"id": r["id"], "label": "yes" if r["label"] else "no"}) + "\n" for r in chosen))
    return docs, labels


def test_labels_fit_a_calibrator_that_later_runs_reuse(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("VERDICT_DATA_DIR", str(tmp_path / "data"))
    docs, labels = _labeled(tmp_path)
    q = "Is this software a game?"
    done = run_cli("classify", "-q", q, "--model", tiny_model_dir, "--jsonl-in", docs, "--labels", labels)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert all(r["margin"] != r["raw_margin"] for r in rows)  # calibrated log-odds, raw kept beside
    assert list((tmp_path / "data").rglob("*.json"))  # saved per model and question
    again = run_cli("classify", "-q", q, "--model", tiny_model_dir, "--jsonl-in", docs)
    assert [json.loads(line)["margin"] for line in again.stdout.splitlines()] == [r["margin"] for r in rows]


def test_without_labels_small_margins_are_uncertain(tiny_model_dir, docs_jsonl, tmp_path, monkeypatch):
    monkeypatch.setenv("VERDICT_DATA_DIR", str(tmp_path / "data"))
    refused = run_cli("classify", "-q", "Is it fine?", "--model", tiny_model_dir, "--jsonl-in", docs_jsonl,
                      "--uncertain-band", "1000")
    assert refused.returncode == 2 and "--decisions row" in refused.stderr  # batch calls follow --target-precision
    wide = run_cli("classify", "-q", "Is it fine?", "--model", tiny_model_dir, "--jsonl-in", docs_jsonl,
                   "--uncertain-band", "1000", "--decisions", "row")
    assert {json.loads(line)["verdict"] for line in wide.stdout.splitlines()} == {"uncertain"}
    none = run_cli("classify", "-q", "Is it fine?", "--model", tiny_model_dir, "--jsonl-in", docs_jsonl,
                   "--uncertain-band", "0", "--mass-floor", "0", "--decisions", "row")
    assert {json.loads(line)["verdict"] for line in none.stdout.splitlines()} <= {"yes", "no"}


def test_labels_for_one_class_only_are_refused(tiny_model_dir, docs_jsonl, tmp_path):
    labels = tmp_path / "labels.jsonl"
    labels.write_text('{"id": "recipe", "label": true}\n')
    done = run_cli("classify", "-q", "Is it food?", "--model", tiny_model_dir, "--jsonl-in", docs_jsonl, "--labels", labels)
    assert done.returncode == 2 and "at least one yes and one no" in done.stderr


def test_evaluate_prints_the_json_contract(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("VERDICT_DATA_DIR", str(tmp_path / "data"))
    docs, _ = _labeled(tmp_path)
    done = run_cli("evaluate", "-q", "Is this software a game?", "--jsonl-in", docs, "--model", tiny_model_dir,
                   "--format", "json", "--folds", "4")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["n"] == 16
    for method in ("raw", "calibrated", "platt", "probe"):
        assert set(result["methods"][method]) >= {"auc", "accuracy", "brier", "ece"}
    assert "4" in result["learning_curve"]


def test_evaluate_json_is_strict_and_reports_the_general_probes_band(tiny_model_dir, tmp_path, monkeypatch):
    """No NaN or Infinity in the JSON (jq refuses them); a general probe whose label-free band is
    infinite decides nothing: coverage 0, its accuracy on decided rows null, its band null."""
    import numpy as np

    from engine.classifier import Classifier
    from engine.confidence.general import GeneralProbe, general_probe_key, save_general_probe
    from engine.model.fingerprint import model_fingerprint

    d = len(Classifier.load(tiny_model_dir).score("Is it?", ["a text"], layers=[2])[0].states[2])
    save_general_probe(GeneralProbe(general_probe_key(model_fingerprint(tiny_model_dir)), 2, np.zeros(d), np.ones(d),
                                    np.linspace(-1, 1, d), 0.2, 0.9, 0.5, label_free_band=float("inf")),
                       tmp_path / "probes")
    monkeypatch.setenv("VERDICT_GENERAL_PROBES", str(tmp_path / "probes"))
    monkeypatch.setenv("VERDICT_DATA_DIR", str(tmp_path / "data"))
    docs, _ = _labeled(tmp_path)
    done = run_cli("evaluate", "-q", "Is this software a game?", "--jsonl-in", docs, "--model", tiny_model_dir,
                   "--format", "json", "--folds", "4")
    assert done.returncode == 0, done.stderr

    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    result = json.loads(done.stdout, parse_constant=refuse)
    assert result["calibrated_is"] == "general" and "general_band" in result and result["general_band"] is None
    for method in ("general", "calibrated"):
        assert result["methods"][method]["coverage"] == 0 and result["methods"][method]["accuracy_decided"] is None
    table = run_cli("evaluate", "-q", "Is this software a game?", "--jsonl-in", docs, "--model", tiny_model_dir,
                    "--folds", "4")
    assert "none is confident before labels" in table.stdout


def test_labels_with_their_own_text_train_on_documents_not_being_classified(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("VERDICT_DATA_DIR", str(tmp_path / "data"))
    training, _ = _labeled(tmp_path, n_per_class=4)  # id, text, label
    new = tmp_path / "new.jsonl"
    new.write_text('{"id": "n1", "text": "A puzzle game with levels."}\n{"id": "n2", "text": "A text editor."}\n')
    done = run_cli("classify", "-q", "Is this software a game?", "--model", tiny_model_dir, "--jsonl-in", new,
                   "--labels", training)
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["id"] for line in done.stdout.splitlines()] == ["n1", "n2"]
    unmatched = tmp_path / "ids-only.jsonl"
    unmatched.write_text('{"id": "x", "label": true}\n{"id": "y", "label": false}\n')
    refused = run_cli("classify", "-q", "Is this software a game?", "--model", tiny_model_dir, "--jsonl-in", new,
                      "--labels", unmatched)
    assert refused.returncode == 2 and "or with their 'text'" in refused.stderr and "Traceback" not in refused.stderr


def test_a_folder_of_every_format_and_bad_files_through_the_cli(tiny_model_dir, tmp_path):
    """The first acceptance run: valid files get verdicts, bad ones rows with reasons, exit 1."""
    import fixtures_docs as fx

    folder = tmp_path / "inbox"
    fx.write_files(folder, fx.valid_samples())
    bad = {
        "corrupt.pdf": b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF",
        "locked.pdf": fx.make_encrypted_pdf(),
        "empty.txt": b"",
        "bomb.docx": fx.make_zip_bomb_docx(201),
        "program.txt": bytes(range(256)) * 16,
    }
    fx.write_files(folder, bad)
    done = run_cli("classify", "-q", "Is this about money?", "--model", tiny_model_dir, folder)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    rows = {row["id"].rsplit("/", 1)[-1]: row for row in map(json.loads, done.stdout.splitlines())}
    assert set(rows) == set(fx.valid_samples()) | set(bad)
    for name in fx.valid_samples():
        assert rows[name]["error"] is None and rows[name]["verdict"] in ("yes", "no", "uncertain"), name
        assert rows[name]["path"].endswith(name)
    assert rows["locked.pdf"]["error"] == "PDF is password-protected"
    assert rows["empty.txt"]["error"] == "file is empty"
    assert "zip bomb" in rows["bomb.docx"]["error"]
    assert rows["corrupt.pdf"]["error"].startswith("corrupt PDF")
    assert rows["program.txt"]["error"] == "not a text file: binary content in a .txt"
    assert all(rows[name]["verdict"] == "error" for name in bad)


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="no FIFOs here")
def test_a_fifo_in_a_folder_gets_an_error_row_and_exit_status_1(tiny_model_dir, tmp_path):
    import os

    (tmp_path / "a.txt").write_text("A short note about lunch.")
    os.mkfifo(tmp_path / "pipe.txt")
    done = run_cli("classify", "-q", "Is it food?", "--model", tiny_model_dir, tmp_path)
    assert done.returncode == 1, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(os.path.basename(r["id"]), r["verdict"]) for r in rows] == [("a.txt", rows[0]["verdict"]), ("pipe.txt", "error")]
    assert rows[0]["error"] is None and rows[1]["error"].startswith("skipped: not a regular file")


def test_wide_csv_has_one_row_per_document_with_each_questions_verdict_probability_and_label(
        tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("VERDICT_DATA_DIR", str(tmp_path / "data"))
    docs, labels = _labeled(tmp_path, n_per_class=2)
    with open(docs, "a") as fh:
        fh.write(json.dumps({"id": "broken"}) + "\n")  # no text: an error row
    q1, q2 = "Is this software a game?", "=Is it for science?"  # q2 would run as a formula in a spreadsheet
    given = {json.loads(line)["id"]: json.loads(line)["label"] for line in labels.read_text().splitlines()}
    labels.write_text("".join(json.dumps({"id": i, "label": y, "question": q1}) + "\n" for i, y in given.items()))
    common = ["classify", "-q", q1, "-q", q2, "--model", tiny_model_dir, "--jsonl-in", docs, "--labels", labels]
    refused = run_cli(*common, "--wide")  # labels for q1 only: every question asked needs its own
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    labels.write_text(labels.read_text() + "".join(
        json.dumps({"id": i, "label": y, "question": q2}) + "\n" for i, y in list(given.items())[:1] + list(given.items())[-1:]))
    wide = run_cli(*common, "--wide")
    long = run_cli(*common)
    assert wide.returncode == long.returncode == 1, wide.stderr
    rows = list(csv.reader(io.StringIO(wide.stdout)))
    header, body = rows[0], rows[1:]
    assert header == ["name", "path", f"{q1} — verdict", f"{q1} — probability", f"{q1} — label",
                      f"'{q2} — verdict", f"'{q2} — probability", f"'{q2} — label"]
    ids = [json.loads(line).get("id") for line in docs.read_text().splitlines()]
    assert [r[0] for r in body] == ids  # one row per document, input order
    by_id = {(r["id"], r["question"]): r for r in map(json.loads, long.stdout.splitlines())}
    q2_labeled = {json.loads(line)["id"]: json.loads(line)["label"] for line in labels.read_text().splitlines()
                  if json.loads(line)["question"] == q2}
    for row in body:
        for n, (q, labeled) in enumerate(((q1, given), (q2, q2_labeled))):
            verdict, probability, label = row[2 + 3 * n: 5 + 3 * n]
            expected = by_id[(row[0], q)]
            assert verdict == expected["verdict"]
            if expected["error"]:
                assert verdict == "error" and probability == ""
            else:
                assert float(probability) == pytest.approx(expected["probability"], abs=5e-5)
            assert label == ({True: "yes", False: "no", "yes": "yes", "no": "no"}[labeled[row[0]]]
                             if row[0] in labeled else "")
    assert sum(r[4] != "" for r in body) == 4 and sum(r[7] != "" for r in body) == 2


def test_wide_refuses_another_format():
    done = run_cli("classify", "-q", "x", "--wide", "--format", "table", "-", stdin="text")
    assert done.returncode == 2 and "--wide writes CSV" in done.stderr and len(done.stderr.strip().splitlines()) == 1
