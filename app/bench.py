"""`verdict bench --app` (run as ``python -m app.bench``): how soon the real window answers.

The engine may not import Qt, not even lazily, so `verdict bench --app` runs this module in a
subprocess. It starts the real window offscreen on a throw-away session, as ``verdict-app FILES``
would, with the default model (or ``--model``), and times what a user waits for:

  launch -> window shown, first row, model ready
  Ask while the model is still loading -> progress shown, first verdict, all verdicts
  Ask a second question once the model is ready -> progress shown, first verdict, all verdicts
  labels on the second question, in the labeling loop, until its calibrator is fitted (2 yes and
  2 no): each label -> every verdict decided again; the last -> calibrator refit and applied to
  every verdict (and how many labeled documents the refit had to score again: none, when their
  kept states serve)
  a long pasted text -> first progress shown, its parts counted ("0 of 7 parts read"), first
  progress within it, verdict

Calibrators fitted to the bench's labels are kept in a throw-away data folder.
"launch" is when the process was started (``VERDICT_BENCH_T0``, a ``time.time()`` set by the
parent, else this module's first line). The question is typed into the question box and Return
is pressed, through Qt's key events. Prints a table; ``--json FILE`` also writes the figures.
"""
from __future__ import annotations

import time

_T0_LOCAL = time.time()  # before any heavy import: this is as close to launch as the process knows

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable, Optional  # noqa: E402

T0_ENV = "VERDICT_BENCH_T0"
QUESTION = "Does this document ask the reader to pay money?"
SECOND_QUESTION = "Is this document about food or cooking?"
LONG_CHARACTERS = 20_000
TIMEOUT_S = 600
MAX_BENCH_LABELS = 12  # labels the loop gives at most while waiting for 2 yes and 2 no


def samples_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "resources" / "samples"


def long_text(characters: int = LONG_CHARACTERS) -> str:
    """Real prose of about ``characters`` characters: the samples, repeated."""
    texts = [p.read_text(encoding="utf-8") for p in sorted(samples_dir().glob("*")) if p.is_file()]
    out, n = [], 0
    while n < characters:
        for t in texts:
            out.append(t)
            n += len(t) + 2
    return "\n\n".join(out)[:characters]


