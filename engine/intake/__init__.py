"""Document intake: files, folders and pasted bytes in, `Document` rows with plain text out.

Owns: walking what the user named (`walker`), choosing a file's format (`sniff`), one module per
format (`text`, `pdf`, `docx`, `html`, `mail`, `rtf`), the dispatch that never raises
(`extract`), and the size and time limits (`limits`); files that hold many documents
(`mailboxes`, `archives`, `table`).
May import: the standard library, the format libraries (pypdfium2, python-docx, bs4, striprtf,
charset-normalizer, openpyxl) and `engine.types`. Never MLX, never the model runtime, never Qt.
"""
from engine.intake.extract import extract_bytes, extract_file
from engine.intake.html import html_to_text
from engine.intake.result import Deadline, Extraction
from engine.intake.text import decode_text
from engine.intake.walker import iter_documents, load_documents

__all__ = [
    "Deadline",
    "Extraction",
    "decode_text",
    "extract_bytes",
    "extract_file",
    "html_to_text",
    "iter_documents",
    "load_documents",
]
