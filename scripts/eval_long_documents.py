#!/usr/bin/env python3
"""Measure how a long document's verdict should be read from its windows.

Long documents are built from the held-out genres' texts (Debian descriptions, Python's library
reference): --parts texts joined into one document, its label for a question true when any part's
is ("does any part say yes"). With --window-tokens small, each document spans several windows.
Per window, the raw margin and the shipped general probe's log-odds are recorded; the same parts
are also scored alone (one window each) as the reference for calibration.

Rules compared (label-free, the general probe being the calibrator):
  margin-window   the window with the highest raw margin decides; its general log-odds (before)
  calibrated-max  the window with the highest general log-odds decides (now)
  max-minus-log-k the same, minus log(windows): a correction for the max of many chances
  calibrated-mean the mean of the windows' general log-odds

Usage: python scripts/eval_long_documents.py [--documents 60] [--parts 4] [--window-tokens 128] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.confidence import metrics
from engine.types import Document

HELD_OUT = ("debian", "pydocs")


def long_documents(genre: str, count: int, parts: int, seed: int = 0):
    rows = [json.loads(line) for line in open(ROOT / "resources" / "general" / f"{genre}.jsonl")]
    questions = sorted({q for r in rows for q in r["labels"]})
    rng = np.random.default_rng(seed)
    docs, labels = [], {q: [] for q in questions}
    for n in range(count):
        picked = [rows[i] for i in rng.choice(len(rows), size=parts, replace=False)]
        docs.append(Document(id=f"{genre}-long-{n}", text="\n\n".join(r["text"] for r in picked)))
        for q in questions:
            labels[q].append(any(r["labels"][q] for r in picked))
    singles = [rows[i] for i in rng.choice(len(rows), size=count, replace=False)]
    return questions, docs, {q: np.array(v) for q, v in labels.items()}, singles


def summarize(y, score) -> dict:
    """AUC; accuracy and ECE of sigmoid(score). The shipped probe's log-odds already carry its
    Platt scaling (folded into its weights), so for the general probe this is what a user sees."""
    p = metrics.sigmoid(score)
    return {"auc": metrics.auc(y, score), "accuracy": metrics.accuracy(y, p), "ece": metrics.ece(y, p)}


def run(args) -> dict:
    from engine.classifier import Classifier
    from engine.gather import null_state as general_null_state
    from engine.gather import general_probe as general_probe_for

    clf = Classifier.load(args.model, window_tokens=args.window_tokens)
    general = general_probe_for(clf)
    layer = general.layer
    recorded: list = []
    nulls: dict[str, np.ndarray] = {}  # each question's content-free state, as the calibrator subtracts it

    def decision(question, states):
        if question not in nulls:
            nulls[question] = general_null_state(clf, question, general)
        return general.decision(states, nulls[question])

    def record(question, margins, states):
        z = decision(question, np.stack([s[layer] for s in states]))
        recorded.append((np.asarray(margins, dtype=np.float64), z))
        return z

    per_question = []
    for genre in HELD_OUT:
        questions, docs, labels, singles = long_documents(genre, args.documents, args.parts)
        windows: dict[tuple, tuple] = {}
        for v in clf.score_iter(questions, docs, layers=[layer], window_score=record):
            if v.windows > 1:
                windows[(v.document_index, v.question)] = recorded[-1]
            else:  # one window only: its own margin and log-odds
                windows[(v.document_index, v.question)] = (np.array([v.raw_margin]),
                                                          decision(v.question, v.states[layer][None, :]))
        alone = clf.score(questions, [r["text"] for r in singles], layers=[layer])
        for q in questions:
            y = labels[q]
            per = [windows[(i, q)] for i in range(len(docs))]
            k = np.array([len(m) for m, _ in per])
            rules = {
                "margin-window": np.array([z[int(np.argmax(m))] for m, z in per]),
                "calibrated-max": np.array([z.max() for _, z in per]),
                "max-minus-log-k": np.array([z.max() - np.log(len(z)) for _, z in per]),
                "calibrated-mean": np.array([z.mean() for _, z in per]),
                "raw-max-margin": np.array([m.max() for m, _ in per]),
            }
            ys = np.array([bool(r["labels"][q]) for r in singles])
            zs = np.array([decision(q, v.states[layer]) for v in alone if v.question == q])
            row = {"genre": genre, "question": q, "documents": len(y), "positives": int(y.sum()),
                   "mean_windows": float(k.mean()), "single_window": summarize(ys, zs),
                   **{name: summarize(y, score) for name, score in rules.items()}}
            per_question.append(row)
            print(json.dumps(row), flush=True)
    names = ["single_window", "margin-window", "calibrated-max", "max-minus-log-k", "calibrated-mean", "raw-max-margin"]
    summary = {n: {m: float(np.nanmean([r[n][m] for r in per_question])) for m in r0 if m in per_question[0][n]}
               for n in names for r0 in [("auc", "accuracy", "ece")]}
    summary["mean_windows"] = float(np.mean([r["mean_windows"] for r in per_question]))
    return {"model": clf.model_name, "window_tokens": args.window_tokens, "parts": args.parts,
            "summary": summary, "per_question": per_question}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-m", "--model")
    parser.add_argument("--documents", type=int, default=60)
    parser.add_argument("--parts", type=int, default=4)
    parser.add_argument("--window-tokens", type=int, default=128)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    report = run(args)
    print(f"mean windows per long document: {report['summary']['mean_windows']:.1f}")
    print("| rule | mean AUC | accuracy | ECE |")
    print("|---|---|---|---|")
    for name, s in report["summary"].items():
        if isinstance(s, dict):
            print(f"| {name} | {s['auc']:.3f} | {s['accuracy']:.3f} | {s['ece']:.3f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
