#!/usr/bin/env python3
"""Rebuild resources/labeled/: real texts with yes/no labels, for measuring calibration and probes.

Source: Debian 12 "bookworm" main (amd64) package descriptions. The text of a record is the
package's English description (short line + long description, from the archive's
`Translation-en`); the label comes from the package's archive `Section` field, which the
description does not contain:

  debian_games.jsonl    "Is this software a game?"                   yes = Section games
  debian_science.jsonl  "Is this software for scientific research?"  yes = Section science

Negatives are drawn from the other sections, weighted by 1/sqrt(section size) so the set is not
mostly `libs`; a negative whose Debian tags say it is about the positive topic (game::*,
use::gameplaying for games; field::* for science) is left out, as are sections next door
(science: math, gnu-r), to keep label noise low. Per Debian source package at most one binary
package is kept, dbg/doc/data/common/transitional packages are skipped, descriptions are
deduplicated, and only texts of 20-150 words are kept.

The apt lists are fetched with the ordinary client into a private folder (the system's lists carry
no long descriptions when `Acquire::Languages "none"` is set):

  apt-get update -o Dir::State::Lists=/tmp/verdict-aptlists -o Acquire::Languages=en

Usage: python scripts/build_labeled_set.py [--lists DIR] [--per-class 150] [--seed 5]
"""
from __future__ import annotations

import argparse
import glob
import json
import math
import random
import re
import subprocess
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "resources" / "labeled"
SETS = {
    "games": {
        "question": "Is this software a game?",
        "positive_sections": {"games"},
        "excluded_sections": set(),
        "excluded_tags": re.compile(r"^(game::|use::gameplaying)"),
    },
    "science": {
        "question": "Is this software for scientific research?",
        "positive_sections": {"science"},
        "excluded_sections": {"math", "gnu-r"},
        "excluded_tags": re.compile(r"^field::"),
    },
}
SKIP_NAME = re.compile(r"-(dbg|dbgsym|doc|docs|data|common|l10n|locale|i18n)$")
SKIP_TEXT = re.compile(r"transitional|dummy package|metapackage|meta-package", re.I)


def read_lists_file(path: str) -> str:
    """Text of an apt lists file, compressed or not (apt's own helper decompresses)."""
    if path.endswith((".lz4", ".gz", ".xz", ".zst")):
        return subprocess.run(
            ["/usr/lib/apt/apt-helper", "cat-file", path], check=True, capture_output=True, text=True
        ).stdout
    return Path(path).read_text()


def stanzas(text: str):
    for block in text.split("\n\n"):
        fields, key = {}, None
        for line in block.splitlines():
            if line.startswith((" ", "\t")) and key:
                fields[key] += "\n" + line
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if fields:
            yield fields


def description_text(raw: str) -> str:
    """Debian's description format → plain text (short line, blank line, paragraphs)."""
    lines = raw.split("\n")
    short = lines[0].strip()
    paragraphs, current = [], []
    for line in lines[1:]:
        body = line[1:] if line.startswith(" ") else line
        if body.strip() == ".":
            if current:
                paragraphs.append(current)
            current = []
        elif body.startswith(" "):  # verbatim (lists, code): keep the line
            current.append("\n" + body.strip())
        else:
            current.append(body.strip())
    if current:
        paragraphs.append(current)
    text = [" ".join(p).replace(" \n", "\n").strip() for p in paragraphs]
    if short and short[-1] not in ".!?":
        short += "."
    return "\n\n".join([short[0].upper() + short[1:]] + text)


