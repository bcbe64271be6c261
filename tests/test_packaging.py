"""packaging/: the bundle checker's ELF reader against binutils' readelf, its verdict on a bundle
that lacks a library, and the icon file against file(1). Fast: no bundle is built here (CI's
`make package check-package` builds and runs the real one)."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "packaging"))
import check_bundle  # noqa: E402

mlx_core = pytest.importorskip("mlx.core")
MLX_DIR = Path(mlx_core.__file__).resolve().parent


def _real_elves() -> list[Path]:
    libs = sorted((MLX_DIR / "lib").glob("libmlx*.so")) + sorted(MLX_DIR.glob("core*.so"))
    return [p for p in libs if p.read_bytes()[:4] == b"\x7fELF"]


def _readelf_dynamic(path: Path) -> tuple[list[str], list[str], list[str]]:
    out = subprocess.run(["readelf", "-d", str(path)], capture_output=True, text=True, check=True).stdout
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.*)\]", out)
    soname = re.findall(r"\(SONAME\)\s+Library soname: \[(.*)\]", out)
    rpaths = [p for r in re.findall(r"\((?:RPATH|RUNPATH)\)\s+Library r(?:un)?path: \[(.*)\]", out) for p in r.split(":")]
    return needed, soname, rpaths


@pytest.mark.skipif(sys.platform != "linux" or shutil.which("readelf") is None, reason="needs Linux ELF files and readelf")
def test_elf_reader_agrees_with_readelf():
    elves = _real_elves()
    assert elves, "MLX's Linux wheel has ELF libraries"
    for path in elves:
        info = check_bundle.read_elf(path)
        needed, soname, rpaths = _readelf_dynamic(path)
        assert info.needed == needed, path
        assert ([info.soname] if info.soname else []) == soname, path
        assert info.rpaths == rpaths, path
    assert check_bundle.read_elf(ROOT / "pyproject.toml") is None


@pytest.mark.skipif(sys.platform != "linux", reason="the Linux bundle check")
def test_linux_check_fails_on_a_library_outside_the_bundle(tmp_path):
    libmlx = MLX_DIR / "lib" / "libmlx.so"
    bundle = tmp_path / "Verdict"
    (bundle / "_internal").mkdir(parents=True)
    for exe in ("Verdict", "verdict"):
        (bundle / exe).write_text("#!/bin/sh\n")
        (bundle / exe).chmod(0o755)
    shutil.copy(libmlx, bundle / "_internal" / libmlx.name)
    report = check_bundle.Report()
    check_bundle.check_linux(bundle, report)
    missing = [n for n in check_bundle.read_elf(libmlx).needed if n.startswith(("libblas", "liblapack"))]
    assert missing, "libmlx needs MLX's own BLAS"
    for name in missing:
        assert any(name in f for f in report.failures), report.failures

    # With MLX's libraries beside it, only what the manylinux base set provides is left outside.
    for lib in (MLX_DIR.parent / "mlx_cpu.libs").glob("*.so*"):
        shutil.copy(lib, bundle / "_internal" / lib.name)
    report = check_bundle.Report()
    check_bundle.check_linux(bundle, report)
    assert report.failures == []


def test_check_reports_a_missing_bundle_and_model(tmp_path):
    assert check_bundle.check(tmp_path / "nothing").failures
    bundle = tmp_path / "Verdict"
    bundle.mkdir()
    failures = check_bundle.check(bundle).failures
    assert any("default model" in f for f in failures)
    assert any("executable" in f for f in failures)


@pytest.mark.skipif(shutil.which("file") is None, reason="needs file(1)")
def test_icon_is_an_icns_file_and_the_spec_uses_it():
    icns = ROOT / "resources" / "icons" / "Verdict.icns"
    out = subprocess.run(["file", "-b", str(icns)], capture_output=True, text=True, check=True).stdout
    assert "Mac OS X icon" in out, out
    assert "Verdict.icns" in (ROOT / "packaging" / "verdict.spec").read_text(encoding="utf-8")


def _fake_app(tmp_path, plist: dict) -> Path:
    import plistlib

    app = tmp_path / "Verdict.app"
    (app / "Contents" / "MacOS").mkdir(parents=True)
    (app / "Contents" / "Resources").mkdir()
    shutil.copy(ROOT / "resources" / "icons" / "Verdict.icns", app / "Contents" / "Resources")
    (app / "Contents" / "Info.plist").write_bytes(plistlib.dumps({**plist, "CFBundleIconFile": "Verdict.icns"}))
    for exe in ("Verdict", "verdict-cli"):
        (app / "Contents" / "MacOS" / exe).write_text("#!/bin/sh\n")
        (app / "Contents" / "MacOS" / exe).chmod(0o755)
    return app


def _plist_failures(app: Path) -> list[str]:
    report = check_bundle.Report()
    check_bundle.check_mac(app, report, check_bundle.project_version())
    return [f for f in report.failures if "libmlx" not in f]  # a fake app has no MLX


def test_the_specs_info_plist_passes_the_mac_check_and_each_gap_fails_it(tmp_path):
    import info_plist

    good = info_plist.info_plist(check_bundle.project_version())
    assert _plist_failures(_fake_app(tmp_path / "good", good)) == []

    no_markdown = {**good, "CFBundleDocumentTypes": [t for t in good["CFBundleDocumentTypes"]
                                                      if "net.daringfireball.markdown" not in t["LSItemContentTypes"]]}
    assert any("Markdown" in f for f in _plist_failures(_fake_app(tmp_path / "md", no_markdown)))
    background = {**good, "LSBackgroundOnly": True}
    assert any("LSBackgroundOnly" in f for f in _plist_failures(_fake_app(tmp_path / "bg", background)))
    old = {**good, "CFBundleShortVersionString": "0.0.0"}
    assert any("version" in f for f in _plist_failures(_fake_app(tmp_path / "old", old)))
    missing = {k: v for k, v in good.items() if k != "NSHighResolutionCapable"}
    assert any("NSHighResolutionCapable" in f for f in _plist_failures(_fake_app(tmp_path / "hi", missing)))
