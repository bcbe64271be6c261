#!/usr/bin/env python3
"""Measure rankings with labels and decisions over the batch on the cached general-set features,
as `scripts/decisions_rule.md` fixed before the first run.

Every (genre, question) of resources/general is one batch. Leave one training genre out: the
general probe is refit on the other five training genres and judges the genre left out; the
held-out genres (debian, pydocs) are judged by the probe fit on all six. Per batch and k labels
per class (random draws), each ranking (R0 general probe, R1 probe anchored on it, R2 the
calibrator as shipped before) and each decision (D0 as shipped before, D1 Bayesian Platt, D2
mixture, D3 mixture with bootstrap refits) is measured on the unlabeled documents.

Usage:
  python scripts/eval_decisions.py run [--cache /work/cache_probe/smollm2-135m-q4_1] [--out RESULTS.jsonl] [--part i/n]
  python scripts/eval_decisions.py choose RESULTS.jsonl [--json REPORT.json]    # the rule, and the tables
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

from eval_general_probe import HELD_OUT, TRAIN, GeneralProbe, Pairs, features, load_pairs

from engine.confidence import metrics
from engine.confidence.calibrate import ANCHORS_HELD_OUT, NULL_TEXTS, Calibrator
from engine.confidence.calibrate import platt_prior as fit_platt_prior
from engine.confidence.decide import (
    UNCERTAIN,
    mixture,
    YES,
    DecisionRule,
    PlattPrior,
    bayes_platt,
    call_quality,
    decide,
    oracle_coverage,
    prevalence_platt,
)
from engine.confidence.general import GeneralProbe as ShippedProbe
from engine.confidence.probe import Features

KS = (0, 1, 2, 4, 8, 16)
DRAWS = 5
LAMBDAS = (1.0, 10.0, 100.0, 1000.0)
GATES = tuple(np.arange(0, 6.01, 0.5).round(2))
TARGETS = (0.75, 0.8, 0.85, 0.9, 0.95)
TARGET = 0.90
SPEC = {"layers": [21], "diff": True}
PROBE_LAYER = 18
ONLY_R2 = False  # --only-r2: measure only R2 (and D0), for a rerun of that ranking alone
V4 = False  # --v4: only R0 and R1 at the shipped strength; decisions D1, D3 and D4 (decisions_rule_v4.md)
OUT_OF_FOLD = False  # --out-of-fold: labeled documents scored by the refit without them (with --v4)
MARGIN = False  # --margin: only the mixture on the raw margin (decisions_rule_v11.md)
V9 = False  # --v9 (with --v4): only R1's prevalence decisions on the Beta prior, with what v9's gates read
V12 = False  # --v12: the shipped decision and the mixture on the shipped scores, per draw (decisions_rule_v12.md)
SMALL_FLOORS = (13.2, 19.8, 26.4, 39.6)  # decisions_rule_v13.md: the small-batch floor's constant
APART_GATES = (3.0, 3.5, 4.0, 4.5, 5.0, 6.0, 8.0)  # decisions_rule_v12.md's grid (and infinity: never)
MIXTURE = ((0, "mixture"),)  # D2/D3: the mixture whatever the labels
PREVALENCE_BETA = (1.2, 3.2)  # decisions_rule_v8.md: the training questions' shares of yes, by moments


def anchored_scores(x: np.ndarray, labeled: np.ndarray, y: np.ndarray, probe: GeneralProbe, lam: float,
                    fit_x: np.ndarray | None = None) -> np.ndarray:
    """R1: logistic regression on the probe's standardised features, its prior centred on the probe
    (fitted on `fit_x` where given, else on `x[labeled]`)."""
    fit = metrics.logistic_regression(x[labeled] if fit_x is None else fit_x, y, lam, prior_w=probe.w, prior_b=probe.b,
                                      l2_b=1.0)
    return x @ fit.w + fit.b


def held_out_anchored(scores: np.ndarray, x: np.ndarray, labeled: np.ndarray, y: np.ndarray, probe: GeneralProbe,
                      lam: float) -> np.ndarray:
    """`scores` (R1 of `anchored_scores`) with each labeled document's replaced by the refit's
    without it (leave-one-out), as `engine.confidence.calibrate.held_out_scores` does."""
    out = scores.copy()
    for j, i in enumerate(labeled):
        rest = np.delete(np.arange(len(labeled)), j)
        out[i] = anchored_scores(x[i:i + 1], np.arange(0), y[rest], probe, lam, fit_x=x[labeled[rest]])[0]
    return out


def shipped_anchored(x: np.ndarray, labeled: np.ndarray, y: np.ndarray, probe: GeneralProbe, lam: float,
                     held_out: bool = ANCHORS_HELD_OUT) -> np.ndarray:
    """R1 with the labeled documents scored as the product scores them: by the refit without each
    (`held_out_anchored`) from two labels of each class, as `Calibrator.fit_labels` does when
    `held_out` (`ANCHORS_HELD_OUT`); in-sample otherwise."""
    s = anchored_scores(x, labeled, y, probe, lam)
    if held_out and min(int(y.sum()), int((~y).sum())) >= 2:
        s = held_out_anchored(s, x, labeled, y, probe, lam)
    return s


def shipped_unseen_auc(x: np.ndarray, labeled: np.ndarray, y: np.ndarray, probe: GeneralProbe, scores: np.ndarray,
                       held_out: bool = ANCHORS_HELD_OUT) -> float:
    """What `Calibrator.unseen_auc` is for these labels: the AUC of the labeled documents' shipped
    scores (`shipped_anchored`) where those are held out (two labels of each class on), else the
    label-free probe's AUC on them."""
    if held_out and min(int(y.sum()), int((~y).sum())) >= 2:
        return metrics.auc(y, scores[labeled])
    return metrics.auc(y, x[labeled] @ probe.w + probe.b)


def shipped_calibrator(p: Pairs, idx: np.ndarray, labeled: np.ndarray, y: np.ndarray, probe: GeneralProbe,
                       question: str) -> tuple[np.ndarray, Calibrator]:
    """R2 + D0: the calibrator as it shipped before, fitted to the labels; its log-odds for the batch."""
    layers = p.layers
    general = ShippedProbe("0" * 64, 21, probe.mean, probe.scale, probe.w, float(probe.b), subtract_null=True,
                           null_texts=NULL_TEXTS, label_free_band=float("inf"), heldout_auc=1.0, heldout_auc_margin=0.5)
    cal = Calibrator(question=question)
    cal.general, cal.general_null = general, p.null_hidden[idx[0], layers.index(21)].astype(np.float64)
    cal.use_general = True
    if len(labeled):
        rows = idx[labeled]
        feats = Features([str(i) for i in rows], p.margin[rows], np.ones(len(rows)),
                         p.hidden[rows][:, [layers.index(PROBE_LAYER), layers.index(21)]], [PROBE_LAYER, 21])
        cal.fit_labels(feats, list(y), probe_layer=PROBE_LAYER, anchor_l2=None)  # the choice by AUC, as before
    need = cal.layers[0] if cal.layers else None
    z = np.array([cal.log_odds(float(p.margin[i]), None if need is None else p.hidden[i, layers.index(need)])
                  for i in idx])
    return z, cal


def measure(y: np.ndarray, unl: np.ndarray, score: np.ndarray, prob: np.ndarray, calls, sep: float) -> dict:
    yu = y[unl]
    made, right = call_quality(yu, [calls[i] for i in np.flatnonzero(unl)])
    p = np.clip(np.nan_to_num(prob[unl], nan=0.5), 0, 1)
    return {"auc": metrics.auc(yu, score[unl]), "oracle": oracle_coverage(yu, score[unl], TARGET),
            "n": int(unl.sum()), "calls": made, "right": right, "ece": metrics.ece(yu, p), "sep": sep}


def label_draws(y: np.ndarray, seed: int):
    """(k, draw, labeled mask) for every k of KS a batch has enough of each class for (k + 5), DRAWS
    random draws of k labels per class each (one empty draw for k = 0), from the batch's seed."""
    rng = np.random.default_rng(seed)
    for k in KS:
        if k and (y.sum() < k + 5 or (~y).sum() < k + 5):
            continue
        for draw in range(DRAWS if k else 1):
            labeled = np.zeros(len(y), bool)
            if k:
                labeled[rng.choice(np.flatnonzero(y), k, replace=False)] = True
                labeled[rng.choice(np.flatnonzero(~y), k, replace=False)] = True
            yield k, draw, labeled


