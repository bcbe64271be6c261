"""Colours that stay readable on light and dark palettes, and the app's own palettes.

Colours are picked from the palette at paint time, so switching appearance (the macOS
setting, or View ▸ Appearance) repaints correctly without restarting.
"""
from __future__ import annotations

from typing import NamedTuple

from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtCore import Qt


class Chip(NamedTuple):
    background: QColor
    foreground: QColor


# (light background, light text), (dark background, dark text); every pair has a text
# contrast of at least 4.5:1 (WCAG AA), checked by the tests.
_CHIPS = {
    "yes": (("#d3f2dc", "#0b5a28"), ("#1d4a2c", "#b6f0c6")),
    "no": (("#fbdcdc", "#9b1c24"), ("#571f24", "#ffc6c9")),
    "uncertain": (("#fbeec4", "#6d4a00"), ("#4f3d0f", "#ffe08a")),
    "error": (("#ececec", "#a1151f"), ("#3b3b3b", "#ff9d9d")),
    "pending": (("#eef0f3", "#4b5563"), ("#2f343b", "#c3c9d2")),
}

VERDICT_TEXT = {"yes": "Yes", "no": "No", "uncertain": "Uncertain", "error": "Error"}


def is_dark(palette: QPalette | None = None) -> bool:
    """True when the window background is darker than its text."""
    palette = palette or QGuiApplication.palette()
    return palette.color(QPalette.ColorRole.Window).lightness() < palette.color(QPalette.ColorRole.WindowText).lightness()


def chip_colors(verdict: str, palette: QPalette | None = None) -> Chip:
    """Background and text colour of a verdict chip ('yes', 'no', 'uncertain', 'error', 'pending')."""
    light, dark = _CHIPS.get(verdict, _CHIPS["pending"])
    bg, fg = dark if is_dark(palette) else light
    return Chip(QColor(bg), QColor(fg))


def error_row_colors(palette: QPalette | None = None) -> Chip:
    """Background and text colour of a failed document's row."""
    return Chip(QColor("#4a1d21"), QColor("#ffb4b8")) if is_dark(palette) else Chip(QColor("#fdecec"), QColor("#a1151f"))


def highlight_color(palette: QPalette | None = None) -> QColor:
    """Background of the deciding window in the document text."""
    return QColor("#5c4a12") if is_dark(palette) else QColor("#fff0a8")


def muted_text(palette: QPalette | None = None) -> QColor:
    palette = palette or QGuiApplication.palette()
    return palette.color(QPalette.ColorGroup.Active, QPalette.ColorRole.PlaceholderText)


def contrast_ratio(a: QColor, b: QColor) -> float:
    """WCAG contrast ratio between two colours (1..21)."""

    def luminance(c: QColor) -> float:
        def channel(v: float) -> float:
            return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

        return 0.2126 * channel(c.redF()) + 0.7152 * channel(c.greenF()) + 0.0722 * channel(c.blueF())

    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def palette_for(scheme: str) -> QPalette:
    """An explicit light or dark palette (for 'light'/'dark' in View ▸ Appearance, and tests)."""
    if scheme == "dark":
        window, base, alt, text, button, mid = "#232529", "#1b1d20", "#212327", "#e8e9eb", "#2d3035", "#3a3d43"
        highlight, highlighted, link, placeholder = "#2f6fde", "#ffffff", "#7fb0ff", "#9aa0a8"
    else:
        window, base, alt, text, button, mid = "#f4f5f7", "#ffffff", "#f7f8fa", "#1d1f23", "#fbfbfc", "#d5d8dd"
        highlight, highlighted, link, placeholder = "#2f6fde", "#ffffff", "#1f5fcc", "#646a74"
    p = QPalette()
    role = QPalette.ColorRole
    for group in (QPalette.ColorGroup.Active, QPalette.ColorGroup.Inactive):
        p.setColor(group, role.Window, QColor(window))
        p.setColor(group, role.WindowText, QColor(text))
        p.setColor(group, role.Base, QColor(base))
        p.setColor(group, role.AlternateBase, QColor(alt))
        p.setColor(group, role.Text, QColor(text))
        p.setColor(group, role.Button, QColor(button))
        p.setColor(group, role.ButtonText, QColor(text))
        p.setColor(group, role.ToolTipBase, QColor(base))
        p.setColor(group, role.ToolTipText, QColor(text))
        p.setColor(group, role.Highlight, QColor(highlight))
        p.setColor(group, role.HighlightedText, QColor(highlighted))
        p.setColor(group, role.Link, QColor(link))
        p.setColor(group, role.PlaceholderText, QColor(placeholder))
        p.setColor(group, role.Mid, QColor(mid))
        p.setColor(group, role.Midlight, QColor(mid).lighter(110))
        p.setColor(group, role.Dark, QColor(mid).darker(130))
        p.setColor(group, role.Light, QColor(base))
        p.setColor(group, role.Shadow, QColor("#000000"))
        p.setColor(group, role.BrightText, QColor("#ffffff"))
    disabled = QPalette.ColorGroup.Disabled
    for r in (role.WindowText, role.Text, role.ButtonText):
        p.setColor(disabled, r, QColor(placeholder))
    for r in (role.Window, role.Base, role.Button, role.AlternateBase, role.Highlight, role.Mid):
        p.setColor(disabled, r, p.color(QPalette.ColorGroup.Active, r))
    p.setColor(disabled, role.HighlightedText, QColor(highlighted))
    p.setColor(disabled, role.PlaceholderText, QColor(placeholder))
    return p


