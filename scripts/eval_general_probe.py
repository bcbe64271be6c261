#!/usr/bin/env python3
"""Measure a general answer probe on the features cached by extract_general_features.py.

A *general* probe is one logistic regression on the hidden state at the answer position, fit on
(question, document) pairs of many questions at once, then used for questions it never saw. Fits
use engine.metrics.logistic_regression on standardised features. What is measured:

  loqo      leave one training question out (fit on the other training questions)
  logo      leave one training genre out (fit on the other training genres)
  held-out  fit on all training genres; judged on the held-out genres (Debian descriptions,
            Python's library reference), which no choice here was tuned on
  against   the raw margin (sigmoid(margin)), Platt on the raw margin (fit on the training pairs),
            and the contextual shift (margin minus the content-free margin)
  variants  layer; state minus the content-free state ("diff"); mean of layers; probe + margin
  curves    held-out AUC against the number of training questions / genres
  threshold label-free decision rules: the probe's own bias (p > 0.5), the batch median, and a
            two-component Gaussian mixture fit on the batch's scores (prevalence estimated)
  band      the label-free "uncertain" band: per variant, the pooled leave-one-genre-out
            decisions with their Platt, with and without the batch prior shift, and for each band
            how many verdicts are confident and how many of those are right (training genres
            choose; the held-out genres are reported beside them)

Usage: python scripts/eval_general_probe.py [--tag smollm2-135m-q4_1] [--cache /work/cache_probe]
          [--json OUT.json] [--steps ...] [--ship MODEL.gguf] [--judge-shipped SHA256]
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.confidence import metrics

TRAIN = ("manpages", "changelogs", "licences", "pypi", "npm", "toolpages")
HELD_OUT = ("debian", "pydocs")


@dataclass
class Pairs:
    """All labeled (question, document) pairs of some genres, flattened."""

    genre: np.ndarray  # (n,) str
    question: np.ndarray  # (n,) str
    y: np.ndarray  # (n,) bool
    margin: np.ndarray  # (n,)
    null_margin: np.ndarray  # (n,) mean content-free margin of the pair's question
    hidden: np.ndarray  # (n, L, D) float32
    null_hidden: np.ndarray  # (n, L, D) mean content-free state of the pair's question
    layers: list

    def take(self, mask) -> Pairs:
        return Pairs(self.genre[mask], self.question[mask], self.y[mask], self.margin[mask],
                     self.null_margin[mask], self.hidden[mask], self.null_hidden[mask], self.layers)


def load_pairs(folder: Path, genres) -> Pairs:
    parts = []
    for genre in genres:
        d = np.load(folder / f"{genre}.npz")
        labels = d["labels"]
        doc, q = np.nonzero(labels >= 0)
        null_h = d["null_hidden"].astype(np.float32).mean(axis=0)  # (q, L, D)
        parts.append({
            "genre": np.full(len(doc), genre), "question": d["questions"][q], "y": labels[doc, q] == 1,
            "margin": d["margin"][doc, q].astype(np.float64),
            "null_margin": d["null_margin"].mean(axis=0)[q].astype(np.float64),
            "hidden": d["hidden"][doc, q].astype(np.float32), "null_hidden": null_h[q],
            "layers": [int(x) for x in d["layers"]],
        })
    cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0] if k != "layers"}
    return Pairs(layers=parts[0]["layers"], **cat)


# --- features and the probe ------------------------------------------------------------------------
def features(p: Pairs, spec: dict) -> np.ndarray:
    """spec: layers (list), diff (subtract the content-free state), margin (append the raw margin)."""
    idx = [p.layers.index(layer) for layer in spec["layers"]]
    h = p.hidden[:, idx]
    if spec.get("diff"):
        h = h - p.null_hidden[:, idx]
    if spec.get("center"):  # label-free: subtract each question's mean state over the batch
        h = h.copy()
        for q in np.unique(p.question):
            m = p.question == q
            h[m] -= h[m].mean(axis=0)
    x = h.mean(axis=1) if spec.get("average", True) else h.reshape(len(h), -1)
    if spec.get("margin"):
        x = np.concatenate([x, p.margin[:, None] * spec.get("margin_scale", 1.0)], axis=1)
    return x.astype(np.float64)


class GeneralProbe:
    def __init__(self, spec: dict, l2: float = 100.0, balance: bool = True):
        self.spec, self.l2, self.balance = spec, l2, balance

    def fit(self, p: Pairs) -> GeneralProbe:
        x, y = features(p, self.spec), p.y
        rows = np.arange(len(y))
        if self.balance:  # each question's two classes weigh the same: replicate the rarer one
            keep = []
            for q in np.unique(p.question):
                m = np.flatnonzero(p.question == q)
                pos, neg = m[y[m]], m[~y[m]]
                if len(pos) == 0 or len(neg) == 0:
                    continue
                small, large = (pos, neg) if len(pos) < len(neg) else (neg, pos)
                keep += [large, np.tile(small, len(large) // len(small)), small[: len(large) % len(small)]]
            rows = np.concatenate(keep)
        self.mean = x[rows].mean(axis=0)
        self.scale = x[rows].std(axis=0)
        self.scale[self.scale < 1e-6] = 1.0
        z = (x[rows] - self.mean) / self.scale
        with metrics.numpy_blas_threads(1):
            if self.spec.get("kind") == "massmean":  # Marks & Tegmark: per-question class-mean differences, averaged
                qs, ys = p.question[rows], y[rows]
                direction = np.mean([z[(qs == q) & ys].mean(axis=0) - z[(qs == q) & ~ys].mean(axis=0)
                                     for q in np.unique(qs) if ys[qs == q].any() and (~ys[qs == q]).any()], axis=0)
                direction /= np.linalg.norm(direction)
                scale = metrics.logistic_regression((z @ direction)[:, None], ys, 1e-3)  # Platt on the 1-d score
                self.w, self.b = direction * scale.w[0], scale.b
            else:
                fit = metrics.logistic_regression(z, y[rows], self.l2)
                self.w, self.b = fit.w, fit.b
        return self

    def decision(self, p: Pairs) -> np.ndarray:
        return ((features(p, self.spec) - self.mean) / self.scale) @ self.w + self.b


# --- label-free thresholds --------------------------------------------------------------------------
def gmm_posterior(s: np.ndarray, iters: int = 200) -> np.ndarray:
    """P(yes | s) under a two-Gaussian mixture (shared variance) fit to the batch by EM, the
    higher-mean component being "yes". Label-free and it estimates the prevalence."""
    s = np.asarray(s, dtype=np.float64)
    lo, hi = np.percentile(s, 25), np.percentile(s, 75)
    mu = np.array([lo, hi])
    var = max(s.var() / 4, 1e-6)
    pi = 0.5
    for _ in range(iters):
        l0 = np.log(1 - pi) - (s - mu[0]) ** 2 / (2 * var)
        l1 = np.log(pi) - (s - mu[1]) ** 2 / (2 * var)
        r = metrics.sigmoid(l1 - l0)
        pi = float(np.clip(r.mean(), 0.02, 0.98))
        mu = np.array([np.sum((1 - r) * s) / max(np.sum(1 - r), 1e-9), np.sum(r * s) / max(np.sum(r), 1e-9)])
        var = max(float(np.sum((1 - r) * (s - mu[0]) ** 2 + r * (s - mu[1]) ** 2) / len(s)), 1e-6)
    if mu[1] < mu[0]:
        r = 1 - r
    return r


def prior_shift(p: np.ndarray, iters: int = 100) -> np.ndarray:
    """Saerens et al. (2002): re-weight probabilities made under a 50% prior to the batch's own
    prevalence, estimated by EM from the batch alone (no labels)."""
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    pi = 0.5
    for _ in range(iters):
        q = pi * p / (pi * p + (1 - pi) * (1 - p))
        pi_new = float(np.clip(q.mean(), 0.01, 0.99))
        if abs(pi_new - pi) < 1e-6:
            break
        pi = pi_new
    return pi * p / (pi * p + (1 - pi) * (1 - p))


def scores_table(y, s, p) -> dict:
    return {"auc": metrics.auc(y, s), "accuracy": metrics.accuracy(y, p), "ece": metrics.ece(y, p),
            "brier": metrics.brier(y, p), "n": len(y), "yes": int(np.sum(y))}


def per_question(p: Pairs, s: np.ndarray, prob: np.ndarray) -> dict:
    out = {}
    for q in dict.fromkeys(p.question):
        m = p.question == q
        out[str(q)] = scores_table(p.y[m], s[m], prob[m])
    return out


def mean_of(table: dict, key: str) -> float:
    values = [v[key] for v in table.values() if np.isfinite(v[key])]
    return float(np.mean(values)) if values else float("nan")


def methods_on(test: Pairs, train: Pairs, probes: dict[str, GeneralProbe]) -> dict[str, dict]:
    """Per-question tables of every method on `test`, probes already fit on `train`."""
    from engine.confidence.calibrate import fit_platt

    out = {}
    out["raw"] = per_question(test, test.margin, metrics.sigmoid(test.margin))
    platt = fit_platt(train.margin, train.y, l2=1e-3)
    out["platt"] = per_question(test, platt.logit(test.margin), platt(test.margin))
    shifted = test.margin - test.null_margin
    out["contextual"] = per_question(test, shifted, metrics.sigmoid(shifted))
    for name, probe in probes.items():
        d = probe.decision(test)
        out[name] = per_question(test, d, metrics.sigmoid(d))
        post = np.zeros(len(d))
        med = np.zeros(len(d))
        em = np.zeros(len(d))
        for q in np.unique(test.question):
            m = test.question == q
            post[m] = gmm_posterior(d[m])
            med[m] = metrics.sigmoid(d[m] - np.median(d[m]))
            em[m] = prior_shift(metrics.sigmoid(d[m]))
        out[name + "+gmm"] = per_question(test, d, post)
        out[name + "+em"] = per_question(test, d, em)
        out[name + "+median"] = per_question(test, d, med)
    return out


BANDS = (1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0)


def confident_table(p: Pairs, logit: np.ndarray) -> dict:
    """Per band: the share of verdicts outside it, and how many of those are right."""
    out = {}
    for band in BANDS:
        sure = np.abs(logit) >= band
        right = (logit[sure] > 0) == p.y[sure]
        out[band] = {"coverage": float(sure.mean()), "precision": float(right.mean()) if sure.any() else float("nan"),
                     "confident": int(sure.sum()), "wrong": int((~right).sum())}
    return out


def batch_prior_shift(p: Pairs, logit: np.ndarray, train_prior: float) -> np.ndarray:
    """The log-odds after Saerens' EM prior shift, per question, from a probe fit at `train_prior`."""
    p50 = metrics.sigmoid(logit - np.log(train_prior / (1 - train_prior)))
    out = np.zeros(len(logit))
    for q in np.unique(p.question):
        m = p.question == q
        out[m] = prior_shift(p50[m])
    return np.log(np.clip(out, 1e-9, 1 - 1e-9) / np.clip(1 - out, 1e-9, 1))