def batch_draws(p: Pairs, idx: np.ndarray, probe: GeneralProbe, seed: int):
    """A batch's labels y, its standardised features x, the probe's label-free scores z0, and per
    label draw (`label_draws`) the k, the draw, the labeled indices, the labels and the unlabeled
    mask."""
    y = p.y[idx]
    x = (features(p.take(idx), SPEC) - probe.mean) / probe.scale
    z0 = x @ probe.w + probe.b
    draws = []
    for k, draw, labeled in label_draws(y, seed):
        lab_idx = np.flatnonzero(labeled)
        draws.append((k, draw, lab_idx, {int(i): bool(y[i]) for i in lab_idx}, ~labeled))
    return y, x, z0, draws


def ranking_records(base: dict, name: str, y: np.ndarray, unl: np.ndarray, s: np.ndarray, labels: dict,
                    prior: PlattPrior) -> list[dict]:
    """The records every ranking gets: its AUC (no calls) and D1, the Bayesian Platt at TARGET."""
    pb = bayes_platt(s, labels, prior)
    calls = [YES if v >= TARGET else "no" if v <= 1 - TARGET else UNCERTAIN for v in pb]
    return [{**base, "ranking": name, "decision": "auc",
             **measure(y, unl, s, metrics.sigmoid(s), [UNCERTAIN] * len(y), float("nan"))},
            {**base, "ranking": name, "decision": "D1", **measure(y, unl, s, pb, calls, float("nan"))}]


def run_batch(p: Pairs, idx: np.ndarray, probe: GeneralProbe, prior: PlattPrior, question: str, seed: int,
              prior_llr: PlattPrior | None = None):
    """Every (k, draw, ranking, decision) record of one batch."""
    if MARGIN:
        return run_batch_margin(p, idx, question, seed)
    if V12:
        return run_batch_v12(p, idx, probe, prior, question, seed)
    if V4:
        return run_batch_v4(p, idx, probe, prior, prior_llr, question, seed)
    y, x, z0, draws = batch_draws(p, idx, probe, seed)
    out = []
    for k, draw, lab_idx, labels, unl in draws:
        scores = {"R0": z0}
        if k and not ONLY_R2:
            for lam in LAMBDAS:
                scores[f"R1:{lam:g}"] = anchored_scores(x, lab_idx, y[lab_idx], probe, lam)
        r2, cal = shipped_calibrator(p, idx, lab_idx, y[lab_idx], probe, question)
        scores["R2"] = r2
        if ONLY_R2:
            del scores["R0"]
        base = {"question": question, "k": k, "draw": draw}
        d0_calls = [cal.decide(float(v), 1.0) for v in r2]
        out.append({**base, "ranking": "R2", "decision": "D0",
                    **measure(y, unl, r2, metrics.sigmoid(r2), d0_calls, float("nan"))})
        for name, s in scores.items():
            out += ranking_records(base, name, y, unl, s, labels, prior)
            for dname, rule in (("D2", DecisionRule(gate=0.0, refits=0, decisions=MIXTURE)),
                                ("D3", DecisionRule(gate=0.0, decisions=MIXTURE))):
                d = decide(s, labels, rule)
                out.append({**base, "ranking": name, "decision": dname,
                            **measure(y, unl, s, d.probability, d.calls, d.separation)})
    return out


def run_batch_v4(p: Pairs, idx: np.ndarray, probe: GeneralProbe, prior: PlattPrior, prior_llr: PlattPrior,
                 question: str, seed: int):
    """decisions_rule_v4.md: R0 and R1 (strength 10) with D1, D3 (gated when chosen) and D4m/D4q, the
    same label draws as `run_batch`."""
    y, x, z0, batch = batch_draws(p, idx, probe, seed)
    out = []
    for k, draw, lab_idx, labels, unl in batch:
        scores = {"R0": z0}
        if k:
            scores["R1:10"] = anchored_scores(x, lab_idx, y[lab_idx], probe, 10.0)
            if OUT_OF_FOLD and k >= 2:  # each labeled document's score from the refit without it
                scores["R1:10"] = held_out_anchored(scores["R1:10"], x, lab_idx, y[lab_idx], probe, 10.0)
        base = {"question": question, "k": k, "draw": draw}
        if k:  # what the gates of decisions_rule_v9.md read: how the labeled documents' scores rank them
            base["r0_auc"] = metrics.auc(y[lab_idx], z0[lab_idx])
        for name, s in scores.items():
            out += ranking_records(base, name, y, unl, s, labels, prior)
            if V9 and name == "R0" and k:
                continue
            at = {**base, "loo_auc": metrics.auc(y[lab_idx], s[lab_idx])} if k else dict(base)
            if not V9:
                d = decide(s, labels, DecisionRule(gate=0.0, decisions=MIXTURE))
                out.append({**base, "ranking": name, "decision": "D3",
                            **measure(y, unl, s, d.probability, d.calls, d.separation)})
            # D4 on the flat prevalence prior, calling on the mean or on a low quantile of the draws
            # (decisions_rule_v4.md, _v7.md), and "-b" on the Beta prior (decisions_rule_v8.md)
            for suffix, pp, quantiles in (("", (1.0, 1.0), (("D4q", 0.1), ("D4q05", 0.05), ("D4q025", 0.025))),
                                          ("-b", PREVALENCE_BETA, (("D4q", 0.1),))):
                if V9 and suffix != "-b":
                    continue
                draws = prevalence_platt(s, labels, prior_llr, seed=seed, prevalence_prior=pp)
                mean = draws.mean(axis=0)
                at["share"] = float(mean[unl].mean())
                for dname, low, high in (("D4m", mean, mean), *((d, np.quantile(draws, q, axis=0),
                                                                np.quantile(draws, 1 - q, axis=0))
                                                               for d, q in quantiles)):
                    calls = [YES if lo >= TARGET else "no" if hi <= 1 - TARGET else UNCERTAIN
                             for lo, hi in zip(low, high)]
                    out.append({**at, "ranking": name, "decision": dname + suffix,
                                **measure(y, unl, s, mean, calls, float("nan"))})
            if V9:  # decisions_rule_v10.md: the share drawn with each likelihood ratio, the 10th percentile
                draws = prevalence_platt(s, labels, prior_llr, seed=seed, prevalence_prior=PREVALENCE_BETA, joint=True)
                low, high = np.quantile(draws, 0.1, axis=0), np.quantile(draws, 0.9, axis=0)
                calls = [YES if lo >= TARGET else "no" if hi <= 1 - TARGET else UNCERTAIN for lo, hi in zip(low, high)]
                out.append({**at, "ranking": name, "decision": "D4qj-b",
                            **measure(y, unl, s, draws.mean(axis=0), calls, float("nan"))})
    return out


def shipped_and_apart(y: np.ndarray, s: np.ndarray, labels: dict, unl: np.ndarray, prior: PlattPrior,
                      unseen: float | None) -> dict:
    """decisions_rule_v12.md and _v13.md: on one draw's shipped scores, the shipped decision's counts
    on the unlabeled documents (v9_*) and the mixture's at no gate and the smallest small-batch
    floor of `SMALL_FLOORS` (mix_*), its separation and its groups' means. The floor a choice reads
    is applied to these records by `small_floor_at`, so they do not depend on the one shipped."""
    d = decide(s, labels, DecisionRule(), prior, unseen)
    mixed, (no_mean, yes_mean) = mixture(s, labels, DecisionRule(gate=0.0, small_batch_floor=SMALL_FLOORS[0]))
    v9 = call_quality(y[unl], [d.calls[i] for i in np.flatnonzero(unl)])
    mix = call_quality(y[unl], [mixed.calls[i] for i in np.flatnonzero(unl)])
    return {"n": int(unl.sum()), "v9_calls": v9[0], "v9_right": v9[1], "mix_calls": mix[0], "mix_right": mix[1],
            "sep": mixed.separation, "no_mean": no_mean, "yes_mean": yes_mean, "held_back": d.held_back}


def small_floor_at(r: dict, c: float) -> float:
    """The small-batch floor with constant c for a record of `shipped_and_apart` (its batch: the
    unlabeled documents and k labels of each class), as `DecisionRule.gate_for` computes it."""
    return DecisionRule(gate=0.0, small_batch_floor=c).gate_for(r["n"] + 2 * r["k"])


def run_batch_v12(p: Pairs, idx: np.ndarray, probe: GeneralProbe, prior: PlattPrior, question: str,
                  seed: int) -> list[dict]:
    """decisions_rule_v12.md: per label draw (those of `run_batch`), the shipped scores (the
    label-free probe without labels; the refit, labeled documents scored as shipped, with them)
    and `shipped_and_apart` on them."""
    y, x, z0, batch = batch_draws(p, idx, probe, seed)
    out = []
    for k, draw, lab_idx, labels, unl in batch:
        s, unseen = z0, None
        if k:
            s = shipped_anchored(x, lab_idx, y[lab_idx], probe, 10.0)
            unseen = shipped_unseen_auc(x, lab_idx, y[lab_idx], probe, s)
        out.append({"question": question, "k": k, "draw": draw, "auc": metrics.auc(y[unl], s[unl]),
                    "oracle": oracle_coverage(y[unl], s[unl], TARGET),
                    **shipped_and_apart(y, s, labels, unl, prior, unseen)})
    return out


