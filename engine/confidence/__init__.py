"""Confidence: from raw margins and hidden states to probabilities and verdicts users can trust.

Owns: metrics (AUC, ECE, Brier, logistic regression), calibrators (label-free shifts, the
uncertain band, Platt), linear probes on hidden states, evaluation, and the calibrator store.
May import: numpy, `engine.types`. Never MLX or mlx-lm (hidden states arrive as numpy arrays
from a `ScoringBackend`), never Qt. Functions that need scores take a classifier object and
call its public API.
"""
