"""engine.intake: paths and folders -> Document rows; one row per file, never an exception."""
from __future__ import annotations

import hashlib
import inspect
import os

import pytest

import fixtures_docs as fx
from engine.intake import walker as intake
from engine.intake import iter_documents, load_documents
from engine.types import Document


def _by_name(documents: list[Document]) -> dict[str, Document]:
    return {os.path.basename(d.id): d for d in documents}


def test_done_when_every_valid_file_has_text_and_every_bad_one_a_clear_error(tmp_path):
    """The acceptance scenario: a folder with one file of each type plus bad ones."""
    folder = tmp_path / "inbox"
    fx.write_files(folder, fx.valid_samples())
    fx.write_files(
        folder,
        {
            "corrupt.pdf": b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF",
            "locked.pdf": fx.make_encrypted_pdf(),
            "scan.pdf": fx.make_image_only_pdf(),
            "empty.txt": b"",
            "bomb.docx": fx.make_zip_bomb_docx(201),
            "program.txt": bytes(range(256)) * 16,
        },
    )
    documents = load_documents([folder])
    docs = _by_name(documents)
    assert sorted(docs) == sorted(
        list(fx.valid_samples()) + ["corrupt.pdf", "locked.pdf", "scan.pdf", "empty.txt", "bomb.docx", "program.txt"]
    )
    expected_snippets = {
        "invoice.pdf": fx.PDF_TEXT[0],
        "agreement.docx": "Widget | 9.99",
        "policy.html": "Refunds are issued within 14 days",
        "report.eml": f"Subject: {fx.EML_SUBJECT}",
        "contract.rtf": "Contract renewal is automatic.",
        "notes.txt": "the lease ends in 2027",
        "minutes.md": "Budget approved",
    }
    for name, snippet in expected_snippets.items():
        assert docs[name].error is None, (name, docs[name].error)
        assert snippet in docs[name].text, name
    assert docs["corrupt.pdf"].error.startswith("corrupt PDF: ")
    assert docs["locked.pdf"].error == "PDF is password-protected"
    assert docs["scan.pdf"].error == "PDF has no text layer (scanned image?); OCR is not supported"
    assert docs["empty.txt"].error == "file is empty"
    assert docs["bomb.docx"].error == "docx decompresses to more than 200 MB; refusing (zip bomb?)"
    assert docs["program.txt"].error == "not a text file: binary content in a .txt"
    for document in documents:
        if document.error:
            assert document.text == ""


def test_meta_fields(tmp_path):
    data = fx.make_pdf()
    (tmp_path / "a.pdf").write_bytes(data)
    (tmp_path / "b.txt").write_text("hello")
    pdf, text = load_documents([tmp_path / "a.pdf", tmp_path / "b.txt"])
    assert pdf.meta == {
        "kind": "pdf",
        "truncated": False,
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "pages": 2,
    }
    assert text.meta["kind"] == "text" and "pages" not in text.meta
    assert text.source == text.id


def test_ids_are_the_paths_as_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fx.write_files(tmp_path / "docs" / "sub", {"b.txt": b"b"})
    fx.write_files(tmp_path / "docs", {"a.txt": b"a"})
    fx.write_files(tmp_path, {"c.md": b"c"})
    ids = [d.id for d in load_documents(["c.md", "docs"])]
    assert ids == ["c.md", os.path.join("docs", "a.txt"), os.path.join("docs", "sub", "b.txt")]
    assert [d.id for d in load_documents(["docs/"])][0] == "docs/a.txt"


def test_order_named_then_sorted_depth_first(tmp_path):
    fx.write_files(tmp_path / "f", {"b.txt": b"1", "a.txt": b"2", "c.md": b"3"})
    fx.write_files(tmp_path / "f" / "b", {"z.txt": b"4"})
    fx.write_files(tmp_path, {"first.txt": b"5"})
    ids = [os.path.relpath(d.id, tmp_path) for d in load_documents([tmp_path / "first.txt", tmp_path / "f"])]
    assert ids == ["first.txt", "f/a.txt", "f/b/z.txt", "f/b.txt", "f/c.md"]
    again = [os.path.relpath(d.id, tmp_path) for d in load_documents([tmp_path / "first.txt", tmp_path / "f"])]
    assert again == ids


