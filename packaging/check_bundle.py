"""Inspect a built Verdict bundle and fail loudly on what would break it on another machine.

    python packaging/check_bundle.py [dist/Verdict.app | dist/Verdict]   (default: this platform's)

macOS (`Verdict.app`): every Mach-O has an arm64 slice; every libmlx has mlx.metallib beside it;
no load command or rpath points into the build machine (only /usr/lib and /System are allowed);
Info.plist has the bundle id, the version of pyproject.toml, NSHighResolutionCapable,
LSMinimumSystemVersion, the document types and the icon.
Linux (`Verdict/`): every library an ELF file in the bundle needs is either in the bundle or in
the system set below (the manylinux base libraries, plus the graphics and desktop libraries Qt
must take from the system); no RPATH/RUNPATH is an absolute path.
Both: both executables and the default model are there, no file holds a path of the build
machine's source tree or Python, and the size is printed with the largest parts.

The ELF and Mach-O headers are parsed here, so no binutils or Xcode tools are needed. Exit status
0 when every check passed, 1 otherwise (each failure is one line on stderr).
"""
from __future__ import annotations

import argparse
import os
import plistlib
import re
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

from info_plist import project_version

ROOT = Path(__file__).resolve().parent.parent

# PEP 599/600 manylinux base libraries: every Linux a wheel may run on has them.
MANYLINUX_BASE = {
    "libc.so.6", "libm.so.6", "libdl.so.2", "librt.so.1", "libpthread.so.0", "libutil.so.1",
    "libnsl.so.1", "libresolv.so.2", "libcrypt.so.1", "libgcc_s.so.1", "libstdc++.so.6",
    "libX11.so.6", "libXext.so.6", "libXrender.so.1", "libICE.so.6", "libSM.so.6", "libGL.so.1",
    "libgobject-2.0.so.0", "libgthread-2.0.so.0", "libglib-2.0.so.0", "libz.so.1", "libexpat.so.1",
    "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1", "linux-vdso.so.1",
}
# Qt's own wheels leave these to the system (PySide6 is not a strict manylinux wheel): the GPU
# driver's GL/EGL, fontconfig (it must read the system's font configuration), keyboard maps,
# D-Bus, and the X11/xcb client libraries of the desktop session. PyInstaller does not bundle
# them either (its exclude list), for the same reason.
QT_SYSTEM = re.compile(
    r"^lib(EGL|GLX|OpenGL|GLdispatch|GLU|gbm|drm|fontconfig|freetype|xkbcommon(-x11)?|dbus-1|"
    r"gio-2\.0|gmodule-2\.0|glib-2\.0|X[A-Za-z0-9]*|xcb[-a-z0-9]*|wayland-[a-z]+|"
    r"ffi|pcre2?(-8)?|uuid|bz2|png16|brotli[a-z]*|expat|selinux|mount|blkid|systemd|cap|"
    r"lzma|zstd|lz4|gcrypt|gpg-error|Xau|Xdmcp|bsd|md)\.so[.0-9]*$"
)
SYSTEM_LOAD_PREFIXES = ("/usr/lib/", "/System/Library/")
DOCUMENT_TYPES_NEEDED = {
    "PDF": {"com.adobe.pdf"},
    "Word": {"org.openxmlformats.wordprocessingml.document"},
    "HTML": {"public.html"},
    "e-mail": {"com.apple.mail.email", "public.email-message"},
    "RTF": {"public.rtf"},
    "Markdown": {"net.daringfireball.markdown"},
    "plain text": {"public.plain-text"},
}
PLIST_KEYS = ["CFBundleIdentifier", "CFBundleShortVersionString", "CFBundleVersion", "CFBundleExecutable",
              "NSHighResolutionCapable", "LSMinimumSystemVersion", "CFBundleDocumentTypes", "CFBundleIconFile"]


@dataclass
class Report:
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def fail(self, text: str) -> None:
        self.failures.append(text)


# ---- ELF --------------------------------------------------------------------------------------

@dataclass
class ElfInfo:
    needed: list[str]
    soname: Optional[str]
    rpaths: list[str]


