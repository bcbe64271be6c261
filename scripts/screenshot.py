"""Screenshot of the real window: the default model scores the sample documents.

    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/screenshot.py [--dark] [--out PATH]

Runs in a throw-away session (temporary data folder, settings and VERDICT_DATA_DIR, so saved
calibrators neither come from nor go to the user's), adds resources/samples/, asks two questions
and waits for every verdict. The 135M default model's zero-shot margins are small, so with the
label-free "uncertain" band nearly every verdict would be "Uncertain": the script labels four
samples for the first question as a user would (overdue-invoice and gym-membership-renewal yes,
lemon-tart-recipe and team-offsite no), waits for the refit to be applied, then selects a
document and saves resources/screenshots/main-window.png (main-window-dark.png with --dark).
The second question stays label-free.

With --sizes, the same session is shot at 720x480, 1024x700, 1280x800 and 1440x900, light and
dark, into docs/screenshots/window-WIDTHxHEIGHT-THEME.png (the README links them).

With --think, the second question's "Think About the Uncertain Ones" is on and the shot shows a
label-free verdict with what the model wrote before answering (resources/screenshots/thinking.png).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import engine  # noqa: F401  (preloads the fast BLAS before MLX)

QUESTIONS = ["Does this ask the reader to pay money?", "Is this about food or cooking?"]  # as in `make demo`
LABELS = {"overdue-invoice.txt": "yes", "gym-membership-renewal.txt": "yes", "account-suspended.eml.txt": "yes",
          "lemon-tart-recipe.md": "no", "team-offsite.txt": "no", "quarterly-rates.txt": "no"}  # QUESTIONS[0]


SIZES = [(720, 480), (1024, 700), (1280, 800), (1440, 900)]
SIZE_NAMES = [f"{w}x{h}" for w, h in SIZES]
SIZES_DIR = ROOT / "docs" / "screenshots"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dark", action="store_true", help="dark appearance")
    parser.add_argument("--out", help="PNG to write")
    parser.add_argument("--model", help="model path (default: the embedded default model)")
    parser.add_argument("--sizes", action="store_true", help=f"shots at {', '.join(SIZE_NAMES)}, light and dark, into docs/screenshots/")
    parser.add_argument("--think", action="store_true", help="the second question thinks about its uncertain ones")
    args = parser.parse_args()
    out = Path(args.out) if args.out else ROOT / "resources" / "screenshots" / (
        "thinking.png" if args.think else "main-window-dark.png" if args.dark else "main-window.png")

    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtGui import QFont

    from app.application import VerdictApplication
    from app.session_store import DB_FILE, SessionStore
    from app.settings import Settings
    from app.table_model import DONE, ERROR
    from app.theme import apply_color_scheme
    from app.window import MainWindow

    app = VerdictApplication([sys.argv[0]])
    font = QFont(app.font())
    font.setPointSizeF(max(font.pointSizeF(), 10.0))
    app.setFont(font)
    apply_color_scheme(app, "dark" if args.dark else "light")
    with tempfile.TemporaryDirectory(prefix="verdict-screenshot-") as tmp:
        os.environ["VERDICT_DATA_DIR"] = str(Path(tmp) / "data")
        window = MainWindow(Settings(Path(tmp) / "settings.ini"), SessionStore(Path(tmp) / DB_FILE), model=args.model)
        window.resize(1360, 820)
        window.show()
        for question in QUESTIONS:
            window.question_bar.add_question()
            window.question_bar.ask(question)
        if args.think:
            from app.options import THINK

            window.session.set_option(QUESTIONS[1], THINK, True)
        window.add_paths([ROOT / "resources" / "samples"])

        start = time.perf_counter()

        def wait_until(done) -> None:
            loop = QEventLoop()

            def check() -> None:
                if done() or time.perf_counter() - start > 300:
                    loop.quit()

            timer = QTimer()
            timer.timeout.connect(check)
            timer.start(100)
            loop.exec()
            timer.stop()

        def scored() -> bool:
            rows = window.results.rows
            return bool(rows) and all(r.status in (DONE, ERROR) for r in rows) and not window.controller.busy

        wait_until(scored)
        refits = []
        window.controller.refitFinished.connect(lambda question, cal: refits.append(cal))
        for row in list(window.results.rows):
            if row.name in LABELS:
                window.set_label(row.key, QUESTIONS[0], LABELS[row.name])
        wait_until(lambda: refits and scored())
        names = [r.name for r in window.results.rows]
        pick = next((r.key for r in window.results.rows if "invoice" in r.name), window.results.rows[0].key)
        shown = 0
        if args.think:
            pick = next((r.key for r in window.results.rows if "lemon" in r.name), pick)
            shown = 1
        window.question_bar.tabs.setCurrentIndex(shown)
        window.select_keys([pick])
        # its paragraphs are scored in the background: the one that points most to the answer is highlighted
        wait_until(lambda: window.detail.highlighted_span() is not None
                   or window.session.passages.get((pick, QUESTIONS[shown]), (0, None, 1))[2] == 0)
        window._refresh_detail()
        settle = QEventLoop()
        QTimer.singleShot(400, settle.quit)  # let the filter counts and repaints catch up
        settle.exec()
        if args.sizes:
            out = SIZES_DIR
            out.mkdir(parents=True, exist_ok=True)
            for scheme in ("light", "dark"):
                window.set_color_scheme(scheme)
                for width, height in SIZES:
                    window.resize(width, height)
                    settle = QEventLoop()
                    QTimer.singleShot(400, settle.quit)  # the splitter and columns settle after a resize
                    settle.exec()
                    window.grab().save(str(out / f"window-{width}x{height}-{scheme}.png"))
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            window.grab().save(str(out))
        window.close()
    how = f"calibrated by {refits[-1].method} on {sum(refits[-1].n_labels)} labels" if refits else "no refit"
    print(f"{out} ({len(names)} documents, {how}, {time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
