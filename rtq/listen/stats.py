"""The statistics of listening tests, exact where they can be.

ABX
    :func:`binomial_p` is the one-sided binomial test against guessing: the chance of
    ``correct`` or more right answers in ``trials`` fair coin tosses, summed in integer
    arithmetic and rounded once (no normal approximation).  A fixed test of ``n``
    trials passes when that p-value is at most :data:`ALPHA`.

    A *sequential* test (``sequential: true``) may end early, but only on a boundary
    chosen so that a guessing listener crosses it, at any trial up to the maximum, with
    probability at most :data:`ALPHA`.  :func:`sequential_design` derives the boundary
    exactly: for a nominal level ``a``, trial ``t``'s threshold is the smallest count
    whose fixed-``t`` p-value is at most ``a`` (Pocock's constant nominal level, for a
    binomial walk); the probability that a guessing walk ever reaches a threshold is
    computed exactly, by counting the walks of each length that have not yet reached one
    (integers over ``2**t``), and ``a`` is the largest of the finitely many distinct
    p-values for which that probability stays at most :data:`ALPHA` (it grows with
    ``a``, so a bisection over them finds it).  What is left of :data:`ALPHA` is then
    spent at the last trial: its threshold is lowered while the exact total stays
    within :data:`ALPHA`.  The test ends, passed, at the first trial whose count
    reaches its threshold; otherwise it runs to the maximum and fails.  Its p-value
    (:meth:`SequentialDesign.p_value`) orders outcomes stagewise (earlier crossings
    are more extreme; within a trial, more correct answers are): so it is at most
    :data:`ALPHA` exactly when the test passed, and a guessing listener's p-value is
    at most ``x`` with probability at most ``x``.

MUSHRA
    :func:`mean_interval` (Student's t interval over one listener's items),
    :func:`bootstrap_interval` (listeners pooled: a BCa bootstrap by scipy over all
    ratings of a condition, seeded so that a report reads the same each time), and
    :func:`post_screening` (ITU-R BS.1534-3: an assessor who rates the hidden reference
    below 90 on more than 15 % of the items is excluded).
"""
from __future__ import annotations

import functools
import math
from bisect import bisect_right
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

ALPHA = 0.05
"""The false-positive rate a test may have: 5 %."""
CONFIDENCE = 0.95
"""The coverage of MUSHRA's intervals."""
MAX_TRIALS = 500
"""The most ABX trials a test may have (a sequential design that long takes ~1 s to derive)."""
BOOTSTRAP_RESAMPLES = 10_000
SCREEN_REFERENCE_BELOW = 90
SCREEN_MAX_FRACTION = 0.15