def run(model: Optional[str], folder: Path, long_characters: int, out=sys.stdout) -> dict:
    """Drive the window; return the figures in seconds."""
    t0 = float(os.environ.get(T0_ENV) or _T0_LOCAL)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QEventLoop, Qt, QTimer
    from PySide6.QtTest import QTest

    from app import dialogs
    from app.application import VerdictApplication
    from app.session_store import DB_FILE, SessionStore
    from app.settings import Settings
    from app.window import MainWindow

    figures: dict[str, float] = _Figures(out)
    problems: list[str] = []
    dialogs.show_error = lambda parent, title, text, details="": problems.append(f"{text} {details}".strip())
    app = VerdictApplication([sys.argv[0]])

    def since(start: float) -> float:
        return round(time.time() - start, 3)

    def wait(done: Callable[[], bool], what: str) -> None:
        loop = QEventLoop()
        deadline = time.time() + TIMEOUT_S

        def check() -> None:
            if done() or problems or time.time() > deadline:
                loop.quit()

        timer = QTimer()
        timer.timeout.connect(check)
        timer.start(5)
        check()
        if not (done() or problems):
            loop.exec()
        timer.stop()
        if problems:
            raise SystemExit(f"verdict bench --app: {what}: {problems[0]}")
        if not done():
            raise SystemExit(f"verdict bench --app: {what}: nothing after {TIMEOUT_S} s")

    def ask(window, question: str) -> float:
        """Type ``question`` into a new question tab and press Return; returns when."""
        bar = window.question_bar
        if bar.questions:
            bar.add_question()
        bar.editor.setFocus()
        bar.editor.clear()
        QTest.keyClicks(bar.editor, question)
        start = time.time()
        QTest.keyClick(bar.editor, Qt.Key.Key_Return)
        return start

    print(f"verdict bench --app: the real window offscreen, the files in {folder}", file=out, flush=True)
    with tempfile.TemporaryDirectory(prefix="verdict-bench-app-") as tmp:
        _own_data_folder(Path(tmp) / "data")
        paths = sorted(str(p) for p in folder.iterdir() if p.is_file())
        store = SessionStore(Path(tmp) / DB_FILE)
        window = MainWindow(Settings(Path(tmp) / "settings.ini"), store, model=model)
        arrivals: list[tuple[float, str]] = []  # (time, question) of every verdict
        progress: list[tuple[float, int, int]] = []
        window.controller.verdictArrived.connect(lambda key, v: arrivals.append((time.time(), v.question)))
        window.controller.progressChanged.connect(lambda done, total, rate, left: progress.append((time.time(), done, total, left)))
        parts: list[tuple[float, int, int]] = []  # (time, parts read, of) of a long document scored alone
        window.controller.documentParts.connect(lambda key, done, total: parts.append((time.time(), done, total)))
        ready: list[float] = []
        window.controller.modelReady.connect(lambda *a: ready.append(time.time()))
        window.show()
        window.add_paths(paths)
        wait(lambda: window.isVisible() and window.windowHandle() is not None and window.windowHandle().isExposed(),
             "window")
        figures["launch_to_window_s"] = since(t0)
        wait(lambda: bool(window.results.rows), "first row")
        app.processEvents()  # painted
        figures["launch_to_first_row_s"] = since(t0)
        figures["model_still_loading_at_ask"] = float(window.controller.loading)

        def shown_after(start: float) -> float:
            """Seconds from ``start`` to the first progress report the status bar showed."""
            wait(lambda: any(t >= start for t, *_ in progress), "progress")
            return round(min(t for t, *_ in progress if t >= start) - start, 3)

        start = ask(window, QUESTION)
        figures["cold_ask_to_progress_s"] = shown_after(start)
        n = len(window.results.rows)
        wait(lambda: any(q == QUESTION for _, q in arrivals), "first verdict")
        figures["cold_ask_to_first_verdict_s"] = round(next(t for t, q in arrivals if q == QUESTION) - start, 3)
        figures["launch_to_first_verdict_s"] = round(next(t for t, q in arrivals if q == QUESTION) - t0, 3)
        wait(lambda: sum(q == QUESTION for _, q in arrivals) >= n and not window.controller.busy, "all verdicts")
        figures["cold_ask_to_all_verdicts_s"] = round(max(t for t, q in arrivals if q == QUESTION) - start, 3)
        figures["launch_to_model_ready_s"] = round(ready[0] - t0, 3) if ready else float("nan")

        start = ask(window, SECOND_QUESTION)
        figures["warm_ask_to_progress_s"] = shown_after(start)
        wait(lambda: any(q == SECOND_QUESTION for _, q in arrivals), "first verdict (second question)")
        figures["warm_ask_to_first_verdict_s"] = round(next(t for t, q in arrivals if q == SECOND_QUESTION) - start, 3)
        wait(lambda: sum(q == SECOND_QUESTION for _, q in arrivals) >= n and not window.controller.busy,
             "all verdicts (second question)")
        figures["warm_ask_to_all_verdicts_s"] = round(max(t for t, q in arrivals if q == SECOND_QUESTION) - start, 3)
        figures["documents"] = float(n)

        # the labeling loop: label the suggested document (by the side it leans to) until the question's
        # calibrator is refit; every label decides all verdicts again before the key returns
        window.question_bar.tabs.setCurrentIndex(1)
        refits: list[float] = []
        window.controller.refitFinished.connect(lambda *a: refits.append(time.time()))  # after the window applied it
        rescored_before = window.session.refit_rescored
        decide_times, last = [], 0.0
        for _ in range(MAX_BENCH_LABELS):
            counts = window.session.label_counts(SECOND_QUESTION)
            if min(counts) >= 2:
                break
            first = window.session.suggested(SECOND_QUESTION, 1)
            if not first:
                break
            row = window.results.row_for_key(first[0])
            leans_yes = row.verdicts[SECOND_QUESTION].probability >= 0.5
            answer = "yes" if (leans_yes if counts[0] < 2 and counts[1] < 2 else counts[0] < 2) else "no"
            window.select_keys(first)
            last = time.time()
            QTest.keyClick(window.table, Qt.Key.Key_Y if answer == "yes" else Qt.Key.Key_N)
            decide_times.append(since(last))  # synchronous: decided before the key returns
        if decide_times:
            figures["labels_given"] = float(len(decide_times))
            figures["label_to_calls_updated_s"] = max(decide_times)
            figures["calls_after_labels"] = float(sum(
                r.verdicts[SECOND_QUESTION].verdict in ("yes", "no") for r in window.results.rows
                if SECOND_QUESTION in r.verdicts))
        if decide_times and min(window.session.label_counts(SECOND_QUESTION)) >= 2:
            wait(lambda: bool(refits), "refit")
            figures["label_to_refit_applied_s"] = round(refits[0] - last, 3)
            figures["refit_rescored_documents"] = float(window.session.refit_rescored - rescored_before)

        if long_characters:
            window.question_bar.tabs.setCurrentIndex(0)
            progress.clear()
            before = len(arrivals)
            start = time.time()
            key = window.add_text(long_text(long_characters))
            wait(lambda: len(arrivals) >= before + 2 and not window.controller.busy, "long document")
            updates = [t for t, done, total, left in progress if t > start]
            figures["long_to_progress_s"] = round(updates[0] - start, 3) if updates else float("nan")
            partial = [t for t, done, total, left in progress if t > start and left >= 0 and done < total]
            figures["long_characters"] = long_characters
            figures["long_tokens"] = next((r.verdicts[QUESTION].tokens for r in window.results.rows if r.key == key), 0)
            figures["long_to_verdict_s"] = round(max(t for t, _ in arrivals[before:]) - start, 3)
            figures["long_progress_updates"] = len(updates)
            figures["long_to_first_partial_progress_s"] = round(partial[0] - start, 3) if partial else float("nan")
            cut = [(t, total) for t, done, total in parts if t > start and total]
            figures["long_to_parts_shown_s"] = round(cut[0][0] - start, 3) if cut else float("nan")
            figures["long_parts"] = float(cut[0][1]) if cut else 0.0
        window.close()
    app.processEvents()

    return dict(figures)


