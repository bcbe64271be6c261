"""Many documents in one file: mailboxes (written by the stdlib's `mailbox`) and archives (by
`zipfile` and `tarfile`) give one row per message or member, in order, bad items as rows."""
from __future__ import annotations

import email.message
import io
import mailbox
import os
import tarfile
import zipfile
import zlib

import pytest

import fixtures_docs as fx
from engine.intake import limits, load_documents


def _message(n: int) -> email.message.EmailMessage:
    message = email.message.EmailMessage()
    message["Subject"] = f"Order {n} delayed" if n % 2 else f"Newsletter {n}"
    message["From"] = f"customer{n}@example.com"
    message["Date"] = "Mon, 07 Dec 2026 10:00:00 +0000"
    message["Message-ID"] = f"<{n}@example.com>"
    message.set_content(f"Message number {n}.\nFrom here on the body continues.\n")
    return message


def _mbox(path, count: int):
    """An mbox of `count` messages written by the stdlib."""
    box = mailbox.mbox(path)
    for n in range(count):
        box.add(_message(n))
    box.close()
    return path


def test_an_mbox_of_a_thousand_messages_gives_a_thousand_rows_in_order(tmp_path):
    path = _mbox(tmp_path / "inbox.mbox", 1000)
    docs = load_documents([path])
    assert len(docs) == 1000
    assert [d.id for d in docs[:2]] == [f"{path}:#1 <0@example.com>", f"{path}:#2 <1@example.com>"]
    expected = [m["Subject"] for m in mailbox.mbox(path)]  # what the stdlib reads, message by message
    assert [d.text.splitlines()[0] for d in docs] == [f"Subject: {s}" for s in expected]
    assert all(d.error is None and "From here on the body continues." in d.text for d in docs)  # a ">From" unquoted
    assert all(d.meta["kind"] == "eml" for d in docs)


def test_text_before_the_first_separator_costs_one_row_and_no_message(tmp_path):
    good = _mbox(tmp_path / "good.mbox", 3)
    broken = tmp_path / "broken.mbox"
    stray = b"Fron MAILER-DAEMON broken separator\nSubject: lost?\n\nstray text\n\n"
    broken.write_bytes(stray + good.read_bytes())
    docs = load_documents([broken])
    assert [d.id.split(":#")[1] for d in docs] == ["0", "1 <0@example.com>", "2 <1@example.com>", "3 <2@example.com>"]
    assert docs[0].error.startswith(f"{len(stray)} bytes before the first 'From ' line") and docs[0].text == ""
    empty = tmp_path / "empty.mbox"
    empty.write_bytes(b"")
    (row,) = load_documents([empty])
    assert row.error == "no messages found in the mailbox (it is empty)"


def test_a_maildir_gives_one_row_per_message_whatever_the_host_is_called(tmp_path):
    (tmp_path / "Mail").mkdir()
    box = mailbox.Maildir(tmp_path / "Mail" / "inbox")
    keys = [box.add(_message(n)) for n in range(5)]
    os.rename(box._path + "/new/" + keys[0], box._path + "/new/" + keys[0].split(".")[0] + ".M1P2.vm")  # a short host
    (tmp_path / "Mail" / "notes.txt").write_text("a note beside the mailbox")
    docs = load_documents([tmp_path / "Mail"])
    assert len(docs) == 6 and docs[-1].id.endswith("notes.txt")
    subjects = sorted(d.text.splitlines()[0] for d in docs[:5])
    assert subjects == sorted(f"Subject: {_message(n)['Subject']}" for n in range(5))
    assert all(d.id.startswith(f"{tmp_path / 'Mail' / 'inbox'}:#") for d in docs[:5])


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_a_zip_of_fifty_members_gives_fifty_rows_by_a_folders_rules(tmp_path):
    members = {f"docs/{n:02d}.txt": f"Document number {n}".encode() for n in range(48)}
    members["docs/contract.docx"] = fx.make_docx("The tenant pays rent monthly.")
    members["mail/1700000000.M1P2.host:2,S"] = fx.make_eml()  # no extension: sniffed as e-mail
    skipped = {"__MACOSX/docs/._00.txt": b"x", "docs/.DS_Store": b"\0", "photo.png": b"\x89PNG", "LICENSE": b"\0\1"}
    path = tmp_path / "docs.zip"
    path.write_bytes(_zip({**members, **skipped}))
    docs = load_documents([path])
    assert [d.id for d in docs] == [f"{path}!{name}" for name in members]
    assert [d.text for d in docs[:48]] == [f"Document number {n}" for n in range(48)]
    assert "The tenant pays rent monthly." in docs[48].text and docs[48].meta["kind"] == "docx"
    assert docs[49].meta["kind"] == "eml" and all(d.error is None for d in docs)


