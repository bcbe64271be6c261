"""The `verdict` command line.

    verdict classify --question TEXT [--question TEXT ...] [--model PATH] [--format jsonl|csv|table | --wide]
                     [--output FILE | --resume FILE] [--jsonl-in FILE] [--backend URL ...] [PATH ...]
    verdict models list [--format table|json] | pull REF | fetch-default | where | export-mlx MODEL OUT_DIR

Exit status: 0 when every document was scored, 1 when any document failed, 2 on usage or model
errors and when the rows can't be written (one line on stderr, no traceback), 130 after Ctrl-C
and 143 after SIGTERM (the rows done so far kept).
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Optional, TextIO

from engine.cli.checks import OneLineParser, UsageError, check_classify_args, check_question
from engine.cli.output import Progress, RowsOut, strict_json
from engine.rows import OutputError, verdicts_by_document
from engine.rows import RowWriter, verdict_row, wide_header, wide_row
from engine.types import Document


MODEL_HELP = ("an MLX folder, a GGUF file, a name from `verdict models list`, or a Hugging Face repo: "
              "org/repo (MLX) or org/repo:QUANT (GGUF) (default: embedded SmolLM2-135M)")

__all__ = ["UsageError", "build_parser", "main"]


# --- input -------------------------------------------------------------------------------------
def read_jsonl_documents(path: str) -> list[Document]:
    """Documents from a JSONL file (`id`, `text`; other keys pass through to the output)."""
    from engine.intake.jsonl import JsonlError, iter_jsonl_documents

    try:
        source = sys.stdin.buffer if path == "-" else open(path, "rb")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        with source:
            return list(iter_jsonl_documents(source))
    except JsonlError as exc:
        raise UsageError(f"--jsonl-in {path}: {exc}") from exc
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc


def read_stdin_document() -> Document:
    """Standard input as one document, read like a file with no name (format and encoding
    from its content); bytes past the intake limit are not read."""
    from engine.intake import extract_bytes, limits
    from engine.intake.normalize import normalize_document

    result = extract_bytes(sys.stdin.buffer.read(limits.MAX_FILE_BYTES + 1))
    doc = Document(id="-", text=result.text, source="-", error=result.error, warnings=list(result.warnings))
    doc.meta = {"kind": result.kind, "truncated": result.truncated}
    return normalize_document(doc)


def read_path_documents(paths: list[str]) -> list[Document]:
    """Documents from files, folders (recursive) and `-` (stdin as one document)."""
    from engine.intake import load_documents

    docs: list[Document] = []
    files: list[str] = []
    for p in paths:
        if p == "-":
            if files:
                docs += load_documents(files)
                files = []
            docs.append(read_stdin_document())
        else:
            files.append(p)
    if files:
        docs += load_documents(files)
    return docs


def read_table_documents(args: argparse.Namespace) -> list[Document]:
    """Documents from the table `check_classify_args` opened (one per row; see
    `engine.intake.table`); how its encoding was guessed, if it was, on stderr."""
    from engine.intake.table import TableError, iter_table_documents

    table = args.table
    if table.csv_format is not None and table.csv_format.warning:
        print(f"verdict: {table.name}: {table.csv_format.warning}", file=sys.stderr)
    try:
        return list(iter_table_documents(table, args.text_column, args.id_column))
    except TableError as exc:
        raise UsageError(str(exc)) from exc


# --- commands ----------------------------------------------------------------------------------
def cmd_classify(args: argparse.Namespace) -> int:
    from engine.classifier import Classifier
    from engine.pipeline import Labels, Pipeline, read_examples
    from engine.model.prompt import LAYOUTS, PromptError

    check_classify_args(args)  # before the model loads: one line, exit 2
    questions = args.question
    labels = None
    if args.labels:
        try:
            labels = Labels.read(args.labels)
        except OSError as exc:
            raise UsageError(f"cannot read {args.labels}: {exc.strerror}") from exc
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
    docs: list[Document] = []
    if args.jsonl_in:
        docs += read_jsonl_documents(args.jsonl_in)
    if args.table:
        docs += read_table_documents(args)
    if args.paths:
        docs += read_path_documents(args.paths)
    options: dict[str, Any] = {}
    if args.layout:
        options["layout"] = LAYOUTS[args.layout]
    if args.instructions:
        options["instructions"] = _read_text_arg(args.instructions)
    if args.max_tokens:
        options["max_tokens"] = args.max_tokens
    if args.examples:
        try:
            options["examples"] = read_examples(args.examples)
        except OSError as exc:
            raise UsageError(f"cannot read {args.examples}: {exc.strerror}") from exc
        except ValueError as exc:
            raise UsageError(f"--examples {exc}") from exc
    failed = False
    todo, asked, keep = docs, questions, None
    if args.resume:  # only the (document, question) rows the file lacks
        from engine.cli.resume import plan_resume

        plan = plan_resume(args.resume, docs, questions)
        todo, asked, keep, failed = plan.documents, plan.questions or questions, plan.wanted, plan.failed
    backend = remote_backend(args) if args.backend else None
    try:
        clf = Classifier.load(args.model, **options) if backend is None else Classifier(
            backend, batch_tokens=1 << 40, max_batch=1 << 20, chunk_documents=max(64, 16 * backend.concurrency),
            **options)
        pipeline = Pipeline(clf, settings=calibration_settings(args))
        try:
            for question in questions:
                clf.encoder_for(question)  # worked examples that can't be placed: one line, before any row
        except PromptError as exc:
            raise UsageError(f"--examples: {exc}") from exc
        if backend is None:
            _say_if_slow()
        if labels is not None:
            try:
                pipeline.fit_labels(questions, docs, labels)
            except ValueError as exc:
                raise UsageError(str(exc)) from exc
        failed |= write_rows(args, pipeline, asked, todo, labels, keep)
    finally:
        if backend is not None:
            backend.close()
    for note in pipeline.notes() + (backend.notes() if backend is not None else []):
        print(f"verdict: {note}", file=sys.stderr)
    return 1 if failed else 0


def run_options(args: argparse.Namespace) -> dict:
    """`Pipeline.run`'s options as `classify` was given them."""
    return {"deliberate": args.deliberate, "decisions": args.decisions, "answer": not args.probe_only}