def load_packages(lists: Path) -> list[dict]:
    packages_files = glob.glob(str(lists / "*_debian_dists_bookworm_main_binary-amd64_Packages*"))
    translation_files = glob.glob(str(lists / "*_debian_dists_bookworm_main_i18n_Translation-en*"))
    if not packages_files or not translation_files:
        sys.exit(
            f"no bookworm main Packages/Translation-en in {lists}; fetch them with:\n"
            f"  mkdir -p {lists}/partial && apt-get update -o Dir::State::Lists={lists} -o Acquire::Languages=en"
        )
    long = {}
    for s in stanzas(read_lists_file(translation_files[0])):
        long[(s["Package"], s.get("Description-md5"))] = s.get("Description-en", "")
    records = []
    for s in stanzas(read_lists_file(packages_files[0])):
        key = (s["Package"], s.get("Description-md5"))
        if key not in long:
            continue
        records.append(
            {
                "name": s["Package"],
                "source": s.get("Source", s["Package"]).split()[0],
                "section": s.get("Section", "").split("/")[-1],
                "tags": [t.strip() for t in s.get("Tag", "").replace("\n", " ").split(",") if t.strip()],
                "text": description_text(long[key]),
            }
        )
    return records


def candidates(records: list[dict]) -> list[dict]:
    """One clean, deduplicated record per source package."""
    seen_source, seen_text, kept = set(), set(), []
    for r in sorted(records, key=lambda r: (len(r["name"]), r["name"])):  # shortest name: the main package
        words = len(r["text"].split())
        key = re.sub(r"\W+", " ", r["text"].split("\n\n", 1)[-1].lower())[:300]
        if (
            r["source"] in seen_source
            or key in seen_text
            or SKIP_NAME.search(r["name"])
            or SKIP_TEXT.search(r["text"])
            or not 20 <= words <= 150
        ):
            continue
        seen_source.add(r["source"])
        seen_text.add(key)
        kept.append(r)
    return sorted(kept, key=lambda r: r["name"])


def weighted_sample(items: list[dict], weights: list[float], k: int, rng: random.Random) -> list[dict]:
    """k items without replacement, P proportional to weight (Efraimidis-Spirakis keys)."""
    keyed = sorted(zip(items, weights), key=lambda iw: -math.log(rng.random()) / iw[1])
    return [item for item, _ in keyed[:k]]


def build(pool: list[dict], spec: dict, per_class: int, rng: random.Random) -> list[dict]:
    pos = [r for r in pool if r["section"] in spec["positive_sections"]]
    neg = [
        r
        for r in pool
        if r["section"] not in spec["positive_sections"] | spec["excluded_sections"]
        and not any(spec["excluded_tags"].match(t) for t in r["tags"])
    ]
    if len(pos) < per_class:
        sys.exit(f"only {len(pos)} positives for {spec['question']!r}")
    sizes: dict[str, int] = {}
    for r in neg:
        sizes[r["section"]] = sizes.get(r["section"], 0) + 1
    chosen_pos = rng.sample(pos, per_class)
    chosen_neg = weighted_sample(neg, [1 / math.sqrt(sizes[r["section"]]) for r in neg], per_class, rng)
    rows = [dict(r, label=True) for r in chosen_pos] + [dict(r, label=False) for r in chosen_neg]
    rng.shuffle(rows)
    return [{"id": r["name"], "text": r["text"], "label": r["label"], "section": r["section"]} for r in rows]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lists", type=Path, default=Path("/tmp/verdict-aptlists"))
    parser.add_argument("--per-class", type=int, default=150)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)

    pool = candidates(load_packages(args.lists))
    args.out.mkdir(parents=True, exist_ok=True)
    index = {}
    for name, spec in SETS.items():
        rows = build(pool, spec, args.per_class, random.Random(f"{args.seed}-{name}"))
        path = args.out / f"debian_{name}.jsonl"
        with path.open("w") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        index[name] = {"question": spec["question"], "file": path.name, "n": len(rows)}
        words = sorted(len(r["text"].split()) for r in rows)
        print(f"{path}: {len(rows)} texts, words median {words[len(words) // 2]}, {path.stat().st_size} bytes")
    (args.out / "index.json").write_text(json.dumps(index, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
