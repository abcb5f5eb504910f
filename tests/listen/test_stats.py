"""The statistics of listening tests against scipy, brute-force enumeration and simulated
guessing listeners (rtq.listen.stats)."""
from __future__ import annotations

import itertools
import math
import random
from fractions import Fraction

import numpy as np
import pytest
from scipy import stats as scipy_stats

from rtq.listen import binomial_p
from rtq.listen.stats import (ALPHA, AbxScore, bootstrap_interval, mean_interval, post_screening,
                              sequential_design)


def test_binomial_p_equals_scipy_over_n_1_to_100():
    worst = 0.0
    for n in range(1, 101):
        for k in range(n + 1):
            expected = scipy_stats.binomtest(k, n, 0.5, alternative="greater").pvalue
            worst = max(worst, abs(binomial_p(k, n) - expected))
    assert worst <= 1e-12, worst


def test_binomial_p_is_exact():
    assert binomial_p(12, 16) == 2517 / 65536           # the 12/16, p = 0.038
    assert binomial_p(0, 10) == 1.0
    assert binomial_p(100, 100) == 2.0 ** -100
    # 1000 trials: an exact integer sum, far beyond a float's range of 2**-1000 terms
    assert binomial_p(600, 1000) == float(Fraction(sum(math.comb(1000, i) for i in range(600, 1001)), 2 ** 1000))


@pytest.mark.parametrize("k, n", [(-1, 10), (11, 10), (1, 0), (1.5, 3), (True, 3), (2, "3")])
def test_binomial_p_refuses_what_is_not_a_score(k, n):
    with pytest.raises(ValueError):
        binomial_p(k, n)


def _enumerate(design):
    """Every answer sequence of a guessing listener (as right/wrong), stopped where the
    design stops it: ``{(done, correct): probability}`` of the ends."""
    ends: dict[tuple[int, int], Fraction] = {}
    for answers in itertools.product((0, 1), repeat=design.trials):
        correct = 0
        for done, right in enumerate(answers, 1):
            correct += right
            if design.reached(correct, done) or done == design.trials:
                key = (done, correct)
                ends[key] = ends.get(key, 0) + Fraction(1, 2 ** design.trials)
                break
    return ends


@pytest.mark.parametrize("trials", [1, 5, 8, 12, 16])
def test_sequential_error_matches_brute_force(trials):
    """The design's exact error equals the share of all 2**n answer sequences that reach
    the boundary, and is at most 5 %."""
    design = sequential_design(trials)
    ends = _enumerate(design)
    passed = sum(p for (done, correct), p in ends.items() if design.reached(correct, done))
    assert passed == design.error
    assert design.error <= ALPHA


@pytest.mark.parametrize("trials", [10, 12])
def test_sequential_p_value_is_exact_and_decides_the_test(trials):
    """A guessing listener's stagewise p-value is at most x with probability exactly x at
    each of its values (so at most x for any x), and it is at most 5 % exactly when the
    test passed."""
    design = sequential_design(trials)
    ends = _enumerate(design)
    p_of = {end: design.p_value(end[1], end[0]) for end in ends}
    for end, p in p_of.items():
        assert float(sum(q for other, q in ends.items() if p_of[other] <= p)) == pytest.approx(p, abs=1e-15)
        assert (p <= ALPHA) == design.reached(end[1], end[0])


@pytest.mark.parametrize("trials", range(1, 61))
def test_sequential_boundary_spends_alpha(trials):
    """Every design keeps its error within 5 %, and its last threshold is as low as that
    allows; a fixed test of the same length passes with no fewer right answers."""
    design = sequential_design(trials)
    assert design.error <= ALPHA
    last = design.thresholds[-1]
    if last is not None and last > 0:
        from rtq.listen.stats import _error

        assert _error(design.thresholds[:-1] + (last - 1,)) > ALPHA
    fixed_needs = next(k for k in range(trials + 2) if k > trials or binomial_p(k, trials) <= ALPHA)
    assert last is None or last >= fixed_needs