def _count(value, name: str, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo or (
            hi is not None and value > hi):
        bounds = f"from {lo} to {hi}" if hi is not None else f">= {lo}"
        raise ValueError(f"{name} must be an integer {bounds}, got {value!r}")
    return int(value)


@functools.lru_cache(maxsize=1024)
def _tails(trials: int) -> tuple[int, ...]:
    """``tails[k]`` = the number of the ``2**trials`` answer sequences with at least ``k``
    right answers (``k`` from 0 to ``trials + 1``)."""
    tails = [0] * (trials + 2)
    for k in range(trials, -1, -1):
        tails[k] = tails[k + 1] + math.comb(trials, k)
    return tuple(tails)


def binomial_p(correct: int, trials: int) -> float:
    """The one-sided p-value of ``correct`` right answers out of ``trials`` against guessing.

    Parameters
    ----------
    correct : int
        Right answers, 0 to ``trials``.
    trials : int
        Trials answered, at least 1.

    Returns
    -------
    float
        ``P(K >= correct)`` for ``K ~ Binomial(trials, 1/2)``: an exact integer sum over
        ``2**trials``, rounded once to the nearest float.  ``binomial_p(12, 16)`` is
        0.0384 (2517/65536).
    """
    trials = _count(trials, "trials", 1, None)
    correct = _count(correct, "correct", 0, trials)
    return float(Fraction(_tails(trials)[correct], 2 ** trials))


# ----------------------------------------------------------------------------- sequential ABX


@dataclass(frozen=True)
class SequentialDesign:
    """The early-stopping boundary of a sequential ABX test of at most ``trials`` trials.

    ``thresholds[t - 1]`` is the number of right answers after trial ``t`` that ends the
    test, passed (None: the test cannot end at trial ``t``).  ``nominal`` is the
    fixed-trial p-value every threshold but the last one meets; ``error`` the exact
    probability that a guessing listener passes (at most :data:`ALPHA`).
    """

    trials: int
    thresholds: tuple[int | None, ...]
    nominal: Fraction
    error: Fraction

    def reached(self, correct: int, done: int) -> bool:
        """Whether ``correct`` right answers after ``done`` trials reach the boundary."""
        threshold = self.thresholds[done - 1]
        return threshold is not None and correct >= threshold

    def p_value(self, correct: int, done: int) -> float:
        """The stagewise p-value of a test that ended after ``done`` trials with
        ``correct`` right answers (at the boundary, or at the maximum without it)."""
        done = _count(done, "done", 1, self.trials)
        correct = _count(correct, "correct", 0, done)
        if done < self.trials and not self.reached(correct, done):
            raise ValueError(f"a sequential test ends at the boundary or after {self.trials} trials; "
                             f"{correct}/{done} is neither")
        return _stagewise_p(self, correct, done)


@functools.lru_cache(maxsize=4096)
def _stagewise_p(design: SequentialDesign, correct: int, done: int) -> float:
    """P(a guessing walk ends at an earlier trial, or at trial ``done`` with at least
    ``correct`` right); a walk that never reached the boundary ranks after all that did."""
    reached = design.reached(correct, done)
    before = Fraction(0)
    for t, walks, absorbed in _walk(design.thresholds):
        if t == done:
            tail = Fraction(sum((absorbed if reached else walks)[correct:]), 2 ** t)
            return float((before if reached else design.error) + tail)
        before += Fraction(sum(absorbed), 2 ** t)
    raise AssertionError("unreachable: done <= trials")


def _walk(thresholds):
    """For t = 1, 2, ...: ``(t, walks, absorbed)``: ``walks[k]`` counts the answer
    sequences of length t with k right that have reached no threshold yet,
    ``absorbed[k]`` those that reach one first at trial t."""
    walks = [1]
    for t, threshold in enumerate(thresholds, 1):
        walks = [(walks[k] if k < len(walks) else 0) + (walks[k - 1] if k else 0) for k in range(t + 1)]
        absorbed = [0] * (t + 1)
        if threshold is not None:
            for k in range(threshold, t + 1):
                absorbed[k], walks[k] = walks[k], 0
        yield t, walks, absorbed


def _error(thresholds) -> Fraction:
    """The exact probability that a guessing walk reaches some threshold."""
    n = len(thresholds)
    return Fraction(sum(sum(absorbed) << (n - t) for t, _, absorbed in _walk(thresholds)), 2 ** n)


@functools.lru_cache(maxsize=64)
def sequential_design(trials: int, alpha: float = ALPHA) -> SequentialDesign:
    """The boundary of a sequential test of at most ``trials`` trials (see the module
    docstring for the method).

    Parameters
    ----------
    trials : int
        The maximum number of trials, 1 to :data:`MAX_TRIALS`.
    alpha : float
        The false-positive rate the whole test may have.

    Returns
    -------
    SequentialDesign
    """
    trials = _count(trials, "trials", 1, MAX_TRIALS)
    limit = Fraction(alpha)
    # p-values as integers over the common denominator 2**trials: scaled[t - 1][k] is
    # the fixed-t p-value of k right answers; each row falls with k.
    scaled = [[tail << (trials - t) for tail in _tails(t)] for t in range(1, trials + 1)]
    levels = sorted({value for row in scaled for value in row[1:-1]})

    def thresholds(level: int) -> list[int | None]:
        """Each trial's smallest count whose p-value is at most level / 2**trials."""
        result = []
        for t, row in enumerate(scaled, 1):
            lo, hi = 0, t + 1          # row[hi] = 0 <= level always (no k reaches t + 1)
            while lo < hi:
                mid = (lo + hi) // 2
                lo, hi = (lo, mid) if row[mid] <= level else (mid + 1, hi)
            result.append(lo if lo <= t else None)
        return result

    # The largest nominal level whose boundary keeps the total error within alpha (none
    # above alpha can).
    lo, hi = 0, bisect_right(levels, limit * 2 ** trials)
    while lo < hi:
        mid = (lo + hi) // 2
        if _error(thresholds(levels[mid])) <= limit:
            lo = mid + 1
        else:
            hi = mid
    level = levels[lo - 1] if lo else 0
    nominal = Fraction(level, 2 ** trials)
    boundary = thresholds(level)
    # Spend what is left at the last trial.
    while boundary[-1] is None or boundary[-1] > 0:
        lower = boundary[:-1] + [trials if boundary[-1] is None else boundary[-1] - 1]
        if _error(lower) > limit:
            break
        boundary = lower
    return SequentialDesign(trials, tuple(boundary), nominal, _error(boundary))


class AbxScore:
    """The score of one ABX test as its trials are answered: what decides when the test
    ends and what it found.  The drivers keep it from the listener until the end.

    Parameters
    ----------
    trials : int
        The number of trials (the maximum, for a sequential test).
    sequential : bool
        End at the first trial whose count reaches :func:`sequential_design`'s boundary.
    """

    def __init__(self, trials: int, sequential: bool = False):
        self.trials = _count(trials, "trials", 1, MAX_TRIALS)
        self.design = sequential_design(self.trials) if sequential else None
        self.answered = 0
        self.correct = 0

    def add(self, correct: bool) -> None:
        """Count one answer."""
        if self.ended:
            raise ValueError("the test has ended")
        self.answered += 1
        self.correct += bool(correct)

    @property
    def ended(self) -> bool:
        if self.answered == self.trials:
            return True
        return self.design is not None and self.answered > 0 and self.design.reached(self.correct, self.answered)

    def result(self) -> dict:
        """The result of an ended test: plain data, as logged.

        ``{"mode": "fixed" | "sequential", "correct": k, "trials": n, "p": float,
        "passed": bool}``, and for a sequential test ``"max_trials"``.
        """
        if not self.ended:
            raise ValueError(f"the test has not ended ({self.answered} of {self.trials} trials answered)")
        if self.design is None:
            p = binomial_p(self.correct, self.answered)
            return {"mode": "fixed", "correct": self.correct, "trials": self.answered, "p": p, "passed": p <= ALPHA}
        return {"mode": "sequential", "correct": self.correct, "trials": self.answered, "max_trials": self.trials,
                "p": self.design.p_value(self.correct, self.answered),
                "passed": self.design.reached(self.correct, self.answered)}


# ----------------------------------------------------------------------------- MUSHRA


def mean_interval(values, confidence: float = CONFIDENCE) -> tuple[float, tuple[float, float] | None]:
    """The mean of ``values`` and its Student's t interval (None with fewer than 2 values).

    Used for one listener's ratings of a condition over the items of a test.
    """
    from scipy import stats

    x = np.asarray(values, dtype=float)
    mean = float(np.mean(x))
    if len(x) < 2:
        return mean, None
    sem = float(np.std(x, ddof=1)) / math.sqrt(len(x))
    if sem == 0:
        return mean, (mean, mean)
    lo, hi = stats.t.interval(confidence, len(x) - 1, loc=mean, scale=sem)
    return mean, (float(lo), float(hi))


def bootstrap_interval(values, confidence: float = CONFIDENCE, resamples: int = BOOTSTRAP_RESAMPLES,
                       seed: int = 0) -> tuple[float, float] | None:
    """A BCa bootstrap interval of the mean of ``values`` (scipy.stats.bootstrap, a seeded
    generator: the same ratings give the same interval).  None with fewer than 2 values;
    equal values give a point."""
    from scipy import stats

    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return None
    if np.all(x == x[0]):
        return float(x[0]), float(x[0])
    result = stats.bootstrap((x,), np.mean, confidence_level=confidence, n_resamples=resamples,
                             method="BCa", rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def post_screening(reference_ratings: dict[str, list[float]]) -> dict[str, str]:
    """ITU-R BS.1534-3 post-screening on the hidden reference.

    Parameters
    ----------
    reference_ratings : dict
        ``{listener: [rating of the hidden reference in each item]}``.

    Returns
    -------
    dict
        ``{listener: reason}`` for each listener to exclude: one who rated the hidden
        reference below 90 on more than 15 % of the items.
    """
    excluded = {}
    for listener, ratings in reference_ratings.items():
        low = sum(1 for rating in ratings if rating < SCREEN_REFERENCE_BELOW)
        if ratings and low > SCREEN_MAX_FRACTION * len(ratings):
            excluded[listener] = (f"rated the hidden reference below {SCREEN_REFERENCE_BELOW} on {low} of "
                                  f"{len(ratings)} items (more than {SCREEN_MAX_FRACTION:.0%})")
    return excluded
