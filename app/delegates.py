"""Painting of the verdict chips and confidence bars (colour plus text, never colour alone).

A chip says the answer in words ("Yes · 92%", "Likely no · 69%", "Uncertain"), the same words
the detail pane shows; an old answer being replaced is drawn faded; the user's label is a
ticked badge after the chip ("✓ Yes")."""
from __future__ import annotations

import math

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPalette
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem

from app import theme
from app.table_model import ColumnKindRole, LabelRole, ProbabilityRole, StaleRole, StatusRole, VerdictRole

STALE_OPACITY = 0.45


def label_badge(label: str) -> str:
    """The text of the label badge in a verdict cell ('' when not labeled)."""
    return f"✓ {label.capitalize()}" if label else ""

Index = QModelIndex | QPersistentModelIndex
CELL_PADDING = 6


class _CellDelegate(QStyledItemDelegate):
    def paint_background(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        """The cell's own background (selection, failed-row tint, focus) without its text."""
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        opt.text = ""
        style = opt.widget.style() if opt.widget else None
        if style is not None:
            style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, opt.widget)


class VerdictChipDelegate(_CellDelegate):
    """A rounded chip with the verdict's word: green Yes, red No, amber Uncertain, grey Error."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        self.paint_background(painter, option, index)
        verdict = index.data(VerdictRole) or ""
        text = index.data(Qt.ItemDataRole.DisplayRole) or ""
        if not verdict:
            status = index.data(StatusRole)
            if status in ("queued", "scoring"):
                painter.save()
                painter.setPen(theme.muted_text(option.palette))
                painter.drawText(option.rect.adjusted(10, 0, 0, 0), Qt.AlignmentFlag.AlignVCenter,
                                 f"… {text}" if text else "…")  # e.g. how many parts of a long one are read
                painter.restore()
            return
        chip = theme.chip_colors(verdict, option.palette)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        if index.data(StaleRole):
            painter.setOpacity(STALE_OPACITY)
        font = painter.font()
        font.setWeight(font.Weight.DemiBold)
        painter.setFont(font)
        metrics = painter.fontMetrics()
        badge = label_badge(index.data(LabelRole) or "")
        badge_width = metrics.horizontalAdvance(badge) + 12 if badge else 0
        room = option.rect.width() - 12 - badge_width
        shown = metrics.elidedText(text, Qt.TextElideMode.ElideRight, max(room - 18, 0))
        width = metrics.horizontalAdvance(shown) + 18
        height = min(option.rect.height() - 6, metrics.height() + 6)
        rect = QRectF(option.rect.left() + 6, option.rect.center().y() - height / 2 + 0.5, width, height)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(chip.background)
        painter.drawRoundedRect(rect, height / 2, height / 2)
        painter.setPen(chip.foreground)
        painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, shown)
        if badge:
            painter.setOpacity(1.0)
            selected = bool(option.state & QStyle.StateFlag.State_Selected)
            painter.setPen(option.palette.color(QPalette.ColorRole.HighlightedText if selected
                                                else QPalette.ColorRole.Text))
            badge_rect = QRectF(rect.right() + 6, option.rect.top(), badge_width, option.rect.height())
            painter.drawText(badge_rect, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, badge)
        painter.restore()

    @staticmethod
    def needed_width(metrics, text: str, label: str) -> int:
        """Pixels a cell needs to show ``text`` in its chip and the badge for ``label`` whole."""
        badge = label_badge(label)
        return 12 + metrics.horizontalAdvance(text) + 18 + (metrics.horizontalAdvance(badge) + 12 if badge else 0)

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        size = super().sizeHint(option, index)
        return QSize(max(size.width() + 30, 96), max(size.height(), 26))


class ConfidenceDelegate(_CellDelegate):
    """A thin bar filled to the confidence (50-100 %), in the verdict's colour, with the percentage."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        self.paint_background(painter, option, index)
        value = index.data(ProbabilityRole)
        if value is None or math.isnan(value):
            return
        verdict = index.data(VerdictRole) or "pending"
        chip = theme.chip_colors(verdict, option.palette)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        text_color = option.palette.color(
            QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        )
        label = f"{value:.0%}"
        metrics = painter.fontMetrics()
        label_width = metrics.horizontalAdvance("100%") + 8
        bar = QRectF(option.rect.left() + 8, option.rect.center().y() - 3, option.rect.width() - label_width - 16, 6)
        if bar.width() > 12:
            track = QColor(text_color)
            track.setAlphaF(0.12)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(track)
            painter.drawRoundedRect(bar, 3, 3)
            filled = QRectF(bar)
            filled.setWidth(max(bar.width() * (value - 0.5) / 0.5, 6))  # 50 % (a coin flip) is empty
            painter.setBrush(chip.foreground)
            painter.drawRoundedRect(filled, 3, 3)
        painter.setPen(text_color)
        painter.drawText(
            QRectF(option.rect.right() - label_width - 4, option.rect.top(), label_width, option.rect.height()),
            Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight,
            label,
        )
        painter.restore()

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        size = super().sizeHint(option, index)
        return QSize(max(size.width(), 130), max(size.height(), 26))


class ResultsDelegate(QStyledItemDelegate):
    """The table's one delegate: chips in verdict columns, a bar in the confidence column."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._chip = VerdictChipDelegate(self)
        self._bar = ConfidenceDelegate(self)

    def _for(self, index: Index) -> QStyledItemDelegate | None:
        kind = index.data(ColumnKindRole)
        return self._chip if kind == "verdict" else self._bar if kind == "confidence" else None

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        # Failed rows are tinted here: style sheets make some styles skip the model's BackgroundRole.
        tint = index.data(Qt.ItemDataRole.BackgroundRole)
        if isinstance(tint, QColor) and not option.state & QStyle.StateFlag.State_Selected:
            painter.fillRect(option.rect, tint)
        delegate = self._for(index)
        if delegate is not None:
            delegate.paint(painter, option, index)
            return
        # plain text cells: the panel (selection, alternating colour) across the whole cell, the
        # text inset so it does not touch the neighbouring column
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        style = opt.widget.style() if opt.widget else None
        if style is not None:
            style.drawPrimitive(QStyle.PrimitiveElement.PE_PanelItemViewItem, opt, painter, opt.widget)
        inset = QStyleOptionViewItem(option)
        inset.rect = option.rect.adjusted(CELL_PADDING, 0, -CELL_PADDING, 0)
        super().paint(painter, inset, index)

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        delegate = self._for(index)
        return super().sizeHint(option, index) if delegate is None else delegate.sizeHint(option, index)
