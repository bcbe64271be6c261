"""Seeded random mutations of valid files of every type: nothing escapes, nothing hangs."""
from __future__ import annotations

import copy
import io
import random
import signal
import time
import zipfile

import pytest

import fixtures_docs as fx
from engine.intake import Extraction, extract_file

CASES = 900  # 100 per sample file (7 kinds, 9 files)
PER_FILE_LIMIT_S = 10.0


def _mutate(data: bytes, rng: random.Random, donors: list[bytes]) -> bytes:
    """Apply 1-4 random edits: bit flips, truncation, splices, insertions, zeroed runs."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.choice(("flip", "flip", "truncate", "splice", "insert", "zero", "repeat"))
        n = len(buf)
        if n == 0:
            buf += bytes([rng.randrange(256)])
            continue
        at = rng.randrange(n)
        if op == "flip":
            for _ in range(rng.randint(1, 16)):
                i = rng.randrange(n)
                buf[i] ^= 1 << rng.randrange(8)
        elif op == "truncate":
            del buf[at:]
        elif op == "splice":
            donor = rng.choice(donors)
            start = rng.randrange(len(donor))
            buf[at:at] = donor[start : start + rng.randint(1, 512)]
        elif op == "insert":
            buf[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
        elif op == "zero":
            end = min(n, at + rng.randint(1, 256))
            buf[at:end] = bytes(end - at)
        else:  # repeat a slice many times: stresses parsers' worst cases a little
            chunk = bytes(buf[at : at + rng.randint(1, 32)])
            buf[at:at] = chunk * rng.randint(2, 200)
    return bytes(buf)


_WORD_TAGS = ("p", "r", "t", "tbl", "tr", "tc", "tcPr", "gridSpan", "vMerge", "tblGrid", "gridCol", "br", "tab")


def _mutate_docx_xml(data: bytes, rng: random.Random, donors: list[bytes]) -> bytes:
    """Reshape word/document.xml inside a well-formed zip so python-docx itself is exercised.

    Byte-level edits almost always make the XML ill-formed (rejected early by lxml), so
    half of these cases edit the element tree instead: delete, duplicate, move, rename
    elements and scramble attributes.
    """
    from lxml import etree

    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            body = source.read(info.filename)
            if info.filename == "word/document.xml":
                if rng.random() < 0.5:
                    body = _mutate(body, rng, donors)
                else:
                    body = _mutate_tree(etree.fromstring(body), rng)
            target.writestr(info.filename, body)
    return out.getvalue()


def _mutate_tree(root, rng: random.Random) -> bytes:
    from lxml import etree

    w = root.nsmap.get("w", "http://schemas.openxmlformats.org/wordprocessingml/2006/main")
    for _ in range(rng.randint(1, 6)):
        elements = [e for e in root.iter() if isinstance(e.tag, str)]
        if len(elements) < 2:
            break
        element = rng.choice(elements[1:])
        parent = element.getparent()
        op = rng.choice(("delete", "duplicate", "move", "rename", "attribute"))
        if op == "delete" and parent is not None:
            parent.remove(element)
        elif op == "duplicate" and parent is not None:
            for _ in range(rng.randint(1, 5)):
                parent.insert(parent.index(element), copy.deepcopy(element))
        elif op == "move":
            target = rng.choice(elements[1:])
            if element not in target.iterancestors() and element is not target:
                target.append(element)
        elif op == "rename":
            element.tag = f"{{{w}}}{rng.choice(_WORD_TAGS)}"
        else:
            value = rng.choice(("0", "-1", "99999999", "restart", "continue", "", "x" * 50))
            element.set(f"{{{w}}}{rng.choice(('val', 'w', 'type'))}", value)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)


@pytest.fixture(scope="module")
def samples() -> dict[str, bytes]:
    files = fx.valid_samples()
    files["locked.pdf"] = fx.make_encrypted_pdf()
    files["alternative.eml"] = fx.make_html_only_eml()
    return files


class _Hang(Exception):
    pass


def test_fuzzed_files_never_raise_or_hang(samples, tmp_path):
    rng = random.Random(20240607)
    names = sorted(samples)
    donors = [samples[n] for n in names]
    use_alarm = hasattr(signal, "setitimer")
    if use_alarm:
        def on_alarm(signum, frame):
            raise _Hang()

        previous = signal.signal(signal.SIGALRM, on_alarm)
    slowest = (0.0, "")
    started = time.monotonic()
    try:
        for case in range(CASES):
            name = names[case % len(names)]
            data = samples[name]
            if name.endswith(".docx") and rng.random() < 0.5:
                mutated = _mutate_docx_xml(data, rng, donors)
            else:
                mutated = _mutate(data, rng, donors)
            path = tmp_path / f"case{case:04d}{name[name.rindex('.'):]}"
            path.write_bytes(mutated)
            t0 = time.monotonic()
            if use_alarm:
                signal.setitimer(signal.ITIMER_REAL, PER_FILE_LIMIT_S * 3)
            try:
                result = extract_file(path, max_chars=50_000, timeout_s=PER_FILE_LIMIT_S)
            except _Hang:
                pytest.fail(f"case {case} ({name}) hung; input kept at {path}")
            finally:
                if use_alarm:
                    signal.setitimer(signal.ITIMER_REAL, 0)
            elapsed = time.monotonic() - t0
            slowest = max(slowest, (elapsed, f"case {case} ({name})"))
            assert isinstance(result, Extraction)
            assert isinstance(result.text, str)
            assert len(result.text) <= 50_000
            if result.error is not None:
                assert result.error.strip() and result.text == "", (case, name, result)
            else:
                assert result.kind is not None
            path.unlink()
    finally:
        if use_alarm:
            signal.signal(signal.SIGALRM, previous)
    assert slowest[0] < PER_FILE_LIMIT_S, f"slowest: {slowest}"
    print(f"{CASES} fuzz cases in {time.monotonic() - started:.1f} s; slowest {slowest[0]:.2f} s ({slowest[1]})")