def logo_platt(train: Pairs, spec: dict, l2: float, genres):
    """The pooled leave-one-genre-out decisions (each genre scored by a probe fit on the others)
    and the Platt fit on them: how far a probe's log-odds can be trusted on a genre it never saw,
    the temperature that ships."""
    from engine.confidence.calibrate import fit_platt

    pooled = np.zeros(len(train.y))
    for g in genres:
        m = train.genre == g
        pooled[m] = GeneralProbe(spec, l2).fit(train.take(~m)).decision(train.take(m))
    return pooled, fit_platt(pooled, train.y, l2=1e-3)


def band_table(train: Pairs, held: Pairs, spec: dict, l2: float, oof, precision: float) -> dict:
    """Choose the label-free band on the training genres: the pooled leave-one-genre-out decisions
    `oof` (from `logo_platt`) are Platt-scaled (the shipped temperature), then per band the
    confident share and its precision; the smallest band whose precision reaches `precision` is
    chosen. Whether the batch prior shift helps is judged by the same pooled ECE. Held-out genres:
    reported only."""
    pooled, platt = oof
    logo_logit = platt.logit(pooled)
    logo_em = batch_prior_shift(train, logo_logit, train.y.mean())
    held_logit = platt.logit(GeneralProbe(spec, l2).fit(train).decision(held))
    held_em = batch_prior_shift(held, held_logit, train.y.mean())

    def ece(p, z):
        return mean_of(per_question(p, z, metrics.sigmoid(z)), "ece")

    out = {"platt": [platt.a, platt.b],
           "logo_ece": ece(train, logo_logit), "logo_ece_em": ece(train, logo_em),
           "heldout_ece": ece(held, held_logit), "heldout_ece_em": ece(held, held_em)}
    use_em = out["logo_ece_em"] < out["logo_ece"]
    out["use_em"] = bool(use_em)
    logo_final, held_final = (logo_em, held_em) if use_em else (logo_logit, held_logit)
    out["logo"] = confident_table(train, logo_final)
    out["heldout"] = confident_table(held, held_final)
    reached = [b for b in BANDS if out["logo"][b]["precision"] >= precision]
    out["band"] = min(reached) if reached else None
    out["precision_target"] = precision
    return out