def apply_color_scheme(app: QGuiApplication, scheme: str) -> None:
    """'light' or 'dark' installs our palette; 'system' follows the OS (dark mode on macOS)."""
    hints = app.styleHints()
    if hasattr(hints, "setColorScheme"):  # Qt 6.8+: also tells native widgets and the title bar
        hints.setColorScheme(
            {"light": Qt.ColorScheme.Light, "dark": Qt.ColorScheme.Dark}.get(scheme, Qt.ColorScheme.Unknown)
        )
    if scheme in ("light", "dark"):
        app.setPalette(palette_for(scheme))
    else:
        app.setPalette(QPalette())  # back to the style's/platform's own palette


def stylesheet(palette: QPalette | None = None) -> str:
    """The window's style sheet, with colours taken from ``palette`` (re-applied when it changes)."""
    palette = palette or QGuiApplication.palette()
    role = QPalette.ColorRole

    def c(r: QPalette.ColorRole) -> str:
        return palette.color(QPalette.ColorGroup.Active, r).name()

    dark = is_dark(palette)
    line = QColor(c(role.WindowText))
    line.setAlphaF(0.16 if dark else 0.13)
    border = f"rgba({line.red()}, {line.green()}, {line.blue()}, {line.alphaF():.2f})"
    soft = QColor(c(role.Highlight))
    soft.setAlphaF(0.10)
    soft_bg = f"rgba({soft.red()}, {soft.green()}, {soft.blue()}, {soft.alphaF():.2f})"
    muted = muted_text(palette).name()
    return f"""
#DropZone {{ border: 2px dashed {border}; border-radius: 12px; background: {c(role.Base)}; }}
#DropZone[compact="true"] {{ border-width: 1px; border-radius: 8px; }}
#DropZone[dragging="true"] {{ border-color: {c(role.Highlight)}; background: {soft_bg}; }}
#GeneralProbeBar {{ border: 1px solid {border}; border-radius: 8px; background: {soft_bg}; }}
#DropTitle {{ font-size: 18px; font-weight: 600; }}
#DropHint, #Muted, #Caption {{ color: {muted}; }}
#Caption {{ font-size: 11px; font-weight: 600; }}
#ModelName {{ font-weight: 600; }}
#DetailName {{ font-size: 15px; }}
#QuestionResult {{ border: 1px solid {border}; border-radius: 8px; background: {c(role.Base)}; }}
#QuestionResult[active="true"] {{ border: 1px solid {c(role.Highlight)}; }}
#ResultNumbers {{ color: {muted}; }}
#LabelYes, #LabelNo {{ padding: 3px 16px; border: 1px solid {border}; background: {c(role.Base)};
    color: {c(role.Text)}; }}
#LabelYes {{ border-top-left-radius: 6px; border-bottom-left-radius: 6px; border-right: none; }}
#LabelNo {{ border-top-right-radius: 6px; border-bottom-right-radius: 6px; }}
#LabelYes:checked, #LabelNo:checked {{ background: {c(role.Highlight)}; color: {c(role.HighlightedText)};
    border-color: {c(role.Highlight)}; font-weight: 700; }}
#DetailsToggle {{ color: {muted}; border: none; }}
QTableView#Results {{ border: 1px solid {border}; border-radius: 8px; background: {c(role.Base)};
    alternate-background-color: {c(role.AlternateBase)}; gridline-color: transparent; }}
QTableView#Results QHeaderView::section {{ background: {c(role.Window)}; border: none;
    border-bottom: 1px solid {border}; padding: 5px 6px; color: {muted}; }}
#FilterButton {{ border: 1px solid {border}; border-radius: 6px; padding: 3px 10px; background: {c(role.Base)}; }}
#FilterButton:checked {{ background: {c(role.Highlight)}; color: {c(role.HighlightedText)}; border-color: {c(role.Highlight)}; }}
QToolButton::menu-indicator {{ image: none; width: 0; }}
#AskButton {{ background: {c(role.Highlight)}; color: {c(role.HighlightedText)}; border: none;
    border-radius: 6px; padding: 6px 18px; font-weight: 600; }}
#AskButton:pressed {{ background: {QColor(c(role.Highlight)).darker(115).name()}; }}
#Header {{ background: {c(role.Window)}; }}
QPlainTextEdit#DocumentText {{ border: 1px solid {border}; border-radius: 8px; background: {c(role.Base)}; padding: 4px; }}
"""
