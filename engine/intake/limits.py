"""Size, time and count limits of document intake, measured where it says so.

Other intake modules read these as `limits.NAME` at call time, so a test can lower one.
"""

DEFAULT_MAX_CHARS = 2_000_000
DEFAULT_TIMEOUT_S = 30.0
MAX_FILE_BYTES = 256 * 1024 * 1024  # whole-file formats (pdf, docx, eml) above this are refused
MAX_MARKUP_BYTES = 64 * 1024 * 1024  # html/rtf: only this much is read
# Parser throughput caps, so that one uninterruptible call stays well under the time limit.
# Measured on a slow 2-core Linux box: bs4 + html.parser ~150 K chars/s of dense markup
# (4 M chars took 27 s), striprtf ~1.3 M chars/s.
MAX_HTML_CHARS = 2_000_000
MAX_RTF_CHARS = 16_000_000
MAX_PDF_PAGES = 5000
DOCX_MAX_UNCOMPRESSED = 200_000_000
DOCX_MAX_RATIO = 100  # for parts larger than DOCX_RATIO_MIN_BYTES once decompressed
DOCX_RATIO_MIN_BYTES = 10 * 1024 * 1024
DOCX_MAX_PARTS = 10_000
XLSX_MAX_UNCOMPRESSED = 2_000_000_000  # a sheet's XML is ~20x its cells; openpyxl streams it
# One CSV field (a table cell) longer than this costs its row (an error row), not the table.
MAX_FIELD_CHARS = 2_000_000

SNIFF_BYTES = 8192  # bytes read to choose a file's format
# One --jsonl-in line (or standard input) larger than this is refused without being parsed:
# a 64 MB line peaks at about 4x its size in Python objects while it is decoded and parsed.
MAX_LINE_BYTES = 64 * 1024 * 1024
# Archives (.zip, .tar, .tgz): each member is capped at MAX_FILE_BYTES once inflated, the whole
# archive (nested ones included) at this; members past the count are refused in one row.
ARCHIVE_MAX_UNCOMPRESSED = 2_000_000_000
ARCHIVE_MAX_MEMBERS = 100_000
ARCHIVE_MAX_DEPTH = 3  # an archive in an archive in an archive is read; one more level is refused
