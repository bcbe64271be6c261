#!/usr/bin/env python3
"""Build resources/general/: many yes/no questions over many kinds of real text, for training and
judging a *general* answer probe.

Every text comes from a package registry (Debian's archive, PyPI, npm) and every label from
structure the text itself does not state (a man page's section, a Trove classifier, a
package.json field, a changelog header, a licence's short name, a Debian Section, a chapter of the
Python Library Reference). No label comes from a model.

Genres and where they come from (on a Debian 12 machine; the script says what is missing):

  train (the probe may be fit on these)
    manpages     /usr/share/man/man{1,2,3,5,7,8} of the installed Debian packages (rendered with man)
    changelogs   /usr/share/doc/*/changelog.Debian.gz entries (body only; header and trailer stripped)
    licences     stand-alone `License:` paragraphs of DEP-5 /usr/share/doc/*/copyright files
    pypi         METADATA (long description) of the PyPI distributions installed in the given
                 site-packages folders (Trove classifiers, Requires-Dist, entry points, WHEEL)
    npm          README.md + package.json of npm packages: npm's own bundled dependencies and those
                 of `npm install --ignore-scripts eslint webpack` in --npm-root
    toolpages    man pages of downloaded Debian programs labeled by debtags: built afterwards by
                 scripts/build_toolpages.py (which adds itself to the manifest)
  held out (never trained or tuned on: only for judging)
    debian       package descriptions: resources/labeled/*.jsonl plus the installed packages'
                 descriptions in /var/lib/dpkg/status, labeled by Debian Section
    pydocs       Python's library reference (Debian package python3.11-doc, `apt-get download` +
                 `dpkg -x` into --pydoc-root): descriptions of functions/classes, labeled by chapter

The pypi, npm, man page, changelog and licence genres depend on what is installed on the machine
that runs this; the committed files are the ones the shipped probe was trained and judged on.

Output: resources/general/<genre>.jsonl with one document a line
  {"id", "genre", "text" (<= 1500 chars), "labels": {question: true|false}}
and resources/general/manifest.json (sources, licences, counts per question and class).

Usage:
  python scripts/build_general_set.py [--npm-root DIR] [--pydoc-root DIR] [--seed 11]
"""
from __future__ import annotations

import argparse
import glob
import gzip
import html
import json
import os
import random
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "resources" / "general"
MAX_CHARS = 1500
TRAIN_GENRES = ("manpages", "changelogs", "licences", "pypi", "npm")
HELD_OUT_GENRES = ("debian", "pydocs")


