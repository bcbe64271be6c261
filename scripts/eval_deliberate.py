#!/usr/bin/env python3
"""Measure think-then-answer (`--deliberate N`) against the one-pass verdict on
the held-out genres' questions (Debian descriptions, Python's library reference) and the labeled
Debian sets. Per question, the same evaluation documents as scripts/eval_examples.py (up to
--per-class yes and no). Every document is scored once in one pass and once after thinking, so
both "think about all" and "think about the uncertain ones" (one-pass general-probe probability
within the uncertain band) can be read off. Reported: AUC, accuracy, ECE of the raw margin and
of the shipped general probe, tokens written and seconds per document.

Usage: python scripts/eval_deliberate.py [--tokens 48] [--per-class 20] [--json OUT.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from eval_examples import question_sets

from engine.confidence import metrics
from engine.types import Document

BAND = 1.0  # the default uncertain band on calibrated log-odds


def run(args) -> dict:
    from engine.classifier import Classifier
    from engine.gather import null_state as general_null_state
    from engine.gather import general_probe as general_probe_for

    clf = Classifier.load(args.model)
    general = general_probe_for(clf)
    layer = general.layer
    rows = []
    for genre, question, evaluation, _ in question_sets(args.per_class, 1):
        docs = [Document(id=r["id"], text=r["text"]) for r in evaluation]
        y = np.array([bool(r["labels"][question]) for r in evaluation])
        start = time.perf_counter()
        once = clf.score(question, docs, layers=[layer])
        one_pass_seconds = (time.perf_counter() - start) / len(docs)
        thought, written, seconds = [], [], []
        for v, d in zip(once, docs):
            start = time.perf_counter()
            t = clf.deliberate(v, d.text, args.tokens, layers=[layer])
            seconds.append(time.perf_counter() - start)
            written.append(len(clf.tokenizer.encode(t.reasoning, special=False)) if t.reasoning else 0)
            thought.append(t)
        m1 = np.array([v.raw_margin for v in once])
        m2 = np.array([v.raw_margin for v in thought])
        null = general_null_state(clf, question, general)  # as the calibrator subtracts it, thinking or not
        z1 = general.decision(np.stack([v.states[layer] for v in once]), null)
        z2 = general.decision(np.stack([v.states[layer] for v in thought]), null)
        uncertain = np.abs(z1) < BAND
        hybrid = np.where(uncertain, z2, z1)  # think about the uncertain ones, read by the general probe
        row = {"genre": genre, "question": question, "n": len(y), "positives": int(y.sum()),
               "uncertain": int(uncertain.sum()), "one_pass_seconds": one_pass_seconds,
               "think_seconds": float(np.mean(seconds)), "think_tokens": float(np.mean(written))}
        for name, score in (("margin", m1), ("think_margin", m2), ("general", z1), ("think_general", z2),
                            ("hybrid_general", hybrid)):
            p = metrics.sigmoid(score)
            row[name] = {"auc": metrics.auc(y, score), "accuracy": metrics.accuracy(y, p), "ece": metrics.ece(y, p)}
        row["example"] = thought[0].reasoning
        rows.append(row)
        print(json.dumps(row), flush=True)
    names = ("margin", "think_margin", "general", "think_general", "hybrid_general")
    summary = {name: {k: float(np.nanmean([r[name][k] for r in rows])) for k in ("auc", "accuracy", "ece")}
               for name in names}
    for name in names:
        summary[name]["worst_auc"] = float(np.nanmin([r[name]["auc"] for r in rows]))
    summary["cost"] = {k: float(np.mean([r[k] for r in rows])) for k in ("one_pass_seconds", "think_seconds", "think_tokens")}
    summary["cost"]["uncertain_share"] = float(sum(r["uncertain"] for r in rows) / sum(r["n"] for r in rows))
    return {"model": clf.model_name, "tokens": args.tokens, "summary": summary, "per_question": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-m", "--model")
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    report = run(args)
    s = report["summary"]
    print("| method | mean AUC | worst question | accuracy | ECE |")
    print("|---|---|---|---|---|")
    for name in ("margin", "think_margin", "general", "think_general", "hybrid_general"):
        print(f"| {name} | {s[name]['auc']:.3f} | {s[name]['worst_auc']:.2f} | {s[name]['accuracy']:.3f} | {s[name]['ece']:.3f} |")
    print(json.dumps(s["cost"]))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