def test_sequential_design_for_16_trials():
    """The boundary README quotes: stop at 6/6, 7/7, 8/8 or 8/9, ...; at the end 13/16."""
    design = sequential_design(16)
    assert design.thresholds == (None,) * 5 + (6, 7, 8, 8, 9, 10, 10, 11, 11, 12, 13)
    assert design.error == Fraction(3048, 65536)            # 4.65 %


def _simulate(trials, sequential, listeners=100_000, seed=1):
    rng = random.Random(seed)
    passed = 0
    for _ in range(listeners):
        score = AbxScore(trials, sequential)
        while not score.ended:
            score.add(rng.random() < 0.5)
        passed += score.result()["passed"]
    return passed / listeners


@pytest.mark.parametrize("sequential", [False, True], ids=["fixed", "sequential"])
def test_guessing_listeners_pass_at_most_5_percent(sequential):
    """100 000 guessing listeners through the scoring code (16 trials): the share that
    passes is at most 5 %, and within 4.5 standard errors of the exact rate (fixed:
    2517/65536 = 3.84 %, measured 3.94 %; sequential: 4.65 %, measured 4.67 %)."""
    rate = _simulate(16, sequential)
    exact = float(sequential_design(16).error) if sequential else binomial_p(12, 16)
    print(f"{'sequential' if sequential else 'fixed'}: {rate:.4%} of 100000 guessing listeners passed "
          f"(exact {exact:.4%})")
    assert rate <= ALPHA
    assert abs(rate - exact) <= 4.5 * math.sqrt(exact * (1 - exact) / 100_000)


def test_score_stays_open_until_the_end():
    score = AbxScore(4)
    for right in (True, True, True):
        score.add(right)
        with pytest.raises(ValueError):
            score.result()
    score.add(True)
    assert score.result() == {"mode": "fixed", "correct": 4, "trials": 4, "p": 1 / 16, "passed": False}
    with pytest.raises(ValueError):
        score.add(True)


def test_sequential_score_ends_at_the_boundary():
    score = AbxScore(16, sequential=True)
    for _ in range(6):
        assert not score.ended
        score.add(True)
    assert score.ended
    assert score.result() == {"mode": "sequential", "correct": 6, "trials": 6, "max_trials": 16,
                              "p": 1 / 64, "passed": True}


def test_mean_interval_is_students_t():
    mean, (lo, hi) = mean_interval([70, 80, 90])
    half = scipy_stats.t.ppf(0.975, 2) * 10 / math.sqrt(3)     # s = 10: 80 +- 24.84
    assert mean == 80 and lo == pytest.approx(80 - half, abs=1e-12) and hi == pytest.approx(80 + half, abs=1e-12)
    assert mean_interval([55]) == (55.0, None)
    assert mean_interval([100, 100, 100]) == (100.0, (100.0, 100.0))


def test_bootstrap_interval_is_seeded_and_near_the_t_interval():
    ratings = np.random.default_rng(3).normal(60, 15, 40).round()
    interval = bootstrap_interval(ratings)
    assert interval == bootstrap_interval(ratings)           # the same report each time
    _, (lo, hi) = mean_interval(ratings)
    assert interval[0] < ratings.mean() < interval[1]
    assert (interval[1] - interval[0]) == pytest.approx(hi - lo, rel=0.15)
    assert bootstrap_interval([90]) is None
    assert bootstrap_interval([90, 90]) == (90.0, 90.0)


def test_post_screening_is_bs1534_3s():
    """More than 15 % of the items with the hidden reference below 90: excluded."""
    excluded = post_screening({
        "keeps-3-of-20": [80, 85, 89] + [100] * 17,     # 15 %: not more than 15 %
        "drops-1-of-6": [89] + [100] * 5,               # 16.7 %
        "keeps-1-of-7": [89] + [95] * 6,                # 14.3 %
        "keeps-90": [90] * 4,                           # 90 is not below 90
        "drops-1-of-1": [50],
    })
    assert sorted(excluded) == ["drops-1-of-1", "drops-1-of-6"]
    assert "below 90 on 1 of 6 items" in excluded["drops-1-of-6"]