def test_hidden_clutter_and_unsupported_files_are_skipped_in_folders(tmp_path):
    fx.write_files(
        tmp_path / "f",
        {
            "keep.txt": b"keep",
            ".hidden.txt": b"hidden",
            ".DS_Store": b"\x00\x00",
            "Thumbs.db": b"\x00",
            "desktop.ini": b"[x]",
            "~$draft.docx": b"lock",
            "photo.png": b"\x89PNG\r\n\x1a\n",
            "archive.7z": b"7z\xbc\xaf\x27\x1c",
            "tool.exe": b"MZ\x90\x00",
            "README": b"no extension, plain text",
        },
    )
    fx.write_files(tmp_path / "f" / "__MACOSX", {"._keep.txt": b"x", "x.txt": b"x"})
    fx.write_files(tmp_path / "f" / ".git", {"notes.txt": b"x"})
    assert [os.path.basename(d.id) for d in load_documents([tmp_path / "f"])] == ["keep.txt"]


def test_explicit_files_unsupported_gets_a_row_clutter_does_not(tmp_path):
    fx.write_files(tmp_path, {"photo.png": b"\x89PNG\r\n\x1a\n", ".DS_Store": b"\x00", ".notes.txt": b"mine"})
    documents = load_documents([tmp_path / "photo.png", tmp_path / ".DS_Store", tmp_path / ".notes.txt"])
    assert [os.path.basename(d.id) for d in documents] == ["photo.png", ".notes.txt"]
    assert documents[0].error == "unsupported file type: .png"
    assert documents[1].text == "mine"


def test_extensionless_mail_is_found_in_folders(tmp_path):
    fx.write_files(tmp_path / "Maildir" / "cur", {"1700000000.M1P2.host:2,S": fx.make_eml()})
    (document,) = load_documents([tmp_path / "Maildir"])
    assert document.meta["kind"] == "eml" and fx.EML_SUBJECT in document.text


def test_duplicates_are_flagged_not_dropped(tmp_path):
    fx.write_files(tmp_path / "f", {"a.txt": b"same", "b.txt": b"same", "c.txt": b"other", "e1.txt": b"", "e2.txt": b""})
    docs = _by_name(load_documents([tmp_path / "f"]))
    assert docs["b.txt"].meta["duplicate_of"] == docs["a.txt"].id
    assert docs["b.txt"].warnings == [f"duplicate of {docs['a.txt'].id} (same content)"]
    assert docs["b.txt"].text == "same" and docs["b.txt"].error is None
    assert "duplicate_of" not in docs["a.txt"].meta and "duplicate_of" not in docs["c.txt"].meta
    assert "duplicate_of" not in docs["e2.txt"].meta  # empty files are errors, not duplicates


def test_the_same_file_named_twice_is_one_row(tmp_path):
    fx.write_files(tmp_path / "f", {"a.txt": b"a"})
    documents = load_documents([tmp_path / "f", tmp_path / "f" / "a.txt", tmp_path / "f"])
    assert len(documents) == 1


def test_missing_and_broken_paths(tmp_path):
    os.symlink(tmp_path / "nowhere.txt", tmp_path / "dangling.txt")
    os.symlink("self.txt", tmp_path / "self.txt")
    missing, dangling, loop = load_documents([tmp_path / "gone.pdf", tmp_path / "dangling.txt", tmp_path / "self.txt"])
    assert missing.error == "file not found" and missing.meta["kind"] == "pdf"
    assert dangling.error == "broken symlink: its target does not exist"
    assert loop.error == "symlink loop"


def test_symlink_loop_in_a_folder_is_reported_once(tmp_path):
    fx.write_files(tmp_path / "f" / "sub", {"a.txt": b"a"})
    os.symlink("..", tmp_path / "f" / "sub" / "up")
    os.symlink(tmp_path / "f" / "sub", tmp_path / "f" / "alias")  # not a loop: read once
    os.symlink("loop.txt", tmp_path / "f" / "loop.txt")
    docs = _by_name(load_documents([tmp_path / "f"]))
    assert sorted(docs) == ["a.txt", "loop.txt", "up"]
    assert docs["up"].error.startswith("symlink loop")
    assert docs["loop.txt"].error == "symlink loop"


def test_unreadable_folder_gets_an_error_row(tmp_path, monkeypatch):
    fx.write_files(tmp_path / "f", {"a.txt": b"a"})
    fx.write_files(tmp_path / "f" / "locked", {"b.txt": b"b"})
    real_scandir = os.scandir

    def scandir(path):
        if os.path.basename(path) == "locked":
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(intake.os, "scandir", scandir)
    a, locked = load_documents([tmp_path / "f"])
    assert a.text == "a"
    assert locked.id.endswith("locked") and locked.error == "permission denied: cannot open folder"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads anything")
