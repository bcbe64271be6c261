#!/usr/bin/env python3
"""How the shipped decisions fare on small batches: for each held-out, tuning and training question
of the general set (training ones leave-one-genre-out: the probe fitted without the genre), k
labels per class plus N unlabeled documents drawn at random (10 draws); the labels refit the
general probe (strength 10), the labeled documents are scored as shipped (by the refit without
each, `ANCHORS_HELD_OUT`) and the batch is decided as shipped. Prints the share of the unlabeled
documents called and the share of those calls right, and of the "yes" calls alone.
`--balanced`: half of the unlabeled documents "yes" (as in `make demo`'s games), questions with
enough of them only. `--before`: the decisions of decisions_rule_v4.md, on in-sample scores.
`--joint`: decisions_rule_v10.md's candidate; `--records FILE`: the counts, for `eval_decisions.py
choose-v10`.

  python scripts/eval_small_batches.py [--cache /work/cache_probe/smollm2-135m-q4_1] [--balanced] [--before]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from eval_decisions import SPEC, platt_prior, shipped_and_apart, shipped_anchored, shipped_unseen_auc
from eval_general_probe import HELD_OUT, TRAIN, GeneralProbe, features, load_pairs

from engine.confidence.calibrate import ANCHORS_HELD_OUT
from engine.confidence.decide import DecisionRule, call_quality, decide


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cache", default="/work/cache_probe/smollm2-135m-q4_1")
    parser.add_argument("--balanced", action="store_true")
    parser.add_argument("--before", action="store_true", help="the decisions of decisions_rule_v4.md (the "
                        "mixture, then the prevalence ones), on in-sample scores of the labeled documents")
    parser.add_argument("--splits", default="held-out,tuning,training")
    parser.add_argument("--joint", action="store_true", help="decisions_rule_v10.md's candidate: from one label "
                        "of each class, the prevalence decision on joint draws of the likelihood ratio and the share")
    parser.add_argument("--seed", type=int, default=0, help="of the draws (decisions_rule_v13.md judges seed 1)")
    parser.add_argument("--margin", action="store_true", help="the model's raw margin as the score, with no "
                        "prior (a server's, or a model's without a general probe), decided as shipped for it")
    parser.add_argument("--v12", help="decisions_rule_v12.md: append one JSON line per draw (the shipped "
                        "decision's counts and the mixture's) to this file")
    parser.add_argument("--records", help="append one JSON line per split, size and k (the counts) to this file")
    args = parser.parse_args()
    cache = Path(args.cache)
    train = load_pairs(cache, TRAIN)
    probe = GeneralProbe(SPEC, 100.0).fit(train)
    logo_z = np.zeros(len(train.y))
    logo_probe = {}
    for g in TRAIN:
        m = train.genre == g
        logo_probe[g] = GeneralProbe(SPEC, 100.0).fit(train.take(train.genre != g))
        logo_z[m] = logo_probe[g].decision(train.take(m))
    prior = platt_prior(train, logo_z)  # as shipped: fitted on the training genres
    rule = DecisionRule(decisions=((0, "mixture"), (2, "prevalence-q"), (8, "prevalence"))) if args.before else DecisionRule()
    if args.joint:
        rule = DecisionRule(decisions=((0, "none"), (1, "prevalence-qj")))
    held_out = ANCHORS_HELD_OUT and not args.before  # --before: in-sample, as v4 shipped
    rng = np.random.default_rng(args.seed)
    for split, genres in (("held-out", HELD_OUT), ("tuning", ("fortunes", "wordnet")), ("training", TRAIN)):
        if split not in args.splits.split(","):
            continue
        p = train if split == "training" else load_pairs(cache, genres)
        for n_unlabeled in (12, 40, 120):
            for k in (0, 1, 2, 4, 8, 16):
                made = right = total = yes_made = yes_right = 0
                for g in genres:
                    for q in dict.fromkeys(p.question[p.genre == g]):
                        idx = np.flatnonzero((p.genre == g) & (p.question == q))
                        y_all = p.y[idx]
                        need = k + (n_unlabeled // 2 if args.balanced else 2)
                        if y_all.sum() < need or (~y_all).sum() < need:
                            continue
                        used = logo_probe[g] if split == "training" else probe
                        x_all = (features(p.take(idx), SPEC) - used.mean) / used.scale
                        for _ in range(10):
                            yes = rng.choice(np.flatnonzero(y_all), k, replace=False)
                            no = rng.choice(np.flatnonzero(~y_all), k, replace=False)
                            rest = np.setdiff1d(np.arange(len(idx)), np.concatenate([yes, no]))
                            if args.balanced:
                                unlabeled = np.concatenate([
                                    rng.choice(rest[y_all[rest]], n_unlabeled // 2, replace=False),
                                    rng.choice(rest[~y_all[rest]], n_unlabeled // 2, replace=False)])
                            else:
                                unlabeled = rng.choice(rest, min(n_unlabeled, len(rest)), replace=False)
                            sel = np.concatenate([yes, no, unlabeled])
                            x, y = x_all[sel], y_all[sel]
                            labeled = np.arange(2 * k)
                            unseen = None
                            if args.margin:  # the margin never saw the labels: their scores are unseen ones
                                s = p.margin[idx][sel].astype(np.float64)
                            elif k:
                                s = shipped_anchored(x, labeled, y[labeled], used, 10.0, held_out)
                                unseen = shipped_unseen_auc(x, labeled, y[labeled], used, s, held_out)
                            else:
                                s = x @ used.w + used.b
                            d = decide(s, {int(i): bool(y[i]) for i in labeled}, rule, None if args.margin else prior,
                                       unseen)
                            if args.v12:
                                unl = np.arange(len(y)) >= 2 * k
                                with open(args.v12, "a") as out:
                                    out.write(json.dumps({
                                        "split": split, "unlabeled": n_unlabeled, "k": k, "balanced": args.balanced,
                                        "genre": g, "question": str(q),
                                        **shipped_and_apart(y, s, {int(i): bool(y[i]) for i in labeled}, unl,
                                                            None if args.margin else prior, unseen)}, default=float) + "\n")
                            m_, r_ = call_quality(y[2 * k:], d.calls[2 * k:])
                            made, right, total = made + m_, right + r_, total + len(unlabeled)
                            said_yes = [c == "yes" for c in d.calls[2 * k:]]
                            yes_made += sum(said_yes)
                            yes_right += sum(a and b for a, b in zip(said_yes, y[2 * k:]))
                if total:
                    print(f"{split:8} unlabeled {n_unlabeled:3} k {k:2}: called {made / total:.3f} "
                          f"right {right / max(made, 1):.3f}; yes calls {yes_made}, right {yes_right / max(yes_made, 1):.3f}",
                          flush=True)
                    if args.records:
                        with open(args.records, "a") as out:
                            out.write(json.dumps({"split": split, "unlabeled": n_unlabeled, "k": k,
                                                  "balanced": args.balanced, "joint": args.joint, "made": made,
                                                  "right": float(right), "total": total, "yes_made": yes_made,
                                                  "yes_right": float(yes_right)}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