def read_elf(path: Path) -> Optional[ElfInfo]:
    """DT_NEEDED, DT_SONAME and DT_RPATH/DT_RUNPATH of an ELF file; None if it isn't one."""
    with open(path, "rb") as fh:
        data = fh.read()
    if data[:4] != b"\x7fELF" or len(data) < 52:
        return None
    is64, end = data[4] == 2, "<" if data[5] == 1 else ">"
    if is64:
        phoff, = struct.unpack_from(end + "Q", data, 0x20)
        phentsize, phnum = struct.unpack_from(end + "HH", data, 0x36)
        ph_fmt, dyn_fmt = end + "IIQQQQQQ", end + "qQ"
    else:
        phoff, = struct.unpack_from(end + "I", data, 0x1C)
        phentsize, phnum = struct.unpack_from(end + "HH", data, 0x2A)
        ph_fmt, dyn_fmt = end + "IIIIIIII", end + "iI"
    loads, dynamic = [], None
    for i in range(phnum):
        fields = struct.unpack_from(ph_fmt, data, phoff + i * phentsize)
        if is64:
            p_type, _, p_offset, p_vaddr, _, p_filesz, _, _ = fields
        else:
            p_type, p_offset, p_vaddr, _, p_filesz, _, _, _ = fields
        if p_type == 1:
            loads.append((p_vaddr, p_offset, p_filesz))
        elif p_type == 2:
            dynamic = (p_offset, p_filesz)
    if dynamic is None:
        return ElfInfo([], None, [])
    entries = []
    size = struct.calcsize(dyn_fmt)
    for off in range(dynamic[0], dynamic[0] + dynamic[1] - size + 1, size):
        tag, val = struct.unpack_from(dyn_fmt, data, off)
        if tag == 0:
            break
        entries.append((tag, val))
    strtab_addr = next((v for t, v in entries if t == 5), None)
    if strtab_addr is None:
        return ElfInfo([], None, [])
    strtab = next((off + strtab_addr - va for va, off, sz in loads if va <= strtab_addr < va + sz), strtab_addr)

    def string(index: int) -> str:
        start = strtab + index
        return data[start:data.index(b"\0", start)].decode("utf-8", "replace")

    needed = [string(v) for t, v in entries if t == 1]
    soname = next((string(v) for t, v in entries if t == 14), None)
    rpaths = [p for t, v in entries if t in (15, 29) for p in string(v).split(":") if p]
    return ElfInfo(needed, soname, rpaths)


def check_linux(bundle: Path, report: Report) -> None:
    elves: dict[Path, ElfInfo] = {}
    for path in files(bundle):
        info = read_elf(path)
        if info is not None:
            elves[path] = info
    provided = {p.name for p in elves} | {i.soname for i in elves.values() if i.soname}
    outside: dict[str, list[str]] = {}
    absolute: dict[str, list[str]] = {}
    for path, info in elves.items():
        rel = str(path.relative_to(bundle))
        for rpath in info.rpaths:
            if not rpath.startswith("$ORIGIN"):
                absolute.setdefault(rpath, []).append(rel)
        for name in info.needed:
            if name not in provided:
                outside.setdefault(name, []).append(rel)
    for rpath, users in sorted(absolute.items()):
        # Not a failure: every needed library is found in the bundle first (checked below) and the
        # bootloader loads them from there, so the path is only searched for what is missing.
        report.notes.append(f"WARNING: {len(users)} files (e.g. {users[0]}) keep the absolute RPATH {rpath}"
                            " of the Python they were built with")
    plugin_only: set[str] = set()
    for name, users in sorted(outside.items()):
        if name in MANYLINUX_BASE or QT_SYSTEM.match(name):
            continue
        if all("/plugins/" in user for user in users):
            # Qt loads plugins on demand and skips one whose library is missing (the GTK theme
            # on a desktop without GTK): that plugin is off, the app is not broken.
            plugin_only.add(name)
            continue
        report.fail(f"{name} is needed by {users[0]}" + (f" (+{len(users) - 1} more)" if len(users) > 1 else "")
                    + " but is neither in the bundle nor in the manylinux base set")
    system = sorted(n for n in outside if n in MANYLINUX_BASE or QT_SYSTEM.match(n))
    report.notes.append(f"{len(elves)} ELF files; from the system: {', '.join(system)}")
    if plugin_only:
        report.notes.append(f"only Qt plugins need (else that plugin is off): {', '.join(sorted(plugin_only))}")
    for exe in ("Verdict", "verdict"):
        if not os.access(bundle / exe, os.X_OK):
            report.fail(f"the executable {exe} is missing")


# ---- Mach-O -----------------------------------------------------------------------------------

CPU_ARM64, CPU_X86_64 = 0x0100000C, 0x01000007
LC_DYLIBS = {0xC: "LC_LOAD_DYLIB", 0xD: "LC_ID_DYLIB", 0x20: "LC_LAZY_LOAD_DYLIB",
             0x80000018: "LC_LOAD_WEAK_DYLIB", 0x8000001F: "LC_REEXPORT_DYLIB", 0x80000023: "LC_LOAD_UPWARD_DYLIB"}
LC_RPATH = 0x8000001C


