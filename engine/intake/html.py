"""HTML to plain text with block structure kept as line breaks."""
from __future__ import annotations

import re
import warnings

from engine.intake import limits
from engine.intake.result import Deadline, Extraction
from engine.intake.text import decode_text

try:  # narrow, permanent filters: these bs4 warnings are about input we expect to see
    from bs4 import MarkupResemblesLocatorWarning, XMLParsedAsHTMLWarning

    warnings.filterwarnings("ignore", category=MarkupResemblesLocatorWarning)
    warnings.filterwarnings("ignore", category=XMLParsedAsHTMLWarning)
except ImportError:  # pragma: no cover - bs4 is a dependency
    pass



_HTML_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9_:.-]+)""", re.IGNORECASE)


def extract_html(data: bytes, *, max_chars: int, deadline: Deadline) -> Extraction:
    """HTML with BeautifulSoup (stdlib html.parser): script/style dropped, blocks on lines."""
    declared = None
    match = _HTML_CHARSET.search(data[:4096])
    if match:
        declared = match.group(1).decode("ascii").lower()
        if declared in ("iso-8859-1", "latin-1", "latin1", "us-ascii", "ascii"):
            declared = "cp1252"  # what browsers do
        elif declared.startswith(("utf-16", "utf16")):
            declared = None  # a byte-order mark would have said so
    markup, note = decode_text(data, declared=declared)
    out = Extraction(warnings=[note] if note else [])
    out.text, out.truncated = _html_text(markup, out.warnings)
    return out


# Private-use characters mark structure while source whitespace is collapsed.
_BR, _BLOCK, _PARA, _CELL = "\ue000", "\ue001", "\ue002", "\ue003"
_DROP_TAGS = frozenset("script style noscript template svg canvas iframe object embed head title".split())
_PARA_TAGS = frozenset("p h1 h2 h3 h4 h5 h6 table blockquote pre ul ol dl section article hr figure".split())
_BLOCK_TAGS = frozenset(
    "address aside body center dd details dialog dir div dt fieldset figcaption footer form "
    "header hgroup li main menu nav summary tbody thead tfoot tr caption legend option".split()
)
_MARKER_RUN = re.compile(f"[ {_BR}{_BLOCK}{_PARA}{_CELL}]+")


def html_to_text(markup: str) -> str:
    """Readable text of an HTML string: title first, blocks on their own lines.

    Only the first ``limits.MAX_HTML_CHARS`` characters of markup are parsed.
    """
    return _html_text(markup, [])[0]


def _html_text(markup: str, notes: list[str]) -> tuple[str, bool]:
    """(text, clipped). One iterative pass over the parsed tree: no recursion, and no
    tree edits (bs4's insert_before is linear in the number of siblings)."""
    from bs4 import BeautifulSoup
    from bs4.element import CData, NavigableString, PreformattedString, Tag

    clipped = len(markup) > limits.MAX_HTML_CHARS
    if clipped:
        markup = markup[:limits.MAX_HTML_CHARS]
        notes.append(f"HTML is very large; only its first {limits.MAX_HTML_CHARS // 10**6} million characters were read")
    soup = BeautifulSoup(markup, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    out: list[str] = []
    in_pre = 0
    stack: list = [soup]
    while stack:
        node = stack.pop()
        if isinstance(node, Tag):
            name = node.name
            if name in _DROP_TAGS:
                continue
            if name == "br":
                out.append(_BR)
                continue
            marker = _PARA if name in _PARA_TAGS else _BLOCK if name in _BLOCK_TAGS else None
            if name in ("td", "th"):
                out.append(_CELL)  # a cell that starts a row shares its run with the row's marker
            if marker:
                out.append(marker)
                stack.append(marker)  # emitted again when the element ends
            if name == "pre":
                in_pre += 1
                stack.append(_END_PRE)
            stack.extend(reversed(node.contents))
        elif node is _END_PRE:
            in_pre -= 1
        elif isinstance(node, NavigableString):
            if isinstance(node, PreformattedString) and not isinstance(node, CData):
                continue  # comments, doctype, processing instructions
            out.append(str(node).replace("\n", _BR) if in_pre else str(node))
        else:  # a marker pushed for an element's end
            out.append(node)
    text = re.sub(r"\s+", " ", "".join(out))
    text = _MARKER_RUN.sub(_marker_run_text, text).strip()
    if title and not text.startswith(title):
        text = f"{title}\n\n{text}" if text else title
    return text, clipped


class _EndPre:
    pass


_END_PRE = _EndPre()


def _marker_run_text(match: re.Match) -> str:
    run = match.group()
    if _PARA in run:
        return "\n\n"
    breaks = run.count(_BR)
    if breaks:
        return "\n" * min(breaks, 2)
    if _BLOCK in run:
        return "\n"
    if _CELL in run:
        return " | "
    return " "
