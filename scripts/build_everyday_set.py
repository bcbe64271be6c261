#!/usr/bin/env python3
"""Build the everyday-text genres of resources/general: topical yes/no questions ("is this about
food?") over real English that is not about software, to choose the decision layer's gates on
questions like the ones users ask (scripts/decisions_rule_v2.md).

- fortunes: the quotations, jokes and sayings of Debian 12's `fortunes` package, one per
  document; a question per topic file (food, sports, law, ...), "yes" for the entries of that file.
- wordnet: WordNet 3.0 noun synsets (Debian 12's `wordnet-base`), "words: gloss; examples";
  a question per lexicographer file (noun.food, noun.animal, ...), "yes" for its synsets.

The packages are fetched with `apt-get download` (Debian's registry) into a temporary folder and
unpacked with dpkg-deb; nothing is installed. Writes resources/general/{fortunes,wordnet}.jsonl
and adds both to manifest.json as tuning genres.

Usage: python scripts/build_everyday_set.py [--per-topic 20] [--seed 5]
"""
from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from build_general_set import OUT, record  # noqa: E402

FORTUNE_QUESTIONS = {
    "food": "Is this about food or eating?",
    "sports": "Is this about sports?",
    "law": "Is this about law, lawyers or the courts?",
    "politics": "Is this about politics or government?",
    "science": "Is this about science or scientists?",
    "love": "Is this about love or romance?",
    "computers": "Is this about computers?",
    "education": "Is this about school or education?",
    "medicine": "Is this about medicine or doctors?",
    "work": "Is this about work or jobs?",
    "drugs": "Is this about drugs or alcohol?",
    "kids": "Is this about children?",
}
WORDNET_QUESTIONS = {  # lexicographer file number -> question
    13: "Is this about food or drink?",
    5: "Is this about an animal?",
    20: "Is this about a plant?",
    8: "Is this about a part of the body?",
    12: "Is this about a feeling or emotion?",
    18: "Is this about a kind of person?",
    15: "Is this about a place?",
    21: "Is this about money or owning things?",
    28: "Is this about time?",
    6: "Is this about a man-made object?",
}


def unpack(packages: list[str], into: Path) -> Path:
    """`apt-get download` the packages into `into` and unpack them there; returns the root."""
    subprocess.run(["apt-get", "download", *packages], cwd=into, check=True, capture_output=True)
    root = into / "root"
    for deb in sorted(into.glob("*.deb")):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return root


def fortune_entries(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8", errors="replace")
    entries = [e.strip("\n") for e in text.split("\n%\n")]
    return [e for e in entries if 40 <= len(e) <= 1200 and e.strip()]


def build_fortunes(root: Path, rng: random.Random, per_topic: int) -> list[dict]:
    folder = root / "usr" / "share" / "games" / "fortunes"
    rows = []
    for topic in FORTUNE_QUESTIONS:
        entries = fortune_entries(folder / topic)
        for index in sorted(rng.sample(range(len(entries)), min(per_topic, len(entries)))):
            labels = {q: t == topic for t, q in FORTUNE_QUESTIONS.items()}
            rows.append(record("fortunes", f"{topic}-{index}", entries[index], labels))
    return rows


def synset_text(line: str) -> tuple[int, str]:
    """(lexicographer file, "word, synonym: gloss") of one data.noun line."""
    data, _, gloss = line.partition(" | ")
    fields = data.split()
    lexfile, count = int(fields[1]), int(fields[3], 16)
    words = [fields[4 + 2 * i].replace("_", " ") for i in range(count)]
    words = [w.split("(")[0] for w in words]
    return lexfile, f"{', '.join(words)}: {gloss.strip()}"


def build_wordnet(root: Path, rng: random.Random, per_topic: int) -> list[dict]:
    path = root / "usr" / "share" / "wordnet" / "data.noun"
    by_file: dict[int, list[str]] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("  ") or " | " not in line:
            continue  # the licence header
        lexfile, text = synset_text(line)
        if len(text) >= 40:
            by_file.setdefault(lexfile, []).append(text)
    rows = []
    others = [f for f in sorted(by_file) if f not in WORDNET_QUESTIONS and f >= 4]
    picks = [(f, per_topic) for f in WORDNET_QUESTIONS] + [(f, max(1, per_topic // 4)) for f in others]
    for lexfile, count in picks:
        texts = by_file.get(lexfile, [])
        for index in sorted(rng.sample(range(len(texts)), min(count, len(texts)))):
            labels = {q: f == lexfile for f, q in WORDNET_QUESTIONS.items()}
            rows.append(record("wordnet", f"{lexfile}-{index}", texts[index], labels))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-topic", type=int, default=20)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        root = unpack(["fortunes", "fortunes-min", "wordnet-base"], Path(tmp))
        genres = {"fortunes": build_fortunes(root, rng, args.per_topic),
                  "wordnet": build_wordnet(root, rng, args.per_topic)}
    manifest_path = OUT / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["tuning_genres"] = list(genres)
    manifest["sources"]["fortunes"] = (
        "TUNING (decision gates). Debian 12 `fortunes` (fortune-mod's quotations, jokes and sayings), "
        f"{args.per_topic} entries of each of {len(FORTUNE_QUESTIONS)} topic files; labels: the topic file. "
        "Licence: the package's (BSD-style; the texts are quotations).")
    manifest["sources"]["wordnet"] = (
        "TUNING (decision gates). WordNet 3.0 noun synsets (Debian 12 `wordnet-base`) as 'words: gloss'; "
        "labels: the synset's lexicographer file (noun.food, noun.animal, ...). Licence: WordNet 3.0 (BSD-style).")
    for genre, rows in genres.items():
        with open(OUT / f"{genre}.jsonl", "w") as f:
            f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        questions = sorted({q for r in rows for q in r["labels"]})
        manifest["genres"][genre] = {
            "documents": len(rows),
            "questions": {q: {"yes": sum(r["labels"][q] is True for r in rows),
                              "no": sum(r["labels"][q] is False for r in rows)} for q in questions},
        }
        print(f"{genre}: {len(rows)} documents, {len(questions)} questions", file=sys.stderr)
    manifest_path.write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
