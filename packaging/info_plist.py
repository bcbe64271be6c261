"""The Info.plist keys of Verdict.app, merged by PyInstaller's BUNDLE (packaging/verdict.spec).

A module of its own so that tests can check it on any platform (tests/test_packaging.py).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BUNDLE_ID = "app.verdict.Verdict"
MINIMUM_MACOS = "14.0"

# Uniform Type Identifiers of what Verdict reads, so Finder's "Open With" and the Dock icon accept
# them; they arrive as QFileOpenEvents (app/application.py).
DOCUMENT_TYPES = [
    ("PDF document", ["com.adobe.pdf"]),
    ("Word document", ["org.openxmlformats.wordprocessingml.document", "com.microsoft.word.doc"]),
    ("HTML document", ["public.html"]),
    ("E-mail message", ["com.apple.mail.email", "public.email-message"]),
    ("Rich Text document", ["public.rtf"]),
    ("Markdown document", ["net.daringfireball.markdown"]),
    ("Plain text", ["public.plain-text", "public.text"]),
]


def project_version() -> str:
    """`version` of [project] in pyproject.toml (tomllib is 3.11+, so a regex keeps 3.10 working)."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    match = re.search(r'(?m)^\[project\][^\[]*?^version\s*=\s*"([^"]+)"', text)
    if not match:
        raise SystemExit("packaging: no version in [project] of pyproject.toml")
    return match.group(1)


def info_plist(version: str) -> dict[str, Any]:
    """The keys Verdict sets (PyInstaller adds CFBundleIdentifier, CFBundleIconFile and others)."""
    return {
        # BUNDLE takes `console` from the COLLECT, i.e. from its last EXE (the CLI), and would make
        # the app LSBackgroundOnly (no Dock icon, no menu bar): the window app is not.
        "LSBackgroundOnly": False,
        "CFBundleExecutable": "Verdict",
        "CFBundleName": "Verdict",
        "CFBundleDisplayName": "Verdict",
        "CFBundleIdentifier": BUNDLE_ID,
        "CFBundleShortVersionString": version,
        "CFBundleVersion": version,
        "NSHighResolutionCapable": True,
        "LSMinimumSystemVersion": MINIMUM_MACOS,
        "LSApplicationCategoryType": "public.app-category.productivity",
        "NSHumanReadableCopyright": "Apache-2.0",
        "CFBundleDocumentTypes": [
            {
                "CFBundleTypeName": name,
                "CFBundleTypeRole": "Viewer",
                "LSHandlerRank": "Alternate",
                "LSItemContentTypes": types,
            }
            for name, types in DOCUMENT_TYPES
        ],
    }