def test_unreadable_file_and_folder_for_real(tmp_path):
    fx.write_files(tmp_path / "f" / "locked", {"b.txt": b"b"})
    fx.write_files(tmp_path / "f", {"secret.txt": b"s"})
    (tmp_path / "f" / "secret.txt").chmod(0)
    (tmp_path / "f" / "locked").chmod(0)
    try:
        docs = _by_name(load_documents([tmp_path / "f"]))
        assert docs["locked"].error == "permission denied: cannot open folder"
        assert docs["secret.txt"].error == "permission denied"
    finally:
        (tmp_path / "f" / "locked").chmod(0o700)
        (tmp_path / "f" / "secret.txt").chmod(0o600)


def test_non_utf8_file_names(tmp_path):
    folder = os.fsencode(tmp_path / "f")
    os.mkdir(folder)
    try:
        with open(os.path.join(folder, b"caf\xe9.txt"), "wb") as f:
            f.write(b"menu")
    except OSError:
        pytest.skip("this file system only allows UTF-8 names")
    (document,) = load_documents([folder])
    assert document.id == os.path.join(str(tmp_path / "f"), "caf\\xe9.txt")
    assert document.id.encode("utf-8")  # printable, JSON- and CSV-safe
    assert document.text == "menu"
    assert document.warnings == ["file name is not valid UTF-8; undecodable bytes are shown as \\x escapes"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifos_sockets_and_devices_get_rows_and_never_block(tmp_path):
    import socket

    folder = tmp_path / "f"
    fx.write_files(folder, {"a.txt": b"a"})
    os.mkfifo(folder / "pipe.txt")
    os.mkfifo(folder / "pipe-no-suffix")
    os.symlink("/dev/zero", folder / "zero.txt")
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(folder / "sock"))
        docs = load_documents([folder])
    finally:
        server.close()
    assert [(os.path.basename(d.id), d.error) for d in docs] == [
        ("a.txt", None),
        ("pipe-no-suffix", "skipped: not a regular file (device, pipe or socket)"),
        ("pipe.txt", "skipped: not a regular file (device, pipe or socket)"),
        ("sock", "skipped: not a regular file (device, pipe or socket)"),
        ("zero.txt", "skipped: not a regular file (device, pipe or socket)"),
    ]
    (explicit,) = load_documents([folder / "pipe.txt"])
    assert explicit.error.endswith("not a regular file (device, pipe or socket)")


def test_max_chars_is_passed_through(tmp_path):
    (tmp_path / "long.txt").write_text("x" * 5000)
    (document,) = load_documents([tmp_path / "long.txt"], max_chars=100)
    assert len(document.text) == 100 and document.meta["truncated"] is True
    assert document.warnings[-1] == "text truncated (100 characters kept)"


def test_iter_documents_streams(tmp_path):
    fx.write_files(tmp_path, {"a.txt": b"a", "b.txt": b"b"})
    stream = iter_documents([tmp_path])
    assert inspect.isgenerator(stream)
    assert next(stream).text == "a"
    assert [d.text for d in iter_documents(str(tmp_path))] == ["a", "b"]  # one path, not a list


def test_unexpected_failures_become_error_rows(tmp_path, monkeypatch):
    fx.write_files(tmp_path, {"a.txt": b"a", "b.txt": b"b"})

    def broken(path):
        if path.endswith("a.txt"):
            raise RuntimeError("boom")
        return intake.hashlib.sha256(b"b").hexdigest(), 1

    monkeypatch.setattr(intake, "_sha256", broken)
    a, b = load_documents([tmp_path])
    assert a.error == "could not read file: boom" and a.text == ""
    assert b.text == "b"


def test_unexpected_failure_while_walking_becomes_an_error_row(tmp_path, monkeypatch):
    fx.write_files(tmp_path / "f", {"a.txt": b"a"})
    fx.write_files(tmp_path, {"z.txt": b"z"})

    def broken(path):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(intake, "_list_folder", broken)
    folder, z = load_documents([tmp_path / "f", tmp_path / "z.txt"])
    assert folder.error == "could not read folder: disk on fire"
    assert z.text == "z"
