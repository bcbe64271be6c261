"""Fitting a general probe from the window, for a model that has none.

:class:`GeneralProbeOffer` (GUI thread, no widgets) follows the model in use: when it has no
general probe it offers to fit one from the corpus that ships with Verdict (`engine.general_fit`,
as `verdict models calibrate`), runs the fit on the scoring thread through the
:class:`ScoringController`, and when it is done loads the model again through the usual path, so
that its calibrators pick the probe up and every question is scored again with it (labels stay).
:class:`GeneralProbeBar` is the line above the table that shows the offer, the progress and how
the fit ended.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from app.status_area import about
from app.worker import CANCELLED, DONE, ScoringController

GENERAL_FIT_DOCUMENTS = 0  # documents per genre of the corpus that the fit reads (0: all; tests take a few)

# What the bar shows (GeneralProbeOffer.changed); '' is nothing.
OFFER, RUNNING, RESULT = "offer", "running", "result"



def corpus_present() -> bool:
    """Whether the corpus a general probe is fitted on is installed (an incomplete installation
    has none: then nothing is offered)."""
    from engine.general_fit import corpus_dir

    return (corpus_dir() / "manifest.json").is_file()

class GeneralProbeOffer(QObject):
    """The offer to fit the model's general probe, the fit, and what it came to."""

    changed = Signal(str, str)  # OFFER, RUNNING, RESULT or '' (nothing to show); the text
    progressChanged = Signal(int, int)  # questions answered, of (while RUNNING)

    def __init__(self, scoring: ScoringController, reload: Callable[[Optional[str]], None],
                 parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self.scoring = scoring
        self._reload = reload  # loads a model as the user's choice does (SessionController.open_model)
        self.note = ""  # how the last fit ended (shown until another model is chosen)
        self._reloading = False  # the model is loaded again to use the probe just fitted
        self._stopping = False  # Cancel was pressed; the fit stops at its next question
        self._switching = False  # the fit was cancelled because another model was chosen
        scoring.modelLoading.connect(self._on_model_loading)
        scoring.modelReady.connect(self.update)
        scoring.modelFailed.connect(self.update)
        scoring.busyChanged.connect(lambda busy: busy or self.update())  # a measured speed: a better estimate
        scoring.generalProgress.connect(self._on_progress)
        scoring.generalFinished.connect(self._on_finished)

    @property
    def available(self) -> bool:
        """Whether a fit can start now: the model in use has no general probe, and can have one."""
        s = self.scoring
        return s.needs_general and not s.fitting_general and not s.loading and corpus_present()

    def start(self) -> None:
        """Fit the general probe of the model in use, on the scoring thread (scoring waits)."""
        if self.available:
            self.note, self._stopping, self._switching = "", False, False
            self.scoring.fit_general(GENERAL_FIT_DOCUMENTS)

    def cancel(self) -> None:
        """Stop the fit at its next question; the kinds of text it finished stay on disk."""
        if self.scoring.fitting_general and not self._stopping:
            self._stopping = True
            self.scoring.cancel_general()
            self.changed.emit(RUNNING, "Stopping the fit after the question being answered…")

    def dismiss(self) -> None:
        """The user has read how the last fit ended."""
        self.note = ""
        self.update()

    @Slot()
    def update(self, *_: object) -> None:
        """Announce what to show for the model in use (not while a fit runs: its progress shows)."""
        if self.scoring.fitting_general:
            return
        if self.available:
            self.changed.emit(OFFER, " ".join(t for t in (self.note, self.offer_text()) if t))
        else:
            self.changed.emit(RESULT if self.note else "", self.note)

    def offer_text(self) -> str:
        """What fitting does and roughly how long: the corpus's characters (documents and the
        questions after them) at the characters per second this model scored here, once known."""
        from engine.general_fit import corpus_characters, corpus_documents, corpus_size

        documents, questions = corpus_documents(GENERAL_FIT_DOCUMENTS), corpus_size(GENERAL_FIT_DOCUMENTS)
        rate = self.scoring.characters_rate
        how_long = ("minutes to an hour" if rate <= 0 else
                    f"{about(corpus_characters(GENERAL_FIT_DOCUMENTS) / rate)} at this session's speed")
        return (f"{self.scoring.model_name or 'This model'} has no general probe, so before labels only its own "
                f"yes or no ranks the documents. Fitting one asks it {questions:,} questions about {documents:,} "
                f"documents that ship with Verdict and learns where its hidden state holds the answer (once for "
                f"this model, {how_long}; scoring waits while it runs).")

    @Slot(str)
    def _on_model_loading(self, path: str) -> None:
        if self._reloading:
            self._reloading = False
            return
        self.note = ""
        if self.scoring.fitting_general:  # the fit is for the model being replaced
            self._switching = True
            self.cancel()

    @Slot(int, int, float, float)
    def _on_progress(self, answered: int, total: int, rate: float, left: float) -> None:
        if self._stopping:
            return
        parts = [f"{answered:,} of {total:,} questions answered"]
        if rate > 0:
            parts.append(f"{rate:.1f} questions/s")
        if left >= 1:
            parts.append(f"{about(left)} left")
        self.changed.emit(RUNNING, f"Fitting a general probe for {self.scoring.model_name}: {' · '.join(parts)}. "
                                   "Documents added meanwhile are scored when it ends.")
        self.progressChanged.emit(answered, total)

    @Slot(str, str, float, float, bool)
    def _on_finished(self, outcome: str, reason: str, auc: float, auc_margin: float, used: bool) -> None:
        name = self.scoring.model_name or "the model"
        self._stopping = False
        if outcome == DONE:
            self.note = (f"General probe fitted for {name}: on kinds of text it was not fitted on it ranks the "
                         f"answers with AUC {_auc(auc)}, the model's own yes or no {_auc(auc_margin)}. "
                         + ("Every question is scored again with it." if used else
                            "That is no better, so before labels the model's own yes or no still ranks them."))
            self._reloading = True
            self._reload(self.scoring.model_path or None)
        elif outcome == CANCELLED:
            self.note = "" if self._switching else ("Fitting stopped. The kinds of text it finished are kept, so "
                                                    "fitting again goes on from there.")
        else:
            self.note = f"Could not fit a general probe: {reason.rstrip('.')}."
        self._switching = False
        self.update()


def _auc(value: float) -> str:
    return f"{value:.2f}" if math.isfinite(value) else "unknown"


class GeneralProbeBar(QFrame):
    """The offer to fit a general probe (with its button), the fit's progress (with Cancel), or
    how it ended (with Dismiss); hidden when there is nothing to say."""

    fitClicked = Signal()
    cancelClicked = Signal()
    dismissClicked = Signal()

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setObjectName("GeneralProbeBar")
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setFixedWidth(120)
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(10)
        self.fit_button = QPushButton("Fit General Probe")
        self.fit_button.setToolTip("Fit this model's general probe from the corpus that ships with Verdict")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop fitting; the kinds of text finished are kept for the next try")
        self.dismiss_button = QPushButton("Dismiss")
        self.fit_button.clicked.connect(self.fitClicked)
        self.cancel_button.clicked.connect(self.cancelClicked)
        self.dismiss_button.clicked.connect(self.dismissClicked)
        row = QHBoxLayout(self)
        row.setContentsMargins(10, 6, 10, 6)
        row.setSpacing(8)
        row.addWidget(self.label, 1)
        for widget in (self.progress, self.fit_button, self.cancel_button, self.dismiss_button):
            row.addWidget(widget)
        self.show_state("", "")

    @Slot(str, str)
    def show_state(self, state: str, text: str) -> None:
        """Show ``text`` as an OFFER, a RUNNING fit or a RESULT; '' hides the bar."""
        self.label.setText(text)
        self.fit_button.setVisible(state == OFFER)
        self.progress.setVisible(state == RUNNING)
        self.cancel_button.setVisible(state == RUNNING)
        self.dismiss_button.setVisible(state == RESULT)
        self.setVisible(bool(state))

    @Slot(int, int)
    def show_progress(self, answered: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(answered)