def write_rows(args: argparse.Namespace, pipeline, questions: list[str], docs: list[Document], labels=None,
               keep=None) -> bool:
    """Run the pipeline and write its rows (appending with --resume; a row for which
    `keep(document index, question)` is False is already there and not written again); True when
    a written row is an error. A failed write raises OutputError naming the file."""
    progress = Progress(len(docs) * len(questions), per_document=len(questions))
    seen: list = []  # the rows, kept for --suggest
    if args.wide and getattr(args, "table", None) is not None:
        from engine.table_out import write_table_wide

        rows = pipeline.run(questions, docs, **run_options(args))
        try:
            failed = write_table_wide(args.table, args.output, (seen.append(v) or v for v in rows) if args.suggest
                                      else rows, docs, questions, given_labels(labels, questions), progress)
        finally:
            progress.close()
        if args.suggest:
            say_suggestions(pipeline, seen, docs, args.suggest)
        return failed
    out = RowsOut.open(args.resume or args.output, append=bool(args.resume))
    failed = False
    writer: Optional[RowWriter] = None  # --wide streams its rows itself
    try:
        if args.wide:
            rows = pipeline.run(questions, docs, **run_options(args))
            failed = write_wide(out, (seen.append(v) or v for v in rows) if args.suggest else rows, docs, questions,
                                labels, progress)
        else:
            writer = RowWriter(out, args.format or "jsonl")
            for v in pipeline.run(questions, docs, **run_options(args)):
                if args.suggest:
                    seen.append(v)
                if keep is None or keep(v.document_index, v.question):
                    failed |= v.error is not None
                    writer.write(verdict_row(docs[v.document_index], v))
                progress.step()
            writer.close()
    except KeyboardInterrupt:
        if writer is not None:
            writer.close()  # a table holds its rows until the end: show the ones done so far
        raise
    finally:
        progress.close()
        out.close()
    if args.suggest:
        say_suggestions(pipeline, seen, docs, args.suggest)
    return failed