def run_batch_margin(p: Pairs, idx: np.ndarray, question: str, seed: int) -> list[dict]:
    """decisions_rule_v11.md: the mixture on the model's raw margin (labeled documents held at their
    class), the same label draws as `run_batch`; each record with the margin's AUC on the labels."""
    y = p.y[idx]
    margin = p.margin[idx].astype(np.float64)
    out = []
    for k, draw, labeled in label_draws(y, seed):
        lab_idx = np.flatnonzero(labeled)
        labels = {int(i): bool(y[i]) for i in lab_idx}
        base = {"question": question, "k": k, "draw": draw, "ranking": "M"}
        if k:
            base["m_auc"] = metrics.auc(y[lab_idx], margin[lab_idx])
        d = decide(margin, labels, DecisionRule(gate=0.0, decisions=MIXTURE, unseen_auc_from=()))
        out.append({**base, "decision": "D3", **measure(y, ~labeled, margin, d.probability, d.calls, d.separation)})
    return out


def platt_prior(p: Pairs, z: np.ndarray) -> PlattPrior:
    return fit_platt_prior(z, p.y, p.question)


def ship_prior(args) -> int:
    """Write the D1 prior of the shipped general probe into its .json (info.platt_prior), in the
    probe's own score scale: fitted on the training genres' leave-one-genre-out log-odds."""
    from engine.confidence.general import load_general_probe, probes_dir

    cache = Path(args.cache)
    train = load_pairs(cache, TRAIN)
    logo_z = np.zeros(len(train.y))
    for g in TRAIN:
        m = train.genre == g
        logo_z[m] = GeneralProbe(SPEC, 100.0).fit(train.take(train.genre != g)).decision(train.take(m))
    prior = platt_prior(train, logo_z)
    for path in sorted(probes_dir().glob("*.json")):
        meta = json.loads(path.read_text())
        shipped = load_general_probe(meta["fingerprint"], probes_dir())
        a, c = shipped.info.get("platt_from_logo", [1.0, 0.0])
        meta.setdefault("info", {})["platt_prior"] = prior.rescaled(a, c).to_dict()
        path.write_text(json.dumps(meta, indent=1) + "\n")
        print(f"{path.name}: platt_prior {meta['info']['platt_prior']} (raw scale {prior.to_dict()})")
    return 0


def run(args) -> int:
    cache = Path(args.cache)
    train_genres = tuple(args.train.split(","))
    held_genres = tuple(g for g in args.heldout.split(",") if g)
    train = load_pairs(cache, train_genres)
    held = load_pairs(cache, held_genres) if held_genres else None
    tuning_genres = tuple(g for g in args.tuning.split(",") if g)
    tuning = load_pairs(cache, tuning_genres) if tuning_genres else None
    logo_z = np.zeros(len(train.y))
    probes = {}
    for g in train_genres:
        probes[g] = GeneralProbe(SPEC, 100.0).fit(train.take(train.genre != g))
        m = train.genre == g
        logo_z[m] = probes[g].decision(train.take(m))
        print(f"probe without {g}: AUC on it {metrics.auc(train.y[m], logo_z[m]):.3f}", file=sys.stderr, flush=True)
    probes["all"] = GeneralProbe(SPEC, 100.0).fit(train)
    out = open(args.out, "w")
    jobs = []
    for g in train_genres:
        others = train.genre != g
        prior = platt_prior(train.take(others), logo_z[others])
        jobs.append(("logo", g, train, probes[g], prior, prior.without_prevalence))
    prior_all = platt_prior(train, logo_z)
    llr_all = prior_all.without_prevalence
    print(f"priors on all six: Platt {prior_all}, likelihood ratio {llr_all}", file=sys.stderr, flush=True)
    for g in held_genres:
        jobs.append(("heldout", g, held, probes["all"], prior_all, llr_all))
    for g in tuning_genres:
        jobs.append(("tuning", g, tuning, probes["all"], prior_all, llr_all))
    if args.only:
        jobs = [j for j in jobs if j[0] in args.only.split(",")]
    global ONLY_R2, V4, OUT_OF_FOLD, V9, MARGIN, V12
    MARGIN = args.margin
    V12 = args.v12
    ONLY_R2 = args.only_r2
    V4 = args.v4
    V9 = args.v9
    OUT_OF_FOLD = args.out_of_fold
    seed = 0
    part, parts = (int(x) for x in args.part.split("/"))
    done = set()
    for path in args.skip:  # batches whose records an interrupted run already wrote (complete ones only)
        done |= {(r["split"], r["genre"], r["question"]) for r in map(json.loads, open(path))}
    for split, g, p, probe, prior, llr in jobs:
        for q in dict.fromkeys(p.question[p.genre == g]):
            idx = np.flatnonzero((p.genre == g) & (p.question == q))
            seed += 1
            if seed % parts != part or (split, g, str(q)) in done:
                continue
            for record in run_batch(p, idx, probe, prior, str(q), seed, llr):
                out.write(json.dumps({"split": split, "genre": g, **record}, default=float) + "\n")
            out.flush()
            print(f"{split} {g}: {q}", file=sys.stderr, flush=True)
    return 0


# --- the rule ---------------------------------------------------------------------------------------
def pooled(records) -> dict:
    calls = sum(r["calls"] for r in records)
    right = sum(r["right"] for r in records)
    aucs = [r["auc"] for r in records if r["auc"] is not None and np.isfinite(r["auc"])]
    cover = [r["calls"] / r["n"] for r in records]
    return {"auc": float(np.mean(aucs)) if aucs else float("nan"), "coverage": float(np.mean(cover)) if cover else 0.0,
            "precision": right / calls if calls else float("nan"), "calls": calls,
            "oracle": float(np.mean([r["oracle"] for r in records])) if records else float("nan"),
            "ratio": float(np.mean(cover) / np.mean([r["oracle"] for r in records])) if records and
            np.mean([r["oracle"] for r in records]) > 0 else float("nan"),
            "ece": float(np.mean([r["ece"] for r in records if r["ece"] is not None])) if records else float("nan")}


def uncalled(record: dict) -> dict:
    """A record as if its decision had called nothing."""
    return {**record, "calls": 0, "right": 0}


def save_report(path: str | None, report: dict) -> None:
    """`report` as JSON at `path` (None: nowhere), NaN written as null."""
    if path:
        Path(path).write_text(json.dumps(report, indent=1, default=lambda o: None if o != o else o))


def gated(records, gate: float) -> list[dict]:
    """Records with the separation gate applied: a batch below it makes no calls."""
    return [r if r["sep"] is None or not np.isfinite(r["sep"]) or r["sep"] >= gate or r["decision"] not in ("D2", "D3")
            else uncalled(r) for r in records]


