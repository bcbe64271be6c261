"""The status bar: messages, a notice that stays (e.g. the session could not be saved), and while
scoring runs the progress, an honest rate and time left, and Cancel.

It owns the words for progress (:func:`rate_text`, :func:`about`): the progress on the right and
the summary on the left when a run ends say the same rate the same way, and a summary of a run
that has ended leaves when the next run starts, so the two sides never contradict each other."""
from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QLabel, QProgressBar, QPushButton, QStatusBar


def about(seconds: float) -> str:
    """A time to go in round words: "a few seconds", "about 40 s", "about 12 min", "about 1.5 h"."""
    if seconds < 10:
        return "a few seconds"
    if seconds >= 5400:
        return f"about {seconds / 3600:.1f} h"
    return f"about {seconds / 60:.0f} min" if seconds >= 90 else f"about {seconds:.0f} s"


def rate_text(rate: float) -> str:
    """Documents per second in words: "3.2 documents/s", or "40 s per document" when slower than
    about one a second (never "0.0 documents/s"); '' while not known (0)."""
    if rate <= 0:
        return ""
    return f"{rate:.1f} documents/s" if rate >= 0.95 else f"{1 / rate:.0f} s per document"


def parts_text(done: int, total: int) -> str:
    """How far into one long document scoring is: "3 of 7 parts read" ('' when it has one part)."""
    return f"{done:,} of {total:,} parts read" if total > 1 else ""


class StatusArea(QStatusBar):
    """A QStatusBar with the scoring progress as permanent widgets."""

    cancelClicked = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setSizeGripEnabled(False)
        self.notice = ""  # shown again whenever a shorter-lived message ends
        self.rate = 0.0  # documents per second of the latest run
        self._parts = (0, 0)  # parts (windows) read of the long document being scored, of
        self._progress = (0, 0, 0.0, -1.0)  # the latest progress report (done, total, rate, left)
        self._summary = ""  # the summary of the latest run, while shown
        self.progress = QProgressBar()
        self.progress.setFixedWidth(140)
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(10)
        self.progress_label = QLabel()
        self.progress_label.setTextFormat(Qt.TextFormat.PlainText)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop scoring (Esc); answers not replaced yet come back")
        self.cancel_button.clicked.connect(self.cancelClicked)
        self.addPermanentWidget(self.progress_label)
        self.addPermanentWidget(self.progress)
        self.addPermanentWidget(self.cancel_button)
        self.messageChanged.connect(self._on_message_changed)
        self.show_busy(False)

    def show_message(self, text: str, timeout_ms: int = 8000) -> None:
        self.showMessage(text, timeout_ms)

    def set_notice(self, text: str) -> None:
        """A message that stays (until replaced by another notice)."""
        self.notice = text
        if text:
            self.showMessage(text, 0)

    def _on_message_changed(self, text: str) -> None:
        if not text and self.notice:
            QTimer.singleShot(0, lambda: self.currentMessage() or self.showMessage(self.notice, 0))

    def show_progress(self, done: int, total: int, rate: float, left: float = -1.0) -> None:
        """``done`` of ``total`` documents, at ``rate`` documents/s (0: not known yet), about
        ``left`` seconds to go (-1: not known yet)."""
        if done < total:  # a run under way (may be reported before it says it is busy)
            self._end_summary()
        self._progress = (done, total, rate, left)
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        parts = [f"{done:,} of {total:,} scored", parts_text(*self._parts)]
        if rate > 0:
            parts.append(rate_text(rate))
        if left >= 1:
            parts.append(f"{about(left)} left")
        self.progress_label.setText(" · ".join(p for p in parts if p))
        self.rate = rate

    def show_parts(self, done: int, total: int) -> None:
        """The long document being scored has ``done`` of ``total`` parts read (total 0: none is)."""
        self._parts = (done, total)
        self.show_progress(*self._progress)

    def show_summary(self, text: str, timeout_ms: int = 8000) -> None:
        """How the run that just ended went (on the left); it leaves when the next run starts."""
        self._summary = text
        self.showMessage(text, timeout_ms)

    def _end_summary(self) -> None:
        if self._summary and self.currentMessage() == self._summary:
            self.clearMessage()  # it speaks of the run before: the progress on the right is this one's
        self._summary = ""

    def show_busy(self, busy: bool) -> None:
        if busy:
            self._end_summary()
        self.progress.setVisible(busy)
        self.progress_label.setVisible(busy)
        self.cancel_button.setVisible(busy)
