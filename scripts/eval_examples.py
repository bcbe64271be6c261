#!/usr/bin/env python3
"""Measure worked examples in the cached instructions: what 0, 2, 4 and 8
labeled examples of the question do to the raw margin (and to the shipped general probe) on
the held-out genres' questions (Debian descriptions, Python's library reference), which the
general probe never saw and nothing here was tuned on.

Per question: an evaluation set of up to --per-class yes and --per-class no documents, fixed for
every condition; for each seed, 4 yes and 4 no other documents of the same genre drawn at random
as examples (k=2 shows the first of each, k=4 the first two, k=8 all). Reported per k: AUC,
accuracy and ECE of sigmoid(margin), the general probe's AUC and ECE, and the mean head length.

Usage: python scripts/eval_examples.py [--seeds 2] [--per-class 20] [--json OUT.json]
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

from engine.confidence import metrics
from engine.types import Document, Example

HELD_OUT = ("debian", "pydocs")


def question_sets(per_class: int, seeds: int):
    """(genre, question, eval docs, eval labels, [per seed: 4 yes + 4 no example docs])."""
    for genre in HELD_OUT:
        rows = [json.loads(line) for line in open(ROOT / "resources" / "general" / f"{genre}.jsonl")]
        questions = sorted({q for r in rows for q in r["labels"]})
        for question in questions:
            rng = np.random.default_rng(sum(map(ord, question)))
            yes = [r for r in rows if r["labels"].get(question) is True]
            no = [r for r in rows if r["labels"].get(question) is False]
            rng.shuffle(yes)
            rng.shuffle(no)
            n_pos = min(per_class, len(yes) - 4 * seeds)
            evaluation = yes[:n_pos] + no[:per_class]
            spare_yes, spare_no = yes[n_pos:], no[per_class:]
            draws = [spare_yes[4 * s : 4 * s + 4] + spare_no[4 * s : 4 * s + 4] for s in range(seeds)]
            yield genre, question, evaluation, draws


def run(args) -> dict:
    from engine.classifier import Classifier
    from engine.gather import null_state as general_null_state
    from engine.gather import general_probe as general_probe_for

    clf = Classifier.load(args.model)
    general = general_probe_for(clf)
    layers = [general.layer] if general else []
    per_question = []
    for genre, question, evaluation, draws in question_sets(args.per_class, args.seeds):
        docs = [Document(id=r["id"], text=r["text"]) for r in evaluation]
        y = np.array([bool(r["labels"][question]) for r in evaluation])
        conditions = [(0, None)] + [(k, s) for k in (2, 4, 8) for s in range(args.seeds)]
        for k, seed in conditions:
            examples = []
            if k:
                draw = draws[seed]
                examples = [Example(r["text"], True) for r in draw[:4][: k // 2]] + \
                           [Example(r["text"], False) for r in draw[4:][: k // 2]]
            clf.set_examples(examples)
            start = time.perf_counter()
            verdicts = clf.score(question, docs, layers=layers)
            seconds = time.perf_counter() - start
            margin = np.array([v.raw_margin for v in verdicts])
            row = {"genre": genre, "question": question, "k": k, "seed": seed, "n": len(y), "positives": int(y.sum()),
                   "auc": metrics.auc(y, margin), "accuracy": metrics.accuracy(y, metrics.sigmoid(margin)),
                   "ece": metrics.ece(y, metrics.sigmoid(margin)), "seconds": seconds,
                   "head_tokens": len(clf.encoder_for(question).head_ids(question))}
            if general:
                null = general_null_state(clf, question, general)  # with the same examples in the prompt
                z = general.decision(np.stack([v.states[general.layer] for v in verdicts]), null)
                row.update(general_auc=metrics.auc(y, z), general_ece=metrics.ece(y, metrics.sigmoid(z)),
                           general_accuracy=metrics.accuracy(y, metrics.sigmoid(z)))
            per_question.append(row)
            print(json.dumps(row), flush=True)
    summary = {}
    for k in (0, 2, 4, 8):
        rows = [r for r in per_question if r["k"] == k]
        summary[k] = {key: float(np.nanmean([r[key] for r in rows])) for key in rows[0]
                      if isinstance(rows[0][key], float) or key == "head_tokens"}
        summary[k]["worst_auc"] = float(np.nanmin([np.nanmean([r["auc"] for r in rows if r["question"] == q])
                                                  for q in {r["question"] for r in rows}]))
    return {"model": clf.model_name, "per_class": args.per_class, "seeds": args.seeds, "summary": summary,
            "per_question": per_question}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-m", "--model")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    report = run(args)
    print("| examples | head tokens | AUC (margin) | worst question | accuracy | ECE | AUC (general probe) | ECE (general) |")
    print("|---|---|---|---|---|---|---|---|")
    for k, s in report["summary"].items():
        print(f"| {k} | {s['head_tokens']:.0f} | {s['auc']:.3f} | {s['worst_auc']:.2f} | {s['accuracy']:.3f} | "
              f"{s['ece']:.3f} | {s.get('general_auc', float('nan')):.3f} | {s.get('general_ece', float('nan')):.3f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