def say_suggestions(pipeline, rows: list, docs: list[Document], count: int) -> None:
    """One stderr line per question: the documents to label next, best first."""
    for question, picks in pipeline.suggestions(rows, count, docs).items():
        if picks:
            named = ", ".join(f"{docs[v.document_index].id} (P(yes) {v.probability:.2f})" for v in picks)
            print(f"verdict: label next for {question!r}: {named}", file=sys.stderr)


def remote_backend(args: argparse.Namespace):
    """The inference server --backend names, with the tokenizer of --model (default: the
    embedded default model). Unreachable or unusable servers are a usage error."""
    from engine.remote import RemoteBackend, RemoteError

    if args.model:
        model = args.model
    else:
        from engine.model.sources import find_default_model

        model = find_default_model()

    def say(line: str) -> None:
        print(f"verdict: {line}", file=sys.stderr, flush=True)

    try:
        backend = RemoteBackend.from_options(
            args.backend, model, model=args.backend_model, api_key_env=args.api_key_env,
            concurrency=args.concurrency, timeout=args.timeout, retries=args.retries, backoff=args.backoff,
            report=say)
    except RemoteError as exc:
        raise UsageError(f"--backend {args.backend}: {exc}") from exc
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    say(f"scoring on {backend.describe()}")
    return backend


def write_wide(out: TextIO, rows, docs: list[Document], questions: list[str], labels, progress: Progress) -> bool:
    """Write the wide CSV (one line per document: its verdict, probability and label per
    question) from rows in input order; returns whether any row failed."""
    import csv

    writer = csv.writer(out)
    writer.writerow(wide_header(questions))
    given = given_labels(labels, questions)
    failed = False
    for index, verdicts in verdicts_by_document(rows, progress):
        doc = docs[index]
        failed |= any(v.error is not None for v in verdicts.values())
        writer.writerow(wide_row(doc.id, doc.source, questions, verdicts, given(doc), doc.error))
        out.flush()
    return failed


def given_labels(labels, questions: list[str]):
    """A function from a document to the user's labels of it ('yes'/'no') by question, from --labels."""
    known = {q: labels.for_question(q) for q in questions} if labels is not None else {}

    def given(doc: Document) -> dict[str, str]:
        return {q: "yes" if known[q][doc.id] else "no" for q in questions if doc.id in known.get(q, {})}

    return given


