#!/usr/bin/env python3
"""A simulated user labels documents one at a time, in the order Verdict suggests or at random,
until the batch is called: at least 90% of the unlabeled documents called (or the oracle's
coverage at the target, when that is lower) with at least the target share of the calls right
(`--target`, default 0.8). How many labels did it take?

Batches are the held-out genres of the general set (debian, pydocs; the general probe fit on the
six training genres, as shipped) and, with `--obvious ROWS.jsonl` (the rows of `verdict classify
--decisions row` on resources/bench/obvious.jsonl, which carry each document's score), the
obvious case. The user answers truthfully. Without `--refit` the scores do not change with labels
(the ranking stays the general probe's), so what is measured is the decision layer and the
suggestions; with `--refit` every label refits the general probe as the app and the CLI do (the
anchored refit, L2 10, on the cached states), and the next suggestion reads the refit scores.
`--genres` adds other cached genres of the general set (e.g. the tuning genres fortunes,wordnet).

  python scripts/bench_labeling.py [--cache /work/cache_probe/smollm2-135m-q4_1] [--most 30]
      [--obvious rows.jsonl] [--target 0.8] [--seeds 2] [--refit] [--genres G,...] [--json OUT.json]
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

from eval_decisions import shipped_anchored, shipped_unseen_auc
from eval_general_probe import HELD_OUT, TRAIN, GeneralProbe, features, load_pairs

from engine.confidence.calibrate import platt_prior
from engine.confidence.decide import PlattPrior, DecisionRule, call_quality, decide, oracle_coverage, suggest
from engine.confidence.general import probes_dir
from engine.confidence.calibrate import ANCHOR_L2

TARGET = 0.90


def refit_scores(x: np.ndarray, probe: GeneralProbe, labels: dict[int, bool]) -> tuple[np.ndarray, float | None]:
    """The general probe refit to the labels, anchored on its own weights, as the app and the CLI
    refit it (eval_decisions' R1 at the shipped strength, the labeled documents scored as shipped),
    and what the refit's `Calibrator.unseen_auc` would be; unchanged (and None) without labels."""
    if not labels:
        return x @ probe.w + probe.b, None
    idx = np.array(list(labels), dtype=int)
    y = np.array([labels[i] for i in idx])
    s = shipped_anchored(x, idx, y, probe, ANCHOR_L2)
    return s, shipped_unseen_auc(x, idx, y, probe, s) if y.any() and not y.all() else None


def labels_needed(s: np.ndarray, y: np.ndarray, order: str, rule: DecisionRule, most: int, seed: int,
                  refit: tuple | None = None, prior: PlattPrior | None = None) -> int:
    """Labels until the batch is called (most + 1: not within `most`). `refit`: (x, probe) to refit
    the scores to the labels after each one; `prior`: the scores' Platt prior, as shipped."""
    rng = np.random.default_rng(seed)
    goal = min(0.9, oracle_coverage(y, s, TARGET))
    labels: dict[int, bool] = {}
    unseen = None
    for n in range(most + 1):
        if refit is not None:
            s, unseen = refit_scores(*refit, labels)
        d = decide(s, labels, rule, prior, unseen)
        free = np.array([i not in labels for i in range(len(s))])
        made, right = call_quality(y[free], [c for c, f in zip(d.calls, free) if f])
        if made and made / free.sum() >= goal - 1e-9 and right / made >= TARGET:
            return n
        if n == most:
            break
        if order == "suggested":
            pick = suggest(s, labels, rule, prior=prior, unseen_auc=unseen)[0]
        else:
            pick = int(rng.choice(np.flatnonzero(free)))
        labels[pick] = bool(y[pick])
    return most + 1


def shipped_prior() -> PlattPrior | None:
    """The shipped general probe's Platt prior (the obvious case's rows carry its log-odds)."""
    for path in probes_dir().glob("*.json"):
        return PlattPrior.from_dict(json.loads(path.read_text()).get("info", {}).get("platt_prior"))
    return None


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cache", default="/work/cache_probe/smollm2-135m-q4_1")
    parser.add_argument("--most", type=int, default=30)
    parser.add_argument("--obvious", help="rows of `verdict classify --decisions row` on resources/bench/obvious.jsonl")
    parser.add_argument("--target", type=float, default=0.8, help="target precision of the calls (its gate as shipped)")
    parser.add_argument("--seeds", type=int, default=2, help="random orders per batch")
    parser.add_argument("--refit", action="store_true", help="refit the general probe to the labels after each")
    parser.add_argument("--genres", default="", help="more cached genres to judge (e.g. fortunes,wordnet)")
    parser.add_argument("--json")
    args = parser.parse_args()
    rule = DecisionRule(target=args.target)
    global TARGET
    TARGET = args.target
    batches = []
    if args.cache:
        train = load_pairs(Path(args.cache), TRAIN)
        genres = HELD_OUT + tuple(g for g in args.genres.split(",") if g)
        held = load_pairs(Path(args.cache), genres)
        probe = GeneralProbe({"layers": [21], "diff": True}, 100.0).fit(train)
        logo_z = np.zeros(len(train.y))  # the Bayesian Platt's prior, as eval_decisions fits it
        for g in TRAIN:
            m = train.genre == g
            logo_z[m] = GeneralProbe({"layers": [21], "diff": True}, 100.0).fit(train.take(~m)).decision(train.take(m))
        prior = platt_prior(logo_z, train.y, train.question)
        z = probe.decision(held)
        x = (features(held, probe.spec) - probe.mean) / probe.scale
        for g in genres:
            for q in dict.fromkeys(held.question[held.genre == g]):
                m = (held.genre == g) & (held.question == q)
                batches.append((f"{g}: {q}", z[m], held.y[m], (x[m], probe), prior))
    if args.obvious:
        truth = {json.loads(line)["id"]: json.loads(line)["labels"]
                 for line in (ROOT / "resources" / "bench" / "obvious.jsonl").read_text().splitlines()}
        rows = [json.loads(line) for line in Path(args.obvious).read_text().splitlines()]
        for q in dict.fromkeys(r["question"] for r in rows):
            mine = [r for r in rows if r["question"] == q]
            batches.append((f"obvious: {q}", np.array([r["score"] for r in mine]),
                            np.array([truth[r["id"]][q] for r in mine]), None, shipped_prior()))
    report = []
    print(f"{'batch':70} {'n':>4} {'oracle':>6} {'suggested':>9} {'random':>7}")
    for name, s, y, states, prior in batches:
        refit = states if args.refit else None
        sug = labels_needed(s, y, "suggested", rule, args.most, 0, refit, prior)
        ran = [labels_needed(s, y, "random", rule, args.most, seed, refit, prior) for seed in range(args.seeds)]
        report.append({"batch": name, "n": len(s), "oracle": oracle_coverage(y, s, TARGET), "suggested": sug,
                       "random": float(np.median(ran))})
        r = report[-1]
        print(f"{name[:70]:70} {len(s):4d} {r['oracle']:6.2f} {sug:9d} {r['random']:7.1f}", flush=True)
    cap = args.most + 1
    print(f"median labels (>{args.most} counted as {cap}): suggested {np.median([r['suggested'] for r in report]):.1f}, "
          f"random {np.median([r['random'] for r in report]):.1f}; reached within {args.most}: "
          f"suggested {sum(r['suggested'] < cap for r in report)}/{len(report)}, "
          f"random {sum(r['random'] < cap for r in report)}/{len(report)}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
