#!/usr/bin/env python3
"""Extract, once, what the general probe learns from: for every genre of resources/general and every
(question, document), the raw margin, label mass and the hidden states at the answer position
after several layers; and, per question, the same for content-free documents (NULL_TEXTS), which
give the "question without the document" state and the contextual margin.

One classification pass per genre asks all its questions of each document (the document is
prefilled once; each question costs its own ~25 tokens). Results go to
CACHE/<model tag>/<genre>.npz (float16 states), so analysis never re-runs the model.

Usage:
  PYTHONPATH=. python scripts/extract_general_features.py [--model PATH] [--tag NAME]
      [--cache /work/cache_probe] [--genres debian,pydocs,...] [--layers 4,8,...] [--max-docs N] [--max-chars N]
      [--negated]

--negated asks each question's negation instead ("Is this a ...?" -> "Is this not a ...?", see
`negated`), with every label flipped, into <genre>_negated.npz (scripts/eval_negation.py reads it).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.classifier import Classifier
from engine.confidence.calibrate import NULL_TEXTS
from engine.confidence.probe import resolve_layer
from engine.types import Document

GENRES = ("debian", "pydocs", "manpages", "changelogs", "licences", "pypi", "npm", "toolpages")
DEFAULT_LAYERS = (3, 6, 9, 12, 15, 18, 21, 24, 27, 30)


def load_genre(genre: str) -> tuple[list[dict], list[str]]:
    text = (ROOT / "resources" / "general" / f"{genre}.jsonl").read_text()
    rows = [json.loads(line) for line in text.splitlines()]
    questions = sorted({q for r in rows for q in r["labels"]})
    return rows, questions


# "<verb> <subject> <rest>?" -> "<verb> <subject> not <rest>?", for the general set's questions
_QUESTION = re.compile(r"^(Is|Does|Was|Has|May) (this (?:package|program|change|update|licence)|the work|this) (.+)$")


def negated(question: str) -> str:
    """The question with "not" after its subject ("Does this package need ...?" -> "Does this
    package not need ...?"), for the openings the general set's questions use."""
    match = _QUESTION.match(question)
    if match is None:
        raise ValueError(f"no negation known for {question!r}")
    verb, subject, rest = match.groups()
    return f"{verb} {subject} not {rest}"


def negated_genre(rows: list[dict], questions: list[str]) -> tuple[list[dict], list[str]]:
    """The rows and questions with every question negated and every label flipped."""
    flipped = [{**r, "labels": {negated(q): (not v if isinstance(v, bool) else v) for q, v in r["labels"].items()}}
               for r in rows]
    return flipped, [negated(q) for q in questions]


def select(rows: list[dict], questions: list[str], count: int, seed: int = 0) -> list[dict]:
    """At most `count` documents, chosen so every question keeps as many of its rarer class as
    possible (round-robin over questions, rarer class first), the rest at random."""
    if len(rows) <= count:
        return rows
    rng = np.random.default_rng(seed)
    order = list(rng.permutation(len(rows)))
    chosen: list[int] = []
    taken = set()
    pools = []
    for q in questions:
        yes = [i for i in order if rows[i]["labels"].get(q) is True]
        no = [i for i in order if rows[i]["labels"].get(q) is False]
        pools.append(yes if len(yes) <= len(no) else no)
    quota = count // 2  # half the documents go to the rarer classes
    while len(chosen) < quota and any(pools):
        for pool in pools:
            while pool and pool[0] in taken:
                pool.pop(0)
            if pool and len(chosen) < quota:
                taken.add(pool[0])
                chosen.append(pool.pop(0))
    chosen += [i for i in order if i not in taken][: count - len(chosen)]
    return [rows[i] for i in sorted(chosen)]


def run(clf, questions, documents, layers):
    """margins (n, q), masses (n, q), hidden (n, q, L, D) float16 for documents in input order."""
    wanted = [resolve_layer(clf, layer) for layer in layers]
    verdicts = clf.score(questions, documents, layers=wanted)
    n, q = len(documents), len(questions)
    bad = [v for v in verdicts if not v.ok]
    if bad:
        raise RuntimeError(f"{len(bad)} verdicts failed, e.g. {bad[0].document_id}: {bad[0].error}")
    margins = np.array([v.raw_margin for v in verdicts], dtype=np.float32).reshape(n, q)
    masses = np.array([v.label_mass for v in verdicts], dtype=np.float32).reshape(n, q)
    hidden = np.stack([np.stack([v.states[k] for k in wanted]).astype(np.float16) for v in verdicts])
    hidden = hidden.reshape(n, q, len(wanted), -1)
    return margins, masses, hidden, wanted


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None)
    parser.add_argument("--tag", default="smollm2-135m-q4_1")
    parser.add_argument("--cache", default="/work/cache_probe")
    parser.add_argument("--genres", default=",".join(GENRES))
    parser.add_argument("--layers", default=",".join(map(str, DEFAULT_LAYERS)))
    parser.add_argument("--max-docs", type=int, default=0)
    parser.add_argument("--max-chars", type=int, default=1500)
    parser.add_argument("--negated", action="store_true", help="ask each question's negation, labels flipped")
    args = parser.parse_args()
    out = Path(args.cache) / args.tag
    out.mkdir(parents=True, exist_ok=True)
    clf = Classifier.load(args.model)
    layers = [int(x) for x in args.layers.split(",")]
    for genre in args.genres.split(","):
        path = out / (f"{genre}_negated.npz" if args.negated else f"{genre}.npz")
        if path.exists():
            print(f"{genre}: cached", file=sys.stderr)
            continue
        rows, questions = load_genre(genre)
        if args.max_docs:
            rows = select(rows, questions, args.max_docs)
        if args.negated:
            rows, questions = negated_genre(rows, questions)
        start = time.perf_counter()
        docs = [Document(id=r["id"], text=r["text"][: args.max_chars]) for r in rows]
        margins, masses, hidden, wanted = run(clf, questions, docs, layers)
        null_m, null_mass, null_h, _ = run(clf, questions, [Document(id=t, text=t) for t in NULL_TEXTS], layers)
        labels = np.array([[r["labels"].get(q, None) for q in questions] for r in rows], dtype=object)
        seconds = time.perf_counter() - start
        np.savez(
            path,
            ids=np.array([r["id"] for r in rows]),
            questions=np.array(questions),
            labels=np.where(labels == None, -1, labels.astype(bool)).astype(np.int8),  # noqa: E711 (elementwise)
            margin=margins, mass=masses, hidden=hidden,
            null_margin=null_m, null_mass=null_mass, null_hidden=null_h,
            layers=np.array(wanted), seconds=seconds,
        )
        print(f"{genre}: {len(rows)} documents x {len(questions)} questions in {seconds:.0f} s", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