def choose(args) -> int:
    rows = [json.loads(line) for path in args.results for line in open(path)]
    for r in rows:
        for key in ("auc", "sep", "ece"):
            r[key] = float("nan") if r.get(key) is None else r[key]
    report = {}
    logo = [r for r in rows if r["split"] == "logo"]
    held = [r for r in rows if r["split"] == "heldout"]

    # 1. ranking: R1's strength per fold from the other five genres (mean AUC over k 1, 2, 4, 8)
    def auc_of(records, ranking, ks):
        return pooled([r for r in records if r["ranking"] == ranking and r["decision"] == "auc" and r["k"] in ks])["auc"]

    lam_for = {}
    for g in TRAIN + ("heldout",):
        others = [r for r in logo if r["genre"] != g]
        lam_for[g] = max(LAMBDAS, key=lambda lam: auc_of(others, f"R1:{lam:g}", (1, 2, 4, 8)))
    report["R1_strength_per_fold"] = lam_for

    def with_r1(records, split_of):
        """R1 at the fold's strength; without labels R1 is R0 (the general probe unchanged)."""
        out = []
        for r in records:
            if r["ranking"].startswith("R1:"):
                if r["ranking"] != f"R1:{lam_for[split_of(r)]:g}":
                    continue
                r = {**r, "ranking": "R1"}
            elif r["ranking"] == "R0" and r["k"] == 0:
                out.append({**r, "ranking": "R1"})
            out.append(r)
        return out

    logo_r = with_r1(logo, lambda r: r["genre"])
    held_r = with_r1(held, lambda r: "heldout")
    ranking_table = {}
    for name in ("R0", "R1", "R2"):
        ranking_table[name] = {k: {"logo": auc_of(logo_r, name, (k,)), "heldout": auc_of(held_r, name, (k,))}
                               for k in KS}
    report["ranking_auc"] = ranking_table
    eligible = [n for n in ranking_table
                if all(ranking_table[n][k]["logo"] >= ranking_table["R0"][0]["logo"] - 0.02 for k in KS
                       if np.isfinite(ranking_table[n][k]["logo"]))]
    chosen_r = max(eligible, key=lambda n: np.nanmean([ranking_table[n][k]["logo"] for k in KS if k]))
    report["ranking_chosen"] = chosen_r
    print(f"ranking AUC (logo / held-out) by k; chosen: {chosen_r} (eligible {eligible}); R1 strengths {lam_for}")
    for name, t in ranking_table.items():
        print(f"  {name}: " + "  ".join(f"k={k}: {t[k]['logo']:.3f}/{t[k]['heldout']:.3f}" for k in KS))

    # 2. decision on the chosen ranking; gates per fold from the other five genres
    def gate_for(records, decision, target=TARGET):
        for gate in GATES:
            sel = gated([r for r in records if r["decision"] == decision], gate)
            if all((pooled([r for r in sel if r["k"] == k])["precision"] >= target)
                   or not pooled([r for r in sel if r["k"] == k])["calls"] for k in KS):
                return float(gate)
        return float("inf")

    decisions = {}
    base_r = chosen_r if chosen_r != "R2" else "R2"
    for dname in ("D0", "D1", "D2", "D3"):
        ranking = "R2" if dname == "D0" else base_r
        recs = [r for r in logo_r if r["ranking"] == ranking and r["decision"] == dname]
        hrecs = [r for r in held_r if r["ranking"] == ranking and r["decision"] == dname]
        gates = {}
        judged = []
        for g in TRAIN:
            gates[g] = gate_for([r for r in recs if r["genre"] != g], dname) if dname in ("D2", "D3") else 0.0
            judged += gated([r for r in recs if r["genre"] == g], gates[g]) if np.isfinite(gates[g]) else \
                [uncalled(r) for r in recs if r["genre"] == g]
        gates["heldout"] = gate_for(recs, dname) if dname in ("D2", "D3") else 0.0
        hjudged = gated(hrecs, gates["heldout"]) if np.isfinite(gates["heldout"]) else \
            [uncalled(r) for r in hrecs]
        table = {k: {"logo": pooled([r for r in judged if r["k"] == k]),
                     "heldout": pooled([r for r in hjudged if r["k"] == k])} for k in KS}
        worst = {}
        for k in KS:
            bad = []
            for q in {r["question"] for r in judged if r["k"] == k}:
                t = pooled([r for r in judged if r["k"] == k and r["question"] == q])
                if t["coverage"] > 0.2 and t["precision"] < 0.8:
                    bad.append(q)
            worst[k] = bad
        decisions[dname] = {"ranking": ranking, "gates": gates, "table": table, "questions_below_80": worst}
    report["decisions"] = decisions
    ok = [d for d in ("D1", "D2", "D3") if all(not decisions[d]["table"][k]["logo"]["calls"]
                                              or decisions[d]["table"][k]["logo"]["precision"] >= TARGET for k in KS)]
    if ok:
        chosen_d = max(ok, key=lambda d: np.mean([decisions[d]["table"][k]["logo"]["ratio"] for k in KS]))
    else:
        def lowest(d):  # over the k at which it made calls
            values = [decisions[d]["table"][k]["logo"]["precision"] for k in KS]
            values = [v for v in values if np.isfinite(v)]
            return min(values) if values else -1.0
        chosen_d = max(("D1", "D2", "D3"), key=lowest)
    report["decision_chosen"] = chosen_d
    report["decision_eligible"] = ok
    print(f"\ndecisions (eligible {ok}; chosen {chosen_d})")
    print("decision ranking   k | LOGO: coverage precision oracle ratio ECE | held-out: coverage precision oracle ratio")
    for dname, d in decisions.items():
        for k in KS:
            a, h = d["table"][k]["logo"], d["table"][k]["heldout"]
            print(f"{dname:8} {d['ranking']:7} {k:2} | {a['coverage']:.3f} {a['precision']:.3f} {a['oracle']:.3f} "
                  f"{a['ratio']:.3f} {a['ece']:.3f} | {h['coverage']:.3f} {h['precision']:.3f} {h['oracle']:.3f} "
                  f"{h['ratio']:.3f}")
        print(f"   gates {d['gates']}; questions <80% with >20% called: "
              f"{ {k: len(v) for k, v in d['questions_below_80'].items()} }")
    # the gate per target precision (decisions_rule.md, the addition): chosen on the six training
    # genres; judged leave-one-genre-out (each genre by gates chosen on the other five) and on the
    # held-out genres (by the gate chosen on all six)
    ranking = report["ranking_chosen"]
    table = {}
    print(f"\ngate per target for {chosen_d} on {ranking} (LOGO judged: coverage/precision by k; held-out likewise)")
    for target in TARGETS:
        recs = [r for r in logo_r if r["ranking"] == ranking and r["decision"] == chosen_d]
        hrecs = [r for r in held_r if r["ranking"] == ranking and r["decision"] == chosen_d]
        judged = []
        for g in TRAIN:
            gate = gate_for([r for r in recs if r["genre"] != g], chosen_d, target)
            part = [r for r in recs if r["genre"] == g]
            judged += gated(part, gate) if np.isfinite(gate) else [uncalled(r) for r in part]
        gate_all = gate_for(recs, chosen_d, target)
        hjudged = gated(hrecs, gate_all) if np.isfinite(gate_all) else [uncalled(r) for r in hrecs]
        table[target] = {"gate": gate_all, "logo": {k: pooled([r for r in judged if r["k"] == k]) for k in KS},
                         "heldout": {k: pooled([r for r in hjudged if r["k"] == k]) for k in KS}}
        cells = "  ".join(f"k={k}: {table[target]['logo'][k]['coverage']:.3f}/{table[target]['logo'][k]['precision']:.2f}"
                          f" | {table[target]['heldout'][k]['coverage']:.3f}/{table[target]['heldout'][k]['precision']:.2f}"
                          for k in KS)
        print(f"  target {target}: gate {gate_all}: {cells}")
    report["gate_per_target"] = table
    save_report(args.json, report)
    return 0


def choose_v2(args) -> int:
    """decisions_rule_v2.md: D3 on R1 (strength 10), the gate per target chosen on the tuning genres;
    judged on each tuning genre by the gate of the other, on the held-out and the training genres."""
    rows = [json.loads(line) for path in args.results for line in open(path)]
    for r in rows:
        for key in ("auc", "sep", "ece"):
            r[key] = float("nan") if r.get(key) is None else r[key]
    ranking = lambda k: "R0" if k == 0 else "R1:10"  # noqa: E731 -- R1 is R0 without labels
    recs = [r for r in rows if r["decision"] == "D3" and r["ranking"] == ranking(r["k"])]
    aucs = [r for r in rows if r["decision"] == "auc" and r["ranking"] == ranking(r["k"])]
    splits = {s: [r for r in recs if r["split"] == s] for s in ("tuning", "heldout", "logo")}
    tuning_genres = sorted({r["genre"] for r in splits["tuning"]})

    def gate_for(records, target):
        for gate in GATES:
            sel = gated(records, gate)
            if all(pooled([r for r in sel if r["k"] == k])["precision"] >= target
                   or not pooled([r for r in sel if r["k"] == k])["calls"] for k in KS):
                return float(gate)
        return float("inf")

    def judge(records, gate):
        return gated(records, gate) if np.isfinite(gate) else [uncalled(r) for r in records]

    def below_80(records, k):
        qs = {(r["genre"], r["question"]) for r in records if r["k"] == k}
        return sum(1 for g, q in qs if (t := pooled([r for r in records if r["k"] == k and r["genre"] == g
                                                    and r["question"] == q]))["coverage"] > 0.2
                   and t["precision"] < 0.8)

    report = {"auc": {s: {k: pooled([r for r in aucs if r["split"] == s and r["k"] == k])["auc"] for k in KS}
                      for s in splits}}
    print("AUC by k (R0 at k = 0, R1 after):")
    for s, t in report["auc"].items():
        print(f"  {s:8} " + "  ".join(f"{k}: {v:.3f}" for k, v in t.items()))
    report["targets"] = {}
    for target in TARGETS:
        gate = gate_for(splits["tuning"], target)
        judged = {"tuning (in sample)": judge(splits["tuning"], gate),
                  "tuning (other genre's gate)": [r for g in tuning_genres for r in judge(
                      [r for r in splits["tuning"] if r["genre"] == g],
                      gate_for([r for r in splits["tuning"] if r["genre"] != g], target))],
                  "held-out": judge(splits["heldout"], gate), "training (LOGO)": judge(splits["logo"], gate)}
        entry = {"gate": gate, "cross_gates": {g: gate_for([r for r in splits["tuning"] if r["genre"] != g], target)
                                               for g in tuning_genres}}
        print(f"\ntarget {target}: gate {gate} (each tuning genre's gate from the other: {entry['cross_gates']})")
        print("  judged on                      k | called  right  oracle  called/oracle  questions<80%")
        for name, part in judged.items():
            entry[name] = {}
            for k in KS:
                t = pooled([r for r in part if r["k"] == k])
                t["questions_below_80"] = below_80(part, k)
                entry[name][k] = t
                print(f"  {name:28} {k:2} | {t['coverage']:.3f}  {t['precision']:.3f}  {t['oracle']:.3f}  "
                      f"{t['ratio']:.3f}  {t['questions_below_80']}")
        report["targets"][target] = entry
    save_report(args.json, report)
    return 0


