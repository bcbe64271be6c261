"""RTF text through striprtf, with embedded pictures and objects dropped first."""
from __future__ import annotations

import re

from engine.intake import limits
from engine.intake.result import Deadline, Extraction

_RTF_BIG_GROUP = re.compile(r"\{(?:\\\*)?\\(?:pict|objdata|datastore|themedata|colorschememapping)(?![a-z])")
_RTF_BRACE_TOKEN = re.compile(r"\\bin(\d{1,9}) ?|\\[\\{}]|[{}]")
_RTF_UNICODE = re.compile(r"\\u(-?\d{1,10})")
_RTF_BARE_UC = re.compile(r"\\uc(?![-\d])")


def extract_rtf(data: bytes, *, max_chars: int, deadline: Deadline) -> Extraction:
    """RTF with striprtf, after removing embedded pictures/objects and fixing what crashes it."""
    from striprtf.striprtf import rtf_to_text

    try:
        source = data.decode("utf-8")
    except UnicodeDecodeError:
        source = data.decode("cp1252", errors="replace")
    source = _drop_rtf_groups(source)
    out = Extraction()
    if len(source) > limits.MAX_RTF_CHARS:
        source, out.truncated = source[:limits.MAX_RTF_CHARS], True
        out.warnings.append(f"RTF is very large; only its first {limits.MAX_RTF_CHARS // 10**6} million characters were read")
    source = _RTF_UNICODE.sub(_rtf_unicode_fix, source)
    source = _RTF_BARE_UC.sub(r"\\uc1", source)
    if any(len(line) > 20_000 for line in source.splitlines()):
        # striprtf's hyperlink/font-table regexes backtrack to the end of the line: on a
        # single-line file that is quadratic. RTF ignores raw newlines, so break lines at groups.
        source = re.sub(r"(?<!\\)\{", "\n{", source)
    try:
        text = rtf_to_text(source, errors="replace")
    except LookupError:  # a font charset Python has no codec for
        text = rtf_to_text(re.sub(r"\\fcharset\d+", r"\\fcharset0", source), errors="replace")
    out.text = re.sub(r"\n{3,}", "\n\n", text)
    return out


def _rtf_unicode_fix(match: re.Match) -> str:
    value = int(match.group(1))
    if value < 0:
        value += 0x10000
    return match.group(0) if 0 <= value <= 0x10FFFF else "\\u63"


def _drop_rtf_groups(text: str) -> str:
    """Remove picture/object/data groups (often megabytes of hex) by brace matching."""
    out, pos = [], 0
    while True:
        start = _RTF_BIG_GROUP.search(text, pos)
        if start is None:
            break
        out.append(text[pos : start.start()])
        pos = _rtf_group_end(text, start.start())
    out.append(text[pos:])
    return "".join(out)


def _rtf_group_end(text: str, start: int) -> int:
    depth, pos = 0, start
    while True:
        token = _RTF_BRACE_TOKEN.search(text, pos)
        if token is None:
            return len(text)
        pos = token.end()
        if token.group(1):
            pos += int(token.group(1))  # \binN: N raw bytes that may contain braces
        elif token.group() == "{":
            depth += 1
        elif token.group() == "}":
            depth -= 1
            if depth == 0:
                return pos
