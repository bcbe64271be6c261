"""Entry point: ``verdict-app`` / ``python -m app``.

    python -m app [FILE_OR_FOLDER ...] [--model PATH] [--data-dir DIR] [--settings FILE]
    python -m app --self-test      # load the default model, score a built-in sample, exit 0 / 1

Unrecognised options are passed on to Qt (e.g. ``-platform offscreen``).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

from engine.types import Document

SELF_TEST_QUESTION = "Does this document ask the reader to pay money?"
SELF_TEST_SAMPLE = (
    "Invoice INV-2291 from Northwind Supplies. Amount due: EUR 1,240.00. "
    "This invoice is now 30 days overdue. Please pay the outstanding balance by bank transfer "
    "to IBAN DE44 5001 0517 5407 3249 31 within seven days to avoid a late fee."
)
SELF_TEST_TIMEOUT_S = 300
SELF_TEST_FILE = "overdue-invoice.txt"  # in resources/samples: the packaged app scores its own copy


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="verdict-app", description="Verdict: yes/no questions about many documents.")
    parser.add_argument("paths", nargs="*", metavar="PATH", help="files or folders to add")
    parser.add_argument("--model", help="an MLX model folder or a .gguf file (default: the last one used)")
    parser.add_argument("--data-dir", help="where the session is saved (default: the app data folder)")
    parser.add_argument("--settings", help="an ini file for preferences (default: the platform's store)")
    parser.add_argument("--self-test", action="store_true", help="score a built-in sample with the default model and exit")
    return parser.parse_known_args(argv)


def main(argv: Optional[list[str]] = None) -> int:
    """Run the app; returns the exit status."""
    args, qt_args = parse_args(sys.argv[1:] if argv is None else argv)
    from app.application import binding_problem

    problem = binding_problem()
    if problem:
        print(f"verdict-app: error: {problem}", file=sys.stderr)
        return 2
    if args.self_test:
        return self_test(args.model, qt_args)

    from app.application import VerdictApplication
    from app.session_store import SessionStore
    from app.settings import Settings
    from app.theme import apply_color_scheme
    from app.window import FROM_SETTINGS, MainWindow

    app = VerdictApplication([sys.argv[0], *qt_args])
    settings = Settings(args.settings)
    if settings.color_scheme != "system":
        apply_color_scheme(app, settings.color_scheme)
    store = SessionStore.open_default(args.data_dir)
    window = MainWindow(settings, store, model=args.model if args.model else FROM_SETTINGS)
    window.show()
    app.set_window(window)
    window.model_box.offer_recommended_once(settings)  # a Mac's first launch only
    if args.paths:
        window.add_paths([os.path.abspath(p) for p in args.paths])
    return app.exec()


def self_test(model: Optional[str] = None, qt_args: Optional[list[str]] = None) -> int:
    """Start the real window (hidden, in a throw-away session), score one built-in sample with
    the default model (or ``model``), print the verdict. 0 on success, 1 otherwise."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QEventLoop, QTimer

    from app import dialogs
    from app.application import VerdictApplication
    from app.session_store import DB_FILE, SessionStore
    from app.settings import Settings
    from app.table_model import DONE, ERROR
    from app.window import MainWindow

    app = VerdictApplication([sys.argv[0], *(qt_args or [])])
    problems: list[str] = []
    try:
        model, document = _self_test_inputs(model)
    except (OSError, RuntimeError) as exc:
        print(f"verdict-app self-test: FAILED: {exc}", file=sys.stderr)
        return 1

    def record_error(parent, title: str, text: str, details: str = "") -> None:
        problems.append(f"{text} {details}".strip())

    dialogs.show_error = record_error
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="verdict-self-test-") as tmp:
        store = SessionStore(Path(tmp) / DB_FILE)
        window = MainWindow(Settings(Path(tmp) / "settings.ini"), store, model=model)
        window.question_bar.ask(SELF_TEST_QUESTION)
        (key,) = window.add_documents([("self-test sample", document)])

        loop = QEventLoop()

        def check() -> None:
            row = window.results.row_for_key(key)
            if problems or row is None or row.status in (DONE, ERROR) or time.perf_counter() - start > SELF_TEST_TIMEOUT_S:
                loop.quit()

        timer = QTimer()
        timer.timeout.connect(check)
        timer.start(50)
        loop.exec()
        timer.stop()
        row = window.results.row_for_key(key)
        verdict = row.verdicts.get(SELF_TEST_QUESTION) if row else None
        name = window.controller.model_name
        window.close()
    app.processEvents()
    if problems:
        print(f"verdict-app self-test: FAILED: {problems[0]}", file=sys.stderr)
        return 1
    if verdict is None or verdict.error:
        reason = verdict.error if verdict else f"no verdict within {SELF_TEST_TIMEOUT_S} s"
        print(f"verdict-app self-test: FAILED: {reason}", file=sys.stderr)
        return 1
    bad_row = _bad_row(verdict)
    if bad_row:
        print(f"verdict-app self-test: FAILED: the row is wrong: {bad_row}", file=sys.stderr)
        return 1
    print(
        f"verdict-app self-test: ok: {name}: {SELF_TEST_QUESTION!r} -> {verdict.verdict} "
        f"(P(yes) {verdict.probability:.3f}, margin {verdict.margin:+.3f}, {verdict.tokens} tokens, "
        f"{time.perf_counter() - start:.1f} s in all)"
    )
    return 0


def _self_test_inputs(model: Optional[str]) -> tuple[Optional[str], Document]:
    """The model and document the self-test scores. A packaged app (``sys.frozen``) must use
    its bundled model and sample, so a missing one fails here instead of being fetched."""
    if not getattr(sys, "frozen", False):
        return model, Document(id="self-test", text=SELF_TEST_SAMPLE)
    from engine.model.sources import DEFAULT_MODEL_FILE, resources_dir

    bundled = resources_dir() / "models" / DEFAULT_MODEL_FILE
    if model is None and not bundled.is_file():
        raise RuntimeError(f"the bundled model is missing: {bundled}")
    sample = resources_dir() / "samples" / SELF_TEST_FILE
    if not sample.is_file():
        raise RuntimeError(f"the bundled sample is missing: {sample}")
    return model or str(bundled), Document(id="self-test", text=sample.read_text(encoding="utf-8"), source=str(sample))


def _bad_row(verdict) -> Optional[str]:
    """What is wrong with a scored row, or None: the fields a user reads must be sane."""
    import math

    if verdict.verdict not in ("yes", "no", "uncertain"):
        return f"verdict {verdict.verdict!r}"
    if not math.isfinite(verdict.margin) or not 0.0 <= verdict.probability <= 1.0:
        return f"margin {verdict.margin}, probability {verdict.probability}"
    if not 0.0 < verdict.label_mass <= 1.0 + 1e-6:
        return f"label mass {verdict.label_mass}"
    if verdict.tokens <= 0:
        return f"{verdict.tokens} tokens"
    return None


if __name__ == "__main__":
    sys.exit(main())
