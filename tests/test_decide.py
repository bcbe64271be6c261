"""Batch decisions against batches whose truth is known: two Gaussian groups drawn with known
means, shares and spread, so the fitted mixture, the calls' precision and the oracle can be checked
against the distribution that made them."""
from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest

from engine.confidence.decide import (
    NO,
    UNCERTAIN,
    YES,
    DecisionRule,
    PlattPrior,
    call_quality,
    called_with,
    decide,
    decide_verdicts,
    mixture,
    oracle_coverage,
    suggest,
)
from engine.types import Verdict

MIXTURE = ((0, "mixture"),)  # the mixture whatever the labels: what most tests here check
NO_FLOOR = ()  # ... and no floor on how the labels rank: labels that run against the score name the yes group


def batch(separation: float, n: int = 400, share: float = 0.3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < share
    return np.where(y, separation, 0.0) + rng.normal(size=n), y


def test_a_separated_batch_is_called_at_the_target_precision_before_any_label():
    s, y = batch(4.0, n=2000, share=0.3)
    d = decide(s, None, DecisionRule(gate=2.0, decisions=MIXTURE, unseen_auc_from=NO_FLOOR))
    made, right = call_quality(y, d.calls)
    assert made / len(y) > 0.85  # the groups overlap little: nearly everything can be called
    assert right / made >= 0.98
    assert d.prevalence == pytest.approx(0.3, abs=0.03)
    assert d.separation == pytest.approx(4.0, abs=0.3)
    # P(yes) is the true posterior of the generating mixture, up to estimation error
    true = 1 / (1 + (0.7 / 0.3) * np.exp(-(4.0 * s - 8.0)))
    assert np.max(np.abs(d.probability - true)) < 0.08


def test_calls_hold_the_target_where_the_groups_overlap():
    for seed in range(3):
        s, y = batch(3.0, n=1000, share=0.5, seed=seed)
        d = decide(s, None, DecisionRule(target=0.9, gate=2.0, decisions=MIXTURE, unseen_auc_from=NO_FLOOR))
        made, right = call_quality(y, d.calls)
        assert 0.3 < made / len(y) < 0.95 and right / made >= 0.9


def test_a_batch_without_two_groups_stays_uncertain():
    s, y = batch(0.3, n=400)
    d = decide(s, None, DecisionRule(gate=2.0, decisions=MIXTURE, unseen_auc_from=NO_FLOOR))
    assert d.called == 0 and d.separation < 2.0
    assert set(d.calls) == {UNCERTAIN}


def test_labels_are_held_and_name_the_yes_group():
    s, y = batch(4.0, n=300, share=0.5, seed=1)
    flipped = -s  # the score runs against the answer: without labels "yes" is the higher group
    before = decide(flipped, None, DecisionRule(gate=2.0, decisions=MIXTURE, unseen_auc_from=NO_FLOOR))
    made, right = call_quality(y, before.calls)
    assert right / made < 0.1
    yes, no = int(np.flatnonzero(y)[0]), int(np.flatnonzero(~y)[0])
    after = decide(flipped, {yes: True, no: False}, DecisionRule(gate=2.0, decisions=MIXTURE, unseen_auc_from=NO_FLOOR))
    assert after.calls[yes] == YES and after.calls[no] == NO and after.n_labels == (1, 1)
    made, right = call_quality(np.delete(y, [yes, no]), np.delete(np.array(after.calls), [yes, no]))
    assert made > 200 and right / made >= 0.95


def test_the_decision_does_not_depend_on_the_scale_or_offset_of_the_score():
    s, _ = batch(3.0, n=300, seed=2)
    a = decide(s, {0: bool(s[0] > 1.5)}, DecisionRule(gate=2.0, decisions=MIXTURE, unseen_auc_from=NO_FLOOR))
    b = decide(7.0 * s - 3.0, {0: bool(s[0] > 1.5)}, DecisionRule(gate=2.0, decisions=MIXTURE, unseen_auc_from=NO_FLOOR))
    assert a.calls == b.calls
    assert a.probability == pytest.approx(b.probability, abs=1e-6)


def test_scores_that_are_not_numbers_and_tiny_batches_stay_uncertain():
    s, _ = batch(4.0, n=200, seed=3)
    s[5] = np.nan
    d = decide(s, None, DecisionRule())
    assert d.calls[5] == UNCERTAIN and math.isnan(d.probability[5])
    tiny = decide([0.5, 1.0], None, DecisionRule())
    assert tiny.calls == (UNCERTAIN, UNCERTAIN)


def test_the_oracle_is_the_best_pair_of_thresholds():
    rng = np.random.default_rng(4)
    for _ in range(20):
        y = rng.random(12) < 0.5
        s = rng.normal(size=12) + y
        order = np.argsort(-s)
        best = 0
        for i, j in itertools.product(range(13), repeat=2):
            if i + j <= 12 and i + j > 0:
                right = y[order[:i]].sum() + (~y[order[12 - j:]]).sum() if j else y[order[:i]].sum()
                if right >= 0.9 * (i + j) - 1e-9:
                    best = max(best, i + j)
        assert oracle_coverage(y, s, 0.9) == pytest.approx(best / 12)


def test_suggestions_are_uncertain_unlabeled_documents_and_a_sure_batch_needs_none_twice():
    s, y = batch(1.8, n=240, share=0.4, seed=11)
    rule = DecisionRule(gate=2.0, decisions=MIXTURE, unseen_auc_from=NO_FLOOR)
    labels = {int(np.argmax(s)): True, int(np.argmin(s)): False}
    d = decide(s, labels, rule)
    picks = suggest(s, labels, rule, count=3)
    assert len(picks) == 3 == len(set(picks))
    assert not set(picks) & set(labels)
    assert all(d.calls[i] == UNCERTAIN for i in picks)
    # the document nearest even odds is among the candidates weighed
    assert suggest(np.array([0.0, 0.1, 5.0, 5.1, 5.2, -5.0, -5.1, -5.2]), {2: True, 5: False}, rule, count=8)


def test_verdicts_are_decided_over_their_batch_with_labels_pinned():
    s, y = batch(4.0, n=120, share=0.5, seed=5)
    rows = [Verdict(document_id=f"d{i}", question="Q?", verdict=UNCERTAIN, score=float(x), margin=float(x),
                    probability=1 / (1 + math.exp(-x)), label_mass=0.9, document_index=i) for i, x in enumerate(s)]
    rows.append(Verdict(document_id="bad", question="Q?", verdict="error", error="unreadable", document_index=len(s)))
    low = dict(enumerate(s))
    weakest = min(low, key=lambda i: low[i] if y[i] else math.inf)  # a yes the score puts lowest
    out = decide_verdicts(rows, DecisionRule(gate=2.0, decisions=MIXTURE, unseen_auc_from=NO_FLOOR), pinned={weakest: True}, mass_floor=0.95)
    assert out[-1] is rows[-1]
    assert out[weakest].verdict == YES  # held at its label
    assert all(v.verdict == UNCERTAIN for i, v in enumerate(out[:-1]) if i != weakest)  # mass below the floor
    called = decide_verdicts(rows, DecisionRule(gate=2.0, decisions=MIXTURE, unseen_auc_from=NO_FLOOR), pinned={weakest: True})
    made, right = call_quality(y, [v.verdict for v in called[:-1]])
    assert made > 100 and right / made >= 0.95
    assert all(v.margin == pytest.approx(math.log(v.probability / (1 - v.probability)), abs=1e-6)
               for v in called[:-1] if 0 < v.probability < 1)


def test_the_gate_follows_the_target_precision_and_is_never_looser_for_a_stricter_target():
    from engine.confidence.decide import GATES_BY_TARGET, gate_for_target

    gates = [gate_for_target(t) for t in np.linspace(0.55, 0.99, 45)]
    assert gates == sorted(gates)  # a stricter target never gets a looser gate
    for target, gate in GATES_BY_TARGET:
        assert DecisionRule(target=target).gate == gate
    with pytest.raises(ValueError):
        DecisionRule(target=1.0)


def test_the_default_target_calls_a_real_batch_whose_groups_are_apart_and_not_one_whose_are_not():
    """The default model's scores on the obvious case (100 recipes, 100 payment requests): the food
    question's groups are far apart and every call must be right; the payment question ranks them
    barely better than chance (AUC 0.57) and must not be called at all without labels."""
    import json
    from pathlib import Path

    data = json.loads((Path(__file__).parent / "data" / "obvious_scores.json").read_text())["questions"]
    food, pay = data["Is this about food or cooking?"], data["Does this ask the reader to pay money?"]
    d = decide(np.array(food["score"]), None, DecisionRule(decisions=MIXTURE, unseen_auc_from=NO_FLOOR))
    made, right = call_quality(np.array(food["yes"]), d.calls)
    assert made >= 0.8 * len(food["yes"]) and right >= 0.97 * made
    d = decide(np.array(pay["score"]), None, DecisionRule(decisions=MIXTURE, unseen_auc_from=NO_FLOOR))
    assert d.called == 0


def test_the_bayesian_platt_learns_a_known_calibration_from_many_labels_and_doubts_few():
    from engine.confidence.decide import PlattPrior, bayes_platt

    rng = np.random.default_rng(3)
    s = rng.normal(size=3000)
    y = rng.random(3000) < 1 / (1 + np.exp(-(2.0 * s - 0.5)))  # the true calibration: slope 2, intercept -0.5
    prior = PlattPrior((0.5, 0.0), ((1.0, 0.0), (0.0, 1.0)))
    p = bayes_platt(s, {i: bool(y[i]) for i in range(3000)}, prior)
    assert np.max(np.abs(p - 1 / (1 + np.exp(-(2.0 * s - 0.5))))) < 0.05
    few = bayes_platt(s, {0: bool(y[0]), 1: not bool(y[0])}, prior)  # two labels: modest everywhere
    assert np.all(np.abs(few - 0.5) < np.abs(p - 0.5) + 0.2) and np.max(np.abs(few - 0.5)) < 0.45


def test_the_platt_prior_follows_its_score_through_an_affine_change():
    """A probe whose log-odds are rescaled (s = a z + c) with its prior rescaled alike decides the same."""
    from engine.confidence.decide import PlattPrior, bayes_platt

    rng = np.random.default_rng(4)
    z = rng.normal(size=200)
    labels = {0: True, 1: False, 2: True, 3: False}
    prior = PlattPrior((0.5, -1.2), ((0.44, -0.19), (-0.19, 1.32)))
    a, c = 0.23, -0.88
    assert np.allclose(bayes_platt(a * z + c, labels, prior.rescaled(a, c)), bayes_platt(z, labels, prior), atol=1e-9)
    assert PlattPrior.from_dict(prior.to_dict()) == prior
    assert PlattPrior.from_dict({"mean": [1, 2], "cov": [[1, 2], [2, 1]]}) is None  # not positive definite
    assert PlattPrior.from_dict({"mean": [1]}) is None


def test_from_two_labels_of_each_class_the_bayesian_platt_decides_where_a_prior_is_known():
    from engine.confidence.decide import PlattPrior

    s, y = batch(2.0, n=300, share=0.5, seed=5)  # groups too close for the mixture's gate
    prior = PlattPrior((2.0, -2.0), ((0.3, 0.0), (0.0, 0.3)))  # the calibration this score has
    yes, no = np.flatnonzero(y)[:2], np.flatnonzero(~y)[:2]
    rule = DecisionRule(decisions=((0, "mixture"), (2, "platt")))
    one = decide(s, {int(yes[0]): True, int(no[0]): False}, rule, prior)
    assert one.method == "mixture" and one.called == 2  # one of each: the mixture, which calls nothing here
    two = decide(s, {**{int(i): True for i in yes}, **{int(i): False for i in no}}, rule, prior)
    assert two.method == "platt" and two.separated
    free = [i for i in range(len(s)) if i not in set(yes) | set(no)]
    made, right = call_quality(y[free], [two.calls[i] for i in free])
    assert made > 0.3 * len(free) and right / made >= 0.9
    # without a prior, the table for raw scores decides: nothing below 4 labels of each class
    assert decide(s, {**{int(i): True for i in yes}, **{int(i): False for i in no}}, rule).method == "none"


def test_deciding_again_after_the_groups_merge_gives_back_each_rows_own_probability():
    """The window decides a batch again on every change, feeding back rows it decided before: once
    the groups are no longer apart, each row's probability must be its calibrator's (from its
    score), not the mixture's from the earlier decision."""
    s, _ = batch(6.0, n=200, share=0.5, seed=7)
    rows = [Verdict(document_id=f"d{i}", question="Q?", verdict=UNCERTAIN, score=float(x), margin=float(x),
                    probability=1 / (1 + math.exp(-x)), label_mass=0.9, document_index=i) for i, x in enumerate(s)]
    first = decide_verdicts(rows, DecisionRule(gate=2.0, decisions=MIXTURE, unseen_auc_from=NO_FLOOR))
    assert sum(v.verdict != UNCERTAIN for v in first) > 150
    merged = [dataclasses.replace(v, score=float(x)) for v, x in zip(first, np.random.default_rng(1).normal(size=200))]
    again = decide_verdicts(merged, DecisionRule(gate=2.0, decisions=MIXTURE, unseen_auc_from=NO_FLOOR))
    assert all(v.verdict == UNCERTAIN for v in again)
    assert [v.probability for v in again] == pytest.approx([1 / (1 + math.exp(-v.score)) for v in merged], abs=1e-6)


def _known_llr_batch(n: int, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """No ~ N(0, 1), yes ~ N(2, 1): the likelihood ratio is exactly 2 s - 2."""
    rng = np.random.default_rng(seed)
    y = rng.random(n) < share
    return np.where(y, 2.0, 0.0) + rng.normal(size=n), y


def test_the_prevalence_decision_finds_a_rare_yes_and_gives_the_bayes_posterior():
    """With the likelihood ratio known (a tight prior on it), P(yes) must be the Bayes posterior of
    the distribution that made the batch, its rare "yes" (8%) estimated from the batch alone."""
    from engine.confidence.decide import PlattPrior, prevalence_platt

    s, y = _known_llr_batch(1500, 0.08, seed=11)
    prior = PlattPrior((2.0, -2.0), ((1e-4, 0.0), (0.0, 1e-4)))
    p = prevalence_platt(s, None, prior).mean(axis=0)
    bayes = 1 / (1 + np.exp(-(2.0 * s - 2.0 + math.log(0.08 / 0.92))))
    assert np.max(np.abs(p - bayes)) < 0.06
    assert p.mean() == pytest.approx(y.mean(), abs=0.02)
    # the same batch at 50%: the same scores of a document say less for "no"
    s2, _ = _known_llr_batch(1500, 0.5, seed=11)
    p2 = prevalence_platt(s2, None, prior).mean(axis=0)
    assert p2.mean() == pytest.approx(0.5, abs=0.04)


def test_scores_that_say_nothing_leave_the_prevalence_and_every_probability_unsure():
    from engine.confidence.decide import PlattPrior, prevalence_platt

    s = np.random.default_rng(12).normal(size=500)
    flat = PlattPrior((0.0, 0.0), ((1e-6, 0.0), (0.0, 1e-6)))  # a likelihood ratio of 1 everywhere
    draws = prevalence_platt(s, None, flat)
    assert np.all(np.abs(draws.mean(axis=0) - 0.5) < 0.02)  # the flat prior on the prevalence, unmoved
    d = decide(s, None, DecisionRule(decisions=((0, "prevalence"),)), PlattPrior((0.0, 0.0), ((1.0, 0.0), (0.0, 1.0)),
                                                                                  flat))
    assert d.method == "prevalence" and d.called == 0


def test_the_prevalence_decision_calls_a_rare_yes_batch_at_the_target_where_the_mixture_can_not():
    from engine.confidence.decide import PlattPrior

    s, y = _known_llr_batch(600, 0.08, seed=13)  # groups 2 sd apart, and one of them small
    outer = PlattPrior((2.0, -4.0), ((0.5, 0.0), (0.0, 2.0)))
    prior = PlattPrior(outer.mean, outer.cov, PlattPrior((2.0, -2.0), ((0.05, 0.0), (0.0, 0.05))))
    mixture = decide(s, None, DecisionRule(decisions=MIXTURE, unseen_auc_from=NO_FLOOR), prior)
    assert mixture.method == "mixture" and mixture.called < 0.1 * len(s)
    rule = DecisionRule(decisions=((0, "prevalence"),))
    d = decide(s, None, rule, prior)
    made, right = call_quality(y, d.calls)
    assert d.method == "prevalence" and made > 0.8 * len(s) and right / made >= 0.9
    assert d.prevalence == pytest.approx(y.mean(), abs=0.03)
    # labels sampled by class (three yes, one no) move the ratio by log(3 / 1), not the prevalence
    yes, no = np.flatnonzero(y)[:3], np.flatnonzero(~y)[:1]
    labeled = decide(s, {**{int(i): True for i in yes}, **{int(i): False for i in no}}, rule, prior)
    assert labeled.prevalence == pytest.approx(y.mean(), abs=0.03)


def test_a_decision_whose_prior_is_missing_falls_back():
    from engine.confidence.decide import PlattPrior

    rule = DecisionRule(decisions=((0, "prevalence"), (2, "prevalence-q")))
    plain = PlattPrior((1.0, 0.0), ((1.0, 0.0), (0.0, 1.0)))
    # no prior at all, or no prevalence-free form below two labels: the table for raw scores, which
    # calls nothing below 4 labels of each class and has the mixture from there
    assert [rule.decision_for(k, None) for k in (0, 1, 3, 4, 9)] == ["none", "none", "none", "mixture", "mixture"]
    assert rule.decision_for(0, plain) == "none"
    assert rule.calls_from(0) == 0 and rule.calls_from(0, None) == 4 and rule.calls_from(5, None) == 5
    assert DecisionRule(without_prior=((0, "mixture"),)).decision_for(1, None) == "mixture"
    assert rule.decision_for(2, plain) == "platt"
    assert rule.decision_for(2, PlattPrior(plain.mean, plain.cov, plain)) == "prevalence-q"
    nested = PlattPrior((0.5, -1.2), ((0.44, -0.19), (-0.19, 1.32)), PlattPrior((0.5, 0.1), ((0.44, 0.0), (0.0, 0.3))))
    assert PlattPrior.from_dict(nested.to_dict()) == nested
    assert nested.rescaled(2.0, 1.0).without_prevalence == nested.without_prevalence.rescaled(2.0, 1.0)
    broken = {**nested.to_dict(), "without_prevalence": {"mean": [1, 2], "cov": [[1, 2], [2, 1]]}}
    assert PlattPrior.from_dict(broken) == PlattPrior(nested.mean, nested.cov)  # the broken part alone dropped


def test_the_quick_refits_run_together_give_each_label_set_the_calls_it_gets_alone():
    """`called_with` runs the EM of many label sets at once (what `suggest` weighs): each must get
    exactly what `decide` gives it alone, on a batch with two groups, one without, and with the
    Bayesian Platt taking over where a prior is known."""
    rng = np.random.default_rng(3)
    quick = DecisionRule(refits=0, decisions=((0, "mixture"), (2, "prevalence-q"), (8, "prevalence")))
    prior = PlattPrior((1.0, 0.0), ((0.5, 0.0), (0.0, 0.5)))
    for s in (np.r_[rng.normal(2.5, 1, 60), rng.normal(-2.5, 1, 60)], rng.normal(0, 1, 120),
              np.r_[rng.normal(0, 1, 40), [np.nan, np.inf]]):
        sets = [{}, {0: True}, {0: True, 30: False}, {3: False}, {0: True, 1: True, 30: False, 31: False},
                {0: True, 1: True, 30: False}]
        for with_prior in (None, prior):
            alone = [decide(s, labels, quick, with_prior).called for labels in sets]
            assert called_with(s, sets, quick, with_prior) == alone
    with pytest.raises(ValueError):
        called_with([0.0, 1.0, 2.0], [{}], DecisionRule())


def test_deciding_the_same_batch_again_gives_an_equal_decision_that_the_caller_may_change():
    s = np.r_[np.linspace(-3, -1, 30), np.linspace(1, 3, 30)]
    first = decide(s, {0: False}, DecisionRule())
    first.probability[:] = 0.5  # a caller's own copy: the remembered decision is not touched
    again = decide(s, {0: False}, DecisionRule())
    assert again.calls == first.calls and again.probability[1] < 0.5
    assert suggest(s, None, DecisionRule(), 3) == suggest(s, None, DecisionRule(), 5)[:3]


def _food():
    import json
    from pathlib import Path

    food = json.loads((Path(__file__).parent / "data" / "obvious_scores.json").read_text())["questions"][
        "Is this about food or cooking?"]
    return np.array(food["score"]), np.array(food["yes"])


def test_the_shipped_rule_calls_nothing_without_labels_and_its_probability_still_ranks():
    """Without labels no decision was right often enough on genres the probe never saw, so the
    shipped rule calls nothing, even on the food batch the mixture would call; P(yes) is the score's
    own, which ranks the batch as the score does. From one label of each class on, a decision is
    named for every count."""
    s, y = _food()
    d = decide(s, None, DecisionRule())
    assert d.method == "none" and d.called == 0 and not d.separated
    assert d.probability == pytest.approx(1 / (1 + np.exp(-s)))
    with_prior = PlattPrior((1.0, 0.0), ((0.5, 0.0), (0.0, 0.5)), PlattPrior((1.0, 0.0), ((0.5, 0.0), (0.0, 0.5))))
    assert [DecisionRule().decision_for(k, with_prior) for k in (0, 1, 2, 3, 4, 7, 8, 16)] == [
        "none", "prevalence-q", "prevalence", "prevalence", "prevalence-q", "prevalence-q", "prevalence",
        "prevalence"]
    assert [DecisionRule().calls_from(k) for k in (0, 1, 2, 3, 4, 7, 8, 20)] == [1, 1, 2, 3, 4, 7, 8, 20]
    assert DecisionRule(decisions=((0, "none"),)).calls_from() is None
    assert DecisionRule(decisions=((0, "mixture"),)).calls_from(1) == 1
    assert [DecisionRule().unseen_auc_floor(k) for k in (0, 1, 2, 7, 8)] == [0.0, 1.0, 0.75, 0.75, 0.0]


def test_labels_that_scores_which_never_saw_them_rank_poorly_hold_every_call_back():
    """The same batch and the same labels are called or held back by how well scores that did not
    see the labels rank them: with one label of each, the label-free score must put the yes above
    the no (a calibrator says so in `unseen_auc`; without it the labeled scores are read); from two
    of each, the labeled documents' scores (leave-one-out ones, in the product) must rank them at
    0.75. Held back, P(yes) is the score's own and nothing is called."""
    s, y = _food()
    prior = PlattPrior((1.0, 0.0), ((0.1, 0.0), (0.0, 0.1)), PlattPrior((1.0, 0.0), ((0.1, 0.0), (0.0, 0.1))))
    yes, no = np.flatnonzero(y), np.flatnonzero(~y)
    agree = {int(yes[np.argmax(s[yes])]): True, int(no[np.argmin(s[no])]): False}
    called = decide(s, agree, DecisionRule(), prior)
    assert called.method == "prevalence-q" and not called.held_back and called.unseen_auc == 1.0
    assert called.called > len(agree) and called.separated
    held = decide(s, agree, DecisionRule(), prior, unseen_auc=0.0)  # the label-free score had them the wrong way
    assert held.held_back and held.called == len(agree) and not held.separated
    free = [i for i in range(len(s)) if i not in agree]
    assert held.probability[free] == pytest.approx(1 / (1 + np.exp(-s[free])))
    # two of each, two of them scored against their labels: one pair of four in order, AUC 0.25 < 0.75
    against = {int(yes[np.argmax(s[yes])]): True, int(yes[np.argmin(s[yes])]): True,
               int(no[np.argmin(s[no])]): False, int(no[np.argmax(s[no])]): False}
    s2 = s.copy()
    s2[int(yes[np.argmin(s[yes])])] = s[no].min() - 1  # a yes scored below every no
    s2[int(no[np.argmax(s[no])])] = s[yes].max() + 1  # a no scored above every yes
    assert decide(s2, against, DecisionRule(), prior).held_back
    assert decide(s2, against, DecisionRule(), prior).unseen_auc == pytest.approx(0.25)
    assert not decide(s, against, DecisionRule(), prior).held_back  # the same labels, scored the right way
    # `called_with` (what `suggest` weighs) holds the mixture back the same way
    quick = DecisionRule(refits=0, decisions=((0, "mixture"),), unseen_auc_from=((1, 1.0),))
    sets = [{0: True, 1: False}, {0: False, 1: True}]
    two = np.r_[[3.0, -3.0], np.random.default_rng(0).normal(3, 0.3, 40), np.random.default_rng(1).normal(-3, 0.3, 40)]
    assert called_with(two, sets, quick) == [decide(two, labels, quick).called for labels in sets]
    assert decide(two, sets[1], quick).held_back and not decide(two, sets[0], quick).held_back


def test_the_prevalence_prior_is_what_scores_that_say_nothing_leave_and_it_holds_a_misfit_batch_back():
    """With a likelihood ratio of 1 everywhere, every P(yes) is the prior's mean: a / (a + b) for
    Beta(a, b) on the prevalence (0.273 for the shipped one). And where a likelihood ratio that
    misfits the batch calls every one of 12 documents a likely "yes", the shipped prior keeps the
    share of "yes" lower than the flat one does."""
    from engine.confidence.decide import PREVALENCE_PRIOR, prevalence_platt

    s = np.random.default_rng(12).normal(size=500)
    flat_ratio = PlattPrior((0.0, 0.0), ((1e-6, 0.0), (0.0, 1e-6)))
    a, b = PREVALENCE_PRIOR
    draws = prevalence_platt(s, None, flat_ratio, prevalence_prior=PREVALENCE_PRIOR)
    assert np.all(np.abs(draws.mean(axis=0) - a / (a + b)) < 0.02)
    misfit = np.random.default_rng(3).normal(1.5, 0.5, size=12)  # all "yes"-like under ratio 2 s - 2
    ratio = PlattPrior((2.0, -2.0), ((1e-6, 0.0), (0.0, 1e-6)))
    flat = prevalence_platt(misfit, None, ratio).mean()
    held = prevalence_platt(misfit, None, ratio, prevalence_prior=PREVALENCE_PRIOR).mean()
    assert held < flat - 0.05


def test_joint_draws_carry_the_shares_uncertainty_as_numpy_beta_samples_have_it():
    """With a likelihood ratio that says nothing, the share's posterior is its Beta prior: joint
    draws of P(yes) are then draws of that Beta (quantiles as numpy's Beta sampler gives them), where
    the averaged draws all sit at its mean. In a large batch whose scores pin the share down, the
    two agree."""
    from engine.confidence.decide import PREVALENCE_PRIOR, prevalence_platt

    a, b = PREVALENCE_PRIOR
    flat_ratio = PlattPrior((0.0, 0.0), ((1e-9, 0.0), (0.0, 1e-9)))
    s = np.zeros(12)
    joint = prevalence_platt(s, None, flat_ratio, draws=4000, prevalence_prior=PREVALENCE_PRIOR, joint=True)[:, 0]
    averaged = prevalence_platt(s, None, flat_ratio, draws=200, prevalence_prior=PREVALENCE_PRIOR)[:, 0]
    reference = np.random.default_rng(0).beta(a, b, size=400_000)
    for q in (0.1, 0.5, 0.9):
        assert abs(np.quantile(joint, q) - np.quantile(reference, q)) < 0.02
    assert np.ptp(averaged) < 1e-3 and abs(averaged[0] - a / (a + b)) < 0.01
    rng = np.random.default_rng(5)
    big = np.r_[rng.normal(3, 1, 200), rng.normal(-3, 1, 1800)]
    ratio = PlattPrior((1.0, 0.0), ((1e-4, 0.0), (0.0, 1e-4)))
    lo_joint = np.quantile(prevalence_platt(big, None, ratio, prevalence_prior=PREVALENCE_PRIOR, joint=True), 0.1, axis=0)
    lo_avg = np.quantile(prevalence_platt(big, None, ratio, prevalence_prior=PREVALENCE_PRIOR), 0.1, axis=0)
    assert np.max(np.abs(lo_joint - lo_avg)) < 0.05
    small = big[::100]  # 20 documents: the share is unsure, so are the calls
    spread_joint = np.ptp(prevalence_platt(small, None, ratio, prevalence_prior=PREVALENCE_PRIOR, joint=True), axis=0)
    spread_avg = np.ptp(prevalence_platt(small, None, ratio, prevalence_prior=PREVALENCE_PRIOR), axis=0)
    assert np.median(spread_joint) > 10 * np.median(spread_avg) and np.max(spread_joint) > 0.5 > np.max(spread_avg)


def _prior_with_ratio() -> PlattPrior:
    return PlattPrior((1.0, 0.0), ((0.5, 0.0), (0.0, 0.5)), PlattPrior((1.0, 0.0), ((0.5, 0.0), (0.0, 0.5))))


def test_groups_far_apart_are_called_by_the_mixture_whatever_the_table_names():
    """Where the batch's groups stand apart by the rule's gate for the count of labels, the mixture
    decides (its calls, exactly), though the table names "none"; under the gate, without the score's
    prior, with both groups on one side of the score's zero (no labels), or with labels that rank
    under the floor, the table's decision stands."""
    s, y = batch(6.0, n=400, share=0.3)
    s = s - 3.0  # the score's own zero between the groups
    prior = _prior_with_ratio()
    assert decide(s, None, DecisionRule(), prior).called == 0  # as shipped before the gate: "none" at k = 0
    rule = DecisionRule(apart_from=((0, 4.0),))
    d = decide(s, None, rule, prior)
    alone = mixture(s, None, rule)[0]
    made, right = call_quality(y, d.calls)
    assert d.method == "mixture" and d.calls == alone.calls and d.separated and d.gate == 4.0
    assert made > 0.8 * len(y) and right / made >= 0.97
    assert decide(s, None, DecisionRule(apart_from=((0, 8.0),)), prior).called == 0  # not that far apart
    assert decide(s, None, rule, None).called == 0  # a raw margin: its own table decides (none at 0)
    assert decide(s - 10.0, None, rule, prior).called == 0  # both groups below even odds: no call without labels
    unguarded = dataclasses.replace(rule, apart_straddles=False)
    assert decide(s - 10.0, None, unguarded, prior).calls == decide(s, None, unguarded, prior).calls
    yes, no = np.flatnonzero(y), np.flatnonzero(~y)
    labels = {int(yes[0]): True, int(no[0]): False}
    one = DecisionRule(apart_from=((1, 4.0),))
    assert decide(s - 10.0, labels, one, prior).calls == mixture(s - 10.0, labels, one)[0].calls  # labels name the groups
    held = decide(s, labels, one, prior, unseen_auc=0.0)
    assert held.held_back and held.called == 2  # the floor holds the mixture back as it holds the table's decision


def test_the_evaluation_combines_the_shipped_decision_and_the_mixture_as_the_rule_does():
    """`scripts/eval_decisions.py` chooses the gate from per-draw records of the shipped decision and
    the mixture, combined offline: the combination must be the decision `DecisionRule.apart_from` makes."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    from eval_decisions import apart_counts, shipped_and_apart

    prior = _prior_with_ratio()
    for sep, shift, k in ((6.0, -3.0, 0), (6.0, -13.0, 0), (2.0, -1.0, 0), (6.0, -3.0, 1), (5.0, -2.0, 2)):
        s, y = batch(sep, n=300, share=0.3, seed=int(sep) + k)
        s = s + shift
        labeled = np.r_[np.flatnonzero(y)[:k], np.flatnonzero(~y)[:k]]
        labels = {int(i): bool(y[i]) for i in labeled}
        unl = np.ones(len(y), bool)
        unl[labeled] = False
        record = {"k": k, **shipped_and_apart(y, s, labels, unl, prior, None)}
        for gate in (3.0, 4.5, 8.0):
            for straddle in (True, False):
                rule = DecisionRule(apart_from=((0, gate),), apart_straddles=straddle)
                d = decide(s, labels, rule, prior)
                unlabeled_calls = [d.calls[i] for i in np.flatnonzero(unl)]
                assert apart_counts(record, gate, straddle, rule.small_batch_floor)[:2] == call_quality(
                    y[unl], unlabeled_calls)


def test_one_heavy_tailed_group_of_twenty_is_not_called_as_two():
    """Twenty scores from one heavy-tailed group (Student's t, 3 degrees of freedom), the four highest
    labeled yes and the four lowest no: the mixture, deciding for a score without a prior from four
    labels of each, finds groups 4.4 sd apart. The Gaussian floor (1.2 + 13.2/sqrt(n) = 4.15) let it
    call every document; the measured one (`SMALL_BATCH_FLOOR`, 5.6 here) calls none."""
    s = np.random.default_rng(14).standard_t(3, size=20)
    order = np.argsort(s)
    labels = {int(i): True for i in order[-4:]} | {int(i): False for i in order[:4]}
    gaussian = decide(s, labels, DecisionRule(small_batch_floor=13.2))
    assert gaussian.method == "mixture" and gaussian.separation == pytest.approx(4.36, abs=0.01)
    assert gaussian.called == 20
    shipped = decide(s, labels, DecisionRule())
    assert shipped.gate == pytest.approx(1.2 + 19.8 / math.sqrt(20)) and shipped.called == len(labels)