@dataclass
class MachOInfo:
    archs: list[int]
    paths: list[tuple[str, str]]  # (load command, path)


def read_macho(path: Path) -> Optional[MachOInfo]:
    """Architectures and the dylib/rpath paths of a (fat or thin) Mach-O file; None if not one."""
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            return None
        magic_be, = struct.unpack(">I", head[:4])
        if magic_be in (0xCAFEBABE, 0xCAFEBABF):  # fat; 0xCAFEBABE is also Java's class file magic
            nfat, = struct.unpack(">I", head[4:8])
            if not 0 < nfat < 20:
                return None
            is64 = magic_be == 0xCAFEBABF
            entry = 32 if is64 else 20
            table = fh.read(nfat * entry)
            slices = [struct.unpack_from(">iiQQ" if is64 else ">iiII", table, i * entry)[:4] for i in range(nfat)]
            info = MachOInfo([], [])
            for cputype, _, offset, _ in slices:
                fh.seek(offset)
                thin = _read_thin(fh.read(1 << 20))
                if thin:
                    info.archs.append(cputype)
                    info.paths += thin.paths
            return info if info.archs else None
        fh.seek(0)
        return _read_thin(fh.read(1 << 20))


def _read_thin(data: bytes) -> Optional[MachOInfo]:
    if len(data) < 28:
        return None
    magic, = struct.unpack_from("<I", data, 0)
    if magic not in (0xFEEDFACE, 0xFEEDFACF):
        return None
    cputype, _, _, ncmds, _, _ = struct.unpack_from("<iiIIII", data, 4)
    offset = 32 if magic == 0xFEEDFACF else 28
    paths = []
    for _ in range(ncmds):
        if offset + 8 > len(data):
            break
        cmd, size = struct.unpack_from("<II", data, offset)
        if cmd in LC_DYLIBS or cmd == LC_RPATH:
            name_off, = struct.unpack_from("<I", data, offset + 8)
            raw = data[offset + name_off:offset + size]
            paths.append((LC_DYLIBS.get(cmd, "LC_RPATH"), raw.split(b"\0", 1)[0].decode("utf-8", "replace")))
        offset += max(size, 8)
    return MachOInfo([cputype], paths)


def check_mac(app: Path, report: Report, version: str) -> None:
    contents = app / "Contents"
    count = 0
    for path in files(app):
        info = read_macho(path)
        if info is None:
            continue
        count += 1
        rel = str(path.relative_to(app))
        if CPU_ARM64 not in info.archs:
            report.fail(f"{rel}: no arm64 code ({', '.join(_arch(a) for a in info.archs)})")
        elif len(info.archs) > 1:
            report.notes.append(f"{rel}: fat binary ({', '.join(_arch(a) for a in info.archs)})")
        for kind, target in info.paths:
            if target.startswith("/") and not target.startswith(SYSTEM_LOAD_PREFIXES):
                report.fail(f"{rel}: {kind} {target} is an absolute path outside the system")
    report.notes.append(f"{count} Mach-O files")
    libmlx = [p for p in files(app) if p.name.startswith("libmlx") and p.suffix == ".dylib"]
    if not libmlx:
        report.fail("no libmlx*.dylib in the bundle")
    for lib in libmlx:
        if not (lib.parent / "mlx.metallib").is_file():  # is_file follows PyInstaller's links
            report.fail(f"{lib.relative_to(app)} has no mlx.metallib beside it (MLX cannot run on the GPU)")
    plist_path = contents / "Info.plist"
    if not plist_path.is_file():
        report.fail("Contents/Info.plist is missing")
        return
    plist = plistlib.loads(plist_path.read_bytes())
    for key in PLIST_KEYS:
        if key not in plist:
            report.fail(f"Info.plist has no {key}")
    if plist.get("CFBundleShortVersionString") not in (None, version):
        report.fail(f"Info.plist version {plist['CFBundleShortVersionString']} != pyproject.toml's {version}")
    if plist.get("CFBundleExecutable") not in (None, "Verdict"):
        report.fail(f"Info.plist starts {plist['CFBundleExecutable']}, not the window app Verdict")
    if plist.get("LSBackgroundOnly"):
        report.fail("Info.plist: LSBackgroundOnly is set (no Dock icon, no menu bar, no dropped files)")
    if "NSHighResolutionCapable" in plist and plist["NSHighResolutionCapable"] is not True:
        report.fail("Info.plist: NSHighResolutionCapable is not true")
    declared = {t for entry in plist.get("CFBundleDocumentTypes", []) for t in entry.get("LSItemContentTypes", [])}
    for label, types in DOCUMENT_TYPES_NEEDED.items():
        if not declared & types:
            report.fail(f"Info.plist declares no {label} document type ({' or '.join(sorted(types))})")
    icon = plist.get("CFBundleIconFile")
    if icon and not (contents / "Resources" / (icon if icon.endswith(".icns") else icon + ".icns")).is_file():
        report.fail(f"the icon {icon} is not in Contents/Resources")
    for exe in ("Verdict", "verdict-cli"):
        if not os.access(contents / "MacOS" / exe, os.X_OK):
            report.fail(f"the executable Contents/MacOS/{exe} is missing")