def _own_data_folder(folder: Path) -> None:
    """Calibrators the bench fits (its labels) go to a throw-away data folder, so that neither the
    user's nor the next run's are touched; general probes fitted on this computer come along."""
    import shutil

    from engine.confidence.general import fitted_probes_dir
    from engine.folders import DATA_DIR_ENV

    fitted = fitted_probes_dir()
    folder.mkdir(parents=True)
    if fitted.is_dir():
        shutil.copytree(fitted, folder / fitted.name)
    os.environ[DATA_DIR_ENV] = str(folder)


class _Figures(dict):
    """A dict that prints each figure as it is measured (a slow step shows how far it got)."""

    def __init__(self, out) -> None:
        super().__init__()
        self.out = out

    def __setitem__(self, name: str, value: float) -> None:
        super().__setitem__(name, value)
        print(f"  {name:34s}  {value:g}", file=self.out, flush=True)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="verdict bench --app", description=__doc__.split("\n\n")[0])
    parser.add_argument("-m", "--model", help="an MLX model folder or a .gguf file (default: the embedded model)")
    parser.add_argument("--docs", metavar="FOLDER", help="files to open at launch (default: resources/samples)")
    parser.add_argument("--long-characters", type=int, default=LONG_CHARACTERS,
                        help="a pasted text this long is timed too (0: skip)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    folder = Path(args.docs) if args.docs else samples_dir()
    if not folder.is_dir() or not any(p.is_file() for p in folder.iterdir()):
        print(f"verdict bench --app: error: {folder} is not a folder with files", file=sys.stderr)
        return 2
    figures = run(args.model, folder, args.long_characters)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