def summary(tables: dict[str, dict]) -> dict[str, dict]:
    return {name: {k: mean_of(t, k) for k in ("auc", "accuracy", "ece", "brier")} | {
        "min_auc": float(np.nanmin([v["auc"] for v in t.values()]))} for name, t in tables.items()}


def ship(name: str, probe: GeneralProbe, band: dict, tables: dict, model_file: str, report: dict) -> None:
    """Save one single-layer variant as the model's general probe, with the leave-one-genre-out
    Platt folded into its weights (log-odds a*(x.w + b) + c), its label-free band from the band
    step (None: no band reached the precision target, so nothing is confident before labels), and
    its held-out numbers."""
    from engine.confidence.calibrate import NULL_TEXTS
    from engine.confidence.general import GeneralProbe as Shipped
    from engine.confidence.general import general_probe_key, save_general_probe
    from engine.model.fingerprint import model_fingerprint

    a, c = band["platt"]
    diff = bool(probe.spec.get("diff"))
    shipped = Shipped(
        general_probe_key(model_fingerprint(model_file)), int(probe.spec["layers"][0]), probe.mean, probe.scale, probe.w * a,
        float(probe.b * a + c),
        heldout_auc=mean_of(tables[name], "auc"), heldout_auc_margin=mean_of(tables["raw"], "auc"),
        info={"model_file": Path(model_file).name, "variant": name, "l2": probe.l2,
              "train_genres": report["train_genres"],
              "train_questions": report["train_questions"], "train_pairs": report["train_pairs"],
              "heldout_genres": list(HELD_OUT), "heldout_questions": len(tables[name]),
              "heldout_accuracy": mean_of(tables[name + "+oofplatt"], "accuracy"),
              "heldout_ece": mean_of(tables[name + "+oofplatt"], "ece"), "platt_from_logo": [a, c],
              "band_precision_target": band["precision_target"],
              "band_logo": {str(b): {k: (round(v, 4) if np.isfinite(v) else None) if isinstance(v, float) else v
                                     for k, v in row.items()}
                            for b, row in band["logo"].items()},  # per band: confident share, precision
              "built_by": "scripts/eval_general_probe.py --ship"},
        subtract_null=diff, null_texts=tuple(NULL_TEXTS) if diff else (),
        label_free_band=float("inf") if band["band"] is None else float(band["band"]))
    print("shipped", save_general_probe(shipped), file=sys.stderr)


