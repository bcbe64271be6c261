#!/usr/bin/env python3
"""How the shipped decisions fare on small batches: for each held-out and tuning question of the
general set, k labels per class plus N unlabeled documents drawn at random (10 draws); the labels
refit the general probe (strength 10) and the batch is decided as shipped. Prints the share of the
unlabeled documents called and the share of those calls right.

  python scripts/eval_small_batches.py [--cache /work/cache_probe/smollm2-135m-q4_1]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from eval_decisions import SPEC, anchored_scores, platt_prior
from eval_general_probe import HELD_OUT, TRAIN, GeneralProbe, features, load_pairs

from engine.confidence.decide import DecisionRule, call_quality, decide


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cache", default="/work/cache_probe/smollm2-135m-q4_1")
    cache = Path(parser.parse_args().cache)
    train = load_pairs(cache, TRAIN)
    probe = GeneralProbe(SPEC, 100.0).fit(train)
    logo_z = np.zeros(len(train.y))
    for g in TRAIN:
        m = train.genre == g
        logo_z[m] = GeneralProbe(SPEC, 100.0).fit(train.take(train.genre != g)).decision(train.take(m))
    prior = platt_prior(train, logo_z)  # as shipped: fitted on the training genres
    rng = np.random.default_rng(0)
    for split, genres in (("held-out", HELD_OUT), ("tuning", ("fortunes", "wordnet"))):
        p = load_pairs(cache, genres)
        for n_unlabeled in (12, 40, 120):
            for k in (2, 8):
                made = right = total = 0
                for g in genres:
                    for q in dict.fromkeys(p.question[p.genre == g]):
                        idx = np.flatnonzero((p.genre == g) & (p.question == q))
                        y_all = p.y[idx]
                        if y_all.sum() < k + 2 or (~y_all).sum() < k + 2:
                            continue
                        x_all = (features(p.take(idx), SPEC) - probe.mean) / probe.scale
                        for _ in range(10):
                            yes = rng.choice(np.flatnonzero(y_all), k, replace=False)
                            no = rng.choice(np.flatnonzero(~y_all), k, replace=False)
                            rest = np.setdiff1d(np.arange(len(idx)), np.concatenate([yes, no]))
                            unlabeled = rng.choice(rest, min(n_unlabeled, len(rest)), replace=False)
                            sel = np.concatenate([yes, no, unlabeled])
                            x, y = x_all[sel], y_all[sel]
                            labeled = np.arange(2 * k)
                            s = anchored_scores(x, labeled, y[labeled], probe, 10.0)
                            d = decide(s, {int(i): bool(y[i]) for i in labeled}, DecisionRule(), prior)
                            m_, r_ = call_quality(y[2 * k:], d.calls[2 * k:])
                            made, right, total = made + m_, right + r_, total + len(unlabeled)
                print(f"{split:8} unlabeled {n_unlabeled:3} k {k}: called {made / total:.3f} "
                      f"right {right / max(made, 1):.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