def choose_v3(args) -> int:
    """decisions_rule_v3.md: per k, D1 or D3 (at its second-version gate for 0.90) by coverage on the
    tuning genres among those reaching 0.90; judged on the held-out and the training genres."""
    from engine.confidence.decide import gate_for_target

    rows = [json.loads(line) for path in args.results for line in open(path)]
    gate = gate_for_target(TARGET)
    ranking = lambda k: "R0" if k == 0 else "R1:10"  # noqa: E731 -- R1 is R0 without labels

    def records(split, decision, k):
        out = [r for r in rows if r["split"] == split and r["decision"] == decision and r["ranking"] == ranking(k)
               and r["k"] == k]
        return gated(out, gate) if decision == "D3" else out

    chosen = {}
    print(f"k | tuning D3 (gate {gate}) | tuning D1 | chosen | held-out | training (LOGO)")
    for k in KS:
        t3, t1 = pooled(records("tuning", "D3", k)), pooled(records("tuning", "D1", k))
        ok = {name: t for name, t in (("D3", t3), ("D1", t1)) if t["calls"] and t["precision"] >= TARGET}
        chosen[k] = max(ok, key=lambda name: ok[name]["coverage"]) if ok else ("D1" if k >= 2 and chosen.get(8) ==
                                                                                  "D1" else "D3")
        h, g = pooled(records("heldout", chosen[k], k)), pooled(records("logo", chosen[k], k))
        print(f"{k:2} | {t3['coverage']:.3f} / {t3['precision']:.3f} | {t1['coverage']:.3f} / {t1['precision']:.3f} | "
              f"{chosen[k]} | {h['coverage']:.3f} / {h['precision']:.3f} (oracle {h['oracle']:.3f}) | "
              f"{g['coverage']:.3f} / {g['precision']:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(chosen, indent=1))
    return 0


def choose_v4(args) -> int:
    """decisions_rule_v4.md: per k, the shipped decision (D3 gated below two labels of each class,
    D1 from two), D4m or D4q by coverage on the tuning genres among those reaching 0.90 with no
    question under 80% where more than 20% is called; judged on the held-out and training genres."""
    from engine.confidence.decide import gate_for_target

    rows = [json.loads(line) for path in args.results for line in open(path)]
    for r in rows:
        for key in ("auc", "sep", "ece"):
            r[key] = float("nan") if r.get(key) is None else r[key]
    gate = gate_for_target(TARGET)
    ranking = lambda k: "R0" if k == 0 else "R1:10"  # noqa: E731 -- R1 is R0 without labels

    def records(split, decision, k):
        if decision == "shipped":
            decision = "D1" if k >= 2 else "D3"
        out = [r for r in rows if r["split"] == split and r["decision"] == decision and r["ranking"] == ranking(k)
               and r["k"] == k]
        return gated(out, gate) if decision == "D3" else out

    def below_80(records_):
        qs = {(r["genre"], r["question"]) for r in records_}
        return sum(1 for g, q in qs if (t := pooled([r for r in records_ if r["genre"] == g and r["question"] == q]))
                   ["coverage"] > 0.2 and t["precision"] < 0.8)

    names = ("shipped", "D4m", "D4q")
    chosen, report = {}, {}
    for k in KS:
        tuning = {name: pooled(records("tuning", name, k)) for name in names}
        ok = [name for name in names if tuning[name]["calls"] and tuning[name]["precision"] >= TARGET
              and below_80(records("tuning", name, k)) == 0]
        if k == 16:
            chosen[k] = chosen[8]
        else:
            chosen[k] = max(ok, key=lambda name: tuning[name]["coverage"]) if ok else "shipped"
        report[k] = {"chosen": chosen[k]}
        for split in ("tuning", "heldout", "logo"):
            for name in names:
                recs = records(split, name, k)
                t = pooled(recs)
                t["questions_below_80"] = below_80(recs)
                report[k][f"{split}:{name}"] = t
    print("k | split    | " + " | ".join(f"{n:>28}" for n in names) + " | chosen")
    for k in KS:
        for split in ("tuning", "heldout", "logo"):
            cells = []
            for name in names:
                t = report[k][f"{split}:{name}"]
                cells.append(f"{t['coverage']:.3f}/{t['precision']:.3f} o{t['oracle']:.2f} q{t['questions_below_80']}"
                             .rjust(28))
            print(f"{k:2} | {split:8} | " + " | ".join(cells) + f" | {chosen[k] if split == 'tuning' else ''}")
        aucs = {split: pooled([r for r in rows if r["split"] == split and r["decision"] == "auc"
                               and r["ranking"] == ranking(k) and r["k"] == k])["auc"] for split in ("heldout", "logo")}
        print(f"   AUC held-out {aucs['heldout']:.3f}, training genres {aucs['logo']:.3f}")
    save_report(args.json, report)
    return 0


def zero_v5(args) -> int:
    """decisions_rule_v5.md: at k = 0, D4 with a likelihood-ratio prior fitted on the tuning genres,
    each tuning genre judged with the prior of the other; held-out and training genres judged with
    the prior of both."""
    cache = Path(args.cache)
    train = load_pairs(cache, TRAIN)
    held = load_pairs(cache, HELD_OUT)
    tuning_genres = ("fortunes", "wordnet")
    tuning = load_pairs(cache, tuning_genres)
    probe_all = GeneralProbe(SPEC, 100.0).fit(train)

    z_tuning = probe_all.decision(tuning)
    z_held = probe_all.decision(held)
    z_train = np.zeros(len(train.y))
    for g in TRAIN:
        m = train.genre == g
        z_train[m] = GeneralProbe(SPEC, 100.0).fit(train.take(train.genre != g)).decision(train.take(m))

    def prior_from(genres) -> PlattPrior:
        m = np.isin(tuning.genre, genres)
        return platt_prior(tuning.take(m), z_tuning[m]).without_prevalence

    def judge(p: Pairs, z: np.ndarray, m: np.ndarray, prior: PlattPrior) -> dict:
        out = {}
        for q in dict.fromkeys(p.question[m]):
            idx = np.flatnonzero(m & (p.question == q))
            y, s = p.y[idx], z[idx]
            draws = prevalence_platt(s, None, prior, draws=60, seed=0)
            for name, low, high in (("Zm", draws.mean(axis=0), draws.mean(axis=0)),
                                    ("Zq", np.quantile(draws, 0.1, axis=0), np.quantile(draws, 0.9, axis=0))):
                calls = [YES if lo >= TARGET else "no" if hi <= 1 - TARGET else UNCERTAIN for lo, hi in zip(low, high)]
                made, right = call_quality(y, calls)
                out.setdefault(name, []).append({"question": str(q), "n": len(y), "calls": made, "right": right,
                                                 "oracle": oracle_coverage(y, s, TARGET), "auc": metrics.auc(y, s),
                                                 "ece": 0.0})
        return out

    def summary(records):
        t = pooled(records)
        t["questions_below_80"] = sum(1 for r in records if r["calls"] / r["n"] > 0.2 and r["right"] / r["calls"] < 0.8)
        return t

    report = {"cross": {}, "heldout": {}, "training": {}}
    for g in tuning_genres:
        other = [x for x in tuning_genres if x != g]
        prior = prior_from(other)
        print(f"prior from {other}: {prior}", file=sys.stderr)
        for name, recs in judge(tuning, z_tuning, tuning.genre == g, prior).items():
            report["cross"].setdefault(name, {})[g] = summary(recs)
    both = prior_from(list(tuning_genres))
    print(f"prior from both: {both}", file=sys.stderr)
    for name, recs in judge(held, z_held, np.ones(len(held.y), bool), both).items():
        report["heldout"][name] = summary(recs)
    for name, recs in judge(train, z_train, np.ones(len(train.y), bool), both).items():
        report["training"][name] = summary(recs)
    qualifying = [n for n in ("Zm", "Zq") if all(
        t["calls"] and t["precision"] >= TARGET and t["questions_below_80"] == 0 for t in report["cross"][n].values())]
    coverage = {n: np.mean([t["coverage"] for t in report["cross"][n].values()]) for n in ("Zm", "Zq")}
    chosen = max(qualifying, key=lambda n: coverage[n]) if qualifying else "mixture"
    report["chosen"] = chosen
    report["prior_both"] = both.to_dict()
    for split in ("cross", "heldout", "training"):
        for name, t in report[split].items():
            rows = t.items() if split == "cross" else [("all", t)]
            for g, x in rows:
                print(f"{split:9} {name} {g:9} called {x['coverage']:.3f} right {x['precision']:.3f} "
                      f"oracle {x['oracle']:.3f} AUC {x['auc']:.3f} q<80 {x['questions_below_80']}")
    print(f"chosen at k = 0: {chosen}")
    save_report(args.json, report)
    return 0


def judged(recs, name: str) -> dict:
    """`pooled`, with the questions under 80% where more than 20% is called, and whether the
    candidate `name` qualifies by v6's rule (decisions_rule_v6.md)."""
    t = pooled(recs)
    qs = {(r["genre"], r["question"]) for r in recs}
    t["questions_below_80"] = sum(
        1 for g, q in qs if (u := pooled([r for r in recs if r["genre"] == g and r["question"] == q]))
        ["coverage"] > 0.2 and u["precision"] < 0.8)
    # a decision that called nothing has no precision to qualify with; "none" always qualifies
    t["qualifies"] = bool(name == "none" or (t["calls"] and t["precision"] >= TARGET and t["questions_below_80"] == 0))
    return t


def reported(report: dict, key: str, t: dict, label: str, chosen: bool) -> None:
    """`t` (of `judged`) kept in `report` under `key`, and printed as one line after `label`."""
    report[key] = t
    print(f"{label} called {t['coverage']:.3f} right {t['precision']:.3f} oracle {t['oracle']:.3f} "
          f"q<80 {t['questions_below_80']}{' <- chosen' if chosen else ''}")


def load_records(paths) -> list[dict]:
    """Records of `run`, with missing AUCs, separations and ECEs as NaN."""
    rows = [json.loads(line) for path in paths for line in open(path)]
    for r in rows:
        for key in ("auc", "sep", "ece"):
            r[key] = float("nan") if r.get(key) is None else r[key]
    return rows


def choose_v6(args) -> int:
    """decisions_rule_v6.md: per k, the mixture, D4m or D4q on in-sample (IS) or leave-one-out (LOO)
    scores of the labeled documents, or none, chosen on the training genres (leave-one-genre-out);
    judged on the held-out and tuning genres. With `args.quantiles` (decisions_rule_v7.md), D4q05
    and D4q025 too, on the out-of-fold records alone."""
    from engine.confidence.decide import gate_for_target

    scored = {"IS": load_records(args.in_sample or []), "LOO": load_records(args.out_of_fold)}
    if not scored["IS"]:  # decisions_rule_v7.md: k 0 and 1 are in-sample in the out-of-fold records
        scored["IS"] = [r for r in scored["LOO"] if r["k"] < 2]
    gate = gate_for_target(TARGET)
    ranking = lambda k: "R0" if k == 0 else "R1:10"  # noqa: E731

    def records(scoring, split, name, k):
        if name == "none":
            return [uncalled(r) for r in records(scoring, split, "D4m", k)]
        decision = "D3" if name == "mixture" else name
        out = [r for r in scored[scoring] if r["split"] == split and r["decision"] == decision
               and r["ranking"] == ranking(k) and r["k"] == k]
        return gated(out, gate) if decision == "D3" else out

    summary = judged
    d4 = (("D4m", "D4q", "D4q05", "D4q025") if args.quantiles else ("D4m", "D4q")) + (
        ("D4m-b", "D4q-b") if getattr(args, "beta", False) else ())

    def candidates(k, scoring):
        if k == 0:
            return [("IS", "mixture"), ("IS", "none")]
        if k == 1:
            return [("IS", "mixture"), *(("IS", d) for d in d4), ("IS", "none")]
        return [*((scoring, d) for d in d4), (scoring, "none")]

    def best(k, scoring):
        tuned = [(c, summary(records(c[0], "logo", c[1], k), c[1])) for c in candidates(k, scoring)]
        ok = [(c, t) for c, t in tuned if t["qualifies"]]
        return max(ok, key=lambda ct: (ct[1]["coverage"], ct[0][1] != "none"))  # "none" always qualifies

    # 1. the scoring of labeled documents: the larger mean coverage of the best D4 at k 2, 4, 8
    # (decisions_rule_v7.md keeps v6's: leave-one-out)
    mean_cover = {sc: float(np.mean([best(k, sc)[1]["coverage"] for k in (2, 4, 8)]))
                  for sc in ("IS", "LOO") if scored[sc]}
    scoring = "LOO" if mean_cover.get("LOO", -1) > mean_cover.get("IS", -1) else "IS"
    print(f"scoring of labeled documents: IS {mean_cover['IS']:.3f}, LOO {mean_cover['LOO']:.3f} -> {scoring}")
    # 2. per k
    chosen, report = {}, {"scoring": scoring, "mean_coverage": mean_cover}
    for k in KS:
        chosen[k] = chosen[8] if k == 16 else best(k, scoring)[0]
        report[k] = {"chosen": list(chosen[k])}
        others = [("IS", d) for d in d4] if k >= 2 and scoring == "LOO" and args.in_sample else []
        for c in candidates(k, scoring) + others:
            for split in ("logo", "heldout", "tuning"):
                reported(report[k], f"{split}:{c[0]}-{c[1]}", summary(records(c[0], split, c[1], k), c[1]),
                         f"k {k:2} {split:8} {c[0]:3}-{c[1]:8}", c == chosen[k] and split == "logo")
    print("chosen: " + ", ".join(f"k {k}: {'-'.join(chosen[k])}" for k in KS))
    save_report(args.json, report)
    return 0


V9_SHARE = 0.85  # decisions_rule_v9.md: about the largest share of yes of any training question (0.83)
V9_GATES = {  # gate -> whether a draw's labels pass it
    "open": lambda r: True,
    "auc75": lambda r: r.get("loo_auc", float("nan")) >= 0.75,
    "auc100": lambda r: r.get("loo_auc", float("nan")) >= 1.0,
    "auc75+share": lambda r: r.get("loo_auc", float("nan")) >= 0.75 and r["share"] <= V9_SHARE,
    "agree": lambda r: r.get("r0_auc", float("nan")) >= 1.0,
    "agree+share": lambda r: r.get("r0_auc", float("nan")) >= 1.0 and r["share"] <= V9_SHARE,
}


def gated_by_labels(rows: list[dict], split: str, candidate: tuple[str, str], k: int) -> list[dict]:
    """The R1 records at k in `split` of the candidate (decision, gate of `V9_GATES`), those whose
    labels fail the gate uncalled; "none": D4m-b's records, all uncalled."""
    decision, gate = candidate
    out = [r for r in rows if r["split"] == split and r["ranking"] == "R1:10" and r["k"] == k
           and r["decision"] == ("D4m-b" if decision == "none" else decision)]
    if decision == "none":
        return [uncalled(r) for r in out]
    return [r if V9_GATES[gate](r) else uncalled(r) for r in out]


def choose_v9(args) -> int:
    """decisions_rule_v9.md: per k, D4m-b or D4q-b under a gate on the labels (the leave-one-out
    AUC of the labeled documents, the label-free score's agreement with them, the estimated share of
    yes), or none; chosen on the training genres (leave-one-genre-out), judged on the held-out and
    tuning genres."""
    rows = load_records(args.results)

    def candidates(k):
        gates = ("open", "agree", "agree+share") if k == 1 else ("open", "auc75", "auc100", "auc75+share")
        return [(d, g) for d in ("D4m-b", "D4q-b") for g in gates] + [("none", "")]

    chosen, report = {}, {}
    for k in (1, 2, 4, 8, 16):
        tuned = [(c, judged(gated_by_labels(rows, "logo", c, k), c[0])) for c in candidates(k)]
        best = max(((c, t) for c, t in tuned if t["qualifies"]), key=lambda ct: (ct[1]["coverage"], ct[0][0] != "none"))
        chosen[k] = chosen[8] if k == 16 else best[0]
        report[k] = {"chosen": list(chosen[k])}
        for c in candidates(k):
            for split in ("logo", "heldout", "tuning"):
                reported(report[k], f"{split}:{c[0]}:{c[1]}", judged(gated_by_labels(rows, split, c, k), c[0]),
                         f"k {k:2} {split:8} {c[0]:5} {c[1]:11}", c == chosen[k] and split == "logo")
    print("chosen: " + ", ".join(f"k {k}: {' '.join(chosen[k])}" for k in chosen))
    save_report(args.json, report)
    return 0


V9_CHOICE = {1: ("D4q-b", "agree"), 2: ("D4m-b", "auc75"), 4: ("D4q-b", "auc75"), 8: ("D4m-b", "open")}


def choose_v10(args) -> int:
    """decisions_rule_v10.md: per k, v9's choice (X) or the same gate on joint draws of the
    likelihood ratio and the share (X-j), by whole batches and small batches of the training
    genres; judged on the held-out and tuning genres."""
    rows = load_records(args.results)
    small = [json.loads(line) for line in open(args.small)]

    def small_pooled(split, joint, k, balanced=None):
        got = [r for r in small if r["split"] == split and r["joint"] == joint and r["k"] == k
               and (balanced is None or r["balanced"] == balanced)]
        made, right, total = (sum(r[key] for r in got) for key in ("made", "right", "total"))
        return {"coverage": made / total if total else float("nan"),
                "precision": right / made if made else float("nan"), "calls": made}

    chosen, report = {}, {}
    for k in (1, 2, 4, 8):
        x = V9_CHOICE[k]
        candidates = {"X": (x, False), "X-j": (("D4qj-b", x[1]), True)}
        verdicts = {}
        for name, (cand, joint) in candidates.items():
            whole = judged(gated_by_labels(rows, "logo", cand, k), cand[0])
            sm = small_pooled("training", joint, k)
            ok = whole["qualifies"] and (not sm["calls"] or sm["precision"] >= TARGET)
            verdicts[name] = (ok, whole["coverage"])
            print(f"k {k:2} training {name:3} whole {whole['coverage']:.3f} / {whole['precision']:.3f} "
                  f"q<80 {whole['questions_below_80']}; small {sm['coverage']:.3f} / {sm['precision']:.3f} "
                  f"-> {'qualifies' if ok else 'no'}")
            for split in ("heldout", "tuning"):
                w = judged(gated_by_labels(rows, split, cand, k), cand[0])
                print(f"k {k:2} {split:8} {name:3} whole {w['coverage']:.3f} / {w['precision']:.3f} "
                      f"q<80 {w['questions_below_80']}")
            for split in ("held-out", "tuning", "training"):
                for balanced in (False, True):
                    s = small_pooled(split, joint, k, balanced)
                    print(f"k {k:2} {split:8} {name:3} small {'half yes' if balanced else 'natural '} "
                          f"{s['coverage']:.3f} / {s['precision']:.3f}")
        qualified = [n for n, (ok, _) in verdicts.items() if ok]
        chosen[k] = max(qualified, key=lambda n: verdicts[n][1]) if qualified else "X"
        report[k] = {"chosen": chosen[k], "verdicts": verdicts}
    chosen[16] = chosen[8]
    print("chosen: " + ", ".join(f"k {k}: {c}" for k, c in chosen.items()))
    save_report(args.json, report)
    return 0


def choose_v11(args) -> int:
    """decisions_rule_v11.md: per k, the mixture on the raw margin (at the 90% gate, under v9's
    floor on the labels) or none, on every question of every split."""
    from engine.confidence.decide import gate_for_target

    rows = load_records(args.results)
    floor = DecisionRule().unseen_auc_floor
    gate = gate_for_target(TARGET)

    def records(k, split=None):
        out = gated([r for r in rows if r["k"] == k and (split is None or r["split"] == split)], gate)
        return [r if not k or r.get("m_auc", float("nan")) >= floor(k) else uncalled(r)
                for r in out]

    chosen, report = {}, {}
    for k in (0, 1, 2, 4, 8):
        t = judged(records(k), "mixture")
        chosen[k] = "mixture" if t["qualifies"] or not t["calls"] else "none"
        report[k] = {"chosen": chosen[k]}
        reported(report[k], "all", t, f"k {k:2} all      mixture", False)
        for split in ("logo", "heldout", "tuning"):
            reported(report[k], split, judged(records(k, split), "mixture"), f"k {k:2} {split:8} mixture", False)
    chosen[16] = chosen[8]
    print("chosen: " + ", ".join(f"k {k}: {c}" for k, c in chosen.items()))
    save_report(args.json, report)
    return 0


def apart_counts(r: dict, gate: float, straddle: bool, floor: float) -> tuple[int, int, bool]:
    """decisions_rule_v12.md's candidate A(gate, straddle) on one record of `run --v12` (or of
    `eval_small_batches.py --v12`): (calls, right, whether the mixture decided), as
    `DecisionRule(apart_from=((k, gate),), apart_straddles=straddle, small_batch_floor=floor)` decides."""
    mix = (not r["held_back"] and r["sep"] is not None and r["sep"] >= max(gate, small_floor_at(r, floor))
           and (r["k"] > 0 or not straddle or (r["no_mean"] < 0 < r["yes_mean"])))
    return (r["mix_calls"], r["mix_right"], True) if mix else (r["v9_calls"], r["v9_right"], False)


def apart_judged(rows: list[dict], gate: float, straddle: bool, per_question: bool) -> dict:
    """A(gate, straddle) pooled over `rows`, under the small-batch floor v12 ran with
    (`SMALL_FLOORS[0]`): documents, calls, right, the mixture's own calls and right where it
    decided, and (`per_question`) the questions with more than 20% called at under 80% right."""
    t = {"n": 0, "calls": 0, "right": 0, "mix_calls": 0, "mix_right": 0, "q_below": 0}
    by_q: dict = {}
    for r in rows:
        calls, right, mixed = apart_counts(r, gate, straddle, SMALL_FLOORS[0])
        t["n"] += r["n"]
        t["calls"] += calls
        t["right"] += right
        if mixed:
            t["mix_calls"] += calls
            t["mix_right"] += right
        q = by_q.setdefault((r.get("genre"), r["question"]), [0, 0, 0])
        q[0], q[1], q[2] = q[0] + r["n"], q[1] + calls, q[2] + right
    if per_question:
        t["q_below"] = sum(1 for n, c, rt in by_q.values() if c > 0.2 * n and rt < 0.8 * c)
    t["coverage"] = t["calls"] / max(t["n"], 1)
    t["precision"] = t["right"] / t["calls"] if t["calls"] else float("nan")
    t["mix_precision"] = t["mix_right"] / t["mix_calls"] if t["mix_calls"] else float("nan")
    return t


def choose_v13(args) -> int:
    """decisions_rule_v13.md: the smallest small-batch floor constant c (1.2 + c/sqrt(n)) at which the
    raw margin's mixture, decided as shipped for a score without a prior, is right often enough on
    small batches at every k from 4."""
    rows = [json.loads(line) for path in args.small for line in open(path)]
    gate = DecisionRule().gate

    def counts(c: float, k: int, subset=None) -> tuple[int, int, int]:
        made = right = n = 0
        for r in rows:
            if r["k"] != k or (subset and not subset(r)):
                continue
            n += r["n"]
            # from 4 labels of each the raw margin's decision is the mixture: its calls where the
            # labels do not hold them back and the groups clear the gate and this floor
            if not r["held_back"] and r["sep"] >= max(gate, small_floor_at(r, c)):
                made, right = made + r["mix_calls"], right + r["mix_right"]
        return made, right, n

    report, qualified = {}, []
    for c in SMALL_FLOORS:
        cells = {k: counts(c, k) for k in (4, 8, 16)}
        ok = all(m == 0 or r >= TARGET * m for m, r, _ in cells.values())
        if ok:
            qualified.append(c)
        report[c] = {"qualifies": ok, **{str(k): {"calls": m, "right": r, "n": n} for k, (m, r, n) in cells.items()}}
        print(f"c {c:5}: {'qualifies' if ok else '         '} " + "  ".join(
            f"k {k}: {m} calls ({m / max(n, 1):.4f}) right {r / m if m else float('nan'):.3f}" for k, (m, r, n) in
            cells.items()), flush=True)
        for split in ("held-out", "tuning", "training"):
            for size in (12, 40, 120):
                for balanced in (False, True):
                    line = []
                    for k in (4, 8):
                        m, r, n = counts(c, k, lambda x, cell=(split, size, balanced): (
                            x["split"], x["unlabeled"], x["balanced"]) == cell)
                        if m:
                            line.append(f"k {k}: {m} calls ({m / n:.4f}) right {r / m:.3f}")
                    if line:
                        print(f"    {split:8} {size:3} {'half' if balanced else 'natural':7} " + "  ".join(line))
    chosen = qualified[0] if qualified else SMALL_FLOORS[0]
    if not qualified:
        first, last = report[SMALL_FLOORS[0]], report[SMALL_FLOORS[-1]]
        calls = [sum(x[str(k)]["calls"] for k in (4, 8, 16)) for x in (first, last)]
        right = [sum(x[str(k)]["right"] for k in (4, 8, 16)) for x in (first, last)]
        if calls[1] < calls[0] and (not calls[1] or right[1] / calls[1] >= right[0] / max(calls[0], 1)):
            chosen = SMALL_FLOORS[-1]
    print(f"chosen: c = {chosen}")
    save_report(args.json, {"chosen": chosen, "table": report})
    return 0


def choose_v12(args) -> int:
    """decisions_rule_v12.md: per k, the gate (and, without labels, the straddle guard) at which the
    mixture calls a batch whose groups stand apart, instead of v9's decision."""
    whole = load_records(args.results)
    small = [json.loads(line) for path in args.small for line in open(path)]
    sets = {"W": [r for r in whole if r["split"] == "logo"], "T": [r for r in whole if r["split"] == "tuning"],
            "S": [r for r in small if r["split"] == "training"]}
    judged_sets = {"H": [r for r in whole if r["split"] == "heldout"],
                   "SH-natural": [r for r in small if r["split"] == "held-out" and not r["balanced"]],
                   "SH-half": [r for r in small if r["split"] == "held-out" and r["balanced"]],
                   "S-natural": [r for r in small if r["split"] == "training" and not r["balanced"]],
                   "S-half": [r for r in small if r["split"] == "training" and r["balanced"]]}
    candidates = [(g, s) for g in (*APART_GATES, float("inf")) for s in (True, False)]
    chosen, report = {}, {}
    for k in (0, 1, 2, 4, 8, 16):
        at = {name: [r for r in rows if r["k"] == k] for name, rows in {**sets, **judged_sets}.items()}
        rows_k = []
        for gate, straddle in candidates:
            if k and not straddle:
                continue  # the guard is for k = 0 only
            t = {name: apart_judged(at[name], gate, straddle, name in ("W", "T", "H")) for name in at}
            ok = all(not t[n]["mix_calls"] or t[n]["mix_precision"] >= TARGET for n in ("W", "T", "S")) \
                and t["W"]["q_below"] == 0 and t["T"]["q_below"] == 0
            rows_k.append((gate, straddle, ok, t))
            print(f"k {k:2} G {gate:4} guard {straddle!s:5} {'qualifies' if ok else '         '} "
                  + "  ".join(f"{n} {t[n]['coverage']:.3f}/{t[n]['precision']:.3f} (mix {t[n]['mix_calls']}"
                              f"/{t[n]['mix_precision']:.2f}{', q<80 ' + str(t[n]['q_below']) if t[n]['q_below'] else ''})"
                              for n in t), flush=True)
        never = next(t for g, s, ok, t in rows_k if g == float("inf"))
        base = never["W"]["calls"] + never["T"]["calls"]
        best = max(((t["W"]["calls"] + t["T"]["calls"], g, s) for g, s, ok, t in rows_k if ok and k < 16),
                   default=(base, float("inf"), True))
        chosen[k] = (best[1], best[2]) if best[0] > base else (float("inf"), True)
        if k == 16:
            chosen[k] = chosen[8]
        report[k] = {"chosen": list(chosen[k]),
                     "table": [{"gate": g, "straddle": s, "qualifies": ok, **t} for g, s, ok, t in rows_k]}
    print("chosen: " + ", ".join(f"k {k}: G {g}{' guard' if s and k == 0 else ''}" for k, (g, s) in chosen.items()))
    save_report(args.json, report)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="step", required=True)
    r = sub.add_parser("run")
    r.add_argument("--cache", default="/work/cache_probe/smollm2-135m-q4_1")
    r.add_argument("--out", default="/work/decisions.jsonl")
    r.add_argument("--train", default=",".join(TRAIN))
    r.add_argument("--heldout", default=",".join(HELD_OUT))
    r.add_argument("--tuning", default="", help="genres the gates are chosen on (decisions_rule_v2.md), judged "
                   "like the held-out ones")
    r.add_argument("--only", default="", help="logo, heldout and/or tuning: run only those batches")
    r.add_argument("--only-r2", action="store_true")
    r.add_argument("--v4", action="store_true", help="decisions_rule_v4.md: R0/R1 with D1, D3 and D4")
    r.add_argument("--out-of-fold", action="store_true", help="with --v4: labeled documents scored out of fold")
    r.add_argument("--v9", action="store_true", help="with --v4: only the Beta-prior prevalence decisions, and "
                   "the labeled documents' AUC and the estimated share (decisions_rule_v9.md)")
    r.add_argument("--v12", action="store_true", help="the shipped decision and the mixture per draw "
                   "(decisions_rule_v12.md)")
    r.add_argument("--margin", action="store_true", help="only the mixture on the raw margin, every split "
                   "(decisions_rule_v11.md)")
    r.add_argument("--skip", nargs="*", default=[], help="records of an interrupted run: their batches are skipped")
    r.add_argument("--part", default="0/1", help="i/n: only every n-th batch, from the i-th (to run in parallel)")
    c = sub.add_parser("choose")
    c.add_argument("results", nargs="+")
    c.add_argument("--json")
    c2 = sub.add_parser("choose-v2", help="decisions_rule_v2.md: gates chosen on the tuning genres")
    c2.add_argument("results", nargs="+")
    c2.add_argument("--json")
    sp = sub.add_parser("ship-prior", help="write the shipped general probe's Platt prior (decisions_rule_v3.md)")
    sp.add_argument("--cache", default="/work/cache_probe/smollm2-135m-q4_1")
    c3 = sub.add_parser("choose-v3", help="decisions_rule_v3.md: the Bayesian Platt or the mixture, per k")
    c3.add_argument("results", nargs="+")
    c3.add_argument("--json")
    c4 = sub.add_parser("choose-v4", help="decisions_rule_v4.md: the shipped decision or D4, per k")
    c4.add_argument("results", nargs="+")
    c4.add_argument("--json")
    z5 = sub.add_parser("zero-v5", help="decisions_rule_v5.md: a zero-label prior from the tuning genres")
    z5.add_argument("--cache", default="/work/cache_probe/smollm2-135m-q4_1")
    z5.add_argument("--json")
    c6 = sub.add_parser("choose-v6", help="decisions_rule_v6.md: in-sample or leave-one-out labeled scores, "
                        "and the decision or none, per k")
    c6.add_argument("--in-sample", nargs="+", required=True, help="records of run --v4")
    c6.add_argument("--out-of-fold", nargs="+", required=True, help="records of run --v4 --out-of-fold")
    c6.add_argument("--json")
    c6.set_defaults(quantiles=False)
    c7 = sub.add_parser("choose-v7", help="decisions_rule_v7.md: v6 with the 5th and 2.5th percentiles of the draws")
    c7.add_argument("--out-of-fold", nargs="+", required=True, help="records of run --v4 --out-of-fold")
    c7.add_argument("--json")
    c7.set_defaults(quantiles=True, in_sample=None)
    c8 = sub.add_parser("choose-v8", help="decisions_rule_v8.md: v6 with a Beta prior on the prevalence")
    c8.add_argument("--out-of-fold", nargs="+", required=True, help="records of run --v4 --out-of-fold")
    c8.add_argument("--json")
    c8.set_defaults(quantiles=False, in_sample=None, beta=True)
    c9 = sub.add_parser("choose-v9", help="decisions_rule_v9.md: the prevalence decisions under gates on the labels")
    c9.add_argument("results", nargs="+", help="records of run --v4 --out-of-fold --v9")
    c9.add_argument("--json")
    c10 = sub.add_parser("choose-v10", help="decisions_rule_v10.md: v9's choice or its joint-draws variant")
    c10.add_argument("results", nargs="+", help="records of run --v4 --out-of-fold --v9")
    c10.add_argument("--small", required=True, help="records of eval_small_batches.py --records (with and "
                     "without --joint, natural and --balanced)")
    c10.add_argument("--json")
    c11 = sub.add_parser("choose-v11", help="decisions_rule_v11.md: the mixture on the raw margin or none, per k")
    c11.add_argument("results", nargs="+", help="records of run --margin")
    c11.add_argument("--json")
    c13 = sub.add_parser("choose-v13", help="decisions_rule_v13.md's choice")
    c13.add_argument("small", nargs="+", help="records of eval_small_batches.py --margin --v12")
    c13.add_argument("--json")
    c12 = sub.add_parser("choose-v12", help="decisions_rule_v12.md's choice")
    c12.add_argument("results", nargs="+", help="records of run --v12 (logo, and tuning,heldout)")
    c12.add_argument("--small", nargs="+", required=True, help="records of eval_small_batches.py --v12")
    c12.add_argument("--json")
    args = parser.parse_args()
    return {"choose-v13": choose_v13, "choose-v12": choose_v12, "choose-v11": choose_v11, "choose-v10": choose_v10, "choose-v6": choose_v6, "choose-v7": choose_v6, "choose-v8": choose_v6, "choose-v9": choose_v9, "run": run, "zero-v5": zero_v5, "choose": choose, "choose-v2": choose_v2, "choose-v3": choose_v3, "choose-v4": choose_v4,
            "ship-prior": ship_prior}[args.step](args)


if __name__ == "__main__":
    sys.exit(main())