def apply_elsewhere(folder: Path, source: Path, args) -> int:
    """Judge this model's held-out pairs with the probes fit on another model's training pairs
    (same architecture): does the label-free threshold hold on different weights?"""
    held = load_pairs(folder, [g for g in args.held.split(",") if (folder / f"{g}.npz").exists()])
    train = load_pairs(source, [g for g in args.train.split(",") if (source / f"{g}.npz").exists()])
    probes = {}
    for path in sorted(source.glob("general_*.npz")):
        d = np.load(path)
        probe = GeneralProbe(json.loads(str(d["spec"])))
        probe.mean, probe.scale, probe.w, probe.b = d["mean"], d["scale"], d["w"], float(d["b"])
        probes[path.stem[len("general_"):]] = probe
    tables = methods_on(held, train, probes)  # Platt on the margin: fit on the *other* model's training margins
    report = {"tag": args.tag, "probes_from": source.name, "train_questions": len(np.unique(train.question)),
              "train_pairs": len(train.y), "heldout": {"summary": summary(tables), "per_question": tables}}
    print(json.dumps(report["heldout"]["summary"], indent=0), file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=float) + "\n")
    return 0


def judge_shipped(folder: Path, fingerprint: str, args) -> int:
    """The probe shipped in resources/general_probes for `fingerprint`, exactly as the runtime
    reads it (content-free state subtracted where it says so), on this tag's held-out pairs: its
    AUC, accuracy, ECE and, per band, how many verdicts are confident and how many of those right."""
    from engine.confidence.general import load_general_probe

    probe = load_general_probe(fingerprint)
    held = load_pairs(folder, [g for g in args.held.split(",") if (folder / f"{g}.npz").exists()])
    i = held.layers.index(probe.layer)
    z = np.array([probe.decision(h[i], n[i]) for h, n in zip(held.hidden, held.null_hidden)])
    tables = per_question(held, z, metrics.sigmoid(z))
    report = {"tag": args.tag, "probe": fingerprint, "label_free_band": probe.label_free_band,
              "summary": {k: mean_of(tables, k) for k in ("auc", "accuracy", "ece", "brier")}
              | {"min_auc": float(min(v["auc"] for v in tables.values()))},
              "bands": confident_table(held, z), "per_question": tables}
    print(json.dumps({k: report[k] for k in ("summary", "bands")}, indent=0, default=float), file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=float) + "\n")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tag", default="smollm2-135m-q4_1")
    parser.add_argument("--cache", default="/work/cache_probe")
    parser.add_argument("--json", default=None)
    parser.add_argument("--l2", type=float, default=None, help="skip choosing L2 by leave-one-genre-out")
    parser.add_argument("--layer", type=int, default=21, help="the layer when the layers step is skipped")
    parser.add_argument("--train", default=",".join(TRAIN))
    parser.add_argument("--held", default=",".join(HELD_OUT))
    parser.add_argument("--probe-from", default=None, help="apply this tag's held-out probes instead of fitting (another model variant)")
    parser.add_argument("--ship", default=None, metavar="MODEL_FILE",
                        help="write the variant leave-one-genre-out prefers (chosen layer, its band) for this "
                             "model file to resources/general_probes (needs the heldout and band steps)")
    parser.add_argument("--steps", default="layers,l2,variants,loqo,logo,heldout,band,curves")
    parser.add_argument("--precision", type=float, default=0.90,
                        help="how often a confident label-free verdict must be right (band step)")
    parser.add_argument("--judge-shipped", default=None, metavar="SHA256",
                        help="judge the shipped probe of this model content on this tag's held-out pairs")
    args = parser.parse_args()
    folder = Path(args.cache) / args.tag
    if args.judge_shipped:
        return judge_shipped(folder, args.judge_shipped, args)
    if args.probe_from:
        return apply_elsewhere(folder, Path(args.cache) / args.probe_from, args)
    train_genres = [g for g in args.train.split(",") if (folder / f"{g}.npz").exists()]
    train = load_pairs(folder, train_genres)
    held = load_pairs(folder, [g for g in args.held.split(",") if (folder / f"{g}.npz").exists()])
    steps = args.steps.split(",")
    report: dict = {"tag": args.tag, "train_genres": train_genres, "train_pairs": len(train.y),
                    "train_questions": len(np.unique(train.question)), "held_pairs": len(held.y)}

    def log(*a):
        print(*a, file=sys.stderr, flush=True)

    def logo(spec, l2):
        """Leave-one-genre-out per-question tables for one probe spec."""
        tables = {}
        for g in train_genres:
            fit_on, test = train.take(train.genre != g), train.take(train.genre == g)
            probe = GeneralProbe(spec, l2).fit(fit_on)
            d = probe.decision(test)
            tables |= per_question(test, d, metrics.sigmoid(d))
        return tables

    def heldout(spec, l2):
        probe = GeneralProbe(spec, l2).fit(train)
        d = probe.decision(held)
        return per_question(held, d, metrics.sigmoid(d))

    best_layer = args.layer
    if "layers" in steps:
        report["layers"] = {}
        for layer in train.layers:
            spec = {"layers": [layer]}
            lg, ho = logo(spec, args.l2 or 100.0), heldout(spec, args.l2 or 100.0)
            report["layers"][layer] = {"logo_auc": mean_of(lg, "auc"), "heldout_auc": mean_of(ho, "auc"),
                                       "heldout_ece": mean_of(ho, "ece"), "heldout_accuracy": mean_of(ho, "accuracy")}
            log("layer", layer, report["layers"][layer])
        best_layer = max(train.layers, key=lambda la: report["layers"][la]["logo_auc"])  # chosen on training genres only
    report["best_layer_by_logo"] = best_layer
    l2 = args.l2 or 100.0
    if "l2" in steps and args.l2 is None:
        report["l2"] = {}
        for strength in (1.0, 10.0, 100.0, 1000.0, 10000.0):
            report["l2"][strength] = mean_of(logo({"layers": [best_layer]}, strength), "auc")
            log("l2", strength, report["l2"][strength])
        l2 = max(report["l2"], key=report["l2"].get)
    report["l2_by_logo"] = l2
    neighbours = [la for la in train.layers if abs(la - best_layer) <= 3]
    specs = {
        "probe": {"layers": [best_layer]},
        "probe_diff": {"layers": [best_layer], "diff": True},
        "probe_avg": {"layers": neighbours},
        "probe_margin": {"layers": [best_layer], "margin": True},
        "probe_avg_diff": {"layers": neighbours, "diff": True},
        "probe_center": {"layers": [best_layer], "center": True},
        "massmean": {"layers": [best_layer], "kind": "massmean"},
        "massmean_center": {"layers": [best_layer], "kind": "massmean", "center": True},
        "probe_center_margin": {"layers": [best_layer], "center": True, "margin": True},
    }
    report["specs"] = specs
    if "variants" in steps:
        report["variants_logo"] = {}
        for name, spec in specs.items():
            t = logo(spec, l2)
            report["variants_logo"][name] = {k: mean_of(t, k) for k in ("auc", "accuracy", "ece")}
            log("variant", name, report["variants_logo"][name])
    if "loqo" in steps:
        tables: dict[str, dict] = {}
        for q in np.unique(train.question):
            fit_on, test = train.take(train.question != q), train.take(train.question == q)
            probes = {"probe": GeneralProbe(specs["probe"], l2).fit(fit_on)}
            for name, t in methods_on(test, fit_on, probes).items():
                tables.setdefault(name, {}).update(t)
        report["loqo"] = {"summary": summary(tables), "per_question": tables}
        log("loqo", json.dumps(report["loqo"]["summary"], indent=0))
    if "logo" in steps:
        tables = {}
        for g in train_genres:
            fit_on, test = train.take(train.genre != g), train.take(train.genre == g)
            probes = {name: GeneralProbe(spec, l2).fit(fit_on) for name, spec in specs.items()}
            for name, t in methods_on(test, fit_on, probes).items():
                tables.setdefault(name, {}).update(t)
        report["logo"] = {"summary": summary(tables), "per_question": tables}
        log("logo", json.dumps(report["logo"]["summary"], indent=0))
    oof: dict[str, tuple] = {}  # variant -> logo_platt(...), shared by the heldout and band steps

    def oof_of(name: str):
        if name not in oof:
            oof[name] = logo_platt(train, specs[name], l2, train_genres)
        return oof[name]

    if "heldout" in steps:
        probes = {name: GeneralProbe(spec, l2).fit(train) for name, spec in specs.items()}
        tables = methods_on(held, train, probes)
        report["oof_platt"] = {}
        for name in ("probe", "probe_diff", "probe_avg_diff"):
            _, platt = oof_of(name)
            report["oof_platt"][name] = [platt.a, platt.b]
            d = probes[name].decision(held)
            em = metrics.sigmoid(batch_prior_shift(held, platt.logit(d), train.y.mean()))
            tables[name + "+oofplatt"] = per_question(held, d, platt(d))
            tables[name + "+oofplatt+em"] = per_question(held, d, em)
        report["heldout"] = {"summary": summary(tables), "per_question": tables}
        log("heldout", json.dumps(report["heldout"]["summary"], indent=0))
        for name, probe in probes.items():
            np.savez(folder / f"general_{name}.npz", mean=probe.mean, scale=probe.scale, w=probe.w, b=probe.b,
                     layers=np.array(probe.spec["layers"]), l2=l2, spec=json.dumps(probe.spec))
    if "band" in steps:
        report["band"] = {name: band_table(train, held, specs[name], l2, oof_of(name), args.precision)
                          for name in ("probe", "probe_diff")}
        log("band", json.dumps(report["band"], indent=0, default=float))
        if args.ship:  # the variant leave-one-genre-out ranks best, as the layer and L2 were chosen
            logo_auc = {name: (report.get("variants_logo", {}).get(name) or {"auc": mean_of(logo(specs[name], l2), "auc")})["auc"]
                        for name in report["band"]}
            chosen = max(logo_auc, key=logo_auc.get)
            report["shipped"] = {"variant": chosen, "logo_auc": logo_auc, "band": report["band"][chosen]["band"]}
            ship(chosen, probes[chosen], report["band"][chosen], tables, args.ship, report)
    if "curves" in steps:
        rng = np.random.default_rng(0)
        questions = np.unique(train.question)
        curve_q = {}
        for k in (1, 2, 4, 8, 16, len(questions)):
            aucs = []
            for _ in range(1 if k == len(questions) else 5):
                chosen = rng.choice(questions, size=k, replace=False)
                fit_on = train.take(np.isin(train.question, chosen))
                if fit_on.y.all() or not fit_on.y.any():
                    continue
                d = GeneralProbe(specs["probe"], l2).fit(fit_on).decision(held)
                aucs.append(mean_of(per_question(held, d, metrics.sigmoid(d)), "auc"))
            curve_q[k] = float(np.mean(aucs))
            log("curve questions", k, curve_q[k])
        curve_g = {}
        for k in range(1, len(train_genres) + 1):
            aucs = []
            for _ in range(1 if k == len(train_genres) else 4):
                chosen = rng.choice(train_genres, size=k, replace=False)
                d = GeneralProbe(specs["probe"], l2).fit(train.take(np.isin(train.genre, chosen))).decision(held)
                aucs.append(mean_of(per_question(held, d, metrics.sigmoid(d)), "auc"))
            curve_g[k] = float(np.mean(aucs))
            log("curve genres", k, curve_g[k])
        report["curves"] = {"questions": curve_q, "genres": curve_g}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