def calibration_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The calibrator settings the user gave on the command line (others come from saved ones)."""
    settings: dict[str, Any] = {}
    if getattr(args, "target_precision", None) is not None:
        settings["target"] = args.target_precision
    if args.uncertain_band is not None:
        settings["band"] = args.uncertain_band
    if args.mass_floor is not None:
        settings["mass_floor"] = args.mass_floor
    if args.calibration:
        settings["shift_method"] = args.calibration
    return settings


def _say_if_slow() -> None:
    """Once a model is loaded: one line on stderr if the CPU path has no fast BLAS."""
    from engine.runtime.numpy_blas import slow_cpu_note

    note = slow_cpu_note()
    if note:
        print(f"verdict: {note}", file=sys.stderr)


def _read_text_arg(value: str) -> str:
    if value.startswith("@"):
        try:
            return Path(value[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read {value[1:]}: {exc.strerror}") from exc
    return value


def cmd_evaluate(args: argparse.Namespace) -> int:
    from engine.classifier import Classifier
    from engine.confidence.evaluate import format_table, read_jsonl
    from engine.gather import evaluate

    args.question = check_question(args.question)
    try:
        records = read_jsonl(args.jsonl_in)
    except OSError as exc:
        raise UsageError(f"cannot read {args.jsonl_in}: {exc.strerror}") from exc
    except ValueError as exc:
        raise UsageError(f"{args.jsonl_in}: {exc}") from exc
    if any("text" not in r or "label" not in r for r in records):
        raise UsageError("every line needs 'text' and 'label'")
    clf = Classifier.load(args.model)
    _say_if_slow()
    try:
        result = evaluate(clf, args.question, records, k=args.folds, probe_layer=args.layer,
                          scan_layers=args.scan_layers)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    print(strict_json(result, indent=1) if args.format == "json" else format_table(result))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    if args.app:
        return bench_app(args)
    from engine.cli.bench import CURVE_LENGTHS, bench
    from engine.cli.scenarios import DEFAULT_SCENARIOS

    figures = bench(
        model=args.model,
        documents=args.documents,
        baseline_docs=args.baseline_docs,
        doc_tokens=args.doc_tokens,
        folder=Path(args.docs) if args.docs else None,
        curve_tokens=args.curve_tokens,
        scenarios=[s for s in args.scenario or DEFAULT_SCENARIOS if s != "none"],
        curve_lengths=args.curve_lengths or CURVE_LENGTHS,
        cold_starts=args.cold_starts,
        table_rows=args.table_rows,
        llama_cpp=not args.no_llama_cpp,
    )
    if args.json:
        Path(args.json).write_text(strict_json(figures, indent=1), encoding="utf-8")
    return 0


def _lengths(value: str) -> tuple[int, ...]:
    try:
        lengths = tuple(int(x) for x in value.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("give token counts separated by commas, e.g. 512,4096") from None
    if not lengths or min(lengths) < 1:
        raise argparse.ArgumentTypeError("token counts must be positive")
    return lengths


def bench_app(args: argparse.Namespace) -> int:
    """`verdict bench --app`: the desktop app's waits (launch to first row, Ask to first verdict),
    measured by `python -m app.bench` in its own process (the engine never imports Qt)."""
    import os
    import subprocess
    import time

    command = [sys.executable, "-m", "app.bench"]
    if args.model:
        command += ["--model", args.model]
    if args.docs:
        command += ["--docs", args.docs]
    if args.json:
        command += ["--json", args.json]
    env = dict(os.environ, VERDICT_BENCH_T0=repr(time.time()))  # launch = now, interpreter start included
    try:
        return subprocess.run(command, env=env, check=False).returncode
    except OSError as exc:
        raise UsageError(f"cannot start the app's benchmark: {exc.strerror}") from exc


def build_parser() -> argparse.ArgumentParser:
    from engine.cli.scenarios import SCENARIOS
    from engine.model.prompt import LAYOUTS

    parser = OneLineParser(prog="verdict", description="Yes/no verdicts about many documents at once.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("classify", help="answer yes/no questions about documents")
    p.add_argument("paths", nargs="*", metavar="PATH", help="files, folders (recursive), or - for stdin")
    p.add_argument("-q", "--question", action="append", required=True, help="the yes/no question (repeatable)")
    p.add_argument("-m", "--model", help=MODEL_HELP)
    p.add_argument("-f", "--format", choices=["jsonl", "csv", "table"], help="row format (default jsonl)")
    p.add_argument("--wide", action="store_true", help="CSV with one row per document: per question its verdict, "
                   "probability and (from --labels) label, as the app exports; with --table-in the table itself "
                   "with these columns added (an .xlsx workbook when --output ends in .xlsx)")
    p.add_argument("-o", "--output", help="write rows here instead of stdout")
    p.add_argument("--jsonl-in", metavar="FILE", help="documents as JSONL lines with 'id' and 'text'")
    t = p.add_argument_group("a table as documents, one per row (CSV, TSV or .xlsx)")
    t.add_argument("--table-in", metavar="FILE", help="a table with a header row: each row is a document; the "
                   "other columns pass through to the output (with --wide: the table comes back with verdict "
                   "columns added)")
    t.add_argument("--text-column", metavar="NAME", action="append", help="the column that holds the text "
                   "(repeatable: several are joined, each under its header)")
    t.add_argument("--id-column", metavar="NAME", help="the column that names each row (default: FILE:row N)")
    t.add_argument("--sheet", metavar="NAME", help="the sheet of an .xlsx workbook (default: the first)")
    p.add_argument("--instructions", help="extra instructions or a rubric (text, or @FILE)")
    p.add_argument("--examples", metavar="FILE", help="worked examples shown to the model before each document "
                   "(JSONL: id, text, label yes/no, optional question; at most 8 per question, as many yes as "
                   "no): prefilled once, free per document")
    p.add_argument("--deliberate", type=int, default=0, metavar="N", help="think about the uncertain ones: "
                   "where one pass leaves a verdict uncertain, let the model write up to N tokens of reasoning, "
                   "then answer (local models only; slower; see README for what it measures)")
    p.add_argument("--probe-only", action="store_true", help="where every question's probability comes from a "
                   "probe on a hidden layer (the model's general probe, or one fitted to labels), stop each prompt "
                   "at that layer: the same probabilities and calls in about 30%% less time on "
                   "the default model, without the model's own answer (raw_margin and label_mass left empty)")
    p.add_argument("--layout", choices=sorted(LAYOUTS), help="prompt layout preset (default: per model family)")
    p.add_argument("--labels", metavar="FILE", help="JSONL of id, label (yes/no) and optional question: "
                   "fits Platt scaling and a probe, saved for later runs")
    p.add_argument("--uncertain-band", type=float, help="with --decisions row: |calibrated log-odds| below this is "
                   "'uncertain' (1.0)")
    p.add_argument("--mass-floor", type=float, help="label mass below this is 'uncertain' (0.1)")
    p.add_argument("--calibration", choices=["none", "contextual", "batch"], help="label-free shift (none)")
    p.add_argument("--target-precision", type=float, metavar="P", help="call yes or no only where the call is right "
                   "with probability at least P, else 'uncertain' (default 0.9)")
    p.add_argument("--decisions", choices=["batch", "row"], default="batch", help="batch (default): decide every "
                   "verdict from the scores of all the documents of the run, so rows come once all are scored; row: "
                   "each row alone by --uncertain-band, as soon as it is scored")
    p.add_argument("--suggest", type=int, default=0, metavar="N", help="print on stderr the N documents per question "
                   "whose labels would bring the most calls")
    p.add_argument("--max-tokens", type=int, metavar="N", help="tokens read per document; the rest is left "
                   "out with a warning (default 16384)")
    p.add_argument("--resume", metavar="FILE", help="continue an interrupted run: rows are appended to FILE "
                   "(JSONL); rows already there, of any question, are kept, and only the missing (document, "
                   "question) rows are scored")
    r = p.add_argument_group("scoring on an inference server (vLLM, llama.cpp server, mlx_lm.server, Ollama)")
    r.add_argument("--backend", metavar="URL", help="the server's OpenAI-style URL, e.g. http://host:8000/v1; "
                   "--model then names the served model's GGUF file or MLX folder (for its tokenizer)")
    r.add_argument("--backend-model", metavar="NAME", help="the model name to ask the server for")
    r.add_argument("--api-key-env", metavar="VAR", help="environment variable holding the server's API key")
    r.add_argument("--concurrency", type=int, default=8, help="requests in flight (default 8)")
    r.add_argument("--timeout", type=float, default=60.0, help="seconds for one request as a whole: connect, "
                   "send and the full answer (default 60); a request that runs out is sent again")
    r.add_argument("--retries", type=int, default=3, help="retries per request on timeouts, 429/5xx and connection "
                   "errors (default 3): a request gives up after about --timeout × (retries + 1), its "
                   "documents then get error rows")
    r.add_argument("--backoff", type=float, default=0.5, help="the first retry waits up to this many seconds, doubling "
                   "each time, with jitter (a Retry-After from the server takes precedence)")
    p.set_defaults(func=cmd_classify)

    e = sub.add_parser("evaluate", help="cross-validated AUC, accuracy, Brier and ECE on labeled documents")
    e.add_argument("-q", "--question", required=True)
    e.add_argument("--jsonl-in", metavar="FILE", required=True, help="lines with id, text and label (true/false)")
    e.add_argument("-m", "--model", help=MODEL_HELP)
    e.add_argument("-f", "--format", choices=["table", "json"], default="table")
    e.add_argument("--folds", type=int, default=5)
    e.add_argument("--layer", type=int, help="probe on the state after this layer (default: 60%% of depth)")
    e.add_argument("--scan-layers", action="store_true", help="also measure a probe on every layer")
    e.set_defaults(func=cmd_evaluate)

    b = sub.add_parser("bench", help="measure this engine against naive prefill and generate-then-parse")
    b.add_argument("-m", "--model", help=MODEL_HELP)
    b.add_argument("--documents", type=int, default=200, help="documents for the engine (default 200)")
    b.add_argument("--baseline-docs", type=int, default=20, help="documents for the slow methods (default 20)")
    b.add_argument("--doc-tokens", type=int, default=150, help="tokens per document (default 150)")
    b.add_argument("--docs", metavar="FOLDER", help="real text to cut documents from (default: resources/labeled)")
    b.add_argument("--curve-tokens", type=int, default=8192, help="tokens per point of the length curve")
    b.add_argument("--scenario", action="append", choices=[*SCENARIOS, "none"],
                   help="(repeatable; 'none': only the length curve; 'probe' and 'five-probe': one and five "
                   "questions, each prompt stopped at the general probe's layer, as --probe-only does)")
    b.add_argument("--curve-lengths", type=_lengths, metavar="N,N,...",
                   help="document lengths of the curve (default 128,256,512,1024,2048,4096,16384)")
    b.add_argument("--cold-starts", type=int, default=3, metavar="N",
                   help="time N cold `verdict classify` runs of one short document, each a new process (default 3; 0: none)")
    b.add_argument("--table-rows", type=int, default=200_000, metavar="N",
                   help="peak memory of reading an N-row table as --table-in does, in a new process (default "
                   "200000; 0: none)")
    b.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    b.add_argument("--no-llama-cpp", action="store_true", help="leave out llama.cpp's server on the same GGUF "
                   "(measured by default when $VERDICT_LLAMA_SERVER or llama-server on PATH is found)")
    b.add_argument("--app", action="store_true", help="time the desktop app instead: launch to first row and model "
                   "ready, Ask to progress and first verdict, labels to all verdicts updated and to the refit, a "
                   "20,000-character paste to progress (the real window, offscreen; --docs: the files it opens)")
    b.set_defaults(func=cmd_bench)

    from engine.cli import models

    models.add_parser(sub)
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    from engine.cli.models import resolve_with_progress
    from engine.model.sources import ModelError
    from engine.model.prompt import PromptError

    parser = build_parser()
    args = parser.parse_args(argv)
    previous = _stop_on_sigterm()
    try:
        if getattr(args, "model", None):  # a path, a listed name or a hub repo: download it here, with progress
            args.model = resolve_with_progress(args.model)
        return args.func(args)
    except (UsageError, ModelError, PromptError) as exc:
        print(f"verdict: error: {exc}", file=sys.stderr)
        return 2
    except OutputError as exc:
        print(f"verdict: error: {exc}", file=sys.stderr)
        _drop_stdout()
        return 2
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, Terminated)
        print(f"verdict: {'terminated' if terminated else 'interrupted'}", file=sys.stderr)
        return 143 if terminated else 130
    except BrokenPipeError:
        return 0
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread: the run stops as on Ctrl-C, keeping the rows done so far."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


def _stop_on_sigterm():
    """Turn SIGTERM into `Terminated` while the command runs; the handler it replaced (None where
    signals can't be handled: not the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_terminated)


def _drop_stdout() -> None:
    """After standard output failed (a closed pipe), send what is left of it nowhere, so that
    exiting does not report the failure a second time."""
    try:
        sys.stdout.flush()
    except OSError:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError):
            pass


if __name__ == "__main__":
    sys.exit(main())
