#!/usr/bin/env python3
"""Add a training genre to resources/general/: "toolpages", the man pages of Debian programs,
labeled by the topics Debian's package tags (debtags) give their packages.

The other man page genre is limited to what is installed here (mostly libraries); this one
downloads the packages (`apt-get download`, from the Debian archive) and reads each one's main
man page (rendered with man), so its topics are many: sound, images, video, editing, mail,
security, hardware, fonts. Labels come from the package's `Tag:` field in the archive index,
never from the text or a model. Packages in the sections that label the held-out Debian genre
(games, science, libraries, development, Python) are left out, and no question here asks what a
held-out question asks.

Usage: python scripts/build_toolpages.py [--per-question 24] [--others 60] [--seed 13] [--debs DIR]
Writes resources/general/toolpages.jsonl and adds the genre to manifest.json.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import random
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from build_general_set import OUT, record, render_man

GENRE = "toolpages"
# Sections whose packages label the held-out genre's questions, and non-programs.
EXCLUDED_SECTIONS = {"games", "science", "libs", "libdevel", "oldlibs", "devel", "vcs", "python", "java", "perl",
                     "ruby", "php", "javascript", "rust", "golang", "haskell", "ocaml", "lisp", "r", "interpreters",
                     "doc", "fonts", "localization", "kernel", "metapackages", "debug", "introspection", "education"}


def tagged(pattern: str):
    rx = re.compile(pattern)
    return lambda tags, section: any(rx.fullmatch(t) for t in tags)


QUESTIONS = {
    "Does this program work with sound or audio?": lambda t, s: s == "sound" or "works-with::audio" in t,
    "Does this program work with images or pictures?": tagged(r"works-with::image(:.*)?"),
    "Does this program work with video?": lambda t, s: s == "video" or "works-with::video" in t,
    "Does this program open a graphical window?": tagged(r"interface::x11|uitoolkit::.*"),
    "Is this program used to edit something?": tagged(r"use::editing"),
    "Is this program used to view or play something?": tagged(r"use::(viewing|playing)"),
    "Does this program convert things from one format to another?": tagged(r"use::converting"),
    "Is this program about security?": tagged(r"security::.*"),
    "Is this program about email?": lambda t, s: s == "mail" or any(x.startswith("mail::") for x in t)
                                                   or "works-with::mail" in t,
    "Does this program deal with hardware devices?": tagged(r"hardware::.*"),
    "Does this program run in the background as a service?": tagged(r"interface::daemon"),
    "Does this program work with PDF or PostScript documents?": tagged(r"works-with-format::(pdf|postscript)"),
}


def archive_index() -> dict[str, dict]:
    """Package -> {Section, Tag (set), Installed-Size} of the archive index apt knows."""
    out = subprocess.run(["apt-cache", "dumpavail"], capture_output=True, text=True, check=True).stdout
    packages = {}
    for stanza in out.split("\n\n"):
        fields = dict(re.findall(r"^([\w-]+): (.*(?:\n [^\n]*)*)", stanza, re.M))
        name = fields.get("Package")
        if not name:
            continue
        tags = {t.strip() for t in re.split(r"[,\n]", fields.get("Tag", "")) if t.strip()}
        packages[name] = {"Section": fields.get("Section", "").split("/")[-1], "Tag": tags,
                          "Size": int(fields.get("Installed-Size", "0") or 0)}
    return packages


def main_man_page(deb: Path, package: str, work: Path) -> str:
    """The rendered man page of section 1 or 8 named after the package (else its first one)."""
    target = work / package
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run(f"dpkg-deb --fsys-tarfile '{deb}' | tar -x -C '{target}' --wildcards './usr/share/man/man[18]/*'",
                   shell=True, capture_output=True, timeout=120)
    pages = sorted(p for p in glob.glob(str(target / "usr/share/man/man[18]/*")) if not os.path.islink(p))
    pages.sort(key=lambda p: (not os.path.basename(p).startswith(package + "."), p))
    for page in pages:
        text = render_man(page)
        if len(text.split()) >= 60:
            return text
    return ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-question", type=int, default=24, help="packages sought per question's yes side")
    parser.add_argument("--others", type=int, default=60, help="further packages drawn at random")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--debs", default="/work/cache_probe/debs")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    index = archive_index()
    candidates = sorted(
        name for name, p in index.items()
        if p["Section"] not in EXCLUDED_SECTIONS and "role::program" in p["Tag"] and 0 < p["Size"] < 20000
        and not name.endswith(("-dev", "-doc", "-data", "-dbg", "-common"))
    )
    chosen: list[str] = []
    for rule in QUESTIONS.values():
        yes = [n for n in candidates if rule(index[n]["Tag"], index[n]["Section"]) and n not in chosen]
        rng.shuffle(yes)
        chosen += yes[: args.per_question * 2]  # some have no usable man page
    rest = [n for n in candidates if n not in set(chosen)]
    rng.shuffle(rest)
    chosen += rest[: args.others * 2]
    debs = Path(args.debs)
    debs.mkdir(parents=True, exist_ok=True)
    rows, yes_count, others = [], {q: 0 for q in QUESTIONS}, 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in chosen:
            labels = {q: bool(rule(index[name]["Tag"], index[name]["Section"])) for q, rule in QUESTIONS.items()}
            needed = any(y and yes_count[q] < args.per_question for q, y in labels.items())
            if not needed and (any(labels.values()) or others >= args.others):
                continue
            if not glob.glob(str(debs / f"{name}_*.deb")):
                subprocess.run(["apt-get", "download", name], cwd=debs, capture_output=True, timeout=300)
            found = glob.glob(str(debs / f"{name}_*.deb"))
            text = main_man_page(Path(found[0]), name, Path(tmp)) if found else ""
            if not text:
                continue
            rows.append(record(GENRE, name, text, labels))
            others += not any(labels.values())
            for q, y in labels.items():
                yes_count[q] += y
    path = OUT / f"{GENRE}.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    manifest = json.loads((OUT / "manifest.json").read_text())
    if GENRE not in manifest["train_genres"]:
        manifest["train_genres"].append(GENRE)
    manifest["sources"][GENRE] = (
        "Man pages (sections 1 and 8) of Debian 12 programs downloaded with apt-get download, one page per "
        "package (named after it when there is one), rendered by man; labels from the package's debtags (Tag:) "
        "and Section in the archive index. Packages of the sections that label the held-out Debian genre are "
        "left out. Licences: each package's (DFSG-free, Debian main).")
    manifest["genres"][GENRE] = {
        "documents": len(rows),
        "questions": {q: {"yes": sum(r["labels"][q] for r in rows), "no": sum(not r["labels"][q] for r in rows)}
                      for q in QUESTIONS},
    }
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    print(json.dumps(manifest["genres"][GENRE], indent=1), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
