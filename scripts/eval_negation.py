#!/usr/bin/env python3
"""Does the model read a question's negation as the opposite question? A label-free check of how
well it understands a question, tried on the training genres: where it does, the general probe's
log-odds for "Is this not X?" should run against those for "Is this X?" across the documents, and
agree with them less where the probe ranks "Is this X?" poorly.

Per question of each genre (the general probe fit without that genre, as in eval_decisions.py):
the label-free AUC for the question, the AUC of the negated question's log-odds read backwards,
and the rank correlation between the two log-odds over the documents (-1: the model reads "not"
as the opposite; +1: it reads both questions alike), for the probe and for the raw margin.

Usage (the features of the questions and of their negations, once each):
  PYTHONPATH=. python scripts/extract_general_features.py --genres manpages,licences --layers 18,21 \\
      [--cache DIR]
  PYTHONPATH=. python scripts/extract_general_features.py --genres manpages,licences --layers 18,21 \\
      --negated [--cache DIR]
  PYTHONPATH=. python scripts/eval_negation.py manpages licences [--cache DIR/TAG]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from engine.confidence import metrics  # noqa: E402
from eval_decisions import SPEC  # noqa: E402
from eval_general_probe import TRAIN, GeneralProbe, load_pairs  # noqa: E402
from extract_general_features import negated  # noqa: E402


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("genres", nargs="+")
    parser.add_argument("--cache", default="/work/cache_probe/smollm2-135m-q4_1",
                        help="folder of <genre>.npz and <genre>_negated.npz")
    args = parser.parse_args()
    cache = Path(args.cache)
    train = load_pairs(cache, TRAIN)
    rows = []
    print(f"{'genre':10} {'question':58} {'AUC':>5} {'AUC not':>7} {'rho':>6} | {'margin AUC':>10} {'not':>5} {'rho':>6}")
    for genre in args.genres:
        probe = GeneralProbe(SPEC, 100.0).fit(train.take(train.genre != genre))
        asked, denied = load_pairs(cache, [genre]), load_pairs(cache, [f"{genre}_negated"])
        for question in dict.fromkeys(asked.question):
            a = asked.take(np.flatnonzero(asked.question == question))
            b = denied.take(np.flatnonzero(denied.question == negated(str(question))))
            if len(a.y) != len(b.y) or not (a.y == ~b.y).all():
                raise SystemExit(f"{genre}: the negated features do not match {question!r}")
            z, z_not = probe.decision(a), probe.decision(b)
            row = (metrics.auc(a.y, z), metrics.auc(a.y, -z_not), rank_correlation(z, z_not),
                   metrics.auc(a.y, a.margin), metrics.auc(a.y, -b.margin), rank_correlation(a.margin, b.margin))
            rows.append(row)
            print(f"{genre:10} {str(question)[:58]:58} {row[0]:5.2f} {row[1]:7.2f} {row[2]:+6.2f} | "
                  f"{row[3]:10.2f} {row[4]:5.2f} {row[5]:+6.2f}")
    table = np.array(rows)
    print(f"{len(rows)} questions: rho median {np.median(table[:, 2]):+.2f} (probe), {np.median(table[:, 5]):+.2f} "
          f"(margin); correlation of rho with the AUC: {np.corrcoef(table[:, 0], table[:, 2])[0, 1]:+.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