def test_traversal_names_a_nested_bomb_and_a_damaged_member_each_cost_one_row(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_FILE_BYTES", 4 * 2**20)
    bomb = fx.zip_with_members([("zeros.txt", fx.zeros_deflate_stream(64), 64 * 2**20, 0)])
    good = zlib.compress(b"fine text", 9)[2:-4]
    damaged = fx.zip_with_members([("ok.txt", good, 9, zlib.crc32(b"fine text")),
                                   ("bad.txt", good, 9, zlib.crc32(b"something else"))])
    path = tmp_path / "sent.zip"
    path.write_bytes(fx.zip_with_members([
        ("a.txt", good, 9, zlib.crc32(b"fine text")),
        ("../../etc/evil.txt", good, 9, zlib.crc32(b"fine text")),
        ("/abs/evil.txt", good, 9, zlib.crc32(b"fine text")),
        ("inner/bomb.zip", zlib.compress(bomb, 9)[2:-4], len(bomb), zlib.crc32(bomb)),
        ("inner/damaged.zip", zlib.compress(damaged, 9)[2:-4], len(damaged), zlib.crc32(damaged)),
        ("z.txt", good, 9, zlib.crc32(b"fine text")),
    ]))
    docs = load_documents([path])
    rows = {d.id.removeprefix(f"{path}!"): d for d in docs}
    assert list(rows) == ["a.txt", "../../etc/evil.txt", "/abs/evil.txt", "inner/bomb.zip!zeros.txt",
                          "inner/damaged.zip!ok.txt", "inner/damaged.zip!bad.txt", "z.txt"]
    assert rows["a.txt"].text == rows["z.txt"].text == rows["inner/damaged.zip!ok.txt"].text == "fine text"
    for name in ("../../etc/evil.txt", "/abs/evil.txt"):
        assert "leads outside the archive" in rows[name].error and rows[name].text == ""
    assert "zip bomb" in rows["inner/bomb.zip!zeros.txt"].error
    assert rows["inner/damaged.zip!bad.txt"].error.startswith("damaged member: ")
    assert [d.error is None for d in docs] == [True, False, False, False, True, False, True]


def test_archives_nested_too_deep_and_past_the_total_are_refused_per_member(tmp_path, monkeypatch):
    inner = _zip({"deep.txt": b"very deep"})
    for level in range(limits.ARCHIVE_MAX_DEPTH):
        inner = _zip({f"level{level}.zip": inner, f"note{level}.txt": f"note at level {level}".encode()})
    path = tmp_path / "nest.zip"
    path.write_bytes(inner)
    docs = load_documents([path])
    assert [d.text for d in docs if d.error is None] == ["note at level 0", "note at level 1", "note at level 2"]
    refused = [d for d in docs if d.error]
    assert len(refused) == 1 and "nested deeper than 3" in refused[0].error
    assert refused[0].id.count("!") == limits.ARCHIVE_MAX_DEPTH

    monkeypatch.setattr(limits, "ARCHIVE_MAX_UNCOMPRESSED", 2500)
    path.write_bytes(_zip({f"{n}.txt": bytes([65 + n]) * 1000 for n in range(4)}))
    docs = load_documents([path])
    assert [d.error is None for d in docs] == [True, True, False, False]
    assert all("in all; refusing the rest" in d.error for d in docs[2:])


def test_a_tar_gz_by_a_folders_rules_with_links_and_escapes_refused(tmp_path):
    path = tmp_path / "docs.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for name, data in [("./a.txt", b"first"), ("sub/b.md", b"# second"), ("../up.txt", b"escape"),
                           ("sub/.hidden.txt", b"hidden"), ("c.eml", fx.make_eml())]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("link.txt")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(link)
    docs = load_documents([path])
    assert [d.id.removeprefix(f"{path}!") for d in docs] == ["./a.txt", "sub/b.md", "../up.txt", "c.eml", "link.txt"]
    assert [d.text for d in docs[:2]] == ["first", "# second"] and docs[3].meta["kind"] == "eml"
    assert "leads outside the archive" in docs[2].error and "a link" in docs[4].error


@pytest.mark.parametrize("content, message", [
    (b"PK\x03\x04" + bytes(40), "not a readable zip archive"),
    (b"not a tar at all" * 100, "not a readable tar archive"),
])
def test_a_damaged_archive_is_one_error_row(tmp_path, content, message):
    path = tmp_path / ("x.zip" if content.startswith(b"PK") else "x.tgz")
    path.write_bytes(content)
    (row,) = load_documents([path])
    assert row.id == str(path) and message in row.error