def clip(text: str, limit: int = MAX_CHARS) -> str:
    text = re.sub(r"[ \t]+", " ", text)
    text = re.sub(r"\n\s*\n+", "\n\n", text).strip()
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit)
    return text[: cut if cut > limit // 2 else limit].rstrip()


def record(genre: str, ident: str, text: str, labels: dict) -> dict:
    return {"id": f"{genre}:{ident}", "genre": genre, "text": clip(text), "labels": labels}


# --- Debian package metadata (sections, priorities) of installed packages ---------------------
def dpkg_status() -> dict[str, dict]:
    """Package -> its stanza fields from /var/lib/dpkg/status (installed packages)."""
    packages: dict[str, dict] = {}
    text = Path("/var/lib/dpkg/status").read_text(errors="replace")
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = None
        for line in stanza.splitlines():
            if line.startswith((" ", "\t")) and key:
                fields[key] += "\n" + line[1:]
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if "Package" in fields:
            packages[fields["Package"]] = fields
    return packages


def file_owners() -> dict[str, str]:
    """Installed file path -> package (from dpkg's file lists)."""
    owners = {}
    for listing in glob.glob("/var/lib/dpkg/info/*.list"):
        package = os.path.basename(listing)[:-5].split(":")[0]
        with open(listing, errors="replace") as f:
            for line in f:
                owners[line.rstrip("\n")] = package
    return owners


# --- train: man pages -----------------------------------------------------------------------------
MAN_QUESTIONS = {
    "Is this a command that users run from a shell?": lambda s, p: s == "1",
    "Is this a Linux system call?": lambda s, p: s == "2",
    "Is this a function of a programming library?": lambda s, p: s == "3",
    "Does this describe a file format or a configuration file?": lambda s, p: s == "5",
    "Is this an overview of a topic rather than one command or function?": lambda s, p: s == "7",
    "Is this a command for system administrators?": lambda s, p: s == "8",
    "Is this part of the core system that every Debian machine has?": lambda s, p: p in ("required", "important"),
    "Is this documentation for a Perl module?": lambda s, p: None,  # set below from the file suffix
}


def render_man(path: str) -> str:
    try:
        out = subprocess.run(
            ["man", "-l", "-P", "cat", path], capture_output=True, text=True, timeout=20, check=False,
            env={**os.environ, "MANWIDTH": "80", "LC_ALL": "C.UTF-8", "MAN_KEEP_FORMATTING": ""},
        ).stdout
    except subprocess.TimeoutExpired:
        return ""
    out = re.sub(r".\x08", "", out)
    lines = out.splitlines()[1:]  # the header line names the page and its section
    body = "\n".join(lines)
    body = re.sub(r"\n\S.*\d{4}.*$", "", body.rstrip())  # footer (version, date)
    return body


def build_manpages(rng: random.Random, per_section: int, status: dict, owners: dict) -> list[dict]:
    rows = []
    for section in ("1", "2", "3", "5", "7", "8"):
        files = sorted(
            f for f in glob.glob(f"/usr/share/man/man{section}/*")
            if not os.path.islink(f) and os.path.getsize(f) > 600
        )
        rng.shuffle(files)
        if section == "3":  # half C library pages, half Perl modules (3perl / 3pm)
            perl = [f for f in files if re.search(r"\.3(pm|perl)(\.gz)?$", f)]
            other = [f for f in files if f not in set(perl)]
            files = perl[: per_section // 2] + other
        kept = 0
        for f in files:
            if kept >= per_section:
                break
            text = render_man(f)
            if len(text.split()) < 60:
                continue
            package = owners.get(f, "")
            priority = status.get(package, {}).get("Priority", "optional")
            labels = {q: bool(rule(section, priority)) for q, rule in MAN_QUESTIONS.items() if rule(section, priority) is not None}
            labels["Is this documentation for a Perl module?"] = bool(re.search(r"\.3(pm|perl)(\.gz)?$", f))
            rows.append(record("manpages", os.path.basename(f), text, labels))
            kept += 1
    return rows


# --- train: Debian changelog entries --------------------------------------------------------------
CHANGELOG_HEADER = re.compile(r"^(\S+) \(([^)]+)\) ([^;]+); urgency=(\w+)", re.MULTILINE)
TRAILER = re.compile(r"^ -- (.+?) <[^>]*>\s+\w{3}, \d+ \w{3} (\d{4})", re.MULTILINE)


def build_changelogs(rng: random.Random, limit: int, status: dict) -> list[dict]:
    entries = []
    for path in sorted(glob.glob("/usr/share/doc/*/changelog.Debian.gz")):
        package = path.split("/")[4]
        try:
            with gzip.open(path, "rt", errors="replace") as fh:
                text = fh.read()
        except OSError:
            continue
        heads = list(CHANGELOG_HEADER.finditer(text))
        for i, head in enumerate(heads[:40]):
            end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
            chunk = text[head.end():end]
            trailer = TRAILER.search(chunk)
            if not trailer:
                continue
            body = chunk[: trailer.start()].strip("\n")
            body = re.sub(r"^\s*\[ [^\]]+ \]\s*$", "", body, flags=re.MULTILINE)  # "[ Name ]" co-author lines
            if not 15 <= len(body.split()) <= 400:
                continue
            entries.append((package, head, trailer, body))
    rng.shuffle(entries)
    per_package: Counter = Counter()
    rows = []
    for package, head, trailer, body in entries:
        if per_package[package] >= 2 or len(rows) >= limit:
            continue
        per_package[package] += 1
        version, dist = head.group(2), head.group(3)
        revision = version.rsplit("-", 1)[1] if "-" in version else ""
        section = status.get(package, {}).get("Section", "")
        year = int(trailer.group(2))
        labels = {
            "Is this a new upstream version of the software?": bool(re.fullmatch(r"1|0\.1|1~\w+", revision)),
            "Was this update uploaded by someone other than the package's maintainers?": bool(re.search(r"nmu|\+deb\d+u", version)),
            "Is this an update for a stable or security release?": bool(re.search(r"security|stable|-updates|proposed|lts|backports", dist))
            or bool(re.search(r"\+deb\d+u\d", version)),
            "Was this change made before 2015?": year < 2015,
            "Was this change made in 2021 or later?": year >= 2021,
            "Is this a change to a software library?": section in ("libs", "libdevel", "oldlibs"),
            "Is this a change to a Python package?": section == "python",
        }
        rows.append(record("changelogs", f"{package}_{version}", body, labels))
    return rows


# --- train: licence texts ------------------------------------------------------------------------
COPYLEFT = re.compile(r"^(A?GPL|LGPL|MPL|EPL|CDDL|CC-BY-SA|OFL|GFDL|Artistic-2|CECILL)", re.IGNORECASE)
PERMISSIVE = re.compile(r"^(MIT|Expat|BSD|ISC|Apache|Zlib|X11|Boost|BSL|PSF|Python|curl|Unicode|W3C|OpenSSL|SSLeay|libpng|FTL|Unlicense|0BSD|NTP|HPND)", re.IGNORECASE)


def licence_paragraphs() -> list[tuple[str, str, str]]:
    """(package, short name, text) of stand-alone License paragraphs with a text body."""
    found = []
    for path in sorted(glob.glob("/usr/share/doc/*/copyright")):
        package = path.split("/")[4]
        try:
            text = Path(path).read_text(errors="replace")
        except OSError:
            continue
        if not text.startswith("Format:"):
            continue
        for para in re.split(r"\n\s*\n", text):
            if not para.startswith("License:"):
                continue
            first, _, rest = para.partition("\n")
            name = first[len("License:"):].strip()
            body = "\n".join(line.removeprefix(" ") for line in rest.splitlines())
            body = body.replace("\n.\n", "\n\n").replace("\n.", "\n")
            if name and len(body.split()) >= 40 and not re.search(r"\b(or|and|with)\b", name):
                found.append((package, name, body))
    for path in sorted(glob.glob("/usr/share/common-licenses/*")):
        if not os.path.islink(path):
            found.append(("base-files", os.path.basename(path), Path(path).read_text(errors="replace")))
    return found


def build_licences(rng: random.Random, limit: int) -> list[dict]:
    paragraphs = licence_paragraphs()
    rng.shuffle(paragraphs)
    seen, per_name, rows = set(), Counter(), []
    for package, name, body in paragraphs:
        # The first ~1500 characters are what the model sees: two copies differing only later are one text.
        key = re.sub(r"\W+", "", body.lower())[:1200]
        base = name.rstrip("+")
        if key in seen or per_name[base] >= 12 or len(rows) >= limit:
            continue
        seen.add(key)
        per_name[base] += 1
        labels = {
            "Is this a copyleft licence?": bool(COPYLEFT.match(base)),
            "Is this a permissive licence?": bool(PERMISSIVE.match(base)),
            "Is this licence the GNU General Public License?": bool(re.match(r"GPL", base)),
            "Is this licence version 3 or later of a GNU licence?": bool(re.match(r"(A?GPL|LGPL|GFDL)-?(3|1\.3)", base)),
            "May the work be used under a later version of this licence?": name.endswith("+"),
            "Is this a BSD-style licence?": bool(re.match(r"BSD", base)),
        }
        rows.append(record("licences", f"{package}_{name}", body, labels))
    return rows


# --- train: PyPI package descriptions ------------------------------------------------------------
def parse_metadata(text: str) -> tuple[dict[str, list[str]], str]:
    head, _, body = text.partition("\n\n")
    fields: dict[str, list[str]] = defaultdict(list)
    key = None
    for line in head.splitlines():
        if line.startswith((" ", "\t")) and key:
            fields[key][-1] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            fields[key].append(value.strip())
    description = body.strip() or "\n".join(fields.get("Description", []))
    return fields, description


def readme_text(text: str) -> str:
    """A README in Markdown or reStructuredText, with markup that says nothing dropped."""
    text = re.sub(r"<[^>]+>", " ", text)
    text = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", text)  # images, badges
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"^\.\. (image|figure|\|).*(\n {3}.*)*", "", text, flags=re.MULTILINE)
    text = re.sub(r"^\s*[=\-~^`#*]{3,}\s*$", "", text, flags=re.MULTILINE)
    return text


def build_pypi(site_dirs: list[str]) -> list[dict]:
    rows, seen = [], set()
    for site in site_dirs:
        for info in sorted(glob.glob(os.path.join(site, "*.dist-info"))):
            try:
                fields, description = parse_metadata(Path(info, "METADATA").read_text(errors="replace"))
            except OSError:
                continue
            name = (fields.get("Name") or [""])[0].lower()
            description = readme_text(description)
            if not name or name in seen or len(description.split()) < 50:
                continue
            classifiers = fields.get("Classifier", [])
            if not classifiers:
                continue
            seen.add(name)
            joined = "\n".join(classifiers)
            requires = [r for r in fields.get("Requires-Dist", []) if "extra ==" not in r]
            entry_points = Path(info, "entry_points.txt")
            scripts = entry_points.is_file() and "[console_scripts]" in entry_points.read_text(errors="replace")
            wheel = Path(info, "WHEEL")
            compiled = wheel.is_file() and "Root-Is-Purelib: false" in wheel.read_text(errors="replace")
            record_file = Path(info, "RECORD")
            typed = "Typing :: Typed" in joined or (record_file.is_file() and "py.typed" in record_file.read_text(errors="replace"))
            labels = {
                "Is this package meant for scientists or researchers?": "Intended Audience :: Science/Research" in joined,
                "Is this package about the internet or the web?": "Topic :: Internet" in joined,
                "Is this package mature and stable?": bool(re.search(r"Development Status :: [56]", joined)),
                "Is this package released under the MIT licence?": "License :: OSI Approved :: MIT License" in joined
                or (fields.get("License") or [""])[0].strip() in ("MIT", "MIT License") or "MIT" in (fields.get("License-Expression") or [""])[0],
                "Does this package install a command-line program?": bool(scripts),
                "Does this package need other packages to work?": bool(requires),
                "Does this package contain compiled code?": bool(compiled),
                "Does this package come with type hints?": bool(typed),
                "Is this package a tool for software developers?": "Topic :: Software Development" in joined,
            }
            rows.append(record("pypi", name, description, labels))
    return rows


# --- train: npm package READMEs ------------------------------------------------------------------
def build_npm(roots: list[str]) -> list[dict]:
    rows, seen = [], set()
    for root in roots:
        for manifest in sorted(glob.glob(os.path.join(root, "*/package.json")) + glob.glob(os.path.join(root, "@*/*/package.json"))):
            folder = os.path.dirname(manifest)
            readmes = [f for f in os.listdir(folder) if f.lower().startswith("readme")]
            if not readmes:
                continue
            try:
                meta = json.loads(Path(manifest).read_text())
            except (OSError, ValueError):
                continue
            name = meta.get("name")
            text = readme_text(Path(folder, readmes[0]).read_text(errors="replace"))
            if not name or name in seen or len(text.split()) < 40:
                continue
            seen.add(name)
            licence = meta.get("license")
            licence = licence.get("type") if isinstance(licence, dict) else licence
            repo = meta.get("repository")
            repo = repo.get("url", "") if isinstance(repo, dict) else str(repo or "")
            version = str(meta.get("version", "0"))
            has_types = bool(meta.get("types") or meta.get("typings")) or any(
                f.endswith(".d.ts") for f in os.listdir(folder)
            )
            labels = {
                "Does this package provide a command-line tool?": bool(meta.get("bin")),
                "Does this package depend on other packages?": bool(meta.get("dependencies")),
                "Is this package released under the ISC licence?": licence == "ISC",
                "Does this package ship TypeScript type definitions?": has_types,
                "Is this package maintained by the npm project itself?": "github.com/npm/" in repo or repo.startswith("npm/"),
                "Has this package reached version 2 or later?": (version.split(".")[0].isdigit() and int(version.split(".")[0]) >= 2),
                "Is this package written as ES modules?": meta.get("type") == "module",
            }
            rows.append(record("npm", name, text, labels))
    return rows


# --- held out: Debian package descriptions -------------------------------------------------------
LANGUAGE_SECTIONS = {"perl", "javascript", "ruby", "python", "java", "golang", "php", "rust", "haskell",
                     "lisp", "ocaml", "gnu-r", "cli-mono", "introspection", "libdevel", "libs", "oldlibs"}
DEBIAN_QUESTIONS = {
    "Is this software a game?": lambda s: s == "games",
    "Is this software for scientific research?": lambda s: s == "science",
    "Is this a library for programmers rather than a program?": lambda s: s in LANGUAGE_SECTIONS,
    "Is this a tool for software development?": lambda s: s in ("devel", "vcs", "libdevel"),
    "Is this a Python module?": lambda s: s == "python",
}


def build_debian(status: dict) -> list[dict]:
    rows, seen = [], set()
    for path in sorted(glob.glob(str(ROOT / "resources" / "labeled" / "debian_*.jsonl"))):
        for line in Path(path).read_text().splitlines():
            item = json.loads(line)
            if item["id"] in seen:
                continue
            seen.add(item["id"])
            section = item["section"].split("/")[-1]
            labels = {q: rule(section) for q, rule in DEBIAN_QUESTIONS.items()}
            rows.append(record("debian", item["id"], item["text"], labels))
    per_section: Counter = Counter()
    installed = sorted(status.items())
    random.Random(3).shuffle(installed)
    for package, fields in installed:
        if sum(per_section.values()) >= 100:
            break
        description = fields.get("Description", "")
        short, _, long = description.partition("\n")
        long = "\n".join("" if line.strip() == "." else line for line in long.splitlines())
        if package in seen or len(long.split()) < 20 or re.search(r"transitional|dummy|metapackage", description, re.IGNORECASE):
            continue
        seen.add(package)
        section = fields.get("Section", "misc").split("/")[-1]
        if per_section[section] >= 15:
            continue
        per_section[section] += 1
        labels = {q: rule(section) for q, rule in DEBIAN_QUESTIONS.items()}
        rows.append(record("debian", package, short.strip() + ".\n\n" + long.strip(), labels))
    return rows


# --- held out: Python's library reference --------------------------------------------------------
PYDOC_QUESTIONS = {
    "Is this about processing text?": {"text.html"},
    "Is this about files and directories?": {"filesys.html"},
    "Is this about networking or internet protocols?": {"internet.html", "ipc.html", "netdata.html"},
    "Is this about running things concurrently?": {"concurrency.html"},
    "Is this about numbers or mathematics?": {"numeric.html"},
    "Is this about compressing or archiving data?": {"archiving.html"},
    "Is this about storing data persistently?": {"persistence.html"},
    "Is this about testing, debugging or profiling code?": {"development.html", "debug.html"},
}


def strip_html(fragment: str) -> str:
    fragment = re.sub(r"<(script|style)\b.*?</\1>", "", fragment, flags=re.DOTALL)
    fragment = re.sub(r"</(p|li|dt|pre|div)>", "\n", fragment)
    return html.unescape(re.sub(r"<[^>]+>", "", fragment))


def build_pydocs(rng: random.Random, pydoc_root: str, per_module: int) -> list[dict]:
    library = Path(pydoc_root) / "usr/share/doc/python3.11/html/library"
    if not library.is_dir():
        sys.exit(f"no Python docs at {library}: apt-get download python3.11-doc && dpkg -x python3.11-doc_*.deb {pydoc_root}")
    chapters = set().union(*PYDOC_QUESTIONS.values()) | {"datatypes.html", "fileformats.html", "crypto.html", "allos.html", "markup.html", "i18n.html", "python.html", "language.html"}
    rows = []
    for chapter in sorted(chapters):
        page = (library / chapter).read_text(errors="replace")
        modules = sorted(set(re.findall(r'toctree-l1"><a class="reference internal" href="([a-z0-9_.]+\.html)"', page)))
        for module_page in modules:
            path = library / module_page
            if not path.is_file():
                continue
            body = path.read_text(errors="replace")
            entries = re.findall(r'<dl class="py (?:function|class|method)">\s*<dt[^>]*>.*?</dt>\s*<dd>(.*?)</dd>', body, flags=re.DOTALL)
            entries = [strip_html(e) for e in entries]
            entries = [e for e in entries if 40 <= len(e.split())]
            rng.shuffle(entries)
            for n, text in enumerate(entries[:per_module]):
                labels = {q: chapter in pages for q, pages in PYDOC_QUESTIONS.items()}
                rows.append(record("pydocs", f"{module_page[:-5]}#{n}", text, labels))
    return rows


def write(rows: list[dict], genre: str) -> None:
    with open(OUT / f"{genre}.jsonl", "w") as f:
        f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--npm-root", default="/work/cache_probe/src/npm/node_modules")
    parser.add_argument("--pydoc-root", default="/work/cache_probe/src/pydoc")
    parser.add_argument("--site", action="append", default=None, help="site-packages folder(s) with PyPI dist-info")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    OUT.mkdir(parents=True, exist_ok=True)
    sites = args.site or sorted(set(
        glob.glob("/work/main/.venv/lib/python3*/site-packages") + glob.glob("/root/.pyenv/versions/*/lib/python3*/site-packages")
    ))
    status, owners = dpkg_status(), file_owners()
    genres = {
        "manpages": build_manpages(rng, 34, status, owners),
        "changelogs": build_changelogs(rng, 200, status),
        "licences": build_licences(rng, 160),
        "pypi": build_pypi(sites),
        "npm": build_npm([args.npm_root, "/usr/lib/node_modules/npm/node_modules", "/usr/lib/node_modules"]),
        "debian": build_debian(status),
        "pydocs": build_pydocs(rng, args.pydoc_root, 2),
    }
    manifest = {
        "about": "Yes/no labels from structure the texts do not state; built by scripts/build_general_set.py.",
        "max_chars": MAX_CHARS,
        "train_genres": list(TRAIN_GENRES),
        "held_out_genres": list(HELD_OUT_GENRES),
        "sources": {
            "manpages": "Debian 12 man pages (sections 1,2,3,5,7,8) of installed packages, rendered by man; labels: section, the owning package's Priority, Perl module pages (3pm/3perl). Licences: each package's (DFSG-free, Debian main).",
            "changelogs": "Debian 12 /usr/share/doc/*/changelog.Debian.gz entries, body only; labels: version, distribution, urgency, year from the header/trailer, the package's Section. Licences: each package's.",
            "licences": "Stand-alone License paragraphs of DEP-5 copyright files in /usr/share/doc and /usr/share/common-licenses; labels from the licence short name (one question per property, e.g. copyleft, permissive, GPL, version 3). The texts are licences themselves (verbatim copying permitted).",
            "pypi": "METADATA long descriptions of PyPI distributions installed in the project venv and the system Python; labels: Trove classifiers, License, Requires-Dist, console_scripts entry points, WHEEL purelib, py.typed. Licences: each distribution's (OSI approved).",
            "npm": "README + package.json of npm's bundled dependencies and of `npm install --ignore-scripts eslint webpack`; labels: bin, dependencies, license, types, repository, version, type. Licences: each package's (MIT/ISC/BSD/Apache).",
            "debian": "HELD OUT. Debian 12 package descriptions: resources/labeled plus installed packages (/var/lib/dpkg/status); labels from Section. Licences: each package's (DFSG-free).",
            "pydocs": "HELD OUT. Python 3.11 Library Reference (Debian python3.11-doc), descriptions of functions/classes/methods; labels from the chapter a module is listed under. Licence: PSF License.",
        },
        "genres": {},
    }
    for genre, rows in genres.items():
        write(rows, genre)
        questions = sorted({q for r in rows for q in r["labels"]})
        manifest["genres"][genre] = {
            "documents": len(rows),
            "questions": {q: {"yes": sum(r["labels"].get(q) is True for r in rows),
                              "no": sum(r["labels"].get(q) is False for r in rows)} for q in questions},
        }
        print(f"{genre}: {len(rows)} documents, {len(questions)} questions", file=sys.stderr)
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
