"""What a window's text widgets need against what they are given: each clipped text, described."""
from __future__ import annotations

from PySide6.QtCore import QRect
from PySide6.QtWidgets import QAbstractButton, QAbstractScrollArea, QLabel, QPlainTextEdit, QTextEdit, QWidget


def _horizontally_cut(widget: QWidget, window: QWidget) -> bool:
    """True when an ancestor (a scroll area's viewport included) cuts the widget at the left or right:
    a scroll area scrolls up and down, never sideways, so a cut there is lost text."""
    rect = QRect(widget.mapTo(window, widget.rect().topLeft()), widget.size())
    parent = widget.parentWidget()
    while parent is not None:
        area = QRect(parent.mapTo(window, parent.rect().topLeft()), parent.size()) if parent is not window else window.rect()
        if rect.left() < area.left() or rect.right() > area.right():
            return True
        if parent is window:
            return False
        parent = parent.parentWidget()
    return False


def _vertically_cut(widget: QWidget, window: QWidget) -> bool:
    """True when an ancestor cuts the widget at the top or bottom, up to the nearest scroll area
    (inside one, the user scrolls to it)."""
    rect = QRect(widget.mapTo(window, widget.rect().topLeft()), widget.size())
    parent = widget.parentWidget()
    while parent is not None and parent is not window:
        if isinstance(parent.parentWidget(), QAbstractScrollArea):  # a scroll area's viewport
            return False
        area = QRect(parent.mapTo(window, parent.rect().topLeft()), parent.size())
        if rect.top() < area.top() or rect.bottom() > area.bottom():
            return True
        parent = parent.parentWidget()
    return False


def clipped_texts(window: QWidget) -> list[str]:
    """Every visible label, button and text box of ``window`` whose text does not fit where it is
    shown: a label or button narrower or shorter than its text needs (a word-wrapped label at its
    given width), a text box shorter than one line, or a widget cut off by an ancestor."""
    problems = []
    for widget in window.findChildren(QWidget):
        if not widget.isVisible() or widget.width() <= 0 or widget.height() <= 0:
            continue
        if isinstance(widget, QLabel) and widget.text() and widget.pixmap().isNull():
            name = f"label {widget.text()[:40]!r}"
            if widget.wordWrap():
                need_w, need_h = widget.minimumSizeHint().width(), widget.heightForWidth(widget.width())
            else:
                need_w, need_h = widget.sizeHint().width(), widget.minimumSizeHint().height()
        elif isinstance(widget, QAbstractButton) and widget.text():
            name = f"button {widget.text()[:40]!r}"
            need_w, need_h = widget.minimumSizeHint().width(), widget.minimumSizeHint().height()
            need_w = max(need_w, widget.fontMetrics().horizontalAdvance(widget.text().replace("&", "")))
        elif isinstance(widget, (QPlainTextEdit, QTextEdit)):
            name = f"text box {type(widget).__name__} {widget.objectName()!r}"
            need_w, need_h = 0, widget.fontMetrics().lineSpacing() + 2 * int(widget.document().documentMargin())
            if widget.viewport().height() < need_h:
                problems.append(f"{name}: viewport {widget.viewport().height()} px high, one line needs {need_h}")
            need_h = 0
        else:
            continue
        if widget.width() < need_w or widget.height() < need_h:
            problems.append(f"{name}: given {widget.width()}x{widget.height()}, needs {need_w}x{need_h}")
        elif _horizontally_cut(widget, window):
            problems.append(f"{name}: cut at the left or right edge")
        elif _vertically_cut(widget, window):
            problems.append(f"{name}: cut at the top or bottom")
    return problems