def _arch(cputype: int) -> str:
    return {CPU_ARM64: "arm64", CPU_X86_64: "x86_64"}.get(cputype, hex(cputype))


# ---- both -------------------------------------------------------------------------------------

def files(bundle: Path) -> Iterator[Path]:
    """Regular files of the bundle (links are not followed, so nothing is seen twice)."""
    for dirpath, _, names in os.walk(bundle):
        for name in names:
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink():
                yield path


def build_paths() -> list[bytes]:
    """Paths of this build machine that must not appear inside the bundle."""
    found = {str(ROOT), sys.prefix, sys.base_prefix, str(Path.home() / ".cache")}
    return sorted({p.encode() for p in found if len(p) > 6})  # a short path like /usr matches too much


def check_build_paths(bundle: Path, report: Report, skip_elf: bool) -> None:
    needles = build_paths()
    for path in files(bundle):
        if path.suffix == ".gguf":
            continue
        data = path.read_bytes()
        if skip_elf and data[:4] == b"\x7fELF":  # its RPATH is reported by check_linux
            continue
        for needle in needles:
            if needle in data:
                report.fail(f"{path.relative_to(bundle)} contains the build machine's path {needle.decode()}")
                break


def check_model(bundle: Path, report: Report) -> None:
    models = [p for p in bundle.rglob("*.gguf") if "resources/models" in p.as_posix()]
    if not models:
        report.fail("no default model in resources/models (make package copies it from the cache)")
    # the default model's general probe (its label-free ranking) and the corpus other models' probes
    # are fitted on (`verdict models calibrate`, the app's Fit General Probe)
    for wanted, what in (("resources/general_probes", "*.json"), ("resources/general", "manifest.json")):
        if not [p for p in bundle.rglob(what) if wanted in p.as_posix()]:
            report.fail(f"no {what} in {wanted}")


def sizes(bundle: Path, top: int = 8) -> list[str]:
    """The bundle's size and its largest files and folders, as lines."""
    all_files = [(p.stat().st_size, p) for p in files(bundle)]
    total = sum(s for s, _ in all_files)
    lines = [f"bundle size: {total / 2**20:.0f} MiB in {len(all_files)} files"]
    groups: dict[str, int] = {}
    for size, path in all_files:
        parts = path.relative_to(bundle).parts
        key = "/".join(parts[:3] if parts[0] in ("_internal", "Contents") else parts[:2])
        groups[key] = groups.get(key, 0) + size
    lines.append("largest folders: " + ", ".join(
        f"{k} {v / 2**20:.0f} MiB" for k, v in sorted(groups.items(), key=lambda kv: -kv[1])[:top]))
    lines.append("largest files:   " + ", ".join(
        f"{p.name} {s / 2**20:.0f} MiB" for s, p in sorted(all_files, key=lambda sp: -sp[0])[:top]))
    return lines


def check(bundle: Path) -> Report:
    """Every check for the bundle at `bundle` (a .app on macOS, a folder on Linux)."""
    report = Report()
    if not bundle.is_dir():
        report.fail(f"{bundle} is not a built bundle (run `make package`)")
        return report
    mac = (bundle / "Contents" / "Info.plist").exists() or bundle.suffix == ".app"
    if mac:
        check_mac(bundle, report, project_version())
    else:
        check_linux(bundle, report)
    check_model(bundle, report)
    check_build_paths(bundle, report, skip_elf=not mac)
    return report


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = ROOT / "dist" / ("Verdict.app" if sys.platform == "darwin" else "Verdict")
    parser.add_argument("bundle", nargs="?", default=str(default), help=f"the bundle (default: {default})")
    args = parser.parse_args(argv)
    bundle = Path(args.bundle)
    report = check(bundle)
    if bundle.is_dir():
        for line in sizes(bundle):
            print(line)
    for note in report.notes:
        print(f"note: {note}")
    for failure in report.failures:
        print(f"check_bundle: FAIL: {failure}", file=sys.stderr)
    print(f"check_bundle: {bundle}: " + (f"{len(report.failures)} problem(s)" if report.failures else "ok"))
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
