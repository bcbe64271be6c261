#!/usr/bin/env python3
"""The obvious case: 100 payment requests and 100 recipes (resources/bench/obvious.jsonl, made by
scripts/make_obvious_case.py), two questions. From the rows of one `verdict classify` run over
them (which carry each document's `score`), the batch decision is made again here with 0 labels
and with one yes and one no (5 random draws), at each target precision: how many documents are
called, and how many of those calls are right.

  verdict classify -q "Does this ask the reader to pay money?" -q "Is this about food or cooking?" \\
      --jsonl-in resources/bench/obvious.jsonl --output rows.jsonl
  python scripts/eval_obvious.py rows.jsonl
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.confidence import metrics
from engine.confidence.decide import DecisionRule, call_quality, decide


def main() -> int:
    rows = [json.loads(line) for line in Path(sys.argv[1]).read_text().splitlines()]
    truth = {}
    for line in (ROOT / "resources" / "bench" / "obvious.jsonl").read_text().splitlines():
        record = json.loads(line)
        truth[record["id"]] = record["labels"]
    print(f"{'question':42} {'AUC':>5} {'target':>6} {'labels':>6} {'called':>7} {'right':>6} {'sep':>5}")
    for question in dict.fromkeys(r["question"] for r in rows):
        mine = [r for r in rows if r["question"] == question and r["score"] is not None]
        s = np.array([r["score"] for r in mine])
        y = np.array([truth[r["id"]][question] for r in mine])
        auc = metrics.auc(y, s)
        for target in (0.8, 0.9):
            rule = DecisionRule(target=target)
            d = decide(s, None, rule)
            made, right = call_quality(y, d.calls)
            print(f"{question[:42]:42} {auc:5.3f} {target:6.2f} {'0':>6} {made / len(y):7.1%} "
                  f"{(right / made if made else float('nan')):6.1%} {d.separation:5.2f}")
            shares, rights = [], []
            rng = np.random.default_rng(0)
            for _ in range(5):
                labels = {int(rng.choice(np.flatnonzero(y))): True, int(rng.choice(np.flatnonzero(~y))): False}
                d = decide(s, labels, rule)
                free = [i for i in range(len(y)) if i not in labels]
                made, right = call_quality(y[free], [d.calls[i] for i in free])
                shares.append(made / len(free))
                rights.append(right / made if made else float("nan"))
            print(f"{'':42} {'':5} {target:6.2f} {'1+1':>6} {np.mean(shares):7.1%} {np.nanmean(rights) if any(np.isfinite(rights)) else float('nan'):6.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
