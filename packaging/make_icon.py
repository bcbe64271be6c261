"""Build the app icons in resources/icons/ from packaging/icon.svg.

    python packaging/make_icon.py

Writes `Verdict.icns` (macOS: PNG images of 16 to 1024 px in Apple's icon container) and
`verdict.png` (512 px, for Linux desktops). Rendering uses Qt's SVG module, which the app already
depends on, so no other image tool is needed.
"""
from __future__ import annotations

import os
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "packaging" / "icon.svg"
OUT = ROOT / "resources" / "icons"

# icns element types that hold PNG data, by pixel size (Apple's "ic07"... family; the @2x
# variants ic11-ic14 reuse the same images).
ICNS_TYPES = [
    (b"icp4", 16), (b"icp5", 32), (b"ic11", 32), (b"ic07", 128), (b"ic12", 64),
    (b"ic08", 256), (b"ic13", 256), (b"ic09", 512), (b"ic14", 512), (b"ic10", 1024),
]


def render_png(size: int) -> bytes:
    """The SVG drawn into a transparent square of `size` pixels, as PNG bytes."""
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    renderer = QSvgRenderer(str(SOURCE))
    if not renderer.isValid():
        raise SystemExit(f"make_icon: {SOURCE} is not a valid SVG")
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    return bytes(data.data())


def icns(pngs: dict[int, bytes]) -> bytes:
    """Apple's icon container: 'icns', total length, then (type, length, PNG) elements."""
    body = b"".join(kind + struct.pack(">I", 8 + len(pngs[size])) + pngs[size] for kind, size in ICNS_TYPES)
    return b"icns" + struct.pack(">I", 8 + len(body)) + body


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QGuiApplication

    app = QGuiApplication(sys.argv[:1])  # noqa: F841 (QImage text and SVG need an application)
    pngs = {size: render_png(size) for size in sorted({size for _, size in ICNS_TYPES})}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "Verdict.icns").write_bytes(icns(pngs))
    (OUT / "verdict.png").write_bytes(pngs[512])
    print(f"make_icon: wrote {OUT / 'Verdict.icns'} and {OUT / 'verdict.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
